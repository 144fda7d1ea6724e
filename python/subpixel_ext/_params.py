"""Argument normalization and output geometry shared by the native API and the NumPy oracle.

Everything here is pure Python: it turns user arguments into plain integers, checks them, and
computes output shapes, so that both implementations agree on *what* is computed and raise the
same errors. Every error message names the parameter and the value received.
"""

from __future__ import annotations

import operator
import sys
from dataclasses import dataclass
from typing import Any, Optional, Sequence, Tuple, Union

import numpy as np

Pair = Tuple[int, int]
PaddingArg = Union[int, str, Sequence[Any]]

LAYOUTS = ("NCHW", "NHWC")
MODES = ("CRD", "DCR")
METHODS = ("auto", "direct", "polyphase")
_MAX_BYTES = sys.maxsize  # largest byte count a pointer difference can hold


# ----------------------------------------------------------------------------- scalars


def _as_int(value: Any, name: str) -> int:
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an integer, got {value!r}") from None


def int_pair(value: Any, name: str, minimum: Optional[int] = None) -> Pair:
    """An int or a length-2 sequence of ints -> (h, w), each >= minimum."""
    if isinstance(value, (str, bytes)):
        raise TypeError(f"{name} must be an int or a pair of ints, got {value!r}")
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value.item()
    if isinstance(value, Sequence) or isinstance(value, np.ndarray):
        items = list(value)
        if len(items) != 2:
            raise ValueError(f"{name} must be an int or a pair of ints, got {value!r}")
        pair = (_as_int(items[0], name), _as_int(items[1], name))
    else:
        v = _as_int(value, name)
        pair = (v, v)
    if minimum is not None and min(pair) < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
    return pair


def positive_pair(value: Any, name: str) -> Pair:
    return int_pair(value, name, minimum=1)


def choice(value: Any, name: str, allowed: Sequence[str]) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be one of {list(allowed)}, got {value!r}")
    canonical = {a.lower(): a for a in allowed}.get(value.lower())
    if canonical is None:
        raise ValueError(f"{name} must be one of {list(allowed)}, got {value!r}")
    return canonical


def num_threads(value: Any) -> int:
    """None -> 0 (the OpenMP default); otherwise an int >= 1."""
    if value is None:
        return 0
    n = _as_int(value, "num_threads")
    if n < 1:
        raise ValueError(f"num_threads must be None or >= 1, got {value!r}")
    return n


# ----------------------------------------------------------------------------- arrays


def as_array(value: Any, name: str) -> np.ndarray:
    """numpy.asarray with the dtype families this package refuses turned into TypeError."""
    try:
        if not hasattr(value, "__array__") and hasattr(value, "__dlpack__"):
            arr = np.from_dlpack(value)  # DLPack-only producers; numpy.asarray ignores __dlpack__
        else:
            arr = np.asarray(value)
    except Exception as exc:  # ragged lists and the like
        raise TypeError(f"{name} could not be converted to an array: {exc}") from None
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name} must have a real numeric dtype, got dtype {arr.dtype}")
    return arr


def result_dtype(*arrays: Optional[np.ndarray]) -> np.dtype:
    """float32 if every input is float16/float32, else float64 (integers and bools included)."""
    present = [a for a in arrays if a is not None]
    if all(a.dtype.kind == "f" and a.dtype.itemsize <= 4 for a in present):
        return np.dtype(np.float32)
    return np.dtype(np.float64)


def as_compute(arr: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """A C-contiguous native-endian array of `dtype`; a copy only when needed, never written."""
    if arr.dtype is dtype and arr.flags.c_contiguous:  # builtin dtypes are singletons
        return arr
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
    out: Any, shape: Tuple[int, ...], dtype: np.dtype, inputs: Sequence[np.ndarray]
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
    if not flags.writeable:
        raise ValueError("out is read-only")
    for arr in inputs:
        if np.may_share_memory(out, arr):
            raise ValueError("out overlaps an input array")
    return out


# ----------------------------------------------------------------------------- padding


def padding_spec(padding: Any, name: str = "padding") -> Union[str, Tuple[Pair, Pair]]:
    """"same"/"valid", or ((top, bottom), (left, right)) of non-negative ints."""
    if isinstance(padding, np.ndarray) and padding.ndim == 0:
        padding = padding.item()
    if isinstance(padding, str):
        return choice(padding, name, ("same", "valid"))
    if isinstance(padding, (Sequence, np.ndarray)) and not isinstance(padding, bytes):
        items = list(padding)
        if len(items) == 2 and all(
            isinstance(i, (Sequence, np.ndarray)) and not isinstance(i, str) for i in items
        ):
            h = int_pair(items[0], name, minimum=0)
            w = int_pair(items[1], name, minimum=0)
            return (h, w)
    ph, pw = int_pair(padding, name, minimum=0)
    return ((ph, ph), (pw, pw))


@dataclass(frozen=True)
class Geometry:
    """Per-axis crop/pad at the start, pad at the end, and output size, as (h, w) pairs."""

    pad_begin: Pair
    pad_end: Pair
    out_hw: Pair


def conv_geometry(
    in_hw: Pair, kernel_hw: Pair, stride: Pair, dilation: Pair, padding: Any
) -> Geometry:
    """Output of a correlation; "same" is TensorFlow's (ceil(H/stride), odd extra at the end)."""
    spec = padding_spec(padding)
    begin, end, out = [], [], []
    for axis in range(2):
        size, k_eff = in_hw[axis], dilation[axis] * (kernel_hw[axis] - 1) + 1
        s = stride[axis]
        if spec == "same":
            n = -(-size // s)
            total = max((n - 1) * s + k_eff - size, 0)
            lo, hi = total // 2, total - total // 2
        elif spec == "valid":
            lo = hi = 0
        else:
            assert not isinstance(spec, str)
            lo, hi = spec[axis]
        padded = size + lo + hi
        if padded < k_eff:
            raise ValueError(
                f"kernel of effective size {k_eff} is larger than the padded input ({padded}) "
                f"along {'HW'[axis]} (padding={padding!r})"
            )
        begin.append(lo)
        end.append(hi)
        out.append((padded - k_eff) // s + 1)
    return Geometry((begin[0], begin[1]), (end[0], end[1]), (out[0], out[1]))


def transposed_geometry(
    in_hw: Pair,
    kernel_hw: Pair,
    stride: Pair,
    dilation: Pair,
    padding: Any,
    output_padding: Any,
    output_size: Any,
) -> Geometry:
    """Window of the full transposed-convolution output: y[o] = full[o + pad_begin].

    `pad_end` is the crop at the end *before* output_padding is added back.
    """
    spec = padding_spec(padding)
    op = int_pair(output_padding, "output_padding", minimum=0)
    if output_size is not None:
        if op != (0, 0):
            raise ValueError(
                f"output_size and output_padding cannot both be given (output_padding={output_padding!r})"
            )
        if spec == "same":
            raise ValueError("output_size cannot be combined with padding='same'")
        target = positive_pair(output_size, "output_size")
    begin, end, out = [], [], []
    for axis in range(2):
        size, s, d = in_hw[axis], stride[axis], dilation[axis]
        k_eff = d * (kernel_hw[axis] - 1) + 1
        full = (size - 1) * s + k_eff
        if spec == "same":
            if op[axis] != 0:
                raise ValueError(
                    f"output_padding must be 0 with padding='same', got {output_padding!r}"
                )
            total = max(k_eff - s, 0)
            lo, hi = total // 2, total - total // 2
            n = size * s
        else:
            if isinstance(spec, str):
                lo, hi = 0, 0
            else:
                lo, hi = spec[axis]
            smallest = full - lo - hi
            if output_size is not None:
                n = target[axis]
                if not smallest <= n <= smallest + s - 1:
                    raise ValueError(
                        f"output_size {output_size!r} is out of reach: along "
                        f"{'HW'[axis]} it must be between {smallest} and {smallest + s - 1}"
                    )
            else:
                if op[axis] >= max(s, d):
                    raise ValueError(
                        f"output_padding must be smaller than max(stride, dilation) = {max(s, d)} "
                        f"along {'HW'[axis]}, got {output_padding!r}"
                    )
                n = smallest + op[axis]
        if n <= 0:
            raise ValueError(
                f"output size along {'HW'[axis]} would be {n} (input {size}, kernel "
                f"{kernel_hw[axis]}, stride {s}, dilation {d}, padding {padding!r})"
            )
        begin.append(lo)
        end.append(hi)
        out.append(n)
    return Geometry((begin[0], begin[1]), (end[0], end[1]), (out[0], out[1]))


# ----------------------------------------------------------------------------- shapes


@dataclass(frozen=True)
class ConvShapes:
    """The input as NCHW sizes plus whether it came without a batch axis."""

    batched: bool
    n: int
    c: int
    hw: Pair
    kernel_hw: Pair


def conv_shapes(
    x: np.ndarray,
    weight: np.ndarray,
    bias: Optional[np.ndarray],
    groups: Any,
    layout: str,
    transposed: bool,
) -> Tuple[ConvShapes, int, int]:
    """Check ranks, channels and groups; return (shapes, groups, out_channels)."""
    g = _as_int(groups, "groups")
    if g < 1:
        raise ValueError(f"groups must be >= 1, got {groups!r}")
    if x.ndim not in (3, 4):
        raise ValueError(f"x must be 3-D or 4-D ({layout} with optional batch), got shape {x.shape}")
    if weight.ndim != 4:
        raise ValueError(f"weight must be 4-D, got shape {weight.shape}")
    batched = x.ndim == 4
    dims = x.shape if batched else (1,) + x.shape
    if layout == "NCHW":
        n, c, h, w = dims
    else:
        n, h, w, c = dims
    if h < 1 or w < 1:
        raise ValueError(f"x must have spatial size >= 1, got shape {x.shape}")
    if transposed:
        w_in, w_out_per_group = weight.shape[0], weight.shape[1]
        if w_in != c:
            raise ValueError(
                f"weight has {w_in} input channels (weight.shape[0]) but x has {c} (shape {x.shape})"
            )
        if c % g:
            raise ValueError(f"groups={g} does not divide the {c} input channels")
        out_channels = w_out_per_group * g
    else:
        out_channels, w_in_per_group = weight.shape[0], weight.shape[1]
        if c % g or out_channels % g:
            raise ValueError(
                f"groups={g} must divide the {c} input and {out_channels} output channels"
            )
        if w_in_per_group * g != c:
            raise ValueError(
                f"weight expects {w_in_per_group * g} input channels "
                f"(weight.shape[1]={w_in_per_group} x groups={g}) but x has {c} (shape {x.shape})"
            )
    kh, kw = weight.shape[2], weight.shape[3]
    if kh < 1 or kw < 1:
        raise ValueError(f"weight must have a kernel of size >= 1, got shape {weight.shape}")
    if bias is not None and bias.shape != (out_channels,):
        raise ValueError(f"bias must have shape ({out_channels},), got {bias.shape}")
    return ConvShapes(batched, n, c, (h, w), (kh, kw)), g, out_channels


def output_shape(shapes: ConvShapes, channels: int, out_hw: Pair, layout: str) -> Tuple[int, ...]:
    spatial = (out_hw[0], out_hw[1])
    dims = (channels,) + spatial if layout == "NCHW" else spatial + (channels,)
    return ((shapes.n,) + dims) if shapes.batched else dims


def shuffle_shapes(
    x: np.ndarray, factor: Pair, layout: str, inverse: bool, name: str
) -> Tuple[Tuple[int, ...], int, int, int, int]:
    """For pixel_(un)shuffle: (output shape, batch, channels_in, h_in, w_in)."""
    if x.ndim < 3:
        raise ValueError(f"x must have at least 3 dimensions, got shape {x.shape}")
    lead = x.shape[:-3]
    if layout == "NCHW":
        c, h, w = x.shape[-3:]
    else:
        h, w, c = x.shape[-3:]
    rh, rw = factor
    if inverse:
        if h % rh or w % rw:
            raise ValueError(
                f"spatial size {(h, w)} must be divisible by {name}={factor}"
            )
        oc, oh, ow = c * rh * rw, h // rh, w // rw
    else:
        if c % (rh * rw):
            raise ValueError(
                f"channels ({c}) must be divisible by {name}**2 = {rh * rw}"
            )
        oc, oh, ow = c // (rh * rw), h * rh, w * rw
    out = lead + ((oc, oh, ow) if layout == "NCHW" else (oh, ow, oc))
    batch = 1
    for d in lead:
        batch *= d
    return out, batch, c, h, w
