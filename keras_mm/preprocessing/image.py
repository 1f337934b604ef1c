"""Image decoding and resizing shared by training and serving."""

import functools
import logging
import numbers

import numpy as np
import tensorflow as tf

from keras_mm.preprocessing.base import FeaturePreprocessor
from keras_mm.preprocessing.isolation import map_isolating_failures
from keras_mm.preprocessing.status import EMPTY, NOT_FINITE, OK, TOO_LARGE, status_of_decoded

WHITE = (255, 255, 255)
#: images whose header announces more pixels are refused before decoding (Pillow's decompression-bomb
#: threshold): a 283 KB PNG of 16000 x 16000 white pixels took 8.8 GB and 27 s to decode in serving.
MAX_IMAGE_PIXELS = 89_478_485
#: what a sample refused by :data:`MAX_IMAGE_PIXELS` decodes to inside :func:`decode_and_resize_images`
#: (decoded pixels are never negative), turned into status ``too_large`` and zeros there.
_TOO_LARGE_FILL = -1.0


def image_size_pair(image_size, field="image_size"):
    """``(height, width)`` of an int or a pair; anything else, or a size below 1, is a ``ValueError`` naming ``field``.

    Example:
        >>> from keras_mm.preprocessing.image import image_size_pair
        >>> image_size_pair(32), image_size_pair([64, 48])
        ((32, 32), (64, 48))
        >>> image_size_pair(-3)
        Traceback (most recent call last):
        ValueError: image_size=-3 must be a positive size: an int, or (height, width).
    """
    try:
        pair = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
        valid = len(pair) == 2 and all(float(s).is_integer() and s >= 1 for s in pair)
    except (TypeError, ValueError):
        valid = False
    if not valid:
        raise ValueError(f"{field}={image_size!r} must be a positive size: an int, or (height, width).")
    return tuple(int(s) for s in pair)


def validate_background(background, field="background"):
    """Check an RGB background colour and return it as a tuple of 3 ints.

    Args:
        background: 3 integers in 0..255 (R, G, B).
        field: the argument's name, for the error message.

    Example:
        >>> keras_mm.preprocessing.image.validate_background([255, 128, 0])
        (255, 128, 0)
    """
    values = tuple(background) if isinstance(background, (tuple, list, np.ndarray)) else (background,)
    if len(values) != 3 or not all(
        isinstance(v, numbers.Integral) and not isinstance(v, bool) and 0 <= v <= 255 for v in values
    ):
        raise ValueError(
            f"{field}={background!r} must be 3 integers in 0..255 (R, G, B), e.g. (255, 255, 255) for white."
        )
    return tuple(int(v) for v in values)


def composite_over_background(pixels, background=WHITE):
    """Flatten pixels with an optional alpha channel onto an opaque background colour.

    Args:
        pixels: float ``[..., C]`` in 0..255 with C = 1 (grey), 2 (grey +
            alpha), 3 (RGB) or 4 (RGBA); alpha 255 is opaque.
        background: ``(R, G, B)`` shown through transparent pixels.

    Returns:
        float32 ``[..., 3]``: ``rgb * a + background * (1 - a)`` with ``a = alpha / 255``.

    Example:
        >>> rgba = tf.constant([[0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 255.0]])
        >>> keras_mm.preprocessing.image.composite_over_background(rgba).numpy()
        array([[255., 255., 255.],
               [  0.,   0.,   0.]], dtype=float32)
    """
    pixels = tf.cast(pixels, tf.float32)
    channels = pixels.shape[-1]
    if channels not in (1, 2, 3, 4):
        raise ValueError(f"images must have 1, 2, 3 or 4 channels (grey, grey+alpha, RGB, RGBA), got {channels}.")
    colour, alpha = (pixels[..., :-1], pixels[..., -1:] / 255.0) if channels in (2, 4) else (pixels, None)
    if colour.shape[-1] == 1:
        colour = tf.concat([colour] * 3, axis=-1)
    if alpha is None:
        return colour
    return colour * alpha + tf.constant(background, tf.float32) * (1.0 - alpha)


def _replace_bytes(encoded, position, new_bytes):
    """``encoded`` with the bytes at ``position`` overwritten by ``new_bytes`` (same length)."""
    tail = position + tf.strings.length(new_bytes)
    return tf.strings.join([tf.strings.substr(encoded, 0, position), new_bytes, tf.strings.substr(encoded, tail, -1)])


def _find_gif_transparency(data):
    """Positions of the first frame's Graphic Control Extension and image descriptor in GIF bytes.

    Walks the blocks after the header and global colour table: extensions are
    skipped sub-block by sub-block (remembering the last GCE), and the walk
    stops at the first image descriptor (0x2C). Returns ``(gce, image)``,
    -1 where not found; reads are clamped so a truncated file cannot fail here.
    """
    size = tf.size(data)

    def byte(i):
        return tf.gather(data, tf.clip_by_value(i, 0, size - 1))

    flags = byte(10)
    start = 13 + tf.where(flags >= 128, 3 * tf.bitwise.left_shift(2, flags % 8), 0)

    def step(pos, in_extension, gce, image, done):
        b = byte(pos)
        # inside an extension: size-prefixed sub-blocks until an empty one
        ext_pos, ext_in = pos + b + 1, b != 0
        starts_ext = tf.equal(b, 0x21)
        block_gce = tf.where(starts_ext & tf.equal(byte(pos + 1), 0xF9), pos, gce)
        block_image = tf.where(tf.equal(b, 0x2C), pos, -1)
        return (
            tf.where(in_extension, ext_pos, pos + 2),
            tf.where(in_extension, ext_in, starts_ext),
            tf.where(in_extension, gce, block_gce),
            tf.where(in_extension, image, block_image),
            tf.logical_and(tf.logical_not(in_extension), tf.logical_not(starts_ext)),
        )

    _, _, gce, image, _ = tf.while_loop(
        lambda pos, in_extension, gce, image, done: tf.logical_and(tf.logical_not(done), pos < size),
        step,
        (start, tf.constant(False), tf.constant(-1), tf.constant(-1), tf.constant(False)),
    )
    return gce, image, byte


def _gif_with_background(encoded, background):
    """GIF bytes whose first-frame transparent colour is ``background``, transparency flag cleared.

    TensorFlow's GIF decoder has no alpha channel and paints the first frame's
    transparent pixels black (0, 0, 0), the same as black ink. Rewriting the
    palette entry of the transparent index to the background colour and
    clearing the flag makes the decoder paint them in the background colour.
    """
    data = tf.cast(tf.io.decode_raw(encoded, tf.uint8), tf.int32)
    gce, image, byte = _find_gif_transparency(data)
    local = byte(image + 9) >= 128
    table_flags = tf.where(local, byte(image + 9), byte(10))
    table = tf.where(local, image + 10, tf.where(byte(10) >= 128, 13, -1))
    index = byte(gce + 6)
    transparent = (
        (gce >= 0) & (image > gce) & (table >= 0) & tf.equal(byte(gce + 3) % 2, 1)
        & (index < tf.bitwise.left_shift(2, table_flags % 8))
    )

    def patch():
        one_byte = tf.constant([bytes([i]) for i in range(256)])
        opaque = _replace_bytes(encoded, gce + 3, tf.gather(one_byte, byte(gce + 3) - 1))
        return _replace_bytes(opaque, table + 3 * index, tf.constant(bytes(background)))

    return tf.cond(transparent, patch, lambda: encoded)


def decode_image(encoded, background=WHITE):
    """Decode one encoded image to float32 RGB ``[H, W, 3]`` in 0..255, transparency flattened onto ``background``.

    PNG (RGBA, grey + alpha, palette + tRNS) is decoded with its alpha channel
    and composited: ``rgb * a + background * (1 - a)``. GIF transparency is
    binary and TensorFlow's GIF decoder cannot return it (it paints
    transparent pixels black), so the first frame's transparent palette entry
    is rewritten to ``background`` in the bytes before decoding. WebP is
    decoded with its own channels (TensorFlow refuses 3 for a WebP with
    alpha) and composited when it has alpha. JPEG and BMP are decoded as RGB
    (a 32-bit BMP's fourth byte is often unused, not alpha). Raises (per
    sample) for corrupt input.

    Args:
        encoded: scalar ``tf.string`` (PNG/GIF/WebP/JPEG/BMP bytes).
        background: ``(R, G, B)`` integers in 0..255.

    Example:
        >>> rgba = tf.constant([[[200, 0, 0, 0], [200, 0, 0, 255]]], tf.uint8)
        >>> keras_mm.preprocessing.image.decode_image(tf.io.encode_png(rgba)).numpy()
        array([[[255., 255., 255.],
                [200.,   0.,   0.]]], dtype=float32)
    """
    background = validate_background(background)
    header = tf.strings.join([tf.strings.substr(encoded, 0, 12), b"\0" * 12])  # fixed reads of a short input read zeros
    magic = tf.strings.substr(header, 0, 4)
    rgb = _decode_rgb

    def png():
        return _decode_png(encoded, background)

    def gif():
        return rgb(_gif_with_background(encoded, background))

    def webp():
        image = tf.cast(tf.io.decode_image(encoded, channels=0, expand_animations=False, dtype=tf.uint8), tf.float32)

        def with_alpha():
            return composite_over_background(tf.ensure_shape(image, [None, None, 4]), background)

        return tf.cond(tf.equal(tf.shape(image)[-1], 4), with_alpha, lambda: image[..., :3])

    def other():
        is_webp = tf.equal(magic, b"RIFF") & tf.equal(tf.strings.substr(header, 8, 4), b"WEBP")
        return tf.cond(is_webp, webp, lambda: rgb(encoded))

    def not_png():
        return tf.cond(tf.equal(magic, b"GIF8"), gif, other)

    image = tf.cond(tf.equal(magic, b"\x89PNG"), png, not_png)
    return tf.ensure_shape(image, [None, None, 3])


def _decode_rgb(data):
    """JPEG / BMP (anything decoded without alpha) -> float32 RGB; :func:`decode_image`'s branch for them."""
    return tf.cast(tf.io.decode_image(data, channels=3, expand_animations=False, dtype=tf.uint8), tf.float32)


def _decode_png(encoded, background):
    """PNG -> float32 RGB with its alpha composited onto ``background``; :func:`decode_image`'s branch for PNG."""
    return composite_over_background(tf.io.decode_png(encoded, channels=4, dtype=tf.uint8), background)


_COMPILED_DECODERS = {}


def _compiled_decode_image(background):
    """:func:`decode_image` for ``background`` as one ``tf.function``, traced once per process."""
    if background not in _COMPILED_DECODERS:
        _COMPILED_DECODERS[background] = tf.function(
            lambda encoded: decode_image(encoded, background), input_signature=[tf.TensorSpec([], tf.string)])
    return _COMPILED_DECODERS[background]


def decode_image_in_loader(encoded, background=WHITE):
    """:func:`decode_image` for ``tf.data`` loaders: the same pixels, a much smaller graph.

    Every new iterator (every epoch) instantiates its map function's graph
    again, which costs ~0.25 ms per op and ~3 ms per ``tf.cond`` here: the
    full decoder (GIF transparency walk, WebP, BMP) cost ~0.15 s per epoch
    and ~0.2 s to trace. PNG and JPEG, the common formats, run
    :func:`decode_image`'s own branches in the loader's graph; any other format
    calls :func:`decode_image`, compiled once per process, through
    ``tf.numpy_function``. Serving keeps :func:`decode_image` in its graph
    (a SavedModel cannot call Python). Raises for corrupt input and for an
    image over :data:`MAX_IMAGE_PIXELS` (read from the PNG/JPEG header, before decoding).

    Example:
        >>> from keras_mm.preprocessing.image import decode_image, decode_image_in_loader
        >>> png = tf.io.encode_png(tf.constant([[[200, 0, 0, 0], [200, 0, 0, 255]]], tf.uint8))
        >>> ds = tf.data.Dataset.from_tensors(png).map(decode_image_in_loader)
        >>> bool(tf.reduce_all(next(iter(ds)) == decode_image(png)))
        True
    """
    background = validate_background(background)

    def in_python(data):
        data = np.asarray(data, dtype=object).item()  # eager numpy_function passes a 0-d object array, graph mode bytes
        try:
            _within_max_pixels(tf.constant(data), announced_pixels(tf.constant(data)))
            return _compiled_decode_image(background)(tf.constant(data)).numpy()
        except tf.errors.OpError as error:  # a ValueError reaches the graph as InvalidArgumentError, like the in-graph decoders
            raise ValueError(error.message) from None

    def other():
        image = tf.numpy_function(in_python, [encoded], tf.float32, stateful=False, name="decode_image_in_python")
        return tf.ensure_shape(image, [None, None, 3])

    def png():
        return _decode_png(_within_max_pixels(encoded, _png_pixels(encoded)), background)

    def jpeg():
        return _decode_rgb(_within_max_pixels(encoded, _jpeg_pixels(encoded)))

    is_png = tf.equal(tf.strings.substr(encoded, 0, 4), b"\x89PNG")
    is_jpeg = tf.equal(tf.strings.substr(encoded, 0, 3), b"\xff\xd8\xff")
    image = tf.cond(is_png, png, lambda: tf.cond(is_jpeg, jpeg, other))
    return tf.ensure_shape(image, [None, None, 3])


def _png_pixels(encoded):
    """Width x height of a PNG's IHDR chunk (int64; 0 when there is none where the format puts it)."""
    padded = tf.strings.join([encoded, b"\0" * 24])  # a file shorter than its header reads zeros
    header = tf.io.decode_raw(tf.strings.substr(padded, 12, 12), tf.uint8)  # "IHDR", width, height (big-endian)
    size = tf.cast(header[4:12], tf.int64) * tf.constant([2**24, 2**16, 2**8, 1] * 2, tf.int64)
    return tf.where(tf.equal(tf.strings.substr(padded, 12, 4), b"IHDR"),
                    tf.reduce_sum(size[:4]) * tf.reduce_sum(size[4:]), tf.constant(0, tf.int64))


def _jpeg_pixels(encoded):
    """Width x height of a JPEG's frame header (int64); raises for a corrupt JPEG, as decoding would."""
    shape = tf.cast(tf.image.extract_jpeg_shape(encoded), tf.int64)
    return shape[0] * shape[1]


def _byte_at(data, position):
    return tf.cast(tf.io.decode_raw(tf.strings.substr(data, position, 1), tf.uint8)[0], tf.int64)


def _uint(data, position, size):
    """A little-endian unsigned integer of ``size`` bytes at ``position`` (int64)."""
    return tf.add_n([_byte_at(data, position + i) * (256 ** i) for i in range(size)])


def announced_pixels(encoded):
    """Width x height that an encoded image's header announces, read without decoding (int64 scalar; 0: unknown).

    PNG (IHDR), GIF (logical screen), BMP, WebP (VP8, VP8L, VP8X) and JPEG
    (its frame header, ``tf.image.extract_jpeg_shape``; raises for a corrupt
    JPEG, as decoding would). The cheap test that keeps a decompression bomb
    from being decoded (:data:`MAX_IMAGE_PIXELS`).

    Example:
        >>> from keras_mm.preprocessing.image import announced_pixels
        >>> int(announced_pixels(tf.io.encode_png(tf.zeros([30, 20, 3], tf.uint8))))
        600
    """
    data = tf.strings.join([encoded, b"\0" * 32])  # fixed reads past a short file's end read zeros
    magic = tf.strings.substr(data, 0, 4)
    webp_chunk = tf.strings.substr(data, 12, 4)

    def gif():
        return _uint(data, 6, 2) * _uint(data, 8, 2)

    def bmp():  # signed 32-bit width and height (a negative height is a top-down bitmap)
        def signed(value):
            return tf.abs(tf.where(value >= 2**31, value - 2**32, value))

        return signed(_uint(data, 18, 4)) * signed(_uint(data, 22, 4))

    def webp():
        vp8x = (1 + _uint(data, 24, 3)) * (1 + _uint(data, 27, 3))
        vp8 = (_uint(data, 26, 2) % 16384) * (_uint(data, 28, 2) % 16384)
        b = [_byte_at(data, 21 + i) for i in range(4)]
        vp8l = (1 + b[0] + (b[1] % 64) * 256) * (1 + b[1] // 64 + b[2] * 4 + (b[3] % 16) * 1024)
        return tf.where(tf.equal(webp_chunk, b"VP8X"), vp8x,
                        tf.where(tf.equal(webp_chunk, b"VP8L"), vp8l, tf.where(tf.equal(webp_chunk, b"VP8 "), vp8, 0)))

    is_webp = tf.equal(magic, b"RIFF") & tf.equal(tf.strings.substr(data, 8, 4), b"WEBP")
    return tf.case([
        (tf.equal(magic, b"\x89PNG"), lambda: _png_pixels(encoded)),
        (tf.equal(magic, b"GIF8"), gif),
        (tf.equal(tf.strings.substr(data, 0, 2), b"BM"), bmp),
        (tf.equal(tf.strings.substr(data, 0, 3), b"\xff\xd8\xff"), lambda: _jpeg_pixels(encoded)),
        (is_webp, webp),
    ], default=lambda: tf.constant(0, tf.int64), exclusive=True)


_WARNED_SCALED_TO_ONE = []


def _warn_if_scaled_to_one(pixels):
    """Log once when decoded pixels given eagerly all lie in [0, 1]: keras_mm takes 0..255 (a 0..1 image reads as black)."""
    if _WARNED_SCALED_TO_ONE or not tf.executing_eagerly() or not tf.size(pixels):
        return
    largest = float(tf.reduce_max(pixels))
    if 0.0 < largest <= 1.0:
        _WARNED_SCALED_TO_ONE.append(True)
        logging.getLogger("keras_mm").warning(
            "decoded image pixels all lie in [0, 1] (largest %.3g): keras_mm takes pixels in 0..255, as decoding a "
            "file gives them (the encoder normalises them itself); multiply by 255 if they were scaled.", largest)


def decode_and_resize_images(images, image_size, background=WHITE):
    """Decode a batch of encoded images (JPEG/PNG/GIF/WebP/BMP bytes) to float32 RGB pixels, per-sample safe.

    Args:
        images: ``tf.string`` tensor ``[batch]`` of encoded images, or an
            already-decoded numeric batch ``[batch, H, W, C]`` in 0..255 with
            C = 1, 2 (grey + alpha), 3 or 4 (RGBA).
        image_size: ``(height, width)`` of the output.
        background: ``(R, G, B)`` shown through transparent pixels (see
            :func:`decode_image`); white by default.

    Returns:
        ``(pixels, valid)``: float32 ``[batch, height, width, 3]`` in 0..255
        (backbone normalisation happens inside the encoder) and bool
        ``[batch]``. Empty, corrupt, truncated or unsupported images, and
        images over :data:`MAX_IMAGE_PIXELS`, give zeros and ``valid=False``
        without affecting the other samples (:func:`decode_and_resize_images_with_status` says which).

    Example:
        >>> jpeg = tf.io.encode_jpeg(tf.zeros([8, 8, 3], tf.uint8))
        >>> pixels, valid = keras_mm.preprocessing.decode_and_resize_images(tf.stack([jpeg, b"junk"]), (32, 32))
        >>> pixels.shape, valid.numpy()
        (TensorShape([2, 32, 32, 3]), array([ True, False]))
    """
    pixels, status = decode_and_resize_images_with_status(images, image_size, background)
    return pixels, tf.equal(status, OK)


def decode_and_resize_images_with_status(images, image_size, background=WHITE):
    """:func:`decode_and_resize_images` with each sample's status (:mod:`keras_mm.preprocessing.status`) for its ``valid``.

    Encoded images: ``ok``, ``empty``, ``undecodable``, ``file_path_instead_of_bytes``
    or ``too_large`` (over :data:`MAX_IMAGE_PIXELS`, refused before decoding);
    decoded pixels: ``ok`` or ``not_finite_or_too_loud``.

    Example:
        >>> from keras_mm.preprocessing.image import decode_and_resize_images_with_status
        >>> jpeg = tf.io.encode_jpeg(tf.zeros([8, 8, 3], tf.uint8))
        >>> pixels, status = decode_and_resize_images_with_status(tf.stack([jpeg, b"", b"cat.png"]), (16, 16))
        >>> keras_mm.preprocessing.status.status_names(status).numpy()
        array([b'ok', b'empty', b'file_path_instead_of_bytes'], dtype=object)
    """
    height, width = int(image_size[0]), int(image_size[1])
    background = validate_background(background)
    images = tf.convert_to_tensor(images) if not isinstance(images, np.ndarray) or images.dtype != object else tf.constant(images.tolist(), tf.string)
    if images.dtype != tf.string:
        pixels = tf.cast(images, tf.float32)
        if pixels.shape.rank != 4:
            raise ValueError(f"A decoded image batch must have rank 4 [batch, H, W, C], got shape {pixels.shape}.")
        valid = tf.reduce_all(tf.math.is_finite(pixels), axis=[1, 2, 3])
        pixels = tf.where(tf.math.is_finite(pixels), pixels, tf.zeros_like(pixels))
        _warn_if_scaled_to_one(pixels)
        resized = tf.image.resize(composite_over_background(pixels, background), (height, width))
        return resized, tf.where(valid, OK, NOT_FINITE)
    if tf.executing_eagerly() and images.shape.rank == 1:
        # Called eagerly, the per-sample tf.data pipeline below would be built and its map traced again on
        # every call (0.7 s for 8 images, 2-core CPU); one graph per size, background and pixel limit serves
        # every later call (a few ms).
        return _eager_decoder(height, width, tuple(background), MAX_IMAGE_PIXELS)(images)
    return _decode_and_resize_encoded(images, height, width, background)


@functools.lru_cache(maxsize=64)
def _eager_decoder(height, width, background, max_image_pixels):
    """The traced :func:`_decode_and_resize_encoded` for eager callers (``max_image_pixels`` keys the cache)."""
    return tf.function(lambda images: _decode_and_resize_encoded(images, height, width, background),
                       input_signature=[tf.TensorSpec([None], tf.string)])


def _decode_and_resize_encoded(images, height, width, background):
    """Encoded image bytes ``[batch]`` -> ``(pixels, status)``, isolating each sample's failure."""

    def decode_one(encoded):
        # too many pixels: a fill no decoded image has (pixels are >= 0), told apart below, instead of a failure
        return tf.cond(announced_pixels(encoded) > MAX_IMAGE_PIXELS,
                       lambda: tf.fill([height, width, 3], _TOO_LARGE_FILL),
                       lambda: decode_and_resize_image(encoded, (height, width), background, check_size=False))

    pixels, decoded = map_isolating_failures(decode_one, images, tf.TensorSpec([height, width, 3], tf.float32))
    too_large = decoded & tf.equal(pixels[:, 0, 0, 0], _TOO_LARGE_FILL)
    valid = decoded & ~too_large
    pixels = tf.where(valid[:, None, None, None], pixels, tf.zeros_like(pixels))
    return pixels, tf.where(too_large, TOO_LARGE, status_of_decoded(images, valid))


def _within_max_pixels(encoded, pixels):
    """``encoded`` once ``pixels`` (what its header announces) is checked against :data:`MAX_IMAGE_PIXELS`; raises beyond it."""
    limit = tf.debugging.assert_less_equal(tf.cast(pixels, tf.int64), tf.constant(MAX_IMAGE_PIXELS, tf.int64), message=(
        f"the image's header announces more pixels than MAX_IMAGE_PIXELS ({MAX_IMAGE_PIXELS:,}; "
        "keras_mm.preprocessing.image.MAX_IMAGE_PIXELS): shrink the file"))
    with tf.control_dependencies([limit]):
        return tf.identity(encoded)


def decode_and_resize_image(encoded, image_size, background=WHITE, decode=None, check_size=True):
    """Decode one encoded image with :func:`decode_image` and resize it to float32 ``[height, width, 3]``; raises for bad input.

    The per-sample step of :func:`decode_and_resize_images` (which isolates
    its failures) and of training loaders (where a bad file is an error;
    they pass ``decode=decode_image_in_loader``, the same pixels from a smaller graph).
    An image whose header announces more than :data:`MAX_IMAGE_PIXELS` pixels
    raises before it is decoded (``check_size=False``: the caller checked).

    Example:
        >>> png = tf.io.encode_png(tf.zeros([8, 4, 3], tf.uint8))
        >>> keras_mm.preprocessing.image.decode_and_resize_image(png, (16, 16)).shape
        TensorShape([16, 16, 3])
    """
    if check_size:
        encoded = _within_max_pixels(encoded, announced_pixels(encoded))
    image = (decode or decode_image)(encoded, background)
    # Some malformed files "decode" to a 0-pixel image; resizing that gives NaN.
    # Resizing decoded uint8 pixels is always finite once 0-pixel images are refused.
    with tf.control_dependencies([tf.debugging.assert_positive(tf.shape(image)[:2], message="image has no pixels")]):
        return tf.image.resize(image, (int(image_size[0]), int(image_size[1])))


class ImagePreprocessor(FeaturePreprocessor):
    """Encoded image bytes -> ``{feature: float32 [B, H, W, 3] in 0..255}``.

    Args:
        feature: the feature name.
        image_size: ``(height, width)`` of the output.
        background: ``(R, G, B)`` integers in 0..255 shown through transparent
            pixels of PNGs and GIFs (default white).

    Example:
        >>> pre = keras_mm.preprocessing.ImagePreprocessor("photo", image_size=(224, 224))
        >>> jpeg = tf.io.encode_jpeg(tf.zeros([8, 8, 3], tf.uint8))
        >>> pre.process_batch(tf.stack([jpeg]))["photo"].shape
        TensorShape([1, 224, 224, 3])
    """

    example_rank = 0

    def __init__(self, feature, image_size, background=WHITE):
        super().__init__(feature)
        self.image_size = image_size_pair(image_size)
        self.background = validate_background(background)

    def process_batch(self, raw):
        return self.process_batch_with_status(raw)[0]

    def process_batch_with_status(self, raw):
        pixels, state = decode_and_resize_images_with_status(raw, self.image_size, self.background)
        return {self.feature: pixels, self.presence_name: tf.cast(tf.equal(state, OK), tf.float32)}, state

    def decode_example(self, raw, filled):
        """One encoded image -> float32 ``[H, W, 3]`` (zeros for a blank cell); a corrupt image raises."""
        shape = (*self.image_size, 3)

        def decode():
            # decode_image_in_loader checks MAX_IMAGE_PIXELS itself, in its smaller graph
            return decode_and_resize_image(raw, self.image_size, self.background, decode=decode_image_in_loader,
                                           check_size=False)

        if isinstance(filled, bool):
            return decode() if filled else tf.zeros(shape)
        return tf.cond(filled, decode, lambda: tf.zeros(shape))

    def process_decoded_batch_with_status(self, decoded, filled):
        filled = tf.convert_to_tensor(filled, tf.bool)
        return {self.feature: decoded, self.presence_name: tf.cast(filled, tf.float32)}, tf.where(filled, OK, EMPTY)

    def example_raw(self, batch_size, seed=0):
        rng = np.random.default_rng(seed)
        out = []
        for i in range(batch_size):
            pixels = rng.integers(0, 256, size=(24 + 8 * (i % 3), 32, 3), dtype=np.uint8)
            encode = tf.io.encode_png if i % 2 else tf.io.encode_jpeg
            out.append(encode(pixels).numpy())
        return np.array(out, dtype=object)

    def get_config(self):
        return {**super().get_config(), "image_size": list(self.image_size), "background": list(self.background)}
