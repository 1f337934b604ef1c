import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_text  # noqa: F401

import keras_mm
from keras_mm.export import latest_version_dir, next_version, read_export_metadata
from keras_mm.export.serving import call_signature, load_saved_model
from tests.conftest import tiny_encoders


def test_tf_serving_layout_and_metadata(exported, trained_model):
    base, version_dir = exported
    assert version_dir == os.path.join(base, "1")
    assert os.path.isfile(os.path.join(version_dir, "saved_model.pb"))
    assert os.path.isdir(os.path.join(version_dir, "variables"))
    assert os.path.isfile(os.path.join(version_dir, "assets.extra", "tf_serving_warmup_requests"))
    meta = read_export_metadata(base)
    assert meta["features"] == {"audio": "audio", "image": "image", "text": "text"}
    assert meta["class_names"] == ["a", "b", "c"] and meta["sample_rates"] == {"audio": 16000}
    assert meta["num_samples"] == {"audio": trained_model.feature_encoders["audio"].num_samples}  # keras-mm predict reads it
    assert not [d for d in os.listdir(base) if d.startswith(".tmp")]


def test_signatures_take_raw_named_inputs_with_dynamic_batch(exported):
    from tensorflow.python.tools import saved_model_utils

    meta_graph = saved_model_utils.get_meta_graph_def(exported[1], "serve")
    sigs = meta_graph.signature_def
    assert {"serving_default", "serving_wav", "serving_numeric"} <= set(sigs)
    default = sigs["serving_default"]
    assert default.method_name == "tensorflow/serving/predict"
    dtypes = {k: tf.dtypes.as_dtype(v.dtype).name for k, v in default.inputs.items()}
    assert dtypes == {"image": "string", "text": "string", "audio": "float32"}
    assert default.inputs["image"].tensor_shape.dim[0].size == -1
    assert tf.dtypes.as_dtype(sigs["serving_wav"].inputs["audio"].dtype) == tf.string
    features = ("image", "text", "audio")
    assert {"probabilities", "class_id", "class_name", "valid", "modality_weights", *(f"{f}_present" for f in features),
            *(f"{f}_status" for f in features)} == set(default.outputs)
    strings = {"class_name", *(f"{f}_status" for f in features)}
    assert set(sigs["serving_numeric"].outputs) == set(default.outputs) - strings


def test_fresh_process_and_tf1_session_parity(trained_model, exported):
    raw = trained_model.preprocessor.example_raw(5, seed=3)
    report = keras_mm.verify_export(trained_model, exported[0], raw)
    assert report["ok"], report["per_output"]
    assert report["max_abs_diff"] <= 1e-5 and report["session_max_abs_diff"] <= 1e-5
    # and the in-memory reference is the model itself on preprocessed inputs
    direct = trained_model.predict(trained_model.preprocessor.process_batch(raw), verbose=0)
    np.testing.assert_allclose(report["expected"]["probabilities"], direct, atol=1e-6)


def test_wav_signature_parity(trained_model, exported):
    raw = trained_model.preprocessor.example_raw(3)
    wavs = [tf.audio.encode_wav(w[:, None], 16000).numpy() for w in raw["audio"]]
    report = keras_mm.verify_export(trained_model, exported[0], {**raw, "audio": wavs}, signature="serving_wav")
    assert report["ok"], report["per_output"]
    # WAV is 16-bit PCM: the waveform signature on the same clips agrees closely
    loaded = load_saved_model(exported[0])
    from_wave = call_signature(loaded, raw)["probabilities"]
    np.testing.assert_allclose(report["served"]["probabilities"], from_wave, atol=1e-3)
    # 24-bit and float WAV are decoded too (they were "undecodable" while training manifests read them)
    import io

    import soundfile

    for subtype in ("PCM_24", "FLOAT"):
        encoded = []
        for w in raw["audio"]:
            buffer = io.BytesIO()
            soundfile.write(buffer, np.asarray(w), 16000, subtype=subtype, format="WAV")
            encoded.append(buffer.getvalue())
        out = call_signature(loaded, {**raw, "audio": encoded}, "serving_wav")
        assert out["audio_status"].tolist() == [b"ok"] * 3
        np.testing.assert_allclose(out["probabilities"], from_wave, atol=1e-5 if subtype == "FLOAT" else 1e-4)


def test_versions_increment_and_existing_version_is_protected(trained_model, tmp_path):
    base = str(tmp_path / "m")
    assert next_version(base) == 1
    first = keras_mm.export_saved_model(trained_model, base)
    second = keras_mm.export_saved_model(trained_model, base)
    assert (os.path.basename(first), os.path.basename(second)) == ("1", "2")
    assert latest_version_dir(base) == second
    with pytest.raises(ValueError, match="already exists"):
        keras_mm.export_saved_model(trained_model, base, version=2)
    keras_mm.export_saved_model(trained_model, base, version=2, overwrite=True)


def test_interrupted_export_leaves_no_partial_version(trained_model, tmp_path, monkeypatch):
    """The warm-up file is written after the SavedModel itself: failing there is a late interruption."""
    import keras_mm.export.serving

    base = str(tmp_path / "m")
    written = []

    def fail(path, samples):
        written.append(os.listdir(os.path.dirname(os.path.dirname(path))))
        raise KeyboardInterrupt("simulated interruption after the SavedModel was written")

    monkeypatch.setattr(keras_mm.export.serving, "write_warmup_requests", fail)
    with pytest.raises(KeyboardInterrupt):
        keras_mm.export_saved_model(trained_model, base, warmup_samples=trained_model.preprocessor.example_raw(1))
    assert "saved_model.pb" in written[0]  # files existed (under the temporary name) ...
    assert os.listdir(base) == []  # ... and nothing is left: no partial version, no temp dir


def test_missing_modality_predicts_from_the_rest(trained_model, exported):
    loaded = load_saved_model(exported[0])
    raw = trained_model.preprocessor.example_raw(3)
    raw["image"] = list(raw["image"])
    raw["image"][1] = b""
    raw["text"] = list(raw["text"])
    raw["text"][2] = ""
    out = call_signature(loaded, raw)
    np.testing.assert_array_equal(out["image_present"], [1, 0, 1])
    np.testing.assert_array_equal(out["text_present"], [1, 1, 0])
    assert out["valid"].all()
    # features sorted: audio, image, text -> a missing modality has weight 0
    assert out["modality_weights"][1, 1] == 0.0 and out["modality_weights"][2, 2] == 0.0
    np.testing.assert_allclose(out["modality_weights"].sum(-1), 1.0, atol=1e-5)
    np.testing.assert_allclose(out["probabilities"].sum(-1), 1.0, atol=1e-5)


def test_nothing_usable_is_flagged_invalid(trained_model, exported):
    loaded = load_saved_model(exported[0])
    out = call_signature(loaded, {"image": [b"junk"], "text": [" \x00 "], "audio": np.full((1, 100), np.nan, "float32")})
    assert not out["valid"][0]
    assert np.isfinite(out["probabilities"]).all()


def test_a_batch_whose_features_differ_in_size_names_them(trained_model, exported):
    # the signature's batch is [None]: the check runs in the graph, ahead of the op that used to fail
    # ("Shapes of all inputs must match: values[0].shape = [3] != values[2].shape = [2]", naming no feature)
    loaded = load_saved_model(exported[0])
    raw = trained_model.preprocessor.example_raw(3)
    raw["text"] = raw["text"][:2]
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=r"different numbers of samples \(audio, image, text, in this order\).*\[3 3 2\]"):
        loaded.signatures["serving_default"](**{k: tf.constant(list(v) if k != "audio" else v) for k, v in raw.items()})


def test_metadata_json_is_valid(exported):
    with open(os.path.join(exported[1], "assets.extra", "keras_mm.json")) as f:
        assert json.load(f)["requires"] == ["tensorflow_text"]


def test_weights_are_stored_once(tmp_path):
    """Keras 3.15's ExportArchive wrote every weight twice (Keras variables and the tf.Variables they wrap)."""
    from keras_mm.registry import ENCODERS

    # ~1 MB of weights, so the .keras file's HDF5 overhead does not hide a duplicate.
    text = {"name": "bert", **ENCODERS.get("bert").example_config, "hidden_dim": 128, "intermediate_dim": 512}
    model = keras_mm.build_model(encoders={"text": text}, num_classes=3)
    model.save(str(tmp_path / "model.keras"))
    version_dir = keras_mm.export_saved_model(model, str(tmp_path / "export"))
    variables_dir = os.path.join(version_dir, "variables")
    stored = sum(os.path.getsize(os.path.join(variables_dir, f)) for f in os.listdir(variables_dir))
    weight_bytes = sum(v.numpy().nbytes for v in model.weights)
    assert stored <= 1.1 * os.path.getsize(tmp_path / "model.keras"), (stored, os.path.getsize(tmp_path / "model.keras"))
    assert stored <= 1.1 * weight_bytes, (stored, weight_bytes)
    loaded = load_saved_model(version_dir)
    assert len(loaded.variables) == len(model.variables)
    assert len(loaded.trainable_variables) == len(model.trainable_variables)
    expected = sorted(float(np.sum(v.numpy())) for v in model.variables)
    np.testing.assert_allclose(sorted(float(np.sum(v.numpy())) for v in loaded.variables), expected, rtol=1e-6)


def test_mistaken_exports_and_verifications_say_what_to_do(trained_model, exported, tmp_path):
    # a plain Keras model (or a DualEncoder) has no fusion/preprocessor: was AttributeError: ... 'fusion'
    plain = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    with pytest.raises(ValueError, match=r"Sequential cannot be exported with keras_mm's serving signatures"):
        keras_mm.export_saved_model(plain, str(tmp_path / "plain"))
    # WAV bytes on the waveform signature: was a ValueError quoting every byte of the files
    raw = trained_model.preprocessor.example_raw(2)
    wavs = [tf.audio.encode_wav(w[:, None], 16000).numpy() for w in raw["audio"]]
    with pytest.raises(ValueError, match=r"^signature 'serving_default': audio takes numbers .*got bytes or text "
                                         r"\(WAV bytes go to signature='serving_wav'\)\.$"):
        keras_mm.verify_export(trained_model, exported[0], {**raw, "audio": wavs})


def test_each_signature_is_traced_once(tmp_path, monkeypatch):
    # ExportArchive.write_out traced every endpoint twice (once to list variables, once in the save context).
    from keras_mm.export.signatures import ServingFunctions

    calls = {"raw": 0, "numeric": 0}
    raw, numeric = ServingFunctions.raw, ServingFunctions.numeric

    def counting_raw(self, inputs):
        calls["raw"] += 1
        return raw(self, inputs)

    def counting_numeric(self, inputs):
        calls["numeric"] += 1
        return numeric(self, inputs)

    monkeypatch.setattr(ServingFunctions, "raw", counting_raw)
    monkeypatch.setattr(ServingFunctions, "numeric", counting_numeric)
    model = keras_mm.build_model(encoders=tiny_encoders(("small_cnn", "mfcc_cnn")), num_classes=3)
    version_dir = keras_mm.export_saved_model(model, str(tmp_path / "m"))
    # raw: the eager warm-up call, then serving_default and serving_wav; numeric: serving_numeric
    assert calls == {"raw": 3, "numeric": 1}
    loaded = tf.saved_model.load(version_dir)
    assert sorted(loaded.signatures) == ["serving_default", "serving_numeric", "serving_wav"]
    raw_batch = model.preprocessor.example_raw(2)
    served = loaded.signatures["serving_default"](**{k: tf.constant(v) for k, v in raw_batch.items()})
    expected = model.predict(model.preprocessor.process_batch(raw_batch), verbose=0)
    np.testing.assert_allclose(served["probabilities"].numpy(), expected, atol=1e-5)
