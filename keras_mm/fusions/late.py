"""Late (decision-level) fusion."""

import keras
from keras import ops

from keras_mm.fusions.base import Fusion
from keras_mm.registry import register_fusion


@register_fusion("late")
class LateFusion(Fusion):
    """Each modality decides on its own; decisions are averaged with learned weights.

    Each feature gets its own decision layer ``d_m = Dense(decision_dim)(x_m)``
    (optionally after a hidden layer); the output is ``Σ_m w_m d_m`` with
    ``w = softmax(learned logits)`` renormalised over the modalities present
    in each sample. The head is linear, so ``head(Σ w_m d_m) = Σ w_m head(d_m)``:
    a weighted average of per-modality logits, i.e. decision-level fusion.

    Args:
        decision_dim: size of each modality's decision vector.
        hidden_dim: optional hidden layer (ReLU) per modality before its decision.

    Example:
        >>> fusion = keras_mm.fusions.LateFusion(decision_dim=4)  # in a model: fusion={"name": "late", ...}
        >>> out = fusion({"audio": np.ones((2, 8)), "image": np.ones((2, 3))})
        >>> out["fused"].shape, out["modality_weights"].numpy()[0]  # equal weights before training
        (TensorShape([2, 4]), array([0.5, 0.5], dtype=float32))
    """

    extra_outputs = ("modality_weights",)
    example_config = {"decision_dim": 8}

    def __init__(self, decision_dim=64, hidden_dim=None, **kwargs):
        super().__init__(**kwargs)
        self.decision_dim = int(decision_dim)
        self.hidden_dim = None if hidden_dim is None else int(hidden_dim)

    def build_fusion(self, input_dims):
        self.hidden = {}
        self.decisions = {}
        for key, dim in input_dims.items():
            if self.hidden_dim:
                self.hidden[key] = keras.layers.Dense(self.hidden_dim, activation="relu", name=f"hidden_{key}")
                self.hidden[key].build((None, dim))
                dim = self.hidden_dim
            self.decisions[key] = keras.layers.Dense(self.decision_dim, name=f"decision_{key}")
            self.decisions[key].build((None, dim))
        self.weight_logits = self.add_weight(shape=(len(input_dims),), initializer="zeros", name="weight_logits")

    def compute_output_dim(self, input_dims):
        return self.decision_dim

    def call(self, features, presence=None, training=None):
        features = self.masked_features(features, presence)
        keys = sorted(features)
        decisions = []
        for key in keys:
            x = features[key]
            if self.hidden_dim:
                x = self.hidden[key](x)
            decisions.append(self.decisions[key](x))
        stacked = ops.stack(decisions, axis=1)  # [B, M, D]
        present = self.presence_matrix(features, presence)
        weights = ops.softmax(self.weight_logits)[None, :] * present
        weights = weights / ops.maximum(ops.sum(weights, axis=-1, keepdims=True), 1e-9)
        fused = ops.sum(stacked * ops.cast(weights[..., None], stacked.dtype), axis=1)
        return {"fused": fused, "modality_weights": weights}

    def get_config(self):
        return {**super().get_config(), "decision_dim": self.decision_dim, "hidden_dim": self.hidden_dim}
