"""Registry-wide encoder tests: a newly registered encoder is tested with no new test code."""

import keras
import numpy as np
import pytest

import keras_mm
from keras_mm.registry import ENCODERS
from keras_mm.testing import run_encoder_test, run_serialization_test


@pytest.mark.parametrize("name", ENCODERS.names())
def test_encoder_contract(name):
    cls = ENCODERS.get(name)
    run_encoder_test(cls, cls.example_config)


@pytest.mark.parametrize("name", ENCODERS.names())
def test_encoder_trains_in_a_model_and_reloads(name):
    cls = ENCODERS.get(name)
    keras.utils.set_random_seed(0)
    model = keras_mm.build_model(encoders={"x": {"name": name, **cls.example_config}}, num_classes=2)
    raw = model.preprocessor.example_raw(8)
    inputs = model.preprocessor.process_batch(raw)
    # example texts repeat with period 5, so the label must too to be learnable
    labels = np.array([(i % 5) % 2 for i in range(8)])
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    before = model.evaluate(inputs, labels, verbose=0)[0]
    model.fit(inputs, labels, epochs=10, batch_size=8, verbose=0)
    after = model.evaluate(inputs, labels, verbose=0)[0]
    assert after < before, (before, after)
    run_serialization_test(model, inputs)
