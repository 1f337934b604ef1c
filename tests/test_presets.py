import dataclasses
import inspect

import pytest

import keras_mm
from keras_mm.fusions.attention import AttentionFusion
from keras_mm.fusions.concat import ConcatFusion
from keras_mm.presets import PRESETS, preset_config
from tests.conftest import tiny_encoders


def test_every_preset_is_listed_with_a_description():
    presets = keras_mm.list_presets()
    assert set(presets) == set(PRESETS) and all(len(d) > 20 for d in presets.values())
    assert {"vgg16_bert_mfcc_concat", "mobilenetv2_bert_attention", "tiny_attention"} <= set(presets)


@pytest.mark.parametrize("name", [n for n in PRESETS if n.startswith("tiny_")])
def test_tiny_presets_build_and_predict(name):
    model = keras_mm.build_model(preset=name, num_classes=4)
    x = model.preprocessor.process_batch(model.preprocessor.example_raw(2))
    assert model.predict(x, verbose=0).shape == (2, model.head.num_outputs)


def test_overrides_merge_per_feature_and_replace_fields():
    config = preset_config("tiny_attention", encoders={"audio": {"filters": [4]}}, fusion="concat", num_classes=3)
    assert config["encoders"]["audio"] == {"name": "mfcc_cnn", "num_samples": 4000, "filters": [4]}
    assert config["fusion"] == "concat" and config["num_classes"] == 3
    swapped = preset_config("tiny_attention", encoders={"audio": "mfcc_gru"})
    assert swapped["encoders"]["audio"] == {"name": "mfcc_gru"}
    model = keras_mm.build_model(preset="tiny_attention", head="binary")
    assert model.head.registered_name_in_zoo == "binary"


def test_real_checkpoint_preset_resolves_the_minilm_path(minilm_path):
    config = preset_config("mobilenetv2_bert_attention", num_classes=10)
    assert config["encoders"]["text"]["checkpoint"] == minilm_path


def test_unknown_preset():
    with pytest.raises(ValueError, match="preset='tiny' is not registered. Available: mobilenetv2_bert_attention"):
        keras_mm.build_model(preset="tiny")


def test_explicit_overrides_win_even_when_they_equal_the_defaults():
    # fusion="concat" is ModelConfig's default: it must still replace the preset's attention fusion
    assert isinstance(keras_mm.build_model(preset="tiny_attention", num_classes=3).fusion, AttentionFusion)
    model = keras_mm.build_model(preset="tiny_attention", fusion="concat", num_classes=3)
    assert isinstance(model.fusion, ConcatFusion) and model.config.fusion == {"name": "concat"}
    assert keras_mm.build_model(preset="tiny_attention", head=None).head is None  # None given: an embedding model


def test_falsy_overrides_replace_the_presets_modality_dropout():
    # MobileNetV2/MiniLM swapped for tiny encoders (different names replace a feature's spec) to keep it fast
    encoders = tiny_encoders(("small_cnn", "lstm", "mfcc_cnn"), features={"small_cnn": "image", "lstm": "text", "mfcc_cnn": "audio"})
    kept = keras_mm.build_model(preset="mobilenetv2_bert_attention", encoders=encoders, num_classes=3)
    assert kept.modality_dropout.rate == 0.2 and isinstance(kept.fusion, AttentionFusion)
    zero = keras_mm.build_model(preset="mobilenetv2_bert_attention", encoders=encoders, num_classes=3, modality_dropout=0.0)
    assert zero.modality_dropout.rate == 0.0 and zero.config.modality_dropout == 0.0
    assert keras_mm.build_model(preset="tiny_attention", return_extras=False, num_classes=3).config.return_extras is False


def test_build_model_arguments_are_model_config_fields_without_restated_defaults():
    parameters = inspect.signature(keras_mm.build_model).parameters
    fields = [f.name for f in dataclasses.fields(keras_mm.ModelConfig)]
    assert [p for p in parameters if p not in ("config", "preset")] == fields
    assert all(parameters[f].default is keras_mm.models.builder.NOT_GIVEN for f in fields)


def test_config_with_field_arguments_is_an_error():
    config = preset_config("tiny_concat", num_classes=3)
    with pytest.raises(ValueError, match="either config= or num_classes=, not both"):
        keras_mm.build_model(config, num_classes=4)
    with pytest.raises(ValueError, match="either preset= .* or config="):
        keras_mm.build_model(config=config, preset="tiny_concat")


def test_encoder_overrides_drop_a_feature_with_none_and_name_a_feature_the_preset_lacks():
    model = keras_mm.build_model(preset="tiny_concat", encoders={"text": None}, num_classes=3)
    assert sorted(model.feature_encoders) == ["audio", "image"]  # was a TypeError
    with pytest.raises(ValueError, match=r"encoders\['txet'\]: preset 'tiny_concat' has no feature 'txet' \(its features: audio, image, text\)"):
        keras_mm.build_model(preset="tiny_concat", encoders={"txet": {"vocabulary": ["a"]}}, num_classes=3)
    with pytest.raises(TypeError, match=r"encoders\['text'\] must be an encoder spec"):
        preset_config("tiny_concat", encoders={"text": 3})
    with pytest.raises(ValueError, match="drop every feature"):
        preset_config("tiny_concat", encoders={"text": None, "image": None, "audio": None})
