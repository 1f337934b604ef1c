"""Log-linear combination of a model's fused prediction and its unimodal (auxiliary) heads."""

import keras
import numpy as np
from keras import ops

from keras_mm.naming import auxiliary_name


def fused_head_alone(num_branches):
    """The weights ``[1, 0, ..., 0]`` of ``num_branches`` branches: the fused head alone.

    Example:
        >>> from keras_mm.layers.head_combination import fused_head_alone
        >>> fused_head_alone(3).tolist()
        [1.0, 0.0, 0.0]
    """
    weights = np.zeros(num_branches, "float32")
    weights[0] = 1.0
    return weights


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
        self.combination_weights = self.add_weight(
            shape=(1 + len(self.features),), initializer=keras.initializers.Constant(fused_head_alone(1 + len(self.features))),
            trainable=False, name="combination_weights")

    @property
    def branch_names(self):
        """``["output", "aux_<feature>", ...]``: what each weight multiplies."""
        return ["output", *(auxiliary_name(f) for f in self.features)]

    def reset(self):
        """Weights back to ``[1, 0, ..., 0]``: the fused prediction alone."""
        self.combination_weights.assign(fused_head_alone(1 + len(self.features)))

    def branch_log_probabilities(self, fused, auxiliary, presence):
        """``[batch, classes, branches]``: each branch's clipped log-probabilities, zero where its feature is missing.

        The pool is these times the weights, summed over branches; fitting the
        weights (:func:`keras_mm.training.fit_head_combination`) reads them here too.
        """
        def log(p):
            return ops.log(ops.clip(ops.cast(p, "float32"), self.epsilon, 1.0))

        branches = [log(fused)]
        for feature in self.features:
            flag = ops.expand_dims(ops.cast(presence[feature], "float32"), -1)
            branches.append(flag * log(auxiliary[feature]))
        return ops.stack(branches, axis=-1)

    def call(self, fused, auxiliary, presence):
        logits = ops.sum(self.branch_log_probabilities(fused, auxiliary, presence) * self.combination_weights, axis=-1)
        return ops.softmax(logits, axis=-1)

    def compute_output_shape(self, fused_shape, auxiliary_shape=None, presence_shape=None):
        return fused_shape

    def get_config(self):
        config = super().get_config()
        config.update({"features": self.features, "epsilon": self.epsilon})
        return config
