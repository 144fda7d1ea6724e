"""The public functions: validate and convert in Python, compute in the native `_core`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Hashable, Optional, Sequence, Tuple

import numpy as np

from . import _core
from . import _params as _p


@dataclass(frozen=True)
class _ConvPlan:
    """Everything a convolution call derives from shapes, dtypes and parameters."""

    native: Callable[[np.ndarray, np.ndarray, Optional[np.ndarray], np.ndarray], bool]
    shape: Tuple[int, ...]  # of the result
    dtype: np.dtype
    batched: bool
    # Called when the native call returns True (non-finite transposed weights) with
    # (x, weight, out, rerun): rerun(x2) recomputes out natively from another input.
    fixup: Optional[Callable[..., None]] = None

    def run(self, arrays: Sequence[Optional[np.ndarray]], out: Optional[np.ndarray]) -> np.ndarray:
        x, weight, bias = arrays
        assert x is not None and weight is not None
        xc, wc = _p.as_compute(x, self.dtype), _p.as_compute(weight, self.dtype)
        bc = None if bias is None else _p.as_compute(bias, self.dtype)
        if out is None:
            y = np.empty(self.shape, self.dtype)
        else:
            # The native call refuses an `out` overlapping the arrays it is given; an input
            # that was converted (copied) is checked here against the caller's original.
            copied = [a for a, c in ((x, xc), (weight, wc), (bias, bc)) if a is not None and a is not c]
            y = _p.check_out(out, self.shape, self.dtype, copied)
        if y.size:
            x4, y4 = (xc, y) if self.batched else (xc[None], y[None])
            if self.native(x4, wc, bc, y4) and self.fixup is not None:
                self.fixup(x4, wc, y4, lambda x_again: self.native(x_again, wc, bc, y4))
        return y


# Validated plans by (operation, input shapes and dtypes, parameters): a repeated call skips
# argument parsing and geometry, which dominate small calls. Bounded; unhashable arguments
# (lists) simply bypass it.
_PLANS: dict[Hashable, _ConvPlan] = {}
_MAX_PLANS = 256


def _planned_call(
    op: str,
    inputs: Tuple[Any, Any, Any],
    params: Tuple[Any, ...],
    build: Callable[..., _ConvPlan],
    out: Optional[np.ndarray],
) -> np.ndarray:
    """Run `op` on (x, weight, bias) with a cached or freshly built (validated) plan."""
    x, weight, bias = inputs
    if x is None or weight is None:
        raise TypeError(f"x and weight must be arrays, got {type(x).__name__} and {type(weight).__name__}")
    if type(x) is np.ndarray and type(weight) is np.ndarray and (bias is None or type(bias) is np.ndarray):
        arrays: Sequence[Optional[np.ndarray]] = inputs
    else:
        arrays = _checked_arrays(inputs)
        x, weight, bias = arrays
    # Parameters are compared by value *and* type: True == 1 and 2.0 == 2 as dict keys, and
    # those must still reach validation. Tuples are checked element by element.
    types = tuple(map(type, params))
    key = None
    if tuple not in types or all(_plain(v) for v in params):
        key = (op, params, types, x.shape, x.dtype, weight.shape, weight.dtype,
               None if bias is None else (bias.shape, bias.dtype))
        try:
            plan = _PLANS.get(key)
        except TypeError:  # unhashable parameters (lists, arrays): not cached
            key = plan = None
        if plan is not None:
            return plan.run(arrays, out)
    plan = build(_checked_arrays(arrays), *params)
    _p.checked_elements(plan.shape, plan.dtype.itemsize, "the result")
    if key is not None:
        if len(_PLANS) >= _MAX_PLANS:
            _PLANS.clear()
        _PLANS[key] = plan
    return plan.run(arrays, out)


def _plain(value: Any) -> bool:
    """Exact ints, strings, None and tuples of them: values a plan may be cached under."""
    kind = type(value)
    if kind is int or kind is str or value is None:
        return True
    return kind is tuple and all(_plain(v) for v in value)


def _checked_arrays(inputs: Sequence[Any]) -> list[Optional[np.ndarray]]:
    return [None if a is None else _p.as_array(a, n) for a, n in zip(inputs, ("x", "weight", "bias"))]


def conv_transpose2d(
    x: Any,
    weight: Any,
    bias: Any = None,
    stride: Any = 1,
    padding: Any = 0,
    output_padding: Any = 0,
    groups: int = 1,
    dilation: Any = 1,
    *,
    output_size: Any = None,
    layout: str = "NCHW",
    method: str = "auto",
    out: Optional[np.ndarray] = None,
    num_threads: Optional[int] = None,
) -> np.ndarray:
    """Transposed 2-D convolution with the semantics of ``torch.nn.functional.conv_transpose2d``.

    Parameters
    ----------
    x : array_like
        ``(N, C_in, H, W)`` or unbatched ``(C_in, H, W)``; ``(N, H, W, C_in)`` / ``(H, W, C_in)``
        with ``layout="NHWC"``. The result has the same layout and batchedness.
    weight : array_like
        ``(C_in, C_out/groups, kH, kW)`` in every layout.
    bias : array_like, optional
        ``(C_out,)``.
    stride, dilation, output_padding : int or (int, int)
    padding : int, (ph, pw), ((top, bottom), (left, right)), "same" or "valid"
        Crop of the full output. ``"same"`` is TensorFlow / ONNX ``SAME_UPPER``
        (``H_out = H*stride``, the odd extra row at the bottom/right); ``"valid"`` crops nothing.
    output_size : (int, int), optional
        Chooses ``output_padding`` as ``torch.nn.ConvTranspose2d.forward`` does.
    method : {"auto", "direct", "polyphase"}
        ``"direct"`` zero-inserts the input and runs a dense correlation; ``"polyphase"`` runs one
        sub-kernel per output phase on the low-resolution input (stride**2 fewer multiply-adds).
        ``"auto"`` picks polyphase, which never does more work.
    out : numpy.ndarray, optional
        C-contiguous array of the result's shape and dtype to write into.
    num_threads : int, optional
        Threads for this call; None uses the default (see ``set_num_threads``).

    Returns
    -------
    numpy.ndarray
        float32 if every input is float16/float32, else float64.

    Examples
    --------
    >>> import numpy as np, subpixel_ext as spx
    >>> x = np.ones((1, 1, 2, 2), np.float32); w = np.ones((1, 1, 2, 2), np.float32)
    >>> spx.conv_transpose2d(x, w, stride=2).shape
    (1, 1, 4, 4)
    """
    params = (stride, padding, output_padding, groups, dilation, output_size, layout, method, num_threads)
    return _planned_call("conv_transpose2d", (x, weight, bias), params, _plan_conv_transpose2d, out)


def _conv_setup(
    kind: str,
    arrays: Sequence[Optional[np.ndarray]],
    num_threads: Any,
    output_size: Any = None,
    **params: Any,
) -> Tuple[_p.ConvParams, _p.ConvGeometry, int, np.dtype]:
    xa, wa, ba = arrays
    assert xa is not None and wa is not None
    threads = _p.num_threads(num_threads)
    conv = _p.conv_params(kind, wa, ba, rank=2, **params)
    geo = _p.conv_geometry(conv, xa.shape, output_size)
    return conv, geo, threads, _p.result_dtype(xa, wa, ba)


def _plan_conv_transpose2d(
    arrays: Sequence[Optional[np.ndarray]],
    stride: Any,
    padding: Any,
    output_padding: Any,
    groups: Any,
    dilation: Any,
    output_size: Any,
    layout: Any,
    method: Any,
    num_threads: Any,
) -> _ConvPlan:
    meth = _p.choice(method, "method", _p.METHODS)
    c, geo, threads, dtype = _conv_setup(
        "conv_transpose", arrays, num_threads, output_size, stride=stride, padding=padding,
        output_padding=output_padding, groups=groups, dilation=dilation, layout=layout,
    )
    native = _core.ConvCall(
        "conv_transpose2d", c.stride, c.dilation, geo.pad_begin, c.groups, c.channels_last, threads,
        method="polyphase" if meth == "auto" else meth,
    )

    def fixup(x4: np.ndarray, w: np.ndarray, y4: np.ndarray, rerun: Callable[[np.ndarray], bool]) -> None:
        _add_nonfinite_terms(x4, w, y4, rerun, c.stride, c.dilation, geo.pad_begin, c.groups, c.channels_last)

    return _ConvPlan(native, geo.out_shape, dtype, geo.batched, fixup)


def _plan_conv2d(
    arrays: Sequence[Optional[np.ndarray]],
    stride: Any,
    padding: Any,
    dilation: Any,
    groups: Any,
    layout: Any,
    num_threads: Any,
) -> _ConvPlan:
    c, geo, threads, dtype = _conv_setup(
        "conv", arrays, num_threads, stride=stride, padding=padding, groups=groups, dilation=dilation,
        layout=layout,
    )
    native = _core.ConvCall("conv2d", c.stride, c.dilation, geo.pad_begin, c.groups, c.channels_last, threads)
    return _ConvPlan(native, geo.out_shape, dtype, geo.batched)


def _plan_subpixel_conv2d(
    arrays: Sequence[Optional[np.ndarray]],
    upscale_factor: Any,
    stride: Any,
    padding: Any,
    dilation: Any,
    groups: Any,
    layout: Any,
    mode: Any,
    num_threads: Any,
) -> _ConvPlan:
    c, geo, threads, dtype = _conv_setup(
        "subpixel", arrays, num_threads, stride=stride, padding=padding, groups=groups, dilation=dilation,
        layout=layout, upscale_factor=upscale_factor, mode=mode,
    )
    native = _core.ConvCall(
        "subpixel_conv2d", c.stride, c.dilation, geo.pad_begin, c.groups, c.channels_last, threads,
        factor=c.factor, dcr=c.dcr,
    )
    return _ConvPlan(native, geo.out_shape, dtype, geo.batched)


@np.errstate(invalid="ignore", over="ignore")  # Inf*0 and Inf-Inf are the point here
def _add_nonfinite_terms(
    x4: np.ndarray,
    w: np.ndarray,
    y4: np.ndarray,
    rerun: Callable[[np.ndarray], bool],
    stride: Tuple[int, ...],
    dilation: Tuple[int, ...],
    crop: Tuple[int, ...],
    groups: int,
    nhwc: bool,
) -> None:
    """Complete a transposed convolution whose non-finite weights the native kernels zeroed.

    The definition multiplies a weight only by real input pixels, never by the padding or the
    inserted zeros the kernels see, so NaN/Inf must land only where they reach. With
    X = Xf + Xn and W = Wf + Wn (finite parts and non-finite entries), the native call gives
    Xf*Wf exactly; Xn*W and Xf*Wn are added here as sparse scatters (IEEE sums of infinities
    do not depend on the order)."""
    xs = x4.transpose(0, 3, 1, 2) if nhwc else x4  # (N, C_in, H, W) views
    ys = y4.transpose(0, 3, 1, 2) if nhwc else y4
    cg_in, cg_out = xs.shape[1] // groups, w.shape[1]
    x_bad = ~np.isfinite(xs)
    if x_bad.any():
        # The first native call multiplied Xn by the zeroed weights (NaN): redo it on Xf.
        x_finite = np.where(~np.isfinite(x4), 0, x4)
        rerun(x_finite)
        xs = x_finite.transpose(0, 3, 1, 2) if nhwc else x_finite
        n, ci, i, j = np.nonzero(x_bad)
        values = x4.transpose(0, 3, 1, 2)[n, ci, i, j] if nhwc else x4[n, ci, i, j]
        first_out = (ci // cg_in) * cg_out
        for kh in range(w.shape[2]):
            for kw in range(w.shape[3]):
                oh = i * stride[0] + kh * dilation[0] - crop[0]
                ow = j * stride[1] + kw * dilation[1] - crop[1]
                keep = (oh >= 0) & (oh < ys.shape[2]) & (ow >= 0) & (ow < ys.shape[3])
                channels = first_out[keep, None] + np.arange(cg_out)
                np.add.at(
                    ys,
                    (n[keep, None], channels, oh[keep, None], ow[keep, None]),
                    values[keep, None] * w[ci[keep], :, kh, kw],
                )
    for ci, co, kh, kw in zip(*np.nonzero(~np.isfinite(w))):
        window = []
        for axis, k in ((0, int(kh)), (1, int(kw))):
            s, off = stride[axis], k * dilation[axis] - crop[axis]
            lo = max(0, -(off // s))  # first input index i with i*s + off >= 0
            hi = min(xs.shape[2 + axis], (ys.shape[2 + axis] - 1 - off) // s + 1)  # i*s + off < out
            window.append((lo, hi, lo * s + off, s))
        (i0, i1, o0, sh), (j0, j1, p0, sw) = window
        if i0 >= i1 or j0 >= j1:
            continue
        terms = xs[:, ci, i0:i1, j0:j1] * w[ci, co, kh, kw]
        terms[x_bad[:, ci, i0:i1, j0:j1]] = 0  # those pixels' products were added above
        channel_out = (ci // cg_in) * cg_out + co
        ys[:, channel_out, o0 : o0 + (i1 - i0 - 1) * sh + 1 : sh, p0 : p0 + (j1 - j0 - 1) * sw + 1 : sw] += terms


def conv2d(
    x: Any,
    weight: Any,
    bias: Any = None,
    stride: Any = 1,
    padding: Any = 0,
    dilation: Any = 1,
    groups: int = 1,
    *,
    layout: str = "NCHW",
    out: Optional[np.ndarray] = None,
    num_threads: Optional[int] = None,
) -> np.ndarray:
    """2-D correlation with the semantics of ``torch.nn.functional.conv2d``.

    ``weight`` is ``(C_out, C_in/groups, kH, kW)``; ``padding`` takes the same forms as in
    :func:`conv_transpose2d`, where ``"same"`` is TensorFlow's (``H_out = ceil(H/stride)``, the
    odd extra row at the bottom/right), valid with any stride.

    Examples
    --------
    >>> import numpy as np, subpixel_ext as spx
    >>> spx.conv2d(np.ones((1, 1, 5, 5)), np.ones((2, 1, 3, 3)), padding="same", stride=2).shape
    (1, 2, 3, 3)
    """
    params = (stride, padding, dilation, groups, layout, num_threads)
    return _planned_call("conv2d", (x, weight, bias), params, _plan_conv2d, out)


def subpixel_conv2d(
    x: Any,
    weight: Any,
    upscale_factor: Any,
    bias: Any = None,
    stride: Any = 1,
    padding: Any = 0,
    dilation: Any = 1,
    groups: int = 1,
    *,
    layout: str = "NCHW",
    mode: str = "CRD",
    out: Optional[np.ndarray] = None,
    num_threads: Optional[int] = None,
) -> np.ndarray:
    """The sub-pixel convolution layer: ``pixel_shuffle(conv2d(x, weight, bias, ...), r)``.

    Computed in one pass: each convolution output channel is written straight to its place in
    the shuffled result, the ``C*r*r`` tensor is never materialized. ``weight`` is
    ``(C*rh*rw, C_in/groups, kH, kW)``, ``bias`` ``(C*rh*rw,)`` (the convolution's).

    Examples
    --------
    >>> import numpy as np, subpixel_ext as spx
    >>> spx.subpixel_conv2d(np.ones((1, 2, 4, 4)), np.ones((12, 2, 3, 3)), 2, padding=1).shape
    (1, 3, 8, 8)
    """
    params = (upscale_factor, stride, padding, dilation, groups, layout, mode, num_threads)
    return _planned_call("subpixel_conv2d", (x, weight, bias), params, _plan_subpixel_conv2d, out)


def _shuffle(
    x: Any,
    factor: Any,
    layout: str,
    mode: str,
    out: Optional[np.ndarray],
    num_threads: Optional[int],
    inverse: bool,
) -> np.ndarray:
    name = "downscale_factor" if inverse else "upscale_factor"
    threads = _p.num_threads(num_threads)
    xa = _p.as_array(x, "x")
    r = _p.per_axis(factor, name, 2, minimum=1)  # the native shuffle is 2-D only
    spec = _p.shuffle_spec(xa.shape, r, layout, mode, inverse, name)
    dtype = _p.result_dtype(xa)
    _p.checked_elements(spec.out_shape, dtype.itemsize, "the result")
    y = _p.check_out(out, spec.out_shape, dtype, [xa])
    if y.size:
        # The native side is described from the high-resolution tensor's point of view.
        _core.pixel_shuffle(
            _p.as_compute(xa, dtype), y, spec.batch, spec.channels_hi, spec.spatial_lo[0], spec.spatial_lo[1],
            spec.factor, spec.dcr, spec.channels_last, inverse, threads,
        )
    return y


def pixel_shuffle(
    x: Any,
    upscale_factor: Any,
    *,
    layout: str = "NCHW",
    mode: str = "CRD",
    out: Optional[np.ndarray] = None,
    num_threads: Optional[int] = None,
) -> np.ndarray:
    """Rearrange ``(..., C*rh*rw, H, W)`` into ``(..., C, H*rh, W*rw)`` (channels last with NHWC).

    ``mode="CRD"`` is PyTorch's order (ONNX DepthToSpace CRD):
    ``out[c, h*rh+i, w*rw+j] = in[c*rh*rw + i*rw + j, h, w]``; ``mode="DCR"`` is TensorFlow's
    ``depth_to_space`` (ONNX default): ``out[c, h*rh+i, w*rw+j] = in[(i*rw+j)*C + c, h, w]``.

    Examples
    --------
    >>> import numpy as np, subpixel_ext as spx
    >>> spx.pixel_shuffle(np.arange(4.0).reshape(4, 1, 1), 2)[0]
    array([[0., 1.],
           [2., 3.]])
    """
    return _shuffle(x, upscale_factor, layout, mode, out, num_threads, inverse=False)


def pixel_unshuffle(
    x: Any,
    downscale_factor: Any,
    *,
    layout: str = "NCHW",
    mode: str = "CRD",
    out: Optional[np.ndarray] = None,
    num_threads: Optional[int] = None,
) -> np.ndarray:
    """The inverse of :func:`pixel_shuffle` (same ``layout`` and ``mode`` conventions).

    Examples
    --------
    >>> import numpy as np, subpixel_ext as spx
    >>> spx.pixel_unshuffle(np.arange(4.0).reshape(1, 2, 2), 2)[:, 0, 0]
    array([0., 1., 2., 3.])
    """
    return _shuffle(x, downscale_factor, layout, mode, out, num_threads, inverse=True)


def zero_insert(
    x: Any, stride: Any, *, out: Optional[np.ndarray] = None, num_threads: Optional[int] = None
) -> np.ndarray:
    """Spread the last two axes apart: ``(..., H, W) -> (..., H*sh, W*sw)``, zeros in between.

    ``x[..., i, j]`` lands at ``[..., i*sh, j*sw]``: the input of the direct method.

    Examples
    --------
    >>> import numpy as np, subpixel_ext as spx
    >>> spx.zero_insert(np.array([[1.0, 2.0]]), 2)
    array([[1., 0., 2., 0.],
           [0., 0., 0., 0.]])
    """
    threads = _p.num_threads(num_threads)
    xa = _p.as_array(x, "x")
    s = _p.per_axis(stride, "stride", 2, minimum=1)  # the native zero_insert is 2-D only
    if xa.ndim < 2:
        raise ValueError(f"x must have at least 2 dimensions, got shape {xa.shape}")
    h, w = xa.shape[-2:]
    dtype = _p.result_dtype(xa)
    shape = xa.shape[:-2] + (h * s[0], w * s[1])
    _p.checked_elements(shape, dtype.itemsize, "the result")
    y = _p.check_out(out, shape, dtype, [xa])
    if y.size:
        _core.zero_insert(
            _p.as_compute(xa, dtype).reshape(-1, h, w), y.reshape(-1, h * s[0], w * s[1]), s, threads
        )
    return y


def split_kernel(kernel: Any, stride: Any) -> np.ndarray:
    """The stride**2 sub-kernels of a kernel: ``(..., kH, kW) -> (sh*sw, ..., ceil(kH/sh), ceil(kW/sw))``.

    Sub-kernel ``a*sw + b`` is ``kernel[..., a::sh, b::sw]`` of the kernel zero-padded at the end
    to a multiple of the stride.

    Examples
    --------
    >>> import numpy as np, subpixel_ext as spx
    >>> spx.split_kernel(np.arange(9.0).reshape(3, 3), 2)[0]
    array([[0., 2.],
           [6., 8.]])
    """
    ka = _p.as_array(kernel, "kernel")
    sh, sw = _p.per_axis(stride, "stride", 2, minimum=1)
    if ka.ndim < 2:
        raise ValueError(f"kernel must have at least 2 dimensions, got shape {ka.shape}")
    kh, kw = ka.shape[-2:]
    th, tw = -(-kh // sh), -(-kw // sw)
    lead = ka.shape[:-2]
    padded = np.zeros(lead + (th * sh, tw * sw), dtype=_p.result_dtype(ka))
    padded[..., :kh, :kw] = ka
    # (..., th, sh, tw, sw) -> (sh, sw, ..., th, tw)
    blocks = padded.reshape(lead + (th, sh, tw, sw))
    n = len(lead)
    order = (n + 1, n + 3) + tuple(range(n)) + (n, n + 2)
    return np.ascontiguousarray(blocks.transpose(order).reshape((sh * sw,) + lead + (th, tw)))

