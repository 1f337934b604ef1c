import sys

import keras
import numpy as np
import pytest

import keras_mm
from keras_mm.export import ONNXModel, verify_numeric
from keras_mm.export.signatures import ServingFunctions
from keras_mm.layers.mfcc import MFCC
from tests.conftest import tiny_encoders


@pytest.fixture(scope="module")
def attention_model():
    """A tiny image+text+audio attention model (BERT with exact GELU, MFCC, modality weights), untrained."""
    keras.utils.set_random_seed(0)
    return keras_mm.build_model(encoders=tiny_encoders(), fusion={"name": "attention", "projection_dim": 8}, num_classes=3)


@pytest.fixture(scope="module")
def onnx_file(attention_model, tmp_path_factory):
    path = str(tmp_path_factory.mktemp("onnx") / "model.onnx")
    keras_mm.export_onnx(attention_model, path)
    return path


def test_one_file_serves_any_batch_size_like_keras(attention_model, onnx_file):
    runner = ONNXModel(onnx_file)
    assert runner.batch_size is None
    expected_names = set(ServingFunctions(attention_model).numeric(_numeric(attention_model, 1)))
    for batch in (1, 3):
        numeric = _numeric(attention_model, batch)
        if batch == 3:
            numeric["image_present"][1] = 0.0  # a sample without its image
            numeric["image"][1] = 0.0
        report = verify_numeric(attention_model, runner, numeric)
        assert set(report["served"]) == expected_names
        assert report["ok"] and report["max_abs_diff"] <= 1e-5, report["per_output"]
    assert report["served"]["image_present"].tolist() == [1.0, 0.0, 1.0]
    assert report["served"]["modality_weights"].shape == (3, 3)


def test_inputs_keep_their_feature_names(attention_model, onnx_file):
    runner = ONNXModel(onnx_file)
    assert set(runner.input_types) == set(attention_model.input)
    with pytest.raises(ValueError, match="text_token_ids"):
        runner.predict({k: v for k, v in _numeric(attention_model, 2).items() if k != "text_token_ids"})
    numeric = _numeric(attention_model, 2)
    with pytest.raises(ValueError, match="'text_token_ids' must hold int32 values"):
        runner.predict({**numeric, "text_token_ids": numeric["text_token_ids"] + 0.25})
    with pytest.raises(ValueError, match=r"'audio' has shape \(2, 10\)"):
        runner.predict({**numeric, "audio": numeric["audio"][:, :10]})


def test_an_rfft_graph_needs_a_fixed_batch_size(tmp_path):
    model = keras_mm.build_model(encoders={"audio": {"name": "mfcc_cnn", "num_samples": 4000}}, num_classes=3)
    for layer in model._flatten_layers():
        if isinstance(layer, MFCC):
            layer.stft = "rfft"  # tf2onnx converts RFFT only with a static batch dimension
    with pytest.raises(ValueError, match="batch_size=N"):
        keras_mm.export_onnx(model, str(tmp_path / "dynamic.onnx"))
    path = str(tmp_path / "fixed.onnx")
    keras_mm.export_onnx(model, path, batch_size=2)
    runner = ONNXModel(path)
    assert runner.batch_size == 2
    assert verify_numeric(model, runner, _numeric(model, 2))["max_abs_diff"] <= 1e-5
    with pytest.raises(ValueError, match="batch_size=2"):
        runner.predict(_numeric(model, 3))


@pytest.mark.parametrize("missing", ["tf2onnx", "onnxruntime"])
def test_missing_dependencies_say_how_to_install_them(attention_model, monkeypatch, tmp_path, missing):
    monkeypatch.setitem(sys.modules, missing, None)  # makes `import <missing>` raise ImportError
    with pytest.raises(ImportError, match=r"pip install keras_mm\[onnx\]"):
        keras_mm.export_onnx(attention_model, str(tmp_path / "model.onnx"))
    if missing == "onnxruntime":
        with pytest.raises(ImportError, match=r"pip install keras_mm\[onnx\]"):
            ONNXModel(str(tmp_path / "model.onnx"))
    assert not (tmp_path / "model.onnx").exists()


def test_bad_batch_size_is_named(attention_model, tmp_path):
    with pytest.raises(ValueError, match="batch_size=0"):
        keras_mm.export_onnx(attention_model, str(tmp_path / "model.onnx"), batch_size=0)


def _numeric(model, batch):
    numeric = model.preprocessor.process_batch(model.preprocessor.example_raw(batch))
    return {k: np.array(v) for k, v in numeric.items()}
