"""Argument parsing and output geometry shared by the native API, the NumPy oracle and the weight
conversions, for 1-D, 2-D and 3-D.

Everything here is pure Python: it turns user arguments into plain integers, checks them, and
computes output shapes, so that every implementation agrees on *what* is computed and raises the
same errors before any native code runs. Every error message names the parameter and the value
received; per-axis errors name the axis by its letter (L; H, W; D, H, W).

Two steps, as in a layer: :func:`conv_params` checks everything that does not depend on the input
(weight, bias, stride, padding, ...), :func:`conv_geometry` what does (channels, sizes, output).
"""

from __future__ import annotations

import math
import operator
import sys
from dataclasses import dataclass
from typing import Any, Dict, Generic, Hashable, Optional, Sequence, SupportsIndex, Tuple, TypeVar, Union, cast

import numpy as np

from ._typing import IntOrTuple, OutputSize, Padding

Pairs = Tuple[Tuple[int, int], ...]
PaddingSpec = Union[str, Pairs]

LAYOUTS = {1: ("NCL", "NLC"), 2: ("NCHW", "NHWC"), 3: ("NCDHW", "NDHWC")}
AXES = {1: "L", 2: "HW", 3: "DHW"}
MODES = ("CRD", "DCR")
METHODS = ("auto", "direct", "polyphase")
KINDS = ("conv", "conv_transpose", "subpixel")
ACTIVATIONS = ("relu", "relu6", "leaky_relu", "tanh", "sigmoid")
INT64_MAX = 2**63 - 1
MAX_THREADS = 2**31 - 1  # a C int; the native side caps num_threads further
_MAX_BYTES = sys.maxsize  # largest byte count a pointer difference can hold


# ----------------------------------------------------------------------------- scalars


class IntegerRangeError(OverflowError, ValueError):
    """An integer argument or a size derived from them that does not fit int64 (or a C int for
    num_threads): both an OverflowError and a ValueError, so either ``except`` catches it."""


def _as_int(value: object, name: str) -> int:
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    try:
        return operator.index(cast(SupportsIndex, value))
    except TypeError:
        raise TypeError(f"{name} must be an integer, got {value!r}") from None


def _in_range(value: int, name: str, minimum: Optional[int], shown: object) -> int:
    """`value` itself, or ValueError below `minimum` / OverflowError outside int64."""
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {shown!r}")
    if not -INT64_MAX - 1 <= value <= INT64_MAX:
        raise IntegerRangeError(f"{name} must fit in int64 (|value| < 2**63), got {shown!r}")
    return value


def scalar_int(value: object, name: str, minimum: Optional[int] = None) -> int:
    """A plain int (numpy integers and 0-d integer arrays accepted, bool refused)."""
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value.item()
    return _in_range(_as_int(value, name), name, minimum, value)


def _tuple_of(rank: int, what: str = "int") -> str:
    """'a tuple of 1 int', 'a pair of ints', 'a tuple of 3 ints'."""
    if rank == 2:
        return f"a pair of {what}s"
    return f"a tuple of {rank} {what}{'s' if rank > 1 else ''}"


def _is_sequence(value: object) -> bool:
    return isinstance(value, (Sequence, np.ndarray)) and not isinstance(value, (str, bytes))


def per_axis(value: object, name: str, rank: int, minimum: Optional[int] = None) -> Tuple[int, ...]:
    """An int for every axis, or a tuple/list/1-d array of exactly `rank` ints."""
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value.item()
    forms = f"an int or {_tuple_of(rank)}"
    if isinstance(value, (str, bytes)):
        raise TypeError(f"{name} must be {forms}, got {value!r}")
    if _is_sequence(value):
        items = list(value)  # type: ignore[call-overload]
        if len(items) != rank:
            raise ValueError(f"{name} must be {forms}, got {value!r}")
        ints = tuple(_as_int(item, name) for item in items)
    else:
        ints = (_as_int(value, name),) * rank
    return tuple(_in_range(i, name, minimum, value) for i in ints)


def choice(value: object, name: str, allowed: Sequence[str]) -> str:
    """The canonical spelling of `value` among `allowed` (case-insensitive)."""
    if not isinstance(value, str):
        raise TypeError(f"{name} must be one of {list(allowed)}, got {value!r}")
    canonical = {a.lower(): a for a in allowed}.get(value.lower())
    if canonical is None:
        raise ValueError(f"{name} must be one of {list(allowed)}, got {value!r}")
    return canonical


def parse_layout(layout: object, rank: int) -> bool:
    """True for channels-last; None is the rank's channels-first default."""
    if layout is None:
        return False
    first, last = LAYOUTS[rank]
    allowed = (first, last, "channels_first", "channels_last")
    return choice(layout, "layout", allowed) in (last, "channels_last")


def layout_name(channels_last: bool, rank: int) -> str:
    return LAYOUTS[rank][channels_last]


def num_threads(value: object) -> int:
    """None -> 0 (the default); otherwise an int >= 1. Results do not depend on the count, so
    any request is accepted: clamped to 2**31 - 1 here, then capped natively at what the
    machine can run."""
    if value is None:
        return 0
    n = _as_int(value, "num_threads")
    if n < 1:
        raise ValueError(f"num_threads must be None or >= 1, got {value!r}")
    return min(n, MAX_THREADS)


def activation_spec(activation: object, negative_slope: object) -> Tuple[Optional[str], float]:
    """(None or one of ACTIVATIONS, negative_slope as a float)."""
    if isinstance(negative_slope, (bool, np.bool_)) or not isinstance(
        negative_slope, (int, float, np.integer, np.floating)
    ):
        raise TypeError(f"negative_slope must be a real number, got {negative_slope!r}")
    if activation is None:
        return None, float(negative_slope)
    return choice(activation, "activation", ACTIVATIONS), float(negative_slope)


# ----------------------------------------------------------------------------- arrays


def is_bfloat16(dtype: np.dtype) -> bool:
    """Whether `dtype` is ``ml_dtypes.bfloat16`` (recognized without importing ml_dtypes)."""
    return dtype.kind == "V" and dtype.name == "bfloat16"


def _torch_bfloat16_as_numpy(value: object) -> Optional[np.ndarray]:
    """A bfloat16 torch tensor as a NumPy ``ml_dtypes.bfloat16`` array (torch has no NumPy
    bfloat16, so through its bits); None for anything else."""
    if str(getattr(value, "dtype", "")) != "torch.bfloat16" or not type(value).__module__.startswith("torch"):
        return None
    try:
        import ml_dtypes
    except ImportError:
        raise TypeError("a bfloat16 tensor needs the ml_dtypes package (pip install subpixel-ext[bfloat16])") from None
    tensor: Any = value
    import torch  # already imported: `value` is one of its tensors

    bits: np.ndarray = tensor.detach().cpu().contiguous().view(torch.int16).numpy()
    half: np.ndarray = bits.view(ml_dtypes.bfloat16)
    return half


def as_array(value: object, name: str, kinds: str = "biuf") -> np.ndarray:
    """numpy.asarray with the dtype families this package refuses turned into TypeError.

    `kinds` are the NumPy dtype kinds accepted (real numbers by default; the rearrangements
    also take complex); bfloat16 (``ml_dtypes``'s, and torch's through its bits) always.
    """
    arr = value if type(value) is np.ndarray else _torch_bfloat16_as_numpy(value)
    if arr is None:
        try:
            if not hasattr(value, "__array__") and hasattr(value, "__dlpack__"):
                arr = np.from_dlpack(value)  # DLPack-only producers; numpy.asarray ignores __dlpack__
            else:
                arr = np.asarray(value)
        except Exception as exc:  # ragged lists and the like
            raise TypeError(f"{name} could not be converted to an array: {exc}") from None
    if arr.dtype.kind not in kinds and not is_bfloat16(arr.dtype):
        what = "a real numeric" if kinds == "biuf" else "a numeric"
        raise TypeError(f"{name} must have {what} dtype, got dtype {arr.dtype}")
    return arr


def result_dtype(*arrays: Optional[np.ndarray]) -> np.dtype:
    """The dtype a convolution computes into, from its inputs' dtypes.

    float16 if every input is float16, bfloat16 if every input is bfloat16 (both computed in
    float32 and rounded once per output); float64 if any input is float64 (or wider), an
    integer or a bool; float32 otherwise (float32 present, or float16 mixed with bfloat16).
    """
    dtypes = [a.dtype for a in arrays if a is not None]
    if dtypes and all(d.kind == "f" and d.itemsize == 2 for d in dtypes):
        return np.dtype(np.float16)
    if dtypes and all(is_bfloat16(d) for d in dtypes):
        return dtypes[0]
    if all((d.kind == "f" and d.itemsize <= 4) or is_bfloat16(d) for d in dtypes):
        return np.dtype(np.float32)
    return np.dtype(np.float64)


def compute_dtype(dtype: np.dtype) -> np.dtype:
    """The dtype results of `dtype` accumulate in: float32 for the half-precision types."""
    return np.dtype(np.float32) if dtype.itemsize == 2 else dtype


def data_dtype(arr: np.ndarray) -> np.dtype:
    """The dtype a rearrangement keeps: the input's own, in native byte order."""
    return arr.dtype if arr.dtype.isnative else arr.dtype.newbyteorder("=")


def as_compute(arr: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """A C-contiguous, aligned, native-endian array of `dtype`; a copy only when needed, never
    written. (A buffer at an odd offset, e.g. ``np.frombuffer(b, offset=1)``, is copied: native
    code reads every element with its dtype's alignment.)"""
    flags = arr.flags
    if arr.dtype is dtype and flags.c_contiguous and flags.aligned:  # builtin dtypes are singletons
        return arr
    if not flags.aligned:
        return np.array(arr, dtype=dtype, order="C")  # ascontiguousarray would keep the misaligned buffer
    return np.ascontiguousarray(arr, dtype=dtype)


def checked_elements(shape: Sequence[int], itemsize: int, name: str) -> int:
    """Element count of `shape`; MemoryError when the byte count cannot be addressed."""
    count = 1
    for dim in shape:
        count *= int(dim)
    if count * itemsize > _MAX_BYTES:
        raise MemoryError(
            f"{name} of shape {tuple(shape)} needs {count * itemsize} bytes, more than can be addressed"
        )
    return count


def check_out(
    out: object, shape: Tuple[int, ...], dtype: np.dtype, inputs: Sequence[np.ndarray]
) -> np.ndarray:
    """Validate a user-supplied output array, or allocate one (sizes already checked)."""
    if out is None:
        return np.empty(shape, dtype=dtype)
    if not isinstance(out, np.ndarray):
        raise TypeError(f"out must be a numpy.ndarray, got {type(out).__name__}")
    if out.shape != tuple(shape):
        raise ValueError(f"out must have shape {tuple(shape)}, got {out.shape}")
    if out.dtype != dtype:
        raise ValueError(f"out must have dtype {dtype}, got {out.dtype}")
    flags = out.flags
    if not flags.c_contiguous or not out.dtype.isnative:
        raise ValueError("out must be C-contiguous and native-endian")
    if not flags.aligned:
        raise ValueError(
            f"out must be aligned for its dtype (its data address is not a multiple of {out.dtype.alignment}); "
            "allocate it with numpy.empty"
        )
    if not flags.writeable:
        raise ValueError("out is read-only")
    for arr in inputs:
        if np.may_share_memory(out, arr):
            raise ValueError("out overlaps an input array")
    return out


def _fits(value: int, what: str) -> int:
    if value > INT64_MAX:
        raise IntegerRangeError(f"{what} would be {value}, more than int64 can hold")
    return value


# ----------------------------------------------------------------------------- padding


def _padding_forms(rank: int) -> str:
    ints = "(" + ", ".join(["p"] * rank) + ("," if rank == 1 else "") + ")"
    pairs = "(" + ", ".join(["(begin, end)"] * rank) + ("," if rank == 1 else "") + ")"
    return (
        f"an int or {_tuple_of(rank)} or {_tuple_of(rank, '(begin, end) pair')} "
        f"(i.e. {ints} or {pairs}), or 'same'/'valid'"
    )


def padding_spec(padding: object, rank: int, name: str = "padding") -> PaddingSpec:
    """"same"/"valid", or one (begin, end) pair of non-negative ints per axis."""
    if isinstance(padding, np.ndarray) and padding.ndim == 0:
        padding = padding.item()
    if isinstance(padding, str):
        return choice(padding, name, ("same", "valid"))
    if not _is_sequence(padding):
        p = scalar_int(padding, name, minimum=0)
        return ((p, p),) * rank
    items = list(padding)  # type: ignore[call-overload]
    nested = [_is_sequence(item) for item in items]
    if len(items) != rank or (any(nested) and not all(nested)):
        raise ValueError(f"{name} must be {_padding_forms(rank)}, got {padding!r}")
    if not any(nested):
        return tuple((p, p) for p in per_axis(items, name, rank, minimum=0))
    pairs = []
    for item in items:
        ends = list(item)
        if len(ends) != 2:
            raise ValueError(f"{name} must be {_padding_forms(rank)}, got {padding!r}")
        begin, end = (_in_range(_as_int(e, name), name, 0, padding) for e in ends)
        pairs.append((begin, end))
    return tuple(pairs)


def conv_axis_padding(spec: PaddingSpec, axis: int, size: int, k_eff: int, stride: int) -> Tuple[int, int]:
    """Zero padding (begin, end) of a correlation along `axis`; "same" is TensorFlow's
    (output ceil(size/stride), the odd extra at the end), which for stride 1 is independent of size."""
    if isinstance(spec, tuple):
        return spec[axis]
    if spec == "valid":
        return 0, 0
    n = -(-size // stride)
    total = max((n - 1) * stride + k_eff - size, 0)
    return total // 2, total - total // 2


def transposed_axis_crop(
    spec: PaddingSpec, axis: int, k_eff: int, stride: int, output_padding: int
) -> Tuple[int, int, int]:
    """(crop at the begin, crop at the end, extra at the end) of the full transposed output along
    `axis`; "same" is TF SAME_UPPER (size*stride, the odd extra at the end), whose extra fills the
    output up when the kernel is shorter than the stride."""
    if isinstance(spec, tuple):
        return spec[axis][0], spec[axis][1], output_padding
    if spec == "valid":
        return 0, 0, output_padding
    total = max(k_eff - stride, 0)
    return total // 2, total - total // 2, max(stride - k_eff, 0)


# ----------------------------------------------------------------------------- parameters


@dataclass(frozen=True)
class ConvParams:
    """Everything about a convolution that does not depend on the input x."""

    kind: str  # "conv", "conv_transpose", "subpixel"
    rank: int
    channels_last: bool
    in_channels: int
    out_channels: int  # of the result (after the shuffle for subpixel)
    weight_out_channels: int  # as the weight counts them (subpixel: C * prod(factor))
    groups: int
    kernel: Tuple[int, ...]
    stride: Tuple[int, ...]
    dilation: Tuple[int, ...]
    padding: PaddingSpec
    output_padding: Tuple[int, ...]  # zeros unless conv_transpose
    factor: Tuple[int, ...]  # subpixel upscale factor per axis (1s otherwise)
    dcr: bool  # subpixel mode == "DCR"

    @property
    def effective_kernel(self) -> Tuple[int, ...]:
        return tuple(d * (k - 1) + 1 for k, d in zip(self.kernel, self.dilation))


def factor_text(name: str, factor: Tuple[int, ...]) -> str:
    """How a product of factors is spelled in messages: 'upscale_factor**2', 'prod(stride)'."""
    if len(factor) == 1:
        return name
    if len(set(factor)) == 1:
        return f"{name}**{len(factor)}"
    return f"prod({name})"


def _weight_axes(kind: str, rank: int) -> str:
    kernel = ", ".join(f"k{a}" for a in AXES[rank])
    channels = {
        "conv": "C_out, C_in/groups",
        "conv_transpose": "C_in, C_out/groups",
        "subpixel": "C*prod(upscale_factor), C_in/groups",
    }[kind]
    return f"({channels}, {kernel})"


def _channels(kind: str, weight_shape: Tuple[int, ...], groups: int, factor: Tuple[int, ...]) -> Tuple[int, int, int]:
    """(in_channels, out_channels of the result, out_channels as the weight counts them)."""
    if kind == "conv_transpose":
        c_in = weight_shape[0]
        if c_in % groups:
            raise ValueError(f"groups={groups} does not divide the {c_in} input channels (weight.shape[0])")
        return c_in, weight_shape[1] * groups, weight_shape[1] * groups
    c_out = weight_shape[0]
    if c_out % groups:
        raise ValueError(
            f"groups={groups} must divide the {c_out} output channels (weight.shape[0] of {weight_shape})"
        )
    phases = math.prod(factor)
    if c_out % phases:
        raise ValueError(
            f"weight has {c_out} output channels, not divisible by "
            f"{factor_text('upscale_factor', factor)} = {phases}"
        )
    return weight_shape[1] * groups, c_out // phases, c_out


def _output_padding(
    value: object, spec: PaddingSpec, stride: Tuple[int, ...], dilation: Tuple[int, ...]
) -> Tuple[int, ...]:
    rank = len(stride)
    op = per_axis(value, "output_padding", rank, minimum=0)
    if spec == "same" and any(op):
        raise ValueError(f"output_padding must be 0 with padding='same', got {value!r}")
    for axis in range(rank):
        limit = max(stride[axis], dilation[axis])
        if op[axis] >= limit:
            raise ValueError(
                f"output_padding must be smaller than max(stride, dilation) = {limit} "
                f"along {AXES[rank][axis]}, got {value!r}"
            )
    return op


def conv_params(
    kind: str,
    weight: np.ndarray,
    bias: Optional[np.ndarray],
    *,
    rank: int,
    stride: IntOrTuple = 1,
    padding: Padding = 0,
    output_padding: IntOrTuple = 0,
    groups: int = 1,
    dilation: IntOrTuple = 1,
    layout: Optional[str] = None,
    upscale_factor: IntOrTuple = 1,
    mode: str = "CRD",
) -> ConvParams:
    """Check everything that can be checked without x; `rank` is what the caller expects."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {list(KINDS)}, got {kind!r}")
    channels_last = parse_layout(layout, rank)
    if weight.ndim != rank + 2:
        raise ValueError(
            f"weight must be {rank + 2}-D {_weight_axes(kind, rank)}, got shape {weight.shape}"
        )
    kernel = tuple(int(k) for k in weight.shape[2:])
    if min(kernel) < 1:
        raise ValueError(f"weight must have a kernel of size >= 1, got shape {weight.shape}")
    g = scalar_int(groups, "groups", minimum=1)
    s = per_axis(stride, "stride", rank, minimum=1)
    d = per_axis(dilation, "dilation", rank, minimum=1)
    for axis in range(rank):
        what = f"the effective kernel size along {AXES[rank][axis]} (dilation={dilation!r})"
        _fits(d[axis] * (kernel[axis] - 1) + 1, what)
    spec = padding_spec(padding, rank)
    factor, dcr = (1,) * rank, False
    if kind == "subpixel":
        factor = per_axis(upscale_factor, "upscale_factor", rank, minimum=1)
        dcr = choice(mode, "mode", MODES) == "DCR"
    op = _output_padding(output_padding, spec, s, d) if kind == "conv_transpose" else (0,) * rank
    c_in, c_out, weight_c_out = _channels(kind, tuple(weight.shape), g, factor)
    bias_channels = c_out if kind == "conv_transpose" else weight_c_out
    if bias is not None and bias.shape != (bias_channels,):
        raise ValueError(f"bias must have shape ({bias_channels},), got {bias.shape}")
    return ConvParams(kind, rank, channels_last, c_in, c_out, weight_c_out, g, kernel, s, d, spec, op, factor, dcr)


# ----------------------------------------------------------------------------- geometry


@dataclass(frozen=True)
class ConvGeometry:
    """The sizes of one call (per input shape)."""

    batched: bool
    n: int
    in_spatial: Tuple[int, ...]
    pad_begin: Tuple[int, ...]  # conv/subpixel: zero padding at the start; conv_transpose: crop
    pad_end: Tuple[int, ...]  # likewise at the end (conv_transpose: before output_padding)
    out_spatial: Tuple[int, ...]  # of the result (subpixel: after the shuffle)
    out_shape: Tuple[int, ...]  # of the result, in the params' layout and x's batchedness


def _split_input(params: ConvParams, x_shape: Tuple[int, ...]) -> Tuple[bool, int, int, Tuple[int, ...]]:
    """(batched, n, channels, spatial) of an input of shape `x_shape`."""
    rank = params.rank
    if len(x_shape) not in (rank + 1, rank + 2):
        raise ValueError(
            f"x must be {rank + 1}-D or {rank + 2}-D ({layout_name(params.channels_last, rank)} with "
            f"optional batch), got shape {x_shape}"
        )
    batched = len(x_shape) == rank + 2
    dims = tuple(int(v) for v in (x_shape if batched else (1,) + tuple(x_shape)))
    if params.channels_last:
        n, spatial, c = dims[0], dims[1:-1], dims[-1]
    else:
        n, c, spatial = dims[0], dims[1], dims[2:]
    if min(spatial) < 1:
        raise ValueError(f"x must have spatial size >= 1, got shape {x_shape}")
    if c != params.in_channels:
        where = (
            "weight.shape[0]" if params.kind == "conv_transpose"
            else f"weight.shape[1]={params.in_channels // params.groups} x groups={params.groups}"
        )
        raise ValueError(
            f"weight expects {params.in_channels} input channels ({where}) but x has {c} (shape {x_shape})"
        )
    return batched, n, c, spatial


def output_size_spec(output_size: object, rank: int) -> Tuple[int, ...]:
    """The spatial size, or the last `rank` entries of a longer sequence (PyTorch's
    ``output_size=skip.size()``)."""
    if isinstance(output_size, np.ndarray) and output_size.ndim == 0:
        output_size = output_size.item()
    if not _is_sequence(output_size):
        return per_axis(output_size, "output_size", rank, minimum=1)
    items = list(output_size)  # type: ignore[call-overload]
    if len(items) < rank:
        raise ValueError(
            f"output_size must be an int or {_tuple_of(rank)} (or a longer sequence ending in "
            f"them, such as a tensor's size()), got {output_size!r}"
        )
    return tuple(_in_range(_as_int(v, "output_size"), "output_size", 1, output_size) for v in items[-rank:])


def _conv_window(params: ConvParams, spatial: Tuple[int, ...]) -> Tuple[Tuple[int, int, int], ...]:
    """(pad begin, pad end, conv output size) per axis."""
    window = []
    for axis, size in enumerate(spatial):
        k_eff, s = params.effective_kernel[axis], params.stride[axis]
        lo, hi = conv_axis_padding(params.padding, axis, size, k_eff, s)
        letter = AXES[params.rank][axis]
        padded = _fits(size + lo + hi, f"the padded input along {letter} (padding={params.padding!r})")
        if padded < k_eff:
            raise ValueError(
                f"kernel of effective size {k_eff} is larger than the padded input ({padded}) "
                f"along {letter} (padding={params.padding!r})"
            )
        out = (padded - k_eff) // s + 1
        _fits(out * params.factor[axis], f"the output size along {letter} (upscale_factor={params.factor})")
        window.append((lo, hi, out))
    return tuple(window)


def _transposed_window(
    params: ConvParams, spatial: Tuple[int, ...], output_size: object
) -> Tuple[Tuple[int, int, int], ...]:
    """(crop begin, crop end, output size) per axis of the full transposed output."""
    target = None
    if output_size is not None:
        if any(params.output_padding):
            raise ValueError(
                f"output_size and output_padding cannot both be given (output_padding={params.output_padding})"
            )
        if params.padding == "same":
            raise ValueError(f"output_size cannot be combined with padding='same', got output_size={output_size!r}")
        target = output_size_spec(output_size, params.rank)
    window = []
    for axis, size in enumerate(spatial):
        k, k_eff = params.kernel[axis], params.effective_kernel[axis]
        s, d, letter = params.stride[axis], params.dilation[axis], AXES[params.rank][axis]
        described = f"input {size}, kernel {k}, stride {s}, dilation {d}, padding {params.padding!r}"
        full = _fits((size - 1) * s + k_eff, f"the full output along {letter} ({described})")
        lo, hi, extra = transposed_axis_crop(params.padding, axis, k_eff, s, params.output_padding[axis])
        smallest = full - lo - hi
        if target is not None:
            if not smallest <= target[axis] <= smallest + s - 1:
                raise ValueError(
                    f"output_size {output_size!r} is out of reach: along {letter} it must be "
                    f"between {smallest} and {smallest + s - 1}"
                )
            extra = target[axis] - smallest
        n = smallest + extra
        if n <= 0:
            raise ValueError(f"output size along {letter} would be {n} ({described})")
        # The native side addresses the full output up to the window's end.
        _fits(lo + n, f"the end of the output window along {letter} ({described}, output_padding={extra})")
        window.append((lo, hi, n))
    return tuple(window)


def conv_geometry(
    params: ConvParams, x_shape: Tuple[int, ...], output_size: Optional[OutputSize] = None
) -> ConvGeometry:
    """Check x's shape against `params` and compute the result's geometry.

    x is (N, C, *spatial) or unbatched (C, *spatial) (channels-last: channels at the end).
    `output_size` (conv_transpose only) picks the output padding as PyTorch's module does.
    """
    batched, n, _, spatial = _split_input(params, tuple(x_shape))
    if params.kind == "conv_transpose":
        window = _transposed_window(params, spatial, output_size)
    else:
        if output_size is not None:
            raise ValueError(f"output_size is only accepted by transposed convolutions, got {output_size!r}")
        window = _conv_window(params, spatial)
    out_spatial = tuple(out * f for (_, _, out), f in zip(window, params.factor))
    c = params.out_channels
    dims = out_spatial + (c,) if params.channels_last else (c,) + out_spatial
    return ConvGeometry(
        batched,
        n,
        spatial,
        tuple(w[0] for w in window),
        tuple(w[1] for w in window),
        out_spatial,
        (n,) + dims if batched else dims,
    )


def check_grad_output(geometry: ConvGeometry, grad_output_shape: Tuple[int, ...]) -> None:
    """A backward op's grad_output must have the shape its forward op returns for x."""
    if tuple(grad_output_shape) != geometry.out_shape:
        raise ValueError(
            f"grad_output must have the forward result's shape {geometry.out_shape}, got {tuple(grad_output_shape)}"
        )


def output_mask(value: object) -> Tuple[bool, bool, bool]:
    """Which of (grad_input, grad_weight, grad_bias) a backward op computes."""
    items = list(value) if _is_sequence(value) else None  # type: ignore[call-overload]
    if items is None or len(items) != 3 or not all(isinstance(v, (bool, np.bool_)) for v in items):
        raise ValueError(f"output_mask must be a sequence of 3 bools (grad_input, grad_weight, grad_bias), got {value!r}")
    return bool(items[0]), bool(items[1]), bool(items[2])


# ----------------------------------------------------------------------------- data movement


def trailing_factor(value: object, name: str, ranks: Optional[Sequence[int]] = (1, 2, 3)) -> Tuple[int, ...]:
    """A factor for the trailing axes: an int means two axes, a tuple of k ints the last k
    (k among `ranks`; None: any k >= 1)."""
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value.item()
    if not _is_sequence(value):
        return per_axis(value, name, 2, minimum=1)
    items = list(value)  # type: ignore[call-overload]
    if (ranks is None and not items) or (ranks is not None and len(items) not in ranks):
        counts = "a non-empty tuple of ints" if ranks is None else (
            "a tuple of " + ", ".join(map(str, ranks[:-1])) + f" or {ranks[-1]} ints"
        )
        raise ValueError(f"{name} must be an int (2-D) or {counts}, got {value!r}")
    return tuple(_in_range(_as_int(v, name), name, 1, value) for v in items)


@dataclass(frozen=True)
class ShuffleSpec:
    """pixel_shuffle / pixel_unshuffle, described from the high-resolution tensor's side."""

    rank: int
    channels_last: bool
    factor: Tuple[int, ...]
    dcr: bool
    batch: int  # product of the leading dims
    channels_hi: int  # channels of the high-resolution side
    spatial_lo: Tuple[int, ...]  # spatial size of the low-resolution side
    out_shape: Tuple[int, ...]


def shuffle_spec(
    x_shape: Tuple[int, ...], factor: object, layout: object, mode: object, inverse: bool, name: str
) -> ShuffleSpec:
    """An int factor means 2-D, a tuple of 1, 2 or 3 ints that rank. The channel axis holds
    (c, *factors) in CRD order, (*factors, c) in DCR; leading dims before (C, *spatial) are batch."""
    r = trailing_factor(factor, name)
    rank = len(r)
    channels_last = parse_layout(layout, rank)
    dcr = choice(mode, "mode", MODES) == "DCR"
    x_shape = tuple(int(v) for v in x_shape)
    if len(x_shape) < rank + 1:
        raise ValueError(f"x must have at least {rank + 1} dimensions, got shape {x_shape}")
    lead, tail = x_shape[: -rank - 1], x_shape[-rank - 1 :]
    c, spatial = (tail[-1], tail[:-1]) if channels_last else (tail[0], tail[1:])
    phases = math.prod(r)
    if inverse:
        if any(size % f for size, f in zip(spatial, r)):
            raise ValueError(f"spatial size {spatial} must be divisible by {name}={r}")
        channels_hi, spatial_lo = c, tuple(size // f for size, f in zip(spatial, r))
        out_c, out_spatial = _fits(c * phases, f"the channel count ({name}={r})"), spatial_lo
    else:
        if c % phases:
            raise ValueError(f"channels ({c}) must be divisible by {factor_text(name, r)} = {phases}")
        channels_hi, spatial_lo = c // phases, spatial
        out_c = channels_hi
        out_spatial = tuple(_fits(size * f, f"the output size ({name}={r})") for size, f in zip(spatial, r))
    dims = out_spatial + (out_c,) if channels_last else (out_c,) + out_spatial
    return ShuffleSpec(rank, channels_last, r, dcr, math.prod(lead), channels_hi, spatial_lo, lead + dims)


def zero_insert_spec(x_shape: Tuple[int, ...], stride: object) -> Tuple[Tuple[int, ...], Tuple[int, ...]]:
    """(strides of the last k axes, result shape) of zero_insert; an int stride means k = 2."""
    s = trailing_factor(stride, "stride")
    if len(x_shape) < len(s):
        raise ValueError(f"x must have at least {len(s)} dimensions, got shape {tuple(x_shape)}")
    lead, spatial = tuple(x_shape[: -len(s)]), tuple(x_shape[-len(s) :])
    out = tuple(_fits(int(h) * f, f"the result size (stride={stride!r})") for h, f in zip(spatial, s))
    return s, lead + out


def split_kernel_spec(kernel_shape: Tuple[int, ...], stride: object) -> Tuple[Tuple[int, ...], Tuple[int, ...]]:
    """(strides of the last k axes, taps per sub-kernel ceil(K/s)); an int stride means k = 2."""
    s = trailing_factor(stride, "stride", ranks=None)
    if len(kernel_shape) < len(s):
        raise ValueError(f"kernel must have at least {len(s)} dimensions, got shape {tuple(kernel_shape)}")
    taps = tuple(-(-int(k) // f) for k, f in zip(kernel_shape[-len(s) :], s))
    return s, taps


# ----------------------------------------------------------------------------- call caches

_SCALARS = frozenset((int, str, float, type(None)))


def _plain_ints(value: Tuple[Any, ...]) -> bool:
    """A tuple of exact ints, or of such tuples (padding pairs)."""
    for v in value:
        kind = type(v)
        if kind is not int and (kind is not tuple or not _plain_ints(v)):
            return False
    return True


def cache_key(kind: str, rank: int, values: Tuple[Any, ...]) -> Optional[Tuple[Any, ...]]:
    """A key for a call's validated setup from its arguments, or None unless every value is an
    exact int, float, string or None or a tuple of exact ints. With their types in the key, no
    two such values that compare equal (True and 1, 2.0 and 2, (2.0, 2) and (2, 2)) share a
    setup. A loop, not a generator: this runs on every call."""
    types = tuple(map(type, values))
    if not _SCALARS.issuperset(types):
        for v, t in zip(values, types):
            if t not in _SCALARS and (t is not tuple or not _plain_ints(v)):
                return None
    return (kind, rank, values, types)


_Setup = TypeVar("_Setup")


class SetupCache(Generic[_Setup]):
    """Validated call setups by key (see cache_key), bounded: emptied when full. A setup is
    derived from the key alone, so a hit means the checks it skips would pass again."""

    def __init__(self, limit: int = 256) -> None:
        self.entries: Dict[Hashable, _Setup] = {}
        self.limit = limit

    def get(self, key: Optional[Hashable]) -> Optional[_Setup]:
        return None if key is None else self.entries.get(key)

    def put(self, key: Optional[Hashable], setup: _Setup) -> _Setup:
        if key is not None:
            if len(self.entries) >= self.limit:
                self.entries.clear()
            self.entries[key] = setup
        return setup
