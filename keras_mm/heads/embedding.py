"""Embedding head for metric learning (retrieval, verification, few-shot)."""

from keras import ops

from keras_mm.evaluation.metrics import embedding_retrieval_metrics
from keras_mm.heads.base import Head, HeadEvaluation
from keras_mm.losses.triplet import TripletLoss
from keras_mm.registry import register_head


@register_head("embedding")
class EmbeddingHead(Head):
    """Projects the fused vector to an (optionally L2-normalised) embedding trained with a triplet loss.

    Labels are integer class/identity ids; the default loss is
    :class:`keras_mm.losses.TripletLoss` with this head's ``margin``,
    ``mining`` and ``distance``. Serving returns ``"embedding"``.

    Args:
        embedding_dim: size of the embedding.
        normalize: L2-normalise the output (recommended with the triplet loss).
        margin, mining, distance: triplet-loss settings (see ``TripletLoss``).
        hidden_dims, dropout: see ``Head``.

    Example:
        >>> model = keras_mm.build_model(encoders={"image": {"name": "small_cnn", "image_size": 16}},
        ...                              head={"name": "embedding", "embedding_dim": 8, "margin": 0.3})
        >>> model.compile()          # triplet loss, batch-all mining
        >>> x = model.preprocessor.process_batch(model.preprocessor.example_raw(8))
        >>> identities = np.arange(8) % 2
        >>> history = model.fit(x, identities, batch_size=4, epochs=1, verbose=0)
        >>> model.predict(x, verbose=0).shape
        (8, 8)
    """

    example_config = {"embedding_dim": 8}
    default_metrics = ()
    primary_metric = "recall_at_1"

    def __init__(self, embedding_dim=128, normalize=True, margin=0.2, mining="batch_all",
                 distance="squared_euclidean", hidden_dims=(), dropout=0.0, **kwargs):
        if int(embedding_dim) < 1:
            raise ValueError(f"head 'embedding': embedding_dim={embedding_dim} must be a positive integer.")
        self.embedding_dim = int(embedding_dim)
        self.normalize = bool(normalize)
        # validates margin/mining/distance with errors naming the allowed values
        self.triplet_loss = TripletLoss(margin=margin, mining=mining, distance=distance)
        super().__init__(self.embedding_dim, hidden_dims, dropout, **kwargs)

    @property
    def default_loss(self):
        return self.triplet_loss

    def call(self, x, training=None):
        y = super().call(x, training=training)
        if self.normalize:
            y = y / ops.maximum(ops.norm(y, axis=-1, keepdims=True), 1e-12)
        return y

    def serving_outputs(self, y):
        return {"embedding": y}

    def evaluate_outputs(self, labels, outputs, class_names=None):
        """Leave-one-out retrieval: recall@1/5 and mean same/other-label distances."""
        return HeadEvaluation(embedding_retrieval_metrics(outputs, labels))

    def get_config(self):
        loss = self.triplet_loss
        return {**super().get_config(), "embedding_dim": self.embedding_dim, "normalize": self.normalize,
                "margin": loss.margin, "mining": loss.mining, "distance": loss.distance}
