import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_mm
from keras_mm.encoders.small_cnn import SmallCNNEncoder
from keras_mm.layers import PerImageStandardization


def _images(n=3, size=12, seed=0):
    return np.random.default_rng(seed).uniform(0, 255, (n, size, size, 3)).astype("float32")


def test_matches_tf_per_image_standardization_and_a_uniform_image_gives_zeros():
    images = _images()
    images[1] = 200.0  # uniform: std 0, the floor keeps it finite
    out = PerImageStandardization()(images).numpy()
    np.testing.assert_allclose(out, tf.image.per_image_standardization(images).numpy(), atol=1e-5)
    assert np.all(out[1] == 0.0)
    np.testing.assert_allclose(out[[0, 2]].mean(axis=(1, 2, 3)), 0.0, atol=1e-5)
    np.testing.assert_allclose(out[[0, 2]].std(axis=(1, 2, 3)), 1.0, atol=1e-4)


def test_statistics_stay_float32_under_mixed_precision():
    images = _images()
    layer = PerImageStandardization(dtype="mixed_float16")
    out = layer(images)
    assert out.dtype == tf.float16
    np.testing.assert_allclose(out.numpy().astype("float32"), tf.image.per_image_standardization(images).numpy(),
                               atol=5e-3)


def test_small_cnn_standardizes_per_image_by_default_so_brightness_and_contrast_do_not_move_its_output():
    keras.utils.set_random_seed(0)
    encoder = SmallCNNEncoder(image_size=12, filters=(4, 8))
    assert encoder.input_normalization == "per_image"
    images = _images()
    dimmed = 0.5 * images + 40.0  # a positive affine change of every pixel
    np.testing.assert_allclose(encoder({"": dimmed}).numpy(), encoder({"": images}).numpy(), atol=1e-5)
    plain = SmallCNNEncoder(image_size=12, filters=(4, 8), input_normalization="rescale")
    plain.build({"": (None, 12, 12, 3)})
    plain.set_weights(encoder.get_weights())
    assert np.abs(plain({"": dimmed}).numpy() - plain({"": images}).numpy()).max() > 1e-3  # the test can fail


def test_configs_saved_before_the_option_reload_with_rescaling_and_the_option_round_trips():
    config = SmallCNNEncoder(image_size=12, filters=(4,)).get_config()
    assert config["input_normalization"] == "per_image"
    assert SmallCNNEncoder.from_config(config).input_normalization == "per_image"
    del config["input_normalization"]  # a model saved before the option fed the convolutions pixels / 255
    old = SmallCNNEncoder.from_config(config)
    assert old.input_normalization == "rescale" and old.standardize is None


@pytest.mark.parametrize("input_normalization", ["per_image", "rescale"])
def test_a_model_with_either_input_normalization_saves_and_reloads(input_normalization):
    keras.utils.set_random_seed(0)
    model = keras_mm.build_model(encoders={"image": {"name": "small_cnn", "image_size": 12, "filters": [4],
                                                     "input_normalization": input_normalization}}, num_classes=3)
    inputs = model.preprocessor.process_batch(model.preprocessor.example_raw(4))
    restored = keras_mm.testing.run_serialization_test(model, inputs)
    assert restored.feature_encoders["image"].input_normalization == input_normalization


def test_an_unknown_input_normalization_names_the_field_and_the_allowed_values():
    with pytest.raises(ValueError, match=r"input_normalization='batch' is not one of \['per_image', 'rescale'\]"):
        keras_mm.build_model(encoders={"image": {"name": "small_cnn", "input_normalization": "batch"}}, num_classes=3)
