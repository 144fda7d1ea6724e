"""subpixel_ext.conventions against the real frameworks, on seeded random configurations.

Each framework's tests skip (with the reason) when it is not installed. 2-D results go through
``subpixel_ext.conv_transpose2d``; 1-D and 3-D through :func:`torch_semantics`, this package's
semantics computed with torch (checked against conv_transpose2d below), until
``conv_transpose1d/3d`` exist.
"""

from __future__ import annotations

import os
import pathlib
import re
import subprocess
import sys
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import pytest

import subpixel_ext as spx
from subpixel_ext import conventions

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TensorFlow's start-up chatter

SEEDS = range(8)
RANKS = (1, 2, 3)
SPATIAL = "HWD"


def ours(x: np.ndarray, weight: np.ndarray, bias: Optional[np.ndarray] = None, **kwargs: Any) -> np.ndarray:
    """This package's transposed convolution of any rank."""
    function: Callable[..., np.ndarray] = getattr(spx, f"conv_transpose{weight.ndim - 2}d")
    return function(x, weight, bias, **kwargs)


def torch_semantics(
    x: np.ndarray,
    weight: np.ndarray,
    bias: Optional[np.ndarray] = None,
    *,
    stride: Sequence[int],
    padding: Sequence[Tuple[int, int]],
    output_padding: Sequence[int],
    dilation: Sequence[int],
    groups: int,
    layout: str,
) -> np.ndarray:
    """The window ``[begin, L - end + output_padding)`` per axis of the full output (torch,
    padding 0) continued by zeros, plus the bias: this package's semantics, independently of
    its code."""
    import torch
    import torch.nn.functional as F

    rank = weight.ndim - 2
    channels_last = layout.endswith("C")
    xt = torch.from_numpy(np.moveaxis(x, -1, 1) if channels_last else x).double()
    conv = (F.conv_transpose1d, F.conv_transpose2d, F.conv_transpose3d)[rank - 1]
    full = conv(xt, torch.from_numpy(weight).double(), stride=tuple(stride), dilation=tuple(dilation), groups=groups)
    extension: List[int] = []
    for op in reversed(output_padding):  # F.pad lists the last axis first
        extension += [0, op]
    continued = F.pad(full, extension)
    windows = [slice(b, full.shape[2 + i] - e + op) for i, ((b, e), op) in enumerate(zip(padding, output_padding))]
    y = continued[(slice(None), slice(None), *windows)]
    if bias is not None:
        y = y + torch.from_numpy(bias).double().reshape((1, -1) + (1,) * rank)
    out = y.numpy()
    return np.moveaxis(out, 1, -1) if channels_last else out


def assert_matches(actual: np.ndarray, expected: Any, context: object) -> None:
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape, context
    scale = max(1.0, float(np.abs(expected).max(initial=0.0)))
    np.testing.assert_allclose(actual, expected, rtol=0, atol=1e-4 * scale, err_msg=str(context))


def uniform(rng: np.random.Generator, *shape: int) -> np.ndarray:
    return rng.uniform(-1.0, 1.0, shape).astype(np.float32)


def channels_last_of(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.moveaxis(x, 1, -1))


# ----------------------------------------------------------------------------- the test helper


@pytest.mark.parametrize("seed", SEEDS)
def test_torch_semantics_is_conv_transpose2d(seed: int) -> None:
    pytest.importorskip("torch")
    rng = np.random.default_rng(seed)
    stride, dilation = tuple(rng.integers(1, 4, 2)), tuple(rng.integers(1, 3, 2))
    kernel = tuple(rng.integers(1, 5, 2))
    padding = tuple((int(rng.integers(0, k)), int(rng.integers(0, k))) for k in kernel)
    output_padding = tuple(int(rng.integers(0, max(s, d))) for s, d in zip(stride, dilation))
    x, w, b = uniform(rng, 2, 2, 5, 4), uniform(rng, 2, 3, *kernel), uniform(rng, 3)
    kwargs = dict(stride=stride, padding=padding, output_padding=output_padding, dilation=dilation, groups=1)
    for layout, xin in (("NCHW", x), ("NHWC", channels_last_of(x))):
        expected = spx.conv_transpose2d(xin, w, b, layout=layout, **kwargs)
        assert_matches(torch_semantics(xin, w, b, layout=layout, **kwargs), expected, kwargs)


# ----------------------------------------------------------------------------- TensorFlow


def tf_case(rng: np.random.Generator, rank: int) -> Dict[str, Any]:
    """A random tf.nn.conv_transpose call TensorFlow's CPU kernels accept (no dilation; explicit
    padding only in 2-D), with an output_shape it accepts (any of up to `stride` sizes)."""
    mode = str(rng.choice(["SAME", "VALID", "EXPLICIT"] if rank == 2 else ["SAME", "VALID"]))
    inputs, kernel = [int(v) for v in rng.integers(1, 6, rank)], [int(v) for v in rng.integers(1, 6, rank)]
    strides = [int(v) for v in rng.integers(1, 5, rank)]
    sizes, pads = [], [(0, 0)]
    for h, k, s in zip(inputs, kernel, strides):
        extra = int(rng.integers(0, s))
        if mode == "SAME":
            sizes.append((h - 1) * s + 1 + extra)
        elif mode == "VALID":
            sizes.append((h - 1) * s + k + extra)
        else:
            begin, end = int(rng.integers(0, k)), int(rng.integers(0, k))
            if (h - 1) * s + k - begin - end + extra < 1:
                begin = end = 0
            sizes.append((h - 1) * s + k - begin - end + extra)
            pads.append((begin, end))
    padding: Any = mode if mode != "EXPLICIT" else [list(p) for p in pads + [(0, 0)]]
    return dict(inputs=inputs, kernel=kernel, strides=strides, sizes=sizes, padding=padding)


@pytest.mark.parametrize("rank", RANKS)
@pytest.mark.parametrize("seed", SEEDS)
def test_tensorflow_conv_transpose(rank: int, seed: int) -> None:
    tf = pytest.importorskip("tensorflow")
    rng = np.random.default_rng(100 * rank + seed)
    case = tf_case(rng, rank)
    c_in, c_out, n = (int(v) for v in rng.integers(1, 4, 3))
    x = rng.uniform(-1, 1, [n, *case["inputs"], c_in])
    filters = rng.uniform(-1, 1, [*case["kernel"], c_out, c_in])
    output_shape = [n, *case["sizes"], c_out]
    expected = tf.nn.conv_transpose(x, filters, output_shape, case["strides"], case["padding"]).numpy()
    converted = conventions.from_tensorflow(
        filters, output_shape, case["strides"], case["padding"], input_shape=x.shape
    )
    assert_matches(ours(x, converted.weight, **converted.kwargs), expected, case)
    # The same call on channels-first data (TensorFlow's CPU kernels run only channels-last).
    first = conventions.from_tensorflow(
        filters, [n, c_out, *case["sizes"]], case["strides"], _channels_first_padding(case["padding"]),
        data_format=("NCW", "NCHW", "NCDHW")[rank - 1],
    )
    y_first = ours(np.ascontiguousarray(np.moveaxis(x, -1, 1)), first.weight, **first.kwargs)
    assert_matches(np.moveaxis(y_first, 1, -1), expected, case)


def _channels_first_padding(padding: Any) -> Any:
    return padding if isinstance(padding, str) else [padding[0], padding[-1], *padding[1:-1]]


def test_tensorflow_odd_output_shape_with_same() -> None:
    """`padding="same"` gives only H*s; TF SAME's other sizes map to asymmetric crops."""
    tf = pytest.importorskip("tensorflow")
    rng = np.random.default_rng(7)
    x, filters = rng.uniform(-1, 1, (1, 6, 6, 3)), rng.uniform(-1, 1, (4, 4, 2, 3))
    expected = tf.nn.conv2d_transpose(x, filters, (1, 11, 11, 2), 2, "SAME").numpy()
    converted = conventions.from_tensorflow(filters, (1, 11, 11, 2), 2, "SAME")
    assert converted.kwargs["padding"][0][0] != converted.kwargs["padding"][0][1]
    assert_matches(spx.conv_transpose2d(x, converted.weight, **converted.kwargs), expected, converted.kwargs)


def test_tensorflow_input_shape_is_checked() -> None:
    with pytest.raises(ValueError, match=r"output_shape=.*needs an input of spatial size \(5, 5\)"):
        conventions.from_tensorflow(np.ones((3, 3, 2, 3)), (1, 10, 10, 2), 2, input_shape=(1, 4, 4, 3))
    with pytest.raises(ValueError, match="data_format"):
        conventions.from_tensorflow(np.ones((3, 3, 2, 3)), (1, 10, 10, 2), 2, data_format="NCW")


# ----------------------------------------------------------------------------- Keras


def keras_config(rng: np.random.Generator, rank: int) -> Dict[str, Any]:
    """A random Conv{rank}DTranspose config the TensorFlow backend runs on the CPU (no dilation;
    with "same" and output_padding, TF needs kernel % 2 + output_padding >= 1)."""
    kernel = tuple(int(v) for v in rng.integers(1, 6, rank))
    strides = tuple(int(v) for v in rng.integers(1, 5, rank))
    padding = str(rng.choice(["valid", "same"]))
    output_padding: Optional[Tuple[int, ...]] = None
    if rng.random() < 0.6:
        output_padding = tuple(int(rng.integers(0, s)) for s in strides)
        if padding == "same" and any(k % 2 + op == 0 for k, op in zip(kernel, output_padding)):
            output_padding = None
    return dict(filters=int(rng.integers(1, 4)), kernel_size=kernel, strides=strides, padding=padding,
                output_padding=output_padding, data_format="channels_last")


@pytest.mark.parametrize("rank", RANKS)
@pytest.mark.parametrize("seed", SEEDS)
def test_keras_conv_transpose_layer(rank: int, seed: int) -> None:
    keras = pytest.importorskip("keras")
    rng = np.random.default_rng(200 * rank + seed)
    config = keras_config(rng, rank)
    layer = (keras.layers.Conv1DTranspose, keras.layers.Conv2DTranspose, keras.layers.Conv3DTranspose)[rank - 1](
        **config, bias_initializer=keras.initializers.RandomUniform(-1, 1)
    )
    x = uniform(rng, int(rng.integers(1, 3)), *(int(v) for v in rng.integers(1, 6, rank)), int(rng.integers(1, 4)))
    expected = keras.ops.convert_to_numpy(layer(x))
    converted = conventions.from_keras(layer)
    assert converted.weight is not None and converted.bias is not None
    assert_matches(ours(x, converted.weight, converted.bias, **converted.kwargs), expected, config)
    assert conventions.from_keras(layer.get_config()).kwargs == converted.kwargs
    first = conventions.from_keras({**layer.get_config(), "data_format": "channels_first"})
    y_first = ours(np.ascontiguousarray(np.moveaxis(x, -1, 1)), converted.weight, converted.bias, **first.kwargs)
    assert_matches(np.moveaxis(y_first, 1, -1), expected, config)


@pytest.mark.parametrize(
    "padding, output_padding, kernel, stride",
    [("valid", None, 2, 3), ("same", 1, 3, 2), ("same", 2, 4, 3), ("same", None, 1, 3), ("valid", 1, 2, 2)],
)
def test_keras_differs_from_tf_nn(padding: str, output_padding: Optional[int], kernel: int, stride: int) -> None:
    """Keras's own rules: "valid" with kernel < stride gives H*s rows; "same" with
    output_padding, which tf.nn's SAME (and padding="same" here) has no notion of."""
    keras = pytest.importorskip("keras")
    rng = np.random.default_rng(kernel * 10 + stride)
    layer = keras.layers.Conv2DTranspose(2, kernel, stride, padding, output_padding)
    x = uniform(rng, 1, 5, 4, 3)
    expected = keras.ops.convert_to_numpy(layer(x))
    converted = conventions.from_keras(layer)
    assert converted.weight is not None
    assert_matches(spx.conv_transpose2d(x, converted.weight, converted.bias, **converted.kwargs), expected, padding)


def test_keras_serialized_layer_and_refusals() -> None:
    keras = pytest.importorskip("keras")
    layer = keras.layers.Conv2DTranspose(4, 3, 2, "same", output_padding=1)
    serialized = keras.saving.serialize_keras_object(layer)
    assert conventions.from_keras(serialized).kwargs == conventions.from_keras(layer.get_config()).kwargs
    with pytest.raises(ValueError, match="activation='relu'"):
        conventions.from_keras(keras.layers.Conv2DTranspose(4, 3, activation="relu"))
    with pytest.raises(ValueError, match="output_padding"):
        conventions.from_keras(keras.layers.Conv2D(4, 3).get_config())


# ----------------------------------------------------------------------------- ONNX


def onnx_case(rng: np.random.Generator, rank: int, with_output_shape: bool) -> Dict[str, Any]:
    """Random ConvTranspose attributes and shapes, every attribute in play."""
    kernel = [int(v) for v in rng.integers(1, 5, rank)]
    strides = [int(v) for v in rng.integers(1, 4, rank)]
    dilations = [int(v) for v in rng.integers(1, 3, rank)]
    inputs = [int(v) for v in rng.integers(1, 6, rank)]
    group = int(rng.integers(1, 3))
    attributes: Dict[str, Any] = dict(kernel_shape=kernel, strides=strides, dilations=dilations, group=group)
    if rng.random() < 0.5:
        attributes["output_padding"] = [int(rng.integers(0, s)) for s in strides]
    adjust = attributes.get("output_padding", [0] * rank)
    auto_pad = str(rng.choice(["NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID"]))
    if auto_pad != "NOTSET":
        attributes["auto_pad"] = auto_pad
    full = [(h - 1) * s + d * (k - 1) + 1 for h, s, d, k in zip(inputs, strides, dilations, kernel)]
    if with_output_shape:
        attributes["output_shape"] = [int(rng.integers(1, f + a + 1)) for f, a in zip(full, adjust)]
    elif auto_pad == "NOTSET":
        begin = [int(rng.integers(0, f)) for f in full]
        attributes["pads"] = begin + [int(rng.integers(0, f - b)) for f, b in zip(full, begin)]
    return dict(attributes=attributes, inputs=inputs, group=group, kernel=kernel)


def onnx_model(attributes: Dict[str, Any], x: np.ndarray, w: np.ndarray) -> Any:
    from onnx import TensorProto, helper

    node = helper.make_node("ConvTranspose", ["x", "w"], ["y"], **attributes)
    graph = helper.make_graph(
        [node], "conv_transpose",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, x.shape),
         helper.make_tensor_value_info("w", TensorProto.FLOAT, w.shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
    )
    return node, helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def onnx_inputs(rng: np.random.Generator, case: Dict[str, Any]) -> Tuple[np.ndarray, np.ndarray]:
    group = case["group"]
    c_in, c_out = group * int(rng.integers(1, 3)), group * int(rng.integers(1, 3))
    return uniform(rng, int(rng.integers(1, 3)), c_in, *case["inputs"]), uniform(rng, c_in, c_out // group, *case["kernel"])


def ort_run(model: Any, x: np.ndarray, w: np.ndarray) -> np.ndarray:
    ort = pytest.importorskip("onnxruntime")
    options = ort.SessionOptions()
    options.log_severity_level = 3  # no warnings about the output shape left undeclared
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return np.asarray(session.run(None, {"x": x, "w": w})[0])


def onnxruntime_follows_the_spec(case: Dict[str, Any]) -> bool:
    """False where ONNX Runtime departs from the ONNX spec: SAME_* padding with a kernel shorter
    than stride - output_padding (it returns (H-1)*s + K_e + output_padding rows, not H*s)."""
    a = case["attributes"]
    if a.get("auto_pad", "NOTSET") not in ("SAME_UPPER", "SAME_LOWER") or "output_shape" in a:
        return True
    adjust = a.get("output_padding", [0] * len(a["strides"]))
    return all(d * (k - 1) + 1 + op >= s for k, s, d, op in zip(a["kernel_shape"], a["strides"], a["dilations"], adjust))


@pytest.mark.parametrize("with_output_shape", [False, True])
@pytest.mark.parametrize("rank", RANKS)
@pytest.mark.parametrize("seed", SEEDS)
def test_onnx_conv_transpose_against_onnxruntime(rank: int, seed: int, with_output_shape: bool) -> None:
    pytest.importorskip("onnx")
    rng = np.random.default_rng(300 * rank + 20 * seed + with_output_shape)
    case = onnx_case(rng, rank, with_output_shape)
    while not onnxruntime_follows_the_spec(case):  # that case is tested against the spec below
        case = onnx_case(rng, rank, with_output_shape)
    x, w = onnx_inputs(rng, case)
    node, model = onnx_model(case["attributes"], x, w)
    expected = ort_run(model, x, w)
    converted = conventions.from_onnx(node, x.shape, w)
    assert_matches(ours(x, converted.weight, **converted.kwargs), expected, case)


@pytest.mark.parametrize("rank", RANKS)
@pytest.mark.parametrize("seed", SEEDS)
def test_onnx_conv_transpose_against_the_reference_evaluator(rank: int, seed: int) -> None:
    """onnx.reference implements the spec, also for SAME_* with kernel < stride. Not drawn: what
    it refuses or gets wrong (groups; output_shape without SAME_*) and SAME_UPPER with kernel <
    stride, where it puts the extra row first (see test_onnx_same_upper_with_a_short_kernel)."""
    pytest.importorskip("onnx")
    from onnx.reference import ReferenceEvaluator

    rng = np.random.default_rng(400 * rank + seed)
    case = onnx_case(rng, rank, with_output_shape=False)
    while case["group"] > 1 or reference_evaluator_departs(case):
        case = onnx_case(rng, rank, with_output_shape=False)
    x, w = onnx_inputs(rng, case)
    _, model = onnx_model(case["attributes"], x, w)
    expected = ReferenceEvaluator(model).run(None, {"x": x, "w": w})[0]
    converted = conventions.from_onnx(case["attributes"], weight=w)
    assert_matches(ours(x, converted.weight, **converted.kwargs), expected, case)


def reference_evaluator_departs(case: Dict[str, Any]) -> bool:
    """SAME_UPPER with a short kernel (onnx.reference puts the extra rows first, TensorFlow and
    this package at the end), or SAME_LOWER with two or more extra rows (which onnx.reference
    puts before the full output: not a window here)."""
    a = case["attributes"]
    adjust = a.get("output_padding", [0] * len(a["strides"]))
    totals = [d * (k - 1) + 1 + op - s for k, s, d, op in zip(a["kernel_shape"], a["strides"], a["dilations"], adjust)]
    if a.get("auto_pad") == "SAME_UPPER":
        return min(totals) < 0
    return a.get("auto_pad") == "SAME_LOWER" and min(totals) < -1


def test_onnx_same_upper_with_a_short_kernel() -> None:
    """Kernel < stride: the spec and TensorFlow give H*s rows (extended at the end, as TF's SAME);
    ONNX Runtime gives (H-1)*s + K."""
    tf = pytest.importorskip("tensorflow")
    pytest.importorskip("onnx")
    rng = np.random.default_rng(3)
    x, w = uniform(rng, 1, 2, 5, 4), uniform(rng, 2, 3, 2, 1)
    converted = conventions.from_onnx({"auto_pad": "SAME_UPPER", "strides": [3, 3]}, weight=w)
    y = spx.conv_transpose2d(x, converted.weight, **converted.kwargs)
    nhwc = tf.nn.conv2d_transpose(channels_last_of(x), w.transpose(2, 3, 1, 0), (1, 15, 12, 3), 3, "SAME")
    assert_matches(y, np.moveaxis(nhwc.numpy(), -1, 1), converted.kwargs)
    _, model = onnx_model({"auto_pad": "SAME_UPPER", "strides": [3, 3]}, x, w)
    assert ort_run(model, x, w).shape == (1, 3, 4 * 3 + 2, 3 * 3 + 1)


def test_onnx_refusals_name_the_attribute() -> None:
    w = np.ones((2, 2, 3, 3))
    with pytest.raises(ValueError, match=r"pads must be 4 non-negative ints \(begin..., end...\)"):
        conventions.from_onnx({"pads": [1, 1]}, weight=w)
    with pytest.raises(ValueError, match="output_shape=.*end 5 row"):
        conventions.from_onnx({"strides": [2, 2], "output_shape": [16, 11]}, (1, 2, 5, 5), w)
    with pytest.raises(ValueError, match="input_shape is needed"):
        conventions.from_onnx({"output_shape": [16, 11]}, weight=w)
    with pytest.raises(ValueError, match="unknown ConvTranspose attribute.*'padding'"):
        conventions.from_onnx({"padding": [1, 1]}, weight=w)
    with pytest.raises(ValueError, match="kernel_shape"):
        conventions.from_onnx({"kernel_shape": [2, 2]}, weight=w)
    # SAME_LOWER, 2 rows short of H*s: the spec starts the output a row before the full one.
    with pytest.raises(ValueError, match="auto_pad='SAME_LOWER'.*start 1 row"):
        conventions.from_onnx({"auto_pad": "SAME_LOWER", "strides": [5, 1]}, weight=w)


# ----------------------------------------------------------------------------- JAX


def jax_case(rng: np.random.Generator, rank: int) -> Dict[str, Any]:
    """Random lax.conv_transpose arguments whose window padding/output_padding can express."""
    letters = SPATIAL[:rank]
    channels_first = bool(rng.random() < 0.5)
    lhs = "NC" + letters if channels_first else "N" + letters + "C"
    rhs = "".join(rng.permutation(list("OI" + letters)))
    kernel = [int(v) for v in rng.integers(1, 5, rank)]
    strides = [int(v) for v in rng.integers(1, 4, rank)]
    dilation = [int(v) for v in rng.integers(1, 3, rank)]
    inputs = [int(v) for v in rng.integers(1, 6, rank)]
    consistent = bool(rng.random() < 0.3)
    padding: Any = str(rng.choice(["SAME", "VALID", "PAIRS"]))
    if padding == "PAIRS":
        padding = []
        for h, k, s, d in zip(inputs, kernel, strides, dilation):
            k_eff, full = d * (k - 1) + 1, (h - 1) * s + d * (k - 1) + 1
            crop_begin = int(rng.integers(0, min(k_eff, full)))
            crop_end = int(rng.integers(-max(s, d) + 1, full - crop_begin))
            padding.append((crop_begin, crop_end) if consistent else (k_eff - 1 - crop_begin, k_eff - 1 - crop_end))
    dilated = [(h - 1) * s + 1 for h, s in zip(inputs, strides)]
    if not isinstance(padding, str):
        pads = [((k - 1) * d - b, (k - 1) * d - e) for (b, e), k, d in zip(padding, kernel, dilation)]
        if any(min(pair) < -n for pair, n in zip(pads if consistent else padding, dilated)):
            return jax_case(rng, rank)  # XLA refuses a negative pad beyond the dilated input
    # JAX takes strides, dilation and padding in the order of the kernel's spatial axes.
    in_kernel_order = [letters.index(c) for c in rhs if c not in "OI"]

    def reorder(values: Any) -> Any:
        return values if isinstance(values, str) else [values[i] for i in in_kernel_order]

    return dict(dimension_numbers=(lhs, rhs, lhs), kernel=kernel, strides=reorder(strides),
                rhs_dilation=reorder(dilation), inputs=inputs, padding=reorder(padding),
                transpose_kernel=bool(rng.random() < 0.5), use_consistent_padding=consistent)


@pytest.mark.parametrize("rank", RANKS)
@pytest.mark.parametrize("seed", SEEDS)
def test_jax_conv_transpose(rank: int, seed: int) -> None:
    jax = pytest.importorskip("jax")
    rng = np.random.default_rng(500 * rank + seed)
    case = jax_case(rng, rank)
    lhs_spec, rhs_spec, _ = case["dimension_numbers"]
    sizes = dict(zip(SPATIAL, case["inputs"]), N=int(rng.integers(1, 3)), C=int(rng.integers(1, 4)))
    x = uniform(rng, *(sizes[c] for c in lhs_spec))
    channels = dict(zip(SPATIAL, case["kernel"]), I=sizes["C"], O=int(rng.integers(1, 4)))
    if case["transpose_kernel"]:  # the forward convolution's kernel: I and O change roles
        channels["I"], channels["O"] = channels["O"], channels["I"]
    rhs = uniform(rng, *(channels[c] for c in rhs_spec))
    arguments = {k: case[k] for k in ("padding", "rhs_dilation", "dimension_numbers", "transpose_kernel",
                                      "use_consistent_padding")}
    expected = np.asarray(jax.lax.conv_transpose(x, rhs, case["strides"], **arguments))
    converted = conventions.from_jax(rhs, case["strides"], **arguments)
    assert_matches(ours(x, converted.weight, **converted.kwargs), expected, case)


def test_jax_refusals_name_the_argument() -> None:
    rhs = np.ones((3, 3, 2, 2))
    with pytest.raises(ValueError, match=r"padding=\[\(3, 0\), \(0, 0\)\].*start 1 row"):
        conventions.from_jax(rhs, (2, 2), [(3, 0), (0, 0)])
    with pytest.raises(ValueError, match="dimension_numbers=.*batch first"):
        conventions.from_jax(rhs, (2, 2), "SAME", dimension_numbers=("HWNC", "HWIO", "HWNC"))
    with pytest.raises(ValueError, match="padding must be 'SAME', 'VALID'"):
        conventions.from_jax(rhs, (2, 2), "SAME_LOWER")


# ----------------------------------------------------------------------------- without frameworks

WITHOUT_FRAMEWORKS = """
import importlib.abc, sys
BLOCKED = ("tensorflow", "keras", "jax", "onnx", "onnxruntime", "torch")

class Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"{name} blocked by the test")
        return None

sys.meta_path.insert(0, Blocker())
import numpy as np
from subpixel_ext import conventions
print(conventions.from_onnx({"auto_pad": "SAME_LOWER", "strides": [2]}, weight=np.ones((1, 1, 3))).kwargs)
print(conventions.from_keras({"kernel_size": [3], "strides": [2], "padding": "same",
                              "output_padding": None, "data_format": None}).kwargs["layout"])
"""


def test_the_module_works_without_any_framework() -> None:
    result = subprocess.run([sys.executable, "-c", WITHOUT_FRAMEWORKS], capture_output=True, text=True,
                            timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "{'stride': (2,), 'padding': ((1, 0),), 'output_padding': (0,), 'dilation': (1,), "
        "'groups': 1, 'layout': 'NCL'}",
        "NLC",
    ]


# ----------------------------------------------------------------------------- the README section

DOC = pathlib.Path(__file__).resolve().parents[1] / "README.md"
SECTION = "## Conventions of other frameworks"
FRAMEWORK_IMPORT = re.compile(r"^(?:import|from) (tensorflow|keras|onnx|onnxruntime|jax|torch)\b", re.M)


def doc_snippets() -> List[str]:
    """The python blocks of the README's conventions section."""
    if not DOC.exists():
        return []
    text = DOC.read_text()
    section = text[text.index(SECTION):]
    section = section[: section.find("\n## ", len(SECTION))]
    return re.findall(r"```python\n(.*?)```", section, re.S)


@pytest.mark.skipif(not DOC.exists(), reason="README.md not next to the tests")
@pytest.mark.parametrize("index", range(len(doc_snippets())))
def test_doc_snippet_runs(index: int) -> None:
    snippet = doc_snippets()[index]
    for framework in sorted(set(FRAMEWORK_IMPORT.findall(snippet))):
        pytest.importorskip(framework)
    exec(compile(snippet, f"{DOC}[{index}]", "exec"), {})
