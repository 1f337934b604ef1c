"""Multi-label classification head."""

import numpy as np
import tensorflow as tf

from keras_mm.evaluation.metrics import multilabel_summary
from keras_mm.heads.base import Head, HeadEvaluation, checked_class_names
from keras_mm.registry import register_head


@register_head("multilabel")
class MultilabelHead(Head):
    """Independent sigmoids over ``num_classes`` labels; targets are multi-hot vectors.

    The decision is ``probability > 0.5`` per label.

    Example:
        >>> model = keras_mm.build_model(encoders={"image": "small_cnn"}, head="multilabel", num_classes=5)
        >>> model.head.decision(np.array([[0.9, 0.1, 0.6, 0.0, 0.4]], "float32")).numpy()
        array([[1, 0, 1, 0, 0]])
    """

    activation = "sigmoid"
    requires_num_classes = True
    example_config = {"num_classes": 3}
    default_loss = "binary_crossentropy"
    default_metrics = ("binary_accuracy",)
    primary_metric = "subset_accuracy"

    def __init__(self, num_classes, hidden_dims=(), dropout=0.0, class_names=None, **kwargs):
        if int(num_classes) < 1:
            raise ValueError(f"num_classes={num_classes} must be >= 1.")
        self.num_classes = int(num_classes)
        self._class_names = checked_class_names(class_names, self.num_classes, "multilabel")
        super().__init__(self.num_classes, hidden_dims, dropout, **kwargs)

    @property
    def class_count(self):
        return self.num_classes

    def decision(self, outputs):
        return tf.cast(outputs > 0.5, tf.int64)

    def serving_outputs(self, y):
        return {"probabilities": y, "labels": self.decision(y)}

    def evaluate_outputs(self, labels, outputs, class_names=None):
        metrics = multilabel_summary(labels, outputs, np.asarray(self.decision(outputs)))
        return HeadEvaluation(metrics, class_names=class_names or self.class_names)

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes, "class_names": self._class_names}
