"""The functional API: validate and convert in Python, compute in the native `_core`.

Every convolution runs the layers' native operators (see `_layers`); a call builds a
transient one. The per-rank functions are thin wrappers over one rank-generic path.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Dict, Hashable, Optional, Protocol, Tuple, TypeVar

import numpy as np

from . import _core
from . import _params as _p
from ._layers import operator_factory, run_native
from ._typing import ArrayLike, IntOrTuple, OutputSize, Padding


@dataclass(frozen=True)
class _ConvPlan:
    """Everything a convolution call derives from shapes, dtypes and parameters."""

    params: _p.ConvParams
    geometry: _p.ConvGeometry
    dtype: np.dtype
    threads: int
    make_operator: Callable[[np.ndarray, Optional[np.ndarray]], Any]
    # Runs x, weight, bias, out of exactly the planned shapes and dtype (else returns None);
    # None when the result is empty.
    call: Optional[Callable[..., Optional[np.ndarray]]]


# Validated plans by (operation, input shapes and dtypes, parameters): a repeated call skips
# argument parsing and geometry, which dominate small calls. Bounded; unhashable arguments
# (lists) simply bypass it.
_PLANS: Dict[Hashable, _ConvPlan] = {}
_MAX_PLANS = 256
# The plan each parameter set last ran with: a call repeating it skips even the shape lookup.
_RECENT: Dict[Hashable, _ConvPlan] = {}


def _arrays(x: Any, weight: Any, bias: Any) -> Tuple[np.ndarray, np.ndarray, Optional[np.ndarray]]:
    if x is None or weight is None:
        raise TypeError(f"x and weight must be arrays, got {type(x).__name__} and {type(weight).__name__}")
    if type(x) is np.ndarray and type(weight) is np.ndarray and (bias is None or type(bias) is np.ndarray):
        return x, weight, bias
    return _p.as_array(x, "x"), _p.as_array(weight, "weight"), None if bias is None else _p.as_array(bias, "bias")


def _build_plan(
    kind: str, rank: int, arrays: Tuple[np.ndarray, np.ndarray, Optional[np.ndarray]], settings: Dict[str, Any],
    options: Tuple[Any, ...],
) -> _ConvPlan:
    method, activation, negative_slope, output_size, num_threads = options
    x, weight, bias = (None if a is None else _p.as_array(a, n) for a, n in zip(arrays, ("x", "weight", "bias")))
    assert x is not None and weight is not None
    meth = _p.choice(method, "method", _p.METHODS)
    act, slope = _p.activation_spec(activation, negative_slope)
    threads = _p.num_threads(num_threads)
    params = _p.conv_params(kind, weight, bias, rank=rank, **settings)
    geometry = _p.conv_geometry(params, x.shape, output_size)
    dtype = _p.result_dtype(x, weight, bias)
    _p.checked_elements(geometry.out_shape, dtype.itemsize, "the result")
    make = operator_factory(params, meth, act, slope)
    call = None
    if np.prod(geometry.out_shape, dtype=object):
        operator = make(_p.as_compute(weight, dtype), None if bias is None else _p.as_compute(bias, dtype))
        call = operator.functional(list(x.shape), list(geometry.out_shape), list(geometry.pad_begin))
    return _ConvPlan(params, geometry, dtype, threads, make, call)


# The parameters each kind's wrapper passes to _conv, in order, before the options (method,
# activation, negative_slope, output_size, num_threads).
_SETTINGS = {
    "conv_transpose": ("stride", "padding", "output_padding", "groups", "dilation", "layout"),
    "conv": ("stride", "padding", "dilation", "groups", "layout"),
    "subpixel": ("upscale_factor", "stride", "padding", "dilation", "groups", "layout", "mode"),
}


def _conv(
    kind: str, rank: int, x: Any, weight: Any, bias: Any, values: Tuple[Any, ...], out: Optional[np.ndarray],
) -> np.ndarray:
    """Run one convolution call with a cached or freshly built (validated) plan. `values` are
    the _SETTINGS of `kind` and then the options, as one tuple (no dict per call)."""
    key = _p.cache_key(kind, rank, values)
    if key is not None:
        recent = _RECENT.get(key)
        if recent is not None and recent.call is not None:
            # The plan these parameters last ran with; its native call declines (None) unless
            # the arrays have exactly the shapes and dtype it was built for.
            y = recent.call(x, weight, bias, out, recent.threads)
            if y is not None:
                return y
    arrays = _arrays(x, weight, bias)
    xa, wa, ba = arrays
    full_key = None if key is None else key + (xa.shape, xa.dtype, wa.shape, wa.dtype, None if ba is None else (ba.shape, ba.dtype))
    plan = None if full_key is None else _PLANS.get(full_key)
    if plan is None:
        names = _SETTINGS[kind]
        plan = _build_plan(kind, rank, arrays, dict(zip(names, values)), values[len(names):])
        if full_key is not None:
            if len(_PLANS) >= _MAX_PLANS:
                _PLANS.clear()
                _RECENT.clear()
            _PLANS[full_key] = plan
    if key is not None:
        _RECENT[key] = plan
    if plan.call is not None:
        y = plan.call(xa, wa, ba, out, plan.threads)
        if y is not None:
            return y
    dtype = plan.dtype
    xc, wc = _p.as_compute(xa, dtype), _p.as_compute(wa, dtype)
    bc = None if ba is None else _p.as_compute(ba, dtype)
    native = plan.make_operator(wc, bc)
    converted = tuple(a for a, c in ((xa, xc), (wa, wc), (ba, bc)) if a is not None and a is not c)
    return run_native(native, plan.geometry, xc, dtype, out, plan.threads, converted)


_TRANSPOSED_DOC = """Transposed {rank}-D convolution with the semantics of ``torch.nn.functional.conv_transpose{rank}d``.

    Parameters
    ----------
    x : array_like
        ``(N, C_in, {spatial})`` or unbatched ``(C_in, {spatial})``; channels last with
        ``layout="{last}"`` (or ``"channels_last"``). The result has the same layout and batchedness.
    weight : array_like
        ``(C_in, C_out/groups, {kernel})`` in every layout.
    bias : array_like, optional
        ``(C_out,)``.
    stride, dilation, output_padding : int or tuple of {rank} ints
    padding : int, tuple of {rank} ints, tuple of {rank} (begin, end) pairs, "same" or "valid"
        Crop of the full output. ``"same"`` is TensorFlow / ONNX ``SAME_UPPER``
        (``out = in*stride``, the odd extra at the end); ``"valid"`` crops nothing.
    output_size : sequence of ints, optional
        Chooses ``output_padding`` as ``torch.nn.ConvTranspose{rank}d.forward`` does; a longer
        sequence (``skip.shape``) is read from its end.
    method : {{"auto", "direct", "polyphase"}}
        ``"direct"`` zero-inserts the input and runs a dense correlation; ``"polyphase"`` runs one
        sub-kernel per output phase on the low-resolution input (``prod(stride)`` fewer
        multiply-adds). ``"auto"`` picks polyphase, which never does more work.
    activation : {{None, "relu", "relu6", "leaky_relu", "tanh", "sigmoid"}}
        Applied after the bias, in the microkernels' store (``negative_slope`` for leaky_relu).
    out : numpy.ndarray, optional
        C-contiguous array of the result's shape and dtype to write into.
    num_threads : int, optional
        Threads for this call; None uses the default (see ``set_num_threads``).

    Returns
    -------
    numpy.ndarray
        float16 if every input is float16, bfloat16 if every input is bfloat16 (both accumulated
        in float32, rounded once per output), float64 if any input is float64, an integer or a
        bool, else float32.
"""

_SPATIAL = {1: ("L", "NLC", "k"), 2: ("H, W", "NHWC", "kH, kW"), 3: ("D, H, W", "NDHWC", "kD, kH, kW")}


_Fn = TypeVar("_Fn", bound=Callable[..., Any])


def _public(fn: _Fn, name: str, doc: str) -> _Fn:
    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = doc
    return fn


def _transposed_doc(rank: int, examples: str) -> str:
    spatial, last, kernel = _SPATIAL[rank]
    return _TRANSPOSED_DOC.format(rank=rank, spatial=spatial, last=last, kernel=kernel) + examples


def _conv_transpose(rank: int) -> Callable[..., np.ndarray]:
    def conv_transpose(
        x: ArrayLike,
        weight: ArrayLike,
        bias: Optional[ArrayLike] = None,
        stride: IntOrTuple = 1,
        padding: Padding = 0,
        output_padding: IntOrTuple = 0,
        groups: int = 1,
        dilation: IntOrTuple = 1,
        *,
        output_size: Optional[OutputSize] = None,
        layout: str = _p.LAYOUTS[rank][0],
        method: str = "auto",
        activation: Optional[str] = None,
        negative_slope: float = 0.01,
        out: Optional[np.ndarray] = None,
        num_threads: Optional[int] = None,
    ) -> np.ndarray:
        values = (stride, padding, output_padding, groups, dilation, layout,
                  method, activation, negative_slope, output_size, num_threads)
        return _conv("conv_transpose", rank, x, weight, bias, values, out)

    return conv_transpose


def _conv_nd(rank: int) -> Callable[..., np.ndarray]:
    def conv(
        x: ArrayLike,
        weight: ArrayLike,
        bias: Optional[ArrayLike] = None,
        stride: IntOrTuple = 1,
        padding: Padding = 0,
        dilation: IntOrTuple = 1,
        groups: int = 1,
        *,
        layout: str = _p.LAYOUTS[rank][0],
        activation: Optional[str] = None,
        negative_slope: float = 0.01,
        out: Optional[np.ndarray] = None,
        num_threads: Optional[int] = None,
    ) -> np.ndarray:
        values = (stride, padding, dilation, groups, layout, "auto", activation, negative_slope, None, num_threads)
        return _conv("conv", rank, x, weight, bias, values, out)

    return conv


def _subpixel_conv(rank: int) -> Callable[..., np.ndarray]:
    def subpixel_conv(
        x: ArrayLike,
        weight: ArrayLike,
        upscale_factor: IntOrTuple,
        bias: Optional[ArrayLike] = None,
        stride: IntOrTuple = 1,
        padding: Padding = 0,
        dilation: IntOrTuple = 1,
        groups: int = 1,
        *,
        layout: str = _p.LAYOUTS[rank][0],
        mode: str = "CRD",
        activation: Optional[str] = None,
        negative_slope: float = 0.01,
        out: Optional[np.ndarray] = None,
        num_threads: Optional[int] = None,
    ) -> np.ndarray:
        values = (upscale_factor, stride, padding, dilation, groups, layout, mode,
                  "auto", activation, negative_slope, None, num_threads)
        return _conv("subpixel", rank, x, weight, bias, values, out)

    return subpixel_conv


class ConvTransposeFunction(Protocol):
    def __call__(
        self, x: ArrayLike, weight: ArrayLike, bias: Optional[ArrayLike] = None, stride: IntOrTuple = 1,
        padding: Padding = 0, output_padding: IntOrTuple = 0, groups: int = 1, dilation: IntOrTuple = 1, *,
        output_size: Optional[OutputSize] = None, layout: str = ..., method: str = "auto",
        activation: Optional[str] = None, negative_slope: float = 0.01, out: Optional[np.ndarray] = None,
        num_threads: Optional[int] = None,
    ) -> np.ndarray: ...


class ConvFunction(Protocol):
    def __call__(
        self, x: ArrayLike, weight: ArrayLike, bias: Optional[ArrayLike] = None, stride: IntOrTuple = 1,
        padding: Padding = 0, dilation: IntOrTuple = 1, groups: int = 1, *, layout: str = ...,
        activation: Optional[str] = None, negative_slope: float = 0.01, out: Optional[np.ndarray] = None,
        num_threads: Optional[int] = None,
    ) -> np.ndarray: ...


class SubpixelConvFunction(Protocol):
    def __call__(
        self, x: ArrayLike, weight: ArrayLike, upscale_factor: IntOrTuple, bias: Optional[ArrayLike] = None,
        stride: IntOrTuple = 1, padding: Padding = 0, dilation: IntOrTuple = 1, groups: int = 1, *,
        layout: str = ..., mode: str = "CRD", activation: Optional[str] = None, negative_slope: float = 0.01,
        out: Optional[np.ndarray] = None, num_threads: Optional[int] = None,
    ) -> np.ndarray: ...


conv_transpose1d: ConvTransposeFunction = _public(_conv_transpose(1), "conv_transpose1d", _transposed_doc(1, """
    Examples
    --------
    >>> import numpy as np, subpixel_ext as spx
    >>> spx.conv_transpose1d(np.ones((1, 4, 10)), np.ones((4, 2, 16)), stride=8, padding=4).shape
    (1, 2, 80)
"""))
conv_transpose2d: ConvTransposeFunction = _public(_conv_transpose(2), "conv_transpose2d", _transposed_doc(2, """
    Examples
    --------
    >>> import numpy as np, subpixel_ext as spx
    >>> x = np.ones((1, 1, 2, 2), np.float32); w = np.ones((1, 1, 2, 2), np.float32)
    >>> spx.conv_transpose2d(x, w, stride=2).shape
    (1, 1, 4, 4)
"""))
conv_transpose3d: ConvTransposeFunction = _public(_conv_transpose(3), "conv_transpose3d", _transposed_doc(3, """
    Examples
    --------
    >>> import numpy as np, subpixel_ext as spx
    >>> spx.conv_transpose3d(np.ones((1, 4, 3, 3, 3)), np.ones((4, 2, 2, 2, 2)), stride=2).shape
    (1, 2, 6, 6, 6)
"""))

_CONV_DOC = """{rank}-D correlation with the semantics of ``torch.nn.functional.conv{rank}d``.

    ``weight`` is ``(C_out, C_in/groups, {kernel})``; ``x`` and ``layout`` as in
    :func:`conv_transpose{rank}d`. ``padding`` is an int, a tuple of {rank} ints, a tuple of {rank}
    (begin, end) pairs, ``"valid"`` or ``"same"`` (TensorFlow's: ``out = ceil(in/stride)``, the odd
    extra at the end, valid with any stride). ``activation`` as in :func:`conv_transpose{rank}d`.
"""


def _conv_doc(rank: int, examples: str) -> str:
    return _CONV_DOC.format(rank=rank, kernel=_SPATIAL[rank][2]) + examples


conv1d: ConvFunction = _public(_conv_nd(1), "conv1d", _conv_doc(1, """
    Examples
    --------
    >>> import numpy as np, subpixel_ext as spx
    >>> spx.conv1d(np.ones((1, 2, 9)), np.ones((3, 2, 3)), stride=2).shape
    (1, 3, 4)
"""))
conv2d: ConvFunction = _public(_conv_nd(2), "conv2d", _conv_doc(2, """
    Examples
    --------
    >>> import numpy as np, subpixel_ext as spx
    >>> spx.conv2d(np.ones((1, 1, 5, 5)), np.ones((2, 1, 3, 3)), padding="same", stride=2).shape
    (1, 2, 3, 3)
"""))
conv3d: ConvFunction = _public(_conv_nd(3), "conv3d", _conv_doc(3, """
    Examples
    --------
    >>> import numpy as np, subpixel_ext as spx
    >>> spx.conv3d(np.ones((2, 4, 4, 4)), np.ones((3, 2, 3, 3, 3)), padding=1).shape
    (3, 4, 4, 4)
"""))

_SUBPIXEL_DOC = """The sub-pixel convolution layer: ``pixel_shuffle(conv{rank}d(x, weight, bias, ...), r)``.

    Computed in one pass: each convolution output channel is written straight to its place in
    the shuffled result, the ``C*prod(r)`` tensor is never materialized. ``weight`` is
    ``(C*prod(r), C_in/groups, {kernel})``, ``bias`` ``(C*prod(r),)`` (the convolution's);
    ``upscale_factor`` an int or a tuple of {rank} ints; ``mode`` "CRD" (PyTorch) or "DCR".
"""


def _subpixel_doc(rank: int, examples: str) -> str:
    return _SUBPIXEL_DOC.format(rank=rank, kernel=_SPATIAL[rank][2]) + examples


subpixel_conv1d: SubpixelConvFunction = _public(_subpixel_conv(1), "subpixel_conv1d", _subpixel_doc(1, """
    Examples
    --------
    >>> import numpy as np, subpixel_ext as spx
    >>> spx.subpixel_conv1d(np.ones((1, 2, 8)), np.ones((12, 2, 3)), 4, padding=1).shape
    (1, 3, 32)
"""))
subpixel_conv2d: SubpixelConvFunction = _public(_subpixel_conv(2), "subpixel_conv2d", _subpixel_doc(2, """
    Examples
    --------
    >>> import numpy as np, subpixel_ext as spx
    >>> spx.subpixel_conv2d(np.ones((1, 2, 4, 4)), np.ones((12, 2, 3, 3)), 2, padding=1).shape
    (1, 3, 8, 8)
"""))
subpixel_conv3d: SubpixelConvFunction = _public(_subpixel_conv(3), "subpixel_conv3d", _subpixel_doc(3, """
    Examples
    --------
    >>> import numpy as np, subpixel_ext as spx
    >>> spx.subpixel_conv3d(np.ones((1, 2, 3, 3, 3)), np.ones((16, 2, 3, 3, 3)), 2, padding=1).shape
    (1, 2, 6, 6, 6)
"""))


def _shuffle(
    x: ArrayLike, factor: Any, layout: Optional[str], mode: str, out: Optional[np.ndarray],
    num_threads: Optional[int], inverse: bool,
) -> np.ndarray:
    name = "downscale_factor" if inverse else "upscale_factor"
    threads = _p.num_threads(num_threads)
    xa = _p.as_array(x, "x", kinds="biufc")
    spec = _p.shuffle_spec(xa.shape, factor, layout, mode, inverse, name)
    dtype = _p.data_dtype(xa)
    _p.checked_elements(spec.out_shape, dtype.itemsize, "the result")
    y = _p.check_out(out, spec.out_shape, dtype, [xa])
    if y.size:
        _core.pixel_shuffle(
            _p.as_compute(xa, dtype), y, spec.batch, spec.channels_hi, list(spec.spatial_lo), list(spec.factor),
            spec.dcr, spec.channels_last, inverse, threads,
        )
    return y


def pixel_shuffle(
    x: ArrayLike,
    upscale_factor: IntOrTuple,
    *,
    layout: Optional[str] = None,
    mode: str = "CRD",
    out: Optional[np.ndarray] = None,
    num_threads: Optional[int] = None,
) -> np.ndarray:
    """Rearrange ``(..., C*prod(r), *spatial)`` into ``(..., C, *(spatial*r))``.

    An int ``upscale_factor`` is a 2-D shuffle; a tuple of 1, 2 or 3 ints shuffles that many
    trailing spatial axes. ``layout`` is channels first by default (``"NCHW"``, ``"NCL"``,
    ``"NCDHW"`` or ``"channels_first"``), channels last with ``"NHWC"`` / ``"NLC"`` /
    ``"NDHWC"`` / ``"channels_last"``. ``mode="CRD"`` is PyTorch's order (ONNX DepthToSpace
    CRD): the channel axis holds ``(c, *r)``, ``out[c, h*rh+i, w*rw+j] = in[c*rh*rw + i*rw + j, h, w]``;
    ``mode="DCR"`` is TensorFlow's ``depth_to_space`` (ONNX default), ``(*r, c)``:
    ``out[c, h*rh+i, w*rw+j] = in[(i*rw+j)*C + c, h, w]``.

    Examples
    --------
    >>> import numpy as np, subpixel_ext as spx
    >>> spx.pixel_shuffle(np.arange(4.0).reshape(4, 1, 1), 2)[0]
    array([[0., 1.],
           [2., 3.]])
    >>> spx.pixel_shuffle(np.arange(6.0).reshape(1, 3, 2), (3,))
    array([[[0., 2., 4., 1., 3., 5.]]])
    """
    return _shuffle(x, upscale_factor, layout, mode, out, num_threads, inverse=False)


def pixel_unshuffle(
    x: ArrayLike,
    downscale_factor: IntOrTuple,
    *,
    layout: Optional[str] = None,
    mode: str = "CRD",
    out: Optional[np.ndarray] = None,
    num_threads: Optional[int] = None,
) -> np.ndarray:
    """The inverse of :func:`pixel_shuffle` (same factor, ``layout`` and ``mode`` conventions).

    Examples
    --------
    >>> import numpy as np, subpixel_ext as spx
    >>> spx.pixel_unshuffle(np.arange(4.0).reshape(1, 2, 2), 2)[:, 0, 0]
    array([0., 1., 2., 3.])
    """
    return _shuffle(x, downscale_factor, layout, mode, out, num_threads, inverse=True)


def zero_insert(
    x: ArrayLike, stride: IntOrTuple, *, out: Optional[np.ndarray] = None, num_threads: Optional[int] = None
) -> np.ndarray:
    """Spread the trailing axes apart: ``(..., H, W) -> (..., H*sh, W*sw)``, zeros in between.

    ``x[..., i, j]`` lands at ``[..., i*sh, j*sw]``: the input of the direct method. An int
    stride spreads the last two axes, a tuple of 1, 2 or 3 ints that many trailing axes.

    Examples
    --------
    >>> import numpy as np, subpixel_ext as spx
    >>> spx.zero_insert(np.array([[1.0, 2.0]]), 2)
    array([[1., 0., 2., 0.],
           [0., 0., 0., 0.]])
    >>> spx.zero_insert(np.array([1.0, 2.0]), (3,))
    array([1., 0., 0., 2., 0., 0.])
    """
    threads = _p.num_threads(num_threads)
    xa = _p.as_array(x, "x", kinds="biufc")
    s, shape = _p.zero_insert_spec(xa.shape, stride)
    rank = len(s)
    spatial = xa.shape[xa.ndim - rank:]
    dtype = _p.data_dtype(xa)
    _p.checked_elements(shape, dtype.itemsize, "the result")
    y = _p.check_out(out, shape, dtype, [xa])
    if y.size:
        src = _p.as_compute(xa, dtype).reshape((-1,) + spatial)
        _core.zero_insert(src, y.reshape((-1,) + shape[xa.ndim - rank:]), list(s), threads)
    return y


def split_kernel(kernel: ArrayLike, stride: IntOrTuple) -> np.ndarray:
    """The ``prod(stride)`` sub-kernels of a kernel: ``(..., kH, kW) -> (sh*sw, ..., ceil(kH/sh), ceil(kW/sw))``.

    Sub-kernel ``a*sw + b`` is ``kernel[..., a::sh, b::sw]`` of the kernel zero-padded at the end
    to a multiple of the stride. An int stride splits the last two axes, a tuple of k ints the
    last k (sub-kernels in row-major phase order).

    Examples
    --------
    >>> import numpy as np, subpixel_ext as spx
    >>> spx.split_kernel(np.arange(9.0).reshape(3, 3), 2)[0]
    array([[0., 2.],
           [6., 8.]])
    """
    ka = _p.as_array(kernel, "kernel")
    s, taps = _p.split_kernel_spec(ka.shape, stride)
    rank = len(s)
    lead, k = ka.shape[: ka.ndim - rank], ka.shape[ka.ndim - rank:]
    padded = np.zeros(lead + tuple(t * r for t, r in zip(taps, s)), dtype=_p.result_dtype(ka))
    padded[(Ellipsis,) + tuple(slice(0, n) for n in k)] = ka
    # (..., t0, s0, t1, s1, ...) -> (s0, s1, ..., lead..., t0, t1, ...)
    n = len(lead)
    blocks = padded.reshape(lead + tuple(v for pair in zip(taps, s) for v in pair))
    order = tuple(n + 2 * a + 1 for a in range(rank)) + tuple(range(n)) + tuple(n + 2 * a for a in range(rank))
    return np.ascontiguousarray(blocks.transpose(order).reshape((int(np.prod(s)),) + lead + taps))
