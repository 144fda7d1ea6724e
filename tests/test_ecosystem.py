"""The package among its neighbours: threadpoolctl's view of the OpenMP runtime, and the array
types the functions accept (lists, tuples, ``__array__`` and ``__dlpack__`` objects, torch tensors).

threadpoolctl and torch are optional: their tests skip cleanly when they are not installed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np
import pytest

import subpixel_ext as spx
from subpixel_ext import _core

from _helpers import random_array

# ----------------------------------------------------------------------------- threadpoolctl

# A polyphase conv_transpose2d of 2*8*20*24*6*16 = 737,280 multiply-adds: far above the size
# below which the native code stays single-threaded, so the thread count matters.
THREADPOOLCTL_SCRIPT = textwrap.dedent(
    """
    import json
    import numpy as np
    import subpixel_ext as spx
    from threadpoolctl import threadpool_info, threadpool_limits

    rng = np.random.default_rng(7)
    x = rng.uniform(-1, 1, (2, 8, 20, 24)).astype(np.float32)
    w = rng.uniform(-1, 1, (8, 6, 4, 4)).astype(np.float32)

    def call():
        return spx.conv_transpose2d(x, w, stride=2, padding=1)

    before = spx.get_num_threads()
    reference = call()
    with threadpool_limits(1, user_api="openmp"):
        limited = spx.get_num_threads()
        same_bits = call().tobytes() == reference.tobytes()
    after = spx.get_num_threads()
    # Once set_num_threads(n) was called, n is the default and OpenMP's (hence threadpoolctl's)
    # setting is no longer consulted.
    spx.set_num_threads(2)
    with threadpool_limits(1, user_api="openmp"):
        overridden = spx.get_num_threads()
    print(json.dumps(dict(
        openmp=[m["filepath"] for m in threadpool_info() if m["user_api"] == "openmp"],
        before=before, limited=limited, same_bits=same_bits, after=after, overridden=overridden,
    )))
    """
)


def _linked_libraries(path: str) -> List[str]:
    """Real paths of the shared libraries `path` links, as the loader resolves them (ldd)."""
    ldd = shutil.which("ldd")
    if ldd is None:
        pytest.skip("ldd not found")
    out = subprocess.run([ldd, path], capture_output=True, text=True, timeout=60, check=True).stdout
    return [
        os.path.realpath(line.split("=>", 1)[1].split("(", 1)[0].strip())
        for line in out.splitlines()
        if "=>" in line and line.split("=>", 1)[1].strip().startswith("/")
    ]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="ldd and /proc are Linux's")
def test_threadpoolctl_sees_and_limits_our_openmp_runtime() -> None:
    """threadpoolctl lists the OpenMP runtime the extension links and limits it.

    Semantics: without set_num_threads() a call uses OpenMP's default thread count, which
    threadpool_limits(..., user_api="openmp") lowers; once set_num_threads(n) has been called in
    the process, n wins over OpenMP's setting and the limit has no effect on this package. Other
    tests in this session call set_num_threads, so the check runs in a fresh interpreter, with
    OMP_NUM_THREADS=3 so that the default is known and differs from the limit.
    """
    pytest.importorskip("threadpoolctl")
    if not spx.show_config()["openmp"]:
        pytest.skip("built without OpenMP")
    env = dict(os.environ, OMP_NUM_THREADS="3")
    result = subprocess.run(
        [sys.executable, "-c", THREADPOOLCTL_SCRIPT],
        capture_output=True, text=True, timeout=120, check=False, env=env,
    )
    assert result.returncode == 0, result.stderr
    report: Dict[str, Any] = json.loads(result.stdout.splitlines()[-1])

    openmp = {os.path.realpath(path) for path in report["openmp"]}
    linked = set(_linked_libraries(_core.__file__))
    assert openmp & linked, f"threadpoolctl's OpenMP runtimes {openmp} are not among {linked}"
    assert report["before"] == 3
    assert report["limited"] == 1
    assert report["same_bits"]
    assert report["after"] == 3
    assert report["overridden"] == 2


# ----------------------------------------------------------------------------- input types


class ArrayLike:
    """Exposes its data only through ``__array__``."""

    def __init__(self, data: np.ndarray) -> None:
        self._data = data

    def __array__(self, dtype: Any = None, copy: Optional[bool] = None) -> np.ndarray:
        return self._data if dtype is None else self._data.astype(dtype)


class DLPackOnly:
    """Exposes its data only through the DLPack protocol."""

    def __init__(self, data: np.ndarray) -> None:
        self._data = data

    def __dlpack__(self, **kwargs: Any) -> Any:
        return self._data.__dlpack__(**kwargs)

    def __dlpack_device__(self) -> Tuple[int, int]:
        return self._data.__dlpack_device__()


def _nested_tuples(a: np.ndarray) -> Any:
    return tuple(_nested_tuples(row) for row in a) if a.ndim else a.item()


CONVERSIONS: Dict[str, Callable[[np.ndarray], Any]] = {
    "list": lambda a: a.tolist(),
    "tuple": _nested_tuples,
    "__array__": ArrayLike,
}

# name -> (function of the converted arguments, shapes of the array arguments)
OPERATIONS: Dict[str, Tuple[Callable[..., Any], Tuple[Tuple[int, ...], ...]]] = {
    "conv_transpose2d": (
        lambda x, w, b: spx.conv_transpose2d(x, w, b, stride=2, padding=1), ((1, 3, 4, 5), (3, 2, 4, 4), (2,))
    ),
    "conv2d": (lambda x, w, b: spx.conv2d(x, w, b, padding="same"), ((2, 3, 5, 4), (4, 3, 3, 3), (4,))),
    "subpixel_conv2d": (lambda x, w: spx.subpixel_conv2d(x, w, 2, padding=1), ((1, 2, 4, 4), (8, 2, 3, 3))),
    "pixel_shuffle": (lambda x: spx.pixel_shuffle(x, 2), ((2, 8, 3, 3),)),
    "pixel_unshuffle": (lambda x: spx.pixel_unshuffle(x, 2), ((2, 2, 4, 6),)),
    "zero_insert": (lambda x: spx.zero_insert(x, 3), ((2, 3, 4),)),
    "split_kernel": (lambda k: spx.split_kernel(k, 2), ((3, 5, 5),)),
    "polyphase_weight": (lambda w: spx.polyphase_weight(w, 2, padding=1).weight, ((3, 2, 4, 4),)),
    "deconv_weight": (lambda w: spx.deconv_weight(w, 2, padding=1).weight, ((8, 3, 3, 3),)),
}


@pytest.mark.parametrize("conversion", list(CONVERSIONS))
@pytest.mark.parametrize("operation", list(OPERATIONS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_array_likes_give_the_ndarray_result(
    operation: str, conversion: str, dtype: Any, rng: np.random.Generator
) -> None:
    fn, shapes = OPERATIONS[operation]
    arrays = [random_array(rng, shape, dtype) for shape in shapes]
    actual = fn(*[CONVERSIONS[conversion](a) for a in arrays])
    # Python floats are float64: lists and tuples of float32 values compute in float64.
    if conversion in ("list", "tuple"):
        arrays = [a.astype(np.float64) for a in arrays]
    expected = fn(*arrays)
    assert isinstance(actual, np.ndarray)
    assert actual.dtype == expected.dtype
    np.testing.assert_array_equal(actual, expected)


def test_mixed_input_kinds(rng: np.random.Generator) -> None:
    x, w = random_array(rng, (1, 2, 3, 3)), random_array(rng, (2, 3, 2, 2))
    expected = spx.conv_transpose2d(x, w, [0.5, -1.0, 2.0], stride=2)
    np.testing.assert_array_equal(spx.conv_transpose2d(x.tolist(), ArrayLike(w), (0.5, -1.0, 2.0), 2), expected)


def test_dlpack_only_objects(rng: np.random.Generator) -> None:
    for operation, (fn, shapes) in OPERATIONS.items():
        arrays = [random_array(rng, shape, np.float32) for shape in shapes]
        actual = fn(*[DLPackOnly(a) for a in arrays])
        assert isinstance(actual, np.ndarray), operation
        np.testing.assert_array_equal(actual, fn(*arrays), err_msg=operation)


# ----------------------------------------------------------------------------- torch

TORCH_TOLERANCE = {np.float64: 1e-10, np.float32: 1e-4}


# (our function, torch.nn.functional's name, shapes of the array arguments (None: no bias), kwargs)
TORCH_CASES = [
    pytest.param(spx.conv_transpose2d, "conv_transpose2d", ((2, 4, 5, 6), (4, 3, 3, 3), (3,)),
                 dict(stride=2, padding=1, output_padding=1), id="conv_transpose2d"),
    pytest.param(spx.conv_transpose2d, "conv_transpose2d", ((4, 5, 6), (4, 2, 4, 3), (4,)),
                 dict(stride=(3, 2), padding=(1, 0), groups=2, dilation=(1, 2)),
                 id="conv_transpose2d-unbatched-groups-dilation"),
    pytest.param(spx.conv2d, "conv2d", ((2, 4, 7, 6), (6, 4, 3, 3), (6,)),
                 dict(stride=2, padding=1), id="conv2d"),
    pytest.param(spx.conv2d, "conv2d", ((4, 7, 6), (4, 2, 3, 2), None),
                 dict(padding=(2, 1), dilation=2, groups=2), id="conv2d-unbatched-groups-dilation"),
    pytest.param(spx.pixel_shuffle, "pixel_shuffle", ((2, 12, 3, 4),), dict(upscale_factor=2),
                 id="pixel_shuffle"),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("fn, torch_name, shapes, kwargs", TORCH_CASES)
def test_torch_tensors_match_torch_nn_functional(
    fn: Callable[..., Any],
    torch_name: str,
    shapes: Tuple[Optional[Tuple[int, ...]], ...],
    kwargs: Dict[str, Any],
    dtype: Any,
    rng: np.random.Generator,
) -> None:
    torch = pytest.importorskip("torch")
    x_shape = shapes[0]
    assert x_shape is not None
    # The input as a non-contiguous (transposed) view: its strides must be honoured.
    x = torch.from_numpy(random_array(rng, x_shape[:-2] + x_shape[:-3:-1], dtype)).transpose(-1, -2)
    assert x.shape == x_shape and not x.is_contiguous()
    tensors = [x] + [None if s is None else torch.from_numpy(random_array(rng, s, dtype)) for s in shapes[1:]]
    ours = fn(*tensors, **kwargs)
    theirs = getattr(torch.nn.functional, torch_name)(*tensors, **kwargs).numpy()
    assert isinstance(ours, np.ndarray)
    assert ours.dtype == dtype and ours.shape == theirs.shape
    tolerance = TORCH_TOLERANCE[dtype]
    np.testing.assert_allclose(ours, theirs, rtol=tolerance, atol=tolerance)
