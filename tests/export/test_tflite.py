import numpy as np
import pytest

import keras_mm
from keras_mm.export import TFLiteModel


@pytest.fixture(scope="module")
def numeric_batch(trained_model):
    return {k: v.numpy() for k, v in trained_model.preprocessor.process_batch(trained_model.preprocessor.example_raw(6, seed=2)).items()}


@pytest.mark.parametrize(
    "quantization, max_drift",
    [(None, 1e-5), ("float16", 1e-2), ("dynamic", 0.05), ("int8", 0.15)],
)
def test_tflite_modes_drift_against_keras(trained_model, numeric_batch, tmp_path, quantization, max_drift):
    path = str(tmp_path / f"model_{quantization}.tflite")
    size = keras_mm.export_tflite(
        trained_model, path, quantization=quantization, representative_data=[numeric_batch] if quantization == "int8" else None
    )
    assert size > 1000
    expected = trained_model.predict(numeric_batch, verbose=0)
    got = TFLiteModel(path).predict(numeric_batch)
    drift = np.abs(got["probabilities"] - expected).max()
    assert drift <= max_drift, (quantization, drift)
    assert set(got) >= {"probabilities", "class_id", "valid", "modality_weights"}


def test_int8_needs_representative_data(trained_model, tmp_path):
    with pytest.raises(ValueError, match="needs representative_data"):
        keras_mm.export_tflite(trained_model, str(tmp_path / "m.tflite"), quantization="int8")
    with pytest.raises(ValueError, match="quantization='int4' is not supported"):
        keras_mm.export_tflite(trained_model, str(tmp_path / "m.tflite"), quantization="int4")
