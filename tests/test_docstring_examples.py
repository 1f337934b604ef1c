"""Every docstring example in keras_mm runs as written (doctest), so the examples cannot rot.

Examples may assume the imports a user has in a notebook: ``keras_mm``, ``keras``,
``numpy as np`` and ``tensorflow as tf``; everything else they use, they define.
Output lines are compared with ``ELLIPSIS`` and ``NORMALIZE_WHITESPACE``.
"""

import doctest
import importlib
import pkgutil

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_mm

# Entry points whose import has side effects (argument parsing, a training run).
_NOT_IMPORTED = {"keras_mm.demo"}


def _modules():
    names = ["keras_mm"]
    for info in pkgutil.walk_packages(keras_mm.__path__, prefix="keras_mm."):
        if info.name not in _NOT_IMPORTED:
            names.append(info.name)
    return sorted(names)


def _examples(module_name):
    """The module's doctests; DocTestFinder skips objects defined elsewhere (re-exports)."""
    module = importlib.import_module(module_name)
    return [t for t in doctest.DocTestFinder(exclude_empty=True).find(module, module_name, globs={}) if t.examples]


ALL_MODULES = _modules()
MODULES = [name for name in ALL_MODULES if _examples(name)]


@pytest.mark.parametrize("module_name", MODULES)
def test_docstring_examples_run(module_name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # examples that write files write them here
    tests = _examples(module_name)
    flags = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    runner = doctest.DocTestRunner(optionflags=flags)
    module = importlib.import_module(module_name)
    failures = []
    for test in tests:
        test.globs = {**vars(module), "keras_mm": keras_mm, "keras": keras, "np": np, "tf": tf}
        keras.utils.set_random_seed(0)
        result = runner.run(test, out=lambda text: failures.append(text))
        del result
    assert runner.failures == 0, f"{runner.failures} failing example(s) in {module_name}:\n" + "".join(failures)[:6000]


def test_the_runner_finds_the_examples():
    assert "keras_mm.data.manifest" in MODULES and "keras_mm.heads.classification" in MODULES
    assert len(ALL_MODULES) > 60 and len(MODULES) > 40, (len(ALL_MODULES), len(MODULES))
