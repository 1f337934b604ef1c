"""Image decoding and resizing shared by training and serving."""

import numpy as np
import tensorflow as tf

from keras_mm.preprocessing.base import FeaturePreprocessor
from keras_mm.preprocessing.isolation import map_isolating_failures


def decode_and_resize_images(images, image_size):
    """Decode a batch of encoded images (JPEG/PNG/GIF/BMP bytes) to float32 pixels, per-sample safe.

    Args:
        images: ``tf.string`` tensor ``[batch]`` of encoded images, or an
            already-decoded numeric batch ``[batch, H, W, C]``.
        image_size: ``(height, width)`` of the output.

    Returns:
        ``(pixels, valid)``: float32 ``[batch, height, width, 3]`` in 0..255
        (backbone normalisation happens inside the encoder) and bool
        ``[batch]``. Empty, corrupt, truncated or unsupported images give
        zeros and ``valid=False`` without affecting the other samples.

    Example:
        >>> jpeg = tf.io.encode_jpeg(tf.zeros([8, 8, 3], tf.uint8))
        >>> pixels, valid = decode_and_resize_images(tf.stack([jpeg, b"junk"]), (32, 32))
        >>> pixels.shape, valid.numpy()
        (TensorShape([2, 32, 32, 3]), array([ True, False]))
    """
    height, width = int(image_size[0]), int(image_size[1])
    images = tf.convert_to_tensor(images) if not isinstance(images, np.ndarray) or images.dtype != object else tf.constant(images.tolist(), tf.string)
    if images.dtype != tf.string:
        pixels = tf.cast(images, tf.float32)
        if pixels.shape.rank != 4:
            raise ValueError(f"A decoded image batch must have rank 4 [batch, H, W, C], got shape {pixels.shape}.")
        if pixels.shape[-1] == 1:
            pixels = tf.image.grayscale_to_rgb(pixels)
        valid = tf.reduce_all(tf.math.is_finite(pixels), axis=[1, 2, 3])
        pixels = tf.where(tf.math.is_finite(pixels), pixels, tf.zeros_like(pixels))
        return tf.image.resize(pixels, (height, width)), valid

    def decode_one(encoded):
        image = tf.io.decode_image(encoded, channels=3, expand_animations=False, dtype=tf.uint8)
        # Some malformed files "decode" to a 0-pixel image; resizing that gives NaN.
        tf.debugging.assert_positive(tf.shape(image)[:2], message="image has no pixels")
        return tf.image.resize(tf.cast(image, tf.float32), (height, width))

    # Resizing decoded uint8 pixels is always finite once 0-pixel images are refused.
    return map_isolating_failures(decode_one, images, tf.TensorSpec([height, width, 3], tf.float32))


class ImagePreprocessor(FeaturePreprocessor):
    """Encoded image bytes -> ``{feature: float32 [B, H, W, 3] in 0..255}``.

    Example:
        >>> pre = ImagePreprocessor("photo", image_size=(224, 224))
        >>> pre.process_batch(tf.stack([jpeg_bytes]))["photo"].shape
        TensorShape([1, 224, 224, 3])
    """

    example_rank = 0

    def __init__(self, feature, image_size):
        super().__init__(feature)
        self.image_size = tuple(int(s) for s in image_size)

    def process_batch(self, raw):
        pixels, valid = decode_and_resize_images(raw, self.image_size)
        return {self.feature: pixels, self.presence_name: tf.cast(valid, tf.float32)}

    def example_raw(self, batch_size, seed=0):
        rng = np.random.default_rng(seed)
        out = []
        for i in range(batch_size):
            pixels = rng.integers(0, 256, size=(24 + 8 * (i % 3), 32, 3), dtype=np.uint8)
            encode = tf.io.encode_png if i % 2 else tf.io.encode_jpeg
            out.append(encode(pixels).numpy())
        return np.array(out, dtype=object)

    def get_config(self):
        return {**super().get_config(), "image_size": list(self.image_size)}
