import glob
import os

import librosa
import numpy as np
import pytest

from keras_mm.layers import MFCC, slaney_mel_filterbank

SR = 16000
SETTINGS = dict(n_mfcc=40, n_fft=512, hop_length=160, n_mels=64)


def librosa_mfcc(clip, sr=SR, **settings):
    return librosa.feature.mfcc(y=clip.astype("float32"), sr=sr, **settings).T


def synthetic_clips(n_samples=SR):
    rng = np.random.default_rng(0)
    t = np.arange(n_samples) / SR
    return [
        0.5 * np.sin(2 * np.pi * 440 * t),
        rng.normal(0, 0.1, n_samples),
        0.3 * np.sin(2 * np.pi * (200 + 3000 * t) * t),
        np.concatenate([np.zeros(n_samples // 2), 0.8 * np.sign(np.sin(2 * np.pi * 97 * t[: n_samples - n_samples // 2]))]),
        1e-4 * rng.normal(size=n_samples),  # near-silence: exercises the 1e-10 floor and top_db
    ]


def speech_clips():
    """Real recorded speech: Debian asterisk-core-sounds-en-wav (8 kHz), installed by `make test`."""
    roots = [os.environ.get("KERAS_MM_DATA", ".data"), "/usr/share/asterisk/sounds"]
    files = []
    for root in roots:
        files += sorted(glob.glob(os.path.join(root, "**", "en_US_f_Allison", "digits", "*.wav"), recursive=True))
    if not files:
        pytest.skip("no recorded speech found: run `make data` (Debian asterisk-core-sounds-en-wav)")
    clips = []
    for path in files[:10]:
        audio, _ = librosa.load(path, sr=SR)
        clips.append(np.pad(audio, (0, max(0, SR - len(audio))))[:SR])
    return clips


def test_filterbank_matches_librosa():
    for sr, n_fft, n_mels in [(16000, 512, 64), (22050, 2048, 128), (8000, 256, 40)]:
        ours = slaney_mel_filterbank(sr, n_fft, n_mels)
        ref = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels)
        np.testing.assert_allclose(ours, ref, atol=1e-7)


@pytest.mark.parametrize("stft", ["rfft", "matmul"])
def test_parity_with_librosa_on_synthetic_clips(stft):
    clips = synthetic_clips()
    out = MFCC(sample_rate=SR, stft=stft, **SETTINGS)(np.stack(clips).astype("float32")).numpy()
    worst = max(np.abs(out[i] - librosa_mfcc(c, **SETTINGS)).max() for i, c in enumerate(clips))
    assert worst <= 1e-3, worst


@pytest.mark.parametrize("stft", ["rfft", "matmul"])
def test_parity_with_librosa_on_recorded_speech(stft):
    clips = speech_clips()
    out = MFCC(sample_rate=SR, stft=stft, **SETTINGS)(np.stack(clips).astype("float32")).numpy()
    worst = max(np.abs(out[i] - librosa_mfcc(c, **SETTINGS)).max() for i, c in enumerate(clips))
    assert worst <= 1e-3, worst


@pytest.mark.parametrize("settings", [dict(n_mfcc=13, n_fft=400, hop_length=100, n_mels=40), dict(n_mfcc=20, n_fft=1024, hop_length=256, n_mels=128, fmin=50.0, fmax=7000.0)])
@pytest.mark.parametrize("stft", ["rfft", "matmul"])
def test_parity_with_other_settings(settings, stft):
    clip = synthetic_clips(12345)[2]
    out = MFCC(sample_rate=SR, stft=stft, **settings)(clip[None].astype("float32")).numpy()[0]
    ref = librosa_mfcc(clip, **settings)
    assert out.shape == ref.shape
    assert np.abs(out - ref).max() <= 1e-3


def test_matmul_stft_agrees_with_rfft_also_with_unknown_length():
    import tensorflow as tf

    clips = np.stack(synthetic_clips(7001)).astype("float32")
    settings = dict(n_mfcc=13, n_fft=400, hop_length=100, n_mels=40)
    rfft = MFCC(sample_rate=SR, stft="rfft", **settings)(clips).numpy()
    matmul_layer = MFCC(sample_rate=SR, stft="matmul", **settings)
    # static length: constant-index framing; unknown length: tf.signal.frame
    dynamic = tf.function(matmul_layer.call, input_signature=[tf.TensorSpec([None, None], tf.float32)])
    for out in (matmul_layer(clips).numpy(), dynamic(clips).numpy()):
        assert out.shape == rfft.shape
        assert np.abs(out - rfft).max() <= 1e-3


@pytest.mark.parametrize("n_samples", [100, 300, 600, 7001])  # 1, 2, 4 and 71 frames
def test_rfft_in_pieces_equals_one_piece_and_librosa(n_samples, monkeypatch):
    """The frames' RFFT split into parallel pieces (fewer frames than pieces too) is the same computation."""
    import tensorflow as tf

    clips = np.stack(synthetic_clips(n_samples)).astype("float32")
    expected = np.stack([librosa_mfcc(c, **SETTINGS) for c in clips])
    layer = MFCC(sample_rate=SR, stft="rfft", **SETTINGS)
    pieces = layer(clips).numpy()
    dynamic = tf.function(layer.call, input_signature=[tf.TensorSpec([None, None], tf.float32)])(clips).numpy()
    monkeypatch.setattr(MFCC, "_FFT_PIECES", 1)
    one_piece = layer(clips).numpy()
    assert pieces.shape == one_piece.shape == dynamic.shape == expected.shape
    # float32 rounding differs by op order (seen: 1.5e-5 on values ~5); a misplaced piece differs by units
    np.testing.assert_allclose(pieces, one_piece, atol=1e-4)
    np.testing.assert_allclose(dynamic, one_piece, atol=1e-4)
    assert np.abs(pieces - expected).max() <= 1e-3


def test_auto_stft_is_rfft_in_tensorflow_and_matmul_under_auto_stft():
    from keras_mm.layers.mfcc import auto_stft

    layer = MFCC()
    assert layer.stft == "auto" and layer.resolved_stft == "rfft"
    with auto_stft("matmul"):
        assert layer.resolved_stft == "matmul"
        assert MFCC(stft="rfft").resolved_stft == "rfft"  # an explicit choice is kept
    assert layer.resolved_stft == "rfft"
    with pytest.raises(ValueError, match="stft='fft' is not supported. Allowed: auto, rfft, matmul"):
        MFCC(stft="fft")


def test_output_shape_is_time_major_and_batch_independent():
    layer = MFCC(sample_rate=SR, **SETTINGS)
    clips = np.stack(synthetic_clips()).astype("float32")
    batched = layer(clips).numpy()
    assert batched.shape == (5, 1 + SR // 160, 40)
    assert layer.compute_output_shape((None, SR)) == (None, 101, 40)
    single = layer(clips[2:3]).numpy()
    np.testing.assert_allclose(single[0], batched[2], atol=1e-4)


def test_config_round_trip_and_float32_under_mixed_precision():
    import keras

    layer = MFCC(sample_rate=8000, n_mfcc=13, n_fft=256, hop_length=80, n_mels=40, fmin=30.0, fmax=3500.0, top_db=None,
                 stft="matmul")
    clone = MFCC.from_config(layer.get_config())
    assert clone.stft == "matmul"
    # every setting must survive the round trip: compare what the layers compute, on a clip where
    # each setting changes the result (near-silence after a chirp, so top_db=None matters too)
    clip = np.concatenate([synthetic_clips(4000)[2], synthetic_clips(4000)[4]])[None].astype("float32")
    np.testing.assert_allclose(clone(clip).numpy(), layer(clip).numpy(), atol=1e-6)
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        mp_layer = MFCC()
        assert mp_layer(np.zeros((1, 1600), "float32")).dtype == "float32"
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_dct_matrix_matches_scipy():
    from scipy.fft import dct

    from keras_mm.layers.mfcc import dct2_ortho_matrix

    x = np.random.default_rng(0).normal(size=(3, 64))
    np.testing.assert_allclose(x @ dct2_ortho_matrix(64, 40), dct(x, type=2, norm="ortho")[:, :40], atol=1e-10)

