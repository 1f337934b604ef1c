"""A user-registered modality goes through manifest -> train -> evaluate -> robustness -> export."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_mm
from keras_mm.naming import presence_name
from keras_mm.preprocessing import FeaturePreprocessor


@keras_mm.register_modality("test_vector")
class VectorModality(keras_mm.modalities.Modality):
    """Numeric vectors stored as raw float32 files (keras_mm's own "vector" modality reads .npy)."""

    file_extensions = (".f32",)
    raw_shape, raw_dtype = (None,), tf.float32

    def load_file(self, path, **options):
        return np.fromfile(path, "float32")

    def perturb(self, inputs, feature, level, rng):
        x = np.asarray(inputs[feature])
        return {**inputs, feature: (x + rng.normal(0, level, x.shape)).astype("float32")}


class VectorPreprocessor(FeaturePreprocessor):
    example_rank = 1
    raw_dtype = tf.float32

    def __init__(self, feature, dim):
        super().__init__(feature)
        self.dim = dim

    def process_batch(self, raw):
        x = raw.to_tensor() if isinstance(raw, tf.RaggedTensor) else tf.convert_to_tensor(raw, tf.float32)
        x = tf.pad(x[:, : self.dim], [[0, 0], [0, tf.maximum(self.dim - tf.shape(x)[1], 0)]])
        x = tf.ensure_shape(x, [None, self.dim])
        return {self.feature: x, self.presence_name: tf.cast(tf.reduce_any(x != 0, axis=1), tf.float32)}

    def example_raw(self, batch_size, seed=0):
        return np.random.default_rng(seed).normal(size=(batch_size, self.dim)).astype("float32")


@keras_mm.register_encoder("test_vector_mlp")
class VectorEncoder(keras_mm.encoders.PrecomputedEncoder):
    """keras_mm's precomputed-vector encoder on this test's own modality, with a trained Dense layer on top."""

    modality = "test_vector"
    example_config = {"dim": 4, "units": 8}

    def __init__(self, dim=4, units=8, trainable=True, **kwargs):
        super().__init__(int(dim), trainable=trainable, **kwargs)
        self.units = int(units)
        self.dense = keras.layers.Dense(self.units, activation="relu")

    def build_preprocessor(self, feature):
        return VectorPreprocessor(feature, self.dim)

    @property
    def output_dim(self):
        return self.units

    def call(self, inputs, training=None):
        return self.dense(inputs[""])

    def get_config(self):
        return {**super().get_config(), "units": self.units}


def _write_data(root, rows_per_class=16, seed=0):
    rng = np.random.default_rng(seed)
    lines = ["vector,note,label,split"]
    for i in range(3 * rows_per_class):
        label = i % 3
        vector = rng.normal(0, 0.3, 4).astype("float32")
        vector[label] += 2.0
        vector.tofile(root / f"v{i}.f32")
        split = "test" if i >= 2 * rows_per_class else "train"
        lines.append(f"v{i}.f32,{['red', 'green', 'blue'][rng.integers(3)]} thing,{['a', 'b', 'c'][label]},{split}")
    (root / "m.csv").write_text("\n".join(lines) + "\n")
    return str(root / "m.csv")


def test_modality_is_registered_and_guessed_from_extensions(tmp_path):
    assert "test_vector" in keras_mm.list_modalities()
    assert keras_mm.list_encoders("test_vector") == ["test_vector_mlp"]
    assert keras_mm.data.guess_modality(["x.f32", "y.F32"]) == "test_vector"
    keras_mm.testing.run_encoder_test(VectorEncoder, {"dim": 4, "units": 8})


def test_manifest_train_evaluate_robustness_export(tmp_path):
    path = _write_data(tmp_path)
    keras.utils.set_random_seed(0)
    model = keras_mm.build_model(
        encoders={"vector": {"name": "test_vector_mlp", "dim": 4, "units": 8},
                  "note": {"name": "lstm", "vocabulary": ["red", "green", "blue", "thing"], "sequence_length": 4,
                           "embedding_dim": 4, "units": 4}},
        head={"name": "classification", "class_names": ["a", "b", "c"]}, num_classes=3,
    )
    train = keras_mm.data.from_manifest(path, model=model, split="train", batch_size=8, shuffle=True, augment=True)
    test = keras_mm.data.from_manifest(path, model=model, split="test", batch_size=8)
    assert train.manifest.modalities == {"note": "text", "vector": "test_vector"}
    model, _ = keras_mm.train(model, train, epochs=30, strategy=None, learning_rate=1e-2, verbose=0)

    report = keras_mm.evaluate(model, test, verbose=False)
    assert [row["name"] for row in report.per_class] == ["a", "b", "c"]
    assert report.metrics["accuracy"] >= 0.8, report.metrics  # the vectors carry the class

    robustness = keras_mm.evaluate_robustness(model, test, noise_levels=(0.0, 3.0), verbose=False)
    assert robustness.noise["vector"][0.0] == pytest.approx(robustness.baseline)
    assert robustness.noise["vector"][3.0] < robustness.baseline
    assert robustness.removed["vector"] < robustness.baseline

    export = keras_mm.export_saved_model(model, str(tmp_path / "served"))
    example = test.manifest.load_row(0)
    samples = {"vector": np.stack([example["vector"], np.zeros(4, "float32")]), "note": [example["note"], "red thing"]}
    check = keras_mm.verify_export(model, export, samples)
    assert check["ok"], check["per_output"]
    assert list(check["served"][presence_name("vector")]) == [1.0, 0.0]  # an all-zero vector is missing
