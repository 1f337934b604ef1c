"""keras_mm.train's head combination: the fit checked against NumPy, the trained model saved, served and distributed."""

import itertools
import json

import numpy as np
import pytest
import tensorflow as tf

import keras
import keras_mm
from keras_mm.training.head_combination import MIN_COMBINATION_ROWS, combination_loss, fit_combination_weights
from tests.training.test_trainer import finish, free_port, script

ENCODERS = {"image": {"name": "small_cnn", "image_size": 16, "filters": [4, 8]},
            "audio": {"name": "mfcc_cnn", "num_samples": 4000, "filters": [8]}}
CONFIG = keras_mm.ModelConfig(encoders=ENCODERS, fusion={"name": "concat", "projection_dim": 8}, num_classes=3)


def log_softmax(z):
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def branches(seed=0, rows=120, classes=3):
    """Log-probabilities of three branches: one weak, one informative, one noisy; and the labels."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, rows)
    onehot = np.eye(classes)[labels]
    weak = log_softmax(rng.normal(size=(rows, classes)) + 0.5 * onehot)
    informative = log_softmax(rng.normal(size=(rows, classes)) + 2.0 * onehot)
    noisy = log_softmax(2 * rng.normal(size=(rows, classes)) + 0.5 * onehot)
    return np.stack([weak, informative, noisy], axis=-1), labels


def test_combination_loss_and_gradient_match_numpy():
    log_probs, labels = branches()
    w = np.array([0.4, 1.3, 0.2])
    loss, grad = combination_loss(w, log_probs, labels)
    z = log_softmax(log_probs @ w)
    assert loss == pytest.approx(-z[np.arange(len(labels)), labels].mean(), rel=1e-12)
    step = 1e-6
    numeric = [(combination_loss(w + step * e, log_probs, labels)[0] - combination_loss(w - step * e, log_probs, labels)[0])
               / (2 * step) for e in np.eye(3)]
    np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-8)


def test_fitted_weights_are_the_minimum_of_a_grid_search():
    log_probs, labels = branches(seed=3)
    weights, before, after = fit_combination_weights(log_probs, labels)
    grid = np.array(list(itertools.product(np.arange(0, 3.01, 0.1), repeat=3)))
    losses = [combination_loss(w, log_probs, labels)[0] for w in grid]
    best = grid[int(np.argmin(losses))]
    assert after <= min(losses) + 1e-9
    np.testing.assert_allclose(weights, best, atol=0.1)
    assert weights.min() >= 0 and weights[1] > weights[0] and weights[1] > weights[2]  # the informative branch leads
    assert before == pytest.approx(combination_loss(np.array([1.0, 0, 0]), log_probs, labels)[0])
    assert after < before


def test_the_fused_head_alone_is_kept_when_nothing_fits_better():
    log_probs, labels = branches(seed=4)
    perfect = np.log(np.where(np.eye(3)[labels] == 1, 1 - 2e-7, 1e-7))
    log_probs[..., 0] = perfect
    weights, before, after = fit_combination_weights(log_probs, labels)
    assert after <= before
    assert weights[0] >= 1.0  # a perfect first branch is at least kept whole


def data_fn(rows, seed=1):
    def data(model):
        x = model.preprocessor.process_batch(model.preprocessor.example_raw(rows, seed=seed))
        return tf.data.Dataset.from_tensor_slices((x, np.arange(rows) % 3)).batch(16)
    return data


def test_train_fits_the_combination_on_validation_and_serves_it(tmp_path, capsys):
    keras.utils.set_random_seed(0)
    model, history = keras_mm.train(CONFIG, data_fn(32), data_fn(64, seed=2), epochs=2, strategy=None, verbose=2)
    layer = model.head_combination
    result = history.head_combination
    assert result["fitted"] and result["rows"] == 64 and result["loss_after"] <= result["loss_before"]
    weights = layer.combination_weights.numpy()
    np.testing.assert_allclose(weights, list(result["weights"].values()), rtol=1e-6)
    assert list(result["weights"]) == ["output", "aux_audio", "aux_image"]
    assert "Combined the fused head with the unimodal heads on 64 validation rows" in capsys.readouterr().out
    # the loss it reports is the served model's validation loss
    val = data_fn(64, seed=2)(model)
    probs = np.concatenate([model.predict(x, verbose=0) for x, _ in val])
    labels = np.concatenate([y.numpy() for _, y in val])
    assert -np.log(probs[np.arange(64), labels]).mean() == pytest.approx(result["loss_after"], rel=1e-4)
    # saved, reloaded and exported with its weights
    model.save(tmp_path / "m.keras")
    again = keras.saving.load_model(tmp_path / "m.keras")
    np.testing.assert_array_equal(again.head_combination.combination_weights.numpy(), weights)
    raw = model.preprocessor.example_raw(6, seed=5)
    keras_mm.export_saved_model(model, tmp_path / "served")
    served = keras_mm.serving.call_signature(keras_mm.serving.load_saved_model(tmp_path / "served"), raw)
    expected = model.predict(model.preprocessor.process_batch(raw), verbose=0)
    np.testing.assert_allclose(served["probabilities"], expected, atol=1e-5)
    assert not any(k.startswith("aux_") or k == "head_output" for k in served)
    # training again starts from the fused head alone, and combine_heads=False leaves it there
    keras_mm.train(model, data_fn(32), data_fn(64, seed=2), epochs=1, strategy=None, verbose=0, combine_heads=False)
    np.testing.assert_array_equal(layer.combination_weights.numpy(), [1, 0, 0])


def test_combine_heads_auto_needs_enough_rows_and_bad_values_are_named(capsys):
    few = MIN_COMBINATION_ROWS - 2
    model, history = keras_mm.train(CONFIG, data_fn(16), data_fn(few), epochs=1, strategy=None, verbose=2)
    assert not history.head_combination["fitted"]
    np.testing.assert_array_equal(model.head_combination.combination_weights.numpy(), [1, 0, 0])
    assert f"{few} validation rows are too few" in capsys.readouterr().out
    model, history = keras_mm.train(CONFIG, data_fn(16), data_fn(few), epochs=1, strategy=None, verbose=0, combine_heads=True)
    assert history.head_combination["fitted"]
    with pytest.raises(ValueError, match="combine_heads='yes' is not supported. Allowed: 'auto', True, False"):
        keras_mm.train(CONFIG, data_fn(16), epochs=1, strategy=None, verbose=0, combine_heads="yes")
    with pytest.raises(ValueError, match="combine_heads=True needs validation_data"):
        keras_mm.train(CONFIG, data_fn(16), epochs=1, strategy=None, verbose=0, combine_heads=True)
    model, history = keras_mm.train(CONFIG, data_fn(16), epochs=1, strategy=None, verbose=0, balance=None)
    assert model.head_combination is None and history.head_combination is None  # no auxiliary heads: nothing to combine


def test_head_combination_under_two_replicas_matches_one_device(tmp_path):
    args = ["--balance", "auxiliary", "--combine-heads", "--epochs", "2"]
    finish(script(tmp_path / "one.npy", *args))
    output = finish(script(tmp_path / "two.npy", *args, "--strategy", "mirrored", "--split-cpu", "2"))
    assert "replicas 2" in output and "Combined the fused head" in output
    one, two = np.load(tmp_path / "one.npy"), np.load(tmp_path / "two.npy")
    assert np.abs(two - one).max() <= 1e-5


def test_head_combination_under_two_workers_matches_one_process(tmp_path):
    args = ["--balance", "auxiliary", "--combine-heads", "--epochs", "2"]
    finish(script(tmp_path / "one.npy", *args))
    workers = [f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"]
    processes = [script(tmp_path / f"w{i}.npy", *args, "--strategy", "multi_worker", env={"TF_CONFIG": json.dumps(
        {"cluster": {"worker": workers}, "task": {"type": "worker", "index": i}})}) for i in range(2)]
    outputs = [finish(p) for p in processes]
    assert all("replicas 2" in o and "Combined the fused head" in o for o in outputs)
    w0, w1 = np.load(tmp_path / "w0.npy"), np.load(tmp_path / "w1.npy")
    np.testing.assert_array_equal(w0, w1)  # every worker fits the same weights
    assert np.abs(w0 - np.load(tmp_path / "one.npy")).max() <= 1e-5


def test_a_checkpoint_from_before_the_head_combination_resumes(tmp_path, monkeypatch, capsys):
    import keras_mm.models.builder as builder

    config = keras_mm.ModelConfig.from_dict({**CONFIG.to_dict(), "auxiliary_heads": True})
    # the model as keras_mm built it before head combinations existed: auxiliary heads, no combination
    with monkeypatch.context() as patch:
        patch.setattr(builder, "MultimodalModel",
                      lambda *args, **kwargs: keras_mm.models.MultimodalModel(*args, **{**kwargs, "head_combination": False}))
        keras.utils.set_random_seed(0)
        older, _ = keras_mm.train(config, data_fn(16), epochs=1, strategy=None, verbose=0, checkpoint_dir=tmp_path)
    assert older.head_combination is None
    keras.utils.set_random_seed(1)
    resumed, history = keras_mm.train(config, data_fn(16), epochs=1, strategy=None, verbose=2, checkpoint_dir=tmp_path)
    assert "Resuming from" in capsys.readouterr().out and history.epoch == [0]
    np.testing.assert_array_equal(resumed.head_combination.combination_weights.numpy(), [1, 0, 0])
    older_weights = {w.path: w.numpy() for w in older.weights}
    for w in resumed.weights:  # every other weight came from the checkpoint
        if not w.path.startswith("head_combination/"):
            np.testing.assert_array_equal(w.numpy(), older_weights[w.path], err_msg=w.path)
    # a checkpoint that lacks anything else is still refused
    keras_mm.train(CONFIG, data_fn(16), epochs=1, strategy=None, verbose=0, balance=None, checkpoint_dir=tmp_path / "other")
    with pytest.raises(ValueError, match="checkpoint"):
        keras_mm.train(config, data_fn(16), epochs=2, strategy=None, verbose=0, checkpoint_dir=tmp_path / "other")
