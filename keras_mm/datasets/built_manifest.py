"""What every built benchmark dataset (a manifest CSV with train/val/test splits) offers: its splits as datasets and rows."""

import csv

from keras_mm.data import from_manifest

SPLITS = ("train", "val", "test")


class ManifestSplits:
    """Mixin for a built dataset with a ``manifest`` CSV (a ``split`` column) and default ``features``.

    Subclasses set ``dataset_name`` (for errors) and ``default_features`` (``{feature: column}``).

    Example:
        >>> from keras_mm.datasets.built_manifest import ManifestSplits
        >>> class Sample(ManifestSplits):
        ...     dataset_name, default_features = "sample", {"image": "image", "text": "text", "audio": "audio"}
        ...     manifest = keras_mm.datasets.sample_manifest_path()
        >>> len(Sample().rows("val"))
        50
        >>> Sample().dataset("valid")
        Traceback (most recent call last):
        ValueError: split='valid' is not a split of sample. Allowed: train, val, test
    """

    dataset_name = "dataset"
    default_features = {}

    def dataset(self, split, model=None, **kwargs):
        """``keras_mm.data.from_manifest`` on one split (``"train"``, ``"val"`` or ``"test"``).

        Without ``features``: the dataset's default columns, or with ``model``
        the model's features (a unimodal model reads only its own column).
        """
        if split not in SPLITS:
            raise ValueError(f"split={split!r} is not a split of {self.dataset_name}. Allowed: {', '.join(SPLITS)}")
        features = kwargs.pop("features", None)
        if not features:
            names = model.features if model is not None else self.default_features
            features = {f: self.default_features.get(f, f) for f in names}
        return from_manifest(self.manifest, model=model, split=split, features=features, **kwargs)

    def rows(self, split=None):
        """The manifest's rows (dicts of strings), all or one split's."""
        with open(self.manifest, newline="", encoding="utf-8") as f:
            return [r for r in csv.DictReader(f) if split is None or r["split"] == split]
