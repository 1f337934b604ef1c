import keras
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


@pytest.mark.parametrize("quantization", [None, "float16"])
def test_silent_stretches_and_short_clips_stay_finite(trained_model, tmp_path, quantization):
    # float16 stored the MFCC's power floor (1e-10) as 0: log(0) made NaN for every zero-padded clip
    raw = trained_model.preprocessor.example_raw(3, seed=4)
    audio = np.array(raw["audio"], dtype="float32")
    audio[1, 200:900] = 0.0  # digital silence inside the clip
    audio[2, audio.shape[1] // 3:] = 0.0  # a short clip, zero-padded
    batch = {k: np.asarray(v) for k, v in trained_model.preprocessor.process_batch({**raw, "audio": audio}).items()}
    path = str(tmp_path / f"model_{quantization}.tflite")
    keras_mm.export_tflite(trained_model, path, quantization=quantization)
    got = TFLiteModel(path).predict(batch)["probabilities"]
    assert np.isfinite(got).all(), got
    np.testing.assert_allclose(got, trained_model.predict(batch, verbose=0), atol=1e-5 if quantization is None else 1e-2)


def test_int8_needs_representative_data(trained_model, tmp_path):
    with pytest.raises(ValueError, match="needs representative_data"):
        keras_mm.export_tflite(trained_model, str(tmp_path / "m.tflite"), quantization="int8")
    with pytest.raises(ValueError, match="quantization='int4' is not supported"):
        keras_mm.export_tflite(trained_model, str(tmp_path / "m.tflite"), quantization="int4")


def _tensor_dtypes(path, fragment):
    from keras_mm.export.tflite import tflite_interpreter_class

    interpreter = tflite_interpreter_class()[0](model_path=path)
    return {t["name"]: t["dtype"] for t in interpreter.get_tensor_details() if fragment in t["name"]}


@pytest.fixture(scope="module")
def float_tflite(trained_model, tmp_path_factory):
    path = str(tmp_path_factory.mktemp("tflite") / "float.tflite")
    keras_mm.export_tflite(trained_model, path)
    return path


def test_int8_calibrated_on_a_training_dataset_keeps_answers_and_a_float_mfcc(trained_model, numeric_batch, tmp_path):
    import tensorflow as tf

    raw = trained_model.preprocessor.example_raw(16, seed=5)
    train_ds = tf.data.Dataset.from_tensor_slices((trained_model.preprocessor.process_batch(raw), np.arange(16) % 3)).batch(4)
    path = str(tmp_path / "int8.tflite")
    keras_mm.export_tflite(trained_model, path, quantization="int8", representative_data=train_ds, calibration_samples=12)
    expected = trained_model.predict(numeric_batch, verbose=0)
    got = TFLiteModel(path).predict(numeric_batch)["probabilities"]
    assert np.abs(got - expected).max() <= 0.15, np.abs(got - expected).max()
    assert (got.argmax(1) == expected.argmax(1)).mean() >= 5 / 6  # chance is 1/3
    # the MFCC front-end stays float32 (with float_mfcc=False its Log is int8, benchmarks/quantization.py);
    # the layers after it are int8
    mfcc = _tensor_dtypes(path, "mfcc_1/")
    assert [dtype for name, dtype in mfcc.items() if name.endswith("/Log")] == [np.float32], mfcc
    assert np.int8 in _tensor_dtypes(path, "conv_0_1/").values()


def test_export_uses_the_matmul_stft(trained_model, float_tflite):
    from keras_mm.layers import MFCC

    assert [l.stft for l in trained_model._flatten_layers() if isinstance(l, MFCC)] == ["auto"]
    names = _tensor_dtypes(float_tflite, "mfcc_1/")
    assert any("MatMul" in n for n in names) and not any("rfft" in n.lower() or "stft" in n for n in names), sorted(names)


def test_runtime_is_litert_when_installed_and_tf_lite_otherwise(trained_model, numeric_batch, float_tflite, monkeypatch):
    import sys
    import warnings

    pytest.importorskip("ai_edge_litert")
    expected = trained_model.predict(numeric_batch, verbose=0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        lite = TFLiteModel(float_tflite)
    assert lite.runtime == "ai_edge_litert" and type(lite.interpreter).__module__.startswith("ai_edge_litert")
    assert not [w for w in caught if "deprecated" in str(w.message)]
    np.testing.assert_allclose(lite.predict(numeric_batch)["probabilities"], expected, atol=1e-5)
    monkeypatch.setitem(sys.modules, "ai_edge_litert.interpreter", None)  # import now raises ImportError
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fallback = TFLiteModel(float_tflite)
    assert fallback.runtime == "tf.lite" and type(fallback.interpreter).__module__.startswith("tensorflow")
    np.testing.assert_allclose(fallback.predict(numeric_batch)["probabilities"], expected, atol=1e-5)


@pytest.mark.parametrize("encoders", [
    {"text": {"name": "lstm", "vocabulary": ["a", "b", "c"], "sequence_length": 8, "units": 8}},
    {"audio": {"name": "mfcc_gru", "num_samples": 4000}},
], ids=["lstm", "mfcc_gru"])
def test_recurrent_encoders_export_unrolled_and_serve_any_batch_size(encoders, tmp_path):
    """TFLite cannot lower a recurrent loop at a dynamic batch size; the export unrolls it, the model keeps its loop."""
    model = keras_mm.build_model(encoders=encoders, num_classes=3)
    path = str(tmp_path / "m.tflite")
    keras_mm.export_tflite(model, path)
    assert not any(layer.unroll for layer in model._flatten_layers() if isinstance(layer, keras.layers.RNN))
    runner = keras_mm.export.TFLiteModel(path)
    for rows in (1, 5):
        numeric = model.preprocessor.process_batch(model.preprocessor.example_raw(rows, seed=rows))
        report = keras_mm.export.verify_numeric(model, runner, numeric)
        assert report["ok"], report["per_output"]


def test_inputs_that_do_not_match_the_file_are_refused_by_name(trained_model, numeric_batch, tmp_path):
    # float token ids used to be truncated silently and a wrong shape crashed inside the interpreter
    path = str(tmp_path / "model.tflite")
    keras_mm.export_tflite(trained_model, path)
    lite = TFLiteModel(path)
    ids = numeric_batch["text_token_ids"]
    with pytest.raises(ValueError, match="'text_token_ids' must hold int32 values; got [0-9]+\.5,"):
        lite.predict({**numeric_batch, "text_token_ids": np.where(ids > 0, ids + 0.5, ids).astype("float32")})
    with pytest.raises(ValueError, match=r"'image' has shape \(6, 5,"):
        lite.predict({**numeric_batch, "image": numeric_batch["image"][:, :5]})
    with pytest.raises(ValueError, match="different batch sizes"):
        lite.predict({**numeric_batch, "audio": numeric_batch["audio"][:2]})
    with pytest.raises(ValueError, match="lack \\['audio_present'\\]"):
        lite.predict({k: v for k, v in numeric_batch.items() if k != "audio_present"})
    # integral floats are fine: they are what a user gets from a float array of ids
    np.testing.assert_array_equal(lite.predict({**numeric_batch, "text_token_ids": ids.astype("float64")})["class_id"],
                                  lite.predict(numeric_batch)["class_id"])
