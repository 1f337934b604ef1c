"""MFCC front-end as a Keras layer, numerically matching ``librosa.feature.mfcc``."""

import contextlib

import keras
import numpy as np
import tensorflow as tf

from keras_mm.layers.graph_context import in_portable_graph, portable_graph


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


def periodic_hann(n_fft):
    """The periodic Hann window of librosa's STFT (``scipy.signal.get_window("hann", n_fft, fftbins=True)``).

    Example:
        >>> from keras_mm.layers.mfcc import periodic_hann
        >>> np.round(periodic_hann(4), 6).tolist()
        [0.0, 0.5, 1.0, 0.5]
    """
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n_fft) / n_fft)


def windowed_dft_matrix(n_fft):
    """``[n_fft, n_fft]`` matrix ``D``: ``frame @ D`` = the periodic-Hann-windowed real DFT of a frame.

    Columns ``0 .. n_fft // 2`` are the real parts of bins ``0 .. n_fft // 2``;
    the remaining ``(n_fft - 1) // 2`` columns are the imaginary parts of bins
    ``1 .. (n_fft - 1) // 2`` (up to sign); the imaginary parts of bin 0 and
    of the Nyquist bin are always zero and are left out, so the matrix is square.

    Example:
        >>> from keras_mm.layers.mfcc import windowed_dft_matrix
        >>> frame = np.random.default_rng(0).normal(size=8)
        >>> spectrum = np.fft.rfft(frame * (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(8) / 8)))
        >>> y = frame @ windowed_dft_matrix(8)
        >>> np.allclose(y[:5] ** 2 + np.pad(y[5:], (1, 1)) ** 2, np.abs(spectrum) ** 2)
        True
    """
    n = np.arange(n_fft)[:, None]
    window = periodic_hann(n_fft)
    real_bins = np.arange(n_fft // 2 + 1)[None, :]
    imag_bins = np.arange(1, (n_fft - 1) // 2 + 1)[None, :]
    angle = 2.0 * np.pi / n_fft
    matrix = np.concatenate([np.cos(angle * n * real_bins), np.sin(angle * n * imag_bins)], axis=1)
    return window[:, None] * matrix


STFT_MODES = ("auto", "rfft", "matmul")
# What stft="auto" means while tracing: "rfft" is faster in TensorFlow itself (about 2x on the power
# spectrum, 2-core CPU); TFLite/LiteRT's RFFT kernel is slower than the DFT matmul, so exporters trace
# under auto_stft("matmul").
_AUTO_STFT = ["rfft"]
# Inside auto_stft, which only exporters enter, the graph is for another runtime (TFLite, ONNX:
# graph_context.portable_graph). The RFFT power spectrum then uses ComplexAbs, the one RFFT consumer that
# tf2onnx converts and TFLite has as a built-in; TensorFlow itself gets the cheaper view of (re, im) pairs.


@contextlib.contextmanager
def auto_stft(mode):
    """Within this context, ``MFCC`` layers built with ``stft="auto"`` compute their STFT as ``mode``.

    The mode is read when a layer's ``call`` runs (or is traced), so an exporter
    wraps the tracing of the model in this context; the layer has no weights
    that depend on the mode. Inside it, the graph also uses only ops that
    TFLite and tf2onnx convert (the power spectrum of ``stft="rfft"`` through
    ``ComplexAbs``).

    Args:
        mode: ``"rfft"`` or ``"matmul"``.

    Example:
        >>> from keras_mm.layers.mfcc import auto_stft
        >>> layer = keras_mm.layers.MFCC()
        >>> with auto_stft("matmul"):
        ...     layer.resolved_stft
        'matmul'
        >>> layer.resolved_stft
        'rfft'
    """
    if mode not in ("rfft", "matmul"):
        raise ValueError(f"mode={mode!r} is not supported. Allowed: rfft, matmul")
    _AUTO_STFT.append(mode)
    try:
        with portable_graph():
            yield
    finally:
        _AUTO_STFT.pop()


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
        stft: how the power spectrum is computed: ``"rfft"`` (``tf.signal.stft``),
            ``"matmul"`` (frames times a precomputed windowed-DFT matrix: more
            arithmetic, but dense matmuls that TFLite/LiteRT and ONNX Runtime run
            fast, where their RFFT kernels are slow) or ``"auto"``: ``"rfft"`` in
            TensorFlow, where it is faster, and ``"matmul"`` in TFLite exports
            (``export_tflite`` traces the model under ``auto_stft("matmul")``,
            except for dynamic-range quantization).

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
        stft="auto",
        **kwargs,
    ):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        if stft not in STFT_MODES:
            raise ValueError(f"stft={stft!r} is not supported. Allowed: {', '.join(STFT_MODES)}")
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
        self._window = periodic_hann(self.n_fft).astype("float32")
        self.stft = stft
        if stft != "rfft":
            self._dft_matrix = windowed_dft_matrix(self.n_fft).astype("float32")
            # squared DFT columns -> mel: bins 1.. of the filterbank repeated for the imaginary parts,
            # so |z|^2 summed into mel bands is one matmul
            mel = self._mel_matrix
            self._dft_mel_matrix = np.concatenate([mel, mel[1 : 1 + (self.n_fft - 1) // 2]], axis=0)

    @property
    def resolved_stft(self):
        """The STFT implementation ``call`` uses now: ``"rfft"`` or ``"matmul"`` (``"auto"`` resolved, see ``auto_stft``)."""
        return _AUTO_STFT[-1] if self.stft == "auto" else self.stft

    def _frames(self, x, start=0, stop=None):
        """Frames ``start .. stop - 1`` of the padded waveforms ``x``, as ``[batch * frames, n_fft]``."""
        length = x.shape[-1]
        if length is None:
            return tf.reshape(tf.signal.frame(x, self.n_fft, self.hop_length, pad_end=False), [-1, self.n_fft])
        # Known length: gather gcd-sized subframes with constant indices. tf.signal.frame computes the
        # same from the dynamic shape, which TFLite keeps as ~20 shape ops per call.
        sub = int(np.gcd(self.n_fft, self.hop_length))
        stop = self._num_frames(length) if stop is None else stop
        subframes = tf.reshape(x[:, : (length // sub) * sub], [-1, length // sub, sub])
        index = np.arange(start, stop)[:, None] * (self.hop_length // sub) + np.arange(self.n_fft // sub)[None, :]
        return tf.reshape(tf.gather(subframes, index.astype("int32"), axis=1), [-1, self.n_fft])

    def _num_frames(self, padded_length):
        return 1 + (padded_length - self.n_fft) // self.hop_length

    def _power_mel(self, frames):
        """Mel power of ``[n, n_fft]`` frames: ``[n, n_mels]``."""
        if self.resolved_stft == "matmul":
            spectrum = tf.matmul(frames, tf.constant(self._dft_matrix))
            return tf.matmul(tf.math.square(spectrum), tf.constant(self._dft_mel_matrix))
        spectrum = tf.signal.rfft(frames * tf.constant(self._window), fft_length=[self.n_fft])
        if in_portable_graph():
            power = tf.math.square(tf.math.abs(spectrum))  # ComplexAbs: converts to TFLite and ONNX
        else:
            # re^2 + im^2 without ComplexAbs's sqrt: the layer 1.2x faster than tf.signal.stft + ComplexAbs
            # (quiet 2-core CPU, batch 64 x 1 s, 25 interleaved rounds; a bitcast view of the complex
            # spectrum as (re, im) pairs was 0.85x with a reduce_sum, 1.05-1.09x with the pair sum folded
            # into the mel matmul, but XLA cannot compile a complex bitcast: jit_compile steps failed)
            power = tf.math.square(tf.math.real(spectrum)) + tf.math.square(tf.math.imag(spectrum))
        return tf.matmul(power, tf.constant(self._mel_matrix))

    def _mel(self, padded):
        """Mel power of every frame: ``[batch, frames, n_mels]``.

        Every matmul and the FFT run on 2-D ``[batch * frames, ...]`` tensors: a 3-D ``tf.matmul``
        with a 2-D constant (BatchMatMulV2 broadcasting) measured 2.6x slower than the same product
        in 2-D (``[64 * 101, 257] x [257, 64]``, 2-core CPU, 31 interleaved rounds).
        """
        batch = tf.shape(padded)[0]
        length = padded.shape[-1]
        if length is None:
            frames = self._frames(padded)
            return tf.reshape(self._power_mel(frames), [batch, -1, self.n_mels])
        num_frames = self._num_frames(length)
        pieces = 1
        if self.resolved_stft == "rfft" and not in_portable_graph():
            # TensorFlow's CPU RFFT kernel runs on one thread; frames split into independent pieces
            # run on parallel inter-op threads: the layer 1.3x faster on 2 cores (batch 64 x 1 s).
            # Exports to other runtimes keep one piece.
            pieces = min(self._FFT_PIECES, num_frames)
        bounds = np.linspace(0, num_frames, pieces + 1).round().astype(int)
        mels = [
            tf.reshape(self._power_mel(self._frames(padded, start, stop)), [batch, stop - start, self.n_mels])
            for start, stop in zip(bounds[:-1], bounds[1:])
        ]
        return mels[0] if pieces == 1 else tf.concat(mels, axis=1)

    _FFT_PIECES = 4

    def call(self, waveforms):
        x = tf.cast(waveforms, tf.float32)
        pad = self.n_fft // 2
        mel = self._mel(tf.pad(x, [[0, 0], [pad, pad]]))
        batch = tf.shape(mel)[0]
        num_frames = mel.shape[1] if mel.shape[1] is not None else tf.shape(mel)[1]
        # librosa's power_to_db: 10 log10(max(mel, 1e-10)), then at most top_db below the clip's peak, with the
        # floors applied in dB: -100 and peak - top_db are float16 numbers, while 1e-10 (and a floor of
        # peak * 1e-8 on the power) is 0 in a float16 TFLite export, where log(0) gave NaN for silent frames.
        per_clip = tf.math.log(tf.reshape(mel, [batch, -1])) * tf.constant(10.0 / np.log(10.0), tf.float32)
        floor = tf.constant(-100.0, tf.float32)  # 10 log10(1e-10)
        if self.top_db is not None:
            floor = tf.maximum(floor, tf.reduce_max(per_clip, axis=1, keepdims=True) - self.top_db)
        log_mel = tf.reshape(tf.maximum(per_clip, floor), [-1, self.n_mels])
        # DCT-II (orthonormal) as a matmul: identical to tf.signal.dct(type=2,
        # norm="ortho")[..., :n_mfcc], and it converts to TFLite built-in ops.
        coefficients = tf.matmul(tf.reshape(log_mel, [-1, self.n_mels]), tf.constant(self._dct_matrix))
        return tf.reshape(coefficients, [batch, num_frames, self.n_mfcc])

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
                "stft": self.stft,
            }
        )
        return config
