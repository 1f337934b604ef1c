"""Export to a SavedModel that TF Serving loads as is."""

import json
import os
import shutil
import uuid

import keras
import tensorflow as tf
from tensorflow.python.saved_model import save_context

from keras_mm.export import serving
from keras_mm.export.layout import latest_version_dir, next_version
from keras_mm.export.signatures import ServingFunctions
from keras_mm.version import __version__

METADATA_FILE = os.path.join("assets.extra", "keras_mm.json")
AUDIO_FORMATS = ("waveform", "wav")


def export_saved_model(model, path, version=None, class_names=None, warmup_samples=None, overwrite=False):
    """Write ``model`` as ``<path>/<version>/`` in TF Serving's layout, taking raw inputs.

    Signatures (all ``tensorflow/serving/predict``, batch dimension ``None``):

    - ``serving_default``: raw inputs named by feature: image bytes
      (``DT_STRING``), UTF-8 text (``DT_STRING``), audio waveform (float32
      ``[B, N]``, any N). The preprocessing inside is ``model.preprocessor``.
    - ``serving_wav`` (models with audio): as above, audio as WAV bytes.
    - ``serving_numeric``: the model's numeric inputs (for clients that preprocess).

    Outputs: the head's (``probabilities`` and ``class_id`` for classification),
    ``<feature>_present`` and ``valid`` per sample, and ``modality_weights``
    when the fusion has them. A corrupt or empty input marks that modality
    missing for that sample only; the others are untouched.

    The version directory appears atomically: it is written under a temporary
    name (which TF Serving ignores) and renamed when complete.

    Args:
        model: a :class:`MultimodalModel`.
        path: the model's base directory, e.g. ``"saved_models/digits"``.
        version: integer version; ``None`` means the next one.
        class_names: class names for the ``class_name`` output and the
            export's metadata; default: the model's (``model.class_names``).
        warmup_samples: optional raw batch written as
            ``assets.extra/tf_serving_warmup_requests``.
        overwrite: replace an existing version directory.

    Returns:
        the version directory.

    Example:
        >>> import os, tempfile
        >>> model = keras_mm.build_model(preset="tiny_concat", num_classes=3)
        >>> base = os.path.join(tempfile.mkdtemp(), "digits")
        >>> os.path.relpath(keras_mm.export_saved_model(model, base), base)
        '1'
        >>> os.path.relpath(keras_mm.export_saved_model(model, base), base)
        '2'
    """
    version = next_version(path) if version is None else int(version)
    final = os.path.join(path, str(version))
    if os.path.exists(final) and not overwrite:
        raise ValueError(f"{final} already exists; pass version=None for the next version or overwrite=True.")
    os.makedirs(path, exist_ok=True)
    tmp = os.path.join(path, f".tmp-{version}-{uuid.uuid4().hex[:8]}")
    try:
        _write(model, tmp, class_names, warmup_samples)
        if os.path.exists(final):
            shutil.rmtree(final)
        os.rename(tmp, final)
    finally:
        if os.path.exists(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
    return final


def _write(model, directory, class_names, warmup_samples):
    fns = ServingFunctions(model, class_names=class_names)
    class_names = fns.class_names
    # One eager call builds every preprocessing layer (tokenizers, packers),
    # which ExportArchive requires before it tracks them.
    fns.raw(fns.preprocessor.example_raw(2))
    archive = keras.export.ExportArchive()
    preprocessing = [layer for pre in fns.preprocessor.feature_preprocessors.values() for layer in pre.trackables()]
    track_once(archive, [model, fns.core, *preprocessing])
    add_endpoint_traced_once(archive, "serving_default", fns.raw, [fns.raw_signature("waveform")])
    has_audio = "audio" in model.modalities.values()
    if has_audio:
        add_endpoint_traced_once(archive, "serving_wav", fns.raw, [fns.raw_signature("wav")])
    add_endpoint_traced_once(archive, "serving_numeric", fns.numeric, [fns.numeric_signature()])
    archive.write_out(directory, verbose=False)

    extra = os.path.join(directory, "assets.extra")
    os.makedirs(extra, exist_ok=True)
    metadata = {
        "keras_mm_version": __version__,
        "features": model.modalities,
        "sample_rates": {
            f: enc.sample_rate for f, enc in model.feature_encoders.items() if hasattr(enc, "sample_rate")
        },
        "num_samples": {
            f: enc.num_samples for f, enc in model.feature_encoders.items() if hasattr(enc, "num_samples")
        },
        "head": None if model.head is None else model.head.registered_name_in_zoo,
        "class_names": list(class_names) if class_names is not None else None,
        "signatures": ["serving_default"] + (["serving_wav"] if has_audio else []) + ["serving_numeric"],
        "requires": ["tensorflow_text"],
    }
    with open(os.path.join(directory, METADATA_FILE), "w") as f:
        json.dump(metadata, f, indent=2)
    if warmup_samples is not None:
        serving.write_warmup_requests(os.path.join(extra, "tf_serving_warmup_requests"), warmup_samples)


def add_endpoint_traced_once(archive, name, fn, input_signature):
    """``archive.add_endpoint(name, fn, input_signature=...)`` tracing ``fn`` once instead of twice.

    ``ExportArchive.write_out`` traces each endpoint to list its variables,
    then ``tf.saved_model.save`` traces it again: functions traced inside a
    save context are cached apart from the others. For a model with raw-input
    signatures each trace costs seconds (about 1.2 s per signature for a tiny
    model, 2-core CPU). Here the endpoint is the concrete function traced once
    in a save context (``SaveOptions()``, what ``write_out`` passes): both steps
    use it as it is. The signature TF Serving sees is the same.

    Example:
        >>> archive = keras.export.ExportArchive()
        >>> v = tf.Variable(2.0)
        >>> archive.track(v)
        >>> add_endpoint_traced_once(archive, "serving_default", lambda x: {"y": x * v}, [tf.TensorSpec([None], tf.float32)])
        >>> import tempfile; path = tempfile.mkdtemp()
        >>> archive.write_out(path, verbose=False)
        >>> tf.saved_model.load(path).signatures["serving_default"](tf.constant([1.0, 3.0]))["y"].numpy()
        array([2., 6.], dtype=float32)
    """
    if name in archive._endpoint_names:  # Keras 3.15's ExportArchive keeps its endpoints in these attributes
        raise ValueError(f"Endpoint name '{name}' is already taken.")
    function = tf.function(fn, input_signature=input_signature, autograph=False)
    with save_context.save_context(tf.saved_model.SaveOptions()):
        concrete = function.get_concrete_function()
    archive._endpoint_signatures[name] = input_signature
    setattr(archive._tf_trackable, name, concrete)
    archive._endpoint_names.append(name)


def track_once(archive, layers):
    """Track ``layers`` in a ``keras.export.ExportArchive`` so that each weight is stored once.

    ``archive.track(layer)`` lists the layer's Keras variables, which the
    SavedModel writes under ``variables/``; the endpoints capture the
    ``tf.Variable`` inside each of them, which it writes again under
    ``_all_variables/`` (Keras 3.15): two copies of every weight. Here the
    layers are tracked through a plain container (walked only for their lookup
    tables) and the variable lists hold the captured ``tf.Variable`` objects
    themselves, so ``loaded.variables`` still works and the weights are
    written once.

    Example:
        >>> model = keras_mm.build_model(preset="tiny_concat", num_classes=3)
        >>> archive = keras.export.ExportArchive()
        >>> track_once(archive, [model])
        >>> len(archive.variables) == len(model.variables)
        True
    """
    container = tf.Module()
    container.layers = list(layers)
    archive.track(container)
    variables = list({id(v): v for layer in layers for v in layer.variables}.values())
    archive.add_variable_collection("variables", [v.value for v in variables])
    archive.add_variable_collection("trainable_variables", [v.value for v in variables if v.trainable])
    archive.add_variable_collection("non_trainable_variables", [v.value for v in variables if not v.trainable])


def read_export_metadata(path):
    """The ``assets.extra/keras_mm.json`` metadata of an export (features, sample rates, class names)."""
    with open(os.path.join(latest_version_dir(path), METADATA_FILE)) as f:
        return json.load(f)
