"""Shared, importable helpers of the subpixel_ext test suite (no fixtures: see conftest.py).

* ``assert_close(actual, expected, dtype, scale=None)``: dtype/shape check, exact NaN/Inf
  positions, and an error bound relative to the magnitude of the reduction that produced each
  element (``scale``, usually the oracle applied to ``|x|, |w|, |b|``).
* ``oracle(ref_fn, *arrays, **kwargs)``: the NumPy oracle evaluated in float64 on the same
  inputs (exact copies of float16/float32 values) plus the matching ``scale`` array.
* ``conv_inputs(...)`` (2-D) / ``nd_conv_inputs(...)`` (any rank): random x / weight / bias.
* ``layer_and_functional(kind, rank, ...)``: a layer and the functional call it equals.
* ``bits``, ``run_child``, ``under_asan``, ``parallel_problems``: process-level test tools.

Importable from test modules and from child interpreters (``PYTHONPATH=tests``) alike: it
imports neither pytest nor hypothesis.
"""

from __future__ import annotations

import subprocess
import sys
from typing import Any, Callable, Dict, Optional, Sequence, Tuple

import numpy as np

# ----------------------------------------------------------------------------- tolerances

F32, F64 = np.dtype(np.float32), np.dtype(np.float64)
#: rtol == atol per result dtype, relative to the magnitude of the reduction.
TOLERANCE = {F32: 2e-5, F64: 1e-11}


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


def resolve_padding(padding: Any) -> Tuple[Tuple[int, int], Tuple[int, int]]:
    """Explicit padding forms -> ((top, bottom), (left, right))."""
    if isinstance(padding, (int, np.integer)):
        return ((int(padding),) * 2, (int(padding),) * 2)
    a, b = padding
    if isinstance(a, (tuple, list)):
        return (tuple(a), tuple(b))  # type: ignore[return-value]
    return ((a, a), (b, b))


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



# ----------------------------------------------------------------------------- any rank

#: channels-first / channels-last layout names per rank.
LAYOUTS = {1: ("NCL", "NLC"), 2: ("NCHW", "NHWC"), 3: ("NCDHW", "NDHWC")}


def nd_conv_inputs(
    rng: np.random.Generator,
    *,
    n: Optional[int],
    c_in: int,
    c_out: int,
    spatial: Sequence[int],
    kernel: Sequence[int],
    groups: int = 1,
    kind: str = "conv_transpose",
    factor: Sequence[int] = (),
    channels_last: bool = False,
    dtype: Any = np.float64,
    bias: bool = True,
) -> Tuple[np.ndarray, np.ndarray, Optional[np.ndarray]]:
    """x, weight, bias of any rank; n=None gives an unbatched x.

    kind "conv_transpose": weight (C_in, C_out/groups, *k), bias (C_out,); "conv": weight
    (C_out, C_in/groups, *k); "subpixel": like conv with C_out*prod(factor) conv channels.
    """
    spatial, kernel = tuple(spatial), tuple(kernel)
    xs = spatial + (c_in,) if channels_last else (c_in,) + spatial
    x = random_array(rng, xs if n is None else (n,) + xs, dtype)
    conv_channels = c_out * int(np.prod(factor)) if kind == "subpixel" else c_out
    if kind == "conv_transpose":
        wshape = (c_in, c_out // groups) + kernel
    else:
        wshape = (conv_channels, c_in // groups) + kernel
    b = random_array(rng, (conv_channels,), dtype) if bias else None
    return x, random_array(rng, wshape, dtype), b


def torch_activation(y: np.ndarray, activation: Optional[str], negative_slope: float = 0.01) -> np.ndarray:
    """PyTorch's definition of each fused activation, in float64 (independent of the oracle's)."""
    y = np.asarray(y, dtype=np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        if activation is None:
            return y
        if activation == "relu":
            return np.where(np.isnan(y), y, np.where(y > 0, y, 0.0))
        if activation == "relu6":
            return np.where(np.isnan(y), y, np.minimum(np.where(y > 0, y, 0.0), 6.0))
        if activation == "leaky_relu":
            return np.where(y >= 0, y, negative_slope * y)
        if activation == "tanh":
            return np.tanh(y)
        if activation == "sigmoid":
            return 0.5 * (1.0 + np.tanh(0.5 * y))
    raise ValueError(activation)


# ----------------------------------------------------------------------------- processes


def bits(a: np.ndarray) -> np.ndarray:
    """The raw bits of an array, as unsigned integers of its element size (so that NaN payloads
    and signed zeros count); elements of more than 8 bytes as several."""
    return a.view({1: np.uint8, 2: np.uint16, 4: np.uint32}.get(a.dtype.itemsize, np.uint64))


def run_child(code: str, timeout: float = 120.0) -> subprocess.CompletedProcess:
    """Run `code` in a fresh interpreter (the same one, so also under tools/sanitize.sh)."""
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout)


def under_asan() -> bool:
    try:
        with open("/proc/self/maps") as f:
            return "libasan" in f.read()
    except OSError:
        return False


def parallel_problems(dtype: Any, seed: int = 0) -> Dict[str, Callable[..., np.ndarray]]:
    """name -> f(num_threads) for every native op on inputs that go parallel (>= 2**16
    multiply-adds / elements)."""
    import subpixel_ext as spx

    rng = np.random.default_rng(seed)
    x = random_array(rng, (2, 6, 20, 24), dtype)
    x_nhwc = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    wt = random_array(rng, (6, 4, 4, 3), dtype)  # transposed: (C_in, C_out/g, kh, kw)
    wt_g = random_array(rng, (6, 2, 3, 3), dtype)  # transposed, groups=2 -> C_out 4
    wc = random_array(rng, (8, 6, 3, 3), dtype)  # conv: (C_out, C_in/g, kh, kw)
    ws = random_array(rng, (12, 3, 3, 2), dtype)  # sub-pixel, groups 2: 3 channels x 2*2
    b4, b8, b12 = random_array(rng, (4,), dtype), random_array(rng, (8,), dtype), random_array(rng, (12,), dtype)
    big = random_array(rng, (2, 16, 48, 48), dtype)
    x1 = random_array(rng, (2, 16, 300), dtype)  # 1-D
    w1 = random_array(rng, (16, 8, 5), dtype)
    x3 = random_array(rng, (1, 4, 6, 7, 8), dtype)  # 3-D
    w3 = random_array(rng, (4, 6, 3, 3, 3), dtype)
    return {
        "convT_direct": lambda t: spx.conv_transpose2d(x, wt, b4, stride=2, padding=1, method="direct", num_threads=t),
        "convT_polyphase": lambda t: spx.conv_transpose2d(
            x, wt, b4, stride=(2, 3), padding=((1, 0), (2, 1)), output_padding=1, method="polyphase", num_threads=t
        ),
        "convT_groups_dilation": lambda t: spx.conv_transpose2d(
            x, wt_g, None, stride=2, dilation=2, groups=2, num_threads=t
        ),
        "convT_nhwc": lambda t: spx.conv_transpose2d(x_nhwc, wt, b4, stride=2, layout="NHWC", num_threads=t),
        "conv2d": lambda t: spx.conv2d(x, wc, b8, stride=1, padding="same", num_threads=t),
        "conv2d_nhwc_strided": lambda t: spx.conv2d(
            x_nhwc, wc, b8, stride=2, padding=1, dilation=(1, 2), layout="NHWC", num_threads=t
        ),
        "subpixel": lambda t: spx.subpixel_conv2d(x, ws, 2, b12, padding=(1, 0), groups=2, num_threads=t),
        "subpixel_nhwc_dcr": lambda t: spx.subpixel_conv2d(
            x_nhwc, ws, 2, b12, padding=1, groups=2, layout="NHWC", mode="DCR", num_threads=t
        ),
        "convT1d": lambda t: spx.conv_transpose1d(x1, w1, None, stride=3, padding=2, num_threads=t),
        "conv1d": lambda t: spx.conv1d(x1, np.ascontiguousarray(w1.transpose(1, 0, 2)), padding="same", num_threads=t),
        "convT3d": lambda t: spx.conv_transpose3d(x3, w3, None, stride=2, padding=1, num_threads=t),
        "conv3d": lambda t: spx.conv3d(x3, np.ascontiguousarray(w3.transpose(1, 0, 2, 3, 4)), padding=1, num_threads=t),
        "pixel_shuffle": lambda t: spx.pixel_shuffle(big, 2, num_threads=t),
        "pixel_shuffle_nhwc_dcr": lambda t: spx.pixel_shuffle(big, (4, 2), layout="NHWC", mode="DCR", num_threads=t),
        "pixel_unshuffle": lambda t: spx.pixel_unshuffle(big, (2, 3), num_threads=t),
        "zero_insert": lambda t: spx.zero_insert(big, (2, 3), num_threads=t),
    }


# ----------------------------------------------------------------------------- layers

def layer_and_functional(kind: str, rank: int, dtype: Any = np.float32, channels_last: bool = False, **extra: Any):
    """(layer, functional(x, **call_kw), weight, bias) for a non-trivial configuration of a
    layer class and its functional twin."""
    import subpixel_ext as spx
    rng = np.random.default_rng(rank * 10 + len(kind))
    layout = LAYOUTS[rank][channels_last]
    if kind == "conv_transpose":
        w, b = random_array(rng, (4, 3) + (3,) * rank, dtype), random_array(rng, (6,), dtype)
        kw: Dict[str, Any] = dict(stride=2, padding=1, groups=2, layout=layout, **extra)
        return (spx.__dict__[f"ConvTranspose{rank}d"](w, b, **kw),
                lambda x, **c: spx.__dict__[f"conv_transpose{rank}d"](x, w, b, **kw, **c), w, b)
    if kind == "conv":
        w, b = random_array(rng, (6, 2) + (3,) * rank, dtype), random_array(rng, (6,), dtype)
        kw = dict(stride=2, padding="same", groups=2, layout=layout, **extra)
        return (spx.__dict__[f"Conv{rank}d"](w, b, **kw),
                lambda x, **c: spx.__dict__[f"conv{rank}d"](x, w, b, **kw, **c), w, b)
    w, b = random_array(rng, (2 ** rank * 2, 4) + (3,) * rank, dtype), random_array(rng, (2 ** rank * 2,), dtype)
    kw = dict(padding=1, layout=layout, mode="DCR", **extra)
    return (spx.__dict__[f"SubPixelConv{rank}d"](w, 2, b, **kw),
            lambda x, **c: spx.__dict__[f"subpixel_conv{rank}d"](x, w, 2, b, **kw, **c), w, b)


__all__ = [
    "F32", "F64", "LAYOUTS", "TOLERANCE", "assert_close", "bits", "ceil_div", "check_against_oracle",
    "conv_inputs", "conv_out_len", "inputs_for", "layer_and_functional", "nd_conv_inputs", "oracle", "parallel_problems",
    "random_array", "resolve_padding", "run_child", "to_layout", "torch_activation", "transposed_out_len",
    "under_asan",
]
