"""polyphase_weight / deconv_weight: the paper's equivalence as weight conversions."""

from __future__ import annotations

import dataclasses
from typing import Any, Dict

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import subpixel_ext as spx
from subpixel_ext import reference as ref

from conftest import (
    F32,
    F64,
    assert_close,
    ceil_div,
    conv_inputs,
    conv_transpose_configs,
    inputs_for,
    oracle,
    random_array,
    resolve_padding,
    transposed_out_len,
)


def _ref_convT(x, w, b, **kw):
    return ref.conv_transpose2d(x, w, b, **kw)


def _op_from_output_size(cfg: Dict[str, Any]) -> Dict[str, Any]:
    """polyphase_weight takes output_padding only: translate output_size into it."""
    kw = dict(cfg["kwargs"])
    size = kw.pop("output_size", None)
    if size is not None:
        pads = ((0, 0), (0, 0)) if kw["padding"] == "valid" else resolve_padding(kw["padding"])
        smallest = [
            transposed_out_len(cfg["hw"][a], cfg["kernel"][a], kw["stride"][a], kw["dilation"][a], *pads[a])
            for a in range(2)
        ]
        kw["output_padding"] = (size[0] - smallest[0], size[1] - smallest[1])
    return kw


# ============================================================================ polyphase_weight


@given(cfg=conv_transpose_configs(), seed=st.integers(0, 2**32 - 1))
def test_polyphase_weight_apply_equals_conv_transpose(cfg, seed) -> None:
    rng = np.random.default_rng(seed)
    x, w, b = inputs_for(rng, cfg, transposed=True)
    kw = _op_from_output_size(cfg)
    pw = spx.polyphase_weight(w, kw["stride"], kw["padding"], kw.get("output_padding", 0),
                              kw["dilation"], kw["groups"])
    y = pw.apply(x, b, layout=cfg["layout"])
    expected, scale = oracle(_ref_convT, x, w, b, layout=cfg["layout"], **kw)
    assert_close(y, expected, cfg["dtype"], scale, what=repr(kw))
    sh, sw = kw["stride"]
    assert pw.upscale_factor == (sh, sw) and pw.groups == kw["groups"]
    kh, kw_ = cfg["kernel"]
    dh, dw = kw["dilation"]
    assert pw.weight.shape == (
        cfg["c_out"] * sh * sw, cfg["c_in"] // kw["groups"],
        ceil_div(dh * (kh - 1) + 1, sh), ceil_div(dw * (kw_ - 1) + 1, sw),
    )


@pytest.mark.parametrize("stride", [1, 2, 3, 4, (2, 3), (4, 1)], ids=str)
@pytest.mark.parametrize("kernel", [(1, 1), (2, 2), (3, 3), (4, 4), (5, 2), (7, 3)], ids=str)
def test_polyphase_weight_shape_without_dilation(rng, stride, kernel) -> None:
    s = stride if isinstance(stride, tuple) else (stride, stride)
    w = random_array(rng, (6, 2) + kernel, F64)  # C_in = 6, groups = 3 -> C_out = 6
    pw = spx.polyphase_weight(w, stride, groups=3)
    assert pw.weight.shape == (6 * s[0] * s[1], 2, ceil_div(kernel[0], s[0]), ceil_div(kernel[1], s[1]))
    assert pw.weight.dtype == F64
    x = random_array(rng, (2, 6, 4, 5), F64)
    b = random_array(rng, (6,), F64)
    expected, scale = oracle(_ref_convT, x, w, b, stride=stride, groups=3)
    assert_close(pw.apply(x, b), expected, F64, scale)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(stride=2, padding="same"),
        dict(stride=3, padding="same", kernel=(2, 2)),           # K < s
        dict(stride=(2, 3), padding=((0, 3), (2, 1))),
        dict(stride=2, padding=((5, 0), (0, 5)), kernel=(3, 3)),  # crop > K - 1
        dict(stride=(3, 2), output_padding=(2, 1)),
        dict(stride=2, dilation=2, output_padding=1, padding=1),
        dict(stride=1, dilation=(3, 2), output_padding=(2, 1)),  # op < dilation with stride 1
        dict(stride=4, dilation=(2, 3), padding=((1, 2), (3, 0)), groups=2),
        dict(stride=(2, 4), padding="valid", groups=2),
    ],
    ids=str,
)
@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
def test_polyphase_weight_apply_cases(rng, kwargs, layout) -> None:
    kwargs = dict(kwargs)
    kernel = kwargs.pop("kernel", (4, 3))
    groups = kwargs.get("groups", 1)
    for dtype in (F32, F64):
        for n in (2, None):
            x, w, b = conv_inputs(rng, n=n, c_in=2 * groups, c_out=3 * groups, hw=(4, 5), kernel=kernel,
                                  groups=groups, transposed=True, layout=layout, dtype=dtype)
            pw = spx.polyphase_weight(w, **kwargs)
            expected, scale = oracle(_ref_convT, x, w, b, layout=layout, **kwargs)
            assert_close(pw.apply(x, b, layout=layout), expected, dtype, scale, what=repr(kwargs))
            assert_close(pw.apply(x, None, layout=layout), oracle(_ref_convT, x, w, None, layout=layout, **kwargs)[0],
                         dtype, scale)


def test_polyphase_weight_is_conv_plus_shuffle_plus_crop(rng) -> None:
    # The fields mean what the docstring says: conv2d with `padding`, pixel_shuffle, crop.
    x, w, _ = conv_inputs(rng, n=1, c_in=2, c_out=3, hw=(5, 4), kernel=(5, 4), transposed=True)
    pw = spx.polyphase_weight(w, (2, 3), padding=((1, 3), (2, 0)), output_padding=(1, 2))
    conv = ref.conv2d(x, pw.weight, padding=pw.padding, groups=pw.groups)
    shuffled = ref.pixel_shuffle(conv, pw.upscale_factor)
    (t, bt), (l, r) = pw.crop
    cropped = shuffled[:, :, t:shuffled.shape[2] - bt, l:shuffled.shape[3] - r]
    expected, scale = oracle(_ref_convT, x, w, None, stride=(2, 3), padding=((1, 3), (2, 0)), output_padding=(1, 2))
    assert_close(cropped, expected, F64, scale)


# ============================================================================ deconv_weight


@pytest.mark.parametrize(
    "factor, kernel, padding, groups",
    [
        (2, (3, 3), 1, 1),
        (2, (3, 3), 0, 1),
        (3, (3, 3), "same", 1),
        ((2, 3), (3, 2), ((2, 0), (0, 1)), 1),
        (2, (4, 4), "same", 2),
        (2, (1, 1), "valid", 1),
        ((1, 2), (5, 3), ((4, 4), (2, 2)), 3),
        (3, (2, 3), (1, 2), 1),
    ],
    ids=str,
)
def test_deconv_weight_equals_subpixel_conv(rng, factor, kernel, padding, groups) -> None:
    r = factor if isinstance(factor, tuple) else (factor, factor)
    channels, c_in = 2 * groups, 2 * groups
    w = random_array(rng, (channels * r[0] * r[1], c_in // groups) + kernel, F64)
    x = random_array(rng, (2, c_in, 4, 5), F64)
    d = spx.deconv_weight(w, factor, padding, groups)
    assert d.stride == r and d.groups == groups
    assert d.weight.shape == (c_in, channels // groups, kernel[0] * r[0], kernel[1] * r[1])
    y = spx.conv_transpose2d(x, d.weight, stride=d.stride, padding=d.padding,
                             output_padding=d.output_padding, groups=d.groups)
    expected = ref.pixel_shuffle(ref.conv2d(x, w, padding=padding, groups=groups), factor)
    assert_close(y, expected, F64)
    # apply() with the shuffled result's bias == sub-pixel conv with the bias repeated per phase
    b = random_array(rng, (channels,), F64)
    sp = ref.subpixel_conv2d(x, w, factor, np.repeat(b, r[0] * r[1]), padding=padding, groups=groups)
    for method_layout in ("NCHW", "NHWC"):
        xl = x if method_layout == "NCHW" else np.ascontiguousarray(x.transpose(0, 2, 3, 1))
        got = d.apply(xl, b, layout=method_layout)
        assert_close(got, sp if method_layout == "NCHW" else sp.transpose(0, 2, 3, 1), F64)

    # Round trip: polyphase_weight of the deconvolution weight gives back the sub-pixel conv.
    pw = spx.polyphase_weight(d.weight, d.stride, d.padding, d.output_padding, groups=d.groups)
    assert_close(pw.apply(x, b), sp, F64)
    native_sp = spx.subpixel_conv2d(x, w, factor, np.repeat(b, r[0] * r[1]), padding=padding, groups=groups)
    assert_close(pw.apply(x, b), native_sp, F64)


def test_deconv_weight_round_trip_recovers_the_weight(rng) -> None:
    # sub-pixel weight -> deconvolution weight -> sub-pixel weight is a pure rearrangement
    w = random_array(rng, (12, 3, 3, 2), F64)
    d = spx.deconv_weight(w, 2, ((1, 2), (0, 1)))
    pw = spx.polyphase_weight(d.weight, d.stride, d.padding, d.output_padding, groups=d.groups)
    np.testing.assert_array_equal(pw.weight, w)
    assert pw.padding == ((1, 2), (0, 1)) and pw.crop == ((0, 0), (0, 0))


def test_deconv_weight_dtypes(rng) -> None:
    w = random_array(rng, (8, 2, 3, 3), np.float16)
    assert spx.deconv_weight(w, 2).weight.dtype == np.float16  # rearranged, not converted
    assert spx.deconv_weight(w.astype(np.float32), 2).weight.dtype == F32
    assert spx.deconv_weight(np.ones((4, 1, 1, 1), np.int32), 2).weight.dtype == F64
    assert spx.polyphase_weight(np.ones((1, 1, 3, 3), np.int64), 2).weight.dtype == F64
    assert spx.polyphase_weight(np.ones((1, 1, 3, 3), np.float16), 2).weight.dtype == np.float16


def test_conversions_do_not_modify_their_input(rng) -> None:
    w = random_array(rng, (8, 2, 3, 3), F64)
    w.setflags(write=False)
    copy = w.copy()
    d = spx.deconv_weight(w, 2, 1)
    pw = spx.polyphase_weight(w, 2, 1, 1)
    np.testing.assert_array_equal(w, copy)
    assert not np.may_share_memory(d.weight, w) and not np.may_share_memory(pw.weight, w)


# ============================================================================ dataclasses, errors


def test_dataclasses_are_frozen(rng) -> None:
    pw = spx.polyphase_weight(random_array(rng, (2, 2, 3, 3), F64), 2)
    d = spx.deconv_weight(random_array(rng, (8, 2, 3, 3), F64), 2)
    assert isinstance(pw, spx.PolyphaseWeight) and isinstance(d, spx.DeconvWeight)
    for obj, field in [(pw, "weight"), (pw, "padding"), (pw, "crop"), (pw, "upscale_factor"), (pw, "groups"),
                       (d, "weight"), (d, "stride"), (d, "padding"), (d, "output_padding"), (d, "groups")]:
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(obj, field, None)
    assert dataclasses.is_dataclass(pw) and dataclasses.is_dataclass(d)


@pytest.mark.parametrize(
    "args, kwargs, match",
    [
        ((np.ones((2, 3)), 2), {}, "weight must be 3-D, 4-D or 5-D"),         # no kernel axis
        ((np.ones((2, 1, 3, 3, 3, 3)), 2), {}, "weight"),                    # 6-D: rank 4
        ((np.ones((2, 1, 3)), (2, 2)), {}, "stride must be an int or a tuple of 1 int"),  # 1-D weight
        ((np.ones((3, 1, 3, 3)), 2), dict(groups=2), "groups"),             # groups do not divide C_in
        ((np.ones((2, 1, 3, 3)), 2), dict(groups=0), "groups"),
        ((np.ones((2, 1, 3, 3)), 0), {}, "stride"),
        ((np.ones((2, 1, 3, 3)), 2), dict(dilation=0), "dilation"),
        ((np.ones((2, 1, 3, 3)), 2), dict(padding=-1), "padding"),
        ((np.ones((2, 1, 3, 3)), 2), dict(padding="full"), "padding"),
        ((np.ones((2, 1, 3, 3)), 2), dict(output_padding=2), "output_padding"),
        ((np.ones((2, 1, 3, 3)), (2, 3)), dict(output_padding=(1, 3)), "output_padding"),
        ((np.ones((2, 1, 3, 3)), 2), dict(padding="same", output_padding=1), "output_padding"),
    ],
    ids=str,
)
def test_polyphase_weight_bad_arguments(args, kwargs, match) -> None:
    with pytest.raises(ValueError, match=match):
        spx.polyphase_weight(*args, **kwargs)


@pytest.mark.parametrize(
    "args, match",
    [
        ((np.ones((8, 2)), 2), "conv_weight"),                  # 2-D: no kernel axis
        ((np.ones((8, 2, 3, 3, 3, 3)), 2), "conv_weight"),      # 6-D
        ((np.ones((8, 2, 3)), (2, 2)), "upscale_factor"),       # 1-D weight, 2-D factor
        ((np.ones((6, 2, 3, 3)), 2), "divisible"),              # 6 channels, r*r = 4
        ((np.ones((8, 2, 3, 3)), 2, 0, 3), "groups"),           # 2 output channels, groups 3
        ((np.ones((8, 2, 3, 3)), 2, 0, 0), "groups"),
        ((np.ones((8, 2, 3, 3)), 0), "upscale_factor"),
        ((np.ones((8, 2, 3, 3)), 2, 3), "padding"),             # more than k - 1
        ((np.ones((8, 2, 3, 3)), 2, ((0, 0), (0, 3))), "padding"),
        ((np.ones((8, 2, 3, 3)), 2, -1), "padding"),
    ],
    ids=str,
)
def test_deconv_weight_bad_arguments(args, match) -> None:
    with pytest.raises(ValueError, match=match):
        spx.deconv_weight(*args)


def test_apply_with_mismatched_input_raises() -> None:
    pw = spx.polyphase_weight(np.ones((2, 1, 3, 3)), 2, groups=1)
    with pytest.raises(ValueError, match="channels"):
        pw.apply(np.ones((1, 3, 4, 4)))
    with pytest.raises(ValueError, match="bias"):
        pw.apply(np.ones((1, 2, 4, 4)), np.ones(2))
    cropped = spx.polyphase_weight(np.ones((1, 1, 1, 1)), 1, padding=((1, 0), (0, 0)))
    with pytest.raises(ValueError):
        cropped.apply(np.ones((1, 1, 1, 1)))  # output height 1 - 1 = 0


# ============================================================================ 1-D and 3-D, through the oracle

REF_CT = {1: ref.conv_transpose1d, 2: ref.conv_transpose2d, 3: ref.conv_transpose3d}
REF_SP = {1: ref.subpixel_conv1d, 2: ref.subpixel_conv2d, 3: ref.subpixel_conv3d}


def _oracle_apply(pw: spx.PolyphaseWeight, x: np.ndarray, b: Any) -> np.ndarray:
    """PolyphaseWeight.apply spelled with the oracle: sub-pixel conv, then the crop."""
    rank = len(pw.upscale_factor)
    conv_bias = None if b is None else np.repeat(b, int(np.prod(pw.upscale_factor)))
    y = REF_SP[rank](x, pw.weight, pw.upscale_factor, conv_bias, padding=pw.padding, groups=pw.groups)
    window = tuple(slice(lo, y.shape[2 + i] - hi) for i, (lo, hi) in enumerate(pw.crop))
    return y[(Ellipsis,) + window]


@pytest.mark.parametrize(
    "rank, kwargs",
    [
        (1, dict(stride=2, padding=1)),
        (1, dict(stride=3, kernel=2)),                                    # K < s
        (1, dict(stride=2, padding="same", kernel=5)),
        (1, dict(stride=(3,), padding=((4, 0),), output_padding=2)),
        (1, dict(stride=2, dilation=3, output_padding=2, groups=2)),
        (3, dict(stride=2, padding=1, output_padding=1)),
        (3, dict(stride=(1, 2, 3), padding="same", kernel=2)),
        (3, dict(stride=(2, 3, 1), padding=((0, 1), (2, 0), (1, 1)), dilation=(1, 2, 1), groups=2)),
        (2, dict(stride=(2, 3), padding=((1, 0), (0, 2)), output_padding=(1, 2))),
    ],
    ids=str,
)
def test_polyphase_weight_nd_round_trip_through_the_oracle(rng, rank: int, kwargs: Dict[str, Any]) -> None:
    kwargs = dict(kwargs)
    k = kwargs.pop("kernel", 3)
    g = kwargs.get("groups", 1)
    w = random_array(rng, (2 * g, 2) + (k,) * rank, F64)
    b = random_array(rng, (2 * g,), F64)
    pw = spx.polyphase_weight(w, **kwargs)
    assert len(pw.upscale_factor) == rank and len(pw.padding) == rank and len(pw.crop) == rank
    for n in (2, 0):
        x = random_array(rng, (n, 2 * g) + (4, 3, 2)[:rank], F64)
        expected = REF_CT[rank](x, w, b, **kwargs)
        assert_close(_oracle_apply(pw, x, b), expected, F64)


@pytest.mark.parametrize(
    "rank, factor, padding, groups",
    [(1, 2, 1, 1), (1, (3,), ((0, 2),), 2), (1, 2, "same", 1), (3, 2, 1, 1), (3, (1, 2, 3), "same", 1),
     (3, (2, 1, 2), ((1, 0), (0, 1), (2, 2)), 2)],
    ids=str,
)
def test_deconv_weight_nd_equals_subpixel_conv_in_the_oracle(rng, rank, factor, padding, groups) -> None:
    r = (factor,) * rank if isinstance(factor, int) else factor
    channels, c_in = 2 * groups, 2 * groups
    w = random_array(rng, (channels * int(np.prod(r)), c_in // groups) + (3,) * rank, F64)
    x = random_array(rng, (2, c_in) + (3, 4, 2)[:rank], F64)
    d = spx.deconv_weight(w, factor, padding, groups)
    assert d.stride == r and d.output_padding == (0,) * rank
    assert d.weight.shape == (c_in, channels // groups) + tuple(3 * f for f in r)
    expected = REF_SP[rank](x, w, factor, padding=padding, groups=groups)
    got = REF_CT[rank](x, d.weight, stride=d.stride, padding=d.padding, output_padding=d.output_padding,
                       groups=d.groups)
    assert_close(got, expected, F64)
    # and back: polyphase_weight of the deconvolution weight is the same sub-pixel convolution
    pw = spx.polyphase_weight(d.weight, d.stride, d.padding, d.output_padding, groups=d.groups)
    assert_close(_oracle_apply(pw, x, None), expected, F64)


def test_apply_picks_the_public_function_by_rank(monkeypatch) -> None:
    # 1-D/3-D natives may not exist yet: apply must ask _api for the rank's function by name.
    from subpixel_ext import _api

    calls = []

    def fake(*args, **kwargs):
        calls.append(kwargs["layout"])
        return np.zeros((1, 2, 8))

    monkeypatch.setattr(_api, "subpixel_conv1d", fake, raising=False)
    monkeypatch.setattr(_api, "conv_transpose1d", fake, raising=False)
    pw = spx.polyphase_weight(np.ones((1, 2, 3)), 2, padding=1)
    assert pw.apply(np.ones((1, 1, 4)), layout="channels_first").shape == (1, 2, 8 - sum(pw.crop[0]))
    spx.deconv_weight(np.ones((4, 1, 3)), 2).apply(np.ones((1, 4, 1)), layout="nlc")
    assert calls == ["NCL", "NLC"]
