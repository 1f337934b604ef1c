"""Registry-wide encoder tests: a newly registered encoder is tested with no new test code."""

import keras
import numpy as np
import pytest
from keras.src.saving.serialization_lib import SafeModeScope

import keras_mm
from keras_mm.registry import ENCODERS
from keras_mm.testing import run_encoder_test, run_serialization_test

# Every registered encoder but the stand-ins other test modules register for their own checks (they have
# no preprocessor), whichever order pytest collects the modules in.
NAMES = [name for name, cls in ENCODERS.items() if not cls.__module__.startswith("tests.")]
#: encoders that pass their input through and have no weights to train or freeze.
WEIGHTLESS = {"precomputed"}


@pytest.mark.parametrize("name", NAMES)
def test_encoder_contract(name):
    cls = ENCODERS.get(name)
    run_encoder_test(cls, cls.example_config)


@pytest.mark.parametrize("name", NAMES)
def test_encoder_trains_in_a_model_and_reloads(name):
    cls = ENCODERS.get(name)
    keras.utils.set_random_seed(0)
    # The encoder is under test, without the feature LayerNorm.
    model = keras_mm.build_model(encoders={"x": {"name": name, **cls.example_config}}, num_classes=2,
                                 feature_normalization=None)
    raw = model.preprocessor.example_raw(8)
    inputs = model.preprocessor.process_batch(raw)
    # example texts repeat with period 5, so the label must too to be learnable
    labels = np.array([(i % 5) % 2 for i in range(8)])
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    # A BatchNorm encoder (mobilenet_v2) is scored with its batch statistics: 10 steps on 8 samples teach the
    # weights, not moving statistics (at 0.999 they stayed at their start and the inference-mode output was
    # one constant, so the loss sat at ln 2 and only "fell" by rounding; at 0.9 they lag the weights).
    batch_norm = any(isinstance(layer, keras.layers.BatchNormalization)
                     for layer in model.feature_encoders["x"]._flatten_layers())

    def loss():
        if not batch_norm:
            return model.evaluate(inputs, labels, verbose=0)[0]
        probabilities = model(inputs, training=True)
        return float(keras.ops.mean(keras.losses.sparse_categorical_crossentropy(labels, probabilities)))

    before = loss()
    encoder_weights = model.feature_encoders["x"].trainable_weights
    initial = [w.numpy().copy() for w in encoder_weights]
    model.fit(inputs, labels, epochs=10, batch_size=8, verbose=0)
    after = loss()
    assert after < before, (before, after)
    # the loss can fall through the head alone: check that training reached every encoder weight
    untouched = [w.path for w, w0 in zip(encoder_weights, initial) if np.array_equal(w.numpy(), w0)]
    if name in WEIGHTLESS:
        assert not model.feature_encoders["x"].weights
    else:
        assert encoder_weights and not untouched, untouched
    run_serialization_test(model, inputs, safe_mode=getattr(cls, "reloads_safely", True))


@pytest.mark.parametrize("name", NAMES)
def test_a_frozen_encoder_has_no_trainable_weights_in_the_model(name):
    cls = ENCODERS.get(name)
    model = keras_mm.build_model(encoders={"x": {"name": name, **cls.example_config, "trainable": False}}, num_classes=2)
    encoder_weights = {id(w) for w in model.feature_encoders["x"].weights}
    assert (encoder_weights or name in WEIGHTLESS) and not encoder_weights & {id(w) for w in model.trainable_weights}
    assert {id(w) for w in model.head.trainable_weights} <= {id(w) for w in model.trainable_weights}
    # from_config deserializes in Keras' safe mode; an encoder that loads graph code refuses that
    with SafeModeScope(getattr(cls, "reloads_safely", True)):
        reloaded = keras_mm.MultimodalModel.from_config(model.get_config())
    assert not {id(w) for w in reloaded.feature_encoders["x"].weights} & {id(w) for w in reloaded.trainable_weights}
