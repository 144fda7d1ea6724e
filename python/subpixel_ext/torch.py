"""PyTorch integration: custom ops with autograd, drop-in modules, ``torch.compile`` support.

Needs the ``[torch]`` extra. The operations are registered with ``torch.library.custom_op``
under the namespace ``subpixel_ext`` (``torch.ops.subpixel_ext.conv_transpose2d`` and so on),
each with a fake (shape, strides and dtype, so ``torch.compile`` traces through them) and an
autograd formula that calls the native backward ops, themselves registered ops with fakes.
Double backward (gradients of gradients) is not supported: it raises a RuntimeError that says so.

The functions below take and return tensors (Parameters that require grad included); the
modules subclass ``torch.nn.ConvTranspose{1,2,3}d`` and ``torch.nn.Conv{1,2,3}d`` with the same
constructor, parameters and ``state_dict``; :func:`convert` swaps them into a model. A tensor in
``torch.channels_last`` memory gives a channels-last result, as PyTorch's own ops do.

Examples
--------
>>> import torch, subpixel_ext.torch as spt
>>> up = spt.ConvTranspose2d(8, 4, 4, stride=2, padding=1)
>>> x = torch.randn(1, 8, 5, 5, requires_grad=True)
>>> y = up(x)
>>> y.sum().backward()
>>> tuple(y.shape), tuple(x.grad.shape), tuple(up.weight.grad.shape)
((1, 4, 10, 10), (1, 8, 5, 5), (8, 4, 4, 4))
"""

from __future__ import annotations

import copy
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Type

import numpy as np
import torch

from . import _api, _backward
from . import _params as _p
from ._typing import IntOrTuple, OutputSize, Padding

__all__ = [
    "Conv1d",
    "Conv2d",
    "Conv3d",
    "ConvTranspose1d",
    "ConvTranspose2d",
    "ConvTranspose3d",
    "conv1d",
    "conv2d",
    "conv3d",
    "conv_transpose1d",
    "conv_transpose2d",
    "conv_transpose3d",
    "convert",
    "pixel_shuffle",
    "pixel_unshuffle",
    "subpixel_conv1d",
    "subpixel_conv2d",
    "subpixel_conv3d",
]

_NAMESPACE = "subpixel_ext"
_DTYPES = (torch.float32, torch.float64)
_NAMES = {"conv_transpose": "conv_transpose", "conv": "conv"}
_GEOMETRY = ("int[] stride, SymInt[] pad_begin, SymInt[] pad_end, SymInt[] output_padding, int groups, int[] dilation, "
             "str method")

# ----------------------------------------------------------------------------- tensors <-> arrays


def _channels_last(t: torch.Tensor, channel_dim: int = 1) -> bool:
    """Whether `t` is laid out with its channels innermost (and not also plain contiguous)."""
    return not t.is_contiguous() and t.movedim(channel_dim, -1).is_contiguous()


def _array(t: torch.Tensor, channels_last: bool = False, channel_dim: int = 1) -> np.ndarray:
    """The tensor's values as a C-contiguous array, channels last if asked (a view when possible)."""
    t = t.detach()
    t = t.movedim(channel_dim, -1).contiguous() if channels_last else t.contiguous()
    return t.numpy()


def _tensor(a: np.ndarray, channels_last: bool = False, channel_dim: int = 1) -> torch.Tensor:
    t = torch.from_numpy(a)
    return t.movedim(-1, channel_dim) if channels_last else t


def _empty(like: torch.Tensor, shape: Sequence[Any], channels_last: bool, channel_dim: int = 1) -> torch.Tensor:
    """A fake's result: `shape` with the strides the real op's result has."""
    if not channels_last:
        return like.new_empty(tuple(shape))
    dims = list(shape)
    moved = dims[:channel_dim] + dims[channel_dim + 1:] + [dims[channel_dim]]
    return like.new_empty(tuple(moved)).movedim(-1, channel_dim)


def _check_tensors(**tensors: Optional[torch.Tensor]) -> None:
    dtype = None
    for name, t in tensors.items():
        if t is None:
            continue
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
        if t.device.type != "cpu":
            raise ValueError(f"{name} must be on the CPU, got device {t.device}")
        if t.dtype not in _DTYPES:
            raise TypeError(f"{name} must be float32 or float64, got {t.dtype}")
        if dtype is not None and t.dtype != dtype:
            raise TypeError(f"{name} has dtype {t.dtype}, the other tensors {dtype}")
        dtype = t.dtype


# ----------------------------------------------------------------------------- convolution ops


def _conv_size(size: Any, k: int, s: int, d: int, lo: int, hi: int) -> Any:
    return (size + lo + hi - d * (k - 1) - 1) // s + 1


def _transposed_size(size: Any, k: int, s: int, d: int, lo: int, hi: int, extra: int) -> Any:
    return (size - 1) * s + d * (k - 1) + 1 - lo - hi + extra


def _result_shape(kind: str, x: torch.Tensor, weight: torch.Tensor, geometry: Sequence[Any]) -> List[Any]:
    """(N, C_out, *spatial) of a convolution (as the weight counts channels), in symbolic-safe arithmetic."""
    stride, lo, hi, extra, groups, dilation, _ = geometry
    kernel, rank = weight.shape[2:], weight.dim() - 2
    if kind == "conv_transpose":
        spatial = [_transposed_size(x.shape[2 + a], kernel[a], stride[a], dilation[a], lo[a], hi[a], extra[a])
                   for a in range(rank)]
    else:
        spatial = [_conv_size(x.shape[2 + a], kernel[a], stride[a], dilation[a], lo[a], hi[a]) for a in range(rank)]
    return [x.shape[0], _out_channels(kind, weight, groups)] + spatial


def _numpy_kwargs(kind: str, rank: int, geometry: Sequence[Any], channels_last: bool) -> Dict[str, Any]:
    stride, lo, hi, extra, groups, dilation, method = geometry
    kwargs: Dict[str, Any] = dict(stride=tuple(stride), padding=tuple(zip(lo, hi)), groups=groups,
                                  dilation=tuple(dilation), layout=_p.LAYOUTS[rank][int(channels_last)])
    if kind == "conv_transpose":
        kwargs.update(output_padding=tuple(extra), method=method)
    return kwargs


def _out_channels(kind: str, weight: torch.Tensor, groups: int) -> int:
    return int(weight.shape[1]) * groups if kind == "conv_transpose" else int(weight.shape[0])


def _define_forward(kind: str, rank: int) -> Any:
    name = f"{_NAMES[kind]}{rank}d"
    numpy_fn = getattr(_api, name)
    schema = f"(Tensor x, Tensor weight, Tensor? bias, {_GEOMETRY}) -> Tensor"

    def forward(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor], *geometry: Any) -> torch.Tensor:
        cl = _channels_last(x)
        kwargs = _numpy_kwargs(kind, rank, geometry, cl)
        y = numpy_fn(_array(x, cl), _array(weight), None if bias is None else _array(bias), **kwargs)
        return _tensor(y, cl)

    op = torch.library.custom_op(f"{_NAMESPACE}::{name}", forward, mutates_args=(), schema=schema)

    @op.register_fake
    def _(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor], *geometry: Any) -> torch.Tensor:
        return _empty(x, _result_shape(kind, x, weight, geometry), _channels_last(x))

    return op


def _define_backward(kind: str, rank: int) -> Any:
    name = f"{_NAMES[kind]}{rank}d"
    numpy_fn = getattr(_backward, f"{name}_backward")
    schema = (f"(Tensor grad_output, Tensor x, Tensor weight, {_GEOMETRY}, bool[] output_mask) "
              "-> (Tensor, Tensor, Tensor)")

    def backward(grad: torch.Tensor, x: torch.Tensor, weight: torch.Tensor, *rest: Any) -> Tuple[torch.Tensor, ...]:
        geometry, mask = rest[:-1], tuple(rest[-1])
        cl = _channels_last(x)
        kwargs = _numpy_kwargs(kind, rank, geometry, cl)
        kwargs["method"] = geometry[-1]
        grads = numpy_fn(_array(grad, cl), _array(x, cl), _array(weight), output_mask=mask, **kwargs)
        layouts = (cl, False, False)
        return tuple(x.new_empty(0) if g is None else _tensor(g, c) for g, c in zip(grads, layouts))

    op = torch.library.custom_op(f"{_NAMESPACE}::{name}_backward", backward, mutates_args=(), schema=schema)

    @op.register_fake
    def _(grad: torch.Tensor, x: torch.Tensor, weight: torch.Tensor, *rest: Any) -> Tuple[torch.Tensor, ...]:
        mask, groups = rest[-1], rest[4]
        gx = _empty(x, x.shape, _channels_last(x)) if mask[0] else x.new_empty(0)
        gw = weight.new_empty(weight.shape) if mask[1] else x.new_empty(0)
        gb = weight.new_empty(_out_channels(kind, weight, groups)) if mask[2] else x.new_empty(0)
        return gx, gw, gb

    op.register_autograd(_no_double_backward)
    return op


def _no_double_backward(ctx: Any, *grads: Any) -> Any:
    raise RuntimeError(
        "subpixel_ext.torch does not support double backward (gradients of gradients, e.g. "
        "create_graph=True followed by another backward through a convolution's gradient)"
    )


def _register_conv_autograd(forward: Any, backward: Any) -> None:
    def setup_context(ctx: Any, inputs: Tuple[Any, ...], output: torch.Tensor) -> None:
        x, weight, bias = inputs[:3]
        ctx.save_for_backward(x, weight)
        ctx.geometry = inputs[3:]
        ctx.has_bias = bias is not None

    def gradients(ctx: Any, grad: torch.Tensor) -> Tuple[Optional[torch.Tensor], ...]:
        x, weight = ctx.saved_tensors
        need = ctx.needs_input_grad
        mask = [bool(need[0]), bool(need[1]), bool(ctx.has_bias and need[2])]
        gx, gw, gb = backward(grad, x, weight, *ctx.geometry, mask)
        chosen = tuple(g if wanted else None for g, wanted in zip((gx, gw, gb), mask))
        return chosen + (None,) * len(ctx.geometry)

    forward.register_autograd(gradients, setup_context=setup_context)


_FORWARD: Dict[Tuple[str, int], Any] = {}
_BACKWARD: Dict[Tuple[str, int], Any] = {}
for _kind in ("conv_transpose", "conv"):
    for _rank in (1, 2, 3):
        _FORWARD[_kind, _rank] = _define_forward(_kind, _rank)
        _BACKWARD[_kind, _rank] = _define_backward(_kind, _rank)
        _register_conv_autograd(_FORWARD[_kind, _rank], _BACKWARD[_kind, _rank])


# ----------------------------------------------------------------------------- pixel shuffle ops


def _shuffled_shape(shape: Sequence[Any], factor: Sequence[int], inverse: bool) -> List[Any]:
    rank, phases = len(factor), int(np.prod(factor))
    lead, c, spatial = list(shape[: -rank - 1]), shape[-rank - 1], list(shape[-rank:])
    if inverse:
        return lead + [c * phases] + [size // f for size, f in zip(spatial, factor)]
    return lead + [c // phases] + [size * f for size, f in zip(spatial, factor)]


def _define_shuffle(inverse: bool) -> Any:
    name, arg = ("pixel_unshuffle", "downscale_factor") if inverse else ("pixel_shuffle", "upscale_factor")
    numpy_fn = getattr(_api, name)

    def shuffle(x: torch.Tensor, factor: List[int], mode: str) -> torch.Tensor:
        dim = x.dim() - len(factor) - 1
        cl = _channels_last(x, dim)
        y = numpy_fn(_array(x, cl, dim), tuple(factor), layout="channels_last" if cl else None, mode=mode)
        return _tensor(y, cl, dim)

    op = torch.library.custom_op(f"{_NAMESPACE}::{name}", shuffle, mutates_args=(),
                                 schema=f"(Tensor x, int[] {arg}, str mode) -> Tensor")

    @op.register_fake
    def _(x: torch.Tensor, factor: List[int], mode: str) -> torch.Tensor:
        dim = x.dim() - len(factor) - 1
        return _empty(x, _shuffled_shape(x.shape, factor, inverse), _channels_last(x, dim), dim)

    return op


_SHUFFLE, _UNSHUFFLE = _define_shuffle(False), _define_shuffle(True)


def _register_shuffle_autograd(op: Any, adjoint: Any) -> None:
    # A shuffle is a permutation: its gradient is the inverse permutation (to any order).
    def setup_context(ctx: Any, inputs: Tuple[Any, ...], output: torch.Tensor) -> None:
        ctx.factor, ctx.mode = inputs[1], inputs[2]

    def gradients(ctx: Any, grad: torch.Tensor) -> Tuple[Optional[torch.Tensor], None, None]:
        return adjoint(grad, ctx.factor, ctx.mode), None, None

    op.register_autograd(gradients, setup_context=setup_context)


_register_shuffle_autograd(_SHUFFLE, _UNSHUFFLE)
_register_shuffle_autograd(_UNSHUFFLE, _SHUFFLE)


def _define_subpixel(rank: int) -> Any:
    """pixel_shuffle(conv(x)) in one pass; its gradient is the convolution's of the unshuffled grad."""
    name = f"subpixel_conv{rank}d"
    numpy_fn = getattr(_api, name)
    schema = f"(Tensor x, Tensor weight, Tensor? bias, int[] upscale_factor, str mode, {_GEOMETRY}) -> Tensor"

    def forward(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor], factor: List[int], mode: str,
                *geometry: Any) -> torch.Tensor:
        cl = _channels_last(x)
        kwargs = _numpy_kwargs("conv", rank, geometry, cl)
        y = numpy_fn(_array(x, cl), _array(weight), tuple(factor), None if bias is None else _array(bias),
                     mode=mode, **kwargs)
        return _tensor(y, cl)

    op = torch.library.custom_op(f"{_NAMESPACE}::{name}", forward, mutates_args=(), schema=schema)

    @op.register_fake
    def _(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor], factor: List[int], mode: str,
          *geometry: Any) -> torch.Tensor:
        conv_shape = _result_shape("conv", x, weight, geometry)
        return _empty(x, _shuffled_shape(conv_shape, factor, False), _channels_last(x))

    def setup_context(ctx: Any, inputs: Tuple[Any, ...], output: torch.Tensor) -> None:
        x, weight, bias, factor, mode = inputs[:5]
        ctx.save_for_backward(x, weight)
        ctx.factor, ctx.mode, ctx.geometry, ctx.has_bias = factor, mode, inputs[5:], bias is not None

    def gradients(ctx: Any, grad: torch.Tensor) -> Tuple[Optional[torch.Tensor], ...]:
        x, weight = ctx.saved_tensors
        need = ctx.needs_input_grad
        mask = [bool(need[0]), bool(need[1]), bool(ctx.has_bias and need[2])]
        grads = _BACKWARD["conv", rank](_UNSHUFFLE(grad, ctx.factor, ctx.mode), x, weight, *ctx.geometry, mask)
        return tuple(g if wanted else None for g, wanted in zip(grads, mask)) + (None,) * (2 + len(ctx.geometry))

    op.register_autograd(gradients, setup_context=setup_context)
    return op


_SUBPIXEL = {rank: _define_subpixel(rank) for rank in (1, 2, 3)}


# ----------------------------------------------------------------------------- functions


def _parse_geometry(
    kind: str, rank: int, shapes: Tuple[Any, ...], settings: Tuple[Tuple[str, Any], ...], output_size: Any,
    method: str,
) -> Tuple[bool, List[Any]]:
    """(batched, the op's geometry arguments) from the arguments' shapes, checked by the package's
    one parser (the same errors as the NumPy API). The parser reads shapes only: it gets arrays
    of the weight's and bias's shapes that hold no data."""
    x_shape, w_shape, b_shape = shapes
    weight = np.broadcast_to(np.empty((), np.bool_), w_shape)
    bias = None if b_shape is None else np.broadcast_to(np.empty((), np.bool_), b_shape)
    params = _p.conv_params(kind, weight, bias, rank=rank, **dict(settings))
    geometry = _p.conv_geometry(params, x_shape, output_size)
    meth = _p.choice(method, "method", _p.METHODS)
    extra = [0] * rank
    if kind == "conv_transpose":  # the output padding output_size (or output_padding) asks for
        extra = [out - _transposed_size(size, k, s, d, lo, hi, 0) for out, size, k, s, d, lo, hi in zip(
            geometry.out_spatial, geometry.in_spatial, params.kernel, params.stride, params.dilation,
            geometry.pad_begin, geometry.pad_end)]
    conv_out = [out // f for out, f in zip(geometry.out_spatial, params.factor)]
    assert kind == "conv_transpose" or conv_out == [
        _conv_size(*v) for v in zip(geometry.in_spatial, params.kernel, params.stride, params.dilation,
                                    geometry.pad_begin, geometry.pad_end)]
    args = [list(params.stride), list(geometry.pad_begin), list(geometry.pad_end), extra, params.groups,
            list(params.dilation), meth]
    return geometry.batched, args


def _frozen(value: Any) -> Any:
    """Lists as tuples (hashable, constant for torch.compile)."""
    if isinstance(value, (list, tuple)):
        return tuple(_frozen(v) for v in value)
    return value


def _parse_params(rank: int, settings: Tuple[Tuple[str, Any], ...], method: str) -> Tuple[Any, ...]:
    """The settings the geometry needs, each checked by the package's parser (the checks that need
    the tensors' shapes run when the op does)."""
    given = dict(settings)
    stride = _p.per_axis(given.get("stride", 1), "stride", rank, minimum=1)
    dilation = _p.per_axis(given.get("dilation", 1), "dilation", rank, minimum=1)
    output_padding = _p.per_axis(given.get("output_padding", 0), "output_padding", rank, minimum=0)
    groups = _p.scalar_int(given.get("groups", 1), "groups", minimum=1)
    padding = _p.padding_spec(given.get("padding", 0), rank)
    return stride, dilation, groups, padding, output_padding, _p.choice(method, "method", _p.METHODS)


# A constant for torch.compile: evaluated once while tracing, never traced into.
_op_params: Callable[..., Tuple[Any, ...]] = torch.compiler.assume_constant_result(  # type: ignore[no-untyped-call]
    _parse_params
)


def _symbolic_geometry(
    kind: str, rank: int, x: torch.Tensor, weight: torch.Tensor, params: Tuple[Any, ...], output_size: Any
) -> List[Any]:
    """The op's geometry arguments for sizes that torch.compile may keep symbolic (dynamic
    shapes): the arithmetic of _params on them. The op itself checks the sizes when it runs."""
    stride, dilation, groups, padding, output_padding, method = params
    spatial = x.shape[x.dim() - rank:]
    k_eff = [d * (k - 1) + 1 for d, k in zip(dilation, weight.shape[2:])]
    lo: List[Any] = []
    hi: List[Any] = []
    extra: List[Any] = []
    for a, size in enumerate(spatial):
        if kind == "conv_transpose":
            begin, end, more = _p.transposed_axis_crop(padding, a, k_eff[a], stride[a], output_padding[a])
            if output_size is not None:
                more = list(output_size)[-rank + a] - ((size - 1) * stride[a] + k_eff[a] - begin - end)
        else:
            if padding == "same":
                total = torch.sym_max(  # type: ignore[no-untyped-call]
                    ((size + stride[a] - 1) // stride[a] - 1) * stride[a] + k_eff[a] - size, 0)
                begin, end = total // 2, total - total // 2
            else:
                begin, end = _p.conv_axis_padding(padding, a, size, k_eff[a], stride[a])
            more = 0
        lo.append(begin)
        hi.append(end)
        extra.append(more)
    return [list(stride), lo, hi, extra, groups, list(dilation), method]


# Parsed geometries by (parameters, shapes): a training loop's repeated calls skip the parser.
_GEOMETRIES: _p.SetupCache[Tuple[bool, List[Any]]] = _p.SetupCache()


def _run(op: Any, kind: str, rank: int, x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor],
         settings: Dict[str, Any], output_size: Any, method: str, extra: Tuple[Any, ...] = ()) -> torch.Tensor:
    _check_tensors(x=x, weight=weight, bias=bias)
    frozen = tuple((k, _frozen(v)) for k, v in settings.items())
    if not torch.compiler.is_compiling():
        shapes = (tuple(x.shape), tuple(weight.shape), None if bias is None else tuple(bias.shape))
        size = tuple(output_size) if isinstance(output_size, torch.Size) else output_size
        key = _p.cache_key(kind, rank, tuple(v for _, v in frozen) + (size, method) + shapes)
        parsed = _GEOMETRIES.get(key) or _GEOMETRIES.put(
            key, _parse_geometry(kind, rank, shapes, frozen, output_size, method))
        batched, geometry = parsed
    else:  # the sizes may be symbolic (dynamic shapes): only the parameters are a constant
        params = _op_params(rank, frozen, method)
        batched, geometry = x.dim() == rank + 2, _symbolic_geometry(kind, rank, x, weight, params, output_size)
    xb = x if batched else x.unsqueeze(0)
    y: torch.Tensor = op(xb, weight, bias, *extra, *geometry)
    return y if batched else y.squeeze(0)


def _conv_transpose(rank: int) -> Callable[..., torch.Tensor]:
    def conv_transpose(
        x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor] = None, stride: IntOrTuple = 1,
        padding: Padding = 0, output_padding: IntOrTuple = 0, groups: int = 1, dilation: IntOrTuple = 1, *,
        output_size: Optional[OutputSize] = None, method: str = "auto",
    ) -> torch.Tensor:
        settings = dict(stride=stride, padding=padding, output_padding=output_padding, groups=groups,
                        dilation=dilation)
        return _run(_FORWARD["conv_transpose", rank], "conv_transpose", rank, x, weight, bias, settings,
                    output_size, method)

    conv_transpose.__name__ = conv_transpose.__qualname__ = f"conv_transpose{rank}d"
    conv_transpose.__doc__ = (
        f"``torch.nn.functional.conv_transpose{rank}d`` run by this package, differentiable (see the module).\n\n"
        f"    ``padding`` also takes per-axis (begin, end) pairs and \"same\"/\"valid\", ``output_size`` "
        f"chooses the output padding\n    as ``nn.ConvTranspose{rank}d.forward`` does, ``method`` is "
        f"\"auto\", \"direct\" or \"polyphase\".\n    "
    )
    return conv_transpose


def _conv(rank: int) -> Callable[..., torch.Tensor]:
    def conv(
        x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor] = None, stride: IntOrTuple = 1,
        padding: Padding = 0, dilation: IntOrTuple = 1, groups: int = 1, *, method: str = "auto",
    ) -> torch.Tensor:
        settings = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
        return _run(_FORWARD["conv", rank], "conv", rank, x, weight, bias, settings, None, method)

    conv.__name__ = conv.__qualname__ = f"conv{rank}d"
    conv.__doc__ = (
        f"``torch.nn.functional.conv{rank}d`` run by this package, differentiable (see the module).\n\n"
        f"    ``padding`` also takes per-axis (begin, end) pairs; \"same\" is TensorFlow's (any stride); "
        f"``method``\n    chooses how the input gradient (a transposed convolution) is computed.\n    "
    )
    return conv


conv_transpose1d, conv_transpose2d, conv_transpose3d = (_conv_transpose(r) for r in (1, 2, 3))
conv1d, conv2d, conv3d = (_conv(r) for r in (1, 2, 3))


def _subpixel_conv(rank: int) -> Callable[..., torch.Tensor]:
    def subpixel_conv(
        x: torch.Tensor, weight: torch.Tensor, upscale_factor: IntOrTuple, bias: Optional[torch.Tensor] = None,
        stride: IntOrTuple = 1, padding: Padding = 0, dilation: IntOrTuple = 1, groups: int = 1, *,
        mode: str = "CRD",
    ) -> torch.Tensor:
        factor = list(_p.per_axis(upscale_factor, "upscale_factor", rank, minimum=1))
        canonical = _p.choice(mode, "mode", _p.MODES)
        settings = dict(stride=stride, padding=padding, dilation=dilation, groups=groups,
                        upscale_factor=tuple(factor), mode=canonical)
        return _run(_SUBPIXEL[rank], "subpixel", rank, x, weight, bias, settings, None, "auto", (factor, canonical))

    subpixel_conv.__name__ = subpixel_conv.__qualname__ = f"subpixel_conv{rank}d"
    subpixel_conv.__doc__ = (f"``pixel_shuffle(conv{rank}d(x, weight, bias, ...), upscale_factor)`` in one pass, "
                             "differentiable.")
    return subpixel_conv


subpixel_conv1d, subpixel_conv2d, subpixel_conv3d = (_subpixel_conv(r) for r in (1, 2, 3))


def _shuffle(op: Any, x: torch.Tensor, factor: Any, mode: str, inverse: bool) -> torch.Tensor:
    _check_tensors(x=x)
    name = "downscale_factor" if inverse else "upscale_factor"
    spec = _p.shuffle_spec(tuple(x.shape), factor, None, mode, inverse, name)  # the NumPy API's checks
    return op(x, list(spec.factor), "DCR" if spec.dcr else "CRD")  # type: ignore[no-any-return]


def pixel_shuffle(x: torch.Tensor, upscale_factor: IntOrTuple, *, mode: str = "CRD") -> torch.Tensor:
    """``torch.nn.functional.pixel_shuffle`` (an int: 2-D; a tuple of 1-3 ints: that rank), differentiable."""
    return _shuffle(_SHUFFLE, x, upscale_factor, mode, inverse=False)


def pixel_unshuffle(x: torch.Tensor, downscale_factor: IntOrTuple, *, mode: str = "CRD") -> torch.Tensor:
    """The inverse of :func:`pixel_shuffle`, differentiable."""
    return _shuffle(_UNSHUFFLE, x, downscale_factor, mode, inverse=True)


# ----------------------------------------------------------------------------- modules


class _Module:
    """What our modules add to torch's: the `method` keyword, shown in the repr when not "auto"."""

    _rank: int
    weight: torch.Tensor
    bias: Optional[torch.Tensor]

    def __init__(self, *args: Any, method: str = "auto", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.method = _p.choice(method, "method", _p.METHODS)

    def extra_repr(self) -> str:
        base: str = super().extra_repr()  # type: ignore[misc]
        return base if self.method == "auto" else f"{base}, method={self.method!r}"


class _TransposedModule(_Module):
    """forward() of ConvTranspose{1,2,3}d: torch's module, run by this package."""

    def forward(self, input: torch.Tensor, output_size: Optional[Sequence[int]] = None) -> torch.Tensor:
        m: Any = self
        # As torch's forward: output_size, when given, chooses the output padding.
        output_padding = 0 if output_size is not None else m.output_padding
        return _CONV_TRANSPOSE[self._rank](input, self.weight, self.bias, m.stride, m.padding, output_padding,
                                           m.groups, m.dilation, output_size=output_size, method=self.method)


class _ConvModule(_Module):
    """forward() of Conv{1,2,3}d: torch's module, run by this package (padding_mode "zeros")."""

    def __init__(self, *args: Any, method: str = "auto", **kwargs: Any) -> None:
        super().__init__(*args, method=method, **kwargs)
        _require_zero_padding(self)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        m: Any = self
        return _CONV[self._rank](input, self.weight, self.bias, m.stride, m.padding, m.dilation, m.groups,
                                 method=self.method)


def _require_zero_padding(module: Any) -> None:
    if module.padding_mode != "zeros":
        raise ValueError(f"padding_mode must be 'zeros' (the only one supported), got {module.padding_mode!r}")


class ConvTranspose1d(_TransposedModule, torch.nn.ConvTranspose1d):
    """``torch.nn.ConvTranspose1d`` whose forward runs this package (extra keyword: ``method``)."""

    _rank = 1


class ConvTranspose2d(_TransposedModule, torch.nn.ConvTranspose2d):
    """``torch.nn.ConvTranspose2d`` whose forward runs this package: the same constructor (plus
    ``method="auto"``), parameters and ``state_dict``; ``forward(x, output_size=None)`` as torch's."""

    _rank = 2


class ConvTranspose3d(_TransposedModule, torch.nn.ConvTranspose3d):
    """``torch.nn.ConvTranspose3d`` whose forward runs this package (extra keyword: ``method``)."""

    _rank = 3


class Conv1d(_ConvModule, torch.nn.Conv1d):
    """``torch.nn.Conv1d`` whose forward runs this package (``padding_mode="zeros"`` only)."""

    _rank = 1


class Conv2d(_ConvModule, torch.nn.Conv2d):
    """``torch.nn.Conv2d`` whose forward runs this package: the same constructor (plus
    ``method``, how the input gradient is computed), parameters and ``state_dict``."""

    _rank = 2


class Conv3d(_ConvModule, torch.nn.Conv3d):
    """``torch.nn.Conv3d`` whose forward runs this package (``padding_mode="zeros"`` only)."""

    _rank = 3


_CONV_TRANSPOSE = {1: conv_transpose1d, 2: conv_transpose2d, 3: conv_transpose3d}
_CONV = {1: conv1d, 2: conv2d, 3: conv3d}
_SWAPS: Dict[type, Type[torch.nn.Module]] = {
    torch.nn.ConvTranspose1d: ConvTranspose1d, torch.nn.ConvTranspose2d: ConvTranspose2d,
    torch.nn.ConvTranspose3d: ConvTranspose3d, torch.nn.Conv1d: Conv1d, torch.nn.Conv2d: Conv2d,
    torch.nn.Conv3d: Conv3d,
}


def _swapped(module: torch.nn.Module) -> Optional[torch.nn.Module]:
    """Ours in place of a torch convolution (the same Parameters, buffers and hooks), or None."""
    ours = _SWAPS.get(type(module))
    if ours is None or getattr(module, "padding_mode", "zeros") != "zeros":
        return None
    new = ours.__new__(ours)
    new.__dict__.update(module.__dict__)
    for attribute in ("_parameters", "_buffers", "_modules"):
        setattr(new, attribute, dict(getattr(module, attribute)))
    new.__dict__["method"] = "auto"
    return new


def convert(model: torch.nn.Module, inplace: bool = False) -> torch.nn.Module:
    """Every ``torch.nn.ConvTranspose{1,2,3}d`` and ``Conv{1,2,3}d`` (padding_mode "zeros") of
    `model` swapped for this package's, sharing their Parameters.

    ``inplace=False`` leaves `model` as it was and returns a new module tree whose Parameters and
    buffers are `model`'s own (training one trains the other); ``inplace=True`` changes `model`.
    Modules of other types, subclasses included, are kept.
    """
    if not inplace:
        shared: Dict[int, Any] = {id(t): t for t in list(model.parameters()) + list(model.buffers())}
        model = copy.deepcopy(model, shared)
    root = _swapped(model)
    if root is not None:
        return root
    for parent in model.modules():
        for name, child in list(parent.named_children()):
            new = _swapped(child)
            if new is not None:
                setattr(parent, name, new)
    return model
