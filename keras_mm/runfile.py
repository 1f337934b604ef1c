"""Run files: one YAML file saying what ``keras-mm train`` and ``keras-mm evaluate`` do.

A run file has up to five sections; only ``data`` is always required, and
``train`` needs ``model`` too::

    model:     # the keyword arguments of keras_mm.build_model (preset: plus overrides, or encoders: ...)
    data:      # manifest, split names, label column, class_names, cache / shuffle / augment, on_error
    training:  # epochs, batch_size, learning_rate, strategy, checkpoint_dir, seed,
               # and any other keyword argument of keras_mm.train (early_stopping, mixed_precision, ...)
    output:    # dir: where model.keras, history.json, run.yaml (the run as trained) and report/ go
    export:    # saved_model: TF Serving base directory; tflite: a .tflite file

Relative paths are relative to the run file's folder, so a run file works from
any working directory. ``RunFile.load`` checks every key and value and raises
:class:`RunFileError` naming the key and the allowed keys or values; the
model section is checked against ``build_model`` and the registries.
"""

import contextlib
import dataclasses
import inspect
import json
import logging
import os

import keras
import yaml

from keras_mm.config import ModelConfig
from keras_mm.data.manifest import Manifest, check_manifest, from_manifest, split_counts
from keras_mm.evaluation.report import evaluate
from keras_mm.export import export_saved_model, export_tflite
from keras_mm.models.builder import build_model
from keras_mm.presets import preset_config
from keras_mm.registry import ENCODERS, FUSIONS, HEADS, constructor_arguments, validate_kwargs
from keras_mm.training.trainer import train

__all__ = ["RunFile", "RunFileError", "run_check", "run_evaluation", "run_training"]


class RunFileError(ValueError):
    """A run file that cannot be used; the message names the file and the key."""


class _Invalid(Exception):
    """Raised by a value check with what the value must be (the caller adds file, key and value)."""


def _positive_int(value):
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise _Invalid("must be a positive integer")
    return value


def _non_negative_int(value):
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _Invalid("must be an integer >= 0")
    return value


def _positive_number(value):
    if value is None:
        return None
    # YAML 1.1 reads 1e-3 (no dot) as a string: accept the numbers people write.
    try:
        number = float(value) if isinstance(value, (int, float, str)) and not isinstance(value, bool) else None
    except ValueError:
        number = None
    if number is None or not number > 0:
        raise _Invalid("must be a positive number")
    return number


def _text(value):
    if not isinstance(value, str) or not value:
        raise _Invalid("must be a non-empty string")
    return value


def _optional_text(value):
    return None if value is None else _text(value)


def _flag(value):
    if not isinstance(value, bool):
        raise _Invalid("must be true or false")
    return value


def _names(value):
    if value is None:
        return None
    if not isinstance(value, list) or not value or not all(isinstance(v, (str, int)) and not isinstance(v, bool) for v in value):
        raise _Invalid("must be a list of class names")
    return [str(v) for v in value]


def _features(value):
    if value is None:
        return None
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    if isinstance(value, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        return value
    raise _Invalid("must be a list of column names or a mapping feature: column")


def _choice(*allowed):
    def check(value):
        if value not in allowed:
            raise _Invalid("must be one of " + ", ".join("null" if a is None else str(a) for a in allowed))
        return value

    return check


def _field(default=dataclasses.MISSING, check=None, path=False):
    """A section field: its default, its value check and whether it is a path (made relative to the run file)."""
    return dataclasses.field(default=default, metadata={"check": check, "path": path})


#: ``training.checkpoint_dir`` left out: ``<output.dir>/checkpoints`` (``null`` turns checkpoints off).
_UNDER_OUTPUT = "<output.dir>/checkpoints"


@dataclasses.dataclass
class DataSection:
    """``data:`` which manifest, which splits, and how the datasets are built (see ``keras_mm.data.from_manifest``)."""

    manifest: str = _field(check=_text, path=True)
    train_split: str = _field("train", _optional_text)
    validation_split: str = _field(None, _optional_text)
    test_split: str = _field(None, _optional_text)
    label: str = _field("label", _text)
    features: object = _field(None, _features)
    class_names: list = _field(None, _names)
    cache: bool = _field(True, _flag)
    shuffle: bool = _field(True, _flag)
    augment: bool = _field(False, _flag)
    on_error: str = _field("raise", _choice("raise", "skip"))  # "skip": drop (and log) rows whose files do not load or decode


@dataclasses.dataclass
class TrainingSection:
    """``training:`` the options of ``keras_mm.train``; ``options`` holds the other ``train`` arguments given."""

    epochs: int = _field(10, _positive_int)
    batch_size: int = _field(32, _positive_int)
    learning_rate: float = _field(None, _positive_number)  # None: keras_mm.train's default (the fusion's recipe)
    strategy: str = _field("default", _choice("default", "auto", "mirrored", "multi_worker"))
    checkpoint_dir: str = _field(_UNDER_OUTPUT, _optional_text, path=True)
    seed: int = _field(0, _non_negative_int)
    options: dict = dataclasses.field(default_factory=dict, metadata={"internal": True})


@dataclasses.dataclass
class OutputSection:
    """``output:`` the run's folder (model.keras, history.json, run file copy, report/, checkpoints/)."""

    dir: str = _field(None, _optional_text, path=True)


@dataclasses.dataclass
class ExportSection:
    """``export:`` what to export after training (nothing by default)."""

    saved_model: str = _field(None, _optional_text, path=True)
    tflite: str = _field(None, _optional_text, path=True)
    # int8 calibrates on shuffled, unaugmented batches of data.train_split (export_tflite's representative_data)
    tflite_quantization: str = _field(None, _choice(None, "dynamic", "float16", "int8"))
    warmup: bool = _field(True, _flag)


_SECTIONS = {"model": None, "data": DataSection, "training": TrainingSection, "output": OutputSection, "export": ExportSection}
# train() arguments the run file sets itself (datasets, the model, batch size, display).
_TRAIN_ARGUMENTS_SET_HERE = {"model", "train_data", "validation_data", "global_batch_size", "verbose"}


def _train_options():
    """The ``keras_mm.train`` keyword arguments a ``training:`` section may pass through, read from its signature."""
    own = {f.name for f in dataclasses.fields(TrainingSection)}
    params = inspect.signature(train).parameters
    return sorted(n for n, p in params.items() if p.kind != p.VAR_KEYWORD and n not in own | _TRAIN_ARGUMENTS_SET_HERE)


def _model_keys():
    return sorted(n for n in inspect.signature(build_model).parameters if n != "config")


def _resolve_path(value, base_dir):
    if value is None or value == _UNDER_OUTPUT or "://" in value:
        return value
    return os.path.normpath(os.path.join(base_dir, os.path.expanduser(value)))


def _mapping(value, source, where):
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise RunFileError(f"{source}: {where} must be a mapping of keys to values, got {type(value).__name__} {value!r}.")
    return value


#: encoder settings that name local files or folders (a vocabulary file, a checkpoint, weights, a hub model dir)
ENCODER_PATH_KEYS = ("vocabulary", "checkpoint", "weights", "handle")


def _resolve_encoder_paths(model, base_dir):
    """``model`` with encoder settings that are relative paths existing under ``base_dir`` made relative to it.

    A value not found there (a hub handle, a path relative to the working
    directory, a vocabulary given as a list) is kept as it is.
    """
    encoders = model.get("encoders")
    if not isinstance(encoders, dict):
        return model
    resolved = {}
    for feature, spec in encoders.items():
        if isinstance(spec, dict):
            spec = dict(spec)
            for key in ENCODER_PATH_KEYS:
                value = spec.get(key)
                if isinstance(value, str) and "://" not in value and not os.path.isabs(os.path.expanduser(value)):
                    candidate = _resolve_path(value, base_dir)
                    if os.path.exists(candidate):
                        spec[key] = candidate
        resolved[feature] = spec
    return {**model, "encoders": resolved}


def _parse_section(cls, values, source, name, base_dir, extra_keys=()):
    """Check ``values`` against section ``cls``; unknown keys and bad values raise naming ``name.key``."""
    values = _mapping(values, source, name)
    fields = {f.name: f for f in dataclasses.fields(cls) if not f.metadata.get("internal")}
    unknown = sorted(set(values) - set(fields) - set(extra_keys))
    if unknown:
        allowed = ", ".join(sorted(set(fields) | set(extra_keys)))
        raise RunFileError(f"{source}: unknown key {name}.{unknown[0]}. Allowed keys in {name}: {allowed}.")
    parsed = {}
    for key, field in fields.items():
        if key not in values:
            if field.default is dataclasses.MISSING:
                raise RunFileError(f"{source}: {name}.{key} is required.")
            continue
        try:
            parsed[key] = field.metadata["check"](values[key])
        except _Invalid as error:
            raise RunFileError(f"{source}: {name}.{key} {error}, got {values[key]!r}.") from None
        if field.metadata["path"]:
            parsed[key] = _resolve_path(parsed[key], base_dir)
    return cls(**parsed)


def _apply_overrides(document, overrides, source):
    """``["training.epochs=1", ...]``: set nested keys; each value is read as YAML (``1`` is a number)."""
    for item in overrides:
        dotted, sep, text = item.partition("=")
        keys = dotted.split(".")
        if not sep or len(keys) < 2 or not all(keys):
            raise RunFileError(f"--set {item!r}: expected SECTION.KEY=VALUE, e.g. training.epochs=1.")
        target = document
        for key in keys[:-1]:
            target = target.setdefault(key, {})
            _mapping(target, source, ".".join(keys[:-1]))
        target[keys[-1]] = yaml.safe_load(text)
    return document


@dataclasses.dataclass
class RunFile:
    """A checked run file: the ``model`` keyword arguments and the other sections as dataclasses.

    Args:
        source: the run file's path (named in every error).
        model: keyword arguments of :func:`keras_mm.build_model` (``preset``, ``encoders``, ``fusion``, ...).
        data, training, output, export: the parsed sections.

    Example:
        >>> from keras_mm.runfile import RunFile
        >>> run = RunFile.from_dict(
        ...     {"model": {"preset": "tiny_concat"}, "data": {"manifest": keras_mm.datasets.sample_manifest_path()},
        ...      "training": {"epochs": 2}}, source="run.yaml")
        >>> run.training.epochs, run.training.strategy, run.model_config().num_classes
        (2, 'default', 10)
        >>> RunFile.from_dict({"data": {"manifest": "m.csv"}, "training": {"epochs": "ten"}}, source="run.yaml")
        Traceback (most recent call last):
        keras_mm.runfile.RunFileError: run.yaml: training.epochs must be a positive integer, got 'ten'.
    """

    source: str
    model: dict
    data: DataSection
    training: TrainingSection
    output: OutputSection
    export: ExportSection

    @classmethod
    def load(cls, path, overrides=()):
        """Read and check the YAML run file at ``path``; ``overrides`` are ``"section.key=value"`` strings."""
        try:
            with open(path, encoding="utf-8") as f:
                document = yaml.safe_load(f)
        except OSError as error:
            raise RunFileError(f"{path}: cannot read the run file ({error.strerror}).") from None
        except yaml.YAMLError as error:
            raise RunFileError(f"{path}: not valid YAML: {error}") from None
        document = _apply_overrides(_mapping(document, path, "the run file"), overrides, path)
        return cls.from_dict(document, source=path, base_dir=os.path.dirname(os.path.abspath(path)))

    @classmethod
    def from_dict(cls, document, source="<run file>", base_dir="."):
        """Check a run file already read into a dict; relative paths are taken from ``base_dir``."""
        document = _mapping(document, source, "the run file")
        unknown = sorted(set(document) - set(_SECTIONS))
        if unknown:
            raise RunFileError(f"{source}: unknown section {unknown[0]!r}. Allowed sections: {', '.join(_SECTIONS)}.")
        if "data" not in document:
            raise RunFileError(f"{source}: the data section is required (at least data.manifest).")
        model = dict(_mapping(document.get("model"), source, "model"))
        unknown = sorted(set(model) - set(_model_keys()))
        if unknown:
            raise RunFileError(f"{source}: unknown key model.{unknown[0]}. Allowed keys in model "
                               f"(keras_mm.build_model's arguments): {', '.join(_model_keys())}.")
        model = _resolve_encoder_paths(model, base_dir)
        training_values = _mapping(document.get("training"), source, "training")
        training = _parse_section(TrainingSection, training_values, source, "training", base_dir, _train_options())
        training.options = {k: v for k, v in training_values.items() if k in _train_options()}
        for key, value in training.options.items():
            if key.endswith("_dir") and isinstance(value, str):
                training.options[key] = _resolve_path(value, base_dir)
        output = _parse_section(OutputSection, document.get("output"), source, "output", base_dir)
        if output.dir is None:
            stem = os.path.splitext(os.path.basename(source))[0] if source.endswith((".yaml", ".yml")) else "run"
            output.dir = _resolve_path(os.path.join("runs", stem), base_dir)
        if training.checkpoint_dir == _UNDER_OUTPUT:
            training.checkpoint_dir = os.path.join(output.dir, "checkpoints")
        run = cls(source, model, _parse_section(DataSection, document["data"], source, "data", base_dir),
                  training, output, _parse_section(ExportSection, document.get("export"), source, "export", base_dir))
        if model:
            run.model_config(infer_classes=False)  # a bad model section fails now, before any data is read
        return run

    def to_dict(self):
        """The run with every default filled in and paths resolved: what ``<output.dir>/run.yaml`` holds.

        Example:
            >>> from keras_mm.runfile import RunFile
            >>> run = RunFile.from_dict({"data": {"manifest": "m.csv"}, "training": {"early_stopping": 3}}, base_dir="/runs")
            >>> run.to_dict()["training"]["early_stopping"], run.to_dict()["data"]["manifest"]
            (3, '/runs/m.csv')
            >>> RunFile.from_dict(run.to_dict()) == run
            True
        """
        training = dataclasses.asdict(self.training)
        training.update(training.pop("options"))
        return {"model": self.model, "data": dataclasses.asdict(self.data), "training": training,
                "output": dataclasses.asdict(self.output), "export": dataclasses.asdict(self.export)}

    def model_config(self, infer_classes=True):
        """The :class:`ModelConfig` of the ``model`` section; a classifier without classes gets the data's."""
        given = dict(self.model)
        preset = given.pop("preset", None)
        if not preset and "encoders" not in given:
            raise RunFileError(f"{self.source}: model needs encoders (a mapping feature: encoder) or a preset; "
                               "keras-mm list shows the registered names.")
        try:
            config = ModelConfig.from_dict(preset_config(preset, **given) if preset else given)
        except ValueError as error:
            raise RunFileError(f"{self.source}: model: {error}") from None
        head = self._check_components(config)
        names = self.data.class_names
        if names and config.class_names and names != config.class_names:
            raise RunFileError(f"{self.source}: model.class_names and data.class_names differ; give them once, in data.")
        if infer_classes and head is not None and "class_names" in constructor_arguments(head)[0]:
            if names and config.class_names is None and config.num_classes in (None, len(names)):
                config.class_names, config.num_classes = names, len(names)
            elif config.num_classes is None and head.requires_num_classes:
                config.class_names, config.num_classes = self._manifest_classes()
        return config

    def _check_components(self, config):
        """Look up every component and check its arguments (as ``build_model`` will); return the head class or None."""
        checks = [(ENCODERS, spec, f"model.encoders.{feature}", ()) for feature, spec in config.encoders.items()]
        checks.append((FUSIONS, config.fusion, "model.fusion", ()))
        if config.head is not None:
            checks.append((HEADS, config.head, "model.head", ("num_classes", "class_names")))
        cls = None
        try:
            for registry, spec, field, filled_in in checks:
                cls = registry.get(spec["name"], field=field)
                arguments = {k: v for k, v in spec.items() if k != "name"}
                validate_kwargs(cls, arguments, field, provided_by_builder=("name", *filled_in))
        except ValueError as error:
            raise RunFileError(f"{self.source}: {error}") from None
        return cls if config.head is not None else None

    def _manifest_classes(self):
        """(class names, number of classes) of the manifest's labels over all splits."""
        try:
            # the labels only: a missing file is check's and training's business (on_error decides), not this one's
            # quiet: check_manifest and from_manifest read the rows again and log the skipped ones (twice, before)
            with _keras_mm_warnings_off():
                manifest = Manifest(self.data.manifest, self.data.features, self.data.label, on_error="skip")
        except ValueError as error:
            raise RunFileError(f"{self.source}: data.manifest: {error}") from None
        if manifest.class_names is not None:
            return manifest.class_names, len(manifest.class_names)
        return None, int(manifest.labels.max()) + 1

    def check_splits(self):
        """Raise :class:`RunFileError` unless every split the run names is in the manifest (before training, not after it)."""
        try:
            counts = split_counts(self.data.manifest)
        except ValueError as error:
            raise RunFileError(f"{self.source}: data.manifest: {error}") from None
        for key in ("train_split", "validation_split", "test_split"):
            split = getattr(self.data, key)
            if split is None:
                continue
            if counts is None:
                raise RunFileError(f"{self.source}: data.{key}={split!r}, but {self.data.manifest} has no 'split' column; "
                                   f"set data.{key}: null" + (" to use every row" if key == "train_split" else ""))
            if split not in counts:
                available = ", ".join(f"{name} ({n} rows)" for name, n in counts.items())
                raise RunFileError(f"{self.source}: data.{key}={split!r} is not a split of {self.data.manifest}. "
                                   f"Splits: {available}")

    def dataset(self, model, split, training=False, shuffle=None):
        """The batched ``from_manifest`` dataset of ``split`` for ``model`` (shuffled and augmented when ``training``).

        ``shuffle``: shuffle without augmenting (int8 calibration); the
        default follows ``training``. ``data.shuffle: false`` turns both off.
        """
        shuffle = training if shuffle is None else shuffle
        try:
            return from_manifest(
                self.data.manifest, self.data.features, self.data.label, model=model, split=split,
                batch_size=self.training.batch_size, shuffle=shuffle and self.data.shuffle, seed=self.training.seed,
                cache=self.data.cache, augment=(training and self.data.augment) or None, class_names=self.data.class_names,
                on_error=self.data.on_error,
            )
        except ValueError as error:
            raise RunFileError(f"{self.source}: data: {error}") from None

    def train_arguments(self):
        """The keyword arguments this run passes to ``keras_mm.train`` besides the model and the datasets."""
        strategy = None if self.training.strategy == "default" else self.training.strategy
        arguments = {"epochs": self.training.epochs, "strategy": strategy, "checkpoint_dir": self.training.checkpoint_dir}
        if self.training.learning_rate is not None:
            arguments["learning_rate"] = self.training.learning_rate
        return {**arguments, **self.training.options}


def run_check(run, model=None):
    """Every unusable row of the run's manifest (all splits), before training: ``[(line, problem)]``.

    The files are checked with the preprocessing of ``model``, or of the
    model the run file's ``model`` section builds (untrained: only its
    preprocessing is used), or, with neither, for loading and decoding.

    Example:
        >>> run = RunFile.from_dict({"model": {"preset": "tiny_attention", "num_classes": 10},
        ...                          "data": {"manifest": keras_mm.datasets.sample_manifest_path()}})
        >>> run_check(run)
        []
    """
    if model is None and run.model:
        model = build_model(run.model_config())
    try:
        return check_manifest(run.data.manifest, run.data.features, run.data.label, model=model,
                              class_names=run.data.class_names)
    except ValueError as error:
        raise RunFileError(f"{run.source}: data: {error}") from None


def run_training(run, verbose="auto"):
    """Train, save, evaluate and export as the run file says (what ``keras-mm train --config`` does).

    Writes to ``run.output.dir``: ``model.keras``, ``history.json``, ``run.yaml``
    (:meth:`RunFile.to_dict`: the run as trained), ``checkpoints/`` (a run started again resumes there) and,
    with a test or validation split, ``report/`` (``keras_mm.evaluate``'s
    report.json and plots). Then the exports of the ``export`` section.

    Args:
        run: a :class:`RunFile` with a ``model`` section.
        verbose: ``"auto"`` (progress bar on a terminal, one line per epoch otherwise), 0, 1 or 2.

    Returns:
        ``(model, report)``; ``report`` is ``None`` without a test or validation split.

    Example:
        >>> import os, tempfile
        >>> from keras_mm.runfile import RunFile, run_training
        >>> run = RunFile.from_dict(
        ...     {"model": {"preset": "tiny_concat"}, "training": {"epochs": 1, "batch_size": 60},
        ...      "data": {"manifest": keras_mm.datasets.sample_manifest_path()},  # test_split: also report/
        ...      "output": {"dir": tempfile.mkdtemp()}})
        >>> model, report = run_training(run, verbose=0)
        >>> sorted(os.listdir(run.output.dir)), model.class_names is None, model.output_shape
        (['checkpoints', 'history.json', 'model.keras', 'run.yaml'], True, (None, 10))
    """
    if not run.model:
        raise RunFileError(f"{run.source}: training needs a model section (model.preset or model.encoders).")
    run.check_splits()  # a misspelt test_split used to surface only after training
    keras.utils.set_random_seed(run.training.seed)
    config = run.model_config()
    validation = run.data.validation_split
    # The config itself, as a Python caller would pass it: train builds it in the strategy's scope
    # and adds what its options need (auxiliary heads for balance=).
    model, history = train(
        config, lambda m: run.dataset(m, run.data.train_split, training=True),
        (lambda m: run.dataset(m, validation)) if validation else None,
        verbose=verbose, **run.train_arguments(),
    )
    os.makedirs(run.output.dir, exist_ok=True)
    model.save(os.path.join(run.output.dir, "model.keras"))
    with open(os.path.join(run.output.dir, "history.json"), "w") as f:
        json.dump(history.history, f, indent=1)
    with open(os.path.join(run.output.dir, "run.yaml"), "w", encoding="utf-8") as f:
        f.write(f"# The run as trained: {run.source} with its defaults filled in and --set overrides applied.\n")
        yaml.safe_dump(run.to_dict(), f, sort_keys=False)
    _say(verbose, f"saved {os.path.join(run.output.dir, 'model.keras')}")
    report = None
    if run.data.test_split or validation:
        report = run_evaluation(run, model, history.history, verbose=verbose)
    export_model(run, model, verbose)
    return model, report


def run_evaluation(run, model=None, history=None, split=None, verbose=True, report_dir=None):
    """Evaluate a trained model on the run's test split and write ``report/`` (what ``keras-mm evaluate`` does).

    Args:
        run: a :class:`RunFile`.
        model: the model, or ``None`` for ``<output.dir>/model.keras``.
        history: per-epoch logs to plot, or ``None`` for ``<output.dir>/history.json`` when it exists.
        split: the split to score (default ``data.test_split``, else ``data.validation_split``).
        verbose: print the report's table and where it was written.
        report_dir: where to write; default ``<output.dir>/report`` for the run's own
            split, ``<output.dir>/report_<split>`` for another one (so scoring the
            validation split does not overwrite the test report). ``report.json``
            records the split.

    Returns:
        the :class:`EvaluationReport`.
    """
    own_split = run.data.test_split or run.data.validation_split
    split = split or own_split
    if split is None and split_counts(run.data.manifest) is not None:  # without a split column: every row is scored
        raise RunFileError(f"{run.source}: data.test_split (or data.validation_split) names no split to evaluate on.")
    if model is None:
        path = os.path.join(run.output.dir, "model.keras")
        if not os.path.isfile(path):
            raise RunFileError(f"{run.source}: no trained model at {path} (output.dir): run keras-mm train first.")
        model = keras.models.load_model(path, safe_mode=True)
    history_path = os.path.join(run.output.dir, "history.json")
    if history is None and os.path.isfile(history_path):
        with open(history_path) as f:
            history = json.load(f)
    report_dir = report_dir or os.path.join(run.output.dir, "report" if split == own_split else f"report_{split}")
    report = evaluate(model, run.dataset(model, split), output_dir=report_dir, history=history, verbose=False)
    with open(os.path.join(report_dir, "report.json")) as f:
        written = json.load(f)
    with open(os.path.join(report_dir, "report.json"), "w") as f:
        json.dump({**written, "split": split, "manifest": run.data.manifest}, f, indent=2)
    _say(verbose, f"{report}\nreport.json and plots of split {split!r} in {report_dir}")
    return report


def export_model(run, model, verbose=True):
    """The exports of the run's ``export`` section: a TF Serving SavedModel and/or a ``.tflite`` file; returns their paths."""
    paths = []
    if run.export.saved_model:
        warmup = model.preprocessor.example_raw(1) if run.export.warmup else None
        paths.append(export_saved_model(model, run.export.saved_model, warmup_samples=warmup))
    if run.export.tflite:
        os.makedirs(os.path.dirname(run.export.tflite) or ".", exist_ok=True)
        quantization = run.export.tflite_quantization
        calibration = run.dataset(model, run.data.train_split, shuffle=True) if quantization == "int8" else None
        export_tflite(model, run.export.tflite, quantization=quantization, representative_data=calibration)
        paths.append(run.export.tflite)
    for path in paths:
        _say(verbose, f"exported {path}")
    return paths


@contextlib.contextmanager
def _keras_mm_warnings_off():
    """keras_mm's log below ERROR muted for the block (its level restored after)."""
    log = logging.getLogger("keras_mm")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        log.setLevel(level)


def _say(verbose, message):
    if verbose:
        print(message, flush=True)
