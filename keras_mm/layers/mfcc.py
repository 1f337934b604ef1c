"""MFCC front-end as a Keras layer, numerically matching ``librosa.feature.mfcc``."""

import keras
import numpy as np
import tensorflow as tf


def _hz_to_mel_slaney(freqs):
    freqs = np.asarray(freqs, dtype=np.float64)
    f_sp = 200.0 / 3
    mels = freqs / f_sp
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = np.log(6.4) / 27.0
    log_region = freqs >= min_log_hz
    mels = np.where(log_region, min_log_mel + np.log(np.maximum(freqs, 1e-12) / min_log_hz) / logstep, mels)
    return mels


def _mel_to_hz_slaney(mels):
    mels = np.asarray(mels, dtype=np.float64)
    f_sp = 200.0 / 3
    freqs = f_sp * mels
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = np.log(6.4) / 27.0
    log_region = mels >= min_log_mel
    return np.where(log_region, min_log_hz * np.exp(logstep * (mels - min_log_mel)), freqs)


def slaney_mel_filterbank(sample_rate, n_fft, n_mels, fmin=0.0, fmax=None):
    """Slaney-scale, Slaney-normalised mel filterbank, shape [n_mels, 1 + n_fft // 2].

    This is the filterbank ``librosa.filters.mel`` builds with its defaults
    (``htk=False, norm='slaney'``); ``tf.signal.linear_to_mel_weight_matrix``
    uses the HTK scale and does not match it.

    Example:
        >>> fb = keras_mm.layers.slaney_mel_filterbank(16000, n_fft=512, n_mels=64)
        >>> fb.shape  # [mel bands, FFT bins]
        (64, 257)
    """
    fmax = sample_rate / 2.0 if fmax is None else float(fmax)
    fft_freqs = np.linspace(0.0, sample_rate / 2.0, 1 + n_fft // 2)
    mel_points = np.linspace(_hz_to_mel_slaney(fmin), _hz_to_mel_slaney(fmax), n_mels + 2)
    mel_freqs = _mel_to_hz_slaney(mel_points)
    fdiff = np.diff(mel_freqs)
    ramps = mel_freqs[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    enorm = 2.0 / (mel_freqs[2 : n_mels + 2] - mel_freqs[:n_mels])
    return weights * enorm[:, None]


def dct2_ortho_matrix(n_inputs, n_outputs):
    """``[n_inputs, n_outputs]`` matrix ``M`` with ``x @ M`` = the first ``n_outputs`` orthonormal DCT-II coefficients.

    Example:
        >>> import scipy.fft
        >>> from keras_mm.layers.mfcc import dct2_ortho_matrix
        >>> x = np.random.default_rng(0).normal(size=(3, 64))
        >>> np.allclose(x @ dct2_ortho_matrix(64, 40), scipy.fft.dct(x, norm="ortho")[..., :40])
        True
    """
    n = np.arange(n_inputs)[:, None]
    k = np.arange(n_outputs)[None, :]
    matrix = np.cos(np.pi * k * (2 * n + 1) / (2.0 * n_inputs)) * np.sqrt(2.0 / n_inputs)
    matrix[:, 0] /= np.sqrt(2.0)
    return matrix


@keras.saving.register_keras_serializable(package="keras_mm")
class MFCC(keras.layers.Layer):
    """Mel-frequency cepstral coefficients of a batch of waveforms.

    Maps float waveforms ``[batch, samples]`` to ``[batch, frames, n_mfcc]``
    (time-major, ``frames = 1 + samples // hop_length``). The computation is
    librosa's default MFCC pipeline: centred frames padded with zeros, periodic
    Hann window, power spectrum, Slaney mel filterbank, ``power_to_db`` with
    ``top_db`` below each clip's own maximum, orthonormal DCT-II. Outputs match
    ``librosa.feature.mfcc(y=..., sr=..., n_mfcc=..., n_fft=..., hop_length=...,
    n_mels=...).T`` to about 1e-3. The layer always computes in float32, also
    under a mixed-precision policy.

    Args:
        sample_rate: sampling rate of the input in Hz.
        n_mfcc: number of coefficients returned.
        n_fft: FFT size and window length.
        hop_length: samples between frames.
        n_mels: number of mel bands.
        fmin, fmax: frequency range of the filterbank (``fmax=None``: Nyquist).
        top_db: dynamic range kept below each clip's maximum; ``None`` keeps all.

    Example:
        >>> mfcc = keras_mm.layers.MFCC(sample_rate=16000, n_mfcc=40)
        >>> tone = np.sin(2 * np.pi * 440 * np.arange(16000) / 16000).astype("float32")  # 1 s at 440 Hz
        >>> mfcc(np.stack([tone, tone])).shape  # [batch, 1 + 16000 // hop_length frames, n_mfcc]
        TensorShape([2, 101, 40])
    """

    def __init__(
        self,
        sample_rate=16000,
        n_mfcc=40,
        n_fft=512,
        hop_length=160,
        n_mels=64,
        fmin=0.0,
        fmax=None,
        top_db=80.0,
        **kwargs,
    ):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        if n_mfcc > n_mels:
            raise ValueError(f"n_mfcc={n_mfcc} must be <= n_mels={n_mels}.")
        if n_fft < 2 or hop_length < 1:
            raise ValueError(f"n_fft={n_fft} must be >= 2 and hop_length={hop_length} >= 1.")
        self.sample_rate = int(sample_rate)
        self.n_mfcc = int(n_mfcc)
        self.n_fft = int(n_fft)
        self.hop_length = int(hop_length)
        self.n_mels = int(n_mels)
        self.fmin = float(fmin)
        self.fmax = None if fmax is None else float(fmax)
        self.top_db = None if top_db is None else float(top_db)
        # [freq_bins, n_mels], built once in float64 and stored as a constant.
        self._mel_matrix = slaney_mel_filterbank(
            self.sample_rate, self.n_fft, self.n_mels, self.fmin, self.fmax
        ).T.astype("float32")
        self._dct_matrix = dct2_ortho_matrix(self.n_mels, self.n_mfcc).astype("float32")

    def call(self, waveforms):
        x = tf.cast(waveforms, tf.float32)
        pad = self.n_fft // 2
        x = tf.pad(x, [[0, 0], [pad, pad]])
        stft = tf.signal.stft(
            x,
            frame_length=self.n_fft,
            frame_step=self.hop_length,
            fft_length=self.n_fft,
            window_fn=tf.signal.hann_window,
            pad_end=False,
        )
        # |z|^2 through ComplexAbs: the one RFFT consumer tf2onnx converts (Real/Imag are not),
        # and a TFLite built-in op.
        power = tf.math.square(tf.math.abs(stft))
        mel = tf.matmul(power, tf.constant(self._mel_matrix))
        log_mel = 10.0 * (tf.math.log(tf.maximum(mel, 1e-10)) / np.log(10.0))
        if self.top_db is not None:
            peak = tf.reduce_max(log_mel, axis=[1, 2], keepdims=True)
            log_mel = tf.maximum(log_mel, peak - self.top_db)
        # DCT-II (orthonormal) as a matmul: identical to tf.signal.dct(type=2,
        # norm="ortho")[..., :n_mfcc], and it converts to TFLite built-in ops.
        return tf.matmul(log_mel, tf.constant(self._dct_matrix))

    def compute_output_shape(self, input_shape):
        samples = input_shape[-1]
        frames = None if samples is None else 1 + samples // self.hop_length
        return (input_shape[0], frames, self.n_mfcc)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "sample_rate": self.sample_rate,
                "n_mfcc": self.n_mfcc,
                "n_fft": self.n_fft,
                "hop_length": self.hop_length,
                "n_mels": self.n_mels,
                "fmin": self.fmin,
                "fmax": self.fmax,
                "top_db": self.top_db,
            }
        )
        return config
