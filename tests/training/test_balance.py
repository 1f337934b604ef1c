"""Auxiliary heads and the balance methods of keras_mm.train: formulas checked against NumPy, distribution, reload."""

import numpy as np
import pytest
import tensorflow as tf

import keras
import keras_mm
from keras_mm.training.balance import (
    AuxiliaryLossSteps,
    GradientBlendingSteps,
    OGMGESteps,
    blend_estimate,
    blending_weights,
    modulation_coefficients,
)
from tests.training.test_trainer import finish, script

ENCODERS = {"image": {"name": "small_cnn", "image_size": 16, "filters": [4, 8]},
            "audio": {"name": "mfcc_cnn", "num_samples": 4000, "filters": [8]}}


TINY_TRANSFORMER = {"hidden_dim": 8, "num_layers": 1, "num_heads": 2, "intermediate_dim": 16}


def build(**kwargs):
    keras.utils.set_random_seed(0)
    return keras_mm.build_model(encoders=ENCODERS, fusion={"name": "concat", "projection_dim": 8}, num_classes=3, **kwargs)


def batch(model, n=8, seed=1):
    x = model.preprocessor.process_batch(model.preprocessor.example_raw(n, seed=seed))
    return x, tf.constant(np.arange(n) % 3)


def sparse_ce(y, p):
    return -np.log(np.asarray(p)[np.arange(len(y)), np.asarray(y)])


def test_auxiliary_heads_are_extras_not_served_and_survive_reload(tmp_path):
    model = build(auxiliary_heads=True)
    x, _ = batch(model, 4)
    outputs = model.extras_model()(x)
    assert {"aux_audio", "aux_image"} <= set(outputs)
    assert outputs["aux_image"].shape == (4, 3)
    assert model(x).shape == (4, 3)  # the model itself still returns the head's output only
    served = keras_mm.export.ServingFunctions(model).numeric(x)
    assert not any(k.startswith("aux_") for k in served)
    plain = build()
    assert len(model.trainable_variables) == len(plain.trainable_variables) + 4  # 2 heads x (kernel, bias)
    model.save(tmp_path / "m.keras")
    reloaded = keras.saving.load_model(tmp_path / "m.keras")
    again = reloaded.extras_model()(x)
    for key in ("aux_audio", "aux_image", "output"):
        np.testing.assert_allclose(again[key], outputs[key], atol=1e-6)
    assert keras_mm.ModelConfig(encoders=ENCODERS, num_classes=3, auxiliary_heads=True).auxiliary_heads
    with pytest.raises(ValueError, match="auxiliary_heads=True needs a head"):
        keras_mm.ModelConfig(encoders=ENCODERS, head=None, auxiliary_heads=True)


def test_auxiliary_loss_is_fused_plus_weighted_present_unimodal_losses():
    model = build(auxiliary_heads=True)
    x, y = batch(model)
    x["image_present"] = tf.constant([1, 1, 0, 1, 1, 1, 0, 1], tf.float32)  # two samples without an image
    steps = AuxiliaryLossSteps(model, keras.optimizers.SGD(0.0), 8, weight=0.3)
    outputs = steps.forward_model(x, training=False)
    loss = float(steps.compute_loss(x, y, outputs))
    present = x["image_present"].numpy()
    expected = (sparse_ce(y, outputs["output"]).mean() + 0.3 * sparse_ce(y, outputs["aux_audio"]).mean()
                + 0.3 * (sparse_ce(y, outputs["aux_image"]) * present).sum() / 8)
    assert loss == pytest.approx(expected, rel=1e-5)


def test_blending_weights_follow_generalisation_over_squared_overfitting():
    before = {"output": (1.0, 1.3), "aux_audio": (1.1, 1.2), "aux_image": (0.9, 1.4)}
    after = {"output": (0.6, 1.0), "aux_audio": (0.9, 1.15), "aux_image": (0.4, 1.45)}
    raw = {}
    for k in before:
        g = before[k][1] - after[k][1]
        o = (after[k][1] - after[k][0]) - (before[k][1] - before[k][0])
        raw[k] = max(g, 0.0) / o**2
    total = sum(raw.values())
    weights = blending_weights(before, after)
    for k in raw:
        assert weights[k] == pytest.approx(raw[k] / total)
    assert sum(weights.values()) == pytest.approx(1.0)
    # aux_image's held-out loss rose (1.4 -> 1.45): it only overfits, so no weight (|G/O²| gave it 0.03)
    assert weights["aux_image"] == 0.0 and weights["output"] > 0 and weights["aux_audio"] > 0
    assert blending_weights(before, before) == {k: pytest.approx(1 / 3) for k in before}


def test_blend_estimate_damps_each_estimate_and_keeps_the_fused_output_at_its_floor():
    previous = {"output": 0.4, "aux_audio": 0.3, "aux_image": 0.3}
    estimate = {"output": 0.2, "aux_audio": 0.7, "aux_image": 0.1}
    assert blend_estimate(previous, estimate, 0.0, 0.0) == pytest.approx(estimate)
    damped = blend_estimate(previous, estimate, 0.25, 0.0)
    assert damped == pytest.approx({k: 0.25 * previous[k] + 0.75 * estimate[k] for k in previous})
    floored = blend_estimate(previous, estimate, 0.25, 0.5)
    # output raised to 0.5, the unimodal heads share the other half in their damped proportions
    rest = damped["aux_audio"] + damped["aux_image"]
    assert floored == pytest.approx({"output": 0.5, "aux_audio": 0.5 * damped["aux_audio"] / rest,
                                     "aux_image": 0.5 * damped["aux_image"] / rest})
    assert blend_estimate(previous, estimate, 0.25, 0.1) == pytest.approx(damped)  # above the floor: unchanged


def test_gradient_blending_reestimates_weights_and_uses_them_in_the_loss():
    model = build(auxiliary_heads=True)
    x, y = batch(model)
    data = tf.data.Dataset.from_tensors((x, y))
    steps = GradientBlendingSteps(model, keras.optimizers.Adam(0.05), 8, every=2, smoothing=0.25, min_output_weight=0.3)
    assert steps.weights == pytest.approx({"output": 1 / 3, "aux_audio": 1 / 3, "aux_image": 1 / 3})
    steps.begin_training(data, data)
    reference = steps._reference
    for epoch in range(2):
        steps.train_epoch(data)
        message = steps.end_epoch(epoch, data, data)
        assert (message is None) == (epoch == 0)
    current = {b: (steps.measure(data)[b],) * 2 for b in steps.branch_names}  # train and held-out are the same data
    expected = blend_estimate({b: 1 / 3 for b in steps.branch_names}, blending_weights(reference, current), 0.25, 0.3)
    assert steps.weights == pytest.approx(expected, rel=1e-4)
    assert steps.weights != pytest.approx({b: 1 / 3 for b in steps.branch_names})
    outputs = steps.forward_model(x, training=False)
    losses = {k: float(v) for k, v in steps.branch_losses(x, y, outputs).items()}
    assert float(steps.compute_loss(x, y, outputs)) == pytest.approx(sum(steps.weights[b] * losses[b] for b in losses), rel=1e-5)


def test_modulation_coefficients_slow_down_only_the_dominant_modality():
    np.testing.assert_allclose(modulation_coefficients([6.0, 2.0], 0.4), [1 - np.tanh(0.4 * 3.0), 1.0], rtol=1e-6)
    np.testing.assert_allclose(modulation_coefficients([2.0, 6.0], 0.4), [1.0, 1 - np.tanh(0.4 * 3.0)], rtol=1e-6)
    # three modalities: each against the mean of the others
    scores = np.array([6.0, 2.0, 4.0])
    ratios = scores / np.array([3.0, 5.0, 4.0])
    expected = np.where(ratios > 1, 1 - np.tanh(0.5 * ratios), 1.0)
    np.testing.assert_allclose(modulation_coefficients(scores, 0.5), expected, rtol=1e-6)


def test_ogm_ge_scales_each_encoders_gradients_and_adds_noise_of_the_gradients_std():
    model = build(auxiliary_heads=True)
    x, y = batch(model)
    variables = model.trainable_variables
    ogm = OGMGESteps(model, keras.optimizers.SGD(0.0), 8, alpha=0.8, noise=False)
    with tf.GradientTape() as tape:
        outputs = ogm.forward_model(x, training=True)
        loss = ogm.compute_loss(x, y, outputs)
    grads = tape.gradient(loss, variables)
    scores = [float(np.sum(np.asarray(outputs[f"aux_{k}"])[np.arange(8), y.numpy()])) for k in ("audio", "image")]
    coefficients = np.where(np.array(scores) / np.array(scores[::-1]) > 1,
                            1 - np.tanh(0.8 * np.array(scores) / np.array(scores[::-1])), 1.0)
    np.testing.assert_allclose(ogm.coefficients, coefficients, rtol=1e-5)
    assert coefficients.min() < 1.0
    transformed = ogm.transform_gradients(grads, variables)
    owners = {id(v): i for i, k in enumerate(("audio", "image")) for v in model.feature_encoders[k].trainable_variables}
    assert owners
    for g, t, v in zip(grads, transformed, variables):
        factor = coefficients[owners[id(v)]] if id(v) in owners else 1.0
        np.testing.assert_allclose(t, np.asarray(g) * factor, rtol=1e-5, atol=1e-8)

    noisy = OGMGESteps(model, keras.optimizers.SGD(0.0), 8, alpha=0.8, noise=True)
    noisy.compute_loss(x, y, outputs)
    transformed = noisy.transform_gradients(grads, variables)
    largest = max((i for i, v in enumerate(variables) if id(v) in owners), key=lambda i: np.size(grads[i]))
    added = np.asarray(transformed[largest]) - np.asarray(grads[largest]) * coefficients[owners[id(variables[largest])]]
    assert added.std() == pytest.approx(np.asarray(grads[largest]).std(), rel=0.2)


def test_ogm_ge_refuses_a_regression_head():
    keras.utils.set_random_seed(0)
    model = keras_mm.build_model(encoders=ENCODERS, head="regression", auxiliary_heads=True)
    with pytest.raises(ValueError, match="classification or binary head"):
        OGMGESteps(model, keras.optimizers.SGD(0.1), 4)


def test_train_adds_auxiliary_heads_to_a_config_and_balances_by_default(monkeypatch):
    def data(model):
        x, y = batch(model, 16)
        return tf.data.Dataset.from_tensor_slices((x, y)).batch(8)

    config = keras_mm.ModelConfig(encoders=ENCODERS, fusion={"name": "concat", "projection_dim": 8}, num_classes=3)
    model, _ = keras_mm.train(config, data, data, epochs=1, strategy=None, verbose=0)
    assert sorted(model.auxiliary_heads) == ["audio", "image"]
    # feature_normalization="auto": with auxiliary losses a norm on every encoder (trainable ones too)
    assert sorted(model.feature_norms) == ["audio", "image"]
    assert model.get_config()["feature_normalization"] == ["audio", "image"]
    model, _ = keras_mm.train(config, data, epochs=1, strategy=None, verbose=0, balance=None)
    assert not model.auxiliary_heads and model.feature_norms == {}  # without them, frozen encoders only
    explicit = keras_mm.ModelConfig.from_dict({**config.to_dict(), "feature_normalization": "frozen"})
    model, _ = keras_mm.train(explicit, data, epochs=1, strategy=None, verbose=0)
    assert sorted(model.auxiliary_heads) == ["audio", "image"] and model.feature_norms == {}  # a chosen value is kept
    # a fusion's recipe says what "auto" becomes: transformer (pre-LN blocks) takes the norm too ...
    transformer = keras_mm.ModelConfig.from_dict({**config.to_dict(), "fusion": {"name": "transformer", **TINY_TRANSFORMER}})
    model, _ = keras_mm.train(transformer, data, epochs=1, strategy=None, verbose=0)
    assert sorted(model.auxiliary_heads) == ["audio", "image"] and sorted(model.feature_norms) == ["audio", "image"]
    # ... and a recipe that keeps "frozen" is followed
    from keras_mm.fusions.transformer import TransformerFusion

    monkeypatch.setattr(TransformerFusion, "recipe", {**TransformerFusion.recipe, "auto_feature_normalization": "frozen"})
    model, _ = keras_mm.train(transformer, data, epochs=1, strategy=None, verbose=0)
    assert sorted(model.auxiliary_heads) == ["audio", "image"] and model.feature_norms == {}
    # one feature: its head's loss is the encoder's own, so it gets the norm too (balance or not)
    alone = keras_mm.ModelConfig(encoders={"image": ENCODERS["image"]}, num_classes=3)
    model, _ = keras_mm.train(alone, data, epochs=1, strategy=None, verbose=0)
    assert sorted(model.feature_norms) == ["image"] and not model.auxiliary_heads
    model, _ = keras_mm.train(alone, data, epochs=1, strategy=None, verbose=0, balance=None)
    assert sorted(model.feature_norms) == ["image"]
    # a built model without auxiliary heads: "auto" trains it plainly, a named method says what is missing
    keras_mm.train(build(), data, epochs=1, strategy=None, verbose=0)
    with pytest.raises(ValueError, match="auxiliary_heads=True"):
        keras_mm.train(build(), data, epochs=1, strategy=None, verbose=0, balance="ogm_ge")
    with pytest.raises(ValueError, match="Did you mean .ogm_ge.. Available: auxiliary, "):
        keras_mm.train(config, data, epochs=1, strategy=None, verbose=0, balance="ogm")
    with pytest.raises(ValueError, match="unknown argument.*'alfa'.*Allowed: alpha"):
        keras_mm.train(config, data, epochs=1, strategy=None, verbose=0, balance={"name": "ogm_ge", "alfa": 1})


def test_fusion_recipe_sets_the_default_learning_rate_with_warmup(monkeypatch):
    from keras_mm.fusions.concat import ConcatFusion
    from keras_mm.training.trainer import LinearWarmup, _learning_rate

    monkeypatch.setattr(ConcatFusion, "recipe", {"learning_rate": 3e-4, "warmup_epochs": 2})
    model = build()
    schedule = _learning_rate(None, model, steps_per_epoch=5)
    assert isinstance(schedule, LinearWarmup) and schedule.steps == 10
    assert [float(schedule(s)) for s in (0, 9, 50)] == pytest.approx([3e-5, 3e-4, 3e-4])
    assert _learning_rate(None, model, steps_per_epoch=None) == 3e-4
    assert _learning_rate(1e-2, model, steps_per_epoch=5) == 1e-2
    # at most a tenth of the run: 20 epochs keep the 2 warm-up epochs, 5 epochs get half an epoch
    assert _learning_rate(None, model, steps_per_epoch=5, epochs=20).steps == 10
    assert _learning_rate(None, model, steps_per_epoch=10, epochs=5).steps == 5
    from keras_mm.fusions.transformer import TransformerFusion

    assert TransformerFusion.recipe == {"learning_rate": 1e-3, "warmup_epochs": 2, "auto_feature_normalization": "layer"}


@pytest.mark.parametrize("balance", ["ogm_ge", "gradient_blending"])
def test_balance_under_two_replicas_matches_one_device(balance, tmp_path):
    finish(script(tmp_path / "one.npy", "--balance", balance, "--epochs", "2"))
    output = finish(script(tmp_path / "two.npy", "--balance", balance, "--epochs", "2", "--strategy", "mirrored", "--split-cpu", "2"))
    assert "replicas 2" in output
    diff = np.abs(np.load(tmp_path / "two.npy") - np.load(tmp_path / "one.npy")).max()
    assert diff <= 1e-5, diff


@pytest.mark.parametrize("balance", ["ogm_ge", {"name": "gradient_blending", "every": 1}])
def test_balance_trains_under_mixed_float16(balance):
    def data(model):
        x, y = batch(model, 16)
        return tf.data.Dataset.from_tensor_slices((x, y)).batch(8)

    config = keras_mm.ModelConfig(encoders=ENCODERS, fusion={"name": "concat", "projection_dim": 8}, num_classes=3)
    model, history = keras_mm.train(config, data, data, epochs=2, strategy=None, verbose=0,
                                    mixed_precision="mixed_float16", balance=balance)
    assert model.dtype_policy.name == "mixed_float16"
    assert all(np.isfinite(history.history["loss"]))
    assert model.extras_model()(batch(model, 2)[0])["aux_image"].dtype == "float32"


@pytest.mark.parametrize("option, value", [("smoothing", 1.0), ("min_output_weight", 1.5), ("every", 0)])
def test_gradient_blending_refuses_options_out_of_range_by_name(option, value):
    with pytest.raises(ValueError, match=f"{option} must"):
        GradientBlendingSteps(build(auxiliary_heads=True), keras.optimizers.SGD(0.1), 8, **{option: value})
