"""The paper's equivalence as weights: deconvolution form <-> sub-pixel convolution form."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Tuple

import numpy as np

from . import _api
from . import _params as _p

PairPair = Tuple[Tuple[int, int], Tuple[int, int]]


@dataclass(frozen=True)
class PolyphaseWeight:
    """A transposed convolution rewritten as conv2d + pixel_shuffle + crop.

    ``weight`` is ``(C_out*sh*sw, C_in/groups, Th, Tw)`` in CRD channel order
    (channel ``c*sh*sw + rh*sw + rw`` holds output channel ``c``'s phase ``(rh, rw)``);
    ``padding`` is the conv2d's ``((top, bottom), (left, right))``; ``crop`` what to cut from
    the shuffled result, in the same form.
    """

    weight: np.ndarray
    padding: PairPair
    upscale_factor: Tuple[int, int]
    crop: PairPair
    groups: int

    def apply(
        self,
        x: Any,
        bias: Any = None,
        *,
        layout: str = "NCHW",
        num_threads: Optional[int] = None,
    ) -> np.ndarray:
        """``crop(pixel_shuffle(conv2d(x, weight, padding=padding)))``; ``bias`` is ``(C_out,)``."""
        sh, sw = self.upscale_factor
        conv_bias = None if bias is None else np.repeat(_p.as_array(bias, "bias"), sh * sw)
        y = _api.subpixel_conv2d(
            x, self.weight, self.upscale_factor, conv_bias, padding=self.padding,
            groups=self.groups, layout=layout, num_threads=num_threads,
        )
        (top, bottom), (left, right) = self.crop
        h_axis = y.ndim - (2 if layout.upper() == "NCHW" else 3)
        index = [slice(None)] * y.ndim
        index[h_axis] = slice(top, y.shape[h_axis] - bottom)
        index[h_axis + 1] = slice(left, y.shape[h_axis + 1] - right)
        if y.shape[h_axis] - top - bottom <= 0 or y.shape[h_axis + 1] - left - right <= 0:
            raise ValueError(f"the transposed convolution's output would be empty for input shape {np.shape(x)}")
        return np.ascontiguousarray(y[tuple(index)])


@dataclass(frozen=True)
class DeconvWeight:
    """A sub-pixel convolution rewritten as one strided transposed convolution."""

    weight: np.ndarray
    stride: Tuple[int, int]
    padding: PairPair
    output_padding: Tuple[int, int]
    groups: int

    def apply(
        self,
        x: Any,
        bias: Any = None,
        *,
        layout: str = "NCHW",
        num_threads: Optional[int] = None,
    ) -> np.ndarray:
        """``conv_transpose2d`` with these arguments; ``bias`` is the result's ``(C,)``."""
        return _api.conv_transpose2d(
            x, self.weight, bias, self.stride, self.padding, self.output_padding, self.groups,
            layout=layout, num_threads=num_threads,
        )


def _dilate(weight: np.ndarray, dilation: Tuple[int, int]) -> np.ndarray:
    dh, dw = dilation
    kh, kw = weight.shape[-2:]
    out = np.zeros(weight.shape[:-2] + (dh * (kh - 1) + 1, dw * (kw - 1) + 1), dtype=weight.dtype)
    out[..., ::dh, ::dw] = weight
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


def polyphase_weight(
    weight: Any,
    stride: Any,
    padding: Any = 0,
    output_padding: Any = 0,
    dilation: Any = 1,
    groups: int = 1,
) -> PolyphaseWeight:
    """Convert a transposed-convolution weight ``(C_in, C_out/groups, kH, kW)`` to sub-pixel form.

    ``conv_transpose2d(x, weight, bias, stride, padding, output_padding, groups, dilation)``
    equals ``polyphase_weight(weight, stride, padding, output_padding, dilation, groups).apply(x, bias)``.
    With dilation the kernel is dilated explicitly first, so ``Th = ceil((dh*(kH-1)+1)/sh)``
    (``ceil(kH/sh)`` without dilation).

    Examples
    --------
    >>> import numpy as np, subpixel_ext as spx
    >>> pw = spx.polyphase_weight(np.ones((3, 2, 4, 4)), stride=2, padding=1)
    >>> pw.weight.shape, pw.padding, pw.crop
    ((8, 3, 2, 2), ((1, 1), (1, 1)), ((1, 1), (1, 1)))
    """
    w = _p.as_array(weight, "weight")
    if w.ndim != 4:
        raise ValueError(f"weight must be 4-D (C_in, C_out/groups, kH, kW), got shape {w.shape}")
    g = _p.conv_shapes(np.empty((w.shape[0], 1, 1)), w, None, groups, "NCHW", transposed=True)[1]
    s = _p.positive_pair(stride, "stride")
    d = _p.positive_pair(dilation, "dilation")
    spec = _p.padding_spec(padding)
    op = _p.int_pair(output_padding, "output_padding", minimum=0)
    dilated = _dilate(w.astype(_p.result_dtype(w), copy=False), d)
    pads, crops, taps = [], [], []
    for axis in range(2):
        k_eff, sa = dilated.shape[2 + axis], s[axis]
        if spec == "same":
            if op[axis]:
                raise ValueError(f"output_padding must be 0 with padding='same', got {output_padding!r}")
            total = max(k_eff - sa, 0)
            lo, hi, extra = total // 2, total - total // 2, max(sa - k_eff, 0)
        else:
            lo, hi = (0, 0) if isinstance(spec, str) else spec[axis]
            if op[axis] >= max(sa, d[axis]):
                raise ValueError(
                    f"output_padding must be smaller than max(stride, dilation) = {max(sa, d[axis])}, "
                    f"got {output_padding!r}"
                )
            extra = op[axis]
        p_top, p_bottom, c_top, c_bottom = _phase_padding(k_eff, sa, lo, hi, extra)
        pads.append((p_top, p_bottom))
        crops.append((c_top, c_bottom))
        taps.append(-(-k_eff // sa))
    (th, tw), (sh, sw) = taps, s
    c_in, cg_out = dilated.shape[:2]
    padded = np.zeros((c_in, cg_out, th * sh, tw * sw), dtype=dilated.dtype)
    padded[:, :, : dilated.shape[2], : dilated.shape[3]] = dilated
    # Sub-kernel tap j of phase r is kernel tap (T-1-j)*s + r (the phase's taps, reversed).
    phases = padded.reshape(g, c_in // g, cg_out, th, sh, tw, sw)[:, :, :, ::-1, :, ::-1, :]
    conv = phases.transpose(0, 2, 4, 6, 1, 3, 5).reshape(g * cg_out * sh * sw, c_in // g, th, tw)
    return PolyphaseWeight(
        np.ascontiguousarray(conv),
        (pads[0], pads[1]),
        (sh, sw),
        (crops[0], crops[1]),
        g,
    )


def deconv_weight(
    conv_weight: Any, upscale_factor: Any, padding: Any = 0, groups: int = 1
) -> DeconvWeight:
    """Convert a sub-pixel convolution weight ``(C*rh*rw, C_in/groups, kH, kW)`` to deconvolution form.

    ``conv_transpose2d(x, d.weight, stride=d.stride, padding=d.padding,
    output_padding=d.output_padding, groups=d.groups)`` equals
    ``pixel_shuffle(conv2d(x, conv_weight, padding=padding, groups=groups), upscale_factor)``.
    The conv2d padding must be at most ``k - 1`` per side (more would only add bias-only rows).

    Examples
    --------
    >>> import numpy as np, subpixel_ext as spx
    >>> d = spx.deconv_weight(np.ones((12, 5, 3, 3)), 2, padding=1)
    >>> d.weight.shape, d.stride, d.padding
    ((5, 3, 6, 6), (2, 2), ((2, 2), (2, 2)))
    """
    w = _p.as_array(conv_weight, "conv_weight")
    if w.ndim != 4:
        raise ValueError(f"conv_weight must be 4-D (C*rh*rw, C_in/groups, kH, kW), got shape {w.shape}")
    rh, rw = _p.positive_pair(upscale_factor, "upscale_factor")
    g = _p._as_int(groups, "groups")
    if g < 1:
        raise ValueError(f"groups must be >= 1, got {groups!r}")
    c_conv, cg_in, kh, kw = w.shape
    if c_conv % (rh * rw):
        raise ValueError(f"conv_weight has {c_conv} output channels, not divisible by {rh * rw}")
    channels = c_conv // (rh * rw)
    if channels % g:
        raise ValueError(f"groups={g} must divide the {channels} output channels after the shuffle")
    spec = _p.padding_spec(padding)
    crops = []
    for axis, (k, r) in enumerate(((kh, rh), (kw, rw))):
        if spec == "same":
            lo, hi = (k - 1) // 2, k - 1 - (k - 1) // 2
        else:
            lo, hi = (0, 0) if isinstance(spec, str) else spec[axis]
        if max(lo, hi) > k - 1:
            raise ValueError(f"padding must be at most kernel size - 1 = {k - 1} per side, got {padding!r}")
        crops.append(((k - 1 - lo) * r, (k - 1 - hi) * r))
    # weight[c_in, c, (k-1-a)*r + i, ...] = conv_weight[c*r*r + i*rw + j, c_in, a, ...]
    blocks = w.astype(_p.result_dtype(w), copy=False).reshape(g, channels // g, rh, rw, cg_in, kh, kw)
    flipped = blocks[:, :, :, :, :, ::-1, ::-1]
    deconv = flipped.transpose(0, 4, 1, 5, 2, 6, 3).reshape(g * cg_in, channels // g, kh * rh, kw * rw)
    return DeconvWeight(np.ascontiguousarray(deconv), (rh, rw), (crops[0], crops[1]), (0, 0), g)
