"""MFCC + GRU audio encoder."""

import keras
from keras import ops

from keras_mm.encoders.audio import MFCCEncoder
from keras_mm.registry import register_encoder


@register_encoder("mfcc_gru")
class MFCCGRUEncoder(MFCCEncoder):
    """Waveform -> MFCC -> LayerNorm -> (Bi)GRU; the final state is the embedding.

    Args:
        units: GRU units (the output is ``2 * units`` when bidirectional).
        bidirectional: run the GRU both ways.
        dropout: dropout before the output.

    Example:
        >>> enc = MFCCGRUEncoder(num_samples=8000, units=32)
        >>> enc({"": np.zeros((2, 8000), "float32")}).shape
        TensorShape([2, 64])
    """

    example_config = {"num_samples": 4000, "units": 8}

    def __init__(self, units=128, bidirectional=True, dropout=0.0, **kwargs):
        super().__init__(**kwargs)
        self.units = int(units)
        self.bidirectional = bool(bidirectional)
        self.dropout = float(dropout)
        # Frames and final states: the states are the pooled vector.
        gru = keras.layers.GRU(self.units, return_sequences=True, return_state=True, name="gru")
        self.rnn = keras.layers.Bidirectional(gru, name="bigru") if self.bidirectional else gru
        self.dropout_layer = keras.layers.Dropout(self.dropout)

    @property
    def output_dim(self):
        return self.units * (2 if self.bidirectional else 1)

    def call(self, inputs, training=None, return_sequence=False):
        sequence, *states = self.rnn(self.features(inputs))
        final = ops.concatenate(states, axis=-1) if len(states) > 1 else states[0]
        pooled = self.dropout_layer(final, training=training)
        return self.encoder_outputs(pooled, sequence, None, return_sequence)

    def get_config(self):
        config = super().get_config()
        config.update({"units": self.units, "bidirectional": self.bidirectional, "dropout": self.dropout})
        return config
