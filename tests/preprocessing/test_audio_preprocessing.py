import numpy as np
import tensorflow as tf

from keras_mm.preprocessing import WaveformPreprocessor, decode_wav_batch, fit_waveforms, resample
from keras_mm.preprocessing.status import status_names


def test_pad_and_crop():
    x = np.arange(1, 7, dtype="float32").reshape(2, 3)
    padded, valid = fit_waveforms(x, 5)
    np.testing.assert_array_equal(padded.numpy(), [[1, 2, 3, 0, 0], [4, 5, 6, 0, 0]])
    np.testing.assert_array_equal(fit_waveforms(x, 2)[0].numpy(), [[1, 2], [4, 5]])
    assert valid.numpy().all()


def test_nan_inf_and_silent_clips_are_missing_and_do_not_touch_other_clips():
    x = np.ones((5, 4), "float32")
    x[0, 1] = np.nan
    x[1, 2] = np.inf
    x[2] = 0.0
    x[3, 0] = 1e30  # finite, but overflows the float32 power spectrum
    out, valid = fit_waveforms(x, 4)
    np.testing.assert_array_equal(valid.numpy(), [False, False, False, False, True])
    np.testing.assert_array_equal(out.numpy()[:4], 0.0)
    np.testing.assert_array_equal(out.numpy()[4], [1, 1, 1, 1])


def test_preprocessor_output_names_and_raw_spec():
    pre = WaveformPreprocessor("speech", 100)
    out = pre.process_batch(np.ones((3, 50), "float32"))
    assert set(out) == {"speech", "speech_present"}
    np.testing.assert_array_equal(out["speech_present"].numpy(), 1.0)
    assert pre.raw_spec.shape.as_list() == [None, None] and pre.raw_spec.dtype.name == "float32"


def test_wav_bytes_decode_with_bad_files_isolated():
    t = np.arange(800) / 8000.0
    tone = (0.5 * np.sin(2 * np.pi * 300 * t)).astype("float32")[:, None]
    good = tf.audio.encode_wav(tone, 8000).numpy()
    stereo = tf.audio.encode_wav(np.concatenate([tone, tone], 1), 8000).numpy()
    other_rate = tf.audio.encode_wav(tone, 16000).numpy()
    batch = [good, good[:30], b"", b"RIFF garbage", other_rate, stereo, b"clips/seven.wav"]
    audio, state = decode_wav_batch(tf.constant(batch), 1000, 8000)
    names = [n.decode() for n in status_names(state).numpy()]
    assert names == ["ok", "undecodable", "empty", "undecodable", "ok", "ok", "file_path_instead_of_bytes"]
    np.testing.assert_allclose(audio.numpy()[0, :800], tone[:, 0], atol=1e-4)  # 16-bit PCM
    np.testing.assert_array_equal(audio.numpy()[0, 800:], 0.0)
    np.testing.assert_allclose(audio.numpy()[5], audio.numpy()[0], atol=1e-4)
    # a file at another rate is resampled to the model's rate, not dropped
    expected = resample(tf.audio.decode_wav(other_rate)[0][:, 0], 16000, 8000).numpy()
    np.testing.assert_allclose(audio.numpy()[4, :400], expected, atol=1e-6)
    pre = WaveformPreprocessor("speech", 1000, sample_rate=8000)
    np.testing.assert_array_equal(pre.process_batch(tf.constant(batch))["speech_present"].numpy(), [1, 0, 0, 0, 1, 1, 0])


def test_fft_resample_matches_scipy_and_librosa_fft():
    import librosa
    import scipy.signal

    from keras_mm.preprocessing import resample

    rng = np.random.default_rng(0)
    # even/odd/prime lengths, up and down, integer and fractional ratios: each hits another branch of scipy's
    # unpaired-bin rule (doubled when downsampling, halved when upsampling, none when the kept count is odd)
    for n in (1, 2, 7, 100, 101, 7993, 8000):
        for orig, target in ((8000, 16000), (16000, 8000), (44100, 16000), (16000, 22050), (11025, 8000)):
            x = rng.normal(0, 0.3, n).astype("float32")
            expected = librosa.resample(x, orig_sr=orig, target_sr=target, res_type="fft")
            got = resample(tf.constant(x), orig, target).numpy()
            assert got.shape == expected.shape and got.dtype == np.float32, (n, orig, target, got.shape)
            np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5 * np.abs(expected).max(), err_msg=f"{n} {orig}->{target}")
    batch = rng.normal(size=(3, 1001))
    np.testing.assert_allclose(resample(batch, 8000, 16000).numpy(), scipy.signal.resample(batch, 2002, axis=-1), atol=1e-9)


def test_resample_in_graph_with_the_rate_as_a_tensor():
    from keras_mm.preprocessing import resample

    fn = tf.function(lambda w, rate: resample(w, rate, 16000),
                     input_signature=[tf.TensorSpec([None], tf.float32), tf.TensorSpec([], tf.int32)])
    wave = np.sin(np.arange(800) / 5.0).astype("float32")
    np.testing.assert_array_equal(fn(wave, 16000).numpy(), wave)  # equal rates: unchanged
    assert fn(wave, 8000).shape == (1600,) and fn(tf.zeros([0]), 8000).shape == (0,)


def test_integer_pcm_is_scaled_like_soundfile_and_other_integers_are_refused():
    # int16 from scipy.io.wavfile.read reached the model unscaled (±32768) with status "ok"
    import pytest

    wave = (np.sin(np.arange(400) / 7.0) * 20000).astype(np.int16)
    pre = WaveformPreprocessor("speech", 500)
    expected = pre.process_batch((wave / 32768.0).astype("float32")[None])["speech"].numpy()
    for raw in (wave[None], tf.constant(wave[None]), [wave]):
        np.testing.assert_array_equal(pre.process_batch(raw)["speech"].numpy(), expected)
    unsigned = np.array([[0, 128, 255]], np.uint8)
    np.testing.assert_allclose(pre.process_batch(unsigned)["speech"].numpy()[0, :3], [-1.0, 0.0, 127 / 128])
    with pytest.raises(ValueError, match="dtype int64: pass float audio"):
        pre.process_batch(wave.astype(np.int64)[None])


def test_a_header_rate_below_1000_hz_is_refused_before_resampling_allocates():
    # a 2 KB WAV claiming 1 Hz resampled to 16 M samples (1.3 GB); 16 KB to 4.8 GB
    import struct

    good = tf.audio.encode_wav(tf.fill([64000, 1], 0.1), 8000).numpy()
    one_hertz = good[:24] + struct.pack("<II", 1, 2) + good[32:]
    audio, state = decode_wav_batch(tf.constant([good, one_hertz]), 16000, 16000)
    assert [n.decode() for n in status_names(state).numpy()] == ["ok", "undecodable"]
    np.testing.assert_array_equal(audio.numpy()[1], 0.0)
    from keras_mm.preprocessing.audio import checked_file_rate

    try:
        checked_file_rate(tf.constant(999))
    except tf.errors.InvalidArgumentError as error:
        assert "below 1000 Hz" in error.message
    else:
        raise AssertionError("a 999 Hz file rate was accepted")
    assert int(checked_file_rate(1000)) == 1000
    # resample itself takes any rates a caller chooses (no header involved)
    assert resample(tf.zeros([100]), 500, 250).shape == [50]


def test_a_long_file_is_resampled_only_for_the_window_the_same_in_training_and_serving(tmp_path):
    import librosa

    from keras_mm.modalities import get_modality
    from keras_mm.modalities.audio import read_audio
    from keras_mm.preprocessing.audio import RESAMPLE_MARGIN_SECONDS, decode_wav

    rate, seconds, window = 44100, 30, 16000
    t = np.arange(rate * seconds) / rate
    rng = np.random.default_rng(0)
    clip = (0.3 * np.sin(2 * np.pi * 220 * t) + 0.1 * np.sin(2 * np.pi * 3000 * t) + 0.05 * rng.normal(size=t.size))
    wav = tf.audio.encode_wav(clip.astype(np.float32)[:, None], rate)
    tf.io.write_file(str(tmp_path / "long.wav"), wav)

    # a manifest read for a model passes the encoder's window to the loader
    options = get_modality("audio").load_options(WaveformPreprocessor("audio", num_samples=window))
    assert options == {"sample_rate": 16000, "num_samples": window}
    trained_on = read_audio(tf.constant(str(tmp_path / "long.wav")), **options).numpy()
    # only the window plus the margin was resampled, not the 30 s (480,000 samples at 16 kHz)
    assert trained_on.shape == (window + int(RESAMPLE_MARGIN_SECONDS * 16000),)
    assert decode_wav(wav, 16000).shape == (16000 * seconds,)  # without a window: the whole clip, as before
    served, status = decode_wav_batch(tf.stack([wav]), window, 16000)
    assert status.numpy().tolist() == [0]
    np.testing.assert_array_equal(served[0].numpy(), trained_on[:window])  # training and serving: the same values

    # away from the clip's start (where FFT resampling wraps the clip's end round either way), the window
    # equals librosa's resampling of the whole file: the margin keeps the cut's ringing out of it
    whole = librosa.resample(tf.audio.decode_wav(wav)[0][:, 0].numpy().astype(np.float64), orig_sr=rate,
                             target_sr=16000, res_type="fft")[:window]
    assert np.abs(whole[window // 2:] - served[0].numpy()[window // 2:]).max() < 1e-3


def test_eager_wav_batches_reuse_one_graph():
    # Eagerly, the per-sample WAV decode pipeline used to be rebuilt and traced on every call (0.7 s).
    import keras_mm.preprocessing.audio as audio_module

    tone = (np.sin(np.arange(8000) / 5.0) * 0.3).astype(np.float32)
    wav = tf.audio.encode_wav(tone[:, None], 8000).numpy()
    first, first_status = audio_module.decode_wav_batch(np.array([wav, b"", b"x.wav"], object), 12000, 16000)
    second, second_status = audio_module.decode_wav_batch(tf.constant([wav]), 12000, 16000)
    assert audio_module._eager_wav_decoder(12000, 16000).experimental_get_tracing_count() == 1
    assert first.shape == (3, 12000) and first_status.numpy().tolist() == [0, 1, 3]  # ok, empty, a file path
    assert second_status.numpy().tolist() == [0]
    np.testing.assert_array_equal(first.numpy()[0], second.numpy()[0])
    graph = tf.function(lambda b: audio_module.decode_wav_batch(b, 12000, 16000))(tf.constant([wav]))
    np.testing.assert_array_equal(graph[0].numpy()[0], first.numpy()[0])  # the graph path: same samples
    assert np.abs(first.numpy()[0]).max() > 0.2 and not first.numpy()[1:].any()
