"""Repeated calls: a layer binds its native call per input shape and the functional API keeps
the plan each parameter set last ran with. Both fast paths take only arrays of exactly the
shapes and dtype they were built for; every other input (another dtype or memory order, a
subclass, a list, unbatched after batched, batch 0) and every questionable ``out=`` gets the
general path's conversion or error, as on a first call."""

from __future__ import annotations

import re
from typing import Any, Callable, Iterator, Optional, Tuple

import numpy as np
import pytest

import subpixel_ext as spx
from subpixel_ext import reference
from _helpers import layer_and_functional, random_array

KINDS = ("conv_transpose", "conv", "subpixel")


class _Subclass(np.ndarray):
    pass


def _variants(x: np.ndarray) -> Iterator[Tuple[str, Any]]:
    """Inputs of x's shape the fast paths must not take as they are."""
    yield "float64", x.astype(np.float64)
    yield "int", np.round(x * 4).astype(np.int32)
    yield "strided", np.asfortranarray(x)
    yield "subclass", x.view(_Subclass)
    yield "list", x.tolist()
    ro = x.copy()
    ro.flags.writeable = False
    yield "read-only", ro


def _outs(y: np.ndarray, x: np.ndarray) -> Iterator[Tuple[str, Optional[np.ndarray], bool]]:
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


def _fresh(functional: Callable[..., np.ndarray]) -> Callable[..., np.ndarray]:
    """functional with the plan caches emptied before each call: a first call every time."""
    from subpixel_ext import _api

    def call(*args: Any, **kwargs: Any) -> np.ndarray:
        _api._PLANS.clear()
        _api._RECENT.clear()
        return functional(*args, **kwargs)

    return call


def _both(kind: str, rank: int) -> Tuple[Callable[..., np.ndarray], ...]:
    """(layer, functional, the functional as a first call) for one configuration."""
    layer, functional, _, _ = layer_and_functional(kind, rank)
    return layer, functional, _fresh(functional)


@pytest.mark.parametrize("path", ["layer", "functional"])
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("rank", (1, 2))
def test_same_shape_other_arrays_equal_a_first_call(rank: int, kind: str, path: str) -> None:
    layer, functional, first_call = _both(kind, rank)
    run = layer if path == "layer" else functional
    x = random_array(np.random.default_rng(rank), (1, 4) + (5,) * rank, np.float32)
    np.testing.assert_array_equal(run(x), first_call(x))  # builds the fast path for x's shape
    for name, xv in _variants(x):
        got, want = run(xv), first_call(xv)
        assert got.dtype == want.dtype, name
        np.testing.assert_array_equal(got, want, err_msg=name)
        np.testing.assert_array_equal(run(x), first_call(x), err_msg=f"{name}, then x again")


@pytest.mark.parametrize("path", ["layer", "functional"])
@pytest.mark.parametrize("kind", KINDS)
def test_same_shape_out_is_checked_as_on_a_first_call(kind: str, path: str) -> None:
    layer, functional, first_call = _both(kind, 2)
    run = layer if path == "layer" else functional
    x = random_array(np.random.default_rng(5), (2, 4, 9, 9), np.float32)
    y = run(x)
    for name, out, accepted in _outs(y, x):
        if out is None:
            continue
        if accepted:
            assert run(x, out=out) is out, name
            np.testing.assert_array_equal(out, first_call(x), err_msg=name)
            continue
        with pytest.raises((ValueError, TypeError)) as want:
            first_call(x, out=out)
        with pytest.raises(want.type, match=re.escape(str(want.value))):
            run(x, out=out)


@pytest.mark.parametrize("path", ["layer", "functional"])
def test_unbatched_batched_and_empty_shapes_alternate(path: str) -> None:
    layer, functional, first_call = _both("conv_transpose", 2)
    run = layer if path == "layer" else functional
    x = random_array(np.random.default_rng(6), (4, 5, 6), np.float32)
    for xv in (x, x[None], x, np.zeros((0,) + x.shape, np.float32), x[None], x[None].repeat(3, 0)):
        for _ in range(2):
            got, want = run(xv), first_call(xv)
            assert got.shape == want.shape
            np.testing.assert_array_equal(got, want)


def test_functional_weights_are_read_at_every_call() -> None:
    """The recent-plan path binds no weights: values changed in place since the last call count."""
    _, functional, w, _ = layer_and_functional("conv_transpose", 2)
    x = random_array(np.random.default_rng(7), (1, 4, 5, 5), np.float32)
    bias_only = functional(np.zeros_like(x))
    before = functional(x)
    w *= 2
    np.testing.assert_allclose(functional(x), 2 * before - bias_only, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "settings, bad",
    [
        (dict(stride=(2, 2)), dict(stride=(2.0, 2))),
        (dict(stride=2), dict(stride=2.0)),
        (dict(stride=(1, 1)), dict(stride=(True, 1))),
        (dict(padding=((1, 0), (0, 1))), dict(padding=((1.0, 0), (0, 1)))),
        (dict(output_padding=(1, 0), stride=2), dict(output_padding=(1, False), stride=2)),
    ],
)
def test_functional_values_equal_to_a_cached_call_are_still_validated(settings: dict, bad: dict) -> None:
    """A parameter set that compares equal to a cached one ((2.0, 2) == (2, 2)) is refused as on
    a first call, not served the cached plan."""
    x = random_array(np.random.default_rng(8), (1, 2, 5, 5), np.float32)
    w = random_array(np.random.default_rng(9), (2, 3, 3, 3), np.float32)
    spx.conv_transpose2d(x, w, **settings)
    for _ in range(2):
        with pytest.raises(TypeError, match=next(iter(bad))):
            spx.conv_transpose2d(x, w, **bad)


def _backward_first_call(**kwargs: Any) -> Tuple[Optional[np.ndarray], ...]:
    """The gradients with no cached setup, leaving the cache as it was."""
    from subpixel_ext import _backward

    entries = _backward._SETUPS.entries
    kept = dict(entries)
    entries.clear()
    try:
        return spx.conv_transpose2d_backward(**kwargs)
    finally:
        entries.clear()
        entries.update(kept)


def _assert_same_gradients(got: Tuple[Optional[np.ndarray], ...], want: Tuple[Optional[np.ndarray], ...],
                           name: str) -> None:
    for g, w in zip(got, want):
        assert (g is None) == (w is None), name
        if g is not None:
            assert g.dtype == w.dtype, name
            np.testing.assert_array_equal(g, w, err_msg=name)


def test_backward_repeated_calls_equal_first_calls() -> None:
    """The backward ops keep each call's validated setup (and the input gradient's plan): other
    arrays of the same shapes, other dtypes and memory orders, lists, other masks and shapes in
    between, and weights changed in place all give what a first call gives."""
    rng = np.random.default_rng(10)
    x = random_array(rng, (2, 4, 5, 6), np.float32)
    w = random_array(rng, (4, 3, 3, 4), np.float32)
    kwargs = dict(stride=2, padding=((1, 1), (1, 0)))
    gy = random_array(rng, spx.conv_transpose2d(x, w, **kwargs).shape, np.float32)
    calls = [dict(grad_output=gy, x=x, weight=w)]
    calls += [dict(grad_output=v, x=x, weight=w) for _, v in _variants(gy)]
    calls += [dict(grad_output=gy, x=v, weight=w) for _, v in _variants(x)]
    calls += [dict(grad_output=gy, x=x, weight=v) for _, v in _variants(w)]
    calls += [dict(grad_output=gy[:1], x=x[:1], weight=w), dict(grad_output=gy[0], x=x[0], weight=w),
              dict(grad_output=gy[:0], x=x[:0], weight=w), dict(grad_output=gy, x=x, weight=w)]
    masks = ((True, True, True), (True, False, False), (False, True, True))
    for mask in masks:  # the setups every other call could be mistaken for; twice: from the cache
        for _ in range(2):
            got = spx.conv_transpose2d_backward(gy, x, w, **kwargs, output_mask=mask)
            truth = reference.conv_transpose2d_backward(gy, x, w, **kwargs, output_mask=mask)
            for g, t in zip(got, truth):
                assert (g is None) == (t is None)
                if g is not None:
                    np.testing.assert_allclose(g, t, rtol=1e-4, atol=1e-4)
    for i, call in enumerate(calls):
        for mask in masks:
            got = spx.conv_transpose2d_backward(**call, **kwargs, output_mask=mask)
            _assert_same_gradients(got, _backward_first_call(**call, **kwargs, output_mask=mask), f"call {i} {mask}")
    before = spx.conv_transpose2d_backward(gy, x, w, **kwargs)[0]
    w *= 2
    np.testing.assert_allclose(spx.conv_transpose2d_backward(gy, x, w, **kwargs)[0], 2 * before, rtol=1e-6)


def test_backward_errors_do_not_depend_on_call_history() -> None:
    """After a call is cached, calls that differ from it in a bad way get a first call's error."""
    rng = np.random.default_rng(11)
    x, w = random_array(rng, (1, 2, 5, 5), np.float32), random_array(rng, (2, 3, 3, 3), np.float32)
    gy = random_array(rng, (1, 3, 11, 11), np.float32)
    bad = [dict(grad_output=gy[..., :-1]), dict(grad_output=gy[:, :2]), dict(x=x[:, :1]), dict(weight=w[:1]),
           dict(stride=2.0), dict(stride=(2, True)), dict(method="fast"), dict(output_mask=(True, 1, True)),
           dict(output_padding=2)]
    for change in bad:
        call = dict(dict(grad_output=gy, x=x, weight=w, stride=2), **change)
        with pytest.raises((ValueError, TypeError)) as first:
            _backward_first_call(**call)
        spx.conv_transpose2d_backward(gy, x, w, stride=2)
        for _ in range(2):
            with pytest.raises(first.type, match=re.escape(str(first.value))):
                spx.conv_transpose2d_backward(**call)
