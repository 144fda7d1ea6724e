"""Other frameworks' transposed-convolution arguments, as this package's.

Each function takes a framework's own arguments and returns a :class:`Converted`: the weight in
this package's layout ``(C_in, C_out/groups, *kernel)`` and the keyword arguments of
``subpixel_ext.conv_transpose{1,2,3}d`` (``stride``, ``padding``, ``output_padding``,
``dilation``, ``groups``, ``layout``)::

    c = conventions.from_tensorflow(filters, output_shape, strides, padding="SAME")
    y = spx.conv_transpose2d(x, c.weight, c.bias, **c.kwargs)

Every convention returns a window of the full transposed-convolution output, of length
``L = (H-1)*s + d*(K-1) + 1`` per axis: the window's start is our ``padding`` begin, a window
ending before ``L`` is our ``padding`` end, one ending after it is ``output_padding`` (which must
stay below ``max(stride, dilation)``). A window starting before the full output, or ending too far
past it, has no equivalent here: the functions raise ValueError naming the attribute.

No framework is needed: the only imports of one are ONNX's helper when a ``NodeProto`` is given
and Keras's default data format when a Keras config leaves it unset.
"""

from __future__ import annotations

import operator
from typing import Any, Dict, List, Mapping, NamedTuple, Optional, Sequence, Tuple

import numpy as np

Pair = Tuple[int, int]

# Our layout names per spatial rank: (channels first, channels last).
_LAYOUTS: Dict[int, Tuple[str, str]] = {1: ("NCL", "NLC"), 2: ("NCHW", "NHWC"), 3: ("NCDHW", "NDHWC")}
# TensorFlow's data_format names per spatial rank, in the same order.
_TF_FORMATS: Dict[int, Tuple[str, str]] = {1: ("NCW", "NWC"), 2: ("NCHW", "NHWC"), 3: ("NCDHW", "NDHWC")}


class Converted(NamedTuple):
    """A framework's transposed convolution as this package's arguments.

    ``weight`` is ``(C_in, C_out/groups, *kernel)`` (None when only attributes were given),
    ``kwargs`` the keyword arguments of ``conv_transpose{1,2,3}d``, ``bias`` the layer's bias
    when the source carried one (a Keras layer), else None.
    """

    weight: Optional[np.ndarray]
    kwargs: Dict[str, Any]
    bias: Optional[np.ndarray] = None


# ----------------------------------------------------------------------------- shared


def _ints(value: Any, name: str) -> List[int]:
    """A flat list of Python ints from an int, a sequence, an array, a tensor or a shape."""
    try:
        array = np.asarray(value)
    except ValueError:  # ragged nesting
        raise ValueError(f"{name} must be integers, got {value!r}") from None
    try:
        return [operator.index(v) for v in array.reshape(-1).tolist()]
    except TypeError:
        raise ValueError(f"{name} must be integers, got {value!r}") from None


def _per_axis(value: Any, rank: int, name: str, default: int = 1) -> List[int]:
    """One int per spatial axis from None, an int or a sequence of 1 or ``rank`` ints."""
    if value is None:
        return [default] * rank
    values = _ints(value, name)
    if len(values) == 1:
        return values * rank
    if len(values) != rank:
        raise ValueError(f"{name} must have 1 or {rank} values, got {value!r}")
    return values


def _layout(rank: int, channels_last: bool) -> str:
    if rank not in _LAYOUTS:
        raise ValueError(f"only 1, 2 or 3 spatial axes are supported, got a kernel with {rank}")
    return _LAYOUTS[rank][channels_last]


def _effective(kernel: int, dilation: int) -> int:
    return dilation * (kernel - 1) + 1


def _arguments(
    crops: Sequence[Pair],
    strides: Sequence[int],
    dilations: Sequence[int],
    groups: int,
    layout: str,
    attribute: str,
) -> Dict[str, Any]:
    """Our keyword arguments for the windows ``crops``: per axis the rows cut from the start and
    from the end of the full output, a negative end cut being rows appended past it."""
    padding, output_padding = [], []
    for axis, ((begin, end), s, d) in enumerate(zip(crops, strides, dilations)):
        if begin < 0:
            raise ValueError(
                f"{attribute}: along spatial axis {axis} the output would start {-begin} row(s) "
                f"before the full transposed-convolution output; no padding expresses that"
            )
        if -end >= max(s, d):
            raise ValueError(
                f"{attribute}: along spatial axis {axis} the output would end {-end} row(s) past "
                f"the full transposed-convolution output; output_padding must stay below "
                f"max(stride, dilation) = {max(s, d)}"
            )
        padding.append((begin, max(end, 0)))
        output_padding.append(max(-end, 0))
    return {
        "stride": tuple(strides),
        "padding": tuple(padding),
        "output_padding": tuple(output_padding),
        "dilation": tuple(dilations),
        "groups": groups,
        "layout": layout,
    }


def _weight_from_spatial_first(kernel: Any, name: str) -> np.ndarray:
    """``(*k, C_out, C_in)`` (TensorFlow filter, Keras kernel) as ``(C_in, C_out, *k)``."""
    array = np.asarray(kernel)
    rank = array.ndim - 2
    if rank < 1:
        raise ValueError(f"{name} must be (*kernel, C_out, C_in), got shape {array.shape}")
    return np.ascontiguousarray(array.transpose(rank + 1, rank, *range(rank)))


# ----------------------------------------------------------------------------- TensorFlow


def from_tensorflow(
    filters: Any,
    output_shape: Any,
    strides: Any,
    padding: Any = "SAME",
    data_format: Optional[str] = None,
    dilations: Any = None,
    *,
    input_shape: Any = None,
) -> Converted:
    """``tf.nn.conv{1,2,3}d_transpose(input, filters, output_shape, strides, padding,
    data_format, dilations)`` as this package's arguments.

    ``filters`` is TensorFlow's ``(*k, C_out, C_in)``; ``output_shape`` the full shape
    ``(N, *spatial, C)`` in ``data_format`` (or just the spatial sizes); ``padding`` "SAME",
    "VALID" or explicit ``[[0, 0], [top, bottom], ...]`` pairs in ``data_format`` order. TensorFlow
    derives the input size from ``output_shape``; pass ``input_shape`` to have it checked.
    SAME with an odd ``output_shape`` (which ``padding="same"`` cannot express) becomes
    asymmetric padding plus output_padding.

    Examples
    --------
    >>> import numpy as np, subpixel_ext as spx
    >>> from subpixel_ext import conventions
    >>> filters = np.ones((3, 3, 16, 8), np.float32)       # (kH, kW, C_out, C_in)
    >>> c = conventions.from_tensorflow(filters, (1, 9, 9, 16), strides=2, padding="SAME")
    >>> c.kwargs["padding"], c.kwargs["output_padding"], c.kwargs["layout"]
    (((1, 1), (1, 1)), (0, 0), 'NHWC')
    >>> spx.conv_transpose2d(np.ones((1, 5, 5, 8), np.float32), c.weight, **c.kwargs).shape
    (1, 9, 9, 16)
    """
    weight = _weight_from_spatial_first(filters, "filters")
    rank = weight.ndim - 2
    _layout(rank, True)  # a supported rank
    first, last = _TF_FORMATS[rank]
    if data_format not in (None, first, last):
        raise ValueError(f"data_format must be {first!r} or {last!r} for a {rank}-D filter, got {data_format!r}")
    channels_last = data_format in (None, last)
    spatial = slice(1, rank + 1) if channels_last else slice(2, rank + 2)

    def spatial_values(value: Any, name: str) -> List[int]:
        values = _ints(value, name) if value is not None else [1]
        if len(values) == rank + 2:
            return values[spatial]
        return _per_axis(values, rank, name)

    sizes = spatial_values(output_shape, "output_shape")
    stride = spatial_values(strides, "strides")
    dilation = spatial_values(dilations, "dilations")
    explicit = _tf_explicit_padding(padding, rank, spatial)
    inputs, crops = [], []
    for axis in range(rank):
        k_eff, s, n = _effective(weight.shape[2 + axis], dilation[axis]), stride[axis], sizes[axis]
        if explicit is not None:
            begin, end = explicit[axis]
            size = (n + begin + end - k_eff) // s + 1
        elif padding.upper() == "SAME":
            size = -(-n // s)
            begin = max((size - 1) * s + k_eff - n, 0) // 2
        else:
            size, begin = (n - k_eff) // s + 1, 0
        if size < 1:
            raise ValueError(f"output_shape={output_shape!r} is too small for the kernel along spatial axis {axis}")
        inputs.append(size)
        crops.append((begin, (size - 1) * s + k_eff - begin - n))
    if input_shape is not None and spatial_values(input_shape, "input_shape") != inputs:
        raise ValueError(
            f"output_shape={output_shape!r} with padding={padding!r} and strides={strides!r} "
            f"needs an input of spatial size {tuple(inputs)}, got input_shape={input_shape!r}"
        )
    layout = _layout(rank, channels_last)
    kwargs = _arguments(crops, stride, dilation, 1, layout, f"output_shape={output_shape!r}")
    return Converted(weight, kwargs)


def _tf_explicit_padding(padding: Any, rank: int, spatial: slice) -> Optional[List[Pair]]:
    """Explicit ``[[0, 0], [begin, end], ..., [0, 0]]`` padding as spatial pairs; None for a mode."""
    if isinstance(padding, str):
        if padding.upper() not in ("SAME", "VALID"):
            raise ValueError(f"padding must be 'SAME', 'VALID' or explicit pairs, got {padding!r}")
        return None
    values = _ints(padding, "padding")
    if len(values) != 2 * (rank + 2):
        raise ValueError(f"explicit padding must be {rank + 2} (begin, end) pairs, got {padding!r}")
    pairs = [(values[2 * i], values[2 * i + 1]) for i in range(rank + 2)]
    if any(pair != (0, 0) for i, pair in enumerate(pairs) if i not in range(rank + 2)[spatial]):
        raise ValueError(f"explicit padding of the batch and channel axes must be [0, 0], got {padding!r}")
    return pairs[spatial]


# ----------------------------------------------------------------------------- Keras


def from_keras(layer_or_config: Any) -> Converted:
    """A Keras ``Conv{1,2,3}DTranspose`` layer, or its config, as this package's arguments.

    Accepts the layer (its kernel and bias are converted when it is built), ``layer.get_config()``
    or ``keras.saving.serialize_keras_object(layer)``. Keras's own output size differs from
    ``tf.nn``'s: ``"valid"`` gives ``(H-1)*s + max(K_e, s)`` rows (``K_e = d*(K-1)+1``), so
    ``H*s`` when the kernel is smaller than the stride; ``"same"`` gives ``H*s``, or with
    ``output_padding`` ``(H-1)*s + K_e % 2 + output_padding``, cropping ``(K_e - K_e % 2 -
    output_padding) // 2`` rows at the start (the rest at the end; a negative total is rows
    appended at the end).

    Examples
    --------
    >>> from subpixel_ext import conventions
    >>> config = {"filters": 8, "kernel_size": (3, 3), "strides": (2, 2), "padding": "same",
    ...           "output_padding": (1, 1), "data_format": "channels_last",
    ...           "dilation_rate": (1, 1), "activation": "linear"}
    >>> c = conventions.from_keras(config)
    >>> c.kwargs["padding"], c.kwargs["output_padding"], c.weight is None
    (((0, 1), (0, 1)), (0, 0), True)
    """
    config, weight, bias = _keras_parts(layer_or_config)
    if "output_padding" not in config or "kernel_size" not in config:
        raise ValueError(
            "not the config of a Keras Conv1DTranspose/Conv2DTranspose/Conv3DTranspose layer "
            f"(no kernel_size or output_padding): {sorted(config)}"
        )
    if config.get("activation") not in (None, "linear"):
        raise ValueError(f"activation={config['activation']!r} has no equivalent here; only 'linear'")
    kernel = _ints(config["kernel_size"], "kernel_size")
    rank = len(kernel)
    strides = _per_axis(config.get("strides"), rank, "strides")
    dilations = _per_axis(config.get("dilation_rate"), rank, "dilation_rate")
    output_padding = config.get("output_padding")
    extra = None if output_padding is None else _per_axis(output_padding, rank, "output_padding")
    padding = str(config.get("padding", "valid")).lower()
    if padding not in ("valid", "same"):
        raise ValueError(f"padding must be 'valid' or 'same', got {config.get('padding')!r}")
    data_format = config.get("data_format") or _keras_default_data_format()
    if data_format not in ("channels_first", "channels_last"):
        raise ValueError(f"data_format must be 'channels_first' or 'channels_last', got {data_format!r}")
    crops = []
    for axis in range(rank):
        k_eff, s = _effective(kernel[axis], dilations[axis]), strides[axis]
        op = None if extra is None else extra[axis]
        if padding == "valid":
            crops.append((0, -(max(k_eff, s) - k_eff if op is None else op)))
            continue
        total = k_eff - s if op is None else k_eff - k_eff % 2 - op
        crops.append((total // 2, total - total // 2) if total >= 0 else (0, total))
    kwargs = _arguments(
        crops, strides, dilations, 1, _layout(rank, data_format == "channels_last"),
        f"padding={config.get('padding')!r}, output_padding={output_padding!r}",
    )
    return Converted(weight, kwargs, bias)


def _keras_parts(layer_or_config: Any) -> Tuple[Mapping[str, Any], Optional[np.ndarray], Optional[np.ndarray]]:
    """(config, our weight or None, bias or None) of a layer, a config or a serialized layer."""
    if isinstance(layer_or_config, Mapping):
        config = layer_or_config
        if "class_name" in config and isinstance(config.get("config"), Mapping):
            config = config["config"]
        return config, None, None
    if not hasattr(layer_or_config, "get_config"):
        raise ValueError(f"expected a Keras layer or its config dict, got {type(layer_or_config).__name__}")
    config = layer_or_config.get_config()
    weights = layer_or_config.get_weights()  # [kernel, bias] once built, [] before
    weight = _weight_from_spatial_first(weights[0], "kernel") if weights else None
    bias = np.asarray(weights[1]) if len(weights) > 1 else None
    return config, weight, bias


def _keras_default_data_format() -> str:
    try:
        import keras
    except ImportError:
        return "channels_last"  # Keras's own default
    return str(keras.config.image_data_format())


# ----------------------------------------------------------------------------- ONNX

_ONNX_ATTRIBUTES = (
    "auto_pad", "dilations", "group", "kernel_shape", "output_padding", "output_shape", "pads", "strides",
)


def from_onnx(node: Any, input_shape: Any = None, weight: Any = None) -> Converted:
    """An ONNX ``ConvTranspose`` (a ``NodeProto`` or a dict of its attributes) as our arguments.

    ``weight`` is ONNX's ``W`` input, ``(C_in, C_out/group, *k)`` as ours (None: the kernel size
    comes from ``kernel_shape``). ``input_shape`` ``(N, C, *spatial)`` is needed only with
    ``output_shape``. Follows the ONNX specification: ``pads`` (begin..., end...) crop;
    ``output_shape`` generates them (``SAME_UPPER``: the odd row cropped at the end, otherwise
    at the start; pads ignored; an output_shape past the full output is extended at the end, as
    ONNX Runtime does); ``SAME_UPPER`` / ``SAME_LOWER`` give ``H*stride`` rows, also when
    ``K_e + output_padding < stride``: ``SAME_UPPER`` then appends the missing rows at the end,
    as TensorFlow's SAME, ``SAME_LOWER`` as the spec's ``total - total // 2`` with a negative
    total (ValueError when that starts before the full output). ONNX Runtime returns
    ``(H-1)*stride + K_e + output_padding`` rows there instead.

    Examples
    --------
    >>> import numpy as np, subpixel_ext as spx
    >>> from subpixel_ext import conventions
    >>> c = conventions.from_onnx({"strides": [2, 2], "pads": [1, 0, 1, 0]},
    ...                           weight=np.ones((8, 4, 4, 4), np.float32))
    >>> c.kwargs["padding"]
    ((1, 1), (0, 0))
    >>> c = conventions.from_onnx({"strides": [2, 2], "auto_pad": "SAME_LOWER"},
    ...                           weight=np.ones((8, 4, 3, 3), np.float32))
    >>> c.kwargs["padding"], spx.conv_transpose2d(np.ones((1, 8, 5, 5)), c.weight, **c.kwargs).shape
    (((1, 0), (1, 0)), (1, 4, 10, 10))
    """
    attributes = _onnx_attributes(node)
    w = None if weight is None else np.asarray(weight)
    kernel = _onnx_kernel(attributes, w, input_shape)
    rank = len(kernel)
    strides = _per_axis(attributes.get("strides"), rank, "strides")
    dilations = _per_axis(attributes.get("dilations"), rank, "dilations")
    adjust = _per_axis(attributes.get("output_padding"), rank, "output_padding", default=0)
    auto_pad = attributes.get("auto_pad", "NOTSET")
    if auto_pad not in ("NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID"):
        raise ValueError(f"auto_pad must be NOTSET, SAME_UPPER, SAME_LOWER or VALID, got {auto_pad!r}")
    pads = _ints(attributes.get("pads", [0] * 2 * rank), "pads")
    if len(pads) != 2 * rank or min(pads) < 0:
        raise ValueError(f"pads must be {2 * rank} non-negative ints (begin..., end...), got {pads!r}")
    if auto_pad != "NOTSET" and any(pads) and "output_shape" not in attributes:
        raise ValueError(f"pads={pads!r} cannot be combined with auto_pad={auto_pad!r}")
    targets = _onnx_output_shape(attributes, rank, input_shape)
    crops = []
    for axis in range(rank):
        k_eff, s, adj = _effective(kernel[axis], dilations[axis]), strides[axis], adjust[axis]
        if targets is not None:
            full = (targets[axis][0] - 1) * s + k_eff
            total = full + adj - targets[axis][1]
            begin = total // 2 if auto_pad == "SAME_UPPER" else total - total // 2
            begin = max(begin, 0)  # an output past the full one is extended at the end
            crops.append((begin, full - begin - targets[axis][1]))
        elif auto_pad in ("SAME_UPPER", "SAME_LOWER"):
            total = k_eff + adj - s  # (H-1)*s + adj + k_eff - H*s, for any H
            if auto_pad == "SAME_UPPER":  # a short kernel's missing rows at the end, as TF's SAME
                begin = max(total, 0) // 2
            else:
                begin = total - total // 2
            crops.append((begin, total - adj - begin))
        elif auto_pad == "VALID":
            crops.append((0, -adj))
        else:
            crops.append((pads[axis], pads[rank + axis] - adj))
    group = _ints(attributes.get("group", 1), "group")[0]
    attribute = ", ".join(f"{k}={v!r}" for k, v in attributes.items() if k != "kernel_shape")
    return Converted(w, _arguments(crops, strides, dilations, group, _layout(rank, False), attribute))


def _onnx_attributes(node: Any) -> Dict[str, Any]:
    """The attributes of a NodeProto (checked to be a ConvTranspose) or of a dict; strings decoded."""
    if isinstance(node, Mapping):
        raw = dict(node)
    else:
        if getattr(node, "op_type", None) != "ConvTranspose":
            raise ValueError(f"expected a ConvTranspose node, got op_type={getattr(node, 'op_type', None)!r}")
        from onnx import helper

        raw = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    unknown = sorted(set(raw) - set(_ONNX_ATTRIBUTES))
    if unknown:
        raise ValueError(f"unknown ConvTranspose attribute(s) {unknown}; known: {list(_ONNX_ATTRIBUTES)}")
    return {k: v.decode() if isinstance(v, bytes) else v for k, v in raw.items()}


def _onnx_kernel(attributes: Mapping[str, Any], weight: Optional[np.ndarray], input_shape: Any) -> List[int]:
    if weight is not None:
        kernel = list(weight.shape[2:])
        if "kernel_shape" in attributes and _ints(attributes["kernel_shape"], "kernel_shape") != kernel:
            raise ValueError(
                f"kernel_shape={attributes['kernel_shape']!r} does not match the weight's kernel {tuple(kernel)}"
            )
    elif "kernel_shape" in attributes:
        kernel = _ints(attributes["kernel_shape"], "kernel_shape")
    else:
        raise ValueError("kernel_shape is needed when no weight is given")
    if input_shape is not None and len(_ints(input_shape, "input_shape")) != len(kernel) + 2:
        raise ValueError(f"input_shape={input_shape!r} must be (N, C, *spatial) with {len(kernel)} spatial axes")
    return kernel


def _onnx_output_shape(attributes: Mapping[str, Any], rank: int, input_shape: Any) -> Optional[List[Pair]]:
    """(input size, output size) per axis when ``output_shape`` is given, else None."""
    if "output_shape" not in attributes:
        return None
    sizes = _ints(attributes["output_shape"], "output_shape")
    if len(sizes) == rank + 2:
        sizes = sizes[2:]
    if len(sizes) != rank:
        raise ValueError(f"output_shape must have {rank} spatial sizes, got {attributes['output_shape']!r}")
    if input_shape is None:
        raise ValueError(f"input_shape is needed with output_shape={attributes['output_shape']!r}")
    return list(zip(_ints(input_shape, "input_shape")[2:], sizes))


# ----------------------------------------------------------------------------- JAX


def from_jax(
    rhs: Any,
    strides: Sequence[int],
    padding: Any,
    rhs_dilation: Optional[Sequence[int]] = None,
    dimension_numbers: Any = None,
    transpose_kernel: bool = False,
    use_consistent_padding: bool = False,
) -> Converted:
    """``jax.lax.conv_transpose(lhs, rhs, strides, padding, rhs_dilation, dimension_numbers,
    transpose_kernel, use_consistent_padding=...)`` as this package's arguments.

    JAX correlates the stride-dilated input with ``rhs``: without ``transpose_kernel`` the kernel
    is neither flipped nor has its I/O axes swapped, so the weight here is ``rhs`` flipped,
    as ``(I, O, *k)``; with it, ``rhs`` is read as the forward convolution's ``(O, I, *k)``.
    Explicit ``padding`` pairs pad the dilated input (``(K_e-1-begin, K_e-1-end)`` of our crop),
    or with ``use_consistent_padding=True`` are PyTorch's crops. ``dimension_numbers`` as in
    ``lax.conv_general_dilated`` (strings such as ``("NHWC", "HWIO", "NHWC")`` or
    ``ConvDimensionNumbers``); the input must be batch-first, channels first or last.

    Examples
    --------
    >>> import numpy as np, subpixel_ext as spx
    >>> from subpixel_ext import conventions
    >>> rhs = np.ones((4, 4, 8, 16), np.float32)          # HWIO
    >>> c = conventions.from_jax(rhs, (2, 2), "SAME")
    >>> c.weight.shape, c.kwargs["padding"], c.kwargs["layout"]
    ((8, 16, 4, 4), ((1, 1), (1, 1)), 'NHWC')
    >>> spx.conv_transpose2d(np.ones((1, 5, 5, 8), np.float32), c.weight, **c.kwargs).shape
    (1, 10, 10, 16)
    """
    kernel_array = np.asarray(rhs)
    rank = kernel_array.ndim - 2
    lhs_perm, rhs_perm, out_perm = _jax_permutations(dimension_numbers, rank)
    # JAX orders the spatial axes (and strides, dilation, padding) as the kernel's spec does;
    # ours follow the input's axes.
    order = [int(i) for i in np.argsort(lhs_perm[2:])]
    channels = lhs_perm[1]
    if lhs_perm[0] != 0 or channels not in (1, rank + 1) or out_perm != lhs_perm:
        raise ValueError(
            f"dimension_numbers={dimension_numbers!r}: input and output must share one layout, "
            "batch first and channels first or last"
        )
    oi_kernel = kernel_array.transpose(rhs_perm)  # (O, I, *k) in the kernel's spatial order
    stride = _per_axis(strides, rank, "strides")
    dilation = _per_axis(rhs_dilation, rank, "rhs_dilation")
    crops = _jax_crops(padding, oi_kernel.shape[2:], stride, dilation, use_consistent_padding)
    oi_kernel = oi_kernel.transpose(0, 1, *(2 + j for j in order))
    if transpose_kernel:
        weight = oi_kernel
    else:
        weight = oi_kernel.swapaxes(0, 1)[(slice(None), slice(None)) + (slice(None, None, -1),) * rank]
    kwargs = _arguments(
        [crops[j] for j in order], [stride[j] for j in order], [dilation[j] for j in order], 1,
        _layout(rank, channels == rank + 1), f"padding={padding!r}",
    )
    return Converted(np.ascontiguousarray(weight), kwargs)


def _jax_crops(
    padding: Any, kernel: Sequence[int], strides: Sequence[int], dilations: Sequence[int], consistent: bool
) -> List[Pair]:
    """Our crop per axis for JAX's padding: a mode, pads of the dilated input, or (with
    use_consistent_padding) a mode or a forward-convolution pair per axis."""
    rank = len(kernel)
    per_axis = [padding] * rank if isinstance(padding, str) else list(padding)
    if len(per_axis) != rank:
        raise ValueError(f"padding must be 'SAME', 'VALID' or {rank} (begin, end) pairs, got {padding!r}")
    crops = []
    for mode, k, s, d in zip(per_axis, kernel, strides, dilations):
        k_eff = _effective(k, d)
        if isinstance(mode, str) and (consistent or isinstance(padding, str)):
            before, after = _jax_mode_padding(mode, k_eff, s, padding)
            crops.append((k_eff - 1 - before, k_eff - 1 - after))
            continue
        pair = _ints(mode, "padding")
        if len(pair) != 2:
            raise ValueError(f"padding must be 'SAME', 'VALID' or {rank} (begin, end) pairs, got {padding!r}")
        crops.append((pair[0], pair[1]) if consistent else (k_eff - 1 - pair[0], k_eff - 1 - pair[1]))
    return crops


def _jax_mode_padding(mode: str, k_eff: int, stride: int, padding: Any) -> Pair:
    """JAX's ``_conv_transpose_padding``: the pads of the dilated input for SAME / VALID."""
    if mode == "SAME":
        total = k_eff + stride - 2
        before = k_eff - 1 if stride > k_eff - 1 else -(-total // 2)
    elif mode == "VALID":
        total = k_eff + stride - 2 + max(k_eff - stride, 0)
        before = k_eff - 1
    else:
        raise ValueError(f"padding must be 'SAME', 'VALID' or (begin, end) pairs, got {padding!r}")
    return before, total - before


_JAX_DEFAULT_SPECS = {
    1: ("NHC", "HIO", "NHC"), 2: ("NHWC", "HWIO", "NHWC"), 3: ("NHWDC", "HWDIO", "NHWDC"),
}


def _jax_permutations(dimension_numbers: Any, rank: int) -> Tuple[Tuple[int, ...], ...]:
    """(lhs, rhs, out) axis permutations to (N, C, *spatial) / (O, I, *spatial), as JAX's
    ``conv_general_permutations``: spatial axes are matched by letter, in the kernel's order."""
    specs = _JAX_DEFAULT_SPECS.get(rank) if dimension_numbers is None else tuple(dimension_numbers)
    problem = ValueError(f"dimension_numbers={dimension_numbers!r} do not fit a kernel with {rank} spatial axes")
    if specs is None or len(specs) != 3:
        raise problem
    if not all(isinstance(spec, str) for spec in specs):  # ConvDimensionNumbers: permutations already
        perms = tuple(tuple(_ints(spec, "dimension_numbers")) for spec in specs)
    else:
        spatial = [c for c in specs[1] if c not in "OI"]

        def permutation(spec: str, pair: str) -> Tuple[int, ...]:
            rest = [i for i, c in enumerate(spec) if c not in pair]
            if any(spec.count(c) != 1 for c in pair) or sorted(spec[i] for i in rest) != sorted(spatial):
                raise problem
            return (spec.index(pair[0]), spec.index(pair[1])) + tuple(
                sorted(rest, key=lambda i: spatial.index(spec[i]))
            )

        perms = (permutation(specs[0], "NC"), permutation(specs[1], "OI"), permutation(specs[2], "NC"))
    if any(sorted(perm) != list(range(rank + 2)) for perm in perms):
        raise problem
    return perms
