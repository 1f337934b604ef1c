"""Modality.load_file / load_graph: one implementation serves eager loading and the tf.data graph."""

import re

import numpy as np
import pytest
import tensorflow as tf

import keras_mm
from keras_mm.modalities import Modality, get_modality


class PythonOnly(Modality):
    """Defines load_file only: the graph path runs it through tf.numpy_function."""

    raw_shape, raw_dtype = (None,), tf.float32

    def load_file(self, path, scale=1.0, **options):
        return np.load(path).astype("float32") * scale


class GraphOnly(Modality):
    """Defines load_graph only: load_file runs it eagerly."""

    def load_graph(self, path, **options):
        return tf.strings.upper(tf.io.read_file(path))


class Neither(Modality):
    pass


def test_python_loader_runs_inside_a_dataset_map(tmp_path):
    np.save(tmp_path / "v.npy", np.arange(3, dtype="float32"))
    paths = tf.data.Dataset.from_tensors(str(tmp_path / "v.npy"))
    values = next(iter(paths.map(lambda p: PythonOnly().load_graph(p, scale=2.0))))
    assert values.shape == (3,) and values.dtype == tf.float32
    np.testing.assert_array_equal(values.numpy(), [0.0, 2.0, 4.0])


def test_graph_loader_is_also_the_eager_loader(tmp_path):
    (tmp_path / "t.txt").write_bytes(b"abc\x00")
    assert GraphOnly().load_file(str(tmp_path / "t.txt")) == b"ABC\x00"  # NUL bytes survive
    assert GraphOnly().load_cell("t.txt", lambda v: str(tmp_path / v)) == b"ABC\x00"
    with pytest.raises(NotImplementedError, match="defines neither load_file\\(\\) nor load_graph\\(\\)"):
        Neither().load_file("x")


def test_16_bit_wav_is_decoded_without_python_other_wav_by_the_serving_decoder_and_the_rest_by_soundfile(tmp_path, monkeypatch):
    import soundfile

    image_bytes = b"\x89PNG not really\x00"
    (tmp_path / "a.png").write_bytes(image_bytes)
    assert get_modality("image").load_file(str(tmp_path / "a.png")) == image_bytes
    tone = np.full((400, 1), 0.25, "float32")
    soundfile.write(tmp_path / "a.wav", tone, 8000, subtype="PCM_16")
    soundfile.write(tmp_path / "a24.wav", tone, 8000, subtype="PCM_24")
    soundfile.write(tmp_path / "a.flac", tone, 8000, subtype="PCM_16")

    def python_decoder_called(*args, **kwargs):
        raise RuntimeError("the Python fallback was called")

    monkeypatch.setattr(soundfile, "read", python_decoder_called)
    load = tf.function(lambda p: get_modality("audio").load_graph(p, sample_rate=8000))
    np.testing.assert_allclose(load(tf.constant(str(tmp_path / "a.wav"))).numpy(), 0.25, atol=1e-4)
    assert keras_mm.data.load_audio_file(str(tmp_path / "a.wav"), 16000).shape == (800,)
    # other WAV: the serving decoder (called from Python, never soundfile); FLAC/OGG/MP3: soundfile
    np.testing.assert_allclose(load(tf.constant(str(tmp_path / "a24.wav"))).numpy(), 0.25, atol=1e-6)
    with pytest.raises(tf.errors.OpError, match="the Python fallback was called"):
        load(tf.constant(str(tmp_path / "a.flac")))


@pytest.mark.parametrize("name", ["ogg_named.wav", "OGG_NAMED.WAV"])
def test_a_wav_named_file_that_is_not_wav_is_refused_as_serving_refuses_it_and_a_real_ogg_loads(tmp_path, name):
    # soundfile read such a file, so it trained; the serving_wav signature reads only WAV bytes: "undecodable"
    import soundfile

    from keras_mm.preprocessing.audio import decode_wav_batch
    from keras_mm.preprocessing.status import SAMPLE_STATUSES

    soundfile.write(tmp_path / "a.ogg", np.full((4000, 1), 0.25, "float32"), 8000, format="OGG")
    ogg = (tmp_path / "a.ogg").read_bytes()
    (tmp_path / name).write_bytes(ogg)
    assert keras_mm.data.load_audio_file(str(tmp_path / "a.ogg"), 8000).shape == (4000,)
    _, status = decode_wav_batch(tf.constant([ogg]), 4000, 8000)
    assert SAMPLE_STATUSES[int(status[0])] == "undecodable"
    expected = re.escape(f"cannot decode {tmp_path / name} as audio: not a WAV file: its bytes start with 'OggS' "
                         f"(an Ogg file named {name[-4:]}); rename it .ogg")
    with pytest.raises(ValueError, match=expected):
        keras_mm.data.load_audio_file(str(tmp_path / name), 8000)
    load = tf.function(lambda p: get_modality("audio").load_graph(p, sample_rate=8000))
    with pytest.raises(tf.errors.OpError, match=expected):
        load(tf.constant(str(tmp_path / name)))
