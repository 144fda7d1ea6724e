"""The layer classes: bit-identical to the functional call whatever the input size, batch size
and thread count; pickling; repr; read-only private weights; construction errors that name
the parameter."""

from __future__ import annotations

import pickle
import re
from typing import Any, Dict, Tuple

import numpy as np
import pytest

import subpixel_ext as spx

from _helpers import LAYOUTS, random_array

RANKS = (1, 2, 3)


def _layer_and_call(kind: str, rank: int, dtype: Any = np.float32, channels_last: bool = False, **extra: Any):
    """(layer, functional(x, **call_kw), weight, bias) for a non-trivial configuration."""
    rng = np.random.default_rng(rank * 10 + len(kind))
    layout = LAYOUTS[rank][channels_last]
    if kind == "conv_transpose":
        w, b = random_array(rng, (4, 3) + (3,) * rank, dtype), random_array(rng, (6,), dtype)
        kw: Dict[str, Any] = dict(stride=2, padding=1, groups=2, layout=layout, **extra)
        return (spx.__dict__[f"ConvTranspose{rank}d"](w, b, **kw),
                lambda x, **c: spx.__dict__[f"conv_transpose{rank}d"](x, w, b, **kw, **c), w, b)
    if kind == "conv":
        w, b = random_array(rng, (6, 2) + (3,) * rank, dtype), random_array(rng, (6,), dtype)
        kw = dict(stride=2, padding="same", groups=2, layout=layout, **extra)
        return (spx.__dict__[f"Conv{rank}d"](w, b, **kw),
                lambda x, **c: spx.__dict__[f"conv{rank}d"](x, w, b, **kw, **c), w, b)
    w, b = random_array(rng, (2 ** rank * 2, 4) + (3,) * rank, dtype), random_array(rng, (2 ** rank * 2,), dtype)
    kw = dict(padding=1, layout=layout, mode="DCR", **extra)
    return (spx.__dict__[f"SubPixelConv{rank}d"](w, 2, b, **kw),
            lambda x, **c: spx.__dict__[f"subpixel_conv{rank}d"](x, w, 2, b, **kw, **c), w, b)


def _inputs(rank: int, channels_last: bool, dtype: Any):
    rng = np.random.default_rng(rank)
    for n, size in ((None, 3), (1, 5), (3, 4), (2, 9), (0, 4), (1, 1), (2, 6)):
        spatial = tuple(size + a for a in range(rank))
        shape = spatial + (4,) if channels_last else (4,) + spatial
        yield random_array(rng, shape if n is None else (n,) + shape, dtype)


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("kind", ["conv_transpose", "conv", "subpixel"])
@pytest.mark.parametrize("rank", RANKS)
def test_layer_reused_across_sizes_and_threads_equals_functional(rank: int, kind: str, channels_last: bool) -> None:
    layer, functional, _, _ = _layer_and_call(kind, rank, channels_last=channels_last,
                                              activation="leaky_relu", negative_slope=0.3)
    for dtype in (np.float32, np.float64):  # float64 x: the layer computes in float64
        for x in _inputs(rank, channels_last, dtype):
            expected = functional(x)
            for threads in (1, 2, None, 1):
                y = layer(x, num_threads=threads)
                assert y.dtype == expected.dtype and np.array_equal(y, expected), (x.shape, threads)
            out = np.full_like(expected, np.nan)
            assert layer(x, out=out) is out and np.array_equal(out, expected)


@pytest.mark.parametrize("rank", RANKS)
def test_transposed_layer_output_size_equals_functional(rank: int) -> None:
    layer, functional, _, _ = _layer_and_call("conv_transpose", rank, method="direct")
    x = random_array(np.random.default_rng(0), (2, 4) + (5,) * rank, np.float32)
    for size in ((9,) * rank, (10,) * rank, (2, 6) + (10,) * rank):
        assert np.array_equal(layer(x, output_size=size), functional(x, output_size=size))
    assert layer(x, output_size=(10,) * rank).shape[2:] == (10,) * rank


@pytest.mark.parametrize("kind", ["conv_transpose", "conv", "subpixel"])
@pytest.mark.parametrize("rank", RANKS)
def test_pickle_round_trip(rank: int, kind: str) -> None:
    layer, functional, _, _ = _layer_and_call(kind, rank, dtype=np.float64, activation="tanh")
    clone = pickle.loads(pickle.dumps(layer))
    assert type(clone) is type(layer) and repr(clone) == repr(layer)
    assert np.array_equal(clone.weight, layer.weight) and not clone.weight.flags.writeable
    x = next(iter(_inputs(rank, False, np.float64)))
    assert np.array_equal(clone(x), functional(x))
    for attr in ("stride", "padding", "dilation", "groups", "layout", "activation", "negative_slope",
                 "in_channels", "out_channels", "rank"):
        assert getattr(clone, attr) == getattr(layer, attr), attr


def test_repr_shows_the_non_default_settings() -> None:
    w = np.ones((4, 3, 3, 3), np.float32)
    r = repr(spx.ConvTranspose2d(w, stride=2, padding=1, groups=2, layout="NHWC", activation="relu"))
    assert r.startswith("ConvTranspose2d(4, 6, ") and "kernel_size=(3, 3)" in r
    for part in ("stride=(2, 2)", "groups=2", "layout='NHWC'", "activation='relu'", "bias=False", "dtype=float32"):
        assert part in r, (part, r)
    plain = repr(spx.Conv1d(np.ones((2, 1, 3))))
    assert plain.startswith("Conv1d(1, 2, ") and "stride" not in plain and "dtype=float64" in plain
    assert "SubPixelConv3d(" in repr(spx.SubPixelConv3d(np.ones((8, 1, 1, 1, 1)), 2))


@pytest.mark.parametrize("kind", ["conv_transpose", "conv", "subpixel"])
@pytest.mark.parametrize("rank", RANKS)
def test_weight_is_a_read_only_private_copy(rank: int, kind: str) -> None:
    layer, _, w, b = _layer_and_call(kind, rank)
    x = next(iter(_inputs(rank, False, np.float32)))
    before = layer(x)
    w_saved, b_saved = w.copy(), b.copy()
    w *= 3.0  # the caller's arrays change after construction
    b += 1.0
    assert np.array_equal(layer.weight, w_saved) and np.array_equal(layer.bias, b_saved)
    assert np.array_equal(layer(x), before)
    assert not np.shares_memory(layer.weight, w)
    for arr in (layer.weight, layer.bias):
        assert not arr.flags.writeable
        with pytest.raises(ValueError):
            arr[...] = 0
    with pytest.raises(AttributeError):
        layer.weight = w


@pytest.mark.parametrize(
    "build, match",
    [
        (lambda: spx.ConvTranspose2d(np.ones((2, 3, 3, 3)), stride=0), "stride"),
        (lambda: spx.ConvTranspose1d(np.ones((2, 3, 3)), dilation=(1, 2)), "dilation"),
        (lambda: spx.ConvTranspose3d(np.ones((2, 3, 3, 3, 3)), groups=3), "groups"),
        (lambda: spx.ConvTranspose2d(np.ones((2, 3, 3, 3)), stride=2, output_padding=2), "output_padding"),
        (lambda: spx.ConvTranspose2d(np.ones((2, 3, 3, 3)), method="fft"), "method"),
        (lambda: spx.ConvTranspose2d(np.ones((2, 3, 3, 3)), layout="NCL"), "layout"),
        (lambda: spx.ConvTranspose2d(np.ones((2, 3, 3)),), "weight"),
        (lambda: spx.ConvTranspose2d(np.ones((2, 3, 3, 3)), np.ones(4)), "bias"),
        (lambda: spx.Conv1d(np.ones((2, 1, 3)), padding=-1), "padding"),
        (lambda: spx.Conv3d(np.ones((2, 1, 3, 3, 3)), activation="gelu"), "activation"),
        (lambda: spx.Conv2d(np.ones((2, 1, 3, 3)), activation="leaky_relu", negative_slope="x"), "negative_slope"),
        (lambda: spx.SubPixelConv2d(np.ones((12, 1, 3, 3)), 0), "upscale_factor"),
        (lambda: spx.SubPixelConv1d(np.ones((6, 1, 3)), 4), "upscale_factor|divisible"),
        (lambda: spx.SubPixelConv3d(np.ones((8, 1, 1, 1, 1)), 2, mode="XYZ"), "mode"),
    ],
)
def test_construction_errors_name_the_parameter(build: Any, match: str) -> None:
    with pytest.raises((ValueError, TypeError), match=match):
        build()


class _Subclass(np.ndarray):
    pass


def _variants(x: np.ndarray):
    """Inputs of x's shape the layer's bound fast path must not take as they are: another
    dtype, another memory order, a subclass, a list, a read-only view."""
    yield "float64", x.astype(np.float64)
    yield "int", np.round(x * 4).astype(np.int32)
    yield "strided", np.asfortranarray(x)
    yield "subclass", x.view(_Subclass)
    yield "list", x.tolist()
    ro = x.copy()
    ro.flags.writeable = False
    yield "read-only", ro


@pytest.mark.parametrize("kind", ["conv_transpose", "conv", "subpixel"])
@pytest.mark.parametrize("rank", (1, 2))
def test_repeated_shape_with_other_arrays_equals_functional(rank: int, kind: str) -> None:
    layer, functional, _, _ = _layer_and_call(kind, rank)
    x = next(iter(_inputs(rank, False, np.float32)))
    first = layer(x)  # binds the call for this shape
    np.testing.assert_array_equal(first, functional(x))
    for name, xv in _variants(x):
        got, want = layer(xv), functional(xv)
        assert got.dtype == want.dtype, name
        np.testing.assert_array_equal(got, want, err_msg=name)


def _outs(y: np.ndarray, x: np.ndarray):
    """out= arrays for a result like y: (name, out, whether it is accepted)."""
    yield "exact", np.empty_like(y), True
    yield "float64", np.empty(y.shape, np.float64), False
    yield "shape", np.empty(y.shape[:-1] + (y.shape[-1] + 1,), y.dtype), False
    yield "strided", np.empty(y.shape[::-1], y.dtype).T, False
    ro = np.empty_like(y)
    ro.flags.writeable = False
    yield "read-only", ro, False
    yield "subclass", np.empty_like(y).view(_Subclass), True
    yield "overlaps x", x.reshape(-1)[: y.size].reshape(y.shape) if x.size >= y.size else None, False


@pytest.mark.parametrize("kind", ["conv_transpose", "conv", "subpixel"])
def test_repeated_shape_out_is_checked_as_functional(kind: str) -> None:
    layer, functional, _, _ = _layer_and_call(kind, 2)
    x = random_array(np.random.default_rng(5), (2, 4, 9, 9), np.float32)
    y = layer(x)
    for name, out, accepted in _outs(y, x):
        if out is None:
            continue
        if accepted:
            got = layer(x, out=out)
            assert got is out, name
            np.testing.assert_array_equal(out, functional(x), err_msg=name)
        else:
            with pytest.raises((ValueError, TypeError)) as want:
                functional(x, out=out)
            with pytest.raises(want.type, match=re.escape(str(want.value))):
                layer(x, out=out)


def test_unbatched_and_batched_shapes_bind_separately() -> None:
    layer, functional, _, _ = _layer_and_call("conv_transpose", 2)
    x = random_array(np.random.default_rng(6), (4, 5, 6), np.float32)
    for xv in (x, x[None], x, np.zeros((0,) + x.shape, np.float32), x[None]):
        for _ in range(2):
            got = layer(xv)
            assert got.shape == functional(xv).shape
            np.testing.assert_array_equal(got, functional(xv))
