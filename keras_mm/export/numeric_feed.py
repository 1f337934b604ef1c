"""Checking a dict of numeric inputs before it reaches a runtime (LiteRT/TFLite, ONNX Runtime).

Those runtimes cast, truncate or crash on inputs that do not match the
file: float token ids were silently truncated to integers, and a wrong
shape gave a C++ error about tensor indices. :func:`numeric_feed` checks
every input against the file's signature and names the input at fault.
"""

import numpy as np


def numeric_feed(inputs, specs, runtime):
    """``{name: array}`` cast to the file's dtypes, or a ValueError that names the input at fault.

    Args:
        inputs: a dict of array-likes, e.g. ``model.preprocessor.process_batch(...)``.
            Keys the file does not take are ignored.
        specs: ``{name: (numpy dtype, shape)}`` with ``None`` for a dynamic dimension.
        runtime: the runtime's name, for the messages.

    Raises:
        ValueError: an input is missing, has another shape, the inputs disagree
            on the batch size, or a value would change in the cast (a
            fractional or out-of-range number for an integer input, NaN included).

    Example:
        >>> specs = {"ids": (np.int32, (None, 4)), "present": (np.float32, (None,))}
        >>> feed = numeric_feed({"ids": [[1, 2, 0, 0]], "present": [1.0]}, specs, "LiteRT")
        >>> feed["ids"].dtype, feed["present"].shape
        (dtype('int32'), (1,))
        >>> numeric_feed({"ids": [[1.5, 2, 0, 0]], "present": [1.0]}, specs, "LiteRT")
        Traceback (most recent call last):
        ...
        ValueError: input 'ids' must hold int32 values; got 1.5, which a cast would change. Pass the output of model.preprocessor.process_batch.
    """
    missing = sorted(set(specs) - set(inputs))
    if missing:
        raise ValueError(f"inputs lack {missing}; the {runtime} model takes {sorted(specs)}.")
    feed, batch_sizes = {}, {}
    for name, (dtype, shape) in specs.items():
        value = np.asarray(inputs[name])
        if value.dtype == object or value.dtype.kind in "USV":
            raise ValueError(f"input {name!r} must be numeric ({np.dtype(dtype).name}); got {value.dtype} values. The "
                             f"{runtime} model takes numeric inputs: pass model.preprocessor.process_batch(raw) to it.")
        if len(value.shape) != len(shape) or any(
                want is not None and got != want for got, want in zip(value.shape, shape)):
            expected = "(" + ", ".join("batch" if i == 0 and d is None else ("any" if d is None else str(d))
                                       for i, d in enumerate(shape)) + ")"
            raise ValueError(f"input {name!r} has shape {value.shape}; the {runtime} model takes {expected}.")
        cast = value.astype(dtype)
        to_integer = np.dtype(dtype).kind in "iub"
        if (to_integer and value.dtype.kind not in "iub") or (to_integer and value.dtype.itemsize > cast.dtype.itemsize):
            changed = cast.astype(value.dtype) != value
            if np.any(changed):
                example = value[changed].flat[0].item()
                raise ValueError(f"input {name!r} must hold {np.dtype(dtype).name} values; got {example!r}, which a "
                                 f"cast would change. Pass the output of model.preprocessor.process_batch.")
        feed[name] = cast
        if shape:
            batch_sizes[name] = value.shape[0]
    if len(set(batch_sizes.values())) > 1:
        raise ValueError(f"the inputs have different batch sizes: {batch_sizes}.")
    return feed
