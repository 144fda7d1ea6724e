"""spx.conv2d against the NumPy oracle (subpixel_ext.reference.conv2d)."""

from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import subpixel_ext as spx
from subpixel_ext import reference as ref

from _helpers import (
    F32,
    F64,
    assert_close,
    ceil_div,
    check_against_oracle,
    conv_inputs,
    conv_out_len,
    inputs_for,
    oracle,
    random_array,
    to_layout,
)
from strategies import conv2d_configs

DTYPES = [F32, F64]


def run(
    rng: np.random.Generator,
    *,
    n: Optional[int] = 2,
    c_in: int = 3,
    c_out: int = 4,
    hw: Tuple[int, int] = (7, 8),
    kernel: Tuple[int, int] = (3, 3),
    groups: int = 1,
    layout: str = "NCHW",
    dtype: Any = F64,
    bias: bool = True,
    **kwargs: Any,
) -> np.ndarray:
    x, w, b = conv_inputs(
        rng, n=n, c_in=c_in, c_out=c_out, hw=hw, kernel=kernel, groups=groups,
        transposed=False, layout=layout, dtype=dtype, bias=bias,
    )
    return check_against_oracle(
        spx.conv2d, ref.conv2d, (x, w, b), dtype, layout=layout, groups=groups,
        what=f"layout={layout} dtype={np.dtype(dtype)} {kwargs}", **kwargs,
    )


@pytest.mark.parametrize("kernel", [(1, 1), (2, 2), (3, 3), (5, 5), (1, 4), (4, 2)], ids=str)
@pytest.mark.parametrize("stride", [(1, 1), (2, 2), (3, 3), (1, 3), (3, 2)], ids=str)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_stride_kernel_grid(rng, dtype, stride, kernel) -> None:
    y = run(rng, dtype=dtype, stride=stride, kernel=kernel)
    assert y.shape == (2, 4, conv_out_len(7, kernel[0], stride[0], 1, 0, 0),
                       conv_out_len(8, kernel[1], stride[1], 1, 0, 0))


@pytest.mark.parametrize("width", [1, 2, 3, 7, 8, 9, 16, 17, 33, 40], ids=str)
@pytest.mark.parametrize("stride", [2, 3, 4, 5, 17], ids=str)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_strided_rows_of_every_width_and_padding(rng, dtype, stride, width) -> None:
    """Channels-first frames split each input row by the column stride (vector code for whole
    groups, element by element at the ends): every width, phase of the padding and stride."""
    for pad in range(4):
        if width + 2 * pad < 3:
            continue
        run(rng, n=1, c_in=2, c_out=3, hw=(3, width), kernel=(1, 3), dtype=dtype, stride=(1, stride), padding=(0, pad))


@pytest.mark.parametrize("hw", [(1, 1), (5, 5), (6, 7), (8, 3)], ids=str)
@pytest.mark.parametrize("kernel, dilation", [((1, 1), 1), ((2, 2), 1), ((3, 2), 1), ((4, 5), 1), ((3, 3), (2, 3)),
                                              ((2, 3), 2)], ids=str)
@pytest.mark.parametrize("stride", [1, 2, 3, (3, 1), (2, 3)], ids=str)
def test_same_padding(rng, stride, kernel, dilation, hw) -> None:
    # TensorFlow SAME: ceil(H / stride) outputs, odd extra padding at the bottom/right
    s = stride if isinstance(stride, tuple) else (stride, stride)
    for layout in ("NCHW", "NHWC"):
        y = run(rng, stride=stride, kernel=kernel, dilation=dilation, padding="same", hw=hw, layout=layout)
        spatial = y.shape[2:] if layout == "NCHW" else y.shape[1:3]
        assert spatial == (ceil_div(hw[0], s[0]), ceil_div(hw[1], s[1]))


def test_same_padding_puts_the_odd_extra_row_at_the_end() -> None:
    # 2x2 kernel of ones, stride 1: total padding 1, all of it at the bottom/right.
    x = np.arange(1.0, 10.0).reshape(1, 1, 3, 3)
    y = spx.conv2d(x, np.ones((1, 1, 2, 2)), padding="same")
    expected = np.array([[12.0, 16.0, 9.0], [24.0, 28.0, 15.0], [15.0, 17.0, 9.0]])
    np.testing.assert_array_equal(y[0, 0], expected)


@pytest.mark.parametrize(
    "padding",
    [0, 1, 2, (0, 2), (2, 1), ((1, 0), (0, 2)), ((0, 3), (2, 0)), ((3, 3), (1, 4)), "valid", "same"],
    ids=str,
)
@pytest.mark.parametrize("stride, dilation", [(1, 1), (2, 1), (1, 2), ((2, 3), (3, 1)), (3, 2)], ids=str)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_padding_and_dilation(rng, dtype, stride, dilation, padding) -> None:
    run(rng, dtype=dtype, stride=stride, dilation=dilation, padding=padding, kernel=(3, 2), hw=(7, 8))


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
@pytest.mark.parametrize("groups, c_in, c_out", [(1, 3, 4), (2, 2, 2), (2, 4, 6), (3, 3, 3), (3, 6, 9), (3, 9, 3),
                                                  (2, 6, 70)])
def test_groups(rng, groups, c_in, c_out, layout, bias) -> None:
    run(rng, groups=groups, c_in=c_in, c_out=c_out, layout=layout, bias=bias, stride=(2, 1),
        padding=((1, 0), (2, 1)), dilation=(1, 2), dtype=F32 if bias else F64)


def test_groups_keep_channels_apart(rng) -> None:
    x, w, b = conv_inputs(rng, n=1, c_in=6, c_out=3, hw=(5, 5), kernel=(3, 3), groups=3, transposed=False)
    y0 = spx.conv2d(x, w, b, padding=1, groups=3)
    x2 = x.copy()
    x2[:, 2:4] -= 2.0  # group 1's inputs
    y1 = spx.conv2d(x2, w, b, padding=1, groups=3)
    np.testing.assert_array_equal(y0[:, [0, 2]], y1[:, [0, 2]])
    assert not np.allclose(y0[:, 1], y1[:, 1])


@pytest.mark.parametrize("batched", [True, False], ids=["batched", "unbatched"])
@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_layouts_and_batching(rng, dtype, layout, batched) -> None:
    y = run(rng, dtype=dtype, layout=layout, n=3 if batched else None, c_in=5, c_out=7, hw=(9, 6),
            kernel=(3, 4), stride=(2, 1), padding=((0, 2), (1, 1)))
    out_hw = (conv_out_len(9, 3, 2, 1, 0, 2), conv_out_len(6, 4, 1, 1, 1, 1))
    assert y.shape == to_layout((3, 7) + out_hw, layout, batched)


def test_nhwc_equals_transposed_nchw(rng) -> None:
    x, w, b = conv_inputs(rng, n=2, c_in=5, c_out=6, hw=(8, 9), kernel=(3, 2), transposed=False)
    kw: Dict[str, Any] = dict(stride=(2, 3), padding=((2, 0), (1, 1)), dilation=(1, 2))
    y = spx.conv2d(x, w, b, **kw)
    y_nhwc = spx.conv2d(np.ascontiguousarray(x.transpose(0, 2, 3, 1)), w, b, layout="NHWC", **kw)
    assert_close(y_nhwc, y.transpose(0, 2, 3, 1), F64)
    assert_close(spx.conv2d(x[1], w, b, **kw), y[1], F64)


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
def test_batch_zero_and_thin_images(rng, layout) -> None:
    x, w, b = conv_inputs(rng, n=0, c_in=2, c_out=3, hw=(5, 4), kernel=(3, 3), transposed=False, layout=layout)
    y = spx.conv2d(x, w, b, padding=1, layout=layout)
    assert y.shape == to_layout((0, 3, 5, 4), layout) and y.dtype == F64
    for hw, kernel, padding, stride in [((1, 1), (1, 1), 0, 1), ((1, 1), (3, 3), 1, 1), ((1, 9), (1, 3), 0, 2),
                                        ((9, 1), (2, 1), "same", 3), ((1, 1), (2, 2), "same", 2)]:
        run(rng, hw=hw, kernel=kernel, padding=padding, stride=stride, layout=layout)


def test_kernel_exactly_fills_the_padded_input(rng) -> None:
    # The boundary of "kernel larger than the padded input": equal sizes give a 1x1 output.
    for padding in [0, ((1, 0), (0, 2))]:
        hw = (4, 3) if padding == 0 else (3, 1)
        y = run(rng, hw=hw, kernel=(4, 3), padding=padding)
        assert y.shape[2:] == (1, 1)


def test_bias_adds_per_channel(rng) -> None:
    x, w, b = conv_inputs(rng, n=2, c_in=3, c_out=4, hw=(5, 5), kernel=(3, 3), transposed=False)
    diff = spx.conv2d(x, w, b, 2, 1) - spx.conv2d(x, w, None, 2, 1)
    assert_close(diff, np.broadcast_to(b[None, :, None, None], diff.shape), F64)


@given(cfg=conv2d_configs(), seed=st.integers(0, 2**32 - 1))
def test_random_configs_match_oracle(cfg, seed) -> None:
    rng = np.random.default_rng(seed)
    x, w, b = inputs_for(rng, cfg, transposed=False)
    kw = dict(cfg["kwargs"], layout=cfg["layout"])
    expected, scale = oracle(ref.conv2d, x, w, b, **kw)
    assert_close(spx.conv2d(x, w, b, **kw), expected, cfg["dtype"], scale)


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_out_is_written_and_returned(rng, dtype, layout) -> None:
    for n in (2, None):
        x, w, b = conv_inputs(rng, n=n, c_in=3, c_out=4, hw=(6, 5), kernel=(3, 2), transposed=False,
                              layout=layout, dtype=dtype)
        kw: Dict[str, Any] = dict(stride=(2, 1), padding="same", layout=layout)
        expected, scale = oracle(ref.conv2d, x, w, b, **kw)
        out = np.full(expected.shape, np.nan, dtype)
        assert spx.conv2d(x, w, b, out=out, **kw) is out
        assert_close(out, expected, dtype, scale)


@pytest.mark.parametrize("kind", ["readonly", "noncontiguous", "fortran", "bigendian"])
def test_inputs_are_never_modified(rng, kind) -> None:
    x, w, b = conv_inputs(rng, n=2, c_in=4, c_out=6, hw=(6, 7), kernel=(3, 2), groups=2, transposed=False)

    def variant(a: np.ndarray) -> np.ndarray:
        if kind == "readonly":
            a = a.copy()
            a.setflags(write=False)
            return a
        if kind == "noncontiguous":
            big = np.zeros(a.shape + (3,))
            big[..., 1] = a
            return big[..., 1]
        if kind == "fortran":
            return np.asfortranarray(a)
        return a.astype(">f8")

    xs, ws, bs = variant(x), variant(w), variant(b)
    copies = [(a, a.copy()) for a in (xs, ws, bs)]
    kw: Dict[str, Any] = dict(stride=(1, 2), padding=((1, 0), (0, 1)), groups=2)
    y = spx.conv2d(xs, ws, bs, **kw)
    expected, scale = oracle(ref.conv2d, x, w, b, **kw)
    assert_close(y, expected, F64, scale)
    for a, c in copies:
        np.testing.assert_array_equal(a, c)
        assert a.dtype == c.dtype


@pytest.mark.parametrize(
    "xdt, wdt, bdt, expected",
    [
        (np.float16, np.float16, np.float32, F32),
        (np.float16, np.float32, np.float16, F32),
        (np.float32, np.float64, None, F64),
        (np.float32, np.float32, np.float64, F64),
        (np.int32, np.float32, None, F64),
        (np.uint16, np.int8, np.int64, F64),
    ],
    ids=str,
)
def test_result_dtype(rng, xdt, wdt, bdt, expected) -> None:
    def make(shape, dt):
        if np.dtype(dt).kind in "iu":
            return rng.integers(0, 5, shape).astype(dt)
        return random_array(rng, shape, dt)

    x, w = make((1, 2, 5, 5), xdt), make((3, 2, 2, 3), wdt)
    b = None if bdt is None else make((3,), bdt)
    expected_y, scale = oracle(ref.conv2d, x, w, b, padding=1)
    assert_close(spx.conv2d(x, w, b, padding=1), expected_y, expected, scale)


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
def test_nan_and_inf_propagate_like_the_oracle(rng, layout) -> None:
    x, w, b = conv_inputs(rng, n=2, c_in=3, c_out=4, hw=(6, 7), kernel=(3, 2), transposed=False, layout=layout)
    x[(0, 1, 1, 2) if layout == "NCHW" else (0, 1, 2, 1)] = np.nan
    x[(1, 0, 4, 4) if layout == "NCHW" else (1, 4, 4, 0)] = np.inf
    x[(1, 2, 4, 5) if layout == "NCHW" else (1, 4, 5, 2)] = -np.inf
    w[2, 1, 0, 1] = np.nan  # with zero padding, every output of channel 2 touches it
    b[3] = -np.inf
    for padding in (0, 1, ((2, 0), (0, 1))):
        kw: Dict[str, Any] = dict(stride=(1, 2), padding=padding, layout=layout)
        expected, scale = oracle(ref.conv2d, x, w, b, **kw)
        assert np.isnan(expected).any() and np.isfinite(expected).any()
        assert_close(spx.conv2d(x, w, b, **kw), expected, F64, scale)
