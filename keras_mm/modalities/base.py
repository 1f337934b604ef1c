"""The ``Modality`` contract: what keras_mm needs to know about one kind of data."""

import numpy as np
import tensorflow as tf

from keras_mm.naming import presence_name
from keras_mm.registry import MODALITIES


class Modality:
    """One kind of data (image, text, audio, ...): how it is stored, loaded, augmented and perturbed.

    Manifests, augmentation, robustness evaluation, the CLI and the test helpers
    ask the feature's modality object instead of switching on its name, so a
    new kind of data is one class registered with
    :func:`keras_mm.register_modality` (plus an encoder whose ``modality``
    names it).

    Subclasses set:
        file_extensions: manifest cells ending with one of these belong to this
            modality (used to guess a column's modality).
        reads_files: whether a manifest cell is a file path (``True``) or the
            value itself (text).
        raw_shape, raw_dtype: shape and dtype of one raw example as
            ``keras_mm.data.from_manifest`` yields it (before the model's
            preprocessor).

    and override what differs from the defaults:
        :meth:`load_file` (Python; required when ``reads_files``) or
        :meth:`load_graph` (TensorFlow ops, read in parallel by ``tf.data``;
        either one is enough), :meth:`empty_raw`, :meth:`augment` (training
        augmentation of a numeric example; default none), :meth:`perturb`
        (robustness noise; default: none, so ``evaluate_robustness`` skips the
        feature's noise rows and says so), :meth:`random_numeric` (values for
        test inputs), :meth:`to_feature` / :meth:`parse_feature` (TFRecord
        serialization; defaults cover string and numeric raw specs).

    Example:
        >>> @keras_mm.register_modality("sensor")  # readings saved as raw float32 files
        ... class SensorModality(keras_mm.modalities.Modality):
        ...     file_extensions = (".sensor",)
        ...     raw_shape, raw_dtype = (None,), tf.float32
        ...     def load_file(self, path, **options):
        ...         return np.fromfile(path, "float32")
        >>> keras_mm.modalities.get_modality("sensor").raw_spec()
        TensorSpec(shape=(None,), dtype=tf.float32, name=None)
    """

    registered_name_in_zoo = None
    file_extensions = ()
    reads_files = True
    raw_shape = ()
    raw_dtype = tf.string
    #: one sentence for docs and reports: what ``perturb`` does at a given level.
    noise_description = None

    @property
    def name(self):
        return self.registered_name_in_zoo

    def raw_spec(self):
        """``tf.TensorSpec`` of one raw example (manifest datasets)."""
        return tf.TensorSpec(self.raw_shape, self.raw_dtype)

    def empty_raw(self):
        """The raw value of a missing sample (a blank manifest cell); the preprocessor marks it not present."""
        return np.zeros([0 if d is None else d for d in self.raw_shape], self.raw_dtype.as_numpy_dtype) if self.raw_shape else (
            b"" if self.raw_dtype == tf.string else self.raw_dtype.as_numpy_dtype(0)
        )

    def is_empty_cell(self, value):
        """Whether a manifest cell means "missing" (blank by default)."""
        return value is None or str(value).strip() == ""

    def load_file(self, path, **options):
        """Read one file into a raw example (numpy or bytes) in Python; raise ``ValueError`` saying why it cannot.

        Default: run :meth:`load_graph` eagerly, so a modality that reads files
        with TensorFlow ops has one implementation for both paths.
        """
        if type(self).load_graph is Modality.load_graph:
            raise NotImplementedError(f"modality {self.name!r} reads files but defines neither load_file() nor load_graph().")
        value = self.load_graph(tf.constant(path), **options)
        return value.numpy()

    def load_graph(self, path, **options):
        """Read one file with TensorFlow ops: scalar string tensor ``path`` -> raw example tensor (``raw_spec``).

        ``keras_mm.data.from_manifest`` calls it inside a parallel
        ``tf.data`` map; read through ``tf.io`` so ``gs://``-style paths work.
        Default: :meth:`load_file` in Python through ``tf.numpy_function``
        (correct for any modality, but Python code holds the interpreter lock,
        so such files are read one at a time).

        Example:
            >>> tf.io.write_file("photo.png", b"PNG bytes")
            >>> keras_mm.modalities.get_modality("image").load_graph(tf.constant("photo.png")).numpy()
            b'PNG bytes'
        """
        dtype = object if self.raw_dtype == tf.string else self.raw_dtype.as_numpy_dtype

        def read(path_bytes):
            # dtype=object keeps binary values whole (numpy's bytes dtype drops trailing NUL bytes)
            path = np.asarray(path_bytes, dtype=object).item().decode("utf-8")  # bytes in a graph, a 0-d array eagerly
            return np.asarray(self.load_file(path, **options), dtype=dtype)

        value = tf.numpy_function(read, [path], self.raw_dtype, stateful=False, name=f"load_{self.name}_file")
        return tf.ensure_shape(value, self.raw_shape)

    def load_cell(self, value, resolve_path, **options):
        """A manifest cell -> raw example (a file is read through ``resolve_path``; an empty cell -> ``empty_raw``)."""
        if self.is_empty_cell(value):
            return self.empty_raw()
        if not self.reads_files:
            return value
        return self.load_file(resolve_path(str(value)), **options)

    def feature_spec(self):
        """How :func:`keras_mm.data.from_tfrecords` parses this modality's ``tf.train.Feature`` (a ``tf.io`` feature spec).

        Default: a scalar raw spec is one value (``FixedLenFeature([])``);
        anything else is its values flattened (``VarLenFeature``). Strings go
        in a bytes list, floats in a float list (float32), integers in an
        int64 list.

        Example:
            >>> keras_mm.modalities.get_modality("audio").feature_spec()
            VarLenFeature(dtype=tf.float32)
        """
        dtype = tf.string if self.raw_dtype == tf.string else tf.float32 if self.raw_dtype.is_floating else tf.int64
        return tf.io.FixedLenFeature([], dtype) if not self.raw_shape else tf.io.VarLenFeature(dtype)

    def to_feature(self, value):
        """One raw example (numpy, bytes or str) -> ``tf.train.Feature`` for a TFRecord (see :meth:`feature_spec`).

        Example:
            >>> keras_mm.modalities.get_modality("text").to_feature("a dog")
            bytes_list {
              value: "a dog"
            }
            <BLANKLINE>
        """
        if sum(d is None for d in self.raw_shape) > 1:
            raise NotImplementedError(
                f"modality {self.name!r}: raw shape {self.raw_shape} has several unknown dimensions; "
                "override to_feature(), feature_spec() and parse_feature() to store its shape."
            )
        if self.raw_dtype == tf.string:
            values = [v.encode("utf-8") if isinstance(v, str) else bytes(v) for v in np.asarray(value, dtype=object).reshape(-1)]
            return tf.train.Feature(bytes_list=tf.train.BytesList(value=values))
        values = np.asarray(value).reshape(-1)
        if self.raw_dtype.is_floating:
            return tf.train.Feature(float_list=tf.train.FloatList(value=values.astype(np.float32)))
        return tf.train.Feature(int64_list=tf.train.Int64List(value=values.astype(np.int64)))

    def parse_feature(self, parsed):
        """The tensor parsed with :meth:`feature_spec` -> one raw example (``raw_spec``).

        Example:
            >>> keras_mm.modalities.get_modality("audio").parse_feature(tf.sparse.from_dense([0.5, -0.5])).numpy()
            array([ 0.5, -0.5], dtype=float32)
        """
        if isinstance(parsed, tf.SparseTensor):
            parsed = tf.sparse.to_dense(parsed)
        if self.raw_shape:
            parsed = tf.reshape(parsed, [-1 if d is None else d for d in self.raw_shape])
        return tf.cast(parsed, self.raw_dtype)

    def load_options(self, encoder=None, **defaults):
        """Keyword arguments for :meth:`load_file` taken from the feature's encoder (e.g. its sample rate)."""
        return {}

    def check_loaded(self, raw):
        """TensorFlow ops: ``raw`` (a loaded example) unchanged, or an error when no model could use it.

        :func:`keras_mm.data.check_manifest` (and ``on_error="skip"``) runs it
        when no model's preprocessor decodes the rows, so a file that loads
        but does not decode (a truncated PNG, text saved as ``.png``, a
        0-byte file) is found without a model. Default: nothing to check
        (loading decodes already, as for audio).

        Example:
            >>> keras_mm.modalities.get_modality("text").check_loaded(tf.constant("a dog")).numpy()
            b'a dog'
        """
        return raw

    def augment(self, example, feature, augmentation):
        """Training augmentation of one numeric example (dict of model inputs); default: unchanged.

        Draw random numbers with ``augmentation.draws(n)`` (one generator call
        for all of them: each call costs every epoch's iterator ~10 ms to set
        up), apply costly transforms with ``augmentation.maybe(fn, value,
        draw)`` (a ``tf.cond``) and cheap element-wise ones with
        ``augmentation.maybe_select(transformed, value, draw)``; keep missing
        samples as they are with :meth:`only_where_present`.
        """
        return example

    def perturb(self, inputs, feature, level, rng):
        """Robustness noise of strength ``level`` on a numeric batch; ``None`` when this modality has no noise model."""
        return None

    def random_numeric(self, shape, dtype, rng):
        """Random values of a float model input (for encoder tests)."""
        return rng.normal(0, 0.1, size=shape).astype(dtype)

    @staticmethod
    def only_where_present(example, feature, transformed):
        """Keep ``transformed`` for a present sample, the original for a missing one."""
        present = example[presence_name(feature)] > 0
        return tf.where(present, transformed, example[feature])


def get_modality(name):
    """The modality object registered as ``name`` (an instance; errors list the registered names).

    Example:
        >>> keras_mm.modalities.get_modality("audio").file_extensions[:2]
        ('.wav', '.flac')
    """
    if isinstance(name, Modality):
        return name
    cls = MODALITIES.get(name, field="modality")
    instance = _INSTANCES.get(name)
    if instance is None or type(instance) is not cls:
        instance = _INSTANCES[name] = cls()
    return instance


_INSTANCES = {}
