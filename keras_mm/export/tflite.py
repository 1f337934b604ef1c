"""TFLite export of the numeric core (built-in ops only)."""

import contextlib
import os
import re
import tempfile
import warnings

import keras
import numpy as np
import tensorflow as tf

from keras_mm.export.numeric_feed import numeric_feed
from keras_mm.export.signatures import ServingFunctions
from keras_mm.layers.mfcc import MFCC, auto_stft

QUANTIZATIONS = (None, "dynamic", "float16", "int8")


@contextlib.contextmanager
def unrolled_recurrent_layers(model):
    """Within this context, every recurrent layer of ``model`` (LSTM, GRU, also inside ``Bidirectional``) is traced unrolled.

    TFLite's converter cannot lower a recurrent layer's ``while`` loop when
    the batch size is dynamic (``TensorListReserve`` needs a static element
    shape) and would need the Flex delegate, which LiteRT lacks. Unrolled over
    the known sequence length, the same weights become plain built-in ops, so
    one ``.tflite`` file serves every batch size. Nothing changes outside the
    context: training keeps the loop.

    Example:
        >>> from keras_mm.export.tflite import unrolled_recurrent_layers
        >>> model = keras_mm.build_model(encoders={"text": {"name": "lstm", "vocabulary": ["a", "b"],
        ...                                                 "sequence_length": 4, "units": 2}}, num_classes=2)
        >>> rnns = [l for l in model._flatten_layers() if isinstance(l, keras.layers.RNN)]
        >>> with unrolled_recurrent_layers(model):
        ...     [l.unroll for l in rnns]
        [True, True]
        >>> [l.unroll for l in rnns]
        [False, False]
    """
    layers = [layer for layer in model._flatten_layers() if isinstance(layer, keras.layers.RNN)]
    before = [layer.unroll for layer in layers]
    for layer in layers:
        layer.unroll = True
    try:
        yield
    finally:
        for layer, unroll in zip(layers, before):
            layer.unroll = unroll


def export_tflite(model, path, quantization=None, representative_data=None, calibration_samples=256, float_mfcc=True):
    """Convert the model's numeric core to a ``.tflite`` file.

    The raw-input preprocessing (string ops) cannot run in TFLite (the TF
    wheel ships no Flex delegate), so the file takes the numeric inputs that
    ``model.preprocessor`` produces and returns the same named outputs as the
    SavedModel's ``serving_numeric`` signature. MFCC layers with
    ``stft="auto"`` are converted with their matmul STFT (LiteRT runs a dense
    matmul faster than its RFFT kernel; the outputs are the same), except with
    ``"dynamic"``, which would quantize the DFT matrix.

    Args:
        model: a :class:`MultimodalModel`.
        path: output ``.tflite`` file.
        quantization: ``None`` (float32), ``"dynamic"`` (int8 weights),
            ``"float16"`` (float16 weights) or ``"int8"`` (int8 weights, per
            channel, and int8 activations calibrated on ``representative_data``;
            float inputs and outputs, float fallback for ops without int8 kernels).
        representative_data: required for ``"int8"``: samples of the training
            data, either a ``tf.data.Dataset`` of numeric batches (``(x, y)``
            pairs as ``keras_mm`` datasets built with ``model=`` yield them, or
            ``x`` alone) or an iterable of numeric input dicts (e.g.
            ``model.preprocessor.process_batch(raw)`` batches). Pass shuffled data:
            the first ``calibration_samples`` samples are used.
        calibration_samples: how many samples calibrate the int8 ranges.
        float_mfcc: with ``"int8"``, keep the MFCC front-end in float32 (a power
            spectrum spans more range than int8 holds); the layers after it are
            quantized.

    Returns:
        the size of the file in bytes.

    Example:
        >>> model = keras_mm.build_model(preset="tiny_concat", num_classes=3)
        >>> size = keras_mm.export_tflite(model, "model.tflite", quantization="float16")
        >>> numeric = model.preprocessor.process_batch(model.preprocessor.example_raw(2))
        >>> TFLiteModel("model.tflite").predict(numeric)["probabilities"].shape
        (2, 3)
    """
    if quantization not in QUANTIZATIONS:
        raise ValueError(f"quantization={quantization!r} is not supported. Allowed: None, dynamic, float16, int8")
    if quantization == "int8" and representative_data is None:
        raise ValueError("quantization='int8' needs representative_data (a dataset of training batches) for calibration.")
    fns = ServingFunctions(model)
    # "dynamic" would store the DFT matrix in int8, whose error (~48 dB below the peak) lands inside the
    # 80 dB the MFCC keeps (AV-Digits test: -2.8 points vs -0.6 with the RFFT); RFFT has no weights.
    stft = "rfft" if quantization == "dynamic" else "matmul"
    with tempfile.TemporaryDirectory() as tmp:
        with auto_stft(stft), unrolled_recurrent_layers(model):
            archive = keras.export.ExportArchive()
            archive.track(fns.core)
            archive.add_endpoint("serving_default", fns.numeric, input_signature=[fns.numeric_signature()])
            archive.write_out(tmp, verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(tmp, signature_keys=["serving_default"])
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        if quantization is not None:
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if quantization == "float16":
            converter.target_spec.supported_types = [tf.float16]
        if quantization == "int8":
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8, tf.lite.OpsSet.TFLITE_BUILTINS]
            converter.representative_dataset = lambda: calibration_inputs(representative_data, calibration_samples)
        mfcc_paths = [layer.path for layer in model._flatten_layers() if isinstance(layer, MFCC)]
        with warnings.catch_warnings():
            # int8 calibration runs tf.lite.Interpreter inside the converter, which warns that it is deprecated
            warnings.filterwarnings("ignore", message=".*tf.lite.Interpreter is deprecated")
            if quantization == "int8" and float_mfcc and mfcc_paths:
                flatbuffer = _quantize_all_but(converter, mfcc_paths)
            else:
                flatbuffer = converter.convert()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "wb") as f:
        f.write(flatbuffer)
    return len(flatbuffer)


def calibration_inputs(representative_data, max_samples):
    """Single-sample numeric input dicts (numpy) from a dataset of ``(x, y)``/``x`` batches or an iterable of dicts.

    Example:
        >>> from keras_mm.export.tflite import calibration_inputs
        >>> ds = tf.data.Dataset.from_tensor_slices(({"audio": np.zeros((5, 16), "float32")}, np.arange(5))).batch(2)
        >>> [x["audio"].shape for x in calibration_inputs(ds, max_samples=3)]
        [(1, 16), (1, 16), (1, 16)]
    """
    count = 0
    for element in representative_data:
        inputs = element[0] if isinstance(element, (tuple, list)) else element
        batch = {name: np.asarray(value) for name, value in inputs.items()}
        for i in range(len(next(iter(batch.values())))):
            if count >= max_samples:
                return
            yield {name: value[i : i + 1] for name, value in batch.items()}
            count += 1


def _quantize_all_but(converter, layer_paths):
    """int8-quantize the converter's model except the ops inside the Keras layers at ``layer_paths``.

    TFLite's selective quantization (``QuantizationDebugger`` with
    ``denylisted_nodes``) names ops by their output tensors, which carry the
    layer path with Keras' per-call ``_1`` suffixes (``.../audio_encoder_1/mfcc_1/Log``).
    """
    debugger = tf.lite.experimental.QuantizationDebugger(converter=converter)
    patterns = [re.compile("(^|/)" + "/".join(re.escape(p) + r"(_\d+)?" for p in path.split("/")) + "/") for path in layer_paths]
    interpreter = tflite_interpreter_class()[0](model_content=debugger.calibrated_model)
    names = [t["name"] for t in interpreter.get_tensor_details() if any(p.search(t["name"]) for p in patterns)]
    if not names:
        raise RuntimeError(f"no TFLite op found for the layers {layer_paths}: cannot keep them in float32.")
    debugger.options = tf.lite.experimental.QuantizationDebugOptions(denylisted_nodes=names)
    return debugger.get_nondebug_quantized_model()


def tflite_interpreter_class():
    """``(Interpreter class, runtime name)``: LiteRT's (``ai_edge_litert``) when installed, else the deprecated ``tf.lite``'s.

    Example:
        >>> from keras_mm.export.tflite import tflite_interpreter_class
        >>> tflite_interpreter_class()[1] in ("ai_edge_litert", "tf.lite")
        True
    """
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        return tf.lite.Interpreter, "tf.lite"
    return Interpreter, "ai_edge_litert"


class TFLiteModel:
    """Runs an exported ``.tflite`` file on numeric input dicts (any batch size).

    The runtime is LiteRT (``ai_edge_litert``) when installed, ``tf.lite``
    otherwise; ``runtime`` says which.

    Example:
        >>> model = keras_mm.build_model(preset="tiny_concat", num_classes=3)
        >>> size = keras_mm.export_tflite(model, "model.tflite")
        >>> numeric = model.preprocessor.process_batch(model.preprocessor.example_raw(4))
        >>> lite = TFLiteModel("model.tflite")
        >>> float(np.abs(lite.predict(numeric)["probabilities"] - model.predict(numeric, verbose=0)).max()) < 1e-5
        True
        >>> lite.runtime
        'ai_edge_litert'
    """

    def __init__(self, path, num_threads=None):
        # The interpreter defaults to one thread; use the machine's cores.
        num_threads = num_threads or os.cpu_count()
        interpreter_class, self.runtime = tflite_interpreter_class()
        self.interpreter = interpreter_class(model_path=path, num_threads=num_threads)
        self.runner = self.interpreter.get_signature_runner("serving_default")
        self.input_details = self.runner.get_input_details()
        self.input_specs = {
            name: (detail["dtype"], tuple(None if d < 0 else int(d) for d in detail["shape_signature"]))
            for name, detail in self.input_details.items()}

    def predict(self, inputs):
        """``{output name: numpy array}`` for a dict of numeric inputs (``model.preprocessor.process_batch``).

        Inputs are checked against the file first (:func:`keras_mm.export.numeric_feed.numeric_feed`):
        a missing input, another shape or a value a cast would change is a ValueError naming the input.
        """
        return self.runner(**numeric_feed(inputs, self.input_specs, "TFLite"))
