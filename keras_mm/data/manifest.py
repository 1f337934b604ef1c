"""Datasets from CSV / JSONL manifests of files and text."""

import csv
import io
import json
import logging
import os
import posixpath
import re

import numpy as np
import tensorflow as tf

from keras_mm.data.augmentation import Augmentation
from keras_mm.modalities import get_modality, load_audio_file
from keras_mm.preprocessing.status import EMPTY, OK, SAMPLE_STATUSES, STATUS_MEANINGS
from keras_mm.registry import MODALITIES
from keras_mm.tf_logs import error_reason, expected_failures_quiet

logger = logging.getLogger("keras_mm")

_ON_ERROR = ("raise", "skip")
SPLIT_COLUMN = "split"

__all__ = ["Manifest", "check_manifest", "finish_dataset", "from_manifest", "guess_modality", "load_audio_file", "split_counts"]


def _is_url(path):
    """``gs://``, ``s3://``, ... paths: read through ``tf.io.gfile`` (where that filesystem is installed)."""
    return "://" in path


def _read_rows(path):
    if not (tf.io.gfile.exists(path) if _is_url(path) else os.path.isfile(path)):
        raise ValueError(f"Manifest not found: {path}")
    with tf.io.gfile.GFile(path, "rb") as f:
        data = f.read()
    try:
        # utf-8-sig drops the byte-order mark of Excel's "CSV UTF-8", which otherwise sticks to the first column's name
        text = io.StringIO(data.decode("utf-8-sig"), newline="")
    except UnicodeDecodeError as error:
        line_start = data.rfind(b"\n", 0, error.start) + 1
        line_end = data.find(b"\n", error.start)
        line = data[line_start : line_end if line_end >= 0 else len(data)].decode("utf-8", errors="replace").rstrip("\r")
        number = data.count(b"\n", 0, error.start) + 1
        raise ValueError(
            f"{path}, line {number}: byte 0x{data[error.start]:02x} is not UTF-8 "
            f"({line[:120]!r}). Manifests are read as UTF-8: save it as UTF-8 (Excel: 'CSV UTF-8'), or convert it, "
            f"e.g. iconv -f cp1252 -t utf-8."
        ) from None
    if path.endswith((".jsonl", ".json")):
        return [json.loads(line) for line in text if line.strip()]
    # skipinitialspace: "image, text, label" (spaces after the commas) names the columns "text", not " text"
    return list(csv.DictReader(text, skipinitialspace=True))


def split_counts(path):
    """``{split: rows}`` of a manifest's ``split`` column, or ``None`` when it has none (read without checking the rows).

    Example:
        >>> keras_mm.data.manifest.split_counts(keras_mm.datasets.sample_manifest_path())
        {'test': 100, 'train': 200, 'val': 50}
    """
    rows = _read_rows(os.fspath(path))
    if not rows or SPLIT_COLUMN not in rows[0]:
        return None
    counts = {}
    for row in rows:
        counts[row.get(SPLIT_COLUMN)] = counts.get(row.get(SPLIT_COLUMN), 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: str(kv[0])))


def _warn_near_duplicate_labels(path, labels):
    """Log the labels that differ only in letter case ("Places" / "places"): they become separate classes."""
    groups = {}
    for label in labels:
        groups.setdefault(label.casefold(), []).append(label)
    clashes = [sorted(g) for g in groups.values() if len(g) > 1]
    if clashes:
        logger.warning("%s: labels that differ only in letter case are separate classes: %s. If they mean one class, "
                       "write them the same way.", path, "; ".join(" / ".join(map(repr, g)) for g in sorted(clashes)))


def _file_is_readable(path):
    if _is_url(path):
        return tf.io.gfile.exists(path)
    return os.path.isfile(path) and os.access(path, os.R_OK)


_FILE_NAME = re.compile(r"^\S+\.[A-Za-z0-9]{2,5}$")


def guess_modality(values, column=None):
    """The registered modality whose file extensions every non-empty value ends with; else ``"text"``.

    A column whose values are mostly one modality's files, the rest file
    names with other extensions (``clip.m4a`` among ``.wav`` files), raises
    ``ValueError`` naming them: read as text, the whole column became file
    path strings, silently.

    Example:
        >>> guess_modality(["a.png", "b.JPG"]), guess_modality(["x.wav"]), guess_modality(["a dog"])
        ('image', 'audio', 'text')
    """
    values = [str(v) for v in values if v not in (None, "")]
    lowered = [v.lower() for v in values]
    for name, cls in MODALITIES.items():
        extensions = tuple(cls.file_extensions)
        if not (values and extensions):
            continue
        matching = [v.endswith(extensions) for v in lowered]
        if all(matching):
            return name
        others = [v for v, m in zip(values, matching) if not m]
        if sum(matching) >= len(values) / 2 and all(_FILE_NAME.match(v) for v in others):
            where = f"column {column!r}" if column else "a column"
            raise ValueError(
                f"{where} holds {name} files ({', '.join(extensions)}) and files keras_mm does not read as {name}: "
                f"{', '.join(repr(v) for v in others[:3])}. Convert them, or pass modalities={{feature: {name!r}}} "
                "to read every cell as a file of that modality.")
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
            dropped and counted in ``skipped`` (``[(line, problem)]``, and
            logged), never silently. ``from_manifest(..., on_error="skip")``
            also drops rows whose files exist but do not load or decode.
        class_names: the label vocabulary in id order. Default: the sorted
            distinct labels of ALL rows (before split filtering). A label
            outside it raises ``ValueError`` naming the row.

    Example:
        >>> path = keras_mm.datasets.sample_manifest_path()
        >>> m = keras_mm.data.Manifest(path, split="test")
        >>> len(m), m.modalities, m.labels[:3]
        (100, {'image': 'image', 'text': 'text', 'audio': 'audio'}, array([8, 7, 5]))
        >>> keras_mm.data.Manifest(path, split="valid")
        Traceback (most recent call last):
        ValueError: split='valid' is not in .../manifest.csv. Splits: test (100 rows), train (200 rows), val (50 rows)
    """

    def __init__(self, path, features=None, label="label", modalities=None, split=None, multilabel=False,
                 on_error="raise", class_names=None):
        if on_error not in _ON_ERROR:
            raise ValueError(f"on_error={on_error!r} is not supported. Allowed: {', '.join(_ON_ERROR)}")
        self.path = os.fspath(path)
        self.root = posixpath.dirname(self.path) if _is_url(self.path) else os.path.dirname(os.path.abspath(self.path))
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
            name = (modalities or {}).get(feature) or guess_modality([r.get(column) for _, r in numbered[:50]], column)
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
        # an empty label is a bad row (raised, or skipped), not a class: as one, it shifted every id by one
        cells = {c for _, row in numbered for c in self._cells(row) if c}
        # integer labels are class ids (named by class_names when given), used as they are
        self.integer_ids = not self.multilabel and bool(cells) and all(_is_int(c) for c in cells)
        if class_names is not None:
            class_names = [str(c) for c in class_names]
            if len(set(class_names)) != len(class_names):
                raise ValueError(f"class_names has duplicates: {class_names}")
            return class_names
        if self.integer_ids:
            return None
        _warn_near_duplicate_labels(self.path, cells)
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
                if not _file_is_readable(file_path):
                    return f"{column}={value!r} ({file_path}) is missing or unreadable"
        if self.label is not None:
            cells = self._cells(row)
            if not self.multilabel and cells == [""]:
                return f"{self.label} is empty"
            if self.integer_ids:
                if self.class_names is not None and not 0 <= int(cells[0]) < len(self.class_names):
                    return f"{self.label}={cells[0]} is not a class id of the {len(self.class_names)} class names (0..{len(self.class_names) - 1})"
            elif self.class_names is not None:
                unknown = [c for c in cells if c not in self.class_names]
                if unknown:
                    return f"{self.label}={unknown[0]!r} is not one of the class names {self.class_names}"
            elif self.class_names is None and not self.multilabel and not _is_int(cells[0]):
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
        if self.integer_ids:
            return np.array([int(self._cells(row)[0]) for _, row in kept], np.int64)
        index = {n: i for i, n in enumerate(self.class_names)}
        return np.array([index[self._cells(row)[0]] for _, row in kept], np.int64)

    def drop_rows(self, problems):
        """Remove rows found unusable after reading (``{row index: problem}``), recording them in ``skipped``.

        Used by ``from_manifest(..., on_error="skip")`` for files that exist but
        do not decode; the rows are logged and counted, never dropped silently.
        """
        if not problems:
            return
        keep = [i for i in range(len(self.rows)) if i not in problems]
        self.skipped = sorted(self.skipped + [(self.line_numbers[i], problem) for i, problem in problems.items()])
        first = min(problems)
        logger.warning("%s: skipped %d more row(s) whose files do not decode or cannot be used; first: line %d: %s",
                       self.path, len(problems), self.line_numbers[first], problems[first])
        if not keep:
            raise ValueError(f"{self.path}: no usable rows" + (f" in split {self.split!r}" if self.split else "")
                             + f" ({len(self.skipped)} skipped; first: line {self.skipped[0][0]}: {self.skipped[0][1]}).")
        self.rows = [self.rows[i] for i in keep]
        self.line_numbers = [self.line_numbers[i] for i in keep]
        if self.labels is not None:
            self.labels = self.labels[keep]

    def resolve(self, value):
        """A path from the manifest, relative to the manifest's directory (``gs://...`` paths stay as they are)."""
        if _is_url(value) or os.path.isabs(value):
            return value
        return posixpath.join(self.root, value) if _is_url(self.root) else os.path.join(self.root, value)

    def __len__(self):
        return len(self.rows)

    def load_options(self, model=None, sample_rate=None, preprocessor=None):
        """``{feature: load_file kwargs}``: e.g. the audio sample rate of the model's encoder (or of ``preprocessor``'s).

        ``sample_rate`` applies where neither says; one that contradicts them
        is a ``ValueError``.

        Example:
            >>> m = keras_mm.data.Manifest(keras_mm.datasets.sample_manifest_path())
            >>> m.load_options(sample_rate=8000)["audio"]
            {'sample_rate': 8000}
        """
        sources = (getattr(model, "feature_encoders", None) or getattr(preprocessor, "feature_preprocessors", None)) or {}
        options = {}
        for feature, m in self.modalities.items():
            options[feature] = get_modality(m).load_options(sources.get(feature), sample_rate=sample_rate)
            wanted = getattr(sources.get(feature), "sample_rate", None)
            if sample_rate is not None and wanted is not None and int(wanted) != int(sample_rate):
                raise ValueError(f"sample_rate={sample_rate} contradicts the model: feature {feature!r} takes audio "
                                 f"at {wanted} Hz. Leave sample_rate out; the model's rate is used.")
        return options

    def cells(self, index):
        """Row ``index`` as ``({feature: cell string}, {feature: present})``: resolved file paths, texts, ``""`` for blanks."""
        row, cells, present = self.rows[index], {}, {}
        for feature, column in self.features.items():
            modality, value = get_modality(self.modalities[feature]), row.get(column)
            present[feature] = not modality.is_empty_cell(value)
            if not present[feature]:
                cells[feature] = ""
            elif modality.reads_files:
                cells[feature] = self.resolve(str(value))
            else:
                cells[feature] = str(modality.load_cell(value, self.resolve))
        return cells, present

    def load_feature(self, feature, cell, present, options):
        """One feature of one row with TensorFlow ops (the per-row function of the dataset, and of :meth:`load_row`).

        ``present`` is a bool tensor, or a Python bool when known in advance
        (a column without blanks needs no ``tf.cond``).
        """
        modality = get_modality(self.modalities[feature])
        if not modality.reads_files:
            return cell
        empty = tf.constant(modality.empty_raw(), modality.raw_dtype)
        if isinstance(present, bool):
            return modality.load_graph(cell, **options.get(feature, {})) if present else empty
        return tf.cond(present, lambda: modality.load_graph(cell, **options.get(feature, {})), lambda: empty)

    def load_row_tensors(self, index, options=None):
        """Row ``index`` loaded eagerly by :meth:`load_feature`; a failure raises ``ValueError`` naming the line, column and file."""
        options = options or self.load_options()
        cells, present = self.cells(index)
        example = {}
        for feature, column in self.features.items():
            try:
                example[feature] = self.load_feature(feature, tf.constant(cells[feature]), present[feature], options)
            except Exception as error:  # noqa: BLE001  -- re-raised with the row named
                value = self.rows[index].get(column)
                where = f" ({cells[feature]})" if cells[feature] != value else ""
                raise ValueError(f"{self.path}, line {self.line_numbers[index]}: cannot load {column}={value!r}{where}: {error}") from error
        return example

    def load_row(self, index, options=None):
        """Raw example ``index`` as numpy values / bytes / str, loaded by the dataset's code; errors name the manifest line and file.

        Example:
            >>> m = keras_mm.data.Manifest(keras_mm.datasets.sample_manifest_path(), split="test")
            >>> row = m.load_row(0, m.load_options(sample_rate=16000))
            >>> row["text"], row["image"][:4], row["audio"].dtype
            ('', b'\\x89PNG', dtype('float32'))
        """
        example = {}
        for feature, value in self.load_row_tensors(index, options).items():
            value = value.numpy()
            if isinstance(value, bytes) and not get_modality(self.modalities[feature]).reads_files:
                value = value.decode("utf-8")
            example[feature] = value
        return example

    def raw_dataset(self, options=None, deterministic=True):
        """Raw examples (and labels) of every row, read by a parallel ``tf.data`` map; see :func:`from_manifest`.

        Example:
            >>> m = keras_mm.data.Manifest(keras_mm.datasets.sample_manifest_path(), split="test")
            >>> x, y = next(iter(m.raw_dataset(m.load_options(sample_rate=16000))))
            >>> sorted(x), int(y)
            (['audio', 'image', 'text'], 8)
        """
        return _raw_dataset(self, options or self.load_options(), deterministic)

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
    deterministic=True,
):
    """A ``tf.data.Dataset`` from a CSV/JSONL manifest of image paths, texts and audio paths.

    Without ``model``/``preprocessor`` it yields raw dicts (image bytes, UTF-8
    text, float waveform) and labels; with them, the model's numeric inputs.
    Files are read by a parallel ``tf.data`` map through each feature's
    modality (``Modality.load_graph``: ``tf.io`` reads, so ``gs://`` paths
    work; 16-bit WAV decoded by TensorFlow ops, other audio formats by
    soundfile in Python) and audio is resampled to the model's sample rate
    with :func:`keras_mm.preprocessing.resample` (``librosa``'s ``"fft"``
    method). A file that fails to load raises ``ValueError`` naming the
    manifest line and the file when the dataset is iterated. With a model's
    preprocessor, text columns are tokenized once, here, by the same
    preprocessor (up to ``AHEAD_MAX_BYTES`` of token ids per dataset; larger
    manifests tokenize in the pipeline), so epochs do not pay the tokenizer.

    Args:
        path, features, label, split, multilabel, modalities, class_names: see :class:`Manifest`.
            With ``model``, ``features`` defaults to the model's feature names
            and ``class_names`` to the model's (``model.class_names``). A model
            whose head has no class names takes the manifest's (string labels,
            sorted, as many as the head has classes): they then label its
            ``evaluate`` tables, its ``.keras`` file and its SavedModel's
            ``class_name`` output, and other manifests given this model get the
            same ids.
        on_error: ``"raise"`` (default): the first bad row stops reading or
            iterating with an error naming it (:func:`check_manifest` lists
            them all). ``"skip"``: rows with a missing, unreadable or
            undecodable file (or one the preprocessor cannot use) are dropped
            before the first epoch, logged and listed in ``ds.manifest.skipped``;
            finding the undecodable ones reads every file once more, here.
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
        deterministic: keep manifest order while loading in parallel (default).
            ``False`` lets a slow file be overtaken (faster when file latency
            varies, e.g. object storage); the order then varies between runs.

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
    features, modalities, preprocessor, class_names = _model_defaults(model, features, modalities, preprocessor, class_names)
    manifest = Manifest(path, features, label, modalities, split, multilabel, on_error, class_names)
    if model is not None:
        check_labels_fit_head(manifest, getattr(model, "head", None))
        name_head_classes(getattr(model, "head", None), manifest.class_names)
    if preprocessor is not None:
        warn_cropped_audio(manifest, preprocessor)
    options = manifest.load_options(model, sample_rate, preprocessor)
    if model is None and preprocessor is None and sample_rate is None:
        _warn_default_rate(options)
    decoding = hasattr(preprocessor, "process_decoded_batch_with_status")
    if on_error == "skip":  # files that exist but do not load or decode: one more pass over them, here
        manifest.drop_rows(find_unusable_rows(manifest, options, preprocessor if decoding else None))
    if decoding:  # the model's preprocessor: files decoded in the parallel loader, a bad file is an error naming the row
        ds, preprocessor = _preprocessed_dataset(manifest, options, preprocessor, deterministic), None
    else:
        ds = manifest.raw_dataset(options, deterministic)
    ds = finish_dataset(
        ds, manifest.modalities, preprocessor=preprocessor, batch_size=batch_size, shuffle=shuffle,
        shuffle_buffer=len(manifest), seed=seed, cache=cache, augment=augment, strategy=strategy,
        deterministic=deterministic, rows=len(manifest), preprocessed=decoding,
    )
    ds.manifest, ds.load_options = manifest, options
    return ds


def check_manifest(path, features=None, label="label", *, model=None, preprocessor=None, split=None, multilabel=False,
                   modalities=None, sample_rate=None, class_names=None):
    """Every unusable row of a manifest, found in one pass: ``[(line, problem)]`` sorted by line, ``[]`` when all are fine.

    Training stops at the first bad file; run this before a long job (or pass
    ``on_error="skip"``) to see them all at once: rows with a missing or
    unreadable file, an empty or unknown label, a file that does not load or
    decode, or one the model's preprocessor cannot use (e.g. audio with NaN
    samples). The arguments are those of :func:`from_manifest`; every split
    is checked unless ``split`` is given. Labels whose classes do not fit the
    model's head raise ``ValueError`` here, as in :func:`from_manifest`
    (:func:`check_labels_fit_head`).

    Example:
        >>> import shutil, tempfile
        >>> folder = tempfile.mkdtemp()
        >>> _ = shutil.copytree(os.path.dirname(keras_mm.datasets.sample_manifest_path()), folder, dirs_exist_ok=True)
        >>> _ = open(os.path.join(folder, "images", "0_08.png"), "wb").write(b"not a png")
        >>> model = keras_mm.build_model(preset="tiny_attention", num_classes=10)
        >>> for line, problem in keras_mm.data.check_manifest(os.path.join(folder, "manifest.csv"), model=model):
        ...     print(line, problem.split(" (")[0])
        2 image='images/0_08.png'
    """
    features, modalities, preprocessor, class_names = _model_defaults(model, features, modalities, preprocessor, class_names)
    manifest = Manifest(path, features, label, modalities, split, multilabel, "skip", class_names)
    if model is not None:  # as from_manifest: classes that do not fit the head are no row's problem, but fatal
        check_labels_fit_head(manifest, getattr(model, "head", None))
    if preprocessor is not None:
        warn_cropped_audio(manifest, preprocessor)
    options = manifest.load_options(model, sample_rate, preprocessor)
    problems = find_unusable_rows(manifest, options, preprocessor)
    return sorted(manifest.skipped + [(manifest.line_numbers[i], problem) for i, problem in problems.items()])


def _model_defaults(model, features, modalities, preprocessor, class_names):
    """``(features, modalities, preprocessor, class_names)`` with what ``model`` supplies where the caller gave nothing."""
    if model is None:
        return features, modalities, preprocessor, class_names
    if class_names is None and getattr(model, "class_names", None):
        class_names = model.class_names
    return (model_feature_columns(features, model), {**model.modalities, **(modalities or {})},
            preprocessor or model.preprocessor, class_names)


def name_head_classes(head, class_names):
    """Give ``head`` the manifest's ``class_names`` when it has none and they fit; ``True`` when it took them.

    Without this a model trained on labels ``cat, dog`` exported ``class_id``
    but no ``class_name``, and ``evaluate`` printed ``0, 1`` (new-user trial).

    Example:
        >>> head = keras_mm.heads.ClassificationHead(num_classes=2)
        >>> name_head_classes(head, ["cat", "dog"]), head.class_names
        (True, ['cat', 'dog'])
        >>> name_head_classes(head, ["ant", "bee"]), head.class_names  # a head keeps the names it has
        (False, ['cat', 'dog'])
    """
    if head is None or class_names is None or head.class_names is not None:
        return False
    if head.class_count is None or head.class_count != len(class_names):
        return False
    head.name_classes(class_names)
    return True


def _near_duplicate_labels(manifest):
    """`` Labels that differ only in case or spaces: ...`` naming a line of each, or ``""``."""
    groups = {}
    for name in manifest.class_names:
        groups.setdefault(" ".join(str(name).split()).casefold(), []).append(name)
    clashes = [names for names in groups.values() if len(names) > 1]
    if not clashes:
        return ""
    labels = [str(row.get(manifest.label, "")).strip() for row in manifest.rows]

    def where(name):
        if str(name) not in labels:  # only in another split
            return repr(name)
        return f"{name!r} (line {manifest.line_numbers[labels.index(str(name))]})"

    return " Labels that differ only in case or spaces: " + "; ".join(" vs ".join(where(n) for n in names) for names in clashes) + "."


def check_labels_fit_head(manifest, head):
    """``ValueError`` when the manifest's classes do not fit a classification head's ``num_classes``.

    String labels: the manifest's class count must equal ``num_classes`` (its
    ids are positions in the sorted names, so another count would give ids
    the head does not mean). Integer labels: every id must be below it.
    Without the check a 5-class manifest on a 4-class head failed deep in the
    loss ("label value of 4 which is outside the valid range").

    Example:
        >>> _ = open("pets.csv", "w").write("text,label\\na cat,cat\\na dog,dog\\na cow,cow\\n")
        >>> check_labels_fit_head(keras_mm.data.Manifest("pets.csv"), keras_mm.heads.ClassificationHead(num_classes=2))
        Traceback (most recent call last):
        ValueError: ...pets.csv: the labels have 3 classes (cat, cow, dog) but the model's head has num_classes=2. ...
    """
    num_classes = getattr(head, "num_classes", None)
    if num_classes is None or manifest.label is None or manifest.labels is None or not len(manifest.labels):
        return
    if manifest.class_names is not None and len(manifest.class_names) != num_classes:
        names = ", ".join(map(str, manifest.class_names[:20])) + (", ..." if len(manifest.class_names) > 20 else "")
        raise ValueError(f"{manifest.path}: the labels have {len(manifest.class_names)} classes ({names}) but the model's "
                         f"head has num_classes={num_classes}. Build the model with num_classes={len(manifest.class_names)}, "
                         "or give class_names=[...] to both in the order the head's ids mean." + _near_duplicate_labels(manifest))
    if manifest.class_names is None:
        ids = np.asarray(manifest.labels).reshape(len(manifest.labels), -1).max(axis=1)
        bad = np.flatnonzero((ids >= num_classes) | (ids < 0))
        if len(bad):
            raise ValueError(f"{manifest.path}, line {manifest.line_numbers[bad[0]]}: {manifest.label}={int(ids[bad[0]])} is not "
                             f"a class id of the model's head (num_classes={num_classes}: ids 0..{num_classes - 1}).")


_WARNED_DEFAULT_RATE = []


#: rows whose audio duration :func:`warn_cropped_audio` reads (file headers only)
CROP_CHECK_ROWS = 64
_WARNED_CROPPED = set()


def warn_cropped_audio(manifest, preprocessor, rows=CROP_CHECK_ROWS):
    """Log a warning when most clips of an audio feature are longer than what the model keeps; return the fractions.

    The audio encoder takes a fixed ``num_samples``: a longer clip is cropped
    to its start, silently. Up to ``rows`` files spread over the manifest
    are measured from their headers (``soundfile.info``, local files only).
    Logged once per manifest and feature when a quarter or more of them are
    over 10 % longer. Returns ``{feature: fraction longer}`` of the measured ones.

    Example:
        >>> model = keras_mm.build_model(encoders={"audio": {"name": "mfcc_cnn", "num_samples": 4000}}, num_classes=10)
        >>> m = keras_mm.data.Manifest(keras_mm.datasets.sample_manifest_path(), features=["audio"])
        >>> warn_cropped_audio(m, model.preprocessor)  # the sample's clips last 1 s; the model keeps 0.25 s
        {'audio': 1.0}
    """
    import soundfile

    found = {}
    for feature, modality in manifest.modalities.items():
        pre = getattr(preprocessor, "feature_preprocessors", {}).get(feature)
        if modality != "audio" or getattr(pre, "num_samples", None) is None or getattr(pre, "sample_rate", None) is None:
            continue
        kept = pre.num_samples / float(pre.sample_rate)
        cells = [manifest.rows[i].get(manifest.features[feature]) for i in range(len(manifest))]
        cells = [str(c).strip() for c in cells if c is not None and str(c).strip()]
        picked = [cells[i] for i in sorted(set(np.linspace(0, len(cells) - 1, min(rows, len(cells))).astype(int)))] if cells else []
        durations = []
        for cell in picked:
            path = manifest.resolve(cell)
            if _is_url(path):
                continue
            try:
                durations.append(soundfile.info(path).duration)
            except Exception:  # unreadable files are reported by the loader, naming the row
                continue
        if not durations:
            continue
        longer = float(np.mean(np.asarray(durations) > 1.1 * kept))
        found[feature] = longer
        key = (manifest.path, feature, pre.num_samples, pre.sample_rate)
        if longer >= 0.25 and key not in _WARNED_CROPPED:
            _WARNED_CROPPED.add(key)
            logger.warning(
                "%s: %.0f%% of the %d %r clips measured are longer than the %.2f s the model keeps (median %.2f s); "
                "each is cropped to its first %.2f s. Build the audio encoder with num_samples=%d (%.1f s at %d Hz) "
                "to keep more (logged once).", manifest.path, 100 * longer, len(durations), feature, kept,
                float(np.median(durations)), kept, int(np.percentile(durations, 90) * pre.sample_rate),
                float(np.percentile(durations, 90)), pre.sample_rate)
    return found


def _warn_default_rate(options):
    """Warn once that raw audio comes at the default rate: a model at another rate would get it at the wrong speed."""
    features = sorted(f for f, o in options.items() if "sample_rate" in o)
    if features and not _WARNED_DEFAULT_RATE:
        _WARNED_DEFAULT_RATE.append(True)
        rate = options[features[0]]["sample_rate"]
        logger.warning("from_manifest: raw audio of %s is resampled to %d Hz, the default, as neither model= nor "
                       "sample_rate= says otherwise; a model whose audio encoder runs at another rate would hear it "
                       "at the wrong speed: pass model= or sample_rate=<the model's rate> (logged once).", features, rate)


def model_feature_columns(features, model, source="manifest"):
    """``{feature: column}`` for every feature of ``model`` (default: columns named like the features).

    A model feature left out, or a feature the model does not have, is a
    ``ValueError`` naming them: a feature silently missing from every row
    would train a model that never sees it. ``source`` names what is read
    (``"manifest"`` or ``"TFRecords"``) in the message.
    """
    if not features:
        return {f: f for f in model.features}
    columns = {f: f for f in features} if isinstance(features, (list, tuple)) else dict(features)
    missing = [f for f in model.features if f not in columns]
    unknown = [f for f in columns if f not in model.features]
    if missing or unknown:
        problems = [f"the model's feature(s) {missing} are not read" if missing else "",
                    f"feature(s) {unknown} are not the model's" if unknown else ""]
        if source == "manifest":
            hint = "map each to a manifest column, e.g. features={" + ", ".join(
                f"{f!r}: {columns.get(f, '<column>')!r}" for f in model.features) + "}"
        else:
            hint = f"leave features=None to read them all from the {source}"
        raise ValueError(f"features={features!r}: {'; '.join(p for p in problems if p)}. "
                         f"The model's features are {list(model.features)}; {hint}.")
    return columns


def finish_dataset(raw, modalities, *, preprocessor=None, batch_size=None, shuffle=False, shuffle_buffer=None, seed=0,
                   cache=False, augment=None, strategy=None, deterministic=True, rows=None, preprocessed=False):
    """The steps after loading raw examples, shared by ``from_manifest`` and ``from_tfrecords``.

    preprocess (chunks of rows) -> cache -> augment (per example) -> shuffle -> batch -> prefetch.

    Args:
        raw: dataset of raw example dicts, or ``(raw, label)`` pairs.
        modalities: ``{feature: modality name}`` (for ``augment=True``).
        preprocessor, batch_size, shuffle, seed, cache, augment, strategy, deterministic: as in :func:`from_manifest`.
        shuffle_buffer: examples in the shuffle buffer (the whole dataset for manifests).
        rows: number of examples, when known (kept as the dataset's cardinality).
        preprocessed: ``raw`` already holds numeric examples (``augment`` needs no ``preprocessor`` then).

    Example:
        >>> raw = tf.data.Dataset.from_tensor_slices(({"text": ["a dog", "a cat"]}, [0, 1]))
        >>> ds = finish_dataset(raw, {"text": "text"}, batch_size=2)
        >>> next(iter(ds))[0]["text"].numpy()
        array([b'a dog', b'a cat'], dtype=object)
    """
    if strategy is not None and batch_size and batch_size % strategy.num_replicas_in_sync:
        raise ValueError(
            f"batch_size={batch_size} (global) does not split evenly across {strategy.num_replicas_in_sync} replicas."
        )
    if augment and preprocessor is None and not preprocessed:
        raise ValueError("augment= works on numeric examples: pass model= or preprocessor= too.")
    ds = raw
    if preprocessor is not None:
        ds = _preprocess_in_chunks(ds, preprocessor, deterministic, rows)
    if cache:
        ds = ds.cache()
    if augment:
        if augment is True:
            augment = Augmentation(modalities, seed=seed)
        ds = ds.map(augment, num_parallel_calls=tf.data.AUTOTUNE)
    if shuffle:
        ds = ds.shuffle(shuffle_buffer or 10_000, seed=seed, reshuffle_each_iteration=True)
    if batch_size:
        ds = ds.batch(batch_size)
    return ds.prefetch(tf.data.AUTOTUNE)


#: rows per preprocessor call: one vectorised image decode / tokenizer call per chunk instead of per row
PREPROCESS_CHUNK = 32
#: chunks preprocessed at once. The loading map before it already runs in parallel; for raw chunks
#: (from_tfrecords) the image and WAV-bytes preprocessors decode with 4 parallel calls each
#: (map_isolating_failures), and AUTOTUNE on top oversubscribed 2 cores (314 vs 461 rows/s, AV-Digits).
PREPROCESS_PARALLELISM = max(1, (os.cpu_count() or 1) // 4)


def _preprocess_in_chunks(ds, preprocessor, deterministic, rows):
    """``preprocessor`` on ragged chunks of raw rows, unbatched again: the same values as row by row, ~2x cheaper."""
    ds = ds.ragged_batch(PREPROCESS_CHUNK)
    if PREPROCESS_PARALLELISM > 1:
        ds = ds.map(preprocessor, num_parallel_calls=PREPROCESS_PARALLELISM, deterministic=deterministic)
    else:  # the loading map before it still runs in parallel with it
        ds = ds.map(preprocessor)
    ds = ds.unbatch()
    return ds if rows is None else ds.apply(tf.data.experimental.assert_cardinality(rows))


def _preprocessed_dataset(manifest, options, preprocessor, deterministic):
    """Numeric examples (and labels): files read AND decoded in the parallel loading map, the rest of the model's preprocessing on chunks.

    Images are decoded and resized per row in the loading map
    (``preprocessor.decode_example``: the serving decoder without its
    per-sample isolation, which costs a nested dataset per batch); the
    tokenizer and the waveform fitting run vectorised on chunks of
    ``PREPROCESS_CHUNK`` rows. The values are those of
    ``preprocessor.process_batch`` on the raw rows. A file that fails to load
    or decode raises ``ValueError`` naming the manifest line (a training
    manifest must not silently lose a modality); so does a file that decodes
    but cannot be used (e.g. audio with NaN samples).
    """
    features = list(manifest.features)

    def retry(index):
        example, filled = manifest.load_row_tensors(index, options), manifest.cells(index)[1]
        for feature in features:
            try:
                preprocessor.feature_preprocessors[feature].decode_example(example[feature], filled[feature])
            except Exception as error:  # noqa: BLE001  -- re-raised with the row named
                column = manifest.features[feature]
                raise _unusable_row_error(manifest, options, preprocessor, index, feature) or ValueError(
                    f"{manifest.path}, line {manifest.line_numbers[index]}: cannot decode {column}="
                    f"{manifest.rows[index].get(column)!r}: {error}") from error

    def report(indices, unusable):
        rows, columns = np.nonzero(np.asarray(unusable).T)  # [batch, feature], row-major: the first row first
        index, feature = int(indices[rows[0]]), features[columns[0]]
        raise _unusable_row_error(manifest, options, preprocessor, index, feature) or ValueError(
            f"{manifest.path}, line {manifest.line_numbers[index]}: {manifest.features[feature]} was marked unusable in the "
            "input pipeline but is usable when retried.")

    def process(index, decoded, filled, ahead, *label):
        computed = {f: (values["outputs"], values["status"]) for f, values in ahead.items()}
        out, statuses = preprocessor.process_decoded_batch_with_status(decoded, filled, computed)
        # a filled cell whose file loads and decodes but is still unusable (e.g. NaN audio) is an error too
        unusable = tf.stack([filled[f] & tf.not_equal(statuses[f], OK) & tf.not_equal(statuses[f], EMPTY) for f in features])
        checked = tf.cond(tf.reduce_any(unusable), lambda: tf.numpy_function(report, [index, unusable], tf.bool, stateful=True),
                          lambda: tf.constant(True))
        with tf.control_dependencies([checked]):
            out = {name: tf.identity(value) for name, value in out.items()}
        return (out, *label) if label else out

    process = _without_autograph_if_ours(process, preprocessor.feature_preprocessors.values())
    decode = _without_autograph_if_ours(preprocessor.decode_example, preprocessor.feature_preprocessors.values())
    columns = _cell_columns(manifest)
    ahead = _preprocess_ahead(manifest, preprocessor, columns[0])
    ds = _loaded_rows(manifest, options, deterministic, decode=decode, retry=retry, columns=columns, ahead=ahead)
    ds = ds.ragged_batch(PREPROCESS_CHUNK).map(process, num_parallel_calls=PREPROCESS_PARALLELISM, deterministic=deterministic)
    return ds.unbatch().apply(tf.data.experimental.assert_cardinality(len(manifest)))


#: rows per preprocessor call when outputs are computed ahead (see :func:`_preprocess_ahead`)
AHEAD_CHUNK = 1024
#: at most this many bytes of outputs computed ahead per dataset (they live in memory, in the dataset's graph)
AHEAD_MAX_BYTES = 64 * 2**20


def _preprocess_ahead(manifest, preprocessor, cells):
    """Outputs of ``row_wise`` preprocessors of cells known before loading (text), computed once: ``{feature: {"outputs", "status"}}``.

    Tokenizing in the input pipeline costs every epoch's iterator a fixed
    ~0.2-0.4 s (instantiating the tokenizer graph), more than loading a
    few hundred rows. Text cells are known when the manifest is read, so
    their outputs are computed here by the preprocessor's own
    ``process_batch_with_status`` (the code serving runs), in chunks of
    ``AHEAD_CHUNK`` rows. A feature whose outputs would exceed
    ``AHEAD_MAX_BYTES`` (large manifests, where that fixed cost is
    negligible) stays in the pipeline.
    """
    ahead, n = {}, len(manifest)
    for feature, pre in preprocessor.feature_preprocessors.items():
        if get_modality(manifest.modalities[feature]).reads_files or not getattr(pre, "row_wise", False) or not n:
            continue
        texts = np.array(cells[feature], dtype=object)
        parts, too_big = [], None
        for start in range(0, n, AHEAD_CHUNK):
            out, status = pre.process_batch_with_status(tf.constant(texts[start:start + AHEAD_CHUNK].tolist(), tf.string))
            parts.append(({name: value.numpy() for name, value in out.items()}, status.numpy()))
            if too_big is None:  # bytes per row, from the first chunk
                row_bytes = (sum(v.nbytes for v in parts[0][0].values()) + parts[0][1].nbytes) / len(parts[0][1])
                too_big = row_bytes * n > AHEAD_MAX_BYTES
                if too_big:
                    break
        if too_big:
            continue
        ahead[feature] = {"outputs": {name: np.concatenate([p[0][name] for p in parts]) for name in parts[0][0]},
                          "status": np.concatenate([p[1] for p in parts])}
    return ahead


def _unusable_row_error(manifest, options, preprocessor, index, feature):
    """``ValueError`` naming row ``index`` when the model's preprocessor marks its ``feature`` unusable (the reason from its status); else ``None``."""
    raw = manifest.load_row_tensors(index, options)[feature]
    # the feature's own preprocessor: the multimodal one also logs serving's "a sample was marked missing
    # (the other samples are unaffected)", which read as if training had gone on without the file
    _, status = preprocessor.feature_preprocessors[feature].process_batch_with_status(tf.expand_dims(raw, 0))
    reason = SAMPLE_STATUSES[int(status[0])]
    cells, filled = manifest.cells(index)
    names_empty_file = reason == "empty" and filled[feature] and get_modality(manifest.modalities[feature]).reads_files
    if reason == "ok" or (reason == "empty" and not names_empty_file):  # a blank cell or blank text: modality missing
        return None
    column = manifest.features[feature]
    if names_empty_file:
        # the cell names a file that holds nothing: a broken file, not a missing modality
        return ValueError(f"{manifest.path}, line {manifest.line_numbers[index]}: {column}="
                          f"{manifest.rows[index].get(column)!r} ({cells[feature]}) cannot be used: the file is empty. "
                          "Fix or remove the row.")
    return ValueError(f"{manifest.path}, line {manifest.line_numbers[index]}: {column}={manifest.rows[index].get(column)!r} "
                      f"({manifest.cells(index)[0][feature]}) cannot be used: {reason} ({STATUS_MEANINGS[reason]}). "
                      "Fix or remove the row.")


def _raw_dataset(manifest, options, deterministic=True):
    """Raw examples (and labels) of every manifest row, read by a parallel ``tf.data`` map (in manifest order by default)."""
    return _loaded_rows(manifest, options, deterministic)


def _cell_columns(manifest):
    """``({feature: [cell string per row]}, {feature: bool array, cell filled})`` of every manifest row."""
    rows = [manifest.cells(i) for i in range(len(manifest))]
    cells = {f: [c[f] for c, _ in rows] for f in manifest.features}
    filled = {f: np.array([p[f] for _, p in rows], bool) for f in manifest.features}
    return cells, filled


def _loaded_rows(manifest, options, deterministic=True, decode=None, retry=None, columns=None, ahead=None):
    """Every manifest row read by a parallel ``tf.data`` map; a row that fails raises ``ValueError`` naming it.

    Without ``decode``: ``(raw example, label)``. With it (``decode(example,
    filled) -> example``, run in the same map): ``(row index, decoded
    example, {feature: cell filled}, ahead, label)``, where ``ahead`` is this
    row's slice of ``ahead`` (values computed before the epochs, default
    ``{}``). ``retry(index)`` reloads a failed row eagerly and raises naming
    it (default :meth:`Manifest.load_row_tensors`). ``columns``: the
    :func:`_cell_columns` of ``manifest`` when already computed.
    """
    ds = _mapped_rows(manifest, options, deterministic, decode, columns, ahead)
    retry = retry or (lambda index: manifest.load_row_tensors(index, options))
    ds = _raise_naming_failed_rows(ds, manifest, retry, deterministic, keep_index=decode is not None)
    return ds.apply(tf.data.experimental.assert_cardinality(len(manifest)))


def _mapped_rows(manifest, options, deterministic=True, decode=None, columns=None, ahead=None, check=False):
    """The loading map of :func:`_loaded_rows`, every element led by its row index; a failing row fails its element.

    ``check``: without ``decode``, each filled cell also goes through its modality's
    :meth:`~keras_mm.modalities.Modality.check_loaded` (an image that does not decode fails its row).
    """
    cells, filled = columns or _cell_columns(manifest)
    columns = {
        "index": np.arange(len(manifest), dtype=np.int64),
        "cells": cells,
        "filled": {f: column for f, column in filled.items() if not column.all()},  # only columns with blanks
        "ahead": ahead or {},
    }
    if manifest.labels is not None:
        columns["label"] = manifest.labels

    def load(row):
        filled = {f: row["filled"].get(f, True) for f in manifest.features}
        example = {f: manifest.load_feature(f, row["cells"][f], filled[f], options) for f in manifest.features}
        label = (row["label"],) if "label" in row else ()
        if decode is None:
            if check:
                example = {f: _checked(manifest, f, v, filled[f]) for f, v in example.items()}
            return (row["index"], example) + label
        decoded = decode(example, filled)  # Python bools where a column has no blanks: no tf.cond
        return (row["index"], decoded, {f: tf.convert_to_tensor(v) for f, v in filled.items()}, row["ahead"]) + label

    load = _without_autograph_if_ours(load, [get_modality(m) for m in manifest.modalities.values()])
    return tf.data.Dataset.from_tensor_slices(columns).map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=deterministic)


def _checked(manifest, feature, raw, filled):
    """``raw`` through its modality's ``check_loaded`` where the cell is filled (a Python bool or a bool tensor)."""
    modality = get_modality(manifest.modalities[feature])
    if isinstance(filled, bool):
        return modality.check_loaded(raw) if filled else raw
    return tf.cond(filled, lambda: modality.check_loaded(raw), lambda: raw)


def _undecodable_row_error(manifest, example, index):
    """``ValueError`` naming row ``index`` when a loaded file fails its modality's ``check_loaded``; else ``None``."""
    cells, filled = manifest.cells(index)
    for feature, raw in example.items():
        if not filled[feature]:
            continue
        try:
            get_modality(manifest.modalities[feature]).check_loaded(raw)
        except (tf.errors.OpError, ValueError) as error:
            column = manifest.features[feature]
            reason = error_reason(error)
            return ValueError(f"{manifest.path}, line {manifest.line_numbers[index]}: {column}="
                              f"{manifest.rows[index].get(column)!r} ({cells[feature]}) does not decode: {reason}. "
                              "Fix or remove the row.")
    return None


def _row_problem(manifest, options, preprocessor, index):
    """Why row ``index`` cannot be used (its file does not load, or decode, or the preprocessor marks it unusable), else ``None``.

    The problem in words, without the ``"<manifest>, line <n>: "`` the errors start with.
    """
    where = f"{manifest.path}, line {manifest.line_numbers[index]}: "
    try:
        example = manifest.load_row_tensors(index, options)
        if preprocessor:
            errors = [_unusable_row_error(manifest, options, preprocessor, index, f) for f in manifest.features]
        else:  # no model: each modality's own check (an image that does not decode)
            errors = [_undecodable_row_error(manifest, example, index)]
    except ValueError as error:
        errors = [error]
    error = next((e for e in errors if e is not None), None)
    return None if error is None else str(error).split("\n")[0].removeprefix(where)


def find_unusable_rows(manifest, options, preprocessor=None):
    """``{row index: problem}`` for every row whose files fail to load or decode, or that ``preprocessor`` marks unusable.

    One parallel pass over the files (the loading map of the training
    pipeline, failures dropped instead of raised), then each suspect row is
    checked again eagerly, which gives the problem in words. ``from_manifest``
    runs it for ``on_error="skip"``; :func:`check_manifest` reports it.
    TensorFlow's stderr record of each expected failure is dropped
    (:func:`keras_mm.tf_logs.expected_failures_quiet`): the problems are the report.
    """
    with expected_failures_quiet():
        return _find_unusable_rows(manifest, options, preprocessor)


def _find_unusable_rows(manifest, options, preprocessor):
    decode = None
    if preprocessor is not None and hasattr(preprocessor, "decode_example"):
        decode = _without_autograph_if_ours(preprocessor.decode_example, preprocessor.feature_preprocessors.values())
    ds = _mapped_rows(manifest, options, decode=decode, check=decode is None).ignore_errors()
    suspects = set(range(len(manifest)))
    if decode is None:
        for element in ds.map(lambda index, *rest: index).batch(1024):
            suspects.difference_update(element.numpy().tolist())
    else:
        def unusable(index, decoded, filled, ahead, *label):
            _, statuses = preprocessor.process_decoded_batch_with_status(decoded, filled, {})
            bad = [filled[f] & tf.not_equal(statuses[f], OK) & tf.not_equal(statuses[f], EMPTY) for f in manifest.features]
            return index, tf.reduce_any(tf.stack(bad), axis=0)

        unusable = _without_autograph_if_ours(unusable, preprocessor.feature_preprocessors.values())
        for index, bad in ds.ragged_batch(PREPROCESS_CHUNK).map(unusable).ignore_errors():
            suspects.difference_update(index.numpy()[~bad.numpy()].tolist())
    problems = {}
    for index in sorted(suspects):
        problem = _row_problem(manifest, options, preprocessor, index)
        if problem is not None:
            problems[index] = problem
    return problems


def _without_autograph_if_ours(fn, components):
    """``fn`` with autograph off when every component (modality, preprocessor) is keras_mm's own.

    keras_mm's loaders and preprocessors are plain TensorFlow ops (explicit
    ``tf.cond``), so converting them only costs time: seconds per dataset.
    A user's class may rely on autograph (a Python ``if`` on a tensor) and
    keeps it.
    """
    if all(type(c).__module__.startswith("keras_mm.") for c in components):
        return tf.autograph.experimental.do_not_convert(fn)
    return fn


def _raise_naming_failed_rows(ds, manifest, retry, deterministic, keep_index=False):
    """Make a row that fails to load raise ``ValueError`` naming the manifest line, column and file.

    A graph has no try/except. Failing rows are dropped (``ignore_errors``,
    which logs the op's error) and noticed from the row indices that arrive:
    in manifest order a skipped index is the failed row, found at once;
    otherwise the count is checked at the end of the epoch (an end marker
    is read only when rows are missing: ``take(n)`` stops before it). The
    row is then loaded again eagerly (``retry(index)``), which raises with
    the line, column and file. The index is dropped from the elements here
    unless ``keep_index``. This costs two ops per row; wrapping each row's
    loading in its own one-element dataset halved throughput.
    """
    n = len(manifest)
    end = tf.data.Dataset.from_tensors(tf.nest.map_structure(_empty_value, ds.element_spec))
    end = end.map(lambda index, *rest: (tf.constant(-1, tf.int64), *rest))

    reported = {}  # (expected, count, total) -> the error raised for it

    def report(expected, count, total):
        # The stages downstream keep pulling after the first error (~30 times for one bad file), and the
        # scan's state does not advance past a failure: each pull arrives with the same state. Re-raise the
        # first error's message at once, without the eager retry (~0.3 s each) and its chained traceback.
        key = (int(expected), int(count), int(total))
        if key in reported:
            raise ValueError(str(reported[key])) from None
        try:
            _retry_candidates(expected, count, total)
        except Exception as error:
            reported[key] = error
            raise

    def _retry_candidates(expected, count, total):
        if deterministic:
            candidates = [int(expected)]
        elif n - count == 1:
            candidates = [n * (n - 1) // 2 - int(total)]  # the one index whose sum is missing
        else:
            candidates = range(n)
        for index in candidates:
            retry(index)  # raises ValueError naming the row
        raise ValueError(f"{manifest.path}: {n - int(count)} row(s) failed to load in the input pipeline (the logged error "
                         f"says why) but load when retried (first candidate: line {manifest.line_numbers[candidates[0]]}).")

    @tf.autograph.experimental.do_not_convert
    def check(state, element):
        expected, count, total = state
        index = element[0]
        at_end = index < 0
        skipped = tf.logical_and(tf.logical_not(at_end), tf.not_equal(index, expected)) if deterministic else False
        failed = tf.logical_or(skipped, tf.logical_and(at_end, count < n))
        checked = tf.cond(failed, lambda: tf.numpy_function(report, [expected, count, total], tf.bool, stateful=True),
                          lambda: tf.constant(True))
        with tf.control_dependencies([checked]):
            example = tf.nest.map_structure(tf.identity, element if keep_index else element[1:])
            return (index + 1, count + 1, total + tf.maximum(index, 0)), example if len(example) > 1 else example[0]

    state = (tf.constant(0, tf.int64),) * 3
    return ds.ignore_errors(log_warning=True).concatenate(end).scan(state, check).take(n)


def _empty_value(spec):
    shape = [d or 0 for d in spec.shape.as_list()]
    return tf.fill(shape, "") if spec.dtype == tf.string else tf.zeros(shape, spec.dtype)
