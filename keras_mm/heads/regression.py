"""Regression head."""

from keras_mm.evaluation.metrics import regression_summary
from keras_mm.heads.base import Head, HeadEvaluation
from keras_mm.registry import register_head


@register_head("regression")
class RegressionHead(Head):
    """Linear outputs (``num_outputs`` targets), mean squared error by default.

    Example:
        >>> model = keras_mm.build_model(encoders={"audio": "mfcc_cnn"}, head={"name": "regression", "num_outputs": 2})
        >>> model.head.evaluate_outputs(np.zeros((4, 2)), np.ones((4, 2))).metrics["mae"]
        1.0
    """

    default_loss = "mean_squared_error"
    default_metrics = ("mean_absolute_error",)
    primary_metric = "mae"
    higher_is_better = False

    def __init__(self, num_outputs=1, hidden_dims=(), dropout=0.0, **kwargs):
        if int(num_outputs) < 1:
            raise ValueError(f"num_outputs={num_outputs} must be >= 1.")
        super().__init__(num_outputs, hidden_dims, dropout, **kwargs)

    def evaluate_outputs(self, labels, outputs, class_names=None):
        return HeadEvaluation(regression_summary(labels, outputs))

    def get_config(self):
        return {**super().get_config(), "num_outputs": self.num_outputs}
