"""Registered task heads, one module each. Importing this package registers them."""

from keras_mm.heads.base import Head, HeadEvaluation
from keras_mm.heads.binary import BinaryHead
from keras_mm.heads.classification import ClassificationHead
from keras_mm.heads.embedding import EmbeddingHead
from keras_mm.heads.multilabel import MultilabelHead
from keras_mm.heads.regression import RegressionHead

__all__ = ["BinaryHead", "ClassificationHead", "EmbeddingHead", "Head", "HeadEvaluation", "MultilabelHead", "RegressionHead"]
