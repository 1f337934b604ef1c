import json
import os
import shutil

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_mm
from keras_mm.data import Augmentation, Manifest, from_manifest
from keras_mm.datasets import SAMPLE_DIR, sample_manifest_path
from tests.conftest import tiny_encoders


@pytest.fixture(scope="module")
def model():
    encoders = tiny_encoders()
    encoders["audio"]["num_samples"] = 8000
    return keras_mm.build_model(encoders=encoders, fusion="attention", num_classes=10)


def test_sample_manifest_reads_into_model_inputs(model):
    ds = from_manifest(sample_manifest_path(), model=model, split="test", batch_size=16)
    assert len(ds.manifest) == 100 and ds.manifest.modalities == {"audio": "audio", "image": "image", "text": "text"}
    x, y = next(iter(ds))
    assert set(x) == set(model.input) and y.shape == (16,)
    assert x["image"].shape == (16, 16, 16, 3) and x["audio"].shape == (16, 8000)
    assert float(tf.reduce_max(x["image"])) > 100  # real pixels
    labels = np.concatenate([b[1].numpy() for b in ds])
    np.testing.assert_array_equal(labels, ds.manifest.labels)


def test_raw_dataset_and_audio_resampling():
    ds = from_manifest(sample_manifest_path(), features=["image", "audio"], split="train", sample_rate=16000)
    example, label = next(iter(ds))
    assert example["image"].dtype == tf.string and example["audio"].dtype == tf.float32
    # the WAV files are 8 kHz; loaded at 16 kHz they are twice as long as their frames
    import soundfile

    row = ds.manifest.rows[0]
    frames = soundfile.info(f"{SAMPLE_DIR}/{row['audio']}").frames
    assert abs(example["audio"].shape[0] - 2 * frames) <= 2


def test_audio_comes_at_the_rate_of_the_model_or_preprocessor_and_never_silently_at_the_default(caplog):
    model = keras_mm.build_model(encoders={"audio": {"name": "mfcc_cnn", "sample_rate": 8000, "num_samples": 8000}},
                                 num_classes=10)
    first = lambda ds: next(iter(ds))[0]["audio"].numpy()  # noqa: E731
    with_model = first(from_manifest(sample_manifest_path(), model=model, split="test", batch_size=4))
    # preprocessor= used to load at 16 kHz, so the 8 kHz model got its clips at half speed
    with_preprocessor = first(from_manifest(sample_manifest_path(), preprocessor=model.preprocessor, features=["audio"],
                                            split="test", batch_size=4))
    np.testing.assert_array_equal(with_preprocessor, with_model)
    with pytest.raises(ValueError, match=r"sample_rate=16000 contradicts the model: feature 'audio' takes audio at 8000 Hz"):
        from_manifest(sample_manifest_path(), model=model, sample_rate=16000)
    import keras_mm.data.manifest as manifest_module

    manifest_module._WARNED_DEFAULT_RATE.clear()
    with caplog.at_level("WARNING", logger="keras_mm"):
        from_manifest(sample_manifest_path(), features=["audio"], split="test")
    assert "raw audio of ['audio'] is resampled to 16000 Hz, the default" in caplog.text


def test_missing_file_names_the_line_or_is_skipped_with_a_count(tmp_path):
    shutil.copytree(SAMPLE_DIR, tmp_path / "s")
    lines = (tmp_path / "s" / "manifest.csv").read_text().splitlines()
    lines[3] = lines[3].replace(".png", "_gone.png", 1)
    (tmp_path / "s" / "manifest.csv").write_text("\n".join(lines) + "\n")
    path = str(tmp_path / "s" / "manifest.csv")
    with pytest.raises(ValueError, match=r"manifest.csv, line 4: image='images/.*_gone.png' .* missing or unreadable"):
        Manifest(path)
    manifest = Manifest(path, on_error="skip")
    assert len(manifest) == 349 and manifest.skipped[0][0] == 4


def test_jsonl_string_and_multilabel_labels(tmp_path):
    rows = [{"text": "a", "label": "cat"}, {"text": "b", "label": "dog"}, {"text": "c", "label": "cat|dog"}]
    path = tmp_path / "m.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows))
    single = Manifest(str(path), label="label")
    assert single.class_names == ["cat", "cat|dog", "dog"]
    multi = Manifest(str(path), label="label", multilabel=True)
    np.testing.assert_array_equal(multi.labels, [[1, 0], [0, 1], [1, 1]])
    with pytest.raises(ValueError, match="label='y' is not a column"):
        Manifest(str(path), label="y")


def test_augmentation_changes_present_samples_only(model):
    x = model.preprocessor.process_batch(model.preprocessor.example_raw(2))
    example = {k: v[0] for k, v in x.items()}
    example["image_present"] = tf.constant(0.0)
    augmented = Augmentation(model.modalities, probability=1.0, seed=1)(example)
    np.testing.assert_array_equal(augmented["image"], example["image"])  # missing stays untouched
    assert not np.allclose(augmented["audio"], example["audio"])
    np.testing.assert_array_equal(augmented["text_token_ids"], example["text_token_ids"])
    ds = from_manifest(sample_manifest_path(), model=model, split="train", batch_size=8, augment=True)
    assert next(iter(ds))[0]["image"].shape == (8, 16, 16, 3)


def _augmented(modality, example, n=200, **settings):
    """``n`` augmentations of ``example`` (feature "x" of ``modality``) in a tf.data map, as numpy."""
    off = dict(flip=False, crop=0.0, brightness=0.0, contrast=0.0, gain=(1.0, 1.0), noise=0.0, shift=0.0)
    aug = Augmentation({"x": modality}, seed=3, **{**off, **settings})
    ds = tf.data.Dataset.from_tensors({"x": example, "x_present": tf.constant(1.0)}).repeat(n).map(aug)
    return np.stack([e["x"].numpy() for e in ds])


def test_each_augmentation_transform_does_what_its_setting_says_half_the_time():
    rng = np.random.default_rng(0)
    image = rng.uniform(0, 255, (6, 8, 3)).astype("float32")
    flipped = _augmented("image", image, flip=True)
    is_flip = np.array([np.array_equal(f, image[:, ::-1]) for f in flipped])
    assert all(is_flip | np.array([np.array_equal(f, image) for f in flipped]))  # the image or its mirror
    assert 0.35 < is_flip.mean() < 0.65
    grey = np.full((6, 8, 3), 100.0, "float32")
    shifted = _augmented("image", grey, brightness=0.15)[:, 0, 0, 0] - 100.0
    assert np.abs(shifted).max() <= 0.15 * 255 + 1e-3 and 0.35 < (shifted != 0).mean() < 0.65
    mid = rng.uniform(60, 200, (6, 8, 3)).astype("float32")  # contrast x1.15 stays inside 0..255: no clipping
    contrasted = _augmented("image", mid, contrast=0.15)
    np.testing.assert_allclose(contrasted.mean(axis=(1, 2, 3)), mid.mean(), rtol=1e-4)  # contrast keeps the mean
    scale = (contrasted - mid.mean())[:, 0, 0, 0] / (mid - mid.mean())[0, 0, 0]
    assert np.all((scale > 0.85 - 1e-4) & (scale < 1.15 + 1e-4)) and 0.35 < (np.abs(scale - 1) > 1e-5).mean() < 0.65
    wave = rng.normal(0, 0.1, 400).astype("float32")
    gains = _augmented("audio", wave, gain=(0.7, 1.3))[:, :5] / wave[:5]
    assert np.allclose(gains, gains[:, :1], rtol=1e-4) and gains.min() >= 0.7 - 1e-4 and gains.max() <= 1.3 + 1e-4
    assert 0.35 < (np.abs(gains[:, 0] - 1) > 1e-6).mean() < 0.65
    rolled = _augmented("audio", wave, shift=0.1)
    steps = [next(k for k in range(-41, 42) if np.array_equal(r, np.roll(wave, k))) for r in rolled]  # a roll, |k| <= 10 % + 1
    assert 0.35 < np.mean(np.array(steps) != 0) < 0.65 and len(set(steps)) > 10


def _write_manifest(path, rows):
    lines = ["text,label,split"] + [f"{t},{lbl},{s}" for t, lbl, s in rows]
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def test_excel_byte_order_mark_and_every_decodable_extension_are_understood(tmp_path):
    path = _write_manifest(tmp_path / "m.csv", [("a", "cat", "train"), ("b", "dog", "train")])
    (tmp_path / "m.csv").write_bytes(b"\xef\xbb\xbf" + (tmp_path / "m.csv").read_bytes())  # Excel's "CSV UTF-8"
    assert Manifest(path, features=["text"]).features == {"text": "text"}
    # .oga (freedesktop sound themes), .opus and .webp were guessed to be text columns
    assert [keras_mm.data.guess_modality([f"x{e}"]) for e in (".oga", ".opus", ".aiff", ".webp")] == ["audio"] * 3 + ["image"]


def test_a_manifest_that_is_not_utf8_is_refused_with_its_line(tmp_path):
    # Excel's plain "CSV" is cp1252: the e-acute of "cafe" is byte 0xe9 (was a bare UnicodeDecodeError)
    (tmp_path / "m.csv").write_bytes(b"text,label,split\nthe cat,a,train\ncaf\xe9 au lait,b,train\n")
    with pytest.raises(ValueError, match=r"m.csv, line 3: byte 0xe9 is not UTF-8 \('caf. au lait,b,train'\).*CSV UTF-8"):
        Manifest(str(tmp_path / "m.csv"))


def test_a_file_of_an_unread_extension_among_audio_files_is_named_not_read_as_text(tmp_path):
    # one .m4a row turned the whole audio column into path strings, and sample_rate was ignored
    (tmp_path / "m.csv").write_text("sound,label\na.wav,x\nb.wav,y\nc.m4a,x\n")
    with pytest.raises(ValueError, match=r"column 'sound' holds audio files .* and files keras_mm does not read as audio: 'c.m4a'"):
        Manifest(str(tmp_path / "m.csv"))
    for name in ("a.wav", "b.wav", "c.m4a"):
        (tmp_path / name).write_bytes(b"")
    assert Manifest(str(tmp_path / "m.csv"), modalities={"sound": "audio"}).modalities == {"sound": "audio"}
    assert keras_mm.data.guess_modality(["a dog.", "cat.png", "a bird"]) == "text"  # mostly sentences: text


def test_labels_differing_only_in_case_are_reported(tmp_path, caplog):
    path = _write_manifest(tmp_path / "m.csv", [("a", "Places", "train"), ("b", "places", "train"), ("c", "cat", "train")])
    with caplog.at_level("WARNING", logger="keras_mm"):
        assert Manifest(path).class_names == ["Places", "cat", "places"]
    assert "labels that differ only in letter case are separate classes: 'Places' / 'places'" in caplog.text


def test_one_label_vocabulary_across_splits(tmp_path):
    # 5 classes in train; val lacks "bird" and "cow": ids must still agree with train's.
    classes = ["ant", "bird", "cat", "cow", "dog"]
    rows = [(f"t{i}", c, "train") for i, c in enumerate(classes * 2)]
    rows += [("v1", "ant", "val"), ("v2", "cat", "val"), ("v3", "dog", "val")]
    path = _write_manifest(tmp_path / "m.csv", rows)
    train, val = Manifest(path, split="train"), Manifest(path, split="val")
    assert train.class_names == val.class_names == classes
    np.testing.assert_array_equal(val.labels, [0, 2, 4])  # per-split vocabularies gave [0, 1, 2]
    ds_labels = [int(y) for _, y in from_manifest(path, split="val")]
    assert ds_labels == [0, 2, 4]


def test_explicit_class_names_set_the_order_and_reject_unknown_labels(tmp_path):
    path = _write_manifest(tmp_path / "m.csv", [("a", "dog", "train"), ("b", "cat", "train"), ("c", "emu", "val")])
    manifest = Manifest(path, split="train", class_names=["dog", "cat"])
    np.testing.assert_array_equal(manifest.labels, [0, 1])
    with pytest.raises(ValueError, match=r"m.csv, line 4: label='emu' is not one of the class names \['dog', 'cat'\]"):
        Manifest(path, class_names=["dog", "cat"])


@pytest.mark.parametrize("labels, names, ids", [
    (["dog", "", "cat"], ["cat", "dog"], [1, 0]),
    (["3", "", "10"], None, [3, 10]),  # integer ids stay ids (the empty cell made them strings sorted as text)
])
def test_an_empty_label_is_a_skipped_row_not_a_class(tmp_path, labels, names, ids):
    path = _write_manifest(tmp_path / "m.csv", [(t, lbl, "train") for t, lbl in zip("abc", labels)])
    manifest = Manifest(path, on_error="skip")
    assert manifest.class_names == names and manifest.skipped == [(3, "label is empty")]
    np.testing.assert_array_equal(manifest.labels, ids)


def test_unknown_or_empty_split_raises_listing_the_splits(tmp_path):
    path = _write_manifest(tmp_path / "m.csv", [("a", "dog", "train"), ("b", "cat", "train"), ("c", "cat", "test")])
    with pytest.raises(ValueError, match=r"split='validation' is not in .*m.csv. Splits: test \(1 rows\), train \(2 rows\)"):
        from_manifest(path, split="validation")
    lines = (tmp_path / "m.csv").read_text().replace("c,cat,test", "c,,test")
    (tmp_path / "m.csv").write_text(lines)
    with pytest.raises(ValueError, match=r"no usable rows in split 'test' \(1 skipped; first: line 4: label is empty\)"):
        Manifest(path, split="test", on_error="skip")


def test_features_must_cover_exactly_the_model_features(model):
    # a model feature left out used to fail with a bare KeyError deep in the pipeline
    with pytest.raises(ValueError, match=r"the model's feature\(s\) \['text'\] are not read.*"
                                         r"features=\{'audio': 'audio', 'image': 'image', 'text': '<column>'\}"):
        from_manifest(sample_manifest_path(), model=model, features={"image": "image", "audio": "audio"})
    with pytest.raises(ValueError, match=r"feature\(s\) \['caption'\] are not the model's"):
        from_manifest(sample_manifest_path(), model=model, features=["image", "audio", "text", "caption"])
    renamed = from_manifest(sample_manifest_path(), model=model, features={"image": "image", "audio": "audio", "text": "text"})
    assert len(renamed.manifest) == 350


def test_labels_that_do_not_fit_the_head_are_an_error_before_training(tmp_path):
    # a 3-class manifest on a 2-class head used to fail in the loss: "label value of 2 which is outside the valid range"
    model = keras_mm.build_model(encoders={"text": {"name": "lstm", "vocabulary": ["a"], "sequence_length": 2}},
                                 num_classes=2)
    path = _write_manifest(tmp_path / "m.csv", [("a", "cat", "train"), ("b", "dog", "train"), ("c", "cow", "val")])
    with pytest.raises(ValueError, match=r"the labels have 3 classes \(cat, cow, dog\) but the model's head has "
                                         r"num_classes=2. Build the model with num_classes=3"):
        from_manifest(path, model=model, split="train")
    ids = _write_manifest(tmp_path / "ids.csv", [("a", "0", "train"), ("b", "1", "train"), ("c", "2", "val")])
    with pytest.raises(ValueError, match=r"ids.csv, line 4: label=2 is not a class id of the model's head \(num_classes=2"):
        from_manifest(ids, model=model)
    assert len(from_manifest(ids, model=model, split="train").manifest) == 2  # the train rows' ids fit


def test_check_manifest_refuses_labels_that_do_not_fit_the_head_and_names_a_case_typo(tmp_path):
    # check_manifest passed such a manifest ("0 unusable rows") and from_manifest then refused it
    model = keras_mm.build_model(encoders={"text": {"name": "lstm", "vocabulary": ["a"], "sequence_length": 2}},
                                 num_classes=2)
    path = _write_manifest(tmp_path / "m.csv", [("a", "cat", "train"), ("b", "dog", "train"), ("c", "Cat", "train")])
    with pytest.raises(ValueError, match=r"the labels have 3 classes \(Cat, cat, dog\).*num_classes=2.*"
                                         r"differ only in case or spaces: 'Cat' \(line 4\) vs 'cat' \(line 2\)"):
        keras_mm.data.check_manifest(path, model=model)
    assert keras_mm.data.check_manifest(path) == []  # without a model there is no head to fit


def test_model_class_names_label_the_dataset(tmp_path):
    path = _write_manifest(tmp_path / "m.csv", [("a", "dog", "train"), ("b", "cat", "train")])
    model = keras_mm.build_model(encoders=tiny_encoders(("bert",)), head={"name": "classification", "class_names": ["dog", "cat", "emu"]},
                                 num_classes=3)
    assert model.class_names == ["dog", "cat", "emu"]
    labels = [int(y) for _, y in from_manifest(path, model=model)]
    assert labels == [0, 1]


def test_a_model_without_class_names_takes_the_manifests(tmp_path):
    # they were dropped: evaluate printed 0..9 and the SavedModel had no class_name output (new-user trial)
    path = _write_manifest(tmp_path / "m.csv", [("a", "dog", "train"), ("b", "cat", "train"), ("c", "emu", "test")])
    model = keras_mm.build_model(encoders=tiny_encoders(("bert",)), num_classes=3)
    assert model.class_names is None
    from_manifest(path, model=model, split="train")
    assert model.class_names == ["cat", "dog", "emu"]  # from every row, as the ids are
    model.save(tmp_path / "m.keras")
    assert keras.models.load_model(tmp_path / "m.keras").class_names == ["cat", "dog", "emu"]
    # a manifest of the test rows alone now gets the model's ids, not ids of its own one class
    test_only = _write_manifest(tmp_path / "t.csv", [("c", "emu", "test")])
    assert [int(y) for _, y in from_manifest(test_only, model=model)] == [2]
    report = keras_mm.evaluate(model, from_manifest(path, model=model, batch_size=3), verbose=False)
    assert report.class_names == ["cat", "dog", "emu"]
    ids = _write_manifest(tmp_path / "ids.csv", [("a", "0", "train"), ("b", "2", "train")])
    unnamed = keras_mm.build_model(encoders=tiny_encoders(("bert",)), num_classes=3)
    from_manifest(ids, model=unnamed)
    assert unnamed.class_names is None  # integer labels name nothing


def _audio_manifest(root, cells):
    """A manifest of one audio column (and an integer label per row) under ``root``."""
    lines = ["audio,label"] + [f"{cell},{i}" for i, cell in enumerate(cells)]
    (root / "m.csv").write_text("\n".join(lines) + "\n")
    return str(root / "m.csv")


def _write_audio_files(root):
    import soundfile

    rng = np.random.default_rng(0)
    stereo = rng.normal(0, 0.2, (3001, 2)).astype("float32")
    soundfile.write(root / "pcm16.wav", stereo, 8000, subtype="PCM_16")  # decoded in the graph
    soundfile.write(root / "pcm24.wav", stereo, 11025, subtype="PCM_24")  # tf.audio.decode_wav rejects it
    soundfile.write(root / "float.wav", stereo, 16000, subtype="FLOAT")
    soundfile.write(root / "clip.flac", stereo, 22050)
    soundfile.write(root / "clip.ogg", stereo, 8000)
    return ["pcm16.wav", "pcm24.wav", "float.wav", "clip.flac", "clip.ogg"]


def test_audio_matches_librosa_fft_resampling_and_load_row_is_the_same_code(tmp_path):
    import librosa

    files = _write_audio_files(tmp_path)
    ds = from_manifest(_audio_manifest(tmp_path, files), sample_rate=16000)
    options = ds.manifest.load_options(sample_rate=16000)
    for i, ((example, label), name) in enumerate(zip(ds, files)):
        expected = librosa.load(str(tmp_path / name), sr=16000, mono=True, res_type="fft")[0]
        got = example["audio"].numpy()
        assert got.shape == expected.shape, name
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5 * np.abs(expected).max(), err_msg=name)
        np.testing.assert_array_equal(ds.manifest.load_row(i, options)["audio"], got)
        assert int(label) == i


def test_sample_manifest_rows_equal_load_row_and_librosa():
    import librosa

    ds = from_manifest(sample_manifest_path(), split="test", sample_rate=16000)
    manifest, options = ds.manifest, ds.manifest.load_options(sample_rate=16000)
    for i, (example, label) in enumerate(ds.take(5)):
        row = manifest.load_row(i, options)
        assert example["image"].numpy() == row["image"] and example["text"].numpy().decode() == row["text"]
        np.testing.assert_array_equal(example["audio"].numpy(), row["audio"])
        expected = librosa.load(manifest.resolve(manifest.rows[i]["audio"]), sr=16000, res_type="fft")[0]
        np.testing.assert_allclose(row["audio"], expected, rtol=0, atol=1e-5 * np.abs(expected).max())
        with open(manifest.resolve(manifest.rows[i]["image"]), "rb") as f:
            assert row["image"] == f.read()


@pytest.mark.parametrize("deterministic", [True, False])
@pytest.mark.parametrize("bad", ["truncated.wav", "noise.wav", "broken.ogg"])
def test_a_file_that_fails_to_decode_names_the_manifest_line_and_path(tmp_path, bad, deterministic):
    files = _write_audio_files(tmp_path)
    good = (tmp_path / "pcm16.wav").read_bytes()
    (tmp_path / "truncated.wav").write_bytes(good[:2000])  # a valid header: tf.audio.decode_wav fails in the graph
    (tmp_path / "noise.wav").write_bytes(b"RIFF" + bytes(range(256)) * 4)  # no WAVE header: soundfile fails
    (tmp_path / "broken.ogg").write_bytes(b"OggS" + bytes(200))  # soundfile fails
    path = _audio_manifest(tmp_path, files[:2] + [bad] + files[2:])
    ds = from_manifest(path, sample_rate=16000, deterministic=deterministic)
    with pytest.raises(tf.errors.OpError) as raised:
        for _ in ds:
            pass
    message = str(raised.value)
    assert f"m.csv, line 4: cannot load audio='{bad}'" in message and str(tmp_path / bad) in message, message[:800]
    with pytest.raises(ValueError, match=rf"m.csv, line 4: cannot load audio='{bad}'"):
        ds.manifest.load_row(2)


def test_a_file_named_wav_that_is_not_wav_is_an_unusable_row_as_serving_refuses_it(tmp_path):
    # an OGG file named .wav trained (soundfile read it) and came back "undecodable" from serving_wav
    files = _write_audio_files(tmp_path)
    (tmp_path / "ogg_named.wav").write_bytes((tmp_path / "clip.ogg").read_bytes())
    path = _audio_manifest(tmp_path, files + ["ogg_named.wav"])
    why = ("cannot load audio='ogg_named.wav' ({}): cannot decode {} as audio: not a WAV file: its bytes start with "
           "'OggS' (an Ogg file named .wav); rename it .ogg").format(*[tmp_path / "ogg_named.wav"] * 2)
    assert keras_mm.data.check_manifest(path, sample_rate=16000) == [(7, why)]
    with pytest.raises(tf.errors.OpError, match="m.csv, line 7: cannot load audio='ogg_named.wav'"):
        for _ in from_manifest(path, sample_rate=16000):
            pass


def test_check_prints_no_traceback_of_a_chained_decoder_error(tmp_path):
    # soundfile's error re-raised "from" it: TensorFlow's record had two tracebacks joined by "The above exception
    # was the direct cause of the following exception:", and the filter stopped dropping at that line
    import subprocess
    import sys

    _write_audio_files(tmp_path)
    (tmp_path / "broken.ogg").write_bytes(b"OggS" + bytes(200))
    (tmp_path / "noise.flac").write_bytes(bytes(range(256)) * 4)
    path = _audio_manifest(tmp_path, ["pcm16.wav", "broken.ogg", "noise.flac"])
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "KERAS_MM_TF_LOGS")}
    code = f"import keras_mm; print(keras_mm.data.check_manifest({path!r}, sample_rate=16000))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert result.returncode == 0 and "(3, \"cannot load audio='broken.ogg'" in result.stdout, result.stderr[-3000:]
    assert "(4, \"cannot load audio='noise.flac'" in result.stdout, result.stdout
    assert "Traceback" not in result.stderr and "direct cause" not in result.stderr, result.stderr[-3000:]


def test_parallel_loading_keeps_order_unless_told_otherwise(tmp_path):
    files = _write_audio_files(tmp_path)
    path = _audio_manifest(tmp_path, files * 4)
    ordered = [int(y) for _, y in from_manifest(path, sample_rate=16000)]
    assert ordered == list(range(len(files) * 4))
    unordered = [int(y) for _, y in from_manifest(path, sample_rate=16000, deterministic=False)]
    assert sorted(unordered) == ordered


def test_blank_cells_give_the_modality_empty_value(tmp_path):
    files = _write_audio_files(tmp_path)
    path = tmp_path / "m.csv"
    path.write_text(f"audio,text,label\n{files[0]},a dog,0\n, ,1\n")
    examples = [x for x, _ in from_manifest(str(path), sample_rate=16000)]
    assert examples[0]["audio"].shape == (6002,) and examples[0]["text"].numpy() == b"a dog"
    assert examples[1]["audio"].shape == (0,) and examples[1]["text"].numpy() == b""


def test_a_corrupt_image_in_a_training_manifest_is_an_error_naming_the_row(tmp_path, model, monkeypatch):
    # the bytes load fine; only the decoder fails: at serving time that marks the sample missing,
    # in a training pipeline it must not silently become an image-less row
    shutil.copytree(SAMPLE_DIR, tmp_path / "s")
    path = str(tmp_path / "s" / "manifest.csv")
    row = Manifest(path).rows[5]
    (tmp_path / "s" / row["image"]).write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    ds = from_manifest(path, model=model, batch_size=16)
    reloads = []
    load_row_tensors = Manifest.load_row_tensors
    monkeypatch.setattr(Manifest, "load_row_tensors", lambda self, *a, **k: reloads.append(a[0]) or load_row_tensors(self, *a, **k))
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"manifest.csv, line 7: image='images/.*\.png' .* cannot be used: undecodable"):
        for _ in ds:
            pass
    # the row is reloaded to name it once, not again on every pull of the stages downstream (~30 times)
    assert set(reloads) == {5} and len(reloads) <= 3, reloads


def _decompression_bomb():
    """A 283 KB PNG of 16000 x 16000 white pixels (decoding it took 8.8 GB)."""
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("L", (16000, 16000), 255).save(buffer, "PNG")
    return buffer.getvalue()


def _sample_with_bad_files(tmp_path):
    """A copy of the sample with a corrupt PNG, a text file as WAV and a missing image; returns (path, the lines using them)."""
    shutil.copytree(SAMPLE_DIR, tmp_path / "s")
    path = str(tmp_path / "s" / "manifest.csv")
    manifest = Manifest(path)
    rows = manifest.rows
    bad = {("image", rows[5]["image"]), ("audio", rows[10]["audio"]), ("image", rows[18]["image"]),
           ("image", rows[2]["image"]), ("image", rows[14]["image"])}
    (tmp_path / "s" / rows[5]["image"]).write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    (tmp_path / "s" / rows[10]["audio"]).write_bytes(b"RIFF, but only in name")
    (tmp_path / "s" / rows[18]["image"]).unlink()
    (tmp_path / "s" / rows[2]["image"]).write_bytes(b"")  # passed check_manifest, then failed on_error="skip"
    (tmp_path / "s" / rows[14]["image"]).write_bytes(_decompression_bomb())
    lines = [n for n, row in zip(manifest.line_numbers, rows) if any(row[c] == f for c, f in bad)]
    return path, lines  # the sample reuses some files: every row using a bad one


def test_check_manifest_lists_every_bad_row_in_one_pass(tmp_path, model):
    path, bad_lines = _sample_with_bad_files(tmp_path)
    problems = dict(keras_mm.data.check_manifest(path, model=model))
    assert sorted(problems) == bad_lines and {7, 12, 20} <= set(bad_lines), problems
    assert problems[7].startswith("image=") and "undecodable" in problems[7]
    assert problems[12].startswith("cannot load audio=") and "not a WAV file (no RIFF/WAVE or RF64 header)" in problems[12]
    assert problems[20].startswith("image=") and problems[20].endswith("is missing or unreadable")
    assert "cannot be used: the file is empty" in problems[4]
    assert "too_large (its header announces more pixels than" in problems[16]
    assert keras_mm.data.check_manifest(sample_manifest_path(), model=model) == []


def test_check_manifest_without_a_model_finds_files_that_do_not_decode(tmp_path):
    # it found only missing files and bad labels: a corrupt, an empty and an oversized PNG passed (new-user trial)
    path, bad_lines = _sample_with_bad_files(tmp_path)
    problems = dict(keras_mm.data.check_manifest(path))
    assert sorted(problems) == bad_lines, problems
    assert problems[7].startswith("image=") and "does not decode: Invalid PNG" in problems[7]
    assert "does not decode: Input is empty" in problems[4]
    assert "does not decode" in problems[16] and "pixels" in problems[16]
    assert "{{function_node" not in problems[7] and "[Op:" not in problems[7]
    assert keras_mm.data.check_manifest(sample_manifest_path()) == []
    # raw datasets (no model) skip them too
    assert [line for line, _ in from_manifest(path, on_error="skip").manifest.skipped] == bad_lines


def test_keras_mm_check_prints_the_list_without_tensorflows_record_of_each_failure(tmp_path, model):
    # a warning per failing op and a Python decoder's whole traceback surrounded the list: 182 stderr
    # lines for 14 bad rows. A fresh process without TF_CPP_MIN_LOG_LEVEL (the test runner sets it)
    import subprocess
    import sys

    path, bad_lines = _sample_with_bad_files(tmp_path)
    model.save(tmp_path / "model.keras")
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "KERAS_MM_TF_LOGS")}
    result = subprocess.run([sys.executable, "-m", "keras_mm.cli", "check", "--manifest", path, "--model",
                             str(tmp_path / "model.keras")], capture_output=True, text=True, env=env)
    assert result.returncode == 1 and f"{len(bad_lines)} unusable row(s)" in result.stdout, result.stdout[-2000:]
    assert "Traceback" not in result.stderr and "op_kernel.cc" not in result.stderr, result.stderr[-3000:]
    assert "local_rendezvous.cc" not in result.stderr


def test_on_error_skip_drops_undecodable_files_and_keeps_labels_aligned(tmp_path, model, caplog):
    path, bad_lines = _sample_with_bad_files(tmp_path)
    everything = Manifest(path, on_error="skip")
    with caplog.at_level("WARNING", logger="keras_mm"):
        ds = from_manifest(path, model=model, batch_size=64, on_error="skip")
    assert [line for line, _ in ds.manifest.skipped] == bad_lines
    assert f"skipped {len(bad_lines) - 1} more row(s)" in caplog.text and "line 4" in caplog.text
    kept_lines = [n for n in everything.line_numbers if n not in bad_lines]
    assert ds.manifest.line_numbers == kept_lines
    expected = [int(everything.labels[everything.line_numbers.index(n)]) for n in kept_lines]
    assert [int(v) for _, y in ds for v in y.numpy()] == expected
    # a kept row's values are those of the pipeline without skipping
    x, _ = next(iter(ds.unbatch()))
    reference, _ = next(iter(from_manifest(sample_manifest_path(), model=model)))
    np.testing.assert_allclose(x["image"].numpy(), reference["image"].numpy())


def test_integer_labels_are_ids_named_by_class_names(tmp_path):
    path = _write_manifest(tmp_path / "m.csv", [("a", "1", "train"), ("b", "0", "train"), ("c", "2", "val")])
    manifest = Manifest(path, class_names=["zero", "one", "two"])
    np.testing.assert_array_equal(manifest.labels, [1, 0, 2])
    with pytest.raises(ValueError, match=r"line 4: label=2 is not a class id of the 2 class names \(0..1\)"):
        Manifest(path, class_names=["zero", "one"])


@pytest.mark.parametrize("text_ahead", [True, False], ids=["text-tokenized-ahead", "text-tokenized-in-pipeline"])
def test_training_pipeline_values_equal_the_serving_preprocessor_on_the_raw_rows(tmp_path, model, monkeypatch, text_ahead):
    # images are decoded in the loading map (no per-sample isolation), text is tokenized once when the
    # dataset is built (or, over AHEAD_MAX_BYTES, in the pipeline) and the rest runs on chunks:
    # the numbers must be those of model.preprocessor on the raw rows, blank cells included
    if not text_ahead:
        monkeypatch.setattr(keras_mm.data.manifest, "AHEAD_MAX_BYTES", 0)
    shutil.copytree(SAMPLE_DIR, tmp_path / "s")
    path = tmp_path / "s" / "manifest.csv"
    lines = path.read_text().splitlines()
    for i in (3, 9):  # blank image cells: zeros and image_present 0
        lines[i] = "," + lines[i].split(",", 1)[1]
    lines[5] = lines[5].split(",")[0] + ",," + ",".join(lines[5].split(",")[2:])  # a blank text cell
    path.write_text("\n".join(lines) + "\n")
    ds = from_manifest(str(path), model=model, split="test", batch_size=7)
    manifest = ds.manifest
    # the epoch's graph runs the WordPiece tokenizer only when text was not tokenized ahead
    assert (b"FastWordpieceTokenize" in ds._as_serialized_graph().numpy()) is not text_ahead
    got = {k: np.concatenate([x[k].numpy() for x, _ in ds]) for k in model.input}
    options = ds.load_options
    raw = [manifest.load_row(i, options) for i in range(len(manifest))]
    expected = model.preprocessor.process_batch({
        "image": np.array([r["image"] for r in raw], dtype=object), "text": np.array([r["text"] for r in raw], dtype=object),
        "audio": tf.ragged.constant([r["audio"] for r in raw], dtype=tf.float32)})
    assert got["image_present"].min() == 0 and got["text_present"].min() == 0
    for name in model.input:
        np.testing.assert_allclose(got[name], expected[name].numpy(), rtol=0, atol=1e-4, err_msg=name)


def test_unusable_audio_in_a_training_manifest_is_an_error_naming_the_row(tmp_path, model):
    import soundfile

    files = _write_audio_files(tmp_path)
    clip = np.zeros(4000, "float32")
    clip[10] = np.nan  # decodes fine; the preprocessor marks it not finite
    soundfile.write(tmp_path / "nan.wav", clip, 16000, subtype="FLOAT")
    path = tmp_path / "m.csv"
    rows = [f"{f},a dog,{i % 10}" for i, f in enumerate(files[:2] + ["nan.wav"] + files[2:])]
    path.write_text("audio,text,label\n" + "\n".join(rows) + "\n")
    text_audio = keras_mm.build_model(encoders=tiny_encoders(("bert", "mfcc_cnn")), num_classes=10)
    ds = from_manifest(str(path), model=text_audio, sample_rate=16000, batch_size=2)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"m.csv, line 4: audio='nan.wav' .* cannot be used: not_finite_or_too_loud"):
        for _ in ds:
            pass


def test_spaces_after_the_commas_of_a_csv_are_not_part_of_the_names(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text("text, label, split\na dog, dog, train\na cat, cat, train\n")
    manifest = Manifest(str(path), split="train")  # was: split='train' asked for but there is no 'split' column
    assert manifest.features == {"text": "text"} and manifest.class_names == ["cat", "dog"]
    assert manifest.load_row(0)["text"] == "a dog"


def test_clips_longer_than_the_model_keeps_are_reported_once(tmp_path, caplog):
    # 61 % of a trial's clips were longer than the 1 s the model keeps, cropped without a word
    import soundfile

    rng = np.random.default_rng(0)
    rows = ["audio,label"]
    for i, seconds in enumerate([3.0, 2.5, 0.5, 3.0]):
        soundfile.write(tmp_path / f"c{i}.wav", rng.normal(0, 0.1, int(8000 * seconds)).astype("float32"), 8000)
        rows.append(f"c{i}.wav,{i % 2}")
    (tmp_path / "m.csv").write_text("\n".join(rows) + "\n")
    model = keras_mm.build_model(encoders={"audio": "mfcc_cnn"}, num_classes=2)  # keeps 1 s at 16 kHz
    with caplog.at_level("WARNING", logger="keras_mm"):
        from_manifest(tmp_path / "m.csv", model=model)
        from_manifest(tmp_path / "m.csv", model=model)
    logged = [r.getMessage() for r in caplog.records if "clips measured are longer" in r.getMessage()]
    assert len(logged) == 1, logged
    assert "75% of the 4 'audio' clips measured are longer than the 1.00 s the model keeps (median 2.75 s)" in logged[0]
    assert "num_samples=48000 (3.0 s at 16000 Hz)" in logged[0]
    assert keras_mm.data.manifest.warn_cropped_audio(Manifest(tmp_path / "m.csv"), model.preprocessor) == {"audio": 0.75}
