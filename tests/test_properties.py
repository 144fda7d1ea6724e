"""Property-based tests (fuzzing): random valid, corrupted and loosely constrained calls of
every 2-D op against the NumPy oracle. Valid calls must match it (NaN/Inf included), invalid
ones must raise ValueError or TypeError, never crash or compute. The N-D ops have their own
properties in test_nd_properties.py.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import subpixel_ext as spx
from subpixel_ext import reference as ref

from _helpers import F32, F64, assert_close, bits, inputs_for, oracle, random_array
from strategies import conv2d_configs, conv_transpose_configs

# The conftest profile ("ci": 200 examples, "dev": 30) scaled by 1.5: 300 examples per
# property test in CI, while HYPOTHESIS_PROFILE=dev still gives a quick run.
# SPX_PROPERTY_EXAMPLES overrides (tools/sanitize.sh asks for more).
PROPERTY_SETTINGS = settings(
    max_examples=int(os.environ.get("SPX_PROPERTY_EXAMPLES", 0)) or max(10, settings.default.max_examples * 3 // 2),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

ERRORS = (ValueError, TypeError)

# ============================================================================ property-based

CORRUPTIONS_CONV = [
    "negative_padding", "zero_stride", "negative_stride", "zero_dilation", "channel_mismatch",
    "groups_not_dividing", "zero_groups", "str_groups", "bool_groups", "bias_shape", "x_2d", "x_5d", "weight_3d",
    "bad_layout", "complex_x", "float_stride", "zero_threads", "empty_kernel", "empty_spatial",
]
CORRUPTIONS_CONVT = CORRUPTIONS_CONV + ["big_output_padding", "bad_method"]


def _corrupt_conv(
    kind: str, x: np.ndarray, w: np.ndarray, b: Optional[np.ndarray], kwargs: Dict[str, Any],
    layout: str, transposed: bool,
) -> Tuple[np.ndarray, np.ndarray, Optional[np.ndarray], Dict[str, Any]]:
    """Make a valid convolution call invalid in one specific way."""
    kw = dict(kwargs)
    c_axis = 1 if layout == "NCHW" else 3
    if x.ndim == 3:
        c_axis -= 1
    c_in = x.shape[c_axis]
    if kind == "negative_padding":
        kw["padding"] = ((0, -1), (0, 0)) if c_in % 2 else -1
        kw.pop("output_size", None)
    elif kind == "zero_stride":
        kw["stride"] = (1, 0)
    elif kind == "negative_stride":
        kw["stride"] = -2
    elif kind == "zero_dilation":
        kw["dilation"] = (0, 1)
    elif kind == "channel_mismatch":
        shape = list(w.shape)
        shape[0 if transposed else 1] += 1
        w = np.ones(shape, w.dtype)
    elif kind == "groups_not_dividing":
        kw["groups"] = c_in + 1
    elif kind == "zero_groups":
        kw["groups"] = 0
    elif kind == "str_groups":
        kw["groups"] = "1"
    elif kind == "bool_groups":  # True == 1 and hashes alike: must not hit a cached valid plan
        kw["groups"] = True
    elif kind == "bias_shape":
        c_out = w.shape[1] * kw.get("groups", 1) if transposed else w.shape[0]
        b = np.ones((c_out + 1,), w.dtype)
    elif kind == "x_2d":
        x = np.ones(x.shape[-2:], x.dtype)
    elif kind == "x_5d":
        x = x[None, None] if x.ndim == 4 else x[None, None, None]
    elif kind == "weight_3d":
        w = w[0]
    elif kind == "bad_layout":
        kw["layout"] = "NWHC"
    elif kind == "complex_x":
        x = x.astype(np.complex128)
    elif kind == "float_stride":
        kw["stride"] = 1.5
    elif kind == "zero_threads":
        kw["num_threads"] = 0
    elif kind == "empty_kernel":
        w = np.ones(w.shape[:2] + (0, w.shape[3]), w.dtype)
    elif kind == "empty_spatial":
        shape = list(x.shape)
        shape[-2 if layout == "NCHW" else -3] = 0
        x = np.ones(shape, x.dtype)
    elif kind == "big_output_padding":
        s, d = kw.get("stride", 1), kw.get("dilation", 1)
        s = s if isinstance(s, tuple) else (s, s)
        d = d if isinstance(d, tuple) else (d, d)
        kw["output_padding"] = (max(s[0], d[0]), 0)
        kw.pop("output_size", None)
    elif kind == "bad_method":
        kw["method"] = "winograd"
    else:  # pragma: no cover
        raise AssertionError(kind)
    return x, w, b, kw


def _expect_error(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
    """fn must raise ValueError or TypeError: anything else (or nothing) fails the test."""
    try:
        fn(*args, **kwargs)
    except ERRORS:
        return
    raise AssertionError(f"{getattr(fn, '__name__', fn)} accepted an invalid call: {kwargs}")


def _mostly(draw: st.DrawFn, good: st.SearchStrategy, bad: st.SearchStrategy) -> Any:
    """A draw from `good` most of the time, from `bad` (edge and invalid values) otherwise."""
    return draw(bad) if draw(st.integers(0, 6)) == 0 else draw(good)


def _random_conv_call(draw: st.DrawFn, transposed: bool) -> Tuple[Any, ...]:
    """Loosely constrained small parameters: valid or not, whatever they happen to be."""
    layout = draw(st.sampled_from(["NCHW", "NHWC"]))
    n = draw(st.sampled_from([None, 1, 2]))
    groups = _mostly(draw, st.integers(1, 2), st.integers(-1, 3))
    g = max(groups, 1)
    c_in = _mostly(draw, st.integers(1, 2).map(lambda k: k * g), st.integers(0, 4))
    c_out = _mostly(draw, st.integers(1, 2).map(lambda k: k * g), st.integers(0, 4))
    h, w = _mostly(draw, st.integers(1, 6), st.integers(0, 7)), _mostly(draw, st.integers(1, 6), st.integers(0, 7))
    kh, kw = _mostly(draw, st.integers(1, 5), st.integers(0, 9)), _mostly(draw, st.integers(1, 5), st.integers(0, 9))
    if transposed:
        wshape = (_mostly(draw, st.just(c_in), st.integers(0, 4)), _mostly(draw, st.just(c_out // g), st.integers(0, 3)), kh, kw)
    else:
        wshape = (c_out, _mostly(draw, st.just(c_in // g), st.integers(0, 4)), kh, kw)
    dtype = draw(st.sampled_from([F32, F64]))
    spatial = (c_in, h, w) if layout == "NCHW" else (h, w, c_in)
    xshape = spatial if n is None else (n,) + spatial
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x, wt = random_array(rng, xshape, dtype), random_array(rng, wshape, dtype)
    bias = draw(st.sampled_from([None, "ok", "ok", "wrong"]))
    b = None if bias is None else random_array(rng, (c_out if bias == "ok" else c_out + 1,), dtype)
    pad = _mostly(draw, st.integers(0, 3), st.integers(-2, 6))
    stride = st.integers(1, 3)
    kwargs: Dict[str, Any] = dict(
        stride=(_mostly(draw, stride, st.integers(-1, 5)), _mostly(draw, stride, st.integers(-1, 5))),
        padding=draw(st.one_of(st.just(pad), st.tuples(st.integers(0, 3), st.just(pad)),
                               st.tuples(st.tuples(st.just(pad), st.integers(0, 3)), st.tuples(st.integers(0, 3), st.integers(0, 3))),
                               st.sampled_from(["same", "valid"]))),
        dilation=(_mostly(draw, st.integers(1, 2), st.integers(0, 4)), _mostly(draw, st.integers(1, 2), st.integers(0, 4))),
        groups=groups,
        layout=layout,
    )
    if transposed:
        kwargs["output_padding"] = _mostly(draw, st.just(0), st.integers(-1, 3))
    return x, wt, b, kwargs, dtype


def _sprinkle(draw: st.DrawFn, seed: int, *arrays: Optional[np.ndarray]) -> List[Optional[np.ndarray]]:
    """Most of the time the arrays unchanged; otherwise NaN/+Inf/-Inf at a few random
    positions of some of them (the oracle then fixes where NaN and Inf must appear)."""
    which = draw(st.sampled_from(["", "", "", "x", "w", "xw", "xwb"]))
    rng = np.random.default_rng(seed + 1)
    out: List[Optional[np.ndarray]] = []
    for name, a in zip("xwb", arrays):
        if a is not None and name in which and a.size:
            a = a.copy()
            flat = a.reshape(-1)
            idx = rng.choice(flat.size, size=min(flat.size, draw(st.integers(1, 3))), replace=False)
            flat[idx] = rng.choice([np.nan, np.inf, -np.inf], size=idx.size)
        out.append(a)
    return out


def _check_valid(native: np.ndarray, ref_fn: Callable[..., np.ndarray], arrays: Tuple[Any, ...],
                 dtype: np.dtype, kwargs: Dict[str, Any]) -> None:
    with np.errstate(invalid="ignore", over="ignore"):
        expected, scale = oracle(ref_fn, *arrays, **kwargs)
    assert_close(native, expected, dtype, scale, what=repr(kwargs))


@st.composite
def conv_transpose_cases(draw: st.DrawFn) -> Tuple[Any, ...]:
    mode = draw(st.sampled_from(["valid", "corrupted", "random"]))
    native_kw = dict(
        method=draw(st.sampled_from(["auto", "direct", "polyphase"])),
        num_threads=draw(st.sampled_from([None, 1, 2])),
    )
    seed = draw(st.integers(0, 2**32 - 1))
    if mode == "random":
        x, w, b, kwargs, dtype = _random_conv_call(draw, transposed=True)
        x, w, b = _sprinkle(draw, seed, x, w, b)
        return mode, x, w, b, kwargs, native_kw, dtype
    cfg = draw(conv_transpose_configs())
    x, w, b = inputs_for(np.random.default_rng(seed), cfg, transposed=True)
    if mode == "valid":
        x, w, b = _sprinkle(draw, seed, x, w, b)
    kwargs = dict(cfg["kwargs"], layout=cfg["layout"])
    if mode == "corrupted":
        kind = draw(st.sampled_from(CORRUPTIONS_CONVT))
        x, w, b, kwargs = _corrupt_conv(kind, x, w, b, kwargs, cfg["layout"], transposed=True)
        kwargs["_kind"] = kind
    return mode, x, w, b, kwargs, native_kw, cfg["dtype"]


def _split_native(kwargs: Dict[str, Any], native_kw: Dict[str, Any]) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    kwargs = dict(kwargs)
    kwargs.pop("_kind", None)
    native = dict(native_kw)
    for k in ("method", "num_threads"):  # a corruption may set these
        if k in kwargs:
            native[k] = kwargs.pop(k)
    return kwargs, native


@PROPERTY_SETTINGS
@given(case=conv_transpose_cases())
def test_property_conv_transpose2d(case: Tuple[Any, ...]) -> None:
    mode, x, w, b, kwargs, native_kw, dtype = case
    event(f"{mode} {kwargs.get('_kind', '')}".strip())
    kwargs, native_kw = _split_native(kwargs, native_kw)
    if mode == "corrupted":
        _expect_error(spx.conv_transpose2d, x, w, b, **kwargs, **native_kw)
        return
    try:
        expected_error: Optional[BaseException] = None
        ref.conv_transpose2d(x, w, b, **kwargs)
    except ERRORS as exc:
        expected_error = exc
    if expected_error is not None:
        assert mode == "random", f"a valid configuration was refused by the oracle: {expected_error}"
        event("random: invalid")
        _expect_error(spx.conv_transpose2d, x, w, b, **kwargs, **native_kw)
        return
    event(f"{mode}: computed")
    y = spx.conv_transpose2d(x, w, b, **kwargs, **native_kw)
    _check_valid(y, ref.conv_transpose2d, (x, w, b), dtype, kwargs)


@st.composite
def conv2d_cases(draw: st.DrawFn, subpixel: bool = False) -> Tuple[Any, ...]:
    mode = draw(st.sampled_from(["valid", "corrupted", "random"]))
    native_kw: Dict[str, Any] = dict(num_threads=draw(st.sampled_from([None, 1, 2])))
    factor = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    if subpixel:
        native_kw["mode"] = draw(st.sampled_from(["CRD", "DCR"]))
    seed = draw(st.integers(0, 2**32 - 1))
    if mode == "random":
        x, w, b, kwargs, dtype = _random_conv_call(draw, transposed=False)
        x, w, b = _sprinkle(draw, seed, x, w, b)
        if subpixel:
            kwargs["upscale_factor"] = (_mostly(draw, st.integers(1, 2), st.integers(-1, 3)), draw(st.integers(1, 2)))
        return mode, x, w, b, kwargs, native_kw, dtype
    cfg = draw(conv2d_configs())
    if subpixel:  # conv channels C * rh * rw, C a multiple of groups
        cfg = dict(cfg, c_out=cfg["groups"] * draw(st.integers(1, 2)) * factor[0] * factor[1])
    x, w, b = inputs_for(np.random.default_rng(seed), cfg, transposed=False)
    if mode == "valid":
        x, w, b = _sprinkle(draw, seed, x, w, b)
    kwargs = dict(cfg["kwargs"], layout=cfg["layout"])
    if subpixel:
        kwargs["upscale_factor"] = factor
    if mode == "corrupted":
        kinds = CORRUPTIONS_CONV + (["zero_factor", "indivisible_factor"] if subpixel else ["kernel_too_large"])
        kind = draw(st.sampled_from(kinds))
        if kind == "zero_factor":
            kwargs["upscale_factor"] = (factor[0], 0)
        elif kind == "indivisible_factor":
            kwargs["upscale_factor"] = (factor[0], w.shape[0] + 1)
        elif kind == "kernel_too_large":
            kh = (x.shape[-2] if cfg["layout"] == "NCHW" else x.shape[-3]) + 9
            w = np.ones(w.shape[:2] + (kh, w.shape[3]), w.dtype)
            kwargs["padding"] = "valid"
        else:
            x, w, b, kwargs = _corrupt_conv(kind, x, w, b, kwargs, cfg["layout"], transposed=False)
        kwargs["_kind"] = kind
    return mode, x, w, b, kwargs, native_kw, cfg["dtype"]


def _run_conv_property(case: Tuple[Any, ...], native_fn: Callable[..., np.ndarray],
                       ref_fn: Callable[..., np.ndarray], subpixel: bool) -> None:
    mode, x, w, b, kwargs, native_kw, dtype = case
    event(f"{mode} {kwargs.get('_kind', '')}".strip())
    kwargs, native_kw = _split_native(kwargs, native_kw)
    if subpixel:
        kwargs["mode"] = native_kw.pop("mode")
        args: Tuple[Any, ...] = (x, w, kwargs.pop("upscale_factor"), b)
    else:
        args = (x, w, b)
    if mode == "corrupted":
        _expect_error(native_fn, *args, **kwargs, **native_kw)
        return
    try:
        expected_error: Optional[BaseException] = None
        ref_fn(*args, **kwargs)
    except ERRORS as exc:
        expected_error = exc
    if expected_error is not None:
        assert mode == "random", f"a valid configuration was refused by the oracle: {expected_error}"
        event("random: invalid")
        _expect_error(native_fn, *args, **kwargs, **native_kw)
        return
    event(f"{mode}: computed")
    y = native_fn(*args, **kwargs, **native_kw)
    if subpixel:
        factor = args[2]
        with np.errstate(invalid="ignore", over="ignore"):
            expected, scale = oracle(lambda x_, w_, b_, **kw: ref_fn(x_, w_, factor, b_, **kw), x, w, b, **kwargs)
        assert_close(y, expected, dtype, scale, what=repr(kwargs))
    else:
        _check_valid(y, ref_fn, args, dtype, kwargs)


@PROPERTY_SETTINGS
@given(case=conv2d_cases())
def test_property_conv2d(case: Tuple[Any, ...]) -> None:
    _run_conv_property(case, spx.conv2d, ref.conv2d, subpixel=False)


@PROPERTY_SETTINGS
@given(case=conv2d_cases(subpixel=True))
def test_property_subpixel_conv2d(case: Tuple[Any, ...]) -> None:
    _run_conv_property(case, spx.subpixel_conv2d, ref.subpixel_conv2d, subpixel=True)


_SHUFFLE_DTYPES = [np.float32, np.float64, np.float16, np.int32, np.bool_, np.complex64]


@st.composite
def shuffle_cases(draw: st.DrawFn, inverse: bool) -> Tuple[Any, ...]:
    mode = draw(st.sampled_from(["valid", "corrupted", "random"]))
    layout = draw(st.sampled_from(["NCHW", "NHWC"]))
    lead = tuple(draw(st.lists(st.integers(0, 2), max_size=2)))
    dtype = draw(st.sampled_from(_SHUFFLE_DTYPES))
    kw: Dict[str, Any] = dict(layout=layout, mode=draw(st.sampled_from(["CRD", "DCR"])),
                              num_threads=draw(st.sampled_from([None, 1, 2])))
    if mode == "random":
        r: Any = (draw(st.integers(-1, 3)), draw(st.integers(0, 3)))
        c, h, w = draw(st.integers(0, 8)), draw(st.integers(0, 7)), draw(st.integers(0, 7))
        ndim_cut = draw(st.integers(0, 2))
    else:
        r = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
        h, w = draw(st.integers(1, 5)), draw(st.integers(1, 5))
        c = draw(st.integers(1, 3))
        if inverse:
            h, w = h * r[0], w * r[1]
        else:
            c = c * r[0] * r[1]
        ndim_cut = 0
    shape = lead + ((c, h, w) if layout == "NCHW" else (h, w, c))
    shape = shape[ndim_cut:] if len(shape) - ndim_cut >= 1 else shape
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x = (rng.uniform(-4, 4, size=shape)).astype(dtype)
    if mode == "corrupted":
        kind = draw(st.sampled_from(["factor_0", "factor_negative", "factor_quadruple", "indivisible",
                                     "ndim_2", "bad_mode", "bad_layout", "object", "float_factor",
                                     "zero_threads"]))
        if kind == "factor_0":
            r = (0, r[1])
        elif kind == "factor_negative":
            r = -2
        elif kind == "factor_quadruple":  # 1 to 3 axes; a triple is a valid 3-D shuffle
            r = (1, 1, 1, 1)
        elif kind == "indivisible":  # one more channel / row than the factor allows
            if inverse:
                r = (r[0], r[1] + 1) if w % (r[1] + 1) else (r[0] + 1, w + 1)
                if h % r[0] == 0 and w % r[1] == 0:
                    r = (h + 1, w + 1)
            else:
                r = (r[0], c + 1)
        elif kind == "ndim_2":
            x = x.reshape(-1)[: 4].reshape(2, -1) if x.size >= 4 else np.ones((2, 2), dtype)
        elif kind == "bad_mode":
            kw["mode"] = "RDC"
        elif kind == "bad_layout":
            kw["layout"] = "HWC"
        elif kind == "object":  # complex is moved like any number (test_half.py)
            x = x.astype(object)
        elif kind == "float_factor":
            r = 2.0
        elif kind == "zero_threads":
            kw["num_threads"] = 0
    return mode, x, r, kw


def _run_shuffle_property(case: Tuple[Any, ...], native_fn: Callable[..., np.ndarray],
                          ref_fn: Callable[..., np.ndarray]) -> None:
    mode, x, r, kw = case
    event(mode)
    ref_kw = {k: v for k, v in kw.items() if k != "num_threads"}
    if mode == "corrupted":
        _expect_error(native_fn, x, r, **kw)
        return
    try:
        expected: Any = ref_fn(x, r, **ref_kw)
    except ERRORS as exc:
        assert mode == "random", f"a valid configuration was refused by the oracle: {exc}"
        event("random: invalid")
        _expect_error(native_fn, x, r, **kw)
        return
    event(f"{mode}: computed")
    y = native_fn(x, r, **kw)
    assert y.dtype == expected.dtype and y.shape == expected.shape
    assert np.array_equal(bits(y), bits(expected))


@PROPERTY_SETTINGS
@given(case=shuffle_cases(inverse=False))
def test_property_pixel_shuffle(case: Tuple[Any, ...]) -> None:
    _run_shuffle_property(case, spx.pixel_shuffle, ref.pixel_shuffle)


@PROPERTY_SETTINGS
@given(case=shuffle_cases(inverse=True))
def test_property_pixel_unshuffle(case: Tuple[Any, ...]) -> None:
    _run_shuffle_property(case, spx.pixel_unshuffle, ref.pixel_unshuffle)


@st.composite
def zero_insert_cases(draw: st.DrawFn) -> Tuple[Any, ...]:
    mode = draw(st.sampled_from(["valid", "corrupted", "random"]))
    shape = tuple(draw(st.lists(st.integers(0 if mode == "random" else 1, 6), min_size=2, max_size=4)))
    stride: Any = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    if mode == "random":
        shape = shape[draw(st.integers(0, 2)):]
        stride = (draw(st.integers(-1, 3)), draw(st.integers(0, 3)))
    dtype = draw(st.sampled_from(_SHUFFLE_DTYPES))
    x = np.random.default_rng(draw(st.integers(0, 2**32 - 1))).uniform(-4, 4, size=shape).astype(dtype)
    kw: Dict[str, Any] = dict(num_threads=draw(st.sampled_from([None, 1, 2])))
    if mode == "corrupted":
        kind = draw(st.sampled_from(["ndim_1", "ndim_0", "stride_0", "stride_negative", "stride_quadruple",
                                     "stride_str", "object", "zero_threads"]))
        if kind == "ndim_1":
            x = x.reshape(-1)
        elif kind == "ndim_0":
            x = x.reshape(-1)[0]
        elif kind == "stride_0":
            stride = (stride[0], 0)
        elif kind == "stride_negative":
            stride = -1
        elif kind == "stride_quadruple":  # 1 to 3 trailing axes; a triple is valid (N-D)
            stride = (1, 2, 3, 1)
        elif kind == "stride_str":
            stride = "2"
        elif kind == "object":
            x = x.astype(object)
        else:
            kw["num_threads"] = 0
    return mode, x, stride, kw


@PROPERTY_SETTINGS
@given(case=zero_insert_cases())
def test_property_zero_insert(case: Tuple[Any, ...]) -> None:
    mode, x, stride, kw = case
    event(mode)
    if mode == "corrupted":
        _expect_error(spx.zero_insert, x, stride, **kw)
        return
    try:
        expected = ref.zero_insert(x, stride)
    except ERRORS as exc:
        assert mode == "random", f"a valid configuration was refused by the oracle: {exc}"
        event("random: invalid")
        _expect_error(spx.zero_insert, x, stride, **kw)
        return
    event(f"{mode}: computed")
    y = spx.zero_insert(x, stride, **kw)
    assert y.dtype == expected.dtype and y.shape == expected.shape
    assert np.array_equal(bits(y), bits(expected))
