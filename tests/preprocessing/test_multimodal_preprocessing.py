import numpy as np
import pytest
import tensorflow as tf

import keras_mm
from tests.conftest import tiny_encoders


@pytest.fixture(scope="module")
def model():
    return keras_mm.build_model(encoders=tiny_encoders(), fusion="attention", num_classes=3)


def test_raw_batch_gives_exactly_the_model_inputs(model):
    numeric = model.preprocessor.process_batch(model.preprocessor.example_raw(3))
    assert set(numeric) == set(model.input)
    for name, tensor in numeric.items():
        assert tuple(tensor.shape[1:]) == tuple(model.input[name].shape[1:]), name
        assert tensor.dtype.name == model.input[name].dtype, name


def test_tf_data_map_on_single_examples_with_labels(model):
    raw = model.preprocessor.example_raw(6)
    labels = np.array([0, 1, 2, 0, 1, 2])
    ds = tf.data.Dataset.from_tensor_slices((raw, labels)).map(model.preprocessor).batch(3)
    x, y = next(iter(ds))
    np.testing.assert_array_equal(y.numpy(), labels[:3])
    expected = model.preprocessor.process_batch({k: v[:3] for k, v in raw.items()})
    for name in expected:
        np.testing.assert_allclose(x[name].numpy(), expected[name].numpy(), atol=1e-4, err_msg=name)
    model.compile()
    model.fit(ds, epochs=1, verbose=0)


def test_variable_length_audio_per_example(model):
    raw = model.preprocessor.example_raw(2)
    def gen():
        for n in (1000, 6000):
            yield {"image": raw["image"][0], "text": "a dog", "audio": np.ones(n, "float32")}
    signature = {k: tf.TensorSpec(s.shape[1:], s.dtype) for k, s in model.preprocessor.raw_signature.items()}
    ds = tf.data.Dataset.from_generator(gen, output_signature=signature).map(model.preprocessor).batch(2)
    batch = next(iter(ds))
    assert batch["audio"].shape == (2, 4000)
    np.testing.assert_array_equal(batch["audio"].numpy()[0, 1000:], 0.0)


def test_wrong_keys_are_named(model):
    raw = model.preprocessor.example_raw(2)
    del raw["audio"]
    raw["video"] = raw["image"]
    with pytest.raises(ValueError, match=r"missing: \['audio'\]; unknown: \['video'\]"):
        model.preprocessor.process_batch(raw)


def test_wav_bytes_work_as_one_example_and_as_a_batch():
    import keras_mm

    model = keras_mm.build_model(preset="tiny_concat", num_classes=3)
    tone = (0.3 * np.sin(np.arange(4000) / 16000 * 2 * np.pi * 440)).astype("float32")
    wav = tf.audio.encode_wav(tone[:, None], 16000)
    raw = model.preprocessor.example_raw(2)
    single = model.preprocessor({"audio": wav, "image": raw["image"][0], "text": raw["text"][0]})
    np.testing.assert_allclose(single["audio"].numpy(), tone, atol=1e-4)  # 16-bit PCM rounding
    assert float(single["audio_present"]) == 1.0
    batch = model.preprocessor({"audio": tf.stack([wav, wav]), "image": raw["image"], "text": raw["text"]})
    assert batch["audio"].shape == (2, 4000) and batch["audio_present"].numpy().tolist() == [1.0, 1.0]
    with pytest.raises(ValueError, match="Mixed single examples and batches"):
        model.preprocessor({"audio": wav, "image": raw["image"], "text": raw["text"]})


def test_a_path_sent_as_image_bytes_is_reported_and_logged_once(caplog):
    import logging

    import keras_mm
    from keras_mm.preprocessing import status

    model = keras_mm.build_model(preset="tiny_concat", num_classes=3)
    raw = model.preprocessor.example_raw(2)
    raw["image"] = np.array([raw["image"][0], b"holiday/IMG_0042.JPG"], dtype=object)
    status._WARNED.discard(("image", "file_path_instead_of_bytes"))
    with caplog.at_level(logging.WARNING, logger="keras_mm"):
        numeric, statuses = model.preprocessor.process_batch_with_status(raw)
        model.preprocessor.process_batch_with_status(raw)
    assert statuses["image"].numpy().tolist() == [status.OK, status.FILE_PATH]
    assert numeric["image_present"].numpy().tolist() == [1.0, 0.0]
    warnings = [r.message for r in caplog.records if "file_path_instead_of_bytes" in r.getMessage()]
    assert len(warnings) == 1


def test_a_list_of_clips_of_any_lengths_and_mismatched_batch_sizes():
    import keras_mm

    pre = keras_mm.build_model(preset="tiny_concat", num_classes=3).preprocessor
    raw = pre.example_raw(3)
    n = raw["audio"].shape[1]
    clips = [raw["audio"][0][: n // 3], raw["audio"][1], np.concatenate([raw["audio"][2], raw["audio"][2]])]
    # was "Can't convert non-rectangular Python sequence to Tensor"
    out = pre.process_batch({**raw, "audio": clips})
    expected = pre.process_batch({**raw, "audio": np.stack([np.pad(clips[0], (0, n - n // 3)), clips[1], clips[2][:n]])})
    np.testing.assert_array_equal(out["audio"].numpy(), expected["audio"].numpy())
    # was accepted, returning tensors of different batch sizes
    with pytest.raises(ValueError, match=r"different numbers of samples: \{'audio': 3, 'image': 3, 'text': 2\}"):
        pre.process_batch({**raw, "text": list(raw["text"])[:2]})


def test_text_that_is_not_utf8_is_used_without_its_bad_bytes_and_says_so(caplog):
    import logging

    import keras_mm
    from keras_mm.preprocessing import status

    # a Latin-1 "café" (\xe9 is not UTF-8): used without the é; bytes with nothing valid: missing, undecodable
    texts = np.array([b"the cat", b"caf\xe9 cat", b"\xe9\xff", b""], dtype=object)
    model = keras_mm.build_model(preset="tiny_concat", num_classes=3)  # BERT-style WordPiece text
    words = keras_mm.preprocessing.VocabularyTextPreprocessor("text", ["the", "cat", "caf"], sequence_length=6)
    status._WARNED.discard(("text", "invalid_utf8"))
    with caplog.at_level(logging.WARNING, logger="keras_mm"):
        for pre in (model.preprocessor.feature_preprocessors["text"], words):
            numeric, codes = pre.process_batch_with_status(texts)
            assert status.status_names(codes).numpy().tolist() == [b"ok", b"invalid_utf8", b"undecodable", b"empty"]
            assert numeric["text_present"].numpy().tolist() == [1.0, 1.0, 0.0, 0.0]
        # the repaired text is the valid part: the same ids as "caf cat"
        clean, _ = words.process_batch_with_status(np.array([b"caf cat"], dtype=object))
        np.testing.assert_array_equal(numeric["text_token_ids"][1], clean["text_token_ids"][0])
        raw = {**model.preprocessor.example_raw(4), "text": texts}
        for _ in range(2):
            _, statuses = model.preprocessor.process_batch_with_status(raw)
    assert statuses["text"].numpy().tolist() == [status.OK, status.INVALID_UTF8, status.UNDECODABLE, status.EMPTY]
    warnings = [r.getMessage() for r in caplog.records if "invalid_utf8" in r.getMessage()]
    assert len(warnings) == 1 and "used after a repair" in warnings[0], warnings
