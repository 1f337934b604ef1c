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


def resample(waveform, orig_rate, target_rate):
    """Resample float waveforms ``[..., n]`` from ``orig_rate`` to ``target_rate`` Hz with the FFT method, in TensorFlow ops.

    The same computation as ``scipy.signal.resample`` (``librosa.resample(...,
    res_type="fft")``): keep the spectrum below the lower Nyquist frequency,
    zero-pad or truncate it to ``ceil(n * target_rate / orig_rate)`` samples,
    transform back. Runs in float64 and returns the input's dtype, so it agrees
    with scipy to about 1e-7 of the signal's peak. Equal rates return the
    input unchanged. Rates may be Python numbers or scalar tensors (e.g. the
    rate ``tf.audio.decode_wav`` read from a file).

    Args:
        waveform: float tensor ``[..., n]`` (time on the last axis).
        orig_rate: the waveform's sample rate.
        target_rate: the rate wanted.

    Returns:
        ``[..., ceil(n * target_rate / orig_rate)]`` in the input's dtype.

    Example:
        >>> t = np.arange(8000) / 8000.0
        >>> tone = tf.constant(np.sin(2 * np.pi * 440 * t), tf.float32)
        >>> resample(tone, 8000, 16000).shape
        TensorShape([16000])
    """
    x = tf.convert_to_tensor(waveform)
    if not x.dtype.is_floating:
        raise ValueError(f"resample: waveform must be float32 or float64, got {x.dtype.name}.")
    n = tf.shape(x)[-1]
    orig = tf.cast(orig_rate, tf.float64)
    target = tf.cast(target_rate, tf.float64)
    # librosa computes the length as ceil(n * (target / orig)) in float64; the same order keeps the same rounding.
    num = tf.cast(tf.math.ceil(tf.cast(n, tf.float64) * (target / orig)), tf.int32)

    def fft_resample():
        spectrum = tf.signal.rfft(tf.cast(x, tf.float64))
        kept = tf.minimum(num, n)
        half = kept // 2
        spectrum = spectrum[..., : half + 1]
        # With an even number of kept bins the bin at kept/2 has no partner: scipy doubles it when
        # downsampling (the two mirrored bins merge) and halves it when upsampling (it splits in two).
        unpaired = tf.logical_and(tf.equal(kept % 2, 0), tf.not_equal(num, n))
        factor = tf.where(num < n, tf.constant(2.0, tf.float64), tf.constant(0.5, tf.float64))
        scale = tf.where(tf.logical_and(unpaired, tf.equal(tf.range(half + 1), half)), factor, tf.constant(1.0, tf.float64))
        spectrum = spectrum * tf.cast(scale, spectrum.dtype)
        # irfft zero-pads the spectrum up to num // 2 + 1 bins (the upsampling case).
        out = tf.signal.irfft(spectrum, fft_length=tf.reshape(num, [1]))
        return tf.cast(out * (tf.cast(num, tf.float64) / tf.cast(n, tf.float64)), x.dtype)

    # Equal rates: unchanged, as librosa does; an empty waveform stays empty.
    unchanged = tf.logical_or(tf.equal(orig, target), tf.equal(n, 0))
    return tf.cond(unchanged, lambda: x, fft_resample)


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

    def example_rank_of(self, value):
        # one clip is a float waveform [N] or a WAV file's bytes (a scalar string)
        return 0 if value.dtype == tf.string else 1

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
