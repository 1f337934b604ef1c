"""Early fusion by concatenation."""

import keras

from keras_mm.fusions.base import Fusion
from keras_mm.registry import register_fusion


@register_fusion("concat")
class ConcatFusion(Fusion):
    """Concatenate the feature vectors (sorted by feature name).

    Args:
        projection_dim: ``None`` for pure concatenation; otherwise each feature
            is first projected to this size (Dense + activation), which keeps a
            1280-d image vector from drowning a 40-d audio one.
        activation: activation of the projections.
        dropout: dropout on the fused vector.

    Example:
        >>> fusion = keras_mm.fusions.ConcatFusion(projection_dim=64)  # each input projected to 64, then joined
        >>> fusion({"a": np.ones((2, 8)), "b": np.ones((2, 3))})["fused"].shape
        TensorShape([2, 128])
    """

    example_config = {"projection_dim": 8}

    def __init__(self, projection_dim=None, activation="relu", dropout=0.0, **kwargs):
        super().__init__(**kwargs)
        if projection_dim is not None and int(projection_dim) < 1:
            raise ValueError(f"projection_dim={projection_dim} must be None or a positive integer.")
        self.projection_dim = None if projection_dim is None else int(projection_dim)
        self.activation = activation
        self.dropout = float(dropout)
        self.dropout_layer = keras.layers.Dropout(self.dropout)

    def build_fusion(self, input_dims):
        self.projections = {}
        if self.projection_dim is not None:
            for key, dim in input_dims.items():
                layer = keras.layers.Dense(self.projection_dim, activation=self.activation, name=f"project_{key}")
                layer.build((None, dim))
                self.projections[key] = layer

    def compute_output_dim(self, input_dims):
        if self.projection_dim is None:
            return sum(input_dims.values())
        return self.projection_dim * len(input_dims)

    def call(self, features, presence=None, training=None):
        parts = []
        for key in sorted(features):
            x = features[key]
            if self.projection_dim is not None:
                x = self.projections[key](x)
            parts.append(x)
        if presence is not None:
            # Zero after projection: a missing modality contributes exactly zeros.
            parts = list(self.masked_features(dict(zip(sorted(features), parts)), presence).values())
        fused = parts[0] if len(parts) == 1 else keras.ops.concatenate(parts, axis=-1)
        return {"fused": self.dropout_layer(fused, training=training)}

    def get_config(self):
        config = super().get_config()
        config.update({"projection_dim": self.projection_dim, "activation": self.activation, "dropout": self.dropout})
        return config
