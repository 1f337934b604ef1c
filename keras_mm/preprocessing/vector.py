"""Precomputed feature vectors (embeddings), prepared the same way for training and serving."""

import numpy as np
import tensorflow as tf

from keras_mm.preprocessing.base import FeaturePreprocessor
from keras_mm.preprocessing.status import EMPTY, NOT_FINITE, OK, WRONG_SIZE


def vector_status(values, lengths, dim):
    """Status codes of vectors ``[batch, n]`` whose real lengths are ``lengths``: ok, empty, not finite or wrong size.

    A sample is empty when it has no value or only zeros (a zero vector is
    what a missing feature becomes inside the model), ``wrong_size`` when its
    length is not ``dim``, ``not_finite_or_too_loud`` when it holds NaN/inf.

    Example:
        >>> x = tf.constant([[1.0, 2.0], [0.0, 0.0], [np.nan, 1.0], [1.0, 0.0]])
        >>> vector_status(x, tf.constant([2, 2, 2, 1]), 2).numpy()
        array([0, 1, 4, 5], dtype=int32)
    """
    finite = tf.reduce_all(tf.math.is_finite(values), axis=1)
    nonzero = tf.reduce_any(tf.not_equal(values, 0.0), axis=1)
    lengths = tf.cast(lengths, tf.int32)
    state = tf.where(finite, tf.where(nonzero, OK, EMPTY), NOT_FINITE)
    state = tf.where(tf.equal(lengths, dim), state, WRONG_SIZE)
    return tf.where(tf.equal(lengths, 0), EMPTY, state)


class VectorPreprocessor(FeaturePreprocessor):
    """Precomputed vectors -> ``{feature: float32 [B, dim], feature_present: [B]}``.

    Raw value: one float vector of exactly ``dim`` values per sample, as a
    dense ``[B, dim]`` batch or a ragged one. No value is changed: the vector
    is the feature. A sample that is empty or all zeros, holds NaN/inf, or has
    another length is marked missing (``<feature>_status`` says which) and
    becomes zeros; in a training pipeline such a row is an error naming it.

    Example:
        >>> pre = VectorPreprocessor("clip", dim=3)
        >>> out, status = pre.process_batch_with_status(tf.ragged.constant([[0.5, 1.0, 2.0], [1.0, 2.0]]))
        >>> out["clip"].numpy().tolist(), out["clip_present"].numpy().tolist(), status.numpy().tolist()
        ([[0.5, 1.0, 2.0], [0.0, 0.0, 0.0]], [1.0, 0.0], [0, 5])
    """

    example_rank = 1
    raw_dtype = tf.float32

    def __init__(self, feature, dim):
        super().__init__(feature)
        self.dim = int(dim)

    def process_batch(self, raw):
        return self.process_batch_with_status(raw)[0]

    def process_batch_with_status(self, raw):
        if isinstance(raw, tf.RaggedTensor):
            lengths = raw.row_lengths()
            values = tf.cast(raw.to_tensor(), tf.float32)
        else:
            values = tf.cast(tf.convert_to_tensor(raw), tf.float32)
            lengths = tf.fill(tf.shape(values)[:1], tf.shape(values)[1])
        status = vector_status(values, lengths, self.dim)
        values = values[:, : self.dim]
        values = tf.pad(values, [[0, 0], [0, tf.maximum(self.dim - tf.shape(values)[1], 0)]])
        values = tf.where(tf.equal(status, OK)[:, None], values, tf.zeros_like(values))
        present = tf.cast(tf.equal(status, OK), tf.float32)
        return {self.feature: tf.ensure_shape(values, [None, self.dim]), self.presence_name: present}, status

    def example_raw(self, batch_size, seed=0):
        return np.random.default_rng(seed).normal(size=(batch_size, self.dim)).astype("float32")

    def get_config(self):
        return {**super().get_config(), "dim": self.dim}
