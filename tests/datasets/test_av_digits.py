import filecmp
import os
import shutil

import numpy as np
import pytest

import keras_mm
import importlib

av = importlib.import_module("keras_mm.datasets.av_digits")  # the module (the package exports the function)


def _sources_or_skip():
    try:
        av.find_recorded_voices()
    except FileNotFoundError as error:
        pytest.skip(f"recorded speech not installed (make data installs it): {error}")
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng not installed (make data installs it)")


SMALL = {"synthetic_voices": 4, "max_rows_per_split": 15, "verbose": False}


@pytest.fixture(scope="module")
def small_build(tmp_path_factory):
    _sources_or_skip()
    return keras_mm.datasets.av_digits(str(tmp_path_factory.mktemp("cache")), **SMALL)


def test_splits_are_voice_disjoint_and_labels_match_the_speech(small_build):
    rows = small_build.rows()
    assert small_build.counts == {"train": 15, "val": 15, "test": 15} and len(rows) == 45
    voices = {s: set(small_build.voices[s]) for s in ("train", "val", "test")}
    assert not voices["train"] & voices["val"] and not voices["train"] & voices["test"] and not voices["val"] & voices["test"]
    assert sum(len(v) for v in voices.values()) == 5 + 4  # recorded + synthetic
    for row in rows:
        assert row["voice"] in voices[row["split"]]
        assert os.path.isfile(os.path.join(small_build.root, row["image"]))
    scans = [int(r["scan"]) for r in rows]
    assert len(set(scans)) == len(scans)  # each handwritten scan used once


def test_same_seed_same_bytes_and_the_cache_is_reused(small_build, tmp_path, monkeypatch):
    again = keras_mm.datasets.av_digits(str(tmp_path), **SMALL)
    assert again.root != small_build.root
    assert filecmp.cmp(again.manifest, small_build.manifest, shallow=False)
    for row in again.rows()[:5]:
        for column in ("image", "audio"):
            assert filecmp.cmp(os.path.join(again.root, row[column]), os.path.join(small_build.root, row[column]), shallow=False)
    other_seed = keras_mm.datasets.av_digits(str(tmp_path), seed=1, **SMALL)
    assert other_seed.root != again.root and other_seed.rows() != again.rows()

    def no_rebuild(*args, **kwargs):
        raise AssertionError("a cached build must not be rebuilt")

    monkeypatch.setattr(av, "_build", no_rebuild)
    assert keras_mm.datasets.av_digits(str(tmp_path), **SMALL).manifest == again.manifest


def test_dataset_feeds_a_model(small_build):
    model = keras_mm.build_model(encoders={"image": {"name": "small_cnn", "image_size": 32, "filters": [4]},
                                           "audio": {"name": "mfcc_cnn", "filters": [4]}}, num_classes=10)
    x, y = next(iter(small_build.dataset("train", model=model, batch_size=15)))
    assert x["image"].shape == (15, 32, 32, 3) and x["audio"].shape == (15, 16000)
    assert np.asarray(x["audio_present"]).all() and np.asarray(x["image_present"]).all()
    assert sorted(set(np.asarray(y).tolist())) == sorted({int(r["label"]) for r in small_build.rows("train")})
    with pytest.raises(ValueError, match="Allowed: train, val, test"):
        small_build.dataset("validation", model=model)
    audio_only = keras_mm.build_model(encoders={"audio": {"name": "mfcc_cnn", "filters": [4]}}, num_classes=10)
    x, _ = next(iter(small_build.dataset("train", model=audio_only, batch_size=15)))  # reads only the model's column
    assert sorted(x) == ["audio", "audio_present"]


def test_missing_sources_name_the_debian_package(tmp_path, monkeypatch):
    monkeypatch.setattr(av, "_sound_roots", lambda sounds_dir: [str(tmp_path)])
    with pytest.raises(FileNotFoundError, match="apt-get install asterisk-core-sounds-en-wav"):
        keras_mm.datasets.av_digits(str(tmp_path), **SMALL)
    monkeypatch.undo()
    _sources_or_skip()
    monkeypatch.setattr(av.shutil, "which", lambda name: None)
    with pytest.raises(FileNotFoundError, match="apt-get install espeak-ng.*synthetic_voices=0"):
        keras_mm.datasets.av_digits(str(tmp_path), **SMALL)


def test_bad_split_fractions():
    with pytest.raises(ValueError, match="split_fractions"):
        keras_mm.datasets.av_digits(split_fractions=(0.5, 0.5))
