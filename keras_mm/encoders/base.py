"""Base class of all encoders."""

import keras


class Encoder(keras.layers.Layer):
    """A modality encoder: numeric inputs of one feature -> a ``[batch, output_dim]`` vector.

    Subclasses set ``modality`` and implement:

    - ``input_signature()``: ``{suffix: (shape_without_batch, dtype)}``; the
      model input is named ``<feature>`` for suffix ``""`` and
      ``<feature>_<suffix>`` otherwise.
    - ``call(inputs)``: ``inputs`` is a dict keyed by those suffixes.
    - ``build_preprocessor(feature)``: the :class:`FeaturePreprocessor` that
      turns raw values into exactly those inputs.
    - ``output_dim``: size of the returned vector.

    Pretrained sources (``weights=`` files, ``checkpoint=`` directories) are
    used at construction only: ``get_config`` records the architecture, and a
    saved model carries the weights, so reloading never needs the source.

    Example:
        >>> @keras_mm.register_encoder("tiny_audio")
        ... class TinyAudio(keras_mm.encoders.Encoder):
        ...     modality = "audio"
        ...     ...
    """

    modality = None
    #: small constructor kwargs used by registry-wide tests and docs.
    example_config = {}

    def input_signature(self):
        raise NotImplementedError

    def build(self, input_shape=None):
        # Build every sub-layer now (not lazily on first call), so that a model
        # reloaded from .keras has all variables in place before weights load.
        specs = {
            suffix: keras.KerasTensor((None, *shape), dtype=dtype)
            for suffix, (shape, dtype) in self.input_signature().items()
        }
        keras.src.backend.compute_output_spec(self.call, specs)
        self.built = True

    def build_preprocessor(self, feature):
        raise NotImplementedError

    @property
    def output_dim(self):
        raise NotImplementedError

    def compute_output_shape(self, input_shape):
        first = next(iter(input_shape.values()))
        return (first[0], self.output_dim)
