"""Every array native code reads or writes is aligned for its dtype: misaligned inputs
(``np.frombuffer`` at an odd offset) are copied once and give the aligned result bit for bit;
a misaligned ``out=`` is refused with a clear error; the native entry points refuse both.
"""

from __future__ import annotations

from typing import Any, Callable, Dict

import numpy as np
import pytest

import subpixel_ext as spx
from subpixel_ext import _core

from _helpers import F32, F64, bits, random_array


def odd(a: np.ndarray) -> np.ndarray:
    """A writeable copy of `a` whose data starts one byte past an aligned address."""
    buffer = bytearray(a.nbytes + 1)
    out = np.frombuffer(buffer, dtype=a.dtype, count=a.size, offset=1).reshape(a.shape)
    out[...] = a
    assert not out.flags.aligned
    return out


def _ops(dtype: np.dtype) -> Dict[str, Any]:
    rng = np.random.default_rng(3)
    x = random_array(rng, (2, 4, 9, 7), dtype)
    return {
        "conv2d": (spx.conv2d, x, random_array(rng, (6, 2, 3, 3), dtype), random_array(rng, (6,), dtype),
                   dict(padding=1, groups=2), lambda w, b: spx.Conv2d(w, b, padding=1, groups=2)),
        "conv_transpose2d": (spx.conv_transpose2d, x, random_array(rng, (4, 3, 4, 4), dtype),
                             random_array(rng, (3,), dtype), dict(stride=2, padding=1),
                             lambda w, b: spx.ConvTranspose2d(w, b, stride=2, padding=1)),
        "conv_transpose2d direct": (spx.conv_transpose2d, x, random_array(rng, (4, 3, 3, 3), dtype),
                                    random_array(rng, (3,), dtype), dict(stride=2, method="direct"),
                                    lambda w, b: spx.ConvTranspose2d(w, b, stride=2, method="direct")),
        "subpixel_conv2d": (lambda x, w, b, **k: spx.subpixel_conv2d(x, w, 2, b, **k), x,
                            random_array(rng, (8, 4, 3, 3), dtype), random_array(rng, (8,), dtype), dict(padding=1),
                            lambda w, b: spx.SubPixelConv2d(w, 2, b, padding=1)),
    }


@pytest.mark.parametrize("dtype", [F32, F64])
@pytest.mark.parametrize("name", ["conv2d", "conv_transpose2d", "conv_transpose2d direct", "subpixel_conv2d"])
def test_misaligned_inputs_are_copied_and_give_the_aligned_result(name: str, dtype: np.dtype) -> None:
    fn, x, w, b, kwargs, layer = _ops(dtype)[name]
    expected = fn(x, w, b, **kwargs)
    xo, wo, bo = odd(x), odd(w), odd(b)
    for args in ((xo, w, b), (x, wo, b), (x, w, bo), (xo, wo, bo)):
        y = fn(*args, **kwargs)
        assert np.array_equal(bits(y), bits(expected)), name
    assert np.array_equal(bits(layer(wo, bo)(xo)), bits(expected))
    assert np.array_equal(bits(layer(w, b)(xo, num_threads=2)), bits(expected))
    # Inputs untouched.
    assert np.array_equal(xo, x) and np.array_equal(wo, w) and np.array_equal(bo, b)


@pytest.mark.parametrize("name", ["conv2d", "conv_transpose2d", "subpixel_conv2d"])
def test_misaligned_out_is_refused(name: str) -> None:
    fn, x, w, b, kwargs, layer = _ops(F32)[name]
    good = fn(x, w, b, **kwargs)
    out = odd(np.zeros_like(good))
    with pytest.raises(ValueError, match="aligned"):
        fn(x, w, b, **kwargs, out=out)
    with pytest.raises(ValueError, match="aligned"):
        layer(w, b)(x, out=out)
    assert not np.any(out), "a refused out= was written"


def test_data_movement_copies_misaligned_inputs_and_refuses_misaligned_out() -> None:
    rng = np.random.default_rng(4)
    x = random_array(rng, (2, 8, 5, 6), F32)
    cases: Dict[str, Callable[..., np.ndarray]] = {
        "pixel_shuffle": lambda a, **k: spx.pixel_shuffle(a, 2, **k),
        "pixel_unshuffle": lambda a, **k: spx.pixel_unshuffle(a[:, :, :4, :], 2, **k),
        "zero_insert": lambda a, **k: spx.zero_insert(a, (2, 3), **k),
    }
    for name, fn in cases.items():
        expected = fn(x)
        assert np.array_equal(bits(fn(odd(x))), bits(expected)), name
        out = odd(np.zeros_like(expected))
        with pytest.raises(ValueError, match="aligned"):
            fn(x, out=out)
        assert not np.any(out), name


def test_native_entry_points_refuse_misaligned_arrays() -> None:
    # Defence in depth: the private module itself checks what the Python layer guarantees.
    refused = (ValueError, TypeError)
    w = np.ones((1, 1, 1, 1), np.float32)
    x = np.ones((1, 1, 2, 2), np.float32)
    y = np.empty((1, 1, 2, 2), np.float32)
    args = ([1, 1], [1, 1], 1, False, _core.Activation.none, 0.0)
    with pytest.raises(refused, match="aligned"):
        _core.Conv(odd(w), None, *args)
    op = _core.Conv(w, None, *args)
    with pytest.raises(refused, match="aligned"):
        op(odd(x), y, [0, 0], 1)
    with pytest.raises(refused, match="aligned"):
        op(x, odd(y), [0, 0], 1)
    with pytest.raises(refused, match="aligned"):
        _core.zero_insert(odd(x.reshape(1, 4)), np.empty((1, 8), np.float32), [2], 1)
    with pytest.raises(refused, match="aligned"):
        _core.pixel_shuffle(x.reshape(1, 4, 1, 1), odd(np.empty((1, 1, 2, 2), np.float32)), 1, 1, [1, 1], [2, 2],
                            False, False, False, 1)
