"""HeadCombination: the log-linear pool of the fused head and the unimodal heads, checked against NumPy."""

import numpy as np
import pytest

import keras
import keras_mm


def softmax(z):
    z = z - z.max(axis=-1, keepdims=True)
    return np.exp(z) / np.exp(z).sum(axis=-1, keepdims=True)


def probabilities(rng, n, k):
    return softmax(rng.normal(size=(n, k)) * 2).astype("float32")


def test_starts_as_the_fused_head_alone():
    rng = np.random.default_rng(0)
    fused, image, text = (probabilities(rng, 5, 4) for _ in range(3))
    layer = keras_mm.layers.HeadCombination(["image", "text"])
    out = layer(fused, {"image": image, "text": text}, {"image": np.ones(5), "text": np.ones(5)})
    np.testing.assert_allclose(out, fused, atol=1e-6)
    assert layer.combination_weights.trainable is False
    assert layer.branch_names == ["output", "aux_image", "aux_text"]


def test_pools_present_heads_log_linearly_as_numpy_does():
    rng = np.random.default_rng(1)
    fused, image, text = (probabilities(rng, 6, 3) for _ in range(3))
    present_image = np.array([1, 0, 1, 1, 0, 1], "float32")
    present_text = np.array([1, 1, 0, 1, 1, 1], "float32")
    w = np.array([0.3, 0.8, 1.7], "float32")
    layer = keras_mm.layers.HeadCombination(["image", "text"])
    layer.set_weights([w])
    out = layer(fused, {"image": image, "text": text}, {"image": present_image, "text": present_text})
    expected = softmax(w[0] * np.log(fused) + w[1] * present_image[:, None] * np.log(image)
                       + w[2] * present_text[:, None] * np.log(text))
    np.testing.assert_allclose(out, expected, atol=1e-6)
    # a zero probability is clipped, not -inf times a weight (which would be NaN where that weight is 0)
    image[0] = [1.0, 0.0, 0.0]
    layer.reset()
    out = np.asarray(layer(fused, {"image": image, "text": text}, {"image": present_image, "text": present_text}))
    assert np.isfinite(out).all()
    np.testing.assert_allclose(out, fused, atol=1e-6)


def test_config_round_trip_and_float32_under_mixed_precision():
    layer = keras_mm.layers.HeadCombination(["audio", "image"], epsilon=1e-6, name="combo")
    again = keras_mm.layers.HeadCombination.from_config(layer.get_config())
    assert again.features == ["audio", "image"] and again.epsilon == 1e-6 and again.name == "combo"
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        layer = keras_mm.layers.HeadCombination(["audio"])
        out = layer(np.full((2, 3), 1 / 3, "float16"), {"audio": np.full((2, 3), 1 / 3, "float16")}, {"audio": np.ones(2)})
        assert out.dtype == "float32"
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_model_refuses_a_combination_without_softmax_heads():
    encoders = {"image": {"name": "small_cnn", "image_size": 16, "filters": [4]}}
    with pytest.raises(ValueError, match="head_combination=True needs auxiliary_heads and a softmax head"):
        model = keras_mm.build_model(encoders=encoders, num_classes=3)
        keras_mm.models.MultimodalModel(model.feature_encoders, model.fusion, model.head, head_combination=True)
    binary = keras_mm.build_model(encoders={**encoders, "audio": {"name": "mfcc_cnn", "num_samples": 4000, "filters": [4]}},
                                  head="binary", auxiliary_heads=True)
    assert binary.head_combination is None  # sigmoid heads keep the fused head's answer
