import pytest

import keras_mm
from keras_mm import ModelConfig
from keras_mm.presets import preset_config
from tests.conftest import tiny_encoders


def test_model_config_round_trips_through_json():
    config = ModelConfig(encoders=tiny_encoders(), fusion={"name": "attention", "projection_dim": 8}, num_classes=4)
    assert ModelConfig.from_json(config.to_json()) == config
    assert ModelConfig.from_dict(config.to_dict()) == config
    assert config.encoders["image"]["name"] == "small_cnn"
    assert config.fusion == {"name": "attention", "projection_dim": 8}


def test_build_model_accepts_config_object_dict_and_kwargs():
    config = ModelConfig(encoders=tiny_encoders(("small_cnn",)), num_classes=3)
    for model in (
        keras_mm.build_model(config),
        keras_mm.build_model(config=config.to_dict()),
        keras_mm.build_model(**config.to_dict()),
    ):
        assert model.output_shape == (None, 3)
        assert model.config == config


@pytest.mark.parametrize(
    "kwargs, pattern",
    [
        ({"encoders": {"image": "resnet9000"}}, r"encoders\['image'\]='resnet9000' is not a registered encoder.*Available: bert, lstm"),
        ({"encoders": {"image": "small_cnn"}, "fusion": "atention"}, r"fusion='atention'.*Did you mean 'attention'"),
        ({"encoders": {"image": "small_cnn"}, "head": "clasification"}, r"head='clasification'.*Available: binary, classification"),
        ({"encoders": {"image": {"name": "small_cnn", "poolin": "avg"}}},
         r"encoders\['image'\]: unknown argument\(s\) 'poolin' for 'small_cnn'. Allowed: background, dropout, filters, image_size, input_normalization"),
        ({"encoders": {"image": "small_cnn"}, "fusion": {"name": "concat", "proj_dim": 3}},
         r"fusion: unknown argument\(s\) 'proj_dim' for 'concat'. Allowed: activation, dropout, projection_dim"),
        ({"encoders": {"image": "small_cnn"}}, r"num_classes is required for head='classification'"),
        ({"encoders": {"image": "small_cnn"}, "head": "multilabel"}, r"num_classes is required for head='multilabel'"),
        ({"encoders": {"image": "small_cnn"}, "num_classes": 1}, r"at least 2 classes \(use head='binary'\)"),
        ({"encoders": {"image": "small_cnn"}, "head": "binary", "num_classes": 5}, r"needs head='classification'"),
        ({"encoders": {}}, r"encoders: expected a non-empty dict"),
        ({"encoders": {"my image": "small_cnn"}}, r"feature name 'my image' must be a Python identifier"),
        ({"encoders": {"image": 3}}, r"encoders\['image'\]: expected a name \(str\) or a dict"),
        ({"encoders": {"image": {"filters": [4]}}}, r"encoders\['image'\]: a dict must have a 'name' key"),
        ({"encoders": {"text": "bert"}, "num_classes": 2}, r"encoder 'bert' needs checkpoint="),
        ({"encoders": {"text": {"name": "bert", "checkpoint": "/no/such/dir"}}, "num_classes": 2},
         r"checkpoint='/no/such/dir' is not a BERT-family checkpoint directory: expected /no/such/dir/config.json"),
        ({"encoders": {"image": {"name": "mobilenet_v2", "weights": "imagenet"}}, "num_classes": 2},
         r"weights='imagenet' would download MobileNetV2 weights.*Pass weights='/path/to/file.weights.h5'"),
        ({"encoders": {"image": {"name": "vgg16", "weights": "/no/such.h5", "image_size": 32}}, "num_classes": 2},
         r"Pretrained weights file not found: '/no/such.h5'"),
        ({"encoders": {"image": {"name": "mobilenet_v2", "pooling": "sum"}}, "num_classes": 2},
         r"pooling='sum' is not supported. Allowed: avg, max"),
        ({"encoders": {"audio": {"name": "mfcc_cnn", "n_mfcc": 80, "n_mels": 40}}, "num_classes": 2},
         r"n_mfcc=80 must be <= n_mels=40"),
        ({"encoders": {"text": {"name": "lstm"}}, "num_classes": 2}, r"encoder 'lstm' needs vocabulary="),
    ],
)
def test_bad_configs_raise_value_error_naming_the_field(kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        keras_mm.build_model(**kwargs)


def test_model_config_rejects_unknown_fields():
    with pytest.raises(ValueError, match=r"ModelConfig: unknown field\(s\) \['fusoin'\]"):
        ModelConfig.from_dict({"encoders": {"image": "small_cnn"}, "fusoin": "concat"})
    # the constructor too (the dataclass's own TypeError named the argument only), with a close match
    with pytest.raises(TypeError, match=r"unknown field\(s\) \['fuson'\]. Allowed: encoders, fusion, .*"
                                        r"Did you mean 'fusion' for 'fuson'\?"):
        ModelConfig(encoders={"image": "small_cnn"}, fuson="concat")
    # a preset is an argument of build_model, not a field: say how to get its config
    with pytest.raises(TypeError, match=r"A preset is not a field: use keras_mm.build_model\(preset="):
        ModelConfig(preset="tiny_concat")
    assert ModelConfig(**preset_config("tiny_concat", num_classes=3)).fusion["name"] == "concat"


def test_config_and_kwargs_together_is_an_error():
    config = ModelConfig(encoders={"image": "small_cnn"}, num_classes=2)
    with pytest.raises(ValueError, match="either config= or encoders="):
        keras_mm.build_model(encoders={"image": "small_cnn"}, config=config)


def test_class_names_set_num_classes_and_survive_a_keras_reload(tmp_path):
    import keras

    from tests.conftest import tiny_encoders

    model = keras_mm.build_model(encoders=tiny_encoders(("small_cnn",)), class_names=["cat", "dog", "emu"])
    assert model.head.num_classes == 3 and model.class_names == ["cat", "dog", "emu"]
    model.save(tmp_path / "m.keras")
    assert keras.models.load_model(tmp_path / "m.keras").class_names == ["cat", "dog", "emu"]
    with pytest.raises(ValueError, match="class_names has 2 names but num_classes=3"):
        keras_mm.build_model(encoders=tiny_encoders(("small_cnn",)), class_names=["a", "b"], num_classes=3)
    with pytest.raises(ValueError, match="class_names: head='regression' has no classes to name"):
        keras_mm.build_model(encoders=tiny_encoders(("small_cnn",)), head="regression", class_names=["a", "b"])


@pytest.mark.parametrize("encoder", ["small_cnn", "mobilenet_v2"])
@pytest.mark.parametrize("image_size", [-3, [0, 4], "big", [32, 32, 3]])
def test_a_bad_image_size_names_the_field(encoder, image_size):
    # was TensorFlow's "Cannot convert '(-3, -3, 3)' to a shape" from deep inside the encoder
    spec = {"name": encoder, "image_size": image_size, **({"weights": None} if encoder != "small_cnn" else {})}
    with pytest.raises(ValueError, match=r"image_size=.* must be a positive size: an int, or \(height, width\)\."):
        keras_mm.build_model(encoders={"image": spec}, num_classes=2)
