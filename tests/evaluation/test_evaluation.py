import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from sklearn import metrics as skm

import keras_mm
from keras_mm.evaluation import confusion_matrix, precision_recall_f1, roc_auc
from tests.conftest import tiny_encoders


def test_metrics_match_sklearn():
    rng = np.random.default_rng(0)
    y, p = rng.integers(0, 4, 200), rng.integers(0, 4, 200)
    matrix = confusion_matrix(y, p, 4)
    np.testing.assert_array_equal(matrix, skm.confusion_matrix(y, p, labels=range(4)))
    precision, recall, f1, support = precision_recall_f1(matrix)
    ref = skm.precision_recall_fscore_support(y, p, labels=range(4), zero_division=0)
    for ours, theirs in zip((precision, recall, f1, support), ref):
        np.testing.assert_allclose(ours, theirs)
    labels, scores = rng.integers(0, 2, 300), np.round(rng.random(300), 1)  # rounded: ties
    assert roc_auc(labels, scores) == pytest.approx(skm.roc_auc_score(labels, scores))
    assert np.isnan(roc_auc([1, 1], [0.2, 0.3]))


@pytest.fixture(scope="module")
def trained():
    keras.utils.set_random_seed(0)
    model = keras_mm.build_model(encoders=tiny_encoders(), fusion={"name": "attention", "projection_dim": 8}, num_classes=3)
    raw = model.preprocessor.example_raw(24)
    x = {k: v.numpy() for k, v in model.preprocessor.process_batch(raw).items()}
    y = np.arange(24) % 3
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(8)
    model, history = keras_mm.train(model, ds, ds, epochs=6, strategy=None, learning_rate=5e-3, verbose=0)
    return model, ds, history, y


def test_evaluate_report_table_and_plots(trained, tmp_path):
    model, ds, history, y = trained
    report = keras_mm.evaluate(model, ds, class_names=["a", "b", "c"], output_dir=str(tmp_path), history=history, verbose=False)
    predicted = model.predict(ds, verbose=0).argmax(-1)
    assert report.metrics["accuracy"] == pytest.approx((predicted == y).mean())
    assert report.metrics["macro_f1"] == pytest.approx(skm.f1_score(y, predicted, average="macro", zero_division=0))
    np.testing.assert_array_equal(report.confusion, skm.confusion_matrix(y, predicted))
    table = str(report)
    assert "precision" in table and "macro avg" in table and "\na " in table
    assert set(report.modality_weights["overall"]) == {"audio", "image", "text"}
    for name in ("confusion_matrix.png", "modality_weights.png", "training_curves.png", "report.json"):
        assert os.path.getsize(tmp_path / name) > 1000 or name == "report.json"
    assert report.to_dict()["confusion_matrix"] == report.confusion.tolist()


def test_binary_report_has_roc_auc():
    keras.utils.set_random_seed(0)
    model = keras_mm.build_model(encoders=tiny_encoders(("small_cnn",)), head="binary")
    x = {k: v.numpy() for k, v in model.preprocessor.process_batch(model.preprocessor.example_raw(10)).items()}
    ds = tf.data.Dataset.from_tensor_slices((x, np.arange(10) % 2)).batch(5)
    report = keras_mm.evaluate(model, ds, verbose=False)
    scores = model.predict(ds, verbose=0)[:, 0]
    assert report.metrics["roc_auc"] == pytest.approx(skm.roc_auc_score(np.arange(10) % 2, scores))


def test_robustness_removal_uses_the_missing_modality_path(trained, tmp_path):
    model, ds, _, y = trained
    report = keras_mm.evaluate_robustness(model, ds, noise_levels=(0.0, 0.5), output_dir=str(tmp_path), verbose=False)
    x = {k: np.concatenate([b[0][k].numpy() for b in ds]) for k in model.input}
    without_image = model.predict({**x, "image_present": np.zeros(len(y), "float32")}, verbose=0).argmax(-1)
    assert report.removed["image"] == pytest.approx((without_image == y).mean())
    assert report.noise["text"][0.0] == pytest.approx(report.baseline)
    assert "without audio" in str(report) and "noisy image" in str(report)
    assert os.path.getsize(tmp_path / "robustness.png") > 1000


def test_class_names_that_contradict_the_model_are_refused():
    # they used to relabel the per-class table silently (export_saved_model refused the same list)
    model = keras_mm.build_model(encoders=tiny_encoders(("small_cnn",)), class_names=["cat", "dog", "emu"])
    x = model.preprocessor.process_batch(model.preprocessor.example_raw(6))
    data = tf.data.Dataset.from_tensors((x, np.arange(6) % 3))
    with pytest.raises(ValueError, match=r"class_names=\['emu', 'dog', 'cat'\] differ from the model's class_names"):
        keras_mm.evaluate(model, data, class_names=["emu", "dog", "cat"], verbose=False)
    assert [row["name"] for row in keras_mm.evaluate(model, data, verbose=False).per_class] == ["cat", "dog", "emu"]
