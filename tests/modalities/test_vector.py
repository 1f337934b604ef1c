"""The built-in vector modality and the ``precomputed`` encoder: cached embeddings as a feature."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_mm
from keras_mm.preprocessing import VectorPreprocessor
from keras_mm.preprocessing.status import status_names


def test_registered_guessed_from_npy_and_frozen_by_default():
    assert "vector" in keras_mm.list_modalities() and keras_mm.list_encoders("vector") == ["precomputed"]
    assert keras_mm.data.guess_modality(["a.npy", "b.NPY"]) == "vector"
    keras_mm.testing.run_encoder_test(keras_mm.encoders.PrecomputedEncoder, {"dim": 8})
    model = keras_mm.build_model(encoders={"clip": {"name": "precomputed", "dim": 6}, "audio": "mfcc_cnn"}, num_classes=3)
    assert not model.feature_encoders["clip"].trainable and sorted(model.feature_norms) == ["clip"]  # normalised like a frozen encoder
    with pytest.raises(ValueError, match=r"dim=0: the precomputed vector's size, a positive integer"):
        keras_mm.encoders.PrecomputedEncoder(dim=0)


def test_each_unusable_vector_is_marked_missing_with_its_reason():
    pre = VectorPreprocessor("clip", dim=3)
    good = [0.5, -1.0, 2.0]
    ragged = tf.ragged.constant([good, [], [0.0, 0.0, 0.0], [1.0, np.nan, 0.0], [1.0, 2.0], [1.0, 2.0, 3.0, 4.0]])
    out, status = pre.process_batch_with_status(ragged)
    assert status_names(status).numpy().tolist() == [b"ok", b"empty", b"empty", b"not_finite_or_too_loud", b"wrong_size",
                                                     b"wrong_size"]
    np.testing.assert_array_equal(out["clip"].numpy(), [good] + [[0.0] * 3] * 5)  # the vector itself, no scaling
    np.testing.assert_array_equal(out["clip_present"].numpy(), [1, 0, 0, 0, 0, 0])
    _, dense_status = pre.process_batch_with_status(tf.ones([2, 4]))  # a dense batch of the wrong width
    assert status_names(dense_status).numpy().tolist() == [b"wrong_size", b"wrong_size"]


def _manifest(tmp_path, bad=None):
    rng = np.random.default_rng(0)
    lines = ["emb,label,split"]
    for i in range(8):
        np.save(tmp_path / f"v{i}.npy", rng.normal(size=5).astype("float32"))
        lines.append(f"v{i}.npy,{'ab'[i % 2]},train")
    if bad is not None:
        bad(tmp_path / "bad.npy")
        lines.append("bad.npy,a,train")
    (tmp_path / "m.csv").write_text("\n".join(lines) + "\n")
    return str(tmp_path / "m.csv")


def test_manifest_vectors_reach_the_model_unchanged(tmp_path):
    model = keras_mm.build_model(encoders={"emb": {"name": "precomputed", "dim": 5}}, num_classes=2)
    ds = keras_mm.data.from_manifest(_manifest(tmp_path), model=model, batch_size=8)
    x, _ = next(iter(ds))
    expected = np.stack([np.load(tmp_path / f"v{i}.npy") for i in range(8)])
    np.testing.assert_array_equal(x["emb"].numpy(), expected)
    assert x["emb_present"].numpy().all()


@pytest.mark.parametrize("bad, message", [
    (lambda path: np.save(path, np.ones(4, "float32")), r"line 10: emb='bad.npy' .* cannot be used: wrong_size \(it does not have the size the model takes\)"),
    (lambda path: np.save(path, np.ones((2, 5), "float32")), r"line 10: cannot load emb='bad.npy'.*shape \(2, 5\).*1-D"),
    (lambda path: path.write_bytes(b"not numpy"), r"line 10: cannot load emb='bad.npy'.*as a .npy array"),
])
def test_a_bad_vector_in_a_training_manifest_is_an_error_naming_the_row(tmp_path, bad, message):
    model = keras_mm.build_model(encoders={"emb": {"name": "precomputed", "dim": 5}}, num_classes=2)
    ds = keras_mm.data.from_manifest(_manifest(tmp_path, bad), model=model, batch_size=4)
    with pytest.raises((ValueError, tf.errors.InvalidArgumentError), match=message):
        for _ in ds:
            pass


def test_export_isolates_bad_vectors_and_matches_keras(tmp_path):
    keras.utils.set_random_seed(0)
    model = keras_mm.build_model(encoders={"emb": {"name": "precomputed", "dim": 4},
                                           "text": {"name": "lstm", "vocabulary": ["a", "cat"], "sequence_length": 4}},
                                 num_classes=3)
    export = keras_mm.export_saved_model(model, str(tmp_path / "served"))
    samples = {"emb": np.array([[0.1, 0.2, 0.3, 0.4], [0.0] * 4, [np.inf, 0.0, 0.0, 1.0]], "float32"),
               "text": ["a cat", "a cat", "a cat"]}
    check = keras_mm.verify_export(model, export, samples)
    assert check["ok"], check
    assert check["served"]["emb_status"].tolist() == [b"ok", b"empty", b"not_finite_or_too_loud"]
    assert check["served"]["valid"].all()  # the text still serves the samples whose vector is missing
    restored = keras.models.load_model(_saved(model, tmp_path))
    assert not restored.feature_encoders["emb"].trainable and restored.feature_encoders["emb"].dim == 4


def _saved(model, tmp_path):
    path = str(tmp_path / "m.keras")
    model.save(path)
    return path
