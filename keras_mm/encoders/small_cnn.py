"""A small convolutional image encoder for fast experiments and tests."""

import keras

from keras_mm.encoders.base import Encoder
from keras_mm.layers.image_standardization import PerImageStandardization
from keras_mm.preprocessing.image import WHITE, ImagePreprocessor, image_size_pair, validate_background
from keras_mm.registry import register_encoder


#: what ``SmallCNNEncoder(input_normalization=...)`` does to the 0..255 pixels before the first convolution
INPUT_NORMALIZATIONS = ("per_image", "rescale")


@register_encoder("small_cnn")
class SmallCNNEncoder(Encoder):
    """A few Conv2D + max-pool blocks and global average pooling.

    Args:
        image_size: ``(height, width)`` or an int (default 32).
        filters: output channels of each block.
        dropout: dropout before the output.
        input_normalization: ``"per_image"`` (default): each image to zero
            mean and unit variance (:class:`keras_mm.layers.PerImageStandardization`);
            ``"rescale"``: pixels / 255 only (models saved before this option
            reload with it). Per image, a network trained from scratch leaves
            chance sooner and ends higher on mostly-white pages: image alone
            0.582 -> 0.651 on AV-Digits (3 seeds), 0.275 -> 0.304 on
            OpenClipart (5 seeds), ``benchmarks/results/fusion_*_defaults_2026-12-07c.json``.
            It discards each image's overall brightness and contrast: where
            those are the label, use ``"rescale"``.
        background: ``(R, G, B)`` integers in 0..255 that transparent PNG/GIF
            pixels are composited onto by the preprocessor (default white).

    Example:
        >>> enc = keras_mm.encoders.SmallCNNEncoder(image_size=32, filters=(8, 16))
        >>> enc({"": np.zeros((2, 32, 32, 3), "float32")}).shape
        TensorShape([2, 16])
    """

    modality = "image"
    example_config = {"image_size": 16, "filters": [4, 8]}
    resume_identity = ("input_normalization",)
    resume_identity_unrecorded = {"input_normalization": "rescale"}

    def __init__(self, image_size=32, filters=(16, 32, 64), dropout=0.0, background=WHITE, input_normalization="per_image",
                 **kwargs):
        super().__init__(**kwargs)
        if not filters:
            raise ValueError("filters must name at least one block, e.g. (16, 32).")
        if input_normalization not in INPUT_NORMALIZATIONS:
            raise ValueError(f"small_cnn: input_normalization={input_normalization!r} is not one of {list(INPUT_NORMALIZATIONS)}.")
        self.input_normalization = input_normalization
        self.image_size = image_size_pair(image_size)
        self.filters = tuple(int(f) for f in filters)
        self.dropout = float(dropout)
        self.background = validate_background(background)
        self.rescale = keras.layers.Rescaling(1.0 / 255.0)
        self.standardize = PerImageStandardization() if input_normalization == "per_image" else None
        self.blocks = []
        for i, f in enumerate(self.filters):
            self.blocks.append(keras.layers.Conv2D(f, 3, padding="same", activation="relu", name=f"conv_{i}"))
            self.blocks.append(keras.layers.MaxPooling2D(2, padding="same", name=f"pool_{i}"))
        self.pool = keras.layers.GlobalAveragePooling2D()
        self.dropout_layer = keras.layers.Dropout(self.dropout)

    def input_signature(self):
        return {"": ((*self.image_size, 3), "float32")}

    def build_preprocessor(self, feature):
        return ImagePreprocessor(feature, self.image_size, self.background)

    @property
    def output_dim(self):
        return self.filters[-1]

    def call(self, inputs, training=None, return_sequence=False):
        x = self.rescale(inputs[""])
        if self.standardize is not None:
            x = self.standardize(x)
        for layer in self.blocks:
            x = layer(x)
        pooled = self.dropout_layer(self.pool(x), training=training)
        grid = self.flatten_grid(x) if return_sequence else None
        return self.encoder_outputs(pooled, grid, None, return_sequence)

    def get_config(self):
        config = super().get_config()
        config.update({"image_size": list(self.image_size), "filters": list(self.filters), "dropout": self.dropout,
                       "background": list(self.background), "input_normalization": self.input_normalization})
        return config

    @classmethod
    def from_config(cls, config):
        # models saved before input_normalization existed fed the convolutions pixels / 255
        return cls(**{"input_normalization": "rescale", **config})
