"""The seed notebook's computation, redone independently in NumPy.

The notebook upsampled an image by a stride ``s`` in two ways:

* direct: TensorFlow ``conv2d(padding="SAME")`` of the zero-inserted image with a ``K x K`` kernel;
* polyphase: ``SAME`` convolutions of the low-resolution image with each of the ``s*s``
  sub-kernels ``kernel[a::s, b::s]``, the list of phases reversed, stacked and pixel-shuffled.

The two agree for ``K = 2s`` (more precisely for ``K = 0 or -1 mod 2s``, see below). Per
design/polyphase.md the direct route is, for every ``K`` and ``s``, a transposed convolution
with the kernel flipped, ``p_top = K//2`` and ``p_bottom = K - s - K//2`` (a negative
``p_bottom`` being output_padding), which is what ``spx.conv_transpose2d`` must reproduce.
"""

from __future__ import annotations

from typing import List, Tuple

import numpy as np
import pytest

import subpixel_ext as spx

Array = np.ndarray


# ----------------------------------------------------------------------------- the notebook in NumPy


def tf_same_conv2d(x: Array, kernel: Array) -> Array:
    """TensorFlow ``conv2d(padding="SAME")``, stride 1, one channel: a correlation of ``x``
    zero-padded by ``K - 1`` per axis, ``(K - 1) // 2`` of it before (the odd one after)."""
    (h, w), (kh, kw) = x.shape, kernel.shape
    top, left = (kh - 1) // 2, (kw - 1) // 2
    padded = np.zeros((h + kh - 1, w + kw - 1))
    padded[top : top + h, left : left + w] = x
    out = np.zeros((h, w))
    for a in range(kh):
        for b in range(kw):
            out += kernel[a, b] * padded[a : a + h, b : b + w]
    return out


def zero_insert(x: Array, s: int) -> Array:
    out = np.zeros((x.shape[0] * s, x.shape[1] * s))
    out[::s, ::s] = x
    return out


def split_kernel(kernel: Array, s: int) -> List[Array]:
    """``kernel[a::s, b::s]`` of the kernel zero-padded to a multiple of ``s``, in order ``a*s + b``."""
    kh, kw = kernel.shape
    padded = np.zeros((-(-kh // s) * s, -(-kw // s) * s))
    padded[:kh, :kw] = kernel
    return [padded[a::s, b::s] for a in range(s) for b in range(s)]


def pixel_shuffle(phases: List[Array], s: int) -> Array:
    """``out[h*s + i, w*s + j] = phases[i*s + j][h, w]``."""
    h, w = phases[0].shape
    out = np.zeros((h * s, w * s))
    for p, phase in enumerate(phases):
        out[p // s :: s, p % s :: s] = phase
    return out


def notebook_direct(x: Array, kernel: Array, s: int) -> Array:
    return tf_same_conv2d(zero_insert(x, s), kernel)


def notebook_polyphase(x: Array, kernel: Array, s: int) -> Array:
    phases = [tf_same_conv2d(x, sub) for sub in split_kernel(kernel, s)]
    return pixel_shuffle(phases[::-1], s)


def notebook_args(k: int, s: int) -> Tuple[Tuple[int, int], int]:
    """``((p_top, p_bottom), output_padding)`` along one axis, from design/polyphase.md."""
    p_top, p_bottom = k // 2, k - s - k // 2
    return (p_top, max(p_bottom, 0)), max(-p_bottom, 0)


# ----------------------------------------------------------------------------- the NumPy pieces


@pytest.mark.parametrize(
    "kernel, expected",
    [
        # one tap before nothing: pad 0 left, 1 right -> out[n] = a x[n] + b x[n+1]
        ([1.0, 10.0], [1 + 20, 2 + 30, 3 + 40, 4]),
        # pad 1 left, 1 right
        ([1.0, 10.0, 100.0], [10 + 200, 1 + 20 + 300, 2 + 30 + 400, 3 + 40]),
        # pad 1 left, 2 right (TF puts the odd one at the end)
        ([1.0, 10.0, 100.0, 1000.0], [10 + 200 + 3000, 1 + 20 + 300 + 4000, 2 + 30 + 400, 3 + 40]),
    ],
)
def test_tf_same_conv2d_hand_computed(kernel: List[float], expected: List[float]) -> None:
    x = np.array([[1.0, 2.0, 3.0, 4.0]])
    np.testing.assert_array_equal(tf_same_conv2d(x, np.array([kernel])), [expected])
    np.testing.assert_array_equal(tf_same_conv2d(x.T, np.array([kernel]).T), np.array([expected]).T)


@pytest.mark.parametrize("s, k", [(2, 4), (2, 3), (3, 7), (1, 2)])
def test_building_blocks_match_the_library(s: int, k: int) -> None:
    rng = np.random.default_rng(k * 10 + s)
    x, kernel = rng.standard_normal((3, 5)), rng.standard_normal((k, k))
    np.testing.assert_array_equal(spx.zero_insert(x, s), zero_insert(x, s))
    np.testing.assert_array_equal(spx.split_kernel(kernel, s), np.stack(split_kernel(kernel, s)))
    phases = [rng.standard_normal((3, 5)) for _ in range(s * s)]
    np.testing.assert_array_equal(spx.pixel_shuffle(np.stack(phases), s)[0], pixel_shuffle(phases, s))


# ----------------------------------------------------------------------------- the notebook's claim


@pytest.mark.parametrize("s", [1, 2, 3, 4])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_notebook_routes_agree_for_kernel_twice_the_stride(s: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((3 + seed, 6 - seed))
    kernel = rng.standard_normal((2 * s, 2 * s))
    direct = notebook_direct(x, kernel, s)
    assert direct.shape == (x.shape[0] * s, x.shape[1] * s)
    np.testing.assert_allclose(notebook_polyphase(x, kernel, s), direct, rtol=0, atol=1e-12)


@pytest.mark.parametrize("s", [2, 3, 4])
@pytest.mark.parametrize("k", range(1, 4 * 4 + 2))
def test_notebook_routes_agree_only_for_kernel_0_or_minus_1_mod_2s(s: int, k: int) -> None:
    # Phase r of the direct route uses the taps k = (K-1)//2 - r (mod s); the reversed list
    # hands it sub-kernel s-1-r, so (K-1)//2 = -1 (mod s), and the two SAME paddings line up
    # only when moreover ceil(K/s) is even: K = 2ms or 2ms - 1. Design/polyphase.md says
    # "K = 2s"; K = 2s - 1 is the same thing with a zero last tap.
    rng = np.random.default_rng(k)
    x, kernel = rng.standard_normal((4, 5)), rng.standard_normal((k, k))
    gap = np.abs(notebook_polyphase(x, kernel, s) - notebook_direct(x, kernel, s)).max()
    if k % (2 * s) in (0, 2 * s - 1):
        assert gap < 1e-12
    else:
        assert gap > 1e-3


# ----------------------------------------------------------------------------- the library reproduces it


@pytest.mark.parametrize("method", ["direct", "polyphase"])
@pytest.mark.parametrize(
    "s, kh, kw",
    [(2, 4, 4), (3, 6, 6), (2, 3, 3), (3, 3, 3), (2, 5, 5), (3, 2, 2), (4, 1, 1), (2, 7, 4), (3, 5, 8), (1, 3, 4)],
)
def test_conv_transpose2d_with_flipped_kernel_is_the_notebook_direct_route(
    method: str, s: int, kh: int, kw: int
) -> None:
    rng = np.random.default_rng(100 * s + 10 * kh + kw)
    x, kernel = rng.standard_normal((5, 4)), rng.standard_normal((kh, kw))
    (pad_h, op_h), (pad_w, op_w) = notebook_args(kh, s), notebook_args(kw, s)
    y = spx.conv_transpose2d(
        x[None], np.ascontiguousarray(kernel[::-1, ::-1])[None, None], stride=s,
        padding=(pad_h, pad_w), output_padding=(op_h, op_w), method=method,
    )[0]
    expected = notebook_direct(x, kernel, s)
    assert y.shape == expected.shape == (5 * s, 4 * s)
    np.testing.assert_allclose(y, expected, rtol=0, atol=1e-12)


def test_unflipped_kernel_is_not_the_notebook() -> None:
    # The flip matters: the same call with the kernel as given computes something else.
    rng = np.random.default_rng(7)
    x, kernel = rng.standard_normal((4, 4)), rng.standard_normal((4, 4))
    y = spx.conv_transpose2d(x[None], kernel[None, None], stride=2, padding=((2, 0), (2, 0)))[0]
    assert np.abs(y - notebook_direct(x, kernel, 2)).max() > 1e-3
