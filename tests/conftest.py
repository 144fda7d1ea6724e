"""Shared helpers for the subpixel_ext test suite.

* ``rng`` fixture: a seeded ``numpy.random.Generator`` (fresh per test, so tests are
  reproducible and independent of their order).
* ``assert_close(actual, expected, dtype, scale=None)``: dtype/shape check, exact NaN/Inf
  positions, and an error bound that is relative to the magnitude of the reduction that
  produced each element (``scale``, usually the oracle applied to ``|x|, |w|, |b|``).
* ``oracle(ref_fn, *arrays, **kwargs)``: the NumPy oracle evaluated in float64 on the same
  inputs (exact copies of float16/float32 values) plus the matching ``scale`` array.
* ``conv_inputs(...)``: random x / weight / bias for a convolution configuration.
* hypothesis strategies for random valid conv_transpose2d / conv2d configurations.

Hypothesis profiles: "ci" (200 examples per test, no deadline; the default) and "dev"
(30 examples). Select with the environment variable ``HYPOTHESIS_PROFILE``.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Dict, Optional, Tuple

import numpy as np
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

# ----------------------------------------------------------------------------- hypothesis

_COMMON = dict(
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    print_blob=True,
)
settings.register_profile("ci", max_examples=200, **_COMMON)
settings.register_profile("dev", max_examples=30, **_COMMON)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

# ----------------------------------------------------------------------------- tolerances

F32, F64 = np.dtype(np.float32), np.dtype(np.float64)
#: rtol == atol per result dtype, relative to the magnitude of the reduction.
TOLERANCE = {F32: 2e-5, F64: 1e-11}


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20240611)


def assert_close(
    actual: Any,
    expected: Any,
    dtype: Any,
    scale: Any = None,
    *,
    what: str = "",
) -> None:
    """`actual` has dtype `dtype`, `expected`'s shape, NaN/Inf exactly where `expected` has
    them, and |actual - expected| <= tol * (1 + scale) elsewhere.

    `scale` bounds the magnitude of the sum that produced each element (an array
    broadcastable to the shape, or a scalar); by default max(|expected|).
    """
    dtype = np.dtype(dtype)
    assert isinstance(actual, np.ndarray), f"{what}: result is {type(actual).__name__}, not ndarray"
    assert actual.dtype == dtype, f"{what}: dtype {actual.dtype}, expected {dtype}"
    expected = np.asarray(expected)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape}, expected {expected.shape}"
    if actual.size == 0:
        return
    a = actual.astype(np.float64)
    e = expected.astype(np.float64)
    nan_a, nan_e = np.isnan(a), np.isnan(e)
    if not np.array_equal(nan_a, nan_e):
        idx = np.argwhere(nan_a != nan_e)[:5].tolist()
        raise AssertionError(
            f"{what}: NaN positions differ ({int(nan_a.sum())} vs {int(nan_e.sum())}), e.g. at {idx}"
        )
    inf_a, inf_e = np.isinf(a), np.isinf(e)
    if not (np.array_equal(inf_a, inf_e) and np.array_equal(a[inf_e], e[inf_e])):
        idx = np.argwhere((inf_a != inf_e) | (np.isinf(e) & (a != e)))[:5].tolist()
        raise AssertionError(f"{what}: Inf positions/signs differ, e.g. at {idx}")
    finite = np.isfinite(e)
    if scale is None:
        scale = np.max(np.abs(e[finite]), initial=0.0)
    scale = np.broadcast_to(np.asarray(scale, dtype=np.float64), e.shape)
    tol = TOLERANCE[dtype] * (1.0 + scale)
    with np.errstate(invalid="ignore"):
        err = np.where(finite, np.abs(a - e), 0.0)
    bad = err > tol
    if bad.any():
        i = np.unravel_index(int(np.argmax(np.where(bad, err / tol, 0))), e.shape)
        raise AssertionError(
            f"{what}: {int(bad.sum())} of {e.size} elements differ beyond tolerance; worst at "
            f"{tuple(int(v) for v in i)}: actual {a[i]!r}, expected {e[i]!r}, "
            f"err {err[i]:.3g} > tol {tol[i]:.3g}"
        )


def _f64(a: Any) -> Any:
    return None if a is None else np.asarray(a).astype(np.float64)


def _abs64(a: Any) -> Any:
    return None if a is None else np.abs(np.asarray(a).astype(np.float64))


def oracle(
    ref_fn: Callable[..., np.ndarray], *arrays: Any, **kwargs: Any
) -> Tuple[np.ndarray, np.ndarray]:
    """(expected, scale): the oracle on float64 copies of `arrays` and on their absolute
    values (the magnitude of every reduction). Non-array positional args (e.g. an upscale
    factor) must be passed as keywords."""
    with np.errstate(invalid="ignore", over="ignore"):
        expected = ref_fn(*[_f64(a) for a in arrays], **kwargs)
        scale = ref_fn(*[_abs64(a) for a in arrays], **kwargs)
    scale = np.where(np.isfinite(scale), scale, 0.0)
    return expected, scale


def check_against_oracle(
    native_fn: Callable[..., np.ndarray],
    ref_fn: Callable[..., np.ndarray],
    arrays: Tuple[Any, ...],
    dtype: Any,
    native_kwargs: Optional[Dict[str, Any]] = None,
    what: str = "",
    **kwargs: Any,
) -> np.ndarray:
    """Run native_fn(*arrays, **kwargs, **native_kwargs) and compare with the oracle."""
    y = native_fn(*arrays, **kwargs, **(native_kwargs or {}))
    expected, scale = oracle(ref_fn, *arrays, **kwargs)
    assert_close(y, expected, dtype, scale, what=what or repr(kwargs))
    return y


# ----------------------------------------------------------------------------- inputs


def random_array(
    rng: np.random.Generator, shape: Tuple[int, ...], dtype: Any = np.float64
) -> np.ndarray:
    """Uniform values in [-1, 1) of `dtype`."""
    a = rng.uniform(-1.0, 1.0, size=shape)
    return a.astype(dtype)


def conv_inputs(
    rng: np.random.Generator,
    *,
    n: Optional[int],
    c_in: int,
    c_out: int,
    hw: Tuple[int, int],
    kernel: Tuple[int, int],
    groups: int = 1,
    transposed: bool,
    layout: str = "NCHW",
    dtype: Any = np.float64,
    bias: bool = True,
) -> Tuple[np.ndarray, np.ndarray, Optional[np.ndarray]]:
    """x, weight, bias for a (transposed) convolution; n=None gives an unbatched x.

    weight is (C_in, C_out/groups, kH, kW) when transposed, else (C_out, C_in/groups, kH, kW).
    """
    h, w = hw
    spatial = (c_in, h, w) if layout == "NCHW" else (h, w, c_in)
    x = random_array(rng, spatial if n is None else (n,) + spatial, dtype)
    if transposed:
        wshape = (c_in, c_out // groups) + tuple(kernel)
    else:
        wshape = (c_out, c_in // groups) + tuple(kernel)
    wt = random_array(rng, wshape, dtype)
    b = random_array(rng, (c_out,), dtype) if bias else None
    return x, wt, b


def transposed_out_len(size: int, k: int, s: int, d: int, top: int, bottom: int, op: int = 0) -> int:
    """Output length of a transposed convolution along one axis, from the definition."""
    return (size - 1) * s + d * (k - 1) + 1 - top - bottom + op


def conv_out_len(size: int, k: int, s: int, d: int, top: int, bottom: int) -> int:
    return (size + top + bottom - d * (k - 1) - 1) // s + 1


def to_layout(shape_nchw: Tuple[int, ...], layout: str, batched: bool = True) -> Tuple[int, ...]:
    n, c, h, w = shape_nchw
    dims = (c, h, w) if layout == "NCHW" else (h, w, c)
    return ((n,) + dims) if batched else dims


# ----------------------------------------------------------------------------- strategies


@st.composite
def padding_strategy(
    draw: st.DrawFn, full: Tuple[int, int], allow_words: bool = True
) -> Any:
    """A padding argument in one of its forms, cropping at most full-1 per axis in total."""
    forms = ["int", "pair", "nested"] + (["same", "valid"] if allow_words else [])
    form = draw(st.sampled_from(forms))
    if form in ("same", "valid"):
        return form
    if form == "int":
        p = draw(st.integers(0, max(0, (min(full) - 1) // 2)))
        return p
    if form == "pair":
        return (
            draw(st.integers(0, max(0, (full[0] - 1) // 2))),
            draw(st.integers(0, max(0, (full[1] - 1) // 2))),
        )
    pads = []
    for axis in range(2):
        top = draw(st.integers(0, full[axis] - 1))
        bottom = draw(st.integers(0, full[axis] - 1 - top))
        pads.append((top, bottom))
    return (pads[0], pads[1])


def resolve_padding(padding: Any) -> Tuple[Tuple[int, int], Tuple[int, int]]:
    """Explicit padding forms -> ((top, bottom), (left, right))."""
    if isinstance(padding, (int, np.integer)):
        return ((int(padding),) * 2, (int(padding),) * 2)
    a, b = padding
    if isinstance(a, (tuple, list)):
        return (tuple(a), tuple(b))  # type: ignore[return-value]
    return ((a, a), (b, b))


@st.composite
def conv_transpose_configs(draw: st.DrawFn, max_stride: int = 4) -> Dict[str, Any]:
    """A random valid conv_transpose2d call: shapes, geometry and call options."""
    groups = draw(st.integers(1, 3))
    c_in = groups * draw(st.integers(1, 3))
    c_out = groups * draw(st.integers(1, 3))
    h, w = draw(st.integers(1, 7)), draw(st.integers(1, 7))
    kh, kw = draw(st.integers(1, 7)), draw(st.integers(1, 7))
    sh, sw = draw(st.integers(1, max_stride)), draw(st.integers(1, max_stride))
    dh, dw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    full = ((h - 1) * sh + dh * (kh - 1) + 1, (w - 1) * sw + dw * (kw - 1) + 1)
    padding = draw(padding_strategy(full))
    kwargs: Dict[str, Any] = dict(
        stride=(sh, sw), padding=padding, groups=groups, dilation=(dh, dw)
    )
    if padding != "same":
        pads = ((0, 0), (0, 0)) if padding == "valid" else resolve_padding(padding)
        smallest = [full[i] - pads[i][0] - pads[i][1] for i in range(2)]
        extra = draw(st.sampled_from(["none", "output_padding", "output_size"]))
        if extra == "output_padding":
            kwargs["output_padding"] = (
                draw(st.integers(0, max(sh, dh) - 1)),
                draw(st.integers(0, max(sw, dw) - 1)),
            )
        elif extra == "output_size":
            kwargs["output_size"] = (
                draw(st.integers(smallest[0], smallest[0] + sh - 1)),
                draw(st.integers(smallest[1], smallest[1] + sw - 1)),
            )
    return dict(
        n=draw(st.sampled_from([None, 0, 1, 2])),
        c_in=c_in,
        c_out=c_out,
        hw=(h, w),
        kernel=(kh, kw),
        groups=groups,
        layout=draw(st.sampled_from(["NCHW", "NHWC"])),
        dtype=draw(st.sampled_from([F32, F64])),
        bias=draw(st.booleans()),
        kwargs=kwargs,
    )


@st.composite
def conv2d_configs(draw: st.DrawFn, max_stride: int = 3) -> Dict[str, Any]:
    """A random valid conv2d call (the padded input always holds the dilated kernel)."""
    groups = draw(st.integers(1, 3))
    c_in = groups * draw(st.integers(1, 3))
    c_out = groups * draw(st.integers(1, 3))
    kh, kw = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    sh, sw = draw(st.integers(1, max_stride)), draw(st.integers(1, max_stride))
    dh, dw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    keh, kew = dh * (kh - 1) + 1, dw * (kw - 1) + 1
    padding = draw(
        st.one_of(
            st.sampled_from(["same", "valid"]),
            st.integers(0, 3),
            st.tuples(st.integers(0, 3), st.integers(0, 3)),
            st.tuples(
                st.tuples(st.integers(0, 4), st.integers(0, 4)),
                st.tuples(st.integers(0, 4), st.integers(0, 4)),
            ),
        )
    )
    if padding == "same":
        lo = (1, 1)
    else:
        pads = ((0, 0), (0, 0)) if padding == "valid" else resolve_padding(padding)
        lo = (max(1, keh - sum(pads[0])), max(1, kew - sum(pads[1])))
    h = draw(st.integers(lo[0], lo[0] + 8))
    w = draw(st.integers(lo[1], lo[1] + 8))
    return dict(
        n=draw(st.sampled_from([None, 0, 1, 2])),
        c_in=c_in,
        c_out=c_out,
        hw=(h, w),
        kernel=(kh, kw),
        groups=groups,
        layout=draw(st.sampled_from(["NCHW", "NHWC"])),
        dtype=draw(st.sampled_from([F32, F64])),
        bias=draw(st.booleans()),
        kwargs=dict(stride=(sh, sw), padding=padding, dilation=(dh, dw), groups=groups),
    )


def inputs_for(rng: np.random.Generator, cfg: Dict[str, Any], transposed: bool) -> Tuple[Any, ...]:
    return conv_inputs(
        rng,
        n=cfg["n"],
        c_in=cfg["c_in"],
        c_out=cfg["c_out"],
        hw=cfg["hw"],
        kernel=cfg["kernel"],
        groups=cfg["groups"],
        transposed=transposed,
        layout=cfg["layout"],
        dtype=cfg["dtype"],
        bias=cfg["bias"],
    )


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


__all__ = [
    "F32",
    "F64",
    "TOLERANCE",
    "assert_close",
    "ceil_div",
    "check_against_oracle",
    "conv2d_configs",
    "conv_inputs",
    "conv_out_len",
    "conv_transpose_configs",
    "inputs_for",
    "oracle",
    "random_array",
    "resolve_padding",
    "to_layout",
    "transposed_out_len",
]
