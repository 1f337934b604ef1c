"""Base class of all task heads."""

import keras


class Head(keras.layers.Layer):
    """Maps the fused vector to task outputs; the output layer is always float32.

    Subclasses set ``activation`` and ``default_loss``/``default_metrics`` (used
    by ``MultimodalModel.compile`` when the user passes none) and may require
    ``num_classes``.

    Args:
        hidden_dims: sizes of optional hidden Dense(relu) layers before the output.
        dropout: dropout before each Dense layer.
    """

    activation = None
    requires_num_classes = False
    default_loss = None
    default_metrics = ()
    #: small constructor kwargs used by registry-wide tests and docs.
    example_config = {}

    def __init__(self, num_outputs, hidden_dims=(), dropout=0.0, **kwargs):
        super().__init__(**kwargs)
        self.num_outputs = int(num_outputs)
        self.hidden_dims = tuple(int(h) for h in hidden_dims)
        self.dropout = float(dropout)
        self.hidden_layers = [keras.layers.Dense(h, activation="relu", name=f"hidden_{i}") for i, h in enumerate(self.hidden_dims)]
        self.dropout_layer = keras.layers.Dropout(self.dropout)
        # float32 even under mixed precision: softmax/sigmoid and the loss need it.
        self.output_layer = keras.layers.Dense(self.num_outputs, activation=self.activation, dtype="float32", name="output")

    def build(self, input_shape):
        shape = tuple(input_shape)
        for layer in self.hidden_layers:
            layer.build(shape)
            shape = (*shape[:-1], layer.units)
        self.output_layer.build(shape)

    def call(self, x, training=None):
        for layer in self.hidden_layers:
            x = layer(self.dropout_layer(x, training=training))
        return self.output_layer(self.dropout_layer(x, training=training))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.num_outputs)

    def serving_outputs(self, y):
        """Named outputs of the serving signature for head output ``y``."""
        return {"predictions": y}

    def get_config(self):
        config = super().get_config()
        config.update({"hidden_dims": list(self.hidden_dims), "dropout": self.dropout})
        return config
