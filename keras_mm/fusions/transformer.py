"""Transformer fusion over modality tokens and a learned fusion token."""

import keras
import keras_hub
from keras import ops

from keras_mm.fusions.base import Fusion
from keras_mm.registry import register_fusion


@register_fusion("transformer")
class TransformerFusion(Fusion):
    """Each modality becomes one token; a learned fusion token attends over them.

    Tokens: ``[fusion, proj_1(x_1) + e_1, ..., proj_M(x_M) + e_M]`` (``e_m``
    learned modality embeddings) through ``num_layers`` keras-hub
    ``TransformerEncoder`` blocks; missing modalities are masked out of the
    attention. The output is the fusion token's final state.

    Args:
        hidden_dim: token size (the output size).
        num_layers, num_heads, intermediate_dim, dropout: encoder settings.
        normalize_first: pre-LN blocks (LayerNorm before attention and the
            feed-forward, one more LayerNorm on the output), the default; ``False``
            gives post-LN blocks (models saved before this option reload as
            post-LN). With normalised encoder outputs (``keras_mm.train``'s
            default) pre-LN scored 0.780 on AV-Digits, where post-LN blocks sat
            at chance long enough for early stopping to end a run at 0.100.

    Example:
        >>> fusion = keras_mm.fusions.TransformerFusion(hidden_dim=16, num_layers=1, num_heads=2, intermediate_dim=32)
        >>> fusion({"audio": np.ones((2, 8)), "image": np.ones((2, 3)), "text": np.ones((2, 5))})["fused"].shape
        TensorShape([2, 16])
        >>> keras_mm.build_model(preset="tiny_transformer", num_classes=5).fusion.output_dim  # the same in a model
        16
    """

    example_config = {"hidden_dim": 8, "num_layers": 1, "num_heads": 2, "intermediate_dim": 16}
    # Transformer layers are trained with a learning-rate warm-up as a rule; here 2 epochs (at most a tenth
    # of the run) measured +0.008 on OpenClipart and +0.010 on AV-Digits (3 seeds each, README).
    # "auto" gives the norm on every encoder, as for the other fusions, since the blocks are pre-LN
    # (normalize_first=True). With post-LN blocks the norm kept AV-Digits at chance for 4-7 epochs (early
    # stopping ended one seed of 3 at 0.100); pre-LN with the norm: AV-Digits 0.780 +- 0.015 (3 seeds; post-LN
    # without it 0.683), OpenClipart 0.769 +- 0.012 (5 seeds; post-LN without it 0.770). README, "Feature
    # normalisation"; benchmarks/results/fusion_transformer_pre_ln.json.
    recipe = {"learning_rate": 1e-3, "warmup_epochs": 2, "auto_feature_normalization": "layer"}

    def __init__(self, hidden_dim=128, num_layers=2, num_heads=4, intermediate_dim=256, dropout=0.0,
                 normalize_first=True, **kwargs):
        super().__init__(**kwargs)
        if int(hidden_dim) % int(num_heads):
            raise ValueError(f"hidden_dim={hidden_dim} must be divisible by num_heads={num_heads}.")
        self.hidden_dim, self.num_layers, self.num_heads = int(hidden_dim), int(num_layers), int(num_heads)
        self.intermediate_dim, self.dropout = int(intermediate_dim), float(dropout)
        self.normalize_first = bool(normalize_first)
        self.blocks = [
            keras_hub.layers.TransformerEncoder(
                intermediate_dim=self.intermediate_dim, num_heads=self.num_heads, dropout=self.dropout,
                normalize_first=self.normalize_first, name=f"block_{i}",
            )
            for i in range(self.num_layers)
        ]
        # pre-LN blocks leave the residual stream unnormalised: one LayerNorm at the end, as in GPT-2 / ViT
        self.final_norm = keras.layers.LayerNormalization(epsilon=1e-5, name="final_norm") if self.normalize_first else None

    def build_fusion(self, input_dims):
        self.projections = {}
        for key, dim in input_dims.items():
            self.projections[key] = keras.layers.Dense(self.hidden_dim, name=f"project_{key}")
            self.projections[key].build((None, dim))
        self.modality_embeddings = self.add_weight(
            shape=(len(input_dims), self.hidden_dim), initializer="glorot_uniform", name="modality_embeddings"
        )
        self.fusion_token = self.add_weight(shape=(1, 1, self.hidden_dim), initializer="glorot_uniform", name="fusion_token")
        for block in self.blocks:
            block.build((None, len(input_dims) + 1, self.hidden_dim))
        if self.final_norm is not None:
            self.final_norm.build((None, self.hidden_dim))

    def compute_output_dim(self, input_dims):
        return self.hidden_dim

    def call(self, features, presence=None, training=None):
        features = self.masked_features(features, presence)
        keys = sorted(features)
        tokens = ops.stack([self.projections[k](features[k]) for k in keys], axis=1)
        tokens = tokens + ops.cast(self.modality_embeddings[None], tokens.dtype)
        batch = ops.shape(tokens)[0]
        fusion = ops.broadcast_to(ops.cast(self.fusion_token, tokens.dtype), (batch, 1, self.hidden_dim))
        x = ops.concatenate([fusion, tokens], axis=1)
        present = self.presence_matrix(features, presence)
        mask = ops.concatenate([ops.ones_like(present[:, :1]), present], axis=1) > 0
        for block in self.blocks:
            x = block(x, padding_mask=mask, training=training)
        fused = x[:, 0, :]
        return {"fused": self.final_norm(fused) if self.final_norm is not None else fused}

    def get_config(self):
        return {
            **super().get_config(),
            "hidden_dim": self.hidden_dim,
            "num_layers": self.num_layers,
            "num_heads": self.num_heads,
            "intermediate_dim": self.intermediate_dim,
            "dropout": self.dropout,
            "normalize_first": self.normalize_first,
        }

    @classmethod
    def from_config(cls, config):
        # models saved before normalize_first existed used post-LN blocks
        return cls(**{"normalize_first": False, **config})
