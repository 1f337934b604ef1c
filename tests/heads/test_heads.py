import keras
import numpy as np
import pytest

import keras_mm
from keras_mm.registry import HEADS
from keras_mm.testing import run_serialization_test
from tests.conftest import tiny_encoders

TARGETS = {
    "classification": lambda n: np.arange(n) % 3,
    "binary": lambda n: np.arange(n) % 2,
    "multilabel": lambda n: np.stack([np.arange(n) % 2, (np.arange(n) // 2) % 2, np.ones(n)], 1),
    "regression": lambda n: np.linspace(-1, 1, n)[:, None],
    "embedding": lambda n: np.arange(n) % 3,
}


@pytest.mark.parametrize("name", HEADS.names())
def test_head_trains_and_reloads(name):
    keras.utils.set_random_seed(0)
    cls = HEADS.get(name)
    spec = {"name": name, **{k: v for k, v in cls.example_config.items() if k != "num_classes"}}
    model = keras_mm.build_model(
        encoders={"image": {"name": "small_cnn", "image_size": 8, "filters": [8]}},
        head=spec, num_classes=cls.example_config.get("num_classes"),
    )
    x = model.preprocessor.process_batch(model.preprocessor.example_raw(12))
    y = TARGETS.get(name, TARGETS["regression"])(12)
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    loss = model.fit(x, y, epochs=10, batch_size=12, verbose=0).history["loss"]
    assert loss[-1] < loss[0]
    out = model.predict(x, verbose=0)
    assert out.dtype == np.float32 and out.shape == (12, model.head.num_outputs)
    run_serialization_test(model, x)


def test_output_ranges():
    enc = {"image": {"name": "small_cnn", "image_size": 8, "filters": [4]}}
    x = {"image": np.random.rand(5, 8, 8, 3).astype("float32") * 255, "image_present": np.ones(5, "float32")}
    probs = keras_mm.build_model(encoders=enc, num_classes=4).predict(x, verbose=0)
    np.testing.assert_allclose(probs.sum(-1), 1.0, atol=1e-5)
    p = keras_mm.build_model(encoders=enc, head="binary").predict(x, verbose=0)
    assert p.shape == (5, 1) and ((p > 0) & (p < 1)).all()


def test_hidden_layers_and_embedding_model():
    enc = {"image": {"name": "small_cnn", "image_size": 8, "filters": [4]}}
    model = keras_mm.build_model(encoders=enc, head={"name": "classification", "hidden_dims": [16, 8], "dropout": 0.1}, num_classes=3)
    assert [layer.units for layer in model.head.hidden_layers] == [16, 8]
    embedder = keras_mm.build_model(encoders=enc, head=None)
    assert embedder.output_shape == (None, 4)


def test_head_output_is_float32_under_mixed_precision():
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        from tests.conftest import tiny_encoders

        model = keras_mm.build_model(encoders=tiny_encoders(), fusion="attention", num_classes=3)
        x = model.preprocessor.process_batch(model.preprocessor.example_raw(4))
        assert model.head.output_layer.compute_dtype == "float32"
        assert model.predict(x, verbose=0).dtype == np.float32
        assert model.feature_encoders["audio"].mfcc.compute_dtype == "float32"
        model.compile()
        model.fit(x, np.array([0, 1, 2, 0]), epochs=1, verbose=0)
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_a_custom_head_gets_its_own_report():
    import tensorflow as tf

    from keras_mm.heads import ClassificationHead

    @keras_mm.register_head("test_renamed_classifier")
    class RenamedClassifier(ClassificationHead):
        """A subclass under another name: its report is still a classification report."""

    model = keras_mm.build_model(encoders=tiny_encoders(("small_cnn",)), head="test_renamed_classifier", num_classes=3)
    x = model.preprocessor.process_batch(model.preprocessor.example_raw(6))
    y = np.arange(6) % 3
    report = keras_mm.evaluate(model, tf.data.Dataset.from_tensor_slices((dict(x), y)).batch(3), verbose=False)
    predicted = model.predict(x, verbose=0).argmax(-1)
    assert report.metrics["accuracy"] == pytest.approx((predicted == y).mean())
    assert len(report.per_class) == 3 and "mae" not in report.metrics


def test_a_head_without_evaluation_says_what_to_implement():
    from keras_mm.heads import Head

    class Bare(Head):
        pass

    with pytest.raises(NotImplementedError, match="implement evaluate_outputs"):
        Bare(2).evaluate_outputs(np.zeros(2), np.zeros((2, 2)))


def test_class_names_are_checked_and_survive_the_config():
    from keras_mm.heads import ClassificationHead

    with pytest.raises(ValueError, match="class_names has 2 names but num_classes=3"):
        ClassificationHead(3, class_names=["a", "b"])
    head = ClassificationHead(2, class_names=["no", "yes"])
    assert ClassificationHead.from_config(head.get_config()).class_names == ["no", "yes"]
