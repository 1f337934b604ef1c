import pytest

import keras_mm
from keras_mm.presets import PRESETS, preset_config


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
