"""Datasets that ship with keras_mm or install offline."""

import os

from keras_mm.datasets.av_digits import AVDigits, av_digits
from keras_mm.datasets.debian_sources import fashion_mnist, wordnet_topics
from keras_mm.datasets.openclipart import OpenClipart, openclipart

SAMPLE_DIR = os.path.join(os.path.dirname(__file__), "sample")


def sample_manifest_path():
    """Path of the bundled sample manifest, ``keras_mm/datasets/sample/manifest.csv`` (digits: scan + caption + spoken digit).

    Splits ``train`` / ``val`` / ``test`` share no file and no voice; see ``sample/README.md`` next to it.

    Example:
        >>> ds = keras_mm.data.from_manifest(keras_mm.datasets.sample_manifest_path())  # raw examples
        >>> x, label = next(iter(ds))
        >>> sorted(x), x["text"].numpy(), int(label)
        (['audio', 'image', 'text'], b'a handwritten digit', 0)
    """
    return os.path.join(SAMPLE_DIR, "manifest.csv")


__all__ = ["AVDigits", "OpenClipart", "SAMPLE_DIR", "av_digits", "fashion_mnist", "openclipart", "sample_manifest_path",
           "wordnet_topics"]
