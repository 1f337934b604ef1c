"""TF Serving's directory layout: ``<base>/<version>/saved_model.pb`` with integer versions."""

import os
import re


def next_version(base_path):
    """1 + the highest integer version directory under ``base_path`` (1 when none).

    Example:
        >>> import os, tempfile
        >>> base = tempfile.mkdtemp()
        >>> for version in ("1", "2"): os.makedirs(os.path.join(base, version))
        >>> keras_mm.export.next_version(base)
        3
    """
    if not os.path.isdir(base_path):
        return 1
    versions = [int(d) for d in os.listdir(base_path) if re.fullmatch(r"\d+", d)]
    return max(versions, default=0) + 1


def latest_version_dir(path):
    """``path`` itself if it holds a saved_model.pb, else its highest numbered version directory.

    Example:
        >>> import os, tempfile
        >>> base = tempfile.mkdtemp()
        >>> for version in ("1", "2", "10"): os.makedirs(os.path.join(base, version))
        >>> os.path.basename(keras_mm.export.latest_version_dir(base))
        '10'
    """
    if os.path.isfile(os.path.join(path, "saved_model.pb")):
        return path
    versions = [int(d) for d in os.listdir(path) if re.fullmatch(r"\d+", d)] if os.path.isdir(path) else []
    if not versions:
        raise ValueError(f"No SavedModel at {path!r}: expected {path}/saved_model.pb or {path}/<version>/saved_model.pb.")
    return os.path.join(path, str(max(versions)))
