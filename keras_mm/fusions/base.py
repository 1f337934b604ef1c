"""Base class of all fusions."""

import keras
from keras import ops


class Fusion(keras.layers.Layer):
    """Combines per-feature vectors into one representation.

    Contract: ``call(features, presence=None)`` takes a dict ``{feature:
    [batch, dim]}`` and optionally ``{feature: [batch]}`` presence flags (1 =
    present, 0 = missing for that sample), and returns a dict with at least
    ``"fused"`` (``[batch, output_dim]``). A missing modality must not affect
    the output (use :meth:`masked_features` / :meth:`presence_matrix`).
    Fusions may add named extras (e.g. ``"modality_weights"``) that
    ``build_model`` can expose as model outputs. Features are always processed
    in sorted key order.
    ``output_dim`` is known once the layer is built; ``compute_output_dim``
    gives it from the input sizes before that.

    Example:
        >>> fusion = keras_mm.fusions.ConcatFusion()
        >>> fusion.compute_output_dim({"image": 1280, "text": 384})
        1664
    """

    #: names of the extra outputs this fusion returns besides "fused".
    extra_outputs = ()
    #: token-level fusions set this: the model then also passes
    #: ``sequences={feature: [B, L, D]}`` and ``sequence_masks={feature: [B, L]}``
    #: (see ``Encoder.call(..., return_sequence=True)``).
    uses_sequences = False
    #: small constructor kwargs used by registry-wide tests and docs.
    example_config = {}
    #: the training recipe ``keras_mm.train`` uses when the caller gives no
    #: learning rate: ``learning_rate`` and ``warmup_epochs`` (linear warm-up);
    #: ``auto_feature_normalization``: what ``feature_normalization="auto"``
    #: becomes when ``keras_mm.train`` trains the fusion with auxiliary losses.
    recipe = {"learning_rate": 1e-3, "warmup_epochs": 0, "auto_feature_normalization": "layer"}

    def build(self, input_shape):
        self.input_dims = {k: int(input_shape[k][-1]) for k in sorted(input_shape)}
        if len(self.input_dims) < 1:
            raise ValueError(f"{type(self).__name__} needs at least one feature.")
        self.build_fusion(self.input_dims)

    @staticmethod
    def presence_matrix(features, presence):
        """``[batch, num_features]`` float32 flags in sorted key order (all ones when ``presence`` is None)."""
        keys = sorted(features)
        if presence is None:
            first = features[keys[0]]
            return ops.ones((ops.shape(first)[0], len(keys)), "float32")
        return ops.stack([ops.cast(ops.reshape(presence[k], (-1,)), "float32") for k in keys], axis=1)

    @staticmethod
    def masked_features(features, presence):
        """Features with missing samples zeroed (so their values cannot leak into the output)."""
        if presence is None:
            return dict(features)
        # where, not multiply: NaN * 0 is NaN, and a missing input must not leak.
        return {k: ops.where(ops.reshape(presence[k], (-1, 1)) > 0, features[k], 0.0) for k in features}

    def configure(self, modalities):
        """Called by the model with ``{feature: modality}`` before the first call (default: nothing)."""

    def build_fusion(self, input_dims):
        """Create sub-layers; ``input_dims`` is ``{feature: dim}``."""

    def compute_output_dim(self, input_dims):
        raise NotImplementedError

    @property
    def output_dim(self):
        if not self.built:
            raise ValueError(f"{type(self).__name__}.output_dim is known after the layer is built.")
        return self.compute_output_dim(self.input_dims)

    def compute_output_shape(self, input_shape):
        batch = next(iter(input_shape.values()))[0]
        dims = {k: int(v[-1]) for k, v in input_shape.items()}
        shapes = {"fused": (batch, self.compute_output_dim(dims))}
        if "modality_weights" in self.extra_outputs:
            shapes["modality_weights"] = (batch, len(dims))
        return shapes
