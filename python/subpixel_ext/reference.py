"""Pure-NumPy reference implementation (the oracle) of every op in subpixel_ext, in 1-D, 2-D, 3-D.

Each op is written from its *definition*, deliberately independent of the polyphase identity
that the native core relies on, so that the two can be checked against each other:

* ``conv_transpose{1,2,3}d`` scatter every input element, weighted by each kernel tap, into the
  full (uncropped) output and then take the window ``y[o] = full[o + pad_begin]`` per axis;
* ``conv{1,2,3}d`` zero-pad the input and sum strided slices of it over the kernel taps;
* ``pixel_shuffle`` / ``pixel_unshuffle`` are reshapes and transposes spelling out the index
  maps of the CRD (PyTorch) and DCR (TensorFlow depth_to_space) channel orders, for any rank;
* ``zero_insert`` and ``split_kernel`` are the two halves of the textbook construction.

Clarity comes before speed: the only Python loops run over kernel taps (or sub-kernels);
batch and channels are vectorized with ``np.einsum``. One rank-generic private core per op does
the work; the public functions per rank are thin wrappers. Argument checking and output geometry
come from ``_params`` so that this module and the native API agree on what is computed and raise
the same errors. The convolutions return ``_params.result_dtype`` of their inputs, computed in
float32 for float16 / bfloat16 and rounded once at the end (the native contract); the
rearrangements keep the input's dtype. Every function returns a new C-contiguous array; inputs
are never modified.

The convolutions take ``activation`` (None, "relu", "relu6", "leaky_relu", "tanh", "sigmoid";
PyTorch's definitions, ``negative_slope`` for leaky_relu), applied after the bias.
"""

from __future__ import annotations

import itertools
import math
from typing import Optional, Sequence, Tuple

import numpy as np

from ._params import (
    ConvGeometry,
    ConvParams,
    activation_spec,
    as_array,
    check_grad_output,
    compute_dtype,
    conv_geometry,
    conv_params,
    data_dtype,
    output_mask,
    result_dtype,
    shuffle_spec,
    split_kernel_spec,
    zero_insert_spec,
)
from ._typing import ArrayLike, IntOrTuple, Layout, OutputSize, Padding

__all__ = [
    "conv_transpose1d",
    "conv_transpose2d",
    "conv_transpose3d",
    "conv1d",
    "conv2d",
    "conv3d",
    "subpixel_conv1d",
    "subpixel_conv2d",
    "subpixel_conv3d",
    "pixel_shuffle",
    "pixel_unshuffle",
    "zero_insert",
    "split_kernel",
    "conv_transpose1d_backward",
    "conv_transpose2d_backward",
    "conv_transpose3d_backward",
    "conv1d_backward",
    "conv2d_backward",
    "conv3d_backward",
]

# ..., the result's dtype and the one it is computed in.
_Prepared = Tuple[ConvParams, ConvGeometry, np.ndarray, np.ndarray, Optional[np.ndarray], np.dtype, np.dtype]


# ----------------------------------------------------------------------------- helpers


def _prepare(
    kind: str, rank: int, x: ArrayLike, weight: ArrayLike, bias: Optional[ArrayLike],
    output_size: Optional[OutputSize] = None, **params: object,
) -> _Prepared:
    """Arrays, checked parameters and geometry of one convolution call."""
    xa = as_array(x, "x")
    wa = as_array(weight, "weight")
    ba = None if bias is None else as_array(bias, "bias")
    conv = conv_params(kind, wa, ba, rank=rank, **params)  # type: ignore[arg-type]
    geo = conv_geometry(conv, xa.shape, output_size)
    dtype = result_dtype(xa, wa, ba)
    return conv, geo, xa, wa, ba, dtype, compute_dtype(dtype)


def _channels_first(x: np.ndarray, conv: ConvParams, geo: ConvGeometry, dtype: np.dtype) -> np.ndarray:
    """A fresh (N, C, *spatial) copy of `x` in `dtype` (adds the batch axis when unbatched)."""
    xb = x if geo.batched else x[np.newaxis]
    if conv.channels_last:
        xb = np.moveaxis(xb, -1, 1)
    return np.array(xb, dtype=dtype, order="C", copy=True)


def _finish(
    y: np.ndarray, conv: ConvParams, geo: ConvGeometry, bias: Optional[np.ndarray],
    activation: Optional[str], negative_slope: float, dtype: np.dtype,
) -> np.ndarray:
    """Bias, activation, then back from (N, C, *spatial) to the caller's layout, rank and dtype."""
    if bias is not None:
        y += bias.astype(y.dtype).reshape((1, -1) + (1,) * conv.rank)
    y = _activate(y, activation, negative_slope)
    if conv.kind == "subpixel":
        y = _shuffle_channels_first(y, conv.factor, conv.dcr, inverse=False)
    if conv.channels_last:
        y = np.moveaxis(y, 1, -1)
    if not geo.batched:
        y = y[0]
    result = np.array(y, dtype=dtype, order="C", copy=True)
    assert result.shape == geo.out_shape, (result.shape, geo.out_shape)
    return result


def _activate(y: np.ndarray, activation: Optional[str], negative_slope: float) -> np.ndarray:
    result: np.ndarray
    if activation is None:
        result = y
    elif activation == "relu":
        result = np.maximum(y, 0)
    elif activation == "relu6":
        result = np.clip(y, 0, 6)
    elif activation == "leaky_relu":
        result = np.where(y >= 0, y, y * negative_slope)
    elif activation == "tanh":
        result = np.tanh(y)
    else:
        result = np.exp(-np.logaddexp(0, -y))  # sigmoid 1 / (1 + exp(-y)) without overflow
    return result


def _taps(kernel: Tuple[int, ...]) -> "itertools.product[Tuple[int, ...]]":
    return itertools.product(*(range(k) for k in kernel))


# ----------------------------------------------------------------------------- convolutions


def _conv_transpose(
    rank: int, x: ArrayLike, weight: ArrayLike, bias: Optional[ArrayLike], output_size: Optional[OutputSize],
    activation: Optional[str], negative_slope: float, **params: object,
) -> np.ndarray:
    """Scatter form: full[i*s + k*d] += x[i] * w[k] per axis, then y[o] = full[o + pad_begin]."""
    act, slope = activation_spec(activation, negative_slope)
    conv, geo, xa, wa, ba, dtype, work = _prepare("conv_transpose", rank, x, weight, bias, output_size, **params)
    n, g = geo.n, conv.groups
    cin_g, cout_g = conv.in_channels // g, conv.out_channels // g
    xg = _channels_first(xa, conv, geo, work).reshape((n, g, cin_g) + geo.in_spatial)
    wg = np.array(wa, dtype=work, copy=True).reshape((g, cin_g, cout_g) + conv.kernel)

    full_spatial = tuple(
        (h - 1) * s + k_eff for h, s, k_eff in zip(geo.in_spatial, conv.stride, conv.effective_kernel)
    )
    full = np.zeros((n, g, cout_g) + full_spatial, dtype=work)
    for tap in _taps(conv.kernel):
        # input element i lands at i*s + k*d of the full output, per axis
        contribution = np.einsum("ngi...,gio->ngo...", xg, wg[(Ellipsis,) + tap])
        window = tuple(
            slice(k * d, k * d + (h - 1) * s + 1, s)
            for k, d, h, s in zip(tap, conv.dilation, geo.in_spatial, conv.stride)
        )
        full[(slice(None),) * 3 + window] += contribution
    full = full.reshape((n, conv.out_channels) + full_spatial)

    # y[o] = full[o + pad_begin] where 0 <= o + pad_begin < L; elsewhere 0
    y = np.zeros((n, conv.out_channels) + geo.out_spatial, dtype=work)
    keep = tuple(max(0, min(out, size - top)) for out, size, top in zip(geo.out_spatial, full_spatial, geo.pad_begin))
    target = tuple(slice(0, k) for k in keep)
    source = tuple(slice(top, top + k) for top, k in zip(geo.pad_begin, keep))
    y[(slice(None),) * 2 + target] = full[(slice(None),) * 2 + source]
    return _finish(y, conv, geo, ba, act, slope, dtype)


def _conv(
    kind: str, rank: int, x: ArrayLike, weight: ArrayLike, bias: Optional[ArrayLike],
    activation: Optional[str], negative_slope: float, **params: object,
) -> np.ndarray:
    """Cross-correlation of the zero-padded input: y[o] = sum_k xpad[o*s + k*d] * w[k] per axis
    (kind "subpixel": the same, then pixel_shuffle)."""
    act, slope = activation_spec(activation, negative_slope)
    conv, geo, xa, wa, ba, dtype, work = _prepare(kind, rank, x, weight, bias, None, **params)
    n, g = geo.n, conv.groups
    cin_g, cout_g = conv.in_channels // g, conv.weight_out_channels // g
    conv_out = tuple(out // f for out, f in zip(geo.out_spatial, conv.factor))

    padded = tuple(lo + h + hi for lo, h, hi in zip(geo.pad_begin, geo.in_spatial, geo.pad_end))
    xp = np.zeros((n, conv.in_channels) + padded, dtype=work)
    inner = tuple(slice(lo, lo + h) for lo, h in zip(geo.pad_begin, geo.in_spatial))
    xp[(slice(None),) * 2 + inner] = _channels_first(xa, conv, geo, work)
    xp = xp.reshape((n, g, cin_g) + padded)
    wg = np.array(wa, dtype=work, copy=True).reshape((g, cout_g, cin_g) + conv.kernel)

    y = np.zeros((n, g, cout_g) + conv_out, dtype=work)
    for tap in _taps(conv.kernel):
        window = tuple(
            slice(k * d, k * d + (out - 1) * s + 1, s)
            for k, d, out, s in zip(tap, conv.dilation, conv_out, conv.stride)
        )
        y += np.einsum("ngi...,goi->ngo...", xp[(slice(None),) * 3 + window], wg[(Ellipsis,) + tap])
    y = y.reshape((n, conv.weight_out_channels) + conv_out)
    return _finish(y, conv, geo, ba, act, slope, dtype)


def conv_transpose1d(
    x: ArrayLike, weight: ArrayLike, bias: Optional[ArrayLike] = None, stride: IntOrTuple = 1,
    padding: Padding = 0, output_padding: IntOrTuple = 0, groups: int = 1, dilation: IntOrTuple = 1, *,
    output_size: Optional[OutputSize] = None, layout: Layout = "NCL",
    activation: Optional[str] = None, negative_slope: float = 0.01,
) -> np.ndarray:
    """Transposed 1-D convolution (torch.nn.functional.conv_transpose1d semantics), scatter form.

    x is (N, C_in, L) or (C_in, L) (NLC: channels last), weight (C_in, C_out/groups, kL), bias
    (C_out,). See :func:`conv_transpose2d` for the definition, which holds per axis.
    """
    return _conv_transpose(
        1, x, weight, bias, output_size, activation, negative_slope, stride=stride, padding=padding,
        output_padding=output_padding, groups=groups, dilation=dilation, layout=layout,
    )


def conv_transpose2d(
    x: ArrayLike, weight: ArrayLike, bias: Optional[ArrayLike] = None, stride: IntOrTuple = 1,
    padding: Padding = 0, output_padding: IntOrTuple = 0, groups: int = 1, dilation: IntOrTuple = 1, *,
    output_size: Optional[OutputSize] = None, layout: Layout = "NCHW",
    activation: Optional[str] = None, negative_slope: float = 0.01,
) -> np.ndarray:
    """Transposed convolution (torch.nn.functional.conv_transpose2d semantics), scatter form.

    x is (N, C_in, H, W) or (C_in, H, W) (NHWC: channels last), weight (C_in, C_out/groups,
    kH, kW), bias (C_out,). Per axis the full output has length L = (H-1)*s + d*(K-1) + 1 and
    full[i*s + k*d] += x[i] * w[k]; the result is y[o] = full[o + pad_begin] for o in
    [0, out), zero where o + pad_begin falls outside [0, L), plus the bias.
    """
    return _conv_transpose(
        2, x, weight, bias, output_size, activation, negative_slope, stride=stride, padding=padding,
        output_padding=output_padding, groups=groups, dilation=dilation, layout=layout,
    )


def conv_transpose3d(
    x: ArrayLike, weight: ArrayLike, bias: Optional[ArrayLike] = None, stride: IntOrTuple = 1,
    padding: Padding = 0, output_padding: IntOrTuple = 0, groups: int = 1, dilation: IntOrTuple = 1, *,
    output_size: Optional[OutputSize] = None, layout: Layout = "NCDHW",
    activation: Optional[str] = None, negative_slope: float = 0.01,
) -> np.ndarray:
    """Transposed 3-D convolution (torch.nn.functional.conv_transpose3d semantics), scatter form.

    x is (N, C_in, D, H, W) or (C_in, D, H, W) (NDHWC: channels last), weight (C_in,
    C_out/groups, kD, kH, kW), bias (C_out,). See :func:`conv_transpose2d`.
    """
    return _conv_transpose(
        3, x, weight, bias, output_size, activation, negative_slope, stride=stride, padding=padding,
        output_padding=output_padding, groups=groups, dilation=dilation, layout=layout,
    )


def conv1d(
    x: ArrayLike, weight: ArrayLike, bias: Optional[ArrayLike] = None, stride: IntOrTuple = 1,
    padding: Padding = 0, dilation: IntOrTuple = 1, groups: int = 1, *, layout: Layout = "NCL",
    activation: Optional[str] = None, negative_slope: float = 0.01,
) -> np.ndarray:
    """1-D convolution as cross-correlation (torch.nn.functional.conv1d); see :func:`conv2d`."""
    return _conv(
        "conv", 1, x, weight, bias, activation, negative_slope, stride=stride, padding=padding,
        dilation=dilation, groups=groups, layout=layout,
    )


def conv2d(
    x: ArrayLike, weight: ArrayLike, bias: Optional[ArrayLike] = None, stride: IntOrTuple = 1,
    padding: Padding = 0, dilation: IntOrTuple = 1, groups: int = 1, *, layout: Layout = "NCHW",
    activation: Optional[str] = None, negative_slope: float = 0.01,
) -> np.ndarray:
    """Convolution as cross-correlation (torch.nn.functional.conv2d semantics).

    weight is (C_out, C_in/groups, kH, kW). padding: int, (h, w), ((top, bottom), (left,
    right)), "valid", or "same" (TensorFlow: out = ceil(H/stride), odd extra at the end).
    y[n, co, oh, ow] = sum over ci in co's group, a, b of
    xpad[n, ci, oh*sh + a*dh, ow*sw + b*dw] * weight[co, ci, a, b], plus the bias.
    """
    return _conv(
        "conv", 2, x, weight, bias, activation, negative_slope, stride=stride, padding=padding,
        dilation=dilation, groups=groups, layout=layout,
    )


def conv3d(
    x: ArrayLike, weight: ArrayLike, bias: Optional[ArrayLike] = None, stride: IntOrTuple = 1,
    padding: Padding = 0, dilation: IntOrTuple = 1, groups: int = 1, *, layout: Layout = "NCDHW",
    activation: Optional[str] = None, negative_slope: float = 0.01,
) -> np.ndarray:
    """3-D convolution as cross-correlation (torch.nn.functional.conv3d); see :func:`conv2d`."""
    return _conv(
        "conv", 3, x, weight, bias, activation, negative_slope, stride=stride, padding=padding,
        dilation=dilation, groups=groups, layout=layout,
    )


def subpixel_conv1d(
    x: ArrayLike, weight: ArrayLike, upscale_factor: IntOrTuple, bias: Optional[ArrayLike] = None,
    stride: IntOrTuple = 1, padding: Padding = 0, dilation: IntOrTuple = 1, groups: int = 1, *,
    layout: Layout = "NCL", mode: str = "CRD", activation: Optional[str] = None, negative_slope: float = 0.01,
) -> np.ndarray:
    """pixel_shuffle(conv1d(x, weight, bias, ...), (r,)); weight is (C*r, C_in/groups, kL)."""
    return _conv(
        "subpixel", 1, x, weight, bias, activation, negative_slope, stride=stride, padding=padding,
        dilation=dilation, groups=groups, layout=layout, upscale_factor=upscale_factor, mode=mode,
    )


def subpixel_conv2d(
    x: ArrayLike, weight: ArrayLike, upscale_factor: IntOrTuple, bias: Optional[ArrayLike] = None,
    stride: IntOrTuple = 1, padding: Padding = 0, dilation: IntOrTuple = 1, groups: int = 1, *,
    layout: Layout = "NCHW", mode: str = "CRD", activation: Optional[str] = None, negative_slope: float = 0.01,
) -> np.ndarray:
    """Sub-pixel convolution: pixel_shuffle(conv2d(x, weight, bias, ...), upscale_factor).

    weight is (C*rh*rw, C_in/groups, kH, kW) and bias has the conv's C*rh*rw entries.
    """
    return _conv(
        "subpixel", 2, x, weight, bias, activation, negative_slope, stride=stride, padding=padding,
        dilation=dilation, groups=groups, layout=layout, upscale_factor=upscale_factor, mode=mode,
    )


def subpixel_conv3d(
    x: ArrayLike, weight: ArrayLike, upscale_factor: IntOrTuple, bias: Optional[ArrayLike] = None,
    stride: IntOrTuple = 1, padding: Padding = 0, dilation: IntOrTuple = 1, groups: int = 1, *,
    layout: Layout = "NCDHW", mode: str = "CRD", activation: Optional[str] = None, negative_slope: float = 0.01,
) -> np.ndarray:
    """pixel_shuffle(conv3d(x, weight, bias, ...), (rd, rh, rw)); weight is (C*rd*rh*rw, C_in/groups,
    kD, kH, kW)."""
    return _conv(
        "subpixel", 3, x, weight, bias, activation, negative_slope, stride=stride, padding=padding,
        dilation=dilation, groups=groups, layout=layout, upscale_factor=upscale_factor, mode=mode,
    )


# ----------------------------------------------------------------------------- pixel shuffle


def _interleave(first: Sequence[int], second: Sequence[int]) -> Tuple[int, ...]:
    return tuple(v for pair in zip(first, second) for v in pair)


def _shuffle_channels_first(x: np.ndarray, factor: Tuple[int, ...], dcr: bool, inverse: bool) -> np.ndarray:
    """(B, C*prod(r), *S) <-> (B, C, *(S*r)) for channels-first x; high-res o = s*r + i per axis."""
    k, b = len(factor), x.shape[0]
    if not inverse:
        spatial = x.shape[2:]
        c = x.shape[1] // math.prod(factor)
        if dcr:  # in[(i_1, ..., i_k) * C + c]: axes b, i_1..i_k, c, s_1..s_k
            t = x.reshape((b,) + factor + (c,) + spatial)
            order = (0, k + 1) + _interleave(range(k + 2, 2 * k + 2), range(1, k + 1))
        else:  # in[c * prod(r) + (i_1, ..., i_k)]: axes b, c, i_1..i_k, s_1..s_k
            t = x.reshape((b, c) + factor + spatial)
            order = (0, 1) + _interleave(range(k + 2, 2 * k + 2), range(2, k + 2))
        high: np.ndarray = t.transpose(order).reshape((b, c) + tuple(s * r for s, r in zip(spatial, factor)))
        return high
    c = x.shape[1]
    spatial = tuple(h // r for h, r in zip(x.shape[2:], factor))
    t = x.reshape((b, c) + _interleave(spatial, factor))  # axes b, c, s_1, i_1, ..., s_k, i_k
    sizes, phases = range(2, 2 * k + 2, 2), range(3, 2 * k + 2, 2)
    order = (0,) + tuple(phases) + (1,) + tuple(sizes) if dcr else (0, 1) + tuple(phases) + tuple(sizes)
    low: np.ndarray = t.transpose(order).reshape((b, c * math.prod(factor)) + spatial)
    return low


def _shuffle(x: ArrayLike, factor: IntOrTuple, layout: Optional[Layout], mode: str, inverse: bool, name: str) -> np.ndarray:
    xa = as_array(x, "x", kinds="biufc")
    spec = shuffle_spec(xa.shape, factor, layout, mode, inverse, name)
    xc = np.array(xa, dtype=data_dtype(xa), copy=True)
    if spec.channels_last:
        xc = np.moveaxis(xc, -1, -spec.rank - 1)
    y = _shuffle_channels_first(xc.reshape((spec.batch,) + xc.shape[-spec.rank - 1 :]), spec.factor, spec.dcr, inverse)
    if spec.channels_last:
        y = np.moveaxis(y, 1, -1)
    return np.array(y.reshape(spec.out_shape), order="C", copy=True)


def pixel_shuffle(
    x: ArrayLike, upscale_factor: IntOrTuple, *, layout: Optional[Layout] = None, mode: str = "CRD"
) -> np.ndarray:
    """Depth to space: (..., C*rh*rw, H, W) -> (..., C, H*rh, W*rw) for an int or pair factor,
    (..., C*r, L) -> (..., C, L*r) for (r,), (..., C*rd*rh*rw, D, H, W) -> ... for a triple.

    layout None is channels first; the rank's names ("NCHW"/"NHWC", "NCL"/"NLC",
    "NCDHW"/"NDHWC") or "channels_first"/"channels_last".
    CRD (PyTorch): out[..., c, h*rh+i, w*rw+j] = in[..., c*rh*rw + i*rw + j, h, w].
    DCR (TF depth_to_space): out[..., c, h*rh+i, w*rw+j] = in[..., (i*rw + j)*C + c, h, w].
    Other ranks likewise, the phase (i_1, ..., i_k) in row-major order.
    """
    return _shuffle(x, upscale_factor, layout, mode, False, "upscale_factor")


def pixel_unshuffle(
    x: ArrayLike, downscale_factor: IntOrTuple, *, layout: Optional[Layout] = None, mode: str = "CRD"
) -> np.ndarray:
    """Space to depth, the exact inverse of pixel_shuffle with the same factor and mode."""
    return _shuffle(x, downscale_factor, layout, mode, True, "downscale_factor")


# ----------------------------------------------------------------------------- building blocks


def zero_insert(x: ArrayLike, stride: IntOrTuple) -> np.ndarray:
    """Spread the trailing axes apart: x[..., i, j] lands at [..., i*sh, j*sw], zeros between.

    An int stride acts on the last two axes, a tuple of k ints on the last k.
    """
    xa = as_array(x, "x", kinds="biufc")
    strides, shape = zero_insert_spec(xa.shape, stride)
    out = np.zeros(shape, dtype=data_dtype(xa))
    out[(Ellipsis,) + tuple(slice(None, None, s) for s in strides)] = xa
    return out


def split_kernel(kernel: ArrayLike, stride: IntOrTuple) -> np.ndarray:
    """(..., kH, kW) -> (sh*sw, ..., ceil(kH/sh), ceil(kW/sw)) (an int stride: the last two axes;
    a tuple of k: the last k).

    The kernel is zero-padded at the end to a multiple of the stride; sub-kernel number p of the
    phases (a, b) in row-major order (p = a*sw + b in 2-D) is padded[..., a::sh, b::sw].
    """
    ka = as_array(kernel, "kernel")
    strides, taps = split_kernel_spec(ka.shape, stride)
    k = len(strides)
    lead, sizes = ka.shape[:-k], ka.shape[-k:]
    padded = np.zeros(lead + tuple(t * s for t, s in zip(taps, strides)), dtype=result_dtype(ka))
    padded[(Ellipsis,) + tuple(slice(0, size) for size in sizes)] = ka
    out = np.zeros((math.prod(strides),) + lead + taps, dtype=padded.dtype)
    for index, phase in enumerate(itertools.product(*(range(s) for s in strides))):
        out[index] = padded[(Ellipsis,) + tuple(slice(p, None, s) for p, s in zip(phase, strides))]
    return out


# ----------------------------------------------------------------------------- backward

Gradients = Tuple[Optional[np.ndarray], Optional[np.ndarray], Optional[np.ndarray]]


def _backward_arrays(
    kind: str, rank: int, grad_output: ArrayLike, x: ArrayLike, weight: ArrayLike,
    output_size: Optional[OutputSize], **params: object,
) -> Tuple[ConvParams, ConvGeometry, np.ndarray, np.ndarray, np.ndarray, np.dtype]:
    """Checked parameters and geometry, then grad_output and x channels first, and the weight, in
    the dtype the gradients are computed in; last the dtype they are returned in."""
    conv, geo, xa, wa, _, _, _ = _prepare(kind, rank, x, weight, None, output_size, **params)
    ga = as_array(grad_output, "grad_output")
    check_grad_output(geo, ga.shape)
    dtype = result_dtype(ga, xa, wa)
    work = compute_dtype(dtype)
    gb = ga if geo.batched else ga[np.newaxis]
    if conv.channels_last:
        gb = np.moveaxis(gb, -1, 1)
    arrays = np.array(gb, dtype=work, copy=True), _channels_first(xa, conv, geo, work), wa.astype(work)
    return (conv, geo) + arrays + (dtype,)


def _rounded(gradients: Gradients, dtype: np.dtype) -> Gradients:
    """Each gradient rounded once to the result dtype (half precision is computed in float32)."""
    gi, gw, gb = (None if a is None else a.astype(dtype, copy=False) for a in gradients)
    return gi, gw, gb


def _input_layout(grad_x: np.ndarray, conv: ConvParams, geo: ConvGeometry) -> np.ndarray:
    """(N, C, *spatial) back to x's layout and batchedness."""
    if conv.channels_last:
        grad_x = np.moveaxis(grad_x, 1, -1)
    return np.array(grad_x if geo.batched else grad_x[0], order="C", copy=True)


def _conv_transpose_backward(
    rank: int, grad_output: ArrayLike, x: ArrayLike, weight: ArrayLike, output_size: Optional[OutputSize],
    mask: object, **params: object,
) -> Gradients:
    """The adjoint of the scatter form: grad_y goes back into the full output's window, then each
    input element collects grad_full[i*s + k*d] * w[k] and each tap x[i] * grad_full[i*s + k*d]."""
    want = output_mask(mask)
    conv, geo, gy, xc, wa, result = _backward_arrays("conv_transpose", rank, grad_output, x, weight, output_size,
                                                     **params)
    n, g, dtype = geo.n, conv.groups, gy.dtype
    cin_g, cout_g = conv.in_channels // g, conv.out_channels // g
    full_spatial = tuple(
        (h - 1) * s + k_eff for h, s, k_eff in zip(geo.in_spatial, conv.stride, conv.effective_kernel)
    )
    full = np.zeros((n, conv.out_channels) + full_spatial, dtype=dtype)
    keep = tuple(max(0, min(out, size - top)) for out, size, top in zip(geo.out_spatial, full_spatial, geo.pad_begin))
    full[(slice(None),) * 2 + tuple(slice(top, top + k) for top, k in zip(geo.pad_begin, keep))] = \
        gy[(slice(None),) * 2 + tuple(slice(0, k) for k in keep)]
    full = full.reshape((n, g, cout_g) + full_spatial)
    xg = xc.reshape((n, g, cin_g) + geo.in_spatial)
    wg = wa.reshape((g, cin_g, cout_g) + conv.kernel)
    grad_x = np.zeros_like(xg)
    grad_w = np.zeros_like(wg)
    pixels = "xyz"[:rank]
    for tap in _taps(conv.kernel):
        window = tuple(
            slice(k * d, k * d + (h - 1) * s + 1, s)
            for k, d, h, s in zip(tap, conv.dilation, geo.in_spatial, conv.stride)
        )
        reached = full[(slice(None),) * 3 + window]  # grad_full at every i*s + k*d
        grad_x += np.einsum("ngo...,gio->ngi...", reached, wg[(Ellipsis,) + tap])
        grad_w[(Ellipsis,) + tap] = np.einsum(f"ngi{pixels},ngo{pixels}->gio", xg, reached)
    grad_input = _input_layout(grad_x.reshape(xc.shape), conv, geo) if want[0] else None
    grad_weight = grad_w.reshape(wa.shape) if want[1] else None
    grad_bias = gy.sum(axis=(0,) + tuple(range(2, gy.ndim))) if want[2] else None
    return _rounded((grad_input, grad_weight, grad_bias), result)


def _conv_backward(
    rank: int, grad_output: ArrayLike, x: ArrayLike, weight: ArrayLike, mask: object, **params: object,
) -> Gradients:
    """The adjoint of the gather form: every tap sends grad_y[o] * w[k] back to xpad[o*s + k*d]
    and collects xpad[o*s + k*d] * grad_y[o]; the padding's share is dropped."""
    want = output_mask(mask)
    conv, geo, gy, xc, wa, result = _backward_arrays("conv", rank, grad_output, x, weight, None, **params)
    n, g = geo.n, conv.groups
    cin_g, cout_g = conv.in_channels // g, conv.out_channels // g
    padded = tuple(lo + h + hi for lo, h, hi in zip(geo.pad_begin, geo.in_spatial, geo.pad_end))
    inner = tuple(slice(lo, lo + h) for lo, h in zip(geo.pad_begin, geo.in_spatial))
    xp = np.zeros((n, conv.in_channels) + padded, dtype=gy.dtype)
    xp[(slice(None),) * 2 + inner] = xc
    xp = xp.reshape((n, g, cin_g) + padded)
    gyg = gy.reshape((n, g, cout_g) + geo.out_spatial)
    wg = wa.reshape((g, cout_g, cin_g) + conv.kernel)
    grad_xp = np.zeros_like(xp)
    grad_w = np.zeros_like(wg)
    pixels = "xyz"[:rank]
    for tap in _taps(conv.kernel):
        window = (slice(None),) * 3 + tuple(
            slice(k * d, k * d + (out - 1) * s + 1, s)
            for k, d, out, s in zip(tap, conv.dilation, geo.out_spatial, conv.stride)
        )
        grad_xp[window] += np.einsum("ngo...,goi->ngi...", gyg, wg[(Ellipsis,) + tap])
        grad_w[(Ellipsis,) + tap] = np.einsum(f"ngi{pixels},ngo{pixels}->goi", xp[window], gyg)
    grad_x = grad_xp.reshape((n, conv.in_channels) + padded)[(slice(None),) * 2 + inner]
    grad_input = _input_layout(grad_x, conv, geo) if want[0] else None
    grad_weight = grad_w.reshape(wa.shape) if want[1] else None
    grad_bias = gy.sum(axis=(0,) + tuple(range(2, gy.ndim))) if want[2] else None
    return _rounded((grad_input, grad_weight, grad_bias), result)


_BACKWARD_DOC = """Gradients of :func:`{name}` from its definition: ``(grad_input, grad_weight, grad_bias)``.

    ``grad_output`` has the forward result's shape (layout and batchedness of x); the other
    arguments are the forward call's (the bias is not needed). ``output_mask`` says which of the
    three to compute; the others are None. grad_bias is grad_output summed over batch and pixels.
    """


def _transposed_backward(rank: int):  # type: ignore[no-untyped-def]
    def backward(
        grad_output: ArrayLike, x: ArrayLike, weight: ArrayLike, stride: IntOrTuple = 1, padding: Padding = 0,
        output_padding: IntOrTuple = 0, groups: int = 1, dilation: IntOrTuple = 1, *,
        output_size: Optional[OutputSize] = None, layout: Optional[Layout] = None,
        output_mask: Sequence[bool] = (True, True, True),
    ) -> Gradients:
        return _conv_transpose_backward(
            rank, grad_output, x, weight, output_size, output_mask, stride=stride, padding=padding,
            output_padding=output_padding, groups=groups, dilation=dilation, layout=layout,
        )

    backward.__name__ = backward.__qualname__ = f"conv_transpose{rank}d_backward"
    backward.__doc__ = _BACKWARD_DOC.format(name=f"conv_transpose{rank}d")
    return backward


def _correlation_backward(rank: int):  # type: ignore[no-untyped-def]
    def backward(
        grad_output: ArrayLike, x: ArrayLike, weight: ArrayLike, stride: IntOrTuple = 1, padding: Padding = 0,
        dilation: IntOrTuple = 1, groups: int = 1, *, layout: Optional[Layout] = None,
        output_mask: Sequence[bool] = (True, True, True),
    ) -> Gradients:
        return _conv_backward(
            rank, grad_output, x, weight, output_mask, stride=stride, padding=padding, dilation=dilation,
            groups=groups, layout=layout,
        )

    backward.__name__ = backward.__qualname__ = f"conv{rank}d_backward"
    backward.__doc__ = _BACKWARD_DOC.format(name=f"conv{rank}d")
    return backward


conv_transpose1d_backward = _transposed_backward(1)
conv_transpose2d_backward = _transposed_backward(2)
conv_transpose3d_backward = _transposed_backward(3)
conv1d_backward = _correlation_backward(1)
conv2d_backward = _correlation_backward(2)
conv3d_backward = _correlation_backward(3)
