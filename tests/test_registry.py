import keras
import pytest

import keras_mm
from keras_mm.registry import ENCODERS, FUSIONS, HEADS, Registry


def test_builtin_components_are_listed():
    assert {"vgg16", "mobilenet_v2", "small_cnn", "bert", "lstm", "mfcc_cnn", "mfcc_gru"} <= set(keras_mm.list_encoders())
    assert {"concat", "attention"} <= set(keras_mm.list_fusions())
    assert {"classification", "binary", "multilabel", "regression"} <= set(keras_mm.list_heads())


def test_list_encoders_by_modality():
    assert set(keras_mm.list_encoders("audio")) >= {"mfcc_cnn", "mfcc_gru"}
    assert "bert" in keras_mm.list_encoders("text") and "bert" not in keras_mm.list_encoders("image")
    with pytest.raises(ValueError, match="modality='video' is not a registered modality. Available: audio, image, (.*, )?text"):
        keras_mm.list_encoders("video")


def test_registration_makes_class_keras_serializable():
    for registry in (ENCODERS, FUSIONS, HEADS):
        for name, cls in registry.items():
            assert keras.saving.get_registered_object(f"keras_mm>{cls.__name__}") is cls, name


def test_unknown_name_error_names_field_and_choices():
    with pytest.raises(ValueError) as err:
        FUSIONS.get("atention", field="fusion")
    message = str(err.value)
    assert "fusion='atention'" in message and "Did you mean 'attention'" in message
    assert "Available: attention, concat" in message


def test_two_classes_cannot_share_a_name():
    registry = Registry("widget")

    @registry.register("w")
    class WidgetA(keras.layers.Layer):
        pass

    class WidgetB(keras.layers.Layer):
        pass

    with pytest.raises(ValueError, match="already registered"):
        registry.register("w")(WidgetB)


def test_custom_fusion_is_usable_by_name():
    # its own class name: registry.py's docstring example registers a SumFusion too, and when both run in
    # one process (they do under pytest-xdist, depending on the split) the second is refused by design
    @keras_mm.register_fusion("test_sum")
    class RegistryTestSumFusion(keras_mm.fusions.Fusion):
        def compute_output_dim(self, input_dims):
            return next(iter(input_dims.values()))

        def call(self, features, presence=None):
            features = self.masked_features(features, presence)
            return {"fused": sum(features[k] for k in sorted(features))}

    assert "test_sum" in keras_mm.list_fusions()
    model = keras_mm.build_model(
        encoders={"a": {"name": "small_cnn", "image_size": 8, "filters": [4]},
                  "b": {"name": "small_cnn", "image_size": 8, "filters": [4]}},
        fusion="test_sum", num_classes=2,
    )
    assert model.fusion.output_dim == 4


def test_a_class_named_like_a_builtin_cannot_take_over_its_saved_models():
    # a user's ConcatFusion registered as "concat_v2" used to become what models built with the built-in
    # "concat" reloaded as: keras_mm>ConcatFusion named both
    class ConcatFusion(keras_mm.fusions.Fusion):
        def compute_output_dim(self, input_dims):
            return sum(input_dims.values())

    with pytest.raises(ValueError, match=r"fusion 'concat_v2': the class name 'ConcatFusion' is already used by "
                                         r"keras_mm.fusions.concat.ConcatFusion.*Give the class another name"):
        keras_mm.register_fusion("concat_v2")(ConcatFusion)
    assert "concat_v2" not in keras_mm.list_fusions()
    assert keras.saving.get_registered_object("keras_mm>ConcatFusion").__module__ == "keras_mm.fusions.concat"
