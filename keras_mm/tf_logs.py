"""Import TensorFlow without its start-up noise, keeping every real warning and error.

TensorFlow 2.21's C++ start-up messages go through absl logging before it is
initialised, so ``TF_CPP_MIN_LOG_LEVEL`` does not filter them: every process
printed ``oneDNN custom operations are on``, ``Could not find cuda drivers``,
the CPU-instructions notice and, on a machine with no NVIDIA device at all,
``E0000 ... failed call to cuInit``, which reads as a real error. While
TensorFlow is imported and looks for devices, :func:`import_tensorflow_quietly`
sends the process's stderr (file descriptor 2) to a temporary file, then
writes back every line except those notices.

To see TensorFlow's start-up logs again, set ``TF_CPP_MIN_LOG_LEVEL`` yourself
(``TF_CPP_MIN_LOG_LEVEL=0`` shows everything) or ``KERAS_MM_TF_LOGS=1``:
keras_mm then leaves stderr alone.
"""

import contextlib
import os
import re
import sys
import tempfile

#: Start-up lines dropped (INFO notices only; an ``E``/``W`` line is kept unless listed here).
NOISE = (
    re.compile(r"^WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR$"),
    re.compile(r"^I\d{4} [\d:.]+ +\d+ (port|cudart_stub|cpu_feature_guard)\.cc:\d+\] "),
    re.compile(r"^To enable the following instructions: .* rebuild TensorFlow with the appropriate compiler flags\.$"),
)
#: Dropped only where the machine has no NVIDIA device node: there, cuInit cannot succeed and its error says nothing.
NO_GPU_NOISE = re.compile(r"^E\d{4} [\d:.]+ +\d+ cuda_(platform|executor|diagnostics)\.cc:\d+\] .*cuInit")


def wanted(line, has_nvidia_device=None):
    """Whether a TensorFlow start-up stderr line is kept (real warnings and errors are).

    Example:
        >>> from keras_mm.tf_logs import wanted
        >>> wanted("I0000 00:00:17.1   3116 port.cc:153] oneDNN custom operations are on.")
        False
        >>> wanted("W0000 00:00:17.1   3116 gpu_device.cc:2] Cannot dlopen some GPU libraries.")
        True
        >>> wanted("E0000 00:00:17.1   3116 cuda_platform.cc:52] failed call to cuInit: ...", has_nvidia_device=True)
        True
    """
    if any(pattern.search(line) for pattern in NOISE):
        return False
    if has_nvidia_device is None:
        has_nvidia_device = os.path.exists("/dev/nvidiactl") or os.path.exists("/dev/nvidia0")
    return has_nvidia_device or not NO_GPU_NOISE.search(line)


def quiet_requested():
    """True unless the user asked for TensorFlow's logs (``TF_CPP_MIN_LOG_LEVEL`` or ``KERAS_MM_TF_LOGS`` set)."""
    return "TF_CPP_MIN_LOG_LEVEL" not in os.environ and os.environ.get("KERAS_MM_TF_LOGS", "") in ("", "0")


def import_tensorflow_quietly():
    """Import TensorFlow and list its devices with the start-up notices filtered out of stderr (once per process).

    Does nothing when TensorFlow is already imported or the user asked for its
    logs (:func:`quiet_requested`).
    """
    if "tensorflow" in sys.modules or not quiet_requested():
        return
    try:
        saved = os.dup(2)
    except OSError:  # no usable stderr (e.g. some embedded interpreters): nothing to filter
        import tensorflow  # noqa: F401

        return
    sys.stderr.flush()
    with tempfile.TemporaryFile(mode="w+b") as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow as tf

            tf.config.list_physical_devices()  # the cuInit attempt happens here, inside the window
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            text = captured.read().decode("utf-8", "replace")
            kept = [line for line in text.splitlines(keepends=True) if wanted(line.rstrip("\n"))]
            if kept:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()


#: the first line of a TensorFlow log record (``W0000 00:00:17.1  3116 op_kernel.cc:1845] ...``)
_RECORD = re.compile(r"^[IWEF]\d{4} [\d:.]+ +\d+ [\w.]+:\d+\] ")
#: the lines of a record after its first: blank, indented (``\t [[node ...]]``, a traceback's frames), a
#: traceback's header, its final ``SomeError: message`` line or the line joining chained exceptions' tracebacks
#: (a decoder's ``raise ValueError(...) from error``)
_CONTINUATION = re.compile(r"^(\s*$|\s|Traceback \(most recent call last\):|[A-Za-z_][\w.]*(Error|Exception)\b"
                          r"|The above exception was the direct cause of the following exception:$"
                          r"|During handling of the above exception, another exception occurred:$)")
#: records TensorFlow writes for every failing element of a dataset whose failures are expected (``ignore_errors``)
_EXPECTED_FAILURE = re.compile(r"^[WE]\d{4} [\d:.]+ +\d+ (op_kernel|local_rendezvous)\.cc:\d+\] ")


def without_failure_records(text):
    """``text`` (captured stderr) without TensorFlow's records of failing ops, continuation lines included.

    Example:
        >>> from keras_mm.tf_logs import without_failure_records
        >>> log = ("W0000 00:00:1.5  14 op_kernel.cc:1845] INVALID_ARGUMENT: ValueError: bad\\n"
        ...        "Traceback (most recent call last):\\n  File ...\\nOSError: unreadable\\n\\n"
        ...        "The above exception was the direct cause of the following exception:\\n\\n"
        ...        "Traceback (most recent call last):\\n  File ...\\nValueError: bad\\n"
        ...        "a keras_mm log line\\nW0000 00:00:1.6  14 gpu_device.cc:2] a real warning\\n")
        >>> without_failure_records(log)
        'a keras_mm log line\\nW0000 00:00:1.6  14 gpu_device.cc:2] a real warning\\n'
    """
    kept, dropping = [], False
    for line in text.splitlines(keepends=True):
        if _RECORD.match(line):
            dropping = bool(_EXPECTED_FAILURE.match(line))
        elif dropping and not _CONTINUATION.match(line):
            dropping = False  # the record and its traceback are over: a Python log line, a print, ...
        if not dropping:
            kept.append(line)
    return "".join(kept)


@contextlib.contextmanager
def expected_failures_quiet():
    """While rows are probed for failures (``ignore_errors`` passes), drop TensorFlow's record of each one from stderr.

    Every bad file made TensorFlow print a warning and, for a Python decoder,
    the full traceback of the error that keras_mm then reports in one line
    (182 stderr lines for 14 bad rows in ``keras-mm check``). Everything else
    written to stderr in the block is kept. Does nothing when the user asked
    for TensorFlow's logs (:func:`quiet_requested`).

    Example:
        >>> from keras_mm.tf_logs import expected_failures_quiet
        >>> with expected_failures_quiet():
        ...     pass
    """
    if not quiet_requested():
        yield
        return
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    sys.stderr.flush()
    with tempfile.TemporaryFile(mode="w+b") as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            kept = without_failure_records(captured.read().decode("utf-8", "replace"))
            if kept:
                sys.stderr.write(kept)
                sys.stderr.flush()


def error_reason(error):
    """A TensorFlow op error's message as one line, without its ``{{function_node ...}}`` prefix and ``[Op:...]`` trace.

    For messages shown to users (a manifest row's problem, the CLI's one-line
    errors); any other exception gives its text's first line.

    Example:
        >>> import tensorflow as tf
        >>> try:
        ...     tf.io.decode_png(b"not a png")
        ... except tf.errors.InvalidArgumentError as error:
        ...     print(error_reason(error))
        Unknown image file format. One of JPEG, JPEG XL, PNG, GIF, BMP, WebP required
    """
    message = getattr(error, "message", None) if hasattr(error, "op") else None
    text = str(error) if message is None else message
    text = re.sub(r"^(\{\{[^}]*\}\}\s*)+", "", text.strip())
    text = re.sub(r"\s*\[Op:[^\]]*\].*$", "", text.splitlines()[0] if text else "")
    return text.rstrip(".") or type(error).__name__
