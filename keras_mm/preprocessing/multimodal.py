"""The model-level preprocessor: raw dict -> numeric input dict."""

import tensorflow as tf

from keras_mm.preprocessing.status import warn_once_about


class MultimodalPreprocessor:
    """Applies each feature's preprocessor; usable in ``tf.data`` and in serving.

    Accepts one example (``{"image": scalar bytes, "text": scalar string,
    "audio": [N] float}``) or a batch of them, and optionally labels and sample
    weights, which pass through unchanged. Obtain it as ``model.preprocessor``.

    Example:
        >>> import pathlib
        >>> model = keras_mm.build_model(encoders={"image": {"name": "small_cnn", "image_size": 16},
        ...     "text": {"name": "lstm", "vocabulary": ["zero", "one", "digit"], "units": 4}}, num_classes=10)
        >>> folder = pathlib.Path(keras_mm.datasets.SAMPLE_DIR, "images")
        >>> images = [(folder / name).read_bytes() for name in ("0_00.png", "1_00.png")]  # encoded PNG/JPEG bytes
        >>> ds = tf.data.Dataset.from_tensor_slices(({"image": images, "text": ["zero", "digit one"]}, [0, 1]))
        >>> ds = ds.map(model.preprocessor, num_parallel_calls=tf.data.AUTOTUNE).batch(32)  # then model.fit(ds)
        >>> sorted(ds.element_spec[0])
        ['image', 'image_present', 'text_padding_mask', 'text_present', 'text_token_ids']
        >>> model.preprocessor({"image": images[0], "text": "zero"})["image"].shape  # one example works too
        TensorShape([16, 16, 3])
    """

    def __init__(self, feature_preprocessors):
        self.feature_preprocessors = dict(sorted(feature_preprocessors.items()))

    @property
    def features(self):
        return list(self.feature_preprocessors)

    @property
    def raw_signature(self):
        """``{feature: tf.TensorSpec}`` of a raw batch (for serving signatures)."""
        return {name: pre.raw_spec for name, pre in self.feature_preprocessors.items()}

    def example_raw(self, batch_size, seed=0):
        """A raw batch ``{feature: numpy values}`` for smoke tests and examples.

        Values are well-formed, but a feature may include empty samples, which
        count as missing (``<feature>_present`` 0): the built-in text
        preprocessors give an empty text at every fifth position from the third.

        Example:
            >>> model = keras_mm.build_model(preset="tiny_concat", num_classes=3)
            >>> raw = model.preprocessor.example_raw(4)
            >>> sorted(raw), raw["text"][:2]
            (['audio', 'image', 'text'], array(['a dog sat on the mat.', 'The cats!'], dtype=object))
            >>> model.predict(model.preprocessor.process_batch(raw), verbose=0).shape
            (4, 3)
        """
        return {name: pre.example_raw(batch_size, seed) for name, pre in self.feature_preprocessors.items()}

    def _check_features(self, x):
        if not isinstance(x, dict):
            raise ValueError(
                f"The preprocessor expects a dict keyed by feature name ({', '.join(self.features)}), got {type(x).__name__}."
            )
        missing = [f for f in self.features if f not in x]
        unknown = [k for k in x if k not in self.feature_preprocessors]
        if missing or unknown:
            raise ValueError(
                f"Raw input keys {sorted(x)} do not match the model's features {self.features}"
                + (f"; missing: {missing}" if missing else "")
                + (f"; unknown: {unknown}" if unknown else "")
            )

    def _check_batch_sizes(self, x):
        """Every feature must hold the same number of samples: ``x``, checked.

        Sizes known before running are compared at once; sizes known only when
        the graph runs (a serving signature's ``[None]`` batch) are checked
        there, ahead of every use of the inputs, so a mismatch names the
        features instead of failing inside a later op.
        """
        sizes, unknown = {}, {}
        for feature, value in x.items():
            shape = getattr(value, "shape", None)
            size = len(value) if isinstance(value, (list, tuple)) else (shape[0] if shape is not None and len(shape) else None)
            if size is not None:
                sizes[feature] = int(size)
            elif isinstance(value, tf.RaggedTensor):
                unknown[feature] = value.nrows(out_type=tf.int64)
            elif isinstance(value, tf.Tensor) and shape.rank:
                unknown[feature] = tf.shape(value, out_type=tf.int64)[0]
        if len(set(sizes.values())) > 1:
            raise ValueError(f"The features hold different numbers of samples: {sizes}. A batch has one value per "
                             "feature for every sample (send a missing one as empty: b'' / '' / an empty waveform).")
        if not unknown or len(unknown) + bool(sizes) < 2:
            return x
        names = list(sizes) + list(unknown)
        counts = tf.stack([tf.constant(sizes[f], tf.int64) for f in sizes] + list(unknown.values()))
        message = (f"The features hold different numbers of samples ({', '.join(names)}, in this order). A batch has one "
                   "value per feature for every sample (send a missing one as empty: b'' / '' / an empty waveform).")
        check = tf.debugging.Assert(tf.equal(tf.reduce_min(counts), tf.reduce_max(counts)), [message, counts])
        with tf.control_dependencies([check]):
            return {f: (v.with_values(tf.identity(v.values)) if isinstance(v, tf.RaggedTensor) else tf.identity(v))
                       if f in unknown else v for f, v in x.items()}

    def process_batch(self, x):
        """Batched raw dict -> batched numeric dict."""
        return self.process_batch_with_status(x)[0]

    def process_batch_with_status(self, x):
        """Batched raw dict -> ``(numeric dict, {feature: status int32 [batch]})``.

        The status says why a sample is marked missing (see
        :mod:`keras_mm.preprocessing.status`); the serving signatures return
        it as ``<feature>_status``.
        """
        self._check_features(x)
        x = self._check_batch_sizes(x)
        out, statuses = {}, {}
        for name, pre in self.feature_preprocessors.items():
            numeric, statuses[name] = pre.process_batch_with_status(x[name])
            out.update(numeric)
        if tf.executing_eagerly():
            warn_once_about({name: codes.numpy() for name, codes in statuses.items()})
        return out, statuses

    def decode_example(self, example, filled):
        """The per-example part of preprocessing for training loaders: ``{feature: decoded}``; a bad input raises.

        See :meth:`FeaturePreprocessor.decode_example`; ``filled`` is
        ``{feature: bool}`` (whether the manifest cell was filled). Followed by
        :meth:`process_decoded_batch_with_status` on batches, it gives the
        values of :meth:`process_batch_with_status`.
        """
        self._check_features(example)
        return {name: pre.decode_example(example[name], filled[name]) for name, pre in self.feature_preprocessors.items()}

    def process_decoded_batch_with_status(self, decoded, filled, computed=None):
        """A batch of :meth:`decode_example` outputs -> ``(numeric dict, {feature: status})``; ``filled``: ``{feature: bool [batch]}``.

        ``computed``: ``{feature: (numeric dict, status)}`` for features whose
        outputs were computed ahead by :meth:`process_batch_with_status` (a
        loader does that for ``row_wise`` preprocessors); they are used as they are.

        Example:
            >>> model = keras_mm.build_model(preset="tiny_concat", num_classes=3)
            >>> raw, filled = model.preprocessor.example_raw(2), {"image": True, "text": True, "audio": True}
            >>> rows = [model.preprocessor.decode_example({k: v[i] for k, v in raw.items()}, filled) for i in range(2)]
            >>> decoded = {k: tf.stack([r[k] for r in rows]) for k in raw}
            >>> out, _ = model.preprocessor.process_decoded_batch_with_status(decoded, {k: [True, True] for k in raw})
            >>> bool(np.allclose(out["image"], model.preprocessor.process_batch(raw)["image"]))
            True
        """
        self._check_features(decoded)
        computed = computed or {}
        out, statuses = {}, {}
        for name, pre in self.feature_preprocessors.items():
            if name in computed:
                numeric, statuses[name] = computed[name]
            else:
                numeric, statuses[name] = pre.process_decoded_batch_with_status(decoded[name], filled[name])
            out.update(numeric)
        return out, statuses

    def _is_single_example(self, x):
        """Whether ``x`` holds one example (every feature at its example rank) or a batch; mixed is an error."""
        verdicts = {}
        for name, pre in self.feature_preprocessors.items():
            value = x[name] if isinstance(x[name], tf.RaggedTensor) else tf.convert_to_tensor(x[name])
            rank = pre.example_rank_of(value)
            if value.shape.rank not in (rank, rank + 1):
                raise ValueError(
                    f"feature {name!r}: expected one example of rank {rank} or a batch of rank {rank + 1}, "
                    f"got shape {value.shape} ({value.dtype.name})."
                )
            verdicts[name] = value.shape.rank == rank
        if len(set(verdicts.values())) > 1:
            raise ValueError(f"Mixed single examples and batches: {verdicts} (True = single example).")
        return next(iter(verdicts.values()))

    def __call__(self, x, y=None, sample_weight=None):
        self._check_features(x)
        single = self._is_single_example(x)
        if single:
            batched = {k: tf.expand_dims(tf.convert_to_tensor(v), 0) for k, v in x.items()}
            out = {k: tf.squeeze(v, 0) for k, v in self.process_batch(batched).items()}
        else:
            out = self.process_batch(x)
        if y is None and sample_weight is None:
            return out
        if sample_weight is None:
            return out, y
        return out, y, sample_weight
