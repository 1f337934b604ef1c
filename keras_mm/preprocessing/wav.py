"""WAV decoding in TensorFlow ops: PCM 8/16/24/32-bit containers, IEEE float 32/64-bit, µ-law and A-law; RIFF or RF64,
plain or WAVE_FORMAT_EXTENSIBLE.

``tf.audio.decode_wav`` reads only 16-bit PCM, so 24-bit and float WAV (what
recorders and audio tools often write) were ``undecodable`` at serving time
while training manifests read them through soundfile. :func:`decode_wav_mono` is
what ``model.preprocessor`` and the ``serving_wav`` signature decode WAV bytes
with. Its values equal soundfile's (``soundfile.read(dtype="float32")``,
channels averaged) exactly for every encoding it reads, so a file gives the
same waveform in a training manifest and at serving time; 16-bit PCM with a
plain header goes through ``tf.audio.decode_wav`` (1.5x faster, the same numbers).
Training manifests decode every WAV with these functions too
(:func:`keras_mm.modalities.audio.decode_audio`), so a WAV that serving cannot
decode (ADPCM, big-endian RIFX, truncated; a ``.wav`` file that is not WAV) is an error naming the row in
training, never a clip that trains and then comes back ``undecodable``."""

import os

import numpy as np
import tensorflow as tf

#: chunks read before the ``fmt `` and ``data`` chunks are given up on
MAX_CHUNKS = 64
#: format tags read: PCM (8/16/24/32-bit containers, any valid bits), IEEE float 32/64, A-law, µ-law
_PCM, _FLOAT, _ALAW, _MULAW, _EXTENSIBLE = 1, 3, 6, 7, 0xFFFE
#: data chunk sizes that stream writers (ffmpeg to a pipe, RF64) put in the header for "unknown": the rest of the
#: file; a size of 0 means that too when the RIFF size is a placeholder as well
_PLACEHOLDER_SIZES = (0x7FFFFFFF, 0xFFFFFFFF)
#: the names of format tags seen in the wild that are not decoded, for error messages
_TAG_NAMES = {2: "MS ADPCM", 0x11: "IMA ADPCM", 0x31: "GSM 6.10", 0x50: "MPEG", 0x55: "MP3", 0x160: "WMA"}


def _g711_tables():
    """µ-law and A-law bytes -> float32, the ITU-T G.711 expansion (libsndfile's tables) / 32768."""
    codes = np.arange(256)
    mu = ~codes & 0xFF
    magnitude = (((mu & 0x0F) << 3) + 0x84) << ((mu & 0x70) >> 4)
    mulaw = np.where(mu & 0x80, 0x84 - magnitude, magnitude - 0x84)
    a = codes ^ 0x55
    exponent, mantissa = (a & 0x70) >> 4, a & 0x0F
    magnitude = np.where(exponent == 0, (mantissa << 4) + 8, ((mantissa << 4) + 0x108) << np.maximum(exponent - 1, 0))
    alaw = np.where(a & 0x80, magnitude, -magnitude)
    return (mulaw / 32768.0).astype(np.float32), (alaw / 32768.0).astype(np.float32)


_MULAW_TABLE, _ALAW_TABLE = _g711_tables()


def _u32(four_bytes):
    """A little-endian unsigned 32-bit field as int64 (``DecodeRaw`` has no uint32)."""
    return tf.io.decode_raw(tf.strings.join([four_bytes, b"\0\0\0\0"]), tf.int64, little_endian=True)[0]


def _find_chunk(data, chunk_id, length):
    """``(payload offset, payload size)`` of the first ``chunk_id`` chunk after the RIFF header; ``(-1, 0)`` if none."""

    def searching(offset, found, size, i):
        return (found < 0) & (offset + 8 <= length) & (i < MAX_CHUNKS)

    def step(offset, found, size, i):
        head = tf.strings.substr(data, tf.cast(offset, tf.int32), 8)
        chunk_size = _u32(tf.strings.substr(head, 4, 4))
        hit = tf.equal(tf.strings.substr(head, 0, 4), chunk_id)
        found = tf.where(hit, offset + 8, found)
        size = tf.where(hit, chunk_size, size)
        return offset + 8 + chunk_size + chunk_size % 2, found, size, i + 1  # chunks are padded to even sizes

    start = (tf.constant(12, tf.int64), tf.constant(-1, tf.int64), tf.constant(0, tf.int64), tf.constant(0))
    _, found, size, _ = tf.while_loop(searching, step, start)
    return found, size


def wav_header(data):
    """The fields of a WAV file's header, read with TensorFlow ops (never raises).

    Returns a dict of scalar tensors: ``wav`` (a RIFF/WAVE or RF64 file with
    ``fmt `` and ``data`` chunks in an encoding :func:`decode_wav_mono` reads),
    ``supported`` (that, and not truncated: it decodes), ``truncated``,
    ``rate``, ``channels``, ``bits`` (valid bits), ``container_bits`` (bits a
    sample takes in the file: ``block_align / channels``), ``tag`` (format
    tag, the sub-format's for WAVE_FORMAT_EXTENSIBLE), ``data_offset``,
    ``data_size`` (RF64: its ``ds64`` size). A stream writer's placeholder
    data size (0x7FFFFFFF, 0xFFFFFFFF; 0 when the RIFF size is a placeholder
    too) is read as the rest of the file.

    Example:
        >>> from keras_mm.preprocessing.wav import wav_header
        >>> header = wav_header(tf.audio.encode_wav(tf.zeros([10, 2]), 8000))
        >>> int(header["rate"]), int(header["channels"]), int(header["bits"]), bool(header["supported"])
        (8000, 2, 16, True)
    """
    data = tf.convert_to_tensor(data, tf.string)
    length = tf.cast(tf.strings.length(data), tf.int64)
    padded = tf.strings.join([data, b"\0" * 48])  # fixed-size reads past a short file's end read zeros
    magic = tf.strings.substr(padded, 0, 4)
    rf64 = tf.equal(magic, b"RF64")
    riff = (tf.equal(magic, b"RIFF") | rf64) & tf.equal(tf.strings.substr(padded, 8, 4), b"WAVE")
    fmt_at, fmt_size = _find_chunk(data, b"fmt ", length)
    data_at, data_size = _find_chunk(data, b"data", length)
    fmt = tf.strings.substr(padded, tf.cast(tf.maximum(fmt_at, 0), tf.int32), 26)
    fields = tf.io.decode_raw(tf.strings.substr(fmt, 0, 16), tf.uint16, little_endian=True)
    tag, channels, block_align, bits = (tf.cast(fields[i], tf.int32) for i in (0, 1, 6, 7))
    extensible = tf.equal(tag, _EXTENSIBLE) & (fmt_size >= 26)
    sub_tag = tf.cast(tf.io.decode_raw(tf.strings.substr(fmt, 24, 2), tf.uint16, little_endian=True)[0], tf.int32)
    tag = tf.where(extensible, sub_tag, tag)
    # RF64 keeps the real data size in its ds64 chunk: riff size (8 bytes), data size (8 bytes), ...
    ds64_at, _ = _find_chunk(data, b"ds64", length)
    ds64_size = tf.io.decode_raw(tf.strings.substr(tf.strings.join([padded, b"\0" * 16]), tf.cast(tf.maximum(ds64_at, 0) + 8, tf.int32), 8),
                                 tf.int64, little_endian=True)[0]
    data_size = tf.where(rf64 & (ds64_at > 0) & tf.equal(data_size, 0xFFFFFFFF), ds64_size, data_size)
    remaining = tf.maximum(length - data_at, 0)
    # a placeholder size; 0 only when the RIFF size is not the file's either (with a consistent RIFF size, a data
    # size of 0 is an empty data chunk, maybe followed by other chunks, whose bytes are not samples)
    riff_size = _u32(tf.strings.substr(padded, 4, 4))
    streamed_riff = tf.equal(riff_size, 0) | tf.equal(riff_size, 0xFFFFFFFF) | tf.not_equal(riff_size + 8, length)
    unknown = (tf.reduce_any(tf.equal(data_size, tf.constant(_PLACEHOLDER_SIZES, tf.int64))) & (data_size != remaining)
               ) | (tf.equal(data_size, 0) & streamed_riff)
    data_size = tf.where(unknown, remaining, data_size)
    # a sample's container: block_align / channels bytes (12-bit samples sit in 2 bytes, 20-bit in 3)
    container_bits = tf.where((channels > 0) & (block_align > 0) & tf.equal(block_align % tf.maximum(channels, 1), 0),
                              8 * block_align // tf.maximum(channels, 1), (bits + 7) // 8 * 8)
    pcm = tf.equal(tag, _PCM) & (bits >= 1) & (bits <= container_bits) & (
        (container_bits == 8) | (container_bits == 16) | (container_bits == 24) | (container_bits == 32))
    float_ = tf.equal(tag, _FLOAT) & tf.equal(bits, container_bits) & ((bits == 32) | (bits == 64))
    g711 = (tf.equal(tag, _MULAW) | tf.equal(tag, _ALAW)) & tf.equal(container_bits, 8)
    rate = _u32(tf.strings.substr(fmt, 4, 4))
    wav = (riff & (fmt_at > 0) & (fmt_size >= 16) & (data_at > 0) & (data_size >= 0) & (channels >= 1) & (rate > 0)
           & (pcm | float_ | g711))
    truncated = data_at + data_size > length
    return {
        "wav": wav,
        "supported": wav & ~truncated,  # a truncated file is not decoded
        "truncated": truncated,
        "riff": riff,
        "rate": rate,
        "channels": channels,
        "bits": bits,
        "container_bits": container_bits,
        "tag": tag,
        "data_offset": data_at,
        "data_size": data_size,
    }


def unsupported_reason(data):
    """Why :func:`decode_wav_mono` refuses WAV bytes, in words (Python, eager); ``None`` when it decodes them.

    Example:
        >>> from keras_mm.preprocessing.wav import unsupported_reason
        >>> wav = tf.audio.encode_wav(tf.zeros([10, 1]), 8000).numpy()
        >>> unsupported_reason(wav) is None, unsupported_reason(wav[:50])
        (True, 'truncated: the header announces 20 bytes of samples, the file holds 6')
    """
    data = bytes(data)
    header = {k: v.numpy() for k, v in wav_header(tf.constant(data)).items()}
    if header["supported"]:
        return None
    if data[:4] == b"RIFX":
        return "big-endian WAV (RIFX) is not decoded: convert it to little-endian PCM WAV"
    if not header["riff"]:
        return "not a WAV file (no RIFF/WAVE or RF64 header)"
    if header["data_offset"] < 0:
        return "a WAV file without a data chunk (empty or cut inside its header)"
    if not header["rate"]:
        return "a WAV header with a sample rate of 0"
    if not header["wav"]:
        tag, channels = int(header["tag"]), int(header["channels"])
        if channels < 1:
            return "a WAV header with 0 channels"
        if tag in (_PCM, _FLOAT, _ALAW, _MULAW):
            kind = {_PCM: "PCM", _FLOAT: "float", _ALAW: "A-law", _MULAW: "µ-law"}[tag]
            encoding = f"{kind} with {int(header['bits'])}-bit samples in {int(header['container_bits'])}-bit containers"
        else:
            encoding = _TAG_NAMES.get(tag, f"format tag {tag}")
        return (f"WAV encoding {encoding} is not decoded (PCM in 8/16/24/32-bit containers, float 32/64-bit, "
                "µ-law and A-law are): convert it to PCM WAV")
    held = len(data) - int(header["data_offset"])
    return f"truncated: the header announces {int(header['data_size'])} bytes of samples, the file holds {held}"


#: what a file's first bytes say it is when it is not WAV, for error messages: (magic, format, extension)
_OTHER_FORMATS = ((b"OggS", "an Ogg file", ".ogg"), (b"fLaC", "a FLAC file", ".flac"), (b"ID3", "an MP3 file", ".mp3"),
                  (b"FORM", "an AIFF file", ".aiff"), (b"\x89PNG", "a PNG image", None),
                  (b"\xff\xd8\xff", "a JPEG image", None))


def not_wav_reason(data, name=""):
    """Why ``data`` is not a WAV file (no RIFF/WAVE or RF64 header), naming what its first bytes say it is.

    Given the file's ``name`` (e.g. ``clip.wav`` holding Ogg bytes), it also
    says which extension to give it: under its format's own extension the
    manifest loader reads it with soundfile.

    Example:
        >>> from keras_mm.preprocessing.wav import not_wav_reason
        >>> not_wav_reason(b"OggS\\x00\\x02", "clip.wav")
        "not a WAV file: its bytes start with 'OggS' (an Ogg file named .wav); rename it .ogg"
        >>> not_wav_reason(b"")
        'not a WAV file: it is empty'
    """
    data = bytes(data)
    if not data:
        return "not a WAV file: it is empty"
    start = repr(data[:4])[1:]
    for magic, kind, extension in _OTHER_FORMATS:
        if data.startswith(magic):
            named = f" named {os.path.splitext(name)[1]}" if os.path.splitext(name)[1] else ""
            rename = f"; rename it {extension}" if extension and named else ""
            return f"not a WAV file: its bytes start with {start} ({kind}{named}){rename}"
    return f"not a WAV file: its bytes start with {start}, not RIFF/WAVE or RF64"


def plain_pcm16(data):
    """Whether ``data`` is the WAV ``tf.audio.decode_wav`` reads: RIFF/WAVE, a first ``fmt `` chunk of 16 or 18
    bytes, PCM, 16 bits, then the ``data`` chunk, whole frames, up to the end of the file. Fixed offsets, no chunk walk:
    the common case's cheap test. Anything else (a ``LIST`` chunk first, a stream writer's unknown size, a
    truncated file) goes to the general decoder, which reads or refuses it with a reason.

    Example:
        >>> from keras_mm.preprocessing.wav import plain_pcm16
        >>> wav = tf.audio.encode_wav(tf.zeros([4, 1]), 8000)
        >>> bool(plain_pcm16(wav)), bool(plain_pcm16(b"RIFF")), bool(plain_pcm16(tf.strings.substr(wav, 0, 45)))
        (True, False, False)
    """
    h = _plain_header(data)
    return (tf.equal(tf.strings.substr(h["head"], 0, 4), b"RIFF") & tf.equal(tf.strings.substr(h["head"], 8, 8), b"WAVEfmt ")
            & ((h["fmt_size"] == 16) | (h["fmt_size"] == 18)) & tf.equal(h["tag"], _PCM) & tf.equal(h["bits"], 16)
            & tf.equal(h["block_align"], 2 * h["channels"]) & tf.equal(tf.strings.substr(h["head"], h["data_at"], 4), b"data")
            & h["fits"])


def _plain_header(data):
    """The fields of a plain WAV header at fixed offsets (``fmt `` first, then ``data``): what :func:`plain_pcm16` tests."""
    head = tf.strings.substr(tf.strings.join([tf.strings.substr(data, 0, 46), b"\0" * 46]), 0, 46)
    fmt_size = tf.io.decode_raw(tf.strings.substr(head, 16, 4), tf.int32, little_endian=True)[0]
    fields = tf.io.decode_raw(tf.strings.substr(head, 20, 16), tf.uint16, little_endian=True)
    data_at = 20 + tf.where(fmt_size == 18, 18, 16)
    data_size = tf.io.decode_raw(tf.strings.substr(head, data_at + 4, 4), tf.int32, little_endian=True)[0]
    block_align = tf.maximum(tf.cast(fields[6], tf.int32), 1)
    rates = tf.io.decode_raw(tf.strings.substr(head, 24, 8), tf.int32, little_endian=True)  # sample rate, byte rate
    consistent = (rates[0] > 0) & tf.equal(rates[1], rates[0] * block_align)  # what decode_wav checks
    # the data chunk ends the file: tf.audio.decode_wav fails on some trailing chunks (odd sizes, stray bytes)
    fits = consistent & (data_size > 0) & tf.equal(data_size, tf.strings.length(data) - data_at - 8) & tf.equal(
        data_size % block_align, 0)
    return {"head": head, "fmt_size": fmt_size, "tag": fields[0], "channels": tf.cast(fields[1], tf.int32),
            "bits": fields[7], "data_at": data_at, "data_size": data_size, "block_align": block_align, "rate": rates[0],
            "fits": fits}


def decode_plain_pcm16(data, max_frames=None):
    """``(mono waveform, rate)`` of a WAV that :func:`plain_pcm16` accepts, channels averaged.

    By ``tf.audio.decode_wav``; with ``max_frames`` (a function of the file's
    rate, see :func:`decode_wav_mono`) only the data chunk's first frames are
    decoded, with the same values.

    Example:
        >>> from keras_mm.preprocessing.wav import decode_plain_pcm16
        >>> wave, rate = decode_plain_pcm16(tf.audio.encode_wav(tf.ones([3, 2]) * 0.5, 8000))
        >>> wave.numpy().tolist(), int(rate)
        ([0.5, 0.5, 0.5], 8000)
    """
    if max_frames is None:
        audio, rate = tf.audio.decode_wav(data, desired_channels=-1)
        return tf.reduce_mean(audio, axis=1), rate
    h = _plain_header(data)
    # int64: frames (up to 2**31 - 1 for a corrupt header's rate) times the frame size overflows int32
    frames = tf.cast(max_frames(h["rate"]), tf.int64) * tf.cast(h["block_align"], tf.int64)
    size = tf.cast(tf.minimum(tf.cast(h["data_size"], tf.int64), frames), tf.int32)
    payload = tf.strings.substr(data, h["data_at"] + 8, size)
    samples = tf.cast(tf.io.decode_raw(payload, tf.int16, little_endian=True), tf.float32) / 32768.0  # decode_wav's scale
    return tf.reduce_mean(tf.reshape(samples, [-1, h["channels"]]), axis=1), h["rate"]


def _samples(payload, tag, bits):
    """Interleaved samples of the data chunk as float32, scaled as soundfile scales them (``bits``: the container's)."""

    def pcm8():  # unsigned
        return (tf.cast(tf.io.decode_raw(payload, tf.uint8), tf.float32) - 128.0) / 128.0

    def pcm16():
        return tf.cast(tf.io.decode_raw(payload, tf.int16, little_endian=True), tf.float32) / 32768.0

    def pcm24():
        b = tf.cast(tf.reshape(tf.io.decode_raw(payload, tf.uint8), [-1, 3]), tf.int32)
        value = b[:, 0] + b[:, 1] * 256 + b[:, 2] * 65536
        return tf.cast(tf.where(value >= 1 << 23, value - (1 << 24), value), tf.float32) / float(1 << 23)

    def pcm32():
        value = tf.cast(tf.io.decode_raw(payload, tf.int32, little_endian=True), tf.float64)
        return tf.cast(value / float(1 << 31), tf.float32)

    def float32():
        return tf.io.decode_raw(payload, tf.float32, little_endian=True)

    def float64():
        return tf.cast(tf.io.decode_raw(payload, tf.float64, little_endian=True), tf.float32)

    def mulaw():
        return tf.gather(tf.constant(_MULAW_TABLE), tf.cast(tf.io.decode_raw(payload, tf.uint8), tf.int32))

    def alaw():
        return tf.gather(tf.constant(_ALAW_TABLE), tf.cast(tf.io.decode_raw(payload, tf.uint8), tf.int32))

    # PCM 8/16/24/32: 0..3, float 32/64: 4, 5, µ-law 6, A-law 7
    branch = tf.where(tf.equal(tag, _FLOAT), 4 + bits // 64,
                      tf.where(tf.equal(tag, _MULAW), 6, tf.where(tf.equal(tag, _ALAW), 7, bits // 8 - 1)))
    return tf.switch_case(branch, [pcm8, pcm16, pcm24, pcm32, float32, float64, mulaw, alaw])


def decode_wav_mono(data, header=None, max_frames=None):
    """WAV bytes -> ``(mono float32 waveform [n], sample rate int32)``, channels averaged.

    Reads PCM in 8/16/24/32-bit containers (12-bit, 20-bit, ... samples
    too), IEEE float 32/64-bit, µ-law and A-law WAV, RIFF or RF64, plain or
    WAVE_FORMAT_EXTENSIBLE, with any chunks (``LIST``, ``fact``, ...) around
    ``fmt `` and ``data``. Anything else (not WAV, truncated, another encoding
    such as ADPCM) raises ``InvalidArgumentError`` (:func:`unsupported_reason`
    says why in words); callers isolate it per sample (serving) or name the
    file (manifests). ``header``: the
    :func:`wav_header` of ``data`` when the caller has read it already.
    ``max_frames``: a function of the file's sample rate (an integer tensor)
    giving how many frames to decode from the start of the data chunk (the
    model's window, :func:`keras_mm.preprocessing.audio.resample_to_window`):
    a 10-minute file is not decoded whole for the second a model keeps. The
    file is checked as a whole all the same (a truncated file still raises).

    Example:
        >>> from keras_mm.preprocessing.wav import decode_wav_mono
        >>> wave, rate = decode_wav_mono(tf.audio.encode_wav(tf.ones([5, 2]) * 0.5, 8000))
        >>> wave.numpy(), int(rate)
        (array([0.5, 0.5, 0.5, 0.5, 0.5], dtype=float32), 8000)
    """
    data = tf.convert_to_tensor(data, tf.string)

    def general():
        parsed = wav_header(data) if header is None else header
        return _decode_general(data, parsed, max_frames)

    # the chunk walk of wav_header runs only for files that are not plain 16-bit PCM (the uncached epoch of
    # 16-bit manifests was ~10 % slower with it for every file)
    wave, rate = tf.cond(plain_pcm16(data), lambda: decode_plain_pcm16(data, max_frames), general)
    return tf.ensure_shape(wave, [None]), tf.ensure_shape(rate, [])


def _decode_general(data, header, max_frames=None):
    check = tf.debugging.Assert(header["supported"], [
        "not a WAV file keras_mm decodes (RIFF/WAVE or RF64 with fmt and data chunks, PCM 8/16/24/32-bit, float "
        "32/64-bit, mu-law or A-law, not truncated): format tag", header["tag"], "bits", header["bits"]])

    def decode():
        frame_bytes = tf.cast(tf.maximum(header["channels"] * (header["container_bits"] // 8), 1), tf.int64)
        size = header["data_size"] // frame_bytes * frame_bytes  # whole frames
        if max_frames is not None:
            size = tf.minimum(size, tf.cast(max_frames(header["rate"]), tf.int64) * frame_bytes)
        payload = tf.strings.substr(data, tf.cast(header["data_offset"], tf.int32), tf.cast(size, tf.int32))
        samples = _samples(payload, header["tag"], header["container_bits"])
        return tf.reduce_mean(tf.reshape(samples, [-1, header["channels"]]), axis=1), tf.cast(header["rate"], tf.int32)

    with tf.control_dependencies([check]):
        return decode()
