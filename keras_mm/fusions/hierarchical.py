"""Hierarchical fusion: pairs of modalities first, then the pairs."""

import itertools

import keras
from keras import ops

from keras_mm.fusions.base import Fusion
from keras_mm.registry import register_fusion


@register_fusion("hierarchical")
class HierarchicalFusion(Fusion):
    """Fuse modality pairs (concat + Dense), then fuse the pair vectors.

    Args:
        pair_dim: size of each pair's fused vector.
        units: output size.
        pairs: the pairs to fuse first, e.g. ``[["image", "text"], ["text", "audio"]]``;
            default: every pair of features (a single feature passes through a Dense).

    Example:
        >>> fusion = keras_mm.fusions.HierarchicalFusion(pair_dim=16, units=32, pairs=[["image", "text"], ["audio", "text"]])
        >>> fusion({"audio": np.ones((2, 8)), "image": np.ones((2, 3)), "text": np.ones((2, 5))})["fused"].shape
        TensorShape([2, 32])
    """

    example_config = {"pair_dim": 8, "units": 8}

    def __init__(self, pair_dim=128, units=128, pairs=None, **kwargs):
        super().__init__(**kwargs)
        self.pair_dim = int(pair_dim)
        self.units = int(units)
        self.pairs = None if pairs is None else [list(p) for p in pairs]

    def _pairs(self, keys):
        if self.pairs is None:
            return [list(p) for p in itertools.combinations(keys, 2)] or [[keys[0]]]
        for pair in self.pairs:
            unknown = [k for k in pair if k not in keys]
            if unknown:
                raise ValueError(f"fusion 'hierarchical': pairs name {unknown}, not features of the model ({', '.join(keys)}).")
        return self.pairs

    def build_fusion(self, input_dims):
        keys = sorted(input_dims)
        self.pair_layers = {}
        for pair in self._pairs(keys):
            name = "__".join(pair)
            layer = keras.layers.Dense(self.pair_dim, activation="relu", name=f"pair_{name}")
            layer.build((None, sum(input_dims[k] for k in pair)))
            self.pair_layers[name] = (pair, layer)
        self.top = keras.layers.Dense(self.units, activation="relu", name="top")
        self.top.build((None, self.pair_dim * len(self.pair_layers)))

    def compute_output_dim(self, input_dims):
        return self.units

    def call(self, features, presence=None, training=None):
        features = self.masked_features(features, presence)
        pair_vectors = [
            layer(ops.concatenate([features[k] for k in pair], axis=-1) if len(pair) > 1 else features[pair[0]])
            for pair, layer in self.pair_layers.values()
        ]
        joined = pair_vectors[0] if len(pair_vectors) == 1 else ops.concatenate(pair_vectors, axis=-1)
        return {"fused": self.top(joined)}

    def get_config(self):
        return {**super().get_config(), "pair_dim": self.pair_dim, "units": self.units, "pairs": self.pairs}
