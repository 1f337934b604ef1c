"""Multi-label classification head."""

from keras import ops

from keras_mm.heads.base import Head
from keras_mm.registry import register_head


@register_head("multilabel")
class MultilabelHead(Head):
    """Independent sigmoids over ``num_classes`` labels; targets are multi-hot vectors.

    Example:
        >>> model = keras_mm.build_model(encoders={"image": "small_cnn"}, head="multilabel", num_classes=5)
    """

    activation = "sigmoid"
    requires_num_classes = True
    example_config = {"num_classes": 3}
    default_loss = "binary_crossentropy"
    default_metrics = ("binary_accuracy",)

    def __init__(self, num_classes, hidden_dims=(), dropout=0.0, **kwargs):
        if int(num_classes) < 1:
            raise ValueError(f"num_classes={num_classes} must be >= 1.")
        self.num_classes = int(num_classes)
        super().__init__(self.num_classes, hidden_dims, dropout, **kwargs)

    def serving_outputs(self, y):
        return {"probabilities": y, "labels": ops.cast(y > 0.5, "int64")}

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes}
