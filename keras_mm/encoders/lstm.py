"""Word-embedding + (Bi)LSTM text encoder."""

import os

import keras
from keras import ops

from keras_mm.encoders.base import Encoder
from keras_mm.preprocessing.text import VocabularyTextPreprocessor, read_vocabulary
from keras_mm.registry import register_encoder


@register_encoder("lstm")
class LSTMEncoder(Encoder):
    """Embedding + (Bi)LSTM over a word vocabulary.

    Args:
        vocabulary: list of words (build one with
            ``keras_mm.preprocessing.build_vocabulary(texts)``) or a path to a
            file with one word per line.
        sequence_length: words kept per text (padded/truncated).
        embedding_dim: word embedding size.
        units: LSTM units (the output is ``2 * units`` when bidirectional).
        bidirectional: run the LSTM both ways.
        dropout: dropout before the output.

    Example:
        >>> reviews = np.array(["a great film", "a dull film", "great acting, dull plot"])
        >>> vocab = keras_mm.preprocessing.build_vocabulary(reviews)
        >>> model = keras_mm.build_model(encoders={"review": {"name": "lstm", "vocabulary": vocab, "units": 8}},
        ...                              head="binary")
        >>> model.feature_encoders["review"].output_dim  # 2 * units: bidirectional
        16
        >>> model.predict(model.preprocessor.process_batch({"review": reviews}), verbose=0).shape
        (3, 1)
    """

    modality = "text"
    example_config = {"vocabulary": ["the", "dog", "cat", "sat"], "sequence_length": 6, "embedding_dim": 8, "units": 4}

    def __init__(
        self,
        vocabulary=None,
        sequence_length=64,
        embedding_dim=128,
        units=128,
        bidirectional=True,
        dropout=0.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if vocabulary is None:
            raise ValueError(
                "encoder 'lstm' needs vocabulary=[...] or a path to a one-word-per-line file; "
                "build one with keras_mm.preprocessing.build_vocabulary(texts)."
            )
        if isinstance(vocabulary, (str, os.PathLike)):
            vocabulary = read_vocabulary(os.fspath(vocabulary))
        self.vocabulary = [w for w in vocabulary if w not in ("", "[UNK]")]
        if not self.vocabulary:
            raise ValueError("encoder 'lstm': vocabulary is empty.")
        self.sequence_length = int(sequence_length)
        self.embedding_dim = int(embedding_dim)
        self.units = int(units)
        self.bidirectional = bool(bidirectional)
        self.dropout = float(dropout)
        # +2: id 0 is padding and id 1 out-of-vocabulary (TextVectorization's layout).
        self.embedding = keras.layers.Embedding(len(self.vocabulary) + 2, self.embedding_dim, name="embedding")
        # Full sequences and final states: the states are the pooled vector
        # (exactly what return_sequences=False returns), the sequence serves
        # token-level fusions.
        lstm = keras.layers.LSTM(self.units, return_sequences=True, return_state=True, name="lstm")
        self.rnn = keras.layers.Bidirectional(lstm, name="bilstm") if self.bidirectional else lstm
        self.dropout_layer = keras.layers.Dropout(self.dropout)

    def input_signature(self):
        shape = (self.sequence_length,)
        return {"token_ids": (shape, "int32"), "padding_mask": (shape, "int32")}

    def build_preprocessor(self, feature):
        return VocabularyTextPreprocessor(feature, self.vocabulary, self.sequence_length)

    @property
    def output_dim(self):
        return self.units * (2 if self.bidirectional else 1)

    def call(self, inputs, training=None, return_sequence=False):
        mask = ops.cast(inputs["padding_mask"], "bool")
        x = self.embedding(inputs["token_ids"])
        sequence, *states = self.rnn(x, mask=mask)
        # LSTM states are (h, c) per direction; the pooled vector is the h of each direction.
        final = ops.concatenate(states[0::2], axis=-1) if len(states) > 2 else states[0]
        pooled = self.dropout_layer(final, training=training)
        return self.encoder_outputs(pooled, sequence, inputs["padding_mask"], return_sequence)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "vocabulary": self.vocabulary,
                "sequence_length": self.sequence_length,
                "embedding_dim": self.embedding_dim,
                "units": self.units,
                "bidirectional": self.bidirectional,
                "dropout": self.dropout,
            }
        )
        return config
