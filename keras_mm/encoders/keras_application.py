"""Image encoders on ``keras.applications`` backbones (VGG16, MobileNetV2)."""

import os

import keras
from keras import ops

from keras_mm.encoders.base import Encoder
from keras_mm.encoders.pretrained_weights import load_pretrained_weights
from keras_mm.preprocessing.image import WHITE, ImagePreprocessor, image_size_pair, validate_background
from keras_mm.registry import register_encoder

_POOLINGS = ("avg", "max")


#: BatchNormalization momentum of a backbone trained from scratch (PyTorch's default, 0.1 there): moving
#: statistics that follow the weights within ~20 steps. MobileNetV2's 0.999, and even Keras' layer default 0.99,
#: left the statistics of a short from-scratch run (6 icon classes, 42 steps an epoch) near their start: the
#: inference-mode output was one class for every image (validation accuracy fixed at 0.248 for 5 epochs with
#: either); at 0.9 it rose from the first epochs.
SCRATCH_BATCH_NORM_MOMENTUM = 0.9


class KerasApplicationEncoder(Encoder):
    """Shared logic of image encoders built on a ``keras.applications`` model.

    The encoder takes float32 pixels in 0..255 and applies the backbone's own
    normalisation inside the model, so training and serving cannot disagree.

    Args:
        image_size: ``(height, width)`` or an int.
        weights: ``None`` (random init) or the path of a local weights file:
            a ``.weights.h5`` of this backbone, or a full Keras model
            (``.keras``/``.h5``) whose layers are matched by name and shape
            (e.g. a fine-tuned classifier built on the same backbone).
            ``"imagenet"`` is refused: nothing is downloaded at run time.
        trainable: whether the backbone trains at all.
        fine_tune_last_n: if set, only the last N weighted backbone layers train.
        pooling: ``"avg"`` or ``"max"`` global pooling.
        background: ``(R, G, B)`` integers in 0..255 that transparent PNG/GIF
            pixels are composited onto by the preprocessor (default white).
        batch_norm_momentum: the momentum of the backbone's BatchNormalization
            moving statistics. ``None``: :data:`SCRATCH_BATCH_NORM_MOMENTUM`
            (0.9) for a backbone trained from scratch (``weights=None``), the
            application's own (MobileNetV2: 0.999) for pretrained weights, whose
            statistics start right. At 0.999 a MobileNetV2 trained from scratch
            for ~340 steps kept ~70 % of its initial statistics and its
            inference-mode output was the same for every image.

    Example:
        >>> MobileNetV2Encoder(image_size=32, alpha=0.35).batch_norm_momentum   # from scratch
        0.9
    """

    modality = "image"
    application = None  # the keras.applications builder
    default_image_size = (224, 224)
    application_name = None

    def __init__(
        self,
        image_size=None,
        weights=None,
        trainable=True,
        fine_tune_last_n=None,
        pooling="avg",
        background=WHITE,
        batch_norm_momentum=None,
        **kwargs,
    ):
        super().__init__(trainable=trainable, **kwargs)
        self.image_size = image_size_pair(self.default_image_size if image_size is None else image_size)
        if pooling not in _POOLINGS:
            raise ValueError(f"pooling={pooling!r} is not supported. Allowed: {', '.join(_POOLINGS)}")
        if weights is not None and not isinstance(weights, (str, os.PathLike)):
            raise ValueError(f"weights must be None or a path to a local file, got {weights!r}.")
        if weights == "imagenet":
            raise ValueError(
                f"weights='imagenet' would download {self.application_name} weights at run time, "
                "and keras_mm never downloads. Pass weights='/path/to/file.weights.h5' "
                "(or a .keras/.h5 model built on the same backbone), or weights=None for random init."
            )
        self.pooling = pooling
        self.background = validate_background(background)
        self.fine_tune_last_n = fine_tune_last_n
        # The backbone keeps its spatial map (pooling=None); pooling is ours, so
        # token-level fusions can attend over the grid cells.
        self.backbone = self.build_backbone()
        pool_layer = keras.layers.GlobalAveragePooling2D if pooling == "avg" else keras.layers.GlobalMaxPooling2D
        self.pool = pool_layer(name=f"{pooling}_pool")
        if weights is not None:
            load_pretrained_weights(self.backbone, os.fspath(weights))
        if fine_tune_last_n is not None:
            weighted = [layer for layer in self.backbone.layers if layer.weights]
            if not 0 <= fine_tune_last_n <= len(weighted):
                raise ValueError(
                    f"fine_tune_last_n={fine_tune_last_n} must be between 0 and "
                    f"{len(weighted)} (weighted layers of {self.application_name})."
                )
            for i, layer in enumerate(weighted):
                layer.trainable = i >= len(weighted) - fine_tune_last_n
        self.batch_norm_momentum = self._set_batch_norm_momentum(batch_norm_momentum, from_scratch=weights is None)

    def _set_batch_norm_momentum(self, momentum, from_scratch):
        """Set the backbone's BatchNormalization momentum (see the class docs); the value in force, ``None`` without BN."""
        norms = [layer for layer in self.backbone._flatten_layers() if isinstance(layer, keras.layers.BatchNormalization)]
        if momentum is not None and (isinstance(momentum, bool) or not isinstance(momentum, (int, float))
                                     or not 0.0 <= momentum < 1.0):
            raise ValueError(f"batch_norm_momentum must be a number in [0, 1) or None, got {momentum!r}.")
        if not norms:
            return None
        if momentum is None:
            momentum = SCRATCH_BATCH_NORM_MOMENTUM if from_scratch else norms[0].momentum
        for layer in norms:
            layer.momentum = float(momentum)
        return float(momentum)

    def build_backbone(self):
        return self.application(include_top=False, weights=None, input_shape=(*self.image_size, 3), pooling=None)

    def normalize(self, pixels):
        raise NotImplementedError

    def input_signature(self):
        return {"": ((*self.image_size, 3), "float32")}

    def build_preprocessor(self, feature):
        return ImagePreprocessor(feature, self.image_size, self.background)

    @property
    def output_dim(self):
        return int(self.backbone.output.shape[-1])

    def call(self, inputs, training=None, return_sequence=False):
        grid = self.backbone(self.normalize(inputs[""]), training=training)
        sequence = self.flatten_grid(grid) if return_sequence else None
        return self.encoder_outputs(self.pool(grid), sequence, None, return_sequence)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "image_size": list(self.image_size),
                "weights": None,  # the saved model carries the weights
                "fine_tune_last_n": self.fine_tune_last_n,
                "batch_norm_momentum": self.batch_norm_momentum,  # the value in force: a reload keeps it
                "pooling": self.pooling,
                "background": list(self.background),
            }
        )
        return config


@register_encoder("mobilenet_v2")
class MobileNetV2Encoder(KerasApplicationEncoder):
    """MobileNetV2 image encoder (``keras.applications.MobileNetV2``, ``include_top=False``).

    Normalises pixels to [-1, 1] inside the model. Output: 1280 features (α=1).

    Args:
        alpha: width multiplier (0.35, 0.5, 0.75, 1.0, 1.3, 1.4).
        (other arguments: see ``KerasApplicationEncoder``).

    Example:
        >>> enc = MobileNetV2Encoder(image_size=160)
        >>> enc({"": np.zeros((1, 160, 160, 3), "float32")}).shape
        TensorShape([1, 1280])
    """

    application = staticmethod(keras.applications.MobileNetV2)
    application_name = "MobileNetV2"
    example_config = {"image_size": 32, "alpha": 0.35}

    def __init__(self, alpha=1.0, **kwargs):
        self.alpha = float(alpha)
        super().__init__(**kwargs)

    def build_backbone(self):
        return keras.applications.MobileNetV2(
            include_top=False,
            weights=None,
            input_shape=(*self.image_size, 3),
            pooling=None,
            alpha=self.alpha,
        )

    def normalize(self, pixels):
        return pixels / 127.5 - 1.0

    def get_config(self):
        return {**super().get_config(), "alpha": self.alpha}


@register_encoder("vgg16")
class VGG16Encoder(KerasApplicationEncoder):
    """VGG16 image encoder (``keras.applications.VGG16``, ``include_top=False``).

    Applies VGG's "caffe" normalisation (RGB->BGR, ImageNet mean subtracted)
    inside the model. Output: 512 features.

    Example:
        >>> enc = VGG16Encoder(image_size=64)  # weights="/path/vgg16_notop.weights.h5" loads a local file
        >>> enc({"": np.zeros((1, 64, 64, 3), "float32")}).shape
        TensorShape([1, 512])
        >>> VGG16Encoder(weights="imagenet")
        Traceback (most recent call last):
        ValueError: weights='imagenet' would download VGG16 weights at run time, and keras_mm never downloads. ...
    """

    application = staticmethod(keras.applications.VGG16)
    application_name = "VGG16"
    example_config = {"image_size": 32}
    _BGR_MEAN = (103.939, 116.779, 123.68)

    def normalize(self, pixels):
        bgr = ops.flip(pixels, axis=-1)
        return bgr - ops.convert_to_tensor(self._BGR_MEAN, dtype=bgr.dtype)
