"""Training-only augmentation of numeric examples, per modality."""

import tensorflow as tf


class Augmentation:
    """Random per-example augmentation applied after ``model.preprocessor`` (training pipelines only).

    Each transform is applied with probability ``probability``, so the model
    also sees clean inputs (always adding noise makes clean test audio, with
    its digital silence, look out of distribution).

    Images (float32 ``[H, W, 3]`` in 0..255): horizontal flip, random crop
    (zoom up to ``crop``) resized back, brightness and contrast jitter.
    Audio (float32 ``[N]``): random gain, additive noise relative to the
    clip's RMS, circular time shift. Text: none by default (token dropout
    ``text_token_dropout`` is opt-in). Missing samples stay missing.

    Args:
        modalities: ``{feature: modality}`` (``model.modalities``).
        flip, crop, brightness, contrast: image settings (0 / False disables).
        gain, noise, shift: audio settings: gain range, noise-to-RMS ratio,
            maximum shift as a fraction of the clip.
        text_token_dropout: probability of dropping each text token.
        seed: optional seed.

    Example:
        >>> aug = Augmentation(model.modalities)
        >>> train = keras_mm.data.from_manifest("m.csv", model=model, augment=aug, batch_size=32)
    """

    def __init__(self, modalities, flip=True, crop=0.1, brightness=0.15, contrast=0.15, gain=(0.7, 1.3),
                 noise=0.05, shift=0.1, text_token_dropout=0.0, probability=0.5, seed=None):
        self.modalities = dict(modalities)
        self.flip, self.crop, self.brightness, self.contrast = flip, float(crop), float(brightness), float(contrast)
        self.gain, self.noise, self.shift = tuple(gain), float(noise), float(shift)
        self.text_token_dropout = float(text_token_dropout)
        self.probability = float(probability)
        self.generator = tf.random.Generator.from_seed(seed) if seed is not None else tf.random.Generator.from_non_deterministic_state()

    def _maybe(self, transform, value):
        return tf.cond(self.generator.uniform([]) < self.probability, lambda: transform(value), lambda: value)

    def image(self, pixels):
        g = self.generator
        if self.flip:
            pixels = tf.cond(g.uniform([]) < 0.5, lambda: tf.image.flip_left_right(pixels), lambda: pixels)
        if self.crop > 0:
            pixels = self._maybe(self._crop, pixels)
        if self.brightness > 0:
            pixels = self._maybe(lambda p: p + g.uniform([], -self.brightness, self.brightness) * 255.0, pixels)
        if self.contrast > 0:
            pixels = self._maybe(
                lambda p: (p - tf.reduce_mean(p)) * g.uniform([], 1 - self.contrast, 1 + self.contrast) + tf.reduce_mean(p),
                pixels,
            )
        return tf.clip_by_value(pixels, 0.0, 255.0)

    def _crop(self, pixels):
        g = self.generator
        size = tf.shape(pixels)[:2]
        scale = 1.0 - g.uniform([], 0.0, self.crop)
        crop = tf.maximum(tf.cast(tf.cast(size, tf.float32) * scale, tf.int32), 1)
        offset = tf.cast(g.uniform([2], 0.0, 1.0) * tf.cast(size - crop, tf.float32), tf.int32)
        window = pixels[offset[0] : offset[0] + crop[0], offset[1] : offset[1] + crop[1]]
        return tf.image.resize(window, size)

    def audio(self, wave):
        g = self.generator
        wave = self._maybe(lambda w: w * g.uniform([], self.gain[0], self.gain[1]), wave)
        if self.noise > 0:
            wave = self._maybe(
                lambda w: w + g.normal(tf.shape(w)) * tf.sqrt(tf.reduce_mean(tf.square(w)) + 1e-12) * self.noise, wave
            )
        if self.shift > 0:
            limit = tf.cast(tf.cast(tf.shape(wave)[0], tf.float32) * self.shift, tf.int32) + 1
            wave = self._maybe(lambda w: tf.roll(w, g.uniform([], -limit, limit, dtype=tf.int32), axis=0), wave)
        return wave

    def __call__(self, x, y=None):
        x = dict(x)
        for feature, modality in self.modalities.items():
            present = x[f"{feature}_present"] > 0
            if modality == "image":
                x[feature] = tf.where(present, self.image(x[feature]), x[feature])
            elif modality == "audio":
                x[feature] = tf.where(present, self.audio(x[feature]), x[feature])
            elif modality == "text" and self.text_token_dropout > 0:
                mask = x[f"{feature}_padding_mask"]
                keep = self.generator.uniform(tf.shape(mask)) >= self.text_token_dropout
                keep = tf.concat([[True], keep[1:]], 0)
                x[f"{feature}_padding_mask"] = mask * tf.cast(keep, mask.dtype)
        return x if y is None else (x, y)
