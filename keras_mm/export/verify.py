"""Check an export against the in-memory model, the way TF Serving would run it."""

import os
import pickle
import subprocess
import sys
import tempfile

import numpy as np
import tensorflow as tf

from keras_mm.export.layout import latest_version_dir
from keras_mm.export.onnx import ONNXModel
from keras_mm.export.serving import pad_and_stack, string_input_bytes
from keras_mm.export.signatures import ServingFunctions
from keras_mm.export.tflite import TFLiteModel

_CHILD = r"""
import pickle, sys
import numpy as np
import tensorflow as tf
import tensorflow_text  # noqa: F401  -- the tokenizer's ops
path, samples_file, out_file, signature = sys.argv[1:5]
with open(samples_file, "rb") as f:
    samples = pickle.load(f)
from keras_mm.export.serving import call_signature, pad_and_stack
loaded = tf.saved_model.load(path)
eager = call_signature(loaded, samples, signature)

# The TF Serving path: a TF1 session on tag "serve", fed by the signature's tensor names.
feeds_by_name = {}
with tf.Graph().as_default() as graph, tf.compat.v1.Session(graph=graph) as sess:
    meta = tf.compat.v1.saved_model.loader.load(sess, ["serve"], path)
    sig = meta.signature_def[signature]
    assert sig.method_name == "tensorflow/serving/predict", sig.method_name
    feed = {}
    for key, info in sig.inputs.items():
        value = samples[key]
        if info.dtype == tf.string.as_datatype_enum:
            value = np.array([v.encode("utf-8") if isinstance(v, str) else bytes(v) for v in value], dtype=object)
        elif isinstance(value, np.ndarray) and value.dtype != object:
            value = value.astype(np.float32)
        else:
            value = pad_and_stack(value)  # variable-length clips, zero-padded as the eager path does
        feed[info.name] = value
    fetch = {key: info.name for key, info in sig.outputs.items()}
    session = sess.run(fetch, feed_dict=feed)
with open(out_file, "wb") as f:
    pickle.dump({"eager": eager, "session": session}, f)
"""


def verify_export(model, path, samples, signature="serving_default", atol=1e-5, timeout=600):
    """Reload an export in a fresh process and compare it with ``model`` on raw ``samples``.

    Runs the signature twice in a new Python process (``import tensorflow_text``
    first, as a server must): through ``tf.saved_model.load``, and through a TF1
    session on tag ``serve`` fed by the signature's tensor names (the path TF
    Serving and ``saved_model_cli run`` take). Both are compared, output by
    output, with the in-memory model run on the same raw samples.

    Args:
        model: the in-memory :class:`MultimodalModel`.
        path: the export (base or version directory).
        samples: ``{feature: list/array of raw values}``.
        signature: signature to check (``serving_wav`` takes WAV bytes).
        atol: tolerance; the report's ``ok`` says whether both paths are within it.

    Returns:
        dict: ``max_abs_diff`` (fresh-process load), ``session_max_abs_diff``
        (TF1 session), per-output diffs, and ``ok``.

    Example:
        >>> import tempfile
        >>> model = keras_mm.build_model(preset="tiny_concat", num_classes=3)
        >>> base = tempfile.mkdtemp()
        >>> version_dir = keras_mm.export_saved_model(model, base)
        >>> report = keras_mm.verify_export(model, base, model.preprocessor.example_raw(3))
        >>> report["ok"], report["max_abs_diff"] <= 1e-5
        (True, True)
    """
    version_dir = latest_version_dir(path)
    fns = ServingFunctions(model)
    audio_as_wav = signature == "serving_wav"
    raw = {}
    for feature, values in samples.items():
        raw[feature] = _to_tensor(values, fns.raw_signature("wav" if audio_as_wav else "waveform")[feature], feature, signature)
    expected = {k: np.asarray(v) for k, v in fns.raw(raw).items()}

    with tempfile.TemporaryDirectory() as tmp:
        samples_file, out_file = os.path.join(tmp, "samples.pkl"), os.path.join(tmp, "out.pkl")
        with open(samples_file, "wb") as f:
            pickle.dump({k: list(v) if not isinstance(v, np.ndarray) else v for k, v in samples.items()}, f)
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
        result = subprocess.run(
            [sys.executable, "-c", _CHILD, version_dir, samples_file, out_file, signature],
            capture_output=True, text=True, timeout=timeout, env=env,
        )
        if result.returncode != 0:
            raise RuntimeError(f"Loading {version_dir} in a fresh process failed:\n{result.stderr[-4000:]}")
        with open(out_file, "rb") as f:
            served = pickle.load(f)

    report = {"version_dir": version_dir, "signature": signature, "per_output": {}}
    for source in ("eager", "session"):
        worst, per_output = _compare(expected, served[source], source)
        for key, diff in per_output.items():
            report["per_output"].setdefault(key, {})[source] = diff
        report["max_abs_diff" if source == "eager" else "session_max_abs_diff"] = worst
    report["ok"] = report["max_abs_diff"] <= atol and report["session_max_abs_diff"] <= atol
    report["expected"] = expected
    report["served"] = served["eager"]
    return report


def verify_numeric(model, runner, inputs, atol=1e-5):
    """Compare a numeric-core export (ONNX or TFLite) with ``model`` on numeric ``inputs``, output by output.

    The reference is the model's ``serving_numeric`` computation (the
    outputs :func:`export_onnx` and :func:`export_tflite` keep).

    Args:
        model: the in-memory :class:`MultimodalModel`.
        runner: an :class:`ONNXModel` or :class:`TFLiteModel`, or the path of
            an ``.onnx`` / ``.tflite`` file.
        inputs: numeric input dict (``model.preprocessor.process_batch(raw)``).
        atol: tolerance; the report's ``ok`` says whether every output is within it.

    Returns:
        dict: ``max_abs_diff``, ``per_output`` diffs, ``ok``, and the
        ``expected`` and ``served`` outputs.

    Example:
        >>> from keras_mm.export.verify import verify_numeric
        >>> model = keras_mm.build_model(encoders={"audio": {"name": "mfcc_cnn", "num_samples": 4000}}, num_classes=3)
        >>> size = keras_mm.export_onnx(model, "model.onnx")
        >>> report = verify_numeric(model, "model.onnx", model.preprocessor.process_batch(model.preprocessor.example_raw(3)))
        >>> report["ok"], report["max_abs_diff"] <= 1e-5
        (True, True)
    """
    if isinstance(runner, (str, os.PathLike)):
        runner = _runner_for(os.fspath(runner))
    expected = {k: np.asarray(v) for k, v in ServingFunctions(model).numeric(inputs).items()}
    served = {k: np.asarray(v) for k, v in runner.predict(inputs).items()}
    worst, per_output = _compare(expected, served, type(runner).__name__)
    return {"max_abs_diff": worst, "per_output": per_output, "ok": worst <= atol, "expected": expected, "served": served}


def _runner_for(path):
    runners = {".onnx": ONNXModel, ".tflite": TFLiteModel}
    extension = os.path.splitext(path)[1]
    if extension not in runners:
        raise ValueError(f"runner={path!r}: the file's extension {extension!r} is not supported. Allowed: .onnx, .tflite")
    return runners[extension](path)


def _compare(expected, got, source):
    """``(largest difference, {output: difference})`` of the outputs ``got`` against ``expected``."""
    per_output = {}
    for key, value in expected.items():
        if key not in got:
            raise AssertionError(f"{source}: output {key!r} is missing; it has {sorted(got)}")
        array = np.asarray(got[key])
        if array.shape != value.shape:
            raise AssertionError(f"{source}: output {key!r} has shape {array.shape}, expected {value.shape}")
        per_output[key] = _max_difference(array, value)
    return max(per_output.values(), default=0.0), per_output


def _to_tensor(values, spec, feature, signature):
    if spec.dtype == tf.string:
        return tf.constant([string_input_bytes(v, feature, signature) for v in values], tf.string)
    if isinstance(values, np.ndarray) and values.dtype != object:
        return tf.constant(values, spec.dtype)
    if any(isinstance(v, (bytes, str)) for v in values):  # was a ValueError quoting every byte of the WAV files
        hint = " (WAV bytes go to signature='serving_wav')" if signature != "serving_wav" else ""
        raise ValueError(f"signature {signature!r}: {feature} takes numbers (e.g. float waveforms), got bytes or text{hint}.")
    return tf.constant(pad_and_stack(values))


def _max_difference(got, expected):
    """Largest absolute difference; for string outputs (statuses, class names) 0 if equal, inf if not."""
    if not expected.size:
        return 0.0
    if expected.dtype == object or got.dtype == object:
        return 0.0 if np.array_equal(got.astype(object), expected.astype(object)) else float("inf")
    return float(np.max(np.abs(got.astype(np.float64) - expected.astype(np.float64))))
