"""The contract every per-feature preprocessor follows."""

import tensorflow as tf

from keras_mm.preprocessing.status import EMPTY, OK

from keras_mm import naming


class FeaturePreprocessor:
    """Maps one feature's raw values to the numeric inputs of its encoder.

    Subclasses implement :meth:`process_batch` in pure TensorFlow ops so the
    same code runs inside ``tf.data.Dataset.map`` (training) and inside the
    exported serving signature. ``process_batch`` takes a batch (leading batch
    dimension) and returns a dict of numeric tensors keyed by model input name,
    always including ``<feature>_present`` (float32 ``[batch]``): 1 when the
    sample carries usable data, 0 when it is empty or failed to decode. A bad
    sample never raises; it is reported missing and the model predicts from
    the other modalities.

    Attributes:
        feature: the feature name (a key of ``build_model(encoders=...)``).
        example_rank: rank of one raw example (0 for a string, 1 for a waveform).
        raw_dtype: dtype of the raw values (``tf.string`` or ``tf.float32``).
        row_wise: each row's outputs depend on that row only and have a
            fixed shape (e.g. text padded to ``sequence_length``), so a
            training loader may compute them once, ahead of the epochs, for
            raw values it knows in advance (manifest text cells). ``False``
            (the default for new subclasses) keeps them in the pipeline.
    """

    example_rank = 0
    raw_dtype = tf.string
    row_wise = False

    def __init__(self, feature):
        self.feature = feature

    @property
    def raw_spec(self):
        """``tf.TensorSpec`` of a raw batch, used for serving signatures."""
        shape = [None] * (self.example_rank + 1)
        return tf.TensorSpec(shape, self.raw_dtype, name=self.feature)

    def example_rank_of(self, value):
        """Rank of ONE raw example when the feature's values look like ``value`` (a feature may accept two raw forms)."""
        return self.example_rank

    def input_name(self, suffix=""):
        """This feature's model input name of kind ``suffix`` (see :func:`keras_mm.naming.input_name`).

        Example:
            >>> keras_mm.preprocessing.FeaturePreprocessor("photo").input_name()
            'photo'
        """
        return naming.input_name(self.feature, suffix)

    @property
    def presence_name(self):
        """This feature's ``<feature>_present`` input name.

        Example:
            >>> keras_mm.preprocessing.FeaturePreprocessor("photo").presence_name
            'photo_present'
        """
        return naming.presence_name(self.feature)

    def process_batch(self, raw):
        raise NotImplementedError

    def process_batch_with_status(self, raw):
        """``(process_batch(raw), status int32 [batch])``; see :mod:`keras_mm.preprocessing.status`.

        The default reports ``ok`` for present samples and ``empty`` for the
        others; preprocessors that decode bytes override it to say more.
        """
        out = self.process_batch(raw)
        return out, tf.where(out[self.presence_name] > 0, OK, EMPTY)

    def decode_example(self, raw, filled):
        """The per-example part of preprocessing, run by training loaders in their parallel map; raises for a bad input.

        Default: nothing to do per example (``raw`` unchanged). A preprocessor
        that decodes (images) overrides this and
        :meth:`process_decoded_batch_with_status`; together they give the
        values of :meth:`process_batch_with_status`, except that a bad input
        raises (training data) instead of being marked missing (serving).

        Args:
            raw: one raw example.
            filled: whether the manifest cell was filled (bool tensor, or a
                Python bool when known for every row).
        """
        return raw

    def process_decoded_batch_with_status(self, decoded, filled):
        """:meth:`process_batch_with_status` on a batch of :meth:`decode_example` outputs (``filled`` bool ``[batch]``)."""
        return self.process_batch_with_status(decoded)

    def trackables(self):
        """Objects holding resources (lookup tables) that an export must track."""
        return []

    def example_raw(self, batch_size, seed=0):
        """A batch of valid raw values (numpy), for tests, docs and warm-up requests."""
        raise NotImplementedError

    def get_config(self):
        return {"feature": self.feature}
