"""Reusable assertions for keras_mm components (public: test your own encoders with them).

Example:
    >>> from keras_mm import testing
    >>> class LeakyFusion(keras_mm.fusions.Fusion):  # ignores presence: a missing modality leaks through
    ...     def compute_output_dim(self, input_dims):
    ...         return sum(input_dims.values())
    ...     def call(self, features, presence=None):
    ...         return {"fused": keras.ops.concatenate([features[k] for k in sorted(features)], axis=-1)}
    >>> testing.run_fusion_test(LeakyFusion, {}, input_dims={"image": 6, "text": 4})  # perturbs a missing input
    Traceback (most recent call last):
    ...
    AssertionError: ...Not equal to tolerance...
"""

import json
import os
import tempfile

import keras
import numpy as np

from keras_mm.modalities import get_modality
from keras_mm.registry import MODALITIES


def _to_numpy(x):
    if isinstance(x, dict):
        return {k: _to_numpy(v) for k, v in x.items()}
    return keras.ops.convert_to_numpy(x)


def assert_allclose_nested(actual, expected, atol=1e-6, rtol=0.0):
    """``np.testing.assert_allclose`` over equal dicts of arrays (or two arrays)."""
    actual, expected = _to_numpy(actual), _to_numpy(expected)
    if isinstance(expected, dict):
        assert sorted(actual) == sorted(expected), f"keys differ: {sorted(actual)} vs {sorted(expected)}"
        for key in expected:
            np.testing.assert_allclose(actual[key], expected[key], atol=atol, rtol=rtol, err_msg=key)
    else:
        np.testing.assert_allclose(actual, expected, atol=atol, rtol=rtol)


def random_numeric_inputs(encoder, batch_size=2, seed=0):
    """Random inputs matching ``encoder.input_signature()`` (valid ids, 0..255 pixels)."""
    rng = np.random.default_rng(seed)
    inputs = {}
    for suffix, (shape, dtype) in encoder.input_signature().items():
        full = (batch_size, *shape)
        if "int" in dtype:
            high = 2 if suffix in ("padding_mask", "segment_ids") else 4
            value = rng.integers(0, high, size=full).astype(dtype)
            if suffix == "padding_mask":
                value[:, 0] = 1
        else:
            value = get_modality(encoder.modality).random_numeric(full, dtype, rng)
        inputs[suffix] = value
    return inputs


def run_encoder_test(cls, init_kwargs, batch_size=2):
    """Check an encoder class end to end.

    Builds it, calls it on random numeric inputs (shape ``[batch, output_dim]``,
    finite values), checks that its preprocessor turns valid raw values into
    exactly the inputs it declares, and that ``from_config(get_config())``
    with copied weights gives the same outputs.

    Example:
        >>> encoder = keras_mm.testing.run_encoder_test(keras_mm.encoders.SmallCNNEncoder, {"image_size": 16})
        >>> encoder.output_dim  # passed: it returns the checked encoder
        64
    """
    encoder = cls(**init_kwargs)
    assert encoder.modality in MODALITIES, (
        f"{cls.__name__}.modality={encoder.modality!r} is not a registered modality ({', '.join(MODALITIES.names())})"
    )
    inputs = random_numeric_inputs(encoder, batch_size)
    outputs = keras.ops.convert_to_numpy(encoder(inputs))
    assert outputs.shape == (batch_size, encoder.output_dim), (outputs.shape, encoder.output_dim)
    assert np.all(np.isfinite(outputs)), "encoder produced non-finite values"

    preprocessor = encoder.build_preprocessor("feature")
    numeric = preprocessor.process_batch(preprocessor.example_raw(batch_size))
    expected_names = {preprocessor.input_name(s) for s in encoder.input_signature()} | {preprocessor.presence_name}
    assert set(numeric) == expected_names, (set(numeric), expected_names)
    for suffix, (shape, dtype) in encoder.input_signature().items():
        value = numeric[preprocessor.input_name(suffix)]
        assert tuple(value.shape) == (batch_size, *shape), (suffix, value.shape, shape)
        assert value.dtype.name == dtype, (suffix, value.dtype, dtype)
    np.testing.assert_array_equal(numeric[preprocessor.presence_name], 1.0)  # example_raw is valid data

    if encoder.supports_sequences:
        encoded = encoder(inputs, return_sequence=True)
        assert set(encoded) == {"pooled", "sequence", "sequence_mask"}, set(encoded)
        assert_allclose_nested(encoded["pooled"], outputs, atol=1e-6)
        sequence, mask = keras.ops.convert_to_numpy(encoded["sequence"]), keras.ops.convert_to_numpy(encoded["sequence_mask"])
        assert sequence.ndim == 3 and sequence.shape[0] == batch_size and sequence.shape[2] == encoder.sequence_dim
        assert mask.shape == sequence.shape[:2] and set(np.unique(mask)) <= {0.0, 1.0}, mask
        assert np.all(mask[:, 0] == 1.0), "the first position of every sequence is valid"

    restored = cls.from_config(encoder.get_config())
    restored(inputs)
    restored.set_weights(encoder.get_weights())
    # relative to the outputs' scale: a random-init deep CNN can output ~1e-10, where any absolute
    # tolerance would accept a wrongly rebuilt encoder
    assert_allclose_nested(restored(inputs), outputs, atol=1e-5 * float(np.abs(outputs).max()))
    return encoder


def run_fusion_test(cls, init_kwargs, input_dims=None, batch_size=2):
    """Check a fusion class: output keys and shapes, ``output_dim``, config round trip.

    Example:
        >>> fusion = keras_mm.testing.run_fusion_test(keras_mm.fusions.ConcatFusion, {}, {"a": 4, "b": 3})
        >>> fusion.output_dim
        7
    """
    input_dims = input_dims or {"audio": 5, "image": 7, "text": 3}
    rng = np.random.default_rng(0)
    features = {k: rng.normal(size=(batch_size, d)).astype("float32") for k, d in input_dims.items()}
    sequences = masks = None
    if cls.uses_sequences:
        # token sequences of different lengths; the second sample has padding
        sequences = {k: rng.normal(size=(batch_size, 3 + i, d)).astype("float32")
                     for i, (k, d) in enumerate(sorted(input_dims.items()))}
        masks = {k: np.ones(v.shape[:2], "float32") for k, v in sequences.items()}
        for m in masks.values():
            m[1:, -1] = 0.0

    def call(layer, feats, presence=None, seqs=None):
        if not cls.uses_sequences:
            return layer(feats, presence)
        return layer(feats, presence, sequences=seqs if seqs is not None else sequences, sequence_masks=masks)

    fusion = cls(**init_kwargs)
    out = call(fusion, features)
    assert isinstance(out, dict) and "fused" in out, "a fusion returns a dict with a 'fused' entry"
    assert set(out) == {"fused", *fusion.extra_outputs}, (set(out), fusion.extra_outputs)
    assert tuple(out["fused"].shape) == (batch_size, fusion.output_dim)
    assert fusion.output_dim == fusion.compute_output_dim(input_dims)
    if "modality_weights" in out:
        weights = keras.ops.convert_to_numpy(out["modality_weights"])
        assert weights.shape == (batch_size, len(input_dims))
        np.testing.assert_allclose(weights.sum(axis=-1), 1.0, atol=1e-5)
    # A missing modality must not influence the output.
    first = sorted(input_dims)[0]
    presence = {k: np.ones(batch_size, "float32") for k in input_dims}
    presence[first][0] = 0.0
    perturbed = dict(features)
    perturbed[first] = features[first].copy()
    perturbed[first][0] += 100.0
    perturbed_sequences = None
    if sequences is not None:
        perturbed_sequences = dict(sequences)
        perturbed_sequences[first] = sequences[first].copy()
        perturbed_sequences[first][0] += 100.0
    assert_allclose_nested(
        call(fusion, perturbed, presence, perturbed_sequences)["fused"][0], call(fusion, features, presence)["fused"][0], atol=1e-5
    )
    if "modality_weights" in out:
        masked_weights = keras.ops.convert_to_numpy(call(fusion, features, presence)["modality_weights"])
        assert masked_weights[0, 0] == 0.0 and abs(masked_weights[0].sum() - 1.0) < 1e-5

    restored = cls.from_config(fusion.get_config())
    call(restored, features)
    restored.set_weights(fusion.get_weights())
    assert_allclose_nested(call(restored, features), out, atol=1e-5)
    return fusion


def run_serialization_test(model, inputs, atol=1e-6, safe_mode=True):
    """Save ``model`` as ``.keras``, reload with ``safe_mode=True``, compare predictions and configs.

    ``safe_mode=False`` is for models whose encoders load external graph code
    on reload (``tfhub``: ``TFHubEncoder.reloads_safely`` is False).

    Also asserts that no ``Lambda`` layer is present (they do not load safely).

    Example:
        >>> model = keras_mm.build_model(encoders={"image": {"name": "small_cnn", "image_size": 16}}, num_classes=3)
        >>> x = model.preprocessor.process_batch(model.preprocessor.example_raw(2))
        >>> restored = keras_mm.testing.run_serialization_test(model, x)
        >>> type(restored).__name__, restored.count_params() == model.count_params()
        ('MultimodalModel', True)
    """
    def walk(layer):
        yield layer
        for sub in getattr(layer, "_layers", []) or []:
            yield from walk(sub)

    lambdas = [layer.name for layer in walk(model) if isinstance(layer, keras.layers.Lambda)]
    assert not lambdas, f"Lambda layers do not reload with safe_mode=True: {lambdas}"
    expected = model.predict(inputs, verbose=0)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.keras")
        model.save(path)
        restored = keras.models.load_model(path, safe_mode=safe_mode)
    assert type(restored) is type(model)
    def as_json(config):
        return json.loads(json.dumps(config, default=str))

    assert as_json(restored.get_config()) == as_json(model.get_config())
    assert_allclose_nested(restored.predict(inputs, verbose=0), expected, atol=atol)
    return restored
