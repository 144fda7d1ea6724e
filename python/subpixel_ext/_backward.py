"""Backward passes: the gradients of the convolutions with respect to input, weight and bias.

The input gradient of a transposed convolution is a strided convolution of grad_output with
the same weight, and a convolution's is a transposed convolution: both run the forward
operators of `_layers`. The weight gradient is a correlation of x with grad_output reduced over
the batch and the pixels (``_core.conv_weight_grad``), the bias gradient a per-channel sum; both
are deterministic, bit-identical for any thread count.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Dict, Optional, Sequence, Tuple

import numpy as np

from . import _core
from . import _params as _p
from ._api import _public
from ._layers import operator_factory, run_native
from ._typing import ArrayLike, IntOrTuple, OutputSize, Padding

Gradients = Tuple[Optional[np.ndarray], Optional[np.ndarray], Optional[np.ndarray]]

# The operation whose forward operator computes each kind's input gradient.
_ADJOINT = {"conv_transpose": "conv", "conv": "conv_transpose"}


def _batched(a: np.ndarray, geometry: _p.ConvGeometry) -> np.ndarray:
    return a if geometry.batched else a[None]


@dataclasses.dataclass(frozen=True)
class _Setup:
    """What a backward call derives from its parameters, shapes and dtypes."""

    params: _p.ConvParams
    geometry: _p.ConvGeometry
    dtype: np.dtype  # of the gradients
    work: np.dtype  # computed in: half precision in float32, rounded once at the end
    # The input gradient: the adjoint operator's maker, the geometry of its result (x's shape)
    # and its call for these shapes (None when the gradient is empty or not wanted).
    make_adjoint: Callable[[np.ndarray, Optional[np.ndarray]], Any]
    of_x: _p.ConvGeometry
    input_grad_call: Optional[Any]


# Validated setups by (parameters, mask, method, shapes, dtypes): a repeated call, as in a
# training loop, skips argument parsing and geometry, which dominate small calls.
_SETUPS: _p.SetupCache[_Setup] = _p.SetupCache()


def _setup(
    kind: str, rank: int, arrays: Tuple[np.ndarray, np.ndarray, np.ndarray], settings: Dict[str, Any],
    output_size: Any, want: Tuple[bool, bool, bool], method: str,
) -> _Setup:
    ga, xa, wa = arrays
    meth = _p.choice(method, "method", _p.METHODS)
    params = _p.conv_params(kind, wa, None, rank=rank, **settings)
    geometry = _p.conv_geometry(params, xa.shape, output_size)
    _p.check_grad_output(geometry, ga.shape)
    dtype = _p.result_dtype(ga, xa, wa)
    work = _p.compute_dtype(dtype)
    # The input gradient is the adjoint operator run on grad_output: same weight, stride,
    # dilation and groups; the forward's padding (or crop) at the start, x's size as the result's.
    make = operator_factory(dataclasses.replace(params, kind=_ADJOINT[params.kind]), meth, None, 0.0)
    shape = (geometry.n,) + (geometry.in_spatial + (params.in_channels,) if params.channels_last
                             else (params.in_channels,) + geometry.in_spatial)
    of_x = dataclasses.replace(geometry, out_shape=shape if geometry.batched else shape[1:])
    call = None
    if want[0] and ga.size and xa.size:
        call = make(_p.as_compute(wa, work), None).functional(list(ga.shape), list(of_x.out_shape),
                                                             list(geometry.pad_begin))
    return _Setup(params, geometry, dtype, work, make, of_x, call)


def _backward(
    kind: str, rank: int, grad_output: Any, x: Any, weight: Any, settings: Dict[str, Any],
    output_size: Any, mask: Any, method: str, num_threads: Any,
) -> Gradients:
    arrays = ga, xa, wa = _p.as_array(grad_output, "grad_output"), _p.as_array(x, "x"), _p.as_array(weight, "weight")
    want = _p.output_mask(mask)
    threads = _p.num_threads(num_threads)
    key = _p.cache_key(kind, rank, tuple(settings.values()) + (output_size, method, ga.shape, xa.shape, wa.shape))
    full_key = None if key is None else (key, want, ga.dtype, xa.dtype, wa.dtype)
    setup = _SETUPS.get(full_key) or _SETUPS.put(full_key, _setup(kind, rank, arrays, settings, output_size, want, method))
    gy, xc, wc = (_p.as_compute(a, setup.work) for a in arrays)
    grad_input = _input_grad(setup, gy, wc, threads) if want[0] else None
    grad_weight = _weight_grad(setup.params, setup.geometry, gy, xc, wc.shape, threads) if want[1] else None
    grad_bias = None
    if want[2]:
        grad_bias = np.zeros(setup.params.out_channels, setup.work)
        if gy.size:
            _core.bias_grad(_batched(gy, setup.geometry), grad_bias, setup.params.channels_last, threads)
    return tuple(None if g is None else g.astype(setup.dtype, copy=False)  # type: ignore[return-value]
                 for g in (grad_input, grad_weight, grad_bias))


def _input_grad(setup: _Setup, gy: np.ndarray, weight: np.ndarray, threads: int) -> np.ndarray:
    if setup.input_grad_call is not None:
        y = setup.input_grad_call(gy, weight, None, None, threads)
        if y is not None:
            return y  # type: ignore[no-any-return]
    return run_native(setup.make_adjoint(weight, None), setup.of_x, gy, gy.dtype, None, threads)


def _weight_grad(
    params: _p.ConvParams, geometry: _p.ConvGeometry, gy: np.ndarray, x: np.ndarray,
    weight_shape: Tuple[int, ...], threads: int,
) -> np.ndarray:
    grad_weight = np.zeros(weight_shape, gy.dtype)
    if grad_weight.size == 0 or geometry.n == 0:
        return grad_weight
    x_b, gy_b = _batched(x, geometry), _batched(gy, geometry)
    # A transposed convolution's weight gradient is the convolution's with x and grad_y swapped.
    first, second = (gy_b, x_b) if params.kind == "conv_transpose" else (x_b, gy_b)
    _core.conv_weight_grad(
        first, second, grad_weight, list(params.stride), list(params.dilation), list(geometry.pad_begin),
        params.groups, params.channels_last, threads,
    )
    return grad_weight


_DOC = """Gradients of :func:`{name}`: ``(grad_input, grad_weight, grad_bias)``.

    Parameters
    ----------
    grad_output : array_like
        The gradient of the forward result (its shape, layout and batchedness).
    x, weight, stride, padding, {rest}layout
        The forward call's arguments (the bias is not needed).
    output_mask : sequence of 3 bools
        Which of (grad_input, grad_weight, grad_bias) to compute; the others are None.
    method : {{"auto", "direct", "polyphase"}}
        How a transposed convolution is computed where the gradient needs one{method_where}.
    num_threads : int, optional
        Threads for this call. Every result is bit-identical for any thread count.

    Returns
    -------
    tuple
        grad_input shaped like x, grad_weight like weight, grad_bias ``(C_out,)``, in the dtype
        the forward op would return for these inputs: float16 (bfloat16) if all three are float16
        (bfloat16), computed in float32 and rounded once; float64 if any is float64, an integer or
        a bool; float32 otherwise.
"""

_Fn = Callable[..., Gradients]


def _conv_transpose_backward(rank: int) -> _Fn:
    def backward(
        grad_output: ArrayLike, x: ArrayLike, weight: ArrayLike, stride: IntOrTuple = 1, padding: Padding = 0,
        output_padding: IntOrTuple = 0, groups: int = 1, dilation: IntOrTuple = 1, *,
        output_size: Optional[OutputSize] = None, output_mask: Sequence[bool] = (True, True, True),
        layout: str = _p.LAYOUTS[rank][0], method: str = "auto", num_threads: Optional[int] = None,
    ) -> Gradients:
        settings = dict(stride=stride, padding=padding, output_padding=output_padding, groups=groups,
                        dilation=dilation, layout=layout)
        return _backward("conv_transpose", rank, grad_output, x, weight, settings, output_size, output_mask,
                         method, num_threads)

    name = f"conv_transpose{rank}d"
    doc = _DOC.format(name=name, rest="output_padding, groups, dilation, output_size, ", method_where=" (not here: its "
                      "input gradient is a convolution)")
    return _public(backward, f"{name}_backward", doc)


def _conv_backward(rank: int) -> _Fn:
    def backward(
        grad_output: ArrayLike, x: ArrayLike, weight: ArrayLike, stride: IntOrTuple = 1, padding: Padding = 0,
        dilation: IntOrTuple = 1, groups: int = 1, *, output_mask: Sequence[bool] = (True, True, True),
        layout: str = _p.LAYOUTS[rank][0], method: str = "auto", num_threads: Optional[int] = None,
    ) -> Gradients:
        settings = dict(stride=stride, padding=padding, dilation=dilation, groups=groups, layout=layout)
        return _backward("conv", rank, grad_output, x, weight, settings, None, output_mask, method, num_threads)

    name = f"conv{rank}d"
    doc = _DOC.format(name=name, rest="dilation, groups, ", method_where=": grad_input")
    return _public(backward, f"{name}_backward", doc)


conv_transpose1d_backward = _conv_transpose_backward(1)
conv_transpose2d_backward = _conv_transpose_backward(2)
conv_transpose3d_backward = _conv_transpose_backward(3)
conv1d_backward = _conv_backward(1)
conv2d_backward = _conv_backward(2)
conv3d_backward = _conv_backward(3)
