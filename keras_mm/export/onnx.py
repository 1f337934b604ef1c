"""ONNX export of the numeric core (tf2onnx) and an ONNX Runtime runner."""

import json
import os

import numpy as np
import tensorflow as tf

from keras_mm.export.numeric_feed import numeric_feed
from keras_mm.export.signatures import ServingFunctions
from keras_mm.layers.mfcc import auto_stft

OPSET = 17
# ONNX Runtime's input/output type strings -> numpy dtypes.
_NUMPY_TYPES = {
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
    "tensor(float16)": np.float16,
    "tensor(int32)": np.int32,
    "tensor(int64)": np.int64,
    "tensor(bool)": np.bool_,
}
# Metadata key of the outputs that repeat an input (see export_onnx).
ECHOED_OUTPUTS_KEY = "keras_mm_outputs_equal_to_inputs"


def require(module):
    """Import ``module`` (``"tf2onnx"``, ``"onnx"`` or ``"onnxruntime"``), or raise an ImportError that says how to install it.

    Example:
        >>> from keras_mm.export.onnx import require
        >>> require("onnxruntime").__name__
        'onnxruntime'
    """
    try:
        return __import__(module)
    except ImportError as error:
        raise ImportError(
            f"ONNX export and ONNXModel need tf2onnx and onnxruntime ({module} is missing): pip install keras_mm[onnx]"
        ) from error


def export_onnx(model, path, batch_size=None):
    """Convert the model's numeric core to an ``.onnx`` file (tf2onnx, opset 17).

    Like :func:`export_tflite`, the file takes the numeric inputs that
    ``model.preprocessor`` produces (string decoding and tokenizing stay in
    TensorFlow) and gives the outputs of the SavedModel's ``serving_numeric``
    signature. The ``<feature>_present`` outputs repeat inputs of the same name,
    which an ONNX graph cannot hold twice: the file leaves them out and
    :class:`ONNXModel` returns them from the inputs.

    MFCC layers with ``stft="auto"`` are converted with their matmul STFT.
    tf2onnx converts an RFFT (``MFCC(stft="rfft")``) only at a fixed batch size,
    so such a model needs ``batch_size``.

    Args:
        model: a :class:`MultimodalModel`.
        path: output ``.onnx`` file.
        batch_size: ``None`` for a dynamic batch dimension, or the fixed number
            of samples per call.

    Returns:
        the size of the file in bytes.

    Example:
        >>> model = keras_mm.build_model(encoders={"audio": {"name": "mfcc_cnn", "num_samples": 4000}}, num_classes=3)
        >>> size = keras_mm.export_onnx(model, "model.onnx")
        >>> numeric = model.preprocessor.process_batch(model.preprocessor.example_raw(2))
        >>> sorted(keras_mm.export.ONNXModel("model.onnx").predict(numeric))
        ['audio_present', 'class_id', 'probabilities', 'valid']
    """
    if batch_size is not None and (not isinstance(batch_size, int) or batch_size < 1):
        raise ValueError(f"batch_size={batch_size!r} is not supported. Allowed: None (dynamic) or an integer >= 1")
    tf2onnx, onnx = require("tf2onnx"), require("onnx")
    require("onnxruntime")  # checked now, not when the file is first run

    fns = ServingFunctions(model)
    signature = {name: tf.TensorSpec([batch_size, *spec.shape[1:]], spec.dtype, name=name)
                 for name, spec in fns.numeric_signature().items()}

    echoed = {}  # output name -> dtype, filled while tracing

    def numeric_core(inputs):
        outputs = fns.numeric(inputs)
        echoed.update({name: value.dtype.name for name, value in outputs.items() if name in inputs})
        return {name: value for name, value in outputs.items() if name not in inputs}

    function = tf.function(numeric_core)
    with auto_stft("matmul"):
        if batch_size is None and _has_rfft(function.get_concrete_function(signature).graph):
            raise ValueError(
                "batch_size=None: this model's graph has an RFFT (an MFCC layer with stft='rfft'), which tf2onnx "
                "converts only at a fixed batch size. Pass batch_size=N (the file then takes exactly N samples per "
                "call) or build the MFCC with stft='matmul' or 'auto'."
            )
        proto, _ = tf2onnx.convert.from_function(
            function, input_signature=[signature], opset=OPSET, custom_op_handlers={"Erfc": (_erfc_as_erf, [])}
        )
    onnx.helper.set_model_props(proto, {ECHOED_OUTPUTS_KEY: json.dumps(echoed)})
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    onnx.save(proto, path)
    return os.path.getsize(path)


def _has_rfft(graph):
    """Whether a traced graph, or a function it calls, computes an RFFT."""
    graph_def = graph.as_graph_def()
    nodes = list(graph_def.node) + [n for f in graph_def.library.function for n in f.node_def]
    return any(node.op.startswith("RFFT") for node in nodes)


def _erfc_as_erf(ctx, node, name, args):
    """tf2onnx handler for TF's Erfc (exact GELU, e.g. BERT's): ONNX has only Erf, and erfc(x) = 1 - erf(x)."""
    from tf2onnx import utils

    dtype = ctx.get_dtype(node.output[0])
    node.type = "Erf"
    one = ctx.make_const(utils.make_name(f"{name}_one"), np.array(1, utils.map_onnx_to_numpy_type(dtype)))
    erfc = ctx.insert_new_node_on_output("Sub", node.output[0], name=utils.make_name(f"{name}_erfc"),
                                         inputs=[one.output[0], node.output[0]])
    ctx.set_dtype(erfc.output[0], dtype)
    ctx.copy_shape(node.output[0], erfc.output[0])


class ONNXModel:
    """Runs an exported ``.onnx`` file with ONNX Runtime on numeric input dicts.

    ``predict`` returns the same named outputs as :class:`TFLiteModel` and the
    SavedModel's ``serving_numeric`` signature, as numpy arrays.

    Args:
        path: an ``.onnx`` file written by :func:`export_onnx`.
        num_threads: ONNX Runtime's intra-op threads; ``None``: its default (the machine's cores).

    Example:
        >>> model = keras_mm.build_model(encoders={"audio": {"name": "mfcc_cnn", "num_samples": 4000}}, num_classes=3)
        >>> size = keras_mm.export_onnx(model, "model.onnx")
        >>> numeric = model.preprocessor.process_batch(model.preprocessor.example_raw(4))
        >>> runner = ONNXModel("model.onnx")
        >>> float(np.abs(runner.predict(numeric)["probabilities"] - model.predict(numeric, verbose=0)).max()) < 1e-5
        True
    """

    def __init__(self, path, num_threads=None):
        ort = require("onnxruntime")
        options = ort.SessionOptions()
        if num_threads:
            options.intra_op_num_threads = num_threads
        self.session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        self.input_types = {i.name: _NUMPY_TYPES[i.type] for i in self.session.get_inputs()}
        # symbolic dimensions (names) are dynamic; a fixed batch size is checked in predict, with its own message
        self.input_specs = {
            i.name: (_NUMPY_TYPES[i.type], (None, *(d if isinstance(d, int) else None for d in i.shape[1:])))
            for i in self.session.get_inputs()}
        self.output_names = [o.name for o in self.session.get_outputs()]
        first_dims = {i.shape[0] for i in self.session.get_inputs()}
        # a file exported with batch_size=N has the integer N here; a dynamic one a symbolic name
        self.batch_size = first_dims.pop() if len(first_dims) == 1 and isinstance(next(iter(first_dims)), int) else None
        metadata = self.session.get_modelmeta().custom_metadata_map
        self.echoed_outputs = json.loads(metadata.get(ECHOED_OUTPUTS_KEY, "{}"))

    def predict(self, inputs):
        """``{output name: numpy array}`` for a dict of numeric inputs (``model.preprocessor.process_batch``)."""
        feed = numeric_feed(inputs, self.input_specs, "ONNX")
        batch = len(next(iter(feed.values())))
        if self.batch_size is not None and batch != self.batch_size:
            raise ValueError(f"a batch of {batch} samples: this file was exported with batch_size={self.batch_size}.")
        outputs = dict(zip(self.output_names, self.session.run(self.output_names, feed)))
        for name, dtype in self.echoed_outputs.items():
            outputs[name] = feed[name].astype(dtype)
        return outputs
