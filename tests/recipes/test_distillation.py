import keras
import numpy as np
import pytest

import keras_mm
from keras_mm import Distiller
from keras_mm.export.serving import call_signature, load_saved_model


def _kl(p, q):
    p, q = np.clip(p, 1e-7, 1), np.clip(q, 1e-7, 1)
    return float((p * (np.log(p) - np.log(q))).sum(-1).mean())


@pytest.fixture(scope="module")
def setup():
    keras.utils.set_random_seed(0)
    teacher = keras_mm.build_model(preset="tiny_attention", num_classes=3)
    student = keras_mm.build_model(preset="tiny_concat", num_classes=3,
                                   encoders={"image": {"filters": [4]}, "audio": {"filters": [4]}})
    x = {k: v.numpy() for k, v in teacher.preprocessor.process_batch(teacher.preprocessor.example_raw(16)).items()}
    y = np.arange(16) % 3
    teacher.compile(optimizer=keras.optimizers.Adam(5e-3))
    teacher.fit(x, y, epochs=10, verbose=0)
    return teacher, student, x, y


def test_student_moves_toward_the_teacher(setup):
    teacher, student, x, y = setup
    t = teacher.predict(x, verbose=0)
    before = _kl(t, student.predict(x, verbose=0))
    teacher_weights = [w.copy() for w in teacher.get_weights()]
    distiller = Distiller(teacher, student, temperature=1.0, alpha=0.0)
    distiller.compile(optimizer=keras.optimizers.Adam(5e-3))
    distiller.fit(x, y, epochs=15, batch_size=8, verbose=0)
    after = _kl(t, student.predict(x, verbose=0))
    assert after < 0.5 * before, (before, after)
    for a, b in zip(teacher_weights, teacher.get_weights()):  # teacher frozen
        np.testing.assert_array_equal(a, b)


def test_loss_formula(setup):
    teacher, student, x, y = setup
    distiller = Distiller(teacher, student, temperature=2.0, alpha=0.25)
    t, s = teacher.predict(x, verbose=0), student.predict(x, verbose=0)
    soften = lambda p: np.exp(np.log(np.clip(p, 1e-7, 1)) / 2.0) / np.exp(np.log(np.clip(p, 1e-7, 1)) / 2.0).sum(-1, keepdims=True)
    expected = 0.25 * float(keras.losses.sparse_categorical_crossentropy(y, s).numpy().mean()) + 0.75 * 4.0 * _kl(soften(t), soften(s))
    got = float(distiller.compute_loss(x, y, s))
    assert got == pytest.approx(expected, rel=1e-4)


def test_student_exports_like_any_model(setup, tmp_path):
    """The distilled student serves raw inputs and gives the in-memory student's probabilities."""
    _, student, _, _ = setup
    version_dir = keras_mm.export_saved_model(student, str(tmp_path / "student"))
    raw = student.preprocessor.example_raw(4, seed=1)
    served = call_signature(load_saved_model(version_dir), raw)["probabilities"]
    expected = student.predict(student.preprocessor.process_batch(raw), verbose=0)
    np.testing.assert_allclose(served, expected, atol=1e-5)


def test_bad_arguments(setup):
    teacher, student, _, _ = setup
    with pytest.raises(ValueError, match="alpha=2"):
        Distiller(teacher, student, alpha=2)
    with pytest.raises(ValueError, match="temperature=0"):
        Distiller(teacher, student, temperature=0)
