"""Tests of the NumPy oracle itself: hand-computed cases, identities between ops, and (when
torch is installed) agreement with torch.nn.functional in float64."""

from __future__ import annotations

import itertools
from typing import Any, Callable, Dict, List, Tuple

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import subpixel_ext.reference as ref

A = np.asarray


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


# ============================================================================ hand-computed cases
# --------------------------------------------------------------------------- conv_transpose2d


def test_convT_stride2_kernel2_tiles_kernel_copies() -> None:
    x = A([[[[1.0, 2.0], [3.0, 4.0]]]])
    w = A([[[[1.0, 10.0], [100.0, 1000.0]]]])
    y = ref.conv_transpose2d(x, w, stride=2)
    expected = A(
        [
            [1, 10, 2, 20],
            [100, 1000, 200, 2000],
            [3, 30, 4, 40],
            [300, 3000, 400, 4000],
        ],
        dtype=float,
    )
    assert y.shape == (1, 1, 4, 4)
    np.testing.assert_array_equal(y[0, 0], expected)


def test_convT_stride1_kernel3_full_output() -> None:
    x = A([[[[1.0, 2.0], [3.0, 4.0]]]])
    w = np.arange(1.0, 10.0).reshape(1, 1, 3, 3)
    y = ref.conv_transpose2d(x, w)
    expected = A(
        [
            [1, 4, 7, 6],
            [7, 23, 33, 24],
            [19, 53, 63, 42],
            [21, 52, 59, 36],
        ],
        dtype=float,
    )
    np.testing.assert_array_equal(y[0, 0], expected)


def test_convT_padding_crops_both_ends() -> None:
    x = A([[[[1.0, 2.0], [3.0, 4.0]]]])
    w = np.arange(1.0, 10.0).reshape(1, 1, 3, 3)
    np.testing.assert_array_equal(
        ref.conv_transpose2d(x, w, padding=1)[0, 0], A([[23.0, 33.0], [53.0, 63.0]])
    )
    # asymmetric crop ((top, bottom), (left, right)) = ((0, 1), (2, 0))
    np.testing.assert_array_equal(
        ref.conv_transpose2d(x, w, padding=((0, 1), (2, 0)))[0, 0],
        A([[7.0, 6.0], [33.0, 24.0], [63.0, 42.0]]),
    )


def test_convT_output_padding_adds_zero_rows_plus_bias() -> None:
    x = A([[[[1.0, 2.0], [3.0, 4.0]]]])
    w = A([[[[5.0]]]])
    y = ref.conv_transpose2d(x, w, stride=2, output_padding=1)
    expected = A([[5, 0, 10, 0], [0, 0, 0, 0], [15, 0, 20, 0], [0, 0, 0, 0]], dtype=float)
    np.testing.assert_array_equal(y[0, 0], expected)
    yb = ref.conv_transpose2d(x, w, A([1.0]), stride=2, output_padding=(1, 0))
    expected_b = A([[6, 1, 11], [1, 1, 1], [16, 1, 21], [1, 1, 1]], dtype=float)
    np.testing.assert_array_equal(yb[0, 0], expected_b)
    # output_padding larger than the crop: full = [1, 10, 100, 2, 20, 200], y[o] = full[o + 1],
    # the last position lies past the full output and holds only the bias
    x1 = A([[[[1.0, 2.0]]]])
    w1 = A([[[[1.0, 10.0, 100.0]]]])
    y1 = ref.conv_transpose2d(
        x1, w1, A([1.0]), stride=(1, 3), padding=(0, 1), output_padding=(0, 2)
    )
    np.testing.assert_array_equal(y1[0, 0], A([[11.0, 101.0, 3.0, 21.0, 201.0, 1.0]]))


def test_convT_dilation2() -> None:
    x = A([[[[1.0, 2.0]]]])
    w = A([[[[1.0, 10.0]]]])
    np.testing.assert_array_equal(
        ref.conv_transpose2d(x, w, dilation=2)[0, 0], A([[1.0, 2.0, 10.0, 20.0]])
    )
    # stride 2 and dilation 3 along W: taps at 0 and 3, inputs 2 apart
    np.testing.assert_array_equal(
        ref.conv_transpose2d(x, w, stride=2, dilation=3)[0, 0],
        A([[1.0, 0.0, 2.0, 10.0, 0.0, 20.0]]),
    )


def test_convT_channel_mixing_uses_weight_in_out_order() -> None:
    x = A([2.0, 3.0]).reshape(1, 2, 1, 1)
    w = A([[1.0, 10.0], [100.0, 1000.0]]).reshape(2, 2, 1, 1)  # weight[c_in, c_out]
    y = ref.conv_transpose2d(x, w)
    np.testing.assert_array_equal(y.ravel(), A([2.0 + 300.0, 20.0 + 3000.0]))


def test_convT_groups2_keeps_channels_apart() -> None:
    x = A([2.0, 3.0]).reshape(1, 2, 1, 1)
    w = A([[[[1.0, 10.0]]], [[[100.0, 1000.0]]]])  # (2, 1, 1, 2)
    y = ref.conv_transpose2d(x, w, A([0.5, -0.5]), groups=2)
    assert y.shape == (1, 2, 1, 2)
    np.testing.assert_array_equal(y[0, 0], A([[2.5, 20.5]]))
    np.testing.assert_array_equal(y[0, 1], A([[299.5, 2999.5]]))
    # groups=2 with 2 output channels per group: group g reads channel g only
    w2 = np.arange(1.0, 5.0).reshape(2, 2, 1, 1)
    np.testing.assert_array_equal(
        ref.conv_transpose2d(x, w2, groups=2).ravel(), A([2.0, 4.0, 9.0, 12.0])
    )


# --------------------------------------------------------------------------- conv2d


def test_conv2d_is_cross_correlation() -> None:
    x = np.arange(1.0, 10.0).reshape(1, 1, 3, 3)
    w = A([[[[1.0, 2.0], [3.0, 4.0]]]])
    np.testing.assert_array_equal(ref.conv2d(x, w)[0, 0], A([[37.0, 47.0], [67.0, 77.0]]))


def test_conv2d_stride2_padding1() -> None:
    x = np.arange(1.0, 10.0).reshape(1, 1, 3, 3)
    w = np.ones((1, 1, 3, 3))
    np.testing.assert_array_equal(
        ref.conv2d(x, w, stride=2, padding=1)[0, 0], A([[12.0, 16.0], [24.0, 28.0]])
    )


def test_conv2d_asymmetric_padding() -> None:
    x = A([[[[1.0, 2.0], [3.0, 4.0]]]])
    w = A([[[[2.0]]]])
    np.testing.assert_array_equal(
        ref.conv2d(x, w, padding=((0, 1), (1, 0)))[0, 0],
        A([[0.0, 2.0, 4.0], [0.0, 6.0, 8.0], [0.0, 0.0, 0.0]]),
    )


def test_conv2d_dilation_groups_bias() -> None:
    x = np.arange(1.0, 6.0).reshape(1, 1, 1, 5)
    w = A([[[[1.0, 10.0]]]])
    np.testing.assert_array_equal(ref.conv2d(x, w, dilation=2)[0, 0], A([[31.0, 42.0, 53.0]]))
    x2 = A([2.0, 3.0]).reshape(1, 2, 1, 1)
    w2 = A([5.0, 7.0]).reshape(2, 1, 1, 1)
    np.testing.assert_array_equal(
        ref.conv2d(x2, w2, A([1.0, -1.0]), groups=2).ravel(), A([11.0, 20.0])
    )


def test_conv2d_same_and_valid() -> None:
    x = np.ones((1, 1, 5, 5))
    w = np.ones((1, 1, 3, 3))
    y = ref.conv2d(x, w, stride=2, padding="same")
    np.testing.assert_array_equal(y[0, 0], A([[4.0, 6.0, 4.0], [6.0, 9.0, 6.0], [4.0, 6.0, 4.0]]))
    # odd total padding: the extra column goes at the end (right)
    x1 = A([[[[1.0, 2.0, 3.0, 4.0]]]])
    w1 = A([[[[1.0, 10.0]]]])
    np.testing.assert_array_equal(
        ref.conv2d(x1, w1, padding="same")[0, 0], A([[21.0, 32.0, 43.0, 4.0]])
    )
    np.testing.assert_array_equal(
        ref.conv2d(x1, w1, padding="VALID")[0, 0], A([[21.0, 32.0, 43.0]])
    )


@pytest.mark.parametrize("h", [1, 2, 5, 6, 7])
@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_conv2d_same_stride2_gives_ceil_half(h: int, k: int) -> None:
    x = rng(h).standard_normal((1, 2, h, h + 1))
    w = rng(k).standard_normal((3, 2, k, k))
    y = ref.conv2d(x, w, stride=2, padding="same")
    assert y.shape == (1, 3, -(-h // 2), -(-(h + 1) // 2))


# --------------------------------------------------------------------------- pixel shuffle


def test_pixel_shuffle_crd_and_dcr_on_arange() -> None:
    x = np.arange(16.0).reshape(1, 8, 1, 2)  # in[ch, 0, w] = 2*ch + w
    crd = ref.pixel_shuffle(x, 2)
    assert crd.shape == (1, 2, 2, 4)
    np.testing.assert_array_equal(crd[0, 0], A([[0, 2, 1, 3], [4, 6, 5, 7]], dtype=float))
    np.testing.assert_array_equal(crd[0, 1], A([[8, 10, 9, 11], [12, 14, 13, 15]], dtype=float))
    dcr = ref.pixel_shuffle(x, 2, mode="DCR")
    np.testing.assert_array_equal(dcr[0, 0], A([[0, 4, 1, 5], [8, 12, 9, 13]], dtype=float))
    np.testing.assert_array_equal(dcr[0, 1], A([[2, 6, 3, 7], [10, 14, 11, 15]], dtype=float))
    np.testing.assert_array_equal(ref.pixel_unshuffle(crd, 2), x)
    np.testing.assert_array_equal(ref.pixel_unshuffle(dcr, 2, mode="dcr"), x)


def test_pixel_shuffle_rectangular_factor() -> None:
    x = np.arange(6.0).reshape(6, 1, 1)  # unbatched
    np.testing.assert_array_equal(
        ref.pixel_shuffle(x, (3, 2)), A([[[0.0, 1.0], [2.0, 3.0], [4.0, 5.0]]])
    )
    np.testing.assert_array_equal(
        ref.pixel_shuffle(x, (2, 3)), A([[[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]])
    )
    # two output channels, DCR: channel index is the fastest-varying
    x2 = np.arange(4.0).reshape(1, 4, 1, 1)
    np.testing.assert_array_equal(
        ref.pixel_shuffle(x2, (1, 2), mode="DCR")[0], A([[[0.0, 2.0]], [[1.0, 3.0]]])
    )
    np.testing.assert_array_equal(ref.pixel_shuffle(x2, (1, 2))[0], A([[[0.0, 1.0]], [[2.0, 3.0]]]))


def _shuffle_by_loops(x: np.ndarray, rh: int, rw: int, mode: str, layout: str) -> np.ndarray:
    """The index maps of the brief, one element at a time (x is 3-D, unbatched)."""
    if layout == "NHWC":
        x = x.transpose(2, 0, 1)
    cin, h, w = x.shape
    c = cin // (rh * rw)
    out = np.zeros((c, h * rh, w * rw))
    for cc in range(c):
        for hh in range(h):
            for ww in range(w):
                for i in range(rh):
                    for j in range(rw):
                        src = cc * rh * rw + i * rw + j if mode == "CRD" else (i * rw + j) * c + cc
                        out[cc, hh * rh + i, ww * rw + j] = x[src, hh, ww]
    return out.transpose(1, 2, 0) if layout == "NHWC" else out


@pytest.mark.parametrize("mode", ["CRD", "DCR"])
@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
@pytest.mark.parametrize("factor", [(2, 2), (3, 1), (2, 3)])
def test_pixel_shuffle_matches_index_map(mode: str, layout: str, factor: Tuple[int, int]) -> None:
    rh, rw = factor
    c, h, w = 2, 3, 2
    shape = (c * rh * rw, h, w) if layout == "NCHW" else (h, w, c * rh * rw)
    x = rng(1).standard_normal(shape)
    y = ref.pixel_shuffle(x, factor, layout=layout, mode=mode)
    np.testing.assert_array_equal(y, _shuffle_by_loops(x, rh, rw, mode, layout))
    np.testing.assert_array_equal(ref.pixel_unshuffle(y, factor, layout=layout, mode=mode), x)


@pytest.mark.parametrize("mode", ["CRD", "DCR"])
@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
def test_pixel_unshuffle_is_inverse_with_leading_dims(mode: str, layout: str) -> None:
    x = rng(2).standard_normal((2, 3, 3, 4, 6) if layout == "NCHW" else (2, 3, 4, 6, 3))
    down = ref.pixel_unshuffle(x, (2, 3), layout=layout, mode=mode)
    assert down.shape == ((2, 3, 18, 2, 2) if layout == "NCHW" else (2, 3, 2, 2, 18))
    np.testing.assert_array_equal(ref.pixel_shuffle(down, (2, 3), layout=layout, mode=mode), x)
    # and the batch slices are independent
    np.testing.assert_array_equal(
        down[1, 2], ref.pixel_unshuffle(x[1, 2], (2, 3), layout=layout, mode=mode)
    )


def test_pixel_shuffle_errors() -> None:
    with pytest.raises(ValueError):
        ref.pixel_shuffle(np.zeros((1, 3, 2, 2)), 2)
    with pytest.raises(ValueError):
        ref.pixel_unshuffle(np.zeros((1, 4, 3, 2)), 2)
    with pytest.raises(ValueError):
        ref.pixel_shuffle(np.zeros((4, 2)), 2)
    with pytest.raises(ValueError):
        ref.pixel_shuffle(np.zeros((1, 4, 2, 2)), 0)
    with pytest.raises(ValueError):
        ref.pixel_shuffle(np.zeros((1, 4, 2, 2)), 2, mode="RDC")
    with pytest.raises(ValueError):
        ref.pixel_shuffle(np.zeros((1, 4, 2, 2)), 2, layout="CHWN")


# --------------------------------------------------------------------------- building blocks


def test_zero_insert() -> None:
    x = A([[1.0, 2.0], [3.0, 4.0]])
    np.testing.assert_array_equal(
        ref.zero_insert(x, 2),
        A([[1, 0, 2, 0], [0, 0, 0, 0], [3, 0, 4, 0], [0, 0, 0, 0]], dtype=float),
    )
    np.testing.assert_array_equal(
        ref.zero_insert(x, (1, 3)), A([[1, 0, 0, 2, 0, 0], [3, 0, 0, 4, 0, 0]], dtype=float)
    )
    lead = rng(3).standard_normal((2, 3, 4, 5))
    z = ref.zero_insert(lead, (3, 2))
    assert z.shape == (2, 3, 12, 10)
    np.testing.assert_array_equal(z[..., ::3, ::2], lead)
    assert np.count_nonzero(z) == np.count_nonzero(lead)
    with pytest.raises(ValueError):
        ref.zero_insert(np.zeros(3), 2)
    with pytest.raises(ValueError):
        ref.zero_insert(x, 0)


def test_split_kernel_3x3_stride2() -> None:
    k = np.arange(1.0, 10.0).reshape(3, 3)
    parts = ref.split_kernel(k, 2)
    assert parts.shape == (4, 2, 2)
    np.testing.assert_array_equal(parts[0], A([[1.0, 3.0], [7.0, 9.0]]))
    np.testing.assert_array_equal(parts[1], A([[2.0, 0.0], [8.0, 0.0]]))
    np.testing.assert_array_equal(parts[2], A([[4.0, 6.0], [0.0, 0.0]]))
    np.testing.assert_array_equal(parts[3], A([[5.0, 0.0], [0.0, 0.0]]))


def test_split_kernel_leading_dims_reassemble() -> None:
    k = rng(4).standard_normal((2, 3, 5, 4))
    parts = ref.split_kernel(k, (2, 3))
    assert parts.shape == (6, 2, 3, 3, 2)
    padded = np.zeros((2, 3, 6, 6))
    for a in range(2):
        for b in range(3):
            padded[..., a::2, b::3] = parts[a * 3 + b]
    np.testing.assert_array_equal(padded[..., :5, :4], k)
    assert not padded[..., 5:, :].any() and not padded[..., :, 4:].any()
    # stride 1 is the identity with a leading axis of 1
    np.testing.assert_array_equal(ref.split_kernel(k, 1), k[np.newaxis])


def test_subpixel_conv2d_hand_case() -> None:
    # 1x1 conv with 4 output channels, then a 2x2 shuffle: each pixel becomes a 2x2 block
    x = A([[[[1.0, 2.0]]]])
    w = A([1.0, 2.0, 3.0, 4.0]).reshape(4, 1, 1, 1)
    y = ref.subpixel_conv2d(x, w, 2, A([0.0, 0.0, 0.0, 0.5]))
    np.testing.assert_array_equal(y[0, 0], A([[1.0, 2.0, 2.0, 4.0], [3.0, 4.5, 6.0, 8.5]]))
    y_dcr = ref.subpixel_conv2d(x, w, 2, mode="DCR")
    np.testing.assert_array_equal(y_dcr, y - A([[[[0.0, 0.0, 0.0, 0.0], [0.0, 0.5, 0.0, 0.5]]]]))


# ============================================================================ identities


def _convT_pad_for(h: int, k: int, s: int, d: int, p: int) -> Tuple[int, int]:
    """(conv2d output size, output_padding) so that conv_transpose2d maps it back to h."""
    o = (h + 2 * p - d * (k - 1) - 1) // s + 1
    op = h - ((o - 1) * s - 2 * p + d * (k - 1) + 1)
    return o, op


@pytest.mark.parametrize("seed", range(12))
def test_conv_transpose_is_adjoint_of_conv(seed: int) -> None:
    r = rng(100 + seed)
    s = (int(r.integers(1, 4)), int(r.integers(1, 4)))
    k = (int(r.integers(1, 5)), int(r.integers(1, 5)))
    d = (int(r.integers(1, 3)), int(r.integers(1, 3)))
    g = int(r.integers(1, 3))
    p = (int(r.integers(0, k[0])), int(r.integers(0, k[1])))
    hw = (int(r.integers(d[0] * (k[0] - 1) + 1, 9)), int(r.integers(d[1] * (k[1] - 1) + 1, 9)))
    cin, cout = 2 * g, 3 * g
    x = r.standard_normal((2, cin, *hw))
    w = r.standard_normal((cout, cin // g, *k))
    y = ref.conv2d(x, w, stride=s, padding=p, dilation=d, groups=g)
    (oh, oph), (ow, opw) = (_convT_pad_for(hw[i], k[i], s[i], d[i], p[i]) for i in range(2))
    assert y.shape == (2, cout, oh, ow)
    z = r.standard_normal(y.shape)
    xt = ref.conv_transpose2d(
        z, w, stride=s, padding=p, output_padding=(oph, opw), dilation=d, groups=g
    )
    assert xt.shape == x.shape
    np.testing.assert_allclose(np.vdot(y, z), np.vdot(x, xt), rtol=1e-10)


@pytest.mark.parametrize("s,k,d", [(2, 3, 1), (3, 2, 1), (2, 4, 1), (2, 3, 2), (1, 3, 1)])
def test_conv_transpose_is_conv_of_zero_inserted_input(s: int, k: int, d: int) -> None:
    """The textbook construction: zero insertion, full padding, flipped and swapped kernel."""
    r = rng(s * 10 + k)
    x = r.standard_normal((2, 3, 4, 5))
    w = r.standard_normal((3, 2, k, k))
    z = ref.zero_insert(x, s)[..., : (4 - 1) * s + 1, : (5 - 1) * s + 1]
    w_conv = w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3)
    expected = ref.conv2d(z, w_conv, padding=d * (k - 1), dilation=d)
    np.testing.assert_allclose(
        ref.conv_transpose2d(x, w, stride=s, dilation=d), expected, rtol=1e-12, atol=1e-12
    )


@pytest.mark.parametrize(
    "k,r_,pl,pr", [(3, 2, 1, 1), (3, 2, 0, 2), (2, 3, 1, 0), (1, 2, 0, 0), (3, 3, 2, 1)]
)
def test_subpixel_conv_equals_transposed_conv(k: int, r_: int, pl: int, pr: int) -> None:
    """polyphase.md: sub-pixel conv (k x k, C*r*r channels, pads (P_l, P_r), CRD shuffle) is a
    transposed conv with kernel r*k, stride r, the rearranged weight and crops (k-1-P)*r."""
    g = rng(k * 100 + r_ * 10 + pl)
    c_in, c = 2, 3
    x = g.standard_normal((2, c_in, 4, 5))
    w_sp = g.standard_normal((c * r_ * r_, c_in, k, k))
    y_sp = ref.subpixel_conv2d(x, w_sp, r_, padding=((pl, pr), (pl, pr)))
    w_t = np.zeros((c_in, c, r_ * k, r_ * k))
    for cc in range(c):
        for rh in range(r_):
            for rw in range(r_):
                for a in range(k):
                    for b in range(k):
                        w_t[:, cc, (k - 1 - a) * r_ + rh, (k - 1 - b) * r_ + rw] = w_sp[
                            cc * r_ * r_ + rh * r_ + rw, :, a, b
                        ]
    crop = ((k - 1 - pl) * r_, (k - 1 - pr) * r_)
    y_t = ref.conv_transpose2d(x, w_t, stride=r_, padding=(crop, crop))
    assert y_t.shape == y_sp.shape
    np.testing.assert_allclose(y_t, y_sp, rtol=1e-12, atol=1e-12)


# ============================================================================ layouts and batches

ConvCase = Callable[..., np.ndarray]


def _conv_cases() -> List[Tuple[str, ConvCase, Tuple[int, ...], Dict[str, Any]]]:
    return [
        (
            "conv_transpose2d",
            ref.conv_transpose2d,
            (4, 3, 3, 2),
            dict(stride=(2, 3), padding=1, output_padding=(1, 0), groups=2),
        ),
        ("conv2d", ref.conv2d, (6, 2, 3, 2), dict(stride=2, padding="same", groups=2)),
        (
            "subpixel_conv2d",
            lambda x, w, b=None, **kw: ref.subpixel_conv2d(x, w, 2, b, **kw),
            (8, 4, 3, 3),
            dict(padding=1),
        ),
    ]


@pytest.mark.parametrize("case", _conv_cases(), ids=lambda c: c[0])
def test_layouts_unbatched_and_empty_batch(
    case: Tuple[str, ConvCase, Tuple[int, ...], Dict[str, Any]],
) -> None:
    _, fn, wshape, kw = case
    r = rng(5)
    cin = wshape[0] if fn is ref.conv_transpose2d else wshape[1] * kw.get("groups", 1)
    cout = wshape[1] * kw.get("groups", 1) if fn is ref.conv_transpose2d else wshape[0]
    x = r.standard_normal((3, cin, 5, 6))
    w = r.standard_normal(wshape)
    b = r.standard_normal(cout)
    y = fn(x, w, b, **kw)
    assert y.flags.c_contiguous
    y_nhwc = fn(x.transpose(0, 2, 3, 1), w, b, layout="NHWC", **kw)
    assert y_nhwc.flags.c_contiguous
    np.testing.assert_allclose(y_nhwc, y.transpose(0, 2, 3, 1), rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(fn(x[1], w, b, **kw), y[1], rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(
        fn(x[1].transpose(1, 2, 0), w, b, layout="nhwc", **kw),
        y[1].transpose(1, 2, 0),
        rtol=1e-13,
        atol=1e-13,
    )
    empty = fn(x[:0], w, b, **kw)
    assert empty.shape == (0,) + y.shape[1:]
    empty_nhwc = fn(x[:0].transpose(0, 2, 3, 1), w, b, layout="NHWC", **kw)
    assert empty_nhwc.shape == (0,) + y_nhwc.shape[1:]


def test_pixel_shuffle_layouts_unbatched_and_empty() -> None:
    x = rng(6).standard_normal((2, 12, 3, 4))
    for mode in ("CRD", "DCR"):
        y = ref.pixel_shuffle(x, 2, mode=mode)
        assert y.shape == (2, 3, 6, 8)
        np.testing.assert_array_equal(
            ref.pixel_shuffle(x.transpose(0, 2, 3, 1), 2, layout="NHWC", mode=mode),
            y.transpose(0, 2, 3, 1),
        )
        np.testing.assert_array_equal(ref.pixel_shuffle(x[1], 2, mode=mode), y[1])
        assert ref.pixel_shuffle(x[:0], 2, mode=mode).shape == (0, 3, 6, 8)
        assert ref.pixel_unshuffle(y[:0], 2, mode=mode).shape == (0, 12, 3, 4)


# ============================================================================ padding="same"


@pytest.mark.parametrize("s", [1, 2, 3])
@pytest.mark.parametrize("k", [1, 2, 3, 4, 5, 6])
def test_convT_same_gives_h_times_stride(s: int, k: int) -> None:
    x = rng(7).standard_normal((1, 2, 3, 4))
    w = rng(8).standard_normal((2, 3, k, k))
    y = ref.conv_transpose2d(x, w, stride=s, padding="same")
    assert y.shape == (1, 3, 3 * s, 4 * s)
    y2 = ref.conv_transpose2d(x, w, stride=(s, 2), padding="same", dilation=(1, 2))
    assert y2.shape == (1, 3, 3 * s, 8)


def test_convT_same_values_for_small_equal_and_large_kernels() -> None:
    x = A([[[[1.0, 2.0]]]])
    # K < s: full = [3, 0, 6], nothing cropped, the last position is bias only
    y = ref.conv_transpose2d(x, A([[[[3.0]]]]), A([0.25]), stride=(1, 2), padding="same")
    np.testing.assert_array_equal(y[0, 0], A([[3.25, 0.25, 6.25, 0.25]]))
    # K = s: no crop, the tiles
    y = ref.conv_transpose2d(x, A([[[[1.0, 10.0]]]]), stride=(1, 2), padding="same")
    np.testing.assert_array_equal(y[0, 0], A([[1.0, 10.0, 2.0, 20.0]]))
    # K = 3 > s = 2: full = [1, 10, 102, 20, 200]; crop 1, odd row at the end
    y = ref.conv_transpose2d(x, A([[[[1.0, 10.0, 100.0]]]]), stride=(1, 2), padding="same")
    np.testing.assert_array_equal(y[0, 0], A([[1.0, 10.0, 102.0, 20.0]]))
    # K = 4: full = [1, 10, 102, 1020, 200, 2000]; crop 1 at each end
    y = ref.conv_transpose2d(x, A([[[[1.0, 10.0, 100.0, 1000.0]]]]), stride=(1, 2), padding="same")
    np.testing.assert_array_equal(y[0, 0], A([[10.0, 102.0, 1020.0, 200.0]]))


# ============================================================================ output_size


def test_output_size_selects_output_padding() -> None:
    r = rng(9)
    x = r.standard_normal((2, 2, 3, 4))
    w = r.standard_normal((2, 3, 3, 3))
    b = r.standard_normal(3)
    # smallest output: (3-1)*2 + 3 - 2 = 5 and (4-1)*2 + 3 - 2 = 7
    assert ref.conv_transpose2d(x, w, b, stride=2, padding=1).shape == (2, 3, 5, 7)
    y = ref.conv_transpose2d(x, w, b, stride=2, padding=1, output_size=(6, 7))
    np.testing.assert_array_equal(
        y, ref.conv_transpose2d(x, w, b, stride=2, padding=1, output_padding=(1, 0))
    )
    assert y.shape == (2, 3, 6, 7)
    for bad in [(7, 7), (4, 7), (6, 9), (5, 6)]:
        with pytest.raises(ValueError):
            ref.conv_transpose2d(x, w, b, stride=2, padding=1, output_size=bad)
    with pytest.raises(ValueError):
        ref.conv_transpose2d(x, w, b, stride=2, padding=1, output_padding=1, output_size=(6, 8))


def test_output_padding_must_be_below_stride_or_dilation() -> None:
    x = np.ones((1, 1, 2, 2))
    w = np.ones((1, 1, 2, 2))
    with pytest.raises(ValueError):
        ref.conv_transpose2d(x, w, stride=2, output_padding=2)
    # allowed when smaller than the dilation
    assert ref.conv_transpose2d(x, w, stride=1, dilation=3, output_padding=2).shape == (1, 1, 7, 7)


# ============================================================================ dtypes and inputs


@pytest.mark.parametrize(
    "xdt,wdt,expected",
    [
        (np.float16, np.float32, np.float32),
        (np.float32, np.float32, np.float32),
        (np.float16, np.float16, np.float16),
        (np.float32, np.float64, np.float64),
        (np.int32, np.int64, np.float64),
        (np.float32, np.int8, np.float64),
        (np.bool_, np.float32, np.float64),
    ],
)
def test_dtype_rule(xdt: Any, wdt: Any, expected: Any) -> None:
    x = (np.arange(8) % 3).reshape(1, 2, 2, 2).astype(xdt)
    w = (np.arange(8) % 2).reshape(2, 1, 2, 2).astype(wdt)
    y = ref.conv_transpose2d(x, w, stride=2)
    assert y.dtype == expected
    np.testing.assert_array_equal(
        y, ref.conv_transpose2d(x.astype(float), w.astype(float), stride=2)
    )
    assert ref.conv2d(x, w.transpose(1, 0, 2, 3)).dtype == expected


def test_dtype_rule_bias_and_single_input_ops() -> None:
    x = np.ones((1, 4, 2, 2), dtype=np.float32)
    w = np.ones((4, 1, 1, 1), dtype=np.float32)
    assert ref.conv_transpose2d(x, w, np.zeros(1, dtype=np.float32)).dtype == np.float32
    assert ref.conv_transpose2d(x, w, np.zeros(1, dtype=np.int64)).dtype == np.float64
    # the rearrangements keep the input's dtype
    assert ref.pixel_shuffle(x.astype(np.float16), 2).dtype == np.float16
    assert ref.pixel_shuffle(np.ones((4, 1, 1), dtype=np.int16), 2).dtype == np.int16
    assert ref.pixel_unshuffle(x, 2).dtype == np.float32
    assert ref.zero_insert(np.ones((2, 2), dtype=np.int8), 2).dtype == np.int8
    assert ref.split_kernel(np.ones((3, 3), dtype=np.float16), 2).dtype == np.float16
    assert ref.subpixel_conv2d(x, np.ones((4, 4, 1, 1), dtype=np.float16), 2).dtype == np.float32
    # float32 results are computed in float32 but agree with float64 to float32 precision
    r = rng(10)
    xf, wf = r.standard_normal((2, 3, 5, 5)).astype(np.float32), r.standard_normal(
        (3, 2, 3, 3)
    ).astype(np.float32)
    np.testing.assert_allclose(
        ref.conv_transpose2d(xf, wf, stride=2),
        ref.conv_transpose2d(xf.astype(float), wf.astype(float), stride=2),
        rtol=1e-5,
        atol=1e-5,
    )


def test_complex_and_object_inputs_raise_type_error() -> None:
    x = np.ones((1, 1, 2, 2))
    w = np.ones((1, 1, 2, 2))
    with pytest.raises(TypeError):
        ref.conv_transpose2d(x.astype(complex), w)
    with pytest.raises(TypeError):
        ref.conv_transpose2d(x, w.astype(complex))
    with pytest.raises(TypeError):
        ref.conv2d(x, w, np.ones(1, dtype=complex))
    # the rearrangements move complex values too (test_half.py), but not objects
    with pytest.raises(TypeError):
        ref.pixel_shuffle(np.ones((4, 1, 1), dtype=object), 2)
    with pytest.raises(TypeError):
        ref.zero_insert(np.ones((2, 2), dtype=object), 2)
    with pytest.raises(TypeError):
        ref.split_kernel(np.ones((2, 2), dtype=complex), 2)
    with pytest.raises(TypeError):
        ref.conv2d(np.array([[["a"]]]), w)


def test_shape_errors() -> None:
    x = np.ones((1, 2, 3, 3))
    with pytest.raises(ValueError):
        ref.conv_transpose2d(x, np.ones((3, 1, 2, 2)))  # C_in mismatch
    with pytest.raises(ValueError):
        ref.conv_transpose2d(x, np.ones((2, 1, 2, 2)), np.ones(2))  # bias has C_out=1 entries
    with pytest.raises(ValueError):
        ref.conv_transpose2d(x, np.ones((2, 1, 2, 2)), groups=3)
    with pytest.raises(ValueError):
        ref.conv2d(x, np.ones((3, 1, 2, 2)), groups=2)  # 3 outputs not divisible by 2
    with pytest.raises(ValueError):
        ref.conv2d(x, np.ones((1, 2, 5, 5)))  # kernel larger than the input
    with pytest.raises(ValueError):
        ref.conv2d(x, np.ones((1, 2, 2, 2)), stride=0)
    with pytest.raises(ValueError):
        ref.conv2d(np.ones((2, 3, 3)), np.ones((1, 2, 2, 2)), layout="NHWC")


def _all_calls() -> List[Tuple[Callable[..., np.ndarray], Tuple[Any, ...], Dict[str, Any]]]:
    r = rng(11)
    x = r.standard_normal((2, 4, 3, 3))
    return [
        (
            ref.conv_transpose2d,
            (x, r.standard_normal((4, 2, 3, 3)), r.standard_normal(4)),
            dict(stride=2, groups=2),
        ),
        (
            ref.conv_transpose2d,
            (x.transpose(0, 2, 3, 1), r.standard_normal((4, 1, 1, 1))),
            dict(layout="NHWC"),
        ),
        (
            ref.conv2d,
            (x, r.standard_normal((4, 4, 2, 2)), r.standard_normal(4)),
            dict(padding="same"),
        ),
        (ref.conv2d, (x, r.standard_normal((4, 4, 1, 1))), {}),
        (ref.subpixel_conv2d, (x, r.standard_normal((8, 4, 1, 1)), 2), {}),
        (ref.pixel_shuffle, (x, 2), {}),
        (ref.pixel_shuffle, (x, 1), {}),
        (ref.pixel_unshuffle, (x[..., :2, :2], 1), {}),
        (ref.pixel_unshuffle, (x.transpose(0, 2, 3, 1), 3), dict(layout="NHWC", mode="DCR")),
        (ref.zero_insert, (x, 1), {}),
        (ref.zero_insert, (x, 2), {}),
        (ref.split_kernel, (x, 1), {}),
        (ref.split_kernel, (x, 2), {}),
    ]


@pytest.mark.parametrize("call", _all_calls(), ids=lambda c: c[0].__name__)
def test_inputs_not_modified_and_result_is_new(
    call: Tuple[Callable[..., np.ndarray], Tuple[Any, ...], Dict[str, Any]],
) -> None:
    fn, args, kwargs = call
    copies = [np.array(a, copy=True) if isinstance(a, np.ndarray) else a for a in args]
    y = fn(*args, **kwargs)
    for a, c in zip(args, copies):
        if isinstance(a, np.ndarray):
            np.testing.assert_array_equal(a, c)
            assert not np.shares_memory(y, a)
    assert y.flags.c_contiguous and y.flags.writeable
    y[...] = 12345.0  # writing to the result never reaches the inputs
    for a, c in zip(args, copies):
        if isinstance(a, np.ndarray):
            np.testing.assert_array_equal(a, c)


def test_read_only_and_noncontiguous_inputs() -> None:
    r = rng(12)
    x = r.standard_normal((2, 3, 8, 10))[:, :, ::2, ::2]
    w = np.asfortranarray(r.standard_normal((3, 2, 3, 3)))
    x.flags.writeable = False
    w.flags.writeable = False
    y = ref.conv_transpose2d(x, w, stride=2)
    np.testing.assert_allclose(
        y, ref.conv_transpose2d(np.ascontiguousarray(x), np.ascontiguousarray(w), stride=2)
    )
    lists = ref.conv_transpose2d(x.tolist(), w.tolist(), stride=2)
    np.testing.assert_allclose(lists, y)


# ============================================================================ against torch


def _t(a: np.ndarray) -> Any:
    torch = pytest.importorskip("torch")
    return torch.from_numpy(np.ascontiguousarray(a))


def _close(ours: np.ndarray, theirs: Any) -> None:
    theirs_np = theirs.detach().numpy()
    assert ours.shape == theirs_np.shape
    scale = max(1.0, float(np.abs(theirs_np).max(initial=0.0)))
    np.testing.assert_allclose(ours, theirs_np, rtol=1e-10, atol=1e-12 * scale)


def test_conv_transpose2d_matches_torch() -> None:
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    r = rng(2024)
    checked = 0
    while checked < 80:
        s = (int(r.integers(1, 4)), int(r.integers(1, 4)))
        k = (int(r.integers(1, 6)), int(r.integers(1, 6)))
        d = (int(r.integers(1, 3)), int(r.integers(1, 3)))
        g = int(r.integers(1, 3))
        hw = (int(r.integers(1, 7)), int(r.integers(1, 7)))
        p = tuple(int(r.integers(0, d[i] * (k[i] - 1) + 1)) for i in range(2))
        op = tuple(int(r.integers(0, max(s[i], d[i]))) for i in range(2))
        full = [(hw[i] - 1) * s[i] + d[i] * (k[i] - 1) + 1 for i in range(2)]
        if any(full[i] - 2 * p[i] + op[i] <= 0 for i in range(2)):
            continue
        cin, cout_g = g * int(r.integers(1, 3)), int(r.integers(1, 3))
        x = r.standard_normal((int(r.integers(1, 3)), cin, *hw))
        w = r.standard_normal((cin, cout_g, *k))
        b = r.standard_normal(cout_g * g) if r.integers(0, 2) else None
        ours = ref.conv_transpose2d(
            x, w, b, stride=s, padding=p, output_padding=op, groups=g, dilation=d
        )
        theirs = F.conv_transpose2d(
            _t(x),
            _t(w),
            None if b is None else _t(b),
            stride=s,
            padding=p,
            output_padding=op,
            groups=g,
            dilation=d,
        )
        _close(ours, theirs)
        checked += 1


def test_conv_transpose2d_output_size_matches_torch_module() -> None:
    torch = pytest.importorskip("torch")
    r = rng(7)
    for s, k, p, size in [
        (2, 3, 1, (6, 8)),
        (3, 4, 0, (12, 14)),
        ((2, 3), (3, 2), (0, 1), (7, 11)),
    ]:
        x = r.standard_normal((2, 2, 3, 4))
        m = torch.nn.ConvTranspose2d(2, 3, k, stride=s, padding=p).double()
        w = m.weight.detach().numpy()
        b = m.bias.detach().numpy()
        ours = ref.conv_transpose2d(x, w, b, stride=s, padding=p, output_size=size)
        _close(ours, m(_t(x), output_size=list(size)))


@pytest.mark.filterwarnings("ignore:Using padding='same'")
def test_conv2d_matches_torch() -> None:
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    r = rng(2025)
    checked = 0
    while checked < 80:
        s = (int(r.integers(1, 4)), int(r.integers(1, 4)))
        k = (int(r.integers(1, 6)), int(r.integers(1, 6)))
        d = (int(r.integers(1, 3)), int(r.integers(1, 3)))
        g = int(r.integers(1, 3))
        hw = (int(r.integers(1, 10)), int(r.integers(1, 10)))
        use_same = r.integers(0, 4) == 0
        if use_same:
            s = (1, 1)
            padding: Any = "same"
        else:
            padding = tuple(int(r.integers(0, k[i])) for i in range(2))
        pads = (0, 0) if use_same else padding
        if not use_same and any(hw[i] + 2 * pads[i] < d[i] * (k[i] - 1) + 1 for i in range(2)):
            continue
        cin, cout = g * int(r.integers(1, 3)), g * int(r.integers(1, 3))
        x = r.standard_normal((int(r.integers(1, 3)), cin, *hw))
        w = r.standard_normal((cout, cin // g, *k))
        b = r.standard_normal(cout) if r.integers(0, 2) else None
        ours = ref.conv2d(x, w, b, stride=s, padding=padding, dilation=d, groups=g)
        theirs = F.conv2d(
            _t(x),
            _t(w),
            None if b is None else _t(b),
            stride=s,
            padding=padding,
            dilation=d,
            groups=g,
        )
        _close(ours, theirs)
        checked += 1


def test_subpixel_conv2d_matches_torch() -> None:
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    r = rng(31)
    for factor, k, p in [(2, 3, 1), (3, 3, 1), (2, 1, 0), (4, 5, 2)]:
        x = r.standard_normal((2, 3, 5, 4))
        w = r.standard_normal((2 * factor * factor, 3, k, k))
        b = r.standard_normal(2 * factor * factor)
        ours = ref.subpixel_conv2d(x, w, factor, b, padding=p)
        _close(ours, F.pixel_shuffle(F.conv2d(_t(x), _t(w), _t(b), padding=p), factor))


@pytest.mark.parametrize(
    "shape,factor", [((2, 8, 3, 5), 2), ((18, 2, 1), 3), ((2, 3, 4, 2, 2), 2), ((1, 5, 4, 4), 1)]
)
def test_pixel_shuffle_and_unshuffle_match_torch(shape: Tuple[int, ...], factor: int) -> None:
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    x = rng(13).standard_normal(shape)
    _close(ref.pixel_shuffle(x, factor), F.pixel_shuffle(_t(x), factor))
    y = rng(14).standard_normal(shape[:-2] + (shape[-2] * factor, shape[-1] * factor))
    _close(ref.pixel_unshuffle(y, factor), F.pixel_unshuffle(_t(y), factor))
    # DCR is CRD after the channel permutation in[(i*r + j)*C + c] -> position c*r*r + i*r + j
    if shape[-3] % factor**2 == 0:
        c = shape[-3] // factor**2
        perm = [(ij % factor**2) * c + ij // factor**2 for ij in range(shape[-3])]
        _close(
            ref.pixel_shuffle(x, factor, mode="DCR"),
            F.pixel_shuffle(_t(x[..., perm, :, :]), factor),
        )


# ============================================================================ 1-D and 3-D

CONV_TRANSPOSE = {1: ref.conv_transpose1d, 2: ref.conv_transpose2d, 3: ref.conv_transpose3d}
CONV = {1: ref.conv1d, 2: ref.conv2d, 3: ref.conv3d}
SUBPIXEL = {1: ref.subpixel_conv1d, 2: ref.subpixel_conv2d, 3: ref.subpixel_conv3d}


def _torch_fn(name: str, rank: int) -> Any:
    torch = pytest.importorskip("torch", reason="torch is needed to compare against PyTorch")
    return getattr(torch.nn.functional, f"{name}{rank}d")


def _draw(r: np.random.Generator, rank: int, low: int, high: int) -> Tuple[int, ...]:
    return tuple(int(v) for v in r.integers(low, high, size=rank))


@pytest.mark.parametrize("rank", [1, 3])
def test_conv_transpose_nd_matches_torch(rank: int) -> None:
    F_ct = _torch_fn("conv_transpose", rank)
    r = rng(300 + rank)
    checked = 0
    while checked < 40:
        s, k, d = _draw(r, rank, 1, 4), _draw(r, rank, 1, 5), _draw(r, rank, 1, 3)
        g = int(r.integers(1, 3))
        size = _draw(r, rank, 1, 6 if rank == 1 else 4)
        p = tuple(int(r.integers(0, d[i] * (k[i] - 1) + 1)) for i in range(rank))
        op = tuple(int(r.integers(0, max(s[i], d[i]))) for i in range(rank))
        if any((size[i] - 1) * s[i] + d[i] * (k[i] - 1) + 1 - 2 * p[i] + op[i] <= 0 for i in range(rank)):
            continue
        cin, cout_g = g * int(r.integers(1, 3)), int(r.integers(1, 3))
        x = r.standard_normal((int(r.integers(0, 3)), cin) + size)  # batch 0 included
        w = r.standard_normal((cin, cout_g) + k)
        b = r.standard_normal(cout_g * g) if r.integers(0, 2) else None
        ours = CONV_TRANSPOSE[rank](x, w, b, stride=s, padding=p, output_padding=op, groups=g, dilation=d)
        theirs = F_ct(_t(x), _t(w), None if b is None else _t(b), stride=s, padding=p,
                      output_padding=op, groups=g, dilation=d)
        _close(ours, theirs)
        checked += 1


@pytest.mark.filterwarnings("ignore:Using padding='same'")
@pytest.mark.parametrize("rank", [1, 3])
def test_conv_nd_matches_torch(rank: int) -> None:
    F_conv = _torch_fn("conv", rank)
    r = rng(400 + rank)
    checked = 0
    while checked < 40:
        s, k, d = _draw(r, rank, 1, 4), _draw(r, rank, 1, 5), _draw(r, rank, 1, 3)
        g = int(r.integers(1, 3))
        size = _draw(r, rank, 1, 9 if rank == 1 else 6)
        padding: Any = "same" if r.integers(0, 4) == 0 else tuple(int(r.integers(0, k[i])) for i in range(rank))
        if padding == "same":
            s = (1,) * rank
        pads = (0,) * rank if padding == "same" else padding
        if padding != "same" and any(size[i] + 2 * pads[i] < d[i] * (k[i] - 1) + 1 for i in range(rank)):
            continue
        cin, cout = g * int(r.integers(1, 3)), g * int(r.integers(1, 3))
        x = r.standard_normal((int(r.integers(1, 3)), cin) + size)
        w = r.standard_normal((cout, cin // g) + k)
        b = r.standard_normal(cout) if r.integers(0, 2) else None
        ours = CONV[rank](x, w, b, stride=s, padding=padding, dilation=d, groups=g)
        theirs = F_conv(_t(x), _t(w), None if b is None else _t(b), stride=s, padding=padding, dilation=d, groups=g)
        _close(ours, theirs)
        checked += 1


@pytest.mark.parametrize("rank", [1, 2, 3])
def test_asymmetric_padding_is_a_window_of_torch(rank: int) -> None:
    """Asymmetric crops/pads: torch's full output cropped, or torch on an explicitly padded input."""
    torch = pytest.importorskip("torch", reason="torch is needed to compare against PyTorch")
    r = rng(500 + rank)
    size, k, s = (4, 3, 5)[:rank], (3, 4, 2)[:rank], (2, 3, 1)[:rank]
    pairs = ((0, 2), (3, 1), (1, 0))[:rank]
    x = r.standard_normal((2, 2) + size)
    wt = r.standard_normal((2, 3) + k)
    full = _torch_fn("conv_transpose", rank)(_t(x), _t(wt), stride=s).numpy()
    window = tuple(slice(lo, full.shape[2 + i] - hi) for i, (lo, hi) in enumerate(pairs))
    np.testing.assert_allclose(CONV_TRANSPOSE[rank](x, wt, stride=s, padding=pairs), full[(Ellipsis,) + window],
                               rtol=1e-12, atol=1e-12)
    wc = r.standard_normal((3, 2) + k)
    padded = torch.nn.functional.pad(_t(x), tuple(v for pair in reversed(pairs) for v in pair))
    theirs = _torch_fn("conv", rank)(padded, _t(wc), stride=s)
    _close(CONV[rank](x, wc, stride=s, padding=pairs), theirs)


@pytest.mark.parametrize("rank", [1, 3])
def test_subpixel_conv_nd_is_conv_then_index_map(rank: int) -> None:
    """subpixel_convNd = convNd then the N-D CRD shuffle, spelled out element by element."""
    r = rng(600 + rank)
    factor = (3,) if rank == 1 else (2, 1, 3)
    phases = int(np.prod(factor))
    x = r.standard_normal((2, 2) + (4, 3, 2)[:rank])
    w = r.standard_normal((2 * phases, 2) + (2,) * rank)
    b = r.standard_normal(2 * phases)
    y = SUBPIXEL[rank](x, w, factor, b, padding=1)
    np.testing.assert_array_equal(y, _shuffle_nd_by_loops(CONV[rank](x, w, b, padding=1), factor, "CRD"))
    y_dcr = SUBPIXEL[rank](x, w, factor, b, padding=1, mode="DCR")
    np.testing.assert_array_equal(y_dcr, _shuffle_nd_by_loops(CONV[rank](x, w, b, padding=1), factor, "DCR"))


def _shuffle_nd_by_loops(x: np.ndarray, factor: Tuple[int, ...], mode: str) -> np.ndarray:
    """out[..., c, *(s*r + i)] = in[..., c*prod(r) + phase(i), *s] (CRD) or in[..., phase(i)*C + c, *s]
    (DCR), phase(i) the row-major index of i; channels first, one element at a time."""
    phases = int(np.prod(factor))
    c_out = x.shape[-len(factor) - 1] // phases
    spatial = x.shape[-len(factor):]
    lead = x.shape[: -len(factor) - 1]
    out = np.zeros(lead + (c_out,) + tuple(n * f for n, f in zip(spatial, factor)))
    for c in range(c_out):
        for phase, i in enumerate(itertools.product(*(range(f) for f in factor))):
            src = c * phases + phase if mode == "CRD" else phase * c_out + c
            for pos in itertools.product(*(range(n) for n in spatial)):
                dst = tuple(p * f + ii for p, f, ii in zip(pos, factor, i))
                out[(Ellipsis, c) + dst] = x[(Ellipsis, src) + pos]
    return out


@pytest.mark.parametrize("mode", ["CRD", "DCR"])
@pytest.mark.parametrize("factor", [(2,), (3,), (1,), (2, 2, 2), (1, 2, 3), (3, 1, 1)], ids=str)
def test_pixel_shuffle_nd_matches_index_map(mode: str, factor: Tuple[int, ...]) -> None:
    rank = len(factor)
    phases = int(np.prod(factor))
    x = rng(7).standard_normal((2, 2 * phases) + (3, 2, 2)[:rank])
    y = ref.pixel_shuffle(x, factor, mode=mode)
    np.testing.assert_array_equal(y, _shuffle_nd_by_loops(x, factor, mode))
    np.testing.assert_array_equal(ref.pixel_unshuffle(y, factor, mode=mode), x)
    last = ref.pixel_shuffle(np.moveaxis(x, 1, -1), factor, mode=mode, layout=("NLC", None, "NDHWC")[rank - 1])
    np.testing.assert_array_equal(last, np.moveaxis(y, 1, -1))
    np.testing.assert_array_equal(ref.pixel_shuffle(x[1], factor, mode=mode), y[1])  # unbatched
    assert ref.pixel_shuffle(x[:0], factor, mode=mode).shape == (0,) + y.shape[1:]


def test_pixel_shuffle_1d_hand_case() -> None:
    x = np.arange(6.0).reshape(1, 6, 1)  # 2 output channels, r = 3
    np.testing.assert_array_equal(ref.pixel_shuffle(x, (3,)), A([[[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]]))
    np.testing.assert_array_equal(ref.pixel_shuffle(x, (3,), mode="DCR"), A([[[0.0, 2.0, 4.0], [1.0, 3.0, 5.0]]]))
    two = np.arange(4.0).reshape(2, 2)  # (C*r, L) unbatched: channel c*2 + i lands at 2*l + i
    np.testing.assert_array_equal(ref.pixel_shuffle(two, (2,)), A([[0.0, 2.0, 1.0, 3.0]]))


def test_pixel_shuffle_2d_tuple_factor_matches_torch() -> None:
    torch = pytest.importorskip("torch", reason="torch is needed to compare against PyTorch")
    x = rng(8).standard_normal((2, 12, 3, 2))
    _close(ref.pixel_shuffle(x, (2, 2), layout="channels_first"), torch.nn.functional.pixel_shuffle(_t(x), 2))


def test_zero_insert_and_split_kernel_nd() -> None:
    x = rng(9).standard_normal((2, 3, 4, 5))
    z = ref.zero_insert(x, (2, 1, 3))
    assert z.shape == (2, 6, 4, 15)
    np.testing.assert_array_equal(z[:, ::2, :, ::3], x)
    assert np.count_nonzero(z) == np.count_nonzero(x)
    np.testing.assert_array_equal(ref.zero_insert(A([1.0, 2.0]), (3,)), A([1.0, 0.0, 0.0, 2.0, 0.0, 0.0]))
    k = np.arange(1.0, 6.0)
    np.testing.assert_array_equal(ref.split_kernel(k, (2,)), A([[1.0, 3.0, 5.0], [2.0, 4.0, 0.0]]))
    k3 = rng(10).standard_normal((2, 3, 4, 5))
    parts = ref.split_kernel(k3, (2, 3, 2))
    assert parts.shape == (12, 2, 2, 2, 3)
    for index, phase in enumerate(itertools.product(range(2), range(3), range(2))):  # row-major phases
        piece = k3[:, phase[0]::2, phase[1]::3, phase[2]::2]
        np.testing.assert_array_equal(parts[index][:, : piece.shape[1], : piece.shape[2], : piece.shape[3]], piece)
        assert np.count_nonzero(parts[index]) == np.count_nonzero(piece)


@pytest.mark.parametrize("rank", [1, 3])
def test_nd_odd_shapes(rank: int) -> None:
    """kernel < stride (empty phases), kernel not a multiple of stride, length-1 axes, layouts."""
    F_ct = _torch_fn("conv_transpose", rank)
    r = rng(700 + rank)
    last = ("NLC", None, "NDHWC")[rank - 1]
    for s, k, size in [(3, 2, 1), (2, 3, 1), (4, 1, 3), (3, 5, 2)]:
        x = r.standard_normal((1, 2) + (size,) * rank)
        w = r.standard_normal((2, 2) + (k,) * rank)
        b = r.standard_normal(2)
        ours = CONV_TRANSPOSE[rank](x, w, b, stride=s)
        _close(ours, F_ct(_t(x), _t(w), _t(b), stride=s))
        moved = CONV_TRANSPOSE[rank](np.moveaxis(x[0], 0, -1), w, b, stride=s, layout=last)
        np.testing.assert_allclose(moved, np.moveaxis(ours[0], 0, -1), rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("rank", [1, 2, 3])
def test_same_padding_and_output_size_nd(rank: int) -> None:
    r = rng(800 + rank)
    x = r.standard_normal((1, 2) + (3, 4, 2)[:rank])
    w = r.standard_normal((2, 3) + (4, 3, 2)[:rank])
    y = CONV_TRANSPOSE[rank](x, w, stride=2, padding="same")
    assert y.shape == (1, 3) + tuple(2 * v for v in x.shape[2:])
    smallest = tuple((n - 1) * 2 + k - 2 for n, k in zip(x.shape[2:], w.shape[2:]))
    bigger = tuple(v + 1 for v in smallest)
    skip = np.zeros((1, 7) + bigger)  # torch's U-Net idiom: output_size=skip.size()
    np.testing.assert_array_equal(
        CONV_TRANSPOSE[rank](x, w, stride=2, padding=1, output_size=skip.shape),
        CONV_TRANSPOSE[rank](x, w, stride=2, padding=1, output_padding=1),
    )


def test_output_size_torch_size_matches_torch_module_3d() -> None:
    torch = pytest.importorskip("torch", reason="torch is needed to compare against PyTorch")
    m = torch.nn.ConvTranspose3d(2, 3, 3, stride=2, padding=1).double()
    x = rng(15).standard_normal((1, 2, 2, 3, 2))
    skip = torch.zeros(1, 5, 4, 6, 3, dtype=torch.float64)
    ours = ref.conv_transpose3d(x, m.weight.detach().numpy(), m.bias.detach().numpy(), stride=2, padding=1,
                                output_size=skip.size())
    _close(ours, m(_t(x), output_size=skip.size()))


# ============================================================================ activations


@pytest.mark.parametrize("activation", ["relu", "relu6", "leaky_relu", "tanh", "sigmoid"])
@pytest.mark.parametrize("rank", [1, 2, 3])
def test_activation_matches_torch(rank: int, activation: str) -> None:
    torch = pytest.importorskip("torch", reason="torch is needed to compare against PyTorch")
    F = torch.nn.functional
    apply = {
        "relu": F.relu, "relu6": F.relu6, "tanh": torch.tanh, "sigmoid": torch.sigmoid,
        "leaky_relu": lambda t: F.leaky_relu(t, 0.2),
    }[activation]
    r = rng(900 + rank)
    x = 6 * r.standard_normal((2, 2) + (3, 2, 2)[:rank])
    wt, wc, ws = (r.standard_normal(shape + (2,) * rank) for shape in [(2, 3), (3, 2), (6, 2)])
    bt, bc = r.standard_normal(3), r.standard_normal(3)
    kw: Dict[str, Any] = dict(activation=activation, negative_slope=0.2)
    _close(CONV_TRANSPOSE[rank](x, wt, bt, stride=2, **kw),
           apply(_torch_fn("conv_transpose", rank)(_t(x), _t(wt), _t(bt), stride=2)))
    _close(CONV[rank](x, wc, bc, padding=1, **kw), apply(_torch_fn("conv", rank)(_t(x), _t(wc), _t(bc), padding=1)))
    factor = (2, 1, 3)[:rank] if rank != 2 else (2, 3)
    ws = r.standard_normal((2 * int(np.prod(factor)), 2) + (2,) * rank)
    plain = SUBPIXEL[rank](x, ws, factor, padding=1)
    np.testing.assert_allclose(SUBPIXEL[rank](x, ws, factor, padding=1, **kw), apply(_t(plain)).numpy(),
                               rtol=1e-12, atol=1e-15)


def test_activation_errors_and_dtype() -> None:
    x, w = np.ones((1, 1, 3), np.float32), np.ones((1, 1, 2), np.float32)
    assert ref.conv1d(x, w, activation="sigmoid").dtype == np.float32
    assert ref.conv1d(x, w, activation=None).dtype == np.float32
    with pytest.raises(ValueError, match="activation must be one of"):
        ref.conv1d(x, w, activation="gelu")
    with pytest.raises(TypeError, match="negative_slope"):
        ref.conv_transpose1d(x, w, activation="leaky_relu", negative_slope=None)


# ============================================================================ hypothesis, N-D


@st.composite
def _transposed_nd(draw: Any) -> Dict[str, Any]:
    rank = draw(st.sampled_from([1, 3]))
    ints = lambda lo, hi: st.tuples(*[st.integers(lo, hi)] * rank)  # noqa: E731
    s, k, d, size = draw(ints(1, 3)), draw(ints(1, 4)), draw(ints(1, 2)), draw(ints(1, 3))
    full = [(size[i] - 1) * s[i] + d[i] * (k[i] - 1) + 1 for i in range(rank)]
    pads = tuple(draw(st.tuples(st.integers(0, full[i] - 1), st.integers(0, full[i] - 1))) for i in range(rank))
    pads = tuple((lo, min(hi, full[i] - 1 - lo)) for i, (lo, hi) in enumerate(pads))
    g = draw(st.integers(1, 2))
    return dict(rank=rank, stride=s, kernel=k, dilation=d, size=size, padding=pads, groups=g,
                batch=draw(st.integers(0, 2)), seed=draw(st.integers(0, 2**32 - 1)))


@given(cfg=_transposed_nd())
@settings(max_examples=60, deadline=None)
def test_conv_transpose_nd_is_a_window_of_torch_full_output(cfg: Dict[str, Any]) -> None:
    F_ct = _torch_fn("conv_transpose", cfg["rank"])
    r = rng(cfg["seed"])
    g = cfg["groups"]
    x = r.standard_normal((cfg["batch"], 2 * g) + cfg["size"])
    w = r.standard_normal((2 * g, 2) + cfg["kernel"])
    ours = CONV_TRANSPOSE[cfg["rank"]](x, w, stride=cfg["stride"], padding=cfg["padding"], groups=g,
                                       dilation=cfg["dilation"])
    full = F_ct(_t(x), _t(w), stride=cfg["stride"], groups=g, dilation=cfg["dilation"]).numpy()
    window = tuple(slice(lo, full.shape[2 + i] - hi) for i, (lo, hi) in enumerate(cfg["padding"]))
    np.testing.assert_allclose(ours, full[(Ellipsis,) + window], rtol=1e-10, atol=1e-12)
    # and the adjoint identity: the correlation with the same weight, zero padding = the crop
    z = r.standard_normal(ours.shape)
    back = CONV[cfg["rank"]](z, w, stride=cfg["stride"], padding=cfg["padding"], dilation=cfg["dilation"], groups=g)
    assert back.shape == x.shape
    np.testing.assert_allclose(np.vdot(ours, z), np.vdot(x, back), rtol=1e-9, atol=1e-9)
