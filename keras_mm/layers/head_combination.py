"""Log-linear combination of a model's fused prediction and its unimodal (auxiliary) heads."""

import keras
import numpy as np
from keras import ops


@keras.saving.register_keras_serializable(package="keras_mm")
class HeadCombination(keras.layers.Layer):
    """``softmax(w_0 log p_fused + sum_k w_k present_k log p_k)``: one class distribution from several heads.

    ``p_fused`` is the fused head's softmax output, ``p_k`` the auxiliary head
    of feature ``k`` (its encoder output classified alone) and ``present_k``
    that feature's presence flag, so a missing modality's head has no say.
    The weights are a non-trainable variable, ``[1, 0, ..., 0]`` when built:
    the layer then returns ``p_fused`` (up to float rounding). ``keras_mm.train``
    fits them after training on the validation set (see
    :func:`keras_mm.training.fit_head_combination`); they are saved, reloaded
    and exported with the model. Log-linear pooling of the branches'
    probabilities is what the literature calls a product of experts; the
    weights also act as a temperature.

    Args:
        features: the features that have an auxiliary head, in the order of ``weights[1:]``.
        epsilon: probabilities are clipped to ``[epsilon, 1]`` before the log.

    Example:
        >>> layer = keras_mm.layers.HeadCombination(["image", "text"])
        >>> fused, image, text = np.array([[0.6, 0.4]]), np.array([[0.9, 0.1]]), np.array([[0.2, 0.8]])
        >>> present = {"image": np.ones(1), "text": np.ones(1)}
        >>> def show(probabilities):
        ...     return np.round(np.asarray(probabilities, "float64"), 3).tolist()
        >>> show(layer(fused, {"image": image, "text": text}, present))  # weights [1, 0, 0]
        [[0.6, 0.4]]
        >>> layer.set_weights([np.array([0.0, 1.0, 1.0])])  # image and text as a product of experts
        >>> show(layer(fused, {"image": image, "text": text}, present))
        [[0.692, 0.308]]
        >>> show(layer(fused, {"image": image, "text": text}, {"image": np.zeros(1), "text": np.ones(1)}))
        [[0.2, 0.8]]
    """

    def __init__(self, features, epsilon=1e-7, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.features = [str(f) for f in features]
        self.epsilon = float(epsilon)
        identity = np.zeros(1 + len(self.features), "float32")
        identity[0] = 1.0
        self.combination_weights = self.add_weight(
            shape=(1 + len(self.features),), initializer=keras.initializers.Constant(identity),
            trainable=False, name="combination_weights")

    @property
    def branch_names(self):
        """``["output", "aux_<feature>", ...]``: what each weight multiplies."""
        return ["output", *(f"aux_{f}" for f in self.features)]

    def reset(self):
        """Weights back to ``[1, 0, ..., 0]``: the fused prediction alone."""
        identity = np.zeros(1 + len(self.features), "float32")
        identity[0] = 1.0
        self.combination_weights.assign(identity)

    def _log(self, p):
        return ops.log(ops.clip(ops.cast(p, "float32"), self.epsilon, 1.0))

    def call(self, fused, auxiliary, presence):
        w = self.combination_weights
        logits = w[0] * self._log(fused)
        for i, feature in enumerate(self.features):
            flag = ops.expand_dims(ops.cast(presence[feature], "float32"), -1)
            logits = logits + (w[i + 1] * flag) * self._log(auxiliary[feature])
        return ops.softmax(logits, axis=-1)

    def compute_output_shape(self, fused_shape, auxiliary_shape=None, presence_shape=None):
        return fused_shape

    def get_config(self):
        config = super().get_config()
        config.update({"features": self.features, "epsilon": self.epsilon})
        return config
