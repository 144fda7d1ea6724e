"""Outputs of 8 MiB and more, which the engine writes with non-temporal stores where it writes
whole interleaved rows of 1 KiB or more (plain stores for shorter rows): the same values as the
oracle, rows of any alignment, float16 storage included; and large channels-first pixel
shuffles for every element size."""

from __future__ import annotations

import numpy as np
import pytest

import subpixel_ext as spx
from subpixel_ext import reference as ref

from _helpers import F32, F64, assert_close, random_array
from half_matrix import assert_half_close, exact_inputs, half_oracle

MIB = 1 << 20


@pytest.mark.parametrize("dtype", [F32, F64])
@pytest.mark.parametrize("threads", [1, 2])
def test_single_channel_transposed_convolution_with_odd_rows(dtype: np.dtype, threads: int) -> None:
    rng = np.random.default_rng(3)
    x = random_array(rng, (1, 1, 513, 1023), dtype)  # output rows of 2046 elements: any alignment
    w = random_array(rng, (1, 1, 4, 4), dtype)
    b = random_array(rng, (1,), dtype)
    y = spx.conv_transpose2d(x, w, b, stride=2, padding=1, num_threads=threads)
    assert y.nbytes >= 8 * MIB
    assert_close(y, ref.conv_transpose2d(x, w, b, stride=2, padding=1), dtype)


@pytest.mark.parametrize("threads", [1, 2])
def test_large_output_in_short_interleaved_rows(threads: int) -> None:
    # Channels first, kernel == stride: rows of 2 x 63 float32 (504 bytes), 8.8 MB in all.
    rng = np.random.default_rng(6)
    x = random_array(rng, (1, 5, 17, 32, 63), F32)
    w = random_array(rng, (5, 8, 2, 2, 2), F32)
    b = random_array(rng, (8,), F32)
    y = spx.conv_transpose3d(x, w, b, stride=2, num_threads=threads)
    assert y.nbytes >= 8 * MIB and y.shape[-1] * y.itemsize < 1024
    assert_close(y, ref.conv_transpose3d(x, w, b, stride=2), F32)


@pytest.mark.parametrize("threads", [1, 2])
def test_float16_storage_through_the_streamed_rows(threads: int) -> None:
    rng = np.random.default_rng(5)
    x = exact_inputs(rng, (1, 1, 1025, 1025), np.float16)  # 8.4 MB of float16 output, rows of 4100 bytes
    w = exact_inputs(rng, (1, 1, 4, 4), np.float16)
    y = spx.conv_transpose2d(x, w, stride=2, padding=1, num_threads=threads)
    assert y.nbytes >= 8 * MIB
    expected, scale = half_oracle(ref.conv_transpose2d, x, w, stride=2, padding=1)
    assert_half_close(y, expected, scale, np.dtype(np.float16))


@pytest.mark.parametrize("dtype", [np.uint8, np.float16, F32, F64, np.complex128])
@pytest.mark.parametrize("factor", [2, 3, 4])
def test_channels_first_pixel_shuffle(dtype: np.dtype, factor: int) -> None:
    rng = np.random.default_rng(4)
    width = 1023 if np.dtype(dtype).itemsize < 16 else 255
    x = (rng.standard_normal((1, 2 * factor * factor, 8 * MIB // (np.dtype(dtype).itemsize * width * 2) + 1, width)) * 50)
    x = x.astype(dtype)
    y = spx.pixel_shuffle(x, factor)
    assert y.nbytes >= 8 * MIB
    np.testing.assert_array_equal(y, ref.pixel_shuffle(x, factor))
    np.testing.assert_array_equal(spx.pixel_unshuffle(y, factor), x)
