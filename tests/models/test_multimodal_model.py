import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_mm
from keras_mm.registry import FUSIONS
from keras_mm.testing import run_serialization_test
from tests.conftest import tiny_encoders


def test_image_text_audio_with_real_bert_end_to_end(minilm_path):
    """The README example: three modalities, the real BERT checkpoint, attention fusion."""
    keras.utils.set_random_seed(0)
    model = keras_mm.build_model(
        encoders={
            "image": {"name": "mobilenet_v2", "image_size": 32, "alpha": 0.35},
            "text": {"name": "bert", "checkpoint": minilm_path, "sequence_length": 16, "trainable": False},
            "audio": {"name": "mfcc_cnn", "num_samples": 4000, "filters": [16]},
        },
        fusion="attention", head="classification", num_classes=3,
    )
    assert model.modalities == {"audio": "audio", "image": "image", "text": "text"}
    raw = model.preprocessor.example_raw(6)
    labels = np.array([0, 1, 2, 0, 1, 2])
    ds = tf.data.Dataset.from_tensor_slices((raw, labels)).map(model.preprocessor).batch(3)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    history = model.fit(ds, epochs=2, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    run_serialization_test(model, model.preprocessor.process_batch(raw), atol=1e-5)


@pytest.mark.parametrize("fusion", FUSIONS.names())
def test_every_fusion_in_a_three_modality_model(fusion):
    keras.utils.set_random_seed(0)
    model = keras_mm.build_model(
        encoders=tiny_encoders(), fusion={"name": fusion, **FUSIONS.get(fusion).example_config}, num_classes=3
    )
    x = model.preprocessor.process_batch(model.preprocessor.example_raw(10))
    y = np.arange(10) % 3
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    before = model.evaluate(x, y, verbose=0)[0]
    model.fit(x, y, epochs=15, batch_size=10, verbose=0)
    assert model.evaluate(x, y, verbose=0)[0] < before
    assert model.head.output_layer.kernel.shape[0] == model.fusion.output_dim
    run_serialization_test(model, x)


def test_fusion_output_dim_feeds_the_head():
    model = keras_mm.build_model(encoders=tiny_encoders(), fusion="concat", num_classes=3)
    dims = {k: enc.output_dim for k, enc in model.feature_encoders.items()}
    assert model.fusion.output_dim == sum(dims.values())
    assert model.head.output_layer.kernel.shape[0] == model.fusion.output_dim


def test_same_modality_twice_under_different_feature_names():
    model = keras_mm.build_model(
        encoders={"front": {"name": "small_cnn", "image_size": 8, "filters": [4]},
                  "back": {"name": "small_cnn", "image_size": 12, "filters": [4]}},
        num_classes=2,
    )
    assert set(model.input) == {"front", "back", "front_present", "back_present"}
    assert model.input["back"].shape[1:] == (12, 12, 3)


def test_summary_and_default_compile():
    model = keras_mm.build_model(encoders=tiny_encoders(("small_cnn",)), head="binary")
    lines = []
    model.summary(print_fn=lines.append)
    assert any("image_encoder" in line for line in lines)
    model.compile()
    assert model.loss == "binary_crossentropy"


@pytest.mark.parametrize("as_dataset", [True, False])
def test_fit_traces_the_train_step_once(as_dataset):
    # Keras without a strategy builds the optimizer and metrics inside the first trace, then traces again.
    model = keras_mm.build_model(preset="tiny_concat", num_classes=3)
    x = model.preprocessor.process_batch(model.preprocessor.example_raw(10))
    y = np.arange(10) % 3
    traced = []
    train_step = model.train_step
    model.train_step = lambda data: traced.append(1) or train_step(data)
    model.compile()
    data = (tf.data.Dataset.from_tensor_slices((x, y)).batch(4),) if as_dataset else (x, y)
    history = model.fit(*data, batch_size=None if as_dataset else 4, epochs=2, verbose=0)
    assert len(history.history["loss"]) == 2 and model.optimizer.iterations.numpy() == 6
    assert len(traced) == 1


def test_evaluate_of_a_fresh_model_traces_the_test_step_once():
    model = keras_mm.build_model(preset="tiny_concat", num_classes=3)
    x = model.preprocessor.process_batch(model.preprocessor.example_raw(10))
    traced = []
    test_step = model.test_step
    model.test_step = lambda data: traced.append(1) or test_step(data)
    model.compile()
    loss, accuracy = model.evaluate(tf.data.Dataset.from_tensor_slices((x, np.arange(10) % 3)).batch(4), verbose=0)
    assert loss > 0 and 0 <= accuracy <= 1
    assert len(traced) == 1
