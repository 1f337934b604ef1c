"""The in-graph WAV decoder against soundfile (libsndfile), the reference the training loader used for these files."""

import io
import struct

import numpy as np
import pytest
import soundfile
import tensorflow as tf

from keras_mm.preprocessing.wav import decode_wav_mono, plain_pcm16, wav_header

CLIP = np.clip(np.random.default_rng(0).normal(0, 0.3, (1001, 2)), -1, 1).astype("float32")
ENCODINGS = ["PCM_U8", "PCM_16", "PCM_24", "PCM_32", "FLOAT", "DOUBLE"]


def wav_bytes(subtype, channels=2, rate=22050, container="WAV"):
    buffer = io.BytesIO()
    soundfile.write(buffer, CLIP[:, :channels], rate, subtype=subtype, format=container)
    return buffer.getvalue()


def soundfile_mono(data):
    audio, rate = soundfile.read(io.BytesIO(data), dtype="float32", always_2d=True)
    return audio.mean(axis=1), rate


@pytest.mark.parametrize("container", ["WAV", "WAVEX"])
@pytest.mark.parametrize("channels", [1, 2])
@pytest.mark.parametrize("subtype", ENCODINGS)
def test_every_pcm_and_float_encoding_equals_soundfile(subtype, channels, container):
    data = wav_bytes(subtype, channels, container=container)
    expected, rate = soundfile_mono(data)
    wave, decoded_rate = decode_wav_mono(data)
    assert int(decoded_rate) == rate == 22050
    np.testing.assert_array_equal(wave.numpy(), expected)
    # the same inside a graph
    graph = tf.function(decode_wav_mono, input_signature=[tf.TensorSpec([], tf.string)])
    np.testing.assert_array_equal(graph(data)[0].numpy(), expected)


def _chunk(name, payload):
    return name + struct.pack("<I", len(payload)) + payload + (b"\0" if len(payload) % 2 else b"")


def test_chunks_before_and_between_fmt_and_data_are_skipped():
    # a 24-bit file whose fmt chunk is not first, with odd-sized (padded) chunks around it
    plain = wav_bytes("PCM_24", 1)
    fmt_at = plain.index(b"fmt ")
    fmt = plain[fmt_at + 8: fmt_at + 8 + struct.unpack("<I", plain[fmt_at + 4: fmt_at + 8])[0]]
    data_at = plain.index(b"data")
    samples = plain[data_at + 8: data_at + 8 + struct.unpack("<I", plain[data_at + 4: data_at + 8])[0]]
    body = b"WAVE" + _chunk(b"JUNK", b"abc") + _chunk(b"fmt ", fmt) + _chunk(b"LIST", b"INFOISFT\x05\0\0\0tool\0") + _chunk(b"data", samples)
    data = b"RIFF" + struct.pack("<I", len(body)) + body
    np.testing.assert_array_equal(decode_wav_mono(data)[0].numpy(), soundfile_mono(plain)[0])
    assert bool(wav_header(data)["supported"]) and not bool(plain_pcm16(data))


@pytest.mark.parametrize("data", [
    b"", b"RIFF", b"not a wav file at all", wav_bytes("PCM_24")[:300],  # truncated
    wav_bytes("IMA_ADPCM", 1),  # an encoding it does not read (soundfile does, in the training loader)
], ids=["empty", "riff-only", "text", "truncated", "adpcm"])
def test_what_it_does_not_read_raises_and_the_header_says_so(data):
    assert not bool(wav_header(data)["supported"])
    with pytest.raises(tf.errors.InvalidArgumentError, match="not a WAV file keras_mm decodes"):
        decode_wav_mono(data)


def test_plain_16_bit_goes_through_tensorflows_decoder_with_the_same_values():
    data = tf.audio.encode_wav(tf.constant(CLIP), 8000).numpy()
    header = wav_header(data)
    assert bool(plain_pcm16(data)) and int(header["rate"]) == 8000 and int(header["channels"]) == 2
    np.testing.assert_array_equal(decode_wav_mono(data)[0].numpy(), soundfile_mono(data)[0])


def test_training_loader_and_serving_give_the_same_waveform_for_a_24_bit_file(tmp_path):
    # the train/serve gap this decoder closes: the loader read it with soundfile, serving marked it undecodable
    from keras_mm.modalities import load_audio_file
    from keras_mm.preprocessing.audio import decode_wav_batch

    path = tmp_path / "a.wav"
    path.write_bytes(wav_bytes("PCM_24", 2, rate=8000))
    loaded = np.asarray(load_audio_file(str(path), 16000))
    served, status = decode_wav_batch(tf.constant([path.read_bytes()]), len(loaded), 16000)
    assert status.numpy().tolist() == [0]  # ok
    np.testing.assert_allclose(served.numpy()[0], loaded, atol=1e-6)
