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


# --- transparency: real files written by Pillow -------------------------------------------------
ALPHAS = (0, 128, 255)  # fully transparent, half, opaque; one column each
INK = (200, 40, 90)


def _encode(image, fmt, **kwargs):
    import io

    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def _transparent_files():
    """``{kind: (encoded bytes, expected RGB ink [H, W, 3], alpha [H, W] in 0..255)}`` of 2x3 images."""
    from PIL import Image

    alpha = np.tile(np.array(ALPHAS, np.uint8), (2, 1))
    ink = np.broadcast_to(np.array(INK, np.uint8), (2, 3, 3))
    rgba = Image.fromarray(np.dstack([ink, alpha]), "RGBA")
    la = Image.fromarray(np.dstack([ink[..., :1], alpha]), "LA")
    palette = Image.new("P", (3, 2))
    palette.putpalette([*INK, 0, 0, 0, 5, 250, 5] + [0] * 759)
    palette.putdata([[0, 1, 2][ALPHAS.index(a)] for a in alpha.ravel()])
    grey = np.broadcast_to(ink[..., :1], ink.shape)
    # the palette's colours per pixel: transparent black (entry 1) must not come out black
    palette_ink = np.array([INK, (0, 0, 0), (5, 250, 5)], np.uint8)[[[0, 1, 2]] * 2]
    return {
        "rgba_png": (_encode(rgba, "PNG"), ink, alpha),
        "rgba_webp": (_encode(rgba, "WEBP", lossless=True), ink, alpha),  # channels=3 used to refuse it outright
        "la_png": (_encode(la, "PNG"), grey, alpha),
        "palette_png_trns": (_encode(palette, "PNG", transparency=bytes([0, 128, 255])), palette_ink, alpha),
        "gif": (_encode(palette, "GIF", transparency=1), palette_ink, np.where(palette_ink.sum(-1) == 0, 0, 255)),
        "gif_binary": (_encode(palette, "GIF", transparency=0), palette_ink, np.where((palette_ink == INK).all(-1), 0, 255)),
    }


@pytest.mark.parametrize("background", [(255, 255, 255), (30, 60, 240)])
def test_transparent_pixels_show_the_background_half_transparent_blend(background):
    files = _transparent_files()
    kinds = sorted(files)
    encoded = tf.constant([files[k][0] for k in kinds])
    if background == (255, 255, 255):
        out, valid = decode_and_resize_images(encoded, (2, 3))  # the default is white
    else:
        out, valid = decode_and_resize_images(encoded, (2, 3), background=background)
    assert valid.numpy().all()
    for kind, pixels in zip(kinds, out.numpy()):
        _, ink, alpha = files[kind]
        a = alpha[..., None] / 255.0
        expected = ink * a + np.array(background) * (1 - a)
        np.testing.assert_allclose(pixels, expected, atol=1e-3, err_msg=kind)
        np.testing.assert_array_equal(pixels[alpha == 0], np.broadcast_to(background, (int((alpha == 0).sum()), 3)))
        np.testing.assert_array_equal(pixels[alpha == 255], ink[alpha == 255])  # opaque: unchanged


def test_half_transparent_png_pixel_is_the_exact_blend():
    files = _transparent_files()
    encoded, _, _ = files["rgba_png"]
    pixel = decode_and_resize_images(tf.constant([encoded]), (2, 3), background=(0, 0, 0))[0].numpy()[0, 0, 1]
    np.testing.assert_allclose(pixel, np.array(INK) * 128 / 255, rtol=1e-6)


def test_background_is_validated_naming_the_field():
    for bad in [(255, 255), (0, 0, 256), "white", (0.5, 0, 0), (True, 0, 0)]:
        with pytest.raises(ValueError, match=r"background=.* must be 3 integers in 0\.\.255"):
            ImagePreprocessor("photo", (8, 8), background=bad)


def test_transparent_images_are_isolated_from_corrupt_neighbours():
    files = _transparent_files()
    gif, _, _ = files["gif"]
    png, ink, alpha = files["rgba_png"]
    batch = tf.constant([gif[:30], png, b"GIF89a junk", gif, png[:50]])
    out, valid = decode_and_resize_images(batch, (2, 3), background=(0, 255, 0))
    np.testing.assert_array_equal(valid.numpy(), [False, True, False, True, False])
    alone = decode_and_resize_images(tf.constant([png, gif]), (2, 3), background=(0, 255, 0))[0].numpy()
    np.testing.assert_array_equal(out.numpy()[[1, 3]], alone)
    np.testing.assert_array_equal(out.numpy()[[0, 2, 4]], 0.0)


def test_opaque_webp_decodes_unchanged():
    from PIL import Image

    yy, xx = np.mgrid[0:20, 0:30]
    pixels = np.stack([yy * 12, xx * 8, (yy + xx) * 5], -1).astype(np.uint8)
    out, valid = decode_and_resize_images(tf.constant([_encode(Image.fromarray(pixels), "WEBP", lossless=True)]), (20, 30))
    assert valid.numpy().all()
    np.testing.assert_array_equal(out.numpy()[0], pixels)


def test_decoded_rgba_arrays_are_composited_too():
    rgba = np.zeros((1, 2, 2, 4), np.uint8)
    rgba[0, 0, 0] = [10, 20, 30, 255]
    out = decode_and_resize_images(rgba, (2, 2), background=(1, 2, 3))[0].numpy()[0]
    np.testing.assert_array_equal(out[0, 0], [10, 20, 30])
    np.testing.assert_array_equal(out[1, 1], [1, 2, 3])


def test_encoder_background_reaches_the_serving_function():
    import keras

    import keras_mm
    from keras_mm.export import ServingFunctions

    keras.utils.set_random_seed(0)
    background = [30, 60, 240]
    model = keras_mm.build_model(encoders={"image": {"name": "small_cnn", "image_size": [2, 3], "filters": [4], "background": background}},
                                 num_classes=3)
    assert model.preprocessor.feature_preprocessors["image"].background == tuple(background)
    rebuilt = keras_mm.models.MultimodalModel.from_config(model.get_config())
    assert rebuilt.preprocessor.feature_preprocessors["image"].background == tuple(background)
    files = _transparent_files()
    encoded, ink, alpha = files["rgba_png"]
    served = ServingFunctions(model).raw({"image": tf.constant([encoded])})["probabilities"].numpy()
    a = alpha[None, ..., None] / 255.0

    def predict(bg):
        pixels = (ink * a + np.array(bg) * (1 - a)).astype("float32")
        return model.predict({"image": pixels, "image_present": np.ones(1, "float32")}, verbose=0)

    np.testing.assert_allclose(served, predict(background), atol=1e-6)
    assert np.abs(served - predict((0, 0, 0))).max() > 1e-4  # the background really changes the prediction


@pytest.mark.parametrize("name", ["small_cnn", "mobilenet_v2", "vgg16"])
def test_image_encoders_validate_and_keep_their_background(name):
    import keras_mm
    from keras_mm.registry import ENCODERS

    cls = ENCODERS.get(name)
    with pytest.raises(ValueError, match=r"background=\(0, 0, 300\) must be 3 integers in 0\.\.255"):
        cls(**cls.example_config, background=(0, 0, 300))
    encoder = cls(**cls.example_config, background=(1, 2, 3))
    assert encoder.get_config()["background"] == [1, 2, 3]
    assert encoder.build_preprocessor("photo").background == (1, 2, 3)
    assert cls(**cls.example_config).build_preprocessor("photo").background == keras_mm.preprocessing.image.WHITE


@pytest.mark.parametrize("background", [(255, 255, 255), (30, 60, 240)])
def test_the_loader_decoder_gives_the_serving_decoder_pixels_for_every_format(background):
    # training loaders decode PNG/JPEG in their graph and other formats through decode_image compiled once
    # (a numpy_function): the pixels must be decode_image's, in a parallel tf.data map
    from PIL import Image

    from keras_mm.preprocessing.image import decode_image, decode_image_in_loader

    files = {kind: encoded for kind, (encoded, _, _) in _transparent_files().items()}
    yy, xx = np.mgrid[0:20, 0:30]
    pixels = np.stack([yy * 12, xx * 8, (yy + xx) * 5], -1).astype(np.uint8)
    files.update(jpeg=tf.io.encode_jpeg(pixels).numpy(), grey_png=tf.io.encode_png(pixels[..., :1]).numpy(),
                 bmp=_encode(Image.fromarray(pixels), "BMP"), rgb_webp=_encode(Image.fromarray(pixels), "WEBP"))
    kinds = sorted(files)
    ds = tf.data.Dataset.from_tensor_slices(tf.constant([files[k] for k in kinds]))
    ds = ds.map(lambda e: decode_image_in_loader(e, background), num_parallel_calls=2)
    for kind, got in zip(kinds, ds):
        np.testing.assert_array_equal(got.numpy(), decode_image(tf.constant(files[kind]), background).numpy(), err_msg=kind)
    for bad in [files["gif"][:30], b"GIF89a junk", files["rgba_webp"][:40], files["bmp"][:20], b"not an image"]:
        with pytest.raises(tf.errors.InvalidArgumentError):
            decode_image(tf.constant(bad), background)  # the serving decoder raises too (before its isolation)
        with pytest.raises(tf.errors.InvalidArgumentError):
            next(iter(tf.data.Dataset.from_tensors(tf.constant(bad)).map(lambda e: decode_image_in_loader(e, background))))


def test_announced_pixels_reads_every_formats_header_without_decoding():
    import io

    from PIL import Image

    from keras_mm.preprocessing.image import announced_pixels

    def encoded(fmt, mode="RGB", **options):
        buffer = io.BytesIO()
        Image.new(mode, (37, 23), 200).save(buffer, fmt, **options)
        return buffer.getvalue()

    files = [encoded("PNG"), encoded("GIF"), encoded("BMP"), encoded("JPEG"), encoded("WEBP"),
             encoded("WEBP", "RGBA", lossless=True), encoded("WEBP", "RGBA")]  # VP8, VP8L, VP8X
    assert [int(announced_pixels(f)) for f in files] == [37 * 23] * len(files)
    assert int(announced_pixels(b"\x89PNG\r\n\x1a\n not really a png")) == 0  # no IHDR: left to the decoder


def test_an_image_over_max_pixels_is_refused_before_decoding_and_says_so():
    # a 283 KB PNG of 16000 x 16000 pixels took 8.8 GB and 27 s to decode in serving
    from tests.data.test_manifest import _decompression_bomb
    from keras_mm.preprocessing.image import decode_and_resize_image
    from keras_mm.preprocessing.status import status_names

    bomb = _decompression_bomb()
    good = tf.io.encode_png(np.full((6, 6, 3), 90, np.uint8)).numpy()
    pre = ImagePreprocessor("photo", (8, 8))
    out, status = pre.process_batch_with_status(tf.constant([good, bomb, b""]))
    assert status_names(status).numpy().tolist() == [b"ok", b"too_large", b"empty"]
    np.testing.assert_array_equal(out["photo_present"].numpy(), [1, 0, 0])
    np.testing.assert_array_equal(out["photo"].numpy()[1], 0.0)
    np.testing.assert_allclose(out["photo"].numpy()[0], 90.0)
    with pytest.raises(tf.errors.InvalidArgumentError, match="more pixels than MAX_IMAGE_PIXELS"):
        decode_and_resize_image(tf.constant(bomb), (8, 8))


def test_the_training_loader_refuses_an_image_over_max_pixels_before_decoding(monkeypatch):
    import io

    from PIL import Image

    import keras_mm.preprocessing.image as image_module

    monkeypatch.setattr(image_module, "MAX_IMAGE_PIXELS", 1000)  # a 40 x 30 image is then "too large"
    pre = ImagePreprocessor("photo", (8, 8))
    for fmt in ("PNG", "JPEG", "GIF"):  # in-graph PNG and JPEG branches, the Python one for the rest
        buffer = io.BytesIO()
        Image.new("RGB", (40, 30), 99).save(buffer, fmt)
        load = tf.function(lambda data: pre.decode_example(data, True))  # traced after the patch
        with pytest.raises((tf.errors.InvalidArgumentError, ValueError), match="more pixels than MAX_IMAGE_PIXELS"):
            load(tf.constant(buffer.getvalue()))
    small = tf.io.encode_png(np.full((20, 30, 3), 99, np.uint8))
    np.testing.assert_allclose(pre.decode_example(small, True).numpy(), 99.0)


def test_decoded_pixels_scaled_to_one_are_warned_about_once(caplog, monkeypatch):
    # a 0..1 float image (what many image libraries give) reached the model as near-black with status "ok"
    import keras_mm.preprocessing.image as image_module

    monkeypatch.setattr(image_module, "_WARNED_SCALED_TO_ONE", [])
    pre = ImagePreprocessor("photo", (4, 4))
    with caplog.at_level("WARNING", logger="keras_mm"):
        pre.process_batch(np.full((2, 4, 4, 3), 200.0, np.float32))
        assert "0..255" not in caplog.text
        pre.process_batch(np.full((2, 4, 4, 3), 0.8, np.float32))
        pre.process_batch(np.full((2, 4, 4, 3), 0.5, np.float32))
    assert caplog.text.count("decoded image pixels all lie in [0, 1]") == 1


def test_a_png_shorter_than_its_header_is_a_decode_error_in_the_loader():
    # the loader's size check read past the end: a UnicodeDecodeError of TensorFlow's message
    pre = ImagePreprocessor("photo", (8, 8))
    with pytest.raises(tf.errors.InvalidArgumentError):
        pre.decode_example(tf.constant(b"\x89PNG\r\n\x1a\n12"), True)


def test_eager_calls_reuse_one_graph_and_follow_a_changed_pixel_limit(monkeypatch):
    # Eagerly, the per-sample decode pipeline used to be rebuilt and traced on every call (0.7 s for 8 images).
    import keras_mm.preprocessing.image as image_module

    pre = ImagePreprocessor("photo", (7, 9), background=(1, 2, 3))
    png = tf.io.encode_png(np.full((30, 40, 3), 99, np.uint8)).numpy()
    first, first_status = pre.process_batch_with_status(np.array([png, b"junk"], object))
    second, _ = pre.process_batch_with_status(tf.constant([png, png, png]))
    decoder = image_module._eager_decoder(7, 9, (1, 2, 3), image_module.MAX_IMAGE_PIXELS)
    assert decoder.experimental_get_tracing_count() == 1  # two batch sizes, one trace
    assert first_status.numpy().tolist() == [image_module.OK, image_module.status_of_decoded(
        tf.constant([b"junk"]), tf.constant([False])).numpy()[0]]
    np.testing.assert_array_equal(second["photo"].numpy()[0], first["photo"].numpy()[0])
    np.testing.assert_allclose(first["photo"].numpy()[0], 99.0)
    assert first["photo_present"].numpy().tolist() == [1.0, 0.0]
    # the graph was traced under the default limit; a lower one still applies
    monkeypatch.setattr(image_module, "MAX_IMAGE_PIXELS", 1000)
    _, status = pre.process_batch_with_status(tf.constant([png]))
    assert status.numpy().tolist() == [image_module.TOO_LARGE]
