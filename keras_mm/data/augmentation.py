"""Training-only augmentation of numeric examples, per modality."""

import tensorflow as tf

from keras_mm.modalities import get_modality


class Augmentation:
    """Random per-example augmentation applied after ``model.preprocessor`` (training pipelines only).

    Each feature's modality object does the work (``Modality.augment``); this
    class holds the settings and the random generator. Each transform is
    applied with probability ``probability``, so the model also sees clean
    inputs (always adding noise makes clean test audio, with its digital
    silence, look out of distribution). Missing samples stay missing.

    Images (float32 ``[H, W, 3]`` in 0..255): horizontal flip, random crop
    (zoom up to ``crop``) resized back, brightness and contrast jitter.
    Audio (float32 ``[N]``): random gain, additive noise relative to the
    clip's RMS, circular time shift. Text: none by default (token dropout
    ``text_token_dropout`` is opt-in).

    Args:
        modalities: ``{feature: modality name}`` (``model.modalities``).
        flip, crop, brightness, contrast: image settings (0 / False disables).
        gain, noise, shift: audio settings: gain range, noise-to-RMS ratio,
            maximum shift as a fraction of the clip.
        text_token_dropout: probability of dropping each text token.
        probability: probability of applying each transform.
        seed: optional seed.

    Example:
        >>> aug = Augmentation({"audio": "audio"}, probability=1.0, seed=0)
        >>> example = {"audio": tf.ones([100]), "audio_present": tf.constant(1.0)}
        >>> bool(tf.reduce_any(aug(example)["audio"] != 1.0))
        True
    """

    def __init__(self, modalities, flip=True, crop=0.1, brightness=0.15, contrast=0.15, gain=(0.7, 1.3),
                 noise=0.05, shift=0.1, text_token_dropout=0.0, probability=0.5, seed=None):
        self.modalities = {feature: get_modality(m) for feature, m in dict(modalities).items()}
        self.flip, self.crop, self.brightness, self.contrast = flip, float(crop), float(brightness), float(contrast)
        self.gain, self.noise, self.shift = tuple(gain), float(noise), float(shift)
        self.text_token_dropout = float(text_token_dropout)
        self.probability = float(probability)
        self.generator = tf.random.Generator.from_seed(seed) if seed is not None else tf.random.Generator.from_non_deterministic_state()

    def draws(self, n):
        """``n`` uniform numbers in [0, 1) for one example, from ONE generator call.

        Every generator call is a handful of stateful ops that each new
        iterator (every epoch) instantiates again (~10 ms each): a modality
        draws what its transforms need at once and passes the numbers to
        :meth:`maybe` and to its transforms.

        Example:
            >>> Augmentation({"audio": "audio"}, seed=0).draws(3).shape
            TensorShape([3])
        """
        return self.generator.uniform([n])

    def maybe(self, transform, value, draw=None):
        """``transform(value)`` with probability ``probability``, else ``value``; ``draw``: a number from :meth:`draws` (else a new draw).

        A ``tf.cond``: the transform runs only when applied (use it for costly
        transforms; :meth:`maybe_select` for cheap ones).
        """
        draw = self.generator.uniform([]) if draw is None else draw
        return tf.cond(draw < self.probability, lambda: transform(value), lambda: value)

    def maybe_select(self, transformed, value, draw):
        """``transformed`` (already computed) with probability ``probability``, else ``value``: no ``tf.cond``.

        For cheap element-wise transforms: a ``tf.cond`` costs each new
        iterator (every epoch) ~3 ms to instantiate, more than computing the
        transform for every example.
        """
        return tf.where(draw < self.probability, transformed, value)

    def __call__(self, x, y=None):
        x = dict(x)
        for feature, modality in self.modalities.items():
            x = modality.augment(x, feature, self)
        return x if y is None else (x, y)
