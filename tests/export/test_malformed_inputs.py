"""Hundreds of malformed inputs through the exported signature: no crash, neighbours untouched."""

import numpy as np
import pytest
import tensorflow as tf

from keras_mm.export.serving import call_signature, load_saved_model


def malformed_images(good_png, good_jpeg, rng):
    cases = [b"", b"\x00", b"hello", b"GIF89a", b"BM" + rng.bytes(60), b"RIFF\x00\x00\x00\x00WEBPVP8 " + rng.bytes(40)]
    for data in (good_png, good_jpeg):
        cases += [data[:n] for n in np.linspace(1, len(data) - 1, 40).astype(int)]  # truncations
        for _ in range(40):  # corrupted bytes past the signature
            c = bytearray(data)
            for i in rng.integers(8, len(data), size=rng.integers(1, 8)):
                c[i] = int(rng.integers(0, 256))
            cases.append(bytes(c))
        cases.append(data[:8] + rng.bytes(300))  # valid magic, garbage body
    cases += [rng.bytes(int(n)) for n in rng.integers(1, 2000, size=20)]
    return cases


def malformed_texts(rng):
    cases = ["", " ", "\x00", "\t\n\r", "\u200b\u200c", "\ufeff", b"\xff\xfe\xfd", b"\xc3", b"\xe2\x82", b"abc\x80def"]
    cases += [bytes(rng.integers(128, 256, size=int(n)).astype(np.uint8)) for n in rng.integers(1, 50, 20)]
    cases += ["x" * 100000]
    return cases


def malformed_audio(n, rng):
    cases = []
    for kind in ("nan", "inf", "-inf", "zeros", "huge", "nan_one"):
        for _ in range(4):
            clip = rng.normal(0, 0.1, n).astype("float32")
            if kind == "nan":
                clip[:] = np.nan
            elif kind == "inf":
                clip[rng.integers(0, n)] = np.inf
            elif kind == "-inf":
                clip[:] = -np.inf
            elif kind == "zeros":
                clip[:] = 0.0
            elif kind == "huge":
                clip *= 1e30
            else:
                clip[rng.integers(0, n)] = np.nan
            cases.append(clip)
    return cases


@pytest.fixture(scope="module")
def served(exported):
    return load_saved_model(exported[0])


def test_hundreds_of_malformed_inputs(trained_model, served):
    rng = np.random.default_rng(0)
    good = trained_model.preprocessor.example_raw(2, seed=5)
    yy, xx = np.mgrid[0:24, 0:32]
    pixels = np.stack([yy * 10, xx * 7, (yy + xx) * 4], -1).astype(np.uint8)
    images = malformed_images(tf.io.encode_png(pixels).numpy(), tf.io.encode_jpeg(pixels).numpy(), rng)
    texts = malformed_texts(rng)
    audio = malformed_audio(good["audio"].shape[1], rng)
    reference = call_signature(served, good)
    total, crashes = 0, []
    chunk = 16
    for modality, cases in (("image", images), ("text", texts), ("audio", audio)):
        for start in range(0, len(cases), chunk):
            bad = cases[start : start + chunk]
            batch = {k: list(v) for k, v in good.items()}
            n = len(bad)
            for k in batch:  # good samples first, then bad ones carrying valid other modalities
                batch[k] = batch[k] + [good[k][i % 2] for i in range(n)]
            batch[modality] = batch[modality][:2] + bad
            if modality == "audio":
                batch["audio"] = np.stack(batch["audio"]).astype("float32")
            try:
                out = call_signature(served, batch)
            except Exception as error:  # noqa: BLE001 - we count crashes
                crashes.append((modality, start, repr(error)[:200]))
                continue
            total += n
            # the good samples are unchanged by their malformed neighbours
            np.testing.assert_allclose(out["probabilities"][:2], reference["probabilities"], atol=1e-5)
            assert np.isfinite(out["probabilities"]).all(), (modality, start, {k: v[2:6] for k, v in out.items()})
            assert out["valid"].all()  # the other modalities are still usable
            if modality == "audio":  # every audio case here is unusable by construction
                assert (out["audio_present"][2:] == 0).all(), start
    assert not crashes, crashes
    assert total >= 200, total


def test_text_that_is_only_invalid_or_invisible_is_missing(trained_model, served):
    good = trained_model.preprocessor.example_raw(1)
    texts = ["", " ", "\x00", "\t\n\r", "\u200b\u200c", "\ufeff", b"\xff\xfe\xfd", b"\xc3"]
    batch = {k: [good[k][0]] * len(texts) for k in good}
    batch["audio"] = np.stack(batch["audio"])
    batch["text"] = texts
    out = call_signature(served, batch)
    np.testing.assert_array_equal(out["text_present"], 0.0)
    assert out["valid"].all()


def test_bad_modality_is_reported_missing(trained_model, served):
    good = trained_model.preprocessor.example_raw(1)
    out = call_signature(served, {**good, "image": [b"\x89PNG\r\n\x1a\n garbage"]})
    assert out["image_present"][0] == 0 and out["text_present"][0] == 1 and out["audio_present"][0] == 1


def test_the_response_says_why_a_sample_is_missing(trained_model, served):
    good = trained_model.preprocessor.example_raw(4)
    images = [good["image"][0], b"", b"photos/cat.png", b"\x89PNG\r\n\x1a\n garbage"]
    out = call_signature(served, {**good, "image": images, "text": ["a dog", "", "the cat", "a mat"]})
    assert [s.decode() for s in out["image_status"]] == ["ok", "empty", "file_path_instead_of_bytes", "undecodable"]
    np.testing.assert_array_equal(out["image_present"], [1, 0, 0, 0])
    assert [s.decode() for s in out["text_status"]] == ["ok", "empty", "ok", "ok"] and out["valid"].all()
    names = ["a", "b", "c"]  # given to export_saved_model
    assert [n.decode() for n in out["class_name"]] == [names[i] for i in out["class_id"]]


def test_the_response_says_when_text_was_not_utf8(trained_model, served):
    good = trained_model.preprocessor.example_raw(3)
    out = call_signature(served, {**good, "text": ["a dog", b"caf\xe9 dog", b"\xe9\xff"]})  # Latin-1, then nothing valid
    assert [s.decode() for s in out["text_status"]] == ["ok", "invalid_utf8", "undecodable"]
    np.testing.assert_array_equal(out["text_present"], [1, 1, 0])
    repaired = call_signature(served, {**good, "text": ["a dog", "caf dog", "x"]})  # the valid part is what was used
    np.testing.assert_allclose(out["probabilities"][1], repaired["probabilities"][1], atol=1e-6)


def test_a_sample_with_no_usable_modality_gets_no_class_name(trained_model, served):
    good = trained_model.preprocessor.example_raw(2)
    batch = {**good, "image": [good["image"][0], b""], "text": [good["text"][0], ""],
             "audio": np.stack([good["audio"][0], np.zeros_like(good["audio"][1])])}
    out = call_signature(served, batch)
    assert list(out["valid"]) == [True, False], {k: out[k] for k in ("image_status", "text_status", "audio_status")}
    assert out["class_name"][0].decode() in ("a", "b", "c") and out["class_name"][1] == b""
