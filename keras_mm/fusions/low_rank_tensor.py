"""Low-rank multimodal tensor fusion (Liu et al., 2018)."""

from keras import ops

from keras_mm.fusions.base import Fusion
from keras_mm.registry import register_fusion


@register_fusion("low_rank_tensor")
class LowRankTensorFusion(Fusion):
    """Tensor fusion of ``[x_m, 1]`` vectors with rank-``r`` modality factors.

    The full tensor fusion ``W · (⊗_m [x_m, 1])`` is computed as
    ``Σ_i λ_i Π_m ([x_m, 1] W_m^(i)) + b`` without forming the outer product
    (Liu et al., "Efficient Low-rank Multimodal Fusion", ACL 2018). A missing
    modality contributes ``[0, 1]``, which keeps only its bias path.

    Args:
        units: output size.
        rank: number of rank-1 factors.

    Example:
        >>> fusion = keras_mm.fusions.LowRankTensorFusion(units=16, rank=4)
        >>> fusion({"a": np.ones((2, 4)), "b": np.ones((2, 3))})["fused"].shape
        TensorShape([2, 16])
    """

    example_config = {"units": 8, "rank": 2}

    def __init__(self, units=128, rank=4, **kwargs):
        super().__init__(**kwargs)
        if int(rank) < 1:
            raise ValueError(f"rank={rank} must be >= 1.")
        self.units = int(units)
        self.rank = int(rank)

    def build_fusion(self, input_dims):
        self.factors = {
            key: self.add_weight(shape=(self.rank, dim + 1, self.units), initializer="glorot_normal", name=f"factor_{key}")
            for key, dim in input_dims.items()
        }
        self.rank_weights = self.add_weight(shape=(self.rank,), initializer="glorot_normal", name="rank_weights")
        self.bias = self.add_weight(shape=(self.units,), initializer="zeros", name="bias")

    def compute_output_dim(self, input_dims):
        return self.units

    def call(self, features, presence=None, training=None):
        features = self.masked_features(features, presence)
        product = None
        for key in sorted(features):
            x = features[key]
            ones = ops.ones_like(x[:, :1])
            augmented = ops.concatenate([x, ones], axis=-1)  # [B, d+1]
            factor = ops.einsum("bd,rdu->bru", augmented, ops.cast(self.factors[key], x.dtype))  # [B, r, U]
            product = factor if product is None else product * factor
        fused = ops.einsum("bru,r->bu", product, ops.cast(self.rank_weights, product.dtype)) + ops.cast(self.bias, product.dtype)
        return {"fused": fused}

    def get_config(self):
        return {**super().get_config(), "units": self.units, "rank": self.rank}
