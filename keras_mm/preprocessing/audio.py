"""Waveform preparation shared by training and serving."""

import numpy as np
import tensorflow as tf

from keras_mm.preprocessing.base import FeaturePreprocessor
from keras_mm.preprocessing.isolation import map_isolating_failures


MAX_ABS_AMPLITUDE = 1e6


def fit_waveforms(waveforms, num_samples):
    """Crop or zero-pad float waveforms ``[batch, n]`` to ``[batch, num_samples]``; report usable clips.

    A clip is usable when it holds at least one non-zero sample, no NaN/inf
    and no sample beyond ``MAX_ABS_AMPLITUDE`` (float audio lives in about
    [-1, 1] and int16 PCM within 32768; larger values overflow the float32
    power spectrum). Unusable clips become zeros so one bad clip cannot
    poison a batch.

    Returns:
        ``(waveforms [batch, num_samples], valid bool [batch])``.

    Example:
        >>> x, valid = fit_waveforms(tf.ones([2, 10]), 16)
        >>> x.shape, valid.numpy()
        (TensorShape([2, 16]), array([ True,  True]))
    """
    x = waveforms
    if isinstance(x, tf.RaggedTensor):
        x = x.to_tensor()
    x = tf.cast(tf.convert_to_tensor(x), tf.float32)
    finite = tf.reduce_all(tf.math.is_finite(x) & (tf.abs(x) <= MAX_ABS_AMPLITUDE), axis=1)
    nonzero = tf.reduce_any(tf.not_equal(x, 0.0), axis=1)
    valid = tf.logical_and(finite, nonzero)
    x = tf.where(valid[:, None], x, tf.zeros_like(x))
    x = x[:, :num_samples]
    missing = num_samples - tf.shape(x)[1]
    x = tf.pad(x, [[0, 0], [0, tf.maximum(missing, 0)]])
    return tf.ensure_shape(x, [None, num_samples]), valid


def decode_wav_batch(wav_bytes, num_samples, sample_rate):
    """Decode 16-bit PCM WAV bytes ``[batch]`` (mixed to mono) to ``[batch, num_samples]``.

    Corrupt, empty or non-PCM-16 files and files at another sample rate give
    zeros and ``valid=False`` (resample such files before sending them).

    Example:
        >>> wav = tf.audio.encode_wav(tf.zeros([16000, 1]), 16000)
        >>> decode_wav_batch(tf.stack([wav, b""]), 16000, 16000)[1].numpy()
        array([False, False])   # silence carries no signal either
    """

    def decode_one(data):
        audio, rate = tf.audio.decode_wav(data, desired_channels=-1)
        tf.debugging.assert_equal(rate, sample_rate, message="sample rate mismatch")
        mono = tf.reduce_mean(audio, axis=1)[:num_samples]
        return tf.pad(mono, [[0, num_samples - tf.shape(mono)[0]]])

    decoded, decoded_ok = map_isolating_failures(decode_one, wav_bytes, tf.TensorSpec([num_samples], tf.float32))
    fitted, usable = fit_waveforms(decoded, num_samples)
    return fitted, tf.logical_and(decoded_ok, usable)


class WaveformPreprocessor(FeaturePreprocessor):
    """Audio -> ``{feature: float32 [B, num_samples], feature_present: [B]}``.

    Raw audio is a float waveform at the model's sample rate (any length:
    padded with zeros or cropped) or, as a string tensor, WAV bytes.

    Example:
        >>> pre = WaveformPreprocessor("speech", num_samples=16000)
        >>> pre.process_batch(tf.zeros([4, 12000]))["speech"].shape
        TensorShape([4, 16000])
    """

    example_rank = 1
    raw_dtype = tf.float32

    def __init__(self, feature, num_samples, sample_rate=16000):
        super().__init__(feature)
        self.num_samples = int(num_samples)
        self.sample_rate = int(sample_rate)

    @property
    def wav_spec(self):
        """Raw spec for WAV-bytes input."""
        return tf.TensorSpec([None], tf.string, name=self.feature)

    def process_batch(self, raw):
        if not isinstance(raw, tf.RaggedTensor) and tf.convert_to_tensor(raw).dtype == tf.string:
            audio, valid = decode_wav_batch(tf.convert_to_tensor(raw), self.num_samples, self.sample_rate)
        else:
            audio, valid = fit_waveforms(raw, self.num_samples)
        return {self.feature: audio, self.presence_name: tf.cast(valid, tf.float32)}

    def example_raw(self, batch_size, seed=0):
        rng = np.random.default_rng(seed)
        t = np.arange(self.num_samples) / float(self.sample_rate)
        return np.stack(
            [0.3 * np.sin(2 * np.pi * (200 + 100 * i) * t) + rng.normal(0, 0.01, t.shape) for i in range(batch_size)]
        ).astype("float32")

    def get_config(self):
        return {**super().get_config(), "num_samples": self.num_samples, "sample_rate": self.sample_rate}
