"""The audio modality: sound files decoded to a mono float waveform at the model's sample rate."""

import io

import numpy as np
import tensorflow as tf

from keras_mm.modalities.base import Modality
from keras_mm.preprocessing.audio import resample_to_window, window_source_frames
from keras_mm.preprocessing.wav import decode_plain_pcm16, decode_wav_mono, not_wav_reason, plain_pcm16, unsupported_reason
from keras_mm.registry import register_modality

DEFAULT_SAMPLE_RATE = 16000


def load_audio_file(path, sample_rate, num_samples=None):
    """Read WAV/FLAC/OGG/MP3, mix to mono, resample to ``sample_rate`` (FFT method); float32 ``[n]``.

    The code that ``keras_mm.data.from_manifest`` runs inside ``tf.data``
    (:func:`read_audio`), run eagerly. ``num_samples``: the model's window
    (only the start of the file it needs is resampled, as in training).

    Example:
        >>> path = "tone.wav"
        >>> tf.io.write_file(path, tf.audio.encode_wav(tf.zeros([8000, 1]), 8000))
        >>> load_audio_file(path, 16000).shape
        (16000,)
    """
    return read_audio(tf.constant(path), sample_rate, num_samples).numpy()


def read_audio(path, sample_rate, num_samples=None):
    """TensorFlow ops: audio file ``path`` (scalar string tensor) -> mono float32 ``[n]`` at ``sample_rate``.

    Read with ``tf.io.read_file`` (local, ``gs://``, ... paths), decoded by
    :func:`decode_audio`, resampled with :func:`keras_mm.preprocessing.resample`
    (``librosa.resample(res_type="fft")``) when the file's rate differs. With
    ``num_samples`` (the model's window; manifests read for a model pass it)
    only the start of the file that the window keeps is resampled
    (:func:`keras_mm.preprocessing.audio.resample_to_window`, the step serving
    runs on WAV bytes).

    Example:
        >>> tf.io.write_file("tone.wav", tf.audio.encode_wav(tf.zeros([8000, 1]), 8000))
        >>> read_audio(tf.constant("tone.wav"), 16000).shape
        TensorShape([16000])
    """
    frames = None if num_samples is None else (lambda rate: window_source_frames(num_samples, rate, sample_rate))
    wave, rate = decode_audio(tf.io.read_file(path), path, max_frames=frames)
    return resample_to_window(wave, rate, sample_rate, num_samples)


def decode_audio(data, path="", max_frames=None):
    """Encoded audio bytes -> ``(mono float32 waveform [n], sample rate int32)``.

    Plain 16-bit PCM WAV is decoded by TensorFlow ops (``tf.audio.decode_wav``);
    anything else in Python through ``tf.numpy_function``: other WAV by
    :func:`keras_mm.preprocessing.wav.decode_wav_mono`, the decoder serving
    uses, so a WAV that trains is a WAV that serves (a truncated, big-endian
    or ADPCM WAV is an error here, not a clip soundfile half-reads, and so is
    a ``path`` ending in ``.wav`` whose bytes are not WAV, e.g. an OGG file
    renamed); FLAC, OGG, MP3, AIFF by soundfile (librosa's decoder). That decoder
    inside this loading map made an uncached epoch 1.6x slower (a bigger graph
    for every iterator), so it runs only for the files that need it. A file
    that cannot be decoded raises ``ValueError`` naming ``path`` and why.
    Channels are averaged, as ``librosa.load(mono=True)`` does. ``max_frames``
    (a function of the file's rate): decode plain 16-bit WAV only that far,
    as serving does (:func:`keras_mm.preprocessing.wav.decode_wav_mono`).

    Example:
        >>> wave, rate = decode_audio(tf.audio.encode_wav(tf.ones([5, 2]) * 0.5, 8000))
        >>> wave.numpy(), int(rate)
        (array([0.5, 0.5, 0.5, 0.5, 0.5], dtype=float32), 8000)
    """
    data = tf.convert_to_tensor(data, tf.string)
    return tf.cond(plain_pcm16(data), lambda: decode_plain_pcm16(data, max_frames), lambda: _decode_in_python(data, path))


#: WAV files start with one of these (RIFX: big-endian, refused with a reason)
_WAV_MAGIC = (b"RIFF", b"RF64", b"RIFX")
_decode_wav_function = None


def _decode_wav_in_python(data_bytes, name):
    """A WAV file's ``(mono waveform, rate)`` by the serving decoder, or ValueError naming the file and why."""
    global _decode_wav_function
    if _decode_wav_function is None:
        _decode_wav_function = tf.function(decode_wav_mono, input_signature=[tf.TensorSpec([], tf.string)])
    try:
        with tf.device("/CPU:0"):
            wave, rate = _decode_wav_function(tf.constant(data_bytes))
    except tf.errors.OpError as error:
        # why, in words: read only for a file that failed (the eager header walk costs ~20 ms)
        reason = unsupported_reason(data_bytes) or error.message.strip().splitlines()[0]
        raise ValueError(f"cannot decode {name} as audio: {reason}") from None
    return wave.numpy(), np.int32(rate.numpy())


def _decode_in_python(data, path):
    def decode(data_bytes, path_bytes):
        import soundfile

        # eager numpy_function passes 0-d object arrays, graph mode bytes; .item() of an object array keeps NUL bytes
        data_bytes, path_bytes = (np.asarray(v, dtype=object).item() for v in (data_bytes, path_bytes))
        name = path_bytes.decode("utf-8", "replace") or "audio bytes"
        if data_bytes[:4] in _WAV_MAGIC:
            return _decode_wav_in_python(data_bytes, name)
        if name.lower().endswith(".wav"):
            # soundfile would read an OGG/FLAC/... named .wav; serving_wav takes only WAV bytes: "undecodable" there
            raise ValueError(f"cannot decode {name} as audio: {not_wav_reason(data_bytes, name)}")
        buffer = io.BytesIO(data_bytes)
        try:
            audio, rate = soundfile.read(buffer, dtype="float32", always_2d=True)
        except Exception as error:  # noqa: BLE001  -- soundfile raises several types; re-raised with the file named
            reason = str(error).replace(repr(buffer), name)
            raise ValueError(f"cannot decode {name} as audio (WAV or a format soundfile reads): {reason}") from error
        return audio.mean(axis=1).astype(np.float32), np.int32(rate)

    wave, rate = tf.numpy_function(decode, [data, tf.convert_to_tensor(path, tf.string)], [tf.float32, tf.int32],
                                   stateful=False, name="decode_audio_in_python")
    return tf.ensure_shape(wave, [None]), tf.ensure_shape(rate, [])


@register_modality("audio")
class AudioModality(Modality):
    """Audio: a manifest cell is a sound file; the raw example is a float32 waveform at the encoder's rate.

    Augmentation (:class:`keras_mm.data.Augmentation` settings ``gain``,
    ``noise``, ``shift``): random gain, additive noise relative to the clip's
    RMS, circular time shift. Robustness noise: Gaussian noise at ``level``
    times each clip's RMS.

    Example:
        >>> audio = keras_mm.modalities.get_modality("audio")
        >>> audio.raw_spec(), audio.load_options(sample_rate=8000)
        (TensorSpec(shape=(None,), dtype=tf.float32, name=None), {'sample_rate': 8000})
    """

    # what soundfile (libsndfile) decodes: .oga is the freedesktop sound themes' OGG, .opus Opus in OGG
    file_extensions = (".wav", ".flac", ".ogg", ".mp3", ".oga", ".opus", ".aiff", ".aif")
    raw_shape = (None,)
    raw_dtype = tf.float32
    noise_description = "Gaussian noise, std = level * the clip's RMS"

    def load_options(self, encoder=None, sample_rate=None, num_samples=None, **defaults):
        rate = getattr(encoder, "sample_rate", None) or sample_rate or DEFAULT_SAMPLE_RATE
        options = {"sample_rate": int(rate)}
        window = getattr(encoder, "num_samples", None) or num_samples
        if window is not None:
            options["num_samples"] = int(window)
        return options

    def load_graph(self, path, sample_rate=DEFAULT_SAMPLE_RATE, num_samples=None, **options):
        return read_audio(path, sample_rate, num_samples)

    def augment(self, example, feature, augmentation):
        wave = example[feature]
        g = augmentation.generator
        u = augmentation.draws(5)  # one generator call: gain: apply, value | noise: apply | shift: apply, value
        low, high = augmentation.gain
        gain = low + (high - low) * u[1]
        wave = augmentation.maybe_select(wave * gain, wave, u[0])
        if augmentation.noise > 0:
            wave = augmentation.maybe(
                lambda w: w + g.normal(tf.shape(w)) * tf.sqrt(tf.reduce_mean(tf.square(w)) + 1e-12) * augmentation.noise,
                wave, u[2],
            )
        if augmentation.shift > 0:
            limit = tf.cast(tf.cast(tf.shape(wave)[0], tf.float32) * augmentation.shift, tf.int32) + 1
            # an integer in [-limit, limit), as generator.uniform(dtype=int32) drew it
            steps = tf.minimum(-limit + tf.cast(tf.floor(u[4] * tf.cast(2 * limit, tf.float32)), tf.int32), limit - 1)
            wave = augmentation.maybe_select(tf.roll(wave, steps, axis=0), wave, u[3])
        return {**example, feature: self.only_where_present(example, feature, wave)}

    def perturb(self, inputs, feature, level, rng):
        wave = np.asarray(inputs[feature], np.float32)
        rms = np.sqrt((wave**2).mean(axis=1, keepdims=True)) + 1e-8
        return {**inputs, feature: (wave + rng.normal(0, 1, wave.shape) * rms * level).astype(np.float32)}
