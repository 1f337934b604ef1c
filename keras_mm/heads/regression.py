"""Regression head."""

from keras_mm.heads.base import Head
from keras_mm.registry import register_head


@register_head("regression")
class RegressionHead(Head):
    """Linear outputs (``num_outputs`` targets), mean squared error by default.

    Example:
        >>> model = keras_mm.build_model(encoders={"audio": "mfcc_cnn"}, head={"name": "regression", "num_outputs": 2})
    """

    default_loss = "mean_squared_error"
    default_metrics = ("mean_absolute_error",)

    def __init__(self, num_outputs=1, hidden_dims=(), dropout=0.0, **kwargs):
        if int(num_outputs) < 1:
            raise ValueError(f"num_outputs={num_outputs} must be >= 1.")
        super().__init__(num_outputs, hidden_dims, dropout, **kwargs)

    def get_config(self):
        return {**super().get_config(), "num_outputs": self.num_outputs}
