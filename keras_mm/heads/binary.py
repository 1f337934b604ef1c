"""Binary classification head."""

import numpy as np
import tensorflow as tf

from keras_mm.evaluation.metrics import classification_summary, roc_auc
from keras_mm.heads.base import Head, HeadEvaluation, checked_class_names
from keras_mm.registry import register_head


@register_head("binary")
class BinaryHead(Head):
    """One sigmoid unit: the probability of the positive class; labels are 0/1.

    The decision is ``probability > threshold``.

    Args:
        threshold: decision threshold on the probability (default 0.5).
        class_names: optional ``[negative name, positive name]``.
        hidden_dims, dropout: see :class:`Head`.

    Example:
        >>> head = keras_mm.heads.BinaryHead(class_names=["ham", "spam"])
        >>> head.decision(np.array([[0.2], [0.9]], "float32")).numpy()
        array([0, 1])
    """

    activation = "sigmoid"
    default_loss = "binary_crossentropy"
    default_metrics = ("binary_accuracy",)
    primary_metric = "accuracy"

    def __init__(self, hidden_dims=(), dropout=0.0, threshold=0.5, class_names=None, **kwargs):
        if not 0.0 < float(threshold) < 1.0:
            raise ValueError(f"head 'binary': threshold={threshold} must be between 0 and 1.")
        self.threshold = float(threshold)
        self._class_names = checked_class_names(class_names, 2, "binary")
        super().__init__(1, hidden_dims, dropout, **kwargs)

    @property
    def class_count(self):
        return 2

    def decision(self, outputs):
        return tf.cast(outputs[:, 0] > self.threshold, tf.int64)

    def serving_outputs(self, y):
        return {"probability": y[:, 0], "class_id": self.decision(y)}

    def evaluate_outputs(self, labels, outputs, class_names=None):
        scores = np.asarray(outputs)[:, 0]
        predicted = np.asarray(self.decision(outputs))
        labels = np.asarray(labels).reshape(-1).astype(int)
        metrics, per_class, confusion = classification_summary(labels, predicted, 2, class_names or self.class_names)
        metrics["roc_auc"] = roc_auc(labels, scores)
        return HeadEvaluation(metrics, per_class, confusion, [r["name"] for r in per_class])

    def get_config(self):
        return {**super().get_config(), "threshold": self.threshold, "class_names": self._class_names}
