"""ModelConfig.feature_normalization: a LayerNormalization on each encoder's output before the fusion."""

import keras
import numpy as np
import pytest

import keras_mm
from tests.conftest import tiny_encoders


def _vector_model(normalization):
    """Two precomputed vectors (a frozen encoder's output: no weights) fused by concat."""
    keras.utils.set_random_seed(0)
    return keras_mm.build_model(
        encoders={"big": {"name": "precomputed", "dim": 6}, "small": {"name": "precomputed", "dim": 4}},
        fusion="concat", num_classes=3, feature_normalization=normalization)


def _inputs(rows=8, big_scale=1.0):
    rng = np.random.default_rng(0)
    return {"big": big_scale * rng.normal(size=(rows, 6)).astype("float32"),
            "small": rng.normal(size=(rows, 4)).astype("float32"),
            "big_present": np.ones(rows, "float32"), "small_present": np.ones(rows, "float32")}


def test_the_fusion_sees_every_feature_on_the_same_scale():
    """A feature 1000x larger changes nothing with the default normalisation, and dominates without it."""
    for normalization in ("frozen", "layer"):
        model = _vector_model(normalization)
        normalized = [np.asarray(model(_inputs(big_scale=scale))) for scale in (1.0, 1000.0)]
        np.testing.assert_allclose(normalized[0], normalized[1], atol=1e-3)
    model = _vector_model(None)
    raw = [np.asarray(model(_inputs(big_scale=scale))) for scale in (1.0, 1000.0)]
    assert np.abs(raw[0] - raw[1]).max() > 0.1


def _frozen_pair(big_dim=12, small_dim=4):
    keras.utils.set_random_seed(0)
    return keras_mm.build_model(
        encoders={"big": {"name": "precomputed", "dim": big_dim}, "small": {"name": "precomputed", "dim": small_dim}},
        fusion="concat", num_classes=3)


def _pair_inputs(rows=64, big_dim=12, small_dim=4):
    rng = np.random.default_rng(1)
    return {"big": rng.normal(size=(rows, big_dim)).astype("float32"),
            "small": rng.normal(size=(rows, small_dim)).astype("float32"),
            "big_present": np.ones(rows, "float32"), "small_present": np.ones(rows, "float32")}


def test_norm_scales_start_at_the_smallest_dimension_over_their_own():
    model = _frozen_pair()
    np.testing.assert_allclose(np.asarray(model.feature_norms["big"].gamma), np.full(12, 4 / 12), rtol=1e-6)
    np.testing.assert_allclose(np.asarray(model.feature_norms["small"].gamma), np.ones(4), rtol=1e-6)
    x = _pair_inputs()
    mass = {f: float(np.abs(np.asarray(model.feature_norms[f](x[f]))).sum(-1).mean()) for f in ("big", "small")}
    # equal L1 mass per sample: one Adam step moves each weight by about the learning rate, so the most it
    # can move a linear layer's output through a feature is the learning rate times that feature's L1 norm
    assert 0.85 < mass["big"] / mass["small"] < 1.15, mass
    # one normalised feature alone (a unimodal model) keeps gamma = 1
    keras.utils.set_random_seed(0)
    alone = keras_mm.build_model(encoders={"big": {"name": "precomputed", "dim": 12}}, num_classes=3)
    np.testing.assert_allclose(np.asarray(alone.feature_norms["big"].gamma), np.ones(12))


def test_default_normalises_frozen_encoders_only():
    encoders = tiny_encoders()
    encoders["image"] = {**encoders["image"], "trainable": False}
    model = keras_mm.build_model(encoders=encoders, fusion="concat", num_classes=3)
    assert keras_mm.ModelConfig(encoders={"image": "small_cnn"}).feature_normalization == "auto"  # "frozen" here
    assert sorted(model.feature_norms) == ["image"]
    # the features that got a norm are recorded: unfreezing before saving must not change the layers
    model.feature_encoders["image"].trainable = True
    assert model.get_config()["feature_normalization"] == ["image"]


def test_layers_are_shared_saved_and_old_configs_load_without_them(tmp_path):
    model = keras_mm.build_model(encoders=tiny_encoders(), fusion="concat", num_classes=3, auxiliary_heads=True,
                                 feature_normalization="layer")
    assert sorted(model.feature_norms) == ["audio", "image", "text"]
    assert model.extras_model().feature_norms["image"] is model.feature_norms["image"]  # one set of weights
    x = model.preprocessor.process_batch(model.preprocessor.example_raw(4))
    model.save(tmp_path / "m.keras")
    reloaded = keras.saving.load_model(tmp_path / "m.keras")
    assert sorted(reloaded.feature_norms) == ["audio", "image", "text"]
    np.testing.assert_allclose(np.asarray(reloaded(x)), np.asarray(model(x)), atol=1e-6)

    # a model saved before the field existed has no key in its config: it is rebuilt without norms
    plain = keras_mm.build_model(encoders=tiny_encoders(), fusion="concat", num_classes=3, feature_normalization=None)
    config = plain.get_config()
    del config["feature_normalization"]
    assert type(plain).from_config(config).feature_norms == {}


def test_token_level_fusions_get_none_and_a_wrong_value_names_the_field():
    model = keras_mm.build_model(encoders=tiny_encoders(), fusion="cross_attention", num_classes=3,
                                 feature_normalization="layer")
    assert model.feature_norms == {} and model.get_config()["feature_normalization"] == []
    # the norms it does not use are not layers of the model: unbuilt, they made Keras warn "unbuilt state"
    assert all(layer.built for layer in model._flatten_layers(include_self=False))
    assert not {layer.name for layer in model._flatten_layers(include_self=False)} & {f"{f}_norm" for f in model.features}
    with pytest.raises(ValueError, match="feature_normalization='batch' is not supported. Allowed: 'auto', 'frozen', 'layer', None"):
        keras_mm.build_model(encoders=tiny_encoders(), num_classes=3, feature_normalization="batch")


@pytest.mark.parametrize("trainable", [False, True])
def test_a_frozen_encoder_runs_in_inference_mode_in_training_steps(trainable):
    """A frozen encoder is a fixed feature extractor: its dropout is off in training steps, a trainable one's is on."""
    keras.utils.set_random_seed(0)
    encoders = {feature: {**spec, "dropout": 0.5, "trainable": trainable}
                for feature, spec in tiny_encoders(("small_cnn", "bert")).items()}
    model = keras_mm.build_model(encoders=encoders, fusion="concat", head=None)  # output: the fused vector
    x = model.preprocessor.process_batch(model.preprocessor.example_raw(4))
    training, inference = np.asarray(model(x, training=True)), np.asarray(model(x, training=False))
    if trainable:
        assert np.abs(training - inference).max() > 1e-3
    else:
        np.testing.assert_allclose(training, inference, atol=1e-6)
        model.feature_encoders["text"].trainable = True  # unfrozen for fine-tuning: its dropout is back
        assert np.abs(np.asarray(model(x, training=True)) - inference).max() > 1e-3
