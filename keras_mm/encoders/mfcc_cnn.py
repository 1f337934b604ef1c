"""MFCC + 1-D convolution audio encoder."""

import keras

from keras_mm.encoders.audio import MFCCEncoder
from keras_mm.registry import register_encoder


@register_encoder("mfcc_cnn")
class MFCCCNNEncoder(MFCCEncoder):
    """Waveform -> MFCC -> LayerNorm -> Conv1D stack -> global average pooling.

    Args:
        filters: output channels of each Conv1D block.
        kernel_size: temporal kernel size.
        dropout: dropout before the output.
        (MFCC arguments: see ``MFCCEncoder``.)

    Example:
        >>> enc = MFCCCNNEncoder(num_samples=8000, filters=(32, 64))
        >>> enc({"": np.zeros((2, 8000), "float32")}).shape
        TensorShape([2, 64])
    """

    example_config = {"num_samples": 4000, "filters": [8, 8]}

    def __init__(self, filters=(64, 128, 128), kernel_size=5, dropout=0.0, **kwargs):
        super().__init__(**kwargs)
        if not filters:
            raise ValueError("filters must name at least one block, e.g. (64, 128).")
        self.filters = tuple(int(f) for f in filters)
        self.kernel_size = int(kernel_size)
        self.dropout = float(dropout)
        self.convs = [
            keras.layers.Conv1D(f, self.kernel_size, padding="same", activation="relu", name=f"conv_{i}")
            for i, f in enumerate(self.filters)
        ]
        self.pools = [keras.layers.MaxPooling1D(2, padding="same", name=f"pool_{i}") for i in range(len(self.filters))]
        self.global_pool = keras.layers.GlobalAveragePooling1D()
        self.dropout_layer = keras.layers.Dropout(self.dropout)

    @property
    def output_dim(self):
        return self.filters[-1]

    def call(self, inputs, training=None, return_sequence=False):
        x = self.features(inputs)
        for conv, pool in zip(self.convs, self.pools):
            x = pool(conv(x))
        pooled = self.dropout_layer(self.global_pool(x), training=training)
        return self.encoder_outputs(pooled, x, None, return_sequence)

    def get_config(self):
        config = super().get_config()
        config.update({"filters": list(self.filters), "kernel_size": self.kernel_size, "dropout": self.dropout})
        return config
