import keras
import numpy as np
import pytest

import keras_mm
from keras_mm.fusions import AttentionFusion, ConcatFusion
from keras_mm.registry import FUSIONS
from keras_mm.testing import run_fusion_test


@pytest.mark.parametrize("name", FUSIONS.names())
@pytest.mark.parametrize("input_dims", [{"image": 6, "text": 4}, {"audio": 5, "image": 7, "text": 3}])
def test_fusion_contract(name, input_dims):
    cls = FUSIONS.get(name)
    run_fusion_test(cls, cls.example_config, input_dims)


def test_pure_concatenation_keeps_values_in_sorted_order():
    out = ConcatFusion()({"b": np.ones((1, 2)), "a": np.zeros((1, 3))})["fused"].numpy()
    np.testing.assert_array_equal(out, [[0, 0, 0, 1, 1]])
    assert ConcatFusion().compute_output_dim({"a": 3, "b": 2}) == 5
    assert ConcatFusion(projection_dim=4).compute_output_dim({"a": 3, "b": 2}) == 8


def test_attention_output_is_weighted_average_of_projections():
    fusion = AttentionFusion(projection_dim=4)
    features = {"a": np.random.rand(3, 5).astype("float32"), "b": np.random.rand(3, 2).astype("float32")}
    out = fusion(features)
    weights = out["modality_weights"].numpy()
    projected = [fusion.projections[k](features[k]).numpy() for k in ("a", "b")]
    expected = weights[:, :1] * projected[0] + weights[:, 1:] * projected[1]
    np.testing.assert_allclose(out["fused"].numpy(), expected, atol=1e-6)


def test_attention_weights_can_learn_to_ignore_a_noise_modality():
    keras.utils.set_random_seed(1)
    rng = np.random.default_rng(1)
    n = 256
    labels = rng.integers(0, 2, n)
    signal = (labels[:, None] * 2.0 - 1.0) + rng.normal(0, 0.3, (n, 4))
    noise = rng.normal(0, 1.0, (n, 4))
    inp = {"signal": keras.Input((4,), name="signal"), "noise": keras.Input((4,), name="noise")}
    fusion = AttentionFusion(projection_dim=8)
    out = fusion(inp)
    model = keras.Model(inp, {"y": keras.layers.Dense(1, activation="sigmoid")(out["fused"]), "w": out["modality_weights"]})
    model.compile(optimizer=keras.optimizers.Adam(0.02), loss={"y": "binary_crossentropy"})
    model.fit({"signal": signal, "noise": noise}, {"y": labels}, epochs=30, verbose=0)
    weights = model.predict({"signal": signal, "noise": noise}, verbose=0)["w"]
    # features are sorted: ["noise", "signal"]
    assert weights[:, 1].mean() > 0.6, weights.mean(0)


def test_output_dim_needs_build():
    with pytest.raises(ValueError, match="known after the layer is built"):
        ConcatFusion().output_dim


def test_model_exposes_modality_weights():
    from tests.conftest import tiny_encoders

    model = keras_mm.build_model(encoders=tiny_encoders(), fusion={"name": "attention", "projection_dim": 8}, num_classes=3)
    inputs = model.preprocessor.process_batch(model.preprocessor.example_raw(4))
    extras = model.extras_model().predict(inputs, verbose=0)
    assert extras["modality_weights"].shape == (4, 3)
    np.testing.assert_allclose(extras["modality_weights"].sum(-1), 1.0, atol=1e-5)
    np.testing.assert_allclose(extras["output"], model.predict(inputs, verbose=0), atol=1e-6)
    direct = keras_mm.build_model(encoders=tiny_encoders(), fusion="attention", num_classes=3, return_extras=True)
    assert set(direct.output) == {"output", "modality_weights"}
