"""The backward ops (NumPy API): native gradients against the oracle's (the adjoint of each
forward definition), against finite differences of the native forward, against PyTorch
autograd, bit-identical for any thread count and at every SIMD level, with the forward ops'
argument errors."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from typing import Any, Dict, Optional, Tuple

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import subpixel_ext as spx
from subpixel_ext import reference as ref

from _helpers import assert_close, nd_conv_inputs, random_array
from strategies import layout_of, nd_conv_configs, nd_conv_transpose_configs, nd_inputs_for

ND_SETTINGS = settings(
    max_examples=max(10, settings.default.max_examples // 4),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
NAMES = {"conv_transpose": "conv_transpose", "conv": "conv"}
MASKS = [(True, True, True), (True, False, False), (False, True, True), (False, False, True)]


def _forward_and_backward(kind: str, rank: int) -> Tuple[Any, Any, Any]:
    name = f"{NAMES[kind]}{rank}d"
    return getattr(spx, name), getattr(spx, f"{name}_backward"), getattr(ref, f"{name}_backward")


def _oracle_gradients(ref_fn: Any, gy: np.ndarray, x: np.ndarray, w: np.ndarray, **kwargs: Any) -> Tuple[Any, Any]:
    """(expected, scale) per gradient: the oracle in float64, and on absolute values."""
    f64 = [np.asarray(a, np.float64) for a in (gy, x, w)]
    expected = ref_fn(*f64, **kwargs)
    scale = ref_fn(*[np.abs(a) for a in f64], **kwargs)
    return expected, scale


def _check(
    kind: str, rank: int, gy: np.ndarray, x: np.ndarray, w: np.ndarray, dtype: Any,
    kwargs: Dict[str, Any], native_kw: Dict[str, Any],
) -> Tuple[Optional[np.ndarray], ...]:
    _, backward, ref_backward = _forward_and_backward(kind, rank)
    got = backward(gy, x, w, **kwargs, **native_kw)
    expected, scale = _oracle_gradients(ref_backward, gy, x, w, **kwargs)
    for name, g, e, s in zip(("grad_input", "grad_weight", "grad_bias"), got, expected, scale):
        if e is None:
            assert g is None, name
        else:
            assert_close(g, e, dtype, s, what=f"{name} {kwargs}")
    return got


def _grad_output(rng: np.random.Generator, forward: Any, x: np.ndarray, w: np.ndarray, dtype: Any, **kwargs: Any) -> np.ndarray:
    shape = forward(x, w, **kwargs).shape
    return random_array(rng, shape, dtype)


def _run_config(cfg: Dict[str, Any], seed: int, mask: Tuple[bool, bool, bool], native_kw: Dict[str, Any]) -> None:
    rank, kind = cfg["rank"], cfg["kind"]
    rng = np.random.default_rng(seed)
    x, w, _ = nd_inputs_for(rng, cfg)
    forward, backward, _ = _forward_and_backward(kind, rank)
    kwargs = dict(cfg["kwargs"], layout=layout_of(cfg))
    gy = _grad_output(rng, forward, x, w, cfg["dtype"], **kwargs)
    got = _check(kind, rank, gy, x, w, cfg["dtype"], dict(kwargs, output_mask=mask), native_kw)
    # Deterministic: bit-identical for another thread count.
    again = backward(gy, x, w, **kwargs, output_mask=mask, num_threads=3, method=native_kw["method"])
    for a, b in zip(got, again):
        assert (a is None and b is None) or np.array_equal(a, b, equal_nan=True)


@pytest.mark.parametrize("rank", [1, 2, 3])
@ND_SETTINGS
@given(data=st.data())
def test_property_conv_transpose_backward(rank: int, data: st.DataObject) -> None:
    cfg = data.draw(nd_conv_transpose_configs(rank))
    native_kw = dict(method=data.draw(st.sampled_from(["auto", "direct", "polyphase"])),
                     num_threads=data.draw(st.sampled_from([None, 1, 2])))
    _run_config(cfg, data.draw(st.integers(0, 2**31)), data.draw(st.sampled_from(MASKS)), native_kw)


@pytest.mark.parametrize("rank", [1, 2, 3])
@ND_SETTINGS
@given(data=st.data())
def test_property_conv_backward(rank: int, data: st.DataObject) -> None:
    cfg = data.draw(nd_conv_configs(rank))
    native_kw = dict(method=data.draw(st.sampled_from(["auto", "direct", "polyphase"])),
                     num_threads=data.draw(st.sampled_from([None, 1, 2])))
    _run_config(cfg, data.draw(st.integers(0, 2**31)), data.draw(st.sampled_from(MASKS)), native_kw)


# Hand-picked geometry: kernel < stride (empty phases), kernel not a multiple of the stride,
# dilation, groups, asymmetric padding, output_padding, length-1 axes, batch 0, unbatched.
TRANSPOSED_CASES = [
    dict(n=2, c_in=4, c_out=6, spatial=(7, 6), kernel=(3, 4), kwargs=dict(stride=2, padding=1)),
    dict(n=1, c_in=3, c_out=2, spatial=(5, 4), kernel=(1, 2), kwargs=dict(stride=(3, 4))),
    dict(n=2, c_in=4, c_out=4, spatial=(4, 5), kernel=(3, 3),
         kwargs=dict(stride=2, padding=((0, 2), (1, 0)), output_padding=1, groups=2, dilation=(2, 1))),
    dict(n=1, c_in=2, c_out=3, spatial=(1, 1), kernel=(2, 3), kwargs=dict(stride=3, dilation=2, output_padding=(2, 1))),
    dict(n=0, c_in=2, c_out=3, spatial=(3, 3), kernel=(3, 3), kwargs=dict(stride=2)),
    dict(n=None, c_in=2, c_out=3, spatial=(4, 3), kernel=(4, 4), kwargs=dict(stride=2, padding="same")),
    dict(n=2, c_in=16, c_out=24, spatial=(9, 11), kernel=(4, 4), kwargs=dict(stride=2, padding=1)),
]
CONV_CASES = [
    dict(n=2, c_in=4, c_out=6, spatial=(7, 6), kernel=(3, 2), kwargs=dict(stride=2, padding=1)),
    dict(n=1, c_in=4, c_out=4, spatial=(9, 8), kernel=(3, 3),
         kwargs=dict(stride=(3, 2), padding=((2, 0), (0, 1)), dilation=(1, 2), groups=2)),
    dict(n=2, c_in=3, c_out=2, spatial=(1, 5), kernel=(1, 3), kwargs=dict(padding="same", stride=2)),
    dict(n=0, c_in=2, c_out=3, spatial=(5, 5), kernel=(3, 3), kwargs=dict()),
    dict(n=None, c_in=3, c_out=6, spatial=(6, 7), kernel=(2, 2), kwargs=dict(stride=2, groups=3)),
    dict(n=2, c_in=16, c_out=24, spatial=(13, 12), kernel=(3, 3), kwargs=dict(padding=1)),
]


@pytest.mark.parametrize("kind,case", [("conv_transpose", c) for c in TRANSPOSED_CASES] + [("conv", c) for c in CONV_CASES])
@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_backward_cases(kind: str, case: Dict[str, Any], channels_last: bool, dtype: Any) -> None:
    rng = np.random.default_rng(7)
    spec = {k: v for k, v in case.items() if k != "kwargs"}
    x, w, _ = nd_conv_inputs(rng, kind=kind, channels_last=channels_last, dtype=dtype, bias=False,
                             groups=case["kwargs"].get("groups", 1), **spec)
    kwargs = dict(case["kwargs"], layout="NHWC" if channels_last else "NCHW")
    forward, _, _ = _forward_and_backward(kind, 2)
    gy = _grad_output(rng, forward, x, w, dtype, **kwargs)
    for method in ("direct", "polyphase"):
        for threads in (1, 2):
            _check(kind, 2, gy, x, w, np.dtype(dtype), kwargs, dict(method=method, num_threads=threads))


@pytest.mark.parametrize("kind", ["conv_transpose", "conv"])
@pytest.mark.parametrize("rank", [1, 2, 3])
def test_finite_differences(kind: str, rank: int) -> None:
    """<grad_output, dy> for a small step of x (and of w) is what the gradients predict."""
    rng = np.random.default_rng(rank)
    spatial, kernel = {1: ((9,), (4,)), 2: ((5, 6), (3, 4)), 3: ((3, 4, 3), (2, 3, 2))}[rank]
    x, w, _ = nd_conv_inputs(rng, n=2, c_in=4, c_out=4, spatial=spatial, kernel=kernel, groups=2, kind=kind,
                             bias=False)
    kwargs = dict(stride=2, padding=1, dilation=1, groups=2)
    forward, backward, _ = _forward_and_backward(kind, rank)
    b = random_array(rng, (4,))
    gy = _grad_output(rng, forward, x, w, np.float64, **kwargs)
    gx, gw, gb = backward(gy, x, w, **kwargs)
    dx, dw, db = random_array(rng, x.shape), random_array(rng, w.shape), random_array(rng, (4,))
    eps = 1e-4
    for predicted, step in ((np.vdot(gx, dx), (dx, 0, 0)), (np.vdot(gw, dw), (0, dw, 0)), (np.vdot(gb, db), (0, 0, db))):
        up = forward(x + eps * step[0], w + eps * step[1], b + eps * step[2], **kwargs)
        down = forward(x - eps * step[0], w - eps * step[1], b - eps * step[2], **kwargs)
        measured = np.vdot(gy, up - down) / (2 * eps)
        assert abs(measured - predicted) <= 1e-6 * (1 + abs(predicted)), (measured, predicted)


@pytest.mark.parametrize("kind", ["conv_transpose", "conv"])
@pytest.mark.parametrize("rank", [1, 2, 3])
@pytest.mark.parametrize("channels_last", [False, True])
def test_against_torch_autograd(kind: str, rank: int, channels_last: bool) -> None:
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(10 + rank)
    spatial, kernel = {1: ((11,), (5,)), 2: ((6, 5), (4, 3)), 3: ((4, 3, 4), (3, 2, 2))}[rank]
    x, w, b = nd_conv_inputs(rng, n=2, c_in=6, c_out=4, spatial=spatial, kernel=kernel, groups=2, kind=kind,
                             channels_last=channels_last)
    kwargs: Dict[str, Any] = dict(stride=2, padding=1, dilation=2, groups=2)
    if kind == "conv_transpose":
        kwargs["output_padding"] = 1
    layout = spx._params.LAYOUTS[rank][int(channels_last)]
    forward, backward, _ = _forward_and_backward(kind, rank)
    gy = _grad_output(rng, forward, x, w, np.float64, layout=layout, **kwargs)
    xt = torch.tensor(np.moveaxis(x, -1, 1) if channels_last else x, requires_grad=True)
    wt, bt = torch.tensor(w, requires_grad=True), torch.tensor(b, requires_grad=True)
    fn = getattr(torch.nn.functional, f"{NAMES[kind]}{rank}d")
    yt = fn(xt, wt, bt, **kwargs)
    yt.backward(torch.tensor(np.moveaxis(gy, -1, 1) if channels_last else gy))
    gx, gw, gb = backward(gy, x, w, layout=layout, **kwargs)
    torch_gx = xt.grad.numpy()
    np.testing.assert_allclose(gx, np.moveaxis(torch_gx, 1, -1) if channels_last else torch_gx, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(gw, wt.grad.numpy(), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(gb, bt.grad.numpy(), rtol=1e-10, atol=1e-10)


def test_inputs_are_not_modified_and_dtype_follows_the_inputs() -> None:
    rng = np.random.default_rng(3)
    x, w, _ = nd_conv_inputs(rng, n=2, c_in=3, c_out=2, spatial=(5, 5), kernel=(3, 3), dtype=np.float32)
    gy = random_array(rng, spx.conv_transpose2d(x, w, stride=2).shape, np.float32)
    copies = [a.copy() for a in (gy, x, w)]
    grads = spx.conv_transpose2d_backward(gy, x, w, stride=2)
    assert all(np.array_equal(a, c) for a, c in zip((gy, x, w), copies))
    assert [g.dtype for g in grads] == [np.float32] * 3
    assert [g.dtype for g in spx.conv_transpose2d_backward(gy.astype(np.float64), x, w, stride=2)] == [np.float64] * 3


@pytest.mark.parametrize(
    "call,message",
    [
        (lambda gy, x, w: spx.conv_transpose2d_backward(gy[:, :, :-1], x, w, stride=2),
         r"grad_output must have the forward result's shape \(2, 2, 10, 10\)"),
        (lambda gy, x, w: spx.conv_transpose2d_backward(gy, x, w, stride=0), "stride must be >= 1, got 0"),
        (lambda gy, x, w: spx.conv_transpose2d_backward(gy, x, w, stride=2, groups=2), "groups=2 does not divide"),
        (lambda gy, x, w: spx.conv_transpose2d_backward(gy, x, w, stride=2, output_mask=(True, False)),
         "output_mask must be a sequence of 3 bools"),
        (lambda gy, x, w: spx.conv_transpose2d_backward(gy, x, w, stride=2, method="fast"), "method must be one of"),
        (lambda gy, x, w: spx.conv_transpose2d_backward(gy, x, w, stride=2, num_threads=0), "num_threads must be"),
        (lambda gy, x, w: spx.conv_transpose2d_backward(gy, x[:, :2], w, stride=2),
         "weight expects 3 input channels"),
        (lambda gy, x, w: spx.conv2d_backward(gy, x, w), "weight expects 2 input channels"),
    ],
)
def test_errors_are_the_forward_ops(call: Any, message: str) -> None:
    rng = np.random.default_rng(4)
    x, w, _ = nd_conv_inputs(rng, n=2, c_in=3, c_out=2, spatial=(5, 5), kernel=(2, 2))
    gy = random_array(rng, spx.conv_transpose2d(x, w, stride=2).shape)
    with pytest.raises((ValueError, TypeError), match=message):
        call(gy, x, w)


SIMD_SCRIPT = textwrap.dedent(
    """
    import numpy as np
    import subpixel_ext as spx
    from subpixel_ext import reference as ref
    from _helpers import assert_close, nd_conv_inputs, random_array

    assert spx.show_config()["simd_active"] == LEVEL
    checks = 0
    for i, (rank, kind) in enumerate([(r, k) for r in (1, 2, 3) for k in ("conv_transpose", "conv")] * 2):
        rng = np.random.default_rng(i)
        dtype = np.dtype((np.float32, np.float64)[i % 2])
        spatial = {1: (37,), 2: (9, 10), 3: (4, 5, 3)}[rank]
        x, w, _ = nd_conv_inputs(rng, n=2, c_in=5, c_out=7, spatial=spatial, kernel=(3,) * rank, kind=kind,
                                 channels_last=i >= 6, dtype=dtype, bias=False)
        kwargs = dict(stride=2, padding=1, layout=spx._params.LAYOUTS[rank][int(i >= 6)])
        name = kind + str(rank) + "d"
        gy = random_array(rng, getattr(spx, name)(x, w, **kwargs).shape, dtype)
        got = getattr(spx, name + "_backward")(gy, x, w, **kwargs, num_threads=2)
        f64 = [a.astype(np.float64) for a in (gy, x, w)]
        expected = getattr(ref, name + "_backward")(*f64, **kwargs)
        scale = getattr(ref, name + "_backward")(*[np.abs(a) for a in f64], **kwargs)
        for g, e, s in zip(got, expected, scale):
            assert_close(g, e, dtype, s, what=name)
            checks += 1
    # Channels last with channels for a register tile at every level: the pixel reduction.
    for i, (rank, kind) in enumerate([(1, "conv_transpose"), (2, "conv"), (3, "conv_transpose")]):
        rng = np.random.default_rng(100 + i)
        dtype = np.dtype((np.float32, np.float64)[i % 2])
        spatial = {1: (37,), 2: (9, 10), 3: (4, 5, 3)}[rank]
        x, w, _ = nd_conv_inputs(rng, n=2, c_in=45, c_out=37, spatial=spatial, kernel=(3,) * rank, kind=kind,
                                 channels_last=True, dtype=dtype, bias=False)
        kwargs = dict(stride=2, padding=1, layout=spx._params.LAYOUTS[rank][1], output_mask=(False, True, False))
        name = kind + str(rank) + "d"
        gy = random_array(rng, getattr(spx, name)(x, w, stride=2, padding=1, layout=kwargs["layout"]).shape, dtype)
        got = getattr(spx, name + "_backward")(gy, x, w, **kwargs, num_threads=2)[1]
        f64 = [a.astype(np.float64) for a in (gy, x, w)]
        expected = getattr(ref, name + "_backward")(*f64, **kwargs)[1]
        scale = getattr(ref, name + "_backward")(*[np.abs(a) for a in f64], **kwargs)[1]
        assert_close(got, expected, dtype, scale, what=name + " channels last")
        checks += 1
    print("checks", checks)
    """
)


def test_every_supported_level_matches_the_oracle() -> None:
    levels = str(spx.show_config()["simd_supported"]).split(",")
    tests_dir = os.path.dirname(os.path.abspath(__file__))
    for level in levels:
        env = dict(os.environ, SUBPIXEL_EXT_SIMD=level, PYTHONPATH=tests_dir + os.pathsep + os.environ.get("PYTHONPATH", ""))
        code = SIMD_SCRIPT.replace("LEVEL", repr(level))
        done = subprocess.run([sys.executable, "-c", code], env=env, cwd=tests_dir, capture_output=True, text=True,
                              timeout=300)
        assert done.returncode == 0, (level, done.stderr[-3000:])
        assert done.stdout.split()[-1] == "39", (level, done.stdout)


# The weight gradient's reduction runs in chunks of 4096 steps (taps x images): shapes with
# several chunks, windows that start in the padding, and chunks that read padding only; a
# frame over a million elements (its images are the channels, one element apart channels
# last: the frame is not sparse); taps far apart, whose frame would be (summed by definition);
# channels last with channels enough for the pixel reduction but a weight too large for it.
CHUNKED = [
    ("conv_transpose", 1, dict(n=1, c_in=160, c_out=96, spatial=(70,), kernel=(16,)), dict(stride=8, padding=4)),
    ("conv_transpose", 2, dict(n=1, c_in=8, c_out=70, spatial=(64, 64), kernel=(4, 4)), dict(stride=2, padding=1)),
    ("conv", 3, dict(n=1, c_in=30, c_out=2, spatial=(3, 3, 3), kernel=(2, 2, 2)),
     dict(stride=50, dilation=100, padding=100)),
    ("conv", 2, dict(n=3, c_in=2, c_out=3, spatial=(40, 37), kernel=(3, 3)), dict(padding=2, dilation=(2, 1))),
    ("conv_transpose", 2, dict(n=1, c_in=3, c_out=2, spatial=(70, 61), kernel=(4, 3)), dict(stride=2, padding=1)),
    ("conv", 1, dict(n=2, c_in=2, c_out=2, spatial=(5000,), kernel=(5,)), dict(stride=2, padding=(3,), dilation=3)),
    ("conv", 1, dict(n=1, c_in=1, c_out=2, spatial=(100,), kernel=(3,)), dict(padding=5000)),
    ("conv_transpose", 3, dict(n=1, c_in=2, c_out=2, spatial=(20, 16, 15), kernel=(2, 3, 2)),
     dict(stride=(2, 1, 2), padding=(1, 0, 1))),
]


@pytest.mark.parametrize("kind,rank,shapes,kwargs", CHUNKED)
@pytest.mark.parametrize("channels_last", [False, True])
def test_weight_gradient_in_chunks(kind: str, rank: int, shapes: Dict[str, Any], kwargs: Dict[str, Any],
                                   channels_last: bool) -> None:
    rng = np.random.default_rng(11)
    x, w, _ = nd_conv_inputs(rng, kind=kind, bias=False, channels_last=channels_last, **shapes)
    forward, backward, _ = _forward_and_backward(kind, rank)
    kwargs = dict(kwargs, layout=layout_of(dict(rank=rank, channels_last=channels_last)))
    gy = _grad_output(rng, forward, x, w, np.float64, **kwargs)
    mask = dict(output_mask=(False, True, False))
    _check(kind, rank, gy, x, w, np.dtype(np.float64), dict(kwargs, **mask), dict(num_threads=2))
    one, two = (backward(gy, x, w, **kwargs, **mask, num_threads=t)[1] for t in (1, 2))
    assert np.array_equal(one, two)


# Channels last with enough channels per group for a register tile (at most 14 x 32 at any
# SIMD level), the weight gradient is a sum over pixels read from x's phases: channel counts
# that leave a tile block overlapping the one before on either side, both ways round (grad_y's
# channels broadcast or x's), groups, strides larger than the kernel (phases no tap reads), a
# kernel not a multiple of the stride, dilation, asymmetric padding, output_padding, length-1
# axes, several images, sums just inside the cache's share (hifigan-like 1-D), pixels that
# span several chunks, and chunks that read padding only.
PIXEL_REDUCTION = [
    ("conv_transpose", 2, dict(n=2, c_in=37, c_out=45, spatial=(9, 11), kernel=(4, 4)), dict(stride=2, padding=1)),
    ("conv_transpose", 2, dict(n=1, c_in=14, c_out=64, spatial=(6, 5), kernel=(3, 2)),
     dict(stride=(3, 4), padding=((0, 2), (1, 0)), output_padding=(1, 2))),
    ("conv_transpose", 2, dict(n=1, c_in=80, c_out=20, spatial=(5, 7), kernel=(3, 3)), dict(stride=2, dilation=(2, 1))),
    ("conv_transpose", 1, dict(n=1, c_in=64, c_out=40, spatial=(70,), kernel=(16,)), dict(stride=8, padding=4)),
    ("conv_transpose", 3, dict(n=1, c_in=40, c_out=33, spatial=(6, 1, 7), kernel=(2, 2, 2)), dict(stride=2)),
    ("conv_transpose", 2, dict(n=3, c_in=64, c_out=64, spatial=(40, 9), kernel=(4, 4)),
     dict(stride=2, padding=1, groups=2)),
    ("conv", 2, dict(n=2, c_in=33, c_out=50, spatial=(13, 12), kernel=(3, 3)), dict(padding=((2, 0), (0, 1)))),
    ("conv", 2, dict(n=1, c_in=64, c_out=28, spatial=(17, 15), kernel=(3, 2)), dict(stride=(3, 2), dilation=(1, 2))),
    ("conv", 3, dict(n=2, c_in=36, c_out=40, spatial=(5, 6, 4), kernel=(3, 1, 2)), dict(stride=(1, 2, 1), padding=1)),
    ("conv", 1, dict(n=2, c_in=96, c_out=96, spatial=(300,), kernel=(5,)), dict(stride=2, padding=3, groups=3)),
    ("conv", 2, dict(n=1, c_in=64, c_out=64, spatial=(96, 40), kernel=(3, 3)), dict(padding=1)),
    ("conv", 1, dict(n=1, c_in=40, c_out=40, spatial=(50,), kernel=(3,)), dict(padding=30000)),
]


@pytest.mark.parametrize("kind,rank,shapes,kwargs", PIXEL_REDUCTION)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_channels_last_weight_gradient_summed_over_pixels(kind: str, rank: int, shapes: Dict[str, Any],
                                                         kwargs: Dict[str, Any], dtype: Any) -> None:
    rng = np.random.default_rng(21)
    x, w, _ = nd_conv_inputs(rng, kind=kind, bias=False, channels_last=True, dtype=dtype,
                             groups=kwargs.get("groups", 1), **shapes)
    forward, backward, _ = _forward_and_backward(kind, rank)
    kwargs = dict(kwargs, layout=layout_of(dict(rank=rank, channels_last=True)))
    gy = _grad_output(rng, forward, x, w, dtype, **kwargs)
    mask = dict(output_mask=(False, True, False))
    before = (x.copy(), gy.copy())
    one = _check(kind, rank, gy, x, w, np.dtype(dtype), dict(kwargs, **mask), dict(num_threads=1))[1]
    for threads in (2, 3):
        assert np.array_equal(one, backward(gy, x, w, **kwargs, **mask, num_threads=threads)[1]), threads
    assert np.array_equal(before[0], x) and np.array_equal(before[1], gy)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_weight_gradient_is_the_same_bits_in_either_layout(dtype: Any) -> None:
    """Channels last with too few channels for the pixel reduction, x is transposed to channels
    first before the same reduction: channel counts of every de-interleave path (above 16:
    blocks of 4 and a remainder), and widths that leave a remainder."""
    rng = np.random.default_rng(13)
    for c_in in (1, 3, 4, 5, 13, 17, 20, 23):
        for width in (1, 3, 4, 70):
            x, w, _ = nd_conv_inputs(rng, n=2, c_in=c_in, c_out=3, spatial=(6, width), kernel=(3, 2), dtype=dtype, bias=False)
            gy = _grad_output(rng, spx.conv_transpose2d, x, w, dtype, stride=2)
            first = spx.conv_transpose2d_backward(gy, x, w, stride=2, output_mask=(False, True, False))[1]
            last = spx.conv_transpose2d_backward(np.ascontiguousarray(np.moveaxis(gy, 1, -1)),
                                                 np.ascontiguousarray(np.moveaxis(x, 1, -1)), w, stride=2,
                                                 layout="NHWC", output_mask=(False, True, False))[1]
            assert np.array_equal(first, last), (c_in, width)


def test_bias_gradient_of_a_large_tensor_on_several_threads() -> None:
    """Above 2**24 elements the bias gradient runs in parallel: the same bits, the exact sum."""
    rng = np.random.default_rng(12)
    x = random_array(rng, (1, 1, 2048, 2048), np.float32)
    w = random_array(rng, (4, 1, 1, 1), np.float32)
    for layout, gy in (("NCHW", random_array(rng, (1, 4, 2048, 2048), np.float32)),
                       ("NHWC", random_array(rng, (1, 2048, 2048, 4), np.float32))):
        xl = x if layout == "NCHW" else np.ascontiguousarray(np.moveaxis(x, 1, -1))
        one, two = (spx.conv2d_backward(gy, xl, w, layout=layout, output_mask=(False, False, True), num_threads=t)[2]
                    for t in (1, 2))
        assert np.array_equal(one, two)
        exact = gy.astype(np.float64).sum(axis=(0, 2, 3) if layout == "NCHW" else (0, 1, 2))
        np.testing.assert_allclose(one, exact, rtol=1e-6)


@pytest.mark.parametrize("kind", ["conv_transpose", "conv"])
def test_half_precision_is_computed_in_float32_and_rounded_once(kind: str) -> None:
    rng = np.random.default_rng(13)
    x, w, _ = nd_conv_inputs(rng, n=2, c_in=4, c_out=6, spatial=(9, 8), kernel=(3, 3), kind=kind, dtype=np.float16,
                             bias=False)
    forward, backward, ref_backward = _forward_and_backward(kind, 2)
    gy = _grad_output(rng, forward, x, w, np.float16, stride=2, padding=1)
    got = backward(gy, x, w, stride=2, padding=1)
    exact = ref_backward(*(a.astype(np.float64) for a in (gy, x, w)), stride=2, padding=1)
    for g, e in zip(got, exact):
        assert g.dtype == np.float16
        # float32 accumulation, one rounding to float16: within a float16 ulp of the exact value
        np.testing.assert_allclose(g.astype(np.float64), e, rtol=2**-10, atol=2**-10 * np.abs(e).max())
