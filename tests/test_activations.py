"""Fused activations: every activation on every convolution (each rank, the transposed one by
both methods and on both sides of the scatter threshold) against the oracle's ``activation=``,
the oracle itself against PyTorch's definitions, and NaN/Inf propagation through each."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import subpixel_ext as spx
from subpixel_ext import reference as ref

from _helpers import F32, F64, assert_close, nd_conv_inputs, oracle, torch_activation

ACTIVATIONS = ["relu", "relu6", "leaky_relu", "tanh", "sigmoid"]
OPS = ["conv_transpose", "conv", "subpixel_conv"]


def _problem(op: str, rank: int, big: bool, dtype: Any, seed: int = 0):
    rng = np.random.default_rng(seed)
    spatial = (40, 9, 5)[rank - 1] if big else (5, 3, 2)[rank - 1]
    kind = {"conv_transpose": "conv_transpose", "conv": "conv", "subpixel_conv": "subpixel"}[op]
    factor = (2,) * rank if kind == "subpixel" else ()
    c = 6 if big else 1
    x, w, b = nd_conv_inputs(rng, n=2, c_in=c, c_out=c, spatial=(spatial,) * rank, kernel=(3,) * rank,
                             kind=kind, factor=factor, dtype=dtype)
    x *= 8.0  # well past relu6's 6 and into the flat parts of tanh / sigmoid
    args = (x, w, 2, b) if kind == "subpixel" else (x, w, b)
    kw = dict(stride=2, padding=1) if kind == "conv_transpose" else dict(padding=1)
    return args, kw


def _oracle(op: str, rank: int, args, kw, **act: Any):
    ref_fn = getattr(ref, f"{op}{rank}d")
    if op == "subpixel_conv":
        x, w, r, b = args
        return oracle(lambda x_, w_, b_, **k: ref_fn(x_, w_, r, b_, **k), x, w, b, **kw, **act)
    return oracle(ref_fn, *args, **kw, **act)


@pytest.mark.parametrize("dtype", [F32, F64], ids=["f32", "f64"])
@pytest.mark.parametrize("big", [False, True], ids=["small", "big"])
@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("rank", [1, 2, 3])
def test_every_activation_on_every_op_matches_the_oracle(rank: int, op: str, activation: str, big: bool,
                                                         dtype: np.dtype) -> None:
    args, kw = _problem(op, rank, big, dtype)
    slope = 0.17
    act = dict(activation=activation, negative_slope=slope)
    expected, _ = _oracle(op, rank, args, kw, **act)
    plain, scale = _oracle(op, rank, args, kw)
    # The oracle agrees with PyTorch's definitions of the activations.
    np.testing.assert_allclose(expected, torch_activation(plain, activation, slope), rtol=1e-12, atol=1e-12)
    assert (plain < 0).any() and (plain > 6).any(), "inputs exercise both sides of the activation"
    fn = getattr(spx, f"{op}{rank}d")
    methods = ["direct", "polyphase"] if op == "conv_transpose" else [None]
    for method in methods:
        m = {} if method is None else {"method": method}
        y = fn(*args, **kw, **act, **m)
        # every activation is 1-Lipschitz: the pre-activation bound still holds
        assert_close(y, expected, dtype, scale, what=f"{activation} {m}")
        layer_cls = getattr(spx, {"conv_transpose": "ConvTranspose", "conv": "Conv", "subpixel_conv": "SubPixelConv"}[op] + f"{rank}d")
        layer = layer_cls(*args[1:], **kw, **act, **m)
        assert np.array_equal(layer(args[0]), y)


@pytest.mark.parametrize("activation", ACTIVATIONS + [None])
@pytest.mark.parametrize("op", OPS)
def test_nan_and_inf_propagate_through_every_activation(op: str, activation: Any) -> None:
    for big in (False, True):
        args, kw = _problem(op, 2, big, F64, seed=3)
        x = args[0].copy()
        x[0, 0, 1, 1] = np.nan
        x[1, 0, 0, 2] = np.inf
        x[1, -1, -1, 0] = -np.inf
        args = (x,) + args[1:]
        act = dict(activation=activation, negative_slope=0.2)
        with np.errstate(invalid="ignore", over="ignore"):
            expected, scale = _oracle(op, 2, args, kw, **act)
        assert np.isnan(expected).any()
        methods = ["direct", "polyphase"] if op == "conv_transpose" else [None]
        for method in methods:
            m = {} if method is None else {"method": method}
            y = getattr(spx, f"{op}2d")(*args, **kw, **act, **m)
            assert_close(y, expected, F64, scale, what=f"{activation} big={big} {m}")


def test_activation_names_are_case_insensitive_and_checked() -> None:
    x, w = np.full((1, 1, 3), -1.0), np.ones((1, 1, 1))
    assert np.array_equal(spx.conv1d(x, w, activation="ReLU"), np.zeros((1, 1, 3)))
    np.testing.assert_allclose(spx.conv1d(x, w, activation="leaky_relu", negative_slope=0.5), -0.5 * np.ones((1, 1, 3)))
    with pytest.raises(ValueError, match="activation"):
        spx.conv1d(x, w, activation="elu")
