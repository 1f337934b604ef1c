"""Registered fusions, one module each. Importing this package registers them."""

from keras_mm.fusions.attention import AttentionFusion
from keras_mm.fusions.base import Fusion
from keras_mm.fusions.concat import ConcatFusion

__all__ = ["AttentionFusion", "ConcatFusion", "Fusion"]
