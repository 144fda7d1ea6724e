"""The layer classes: bit-identical to the functional call whatever the input size, batch size
and thread count; pickling; repr; read-only private weights; construction errors that name
the parameter."""

from __future__ import annotations

import pickle
from typing import Any, Dict, Tuple

import numpy as np
import pytest

import subpixel_ext as spx

from _helpers import LAYOUTS, layer_and_functional, random_array

RANKS = (1, 2, 3)


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
    layer, functional, _, _ = layer_and_functional(kind, rank, channels_last=channels_last,
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
    layer, functional, _, _ = layer_and_functional("conv_transpose", rank, method="direct")
    x = random_array(np.random.default_rng(0), (2, 4) + (5,) * rank, np.float32)
    for size in ((9,) * rank, (10,) * rank, (2, 6) + (10,) * rank):
        assert np.array_equal(layer(x, output_size=size), functional(x, output_size=size))
    assert layer(x, output_size=(10,) * rank).shape[2:] == (10,) * rank


@pytest.mark.parametrize("kind", ["conv_transpose", "conv", "subpixel"])
@pytest.mark.parametrize("rank", RANKS)
def test_pickle_round_trip(rank: int, kind: str) -> None:
    layer, functional, _, _ = layer_and_functional(kind, rank, dtype=np.float64, activation="tanh")
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
    layer, _, w, b = layer_and_functional(kind, rank)
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

