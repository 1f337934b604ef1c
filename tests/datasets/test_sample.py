"""The bundled sample is honest: no file and no voice in two splits, and no modality gives the label away."""

import collections
import csv
import os
import re

import pytest

from keras_mm.datasets import SAMPLE_DIR, sample_manifest_path
from keras_mm.datasets.build_sample import CLASS_NAMES, SPLITS, VOICES


def _read(name):
    with open(os.path.join(SAMPLE_DIR, name), newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def rows():
    return _read(os.path.basename(sample_manifest_path()))


@pytest.fixture(scope="module")
def sources():
    return {r["file"]: r for r in _read("sources.csv")}


def test_every_file_belongs_to_one_split(rows, sources):
    splits_of = collections.defaultdict(set)
    for row in rows:
        for column in ("image", "audio"):
            splits_of[row[column]].add(row["split"])
            assert os.path.isfile(os.path.join(SAMPLE_DIR, row[column])), row[column]
            assert sources[row[column]]["split"] == row["split"], (row[column], sources[row[column]])
    shared = {f: s for f, s in splits_of.items() if len(s) > 1}
    assert not shared, f"files in more than one split: {shared}"
    images = [r["image"] for r in rows]
    assert len(set(images)) == len(images), "an image scan is used twice"
    scans = [sources[f]["source"] for f in images]
    assert len(set(scans)) == len(scans) and all(re.fullmatch(r"load_digits\[\d+\]", s) for s in scans)


def test_voices_are_disjoint_between_splits(rows, sources):
    voices = collections.defaultdict(set)
    for row in rows:
        voices[row["split"]].add(sources[row["audio"]]["source"])
    assert sorted(voices) == sorted(SPLITS)
    for a in SPLITS:
        assert voices[a] == set(VOICES[a])  # every voice of the split is used
        for b in SPLITS:
            if a < b:
                assert not voices[a] & voices[b], (a, b, voices[a] & voices[b])
    # the recorded speaker files its en_US and es_MX digits under one name: a speaker is one voice
    assert any(v.startswith("rec:") for v in voices["test"])


def test_every_split_has_every_class_and_captions_are_only_partly_informative(rows):
    for split in SPLITS:
        in_split = [r for r in rows if r["split"] == split]
        assert collections.Counter(int(r["label"]) for r in in_split).keys() == set(range(10)), split
        named = collections.Counter()
        for row in in_split:
            words = set(re.findall(r"\w+", row["text"].lower()))
            digits = {d for d, w in enumerate(CLASS_NAMES) if w in words or str(d) in words}
            named["true" if digits == {int(row["label"])} else "wrong" if digits else "none"] += 1
        share = {k: v / len(in_split) for k, v in named.items()}
        # text alone cannot reach even 70 %: most captions say nothing or name a look-alike digit
        assert 0.2 < share["true"] < 0.6 and share["none"] > 0.3, (split, share)
        if split != "val":  # 50 rows: a few wrong captions, possibly none
            assert share.get("wrong", 0) > 0.05, (split, share)
