"""The audio modality: sound files decoded to a mono float waveform at the model's sample rate."""

import numpy as np
import tensorflow as tf

from keras_mm.modalities.base import Modality
from keras_mm.registry import register_modality

DEFAULT_SAMPLE_RATE = 16000


def load_audio_file(path, sample_rate):
    """Read WAV/FLAC/OGG/MP3 (librosa/soundfile), mix to mono, resample to ``sample_rate``; float32 ``[n]``.

    Example:
        >>> import os, tempfile
        >>> path = os.path.join(tempfile.mkdtemp(), "tone.wav")
        >>> tf.io.write_file(path, tf.audio.encode_wav(tf.zeros([8000, 1]), 8000))
        >>> load_audio_file(path, 16000).shape
        (16000,)
    """
    import librosa

    audio, _ = librosa.load(path, sr=sample_rate, mono=True)
    return audio.astype(np.float32)


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

    file_extensions = (".wav", ".flac", ".ogg", ".mp3")
    raw_shape = (None,)
    raw_dtype = tf.float32
    noise_description = "Gaussian noise, std = level * the clip's RMS"

    def load_options(self, encoder=None, sample_rate=None, **defaults):
        rate = getattr(encoder, "sample_rate", None) or sample_rate or DEFAULT_SAMPLE_RATE
        return {"sample_rate": int(rate)}

    def load_file(self, path, sample_rate=DEFAULT_SAMPLE_RATE, **options):
        return load_audio_file(path, sample_rate)

    def augment(self, example, feature, augmentation):
        wave = example[feature]
        g = augmentation.generator
        low, high = augmentation.gain
        wave = augmentation.maybe(lambda w: w * g.uniform([], low, high), wave)
        if augmentation.noise > 0:
            wave = augmentation.maybe(
                lambda w: w + g.normal(tf.shape(w)) * tf.sqrt(tf.reduce_mean(tf.square(w)) + 1e-12) * augmentation.noise,
                wave,
            )
        if augmentation.shift > 0:
            limit = tf.cast(tf.cast(tf.shape(wave)[0], tf.float32) * augmentation.shift, tf.int32) + 1
            wave = augmentation.maybe(lambda w: tf.roll(w, g.uniform([], -limit, limit, dtype=tf.int32), axis=0), wave)
        return {**example, feature: self.only_where_present(example, feature, wave)}

    def perturb(self, inputs, feature, level, rng):
        wave = np.asarray(inputs[feature], np.float32)
        rms = np.sqrt((wave**2).mean(axis=1, keepdims=True)) + 1e-8
        return {**inputs, feature: (wave + rng.normal(0, 1, wave.shape) * rms * level).astype(np.float32)}
