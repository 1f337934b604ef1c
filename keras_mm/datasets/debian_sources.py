"""Real benchmark data that installs offline from Debian packages: WordNet topics and Fashion-MNIST.

Each loader looks in ``$KERAS_MM_DEBIAN_ROOT``, the checkout's ``.data/root``
(``make data`` unpacks the packages there with ``dpkg -x``) and ``/``, and
raises an error naming the package to install when the files are missing.
"""

import gzip
import os
import re

import numpy as np

#: WordNet's 26 noun lexicographer files (lex_filenum 3..28): the topic labels.
WORDNET_TOPICS = [
    "Tops", "act", "animal", "artifact", "attribute", "body", "cognition", "communication", "event", "feeling",
    "food", "group", "location", "motive", "object", "person", "phenomenon", "plant", "possession", "process",
    "quantity", "relation", "shape", "state", "substance", "time",
]
FASHION_CLASSES = ["t-shirt/top", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle boot"]


def _roots():
    roots = [os.environ["KERAS_MM_DEBIAN_ROOT"]] if os.environ.get("KERAS_MM_DEBIAN_ROOT") else []
    return roots + [os.path.normpath(os.path.join(os.path.dirname(__file__), "..", "..", ".data", "root")), "/"]


def find_debian_file(relative, package):
    """The first existing ``<root>/<relative>``, or FileNotFoundError naming ``package``.

    Example:
        >>> from keras_mm.datasets.debian_sources import find_debian_file
        >>> find_debian_file("usr/share/wordnet/data.noun", "wordnet-base")  # after `make data`
        '.../usr/share/wordnet/data.noun'
        >>> find_debian_file("usr/share/doc/no-such-file", "no-such-package")
        Traceback (most recent call last):
        ...
        FileNotFoundError: usr/share/doc/no-such-file not found (searched ...). It comes from the Debian package
        no-such-package: `sudo apt-get install no-such-package` (or `make data` in the keras_mm checkout), ...
    """
    return _find(relative, package, os.path.isfile)


def find_debian_dir(relative, package):
    """The first existing directory ``<root>/<relative>``, or FileNotFoundError naming ``package``.

    Example:
        >>> from keras_mm.datasets.debian_sources import find_debian_dir
        >>> find_debian_dir("usr/share/openclipart/png", "openclipart-png")  # after `make data`
        '.../usr/share/openclipart/png'
    """
    return _find(relative, package, os.path.isdir)


def _find(relative, package, exists):
    for root in _roots():
        path = os.path.join(root, relative)
        if exists(path):
            return path
    raise FileNotFoundError(
        f"{relative} not found (searched {', '.join(_roots())}). It comes from the Debian package "
        f"{package}: `sudo apt-get install {package}` (or `make data` in the keras_mm checkout), or set "
        "KERAS_MM_DEBIAN_ROOT to a folder where it was unpacked with dpkg -x."
    )


def wordnet_topics(per_topic=None, seed=0, split_fractions=(0.7, 0.15, 0.15), min_words=3):
    """WordNet noun definitions labelled with their topic (26 classes): a real text-classification set.

    Each noun synset's gloss (the definition, without the quoted usage
    examples) is a text; its lexicographer file (``noun.animal``,
    ``noun.food``, ...) is the label. Source: Debian ``wordnet-base``
    (``/usr/share/wordnet/data.noun``, 82k synsets). Topics are imbalanced;
    ``per_topic`` caps each topic (sampled with ``seed``).

    Returns:
        ``{"train"|"val"|"test": {"text": [...], "label": np.int64 array}, "class_names": [...]}``,
        split per topic (stratified) and deterministic from ``seed``.

    Example:
        >>> data = keras_mm.datasets.wordnet_topics(per_topic=200)
        >>> data["train"]["text"][0], data["class_names"][data["train"]["label"][0]]
        ('a hotel plan that includes three meals daily', 'possession')
        >>> len(data["class_names"]), len(data["train"]["text"]) > len(data["test"]["text"])
        (26, True)
    """
    path = find_debian_file("usr/share/wordnet/data.noun", "wordnet-base")
    texts, labels = [], []
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            if line.startswith("  ") or "|" not in line:
                continue  # licence header
            fields, gloss = line.split("|", 1)
            topic = int(fields.split()[1]) - 3
            definition = re.sub(r'"[^"]*"', "", gloss).split(";")[0].strip(" ;\n")
            if 0 <= topic < len(WORDNET_TOPICS) and len(definition.split()) >= min_words:
                texts.append(definition)
                labels.append(topic)
    texts, labels = np.array(texts, dtype=object), np.array(labels, dtype="int64")
    rng = np.random.default_rng(seed)
    parts = {"train": [], "val": [], "test": []}
    for topic in range(len(WORDNET_TOPICS)):
        idx = rng.permutation(np.flatnonzero(labels == topic))
        if per_topic:
            idx = idx[:per_topic]
        n_train, n_val = int(round(split_fractions[0] * len(idx))), int(round(split_fractions[1] * len(idx)))
        parts["train"] += list(idx[:n_train])
        parts["val"] += list(idx[n_train:n_train + n_val])
        parts["test"] += list(idx[n_train + n_val:])
    out = {"class_names": list(WORDNET_TOPICS)}
    for split, idx in parts.items():
        idx = rng.permutation(np.array(idx, dtype="int64"))
        out[split] = {"text": [str(t) for t in texts[idx]], "label": labels[idx]}
    return out


def _read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def fashion_mnist(split="train"):
    """Fashion-MNIST (Zalando; 60k train / 10k test 28x28 grey images, 10 classes) from Debian ``dataset-fashion-mnist``.

    Returns:
        ``(images uint8 [N, 28, 28], labels int64 [N])``; class names in ``FASHION_CLASSES``.

    Example:
        >>> images, labels = keras_mm.datasets.fashion_mnist("test")
        >>> images.shape, images.dtype, keras_mm.datasets.debian_sources.FASHION_CLASSES[labels[0]]
        ((10000, 28, 28), dtype('uint8'), 'ankle boot')
    """
    prefix = {"train": "train", "test": "t10k"}.get(split)
    if prefix is None:
        raise ValueError(f"split={split!r} is not a Fashion-MNIST split. Allowed: train, test")
    base = "usr/share/datasets/fashion-mnist"
    images = _read_idx(find_debian_file(f"{base}/{prefix}-images-idx3-ubyte.gz", "dataset-fashion-mnist"))
    labels = _read_idx(find_debian_file(f"{base}/{prefix}-labels-idx1-ubyte.gz", "dataset-fashion-mnist"))
    return images, labels.astype("int64")
