import keras
import numpy as np
import pytest

import keras_mm
from tests.conftest import tiny_encoders


@pytest.fixture(scope="module")
def trained_model():
    """A tiny image+text+audio attention model trained a little with modality dropout."""
    keras.utils.set_random_seed(0)
    model = keras_mm.build_model(
        encoders=tiny_encoders(), fusion={"name": "attention", "projection_dim": 8}, num_classes=3, modality_dropout=0.3
    )
    raw = model.preprocessor.example_raw(12)
    model.compile()
    model.fit(model.preprocessor.process_batch(raw), np.arange(12) % 3, epochs=3, verbose=0)
    return model


@pytest.fixture(scope="module")
def exported(trained_model, tmp_path_factory):
    base = str(tmp_path_factory.mktemp("exports") / "tiny")
    version_dir = keras_mm.export_saved_model(
        trained_model, base, class_names=["a", "b", "c"], warmup_samples=trained_model.preprocessor.example_raw(2)
    )
    return base, version_dir
