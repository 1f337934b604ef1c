"""Training on one or many devices with checkpoint/resume."""

from keras_mm.training.balance import (
    AuxiliaryLossSteps,
    GradientBlendingSteps,
    OGMGESteps,
    list_balance_methods,
    register_balance,
)
from keras_mm.training.early_stopping import EarlyStopping
from keras_mm.training.epoch_logger import EpochLogger
from keras_mm.training.head_combination import fit_head_combination
from keras_mm.training.state import TrainingHistory, TrainState
from keras_mm.training.steps import TrainingSteps
from keras_mm.training.strategy import distribute_global_batches, resolve_strategy, split_cpu
from keras_mm.training.trainer import train

__all__ = [
    "AuxiliaryLossSteps",
    "EarlyStopping",
    "GradientBlendingSteps",
    "OGMGESteps",
    "EpochLogger",
    "TrainState",
    "TrainingHistory",
    "TrainingSteps",
    "distribute_global_batches",
    "fit_head_combination",
    "list_balance_methods",
    "register_balance",
    "resolve_strategy",
    "split_cpu",
    "train",
]
