"""Pure-NumPy reference implementation (the oracle) of every op in subpixel_ext.

Each op is written from its *definition*, deliberately independent of the polyphase identity
that the native core relies on, so that the two can be checked against each other:

* ``conv_transpose2d`` scatters every input pixel, weighted by each kernel tap, into the full
  (uncropped) output and then takes the window ``y[o] = full[o + pad_begin]``;
* ``conv2d`` zero-pads the input and sums strided slices of it over the kernel taps;
* ``pixel_shuffle`` / ``pixel_unshuffle`` are reshapes and transposes spelling out the index
  maps of the CRD (PyTorch) and DCR (TensorFlow depth_to_space) channel orders;
* ``zero_insert`` and ``split_kernel`` are the two halves of the textbook construction.

Clarity comes before speed: the only Python loops run over kernel taps (or sub-kernels);
batch and channels are vectorized with ``np.einsum``. Argument checking and output geometry
come from ``_params`` so that this module and the native API agree on what is computed and
raise the same errors. Every function computes in ``_params.result_dtype`` of its inputs and
returns a new C-contiguous array; inputs are never modified.
"""

from __future__ import annotations

import math
from typing import Any, Optional, Tuple

import numpy as np

from ._params import (
    LAYOUTS,
    MODES,
    ConvShapes,
    as_array,
    choice,
    conv_geometry,
    conv_shapes,
    int_pair,
    output_shape,
    positive_pair,
    result_dtype,
    shuffle_shapes,
    transposed_geometry,
)

__all__ = [
    "conv_transpose2d",
    "conv2d",
    "pixel_shuffle",
    "pixel_unshuffle",
    "zero_insert",
    "split_kernel",
    "subpixel_conv2d",
]


# ----------------------------------------------------------------------------- helpers


def _optional_array(value: Any, name: str) -> Optional[np.ndarray]:
    return None if value is None else as_array(value, name)


def _to_nchw(x: np.ndarray, shapes: ConvShapes, layout: str, dtype: np.dtype) -> np.ndarray:
    """A fresh 4-D NCHW copy of `x` in `dtype` (adds the batch axis when x is unbatched)."""
    x4 = x if shapes.batched else x[np.newaxis]
    if layout == "NHWC":
        x4 = x4.transpose(0, 3, 1, 2)
    return np.array(x4, dtype=dtype, order="C", copy=True)


def _from_nchw(
    y: np.ndarray, shapes: ConvShapes, layout: str, shape: Tuple[int, ...]
) -> np.ndarray:
    """Back from 4-D NCHW to the caller's layout and rank, as a new C-contiguous array."""
    if layout == "NHWC":
        y = y.transpose(0, 2, 3, 1)
    if not shapes.batched:
        y = y[0]
    result = np.array(y, order="C", copy=True)
    assert result.shape == shape, (result.shape, shape)
    return result


# ----------------------------------------------------------------------------- convolutions


def conv_transpose2d(
    x: Any,
    weight: Any,
    bias: Any = None,
    stride: Any = 1,
    padding: Any = 0,
    output_padding: Any = 0,
    groups: Any = 1,
    dilation: Any = 1,
    *,
    output_size: Any = None,
    layout: str = "NCHW",
) -> np.ndarray:
    """Transposed convolution (torch.nn.functional.conv_transpose2d semantics), scatter form.

    x is (N, C_in, H, W) or (C_in, H, W) (NHWC: channels last), weight (C_in, C_out/groups,
    kH, kW), bias (C_out,). Per axis the full output has length L = (H-1)*s + d*(K-1) + 1 and
    full[i*s + k*d] += x[i] * w[k]; the result is y[o] = full[o + pad_begin] for o in
    [0, out), zero where o + pad_begin falls outside [0, L), plus the bias.
    """
    lay = choice(layout, "layout", LAYOUTS)
    xa = as_array(x, "x")
    wa = as_array(weight, "weight")
    ba = _optional_array(bias, "bias")
    shapes, g, c_out = conv_shapes(xa, wa, ba, groups, lay, transposed=True)
    s = positive_pair(stride, "stride")
    d = positive_pair(dilation, "dilation")
    geo = transposed_geometry(
        shapes.hw, shapes.kernel_hw, s, d, padding, output_padding, output_size
    )
    dtype = result_dtype(xa, wa, ba)

    n, c_in = shapes.n, shapes.c
    h, w = shapes.hw
    kh, kw = shapes.kernel_hw
    cin_g, cout_g = c_in // g, c_out // g

    xg = _to_nchw(xa, shapes, lay, dtype).reshape(n, g, cin_g, h, w)
    wg = np.array(wa, dtype=dtype, copy=True).reshape(g, cin_g, cout_g, kh, kw)

    full_h = (h - 1) * s[0] + d[0] * (kh - 1) + 1
    full_w = (w - 1) * s[1] + d[1] * (kw - 1) + 1
    full = np.zeros((n, g, cout_g, full_h, full_w), dtype=dtype)
    for a in range(kh):
        for b in range(kw):
            # input pixel (i, j) lands at (i*sh + a*dh, j*sw + b*dw) of the full output
            contribution = np.einsum("ngihw,gio->ngohw", xg, wg[:, :, :, a, b])
            full[
                :,
                :,
                :,
                a * d[0] : a * d[0] + (h - 1) * s[0] + 1 : s[0],
                b * d[1] : b * d[1] + (w - 1) * s[1] + 1 : s[1],
            ] += contribution
    full = full.reshape(n, c_out, full_h, full_w)

    out_h, out_w = geo.out_hw
    top, left = geo.pad_begin
    y = np.zeros((n, c_out, out_h, out_w), dtype=dtype)
    # y[o] = full[o + pad_begin] where 0 <= o + pad_begin < L; elsewhere 0
    keep_h = max(0, min(out_h, full_h - top))
    keep_w = max(0, min(out_w, full_w - left))
    y[:, :, :keep_h, :keep_w] = full[:, :, top : top + keep_h, left : left + keep_w]
    if ba is not None:
        y += ba.astype(dtype).reshape(1, c_out, 1, 1)

    return _from_nchw(y, shapes, lay, output_shape(shapes, c_out, geo.out_hw, lay))


def conv2d(
    x: Any,
    weight: Any,
    bias: Any = None,
    stride: Any = 1,
    padding: Any = 0,
    dilation: Any = 1,
    groups: Any = 1,
    *,
    layout: str = "NCHW",
) -> np.ndarray:
    """Convolution as cross-correlation (torch.nn.functional.conv2d semantics).

    weight is (C_out, C_in/groups, kH, kW). padding: int, (h, w), ((top, bottom), (left,
    right)), "valid", or "same" (TensorFlow: out = ceil(H/stride), odd extra at the end).
    y[n, co, oh, ow] = sum over ci in co's group, a, b of
    xpad[n, ci, oh*sh + a*dh, ow*sw + b*dw] * weight[co, ci, a, b], plus the bias.
    """
    lay = choice(layout, "layout", LAYOUTS)
    xa = as_array(x, "x")
    wa = as_array(weight, "weight")
    ba = _optional_array(bias, "bias")
    shapes, g, c_out = conv_shapes(xa, wa, ba, groups, lay, transposed=False)
    s = positive_pair(stride, "stride")
    d = positive_pair(dilation, "dilation")
    geo = conv_geometry(shapes.hw, shapes.kernel_hw, s, d, padding)
    dtype = result_dtype(xa, wa, ba)

    n, c_in = shapes.n, shapes.c
    h, w = shapes.hw
    kh, kw = shapes.kernel_hw
    cin_g, cout_g = c_in // g, c_out // g
    top, left = geo.pad_begin
    bottom, right = geo.pad_end
    out_h, out_w = geo.out_hw

    xp = np.zeros((n, c_in, top + h + bottom, left + w + right), dtype=dtype)
    xp[:, :, top : top + h, left : left + w] = _to_nchw(xa, shapes, lay, dtype)
    xp = xp.reshape(n, g, cin_g, top + h + bottom, left + w + right)
    wg = np.array(wa, dtype=dtype, copy=True).reshape(g, cout_g, cin_g, kh, kw)

    y = np.zeros((n, g, cout_g, out_h, out_w), dtype=dtype)
    for a in range(kh):
        for b in range(kw):
            patch = xp[
                :,
                :,
                :,
                a * d[0] : a * d[0] + (out_h - 1) * s[0] + 1 : s[0],
                b * d[1] : b * d[1] + (out_w - 1) * s[1] + 1 : s[1],
            ]
            y += np.einsum("ngihw,goi->ngohw", patch, wg[:, :, :, a, b])
    y = y.reshape(n, c_out, out_h, out_w)
    if ba is not None:
        y += ba.astype(dtype).reshape(1, c_out, 1, 1)

    return _from_nchw(y, shapes, lay, output_shape(shapes, c_out, geo.out_hw, lay))


# ----------------------------------------------------------------------------- pixel shuffle


def _shuffle(x: Any, factor: Any, layout: str, mode: str, inverse: bool, name: str) -> np.ndarray:
    lay = choice(layout, "layout", LAYOUTS)
    md = choice(mode, "mode", MODES)
    rh, rw = int_pair(factor, name, minimum=1)
    xa = as_array(x, "x")
    shape, batch, c_in, h_in, w_in = shuffle_shapes(xa, (rh, rw), lay, inverse, name)
    dtype = result_dtype(xa)

    # Work in (batch, C, H, W); NHWC uses the same index maps with channels last.
    xc = np.array(xa, dtype=dtype, copy=True)
    if lay == "NHWC":
        xc = np.moveaxis(xc, -1, -3)
    xc = xc.reshape(batch, c_in, h_in, w_in)

    if not inverse:
        c, h, w = c_in // (rh * rw), h_in, w_in
        # CRD: in[c*rh*rw + i*rw + j]; DCR: in[(i*rw + j)*C + c]
        if md == "CRD":
            t = xc.reshape(batch, c, rh, rw, h, w)  # axes n, c, i, j, h, w
            t = t.transpose(0, 1, 4, 2, 5, 3)  # n, c, h, i, w, j
        else:
            t = xc.reshape(batch, rh, rw, c, h, w)  # axes n, i, j, c, h, w
            t = t.transpose(0, 3, 4, 1, 5, 2)  # n, c, h, i, w, j
        y = t.reshape(batch, c, h * rh, w * rw)  # out[n, c, h*rh + i, w*rw + j]
    else:
        c, h, w = c_in, h_in // rh, w_in // rw
        t = xc.reshape(batch, c, h, rh, w, rw)  # axes n, c, h, i, w, j
        if md == "CRD":
            t = t.transpose(0, 1, 3, 5, 2, 4)  # n, c, i, j, h, w
        else:
            t = t.transpose(0, 3, 5, 1, 2, 4)  # n, i, j, c, h, w
        y = t.reshape(batch, c * rh * rw, h, w)

    if lay == "NHWC":
        y = np.moveaxis(y, -3, -1)
    result = np.array(y.reshape(shape), order="C", copy=True)
    return result


def pixel_shuffle(
    x: Any, upscale_factor: Any, *, layout: str = "NCHW", mode: str = "CRD"
) -> np.ndarray:
    """Depth to space: (..., C*rh*rw, H, W) -> (..., C, H*rh, W*rw) (NHWC: channels last).

    CRD (PyTorch): out[..., c, h*rh+i, w*rw+j] = in[..., c*rh*rw + i*rw + j, h, w].
    DCR (TF depth_to_space): out[..., c, h*rh+i, w*rw+j] = in[..., (i*rw + j)*C + c, h, w].
    """
    return _shuffle(x, upscale_factor, layout, mode, False, "upscale_factor")


def pixel_unshuffle(
    x: Any, downscale_factor: Any, *, layout: str = "NCHW", mode: str = "CRD"
) -> np.ndarray:
    """Space to depth, the exact inverse of pixel_shuffle with the same factor and mode."""
    return _shuffle(x, downscale_factor, layout, mode, True, "downscale_factor")


# ----------------------------------------------------------------------------- building blocks


def zero_insert(x: Any, stride: Any) -> np.ndarray:
    """(..., H, W) -> (..., H*sh, W*sw): zeros with x[..., i, j] at [..., i*sh, j*sw]."""
    xa = as_array(x, "x")
    if xa.ndim < 2:
        raise ValueError(f"x must have at least 2 dimensions, got shape {xa.shape}")
    sh, sw = positive_pair(stride, "stride")
    dtype = result_dtype(xa)
    h, w = xa.shape[-2:]
    out = np.zeros(xa.shape[:-2] + (h * sh, w * sw), dtype=dtype)
    out[..., ::sh, ::sw] = xa
    return out


def split_kernel(kernel: Any, stride: Any) -> np.ndarray:
    """(..., kH, kW) -> (sh*sw, ..., ceil(kH/sh), ceil(kW/sw)).

    The kernel is zero-padded at the end to a multiple of the stride; sub-kernel a*sw + b is
    padded[..., a::sh, b::sw].
    """
    ka = as_array(kernel, "kernel")
    if ka.ndim < 2:
        raise ValueError(f"kernel must have at least 2 dimensions, got shape {ka.shape}")
    sh, sw = positive_pair(stride, "stride")
    dtype = result_dtype(ka)
    kh, kw = ka.shape[-2:]
    th, tw = math.ceil(kh / sh), math.ceil(kw / sw)
    lead = ka.shape[:-2]
    padded = np.zeros(lead + (th * sh, tw * sw), dtype=dtype)
    padded[..., :kh, :kw] = ka
    out = np.zeros((sh * sw,) + lead + (th, tw), dtype=dtype)
    for a in range(sh):
        for b in range(sw):
            out[a * sw + b] = padded[..., a::sh, b::sw]
    return out


def subpixel_conv2d(
    x: Any,
    weight: Any,
    upscale_factor: Any,
    bias: Any = None,
    stride: Any = 1,
    padding: Any = 0,
    dilation: Any = 1,
    groups: Any = 1,
    *,
    layout: str = "NCHW",
    mode: str = "CRD",
) -> np.ndarray:
    """Sub-pixel convolution: pixel_shuffle(conv2d(x, weight, bias, ...), upscale_factor).

    weight is (C*rh*rw, C_in/groups, kH, kW) and bias has the conv's C*rh*rw entries.
    """
    # check the cheap arguments first so that a bad factor or mode fails before the conv runs
    int_pair(upscale_factor, "upscale_factor", minimum=1)
    choice(mode, "mode", MODES)
    y = conv2d(x, weight, bias, stride, padding, dilation, groups, layout=layout)
    return pixel_shuffle(y, upscale_factor, layout=layout, mode=mode)
