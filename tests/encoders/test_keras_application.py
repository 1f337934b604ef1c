import keras
import numpy as np
import pytest

import keras_mm
from keras_mm.encoders import MobileNetV2Encoder, VGG16Encoder, load_pretrained_weights


def _pixels(size, seed=0):
    return np.random.default_rng(seed).uniform(0, 255, size=(2, size, size, 3)).astype("float32")


def assert_same_features(actual, expected, rtol=1e-4):
    """Equal up to ``rtol`` of the features' scale.

    A random-init MobileNetV2 gives features of about 1e-10, so an absolute tolerance such as 1e-5
    would accept any two encoders: compare relative to the scale, and check that a differently
    initialised encoder would have failed.
    """
    actual, expected = np.asarray(actual), np.asarray(expected)
    scale = np.abs(expected).max()
    assert scale > 0
    np.testing.assert_allclose(actual, expected, rtol=0, atol=rtol * scale)


def assert_differs(actual, expected):
    assert np.abs(np.asarray(actual) - np.asarray(expected)).max() > 0.1 * np.abs(np.asarray(expected)).max()


def test_weights_file_round_trip(tmp_path):
    source = MobileNetV2Encoder(image_size=32, alpha=0.35)
    path = str(tmp_path / "mnv2_notop.weights.h5")
    source.backbone.save_weights(path)
    loaded = MobileNetV2Encoder(image_size=32, alpha=0.35, weights=path)
    x = {"": _pixels(32)}
    assert_same_features(loaded(x), source(x))
    assert_differs(MobileNetV2Encoder(image_size=32, alpha=0.35)(x), source(x))
    assert loaded.get_config()["weights"] is None  # the saved model carries the weights


def _momentum_in_use(encoder):
    """The momentum the backbone's BatchNormalization layers apply in a training call, measured.

    Each training call on the same batch (same batch statistics mu: no weight update) moves a moving mean
    from s to m * s + (1 - m) * mu, so the second step is m times the first.
    """
    norms = [layer for layer in encoder.backbone._flatten_layers() if isinstance(layer, keras.layers.BatchNormalization)]
    x = {"": _pixels(32)}
    means = []
    for _ in range(3):
        means.append(np.concatenate([np.asarray(layer.moving_mean) for layer in norms]))
        encoder(x, training=True)
    first = means[1] - means[0]
    second = means[2] - means[1]
    large = np.abs(first) > np.percentile(np.abs(first), 75)
    return float(np.median(second[large] / first[large]))


def test_batch_norm_follows_the_batches_from_scratch_and_keeps_its_momentum_for_pretrained_weights(tmp_path):
    # MobileNetV2's own 0.999 kept a from-scratch backbone's statistics near their start for hundreds of steps
    # (a new-user trial: the inference-mode image vector was the same for every image)
    scratch = MobileNetV2Encoder(image_size=32, alpha=0.35)
    assert scratch.batch_norm_momentum == 0.9
    assert _momentum_in_use(scratch) == pytest.approx(0.9, abs=2e-3)
    path = str(tmp_path / "mnv2_notop.weights.h5")
    scratch.backbone.save_weights(path)
    pretrained = MobileNetV2Encoder(image_size=32, alpha=0.35, weights=path)
    assert pretrained.batch_norm_momentum == 0.999
    assert _momentum_in_use(MobileNetV2Encoder(image_size=32, alpha=0.35, weights=path)) == pytest.approx(0.999, abs=2e-3)
    # the value in force survives get_config (which stores weights=None: the saved model carries them)
    assert MobileNetV2Encoder.from_config(pretrained.get_config()).batch_norm_momentum == 0.999
    assert MobileNetV2Encoder(image_size=32, alpha=0.35, batch_norm_momentum=0.5).batch_norm_momentum == 0.5
    assert VGG16Encoder(image_size=32).batch_norm_momentum is None  # no BatchNormalization layers
    with pytest.raises(ValueError, match=r"batch_norm_momentum must be a number in \[0, 1\) or None, got 1.5"):
        MobileNetV2Encoder(image_size=32, alpha=0.35, batch_norm_momentum=1.5)


def test_full_model_file_is_matched_by_layer_name(tmp_path):
    """A fine-tuned classifier saved as .keras (backbone + new top) feeds our backbone."""
    base = keras.applications.MobileNetV2(include_top=False, weights=None, input_shape=(32, 32, 3), alpha=0.35, pooling="avg")
    classifier = keras.Sequential([keras.Input((32, 32, 3)), base, keras.layers.Dense(3)])
    path = str(tmp_path / "classifier.keras")
    classifier.save(path)
    encoder = MobileNetV2Encoder(image_size=32, alpha=0.35)
    loaded = load_pretrained_weights(encoder.backbone, path)
    assert loaded == len([layer for layer in base.layers if layer.weights])  # every weighted layer matched
    x = _pixels(32)
    assert_same_features(encoder({"": x}), base(x / 127.5 - 1.0))
    assert_differs(MobileNetV2Encoder(image_size=32, alpha=0.35)({"": x}), base(x / 127.5 - 1.0))


def test_unrelated_file_is_rejected(tmp_path):
    other = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, name="zzz")])
    path = str(tmp_path / "other.keras")
    other.save(path)
    with pytest.raises(ValueError, match="No layer of .* matches"):
        MobileNetV2Encoder(image_size=32, alpha=0.35, weights=path)


def test_fine_tune_last_n_and_frozen_backbone():
    encoder = MobileNetV2Encoder(image_size=32, alpha=0.35, fine_tune_last_n=3)
    weighted = [layer for layer in encoder.backbone.layers if layer.weights]
    assert [layer.trainable for layer in weighted[-3:]] == [True] * 3
    assert not any(layer.trainable for layer in weighted[:-3])
    frozen = keras_mm.build_model(encoders={"image": {"name": "mobilenet_v2", "image_size": 32, "alpha": 0.35, "trainable": False}}, num_classes=2)
    assert frozen.feature_encoders["image"].trainable_weights == []
    with pytest.raises(ValueError, match="fine_tune_last_n=999 must be between 0 and"):
        MobileNetV2Encoder(image_size=32, alpha=0.35, fine_tune_last_n=999)


def test_vgg16_caffe_normalisation_inside_the_model():
    encoder = VGG16Encoder(image_size=32)
    x = _pixels(32)
    expected = encoder.pool(encoder.backbone(keras.applications.vgg16.preprocess_input(x.copy())))
    np.testing.assert_allclose(encoder({"": x}).numpy(), expected.numpy(), atol=1e-4)
    assert encoder.output_dim == 512


def test_mobilenet_normalisation_matches_keras_applications():
    encoder = MobileNetV2Encoder(image_size=32, alpha=0.35)
    x = _pixels(32)
    expected = encoder.pool(encoder.backbone(keras.applications.mobilenet_v2.preprocess_input(x.copy())))
    assert_same_features(encoder({"": x}), expected)
    assert_differs(encoder({"": x / 255.0}), expected)  # another normalisation would be caught


def test_image_size_and_pooling_are_configurable():
    encoder = MobileNetV2Encoder(image_size=(48, 64), alpha=0.35, pooling="max")
    assert encoder.input_signature() == {"": ((48, 64, 3), "float32")}
    x = np.random.default_rng(0).uniform(0, 255, size=(2, 48, 64, 3)).astype("float32")
    grid = encoder.backbone(keras.applications.mobilenet_v2.preprocess_input(x.copy())).numpy()
    assert grid.shape[1:3] == (2, 2)  # a non-square input keeps its aspect through the backbone
    # "max" pools the spatial map by its maximum, not its mean
    assert_same_features(encoder({"": x}), grid.max(axis=(1, 2)))
    assert_differs(grid.mean(axis=(1, 2)), grid.max(axis=(1, 2)))
