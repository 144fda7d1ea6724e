"""Bad arguments raise ValueError / TypeError (MemoryError for impossible sizes) whose message
names the parameter; nothing is written on failure and later calls still work."""

from __future__ import annotations

from typing import Any, Callable, Dict

import numpy as np
import pytest

import subpixel_ext as spx
from subpixel_ext import reference as ref

from _helpers import F32, F64, assert_close, oracle, random_array

_r = np.random.default_rng(5)
X = random_array(_r, (1, 2, 4, 4), F64)
W_CT = random_array(_r, (2, 3, 3, 3), F64)  # (C_in, C_out, kH, kW)
W_C2 = random_array(_r, (3, 2, 3, 3), F64)  # (C_out, C_in, kH, kW)
W_SP = random_array(_r, (12, 2, 3, 3), F64)  # 3 channels x 2 x 2
B3 = random_array(_r, (3,), F64)
B12 = random_array(_r, (12,), F64)


def ct(**kw: Any) -> np.ndarray:
    args: Dict[str, Any] = dict(x=X, weight=W_CT, bias=B3, stride=2)
    args.update(kw)
    return spx.conv_transpose2d(**args)


def c2(**kw: Any) -> np.ndarray:
    args: Dict[str, Any] = dict(x=X, weight=W_C2, bias=B3, padding=1)
    args.update(kw)
    return spx.conv2d(**args)


def sp(**kw: Any) -> np.ndarray:
    args: Dict[str, Any] = dict(x=X, weight=W_SP, upscale_factor=2, bias=B12, padding=1)
    args.update(kw)
    return spx.subpixel_conv2d(**args)


CONV_OPS = {"conv_transpose2d": ct, "conv2d": c2, "subpixel_conv2d": sp}


@pytest.fixture(autouse=True)
def _fresh_plan_cache():
    """Start every test here without cached call plans, so that each error test sees the
    validation of a first call whatever ran before it (a cached plan can skip validation:
    see test_validation_does_not_depend_on_call_history)."""
    from subpixel_ext import _api

    for name in ("_PLANS", "_RECENT"):
        plans = getattr(_api, name, None)
        if isinstance(plans, dict):
            plans.clear()
    yield

# (kwargs, exception, match) valid for all three convolution entry points
COMMON_CASES = [
    # ranks
    (dict(x=np.ones((4, 4))), ValueError, r"x must be 3-D or 4-D"),
    (dict(x=np.ones((1, 1, 2, 4, 4))), ValueError, r"x must be 3-D or 4-D"),
    (dict(weight=np.ones((2, 3, 3))), ValueError, r"weight must be 4-D"),
    (dict(weight=np.ones((2, 3, 3, 3, 1))), ValueError, r"weight must be 4-D"),
    (dict(bias=np.ones((3, 1))), ValueError, r"bias must have shape"),
    (dict(bias=np.ones(())), ValueError, r"bias must have shape"),
    (dict(x=np.ones((1, 2, 0, 4))), ValueError, r"x must have spatial size"),
    # groups
    (dict(groups=0), ValueError, r"groups must be >= 1"),
    (dict(groups=-2), ValueError, r"groups must be >= 1"),
    (dict(groups=1.5), TypeError, r"groups must be an integer"),
    (dict(groups=True), TypeError, r"groups must be an integer"),
    (dict(groups="1"), TypeError, r"groups must be an integer"),
    # stride / dilation
    (dict(stride=0), ValueError, r"stride must be >= 1"),
    (dict(stride=(1, 0)), ValueError, r"stride must be >= 1"),
    (dict(stride=-1), ValueError, r"stride must be >= 1"),
    (dict(dilation=0), ValueError, r"dilation must be >= 1"),
    (dict(dilation=(2, -1)), ValueError, r"dilation must be >= 1"),
    (dict(stride=1.5), TypeError, r"stride must be an integer"),
    (dict(stride="2"), TypeError, r"stride must be an int or a pair"),
    (dict(stride=(1, 2.0)), TypeError, r"stride must be an integer"),
    (dict(dilation=np.float64(1)), TypeError, r"dilation must be an integer"),
    (dict(stride=(1, 2, 3)), ValueError, r"stride must be an int or a pair"),
    (dict(dilation=(1,)), ValueError, r"dilation must be an int or a pair"),
    (dict(stride=None), TypeError, r"stride"),
    # padding
    (dict(padding=-1), ValueError, r"padding must be >= 0"),
    (dict(padding=(1, -2)), ValueError, r"padding must be >= 0"),
    (dict(padding=((0, -1), (0, 0))), ValueError, r"padding must be >= 0"),
    (dict(padding=(1, 2, 3)), ValueError, r"padding must be an int or a pair"),
    (dict(padding=((1, 2, 3), (1, 1))), ValueError, r"padding must be an int or a pair"),
    (dict(padding=((1, 2), (3,))), ValueError, r"padding must be an int or a pair"),
    (dict(padding=1.0), TypeError, r"padding must be an integer"),
    (dict(padding=((0, 1.5), (0, 0))), TypeError, r"padding must be an integer"),
    (dict(padding="full"), ValueError, r"padding must be one of"),
    (dict(padding=b"same"), TypeError, r"padding"),
    # words
    (dict(layout="NCWH"), ValueError, r"layout must be one of"),
    (dict(layout=3), TypeError, r"layout must be one of"),
    (dict(num_threads=0), ValueError, r"num_threads must be None or >= 1"),
    (dict(num_threads=-3), ValueError, r"num_threads must be None or >= 1"),
    (dict(num_threads=1.5), TypeError, r"num_threads must be an integer"),
    # dtypes
    (dict(x=X.astype(np.complex128)), TypeError, r"x must have a real numeric dtype"),
    (dict(weight="abc"), TypeError, r"weight must have a real numeric dtype"),
    (dict(x=X.astype(object)), TypeError, r"x must have a real numeric dtype"),
    (dict(x=X.astype(str)), TypeError, r"x must have a real numeric dtype"),
    (dict(x=X.astype("S8")), TypeError, r"x must have a real numeric dtype"),
    (dict(x=np.zeros(X.shape, "datetime64[s]")), TypeError, r"x must have a real numeric dtype"),
    (dict(x=[[[1.0, 2.0], [3.0]]]), TypeError, r"x"),
    # out
    (dict(out=[0.0]), TypeError, r"out must be a numpy.ndarray"),
]


@pytest.mark.parametrize("kwargs, exc, match", COMMON_CASES, ids=lambda v: str(v)[:60])
@pytest.mark.parametrize("op", list(CONV_OPS))
def test_common_argument_errors(op, kwargs, exc, match) -> None:
    with pytest.raises(exc, match=match):
        CONV_OPS[op](**kwargs)


def test_bias_dtype_errors() -> None:
    for op, b in [(ct, B3), (c2, B3), (sp, B12)]:
        with pytest.raises(TypeError, match="bias must have a real numeric dtype"):
            op(bias=b.astype(np.complex64))
        with pytest.raises(ValueError, match=r"bias must have shape"):
            op(bias=np.ones(5))


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        (dict(weight=np.ones((3, 3, 3, 3))), ValueError, r"input channels"),  # C_in 3 != 2
        (dict(groups=3), ValueError, r"groups=3"),                         # does not divide C_in = 2
        (dict(groups=2, weight=np.ones((2, 3, 3, 3)), bias=np.ones(6)), None, None),  # valid control
        (dict(weight=np.ones((2, 3, 0, 3))), ValueError, r"weight must have a kernel"),
        (dict(method="fft"), ValueError, r"method must be one of"),
        (dict(method=None), TypeError, r"method must be one of"),
        (dict(output_padding=2), ValueError, r"output_padding must be smaller than max\(stride, dilation\)"),
        (dict(stride=1, output_padding=1), ValueError, r"output_padding"),
        (dict(stride=1, dilation=(1, 3), output_padding=(0, 3)), ValueError, r"output_padding"),
        (dict(output_padding=-1), ValueError, r"output_padding must be >= 0"),
        (dict(output_padding=(0, 1, 0)), ValueError, r"output_padding must be an int or a pair"),
        (dict(output_padding=0.5), TypeError, r"output_padding must be an integer"),
        (dict(padding="same", output_padding=1), ValueError, r"output_padding must be 0 with padding='same'"),
        (dict(padding=5), ValueError, r"output size along H would be -1"),
        (dict(padding=((0, 0), (9, 0))), ValueError, r"output size along W"),
        (dict(output_size=(11, 9)), ValueError, r"output_size .* is out of reach"),   # range is 9..10
        (dict(output_size=(9, 11)), ValueError, r"output_size .* is out of reach"),
        (dict(output_size=(8, 9)), ValueError, r"output_size .* is out of reach"),
        (dict(output_size=(0, 9)), ValueError, r"output_size must be >= 1"),
        (dict(output_size=(9,)), ValueError, r"output_size must be an int or a pair"),
        (dict(output_size=(9, 9), output_padding=1), ValueError, r"output_size and output_padding"),
        (dict(output_size=(8, 8), padding="same"), ValueError, r"output_size cannot be combined"),
    ],
    ids=lambda v: str(v)[:60],
)
def test_conv_transpose2d_errors(kwargs, exc, match) -> None:
    if exc is None:
        ct(**kwargs)
        return
    with pytest.raises(exc, match=match):
        ct(**kwargs)


def test_output_padding_may_reach_dilation_minus_one() -> None:
    # output_padding < max(stride, dilation): with stride 1, dilation 3 allows 2
    y = ct(stride=1, dilation=3, output_padding=2)
    expected, scale = oracle(ref.conv_transpose2d, X, W_CT, B3, stride=1, dilation=3, output_padding=2)
    assert_close(y, expected, F64, scale)


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        (dict(weight=np.ones((3, 3, 3, 3))), ValueError, r"input channels"),  # expects 3 != 2
        (dict(groups=2), ValueError, r"groups=2 must divide"),  # 3 output channels
        (dict(groups=2, weight=np.ones((4, 2, 3, 3)), bias=np.ones(4)), ValueError, r"input channels"),
        (dict(padding=0, weight=np.ones((3, 2, 5, 3))), ValueError, r"larger than the padded input \(4\) along H"),
        (dict(padding=((0, 0), (1, 0)), weight=np.ones((3, 2, 1, 6))), ValueError, r"larger than the padded input"),
        (dict(padding="valid", dilation=2), ValueError, r"effective size 5 is larger"),
        (dict(padding=0, stride=3, dilation=(1, 2)), ValueError, r"larger than the padded input"),
    ],
    ids=lambda v: str(v)[:60],
)
def test_conv2d_errors(kwargs, exc, match) -> None:
    with pytest.raises(exc, match=match):
        c2(**kwargs)


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        (dict(weight=np.ones((10, 2, 3, 3)), bias=None), ValueError, r"not divisible by upscale_factor\*\*2 = 4"),
        (dict(upscale_factor=(3, 3)), ValueError, r"upscale_factor\*\*2 = 9"),
        (dict(upscale_factor=0), ValueError, r"upscale_factor must be >= 1"),
        (dict(upscale_factor=(1, -1)), ValueError, r"upscale_factor must be >= 1"),
        (dict(upscale_factor=2.0), TypeError, r"upscale_factor must be an integer"),
        (dict(upscale_factor=(2, 2, 2)), ValueError, r"upscale_factor must be an int or a pair"),
        (dict(mode="CDR"), ValueError, r"mode must be one of"),
        (dict(bias=np.ones(3)), ValueError, r"bias must have shape \(12,\)"),
        (dict(weight=np.ones((12, 1, 3, 3))), ValueError, r"input channels"),
        (dict(padding=0, weight=np.ones((12, 2, 5, 5))), ValueError, r"larger than the padded input"),
    ],
    ids=lambda v: str(v)[:60],
)
def test_subpixel_conv2d_errors(kwargs, exc, match) -> None:
    with pytest.raises(exc, match=match):
        sp(**kwargs)


# ============================================================================ out=


@pytest.mark.parametrize("op", list(CONV_OPS))
def test_bad_out_arrays(op) -> None:
    fn = CONV_OPS[op]
    good = fn()
    shape = good.shape
    cases = [
        (np.empty(shape[:-1] + (shape[-1] + 1,)), r"out must have shape"),
        (np.empty(shape[1:]), r"out must have shape"),
        (np.empty(shape, np.float32), r"out must have dtype float64"),
        (np.empty(shape, np.int64), r"out must have dtype float64"),
        (np.empty(shape[:-1] + (2 * shape[-1],))[..., ::2], r"C-contiguous"),
        (np.asfortranarray(np.empty(shape)), r"C-contiguous"),
        (np.empty(shape, ">f8"), r"out must"),
    ]
    ro = np.empty(shape)
    ro.setflags(write=False)
    cases.append((ro, r"out is read-only"))
    for out, match in cases:
        sentinel = out.copy()
        with pytest.raises(ValueError, match=match):
            fn(out=out)
        np.testing.assert_array_equal(out, sentinel)  # nothing written
    # float32 inputs need a float32 out
    with pytest.raises(ValueError, match="out must have dtype float32"):
        fn(x=X.astype(F32), weight={"conv_transpose2d": W_CT, "conv2d": W_C2, "subpixel_conv2d": W_SP}[op]
           .astype(F32), bias=None, out=np.empty(shape))


def test_out_overlapping_an_input() -> None:
    # conv2d "same" with C_in == C_out: out could be x itself
    x = random_array(np.random.default_rng(1), (1, 3, 5, 5), F64)
    w = random_array(np.random.default_rng(2), (3, 3, 3, 3), F64)
    x_copy = x.copy()
    with pytest.raises(ValueError, match="out overlaps an input"):
        spx.conv2d(x, w, padding=1, out=x)
    np.testing.assert_array_equal(x, x_copy)
    buf = np.zeros(200)
    w_view = buf[:81].reshape(3, 3, 3, 3)
    w_view[...] = w
    with pytest.raises(ValueError, match="out overlaps an input"):
        spx.conv2d(x, w_view, padding=1, out=buf[50:125].reshape(1, 3, 5, 5))
    xt = random_array(np.random.default_rng(3), (1, 2, 3, 3), F64)
    big = np.zeros((1, 2, 6, 6))
    big[:, :, :3, :3] = xt
    x_in_big = big[:, :, :3, :3]
    with pytest.raises(ValueError, match="out overlaps an input"):
        spx.conv_transpose2d(x_in_big, np.ones((2, 2, 2, 2)), stride=2, out=big)
    buf2 = np.zeros(400)
    x_in_buf = buf2[:75].reshape(1, 3, 5, 5)
    x_in_buf[...] = x
    with pytest.raises(ValueError, match="out overlaps an input"):
        spx.subpixel_conv2d(x_in_buf, np.ones((12, 3, 3, 3)), 2, padding=1, out=buf2[50:350].reshape(1, 3, 10, 10))
    np.testing.assert_array_equal(x_in_buf, x)


# ============================================================================ other ops


@pytest.mark.parametrize(
    "fn, args, kwargs, exc, match",
    [
        (spx.pixel_shuffle, (np.ones((8, 2, 2)), 0), {}, ValueError, r"upscale_factor must be >= 1"),
        (spx.pixel_shuffle, (np.ones((8, 2, 2)), (2, 0)), {}, ValueError, r"upscale_factor must be >= 1"),
        (spx.pixel_shuffle, (np.ones((6, 2, 2)), 2), {}, ValueError, r"channels \(6\) must be divisible by upscale_factor\*\*2 = 4"),
        (spx.pixel_shuffle, (np.ones((2, 2, 6)), 2), dict(layout="NHWC"), ValueError, r"channels \(6\)"),
        (spx.pixel_shuffle, (np.ones((8, 2)), 2), {}, ValueError, r"at least 3 dimensions"),
        (spx.pixel_shuffle, (np.ones((8, 2, 2)), 2.5), {}, TypeError, r"upscale_factor must be an integer"),
        (spx.pixel_shuffle, (np.ones((8, 2, 2)), 2), dict(mode="XYZ"), ValueError, r"mode must be one of"),
        (spx.pixel_shuffle, (np.ones((8, 2, 2)), 2), dict(layout="CHW"), ValueError, r"layout must be one of"),
        (spx.pixel_shuffle, (np.ones((8, 2, 2)), 2), dict(num_threads=0), ValueError, r"num_threads"),
        (spx.pixel_shuffle, (np.ones((8, 2, 2), object), 2), {}, TypeError, r"x must have a numeric dtype"),
        (spx.pixel_unshuffle, (np.ones((1, 4, 4)), 0), {}, ValueError, r"downscale_factor must be >= 1"),
        (spx.pixel_unshuffle, (np.ones((1, 5, 4)), 2), {}, ValueError, r"spatial size \(5, 4\) must be divisible by downscale_factor"),
        (spx.pixel_unshuffle, (np.ones((1, 4, 6)), (2, 4)), {}, ValueError, r"divisible by downscale_factor"),
        (spx.pixel_unshuffle, (np.ones((4, 6, 1)), 4), dict(layout="NHWC"), ValueError, r"divisible by downscale_factor"),
        (spx.pixel_unshuffle, (np.ones((4, 4)), 2), {}, ValueError, r"at least 3 dimensions"),
        (spx.zero_insert, (np.ones((2, 2)), 0), {}, ValueError, r"stride must be >= 1"),
        (spx.zero_insert, (np.ones((2, 2)), (1, -1)), {}, ValueError, r"stride must be >= 1"),
        (spx.zero_insert, (np.ones(3), 2), {}, ValueError, r"x must have at least 2 dimensions"),
        (spx.zero_insert, (np.ones((2, 2)), 2), dict(num_threads=-1), ValueError, r"num_threads"),
        (spx.zero_insert, (np.array([["a"]]), 2), {}, TypeError, r"x must have a numeric dtype"),
        (spx.split_kernel, (np.ones((3, 3)), 0), {}, ValueError, r"stride must be >= 1"),
        (spx.split_kernel, (np.ones(3), 2), {}, ValueError, r"kernel must have at least 2 dimensions"),
        (spx.split_kernel, (np.ones((3, 3), complex), 2), {}, TypeError, r"kernel must have a real numeric dtype"),
        (spx.set_num_threads, (0,), {}, ValueError, r"num_threads"),
        (spx.set_num_threads, (2.0,), {}, TypeError, r"num_threads"),
    ],
    ids=lambda v: getattr(v, "__name__", str(v)[:40]),
)
def test_other_op_errors(fn, args, kwargs, exc, match) -> None:
    threads = spx.get_num_threads()
    with pytest.raises(exc, match=match):
        fn(*args, **kwargs)
    assert spx.get_num_threads() == threads


# ============================================================================ impossible sizes


HUGE = 2**40
IMPOSSIBLE_CALLS: Dict[str, Callable[[], Any]] = {
    # results of more than sys.maxsize bytes: (2**40 + 1)**2 float64 elements
    "conv_transpose2d-stride": lambda: spx.conv_transpose2d(
        np.ones((1, 1, 2, 2)), np.ones((1, 1, 1, 1)), stride=HUGE),
    "conv_transpose2d-dilation": lambda: spx.conv_transpose2d(
        np.ones((1, 1, 2, 2)), np.ones((1, 1, 2, 2)), dilation=HUGE, output_padding=HUGE - 1),
    "conv_transpose2d-out": lambda: spx.conv_transpose2d(
        np.ones((1, 1, 2, 2)), np.ones((1, 1, 1, 1)), stride=HUGE, out=np.empty(1)),
    "conv2d-padding": lambda: spx.conv2d(np.ones((1, 1, 1, 1)), np.ones((1, 1, 1, 1)), padding=HUGE),
    "subpixel_conv2d-padding": lambda: spx.subpixel_conv2d(
        np.ones((1, 1, 1, 1)), np.ones((4, 1, 1, 1)), 2, padding=HUGE),
    "zero_insert": lambda: spx.zero_insert(np.ones((2, 2), np.float32), HUGE),
    "zero_insert-out": lambda: spx.zero_insert(np.ones((2, 2)), HUGE, out=np.empty(1)),
}


@pytest.mark.parametrize("call", list(IMPOSSIBLE_CALLS))
def test_impossible_sizes_raise_memory_error(call) -> None:
    with pytest.raises(MemoryError, match="bytes"):
        IMPOSSIBLE_CALLS[call]()
    # and the package still works afterwards
    y = spx.zero_insert(np.ones((2, 2)), 2)
    np.testing.assert_array_equal(y, ref.zero_insert(np.ones((2, 2)), 2))


# ============================================================================ recovery


FAILING_CALLS: Dict[str, Callable[[], Any]] = {
    "ct-stride": lambda: ct(stride=0),
    "ct-op": lambda: ct(output_padding=5),
    "ct-out": lambda: ct(out=np.empty((1, 3, 9, 8))),
    "c2-kernel": lambda: c2(padding=0, weight=np.ones((3, 2, 9, 9))),
    "sp-dtype": lambda: sp(x=X.astype(complex)),
    "shuffle": lambda: spx.pixel_shuffle(np.ones((3, 2, 2)), 2),
    "memory": lambda: spx.zero_insert(np.ones((2, 2)), 2**40),
}


@pytest.mark.parametrize("failing", list(FAILING_CALLS))
def test_calls_after_a_failure_are_correct(failing) -> None:
    with pytest.raises((ValueError, TypeError, MemoryError)):
        FAILING_CALLS[failing]()
    rng = np.random.default_rng(11)
    x = random_array(rng, (2, 3, 5, 4), F32)
    w = random_array(rng, (3, 2, 3, 3), F32)
    b = random_array(rng, (2,), F32)
    for method in ("direct", "polyphase"):
        expected, scale = oracle(ref.conv_transpose2d, x, w, b, stride=2, padding=1, output_padding=1)
        y = spx.conv_transpose2d(x, w, b, 2, 1, 1, method=method)
        assert_close(y, expected, F32, scale)
    wc = random_array(rng, (8, 3, 3, 3), F32)
    expected, scale = oracle(lambda x, w, **k: ref.subpixel_conv2d(x, w, 2, **k), x, wc, padding="same")
    assert_close(spx.subpixel_conv2d(x, wc, 2, padding="same"), expected, F32, scale)
    lo = random_array(rng, (2, 8, 3, 3), F32)
    np.testing.assert_array_equal(spx.pixel_shuffle(lo, 2), ref.pixel_shuffle(lo, 2))


# ============================================================================ accepted forms


def test_accepted_argument_forms_are_equivalent() -> None:
    base = ct(stride=(2, 2), padding=((1, 1), (1, 1)), dilation=(1, 1), groups=1, output_padding=(1, 1))
    for kwargs in [
        dict(stride=2, padding=1, output_padding=1),
        dict(stride=np.int64(2), padding=np.int64(1), output_padding=[1, 1], groups=np.int32(1)),
        dict(stride=np.array(2), padding=np.array([1, 1]), output_padding=np.array(1)),
        dict(stride=[2, 2], padding=[[1, 1], [1, 1]], dilation=np.array([1, 1]), output_padding=(1, 1)),
        dict(stride=2, padding=(1, 1), output_padding=np.array([1, 1]), layout="nchw", method="POLYPHASE"),
    ]:
        np.testing.assert_array_equal(ct(**kwargs), base)
    np.testing.assert_array_equal(c2(padding="SAME"), c2(padding="same"))
    np.testing.assert_array_equal(sp(mode="crd"), sp(mode="CRD"))


def test_zero_dim_array_padding_is_accepted_like_an_int() -> None:
    np.testing.assert_array_equal(c2(padding=np.array(1)), c2(padding=1))


HISTORY_CASES = [
    # (op, a valid call's kwargs, an equal-comparing but invalid variant, match)
    ("conv_transpose2d", dict(stride=1), dict(stride=True), "stride"),
    ("conv_transpose2d", dict(stride=2), dict(stride=2.0), "stride"),
    ("conv_transpose2d", dict(padding=1), dict(padding=True), "padding"),
    ("conv_transpose2d", dict(dilation=1), dict(dilation=np.float64(1)), "dilation"),
    ("conv2d", dict(groups=1), dict(groups=1.0), "groups"),
    ("conv2d", dict(num_threads=1), dict(num_threads=1.0), "num_threads"),
    ("subpixel_conv2d", dict(upscale_factor=2), dict(upscale_factor=2.0), "upscale_factor"),
    ("subpixel_conv2d", dict(stride=(1, 1)), dict(stride=(True, 1)), "stride"),
]


@pytest.mark.parametrize("op, good, bad, match", HISTORY_CASES, ids=lambda v: str(v)[:40])
def test_validation_does_not_depend_on_call_history(op, good, bad, match) -> None:
    # A bad argument must raise even right after a valid call that compares equal to it
    # (True == 1, 2.0 == 2): argument checking may not be skipped for a repeated call.
    with pytest.raises(TypeError, match=match):
        CONV_OPS[op](**bad)
    CONV_OPS[op](**good)
    with pytest.raises(TypeError, match=match):
        CONV_OPS[op](**bad)


@pytest.mark.parametrize(
    "fn, x, arg",
    [
        (spx.pixel_shuffle, np.ones((2, 8, 3, 3)), 2),
        (spx.pixel_unshuffle, np.ones((2, 2, 6, 6)), 2),
        (spx.zero_insert, np.ones((2, 3, 3)), 2),
    ],
    ids=["pixel_shuffle", "pixel_unshuffle", "zero_insert"],
)
def test_bad_out_for_data_movement(fn, x, arg) -> None:
    shape = fn(x, arg).shape
    ro = np.zeros(shape)
    ro.setflags(write=False)
    cases = [
        (np.zeros(shape[:-1] + (shape[-1] + 1,)), ValueError, r"out must have shape"),
        (np.zeros(shape, np.float32), ValueError, r"out must have dtype float64"),
        (np.zeros(shape[:-1] + (2 * shape[-1],))[..., ::2], ValueError, r"C-contiguous"),
        (ro, ValueError, r"out is read-only"),
        (np.zeros(shape).tolist(), TypeError, r"out must be a numpy.ndarray"),
    ]
    for out, exc, match in cases:
        with pytest.raises(exc, match=match):
            fn(x, arg, out=out)
    # the identity factor makes out=x the right shape: it overlaps the input
    with pytest.raises(ValueError, match="out overlaps an input"):
        fn(x, 1, out=x)
    buf = np.zeros(2 * x.size + np.prod(shape))
    x_view = buf[: x.size].reshape(x.shape)
    x_view[...] = x
    with pytest.raises(ValueError, match="out overlaps an input"):
        fn(x_view, arg, out=buf[x.size - 1 : x.size - 1 + np.prod(shape)].reshape(shape))
    np.testing.assert_array_equal(x_view, x)


def test_out_overlapping_a_converted_input_is_refused() -> None:
    # x is float32 but the call computes in float64 (weight is float64), so x is converted to a
    # copy before the native call: the overlap must still be caught against the original.
    buf = np.zeros(200)
    x = buf[:8].view(np.float32).reshape(1, 1, 4, 4)
    w = np.ones((1, 1, 4, 4))
    with pytest.raises(ValueError, match="overlaps"):
        spx.conv_transpose2d(x, w, stride=2, out=buf[:100].reshape(1, 1, 10, 10))
    assert not buf[:100].any(), "a refused call must not write out"
    with pytest.raises(ValueError, match="overlaps"):
        spx.conv2d(buf[:16].reshape(1, 1, 4, 4), w[:, :, :3, :3], out=buf[10:14].reshape(1, 1, 2, 2))


_NONE_CALLS = {
    "conv_transpose1d": (np.ones((4, 1, 1)),), "conv_transpose2d": (np.ones((4, 1, 1, 1)),),
    "conv_transpose3d": (np.ones((4, 1, 1, 1, 1)),), "conv1d": (np.ones((4, 1, 1)),),
    "conv2d": (np.ones((4, 1, 1, 1)),), "conv3d": (np.ones((4, 1, 1, 1, 1)),),
    "subpixel_conv1d": (np.ones((4, 1, 1)), 2), "subpixel_conv2d": (np.ones((4, 1, 1, 1)), 2),
    "subpixel_conv3d": (np.ones((8, 1, 1, 1, 1)), 2),
}


@pytest.mark.parametrize("op", sorted(_NONE_CALLS))
def test_none_as_input_is_a_type_error(op: str) -> None:
    # Was an AssertionError (AttributeError under python -O), in 2-D; now every rank.
    with pytest.raises(TypeError):
        getattr(spx, op)(None, *_NONE_CALLS[op])
    with pytest.raises(TypeError):  # and None as the weight
        getattr(spx, op)(np.ones((1, 1) + (1,) * int(op[-2])), None, *_NONE_CALLS[op][1:])
