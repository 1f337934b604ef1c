"""Image decoding and resizing shared by training and serving."""

import numpy as np
import tensorflow as tf

from keras_mm.preprocessing.base import FeaturePreprocessor


def decode_and_resize_images(images, image_size):
    """Decode a batch of encoded images (JPEG/PNG/GIF/BMP bytes) to float32 pixels.

    Args:
        images: ``tf.string`` tensor ``[batch]`` of encoded images, or an
            already-decoded numeric batch ``[batch, H, W, C]``.
        image_size: ``(height, width)`` of the output.

    Returns:
        float32 ``[batch, height, width, 3]`` with values in 0..255 (backbone
        specific normalisation happens inside the encoder).

    Example:
        >>> jpeg = tf.io.encode_jpeg(tf.zeros([8, 8, 3], tf.uint8))
        >>> decode_and_resize_images(tf.stack([jpeg]), (32, 32)).shape
        TensorShape([1, 32, 32, 3])
    """
    height, width = int(image_size[0]), int(image_size[1])
    images = tf.convert_to_tensor(images)
    if images.dtype != tf.string:
        pixels = tf.cast(images, tf.float32)
        if pixels.shape.rank != 4:
            raise ValueError(f"A decoded image batch must have rank 4 [batch, H, W, C], got shape {pixels.shape}.")
        if pixels.shape[-1] == 1:
            pixels = tf.image.grayscale_to_rgb(pixels)
        return tf.image.resize(pixels, (height, width))

    def decode_one(encoded):
        image = tf.io.decode_image(encoded, channels=3, expand_animations=False, dtype=tf.uint8)
        image = tf.image.resize(tf.cast(image, tf.float32), (height, width))
        return tf.ensure_shape(image, [height, width, 3])

    return tf.map_fn(
        decode_one,
        images,
        fn_output_signature=tf.TensorSpec([height, width, 3], tf.float32),
    )


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
        return {self.feature: decode_and_resize_images(raw, self.image_size)}

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
