import numpy as np
import pytest

from keras_mm.layers import ModalityDropout


def _flags(n, missing_text_every=0):
    text = np.ones(n, "float32")
    if missing_text_every:
        text[::missing_text_every] = 0.0
    return {"image": np.ones(n, "float32"), "text": text}


def test_inference_returns_the_flags_unchanged():
    flags = _flags(6, missing_text_every=2)
    out = ModalityDropout(0.9, seed=0)(flags)
    for key in flags:
        np.testing.assert_array_equal(np.asarray(out[key]), flags[key])


def test_training_drops_at_the_rate_but_never_every_modality():
    n, rate = 20000, 0.3
    out = ModalityDropout(rate, seed=0)(_flags(n), training=True)
    image, text = np.asarray(out["image"]), np.asarray(out["text"])
    assert set(np.unique(image)) <= {0.0, 1.0} and set(np.unique(text)) <= {0.0, 1.0}
    assert (image + text >= 1).all()
    # both drawn dropped (rate**2) keeps both: each flag ends at 0 with probability rate * (1 - rate)
    expected = rate * (1 - rate)
    assert abs((image == 0).mean() - expected) < 0.015, (image == 0).mean()
    assert abs((text == 0).mean() - expected) < 0.015, (text == 0).mean()


def test_a_missing_modality_stays_missing_and_the_last_one_is_kept():
    flags = _flags(3000, missing_text_every=2)  # text missing in half the samples
    out = ModalityDropout(0.5, seed=1)(flags, training=True)
    image, text = np.asarray(out["image"]), np.asarray(out["text"])
    assert (text[flags["text"] == 0] == 0).all()  # never switched on
    np.testing.assert_array_equal(image[flags["text"] == 0], 1.0)  # the only present modality is kept


def test_same_seed_same_draws():
    flags = _flags(64)
    first = ModalityDropout(0.5, seed=3)(flags, training=True)
    second = ModalityDropout.from_config(ModalityDropout(0.5, seed=3).get_config())(flags, training=True)
    for key in flags:
        np.testing.assert_array_equal(np.asarray(first[key]), np.asarray(second[key]))
    assert any((np.asarray(first[key]) == 0).any() for key in flags)


@pytest.mark.parametrize("rate", [-0.1, 1.0])
def test_rate_outside_the_unit_interval_is_rejected(rate):
    with pytest.raises(ValueError, match=rf"modality_dropout={rate} must be in \[0, 1\)"):
        ModalityDropout(rate)
