"""WAV decoding in TensorFlow ops: PCM 8/16/24/32-bit and IEEE float 32/64-bit, plain or WAVE_FORMAT_EXTENSIBLE.

``tf.audio.decode_wav`` reads only 16-bit PCM, so 24-bit and float WAV (what
recorders and audio tools often write), which training manifests read through
soundfile, were ``undecodable`` at serving time. :func:`decode_wav_mono` is
what ``model.preprocessor`` and the ``serving_wav`` signature decode WAV bytes
with. Its values equal soundfile's (``soundfile.read(dtype="float32")``,
channels averaged) exactly for every encoding it reads, so a file gives the
same waveform in a training manifest and at serving time; 16-bit PCM with a
plain header goes through ``tf.audio.decode_wav`` (1.5x faster, the same numbers)."""

import tensorflow as tf

#: chunks read before the ``fmt `` and ``data`` chunks are given up on
MAX_CHUNKS = 64
#: (format tag, bits per sample) read: PCM 8/16/24/32, IEEE float 32/64
_PCM, _FLOAT, _EXTENSIBLE = 1, 3, 0xFFFE


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

    Returns a dict of scalar tensors: ``wav`` (a RIFF/WAVE file with ``fmt ``
    and ``data`` chunks in an encoding :func:`decode_wav_mono` reads),
    ``supported`` (that, and not truncated: it decodes),
    ``rate``, ``channels``, ``bits``, ``tag`` (format tag, the sub-format's
    for WAVE_FORMAT_EXTENSIBLE), ``data_offset``, ``data_size``.

    Example:
        >>> from keras_mm.preprocessing.wav import wav_header
        >>> header = wav_header(tf.audio.encode_wav(tf.zeros([10, 2]), 8000))
        >>> int(header["rate"]), int(header["channels"]), int(header["bits"]), bool(header["supported"])
        (8000, 2, 16, True)
    """
    data = tf.convert_to_tensor(data, tf.string)
    length = tf.cast(tf.strings.length(data), tf.int64)
    padded = tf.strings.join([data, b"\0" * 48])  # fixed-size reads past a short file's end read zeros
    riff = tf.equal(tf.strings.substr(padded, 0, 4), b"RIFF") & tf.equal(tf.strings.substr(padded, 8, 4), b"WAVE")
    fmt_at, fmt_size = _find_chunk(data, b"fmt ", length)
    data_at, data_size = _find_chunk(data, b"data", length)
    fmt = tf.strings.substr(padded, tf.cast(tf.maximum(fmt_at, 0), tf.int32), 26)
    fields = tf.io.decode_raw(tf.strings.substr(fmt, 0, 16), tf.uint16, little_endian=True)
    tag, channels, bits = (tf.cast(fields[i], tf.int32) for i in (0, 1, 7))
    extensible = tf.equal(tag, _EXTENSIBLE) & (fmt_size >= 26)
    sub_tag = tf.cast(tf.io.decode_raw(tf.strings.substr(fmt, 24, 2), tf.uint16, little_endian=True)[0], tf.int32)
    tag = tf.where(extensible, sub_tag, tag)
    # a data size of 0 or 0xFFFFFFFF is a stream writer's "unknown": the rest of the file
    streamed = tf.equal(data_size, 0) | tf.equal(data_size, 0xFFFFFFFF)
    data_size = tf.where(streamed, tf.maximum(length - data_at, 0), data_size)
    encoding = ((tf.equal(tag, _PCM) & ((bits == 8) | (bits == 16) | (bits == 24) | (bits == 32)))
                | (tf.equal(tag, _FLOAT) & ((bits == 32) | (bits == 64))))
    wav = riff & (fmt_at > 0) & (fmt_size >= 16) & (data_at > 0) & (channels >= 1) & encoding
    supported = wav & (data_at + data_size <= length)  # a truncated file is not decoded
    return {
        "wav": wav,
        "supported": supported,
        "rate": _u32(tf.strings.substr(fmt, 4, 4)),
        "channels": channels,
        "bits": bits,
        "tag": tag,
        "data_offset": data_at,
        "data_size": data_size,
    }


def plain_pcm16(data):
    """Whether ``data`` starts like the WAV ``tf.audio.decode_wav`` reads: RIFF/WAVE, a first ``fmt `` chunk of 16 or 18
    bytes, PCM, 16 bits. Fixed offsets, no chunk walk: the common case's cheap test.

    Example:
        >>> from keras_mm.preprocessing.wav import plain_pcm16
        >>> bool(plain_pcm16(tf.audio.encode_wav(tf.zeros([4, 1]), 8000))), bool(plain_pcm16(b"RIFF"))
        (True, False)
    """
    head = tf.strings.substr(tf.strings.join([tf.strings.substr(data, 0, 36), b"\0" * 36]), 0, 36)
    fmt_size = tf.io.decode_raw(tf.strings.substr(head, 16, 4), tf.int32, little_endian=True)[0]
    fields = tf.io.decode_raw(tf.strings.substr(head, 20, 16), tf.uint16, little_endian=True)
    return (tf.equal(tf.strings.substr(head, 0, 4), b"RIFF") & tf.equal(tf.strings.substr(head, 8, 8), b"WAVEfmt ")
            & ((fmt_size == 16) | (fmt_size == 18)) & tf.equal(fields[0], _PCM) & tf.equal(fields[7], 16))


def decode_plain_pcm16(data):
    """``(mono waveform, rate)`` of a WAV that :func:`plain_pcm16` accepts, by ``tf.audio.decode_wav`` (channels averaged).

    Example:
        >>> from keras_mm.preprocessing.wav import decode_plain_pcm16
        >>> wave, rate = decode_plain_pcm16(tf.audio.encode_wav(tf.ones([3, 2]) * 0.5, 8000))
        >>> wave.numpy().tolist(), int(rate)
        ([0.5, 0.5, 0.5], 8000)
    """
    audio, rate = tf.audio.decode_wav(data, desired_channels=-1)
    return tf.reduce_mean(audio, axis=1), rate


def _samples(payload, tag, bits):
    """Interleaved samples of the data chunk as float32, scaled as soundfile scales them."""

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

    branch = tf.where(tf.equal(tag, _FLOAT), 4 + bits // 64, bits // 8 - 1)  # PCM 8/16/24/32: 0..3, float 32/64: 4, 5
    return tf.switch_case(branch, [pcm8, pcm16, pcm24, pcm32, float32, float64])


def decode_wav_mono(data, header=None):
    """WAV bytes -> ``(mono float32 waveform [n], sample rate int32)``, channels averaged.

    Reads PCM 8/16/24/32-bit and IEEE float 32/64-bit WAV, plain or
    WAVE_FORMAT_EXTENSIBLE, with any chunks (``LIST``, ``fact``, ...) around
    ``fmt `` and ``data``. Anything else (not WAV, truncated, another encoding
    such as ADPCM) raises ``InvalidArgumentError`` saying so; callers isolate
    it per sample (serving) or name the file (manifests). ``header``: the
    :func:`wav_header` of ``data`` when the caller has read it already.

    Example:
        >>> from keras_mm.preprocessing.wav import decode_wav_mono
        >>> wave, rate = decode_wav_mono(tf.audio.encode_wav(tf.ones([5, 2]) * 0.5, 8000))
        >>> wave.numpy(), int(rate)
        (array([0.5, 0.5, 0.5, 0.5, 0.5], dtype=float32), 8000)
    """
    data = tf.convert_to_tensor(data, tf.string)

    def general():
        parsed = wav_header(data) if header is None else header
        return _decode_general(data, parsed)

    # the chunk walk of wav_header runs only for files that are not plain 16-bit PCM (the uncached epoch of
    # 16-bit manifests was ~10 % slower with it for every file)
    wave, rate = tf.cond(plain_pcm16(data), lambda: decode_plain_pcm16(data), general)
    return tf.ensure_shape(wave, [None]), tf.ensure_shape(rate, [])


def _decode_general(data, header):
    check = tf.debugging.Assert(header["supported"], [
        "not a WAV file keras_mm decodes (RIFF/WAVE with fmt and data chunks, PCM 8/16/24/32-bit or float "
        "32/64-bit, not truncated): format tag", header["tag"], "bits", header["bits"]])

    def decode():
        frame_bytes = tf.cast(tf.maximum(header["channels"] * (header["bits"] // 8), 1), tf.int64)
        size = header["data_size"] // frame_bytes * frame_bytes  # whole frames
        payload = tf.strings.substr(data, tf.cast(header["data_offset"], tf.int32), tf.cast(size, tf.int32))
        samples = _samples(payload, header["tag"], header["bits"])
        return tf.reduce_mean(tf.reshape(samples, [-1, header["channels"]]), axis=1), tf.cast(header["rate"], tf.int32)

    with tf.control_dependencies([check]):
        return decode()
