"""subpixel_conv2d, pixel_shuffle / pixel_unshuffle, zero_insert and split_kernel against the oracle."""

from __future__ import annotations

import math
from typing import Any, Dict, Optional, Tuple

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import subpixel_ext as spx
from subpixel_ext import reference as ref

from _helpers import F32, F64, assert_close, conv_inputs, oracle, random_array, to_layout

LAYOUTS = ["NCHW", "NHWC"]
MODES = ["CRD", "DCR"]


def _native_sp(x, w, b, **kw):
    return spx.subpixel_conv2d(x, w, bias=b, **kw)


def _ref_sp(x, w, b, **kw):
    return ref.subpixel_conv2d(x, w, bias=b, **kw)


def run_subpixel(
    rng: np.random.Generator,
    *,
    factor: Any,
    channels: int = 2,
    c_in: int = 3,
    n: Optional[int] = 2,
    hw: Tuple[int, int] = (5, 6),
    kernel: Tuple[int, int] = (3, 3),
    groups: int = 1,
    layout: str = "NCHW",
    mode: str = "CRD",
    dtype: Any = F64,
    bias: bool = True,
    **kwargs: Any,
) -> np.ndarray:
    r = factor if isinstance(factor, tuple) else (factor, factor)
    x, w, b = conv_inputs(rng, n=n, c_in=c_in, c_out=channels * r[0] * r[1], hw=hw, kernel=kernel,
                          groups=groups, transposed=False, layout=layout, dtype=dtype, bias=bias)
    kw = dict(kwargs, upscale_factor=factor, groups=groups, layout=layout, mode=mode)
    y = _native_sp(x, w, b, **kw)
    expected, scale = oracle(_ref_sp, x, w, b, **kw)
    assert_close(y, expected, dtype, scale, what=repr(kw))
    return y


FACTORS = [1, 2, 3, (1, 3), (3, 2), (2, 1)]


@pytest.mark.parametrize("dtype", [F32, F64], ids=str)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("factor", FACTORS, ids=str)
def test_factors_modes_layouts(rng, factor, mode, layout, dtype) -> None:
    r = factor if isinstance(factor, tuple) else (factor, factor)
    for n in (2, None):
        y = run_subpixel(rng, factor=factor, mode=mode, layout=layout, dtype=dtype, n=n, padding=1)
        assert y.shape == to_layout((2, 2, 5 * r[0], 6 * r[1]), layout, batched=n is not None)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    "factor, channels, c_in, groups",
    [
        (2, 3, 2, 2),        # 12 conv channels, 6 per group: not a multiple of r*r = 4
        (2, 3, 3, 3),        # 4 per group
        ((1, 3), 2, 3, 3),   # 6 conv channels, 2 per group, r*r = 3
        (3, 1, 3, 3),        # 9 conv channels, 3 per group, r*r = 9
        ((3, 2), 2, 4, 4),   # 12 conv channels, 3 per group, r*r = 6
        (2, 4, 4, 2),        # 16 conv channels, 8 per group
        (2, 2, 6, 2),
    ],
    ids=str,
)
def test_groups(rng, factor, channels, c_in, groups, mode, layout) -> None:
    for bias in (True, False):
        run_subpixel(rng, factor=factor, channels=channels, c_in=c_in, groups=groups, mode=mode,
                     layout=layout, bias=bias, padding=((1, 0), (0, 1)), kernel=(2, 2))


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    "kwargs",
    [
        dict(stride=2),
        dict(stride=(1, 3), padding=2),
        dict(dilation=2, padding="same"),
        dict(dilation=(1, 2), stride=(2, 1), padding=((2, 0), (1, 3))),
        dict(padding="valid", kernel=(1, 1)),
        dict(padding="same", stride=3, kernel=(2, 4)),
        dict(padding=((0, 0), (4, 4)), kernel=(5, 2), hw=(5, 1)),
    ],
    ids=str,
)
def test_stride_dilation_padding(rng, kwargs, mode) -> None:
    for layout in LAYOUTS:
        for factor in (2, (3, 1)):
            run_subpixel(rng, factor=factor, mode=mode, layout=layout, **kwargs)


def test_matches_explicit_conv_then_shuffle_and_batch_zero(rng) -> None:
    x, w, b = conv_inputs(rng, n=2, c_in=3, c_out=12, hw=(4, 5), kernel=(3, 3), transposed=False)
    for mode in MODES:
        y = spx.subpixel_conv2d(x, w, 2, b, padding=1, mode=mode)
        two_step = spx.pixel_shuffle(spx.conv2d(x, w, b, padding=1), 2, mode=mode)
        assert_close(y, two_step, F64)
    z = spx.subpixel_conv2d(x[:0], w, 2, b, padding=1)
    assert z.shape == (0, 3, 8, 10) and z.dtype == F64


@pytest.mark.parametrize("layout", LAYOUTS)
def test_out_is_written_and_returned(rng, layout) -> None:
    x, w, b = conv_inputs(rng, n=1, c_in=2, c_out=8, hw=(3, 4), kernel=(3, 3), transposed=False,
                          layout=layout, dtype=F32)
    kw: Dict[str, Any] = dict(upscale_factor=2, padding=1, layout=layout, mode="DCR")
    expected, scale = oracle(_ref_sp, x, w, b, **kw)
    out = np.full(expected.shape, np.nan, np.float32)
    assert spx.subpixel_conv2d(x, w, bias=b, out=out, **kw) is out
    assert_close(out, expected, F32, scale)


def test_inputs_are_never_modified_and_dtypes(rng) -> None:
    x, w, b = conv_inputs(rng, n=1, c_in=2, c_out=8, hw=(3, 4), kernel=(3, 3), transposed=False)
    xs = np.asfortranarray(x).astype(">f8", order="F")
    ws = w.astype(np.float16)
    bs = b.copy()
    bs.setflags(write=False)
    copies = [(a, a.copy()) for a in (xs, ws, bs)]
    y = spx.subpixel_conv2d(xs, ws, 2, bs, padding=1)
    expected, scale = oracle(_ref_sp, x, ws, b, upscale_factor=2, padding=1)
    assert_close(y, expected, F64, scale)
    for a, c in copies:
        np.testing.assert_array_equal(a, c)
    y16 = spx.subpixel_conv2d(x.astype(np.float16), ws, 2, None, padding=1)
    assert y16.dtype == np.float16  # all inputs float16 (test_half.py checks the values)


@st.composite
def subpixel_configs(draw: st.DrawFn) -> Dict[str, Any]:
    rh, rw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    channels = draw(st.integers(1, 4))
    c_conv = channels * rh * rw
    groups = draw(st.sampled_from([g for g in (1, 2, 3, 4) if c_conv % g == 0]))
    c_in = groups * draw(st.integers(1, 2))
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    dh, dw = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    padding = draw(st.one_of(
        st.sampled_from(["same", "valid"]), st.integers(0, 2),
        st.tuples(st.tuples(st.integers(0, 3), st.integers(0, 3)), st.tuples(st.integers(0, 3), st.integers(0, 3))),
    ))
    if padding == "same":
        lo = (1, 1)
    else:
        pads = ((0, 0), (0, 0)) if padding == "valid" else (
            ((padding,) * 2, (padding,) * 2) if isinstance(padding, int) else padding)
        lo = (max(1, dh * (kh - 1) + 1 - sum(pads[0])), max(1, dw * (kw - 1) + 1 - sum(pads[1])))
    return dict(
        factor=(rh, rw) if draw(st.booleans()) or rh != rw else rh,
        channels=channels, c_in=c_in, groups=groups, kernel=(kh, kw),
        hw=(draw(st.integers(lo[0], lo[0] + 5)), draw(st.integers(lo[1], lo[1] + 5))),
        n=draw(st.sampled_from([None, 1, 2])),
        layout=draw(st.sampled_from(LAYOUTS)), mode=draw(st.sampled_from(MODES)),
        dtype=draw(st.sampled_from([F32, F64])), bias=draw(st.booleans()),
        stride=(sh, sw), dilation=(dh, dw), padding=padding,
    )


@given(cfg=subpixel_configs(), seed=st.integers(0, 2**32 - 1))
def test_random_configs_match_oracle(cfg, seed) -> None:
    run_subpixel(np.random.default_rng(seed), **cfg)


# ============================================================================ pixel (un)shuffle

SHUFFLE_CASES = [
    # (leading dims, C (low-res channels = C*rh*rw), H, W, factor)
    ((), 2, 3, 4, 2),
    ((2,), 3, 2, 5, (1, 3)),
    ((2, 3), 1, 4, 1, (3, 2)),
    ((1, 2, 2), 2, 1, 1, 2),
    ((0,), 2, 3, 3, 2),       # zero batch
    ((2,), 0, 3, 3, 2),       # zero channels
    ((2,), 2, 0, 3, 2),       # zero height
    ((3,), 2, 3, 0, (2, 3)),  # zero width
    ((), 5, 6, 7, 1),
    ((4,), 7, 9, 11, 3),
    ((2,), 2, 3, 7, (1, 21)),  # factors above 16: 4x4 register blocks and their remainders
    ((), 1, 2, 9, (2, 20)),
]


def _lo_shape(lead, c, h, w, r, layout):
    rh, rw = r
    return lead + ((c * rh * rw, h, w) if layout == "NCHW" else (h, w, c * rh * rw))


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("case", SHUFFLE_CASES, ids=str)
def test_pixel_shuffle_and_unshuffle_match_oracle_bitwise(rng, case, mode, layout) -> None:
    lead, c, h, w, factor = case
    r = factor if isinstance(factor, tuple) else (factor, factor)
    for dtype in (F32, F64):
        lo = random_array(rng, _lo_shape(lead, c, h, w, r, layout), dtype)
        hi = spx.pixel_shuffle(lo, factor, layout=layout, mode=mode)
        expected_hi = ref.pixel_shuffle(lo, factor, layout=layout, mode=mode)
        assert hi.dtype == dtype and hi.shape == expected_hi.shape
        assert hi.shape == lead + ((c, h * r[0], w * r[1]) if layout == "NCHW" else (h * r[0], w * r[1], c))
        np.testing.assert_array_equal(hi, expected_hi)
        back = spx.pixel_unshuffle(hi, factor, layout=layout, mode=mode)
        np.testing.assert_array_equal(back, ref.pixel_unshuffle(hi, factor, layout=layout, mode=mode))
        assert back.dtype == dtype and back.shape == lo.shape


def test_pixel_shuffle_index_maps_by_hand() -> None:
    # CRD: out[c, h*r+i, w*r+j] = in[c*r*r + i*r + j, h, w]; DCR: in[(i*r + j)*C + c, h, w]
    lo = np.arange(8.0).reshape(8, 1, 1)  # C = 2, r = 2
    crd = spx.pixel_shuffle(lo, 2, mode="CRD")
    dcr = spx.pixel_shuffle(lo, 2, mode="DCR")
    np.testing.assert_array_equal(crd, [[[0, 1], [2, 3]], [[4, 5], [6, 7]]])
    np.testing.assert_array_equal(dcr, [[[0, 2], [4, 6]], [[1, 3], [5, 7]]])
    nhwc = spx.pixel_shuffle(lo.reshape(1, 1, 8), 2, layout="NHWC", mode="DCR")
    np.testing.assert_array_equal(nhwc[..., 1], [[1, 3], [5, 7]])


def _weird_bits(rng: np.random.Generator, shape: Tuple[int, ...], dtype: Any) -> np.ndarray:
    """Random bit patterns: NaNs with payloads, -0.0, subnormals, infinities."""
    uint = np.uint32 if np.dtype(dtype) == F32 else np.uint64
    bits = rng.integers(0, np.iinfo(uint).max, size=shape, dtype=uint, endpoint=True)
    return bits.view(dtype)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dtype", [F32, F64], ids=str)
def test_round_trip_is_bitwise_exact(rng, dtype, mode, layout) -> None:
    for lead, shape_hw, factor in [((2,), (6, 6), 2), ((), (6, 9), (2, 3)), ((2, 1), (3, 4), (3, 1)),
                                   ((3,), (64, 80), 4)]:
        c = 3
        hi_shape = lead + ((c,) + shape_hw if layout == "NCHW" else shape_hw + (c,))
        x = _weird_bits(rng, hi_shape, dtype)
        x_copy = x.copy()
        lo = spx.pixel_unshuffle(x, factor, layout=layout, mode=mode)
        back = spx.pixel_shuffle(lo, factor, layout=layout, mode=mode)
        assert back.tobytes() == x.tobytes()
        assert x.tobytes() == x_copy.tobytes()
        again = spx.pixel_unshuffle(back, factor, layout=layout, mode=mode)
        assert again.tobytes() == lo.tobytes()


@pytest.mark.parametrize("dtype", [np.uint8, np.float16, np.int16, F32, np.complex64, F64, np.complex128], ids=str)
def test_channels_first_shuffle_every_element_size_and_width(rng, dtype) -> None:
    # Rows of 1-, 2-, 4- and 8-byte elements move 16 bytes at a time for factors 2 and 4 along
    # the width: widths around those vectors (and the scalar rest) for every factor shape.
    for factor in (2, 3, 4, (1, 2), (3, 4), (2, 1)):
        r = factor if isinstance(factor, tuple) else (factor, factor)
        for w in (1, 2, 3, 7, 8, 9, 15, 16, 17, 33):
            lo = (rng.standard_normal((2, 2 * r[0] * r[1], 3, w)) * 100).astype(dtype)
            for mode in MODES:
                hi = spx.pixel_shuffle(lo, factor, mode=mode)
                np.testing.assert_array_equal(hi, ref.pixel_shuffle(lo, factor, mode=mode))
                np.testing.assert_array_equal(spx.pixel_unshuffle(hi, factor, mode=mode), lo)


def test_shuffle_dtypes_and_noncontiguous_inputs(rng) -> None:
    lo = random_array(rng, (2, 8, 3, 3), np.float16)
    y = spx.pixel_shuffle(lo, 2)
    assert y.dtype == np.float16  # the rearrangements keep the dtype
    np.testing.assert_array_equal(y, ref.pixel_shuffle(lo, 2))
    ints = rng.integers(-9, 9, (2, 3, 4, 4)).astype(np.int16)
    z = spx.pixel_unshuffle(ints, 2, mode="DCR")
    assert z.dtype == np.int16
    np.testing.assert_array_equal(z, ref.pixel_unshuffle(ints, 2, mode="DCR"))
    big = random_array(rng, (2, 8, 6, 6), F64)
    view = big[:, ::2, ::2, ::2]  # (2, 4, 3, 3), non-contiguous
    view_be = view.astype(">f8")
    view_be.setflags(write=False)
    np.testing.assert_array_equal(spx.pixel_shuffle(view, 2, layout="NCHW"), ref.pixel_shuffle(view, 2))
    np.testing.assert_array_equal(spx.pixel_shuffle(view_be, 2), ref.pixel_shuffle(view, 2))


# ============================================================================ zero_insert / split_kernel


@pytest.mark.parametrize("lead", [(), (3,), (2, 3), (1, 2, 2)], ids=str)
@pytest.mark.parametrize("stride", [1, 2, 3, (1, 4), (3, 2)], ids=str)
def test_zero_insert_matches_oracle(rng, lead, stride) -> None:
    for dtype in (F32, F64):
        for hw in [(1, 1), (4, 5), (0, 3)]:
            x = random_array(rng, lead + hw, dtype)
            y = spx.zero_insert(x, stride)
            expected = ref.zero_insert(x, stride)
            assert y.dtype == dtype
            np.testing.assert_array_equal(y, expected)
            s = stride if isinstance(stride, tuple) else (stride, stride)
            assert y.shape == lead + (hw[0] * s[0], hw[1] * s[1])


def test_zero_insert_by_hand_and_dtypes(rng) -> None:
    y = spx.zero_insert(np.array([[1, 2], [3, 4]], dtype=np.int8), (2, 3))
    assert y.dtype == np.int8
    expected = np.zeros((4, 6), np.int8)
    expected[0, 0], expected[0, 3], expected[2, 0], expected[2, 3] = 1, 2, 3, 4
    np.testing.assert_array_equal(y, expected)
    assert spx.zero_insert(np.ones((2, 2), np.float16), 2).dtype == np.float16
    x = random_array(rng, (3, 5, 4), F64)[:, ::2, ::-1]
    np.testing.assert_array_equal(spx.zero_insert(x, 3), ref.zero_insert(x, 3))


@pytest.mark.parametrize("lead", [(), (2,), (3, 2), (2, 1, 2)], ids=str)
@pytest.mark.parametrize("kernel", [(1, 1), (2, 2), (3, 3), (4, 5), (7, 2)], ids=str)
@pytest.mark.parametrize("stride", [1, 2, 3, 5, (1, 3), (4, 2)], ids=str)
def test_split_kernel_matches_oracle(rng, lead, kernel, stride) -> None:
    # includes strides larger than the kernel (sub-kernels that are all zero)
    k = random_array(rng, lead + kernel, F64)
    y = spx.split_kernel(k, stride)
    expected = ref.split_kernel(k, stride)
    s = stride if isinstance(stride, tuple) else (stride, stride)
    assert y.shape == (s[0] * s[1],) + lead + (math.ceil(kernel[0] / s[0]), math.ceil(kernel[1] / s[1]))
    np.testing.assert_array_equal(y, expected)
    assert y.dtype == F64 and y.flags.c_contiguous
    # every kernel tap appears exactly once; the rest is zero padding
    assert np.count_nonzero(y) == np.count_nonzero(k)
    np.testing.assert_array_equal(np.sort(y[y != 0]), np.sort(k[k != 0]))


def test_split_kernel_dtypes_and_by_hand() -> None:
    k = np.arange(1, 10, dtype=np.int32).reshape(3, 3)
    y = spx.split_kernel(k, 2)
    assert y.dtype == F64
    np.testing.assert_array_equal(y[0], [[1, 3], [7, 9]])
    np.testing.assert_array_equal(y[1], [[2, 0], [8, 0]])
    np.testing.assert_array_equal(y[2], [[4, 6], [0, 0]])
    np.testing.assert_array_equal(y[3], [[5, 0], [0, 0]])
    assert spx.split_kernel(k.astype(np.float16), 2).dtype == np.float16
    k.setflags(write=False)
    spx.split_kernel(k, 3)
    np.testing.assert_array_equal(k, np.arange(1, 10).reshape(3, 3))


# ============================================================================ out= for data movement


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("mode", MODES)
def test_shuffles_and_zero_insert_write_into_out(rng, layout, mode) -> None:
    for dtype in (F32, F64):
        lo = random_array(rng, (2, 12, 3, 4) if layout == "NCHW" else (2, 3, 4, 12), dtype)
        expected = ref.pixel_shuffle(lo, (2, 3), layout=layout, mode=mode)
        out = np.full(expected.shape, np.nan, dtype)
        assert spx.pixel_shuffle(lo, (2, 3), layout=layout, mode=mode, out=out) is out
        np.testing.assert_array_equal(out, expected)
        back = np.full(lo.shape, np.nan, dtype)
        assert spx.pixel_unshuffle(out, (2, 3), layout=layout, mode=mode, out=back) is back
        np.testing.assert_array_equal(back, lo)
        zi_out = np.full((2, 12, 6, 12), np.nan, dtype)
        x = lo.reshape(2, 12, 3, 4)
        assert spx.zero_insert(x, (2, 3), out=zi_out) is zi_out
        np.testing.assert_array_equal(zi_out, ref.zero_insert(x, (2, 3)))
    # float16 in, float16 out (the dtype is kept; another out dtype is refused)
    half = random_array(rng, (4, 2, 2), np.float16)
    out16 = np.empty((1, 4, 4), np.float16)
    assert spx.pixel_shuffle(half, 2, out=out16) is out16
    np.testing.assert_array_equal(out16, ref.pixel_shuffle(half, 2))
    with pytest.raises(ValueError, match="out must have dtype float16"):
        spx.pixel_shuffle(half, 2, out=np.empty((1, 4, 4), np.float32))
