"""Train-time modality dropout on per-sample presence flags."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_mm")
class ModalityDropout(keras.layers.Layer):
    """Randomly marks whole modalities missing per sample during training.

    Takes ``{feature: presence [batch]}`` (1 = present) and, in training, sets
    each present flag to 0 with probability ``rate``, never removing every
    modality of a sample (then its original flags are kept). At inference it
    returns the flags unchanged. The model learns to predict from whatever is
    present, which is what happens at serving time when an input is empty or
    corrupt.

    Args:
        rate: probability of dropping each modality of each sample.
        seed: optional seed.

    Example:
        >>> drop = keras_mm.layers.ModalityDropout(0.5, seed=0)
        >>> flags = {"image": np.ones(8, "float32"), "text": np.ones(8, "float32")}
        >>> out = drop(flags, training=True)
        >>> bool(np.all(out["image"].numpy() + out["text"].numpy() >= 1))  # never both dropped
        True
        >>> drop(flags)["text"].numpy()  # inference: unchanged
        array([1., 1., 1., 1., 1., 1., 1., 1.], dtype=float32)
    """

    def __init__(self, rate=0.0, seed=None, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 <= float(rate) < 1.0:
            raise ValueError(f"modality_dropout={rate} must be in [0, 1).")
        self.rate = float(rate)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, presence, training=None):
        if not training or self.rate == 0.0:
            return presence
        keys = sorted(presence)
        flags = ops.stack([ops.cast(presence[k], "float32") for k in keys], axis=1)
        keep = ops.cast(keras.random.uniform(ops.shape(flags), seed=self.seed_generator) >= self.rate, "float32")
        dropped = flags * keep
        anything_left = ops.sum(dropped, axis=1, keepdims=True) > 0
        flags = ops.where(anything_left, dropped, flags)
        return {k: flags[:, i] for i, k in enumerate(keys)}

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "seed": self.seed}
