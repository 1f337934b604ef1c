"""Waveform preparation shared by training and serving."""

import functools

import numpy as np
import tensorflow as tf

from keras_mm.preprocessing.base import FeaturePreprocessor
from keras_mm.preprocessing.isolation import map_isolating_failures
from keras_mm.preprocessing.status import EMPTY, NOT_FINITE, OK, status_of_decoded
from keras_mm.preprocessing.wav import decode_wav_mono


MAX_ABS_AMPLITUDE = 1e6
#: the lowest file sample rate resampled: no recording has less, and a corrupt header's tiny rate made resampling
#: allocate gigabytes (a 16 KB WAV claiming 1 Hz took 4.8 GB) and take a server down.
MIN_FILE_SAMPLE_RATE = 1000
#: seconds of a file's audio past the model's window that are resampled with it (:func:`resample_to_window`).
#: FFT resampling treats a clip as periodic, so a cut rings: with 0.1 s the window differs from resampling the
#: whole clip by at most 3.4e-4 to 8.5e-4 past its first 0.1 s (white noise, 1- and 10-minute 44.1 kHz clips).
RESAMPLE_MARGIN_SECONDS = 0.1
#: integer PCM as soundfile and librosa scale it to float: ``(offset, full scale)``.
_PCM_SCALES = {"int8": (0.0, 2.0**7), "uint8": (128.0, 2.0**7), "int16": (0.0, 2.0**15), "int32": (0.0, 2.0**31)}


def pcm_to_float(waveform):
    """Integer PCM samples (int16 from ``scipy.io.wavfile.read``, ...) as float32 in [-1, 1]; float input unchanged.

    The scaling soundfile and librosa use: int16 / 32768, int32 / 2³¹, int8 / 128,
    (uint8 - 128) / 128. Unscaled int16 samples reached the model at ±32768
    with status ``ok``: every prediction shifted without a word.

    Example:
        >>> pcm_to_float(np.array([-32768, 0, 16384], np.int16))
        array([-1. ,  0. ,  0.5], dtype=float32)
    """
    is_tensor = isinstance(waveform, (tf.Tensor, tf.RaggedTensor))
    dtype = np.dtype(waveform.dtype.as_numpy_dtype if is_tensor else np.asarray(waveform).dtype)
    if dtype.kind not in "iu":
        return waveform
    if dtype.name not in _PCM_SCALES:
        raise ValueError(f"audio samples of dtype {dtype.name}: pass float audio in [-1, 1] or integer PCM "
                         f"({', '.join(_PCM_SCALES)}).")
    offset, scale = _PCM_SCALES[dtype.name]
    if is_tensor:
        return tf.cast((tf.cast(waveform, tf.float64) - offset) / scale, tf.float32)
    return ((np.asarray(waveform, np.float64) - offset) / scale).astype(np.float32)


def waveform_status(waveforms):
    """Status codes of float waveforms ``[batch, n]``: ok, empty (no non-zero sample) or not finite / too loud.

    Example:
        >>> waveform_status(tf.constant([[0.1, 0.0], [0.0, 0.0], [np.nan, 0.0]])).numpy()
        array([0, 1, 4], dtype=int32)
    """
    x = waveforms.to_tensor() if isinstance(waveforms, tf.RaggedTensor) else tf.convert_to_tensor(waveforms)
    x = tf.cast(x, tf.float32)
    finite = tf.reduce_all(tf.math.is_finite(x) & (tf.abs(x) <= MAX_ABS_AMPLITUDE), axis=1)
    nonzero = tf.reduce_any(tf.not_equal(x, 0.0), axis=1)
    return tf.where(finite, tf.where(nonzero, OK, EMPTY), NOT_FINITE)


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
    x, status = fit_waveforms_with_status(waveforms, num_samples)
    return x, tf.equal(status, OK)


def fit_waveforms_with_status(waveforms, num_samples):
    """:func:`fit_waveforms` returning each clip's status (:func:`waveform_status`) instead of a bool.

    Example:
        >>> x, status = fit_waveforms_with_status(tf.constant([[0.5, 0.0], [0.0, 0.0]]), 3)
        >>> x.numpy().tolist(), status.numpy().tolist()
        ([[0.5, 0.0, 0.0], [0.0, 0.0, 0.0]], [0, 1])
    """
    x = waveforms
    if isinstance(x, tf.RaggedTensor):
        x = x.to_tensor()
    x = tf.cast(tf.convert_to_tensor(x), tf.float32)
    status = waveform_status(x)
    x = tf.where(tf.equal(status, OK)[:, None], x, tf.zeros_like(x))
    x = x[:, :num_samples]
    missing = num_samples - tf.shape(x)[1]
    x = tf.pad(x, [[0, 0], [0, tf.maximum(missing, 0)]])
    return tf.ensure_shape(x, [None, num_samples]), status


def decode_wav(data, sample_rate, num_samples=None):
    """Decode one WAV file (bytes) to a mono float32 waveform ``[n]`` at ``sample_rate``.

    PCM 8/16/24/32-bit or float 32/64-bit (:func:`keras_mm.preprocessing.wav.decode_wav_mono`:
    the ``serving_wav`` signature and ``model.preprocessor`` use it; manifests
    get the same values from their loader). Channels are averaged; a file at
    another rate is resampled with :func:`resample`. With ``num_samples`` (the
    model's window) only the start of the file that the window keeps is
    resampled (:func:`resample_to_window`). Raises for corrupt, truncated or
    other data (callers isolate it per sample).

    Example:
        >>> wav = tf.audio.encode_wav(tf.zeros([8000, 2]), 8000)
        >>> decode_wav(wav, 16000).shape
        TensorShape([16000])
    """
    frames = None if num_samples is None else (lambda rate: window_source_frames(num_samples, rate, sample_rate))
    wave, rate = decode_wav_mono(data, max_frames=frames)
    return resample_to_window(wave, rate, sample_rate, num_samples)


def window_source_frames(num_samples, file_rate, sample_rate):
    """How many samples at ``file_rate`` a window of ``num_samples`` at ``sample_rate`` needs: the span plus ``RESAMPLE_MARGIN_SECONDS``.

    What :func:`resample_to_window` keeps of a waveform, and what the WAV
    decoders decode of a file (``max_frames``), so a long file is neither
    decoded nor resampled past the window. An int32 tensor, clipped to
    ``[0, 2**31 - 1]`` (a corrupt header's rate is refused afterwards).

    Example:
        >>> int(window_source_frames(16000, 44100, 16000))   # 1 s at 16 kHz: 1 s + 0.1 s at 44.1 kHz
        48510
    """
    rate = tf.cast(file_rate, tf.float64)
    frames = tf.math.ceil(float(num_samples) * rate / float(sample_rate)) + tf.math.ceil(RESAMPLE_MARGIN_SECONDS * rate)
    return tf.cast(tf.clip_by_value(frames, 0.0, 2.0**31 - 1), tf.int32)


def resample_to_window(waveform, file_rate, sample_rate, num_samples=None):
    """A file's waveform ``[n]`` at ``file_rate`` resampled to ``sample_rate``, keeping what a window of ``num_samples`` needs.

    The one resampling step of training manifests and of serving (WAV bytes).
    ``file_rate`` is checked (:func:`checked_file_rate`). With ``num_samples``,
    the waveform is first cut to :func:`window_source_frames` samples (those
    ``num_samples`` output samples span, plus ``RESAMPLE_MARGIN_SECONDS``):
    the model crops to its window anyway, and resampling a whole 10-minute
    44.1 kHz file took 1.5-2.4 s per request. Without it (raw
    datasets with no model) the whole clip is resampled, as ``librosa.resample`` does.

    Example:
        >>> long_clip = tf.zeros([44100 * 60])                 # a minute at 44.1 kHz
        >>> resample_to_window(long_clip, 44100, 16000, num_samples=16000).shape
        TensorShape([17600])
    """
    rate = checked_file_rate(file_rate)
    if num_samples is not None:
        waveform = waveform[:window_source_frames(num_samples, rate, sample_rate)]
    return resample(waveform, rate, sample_rate)


def decode_wav_batch(wav_bytes, num_samples, sample_rate):
    """Decode WAV bytes ``[batch]`` with :func:`decode_wav` and fit them to ``[batch, num_samples]``.

    Returns ``(waveforms, status)``: corrupt, empty or truncated files, and
    file paths sent instead of the bytes, give zeros and a status saying why
    (:mod:`keras_mm.preprocessing.status`); the other samples are untouched.

    Example:
        >>> tone = tf.sin(tf.range(8000, dtype=tf.float32))[:, None] * 0.3
        >>> wav = tf.audio.encode_wav(tone, 8000)
        >>> waves, status = decode_wav_batch(tf.stack([wav, b"", b"a.wav"]), 16000, 16000)
        >>> waves.shape, status.numpy()
        (TensorShape([3, 16000]), array([0, 1, 3], dtype=int32))
    """
    if tf.executing_eagerly():
        if isinstance(wav_bytes, np.ndarray) and wav_bytes.dtype == object:
            wav_bytes = tf.constant(wav_bytes.tolist(), tf.string)
        wav_bytes = tf.convert_to_tensor(wav_bytes)
        if wav_bytes.shape.rank == 1 and wav_bytes.dtype == tf.string:
            # Eagerly, the per-sample decode pipeline would be rebuilt and traced on every call (0.7 s for 2 clips,
            # 2-core CPU); one graph per window and rate serves every later call.
            return _eager_wav_decoder(int(num_samples), sample_rate)(wav_bytes)
    return _decode_wav_batch(wav_bytes, num_samples, sample_rate)


@functools.lru_cache(maxsize=64)
def _eager_wav_decoder(num_samples, sample_rate):
    """The traced :func:`_decode_wav_batch` for eager callers."""
    return tf.function(lambda wav_bytes: _decode_wav_batch(wav_bytes, num_samples, sample_rate),
                       input_signature=[tf.TensorSpec([None], tf.string)])


def _decode_wav_batch(wav_bytes, num_samples, sample_rate):
    """:func:`decode_wav_batch` as graph ops."""

    def decode_one(data):
        mono = decode_wav(data, sample_rate, num_samples)[:num_samples]
        return tf.pad(mono, [[0, num_samples - tf.shape(mono)[0]]])

    decoded, decoded_ok = map_isolating_failures(decode_one, wav_bytes, tf.TensorSpec([num_samples], tf.float32))
    fitted, fitted_status = fit_waveforms_with_status(decoded, num_samples)
    state = tf.where(decoded_ok, fitted_status, status_of_decoded(wav_bytes, decoded_ok))
    return fitted, state


def resample(waveform, orig_rate, target_rate):
    """Resample float waveforms ``[..., n]`` from ``orig_rate`` to ``target_rate`` Hz with the FFT method, in TensorFlow ops.

    The same computation as ``scipy.signal.resample`` (``librosa.resample(...,
    res_type="fft")``): keep the spectrum below the lower Nyquist frequency,
    zero-pad or truncate it to ``ceil(n * target_rate / orig_rate)`` samples,
    transform back. Runs in float64 and returns the input's dtype, so it agrees
    with scipy to about 1e-7 of the signal's peak. Equal rates return the
    input unchanged. Rates may be Python numbers or scalar tensors (e.g. the
    rate ``tf.audio.decode_wav`` read from a file; decoders pass it through
    :func:`checked_file_rate` first).

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


def checked_file_rate(rate):
    """A rate read from a file's header, refused (``InvalidArgumentError``) below ``MIN_FILE_SAMPLE_RATE``.

    Decoders call it before :func:`resample`: a corrupt header's rate of 1 Hz
    made a 16 KB file resample to 4.8 GB.

    Example:
        >>> int(checked_file_rate(tf.constant(8000)))
        8000
    """
    rate = tf.convert_to_tensor(rate)
    check = tf.debugging.assert_greater_equal(
        tf.cast(rate, tf.int64), tf.constant(MIN_FILE_SAMPLE_RATE, tf.int64),
        message=f"a file sample rate below {MIN_FILE_SAMPLE_RATE} Hz (a corrupt header?) is refused")
    with tf.control_dependencies([check]):
        return tf.identity(rate)


class WaveformPreprocessor(FeaturePreprocessor):
    """Audio -> ``{feature: float32 [B, num_samples], feature_present: [B]}``.

    Raw audio is a float waveform at the model's sample rate (any length:
    padded with zeros or cropped; integer PCM is scaled to [-1, 1] by
    :func:`pcm_to_float`) or, as a string tensor, WAV bytes (at any rate:
    resampled to the model's).

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
        for name, value in (("num_samples", self.num_samples), ("sample_rate", self.sample_rate)):
            if value < 1:
                raise ValueError(f"feature {feature!r}: {name}={value} must be a positive integer.")

    def example_rank_of(self, value):
        # one clip is a float waveform [N] or a WAV file's bytes (a scalar string)
        return 0 if value.dtype == tf.string else 1

    @property
    def wav_spec(self):
        """Raw spec for WAV-bytes input."""
        return tf.TensorSpec([None], tf.string, name=self.feature)

    def process_batch(self, raw):
        return self.process_batch_with_status(raw)[0]

    def process_batch_with_status(self, raw):
        if isinstance(raw, (list, tuple)) and raw and not isinstance(raw[0], (bytes, str)):
            # a list of clips of any lengths (the README's "any length"): "non-rectangular sequence" otherwise
            clips = [np.asarray(pcm_to_float(v), np.float32).reshape(-1) for v in raw]
            raw = tf.ragged.constant(clips, dtype=tf.float32)
        elif isinstance(raw, (np.ndarray, tf.Tensor, tf.RaggedTensor)):
            raw = pcm_to_float(raw)
        if not isinstance(raw, tf.RaggedTensor) and tf.convert_to_tensor(raw).dtype == tf.string:
            audio, state = decode_wav_batch(tf.convert_to_tensor(raw), self.num_samples, self.sample_rate)
        else:
            audio, state = fit_waveforms_with_status(raw, self.num_samples)
        present = tf.cast(tf.equal(state, OK), tf.float32)
        return {self.feature: audio, self.presence_name: present}, state

    def example_raw(self, batch_size, seed=0):
        rng = np.random.default_rng(seed)
        t = np.arange(self.num_samples) / float(self.sample_rate)
        return np.stack(
            [0.3 * np.sin(2 * np.pi * (200 + 100 * i) * t) + rng.normal(0, 0.01, t.shape) for i in range(batch_size)]
        ).astype("float32")

    def get_config(self):
        return {**super().get_config(), "num_samples": self.num_samples, "sample_rate": self.sample_rate}
