"""The rank-generic argument parser (subpixel_ext._params) directly: accepted and refused forms per
rank, messages that name the parameter and the value, extreme integers, output_size forms."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from subpixel_ext import _params as p

EXTREMES = [2**31, 2**62, 2**63, 2**64, 2**70]
RANKS = [1, 2, 3]


def weight(kind: str, rank: int, c_in: int = 2, c_out: int = 3, k: int = 3) -> np.ndarray:
    first, second = (c_in, c_out) if kind == "conv_transpose" else (c_out, c_in)
    return np.ones((first, second) + (k,) * rank)


# ============================================================================ per_axis


@pytest.mark.parametrize("rank", RANKS)
def test_per_axis_accepted_forms(rank: int) -> None:
    expected = tuple(range(2, 2 + rank))
    assert p.per_axis(2, "stride", rank) == (2,) * rank
    assert p.per_axis(np.int32(2), "stride", rank) == (2,) * rank
    assert p.per_axis(np.array(2), "stride", rank) == (2,) * rank
    for form in (expected, list(expected), np.array(expected), tuple(np.int64(v) for v in expected)):
        assert p.per_axis(form, "stride", rank) == expected
    assert all(type(v) is int for v in p.per_axis(np.array(expected), "stride", rank))


@pytest.mark.parametrize(
    "rank, value, exc, match",
    [
        (1, (2, 2), ValueError, r"stride must be an int or a tuple of 1 int, got \(2, 2\)"),
        (2, (2,), ValueError, r"stride must be an int or a pair of ints, got \(2,\)"),
        (3, (2, 2), ValueError, r"stride must be an int or a tuple of 3 ints, got \(2, 2\)"),
        (2, True, TypeError, r"stride must be an integer, got True"),
        (2, (True, 1), TypeError, r"stride must be an integer, got True"),
        (1, np.bool_(True), TypeError, r"stride must be an integer"),
        (2, 1.5, TypeError, r"stride must be an integer, got 1.5"),
        (2, "2", TypeError, r"stride must be an int or a pair of ints, got '2'"),
        (2, b"2", TypeError, r"stride must be an int or a pair"),
        (2, None, TypeError, r"stride must be an integer, got None"),
        (2, np.array([[1, 2]]), ValueError, r"stride must be an int or a pair"),
        (3, np.ones(3), TypeError, r"stride must be an integer"),
        (2, 0, ValueError, r"stride must be >= 1, got 0"),
        (3, (1, 0, 1), ValueError, r"stride must be >= 1, got \(1, 0, 1\)"),
    ],
)
def test_per_axis_refused_forms(rank: int, value: Any, exc: type, match: str) -> None:
    with pytest.raises(exc, match=match):
        p.per_axis(value, "stride", rank, minimum=1)


@pytest.mark.parametrize("big", EXTREMES)
@pytest.mark.parametrize("rank", RANKS)
def test_per_axis_extreme_integers(rank: int, big: int) -> None:
    if big <= p.INT64_MAX:
        assert p.per_axis(big, "stride", rank, minimum=1) == (big,) * rank
    else:
        with pytest.raises(OverflowError, match=f"stride must fit in int64.*{big}"):
            p.per_axis(big, "stride", rank, minimum=1)
        with pytest.raises(ValueError, match="stride"):  # IntegerRangeError is both
            p.per_axis(big, "stride", rank, minimum=1)
        with pytest.raises(OverflowError, match="stride"):
            p.per_axis((1,) * (rank - 1) + (big,), "stride", rank, minimum=1)
    with pytest.raises(ValueError, match=f"stride must be >= 1, got -{big}"):
        p.per_axis(-big, "stride", rank, minimum=1)


# ============================================================================ padding_spec


@pytest.mark.parametrize("rank", RANKS)
def test_padding_accepted_forms(rank: int) -> None:
    assert p.padding_spec("same", rank) == "same"
    assert p.padding_spec("VALID", rank) == "valid"
    assert p.padding_spec(1, rank) == ((1, 1),) * rank
    assert p.padding_spec(np.array(1), rank) == ((1, 1),) * rank
    ints = tuple(range(rank))
    assert p.padding_spec(ints, rank) == tuple((i, i) for i in ints)
    assert p.padding_spec(np.array(ints), rank) == tuple((i, i) for i in ints)
    pairs = tuple((i, i + 1) for i in range(rank))
    assert p.padding_spec(pairs, rank) == pairs
    assert p.padding_spec([list(q) for q in pairs], rank) == pairs
    assert p.padding_spec(np.array(pairs), rank) == pairs


@pytest.mark.parametrize(
    "rank, value, exc, match",
    [
        # a bare pair in 1-D is not (begin, end): the accepted forms are named
        (1, (1, 2), ValueError, r"padding must be an int or a tuple of 1 int .*\(p,\) or \(\(begin, end\),\).*got \(1, 2\)"),
        (1, ((1, 2), (3, 4)), ValueError, r"padding must be .* got \(\(1, 2\), \(3, 4\)\)"),
        (2, (1, 2, 3), ValueError, r"padding must be an int or a pair of ints or a pair of \(begin, end\) pairs"),
        (2, ((1, 2), 3), ValueError, r"padding must be an int or a pair"),
        (2, ((1, 2, 3), (1, 1)), ValueError, r"padding must be an int or a pair"),
        (3, ((1, 2), (1, 2)), ValueError, r"padding must be an int or a tuple of 3 ints"),
        (2, -1, ValueError, r"padding must be >= 0, got -1"),
        (2, ((0, -1), (0, 0)), ValueError, r"padding must be >= 0, got \(\(0, -1\), \(0, 0\)\)"),
        (2, 1.0, TypeError, r"padding must be an integer, got 1.0"),
        (2, True, TypeError, r"padding must be an integer"),
        (2, "full", ValueError, r"padding must be one of \['same', 'valid'\], got 'full'"),
        (2, b"same", TypeError, r"padding"),
        (2, None, TypeError, r"padding must be an integer, got None"),
    ],
)
def test_padding_refused_forms(rank: int, value: Any, exc: type, match: str) -> None:
    with pytest.raises(exc, match=match):
        p.padding_spec(value, rank)


@pytest.mark.parametrize("big", [2**63, 2**64, 2**70])
def test_padding_extreme_integers(big: int) -> None:
    for value in (big, (0, big), ((0, big), (0, 0))):
        with pytest.raises(OverflowError, match="padding"):
            p.padding_spec(value, 2)


# ============================================================================ words and scalars


@pytest.mark.parametrize("rank", RANKS)
def test_layouts(rank: int) -> None:
    first, last = p.LAYOUTS[rank]
    assert p.parse_layout(first, rank) is False and p.parse_layout(last.lower(), rank) is True
    assert p.parse_layout(None, rank) is False
    assert p.parse_layout("channels_first", rank) is False
    assert p.parse_layout("Channels_Last", rank) is True
    other = p.LAYOUTS[rank % 3 + 1][0]
    with pytest.raises(ValueError, match=rf"layout must be one of \['{first}', '{last}', 'channels_first', "
                                         rf"'channels_last'\], got '{other}'"):
        p.parse_layout(other, rank)
    with pytest.raises(TypeError, match="layout must be one of"):
        p.parse_layout(3, rank)


def test_num_threads() -> None:
    assert p.num_threads(None) == 0
    assert p.num_threads(3) == 3
    assert p.num_threads(np.int64(4)) == 4
    assert p.num_threads(2**31 - 1) == 2**31 - 1  # passed through: the native side caps it
    for big in EXTREMES:
        assert p.num_threads(big) == 2**31 - 1  # any request is capped, never refused
    for bad, exc in [(0, ValueError), (-1, ValueError), (-(2**70), ValueError), (1.5, TypeError), (True, TypeError)]:
        with pytest.raises(exc, match="num_threads"):
            p.num_threads(bad)


def test_activation_spec() -> None:
    assert p.activation_spec(None, 0.01) == (None, 0.01)
    assert p.activation_spec("ReLU", 0) == ("relu", 0.0)
    assert p.activation_spec("leaky_relu", np.float32(0.5)) == ("leaky_relu", 0.5)
    with pytest.raises(ValueError, match="activation must be one of .* got 'gelu'"):
        p.activation_spec("gelu", 0.01)
    with pytest.raises(TypeError, match="negative_slope must be a real number, got '0.1'"):
        p.activation_spec("relu", "0.1")


# ============================================================================ conv_params


@pytest.mark.parametrize("rank", RANKS)
@pytest.mark.parametrize("kind", ["conv", "conv_transpose", "subpixel"])
def test_conv_params_fields(kind: str, rank: int) -> None:
    factor = (2,) * rank if kind == "subpixel" else (1,) * rank
    c_out = 3 * (2**rank if kind == "subpixel" else 1)
    w = weight(kind, rank, c_in=4, c_out=c_out if kind != "conv_transpose" else 3)
    cp = p.conv_params(kind, w, None, rank=rank, stride=2, padding="same", groups=1, dilation=1,
                       layout=p.LAYOUTS[rank][1], upscale_factor=2, mode="dcr")
    assert cp.kind == kind and cp.rank == rank and cp.channels_last
    assert cp.in_channels == 4 and cp.out_channels == 3
    assert cp.weight_out_channels == c_out if kind != "conv_transpose" else cp.weight_out_channels == 3
    assert cp.kernel == (3,) * rank and cp.stride == (2,) * rank and cp.dilation == (1,) * rank
    assert cp.padding == "same" and cp.output_padding == (0,) * rank
    assert cp.factor == factor and cp.dcr == (kind == "subpixel")
    assert p.conv_params(kind, w, None, rank=rank).channels_last is False


@pytest.mark.parametrize("rank", RANKS)
def test_conv_params_weight_of_another_rank(rank: int) -> None:
    w = np.ones((2, 3) + (3,) * (rank % 3 + 1))
    with pytest.raises(ValueError, match=rf"weight must be {rank + 2}-D .*got shape {w.shape}".replace("(", r"\(").replace(")", r"\)")):
        p.conv_params("conv", w, None, rank=rank)


@pytest.mark.parametrize(
    "kind, kwargs, exc, match",
    [
        ("conv_transpose", dict(groups=3), ValueError, r"groups=3 does not divide the 2 input channels"),
        ("conv", dict(groups=2), ValueError, r"groups=2 must divide the 3 output channels"),
        ("conv", dict(groups=0), ValueError, r"groups must be >= 1, got 0"),
        ("conv", dict(groups=2**64), OverflowError, r"groups must fit in int64"),
        ("conv", dict(groups=1.0), TypeError, r"groups must be an integer, got 1.0"),
        ("subpixel", dict(upscale_factor=2), ValueError, r"weight has 3 output channels, not divisible by upscale_factor\*\*2 = 4"),
        ("subpixel", dict(upscale_factor=(1, 2)), ValueError, r"not divisible by prod\(upscale_factor\) = 2"),
        ("subpixel", dict(mode="RDC"), ValueError, r"mode must be one of \['CRD', 'DCR'\], got 'RDC'"),
        ("conv_transpose", dict(stride=2, output_padding=2), ValueError,
         r"output_padding must be smaller than max\(stride, dilation\) = 2 along H, got 2"),
        ("conv_transpose", dict(stride=(1, 3), output_padding=(0, 3)), ValueError, r"= 3 along W, got \(0, 3\)"),
        ("conv_transpose", dict(stride=2, padding="same", output_padding=1), ValueError,
         r"output_padding must be 0 with padding='same', got 1"),
        ("conv_transpose", dict(output_padding=-1), ValueError, r"output_padding must be >= 0"),
        ("conv", dict(dilation=2**62), OverflowError, r"effective kernel size along H"),
        ("conv", dict(stride=2**63), OverflowError, r"stride must fit in int64.*9223372036854775808"),
        ("conv", dict(padding=2**70), OverflowError, r"padding must fit in int64.*1180591620717411303424"),
        ("conv", dict(layout="NCL"), ValueError, r"layout must be one of"),
        ("nope", {}, ValueError, r"kind must be one of"),
    ],
)
def test_conv_params_errors(kind: str, kwargs: dict, exc: type, match: str) -> None:
    w = weight("conv_transpose" if kind == "conv_transpose" else "conv", 2)
    with pytest.raises(exc, match=match):
        p.conv_params(kind, w, None, rank=2, **kwargs)


def test_conv_params_bias_and_kernel() -> None:
    with pytest.raises(ValueError, match=r"bias must have shape \(3,\), got \(4,\)"):
        p.conv_params("conv_transpose", weight("conv_transpose", 1), np.ones(4), rank=1)
    with pytest.raises(ValueError, match=r"bias must have shape \(12,\), got \(3,\)"):
        p.conv_params("subpixel", np.ones((12, 2, 3, 3)), np.ones(3), rank=2, upscale_factor=2)
    with pytest.raises(ValueError, match=r"weight must have a kernel of size >= 1, got shape \(3, 2, 3, 0, 3\)"):
        p.conv_params("conv", np.ones((3, 2, 3, 0, 3)), None, rank=3)


# ============================================================================ conv_geometry


def test_conv_geometry_conv_same_and_layouts() -> None:
    cp = p.conv_params("conv", weight("conv", 3, k=3), None, rank=3, stride=(2, 1, 3), padding="same")
    geo = p.conv_geometry(cp, (4, 2, 5, 4, 7))
    assert geo.batched and geo.n == 4 and geo.in_spatial == (5, 4, 7)
    assert geo.out_spatial == (3, 4, 3) and geo.out_shape == (4, 3, 3, 4, 3)
    assert geo.pad_begin == (1, 1, 1) and geo.pad_end == (1, 1, 1)
    last = p.conv_params("conv", weight("conv", 1), None, rank=1, padding=((0, 2),), layout="NLC")
    geo = p.conv_geometry(last, (6, 2))
    assert not geo.batched and geo.out_shape == (6, 3) and geo.pad_begin == (0,) and geo.pad_end == (2,)
    assert p.conv_geometry(last, (0, 6, 2)).out_shape == (0, 6, 3)  # empty batch


def test_conv_geometry_subpixel_and_transposed() -> None:
    sp = p.conv_params("subpixel", np.ones((12, 2, 3)), None, rank=1, padding=1, upscale_factor=(4,))
    assert p.conv_geometry(sp, (2, 5)).out_shape == (3, 20)
    ct = p.conv_params("conv_transpose", weight("conv_transpose", 2, k=4), None, rank=2, stride=2, padding="same")
    geo = p.conv_geometry(ct, (1, 2, 3, 5))
    assert geo.out_spatial == (6, 10) and geo.pad_begin == (1, 1) and geo.pad_end == (1, 1)


@pytest.mark.parametrize(
    "x_shape, match",
    [
        ((2, 5), r"x must be 3-D or 4-D \(NCHW with optional batch\), got shape \(2, 5\)"),
        ((1, 2, 0, 4), r"x must have spatial size >= 1, got shape \(1, 2, 0, 4\)"),
        ((1, 3, 4, 4), r"weight expects 2 input channels \(weight.shape\[1\]=2 x groups=1\) but x has 3"),
        ((1, 2, 2, 4), r"kernel of effective size 3 is larger than the padded input \(2\) along H"),
    ],
)
def test_conv_geometry_errors(x_shape: tuple, match: str) -> None:
    cp = p.conv_params("conv", weight("conv", 2), None, rank=2)
    with pytest.raises(ValueError, match=match):
        p.conv_geometry(cp, x_shape)


def test_transposed_output_size_forms() -> None:
    torch = pytest.importorskip("torch")
    ct = p.conv_params("conv_transpose", weight("conv_transpose", 2), None, rank=2, stride=2, padding=1)
    # smallest (3-1)*2 + 3 - 2 = 5, (4-1)*2 + 3 - 2 = 7; reachable up to +1
    for size in [(6, 8), [6, 8], np.array([6, 8]), (9, 2, 6, 8), torch.Size([1, 2, 6, 8]), torch.zeros(1, 3, 6, 8).size()]:
        assert p.conv_geometry(ct, (1, 2, 3, 4), size).out_spatial == (6, 8)
    assert p.conv_geometry(ct, (1, 2, 3, 3), 6).out_spatial == (6, 6)
    one = p.conv_params("conv_transpose", weight("conv_transpose", 1), None, rank=1, stride=3)
    assert p.conv_geometry(one, (2, 4), torch.Size([5, 2, 14])).out_spatial == (14,)


@pytest.mark.parametrize(
    "size, exc, match",
    [
        ((7, 7), ValueError, r"output_size \(7, 7\) is out of reach: along H it must be between 5 and 6"),
        ((6, 9), ValueError, r"along W it must be between 7 and 8"),
        ((6,), ValueError, r"output_size must be an int or a pair of ints \(or a longer sequence"),
        ((0, 7), ValueError, r"output_size must be >= 1, got \(0, 7\)"),
        ((6, 7.0), TypeError, r"output_size must be an integer, got 7.0"),
        ((6, 2**64), OverflowError, r"output_size must fit in int64"),
        ("67", TypeError, r"output_size must be an int or a pair"),
    ],
)
def test_transposed_output_size_errors(size: Any, exc: type, match: str) -> None:
    ct = p.conv_params("conv_transpose", weight("conv_transpose", 2), None, rank=2, stride=2, padding=1)
    with pytest.raises(exc, match=match):
        p.conv_geometry(ct, (1, 2, 3, 4), size)


def test_transposed_output_size_refused_combinations() -> None:
    w = weight("conv_transpose", 2)
    ct = p.conv_params("conv_transpose", w, None, rank=2, stride=2, output_padding=1)
    with pytest.raises(ValueError, match=r"output_size and output_padding cannot both be given"):
        p.conv_geometry(ct, (1, 2, 3, 4), (8, 10))
    same = p.conv_params("conv_transpose", w, None, rank=2, stride=2, padding="same")
    with pytest.raises(ValueError, match=r"output_size cannot be combined with padding='same'"):
        p.conv_geometry(same, (1, 2, 3, 4), (6, 8))
    conv = p.conv_params("conv", weight("conv", 2), None, rank=2)
    with pytest.raises(ValueError, match=r"output_size is only accepted by transposed"):
        p.conv_geometry(conv, (1, 2, 3, 4), (1, 2))
    crop = p.conv_params("conv_transpose", w, None, rank=2, padding=((0, 0), (9, 0)))
    with pytest.raises(ValueError, match=r"output size along W would be -3 \(input 4, kernel 3"):
        p.conv_geometry(crop, (1, 2, 3, 4))


@pytest.mark.parametrize("big", [2**62, 2**63 - 1])
def test_geometry_beyond_int64_raises_overflow(big: int) -> None:
    ct = p.conv_params("conv_transpose", weight("conv_transpose", 1, k=1), None, rank=1, stride=big)
    with pytest.raises(OverflowError, match=rf"full output along L .*stride {big}"):
        p.conv_geometry(ct, (1, 2, 4))
    conv = p.conv_params("conv", weight("conv", 3, k=1), None, rank=3, padding=((0, 0), (0, 0), (big, big)))
    with pytest.raises(OverflowError, match=r"padded input along W"):
        p.conv_geometry(conv, (1, 2, 1, 1, 4))
    sp = p.conv_params("subpixel", np.ones((8, 2, 1, 1)), None, rank=2, upscale_factor=(2, 4), padding=((0, 0), (big // 4, big // 4)))
    with pytest.raises(OverflowError, match=r"output size along W"):
        p.conv_geometry(sp, (1, 2, 1, 1))
    same = p.conv_params("conv_transpose", weight("conv_transpose", 2, k=1), None, rank=2, stride=(1, big), padding="same")
    with pytest.raises(OverflowError, match="along W"):
        p.conv_geometry(same, (1, 2, 1, 4))


# ============================================================================ data movement


@pytest.mark.parametrize(
    "factor, x_shape, layout, inverse, expected",
    [
        (2, (5, 8, 3, 4), None, False, dict(rank=2, batch=5, channels_hi=2, spatial_lo=(3, 4), out_shape=(5, 2, 6, 8))),
        ((3,), (2, 1, 6, 4), "NCL", False, dict(rank=1, batch=2, channels_hi=2, spatial_lo=(4,), out_shape=(2, 1, 2, 12))),
        ((3,), (12, 2), "NLC", True, dict(rank=1, batch=1, channels_hi=2, spatial_lo=(4,), out_shape=(4, 6))),
        ((1, 2, 3), (0, 12, 2, 2, 2), "NCDHW", False,
         dict(rank=3, batch=0, channels_hi=2, spatial_lo=(2, 2, 2), out_shape=(0, 2, 2, 4, 6))),
        ((2, 2, 2), (2, 4, 6, 3), "channels_last", True,
         dict(rank=3, batch=1, channels_hi=3, spatial_lo=(1, 2, 3), out_shape=(1, 2, 3, 24))),
    ],
)
def test_shuffle_spec(factor: Any, x_shape: tuple, layout: Any, inverse: bool, expected: dict) -> None:
    spec = p.shuffle_spec(x_shape, factor, layout, "crd", inverse, "f")
    for field, value in expected.items():
        assert getattr(spec, field) == value, field
    assert spec.factor == (factor if isinstance(factor, tuple) else (factor, factor)) and not spec.dcr


@pytest.mark.parametrize(
    "factor, x_shape, layout, inverse, exc, match",
    [
        ((2, 2, 2, 2), (1, 16, 1, 1, 1, 1), None, False, ValueError, r"f must be an int \(2-D\) or a tuple of 1, 2 or 3 ints"),
        ((), (1, 4, 2), None, False, ValueError, r"f must be an int \(2-D\) or a tuple of 1, 2 or 3 ints, got \(\)"),
        ((3,), (6,), None, False, ValueError, r"x must have at least 2 dimensions, got shape \(6,\)"),
        ((2, 2, 2), (4, 1, 1, 1), None, False, ValueError, r"channels \(4\) must be divisible by f\*\*3 = 8"),
        ((4,), (1, 6), None, True, ValueError, r"spatial size \(6,\) must be divisible by f=\(4,\)"),
        ((2,), (2, 4), "NCHW", False, ValueError, r"layout must be one of \['NCL', 'NLC'"),
        (2, (4, 1, 1), None, False, TypeError, r"mode"),
        (0, (4, 1, 1), None, False, ValueError, r"f must be >= 1, got 0"),
        ((2**64,), (1, 1), None, True, OverflowError, r"f must fit in int64"),
        ((2**62,), (2**62, 2**62), None, True, OverflowError, r"channel count"),
        ((2**62,), (1, 4), None, False, ValueError, r"channels \(1\)"),
        ((2**62, 1), (2**62, 4, 1), None, False, OverflowError, r"output size"),
    ],
)
def test_shuffle_spec_errors(factor: Any, x_shape: tuple, layout: Any, inverse: bool, exc: type, match: str) -> None:
    mode = None if exc is TypeError else "CRD"
    with pytest.raises(exc, match=match):
        p.shuffle_spec(x_shape, factor, layout, mode, inverse, "f")


def test_zero_insert_and_split_kernel_specs() -> None:
    assert p.zero_insert_spec((2, 3, 4), 2) == ((2, 2), (2, 6, 8))
    assert p.zero_insert_spec((2, 3, 4), (3,)) == ((3,), (2, 3, 12))
    assert p.zero_insert_spec((2, 3, 4), (1, 2, 3)) == ((1, 2, 3), (2, 6, 12))
    assert p.split_kernel_spec((5, 4, 3), (2, 2, 2)) == ((2, 2, 2), (3, 2, 2))
    with pytest.raises(ValueError, match=r"x must have at least 2 dimensions, got shape \(3,\)"):
        p.zero_insert_spec((3,), 2)
    with pytest.raises(ValueError, match=r"x must have at least 3 dimensions"):
        p.zero_insert_spec((3, 3), (1, 1, 1))
    with pytest.raises(ValueError, match=r"kernel must have at least 2 dimensions"):
        p.split_kernel_spec((3,), 2)
    with pytest.raises(OverflowError, match=r"result size"):
        p.zero_insert_spec((4,), (2**62,))
    with pytest.raises(OverflowError, match=r"stride must fit in int64"):
        p.split_kernel_spec((4,), (2**63,))
