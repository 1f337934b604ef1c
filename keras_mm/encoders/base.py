"""Base class of all encoders."""

import inspect

import keras
from keras import ops


class Encoder(keras.layers.Layer):
    """A modality encoder: numeric inputs of one feature -> a ``[batch, output_dim]`` vector.

    Subclasses set ``modality`` and implement:

    - ``input_signature()``: ``{suffix: (shape_without_batch, dtype)}``; the
      model input is named ``<feature>`` for suffix ``""`` and
      ``<feature>_<suffix>`` otherwise.
    - ``call(inputs, training=None, return_sequence=False)``: ``inputs`` is a
      dict keyed by those suffixes. With ``return_sequence=True`` it returns
      ``{"pooled": [B, output_dim], "sequence": [B, L, sequence_dim],
      "sequence_mask": [B, L]}`` (word tokens, spatial cells of the feature
      map, audio frames), which token-level fusions such as
      ``cross_attention`` use; :meth:`encoder_outputs` builds that dict.
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
    #: settings that change what the weights compute without changing their shapes: a run resumed from a
    #: checkpoint must have the values it started with (``keras_mm.training.TrainState`` checks them).
    resume_identity = ()
    #: their values in runs whose checkpoints did not record them (an option added later: the old behaviour)
    resume_identity_unrecorded = {}

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
        if not self.trainable:
            # trainable=False given to the constructor does not reach the sub-layers created
            # after it, and a model collects trainable variables from every nested layer: the
            # property's setter propagates it (called directly: plain assignment did not reach
            # it on this Keras 3.15 / TF layer stack, measured).
            keras.layers.Layer.trainable.fset(self, False)
        self.built = True

    def __call__(self, *args, **kwargs):
        # A frozen encoder is a fixed feature extractor: it runs in inference mode (no dropout; batch
        # norms use their moving statistics) in training steps too, as Keras' transfer-learning guide
        # calls base_model(x, training=False). A functional model passes each step's `training` to
        # every layer, so the value is overridden here, not defaulted. Read at call (trace) time: an
        # encoder unfrozen for fine-tuning trains normally once the model is compiled again.
        if not self.trainable:
            kwargs["training"] = False
        return super().__call__(*args, **kwargs)

    def build_preprocessor(self, feature):
        raise NotImplementedError

    @staticmethod
    def encoder_outputs(pooled, sequence, mask, return_sequence):
        """``pooled`` alone, or the ``return_sequence=True`` dict (mask as float32 0/1).

        ``mask=None`` means every position is valid (grids, frames); nothing
        but ``pooled`` is computed when ``return_sequence`` is False.
        """
        if not return_sequence:
            return pooled
        if mask is None:
            mask = ops.ones(ops.shape(sequence)[:2], "float32")
        return {"pooled": pooled, "sequence": sequence, "sequence_mask": ops.cast(mask, "float32")}

    @staticmethod
    def flatten_grid(feature_map):
        """``[B, H, W, C]`` -> ``[B, H*W, C]`` (the spatial cells as a sequence)."""
        shape = ops.shape(feature_map)
        return ops.reshape(feature_map, (shape[0], -1, shape[-1]))

    @property
    def supports_sequences(self):
        """Whether ``call`` accepts ``return_sequence`` (needed by token-level fusions)."""
        return "return_sequence" in inspect.signature(self.call).parameters

    @property
    def sequence_dim(self):
        """Size of each element of the ``return_sequence=True`` sequence."""
        return self.output_dim

    def compute_output_spec(self, inputs, training=None, return_sequence=False):
        if return_sequence:
            return keras.src.backend.compute_output_spec(
                lambda x: self.call(x, training=training, return_sequence=True), inputs
            )
        first = next(iter(inputs.values()))
        return keras.KerasTensor((first.shape[0], self.output_dim), dtype=self.compute_dtype)
    @property
    def output_dim(self):
        raise NotImplementedError

