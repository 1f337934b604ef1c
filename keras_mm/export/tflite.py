"""TFLite export of the numeric core (built-in ops only)."""

import os
import tempfile

import keras
import numpy as np
import tensorflow as tf

from keras_mm.export.signatures import ServingFunctions

QUANTIZATIONS = (None, "dynamic", "float16", "int8")


def export_tflite(model, path, quantization=None, representative_data=None):
    """Convert the model's numeric core to a ``.tflite`` file.

    The raw-input preprocessing (string ops) cannot run in TFLite (the TF
    wheel ships no Flex delegate), so the file takes the numeric inputs that
    ``model.preprocessor`` produces and returns the same named outputs as the
    SavedModel's ``serving_numeric`` signature.

    Args:
        model: a :class:`MultimodalModel`.
        path: output ``.tflite`` file.
        quantization: ``None`` (float32), ``"dynamic"`` (int8 weights),
            ``"float16"`` (float16 weights) or ``"int8"`` (int8 weights and
            activations calibrated on ``representative_data``, float fallback
            for ops without int8 kernels).
        representative_data: required for ``"int8"``: an iterable of numeric
            input dicts (e.g. ``model.preprocessor.process_batch(raw)`` batches).

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
        raise ValueError("quantization='int8' needs representative_data=[numeric input dicts] for calibration.")
    fns = ServingFunctions(model)
    with tempfile.TemporaryDirectory() as tmp:
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

            def calibration():
                for batch in representative_data:
                    for i in range(len(next(iter(batch.values())))):
                        yield {k: np.asarray(v[i : i + 1]) for k, v in batch.items()}

            converter.representative_dataset = calibration
        flatbuffer = converter.convert()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "wb") as f:
        f.write(flatbuffer)
    return len(flatbuffer)


class TFLiteModel:
    """Runs an exported ``.tflite`` file on numeric input dicts (any batch size).

    Example:
        >>> model = keras_mm.build_model(preset="tiny_concat", num_classes=3)
        >>> size = keras_mm.export_tflite(model, "model.tflite")
        >>> numeric = model.preprocessor.process_batch(model.preprocessor.example_raw(4))
        >>> lite = TFLiteModel("model.tflite")
        >>> float(np.abs(lite.predict(numeric)["probabilities"] - model.predict(numeric, verbose=0)).max()) < 1e-5
        True
    """

    def __init__(self, path, num_threads=None):
        # The interpreter defaults to one thread; use the machine's cores.
        num_threads = num_threads or os.cpu_count()
        self.interpreter = tf.lite.Interpreter(model_path=path, num_threads=num_threads)
        self.runner = self.interpreter.get_signature_runner("serving_default")
        self.input_details = self.runner.get_input_details()

    def predict(self, inputs):
        feed = {}
        for name, detail in self.input_details.items():
            feed[name] = np.asarray(inputs[name]).astype(detail["dtype"])
        return self.runner(**feed)
