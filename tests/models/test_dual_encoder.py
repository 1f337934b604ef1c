import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_mm
from keras_mm.models import info_nce, retrieval_metrics
from keras_mm.testing import run_serialization_test

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def paired_data(n):
    """Images and tones that share an index: learnable pairs (a dark square at a place of its own on a white page)."""
    image = np.full((n, 16, 16, 3), 255.0, "float32")
    for i in range(n):
        row, column = 4 * (i // 4 % 4), 4 * (i % 4)
        image[i, row:row + 4, column:column + 4] = np.array([40.0 * (i % 3), 60.0, 120.0 * (i // 16 % 2)])
    t = np.arange(4000) / 16000
    audio = np.stack([0.3 * np.sin(2 * np.pi * (200 + 150 * i) * t) for i in range(n)]).astype("float32")
    return {"image": image, "audio": audio}


def tiny():
    keras.utils.set_random_seed(0)
    return keras_mm.build_dual_encoder(
        a={"image": {"name": "small_cnn", "image_size": 16, "filters": [8]}},
        b={"audio": {"name": "mfcc_cnn", "num_samples": 4000, "filters": [8]}}, embed_dim=8,
    )


def numpy_info_nce(a, b, scale):
    def ce(logits):
        logits = logits - logits.max(1, keepdims=True)
        log_probs = logits - np.log(np.exp(logits).sum(1, keepdims=True))
        return -np.mean(np.diag(log_probs))

    return 0.5 * (ce(scale * a @ b.T) + ce(scale * b @ a.T))


def test_info_nce_matches_numpy():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(6, 4)).astype("float32"), rng.normal(size=(6, 4)).astype("float32")
    a /= np.linalg.norm(a, axis=1, keepdims=True)
    b /= np.linalg.norm(b, axis=1, keepdims=True)
    assert float(info_nce(a, b, 10.0)) == pytest.approx(numpy_info_nce(a, b, 10.0), rel=1e-5)
    # the gathered form (replica 1 of 2) scores local rows against all columns
    half = float(info_nce(a[3:], b[3:], 10.0, replica_id=1, gathered_a=a, gathered_b=b))
    first = float(info_nce(a[:3], b[:3], 10.0, replica_id=0, gathered_a=a, gathered_b=b))
    assert (half + first) / 2 == pytest.approx(numpy_info_nce(a, b, 10.0), rel=1e-5)


def test_retrieval_metrics():
    a = np.eye(4)
    b = np.eye(4)[[0, 1, 3, 2]]
    metrics = retrieval_metrics(a, b, ks=(1, 2))
    assert metrics["a_to_b_recall@1"] == 0.5 and metrics["b_to_a_recall@1"] == 0.5


def test_outputs_are_normalised_and_temperature_clipped():
    model = tiny()
    out = model.predict(paired_data(4), verbose=0)
    np.testing.assert_allclose(np.linalg.norm(out["a_embedding"], axis=1), 1.0, atol=1e-5)
    assert out["logit_scale"][0] == pytest.approx(1 / 0.07, rel=1e-4)
    model.logit_scale.log_scale.assign(10.0)
    assert model.predict(paired_data(2), verbose=0)["logit_scale"][0] == pytest.approx(100.0)


def test_training_aligns_the_pairs_and_reloads():
    model = tiny()
    x = paired_data(16)
    ds = tf.data.Dataset.from_tensor_slices(x).batch(16)
    before = model.retrieval_metrics(ds)
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    history = model.fit(ds, epochs=40, verbose=0)
    assert history.history["loss"][-1] < 0.7 * history.history["loss"][0]
    after = model.retrieval_metrics(ds)
    assert after["a_to_b_recall@1"] > before["a_to_b_recall@1"] and after["a_to_b_recall@5"] >= 0.75
    run_serialization_test(model, x)


def test_preprocessor_gives_the_model_inputs():
    model = tiny()
    numeric = model.preprocessor.process_batch(model.preprocessor.example_raw(3))
    assert set(numeric) == set(model.input)


def test_loss_identical_with_one_and_two_replicas(tmp_path):
    outputs = {}
    for replicas in ("1", "2"):
        result = subprocess.run(
            [sys.executable, "-m", "tests.models.dual_encoder_script", str(tmp_path / f"w{replicas}.npy"), replicas],
            cwd=REPO, capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}, timeout=600,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        outputs[replicas] = result.stdout
    assert "replicas 2" in outputs["2"]
    loss_1 = [float(v) for v in outputs["1"].split("loss [")[1].split("]")[0].split(",")]
    loss_2 = [float(v) for v in outputs["2"].split("loss [")[1].split("]")[0].split(",")]
    np.testing.assert_allclose(loss_2, loss_1, rtol=1e-5)
    np.testing.assert_allclose(np.load(tmp_path / "w2.npy"), np.load(tmp_path / "w1.npy"), atol=1e-5)


def test_bad_arguments():
    with pytest.raises(ValueError, match="expected one feature"):
        keras_mm.build_dual_encoder(a={"image": "small_cnn", "x": "small_cnn"}, b={"audio": "mfcc_cnn"})
    with pytest.raises(ValueError, match="different feature names"):
        keras_mm.build_dual_encoder(a={"image": "small_cnn"}, b={"image": "small_cnn"})


def test_fit_on_a_dataset_traces_once_and_does_not_warn_about_shuffle():
    import warnings

    model = keras_mm.build_dual_encoder(
        a={"image": {"name": "small_cnn", "image_size": 16, "filters": [8]}},
        b={"text": {"name": "lstm", "vocabulary": ["a", "dog", "cat", "sat"], "units": 8}}, embed_dim=16)
    x = model.preprocessor.process_batch(model.preprocessor.example_raw(10))
    traced = []
    train_step = model.train_step
    model.train_step = lambda data: traced.append(1) or train_step(data)
    model.compile(optimizer="adam")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = model.fit(tf.data.Dataset.from_tensor_slices(dict(x)).batch(4), epochs=2, verbose=0)
    assert len(history.history["loss"]) == 2
    assert len(traced) == 1
    assert not [w for w in caught if "shuffle" in str(w.message)]
