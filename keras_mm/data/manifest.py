"""Datasets from CSV / JSONL manifests of files and text."""

import csv
import json
import logging
import os

import numpy as np
import tensorflow as tf

logger = logging.getLogger("keras_mm")

_IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".gif", ".bmp")
_AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3")
_ON_ERROR = ("raise", "skip")


def _read_rows(path):
    if not os.path.isfile(path):
        raise ValueError(f"Manifest not found: {path}")
    if path.endswith((".jsonl", ".json")):
        with open(path, encoding="utf-8") as f:
            return [json.loads(line) for line in f if line.strip()]
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _guess_modality(column, rows):
    values = [str(r.get(column, "")) for r in rows[:50] if r.get(column)]
    if values and all(v.lower().endswith(_IMAGE_EXTENSIONS) for v in values):
        return "image"
    if values and all(v.lower().endswith(_AUDIO_EXTENSIONS) for v in values):
        return "audio"
    return "text"


def load_audio_file(path, sample_rate):
    """Read WAV/FLAC/OGG (librosa/soundfile), mix to mono, resample to ``sample_rate``; float32 ``[n]``.

    Example:
        >>> load_audio_file("speech.wav", 16000).shape
        (16000,)
    """
    import librosa

    audio, _ = librosa.load(path, sr=sample_rate, mono=True)
    return audio.astype(np.float32)


class Manifest:
    """A parsed manifest: rows, feature columns, their modalities and label ids.

    Args:
        path: CSV (header row) or JSONL file; file paths in it are relative to it.
        features: ``{feature_name: column}``, a list of column names, or ``None``
            for every column except the label and ``split``.
        label: label column (``None`` for unlabeled data). Integer labels are
            used as is; string labels map to ids in sorted order
            (``class_names``); with ``multilabel=True`` a cell holds labels
            separated by ``|`` and becomes a multi-hot vector.
        modalities: ``{feature: "image" | "text" | "audio"}``; guessed from
            file extensions when omitted.
        split: keep only rows whose ``split`` column equals this value.
        on_error: ``"raise"`` (default): a missing or unreadable file raises
            ``ValueError`` naming the row and the path; ``"skip"``: such rows are
            dropped and counted in ``skipped`` (and logged), never silently.

    Example:
        >>> m = Manifest("data/manifest.csv", features=["image", "text", "audio"], label="label", split="train")
        >>> len(m), m.class_names[:3], m.skipped
    """

    def __init__(self, path, features=None, label="label", modalities=None, split=None, multilabel=False, on_error="raise"):
        if on_error not in _ON_ERROR:
            raise ValueError(f"on_error={on_error!r} is not supported. Allowed: {', '.join(_ON_ERROR)}")
        self.path = os.fspath(path)
        self.root = os.path.dirname(os.path.abspath(self.path))
        rows = _read_rows(self.path)
        if not rows:
            raise ValueError(f"Manifest {self.path} has no rows.")
        columns = list(rows[0])
        if features is None:
            features = [c for c in columns if c not in (label, "split")]
        if isinstance(features, (list, tuple)):
            features = {f: f for f in features}
        self.features = dict(features)
        for feature, column in self.features.items():
            if column not in columns:
                raise ValueError(f"features[{feature!r}]: column {column!r} is not in {self.path}. Columns: {', '.join(columns)}")
        if label is not None and label not in columns:
            raise ValueError(f"label={label!r} is not a column of {self.path}. Columns: {', '.join(columns)}")
        if split is not None:
            if "split" not in columns:
                raise ValueError(f"split={split!r} was asked for but {self.path} has no 'split' column.")
            rows = [r for r in rows if r.get("split") == split]
        self.modalities = {f: (modalities or {}).get(f) or _guess_modality(c, rows) for f, c in self.features.items()}
        self.label = label
        self.multilabel = multilabel
        self.on_error = on_error
        self.rows, self.skipped = self._validate(rows)
        self.class_names, self.labels = self._encode_labels()

    def _resolve(self, value):
        return value if os.path.isabs(value) else os.path.join(self.root, value)

    def _validate(self, rows):
        kept, skipped = [], []
        for number, row in enumerate(rows, start=2 if self.path.endswith(".csv") else 1):
            problem = None
            for feature, column in self.features.items():
                value = row.get(column) or ""
                if self.modalities[feature] != "text" and value:
                    file_path = self._resolve(value)
                    if not os.path.isfile(file_path) or not os.access(file_path, os.R_OK):
                        problem = f"{column}={value!r} ({file_path}) is missing or unreadable"
                        break
            if problem is None:
                kept.append(row)
            elif self.on_error == "raise":
                raise ValueError(f"{self.path}, line {number}: {problem}. Fix the row or pass on_error='skip'.")
            else:
                skipped.append((number, problem))
        if skipped:
            logger.warning("%s: skipped %d of %d rows; first: line %d: %s", self.path, len(skipped), len(rows), *skipped[0])
        return kept, skipped

    def _encode_labels(self):
        if self.label is None:
            return None, None
        cells = [str(r[self.label]) for r in self.rows]
        if self.multilabel:
            names = sorted({p for c in cells for p in c.split("|") if p})
            index = {n: i for i, n in enumerate(names)}
            labels = np.zeros((len(cells), len(names)), np.float32)
            for i, cell in enumerate(cells):
                for part in filter(None, cell.split("|")):
                    labels[i, index[part]] = 1.0
            return names, labels
        try:
            return None, np.array([int(c) for c in cells], np.int64)
        except ValueError:
            names = sorted(set(cells))
            return names, np.array([names.index(c) for c in cells], np.int64)

    def __len__(self):
        return len(self.rows)

    def load_row(self, row, sample_rates):
        """One raw example: image bytes, text string, audio float waveform."""
        example = {}
        for feature, column in self.features.items():
            value = row.get(column) or ""
            modality = self.modalities[feature]
            if modality == "text":
                example[feature] = str(value)
            elif modality == "image":
                example[feature] = tf.io.gfile.GFile(self._resolve(value), "rb").read() if value else b""
            else:
                rate = sample_rates.get(feature, 16000)
                example[feature] = load_audio_file(self._resolve(value), rate) if value else np.zeros(0, np.float32)
        return example

    def raw_signature(self):
        return {
            f: tf.TensorSpec([None], tf.float32) if m == "audio" else tf.TensorSpec([], tf.string)
            for f, m in self.modalities.items()
        }


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
):
    """A ``tf.data.Dataset`` from a CSV/JSONL manifest of image paths, texts and audio paths.

    Without ``model``/``preprocessor`` it yields raw dicts (image bytes, UTF-8
    text, float waveform) and labels; with them, the model's numeric inputs.
    Audio is read with librosa and resampled to the model's sample rate.

    Args:
        path, features, label, split, multilabel, modalities, on_error: see :class:`Manifest`.
            With ``model``, ``features`` defaults to the model's feature names.
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

    Example:
        >>> train = keras_mm.data.from_manifest("data/manifest.csv", model=model, split="train",
        ...                                     batch_size=32, shuffle=True)
        >>> model.fit(train, epochs=5)
    """
    if model is not None:
        features = features or {f: f for f in model.features}
        modalities = {**model.modalities, **(modalities or {})}
        preprocessor = preprocessor or model.preprocessor
    manifest = Manifest(path, features, label, modalities, split, multilabel, on_error)
    rates = {}
    if model is not None:
        for feature, encoder in model.feature_encoders.items():
            if hasattr(encoder, "sample_rate"):
                rates[feature] = encoder.sample_rate
    for feature in manifest.features:
        rates.setdefault(feature, sample_rate or 16000)
    if strategy is not None and batch_size and batch_size % strategy.num_replicas_in_sync:
        raise ValueError(
            f"batch_size={batch_size} (global) does not split evenly across {strategy.num_replicas_in_sync} replicas."
        )

    order = np.arange(len(manifest))

    def generate():
        for i in order:
            example = manifest.load_row(manifest.rows[i], rates)
            if manifest.labels is None:
                yield example
            else:
                yield example, manifest.labels[i]

    signature = manifest.raw_signature()
    if manifest.labels is not None:
        label_spec = tf.TensorSpec(manifest.labels.shape[1:], tf.float32 if multilabel else tf.int64)
        signature = (signature, label_spec)
    ds = tf.data.Dataset.from_generator(generate, output_signature=signature)
    ds = ds.apply(tf.data.experimental.assert_cardinality(len(manifest)))
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
