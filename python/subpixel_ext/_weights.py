"""The paper's equivalence as weights: deconvolution form <-> sub-pixel convolution form, for
1-D, 2-D and 3-D (the rank comes from the weight: ``weight.ndim - 2``)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional, Tuple, cast

import numpy as np

from . import _api
from . import _params as _p
from ._typing import ArrayLike, IntOrTuple, Layout, Padding

Pairs = Tuple[Tuple[int, int], ...]


def _public(name: str, rank: int) -> Callable[..., np.ndarray]:
    """_api's function of this rank, e.g. subpixel_conv3d."""
    return cast(Callable[..., np.ndarray], getattr(_api, f"{name}{rank}d"))


@dataclass(frozen=True)
class PolyphaseWeight:
    """A transposed convolution rewritten as conv + pixel_shuffle + crop.

    ``weight`` is ``(C_out*prod(s), C_in/groups, *T)`` in CRD channel order (2-D: channel
    ``c*sh*sw + rh*sw + rw`` holds output channel ``c``'s phase ``(rh, rw)``); ``padding`` is the
    convolution's ``((begin, end), ...)`` per axis; ``crop`` what to cut from the shuffled result,
    in the same form.
    """

    weight: np.ndarray
    padding: Pairs
    upscale_factor: Tuple[int, ...]
    crop: Pairs
    groups: int

    def apply(
        self,
        x: ArrayLike,
        bias: Optional[ArrayLike] = None,
        *,
        layout: Optional[Layout] = None,
        num_threads: Optional[int] = None,
    ) -> np.ndarray:
        """``crop(pixel_shuffle(conv(x, weight, padding=padding)))``; ``bias`` is ``(C_out,)``.

        ``layout`` None is channels first.
        """
        rank = len(self.upscale_factor)
        channels_last = _p.parse_layout(layout, rank)
        phases = math.prod(self.upscale_factor)
        conv_bias = None if bias is None else np.repeat(_p.as_array(bias, "bias"), phases)
        y = _public("subpixel_conv", rank)(
            x, self.weight, self.upscale_factor, conv_bias, padding=self.padding, groups=self.groups,
            layout=_p.layout_name(channels_last, rank), num_threads=num_threads,
        )
        first = y.ndim - rank - (1 if channels_last else 0)
        index = [slice(None)] * y.ndim
        for axis, (begin, end) in enumerate(self.crop):
            size = y.shape[first + axis] - begin - end
            if size <= 0:
                raise ValueError(
                    f"the transposed convolution's output would be empty for input shape {np.shape(x)}"
                )
            index[first + axis] = slice(begin, begin + size)
        return np.ascontiguousarray(y[tuple(index)])


@dataclass(frozen=True)
class DeconvWeight:
    """A sub-pixel convolution rewritten as one strided transposed convolution."""

    weight: np.ndarray
    stride: Tuple[int, ...]
    padding: Pairs
    output_padding: Tuple[int, ...]
    groups: int

    def apply(
        self,
        x: ArrayLike,
        bias: Optional[ArrayLike] = None,
        *,
        layout: Optional[Layout] = None,
        num_threads: Optional[int] = None,
    ) -> np.ndarray:
        """``conv_transpose`` with these arguments; ``bias`` is the result's ``(C,)``."""
        rank = len(self.stride)
        return _public("conv_transpose", rank)(
            x, self.weight, bias, self.stride, self.padding, self.output_padding, self.groups,
            layout=_p.layout_name(_p.parse_layout(layout, rank), rank), num_threads=num_threads,
        )


def _weight_rank(weight: np.ndarray, name: str, axes: str) -> int:
    rank = weight.ndim - 2
    if rank not in _p.LAYOUTS:
        raise ValueError(f"{name} must be 3-D, 4-D or 5-D {axes}, got shape {weight.shape}")
    return rank


def _dilate(weight: np.ndarray, dilation: Tuple[int, ...]) -> np.ndarray:
    kernel = weight.shape[2:]
    out = np.zeros(weight.shape[:2] + tuple(d * (k - 1) + 1 for k, d in zip(kernel, dilation)), dtype=weight.dtype)
    out[(Ellipsis,) + tuple(slice(None, None, d) for d in dilation)] = weight
    return out


def _phase_padding(k_eff: int, s: int, crop_top: int, crop_bottom: int, op: int) -> Tuple[int, int, int, int]:
    """(conv pad top, conv pad bottom, crop top, crop bottom) for one axis, independent of H."""
    taps = -(-k_eff // s)
    # Rows of the shuffled result that would only be cropped are not computed at all.
    skip_top = min(crop_top // s, taps - 1)
    pad_top, cut_top = taps - 1 - skip_top, crop_top - skip_top * s
    # The shuffled result ends taps*s - k_eff rows after the full output; output_padding
    # extends the window past it (extra conv padding), a crop shortens it.
    cut_bottom = taps * s - k_eff + crop_bottom - op
    if cut_bottom < 0:
        extra = -(-(-cut_bottom) // s)
        return pad_top, taps - 1 + extra, cut_top, cut_bottom + extra * s
    skip_bottom = min(cut_bottom // s, taps - 1)
    return pad_top, taps - 1 - skip_bottom, cut_top, cut_bottom - skip_bottom * s


def _interleave(first: Tuple[int, ...], second: Tuple[int, ...]) -> Tuple[int, ...]:
    return tuple(v for pair in zip(first, second) for v in pair)


def polyphase_weight(
    weight: ArrayLike,
    stride: IntOrTuple,
    padding: Padding = 0,
    output_padding: IntOrTuple = 0,
    dilation: IntOrTuple = 1,
    groups: int = 1,
) -> PolyphaseWeight:
    """Convert a transposed-convolution weight ``(C_in, C_out/groups, *K)`` to sub-pixel form.

    ``conv_transposeNd(x, weight, bias, stride, padding, output_padding, groups, dilation)``
    equals ``polyphase_weight(weight, stride, padding, output_padding, dilation, groups).apply(x, bias)``
    (N = weight.ndim - 2). With dilation the kernel is dilated explicitly first, so
    ``T = ceil((d*(K-1)+1)/s)`` per axis (``ceil(K/s)`` without dilation).

    Examples
    --------
    >>> import numpy as np, subpixel_ext as spx
    >>> pw = spx.polyphase_weight(np.ones((3, 2, 4, 4)), stride=2, padding=1)
    >>> pw.weight.shape, pw.padding, pw.crop
    ((8, 3, 2, 2), ((1, 1), (1, 1)), ((1, 1), (1, 1)))
    """
    w = _p.as_array(weight, "weight")
    rank = _weight_rank(w, "weight", "(C_in, C_out/groups, *kernel)")
    params = _p.conv_params(
        "conv_transpose", w, None, rank=rank, stride=stride, padding=padding,
        output_padding=output_padding, groups=groups, dilation=dilation,
    )
    dilated = _dilate(w.astype(_p.result_dtype(w), copy=False), params.dilation)
    pads, crops, taps = [], [], []
    for axis, (k_eff, s) in enumerate(zip(params.effective_kernel, params.stride)):
        lo, hi, extra = _p.transposed_axis_crop(params.padding, axis, k_eff, s, params.output_padding[axis])
        p_top, p_bottom, c_top, c_bottom = _phase_padding(k_eff, s, lo, hi, extra)
        pads.append((p_top, p_bottom))
        crops.append((c_top, c_bottom))
        taps.append(-(-k_eff // s))
    g, (c_in, cg_out) = params.groups, dilated.shape[:2]
    padded = np.zeros((c_in, cg_out) + tuple(t * s for t, s in zip(taps, params.stride)), dtype=dilated.dtype)
    padded[(slice(None),) * 2 + tuple(slice(0, k) for k in dilated.shape[2:])] = dilated
    # Sub-kernel tap j of phase r is kernel tap (T-1-j)*s + r (the phase's taps, reversed):
    # axes g, c_in/g, c_out/g, T_1, s_1, ..., T_n, s_n.
    blocks = padded.reshape((g, c_in // g, cg_out) + _interleave(tuple(taps), params.stride))
    blocks = blocks[(slice(None),) * 3 + (slice(None, None, -1), slice(None)) * rank]
    tap_axes, phase_axes = tuple(range(3, 3 + 2 * rank, 2)), tuple(range(4, 4 + 2 * rank, 2))
    conv = blocks.transpose((0, 2) + phase_axes + (1,) + tap_axes)
    conv = conv.reshape((g * cg_out * math.prod(params.stride), c_in // g) + tuple(taps))
    return PolyphaseWeight(np.ascontiguousarray(conv), tuple(pads), params.stride, tuple(crops), g)


def deconv_weight(
    conv_weight: ArrayLike, upscale_factor: IntOrTuple, padding: Padding = 0, groups: int = 1
) -> DeconvWeight:
    """Convert a sub-pixel convolution weight ``(C*prod(r), C_in/groups, *K)`` to deconvolution form.

    ``conv_transposeNd(x, d.weight, stride=d.stride, padding=d.padding,
    output_padding=d.output_padding, groups=d.groups)`` equals
    ``pixel_shuffle(convNd(x, conv_weight, padding=padding, groups=groups), upscale_factor)``
    (N = conv_weight.ndim - 2). The convolution's padding must be at most ``k - 1`` per side
    (more would only add bias-only rows).

    Examples
    --------
    >>> import numpy as np, subpixel_ext as spx
    >>> d = spx.deconv_weight(np.ones((12, 5, 3, 3)), 2, padding=1)
    >>> d.weight.shape, d.stride, d.padding
    ((5, 3, 6, 6), (2, 2), ((2, 2), (2, 2)))
    """
    w = _p.as_array(conv_weight, "conv_weight")
    rank = _weight_rank(w, "conv_weight", "(C*prod(upscale_factor), C_in/groups, *kernel)")
    params = _p.conv_params(
        "subpixel", w, None, rank=rank, padding=padding, groups=groups, upscale_factor=upscale_factor
    )
    g, r, channels = params.groups, params.factor, params.out_channels
    if channels % g:
        raise ValueError(f"groups={g} must divide the {channels} output channels after the shuffle")
    crops = []
    for axis, k in enumerate(params.kernel):
        # stride 1: the "same" split does not depend on the input size
        lo, hi = _p.conv_axis_padding(params.padding, axis, 1, k, 1)
        if max(lo, hi) > k - 1:
            raise ValueError(f"padding must be at most kernel size - 1 = {k - 1} per side, got {padding!r}")
        crops.append(((k - 1 - lo) * r[axis], (k - 1 - hi) * r[axis]))
    # weight[c_in, c, (k-1-a)*r + i, ...] = conv_weight[c*prod(r) + phase(i, ...), c_in, a, ...]:
    # axes g, c/g, r_1..r_n, c_in/g, k_1..k_n
    cg_in = w.shape[1]
    blocks = w.astype(_p.result_dtype(w), copy=False).reshape((g, channels // g) + r + (cg_in,) + params.kernel)
    flipped = blocks[(slice(None),) * (3 + rank) + (slice(None, None, -1),) * rank]
    kernel_axes, phase_axes = tuple(range(3 + rank, 3 + 2 * rank)), tuple(range(2, 2 + rank))
    deconv = flipped.transpose((0, 2 + rank, 1) + _interleave(kernel_axes, phase_axes))
    deconv = deconv.reshape((g * cg_in, channels // g) + tuple(k * f for k, f in zip(params.kernel, r)))
    return DeconvWeight(np.ascontiguousarray(deconv), r, tuple(crops), (0,) * rank, g)
