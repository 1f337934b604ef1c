"""Choosing a ``tf.distribute`` strategy and feeding it exact global batches."""

import json
import os

import tensorflow as tf

STRATEGIES = ("auto", "mirrored", "multi_worker", None)

# One strategy per device set per process: a second MirroredStrategy over the
# same devices reuses collective instance keys and aborts with "Shape mismatch
# in the collective instance" (seen when train() runs twice in one notebook).
_STRATEGY_CACHE = {}


def resolve_strategy(strategy="auto"):
    """Return a ``tf.distribute.Strategy`` for a name (or pass one through).

    - ``"auto"``: ``MultiWorkerMirroredStrategy`` when ``TF_CONFIG`` names
      several workers, ``MirroredStrategy`` when more than one GPU (or logical
      device) is visible, else the default (single-device) strategy.
    - ``"mirrored"``: ``MirroredStrategy`` over all local GPUs (or logical CPUs).
    - ``"multi_worker"``: ``MultiWorkerMirroredStrategy`` configured by ``TF_CONFIG``.
    - ``None``: the default strategy.

    Example:
        >>> resolve_strategy(None).num_replicas_in_sync
        1
        >>> resolve_strategy("mirorred")
        Traceback (most recent call last):
        ValueError: strategy='mirorred' is not supported. Allowed: auto, mirrored, multi_worker, None, ...
    """
    if isinstance(strategy, tf.distribute.Strategy):
        return strategy
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy={strategy!r} is not supported. Allowed: auto, mirrored, multi_worker, None, or a tf.distribute.Strategy")
    if strategy == "auto":
        cluster = json.loads(os.environ.get("TF_CONFIG", "{}")).get("cluster", {})
        if len(cluster.get("worker", [])) + len(cluster.get("chief", [])) > 1:
            strategy = "multi_worker"
        elif len(tf.config.list_logical_devices("GPU")) > 1 or len(tf.config.list_logical_devices("CPU")) > 1:
            strategy = "mirrored"
        else:
            strategy = None
    if strategy == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        devices = tuple(d.name for d in (gpus or tf.config.list_logical_devices("CPU")))
        if ("mirrored", devices) not in _STRATEGY_CACHE:
            _STRATEGY_CACHE[("mirrored", devices)] = tf.distribute.MirroredStrategy(devices=list(devices))
        return _STRATEGY_CACHE[("mirrored", devices)]
    if strategy == "multi_worker":
        if "multi_worker" not in _STRATEGY_CACHE:
            _STRATEGY_CACHE["multi_worker"] = tf.distribute.MultiWorkerMirroredStrategy()
        return _STRATEGY_CACHE["multi_worker"]
    return tf.distribute.get_strategy()


def split_cpu(num_devices=2):
    """Split the CPU into ``num_devices`` logical devices (call before any TensorFlow op runs).

    Lets ``MirroredStrategy`` run several replicas on a machine without GPUs,
    for tests and for trying distribution code locally.

    Raises:
        RuntimeError: when TensorFlow has already run an op in this process
            (restart the kernel and call it first).

    Example:
        >>> # In a fresh process, first thing: split_cpu(2) gives MirroredStrategy 2 replicas.
        >>> split_cpu(2)  # this process has already run TensorFlow ops
        Traceback (most recent call last):
        RuntimeError: split_cpu(2) must run before any TensorFlow op in the process ...
    """
    cpus = tf.config.list_physical_devices("CPU")
    try:
        tf.config.set_logical_device_configuration(cpus[0], [tf.config.LogicalDeviceConfiguration()] * num_devices)
    except RuntimeError as error:
        raise RuntimeError(
            f"split_cpu({num_devices}) must run before any TensorFlow op in the process "
            f"(restart the kernel or process and call it first): {error}"
        ) from error


def is_chief(strategy):
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.cluster_spec().as_dict():
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    return task_type == "chief" or (task_type == "worker" and task_id == 0 and "chief" not in resolver.cluster_spec().as_dict())


def _sharded_by_file(dataset):
    return dataset.options().experimental_distribute.auto_shard_policy == tf.data.experimental.AutoShardPolicy.FILE


def distribute_global_batches(strategy, dataset, global_batch_size, pad_partial=False):
    """Distribute a dataset of **global** batches so every step sees exactly that global batch.

    Each worker keeps its slice of every global batch and splits it into one
    chunk per local replica, in order, so replica ``r`` of worker ``w`` gets
    rows ``[(w*R + r) * b, (w*R + r + 1) * b)`` with ``b = global / replicas``:
    the same examples per step as single-device training. Batches whose size
    does not split evenly (a final partial batch) are dropped with more than
    one replica, or with ``pad_partial`` (validation) padded to the global
    size with copies of their last row weighted 0: every batch then carries a
    sample weight (``(x, y, weight)``), so metrics count each row once.
    A dataset sharded by file (``from_tfrecords``) goes to
    ``strategy.experimental_distribute_dataset`` as is: each worker reads only its shards.

    Example:
        >>> ds = tf.data.Dataset.range(8).map(lambda i: tf.cast(i, tf.float32))
        >>> dist = distribute_global_batches(resolve_strategy(None), ds.batch(4), 4)
        >>> [float(tf.reduce_sum(batch)) for batch in dist]
        [6.0, 22.0]
    """
    replicas = strategy.num_replicas_in_sync
    if replicas == 1 or _sharded_by_file(dataset):
        # A FILE-sharded dataset (keras_mm.data.from_tfrecords) must reach tf.distribute untouched, so that
        # each worker reads only its own shards; its global batches are then split across replicas by it.
        return strategy.experimental_distribute_dataset(dataset)
    if global_batch_size % replicas:
        raise ValueError(f"global batch size {global_batch_size} does not split evenly across {replicas} replicas.")
    per_replica = global_batch_size // replicas

    def make(context):
        workers = context.num_input_pipelines
        local = replicas // workers
        start = context.input_pipeline_id * local * per_replica

        def full(*batch):
            first = tf.nest.flatten(batch)[0]
            return tf.shape(first)[0] == global_batch_size

        def padded(*batch):
            rows = tf.shape(tf.nest.flatten(batch)[0])[0]
            missing = global_batch_size - rows

            def pad(t):
                return tf.concat([t, tf.repeat(t[-1:], missing, axis=0)], 0)

            weight = tf.concat([tf.ones([rows]), tf.zeros([missing])], 0)
            if len(batch) > 2:  # the caller's sample weights for the real rows, 0 for the padding
                weight = tf.concat([tf.cast(batch[2], tf.float32), tf.zeros([missing])], 0)
                batch = batch[:2]
            return tf.nest.map_structure(pad, tuple(batch)) + (weight,)

        def chunks(*batch):
            def split(t):
                mine = t[start : start + local * per_replica]
                return tf.reshape(mine, tf.concat([[local, per_replica], tf.shape(t)[1:]], 0))

            return tf.data.Dataset.from_tensor_slices(tf.nest.map_structure(split, batch))

        ds = dataset.map(padded) if pad_partial else dataset.filter(full)
        ds = ds.flat_map(chunks)
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
        return ds.with_options(options)

    return strategy.distribute_datasets_from_function(make)
