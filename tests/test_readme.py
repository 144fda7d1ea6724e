"""The README's examples run as written, in order, in one namespace (as a reader pastes them)."""

import pathlib
import re

import numpy as np
import pytest

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


@pytest.mark.skipif(not README.exists(), reason="README.md not next to the tests")
def test_readme_examples_run() -> None:
    text = README.read_text()
    # The conventions section's examples need other frameworks: tests/test_conventions.py runs them.
    api = text[: text.index("## Conventions of other frameworks")]
    blocks = re.findall(r"```python\n(.*?)```", api, re.S)
    assert blocks, "README has no python example"
    namespace: dict = {}
    for number, block in enumerate(blocks):
        if "import torch" in block:
            pytest.importorskip("torch")
        if "import ml_dtypes" in block:
            pytest.importorskip("ml_dtypes")
        exec(compile(block, f"{README}, python block {number}", "exec"), namespace)
    assert namespace["y"].shape == (8, 128, 32, 32)
    assert namespace["y16"].dtype == np.float16 and namespace["y_32"].dtype == np.float32
    assert namespace["img"].dtype == np.uint8
    assert namespace["y_nhwc"].shape == (1, 20, 20, 16)
    assert namespace["hr"].shape == (1, 3, 96, 96)
    assert namespace["audio"].shape == (1, 256, 800)
    assert namespace["up"].shape == (1, 32, 32, 32, 32)
    assert [o.shape for o in namespace["outputs"]] == [(1, 32, 120, 160)] * 3
    assert len(namespace["losses"]) == 5 and namespace["losses"][-1] < namespace["losses"][0]
    assert namespace["grad_w"].shape == (8, 4, 4, 4) and namespace["grad_x"].shape == (2, 8, 16, 16)
