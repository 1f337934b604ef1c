"""Per-image standardization: each image to zero mean and unit variance over its pixels and channels."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_mm")
class PerImageStandardization(keras.layers.Layer):
    """``(x - mean) / max(std, 1 / sqrt(N))`` per image, over height, width and channels.

    The formula of ``tf.image.per_image_standardization`` (``N`` = pixels x
    channels; the floor keeps a uniform image at zero instead of dividing by
    zero), as a layer, so it runs inside the model and travels with every
    export. Why a small CNN trained from scratch wants it: on pages that are
    mostly background (clip art, scans, icons) a plain ``x / 255`` input makes
    the background dominate every channel's average, so a fresh network starts
    with nearly the same pooled vector for every image. Standardized, the
    background sits near zero and the rare stroke pixels carry the signal.
    What it gives up: an image's overall brightness and contrast (two images
    that differ only by ``a * x + b``, ``a > 0``, become the same input; hue
    stays, as the channels are standardized together). Where those are the
    label (day vs night, exposure checks), build ``small_cnn`` with
    ``input_normalization="rescale"`` (pixels / 255 only).

    Example:
        >>> layer = keras_mm.layers.PerImageStandardization()
        >>> images = np.random.default_rng(0).uniform(0, 1, (2, 8, 8, 3)).astype("float32")
        >>> out = layer(images).numpy()
        >>> np.round(out.mean(axis=(1, 2, 3)), 5).tolist(), np.round(out.std(axis=(1, 2, 3)), 3).tolist()
        ([0.0, 0.0], [1.0, 1.0])
        >>> float(layer(np.ones((1, 8, 8, 3), "float32")).numpy().max())  # a uniform image: zeros, not NaN
        0.0
    """

    def call(self, images):
        images = ops.cast(images, "float32")  # statistics in float32, also under mixed precision
        axes = tuple(range(1, len(images.shape)))
        mean = ops.mean(images, axis=axes, keepdims=True)
        centered = images - mean
        variance = ops.mean(ops.square(centered), axis=axes, keepdims=True)
        count = ops.cast(ops.prod(ops.shape(images)[1:]), "float32")
        floor = ops.rsqrt(count)
        return ops.cast(centered / ops.maximum(ops.sqrt(variance), floor), self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return input_shape
