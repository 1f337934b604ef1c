"""Single-label classification head."""

import numpy as np
import tensorflow as tf

from keras_mm.evaluation.metrics import classification_summary
from keras_mm.heads.base import Head, HeadEvaluation, checked_class_names
from keras_mm.registry import register_head


@register_head("classification")
class ClassificationHead(Head):
    """Softmax over ``num_classes`` mutually exclusive classes.

    Labels are integer class ids (sparse categorical cross-entropy). The
    decision is the argmax; ``class_names`` (optional, in id order) travel
    with the model (``.keras`` config, SavedModel ``class_name`` output).

    Args:
        num_classes: number of classes (>= 2).
        class_names: optional names of the classes in id order.
        hidden_dims, dropout: see :class:`Head`.

    Example:
        >>> model = keras_mm.build_model(encoders={"image": "small_cnn"}, num_classes=3)
        >>> model.head.decision(np.array([[0.1, 0.7, 0.2]], "float32")).numpy()
        array([1])
    """

    activation = "softmax"
    requires_num_classes = True
    example_config = {"num_classes": 3}
    default_loss = "sparse_categorical_crossentropy"
    default_metrics = ("sparse_categorical_accuracy",)
    primary_metric = "accuracy"

    def __init__(self, num_classes, hidden_dims=(), dropout=0.0, class_names=None, **kwargs):
        if int(num_classes) < 2:
            raise ValueError(f"num_classes={num_classes}: a classification head needs at least 2 classes (use head='binary').")
        self.num_classes = int(num_classes)
        self._class_names = checked_class_names(class_names, self.num_classes, "classification")
        super().__init__(self.num_classes, hidden_dims, dropout, **kwargs)

    @property
    def class_count(self):
        return self.num_classes

    def decision(self, outputs):
        # tf.argmax: keras' argmax adds bitcast ops (for -0.0) that TFLite lacks
        return tf.argmax(outputs, axis=-1, output_type=tf.int64)

    def serving_outputs(self, y):
        return {"probabilities": y, "class_id": self.decision(y)}

    def evaluate_outputs(self, labels, outputs, class_names=None):
        predicted = np.asarray(self.decision(outputs))
        names = class_names or self.class_names
        metrics, per_class, confusion = classification_summary(labels, predicted, self.num_classes, names)
        return HeadEvaluation(metrics, per_class, confusion, [r["name"] for r in per_class])

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes, "class_names": self._class_names}
