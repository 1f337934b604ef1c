"""A full-model file loads by layer name without Keras' per-container "Skipping nested container" warnings."""

import warnings

import keras
import numpy as np

import keras_mm


def _backbone():
    inputs = keras.Input((4,))
    hidden = keras.layers.Dense(3, name="hidden")(inputs)
    return keras.Model(inputs, keras.layers.Dense(2, name="out")(hidden), name="backbone")


def test_full_model_file_loads_by_name_without_nested_container_warnings(tmp_path):
    keras.utils.set_random_seed(0)
    classifier = keras.Sequential([keras.Input((4,)), _backbone(), keras.layers.Dense(5, name="top")])
    path = str(tmp_path / "classifier.keras")
    classifier.save(path)
    backbone = _backbone()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert keras_mm.encoders.load_pretrained_weights(backbone, path) == 2
    assert not [w for w in caught if "Skipping nested container" in str(w.message)]
    for ours, theirs in zip(backbone.get_weights(), classifier.layers[0].get_weights()):
        np.testing.assert_array_equal(ours, theirs)
