"""Loading pretrained weights from local files into a backbone."""

import os
import warnings

import keras


def _layers_by_name(model):
    """All weighted leaf layers of ``model`` (nested models flattened), by name."""
    found = {}
    stack = list(model.layers)
    while stack:
        layer = stack.pop(0)
        if isinstance(layer, keras.Model) or hasattr(layer, "layers") and layer.layers:
            stack = list(layer.layers) + stack
        elif layer.weights:
            found.setdefault(layer.name, layer)
    return found


def load_pretrained_weights(backbone, path):
    """Load a local weights file into ``backbone``; never downloads.

    Accepts a weights file of the same architecture (``.weights.h5`` or a
    legacy ``.h5`` weights file), or a full saved Keras model (``.keras`` or
    ``.h5``) built on the same backbone, whose layers are then matched by name
    and weight shapes. Raises ``ValueError`` when the file is absent or when
    nothing matches.

    Returns:
        the number of backbone layers that received weights.

    Example:
        >>> import os, tempfile
        >>> def backbone():
        ...     return keras.applications.MobileNetV2(weights=None, include_top=False, input_shape=(96, 96, 3), alpha=0.35)
        >>> classifier = keras.Sequential([backbone(), keras.layers.Dense(19, name="breeds")])  # a trained model
        >>> path = os.path.join(tempfile.mkdtemp(), "classifier.keras")
        >>> classifier.save(path)
        >>> keras_mm.encoders.load_pretrained_weights(backbone(), path)  # matched by layer name and shape
        104
    """
    if not os.path.isfile(path):
        raise ValueError(
            f"Pretrained weights file not found: {path!r}. Pass the path of a local "
            "weights file (keras_mm downloads nothing), or weights=None."
        )
    try:
        # A full model file makes this attempt fail, after Keras warned once per nested container
        # ("Skipping nested container", ~100 lines per call): keep those warnings only if it succeeds.
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            backbone.load_weights(path)
        for warning in caught:
            warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
        return len([layer for layer in backbone.layers if layer.weights])
    except Exception as direct_error:  # noqa: BLE001 - fall back to a by-name match below
        try:
            source = keras.models.load_model(path, compile=False, safe_mode=True)
        except Exception:
            raise ValueError(
                f"Could not load {path!r} into {backbone.name}: it is neither a weights "
                f"file of this architecture nor a Keras model ({direct_error})."
            ) from direct_error
    source_layers = _layers_by_name(source)
    loaded = 0
    for name, layer in _layers_by_name(backbone).items():
        src = source_layers.get(name)
        if src is None:
            continue
        src_weights = src.get_weights()
        if [w.shape for w in src_weights] == [tuple(w.shape) for w in layer.weights]:
            layer.set_weights(src_weights)
            loaded += 1
    if loaded == 0:
        raise ValueError(f"No layer of {path!r} matches {backbone.name} by name and shape.")
    return loaded
