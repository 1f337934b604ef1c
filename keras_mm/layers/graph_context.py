"""What the graph being traced will run on: TensorFlow itself, XLA, or another runtime (TFLite, ONNX).

Layers use it to pick an implementation that the target runs well, e.g. the
BERT encoder cuts its padding to the batch's longest text only where shapes may
be dynamic, and the MFCC layer keeps to ops that TFLite and tf2onnx convert.
"""

import contextlib

import tensorflow as tf
from tensorflow.python.ops import control_flow_util

# One entry per open portable_graph() context; the bottom entry is TensorFlow itself.
_PORTABLE = [False]


@contextlib.contextmanager
def portable_graph():
    """Within this context, layers trace graphs for another runtime (TFLite/LiteRT, ONNX): static shapes, portable ops.

    Exporters enter it around the tracing of the model; it changes no weights.

    Example:
        >>> from keras_mm.layers.graph_context import in_portable_graph, portable_graph
        >>> with portable_graph():
        ...     in_portable_graph()
        True
        >>> in_portable_graph()
        False
    """
    _PORTABLE.append(True)
    try:
        yield
    finally:
        _PORTABLE.pop()


def in_portable_graph():
    """Whether the graph being traced is for another runtime (inside :func:`portable_graph`).

    Example:
        >>> from keras_mm.layers.graph_context import in_portable_graph
        >>> in_portable_graph()
        False
    """
    return _PORTABLE[-1]


def dynamic_shapes_allowed():
    """Whether the graph being traced may hold data-dependent shapes: not for another runtime, not compiled by XLA.

    XLA (``tf.function(jit_compile=True)``, Keras' ``jit_compile``) needs
    every shape at compile time; TFLite/LiteRT and ONNX exports keep the
    static shapes of the model's inputs.

    Example:
        >>> import tensorflow as tf
        >>> from keras_mm.layers.graph_context import dynamic_shapes_allowed
        >>> seen = []
        >>> _ = tf.function(lambda x: seen.append(dynamic_shapes_allowed()) or x)(tf.constant(1.0))
        >>> _ = tf.function(lambda x: seen.append(dynamic_shapes_allowed()) or x, jit_compile=True)(tf.constant(1.0))
        >>> seen
        [True, False]
    """
    if _PORTABLE[-1]:
        return False
    return not control_flow_util.GraphOrParentsInXlaContext(tf.compat.v1.get_default_graph())
