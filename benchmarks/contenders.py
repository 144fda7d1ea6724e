"""What runs a workload: our functional calls and prepacked layers, PyTorch, ONNX Runtime, memcpy."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np

import subpixel_ext as spx
from workloads import Workload

LAYOUTS = {1: ("NCL", "NLC"), 2: ("NCHW", "NHWC"), 3: ("NCDHW", "NDHWC")}
METHODS = ("auto", "direct", "polyphase")
# PyTorch's channels-last memory formats per spatial rank (it has none for 1-D).
TORCH_CHANNELS_LAST = {2: "channels_last", 3: "channels_last_3d"}
# The families of contenders: "ours" are functional calls (the first one is the headline),
# "layer" the prepacked layers, "peer" other libraries, "reference" a bandwidth yardstick.
FAMILIES = ("ours", "layer", "peer", "reference")


@dataclass
class Variant:
    """One way a contender runs the workload: a layout (or memory format) and a call."""

    layout: str
    call: Callable[[], Any]
    # The call's result as a channels-first array, to check it against ours; None: not comparable.
    to_channels_first: Optional[Callable[[Any], np.ndarray]]


@dataclass
class Contender:
    name: str
    family: str
    variants: List[Variant]
    method: Optional[str] = None


@dataclass
class Inputs:
    x: np.ndarray  # channels first, float32 (bench_half.py: its dtype)
    weight: Optional[np.ndarray]


def make_inputs(w: Workload, rng: np.random.Generator) -> Inputs:
    x = rng.uniform(-1, 1, w.in_shape).astype(np.float32)
    if w.op == "pixel_shuffle":
        return Inputs(x, None)
    return Inputs(x, rng.uniform(-1, 1, w.weight_shape).astype(np.float32))


def channels_last(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.moveaxis(a, 1, -1))


def channels_first_view(layout: str, dims: int) -> Callable[[Any], np.ndarray]:
    if layout == LAYOUTS[dims][1]:
        return lambda y: np.moveaxis(np.asarray(y), -1, 1)
    return np.asarray


# ----------------------------------------------------------------------------- ours


class OurCalls:
    """Our functional calls and layers for one workload, each layout with its own input and `out`."""

    def __init__(self, w: Workload, inp: Inputs, threads: int, lib: Any = spx) -> None:
        """`lib` is the subpixel_ext module to call (compare_versions.py passes an older build)."""
        self.w, self.inp, self.threads, self.lib = w, inp, threads, lib
        first, last = LAYOUTS[w.dims]
        self.layouts = (first, last)
        self.x = {first: inp.x, last: channels_last(inp.x)}
        self.out_shape = {first: w.out_shape, last: (w.out_shape[0], *w.out_shape[2:], w.out_shape[1])}

    def variants(self, call: Callable[[str, np.ndarray, np.ndarray], Any]) -> List[Variant]:
        """One per layout: `call(layout, x, out)` with that layout's input and pre-allocated result."""
        found = []
        for layout in self.layouts:
            out = np.empty(self.out_shape[layout], self.inp.x.dtype)
            bound = functools.partial(call, layout, self.x[layout], out)
            found.append(Variant(layout, bound, channels_first_view(layout, self.w.dims)))
        return found

    def conv_settings(self) -> Dict[str, Any]:
        w = self.w
        if w.op == "subpixel_conv":
            return dict(padding=w.axis("padding"))
        return dict(stride=w.axis("stride"), padding=w.axis("padding"), groups=w.groups)

    def functional(self, method: Optional[str]) -> Callable[[str, np.ndarray, np.ndarray], Any]:
        w, threads, weight, lib = self.w, self.threads, self.inp.weight, self.lib
        if w.op == "pixel_shuffle":
            factor = w.axis("r")
            return lambda layout, x, out: lib.pixel_shuffle(x, factor, layout=layout, out=out, num_threads=threads)
        settings = self.conv_settings()
        if w.op == "subpixel_conv":
            fn, factor = getattr(lib, f"subpixel_conv{w.dims}d"), w.axis("r")
            return lambda layout, x, out: fn(x, weight, factor, layout=layout, out=out, num_threads=threads, **settings)
        fn = getattr(lib, f"conv_transpose{w.dims}d")
        return lambda layout, x, out: fn(
            x, weight, layout=layout, method=method, out=out, num_threads=threads, **settings
        )

    def layer(self) -> Callable[[str, np.ndarray, np.ndarray], Any]:
        """A prepacked layer per layout, built here, outside the timing."""
        w, weight = self.w, self.inp.weight
        if w.op == "subpixel_conv":
            cls: Any = getattr(self.lib, f"SubPixelConv{w.dims}d")
            build = lambda layout: cls(weight, w.axis("r"), layout=layout, **self.conv_settings())  # noqa: E731
        else:
            cls = getattr(self.lib, f"ConvTranspose{w.dims}d")
            build = lambda layout: cls(weight, layout=layout, **self.conv_settings())  # noqa: E731
        layers = {layout: build(layout) for layout in self.layouts}
        threads = self.threads
        return lambda layout, x, out: layers[layout](x, out=out, num_threads=threads)

    def contenders(self) -> List[Contender]:
        op = self.w.op
        if op == "pixel_shuffle":
            return [Contender("ours pixel_shuffle", "ours", self.variants(self.functional(None)))]
        if op == "subpixel_conv":
            functional = [Contender(f"ours subpixel_conv{self.w.dims}d", "ours", self.variants(self.functional(None)))]
            layer_name = f"ours SubPixelConv{self.w.dims}d layer"
        else:
            functional = [
                Contender(f"ours {method}", "ours", self.variants(self.functional(method)), method)
                for method in METHODS
            ]
            layer_name = f"ours ConvTranspose{self.w.dims}d layer"
        return functional + [Contender(layer_name, "layer", self.variants(self.layer()), "auto")]


# Workloads whose speed is bounded by memory traffic: timed against a memcpy of their bytes.
MEMORY_BOUND = ("image_1ch", "shuffle_256", "nnunet_up3d")


def memcpy_contender(w: Workload) -> Contender:
    """np.copyto of half the workload's moved bytes (memcpy reads and writes each byte once)."""
    src = np.ones(w.moved_bytes // 8, np.float32)
    dst = np.empty_like(src)
    copy = Variant("-", lambda: np.copyto(dst, src), None)
    return Contender("memcpy (np.copyto)", "reference", [copy])


# ----------------------------------------------------------------------------- PyTorch


def torch_contenders(torch: Any, w: Workload, inp: Inputs) -> Tuple[List[Contender], List[str]]:
    F = torch.nn.functional
    formats = {"contiguous": torch.contiguous_format}
    if w.dims in TORCH_CHANNELS_LAST:
        formats[TORCH_CHANNELS_LAST[w.dims]] = getattr(torch, TORCH_CHANNELS_LAST[w.dims])
    if w.op != "conv_transpose" and w.dims != 2:
        return [], [f"torch: no {w.dims}-D {w.op} to compare with"]
    r = w.params.get("r")
    padding = w.axis("padding") if "padding" in w.params else None

    def call(fmt: str) -> Callable[[], Any]:
        x = torch.from_numpy(inp.x).contiguous(memory_format=formats[fmt])
        if inp.weight is None:
            return lambda: F.pixel_shuffle(x, r)
        wt = torch.from_numpy(inp.weight).contiguous(memory_format=formats[fmt])
        if w.op == "subpixel_conv":
            return lambda: F.pixel_shuffle(F.conv2d(x, wt, padding=padding), r)
        deconv = getattr(F, f"conv_transpose{w.dims}d")
        stride, groups = w.axis("stride"), w.groups
        return lambda: deconv(x, wt, stride=stride, padding=padding, groups=groups)

    def numpy_of(t: Any) -> np.ndarray:
        return np.asarray(t.numpy())

    return [Contender("torch", "peer", [Variant(fmt, call(fmt), numpy_of) for fmt in formats])], []


# ----------------------------------------------------------------------------- ONNX Runtime


@dataclass
class OnnxGraph:
    nodes: List[Any]
    initializers: Dict[str, np.ndarray] = field(default_factory=dict)


def subpixel_route(helper: Any, w: Workload, weight: np.ndarray) -> Tuple[Optional[OnnxGraph], Optional[str]]:
    """A 2-D transposed convolution as Conv + DepthToSpace (+ Slice for the crop), or why not."""
    s = w.axis("stride")
    if w.dims != 2 or w.groups != 1 or s[0] != s[1]:
        return None, "onnxruntime sub-pixel: DepthToSpace needs 2-D, groups=1 and a square stride"
    pw = spx.polyphase_weight(weight, s, w.axis("padding"))
    (pt, pb), (pl, pr) = pw.padding
    (ct, cb), (cl, cr) = pw.crop
    th, tw = pw.weight.shape[2:]
    hc, wc = ((size + lo + hi - t + 1) * s[0] for size, lo, hi, t in zip(w.in_spatial, (pt, pl), (pb, pr), (th, tw)))
    conv = helper.make_node("Conv", ["x", "pw"], ["c"], kernel_shape=[th, tw], pads=[pt, pl, pb, pr])
    d2s = helper.make_node("DepthToSpace", ["c"], ["y"], blocksize=s[0], mode="CRD")
    graph = OnnxGraph([conv, d2s], {"pw": pw.weight})
    if ct or cb or cl or cr:
        d2s.output[0] = "full"
        graph.nodes.append(helper.make_node("Slice", ["full", "starts", "ends", "axes"], ["y"]))
        graph.initializers.update(
            starts=np.array([ct, cl], np.int64), ends=np.array([hc - cb, wc - cr], np.int64),
            axes=np.array([2, 3], np.int64),
        )
    return graph, None


def onnx_graphs(onnx: Any, w: Workload, inp: Inputs) -> Tuple[Dict[str, OnnxGraph], List[str]]:
    """The ONNX graphs (input "x", output "y") of the workload, and notes on routes left out."""
    helper = onnx.helper
    if w.op != "conv_transpose" and w.dims != 2:
        return {}, [f"onnxruntime: DepthToSpace is 2-D only, no {w.dims}-D {w.op}"]
    if w.op == "pixel_shuffle":
        d2s = helper.make_node("DepthToSpace", ["x"], ["y"], blocksize=w.params["r"], mode="CRD")
        return {"onnxruntime": OnnxGraph([d2s])}, []
    assert inp.weight is not None
    kernel, pads = list(w.axis("k")), list(w.axis("padding")) * 2
    if w.op == "subpixel_conv":
        conv = helper.make_node("Conv", ["x", "w"], ["c"], kernel_shape=kernel, pads=pads)
        d2s = helper.make_node("DepthToSpace", ["c"], ["y"], blocksize=w.params["r"], mode="CRD")
        return {"onnxruntime": OnnxGraph([conv, d2s], {"w": inp.weight})}, []
    deconv = helper.make_node(
        "ConvTranspose", ["x", "w"], ["y"], kernel_shape=kernel, strides=list(w.axis("stride")), pads=pads,
        group=w.groups,
    )
    graphs = {"onnxruntime": OnnxGraph([deconv], {"w": inp.weight})}
    route, why_not = subpixel_route(helper, w, inp.weight)
    if route is None:
        return graphs, [] if w.dims != 2 else [str(why_not)]
    graphs["onnxruntime sub-pixel"] = route
    return graphs, []


def ort_session(onnx: Any, ort: Any, graph: OnnxGraph, w: Workload, threads: int) -> Any:
    helper = onnx.helper
    model = helper.make_model(
        helper.make_graph(
            graph.nodes,
            w.name,
            [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, list(w.in_shape))],
            [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, list(w.out_shape))],
            [onnx.numpy_helper.from_array(v, k) for k, v in graph.initializers.items()],
        ),
        opset_imports=[helper.make_opsetid("", 17)],
    )
    model.ir_version = 8
    onnx.checker.check_model(model)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def ort_contenders(onnx: Any, ort: Any, w: Workload, inp: Inputs, threads: int) -> Tuple[List[Contender], List[str]]:
    graphs, notes = onnx_graphs(onnx, w, inp)
    contenders = []
    for name, graph in graphs.items():
        session = ort_session(onnx, ort, graph, w, threads)
        y = np.empty(w.out_shape, np.float32)
        # I/O binding with a pre-allocated result: the peer's best case, as out= is ours.
        binding = session.io_binding()
        binding.bind_cpu_input("x", inp.x)
        binding.bind_output("y", "cpu", 0, np.float32, list(y.shape), y.ctypes.data)

        def call(session: Any = session, binding: Any = binding, y: np.ndarray = y) -> np.ndarray:
            session.run_with_iobinding(binding)
            return y

        contenders.append(Contender(name, "peer", [Variant(LAYOUTS[w.dims][0], call, np.asarray)]))
    return contenders, notes


def all_contenders(w: Workload, inp: Inputs, threads: int, peers: Dict[str, Any]) -> Tuple[List[Contender], List[str]]:
    """Ours first (the headline first of all), then the yardstick and the peers that are installed."""
    contenders = OurCalls(w, inp, threads).contenders()
    notes: List[str] = []
    if w.name in MEMORY_BOUND or w.op == "pixel_shuffle":
        contenders.append(memcpy_contender(w))
        notes.append("memcpy is one thread's np.copyto of the bytes the call must read and write")
    if "torch" in peers:
        found, why_not = torch_contenders(peers["torch"], w, inp)
        contenders += found
        notes += why_not
    if "onnxruntime" in peers:
        found, why_not = ort_contenders(peers["onnx"], peers["onnxruntime"], w, inp, threads)
        contenders += found
        notes += why_not
    return contenders, notes

