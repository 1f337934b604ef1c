"""The tfhub encoder on hub-format SavedModels written here (a tf.Module with variables and a signature)."""

import hashlib
import os
import shutil

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_mm
from keras_mm.encoders import TFHubEncoder, resolve_hub_handle
from keras_mm.encoders.tfhub import write_example_savedmodel

TEXT_VOCABULARY = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "a", "dog", "cat", "sat", "on", "the", "mat", ".", "##s", "x", "y", "z"]


@pytest.fixture(scope="module")
def image_hub(tmp_path_factory):
    return write_example_savedmodel(tmp_path_factory.mktemp("hub") / "image", image_size=8, output_dim=4)


def _pixels(batch=3, seed=0):
    return np.random.default_rng(seed).uniform(0, 255, (batch, 8, 8, 3)).astype("float32")


def _own_output(path, **inputs):
    """The SavedModel's own answer, through TensorFlow alone."""
    signature = tf.saved_model.load(os.fspath(path)).signatures["serving_default"]
    return {k: v.numpy() for k, v in signature(**{k: tf.constant(v) for k, v in inputs.items()}).items()}


@pytest.mark.parametrize("value_range", [(0.0, 1.0), (-1.0, 1.0)])
def test_image_outputs_equal_the_savedmodels_own(image_hub, value_range):
    encoder = TFHubEncoder(image_hub, image_size=8, value_range=value_range)
    pixels = _pixels()
    low, high = value_range
    expected = _own_output(image_hub, images=pixels / 255.0 * (high - low) + low)["feature_vector"]
    np.testing.assert_allclose(keras.ops.convert_to_numpy(encoder({"": pixels})), expected, atol=1e-6)


def test_trainable_refused_for_a_savedmodel_without_trainable_variables(tmp_path):
    class Frozen(tf.Module):
        def __init__(self):
            self.w = tf.Variable(tf.ones([3, 2]), trainable=False)

        @tf.function(input_signature=[tf.TensorSpec([None, 8, 8, 3], tf.float32, name="images")])
        def serve(self, images):
            return {"out": tf.matmul(tf.reduce_mean(images, [1, 2]), self.w)}

    module = Frozen()
    tf.saved_model.save(module, str(tmp_path), signatures={"serving_default": module.serve})
    assert TFHubEncoder(str(tmp_path)).image_size == (8, 8)  # read from the signature
    with pytest.raises(ValueError, match="uses no trainable variable"):
        TFHubEncoder(str(tmp_path), trainable=True)


def test_frozen_by_default(image_hub):
    encoder = TFHubEncoder(image_hub, image_size=8)
    encoder({"": _pixels()})
    assert encoder.trainable_weights == [] and [w.path for w in encoder.weights] == ["kernel", "bias", "scale"]


def test_fine_tuning_changes_the_savedmodel_and_survives_keras_reload(image_hub, tmp_path):
    keras.utils.set_random_seed(0)
    model = keras_mm.build_model(
        encoders={"img": {"name": "tfhub", "handle": image_hub, "image_size": 8, "trainable": True}}, num_classes=2
    )
    encoder = model.feature_encoders["img"]
    assert [w.path for w in encoder.trainable_weights] == ["kernel", "bias"]  # "scale" is not trainable in the SavedModel
    inputs = model.preprocessor.process_batch(model.preprocessor.example_raw(4))
    before = [w.numpy().copy() for w in encoder.weights]
    features_before = keras.ops.convert_to_numpy(encoder({"": inputs["img"]}))
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    model.fit(inputs, np.array([0, 1, 0, 1]), epochs=2, verbose=0)
    assert [not np.array_equal(b, w.numpy()) for b, w in zip(before, encoder.weights)] == [True, True, False]
    # the Keras weights are the SavedModel's own variables: training them changes what its signature computes
    assert np.abs(keras.ops.convert_to_numpy(encoder({"": inputs["img"]})) - features_before).max() > 1e-4

    path = str(tmp_path / "model.keras")
    model.save(path)
    with pytest.raises((TypeError, ValueError), match="safe_mode=False"):
        keras.models.load_model(path)
    restored = keras.models.load_model(path, safe_mode=False)
    np.testing.assert_allclose(restored.predict(inputs, verbose=0), model.predict(inputs, verbose=0), atol=1e-6)
    tuned = encoder.weights[0].numpy()
    np.testing.assert_array_equal(restored.feature_encoders["img"].weights[0].numpy(), tuned)
    assert not np.array_equal(tuned, tf.saved_model.load(image_hub).kernel.numpy())  # fine-tuned, not the original


def test_export_embeds_the_savedmodel(image_hub, tmp_path):
    copy = shutil.copytree(image_hub, tmp_path / "hub_copy")
    model = keras_mm.build_model(encoders={"img": {"name": "tfhub", "handle": str(copy), "image_size": 8}}, num_classes=3)
    raw = model.preprocessor.example_raw(3)
    expected = model.predict(model.preprocessor.process_batch(raw), verbose=0)
    version = keras_mm.export_saved_model(model, str(tmp_path / "export"), version=1)
    shutil.rmtree(copy)  # the export must not need the hub directory
    served = tf.saved_model.load(version).signatures["serving_default"](img=tf.constant(raw["img"]))
    np.testing.assert_allclose(served["probabilities"].numpy(), expected, atol=1e-6)


def test_token_id_text_model_with_wordpiece_preprocessing(tmp_path):
    path = write_example_savedmodel(tmp_path / "text", modality="text", output_dim=4)
    with pytest.raises(ValueError, match="no assets/vocab.txt"):
        TFHubEncoder(path, modality="text")
    encoder = TFHubEncoder(path, modality="text", vocabulary=TEXT_VOCABULARY, sequence_length=6)
    assert encoder.output_key == "pooled_output"  # the only [batch, features] output
    assert set(encoder.input_signature()) == {"token_ids", "padding_mask", "segment_ids"}
    numeric = encoder.build_preprocessor("t").process_batch(tf.constant(["The dog sat.", "cats"]))
    ids = numeric["t_token_ids"].numpy()
    np.testing.assert_array_equal(ids, [[2, 9, 5, 7, 11, 3], [2, 6, 12, 3, 0, 0]])  # [CLS] ... [SEP] [PAD]
    inputs = {k: numeric[f"t_{k}"] for k in encoder.input_signature()}
    expected = _own_output(
        path, input_word_ids=ids, input_mask=inputs["padding_mask"].numpy(), input_type_ids=inputs["segment_ids"].numpy()
    )["pooled_output"]
    np.testing.assert_allclose(keras.ops.convert_to_numpy(encoder(inputs)), expected, atol=1e-6)


def test_string_taking_model_is_refused_for_the_numeric_core(tmp_path):
    class StringModel(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
        def serve(self, text):
            return {"embedding": tf.ones([tf.shape(text)[0], 2])}

    module = StringModel()
    tf.saved_model.save(module, str(tmp_path), signatures={"serving_default": module.serve})
    with pytest.raises(ValueError, match="takes strings: keras_mm's core model is numeric"):
        TFHubEncoder(str(tmp_path), modality="text")


def test_errors_name_the_argument_and_the_choices(tmp_path):
    path = write_example_savedmodel(tmp_path / "text", modality="text")
    with pytest.raises(ValueError, match=r"output_key='sequence_output' .* Allowed: pooled_output"):
        TFHubEncoder(path, modality="text", vocabulary=TEXT_VOCABULARY, output_key="sequence_output")
    image = write_example_savedmodel(tmp_path / "image", image_size=8)
    with pytest.raises(ValueError, match=r"image_size=\(16, 16\) does not match"):
        TFHubEncoder(image, image_size=16)
    with pytest.raises(ValueError, match="call_endpoint='serve' is not a signature .* Available: serving_default"):
        TFHubEncoder(image, call_endpoint="serve")
    with pytest.raises(ValueError, match="modality='audio' is not supported by 'tfhub'. Allowed: image, text"):
        TFHubEncoder(image, modality="audio")


def test_url_resolves_from_the_tfhub_cache_only(image_hub, tmp_path, monkeypatch):
    monkeypatch.setenv("TFHUB_CACHE_DIR", str(tmp_path))
    url = "https://tfhub.dev/google/example/feature_vector/1"
    with pytest.raises(ValueError, match="has no local copy.*TFHUB_CACHE_DIR"):
        resolve_hub_handle(url)
    cached = tmp_path / hashlib.sha1(url.encode()).hexdigest()
    shutil.copytree(image_hub, cached)
    assert resolve_hub_handle(url) == str(cached)
    assert TFHubEncoder(url, image_size=8).output_dim == 4


def test_cache_rule_is_tensorflow_hubs_own(image_hub, tmp_path, monkeypatch):
    """tensorflow_hub is the reference: with the module cached, hub.resolve returns our directory (no network)."""
    hub = pytest.importorskip("tensorflow_hub", reason="tensorflow-hub is the reference for the cache rule (test extra)")
    monkeypatch.setenv("TFHUB_CACHE_DIR", str(tmp_path))
    url = "https://www.kaggle.com/models/google/example/TensorFlow2/feature-vector/2"
    shutil.copytree(image_hub, tmp_path / hashlib.sha1(url.encode()).hexdigest())
    assert hub.resolve(url) == resolve_hub_handle(url)


def test_kaggle_handle_resolves_from_the_kagglehub_cache(image_hub, tmp_path, monkeypatch):
    monkeypatch.setenv("KAGGLEHUB_CACHE", str(tmp_path))
    handle = "google/example/tensorFlow2/feature-vector/2"
    with pytest.raises(ValueError, match="KAGGLEHUB_CACHE"):
        resolve_hub_handle(handle)
    variation = tmp_path / "models" / "google" / "example" / "tensorFlow2" / "feature-vector"
    shutil.copytree(image_hub, variation / "2")
    (variation / "2.complete").touch()  # kagglehub's marker of a finished download
    assert resolve_hub_handle(handle) == str(variation / "2")
    assert resolve_hub_handle("https://www.kaggle.com/models/" + handle) == str(variation / "2")
