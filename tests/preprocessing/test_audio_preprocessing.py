import numpy as np

from keras_mm.preprocessing import WaveformPreprocessor, fit_waveforms


def test_pad_and_crop():
    x = np.arange(1, 7, dtype="float32").reshape(2, 3)
    np.testing.assert_array_equal(fit_waveforms(x, 5).numpy(), [[1, 2, 3, 0, 0], [4, 5, 6, 0, 0]])
    np.testing.assert_array_equal(fit_waveforms(x, 2).numpy(), [[1, 2], [4, 5]])


def test_non_finite_samples_become_zero_and_do_not_touch_other_clips():
    x = np.ones((2, 4), "float32")
    x[0, 1] = np.nan
    x[0, 2] = np.inf
    out = fit_waveforms(x, 4).numpy()
    np.testing.assert_array_equal(out[0], [1, 0, 0, 1])
    np.testing.assert_array_equal(out[1], [1, 1, 1, 1])


def test_preprocessor_output_name_and_raw_spec():
    pre = WaveformPreprocessor("speech", 100)
    assert set(pre.process_batch(np.zeros((3, 50), "float32"))) == {"speech"}
    assert pre.raw_spec.shape.as_list() == [None, None] and pre.raw_spec.dtype.name == "float32"
