"""Gated multimodal unit fusion (Arevalo et al., 2017)."""

import keras
from keras import ops

from keras_mm.fusions.base import Fusion
from keras_mm.registry import register_fusion


@register_fusion("gated")
class GatedFusion(Fusion):
    """Gated multimodal unit: ``h_m = tanh(W_m x_m)``, gates from all inputs, ``Σ_m z_m ⊙ h_m``.

    The gates ``z = softmax_m(G_m [x_1, ..., x_M])`` are computed per output
    dimension from the concatenated inputs (with two modalities this is the
    GMU's ``z·h_1 + (1 - z)·h_2``); missing modalities get gate 0.

    Args:
        units: output size.

    Example:
        >>> fusion = keras_mm.fusions.GatedFusion(units=16)
        >>> fusion({"a": np.ones((2, 4)), "b": np.ones((2, 3))})["fused"].shape
        TensorShape([2, 16])
    """

    example_config = {"units": 8}

    def __init__(self, units=128, **kwargs):
        super().__init__(**kwargs)
        self.units = int(units)

    def build_fusion(self, input_dims):
        total = sum(input_dims.values())
        self.transforms, self.gates = {}, {}
        for key, dim in input_dims.items():
            self.transforms[key] = keras.layers.Dense(self.units, activation="tanh", name=f"transform_{key}")
            self.transforms[key].build((None, dim))
            self.gates[key] = keras.layers.Dense(self.units, name=f"gate_{key}")
            self.gates[key].build((None, total))

    def compute_output_dim(self, input_dims):
        return self.units

    def call(self, features, presence=None, training=None):
        features = self.masked_features(features, presence)
        keys = sorted(features)
        joined = ops.concatenate([features[k] for k in keys], axis=-1)
        hidden = ops.stack([self.transforms[k](features[k]) for k in keys], axis=1)  # [B, M, U]
        logits = ops.cast(ops.stack([self.gates[k](joined) for k in keys], axis=1), "float32")
        present = self.presence_matrix(features, presence)[..., None]  # [B, M, 1]
        logits = ops.where(present > 0, logits, -1e9)
        gates = ops.softmax(logits, axis=1) * present
        gates = gates / ops.maximum(ops.sum(gates, axis=1, keepdims=True), 1e-9)
        return {"fused": ops.sum(hidden * ops.cast(gates, hidden.dtype), axis=1)}

    def get_config(self):
        return {**super().get_config(), "units": self.units}
