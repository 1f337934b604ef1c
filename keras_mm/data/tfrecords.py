"""Raw examples in TFRecord shards: write a manifest once, train from the shards on many workers."""

import json
import os
import posixpath

import numpy as np
import tensorflow as tf

from keras_mm.data.manifest import Manifest, finish_dataset, model_feature_columns, name_head_classes
from keras_mm.modalities import get_modality

__all__ = ["METADATA_FILE", "from_tfrecords", "read_tfrecords_metadata", "write_tfrecords"]

#: the JSON sidecar beside the shards: features and their modalities, class names, shard list
METADATA_FILE = "keras_mm_tfrecords.json"
_FORMAT_VERSION = 1
_LABEL_KEY = "label"
#: shards read at once (each holds a read buffer); with at most this many per worker, order is the manifest's
MAX_OPEN_SHARDS = 64


def _join(directory, name):
    return posixpath.join(directory, name) if "://" in directory else os.path.join(directory, name)


def _dirname(path):
    return posixpath.dirname(path) if "://" in path else os.path.dirname(path)


def _raw_source(source, model, sample_rate):
    """``(raw dataset, manifest, load options)`` from a manifest path, a ``Manifest`` or a raw ``from_manifest`` dataset."""
    if isinstance(source, (str, os.PathLike)):
        source = Manifest(source, modalities=getattr(model, "modalities", None))
    if isinstance(source, Manifest):
        options = source.load_options(model, sample_rate)
        return source.raw_dataset(options), source, options
    manifest = getattr(source, "manifest", None)
    if not isinstance(source, tf.data.Dataset) or manifest is None:
        raise ValueError(f"write_tfrecords takes a manifest path, a keras_mm.data.Manifest or a raw dataset from "
                         f"keras_mm.data.from_manifest; got {type(source).__name__}.")
    expected = manifest.raw_signature()
    spec = source.element_spec[0] if manifest.labels is not None else source.element_spec
    if not isinstance(spec, dict) or set(spec) != set(expected) or any(spec[f].dtype != expected[f].dtype for f in expected):
        raise ValueError("write_tfrecords needs raw, unbatched examples: call from_manifest without model=, "
                         "preprocessor= or batch_size= (pass the model to write_tfrecords for its sample rates).")
    return source, manifest, source.load_options


def write_tfrecords(source, out_dir, num_shards=8, model=None, sample_rate=None):
    """Write raw examples to TFRecord shards plus a JSON sidecar (:data:`METADATA_FILE`).

    Each record holds one row: encoded image bytes as in the file, text,
    audio as float32 at the model's sample rate (the start of each clip that
    the model's window of ``num_samples`` keeps, plus 0.1 s), other modalities through
    ``Modality.to_feature``, and the label id (or multi-hot vector). Row
    ``i`` goes to shard ``i % num_shards``, so reading the shards round-robin
    gives the manifest order, and ``W`` workers that each read every
    ``W``-th shard read every ``W``-th row. Files are written through
    ``tf.io`` (``gs://``, ``s3://`` where those filesystems are installed).

    Args:
        source: a manifest path, a :class:`keras_mm.data.Manifest`, or a raw
            (unbatched, not preprocessed) dataset from ``from_manifest``.
        out_dir: directory for the shards and the sidecar (created).
        num_shards: number of shard files; at least the number of workers
            that will read them.
        model: gives the audio sample rates (and modalities, for a path).
        sample_rate: audio rate when no model gives it (default 16000).

    Returns:
        the sidecar metadata (a dict; also written to ``out_dir``).

    Example:
        >>> meta = keras_mm.data.write_tfrecords(keras_mm.datasets.sample_manifest_path(), "shards", num_shards=2)
        >>> meta["num_examples"], [s["examples"] for s in meta["shards"]], meta["features"]["audio"]
        (350, [175, 175], 'audio')
    """
    if not isinstance(num_shards, int) or num_shards < 1:
        raise ValueError(f"num_shards={num_shards!r} must be a positive integer.")
    raw, manifest, options = _raw_source(source, model, sample_rate)
    features = list(manifest.features)
    modalities = {f: get_modality(manifest.modalities[f]) for f in features}
    label_spec = raw.element_spec[1] if manifest.labels is not None else None
    tf.io.gfile.makedirs(out_dir)
    names = [f"shard-{i:05d}-of-{num_shards:05d}.tfrecord" for i in range(num_shards)]
    writers = [tf.io.TFRecordWriter(_join(out_dir, name)) for name in names]
    counts = [0] * num_shards
    try:
        for index, element in enumerate(raw.as_numpy_iterator()):
            example, label = element if label_spec is not None else (element, None)
            record = {f: modalities[f].to_feature(example[f]) for f in features}
            if label is not None:
                values = np.asarray(label).reshape(-1)
                record[_LABEL_KEY] = (tf.train.Feature(float_list=tf.train.FloatList(value=values)) if manifest.multilabel
                                      else tf.train.Feature(int64_list=tf.train.Int64List(value=values)))
            writers[index % num_shards].write(tf.train.Example(features=tf.train.Features(feature=record)).SerializeToString())
            counts[index % num_shards] += 1
    finally:
        for writer in writers:
            writer.close()
    metadata = {
        "format": _FORMAT_VERSION,
        "features": {f: manifest.modalities[f] for f in features},
        "load_options": {f: options.get(f, {}) for f in features},
        "label": None if label_spec is None else {"shape": label_spec.shape.as_list(), "dtype": label_spec.dtype.name},
        "multilabel": bool(manifest.multilabel),
        "class_names": manifest.class_names,
        "num_examples": sum(counts),
        "shards": [{"file": name, "examples": count} for name, count in zip(names, counts)],
        "source": {"manifest": manifest.path, "split": manifest.split},
    }
    # written last: a directory without it is an unfinished write and is refused by from_tfrecords
    with tf.io.gfile.GFile(_join(out_dir, METADATA_FILE), "w") as f:
        json.dump(metadata, f, indent=1)
    return metadata


def read_tfrecords_metadata(path):
    """``(metadata dict, sorted shard paths)`` for a directory written by :func:`write_tfrecords` or a glob of its shards.

    Example:
        >>> _ = keras_mm.data.write_tfrecords(keras_mm.datasets.sample_manifest_path(), "shards", num_shards=2)
        >>> meta, files = read_tfrecords_metadata("shards")
        >>> meta["class_names"], [os.path.basename(f) for f in files]
        (None, ['shard-00000-of-00002.tfrecord', 'shard-00001-of-00002.tfrecord'])
    """
    path = os.fspath(path)
    directory = path if tf.io.gfile.isdir(path) else _dirname(path)
    sidecar = _join(directory, METADATA_FILE)
    if not tf.io.gfile.exists(sidecar):
        raise ValueError(f"{sidecar} not found: from_tfrecords reads shards written by keras_mm.data.write_tfrecords "
                         f"(the sidecar is written last, so its absence may also mean an unfinished write).")
    with tf.io.gfile.GFile(sidecar, "r") as f:
        metadata = json.load(f)
    if path == directory:
        files = [_join(directory, s["file"]) for s in metadata["shards"]]
    else:
        files = sorted(tf.io.gfile.glob(path))
    if not files:
        raise ValueError(f"No TFRecord shards match {path}.")
    return metadata, files


def _num_workers(strategy):
    """Workers of a multi-worker strategy (``strategy``, the one in scope, or ``TF_CONFIG``); 1 otherwise."""
    if strategy is None and tf.distribute.has_strategy():
        strategy = tf.distribute.get_strategy()
    if strategy is not None:
        resolver = getattr(strategy, "cluster_resolver", None)
        cluster = resolver.cluster_spec().as_dict() if resolver is not None else {}
    else:  # not built yet: keras_mm.train(strategy="auto") goes multi-worker when TF_CONFIG names several workers
        cluster = json.loads(os.environ.get("TF_CONFIG") or "{}").get("cluster", {})
    return max(1, len(cluster.get("worker", [])) + len(cluster.get("chief", [])))


def _check_model(metadata, model, features):
    """The model's features must be stored, with its sample rates and class names."""
    missing = [f for f in features if f not in metadata["features"]]
    if missing:
        raise ValueError(f"The model's features {missing} are not in the TFRecords. Stored: {', '.join(metadata['features'])}")
    for feature in features:
        encoder = (getattr(model, "feature_encoders", None) or {}).get(feature)
        wanted = get_modality(metadata["features"][feature]).load_options(encoder)
        stored = metadata["load_options"].get(feature, {})
        # audio stored for a window at least as long (or whole clips, written before windows were stored) serves a shorter one
        window, stored_window = wanted.pop("num_samples", None), stored.get("num_samples")
        long_enough = window is None or stored_window is None or stored_window >= window
        if wanted != {k: v for k, v in stored.items() if k != "num_samples"} or not long_enough:
            wanted = {**wanted, "num_samples": window} if window is not None else wanted
            raise ValueError(f"feature {feature!r} was written with {stored} but the model needs {wanted}: "
                             f"write the shards again with write_tfrecords(..., model=model).")
    names = getattr(model, "class_names", None)
    if names and metadata["class_names"] and list(names) != list(metadata["class_names"]):
        raise ValueError(f"The model's class_names {list(names)} differ from the TFRecords' {metadata['class_names']}.")
    num_classes = getattr(getattr(model, "head", None), "num_classes", None)
    if num_classes is not None and metadata["class_names"] and len(metadata["class_names"]) != num_classes:
        raise ValueError(f"The TFRecords' labels have {len(metadata['class_names'])} classes {metadata['class_names'][:20]} "
                         f"but the model's head has num_classes={num_classes}.")


def _parser(metadata, features):
    modalities = {f: get_modality(metadata["features"][f]) for f in features}
    spec = {f: modalities[f].feature_spec() for f in features}
    label = metadata["label"]
    if label is not None:
        spec[_LABEL_KEY] = tf.io.FixedLenFeature(label["shape"], tf.as_dtype(label["dtype"]))

    def parse(record):
        parsed = tf.io.parse_single_example(record, spec)
        example = {f: modalities[f].parse_feature(parsed[f]) for f in features}
        return example if label is None else (example, parsed[_LABEL_KEY])

    return parse


def from_tfrecords(
    path,
    *,
    model=None,
    features=None,
    preprocessor=None,
    batch_size=None,
    shuffle=False,
    shuffle_buffer=10_000,
    seed=0,
    cache=False,
    augment=None,
    strategy=None,
    deterministic=True,
):
    """A ``tf.data.Dataset`` from TFRecord shards written by :func:`write_tfrecords` (the arguments of ``from_manifest``).

    Raw examples (or, with ``model``/``preprocessor``, the model's numeric
    inputs) and labels, as ``from_manifest`` gives them for the same rows.
    The dataset is sharded **by file** under ``MultiWorkerMirroredStrategy``
    (``auto_shard_policy = FILE``): with ``strategy.experimental_distribute_dataset``
    each worker reads only its shards. Without shuffling, examples come in
    manifest order (up to :data:`MAX_OPEN_SHARDS` shards per worker), so
    ``W`` workers read, step by step, the rows that one process would.

    Args:
        path: the directory written by ``write_tfrecords`` or a glob of its shards (``gs://...`` works).
        model: supplies the preprocessor; its features, sample rates and class
            names must match the shards'.
        features: feature names to read (default: the model's, else all stored).
        shuffle: shuffle shard order and examples (``shuffle_buffer`` of them) every epoch, seeded.
        preprocessor, batch_size, seed, cache, augment, strategy, deterministic: as in ``from_manifest``.

    Returns:
        the dataset, with the sidecar as ``ds.metadata`` and ``ds.class_names``.

    Raises:
        ValueError: fewer shards than workers (each worker reads whole
            shards), a feature that is not stored, or a model whose sample rate
            or class names differ from the shards'.

    Example:
        >>> _ = keras_mm.data.write_tfrecords(keras_mm.datasets.sample_manifest_path(), "shards", num_shards=4)
        >>> model = keras_mm.build_model(preset="tiny_attention", num_classes=10)
        >>> x, y = next(iter(keras_mm.data.from_tfrecords("shards", model=model, batch_size=8)))
        >>> x["audio"].shape, y.numpy()[:3]
        (TensorShape([8, 4000]), array([0, 0, 8]))
    """
    metadata, files = read_tfrecords_metadata(path)
    if features is None:
        features = list(model.features) if model is not None else list(metadata["features"])
    if model is not None:
        features = list(model_feature_columns(features, model, "TFRecords"))  # the model's features, no more, no less
        _check_model(metadata, model, features)
        name_head_classes(getattr(model, "head", None), metadata["class_names"])  # as from_manifest does
        preprocessor = preprocessor or model.preprocessor
    missing = [f for f in features if f not in metadata["features"]]
    if missing:
        raise ValueError(f"features {missing} are not in the TFRecords. Stored: {', '.join(metadata['features'])}")
    workers = _num_workers(strategy)
    if len(files) < workers:
        raise ValueError(f"{len(files)} TFRecord shard(s) for {workers} workers: each worker reads whole shards, so write "
                         f"at least {workers} (write_tfrecords(..., num_shards={workers}) or a multiple of it).")
    ds = tf.data.Dataset.from_tensor_slices(files)
    if shuffle:
        ds = ds.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)
    ds = ds.interleave(tf.data.TFRecordDataset, cycle_length=min(len(files), MAX_OPEN_SHARDS), block_length=1,
                       num_parallel_calls=tf.data.AUTOTUNE, deterministic=deterministic)
    ds = ds.map(_parser(metadata, features), num_parallel_calls=tf.data.AUTOTUNE, deterministic=deterministic)
    ds = finish_dataset(
        ds, {f: metadata["features"][f] for f in features}, preprocessor=preprocessor, batch_size=batch_size,
        shuffle=shuffle, shuffle_buffer=min(shuffle_buffer, metadata["num_examples"]) or 1, seed=seed, cache=cache,
        augment=augment, strategy=strategy, deterministic=deterministic,
    )
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.FILE
    ds = ds.with_options(options)
    ds.metadata, ds.class_names = metadata, metadata["class_names"]
    return ds
