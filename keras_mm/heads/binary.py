"""Binary classification head."""

from keras import ops

from keras_mm.heads.base import Head
from keras_mm.registry import register_head


@register_head("binary")
class BinaryHead(Head):
    """One sigmoid unit: the probability of the positive class; labels are 0/1.

    Example:
        >>> model = keras_mm.build_model(encoders={"text": {"name": "lstm", "vocabulary": vocab}}, head="binary")
    """

    activation = "sigmoid"
    default_loss = "binary_crossentropy"
    default_metrics = ("binary_accuracy",)

    def __init__(self, hidden_dims=(), dropout=0.0, **kwargs):
        super().__init__(1, hidden_dims, dropout, **kwargs)

    def serving_outputs(self, y):
        probability = y[:, 0]
        return {"probability": probability, "class_id": ops.cast(probability > 0.5, "int64")}
