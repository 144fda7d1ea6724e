"""The README's example runs as written (the first ```python block)."""

import pathlib
import re

import pytest

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


@pytest.mark.skipif(not README.exists(), reason="README.md not next to the tests")
def test_readme_example_runs() -> None:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    assert blocks, "README has no python example"
    namespace: dict = {}
    exec(compile(blocks[0], str(README), "exec"), namespace)
    assert namespace["y"].shape == (8, 128, 32, 32)
    assert namespace["y_nhwc"].shape == (1, 20, 20, 16)
    assert namespace["hr"].shape == (1, 3, 96, 96)
