"""Evaluation reports, plots and robustness tables."""

from keras_mm.evaluation.metrics import confusion_matrix, precision_recall_f1, roc_auc
from keras_mm.evaluation.report import EvaluationReport, evaluate
from keras_mm.evaluation.robustness import RobustnessReport, evaluate_robustness

__all__ = ["EvaluationReport", "RobustnessReport", "confusion_matrix", "evaluate", "evaluate_robustness", "precision_recall_f1", "roc_auc"]
