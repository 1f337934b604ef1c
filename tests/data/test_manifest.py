import json
import shutil

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
    assert len(ds.manifest) == 60 and ds.manifest.modalities == {"audio": "audio", "image": "image", "text": "text"}
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


def test_missing_file_names_the_line_or_is_skipped_with_a_count(tmp_path):
    shutil.copytree(SAMPLE_DIR, tmp_path / "s")
    lines = (tmp_path / "s" / "manifest.csv").read_text().splitlines()
    lines[3] = lines[3].replace(".png", "_gone.png", 1)
    (tmp_path / "s" / "manifest.csv").write_text("\n".join(lines) + "\n")
    path = str(tmp_path / "s" / "manifest.csv")
    with pytest.raises(ValueError, match=r"manifest.csv, line 4: image='images/.*_gone.png' .* missing or unreadable"):
        Manifest(path)
    manifest = Manifest(path, on_error="skip")
    assert len(manifest) == 239 and manifest.skipped[0][0] == 4


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


def _write_manifest(path, rows):
    lines = ["text,label,split"] + [f"{t},{lbl},{s}" for t, lbl, s in rows]
    path.write_text("\n".join(lines) + "\n")
    return str(path)


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


def test_unknown_or_empty_split_raises_listing_the_splits(tmp_path):
    path = _write_manifest(tmp_path / "m.csv", [("a", "dog", "train"), ("b", "cat", "train"), ("c", "cat", "test")])
    with pytest.raises(ValueError, match=r"split='validation' is not in .*m.csv. Splits: test \(1 rows\), train \(2 rows\)"):
        from_manifest(path, split="validation")
    lines = (tmp_path / "m.csv").read_text().replace("c,cat,test", "c,,test")
    (tmp_path / "m.csv").write_text(lines)
    with pytest.raises(ValueError, match=r"no usable rows in split 'test' \(1 skipped; first: line 4: label is empty\)"):
        Manifest(path, split="test", on_error="skip")


def test_model_class_names_label_the_dataset(tmp_path):
    path = _write_manifest(tmp_path / "m.csv", [("a", "dog", "train"), ("b", "cat", "train")])
    model = keras_mm.build_model(encoders=tiny_encoders(("bert",)), head={"name": "classification", "class_names": ["dog", "cat", "emu"]},
                                 num_classes=3)
    assert model.class_names == ["dog", "cat", "emu"]
    labels = [int(y) for _, y in from_manifest(path, model=model)]
    assert labels == [0, 1]
