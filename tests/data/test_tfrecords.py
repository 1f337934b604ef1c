import csv
import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

import keras_mm
from keras_mm.data import Manifest, from_manifest, from_tfrecords, read_tfrecords_metadata, write_tfrecords
from keras_mm.datasets import SAMPLE_DIR, sample_manifest_path
from tests.conftest import tiny_encoders

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@keras_mm.register_modality("test_tfrecord_vector")
class VectorModality(keras_mm.modalities.Modality):
    """Float vectors in .vec text files: only load_file is defined, TFRecord storage uses the defaults."""

    file_extensions = (".vec",)
    raw_shape, raw_dtype = (None,), tf.float32

    def load_file(self, path, **options):
        with open(path) as f:
            return np.array([float(v) for v in f.read().split()], "float32")


def _assert_same_examples(expected, got):
    expected, got = list(expected), list(got)
    assert len(expected) == len(got) > 0
    for (xa, ya), (xb, yb) in zip(expected, got):
        np.testing.assert_array_equal(ya.numpy(), yb.numpy())
        assert set(xa) == set(xb)
        for feature in xa:
            assert xa[feature].dtype == xb[feature].dtype, feature
            np.testing.assert_array_equal(xa[feature].numpy(), xb[feature].numpy(), err_msg=feature)


def test_round_trip_equals_from_manifest_in_manifest_order(tmp_path):
    meta = write_tfrecords(sample_manifest_path(), str(tmp_path / "shards"), num_shards=3, sample_rate=16000)
    assert meta["num_examples"] == 350 and [s["examples"] for s in meta["shards"]] == [117, 117, 116]
    assert meta["features"] == {"image": "image", "text": "text", "audio": "audio"}
    _assert_same_examples(from_manifest(sample_manifest_path(), sample_rate=16000), from_tfrecords(str(tmp_path / "shards")))
    # a glob of the shards reads the same; a raw from_manifest dataset can be the source too
    ds = from_manifest(sample_manifest_path(), split="test", sample_rate=16000)
    write_tfrecords(ds, str(tmp_path / "test"), num_shards=2)
    _assert_same_examples(ds, from_tfrecords(str(tmp_path / "test" / "shard-*.tfrecord")))


def test_model_inputs_equal_from_manifest_and_mismatches_are_refused(tmp_path):
    encoders = tiny_encoders()
    encoders["audio"]["num_samples"] = 8000
    model = keras_mm.build_model(encoders=encoders, fusion="attention", num_classes=10)
    write_tfrecords(sample_manifest_path(), str(tmp_path / "s"), num_shards=4, model=model)
    expected = from_manifest(sample_manifest_path(), model=model, batch_size=16)
    _assert_same_examples(expected, from_tfrecords(str(tmp_path / "s"), model=model, batch_size=16))
    write_tfrecords(sample_manifest_path(), str(tmp_path / "8k"), num_shards=1, sample_rate=8000)
    with pytest.raises(ValueError, match=r"feature 'audio' was written with \{'sample_rate': 8000\} but the model needs "
                                         r"\{'sample_rate': 16000, 'num_samples': 8000\}"):
        from_tfrecords(str(tmp_path / "8k"), model=model)
    # audio is stored for the writing model's window (plus a margin): a longer window is refused, whole clips
    # (written without a model, or before windows were stored) serve any window
    assert read_tfrecords_metadata(str(tmp_path / "s"))[0]["load_options"]["audio"] == {"sample_rate": 16000, "num_samples": 8000}
    encoders["audio"]["num_samples"] = 12000
    longer = keras_mm.build_model(encoders=encoders, fusion="attention", num_classes=10)
    with pytest.raises(ValueError, match=r"written with \{'sample_rate': 16000, 'num_samples': 8000\} but the model "
                                         r"needs \{'sample_rate': 16000, 'num_samples': 12000\}"):
        from_tfrecords(str(tmp_path / "s"), model=longer)
    write_tfrecords(sample_manifest_path(), str(tmp_path / "whole"), num_shards=1, sample_rate=16000)
    x, _ = next(iter(from_tfrecords(str(tmp_path / "whole"), model=longer, batch_size=4)))
    assert x["audio"].shape == (4, 12000)
    with pytest.raises(ValueError, match=r"features \['video'\] are not in the TFRecords. Stored: image, text, audio"):
        from_tfrecords(str(tmp_path / "8k"), features=["video"])
    with pytest.raises(ValueError, match=r"the model's feature\(s\) \['text'\] are not read"):
        from_tfrecords(str(tmp_path / "s"), model=model, features=["image", "audio"])
    with pytest.raises(ValueError, match="keras_mm_tfrecords.json not found"):
        from_tfrecords(str(tmp_path))


def test_class_names_multilabel_blank_cells_and_a_custom_modality(tmp_path):
    for i, values in enumerate([[1.0, 2.0], [3.0], [4.0, 5.0, 6.0]]):
        (tmp_path / f"v{i}.vec").write_text(" ".join(map(str, values)))
    (tmp_path / "m.csv").write_text("vec,note,tags\nv0.vec,a dog,cat|dog\nv1.vec,,dog\n,a cow,cow\n")
    manifest = Manifest(str(tmp_path / "m.csv"), label="tags", multilabel=True)
    assert manifest.modalities == {"vec": "test_tfrecord_vector", "note": "text"}
    meta = write_tfrecords(manifest, str(tmp_path / "s"), num_shards=2)
    assert meta["class_names"] == ["cat", "cow", "dog"] and meta["multilabel"]
    ds = from_tfrecords(str(tmp_path / "s"))
    assert ds.class_names == ["cat", "cow", "dog"] and ds.metadata["features"]["vec"] == "test_tfrecord_vector"
    _assert_same_examples(from_manifest(str(tmp_path / "m.csv"), label="tags", multilabel=True), ds)
    stored, _ = read_tfrecords_metadata(str(tmp_path / "s"))
    assert stored == json.loads((tmp_path / "s" / "keras_mm_tfrecords.json").read_text()) == meta


def test_paths_through_tf_io_filesystems(tmp_path):
    # ram:// is TensorFlow's in-memory filesystem: the same tf.io code path as gs:// or s3://, with no network
    root = f"ram://{tmp_path.name}"
    rows = list(csv.DictReader(open(sample_manifest_path(), newline="")))[:6]
    for row in rows:
        for column in ("image", "audio"):
            tf.io.gfile.makedirs(f"{root}/{os.path.dirname(row[column])}")
            tf.io.gfile.copy(os.path.join(SAMPLE_DIR, row[column]), f"{root}/{row[column]}", overwrite=True)
    with tf.io.gfile.GFile(f"{root}/manifest.csv", "w") as f:
        f.write("image,text,audio,label\n" + "".join(f"{r['image']},{r['text']},{r['audio']},{r['label']}\n" for r in rows))
    remote = from_manifest(f"{root}/manifest.csv", sample_rate=16000)
    local = from_manifest(sample_manifest_path(), sample_rate=16000)
    _assert_same_examples(local.take(6), remote)
    write_tfrecords(remote, f"{root}/shards", num_shards=2)
    _assert_same_examples(remote, from_tfrecords(f"{root}/shards"))


def test_fewer_shards_than_workers_is_refused(tmp_path, monkeypatch):
    write_tfrecords(sample_manifest_path(), str(tmp_path / "one"), num_shards=1, sample_rate=16000)
    cluster = {"cluster": {"worker": ["127.0.0.1:1", "127.0.0.1:2"]}, "task": {"type": "worker", "index": 0}}
    monkeypatch.setenv("TF_CONFIG", json.dumps(cluster))
    with pytest.raises(ValueError, match=r"1 TFRecord shard\(s\) for 2 workers: each worker reads whole shards"):
        from_tfrecords(str(tmp_path / "one"))
    ds = from_tfrecords(str(tmp_path / "one"), strategy=tf.distribute.get_strategy())  # a one-worker strategy: fine
    assert ds.options().experimental_distribute.auto_shard_policy == tf.data.experimental.AutoShardPolicy.FILE


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _train(shards, out, *args, env=None):
    return subprocess.Popen(
        [sys.executable, "-m", "tests.data.tfrecord_train_script", shards, str(out), *args], cwd=REPO,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True,
    )


def _finish(process, timeout=600):
    output, _ = process.communicate(timeout=timeout)
    assert process.returncode == 0, output[-3000:]


def test_two_workers_read_only_their_shards_and_match_one_process(tmp_path):
    rows = [r for r in csv.DictReader(open(sample_manifest_path(), newline="")) if r["split"] == "train"][:48]
    with open(tmp_path / "m.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["image", "text", "audio", "label"])
        writer.writerows([os.path.join(SAMPLE_DIR, r["image"]), r["text"], os.path.join(SAMPLE_DIR, r["audio"]), r["label"]]
                         for r in rows)
    shards = str(tmp_path / "shards")
    write_tfrecords(str(tmp_path / "m.csv"), shards, num_shards=4, sample_rate=16000)
    labels = [int(r["label"]) for r in rows]

    workers = [f"127.0.0.1:{_free_port()}", f"127.0.0.1:{_free_port()}"]
    processes = [_train(shards, tmp_path / "single.npy")]
    for index in range(2):
        tf_config = json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}})
        processes.append(_train(shards, tmp_path / f"w{index}.npy", "--strategy", "multi_worker", env={"TF_CONFIG": tf_config}))
    for process in processes:
        _finish(process)
    # the same through keras_mm.train: it must keep the file sharding (each worker its own shards)
    workers = [f"127.0.0.1:{_free_port()}", f"127.0.0.1:{_free_port()}"]
    processes = []
    for index in range(2):
        tf_config = json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}})
        processes.append(_train(shards, tmp_path / f"t{index}.npy", "--strategy", "multi_worker", "--via-train",
                                env={"TF_CONFIG": tf_config}))
    for process in processes:
        _finish(process)

    single = json.loads((tmp_path / "single.npy.json").read_text())
    assert single["labels"] == [labels[i:i + 8] for i in range(0, 48, 8)]
    shard_bytes = sum(os.path.getsize(os.path.join(shards, f)) for f in os.listdir(shards) if f.endswith(".tfrecord"))
    assert single["bytes_read"] >= shard_bytes
    for index in range(2):
        seen = json.loads((tmp_path / f"w{index}.npy.json").read_text())
        assert seen["replicas"] == 2
        # worker w reads shards w and w + 2 only, i.e. rows w, w + 2, w + 4, ...: half of every global batch
        mine = labels[index::2]
        assert seen["labels"] == [mine[i:i + 4] for i in range(0, 24, 4)], seen["labels"]
        assert seen["bytes_read"] < 0.75 * shard_bytes, (seen["bytes_read"], shard_bytes)  # not every shard
    w0, w1, one = (np.load(tmp_path / name) for name in ("w0.npy", "w1.npy", "single.npy"))
    np.testing.assert_array_equal(w0, w1)
    assert np.abs(w0 - one).max() <= 1e-5, np.abs(w0 - one).max()
    assert np.abs(one - np.load(tmp_path / "single.npy.initial.npy")).max() > 1e-3  # training moved the weights
    t0, t1 = np.load(tmp_path / "t0.npy"), np.load(tmp_path / "t1.npy")
    np.testing.assert_array_equal(t0, t1)
    assert np.abs(t0 - one).max() <= 1e-5, np.abs(t0 - one).max()



def test_a_head_of_another_class_count_is_refused(tmp_path):
    (tmp_path / "m.csv").write_text("text,label\na cat,cat\na dog,dog\na cow,cow\n")
    write_tfrecords(str(tmp_path / "m.csv"), str(tmp_path / "s"), num_shards=1)
    model = keras_mm.build_model(encoders={"text": {"name": "lstm", "vocabulary": ["a"], "sequence_length": 2}},
                                 num_classes=2)
    with pytest.raises(ValueError, match=r"The TFRecords' labels have 3 classes \['cat', 'cow', 'dog'\] but the model's "
                                         r"head has num_classes=2"):
        from_tfrecords(str(tmp_path / "s"), model=model)
    named = keras_mm.build_model(encoders={"text": {"name": "lstm", "vocabulary": ["a"], "sequence_length": 2}},
                                 num_classes=3)
    from_tfrecords(str(tmp_path / "s"), model=named)
    assert named.class_names == ["cat", "cow", "dog"]  # as from_manifest names a model without names
