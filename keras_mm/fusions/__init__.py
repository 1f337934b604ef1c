"""Registered fusions, one module each. Importing this package registers them."""

from keras_mm.fusions.attention import AttentionFusion
from keras_mm.fusions.base import Fusion
from keras_mm.fusions.concat import ConcatFusion
from keras_mm.fusions.cross_attention import CrossAttentionFusion
from keras_mm.fusions.gated import GatedFusion
from keras_mm.fusions.hierarchical import HierarchicalFusion
from keras_mm.fusions.late import LateFusion
from keras_mm.fusions.low_rank_tensor import LowRankTensorFusion
from keras_mm.fusions.transformer import TransformerFusion

__all__ = [
    "AttentionFusion",
    "ConcatFusion",
    "CrossAttentionFusion",
    "Fusion",
    "GatedFusion",
    "HierarchicalFusion",
    "LateFusion",
    "LowRankTensorFusion",
    "TransformerFusion",
]
