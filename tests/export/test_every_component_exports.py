"""Registry-wide: every fusion and every head exports, and the raw-input signature matches Keras."""

import numpy as np
import pytest

import keras_mm
from keras_mm.registry import FUSIONS, HEADS
from keras_mm.export.serving import call_signature, load_saved_model
from tests.conftest import tiny_encoders

EXPECTED_HEAD_OUTPUT = {"classification": "probabilities", "binary": "probability", "multilabel": "probabilities",
                        "regression": "predictions", "embedding": "embedding"}


def export_and_compare(model, tmp_path):
    raw = model.preprocessor.example_raw(3, seed=1)
    base = keras_mm.export_saved_model(model, str(tmp_path / "m"))
    served = call_signature(load_saved_model(base), raw)
    core = model.extras_model() if model.fusion.extra_outputs else model
    expected = core.predict(model.preprocessor.process_batch(raw), verbose=0)
    if not isinstance(expected, dict):
        expected = {"output": expected}
    return served, expected


@pytest.mark.parametrize("fusion", FUSIONS.names())
def test_every_fusion_exports_with_parity(fusion, tmp_path):
    model = keras_mm.build_model(encoders=tiny_encoders(), fusion={"name": fusion, **FUSIONS.get(fusion).example_config},
                                 num_classes=3)
    served, expected = export_and_compare(model, tmp_path)
    np.testing.assert_allclose(served["probabilities"], expected["output"], atol=1e-5)
    for name in model.fusion.extra_outputs:
        np.testing.assert_allclose(served[name], expected[name], atol=1e-5, err_msg=name)


@pytest.mark.parametrize("head", HEADS.names())
def test_every_head_exports_with_parity(head, tmp_path):
    cls = HEADS.get(head)
    spec = {"name": head, **{k: v for k, v in cls.example_config.items() if k != "num_classes"}}
    model = keras_mm.build_model(encoders=tiny_encoders(("small_cnn", "mfcc_cnn")), head=spec,
                                 num_classes=cls.example_config.get("num_classes"))
    served, expected = export_and_compare(model, tmp_path)
    key = EXPECTED_HEAD_OUTPUT.get(head)
    assert key in served, (head, sorted(served))
    np.testing.assert_allclose(np.reshape(served[key], expected["output"].shape), expected["output"], atol=1e-5)
