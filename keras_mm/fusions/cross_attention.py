"""Cross-modal attention: one modality's tokens attend over the others' tokens."""

import keras
from keras import ops

from keras_mm.fusions.base import Fusion
from keras_mm.registry import register_fusion


@register_fusion("cross_attention")
class CrossAttentionFusion(Fusion):
    """Query tokens (e.g. words) attend over every other feature's tokens (image grid cells, audio frames).

    The "question over image regions" alignment: for each context feature
    ``c`` a multi-head attention block takes the projected query sequence as
    queries and the projected sequence of ``c`` as keys/values (the encoder's
    spatial map or frames, not its pooled vector), followed by a residual
    connection and LayerNorm; the attended query tokens are averaged over the
    valid (non-padding) query positions. The output concatenates the projected
    pooled query vector and one attended vector per context feature:
    ``hidden_dim * num_features`` values.

    Missing modalities: a missing context contributes zeros; a missing query
    is replaced by a learned null query token, so the other modalities still
    give an answer. Attention maps ``[batch, num_heads, query_len,
    context_len]`` (rows sum to 1 over the valid context positions) are
    returned as extras ``"attention_<context>"`` when
    ``return_attention_maps=True``.

    Args:
        query: the feature whose tokens ask (default: the text feature when
            there is exactly one, else the first feature in sorted order).
        hidden_dim: size of the projected tokens; divisible by ``num_heads``.
        num_heads: attention heads.
        dropout: dropout on the attention weights and the fused vector.
        return_attention_maps: also return the attention maps as extras
            (model outputs with ``return_extras=True`` and in the export).

    Example:
        >>> model = keras_mm.build_model(preset="tiny_cross_attention", num_classes=3, return_extras=True,
        ...     fusion={"name": "cross_attention", "hidden_dim": 16, "num_heads": 2, "return_attention_maps": True})
        >>> x = model.preprocessor.process_batch(model.preprocessor.example_raw(4))
        >>> model(x)["attention_image"].shape  # [batch, heads, words, image cells]: 8 tokens over a 4x4 grid
        TensorShape([4, 2, 8, 16])
    """

    uses_sequences = True
    example_config = {"hidden_dim": 8, "num_heads": 2, "return_attention_maps": True}

    def __init__(self, query=None, hidden_dim=128, num_heads=4, dropout=0.0, return_attention_maps=False, **kwargs):
        super().__init__(**kwargs)
        if int(hidden_dim) < 1 or int(num_heads) < 1 or int(hidden_dim) % int(num_heads):
            raise ValueError(
                f"fusion 'cross_attention': hidden_dim={hidden_dim} must be a positive multiple of num_heads={num_heads}."
            )
        self.query = query
        self.hidden_dim, self.num_heads = int(hidden_dim), int(num_heads)
        self.dropout = float(dropout)
        self.return_attention_maps = bool(return_attention_maps)
        self._default_query = None
        self.dropout_layer = keras.layers.Dropout(self.dropout)

    def configure(self, modalities):
        text = [k for k in sorted(modalities) if modalities[k] == "text"]
        self._default_query = text[0] if len(text) == 1 else None

    @property
    def contexts(self):
        return [k for k in self.input_dims if k != self.query]

    @property
    def extra_outputs(self):
        if not self.return_attention_maps or not self.built:
            return ()
        return tuple(f"attention_{c}" for c in self.contexts)

    def build(self, features_shape, presence_shape=None, sequences_shape=None, sequence_masks_shape=None):
        self.input_dims = {k: int(features_shape[k][-1]) for k in sorted(features_shape)}
        if self.query is None:
            self.query = self._default_query or sorted(self.input_dims)[0]
        if self.query not in self.input_dims:
            raise ValueError(
                f"fusion 'cross_attention': query={self.query!r} is not a feature. "
                f"Allowed: {', '.join(self.input_dims)}"
            )
        if sequences_shape is None:
            # Built from pooled vectors only (e.g. a direct call): each vector is a one-token sequence.
            sequences_shape = {k: (None, 1, d) for k, d in self.input_dims.items()}
        missing = sorted(set(self.input_dims) - set(sequences_shape))
        if missing:
            raise ValueError(f"fusion 'cross_attention': no token sequence for feature(s) {missing}.")
        self.sequence_dims = {k: int(sequences_shape[k][-1]) for k in self.input_dims}
        self.pooled_projection = keras.layers.Dense(self.hidden_dim, name="project_pooled_query")
        self.pooled_projection.build((None, self.input_dims[self.query]))
        self.query_projection = keras.layers.Dense(self.hidden_dim, name="project_query_tokens")
        self.query_projection.build((None, None, self.sequence_dims[self.query]))
        self.null_query = self.add_weight(shape=(1, 1, self.hidden_dim), initializer="zeros", name="null_query")
        self.context_projections, self.attentions, self.norms = {}, {}, {}
        for c in self.contexts:
            self.context_projections[c] = keras.layers.Dense(self.hidden_dim, name=f"project_{c}_tokens")
            self.context_projections[c].build((None, None, self.sequence_dims[c]))
            self.attentions[c] = keras.layers.MultiHeadAttention(
                self.num_heads, self.hidden_dim // self.num_heads, dropout=self.dropout, name=f"attend_{c}"
            )
            self.attentions[c].build((None, None, self.hidden_dim), (None, None, self.hidden_dim))
            self.norms[c] = keras.layers.LayerNormalization(name=f"norm_{c}")
            self.norms[c].build((None, None, self.hidden_dim))
        self.built = True

    def compute_output_dim(self, input_dims):
        return self.hidden_dim * len(input_dims)

    def compute_output_spec(self, features, presence=None, sequences=None, sequence_masks=None, training=None):
        batch = next(iter(features.values())).shape[0]
        specs = {"fused": keras.KerasTensor((batch, self.output_dim), dtype=self.compute_dtype)}
        if self.return_attention_maps:
            q_len = sequences[self.query].shape[1] if sequences is not None else 1
            for c in self.contexts:
                c_len = sequences[c].shape[1] if sequences is not None else 1
                specs[f"attention_{c}"] = keras.KerasTensor((batch, self.num_heads, q_len, c_len), dtype="float32")
        return specs

    @staticmethod
    def _masked_mean(tokens, mask):
        weights = ops.cast(ops.expand_dims(mask, -1), tokens.dtype)
        return ops.sum(tokens * weights, axis=1) / ops.maximum(ops.sum(weights, axis=1), 1.0)

    def call(self, features, presence=None, sequences=None, sequence_masks=None, training=None):
        features = self.masked_features(features, presence)
        if sequences is None:
            sequences = {k: ops.expand_dims(v, 1) for k, v in features.items()}
        keys = sorted(features)
        present = self.presence_matrix(features, presence) > 0  # [B, M]
        is_present = {k: present[:, i] for i, k in enumerate(keys)}
        tokens, masks = {}, {}
        for k in keys:
            # Missing samples' tokens are zeroed (where, not multiply: NaN * 0 is NaN).
            tokens[k] = ops.where(ops.reshape(is_present[k], (-1, 1, 1)), sequences[k], 0.0)
            if sequence_masks is not None and k in sequence_masks:
                masks[k] = ops.cast(sequence_masks[k], "float32") > 0
            else:
                masks[k] = ops.ones(ops.shape(tokens[k])[:2], "bool")

        q_present = is_present[self.query]
        query = self.query_projection(tokens[self.query])
        query = ops.where(ops.reshape(q_present, (-1, 1, 1)), query, ops.cast(self.null_query, query.dtype))
        first_position = ops.expand_dims(ops.arange(ops.shape(query)[1]) == 0, 0)
        query_mask = ops.where(ops.reshape(q_present, (-1, 1)), masks[self.query], first_position)

        pooled_query = self.pooled_projection(features[self.query])
        parts = [ops.where(ops.reshape(q_present, (-1, 1)), pooled_query, 0.0)]
        outputs = {}
        for c in self.contexts:
            context = self.context_projections[c](tokens[c])
            attention_mask = ops.logical_and(ops.expand_dims(query_mask, 2), ops.expand_dims(masks[c], 1))
            attended, scores = self.attentions[c](
                query, context, attention_mask=attention_mask, return_attention_scores=True, training=training
            )
            attended = self.norms[c](query + attended)
            pooled = self._masked_mean(attended, query_mask)
            parts.append(ops.where(ops.reshape(is_present[c], (-1, 1)), pooled, 0.0))
            if self.return_attention_maps:
                outputs[f"attention_{c}"] = ops.cast(scores, "float32")
        fused = self.dropout_layer(ops.concatenate(parts, axis=-1), training=training)
        return {"fused": fused, **outputs}

    def get_config(self):
        return {
            **super().get_config(),
            "query": self.query,
            "hidden_dim": self.hidden_dim,
            "num_heads": self.num_heads,
            "dropout": self.dropout,
            "return_attention_maps": self.return_attention_maps,
        }
