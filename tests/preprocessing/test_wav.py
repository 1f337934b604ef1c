"""The in-graph WAV decoder against soundfile (libsndfile), the reference the training loader used for these files."""

import io
import struct

import numpy as np
import pytest
import soundfile
import tensorflow as tf

from keras_mm.preprocessing.wav import decode_wav_mono, plain_pcm16, wav_header

CLIP = np.clip(np.random.default_rng(0).normal(0, 0.3, (1001, 2)), -1, 1).astype("float32")
ENCODINGS = ["PCM_U8", "PCM_16", "PCM_24", "PCM_32", "FLOAT", "DOUBLE", "ULAW", "ALAW"]


def wav_bytes(subtype, channels=2, rate=22050, container="WAV"):
    buffer = io.BytesIO()
    soundfile.write(buffer, CLIP[:, :channels], rate, subtype=subtype, format=container)
    return buffer.getvalue()


def soundfile_mono(data):
    audio, rate = soundfile.read(io.BytesIO(data), dtype="float32", always_2d=True)
    return audio.mean(axis=1), rate


@pytest.mark.parametrize("container", ["WAV", "WAVEX", "RF64"])
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


def _riff(chunks):
    """A WAV file of ``chunks`` (bytes) with a consistent RIFF size."""
    return b"RIFF" + struct.pack("<I", len(chunks) + 4) + b"WAVE" + chunks


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


def _with_fmt(data, **fields):
    """``data`` (a plain WAV) with fmt fields replaced: block_align, bits."""
    at = data.index(b"fmt ") + 8
    tag, channels, rate, byte_rate, block_align, bits = struct.unpack("<HHIIHH", data[at:at + 16])
    values = {**dict(tag=tag, channels=channels, rate=rate, byte_rate=byte_rate, block_align=block_align, bits=bits),
              **fields}
    packed = struct.pack("<HHIIHH", *(values[k] for k in ("tag", "channels", "rate", "byte_rate", "block_align", "bits")))
    return data[:at] + packed + data[at + 16:]


def _with_data_size(data, size):
    at = data.index(b"data") + 4
    return data[:at] + struct.pack("<I", size) + data[at + 4:]


def test_samples_narrower_than_their_container_and_stream_writers_sizes_equal_soundfile():
    # 20-bit samples in 3-byte containers and 12-bit in 2 (scipy's test files; soundfile reads them
    # as the container's width), a stream writer's unknown data size (ffmpeg to a pipe writes 0xFFFFFFFF)
    cases = {"20-bit": _with_fmt(wav_bytes("PCM_24", 1), bits=20), "12-bit": _with_fmt(wav_bytes("PCM_16", 2), bits=12),
             "streamed": _with_data_size(wav_bytes("PCM_16", 1), 0xFFFFFFFF)}
    # chunks after the data chunk: tf.audio.decode_wav failed on an odd-sized LIST chunk or a stray byte,
    # and an empty data chunk with a consistent RIFF size is empty (its following chunk is not samples)
    plain = wav_bytes("PCM_16", 1)
    cases["trailing-list"] = _riff(plain[12:] + _chunk(b"LIST", b"INFOabc"))
    cases["trailing-byte"] = plain + b"\0"
    cases["empty-data-then-list"] = _riff(plain[12:plain.index(b"data")] + _chunk(b"data", b"") + _chunk(b"LIST", b"INFOabcd"))
    for name, data in cases.items():
        assert not bool(plain_pcm16(data)), name
        np.testing.assert_array_equal(decode_wav_mono(data)[0].numpy(), soundfile_mono(data)[0], err_msg=name)
    assert decode_wav_mono(cases["empty-data-then-list"])[0].shape == [0]


@pytest.mark.parametrize("data", [
    b"", b"RIFF", b"not a wav file at all", wav_bytes("PCM_24")[:300],  # truncated
    wav_bytes("PCM_16")[:300],  # truncated 16-bit: not sent to tf.audio.decode_wav
    wav_bytes("IMA_ADPCM", 1),  # an encoding it does not read
    _with_fmt(wav_bytes("PCM_16", 1), rate=0, byte_rate=0),
], ids=["empty", "riff-only", "text", "truncated", "truncated-16-bit", "adpcm", "rate-0"])
def test_what_it_does_not_read_raises_and_the_header_says_so(data):
    assert not bool(wav_header(data)["supported"])
    with pytest.raises(tf.errors.InvalidArgumentError, match="not a WAV file keras_mm decodes"):
        decode_wav_mono(data)


@pytest.mark.parametrize("subtype", ["PCM_16", "PCM_24", "FLOAT", "ULAW"])
@pytest.mark.parametrize("channels", [1, 2])
def test_max_frames_decodes_the_start_with_the_same_values_and_still_checks_the_file(subtype, channels):
    # the model's window: a long file is decoded only that far (16-bit plain through its own path)
    data = wav_bytes(subtype, channels)
    whole = decode_wav_mono(data)[0].numpy()
    asked = []

    def frames(rate):
        asked.append(int(rate))
        return tf.constant(300, tf.int32)

    start, rate = decode_wav_mono(data, max_frames=frames)
    assert asked == [22050] and int(rate) == 22050
    np.testing.assert_array_equal(start.numpy(), whole[:300])
    np.testing.assert_array_equal(decode_wav_mono(data, max_frames=lambda rate: 10**6)[0].numpy(), whole)
    # the largest count window_source_frames gives (a corrupt header's rate) decodes the whole file
    np.testing.assert_array_equal(decode_wav_mono(data, max_frames=lambda rate: 2**31 - 1)[0].numpy(), whole)
    graph = tf.function(lambda d: decode_wav_mono(d, max_frames=lambda rate: rate // 100))
    np.testing.assert_array_equal(graph(data)[0].numpy(), whole[:220])
    with pytest.raises(tf.errors.InvalidArgumentError, match="not a WAV file keras_mm decodes"):
        decode_wav_mono(data[:len(data) // 2], max_frames=lambda rate: 10)  # truncated: refused, window or not


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


@pytest.mark.parametrize("subtype, cut, reason", [
    ("PCM_24", 300, "truncated: the header announces"), ("IMA_ADPCM", None, "WAV encoding IMA ADPCM"),
    ("FLOAT", None, "big-endian WAV"),
])
def test_a_wav_serving_refuses_is_an_error_naming_the_file_in_training_too(tmp_path, subtype, cut, reason):
    # soundfile read these in the training loader (a truncated file half-read), so rows trained that serving_wav
    # then marked undecodable
    from keras_mm.modalities import load_audio_file
    from keras_mm.preprocessing.audio import decode_wav_batch

    data = wav_bytes(subtype, 1)[:cut]
    if reason.startswith("big-endian"):
        buffer = io.BytesIO()
        soundfile.write(buffer, CLIP[:, :1], 22050, subtype="FLOAT", format="WAV", endian="BIG")
        data = buffer.getvalue()
        assert data[:4] == b"RIFX"
    path = tmp_path / "clip.wav"
    path.write_bytes(data)
    with pytest.raises(ValueError, match=f"cannot decode {path} as audio: {reason}"):
        load_audio_file(str(path), 16000)
    assert decode_wav_batch(tf.constant([data]), 100, 16000)[1].numpy().tolist() == [2]  # undecodable
