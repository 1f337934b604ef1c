"""Waveform preparation shared by training and serving."""

import numpy as np
import tensorflow as tf

from keras_mm.preprocessing.base import FeaturePreprocessor


def fit_waveforms(waveforms, num_samples):
    """Crop or zero-pad float waveforms ``[batch, n]`` to ``[batch, num_samples]``.

    Non-finite samples (NaN/inf) are replaced by zeros so that one bad clip
    cannot poison a batch.

    Example:
        >>> fit_waveforms(tf.ones([2, 10]), 16).shape
        TensorShape([2, 16])
    """
    x = tf.cast(tf.convert_to_tensor(waveforms), tf.float32)
    if isinstance(x, tf.RaggedTensor):
        x = x.to_tensor()
    x = tf.where(tf.math.is_finite(x), x, tf.zeros_like(x))
    x = x[:, :num_samples]
    missing = num_samples - tf.shape(x)[1]
    x = tf.pad(x, [[0, 0], [0, tf.maximum(missing, 0)]])
    return tf.ensure_shape(x, [None, num_samples])


class WaveformPreprocessor(FeaturePreprocessor):
    """Float waveform at the model's sample rate -> ``{feature: float32 [B, num_samples]}``.

    Example:
        >>> pre = WaveformPreprocessor("speech", num_samples=16000)
        >>> pre.process_batch(tf.zeros([4, 12000]))["speech"].shape
        TensorShape([4, 16000])
    """

    example_rank = 1
    raw_dtype = tf.float32

    def __init__(self, feature, num_samples):
        super().__init__(feature)
        self.num_samples = int(num_samples)

    def process_batch(self, raw):
        return {self.feature: fit_waveforms(raw, self.num_samples)}

    def example_raw(self, batch_size, seed=0):
        rng = np.random.default_rng(seed)
        t = np.arange(self.num_samples) / 16000.0
        return np.stack(
            [0.3 * np.sin(2 * np.pi * (200 + 100 * i) * t) + rng.normal(0, 0.01, t.shape) for i in range(batch_size)]
        ).astype("float32")

    def get_config(self):
        return {**super().get_config(), "num_samples": self.num_samples}
