"""Training on one or many devices with checkpoint/resume."""

from keras_mm.training.strategy import distribute_global_batches, resolve_strategy, split_cpu
from keras_mm.training.trainer import TrainingHistory, train

__all__ = ["TrainingHistory", "distribute_global_batches", "resolve_strategy", "split_cpu", "train"]
