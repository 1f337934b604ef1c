"""Single-label classification head."""

import tensorflow as tf

from keras_mm.heads.base import Head
from keras_mm.registry import register_head


@register_head("classification")
class ClassificationHead(Head):
    """Softmax over ``num_classes`` mutually exclusive classes.

    Labels are integer class ids (sparse categorical cross-entropy).

    Example:
        >>> model = keras_mm.build_model(encoders={"image": "small_cnn"}, head="classification", num_classes=10)
        >>> model.compile(); model.fit(ds)
    """

    activation = "softmax"
    requires_num_classes = True
    example_config = {"num_classes": 3}
    default_loss = "sparse_categorical_crossentropy"
    default_metrics = ("sparse_categorical_accuracy",)

    def __init__(self, num_classes, hidden_dims=(), dropout=0.0, **kwargs):
        if int(num_classes) < 2:
            raise ValueError(f"num_classes={num_classes}: a classification head needs at least 2 classes (use head='binary').")
        self.num_classes = int(num_classes)
        super().__init__(self.num_classes, hidden_dims, dropout, **kwargs)

    def serving_outputs(self, y):
        # tf.argmax: keras' argmax adds bitcast ops (for -0.0) that TFLite lacks
        return {"probabilities": y, "class_id": tf.argmax(y, axis=-1, output_type=tf.int64)}

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes}
