"""Datasets from CSV / JSONL manifests of files and text."""

import csv
import json
import logging
import os

import numpy as np
import tensorflow as tf

from keras_mm.modalities import get_modality, load_audio_file
from keras_mm.registry import MODALITIES

logger = logging.getLogger("keras_mm")

_ON_ERROR = ("raise", "skip")
SPLIT_COLUMN = "split"

__all__ = ["Manifest", "from_manifest", "guess_modality", "load_audio_file"]


def _read_rows(path):
    if not os.path.isfile(path):
        raise ValueError(f"Manifest not found: {path}")
    if path.endswith((".jsonl", ".json")):
        with open(path, encoding="utf-8") as f:
            return [json.loads(line) for line in f if line.strip()]
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def guess_modality(values):
    """The registered modality whose file extensions every non-empty value ends with; else ``"text"``.

    Example:
        >>> guess_modality(["a.png", "b.JPG"]), guess_modality(["x.wav"]), guess_modality(["a dog"])
        ('image', 'audio', 'text')
    """
    values = [str(v).lower() for v in values if v not in (None, "")]
    for name, cls in MODALITIES.items():
        extensions = tuple(cls.file_extensions)
        if values and extensions and all(v.endswith(extensions) for v in values):
            return name
    return "text"


class Manifest:
    """A parsed manifest: rows, feature columns, their modalities and label ids.

    Label ids come from ONE vocabulary for the whole manifest (every split), so
    ``train`` and ``val`` datasets built from it agree on what id 3 means.

    Args:
        path: CSV (header row) or JSONL file; file paths in it are relative to it.
        features: ``{feature_name: column}``, a list of column names, or ``None``
            for every column except the label and ``split``.
        label: label column (``None`` for unlabeled data). String labels map to
            ids through ``class_names``; integer labels are used as ids; with
            ``multilabel=True`` a cell holds labels separated by ``|`` and
            becomes a multi-hot vector.
        modalities: ``{feature: modality name}``; guessed from file extensions when omitted.
        split: keep only rows whose ``split`` column equals this value; an
            unknown or empty split raises, listing the splits that exist.
        multilabel: see ``label``.
        on_error: ``"raise"`` (default): a missing or unreadable file raises
            ``ValueError`` naming the row and the path; ``"skip"``: such rows are
            dropped and counted in ``skipped`` (and logged), never silently.
        class_names: the label vocabulary in id order. Default: the sorted
            distinct labels of ALL rows (before split filtering). A label
            outside it raises ``ValueError`` naming the row.

    Example:
        >>> path = keras_mm.datasets.sample_manifest_path()
        >>> m = keras_mm.data.Manifest(path, split="test")
        >>> len(m), m.modalities, m.labels[:3]
        (60, {'image': 'image', 'text': 'text', 'audio': 'audio'}, array([4, 9, 0]))
        >>> keras_mm.data.Manifest(path, split="val")
        Traceback (most recent call last):
        ValueError: split='val' is not in .../manifest.csv. Splits: test (60 rows), train (180 rows)
    """

    def __init__(self, path, features=None, label="label", modalities=None, split=None, multilabel=False,
                 on_error="raise", class_names=None):
        if on_error not in _ON_ERROR:
            raise ValueError(f"on_error={on_error!r} is not supported. Allowed: {', '.join(_ON_ERROR)}")
        self.path = os.fspath(path)
        self.root = os.path.dirname(os.path.abspath(self.path))
        self.label, self.multilabel, self.on_error, self.split = label, multilabel, on_error, split
        rows = _read_rows(self.path)
        if not rows:
            raise ValueError(f"Manifest {self.path} has no rows.")
        numbered = list(enumerate(rows, start=2 if not self.path.endswith((".jsonl", ".json")) else 1))
        columns = list(rows[0])
        self.features = self._feature_columns(features, columns)
        if label is not None and label not in columns:
            raise ValueError(f"label={label!r} is not a column of {self.path}. Columns: {', '.join(columns)}")
        self.class_names = self._vocabulary(numbered, class_names)
        numbered = self._select_split(numbered, columns)
        self.modalities = {}
        for feature, column in self.features.items():
            name = (modalities or {}).get(feature) or guess_modality(r.get(column) for _, r in numbered[:50])
            get_modality(name)  # unknown names fail here, listing the registered ones
            self.modalities[feature] = name
        kept = self._validate(numbered)
        if not kept:
            raise ValueError(f"{self.path}: no usable rows" + (f" in split {self.split!r}" if self.split else "")
                             + f" ({len(self.skipped)} skipped; first: line {self.skipped[0][0]}: {self.skipped[0][1]}).")
        self.line_numbers = [number for number, _ in kept]
        self.rows = [row for _, row in kept]
        self.labels = self._encode_labels(kept)

    def _feature_columns(self, features, columns):
        if features is None:
            features = [c for c in columns if c not in (self.label, SPLIT_COLUMN)]
        if isinstance(features, (list, tuple)):
            features = {f: f for f in features}
        for feature, column in dict(features).items():
            if column not in columns:
                raise ValueError(f"features[{feature!r}]: column {column!r} is not in {self.path}. Columns: {', '.join(columns)}")
        return dict(features)

    def _select_split(self, numbered, columns):
        if self.split is None:
            return numbered
        if SPLIT_COLUMN not in columns:
            raise ValueError(f"split={self.split!r} was asked for but {self.path} has no {SPLIT_COLUMN!r} column.")
        counts = {}
        for _, row in numbered:
            counts[row.get(SPLIT_COLUMN)] = counts.get(row.get(SPLIT_COLUMN), 0) + 1
        if self.split not in counts:
            available = ", ".join(f"{name} ({n} rows)" for name, n in sorted(counts.items(), key=lambda kv: str(kv[0])))
            raise ValueError(f"split={self.split!r} is not in {self.path}. Splits: {available}")
        return [(number, row) for number, row in numbered if row.get(SPLIT_COLUMN) == self.split]

    def _cells(self, row):
        cell = str(row.get(self.label, "") if row.get(self.label) is not None else "").strip()
        if self.multilabel:
            return [part.strip() for part in cell.split("|") if part.strip()]
        return [cell]

    def _vocabulary(self, numbered, class_names):
        """Class names of every row (all splits), or the caller's ``class_names``."""
        if self.label is None:
            return None
        if class_names is not None:
            class_names = [str(c) for c in class_names]
            if len(set(class_names)) != len(class_names):
                raise ValueError(f"class_names has duplicates: {class_names}")
            return class_names
        cells = {c for _, row in numbered for c in self._cells(row)}
        if not self.multilabel and cells and all(_is_int(c) for c in cells):
            return None  # integer ids are used as they are
        return sorted(cells)

    def _validate(self, numbered):
        kept, skipped = [], []
        for number, row in numbered:
            problem = self._row_problem(row)
            if problem is None:
                kept.append((number, row))
            elif self.on_error == "raise":
                raise ValueError(f"{self.path}, line {number}: {problem}. Fix the row or pass on_error='skip'.")
            else:
                skipped.append((number, problem))
        if skipped:
            logger.warning("%s: skipped %d of %d rows; first: line %d: %s", self.path, len(skipped), len(numbered), *skipped[0])
        self.skipped = skipped
        return kept

    def _row_problem(self, row):
        for feature, column in self.features.items():
            modality = get_modality(self.modalities[feature])
            value = row.get(column)
            if modality.reads_files and not modality.is_empty_cell(value):
                file_path = self.resolve(str(value))
                if not os.path.isfile(file_path) or not os.access(file_path, os.R_OK):
                    return f"{column}={value!r} ({file_path}) is missing or unreadable"
        if self.label is not None:
            cells = self._cells(row)
            if not self.multilabel and cells == [""]:
                return f"{self.label} is empty"
            if self.class_names is not None:
                unknown = [c for c in cells if c not in self.class_names]
                if unknown:
                    return f"{self.label}={unknown[0]!r} is not one of the class names {self.class_names}"
            elif not self.multilabel and not _is_int(cells[0]):
                return f"{self.label}={cells[0]!r} is not an integer class id"
        return None

    def _encode_labels(self, kept):
        if self.label is None:
            return None
        if self.multilabel:
            index = {n: i for i, n in enumerate(self.class_names)}
            labels = np.zeros((len(kept), len(self.class_names)), np.float32)
            for i, (_, row) in enumerate(kept):
                for part in self._cells(row):
                    labels[i, index[part]] = 1.0
            return labels
        if self.class_names is None:
            return np.array([int(self._cells(row)[0]) for _, row in kept], np.int64)
        index = {n: i for i, n in enumerate(self.class_names)}
        return np.array([index[self._cells(row)[0]] for _, row in kept], np.int64)

    def resolve(self, value):
        """A path from the manifest, relative to the manifest's directory."""
        return value if os.path.isabs(value) else os.path.join(self.root, value)

    def __len__(self):
        return len(self.rows)

    def load_options(self, model=None, sample_rate=None):
        """``{feature: load_file kwargs}`` (e.g. the audio sample rate from the model's encoder)."""
        encoders = getattr(model, "feature_encoders", {}) or {}
        return {
            feature: get_modality(m).load_options(encoders.get(feature), sample_rate=sample_rate)
            for feature, m in self.modalities.items()
        }

    def load_row(self, index, options=None):
        """Raw example ``index``: each feature loaded by its modality; errors name the manifest line and file."""
        row, options = self.rows[index], options or self.load_options()
        example = {}
        for feature, column in self.features.items():
            try:
                example[feature] = get_modality(self.modalities[feature]).load_cell(
                    row.get(column), self.resolve, **options.get(feature, {})
                )
            except Exception as error:  # noqa: BLE001  -- re-raised with the row named
                raise ValueError(
                    f"{self.path}, line {self.line_numbers[index]}: cannot load {column}={row.get(column)!r}: {error}"
                ) from error
        return example

    def raw_signature(self):
        """``{feature: tf.TensorSpec}`` of one raw example."""
        return {f: get_modality(m).raw_spec() for f, m in self.modalities.items()}


def _is_int(text):
    try:
        int(text)
    except (TypeError, ValueError):
        return False
    return True


def from_manifest(
    path,
    features=None,
    label="label",
    *,
    model=None,
    preprocessor=None,
    batch_size=None,
    shuffle=False,
    seed=0,
    cache=False,
    split=None,
    multilabel=False,
    modalities=None,
    sample_rate=None,
    on_error="raise",
    strategy=None,
    augment=None,
    class_names=None,
):
    """A ``tf.data.Dataset`` from a CSV/JSONL manifest of image paths, texts and audio paths.

    Without ``model``/``preprocessor`` it yields raw dicts (image bytes, UTF-8
    text, float waveform) and labels; with them, the model's numeric inputs.
    Audio is read and resampled to the model's sample rate.

    Args:
        path, features, label, split, multilabel, modalities, on_error, class_names: see :class:`Manifest`.
            With ``model``, ``features`` defaults to the model's feature names
            and ``class_names`` to the model's (``model.class_names``).
        model: a :class:`MultimodalModel`; supplies modalities, sample rates and the preprocessor.
        preprocessor: a :class:`MultimodalPreprocessor` (default ``model.preprocessor``).
        batch_size: the **global** batch size (split across replicas under a
            ``tf.distribute`` strategy); ``None`` leaves the dataset unbatched.
        shuffle: shuffle rows every epoch (seeded).
        cache: cache decoded examples in memory after the first epoch.
        sample_rate: audio rate when no model gives it (default 16000).
        strategy: only used to check ``batch_size`` divides across replicas.
        augment: ``True`` for the default :class:`Augmentation` of the model's
            modalities, or an ``Augmentation``; applied after preprocessing,
            per example. Use it for training pipelines only.

    Returns:
        the dataset, with the parsed :class:`Manifest` as ``ds.manifest``.

    Example:
        >>> model = keras_mm.build_model(preset="tiny_attention", num_classes=10)
        >>> train = keras_mm.data.from_manifest(keras_mm.datasets.sample_manifest_path(), model=model,
        ...                                     split="train", batch_size=32, shuffle=True)
        >>> x, y = next(iter(train))
        >>> x["image"].shape, y.shape
        (TensorShape([32, 16, 16, 3]), TensorShape([32]))
    """
    if model is not None:
        features = features or {f: f for f in model.features}
        modalities = {**model.modalities, **(modalities or {})}
        preprocessor = preprocessor or model.preprocessor
        if class_names is None and getattr(model, "class_names", None):
            class_names = model.class_names
    manifest = Manifest(path, features, label, modalities, split, multilabel, on_error, class_names)
    if strategy is not None and batch_size and batch_size % strategy.num_replicas_in_sync:
        raise ValueError(
            f"batch_size={batch_size} (global) does not split evenly across {strategy.num_replicas_in_sync} replicas."
        )
    ds = _raw_dataset(manifest, manifest.load_options(model, sample_rate))
    if preprocessor is not None:
        ds = ds.map(preprocessor, num_parallel_calls=tf.data.AUTOTUNE)
    if cache:
        ds = ds.cache()
    if augment:
        if preprocessor is None:
            raise ValueError("augment= works on numeric examples: pass model= or preprocessor= too.")
        if augment is True:
            from keras_mm.data.augmentation import Augmentation

            augment = Augmentation(manifest.modalities, seed=seed)
        ds = ds.map(augment, num_parallel_calls=tf.data.AUTOTUNE)
    if shuffle:
        ds = ds.shuffle(len(manifest), seed=seed, reshuffle_each_iteration=True)
    if batch_size:
        ds = ds.batch(batch_size)
    ds = ds.prefetch(tf.data.AUTOTUNE)
    ds.manifest = manifest
    return ds


def _raw_dataset(manifest, options):
    """Raw examples (and labels) of every manifest row, in manifest order."""

    def generate():
        for i in range(len(manifest)):
            example = manifest.load_row(i, options)
            yield example if manifest.labels is None else (example, manifest.labels[i])

    signature = manifest.raw_signature()
    if manifest.labels is not None:
        label_dtype = tf.float32 if manifest.multilabel else tf.int64
        signature = (signature, tf.TensorSpec(manifest.labels.shape[1:], label_dtype))
    ds = tf.data.Dataset.from_generator(generate, output_signature=signature)
    return ds.apply(tf.data.experimental.assert_cardinality(len(manifest)))
