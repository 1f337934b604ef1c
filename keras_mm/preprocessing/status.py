"""Why a sample is missing: per-sample status codes reported next to ``<feature>_present``.

A corrupt or empty input never fails a batch: the sample is marked missing
and the model predicts from the other modalities. The status says why, so a
client (or a training pipeline, which refuses such rows) can tell an empty
field from a corrupt file or a file path sent where the file's bytes were
expected. One status marks a sample that is used but was repaired:
``invalid_utf8`` (text whose invalid bytes were dropped; a text with nothing
valid left is ``undecodable``).

Example:
    >>> status_names(tf.constant([OK, UNDECODABLE, FILE_PATH])).numpy()
    array([b'ok', b'undecodable', b'file_path_instead_of_bytes'], dtype=object)
"""

import logging

import numpy as np
import tensorflow as tf

logger = logging.getLogger("keras_mm")
_WARNED = set()

#: status names by code; the serving signatures return the names as ``<feature>_status``.
#: New statuses go at the end: exported models keep the codes they were saved with.
SAMPLE_STATUSES = ("ok", "empty", "undecodable", "file_path_instead_of_bytes", "not_finite_or_too_loud", "wrong_size",
                   "too_large", "invalid_utf8")
OK, EMPTY, UNDECODABLE, FILE_PATH, NOT_FINITE, WRONG_SIZE, TOO_LARGE, INVALID_UTF8 = range(len(SAMPLE_STATUSES))
#: statuses of samples that are used (present), repaired on the way.
REPAIRED_STATUSES = ("invalid_utf8",)
#: what each status means, for error messages.
STATUS_MEANINGS = {
    "ok": "usable",
    "empty": "no value",
    "undecodable": "the bytes cannot be decoded",
    "file_path_instead_of_bytes": "a file path was given where the file's bytes were expected",
    "not_finite_or_too_loud": "it holds NaN or infinite values (or audio samples beyond 1e6)",
    "wrong_size": "it does not have the size the model takes",
    "too_large": "its header announces more pixels than keras_mm.preprocessing.image.MAX_IMAGE_PIXELS",
    "invalid_utf8": "its bytes are not valid UTF-8 (the invalid bytes were dropped and the rest used)",
}

# A short single-line string ending in a file extension is a path, not a file's content.
_PATH_PATTERN = r"[^\x00\n\r]{0,1000}\.[A-Za-z0-9]{2,5}"


def status_names(codes):
    """Status codes (int32) -> their names (``tf.string``), same shape.

    Example:
        >>> status_names(tf.constant([EMPTY])).numpy()
        array([b'empty'], dtype=object)
    """
    return tf.gather(tf.constant(SAMPLE_STATUSES), tf.cast(codes, tf.int32))


def looks_like_file_path(values):
    """Whether each string of ``values`` looks like a file path or URL rather than encoded data.

    Example:
        >>> looks_like_file_path(tf.constant(["photos/cat.png", "gs://b/x.wav", "\\x89PNG\\r\\n"])).numpy()
        array([ True,  True, False])
    """
    return tf.strings.regex_full_match(values, _PATH_PATTERN)


def status_of_decoded(raw_bytes, valid):
    """Status of byte inputs after a decode: ok, empty, a file path sent instead of bytes, or undecodable.

    Example:
        >>> status_of_decoded(tf.constant([b"", b"cat.jpg", b"junk", b"ok"]), tf.constant([False, False, False, True])).numpy()
        array([1, 3, 2, 0], dtype=int32)
    """
    empty = tf.equal(tf.strings.length(raw_bytes), 0)
    path = looks_like_file_path(raw_bytes)
    failed = tf.where(empty, EMPTY, tf.where(path, FILE_PATH, UNDECODABLE))
    return tf.where(valid, OK, failed)


def text_status(raw, present):
    """Status of text inputs: ok, empty, or, for bytes that are not valid UTF-8, ``invalid_utf8`` (text left, used) or undecodable.

    Text preprocessors drop invalid UTF-8 bytes so that a malformed string never
    fails a batch; this says when that happened, so a client sending Latin-1
    learns that its accented characters were lost.

    Args:
        raw: the raw strings, ``tf.string [batch]``.
        present: whether the preprocessed text is usable, bool ``[batch]``.

    Example:
        >>> status_names(text_status(tf.constant([b"caf\\xc3\\xa9", b"caf\\xe9", b"\\xff", b""]), tf.constant([True, True, False, False]))).numpy()
        array([b'ok', b'invalid_utf8', b'undecodable', b'empty'], dtype=object)
    """
    raw = tf.convert_to_tensor(raw, tf.string)
    repaired = tf.strings.unicode_transcode(raw, "UTF-8", "UTF-8", errors="replace", replacement_char=0xFFFD)
    invalid = tf.not_equal(raw, repaired)
    return tf.where(present, tf.where(invalid, INVALID_UTF8, OK), tf.where(invalid, UNDECODABLE, EMPTY))


def warn_once_about(statuses):
    """Log one warning per (feature, status) the first time a sample is missing for a reason other than "empty", or repaired.

    ``statuses``: ``{feature: status codes or names}`` (numpy, eager tensors).
    Returns the warnings logged by this call. Empty fields are normal in
    multimodal requests; corrupt files and paths sent instead of bytes are
    usually a client bug, worth one line in the log.

    Example:
        >>> warn_once_about({"photo": np.array([b"ok", b"file_path_instead_of_bytes"])})
        ["feature 'photo': a sample was marked missing: file_path_instead_of_bytes"]
    """
    logged = []
    for feature, values in statuses.items():
        for value in np.unique(np.asarray(values)):
            name = SAMPLE_STATUSES[int(value)] if np.issubdtype(type(value), np.integer) else (
                value.decode() if isinstance(value, bytes) else str(value))
            if name in ("ok", "empty") or (feature, name) in _WARNED:
                continue
            _WARNED.add((feature, name))
            if name in REPAIRED_STATUSES:
                message = f"feature {feature!r}: a sample was used after a repair: {name}"
            else:
                message = f"feature {feature!r}: a sample was marked missing: {name}"
            logger.warning("%s (the other samples and modalities are unaffected; logged once)", message)
            logged.append(message)
    return logged
