"""Precomputed feature vectors as an encoder: embeddings computed once, passed to the fusion as they are."""

from keras import ops

from keras_mm.encoders.base import Encoder
from keras_mm.preprocessing.vector import VectorPreprocessor
from keras_mm.registry import register_encoder


@register_encoder("precomputed")
class PrecomputedEncoder(Encoder):
    """A precomputed vector (a frozen model's embedding, computed once) as a feature: returned unchanged.

    Frozen by default (it has no weights), so with the default
    ``feature_normalization`` (``"auto"``) the vector gets a ``LayerNormalization``
    before the fusion, like any frozen encoder's output. Raw input: the vector
    (``vector`` modality: ``.npy`` files in a manifest, float arrays at
    serving time); a vector of another size is marked missing.

    Args:
        dim: the vector's size.

    Example:
        >>> model = keras_mm.build_model(encoders={"clip": {"name": "precomputed", "dim": 4}, "audio": "mfcc_cnn"},
        ...                              num_classes=3)
        >>> model.preprocessor({"clip": [0.1, 0.2, 0.3, 0.4], "audio": np.ones(16000, "float32")})["clip_present"].numpy()
        np.float32(1.0)
        >>> sorted(model.feature_norms)  # frozen: normalised before the fusion
        ['clip']
    """

    modality = "vector"
    example_config = {"dim": 8}

    def __init__(self, dim, **kwargs):
        kwargs.setdefault("trainable", False)
        super().__init__(**kwargs)
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
            raise ValueError(f"dim={dim!r}: the precomputed vector's size, a positive integer.")
        self.dim = dim

    def input_signature(self):
        return {"": ((self.dim,), "float32")}

    def build_preprocessor(self, feature):
        return VectorPreprocessor(feature, self.dim)

    @property
    def output_dim(self):
        return self.dim

    def call(self, inputs, training=None):
        return ops.cast(inputs[""], self.compute_dtype)

    def get_config(self):
        return {**super().get_config(), "dim": self.dim}
