"""The image modality: encoded files (PNG, JPEG, GIF, BMP) as bytes."""

import numpy as np
import tensorflow as tf

from keras_mm.modalities.base import Modality
from keras_mm.preprocessing.image import decode_image_in_loader
from keras_mm.registry import register_modality


@register_modality("image")
class ImageModality(Modality):
    """Images: a manifest cell is a file path; the raw example is the file's bytes (decoded by the preprocessor).

    Augmentation (:class:`keras_mm.data.Augmentation` settings ``flip``,
    ``crop``, ``brightness``, ``contrast``): horizontal flip, random crop
    resized back, brightness and contrast jitter. Robustness noise: Gaussian
    pixel noise with std ``level * 255``.

    Example:
        >>> keras_mm.modalities.get_modality("image").raw_spec()
        TensorSpec(shape=(), dtype=tf.string, name=None)
    """

    file_extensions = (".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp")
    noise_description = "Gaussian pixel noise, std = level * 255"

    def load_graph(self, path, **options):
        # the encoded bytes as they are: the preprocessor decodes them (in training and serving alike)
        return tf.io.read_file(path)

    def check_loaded(self, raw):
        """The file's bytes, once they decode as an image (by the loaders' decoder); else an error saying why.

        Example:
            >>> get_modality = keras_mm.modalities.get_modality
            >>> png = tf.io.encode_png(tf.zeros([2, 2, 3], tf.uint8))
            >>> get_modality("image").check_loaded(png).numpy() == png.numpy()
            True
        """
        pixels = decode_image_in_loader(raw)
        with tf.control_dependencies([pixels]):
            return tf.identity(raw)

    def augment(self, example, feature, augmentation):
        pixels = example[feature]
        u = augmentation.draws(9)  # one generator call: flip | crop: apply, zoom, 2 offsets | brightness: 2 | contrast: 2
        # tf.cond, not tf.where: computing every transform of a 224x224 image for every example made the
        # cached epoch 2.2x slower than paying the conds' setup once per epoch
        if augmentation.flip:
            pixels = tf.cond(u[0] < 0.5, lambda: tf.image.flip_left_right(pixels), lambda: pixels)
        if augmentation.crop > 0:
            pixels = augmentation.maybe(lambda p: _random_crop(p, augmentation.crop, u[2], u[3:5]), pixels, u[1])
        if augmentation.brightness > 0:
            shift = (2.0 * u[6] - 1.0) * augmentation.brightness * 255.0
            pixels = augmentation.maybe(lambda p: p + shift, pixels, u[5])
        if augmentation.contrast > 0:
            factor = 1.0 + (2.0 * u[8] - 1.0) * augmentation.contrast
            pixels = augmentation.maybe(lambda p: (p - tf.reduce_mean(p)) * factor + tf.reduce_mean(p), pixels, u[7])
        return {**example, feature: self.only_where_present(example, feature, tf.clip_by_value(pixels, 0.0, 255.0))}

    def perturb(self, inputs, feature, level, rng):
        pixels = np.asarray(inputs[feature], np.float32)
        noisy = np.clip(pixels + rng.normal(0, level * 255.0, pixels.shape), 0, 255).astype(np.float32)
        return {**inputs, feature: noisy}

    def random_numeric(self, shape, dtype, rng):
        return rng.uniform(0, 255, size=shape).astype(dtype)


def _random_crop(pixels, max_zoom, zoom_draw, offset_draws):
    """A window covering 1 - max_zoom * zoom_draw of each side at ``offset_draws`` (uniforms in [0, 1)), resized back to the input size."""
    size = tf.shape(pixels)[:2]
    scale = 1.0 - max_zoom * zoom_draw
    crop = tf.maximum(tf.cast(tf.cast(size, tf.float32) * scale, tf.int32), 1)
    offset = tf.cast(offset_draws * tf.cast(size - crop, tf.float32), tf.int32)
    window = pixels[offset[0] : offset[0] + crop[0], offset[1] : offset[1] + crop[1]]
    return tf.image.resize(window, size)
