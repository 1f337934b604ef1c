"""Every ```python block of README.md runs as written, in order, in one namespace.

That is how a user meets them: pasted into one notebook, top to bottom, in a
fresh directory, with only what keras_mm installs and the bundled sample data.
A block that needs something outside the project (a model server, a GPU) must
not be written as a ```python block. One test, not one per block: the blocks
share names, and pytest-xdist would send parametrized cases to different workers.
"""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks():
    """``[(first line number, code)]`` of the ```python blocks, in README order."""
    text = README.read_text(encoding="utf-8")
    return [(text.count("\n", 0, match.start()) + 2, match.group(1))
            for match in re.finditer(r"^```python\n(.*?)^```", text, re.S | re.M)]


def test_every_readme_python_block_runs_in_order(tmp_path, monkeypatch):
    blocks = python_blocks()
    assert len(blocks) >= 8, [line for line, _ in blocks]  # the parser still finds them
    monkeypatch.chdir(tmp_path)  # files the blocks write (model.keras, saved_models/, reports/) land here
    namespace = {"__name__": "readme"}
    for line, code in blocks:
        try:
            exec(compile(code, f"README.md:{line}", "exec"), namespace)
        except Exception as error:
            error.add_note(f"in the README.md python block that starts at line {line}")
            raise
