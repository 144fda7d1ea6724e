"""float16 / bfloat16 checks shared by test_half.py and its per-SIMD-level child interpreters.

The contract: inputs, weights and bias stored in half precision, products accumulated in
float32, one round-to-nearest-even per output. The oracle is ``subpixel_ext.reference`` on the
same half-precision arrays (it computes in float32 and rounds once at the end); the native
result may differ from it by one half-precision ulp (the two float32 sums round differently
at a tie boundary) plus float32 accumulation error where the sum cancels.

Imports neither pytest nor hypothesis (child interpreters import it with PYTHONPATH=tests).
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

import numpy as np

import subpixel_ext as spx
from _helpers import LAYOUTS, nd_conv_inputs
from subpixel_ext import reference as ref

try:
    import ml_dtypes

    BF16: Optional[np.dtype] = np.dtype(ml_dtypes.bfloat16)
except ImportError:  # the [bfloat16] extra is optional
    BF16 = None
F16 = np.dtype(np.float16)
HALF_DTYPES: List[np.dtype] = [F16] + ([BF16] if BF16 is not None else [])

# (explicit mantissa bits, minimum normal exponent) per format
_FORMAT = {"float16": (10, -14), "bfloat16": (7, -126)}
_EPS32 = float(np.finfo(np.float32).eps)


def half_ulp(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """The spacing of `dtype` at each of `values` (float64), subnormals included."""
    mantissa, emin = _FORMAT[np.dtype(dtype).name]
    v = np.abs(np.asarray(values, dtype=np.float64))
    _, e = np.frexp(v)  # v = m * 2**e with m in [0.5, 1): the exponent of v's leading bit is e - 1
    exponent = np.where(v > 0, np.maximum(e - 1, emin), emin)
    return np.ldexp(1.0, (exponent - mantissa).astype(np.int64))


def assert_half_close(actual: Any, expected: np.ndarray, scale: Any, dtype: np.dtype, what: str = "") -> None:
    """`actual` of `dtype`, NaN and signed Inf exactly where `expected` (the oracle, same
    dtype) has them, elsewhere within one ulp of it plus float32 cancellation error
    (8 eps32 * (1 + scale), `scale` the reduction's magnitude)."""
    assert isinstance(actual, np.ndarray) and actual.dtype == dtype, f"{what}: {type(actual)} {getattr(actual, 'dtype', '')}"
    assert expected.dtype == dtype and actual.shape == expected.shape, f"{what}: {expected.dtype} {actual.shape} {expected.shape}"
    a, e = actual.astype(np.float64), expected.astype(np.float64)
    assert np.array_equal(np.isnan(a), np.isnan(e)), f"{what}: NaN positions differ"
    inf = np.isinf(e)
    assert np.array_equal(np.isinf(a), inf) and np.array_equal(a[inf], e[inf]), f"{what}: Inf positions/signs differ"
    finite = np.isfinite(e)
    tol = half_ulp(e, dtype) + 8 * _EPS32 * (1.0 + np.broadcast_to(np.asarray(scale, np.float64), e.shape))
    err = np.where(finite, np.abs(np.where(finite, a, 0.0) - np.where(finite, e, 0.0)), 0.0)
    bad = err > tol
    if bad.any():
        i = np.unravel_index(int(np.argmax(np.where(bad, err / tol, 0))), e.shape)
        raise AssertionError(f"{what}: {int(bad.sum())} of {e.size} beyond one ulp; at {i}: {a[i]!r} vs {e[i]!r}")


def half_oracle(ref_fn: Callable[..., np.ndarray], *arrays: Any, **kwargs: Any) -> Tuple[np.ndarray, np.ndarray]:
    """(expected in the half dtype, scale): the reference on the arrays themselves and, in
    float64, on their absolute values."""
    with np.errstate(invalid="ignore", over="ignore"):
        expected = ref_fn(*arrays, **kwargs)
        scale = ref_fn(*[None if a is None else np.abs(a.astype(np.float64)) for a in arrays], **kwargs)
    return expected, np.where(np.isfinite(scale), scale, 0.0)


NAMES = {"conv_transpose": ("conv_transpose", "ConvTranspose"), "conv": ("conv", "Conv"),
         "subpixel": ("subpixel_conv", "SubPixelConv")}
ACTIVATIONS = [None, "relu", "relu6", "leaky_relu", "tanh", "sigmoid"]


def cases(dtype: np.dtype) -> Iterator[Dict[str, Any]]:
    """Every op (both transposed methods), rank, layout: odd sizes, groups, dilation,
    asymmetric padding, kernel < stride, engine-sized and scatter-sized problems."""
    i = 0
    for rank in (1, 2, 3):
        for kind, methods in (("conv_transpose", ("direct", "polyphase")), ("conv", (None,)), ("subpixel", (None,))):
            for last in (False, True):
                for big in (False, True):
                    i += 1
                    spatial = {1: (37 if big else 3,), 2: (9, 13) if big else (2, 3), 3: (4, 5, 6) if big else (1, 2, 3)}[rank]
                    groups = 2 if i % 3 == 0 else 1
                    c_in, c_out = (6, 10) if big else (2, 2)
                    kernel = tuple(1 + (i + a) % 3 for a in range(rank))
                    kw: Dict[str, Any] = {"layout": LAYOUTS[rank][last], "groups": groups,
                                          "activation": ACTIVATIONS[i % 6], "negative_slope": 0.125}
                    factor: Tuple[int, ...] = ()
                    if kind == "conv_transpose":
                        kw["stride"] = tuple(1 + (i + a) % 4 for a in range(rank))  # kernel < stride on some axes
                        kw["padding"] = tuple((a % 2, (i + a) % 2) for a in range(rank)) if big else 0
                        kw["dilation"] = tuple(1 + (a + i) % 2 for a in range(rank))
                    elif kind == "conv":
                        kw["padding"] = "same" if i % 2 else tuple((1, 0) for _ in range(rank))
                        kw["dilation"] = tuple(1 + a % 2 for a in range(rank))
                    else:
                        factor = tuple(1 + (a + i) % 2 for a in range(rank))
                        kw["padding"] = 1
                        kw["mode"] = ("CRD", "DCR")[i % 2]
                        kw.pop("groups")
                        groups = 1
                    rng = np.random.default_rng(i)
                    x, w, b = nd_conv_inputs(rng, n=1 + i % 2, c_in=c_in, c_out=c_out, spatial=spatial, kernel=kernel,
                                             groups=groups, kind=kind, factor=factor, channels_last=last, dtype=dtype)
                    for method in methods:
                        yield {"kind": kind, "rank": rank, "x": x, "w": w, "b": b, "kw": dict(kw),
                               "factor": factor, "method": method}


def run_case(case: Dict[str, Any], threads: int) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(native result, oracle, scale) of one case."""
    kind, rank, x, w, b, kw = case["kind"], case["rank"], case["x"], case["w"], case["b"], case["kw"]
    fname = NAMES[kind][0] + f"{rank}d"
    fn, ref_fn = getattr(spx, fname), getattr(ref, fname)
    extra = {} if case["method"] is None else {"method": case["method"]}
    if kind == "subpixel":
        r = case["factor"]
        y = fn(x, w, r, b, **kw, num_threads=threads)
        expected, scale = half_oracle(lambda x_, w_, b_: ref_fn(x_, w_, r, b_, **kw), x, w, b)
    else:
        y = fn(x, w, b, **kw, **extra, num_threads=threads)
        expected, scale = half_oracle(lambda x_, w_, b_: ref_fn(x_, w_, b_, **kw), x, w, b)
    return y, expected, scale


def run_layer(case: Dict[str, Any], threads: int, out: np.ndarray) -> np.ndarray:
    """The same case through its layer class, into `out`."""
    kind, rank, x, w, b, kw = case["kind"], case["rank"], case["x"], case["w"], case["b"], case["kw"]
    cls = getattr(spx, NAMES[kind][1] + f"{rank}d")
    extra = {} if case["method"] is None else {"method": case["method"]}
    layer = cls(w, case["factor"], b, **kw) if kind == "subpixel" else cls(w, b, **kw, **extra)
    return layer(x, out=out, num_threads=threads)


def check_matrix() -> int:
    """Every case in each half dtype at 1 and 2 threads, functional and layer (with out=);
    returns the number of checks."""
    checks = 0
    for dtype in HALF_DTYPES:
        for case in cases(dtype):
            y1, expected, scale = run_case(case, 1)
            what = f"{dtype} {case['kind']}{case['rank']}d {case['method']} {case['kw']} {case['x'].shape}"
            assert_half_close(y1, expected, scale, dtype, what)
            # the same float32 sums as our float32 path on the widened inputs, rounded once
            wide = dict(case, **{k: None if case[k] is None else case[k].astype(np.float32) for k in ("x", "w", "b")})
            y32, _, _ = run_case(wide, 1)
            assert same_values(y1, y32.astype(dtype)), what + ": differs from the float32 path rounded"
            y2, _, _ = run_case(case, 2)
            assert np.array_equal(y2.view(np.uint16), y1.view(np.uint16)), what + ": threads change bits"
            out = np.empty_like(y1)
            assert run_layer(case, 2, out) is out and np.array_equal(out.view(np.uint16), y1.view(np.uint16)), what
            checks += 1
    return checks


def same_values(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal bits, NaN payloads aside."""
    nan = np.isnan(a.astype(np.float32))
    return bool(np.array_equal(nan, np.isnan(b.astype(np.float32))) and np.array_equal(a.view(np.uint16)[~nan], b.view(np.uint16)[~nan]))


def exact_inputs(rng: np.random.Generator, shape: Tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """Multiples of 1/16 in [-4, 4): every product and sum of a small convolution is exact in
    float32, so the result is the exact value rounded once (bit-exact against the oracle)."""
    return (rng.integers(-64, 64, size=shape) / 16.0).astype(dtype)


def special_values(dtype: np.dtype) -> np.ndarray:
    """NaN, +-Inf, the largest finite, the smallest normal and subnormal values of `dtype`."""
    info = ml_dtypes.finfo(dtype) if BF16 is not None and dtype == BF16 else np.finfo(dtype)
    values = [np.nan, np.inf, -np.inf, float(info.max), -float(info.max), float(info.smallest_normal),
              float(info.smallest_subnormal), -3 * float(info.smallest_subnormal), 1.0, -0.5]
    return np.array(values, dtype=np.float64).astype(dtype)


def check_every_bit_pattern() -> int:
    """Every one of the 65536 values of each half dtype through a 1x1 convolution by
    1 + ulp(1): products are exact in float32, so the result is the exact product rounded
    once, to nearest even (ties included), and must equal NumPy's / ml_dtypes' rounding of it;
    rows of odd length exercise the conversions' scalar tails too. Returns the check count."""
    checks = 0
    for dtype in HALF_DTYPES:
        mantissa, _ = _FORMAT[dtype.name]
        scale = 1.0 + 2.0**-mantissa
        values = np.arange(65536, dtype=np.uint16).view(dtype)
        for width in (65536, 65533):
            x = values[:width].reshape(1, 1, 1, width)
            w = np.full((1, 1, 1, 1), scale).astype(dtype)
            with np.errstate(over="ignore", invalid="ignore"):
                # + 0.0: the sum starts at the (zero) bias, so -0 * w gives +0
                expected = (x.astype(np.float64) * scale + 0.0).astype(dtype)
            for layout in ("NCHW", "NHWC"):
                xl = x if layout == "NCHW" else np.ascontiguousarray(x.transpose(0, 2, 3, 1))
                y = spx.conv2d(xl, w, layout=layout).reshape(-1)
                nan = np.isnan(expected.reshape(-1).astype(np.float32))
                assert np.array_equal(np.isnan(y.astype(np.float32)), nan), (dtype, layout, width)
                same = y.view(np.uint16)[~nan] == expected.reshape(-1).view(np.uint16)[~nan]
                assert same.all(), (dtype, layout, width, np.flatnonzero(~same)[:5])
                checks += 1
    return checks
