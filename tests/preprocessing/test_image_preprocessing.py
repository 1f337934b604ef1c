import numpy as np
import pytest
import tensorflow as tf

from keras_mm.preprocessing import ImagePreprocessor, decode_and_resize_images


def test_jpeg_png_gif_bmp_and_grayscale_decode_to_rgb_0_255():
    # a smooth image: JPEG (chroma subsampling) would mangle per-pixel noise
    yy, xx = np.mgrid[0:20, 0:30]
    pixels = np.stack([yy * 12, xx * 8, (yy + xx) * 5], -1).astype(np.uint8)
    gray = pixels[..., :1]
    encoded = [
        tf.io.encode_png(pixels),
        tf.io.encode_jpeg(pixels, quality=100),
        tf.io.encode_png(gray),
        tf.io.encode_jpeg(gray),
    ]
    out, valid = decode_and_resize_images(tf.stack(encoded), (20, 30))
    out = out.numpy()
    assert valid.numpy().all()
    assert out.shape == (4, 20, 30, 3) and out.dtype == np.float32
    np.testing.assert_array_equal(out[0], pixels)  # PNG is lossless; same size: no resampling
    assert np.abs(out[1] - pixels).mean() < 8  # JPEG is lossy
    np.testing.assert_array_equal(out[2][..., 0], out[2][..., 2])  # grayscale -> 3 equal channels
    assert out.min() >= 0 and out.max() <= 255


def test_resize_and_decoded_arrays():
    pixels = np.full((2, 10, 10, 1), 128, np.uint8)
    out = decode_and_resize_images(pixels, (4, 6))[0].numpy()
    assert out.shape == (2, 4, 6, 3)
    np.testing.assert_allclose(out, 128.0)
    with pytest.raises(ValueError, match="rank 4"):
        decode_and_resize_images(np.zeros((10, 10, 3)), (4, 4))


def test_works_inside_tf_data_map_per_example():
    pre = ImagePreprocessor("photo", (16, 16))
    raw = pre.example_raw(5)
    ds = tf.data.Dataset.from_tensor_slices(raw).map(lambda b: pre.process_batch(b[None])["photo"][0]).batch(5)
    batch = next(iter(ds)).numpy()
    np.testing.assert_allclose(batch, pre.process_batch(raw)["photo"].numpy())


def test_bad_images_are_isolated_per_sample():
    yy, xx = np.mgrid[0:20, 0:30]
    pixels = np.stack([yy * 12, xx * 8, (yy + xx) * 5], -1).astype(np.uint8)
    png, jpeg = tf.io.encode_png(pixels).numpy(), tf.io.encode_jpeg(pixels).numpy()
    corrupt = bytearray(png)
    corrupt[len(png) // 2] ^= 0xFF  # breaks a PNG chunk CRC: decode_png raises for it
    batch = [png, png[: len(png) // 2], bytes(corrupt), b"", b"not an image", jpeg[:40], jpeg]
    out, valid = decode_and_resize_images(tf.constant(batch), (20, 30))
    np.testing.assert_array_equal(valid.numpy(), [True, False, False, False, False, False, True])
    np.testing.assert_array_equal(out.numpy()[0], pixels)
    np.testing.assert_array_equal(out.numpy()[1:6], 0.0)
    alone = decode_and_resize_images(tf.constant([jpeg]), (20, 30))[0].numpy()[0]
    np.testing.assert_array_equal(out.numpy()[6], alone)  # neighbours do not change a sample
    pre = ImagePreprocessor("photo", (20, 30))
    np.testing.assert_array_equal(pre.process_batch(tf.constant(batch))["photo_present"].numpy(), [1, 0, 0, 0, 0, 0, 1])
