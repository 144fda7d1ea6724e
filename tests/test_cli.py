"""``python -m subpixel_ext``: run in subprocesses, exit codes and the key output lines checked.

The demo prints a Python script: it is run as printed, and the printed direct result is checked
against the SAME correlation of the zero-inserted image redone here in NumPy from the printed
(rounded) image and kernel, so the demo cannot print the wrong thing and still pass just because
its own routes agree with each other.
"""

from __future__ import annotations

import importlib.util
import os
import pathlib
import re
import subprocess
import sys
from typing import List, Tuple

import numpy as np
import pytest

import subpixel_ext as spx
from subpixel_ext import _api, _cli

AGREE = re.compile(
    r"^# direct and polyphase agree: max abs difference (\S+) "
    r"\(library: (\S+), same_correlation: (\S+), tolerance (\S+)\)$"
)
# Words about how the project is made, which nothing the package prints should contain.
PROCESS_WORDS = re.compile(r"\b(issues?|goals?|notebook)\b", re.I)


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "subpixel_ext", *args],
        capture_output=True, text=True, timeout=120, check=False,
    )


def lines_of(result: subprocess.CompletedProcess[str]) -> List[str]:
    return result.stdout.splitlines()


def agreement(result: subprocess.CompletedProcess[str]) -> Tuple[float, float, float, float]:
    """The four numbers of the last line, which must be the agreement line."""
    match = AGREE.match(lines_of(result)[-1])
    assert match, lines_of(result)[-1]
    polyphase, library, same, tolerance = (float(g) for g in match.groups())
    return polyphase, library, same, tolerance


def block(result: subprocess.CompletedProcess[str], title: str) -> np.ndarray:
    """The 2-D array printed (as comment lines) under the comment starting with ``title``."""
    out = lines_of(result)
    start = next(i for i, line in enumerate(out) if line.startswith(f"# {title}"))
    rows = []
    for line in out[start + 1 :]:
        if not re.match(r"#\s+\[", line):
            break
        rows.append([float(v) for v in re.findall(r"-?\d+\.\d+", line)])
    assert rows, f"no array under {title!r}"
    return np.array(rows)


def same_correlation(x: np.ndarray, kernel: np.ndarray, s: int) -> np.ndarray:
    """TensorFlow SAME correlation of the zero-inserted image (see test_notebook.py)."""
    z = np.zeros((x.shape[0] * s, x.shape[1] * s))
    z[::s, ::s] = x
    (h, w), (kh, kw) = z.shape, kernel.shape
    padded = np.zeros((h + kh - 1, w + kw - 1))
    padded[(kh - 1) // 2 : (kh - 1) // 2 + h, (kw - 1) // 2 : (kw - 1) // 2 + w] = z
    return sum(
        (kernel[a, b] * padded[a : a + h, b : b + w] for a in range(kh) for b in range(kw)),
        np.zeros((h, w)),
    )


def check_direct_is_the_same_correlation(result: subprocess.CompletedProcess[str], s: int) -> None:
    image, kernel = block(result, "image ("), block(result, "kernel (")
    direct = block(result, "direct (")
    expected = same_correlation(image, kernel, s)
    assert direct.shape == expected.shape
    # image, kernel and direct are printed to 3 decimals: half a unit of the last digit each
    half = 5e-4
    bound = kernel.size * half * (np.abs(image).max() + np.abs(kernel).max() + half) + half
    assert np.abs(direct - expected).max() <= bound


# ----------------------------------------------------------------------------- demo


def test_no_arguments_runs_the_default_demo() -> None:
    result = run()
    assert result.returncode == 0, result.stderr
    out = lines_of(result)
    for title in ("# image (4x4):", "# zero_inserted (8x8):", "# kernel (4x4):", "# shuffled (8x8):",
                  "# direct (8x8):"):
        assert title in out
    assert sum(line.startswith("# subkernels[") for line in out) == 4
    assert sum(line.startswith("# phases[") for line in out) == 4
    assert (
        'direct = spx.conv_transpose2d(image[None], flipped, stride=2, padding=((2, 0), (2, 0)), '
        'output_padding=(0, 0), method="direct")[0]'
    ) in out
    assert any("p_top = K//2 = (2, 2) and p_bottom = K - s - K//2 = (0, 0)" in line for line in out)
    assert "# polyphase: 8x8, shuffled cropped by pw.crop = ((0, 0), (0, 0))" in out
    for difference in agreement(result)[:3]:
        assert difference < 1e-12
    check_direct_is_the_same_correlation(result, 2)
    # The printed shuffle of the phases is the direct result (no crop by default).
    np.testing.assert_array_equal(block(result, "shuffled ("), block(result, "direct ("))
    assert run("demo").stdout == result.stdout


def test_demo_size_kernel_stride_seed() -> None:
    result = run("demo", "--size", "5", "7", "--kernel", "3", "--stride", "3", "--seed", "1")
    assert result.returncode == 0, result.stderr
    out = lines_of(result)
    assert "# image (5x7):" in out and "# kernel (3x3):" in out
    assert sum(line.startswith("# subkernels[") for line in out) == 9
    assert sum(line.startswith("# phases[") for line in out) == 9
    # K = 3 < 2s: p_bottom = 3 - 3 - 1 = -1 becomes output_padding 1
    assert any("stride=3, padding=((1, 0), (1, 0)), output_padding=(1, 1)" in line for line in out)
    assert block(result, "direct (").shape == (15, 21)
    for difference in agreement(result)[:3]:
        assert difference < 1e-12
    check_direct_is_the_same_correlation(result, 3)


def test_seed_chooses_the_image() -> None:
    first, again, other = run("demo", "--seed", "5"), run("demo", "--seed", "5"), run("demo", "--seed", "6")
    assert first.stdout == again.stdout
    assert not np.array_equal(block(first, "image ("), block(other, "image ("))


def test_demo_rectangular_kernel() -> None:
    result = run("demo", "--size", "3", "--kernel", "5", "2", "--stride", "2", "--seed", "4")
    assert result.returncode == 0, result.stderr
    assert "# kernel (5x2):" in lines_of(result)
    check_direct_is_the_same_correlation(result, 2)


def test_demo_float32() -> None:
    result = run("demo", "--dtype", "float32")
    assert result.returncode == 0, result.stderr
    polyphase, library, same, tolerance = agreement(result)
    assert 1e-6 < tolerance < 1e-3  # a float32 tolerance, not float64's
    assert max(polyphase, library, same) <= tolerance
    check_direct_is_the_same_correlation(result, 2)


@pytest.mark.parametrize(
    "args",
    [["demo", "--size", "1", "2", "3"], ["demo", "--stride", "0"], ["demo", "--dtype", "int8"],
     ["demo", "--bogus"], ["nonsense"]],
)
def test_bad_arguments_exit_2(args: List[str]) -> None:
    result = run(*args)
    assert result.returncode == 2
    assert "error:" in result.stderr and not result.stdout


def test_disagreement_exits_1(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    def broken_shuffle(x: np.ndarray, factor: int) -> np.ndarray:
        return spx.pixel_shuffle(x[::-1], factor)

    monkeypatch.setattr(_api, "pixel_shuffle", broken_shuffle)
    assert _cli.main(["demo"]) == 1
    last = capsys.readouterr().out.splitlines()[-1]
    match = re.match(r"# direct and polyphase DISAGREE: max abs difference (\S+) ", last)
    assert match and float(match.group(1)) > 1e-3, last


@pytest.mark.parametrize(
    "args",
    [[], ["demo", "--size", "5", "3", "--kernel", "3", "5", "--stride", "3", "--seed", "2"],
     ["demo", "--size", "4", "--kernel", "5", "--stride", "2", "--dtype", "float32"],
     ["demo", "--kernel", "1", "--stride", "3"]],
)
def test_the_printed_demo_runs_as_printed(args: List[str]) -> None:
    result = run(*args)
    assert result.returncode == 0, result.stderr
    namespace: dict = {}
    exec(compile(result.stdout, "demo output", "exec"), namespace)
    for name in ("image", "kernel", "zero_inserted", "direct", "shuffled"):
        printed = block(result, f"{name} (")
        np.testing.assert_allclose(namespace[name], printed, atol=5e-4 + 1e-6, err_msg=name)
    for p, phase in enumerate(namespace["phases"]):
        np.testing.assert_allclose(phase, block(result, f"phases[{p}]"), atol=5e-4 + 1e-6)
    tolerance = agreement(result)[3]
    for route in ("polyphase", "library", "same_correlation"):
        assert np.abs(namespace[route] - namespace["direct"]).max() <= tolerance, route


@pytest.mark.parametrize("args", [["demo"], ["--help"], ["demo", "--help"], ["config"]])
def test_printed_text_speaks_to_a_user(args: List[str]) -> None:
    result = run(*args)
    assert result.returncode == 0, result.stderr
    assert not PROCESS_WORDS.findall(result.stdout + result.stderr)


# ----------------------------------------------------------------------------- demo --plot

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# Runs `python -m subpixel_ext ARGS` with every import of matplotlib failing, as if not installed.
WITHOUT_MATPLOTLIB = """
import importlib.abc, runpy, sys

class NoMatplotlib(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "matplotlib" or name.startswith("matplotlib."):
            raise ImportError(f"No module named {name!r} (blocked by the test)")
        return None

sys.meta_path.insert(0, NoMatplotlib())
sys.argv[0] = "subpixel_ext"
runpy.run_module("subpixel_ext", run_name="__main__", alter_sys=True)
"""

needs_matplotlib = pytest.mark.skipif(
    importlib.util.find_spec("matplotlib") is None, reason="matplotlib is not installed"
)


@needs_matplotlib
def test_demo_plot_writes_a_png(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "demo.png"
    result = run("demo", "--plot", str(path))
    assert result.returncode == 0, result.stderr
    data = path.read_bytes()
    assert len(data) > len(PNG_SIGNATURE) and data.startswith(PNG_SIGNATURE)
    # IHDR, the first chunk: width and height, big-endian, at bytes 16..24.
    assert data[12:16] == b"IHDR"
    assert (int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")) == (1600, 1000)
    assert result.stderr.strip() == f"figure written to {path}"
    assert result.stdout == run("demo").stdout  # the text demo is unchanged by --plot


@needs_matplotlib
def test_demo_plot_to_an_unwritable_path_exits_2(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "missing" / "demo.png"
    result = run("demo", "--plot", str(path))
    assert result.returncode == 2
    assert f"error: cannot write {path}" in result.stderr and not result.stdout


def test_demo_plot_without_matplotlib_says_how_to_install_it(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "demo.png"
    result = subprocess.run(
        [sys.executable, "-c", WITHOUT_MATPLOTLIB, "demo", "--plot", str(path)],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert result.returncode == 2, result.stderr
    assert "--plot needs matplotlib" in result.stderr and "blocked by the test" in result.stderr
    assert "pip install matplotlib" in result.stderr
    assert not result.stdout and not path.exists()
    # Without --plot the demo does not need matplotlib.
    plain = subprocess.run(
        [sys.executable, "-c", WITHOUT_MATPLOTLIB, "demo"],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert plain.returncode == 0, plain.stderr
    assert plain.stdout == run("demo").stdout


# ----------------------------------------------------------------------------- config, help


def test_config_prints_aligned_key_value_lines() -> None:
    result = run("config")
    assert result.returncode == 0, result.stderr
    out = lines_of(result)
    config = spx.show_config()
    assert [line.split(":")[0] for line in out] == list(config)
    assert f"version: {spx.__version__}" == " ".join(out[0].split())
    columns = {len(line) - len(line.split(":", 1)[1].lstrip()) for line in out if line.split(":", 1)[1].strip()}
    assert len(columns) == 1, out


def run_with_simd(value: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "subpixel_ext", *args], capture_output=True, text=True, timeout=120,
        check=False, env={**os.environ, "SUBPIXEL_EXT_SIMD": value},
    )


@pytest.mark.parametrize("value", ["avx3", "sse2", "AVX 2"])
def test_an_unknown_simd_level_warns_naming_the_accepted_ones(value: str) -> None:
    result = run_with_simd(value, "config")
    assert result.returncode == 0, result.stderr
    assert f"SUBPIXEL_EXT_SIMD={value!r} is not understood and is ignored" in result.stderr
    assert "baseline, avx2, avx512" in result.stderr


@pytest.mark.parametrize("value", ["baseline", "avx2", "AVX2", "Avx512"])
def test_a_known_simd_level_in_any_case_does_not_warn(value: str) -> None:
    probe = run_with_simd(value, "config")
    understood = re.search(r"^simd_request_understood:\s+(\w+)", probe.stdout, re.M)
    if understood and understood.group(1) == "False" and value != value.lower():
        pytest.skip("this build's native side reads SUBPIXEL_EXT_SIMD case-sensitively")
    assert probe.returncode == 0, probe.stderr
    assert "SUBPIXEL_EXT_SIMD" not in probe.stderr, probe.stderr


def test_help_lists_the_commands() -> None:
    result = run("--help")
    assert result.returncode == 0, result.stderr
    listed = {}
    for line in lines_of(result):
        words = line.split(maxsplit=1)
        if len(words) == 2 and words[0] in ("demo", "bench", "config"):
            listed[words[0]] = words[1]
    assert set(listed) == {"demo", "config"}  # the benchmark lives in benchmarks/, not the package
    assert "(default)" in listed["demo"]
    demo_help = run("demo", "--help")
    assert demo_help.returncode == 0
    assert "--size H [W]" in demo_help.stdout and "--kernel K [KW]" in demo_help.stdout
