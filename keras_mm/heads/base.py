"""Base class of all task heads."""

import dataclasses

import keras
import numpy as np


@dataclasses.dataclass
class HeadEvaluation:
    """What a head reports about its outputs on labelled data.

    Attributes:
        metrics: scalar metrics by name (e.g. ``accuracy``, ``macro_f1``, ``mae``).
        per_class: one dict per class (name, precision, recall, f1, support), or ``None``.
        confusion: confusion matrix (rows: true class), or ``None``.
        class_names: names used in ``per_class`` and plots, or ``None``.
    """

    metrics: dict
    per_class: list = None
    confusion: np.ndarray = None
    class_names: list = None


class Head(keras.layers.Layer):
    """Maps the fused vector to task outputs and owns how they are decided and scored.

    The output layer is always float32. Subclasses set ``activation`` and
    ``default_loss``/``default_metrics`` (used by ``MultimodalModel.compile``
    and ``keras_mm.train`` when the user passes none), may require
    ``num_classes``, and define their evaluation:

    - :meth:`decision`: outputs -> the decision (class id, 0/1 labels, ...),
      in TensorFlow ops so the serving signature and the evaluation share it;
    - :meth:`evaluate_outputs`: labels and outputs -> :class:`HeadEvaluation`
      (used by ``keras_mm.evaluate`` and ``keras_mm.evaluate_robustness``);
    - ``primary_metric`` / ``higher_is_better``: the metric robustness tables track.

    Args:
        num_outputs: width of the output layer.
        hidden_dims: sizes of optional hidden Dense(relu) layers before the output.
        dropout: dropout before each Dense layer.

    Example:
        >>> head = keras_mm.heads.ClassificationHead(num_classes=3, class_names=["a", "b", "c"])
        >>> outputs = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]], "float32")
        >>> head.evaluate_outputs(np.array([0, 1]), outputs).metrics["accuracy"]
        0.5
    """

    activation = None
    requires_num_classes = False
    default_loss = None
    default_metrics = ()
    #: the metric robustness evaluation tracks (a key of ``evaluate_outputs(...).metrics``).
    primary_metric = None
    higher_is_better = True
    #: small constructor kwargs used by registry-wide tests and docs.
    example_config = {}

    def __init__(self, num_outputs, hidden_dims=(), dropout=0.0, **kwargs):
        super().__init__(**kwargs)
        self.num_outputs = int(num_outputs)
        self.hidden_dims = tuple(int(h) for h in hidden_dims)
        self.dropout = float(dropout)
        self.hidden_layers = [keras.layers.Dense(h, activation="relu", name=f"hidden_{i}") for i, h in enumerate(self.hidden_dims)]
        self.dropout_layer = keras.layers.Dropout(self.dropout)
        # float32 even under mixed precision: softmax/sigmoid and the loss need it.
        self.output_layer = keras.layers.Dense(self.num_outputs, activation=self.activation, dtype="float32", name="output")

    def build(self, input_shape):
        shape = tuple(input_shape)
        for layer in self.hidden_layers:
            layer.build(shape)
            shape = (*shape[:-1], layer.units)
        self.output_layer.build(shape)

    def call(self, x, training=None):
        for layer in self.hidden_layers:
            x = layer(self.dropout_layer(x, training=training))
        return self.output_layer(self.dropout_layer(x, training=training))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.num_outputs)

    @property
    def class_names(self):
        """Names of the classes in id order, when the head has classes and was given names."""
        return getattr(self, "_class_names", None)

    @property
    def class_count(self):
        """How many classes ``class_names`` names (``None``: the head has no classes to name)."""
        return None

    def name_classes(self, class_names):
        """Give the head's classes names, in id order (checked: ``class_count`` distinct names).

        Example:
            >>> head = keras_mm.heads.BinaryHead()
            >>> head.name_classes(["ham", "spam"])
            >>> head.class_names
            ['ham', 'spam']
            >>> keras_mm.heads.RegressionHead().name_classes(["low"])
            Traceback (most recent call last):
            ...
            ValueError: RegressionHead has no classes to name.
        """
        if self.class_count is None:
            raise ValueError(f"{type(self).__name__} has no classes to name.")
        self._class_names = checked_class_names(class_names, self.class_count, self.name)

    def decision(self, outputs):
        """The decision taken from head outputs (identity for heads that output the answer itself)."""
        return outputs

    def serving_outputs(self, y):
        """Named numeric outputs of the serving signatures for head output ``y``."""
        return {"predictions": y}

    def evaluate_outputs(self, labels, outputs, class_names=None):
        """Score head ``outputs`` against ``labels``; returns a :class:`HeadEvaluation`."""
        raise NotImplementedError(
            f"{type(self).__name__} defines no evaluation: implement evaluate_outputs(labels, outputs, class_names) "
            "returning keras_mm.heads.HeadEvaluation, and set primary_metric."
        )

    def score(self, labels, outputs):
        """``primary_metric`` of ``outputs`` against ``labels`` (robustness tables)."""
        metrics = self.evaluate_outputs(labels, outputs).metrics
        if self.primary_metric not in metrics:
            raise ValueError(f"{type(self).__name__}.primary_metric={self.primary_metric!r} is not in its metrics {sorted(metrics)}.")
        return metrics[self.primary_metric]

    def get_config(self):
        config = super().get_config()
        config.update({"hidden_dims": list(self.hidden_dims), "dropout": self.dropout})
        return config


def checked_class_names(class_names, num_classes, head):
    """``class_names`` as a list of ``num_classes`` distinct strings (or ``None``); errors name the head."""
    if class_names is None:
        return None
    names = [str(c) for c in class_names]
    if len(names) != num_classes:
        raise ValueError(f"head {head!r}: class_names has {len(names)} names but num_classes={num_classes}: {names}")
    if len(set(names)) != len(names):
        raise ValueError(f"head {head!r}: class_names has duplicates: {names}")
    return names
