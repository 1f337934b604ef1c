"""Training on one or many devices with checkpoint/resume."""

from keras_mm.training.early_stopping import EarlyStopping
from keras_mm.training.epoch_logger import EpochLogger
from keras_mm.training.state import TrainingHistory, TrainState
from keras_mm.training.steps import TrainingSteps
from keras_mm.training.strategy import distribute_global_batches, resolve_strategy, split_cpu
from keras_mm.training.trainer import train

__all__ = [
    "EarlyStopping",
    "EpochLogger",
    "TrainState",
    "TrainingHistory",
    "TrainingSteps",
    "distribute_global_batches",
    "resolve_strategy",
    "split_cpu",
    "train",
]
