"""The text modality: UTF-8 strings held in the manifest cell itself."""

import numpy as np
import tensorflow as tf

from keras_mm.modalities.base import Modality
from keras_mm.naming import PADDING_MASK, input_name
from keras_mm.registry import register_modality


@register_modality("text")
class TextModality(Modality):
    """Text: the manifest cell is the text (no file); empty or whitespace-only text is a missing sample.

    Augmentation: token dropout with probability ``text_token_dropout``
    (opt-in; the first position, e.g. ``[CLS]``, is kept). Robustness noise:
    a fraction ``level`` of the tokens is removed from the padding mask.

    Example:
        >>> keras_mm.modalities.get_modality("text").load_cell("a dog", resolve_path=None)
        'a dog'
    """

    reads_files = False
    noise_description = "a fraction `level` of the tokens deleted (padding mask)"

    def empty_raw(self):
        return ""

    def load_cell(self, value, resolve_path, **options):
        return "" if self.is_empty_cell(value) else str(value)

    def augment(self, example, feature, augmentation):
        if augmentation.text_token_dropout <= 0:
            return example
        name = input_name(feature, PADDING_MASK)
        mask = example[name]
        keep = augmentation.generator.uniform(tf.shape(mask)) >= augmentation.text_token_dropout
        keep = tf.concat([[True], keep[1:]], 0)
        return {**example, name: mask * tf.cast(keep, mask.dtype)}

    def perturb(self, inputs, feature, level, rng):
        name = input_name(feature, PADDING_MASK)
        mask = np.asarray(inputs[name]).copy()
        drop = rng.random(mask.shape) < level
        drop[:, 0] = False
        return {**inputs, name: np.where(drop, 0, mask).astype(mask.dtype)}
