"""CLIP-style dual encoders for cross-modal retrieval."""

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from keras_mm.config import normalize_component
from keras_mm.models.builder import instantiate
from keras_mm.models.multimodal_model import encoder_inputs
from keras_mm.models.tracing import TracesTrainStepOnce
from keras_mm.naming import input_name, presence_name
from keras_mm.preprocessing.multimodal import MultimodalPreprocessor
from keras_mm.registry import ENCODERS


@keras.saving.register_keras_serializable(package="keras_mm")
class LogitScale(keras.layers.Layer):
    """A learnable temperature: returns ``min(exp(log_scale), max_scale)`` per sample.

    Example:
        >>> from keras_mm.models.dual_encoder import LogitScale
        >>> LogitScale(initial_temperature=0.07)(np.zeros((2, 4))).numpy()  # one 1/0.07 per sample
        array([14.285714, 14.285714], dtype=float32)
    """

    def __init__(self, initial_temperature=0.07, max_scale=100.0, **kwargs):
        super().__init__(**kwargs)
        self.initial_temperature = float(initial_temperature)
        self.max_scale = float(max_scale)

    def build(self, input_shape):
        self.log_scale = self.add_weight(
            shape=(), initializer=keras.initializers.Constant(np.log(1.0 / self.initial_temperature)), name="log_scale"
        )

    def call(self, reference):
        scale = ops.minimum(ops.exp(self.log_scale), self.max_scale)
        return ops.ones((ops.shape(reference)[0],), dtype="float32") * ops.cast(scale, "float32")

    def compute_output_shape(self, input_shape):
        return (input_shape[0],)

    def get_config(self):
        return {**super().get_config(), "initial_temperature": self.initial_temperature, "max_scale": self.max_scale}


def info_nce(a, b, scale, num_replicas=1, replica_id=0, gathered_a=None, gathered_b=None):
    """Symmetric InfoNCE over in-batch negatives (rows of ``a`` match rows of ``b``).

    With ``gathered_*`` (all replicas' embeddings), local rows are scored
    against every global column, so the loss equals the single-device loss
    on the global batch.
    """
    all_a = a if gathered_a is None else gathered_a
    all_b = b if gathered_b is None else gathered_b
    local = ops.shape(a)[0]
    labels = ops.arange(local) + replica_id * local
    logits_ab = scale * ops.matmul(a, ops.transpose(all_b))
    logits_ba = scale * ops.matmul(b, ops.transpose(all_a))
    ce = keras.losses.sparse_categorical_crossentropy
    return 0.5 * (ops.mean(ce(labels, logits_ab, from_logits=True)) + ops.mean(ce(labels, logits_ba, from_logits=True)))


@keras.saving.register_keras_serializable(package="keras_mm")
class DualEncoder(TracesTrainStepOnce, keras.Model):
    """Two towers mapping two modalities into one L2-normalised embedding space.

    Trained with the symmetric InfoNCE loss over in-batch negatives and a
    learnable, clipped temperature. Under a ``tf.distribute`` strategy the
    embeddings are gathered across replicas, so every sample sees the whole
    global batch as negatives (the loss equals the single-device one).
    Outputs ``{"a_embedding", "b_embedding", "logit_scale"}``.

    Build it with :func:`build_dual_encoder`; train with ``fit`` on raw
    inputs mapped through ``model.preprocessor`` (no labels needed).

    Example:
        >>> model = keras_mm.build_dual_encoder(
        ...     a={"image": {"name": "small_cnn", "image_size": 16, "filters": [8]}},
        ...     b={"text": {"name": "lstm", "vocabulary": ["a", "dog", "cat", "sat"], "units": 8}}, embed_dim=16)
        >>> x = model.preprocessor.process_batch(model.preprocessor.example_raw(8))  # image i pairs with text i
        >>> model.compile(optimizer="adam")
        >>> history = model.fit(x, batch_size=8, epochs=1, verbose=0)  # no labels: the other rows are negatives
        >>> sorted(model.retrieval_metrics([x], ks=(1, 5)))
        ['a_to_b_recall@1', 'a_to_b_recall@5', 'b_to_a_recall@1', 'b_to_a_recall@5']
    """

    def __init__(self, encoder_a, encoder_b, feature_a, feature_b, embed_dim=128, initial_temperature=0.07, max_logit_scale=100.0, **kwargs):
        # === Layers ===
        self.encoder_a, self.encoder_b = encoder_a, encoder_b
        self.projection_a = keras.layers.Dense(embed_dim, name="projection_a")
        self.projection_b = keras.layers.Dense(embed_dim, name="projection_b")
        self.normalize_a = keras.layers.UnitNormalization(name="normalize_a")
        self.normalize_b = keras.layers.UnitNormalization(name="normalize_b")
        self.logit_scale = LogitScale(initial_temperature, max_logit_scale, name="logit_scale")

        # === Functional Model ===
        inputs, towers = {}, []
        for feature, encoder in ((feature_a, encoder_a), (feature_b, encoder_b)):
            feature_inputs = encoder_inputs(feature, encoder)
            inputs.update({input_name(feature, kind): t for kind, t in feature_inputs.items()})
            towers.append(encoder(feature_inputs))
        a = self.normalize_a(ops.cast(self.projection_a(towers[0]), "float32"))
        b = self.normalize_b(ops.cast(self.projection_b(towers[1]), "float32"))
        super().__init__(inputs=inputs, outputs={"a_embedding": a, "b_embedding": b, "logit_scale": self.logit_scale(a)}, **kwargs)

        # === Config ===
        self.feature_a, self.feature_b = feature_a, feature_b
        self.embed_dim = int(embed_dim)
        self.initial_temperature = float(initial_temperature)
        self.max_logit_scale = float(max_logit_scale)

    @property
    def preprocessor(self):
        pre = MultimodalPreprocessor(
            {self.feature_a: self.encoder_a.build_preprocessor(self.feature_a), self.feature_b: self.encoder_b.build_preprocessor(self.feature_b)}
        )
        return _WithoutPresence(pre)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        a, b, scale = y_pred["a_embedding"], y_pred["b_embedding"], y_pred["logit_scale"][0]
        context = tf.distribute.get_replica_context()
        if context is not None and context.num_replicas_in_sync > 1:
            loss = info_nce(
                a, b, scale, replica_id=context.replica_id_in_sync_group,
                gathered_a=context.all_gather(a, axis=0), gathered_b=context.all_gather(b, axis=0),
            )
            # Keras sums gradients over replicas: scale as its own losses do.
            return loss / context.num_replicas_in_sync
        return info_nce(a, b, scale)

    def retrieval_metrics(self, data, ks=(1, 5, 10)):
        """Recall@k in both directions over a dataset of numeric input batches (row i matches row i)."""
        outs = [self(batch[0] if isinstance(batch, tuple) else batch, training=False) for batch in data]
        a = np.concatenate([np.asarray(o["a_embedding"]) for o in outs])
        b = np.concatenate([np.asarray(o["b_embedding"]) for o in outs])
        return retrieval_metrics(a, b, ks)

    def get_config(self):
        return {
            "name": self.name,
            "encoder_a": keras.layers.serialize(self.encoder_a),
            "encoder_b": keras.layers.serialize(self.encoder_b),
            "feature_a": self.feature_a,
            "feature_b": self.feature_b,
            "embed_dim": self.embed_dim,
            "initial_temperature": self.initial_temperature,
            "max_logit_scale": self.max_logit_scale,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["encoder_a"] = keras.layers.deserialize(config["encoder_a"])
        config["encoder_b"] = keras.layers.deserialize(config["encoder_b"])
        return cls(**config)


class _WithoutPresence:
    """The preprocessor of a dual encoder: like the model's, minus presence flags."""

    def __init__(self, preprocessor):
        self.inner = preprocessor
        self.presence_names = {presence_name(feature) for feature in preprocessor.features}

    def example_raw(self, batch_size, seed=0):
        return self.inner.example_raw(batch_size, seed)

    def process_batch(self, x):
        return {k: v for k, v in self.inner.process_batch(x).items() if k not in self.presence_names}

    def __call__(self, x, y=None, sample_weight=None):
        out = self.inner(x)
        out = {k: v for k, v in out.items() if k not in self.presence_names}
        return out if y is None else (out, y)


def retrieval_metrics(a, b, ks=(1, 5, 10)):
    """Recall@k for a->b and b->a retrieval where row i of ``a`` matches row i of ``b``.

    Example:
        >>> from keras_mm.models.dual_encoder import retrieval_metrics
        >>> retrieval_metrics(np.eye(3), np.eye(3))["a_to_b_recall@1"]
        1.0
        >>> retrieval_metrics(np.eye(3), np.eye(3)[[1, 0, 2]], ks=(1,))  # rows 0 and 1 swapped
        {'a_to_b_recall@1': 0.3333333333333333, 'b_to_a_recall@1': 0.3333333333333333}
    """
    similarity = np.asarray(a) @ np.asarray(b).T
    metrics = {}
    for direction, sim in (("a_to_b", similarity), ("b_to_a", similarity.T)):
        correct = np.diag(sim)[:, None]
        rank = (sim > correct).sum(axis=1)  # 0 = best
        for k in ks:
            metrics[f"{direction}_recall@{k}"] = float((rank < k).mean())
    return metrics


def build_dual_encoder(a, b, embed_dim=128, initial_temperature=0.07, max_logit_scale=100.0, name="dual_encoder"):
    """Build a CLIP-style dual encoder for any pair of modalities.

    Args:
        a, b: ``{feature: encoder name or {"name": ..., **kwargs}}`` with one feature each.
        embed_dim: size of the shared embedding space.
        initial_temperature: initial softmax temperature (logit scale = 1/T, learnable).
        max_logit_scale: the logit scale is clipped to this (CLIP uses 100).

    Example:
        >>> model = keras_mm.build_dual_encoder(a={"speech": {"name": "mfcc_cnn", "num_samples": 4000}},
        ...                                     b={"caption": {"name": "lstm", "vocabulary": ["one", "two", "three"]}},
        ...                                     embed_dim=32)
        >>> sorted(model.input), model.output["a_embedding"].shape
        (['caption_padding_mask', 'caption_token_ids', 'speech'], (None, 32))
    """
    towers = []
    for side, spec in (("a", a), ("b", b)):
        if not isinstance(spec, dict) or len(spec) != 1:
            raise ValueError(f"{side}: expected one feature, e.g. {{'image': 'mobilenet_v2'}}, got {spec!r}.")
        (feature, component), = spec.items()
        field = f"{side}[{feature!r}]"
        towers.append((feature, instantiate(ENCODERS, normalize_component(component, field), field, default_name=f"{feature}_encoder")))
    if towers[0][0] == towers[1][0]:
        raise ValueError(f"a and b need different feature names, got {towers[0][0]!r} twice.")
    return DualEncoder(towers[0][1], towers[1][1], towers[0][0], towers[1][0], embed_dim, initial_temperature, max_logit_scale, name=name)
