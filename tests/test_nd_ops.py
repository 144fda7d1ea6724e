"""The 1-D / 2-D / 3-D convolutions against the NumPy oracle (float64 on the same inputs).

Every rank x dtype x layout x geometry, each geometry sized both below the 4,096
multiply-add threshold under which a transposed convolution runs as a plain scatter and above
it (the engine), every method of the transposed convolution ("auto" bit-identical to
"polyphase"), batched and unbatched. Geometries: kernel not a multiple of the stride, kernel
smaller than the stride, gcd(dilation, stride) > 1 (phases without taps), groups, asymmetric
padding per axis, "same", "valid", output_padding, output_size (also a longer sequence such as
a torch.Size), batch 0, length-1 axes.
"""

from __future__ import annotations

import zlib
from typing import Any, Dict, Tuple

import numpy as np
import pytest

import subpixel_ext as spx
from subpixel_ext import reference as ref

from _helpers import F32, F64, LAYOUTS, assert_close, nd_conv_inputs, oracle

SCATTER_MACS = 4096  # transposed problems up to this many multiply-adds run as a scatter
RANKS = (1, 2, 3)


def _axes(rank: int, values: Tuple[Any, ...]) -> Tuple[Any, ...]:
    """Per-axis values for `rank` axes: the last `rank` of a 3-axis description."""
    return tuple(values[3 - rank:])


# name -> per-axis (spatial, kernel, stride, dilation) over 3 axes, plus keyword extras
TRANSPOSED: Dict[str, Dict[str, Any]] = {
    "k_not_multiple_of_s": dict(k=(5, 3, 5), s=(2, 2, 3)),
    "k_smaller_than_s": dict(k=(2, 1, 2), s=(3, 2, 4)),
    "dilation_gcd_empty_phases": dict(k=(3, 2, 3), s=(2, 4, 2), d=(2, 2, 4)),
    "groups": dict(k=(3, 3, 2), s=(2, 1, 2), groups=2),
    "asymmetric_padding": dict(k=(4, 3, 4), s=(2, 3, 2), padding=((2, 0), (0, 1), (1, 2))),
    "same": dict(k=(3, 4, 5), s=(2, 3, 2), padding="same"),
    "valid": dict(k=(3, 2, 3), s=(3, 2, 1), padding="valid"),
    "output_padding": dict(k=(3, 3, 2), s=(3, 2, 3), padding=(1, 0, 1), output_padding=(2, 1, 0)),
    "output_size": dict(k=(4, 3, 3), s=(2, 3, 2), padding=1, output_size="+1"),
    "output_size_long": dict(k=(3, 3, 3), s=(3, 2, 2), output_size="long"),
    "batch_0": dict(k=(3, 2, 3), s=(2, 2, 2), n=0),
    "length_1_axes": dict(k=(1, 3, 1), s=(1, 2, 3), spatial=(1, None, 1)),
}


def _transposed_problem(rank: int, name: str, big: bool, dtype: Any, channels_last: bool, seed: int):
    spec = TRANSPOSED[name]
    k, s = _axes(rank, spec["k"]), _axes(rank, spec["s"])
    d = _axes(rank, spec.get("d", (1, 1, 1)))
    groups = spec.get("groups", 1)
    base = {1: (11, 11, 23), 2: (1, 5, 6), 3: (3, 4, 3)}[rank] if big else {1: (1, 1, 4), 2: (1, 2, 3), 3: (2, 1, 2)}[rank]
    spatial = list(_axes(rank, base))
    for a, v in enumerate(_axes(rank, spec.get("spatial", (None,) * 3))):
        if v is not None:
            spatial[a] = v
    c_in, c_out = (4 * groups, 3 * groups) if big else (groups, groups)
    n = spec.get("n", (2 if big else 1) if seed % 2 else None)
    def count() -> int:  # multiply-adds of the call (batch 0 counted as 1)
        return max(n or 1, 1) * c_in * (c_out // groups) * int(np.prod(k)) * int(np.prod(spatial))
    while big and count() <= SCATTER_MACS:
        spatial[-1] *= 2
    kwargs: Dict[str, Any] = dict(stride=s, dilation=d, groups=groups)
    padding = spec.get("padding", 0)
    kwargs["padding"] = padding if isinstance(padding, (str, int)) else _axes(rank, padding)
    if "output_padding" in spec:
        kwargs["output_padding"] = _axes(rank, spec["output_padding"])
    x, w, b = nd_conv_inputs(np.random.default_rng(seed), n=n, c_in=c_in, c_out=c_out, spatial=spatial, kernel=k,
                             groups=groups, channels_last=channels_last, dtype=dtype, bias=seed % 3 != 0)
    if "output_size" in spec:
        # the largest reachable size: output_padding = stride - 1 per axis (s > d here)
        pads = [(p, p) for p in (padding,) * rank] if isinstance(padding, int) else [(0, 0)] * rank
        size = tuple((h - 1) * si + di * (ki - 1) + 1 - lo - hi + si - 1
                     for h, si, di, ki, (lo, hi) in zip(spatial, s, d, k, pads))
        kwargs["output_size"] = size if spec["output_size"] == "+1" else (5, c_out) + size
    return x, w, b, kwargs, count()


@pytest.mark.parametrize("channels_last", [False, True], ids=["first", "last"])
@pytest.mark.parametrize("dtype", [F32, F64], ids=["f32", "f64"])
@pytest.mark.parametrize("big", [False, True], ids=["scatter", "engine"])
@pytest.mark.parametrize("name", sorted(TRANSPOSED))
@pytest.mark.parametrize("rank", RANKS)
def test_conv_transpose_nd_matches_oracle(rank: int, name: str, big: bool, dtype: np.dtype, channels_last: bool) -> None:
    seed = zlib.crc32(repr((rank, name, big, channels_last)).encode()) % 1000
    x, w, b, kwargs, macs = _transposed_problem(rank, name, big, dtype, channels_last, seed)
    assert (macs > SCATTER_MACS) == big, (name, macs)  # the size really picks the path
    kwargs["layout"] = LAYOUTS[rank][channels_last]
    fn, ref_fn = getattr(spx, f"conv_transpose{rank}d"), getattr(ref, f"conv_transpose{rank}d")
    expected, scale = oracle(ref_fn, x, w, b, **kwargs)
    results = {}
    for method in ("direct", "polyphase", "auto"):
        results[method] = fn(x, w, b, **kwargs, method=method)
        assert_close(results[method], expected, dtype, scale, what=f"{name} {method} {kwargs}")
    assert np.array_equal(results["auto"], results["polyphase"]), "auto is documented to be polyphase"


CONV: Dict[str, Dict[str, Any]] = {
    "stride": dict(k=(3, 2, 3), s=(2, 3, 2)),
    "dilation": dict(k=(3, 2, 2), d=(2, 3, 2), padding=2),
    "groups": dict(k=(2, 3, 2), groups=3),
    "asymmetric_padding": dict(k=(3, 3, 2), s=(1, 2, 2), padding=((2, 0), (0, 1), (1, 2))),
    "same_strided": dict(k=(4, 3, 3), s=(3, 2, 2), padding="same"),
    "valid": dict(k=(2, 3, 2), padding="valid"),
    "batch_0": dict(k=(3, 1, 2), n=0),
    "length_1_axes": dict(k=(1, 3, 1), spatial=(1, None, 1)),
}


def _conv_problem(rank: int, name: str, big: bool, dtype: Any, channels_last: bool, seed: int, subpixel: bool):
    spec = CONV[name]
    k = _axes(rank, spec["k"])
    s, d = _axes(rank, spec.get("s", (1, 1, 1))), _axes(rank, spec.get("d", (1, 1, 1)))
    groups = spec.get("groups", 1)
    base = {1: (1, 1, 40), 2: (1, 9, 8), 3: (5, 5, 6)}[rank] if big else {1: (1, 1, 7), 2: (1, 5, 4), 3: (3, 4, 4)}[rank]
    spatial = [max(b, d_ * (k_ - 1) + 1) for b, d_, k_ in zip(_axes(rank, base), d, k)]
    for a, v in enumerate(_axes(rank, spec.get("spatial", (None,) * 3))):
        if v is not None:
            spatial[a] = v
    c_in, c_out = (3 * groups, 2 * groups) if big else (groups, groups)
    factor = _axes(rank, (2, 1, 3)) if subpixel else ()
    n = spec.get("n", 2 if seed % 2 else None)
    padding = spec.get("padding", 0)
    kwargs: Dict[str, Any] = dict(stride=s, dilation=d, groups=groups,
                                  padding=padding if isinstance(padding, (str, int)) else _axes(rank, padding))
    x, w, b = nd_conv_inputs(np.random.default_rng(seed), n=n, c_in=c_in, c_out=c_out, spatial=spatial, kernel=k,
                             groups=groups, kind="subpixel" if subpixel else "conv", factor=factor,
                             channels_last=channels_last, dtype=dtype, bias=seed % 3 != 0)
    return x, w, b, kwargs, factor


@pytest.mark.parametrize("channels_last", [False, True], ids=["first", "last"])
@pytest.mark.parametrize("dtype", [F32, F64], ids=["f32", "f64"])
@pytest.mark.parametrize("big", [False, True], ids=["small", "big"])
@pytest.mark.parametrize("name", sorted(CONV))
@pytest.mark.parametrize("rank", RANKS)
def test_conv_nd_matches_oracle(rank: int, name: str, big: bool, dtype: np.dtype, channels_last: bool) -> None:
    seed = zlib.crc32(repr((rank, name, big, channels_last, "conv")).encode()) % 1000
    x, w, b, kwargs, _ = _conv_problem(rank, name, big, dtype, channels_last, seed, subpixel=False)
    kwargs["layout"] = LAYOUTS[rank][channels_last]
    expected, scale = oracle(getattr(ref, f"conv{rank}d"), x, w, b, **kwargs)
    assert_close(getattr(spx, f"conv{rank}d")(x, w, b, **kwargs), expected, dtype, scale, what=f"{name} {kwargs}")


@pytest.mark.parametrize("mode", ["CRD", "DCR"])
@pytest.mark.parametrize("channels_last", [False, True], ids=["first", "last"])
@pytest.mark.parametrize("dtype", [F32, F64], ids=["f32", "f64"])
@pytest.mark.parametrize("big", [False, True], ids=["small", "big"])
@pytest.mark.parametrize("name", sorted(CONV))
@pytest.mark.parametrize("rank", RANKS)
def test_subpixel_conv_nd_matches_oracle(rank: int, name: str, big: bool, dtype: np.dtype, channels_last: bool,
                                         mode: str) -> None:
    seed = zlib.crc32(repr((rank, name, big, channels_last, mode)).encode()) % 1000
    x, w, b, kwargs, factor = _conv_problem(rank, name, big, dtype, channels_last, seed, subpixel=True)
    kwargs.update(layout=LAYOUTS[rank][channels_last], mode=mode)
    ref_fn = getattr(ref, f"subpixel_conv{rank}d")
    expected, scale = oracle(lambda x_, w_, b_, **kw: ref_fn(x_, w_, factor, b_, **kw), x, w, b, **kwargs)
    y = getattr(spx, f"subpixel_conv{rank}d")(x, w, factor, b, **kwargs)
    assert_close(y, expected, dtype, scale, what=f"{name} r={factor} {kwargs}")


@pytest.mark.parametrize("rank", RANKS)
def test_output_size_accepts_any_sequence_read_from_its_end(rank: int) -> None:
    x, w, b = nd_conv_inputs(np.random.default_rng(rank), n=2, c_in=2, c_out=3, spatial=(4,) * rank,
                             kernel=(3,) * rank)
    size = (11,) * rank  # (4-1)*3 + 3 - 2 = 10, plus output_padding 1 per axis
    fn = getattr(spx, f"conv_transpose{rank}d")
    expected = getattr(ref, f"conv_transpose{rank}d")(x, w, b, stride=3, padding=1, output_padding=1)
    forms = [size, list(size), np.array(size), (2, 3) + size]
    try:
        import torch

        forms.append(torch.Size((2, 3) + size))
    except ImportError:
        pass
    for form in forms:
        y = fn(x, w, b, stride=3, padding=1, output_size=form)
        assert_close(y, expected, F64, what=repr(form))


@pytest.mark.parametrize("factor", [(3,), (2, 3), (2, 1, 3)])
@pytest.mark.parametrize("layout", ["channels_first", "channels_last"])
@pytest.mark.parametrize("mode", ["CRD", "DCR"])
def test_nd_pixel_shuffle_and_zero_insert_are_exact(factor: Tuple[int, ...], layout: str, mode: str) -> None:
    rng = np.random.default_rng(len(factor))
    rank, c = len(factor), 2 * int(np.prod(factor))
    spatial = (3, 4, 2)[:rank]
    shape = (2,) + ((c,) + spatial if layout == "channels_first" else spatial + (c,))
    lo = rng.uniform(-1, 1, shape)
    hi = spx.pixel_shuffle(lo, factor, layout=layout, mode=mode)
    assert np.array_equal(hi, ref.pixel_shuffle(lo, factor, layout=layout, mode=mode))
    assert np.array_equal(spx.pixel_unshuffle(hi, factor, layout=layout, mode=mode), lo)
    assert np.array_equal(spx.zero_insert(lo, factor), ref.zero_insert(lo, factor))
    assert np.array_equal(spx.split_kernel(lo, factor), ref.split_kernel(lo, factor))


@pytest.mark.parametrize("activation", [None, "sigmoid"])
@pytest.mark.parametrize("channels_last", [False, True], ids=["first", "last"])
@pytest.mark.parametrize("kind", ["conv_transpose", "conv", "subpixel_conv"])
@pytest.mark.parametrize("rank", RANKS)
def test_zero_input_channels_give_the_bias(rank: int, kind: str, channels_last: bool, activation: Any) -> None:
    # Was a ValueError ("weight does not match groups") from the native operator, where the
    # oracle returns the (activated) bias; found by test_property_conv_transpose2d.
    rng = np.random.default_rng(rank)
    spatial = (3, 2, 4)[:rank]
    x = np.ones((2,) + (spatial + (0,) if channels_last else (0,) + spatial))
    conv_channels = 3 * 2 ** rank if kind == "subpixel_conv" else 3
    w = np.ones(((0, 3) if kind == "conv_transpose" else (conv_channels, 0)) + (2,) * rank)
    b = rng.uniform(-2, 2, conv_channels)
    kw = dict(layout=LAYOUTS[rank][channels_last], activation=activation, padding=1)
    args = (x, w, 2, b) if kind == "subpixel_conv" else (x, w, b)
    expected = getattr(ref, f"{kind}{rank}d")(*args, **kw)
    assert_close(getattr(spx, f"{kind}{rank}d")(*args, **kw), expected, F64)
    layer_cls = {"conv_transpose": "ConvTranspose", "conv": "Conv", "subpixel_conv": "SubPixelConv"}[kind]
    assert_close(getattr(spx, f"{layer_cls}{rank}d")(*args[1:], **kw)(x), expected, F64)


# Unpadded channels-last convolutions whose input is their frame (kernel == stride, 1x1, no
# padding) read x in place: every rank, groups, batches, length-1 axes and dilation, against
# the oracle, with x left as it was. The input gradient of a kernel == stride transposed
# convolution (nnU-Net, U-Net) is such a convolution.
IN_PLACE = [
    dict(rank=1, n=3, c_in=8, c_out=6, spatial=(40,), kernel=(2,), kwargs=dict(stride=2)),
    dict(rank=2, n=2, c_in=6, c_out=4, spatial=(9, 12), kernel=(1, 1), kwargs=dict(groups=2)),
    dict(rank=2, n=1, c_in=32, c_out=40, spatial=(1, 17), kernel=(1, 3), kwargs=dict(dilation=2)),
    dict(rank=3, n=2, c_in=16, c_out=34, spatial=(6, 8, 10), kernel=(2, 2, 2), kwargs=dict(stride=2)),
    dict(rank=3, n=1, c_in=4, c_out=8, spatial=(1, 1, 33), kernel=(1, 1, 3), kwargs=dict(stride=(1, 1, 3))),
]


@pytest.mark.parametrize("dtype", [F32, F64], ids=["f32", "f64"])
@pytest.mark.parametrize("case", IN_PLACE, ids=lambda c: f"{c['rank']}d-{c['kernel']}-{c['kwargs']}")
def test_unpadded_channels_last_conv_reads_its_input_in_place(case: Dict[str, Any], dtype: np.dtype) -> None:
    spec = {k: v for k, v in case.items() if k not in ("rank", "kwargs")}
    rank = case["rank"]
    x, w, b = nd_conv_inputs(np.random.default_rng(21), kind="conv", channels_last=True, dtype=dtype,
                             groups=case["kwargs"].get("groups", 1), **spec)
    kwargs = dict(case["kwargs"], layout=LAYOUTS[rank][1])
    before = x.copy()
    expected, scale = oracle(getattr(ref, f"conv{rank}d"), x, w, b, **kwargs)
    for threads in (1, 2):
        got = getattr(spx, f"conv{rank}d")(x, w, b, num_threads=threads, **kwargs)
        assert_close(got, expected, dtype, scale, what=f"{case} threads={threads}")
    assert np.array_equal(x, before)
