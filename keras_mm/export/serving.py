"""Clients for an exported model: TF Serving REST/gRPC requests and local calls.

Also available as ``keras_mm.serving``.
"""

import base64
import json

import numpy as np
import tensorflow as tf
import tensorflow_text  # noqa: F401  (registers the ops an export's tokenizer needs before loading it)
from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

from keras_mm.export.layout import latest_version_dir
from keras_mm.naming import STATUS, input_name
from keras_mm.preprocessing.status import warn_once_about


def _column(values):
    """One feature's values as JSON-ready data; bytes become ``{"b64": ...}``."""
    out = []
    for value in values:
        if isinstance(value, (bytes, bytearray)):
            out.append({"b64": base64.b64encode(bytes(value)).decode("ascii")})
        elif isinstance(value, str):
            out.append(value)
        else:
            out.append(np.asarray(value).tolist())
    return out


def rest_request(samples, format="row", signature_name="serving_default"):
    """Build the JSON body of a TF Serving REST ``:predict`` request.

    Args:
        samples: ``{feature: list of values}`` (image/WAV bytes, text strings,
            waveform arrays), as for ``model.preprocessor``.
        format: ``"row"`` (``instances``: one object per sample) or
            ``"columnar"`` (``inputs``: one list per feature).
        signature_name: e.g. ``"serving_wav"`` to send audio as WAV bytes.

    Binary values are sent as ``{"b64": "..."}``; TF Serving decodes them, so
    the graph receives the raw bytes.

    Example:
        >>> body = rest_request({"image": [b"\\x89PNG"], "text": ["a dog"]})
        >>> json.loads(body)["instances"]
        [{'image': {'b64': 'iVBORw=='}, 'text': 'a dog'}]
        >>> # POST it to http://<server>:8501/v1/models/<name>:predict
    """
    if format not in ("row", "columnar"):
        raise ValueError(f"format={format!r} is not supported. Allowed: row, columnar")
    columns = {feature: _column(values) for feature, values in samples.items()}
    sizes = {len(v) for v in columns.values()}
    if len(sizes) != 1:
        raise ValueError(f"Every feature needs the same number of samples, got { {k: len(v) for k, v in columns.items()} }.")
    body = {"signature_name": signature_name}
    if format == "columnar":
        body["inputs"] = columns
    else:
        body["instances"] = [{k: columns[k][i] for k in columns} for i in range(sizes.pop())]
    return json.dumps(body)


def grpc_request(samples, model_name, signature_name="serving_default", version=None):
    """Build a ``tensorflow_serving.apis.predict_pb2.PredictRequest`` for TF Serving's gRPC API.

    Example:
        >>> request = grpc_request({"text": ["a dog"], "audio": [np.zeros(4, "float32")]}, "digits")
        >>> request.model_spec.name, [d.size for d in request.inputs["audio"].tensor_shape.dim]
        ('digits', [1, 4])
        >>> # then: PredictionServiceStub(grpc.insecure_channel("<server>:8500")).Predict(request, 5.0)
    """
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model_name
    request.model_spec.signature_name = signature_name
    if version is not None:
        request.model_spec.version.value = int(version)
    for feature, values in samples.items():
        values = list(values)
        if values and isinstance(values[0], (bytes, bytearray, str)):
            array = np.array([v.encode("utf-8") if isinstance(v, str) else bytes(v) for v in values], dtype=object)
            proto = tf.make_tensor_proto(array, dtype=tf.string)
        else:
            proto = tf.make_tensor_proto(pad_and_stack(values), dtype=tf.float32)
        request.inputs[feature].CopyFrom(proto)
    return request


def pad_and_stack(values):
    """Stack variable-length numeric sequences into one float32 ``[batch, longest]`` array, zero-padded at the end.

    The serving signatures take waveforms as one dense ``[batch, N]`` tensor;
    this is how clips of different lengths are batched for them.

    Args:
        values: a list of 1-D sequences (lists or arrays); each is flattened.

    Returns:
        a float32 numpy array ``[len(values), longest length]`` (``[0, 0]`` when empty).

    Example:
        >>> keras_mm.serving.pad_and_stack([[1.0, 2.0], [3.0]]).tolist()
        [[1.0, 2.0], [3.0, 0.0]]
    """
    arrays = [np.asarray(v, np.float32).reshape(-1) for v in values]
    length = max((len(a) for a in arrays), default=0)
    return np.stack([np.pad(a, (0, length - len(a))) for a in arrays]) if arrays else np.zeros((0, 0), np.float32)


def write_warmup_requests(path, samples, signature_name="serving_default", num_records=1):
    """Write TF Serving warm-up records (``assets.extra/tf_serving_warmup_requests``).

    Example:
        >>> import os, tempfile
        >>> path = os.path.join(tempfile.mkdtemp(), "tf_serving_warmup_requests")
        >>> write_warmup_requests(path, {"text": ["a dog", "a cat"]}, num_records=2)
        >>> sum(1 for _ in tf.data.TFRecordDataset(path))
        2
    """
    request = grpc_request(samples, model_name="warmup", signature_name=signature_name)
    with tf.io.TFRecordWriter(path) as writer:
        for _ in range(num_records):
            log = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))
            writer.write(log.SerializeToString())


def load_saved_model(path):
    """Load an export (base directory or version directory) for local calls.

    The tokenizer ops an export uses live in ``tensorflow_text``, which this
    module imports.

    Example:
        >>> import tempfile
        >>> model = keras_mm.build_model(preset="tiny_concat", num_classes=3)
        >>> base = tempfile.mkdtemp()
        >>> version_dir = keras_mm.export_saved_model(model, base)
        >>> served = load_saved_model(base)      # the highest version under base
        >>> sorted(served.signatures)
        ['serving_default', 'serving_numeric', 'serving_wav']
    """
    return tf.saved_model.load(latest_version_dir(path))


def string_input_bytes(value, feature, signature_name):
    """One string input's bytes: ``str`` as UTF-8, ``bytes`` as they are; anything else is a ``ValueError``.

    (``bytes()`` of a float waveform made silent non-WAV bytes for ``serving_wav``.)

    Example:
        >>> string_input_bytes("héllo", "text", "serving_default")
        b'h\\xc3\\xa9llo'
    """
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, (bytes, bytearray, np.bytes_)):
        return bytes(value)
    raise ValueError(f"signature {signature_name!r}: {feature} takes bytes (encoded files) or text, got "
                     f"{type(value).__name__}{getattr(value, 'shape', '')}; e.g. open(path, 'rb').read()")


def call_signature(loaded, samples, signature_name="serving_default"):
    """Call a loaded export's signature with ``{feature: list of raw values}``; numpy outputs.

    Example:
        >>> import tempfile
        >>> model = keras_mm.build_model(preset="tiny_concat", class_names=["cat", "dog", "emu"])
        >>> base = tempfile.mkdtemp()
        >>> version_dir = keras_mm.export_saved_model(model, base)
        >>> raw = model.preprocessor.example_raw(2)     # {"image": bytes, "text": str, "audio": waveforms}
        >>> out = call_signature(load_saved_model(base), {**raw, "image": [raw["image"][0], b""]})
        >>> out["class_name"].shape, out["image_status"].tolist()
        ((2,), [b'ok', b'empty'])
    """
    if signature_name not in loaded.signatures:
        raise ValueError(f"signature {signature_name!r} is not in this export. Signatures: {', '.join(sorted(loaded.signatures))}")
    fn = loaded.signatures[signature_name]
    specs = fn.structured_input_signature[1]
    missing = sorted(set(specs) - set(samples))
    if missing:
        raise ValueError(f"signature {signature_name!r} takes {', '.join(sorted(specs))}; not given: {', '.join(missing)}")
    kwargs = {}
    for feature, spec in specs.items():
        values = samples[feature]
        if spec.dtype == tf.string:
            kwargs[feature] = tf.constant([string_input_bytes(v, feature, signature_name) for v in values], tf.string)
        elif spec.shape.rank == 2 and spec.dtype == tf.float32 and not isinstance(values, np.ndarray):
            kwargs[feature] = tf.constant(pad_and_stack(values))
        else:
            kwargs[feature] = tf.convert_to_tensor(values, spec.dtype)
    outputs = {k: v.numpy() for k, v in fn(**kwargs).items()}
    suffix = input_name("", STATUS)  # "_status"
    warn_once_about({k[: -len(suffix)]: v for k, v in outputs.items() if k.endswith(suffix)})
    return outputs
