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


def test_attention_weights_keep_a_uniform_share_of_the_present_features():
    rng = np.random.default_rng(0)
    features = {k: rng.normal(size=(4, 3)).astype("float32") for k in ("a", "b", "c")}
    presence = {"a": np.array([1, 1, 1, 0]), "b": np.array([1, 0, 1, 0]), "c": np.array([1, 1, 0, 0])}
    shared = AttentionFusion(projection_dim=4, uniform_share=0.4)
    plain = AttentionFusion(projection_dim=4, uniform_share=0.0)
    shared(features, presence), plain(features, presence)
    plain.set_weights(shared.get_weights())
    got = shared(features, presence)["modality_weights"].numpy()
    softmax = plain(features, presence)["modality_weights"].numpy()
    present = np.stack([presence[k] for k in ("a", "b", "c")], 1).astype("float32")
    uniform = present / np.maximum(present.sum(1, keepdims=True), 1)
    np.testing.assert_allclose(got, 0.6 * softmax + 0.4 * uniform, atol=1e-6)
    np.testing.assert_allclose(got[:3].sum(1), 1.0, atol=1e-6)
    assert (got >= 0.4 * uniform - 1e-6).all()  # each present feature keeps at least uniform_share / M
    assert got[1, 1] == 0 and got[2, 2] == 0 and not got[3].any()  # missing features and all-missing rows: 0
    with pytest.raises(ValueError, match="uniform_share=1.0 must be in"):
        AttentionFusion(uniform_share=1.0)


def test_attention_saved_before_uniform_share_reloads_with_the_plain_softmax():
    config = AttentionFusion(projection_dim=4).get_config()
    assert config["uniform_share"] == 0.2 and AttentionFusion.from_config(config).uniform_share == 0.2
    del config["uniform_share"]
    assert AttentionFusion.from_config(config).uniform_share == 0.0


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


def _cross_attention_inputs(rng, batch=3):
    features = {"image": rng.normal(size=(batch, 6)).astype("float32"), "text": rng.normal(size=(batch, 4)).astype("float32")}
    sequences = {"image": rng.normal(size=(batch, 9, 6)).astype("float32"), "text": rng.normal(size=(batch, 5, 4)).astype("float32")}
    masks = {"image": np.ones((batch, 9), "float32"), "text": np.ones((batch, 5), "float32")}
    masks["text"][1, 3:] = 0.0   # sample 1 has 3 words
    masks["image"][2, 4:] = 0.0  # sample 2 has 4 valid cells
    return features, sequences, masks


def test_cross_attention_maps_sum_to_one_over_the_attended_axis(rng):
    from keras_mm.fusions import CrossAttentionFusion

    features, sequences, masks = _cross_attention_inputs(rng)
    fusion = CrossAttentionFusion(query="text", hidden_dim=8, num_heads=2, return_attention_maps=True)
    out = fusion(features, sequences=sequences, sequence_masks=masks)
    maps = out["attention_image"].numpy()
    assert maps.shape == (3, 2, 5, 9)  # [batch, heads, words, image cells]
    valid_words = masks["text"][:, None, :].repeat(2, axis=1) > 0
    np.testing.assert_allclose(maps.sum(-1)[valid_words], 1.0, atol=1e-5)
    np.testing.assert_allclose(maps.sum(-1)[~valid_words], 0.0, atol=1e-7)  # padded words ask nothing
    np.testing.assert_allclose(maps[2, :, :, 4:], 0.0, atol=1e-7)  # padded cells get no attention
    assert out["fused"].shape == (3, 16) and fusion.output_dim == 16
    # padded words do not change the fused vector
    changed = {k: v.copy() for k, v in sequences.items()}
    changed["text"][1, 3:] += 50.0
    np.testing.assert_allclose(fusion(features, sequences=changed, sequence_masks=masks)["fused"][1],
                               out["fused"][1], atol=1e-5)


def test_cross_attention_ignores_a_missing_context(rng):
    from keras_mm.fusions import CrossAttentionFusion

    features, sequences, masks = _cross_attention_inputs(rng)
    fusion = CrossAttentionFusion(query="text", hidden_dim=8, num_heads=2)
    presence = {"image": np.array([0.0, 1.0, 1.0], "float32"), "text": np.ones(3, "float32")}
    base = fusion(features, presence, sequences=sequences, sequence_masks=masks)["fused"].numpy()
    noisy = {k: v.copy() for k, v in sequences.items()}
    noisy["image"][0] = np.nan  # a corrupt, missing image
    out = fusion(features, presence, sequences=noisy, sequence_masks=masks)["fused"].numpy()
    np.testing.assert_allclose(out[0], base[0], atol=1e-6)
    np.testing.assert_array_equal(out[0, 8:], 0.0)  # the image block is zero


def test_cross_attention_query_must_be_a_feature(rng):
    from keras_mm.fusions import CrossAttentionFusion

    features, sequences, masks = _cross_attention_inputs(rng)
    with pytest.raises(ValueError, match="query='caption' is not a feature. Allowed: image, text"):
        CrossAttentionFusion(query="caption")(features, sequences=sequences, sequence_masks=masks)


def test_text_tokens_attend_over_the_image_grid_in_a_model():
    from tests.conftest import tiny_encoders

    model = keras_mm.build_model(
        encoders=tiny_encoders(("small_cnn", "lstm", "mfcc_cnn"), {"small_cnn": "image", "lstm": "text", "mfcc_cnn": "audio"}),
        fusion={"name": "cross_attention", "hidden_dim": 8, "num_heads": 2, "return_attention_maps": True},
        num_classes=3,
    )
    assert model.fusion.query == "text"  # the text feature asks by default
    inputs = model.preprocessor.process_batch(model.preprocessor.example_raw(4))
    extras = model.extras_model().predict(inputs, verbose=0)
    cells = 4 * 4  # small_cnn at 16 px with two 2x pools: a 4x4 grid, not the pooled vector
    words = model.feature_encoders["text"].sequence_length
    assert extras["attention_image"].shape == (4, 2, words, cells)
    valid_words = np.asarray(inputs["text_padding_mask"]).astype(bool)
    np.testing.assert_allclose(extras["attention_image"].sum(-1)[valid_words[:, None, :].repeat(2, 1)], 1.0, atol=1e-5)
    assert extras["attention_audio"].shape[:3] == (4, 2, words)
    np.testing.assert_allclose(extras["output"], model.predict(inputs, verbose=0), atol=1e-6)


def test_a_custom_encoder_without_sequences_gets_a_clear_error():
    class PooledOnly(keras_mm.encoders.Encoder):
        modality = "image"

        def input_signature(self):
            return {"": ((4, 4, 3), "float32")}

        @property
        def output_dim(self):
            return 3

        def call(self, inputs):
            return keras.ops.mean(inputs[""], axis=(1, 2))

    from keras_mm.fusions import CrossAttentionFusion
    from keras_mm.models import MultimodalModel

    with pytest.raises(ValueError, match="do not return them: add a return_sequence=False argument"):
        MultimodalModel({"image": PooledOnly()}, CrossAttentionFusion())


def test_late_fusion_averages_decisions_over_the_present_modalities(rng):
    from keras_mm.fusions import LateFusion

    features = {"audio": rng.normal(size=(2, 4)).astype("float32"), "image": rng.normal(size=(2, 5)).astype("float32")}
    fusion = LateFusion(decision_dim=3)
    out = fusion(features, {"audio": np.array([0.0, 1.0], "float32"), "image": np.ones(2, "float32")})
    audio, image = (fusion.decisions[k](features[k]).numpy() for k in ("audio", "image"))
    # sample 0 lost its audio: its fused vector is the image decision alone
    np.testing.assert_allclose(out["fused"][0], image[0], atol=1e-6)
    # sample 1 has both: the learned weights start equal
    np.testing.assert_allclose(out["fused"][1], 0.5 * (audio[1] + image[1]), atol=1e-6)
    np.testing.assert_allclose(out["modality_weights"], [[0.0, 1.0], [0.5, 0.5]], atol=1e-6)


def test_hierarchical_fusion_pairs(rng):
    from keras_mm.fusions import HierarchicalFusion

    features = {k: rng.normal(size=(2, 3)).astype("float32") for k in ("audio", "image", "text")}
    every_pair = HierarchicalFusion(pair_dim=4, units=5)
    every_pair(features)
    assert sorted(every_pair.pair_layers) == ["audio__image", "audio__text", "image__text"]
    chosen = HierarchicalFusion(pair_dim=4, units=5, pairs=[["image", "text"]])
    chosen(features)
    assert list(chosen.pair_layers) == ["image__text"] and chosen.top.kernel.shape == (4, 5)
    with pytest.raises(ValueError, match=r"pairs name \['caption'\], not features of the model \(audio, image, text\)"):
        HierarchicalFusion(pairs=[["image", "caption"]])(features)


def test_transformer_blocks_are_pre_ln_with_a_final_norm_and_old_configs_reload_post_ln():
    from keras_mm.fusions import TransformerFusion

    rng = np.random.default_rng(0)
    features = {"a": rng.normal(size=(3, 5)).astype("float32"), "b": 100 * rng.normal(size=(3, 2)).astype("float32")}
    fusion = TransformerFusion(hidden_dim=8, num_layers=2, num_heads=2, intermediate_dim=16)
    fused = fusion(features)["fused"].numpy()
    assert all(block.normalize_first for block in fusion.blocks)
    # the final LayerNorm (gamma 1, beta 0 at the start): each sample's output has mean 0 and unit variance
    np.testing.assert_allclose(fused.mean(axis=1), 0.0, atol=1e-5)
    np.testing.assert_allclose(fused.var(axis=1), 1.0, atol=1e-3)
    config = fusion.get_config()
    assert config["normalize_first"] is True and TransformerFusion.from_config(config).normalize_first
    del config["normalize_first"]  # a model saved before the option: post-LN blocks, no final norm
    old = TransformerFusion.from_config(config)
    assert not old.normalize_first and old.final_norm is None
    old(features)
    assert not any(block.normalize_first for block in old.blocks) and len(old.weights) == len(fusion.weights) - 2
