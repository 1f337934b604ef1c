import filecmp
import importlib
import os
import re

import numpy as np
import pytest
from PIL import Image

import keras_mm

oc = importlib.import_module("keras_mm.datasets.openclipart")  # the module (the package exports the function)
SMALL = {"max_per_class": 6, "image_size": 32, "verbose": False}


def _packages_or_skip():
    try:
        oc.find_openclipart()
    except FileNotFoundError as error:
        pytest.skip(f"openclipart-png/openclipart-svg not unpacked (make data unpacks them): {error}")


@pytest.fixture(scope="module")
def small_build(tmp_path_factory):
    _packages_or_skip()
    return keras_mm.datasets.openclipart(str(tmp_path_factory.mktemp("cache")), **SMALL)


def test_every_class_in_every_split_and_the_caps_hold(small_build):
    names = small_build.class_names
    assert 8 <= len(names) <= 15 and not set(names) & set(oc.NOT_TOPICS)
    rows = small_build.rows()
    per_class = {(int(r["label"]), r["split"]) for r in rows}
    assert per_class == {(c, s) for c in range(len(names)) for s in oc.SPLITS}
    totals = np.bincount([int(r["label"]) for r in rows], minlength=len(names))
    assert totals.max() <= 6 and totals.min() >= 3
    assert small_build.counts == {s: len(small_build.rows(s)) for s in oc.SPLITS}
    for name, per_split in small_build.stats["per_class"].items():  # stratified 0.6 / 0.2 / 0.2
        assert per_split["train"] >= max(per_split["val"], per_split["test"]), (name, per_split)
    assert small_build.stats["per_class"][names[0]]["test"] == sum(
        1 for r in rows if r["split"] == "test" and r["label"] == "0")


def test_no_file_title_or_source_is_shared_between_splits(small_build):
    rows = small_build.rows()
    for column in ("group", "image", "source"):
        by_split = {s: {r[column] for r in rows if r["split"] == s} for s in oc.SPLITS}
        assert not by_split["train"] & by_split["test"] and not by_split["train"] & by_split["val"]
        assert not by_split["val"] & by_split["test"]
    assert len({r["image"] for r in rows}) == len(rows)  # each distinct PNG file at most once
    for r in rows:  # the group is the row's own normalised title (the text starts with the title)
        assert oc.group_key(r["text"]).startswith(r["group"])


def test_images_are_rgb_squares_and_keywords_do_not_name_a_class(small_build):
    forms = set().union(*(oc._class_forms(c) for c in small_build.class_names))
    for r in small_build.rows():
        with Image.open(os.path.join(small_build.root, r["image"])) as im:
            assert im.mode == "RGB" and im.size == (32, 32)
        keywords = re.search(r"keywords: (.*)$", r["text"])
        if keywords:
            assert not set(keywords.group(1).split(", ")) & forms, r["text"]
    names = [oc._names_class(r["text"], small_build.class_names[int(r["label"])]) for r in small_build.rows()]
    assert small_build.stats["text_names_its_class"] == round(float(np.mean(names)), 3) < 0.5


def test_transparency_is_composited_onto_white_and_the_drawing_is_centred(tmp_path):
    rgba = np.zeros((20, 40, 4), "uint8")
    rgba[:, 10:30] = (200, 0, 0, 255)  # opaque red band in the middle, transparent black elsewhere
    path = str(tmp_path / "a.png")
    Image.fromarray(rgba, "RGBA").save(path)
    out = np.asarray(oc._render(path, 40))
    assert out.shape == (40, 40, 3)
    assert (out[0, 0] == 255).all() and (out[20, 2] == 255).all()  # padding and transparent pixels: white
    assert tuple(out[20, 20]) == (200, 0, 0)
    palette = Image.new("P", (4, 4), 0)
    palette.putpalette([0, 0, 0, 0, 0, 255] + [0] * 762)
    palette.putpixel((3, 3), 1)
    palette.save(str(tmp_path / "p.png"), transparency=0)  # palette entry 0 (black) is transparent
    out = np.asarray(oc._render(str(tmp_path / "p.png"), 4))
    assert (out[0, 0] == 255).all() and tuple(out[3, 3]) == (0, 0, 255)


def _item(source, category, title, sha1):
    return {"source": source, "category": category, "title": title, "description": "", "keywords": [],
            "sha1": sha1, "pixels": 100}


def test_groups_drop_copies_and_files_filed_under_two_categories():
    items = [_item("food/a", "food", "Apple 1", "h1"), _item("food/b", "food", "apple-2", "h2"),
             _item("food/c", "food", "Apple", "h1"),  # the same file again
             _item("food/d", "food", "Pear", "h3"), _item("plants/d", "plants", "Pear tree", "h3"),  # two categories
             _item("food/e", "food", "Apple 3", "h4"), _item("plants/f", "plants", "apple", "h5"),
             _item("special/g", "special", "Gradient", "h6")]
    groups = oc._groups(items, max_per_group=2, rng=np.random.default_rng(0))
    assert sorted(groups) == ["apple"]
    category, members = groups["apple"]
    assert category == "food" and len(members) == 2  # majority category, capped, the plants row dropped
    assert {m["sha1"] for m in members} <= {"h1", "h2", "h4"}


def test_split_groups_gives_every_split_a_group_and_follows_the_fractions():
    sizes = [3, 1, 2, 1, 1, 3, 2, 1, 1, 1, 2, 2]
    assignment = oc._split_groups(sizes, (0.6, 0.2, 0.2), np.random.default_rng(1))
    filled = {s: sum(sizes[g] for g, split in assignment.items() if split == s) for s in oc.SPLITS}
    assert sorted(assignment) == list(range(len(sizes))) and min(filled.values()) >= 1
    assert abs(filled["train"] - 0.6 * sum(sizes)) <= 3
    assert sorted(oc._split_groups([1, 1, 1], (0.6, 0.2, 0.2), np.random.default_rng(0)).values()) == sorted(oc.SPLITS)


def test_same_seed_same_bytes_other_seed_differs_and_the_cache_is_reused(small_build, monkeypatch):
    cache = os.path.dirname(small_build.root)
    before = open(small_build.manifest, "rb").read()
    images = {r["image"]: open(os.path.join(small_build.root, r["image"]), "rb").read() for r in small_build.rows()[:8]}
    again = keras_mm.datasets.openclipart(cache, rebuild=True, **SMALL)
    assert again.root == small_build.root and open(again.manifest, "rb").read() == before
    for name, data in images.items():
        assert open(os.path.join(again.root, name), "rb").read() == data
    other = keras_mm.datasets.openclipart(cache, seed=1, **SMALL)
    assert other.root != again.root and not filecmp.cmp(other.manifest, again.manifest, shallow=False)

    def no_rebuild(*args, **kwargs):
        raise AssertionError("a cached build must not be rebuilt")

    monkeypatch.setattr(oc, "_build", no_rebuild)
    assert keras_mm.datasets.openclipart(cache, **SMALL).rows() == again.rows()


def test_a_missing_package_is_named_with_make_data(tmp_path, monkeypatch):
    debian = importlib.import_module("keras_mm.datasets.debian_sources")
    monkeypatch.setattr(debian, "_roots", lambda: [str(tmp_path)])
    with pytest.raises(FileNotFoundError, match=r"openclipart-png.*make data"):
        keras_mm.datasets.openclipart(str(tmp_path / "cache"), **SMALL)
    with pytest.raises(ValueError, match="max_per_class=2 must be an integer >= 3"):
        keras_mm.datasets.openclipart(str(tmp_path / "cache"), max_per_class=2, verbose=False)
