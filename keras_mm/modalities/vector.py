"""The vector modality: precomputed feature vectors (embeddings), one ``.npy`` file per manifest cell."""

import io

import numpy as np
import tensorflow as tf

from keras_mm.modalities.base import Modality
from keras_mm.registry import register_modality


@register_modality("vector")
class VectorModality(Modality):
    """Precomputed vectors: a manifest cell is a ``.npy`` file holding one vector; the raw example is float32 ``[dim]``.

    For embeddings computed once by a frozen model (CLIP, a sentence encoder,
    a speaker model): feed them with the ``precomputed`` encoder instead of
    recomputing the model every epoch. Files are read with ``tf.io.gfile``
    (``gs://`` paths work); a ``[1, dim]`` array counts as a vector. Robustness
    noise: Gaussian noise of ``level`` times each vector's std.

    Example:
        >>> np.save("clip.npy", np.array([0.5, -1.0, 2.0], "float32"))
        >>> keras_mm.modalities.get_modality("vector").load_file("clip.npy")
        array([ 0.5, -1. ,  2. ], dtype=float32)
    """

    file_extensions = (".npy",)
    raw_shape = (None,)
    raw_dtype = tf.float32
    noise_description = "Gaussian noise, std = level * the vector's std"

    def load_file(self, path, **options):
        try:
            with tf.io.gfile.GFile(path, "rb") as f:
                value = np.load(io.BytesIO(f.read()), allow_pickle=False)
        except (OSError, ValueError, tf.errors.OpError) as error:
            raise ValueError(f"cannot read {path} as a .npy array: {error}") from error
        if not isinstance(value, np.ndarray) or not np.issubdtype(value.dtype, np.number):
            raise ValueError(f"{path} holds {getattr(value, 'dtype', type(value).__name__)} values; a vector needs numbers.")
        if sum(d > 1 for d in value.shape) > 1:
            raise ValueError(f"{path} holds an array of shape {value.shape}; one row's vector must be 1-D (or [1, dim]).")
        return value.astype(np.float32).reshape(-1)

    def perturb(self, inputs, feature, level, rng):
        x = np.asarray(inputs[feature], np.float32)
        noise = rng.normal(0.0, 1.0, x.shape) * level * x.std(axis=1, keepdims=True)
        return {**inputs, feature: (x + noise).astype(np.float32)}
