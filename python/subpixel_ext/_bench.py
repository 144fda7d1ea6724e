"""The project benchmark, run as ``python -m subpixel_ext bench``.

Times the standard workloads (a copy of the shared ``bench/workloads.json`` is built in) with
this package and, with ``--compare``, with PyTorch and ONNX Runtime when they are importable.
All contenders of a workload run interleaved in one process: a warmup round, then ``repeats``
rounds in which every contender is timed once (in a rotating order); each contender's median is
reported. Our calls write into pre-allocated ``out=`` arrays, reused from call to call.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import gc
import importlib
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from . import _core
from ._api import conv_transpose2d, pixel_shuffle, subpixel_conv2d
from ._config import show_config
from ._weights import polyphase_weight

# The shared standard workloads (bench/workloads.json); `--workloads-file` reads another copy.
STANDARD_WORKLOADS: Dict[str, List[Dict[str, Any]]] = {
    "conv_transpose2d": [
        {"name": "seed_tiny", "N": 1, "C_in": 1, "C_out": 1, "H": 4, "W": 4,
         "k": 4, "stride": 2, "padding": 0},
        {"name": "image_1ch", "N": 1, "C_in": 1, "C_out": 1, "H": 1024, "W": 1024,
         "k": 4, "stride": 2, "padding": 1},
        {"name": "sr_64ch", "N": 1, "C_in": 64, "C_out": 64, "H": 128, "W": 128,
         "k": 4, "stride": 2, "padding": 1},
        {"name": "gan_decoder", "N": 8, "C_in": 256, "C_out": 128, "H": 16, "W": 16,
         "k": 4, "stride": 2, "padding": 1},
        {"name": "stride3", "N": 1, "C_in": 32, "C_out": 32, "H": 96, "W": 96,
         "k": 9, "stride": 3, "padding": 3},
        {"name": "large_kernel", "N": 1, "C_in": 16, "C_out": 16, "H": 256, "W": 256,
         "k": 8, "stride": 4, "padding": 2},
    ],
    "subpixel_conv2d": [
        {"name": "espcn_last", "N": 1, "C_in": 64, "C_out": 3, "r": 3, "H": 256, "W": 256,
         "k": 3, "padding": 1},
    ],
    "pixel_shuffle": [
        {"name": "shuffle_256", "N": 1, "C": 256, "r": 2, "H": 256, "W": 256},
    ],
}
KINDS = tuple(STANDARD_WORKLOADS)

# Goal thresholds of the Performance issue (informational: they never change the exit code).
COMPUTE_BOUND = ("sr_64ch", "gan_decoder", "stride3")
PEAK_FRACTION_GOAL = 0.85
GEOMEAN_GOAL, MIN_RATIO_GOAL = 1.0, 0.9
IMAGE_1CH_WORKLOAD, IMAGE_1CH_RATIO_GOAL = "image_1ch", 4.0
SEED_TINY_WORKLOAD, SEED_TINY_SECONDS_GOAL = "seed_tiny", 5e-6
MEMCPY_FRACTION_GOAL = 0.70
DIRECT_FRACTION_GOAL = 0.70

PEAK_SECONDS = 0.3
DEFAULT_REPEATS, QUICK_REPEATS = 7, 3
# One timed sample runs a contender this long at least (several calls when one is shorter).
SAMPLE_SECONDS, QUICK_SAMPLE_SECONDS = 0.02, 0.005
# With several threads, a thread pool spin-waits after each call (ONNX Runtime's ~15 ms, OpenMP's
# ~5 ms), taking cores from whichever contender runs next: each sample then starts after a pause.
SETTLE_SECONDS = 0.025
# A contender whose result differs from ours by more than this (relative to max |y|) is
# reported as a mismatch and not counted as a peer.
MATCH_TOLERANCE = 1e-4
OUR_LAYOUTS = ("NCHW", "NHWC")


# ----------------------------------------------------------------------------- workloads


@dataclass(frozen=True)
class Workload:
    kind: str
    name: str
    params: Dict[str, int]

    @property
    def out_shape(self) -> Tuple[int, int, int, int]:
        """The NCHW result shape."""
        p = self.params
        if self.kind == "conv_transpose2d":
            h, w = ((p[d] - 1) * p["stride"] - 2 * p["padding"] + p["k"] for d in ("H", "W"))
            return p["N"], p["C_out"], h, w
        if self.kind == "subpixel_conv2d":
            h, w = ((p[d] + 2 * p["padding"] - p["k"] + 1) * p["r"] for d in ("H", "W"))
            return p["N"], p["C_out"], h, w
        r = p["r"]
        return p["N"], p["C"] // (r * r), p["H"] * r, p["W"] * r

    @property
    def useful_flop(self) -> int:
        """2 x the multiply-adds the operation needs (0 for the shuffle, which has none)."""
        p = self.params
        if self.kind == "conv_transpose2d":
            return 2 * p["N"] * p["C_in"] * p["H"] * p["W"] * p["C_out"] * p["k"] ** 2
        if self.kind == "subpixel_conv2d":
            n, _, h, w = self.out_shape
            conv_pixels = n * (h // p["r"]) * (w // p["r"])
            return 2 * conv_pixels * p["C_in"] * p["C_out"] * p["r"] ** 2 * p["k"] ** 2
        return 0

    @property
    def direct_flop(self) -> int:
        """2 x the multiply-adds of the direct method: a dense kernel over the zero-inserted input."""
        p = self.params
        n, c_out, h_out, w_out = self.out_shape
        return 2 * n * p["C_in"] * c_out * p["k"] ** 2 * h_out * w_out

    @property
    def moved_bytes(self) -> int:
        """Bytes read plus bytes written by the shuffle (float32)."""
        p = self.params
        return 2 * 4 * p["N"] * p["C"] * p["H"] * p["W"]

    def describe(self) -> str:
        args = " ".join(f"{k}={v}" for k, v in self.params.items())
        return f"{self.name}: {self.kind} {args} -> {self.out_shape}"


def parse_workloads(spec: Dict[str, Any]) -> List[Workload]:
    """Workloads from the shared file's schema (unknown top-level keys, e.g. "about", are ignored)."""
    found = []
    for kind in KINDS:
        for entry in spec.get(kind, []):
            params = {k: int(v) for k, v in entry.items() if k not in ("name", "note")}
            found.append(Workload(kind, str(entry["name"]), params))
    return found


# ----------------------------------------------------------------------------- contenders


@dataclass
class Variant:
    """One way a contender runs the workload: a layout (or memory format) and a call."""

    layout: str
    call: Callable[[], Any]
    # The call's result as an NCHW array, to check it against ours; None: not comparable.
    to_nchw: Optional[Callable[[Any], np.ndarray]]


@dataclass
class Contender:
    name: str
    family: str  # "ours", "peer" or "reference" (memcpy)
    variants: List[Variant]
    method: Optional[str] = None


@dataclass
class Inputs:
    x: np.ndarray  # NCHW float32
    weight: Optional[np.ndarray]


def make_inputs(w: Workload, rng: np.random.Generator) -> Inputs:
    p = w.params
    if w.kind == "pixel_shuffle":
        return Inputs(rng.uniform(-1, 1, (p["N"], p["C"], p["H"], p["W"])).astype(np.float32), None)
    x = rng.uniform(-1, 1, (p["N"], p["C_in"], p["H"], p["W"])).astype(np.float32)
    if w.kind == "conv_transpose2d":
        shape = (p["C_in"], p["C_out"], p["k"], p["k"])
    else:
        shape = (p["C_out"] * p["r"] ** 2, p["C_in"], p["k"], p["k"])
    return Inputs(x, rng.uniform(-1, 1, shape).astype(np.float32))


def to_nhwc(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a.transpose(0, 2, 3, 1))


def from_layout(layout: str) -> Callable[[Any], np.ndarray]:
    if layout == "NHWC":
        return lambda y: np.asarray(y).transpose(0, 3, 1, 2)
    return np.asarray


def our_contenders(w: Workload, inp: Inputs, threads: int) -> List[Contender]:
    p = w.params
    n, c, h, wd = w.out_shape
    xs = {"NCHW": inp.x, "NHWC": to_nhwc(inp.x)}
    shapes = {"NCHW": (n, c, h, wd), "NHWC": (n, h, wd, c)}

    def variants(call: Callable[[str, np.ndarray], Any]) -> List[Variant]:
        """One per layout, each with its own pre-allocated result."""
        found = []
        for layout in OUR_LAYOUTS:
            out = np.empty(shapes[layout], np.float32)
            found.append(Variant(layout, functools.partial(call, layout, out), from_layout(layout)))
        return found

    if w.kind == "pixel_shuffle":

        def shuffle(layout: str, out: np.ndarray) -> Any:
            return pixel_shuffle(xs[layout], p["r"], layout=layout, out=out, num_threads=threads)

        return [Contender("ours pixel_shuffle", "ours", variants(shuffle))]
    if w.kind == "subpixel_conv2d":

        def subpixel(layout: str, out: np.ndarray) -> Any:
            return subpixel_conv2d(
                xs[layout], inp.weight, p["r"], padding=p["padding"], layout=layout, out=out,
                num_threads=threads,
            )

        return [Contender("ours subpixel_conv2d", "ours", variants(subpixel))]
    contenders = []
    for method in ("auto", "direct", "polyphase"):

        def deconv(layout: str, out: np.ndarray, method: str = method) -> Any:
            return conv_transpose2d(
                xs[layout], inp.weight, stride=p["stride"], padding=p["padding"], layout=layout,
                method=method, out=out, num_threads=threads,
            )

        contenders.append(Contender(f"ours {method}", "ours", variants(deconv), method))
    return contenders


def memcpy_contender(inp: Inputs) -> Contender:
    dst = np.empty_like(inp.x)
    copy = Variant("-", lambda: np.copyto(dst, inp.x), None)
    return Contender("memcpy (np.copyto)", "reference", [copy])


def torch_contenders(torch: Any, w: Workload, inp: Inputs) -> List[Contender]:
    F = torch.nn.functional
    p = w.params
    formats = {"NCHW": torch.contiguous_format, "channels_last": torch.channels_last}

    def call(fmt: str) -> Callable[[], Any]:
        x = torch.from_numpy(inp.x).contiguous(memory_format=formats[fmt])
        if inp.weight is None:
            return lambda: F.pixel_shuffle(x, p["r"])
        wt = torch.from_numpy(inp.weight).contiguous(memory_format=formats[fmt])
        if w.kind == "conv_transpose2d":
            return lambda: F.conv_transpose2d(x, wt, stride=p["stride"], padding=p["padding"])
        return lambda: F.pixel_shuffle(F.conv2d(x, wt, padding=p["padding"]), p["r"])

    def numpy_of(t: Any) -> np.ndarray:
        return np.asarray(t.numpy())

    return [Contender("torch", "peer", [Variant(fmt, call(fmt), numpy_of) for fmt in formats])]


@dataclass
class OnnxGraph:
    nodes: List[Any]
    initializers: Dict[str, np.ndarray] = field(default_factory=dict)


def onnx_graphs(onnx: Any, w: Workload, inp: Inputs) -> Tuple[Dict[str, OnnxGraph], List[str]]:
    """The ONNX graphs (input "x", output "y") of the workload, and notes on routes left out."""
    helper, p = onnx.helper, w.params
    if w.kind == "pixel_shuffle":
        d2s = helper.make_node("DepthToSpace", ["x"], ["y"], blocksize=p["r"], mode="CRD")
        return {"onnxruntime": OnnxGraph([d2s])}, []
    assert inp.weight is not None
    k = p["k"]
    if w.kind == "subpixel_conv2d":
        pad = p["padding"]
        conv = helper.make_node("Conv", ["x", "w"], ["c"], kernel_shape=[k, k], pads=[pad] * 4)
        d2s = helper.make_node("DepthToSpace", ["c"], ["y"], blocksize=p["r"], mode="CRD")
        return {"onnxruntime": OnnxGraph([conv, d2s], {"w": inp.weight})}, []
    s, pad = p["stride"], p["padding"]
    deconv = helper.make_node(
        "ConvTranspose", ["x", "w"], ["y"], kernel_shape=[k, k], strides=[s, s], pads=[pad] * 4
    )
    graphs = {"onnxruntime": OnnxGraph([deconv], {"w": inp.weight})}
    pw = polyphase_weight(inp.weight, s, pad)
    if pw.upscale_factor[0] != pw.upscale_factor[1]:
        return graphs, ["onnxruntime sub-pixel: DepthToSpace needs a square stride"]
    (pt, pb), (pl, pr) = pw.padding
    (ct, cb), (cl, cr) = pw.crop
    th, tw = pw.weight.shape[2:]
    hc, wc = ((p[d] + lo + hi - t + 1) * s for d, lo, hi, t in (("H", pt, pb, th), ("W", pl, pr, tw)))
    conv = helper.make_node("Conv", ["x", "pw"], ["c"], kernel_shape=[th, tw], pads=[pt, pl, pb, pr])
    d2s = helper.make_node("DepthToSpace", ["c"], ["y"], blocksize=s, mode="CRD")
    nodes = [conv, d2s]
    initializers = {"pw": pw.weight}
    if ct or cb or cl or cr:
        d2s.output[0] = "full"
        nodes.append(helper.make_node("Slice", ["full", "starts", "ends", "axes"], ["y"]))
        initializers.update(
            starts=np.array([ct, cl], np.int64),
            ends=np.array([hc - cb, wc - cr], np.int64),
            axes=np.array([2, 3], np.int64),
        )
    graphs["onnxruntime sub-pixel"] = OnnxGraph(nodes, initializers)
    return graphs, []


def ort_contenders(
    onnx: Any, ort: Any, w: Workload, inp: Inputs, threads: int
) -> Tuple[List[Contender], List[str]]:
    graphs, notes = onnx_graphs(onnx, w, inp)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    contenders = []
    for name, graph in graphs.items():
        y = np.empty(w.out_shape, np.float32)
        model = onnx.helper.make_model(
            onnx.helper.make_graph(
                graph.nodes,
                w.name,
                [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, list(inp.x.shape))],
                [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, list(y.shape))],
                [onnx.numpy_helper.from_array(v, k) for k, v in graph.initializers.items()],
            ),
            opset_imports=[onnx.helper.make_opsetid("", 17)],
        )
        model.ir_version = 8
        onnx.checker.check_model(model)
        session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
        # I/O binding with a pre-allocated result: the peer's best case, as out= is ours.
        binding = session.io_binding()
        binding.bind_cpu_input("x", inp.x)
        binding.bind_output("y", "cpu", 0, np.float32, list(y.shape), y.ctypes.data)

        def call(session: Any = session, binding: Any = binding, y: np.ndarray = y) -> np.ndarray:
            session.run_with_iobinding(binding)
            return y

        contenders.append(Contender(name, "peer", [Variant("NCHW", call, np.asarray)]))
    return contenders, notes


# ----------------------------------------------------------------------------- measurement


@dataclass
class Timing:
    contender: Contender
    variant: Variant
    number: int = 1  # calls per sample
    samples: List[float] = field(default_factory=list)  # seconds per call, one per round
    max_rel_error: float = 0.0

    @property
    def median(self) -> float:
        return statistics.median(self.samples)


def _sample(v: Variant, number: int) -> float:
    call = v.call
    start = time.perf_counter()
    for _ in range(number):
        call()
    return (time.perf_counter() - start) / number


def measure(
    contenders: Sequence[Contender], repeats: int, sample_seconds: float, settle: float
) -> List[Timing]:
    """Warm every variant up, check its result against the first one's, then time interleaved rounds.

    `settle` seconds of sleep precede every timed sample.
    """
    timings = [Timing(c, v) for c in contenders for v in c.variants]
    reference: Optional[np.ndarray] = None
    for t in timings:
        raw = t.variant.call()
        if t.variant.to_nchw is not None:
            result = t.variant.to_nchw(raw)
            if reference is None:
                reference = np.array(result, copy=True)
            else:
                scale = max(float(np.max(np.abs(reference))), float(np.finfo(np.float32).tiny))
                t.max_rel_error = float(np.max(np.abs(result - reference))) / scale
        once = _sample(t.variant, 1)
        t.number = max(1, math.ceil(sample_seconds / once))
    for t in timings:  # the warmup round at the calibrated size
        _sample(t.variant, t.number)
    for r in range(repeats):
        shift = r % len(timings)
        for t in timings[shift:] + timings[:shift]:
            time.sleep(settle)
            t.samples.append(_sample(t.variant, t.number))
    return timings


@dataclass
class Row:
    """A contender with its fastest variant first."""

    contender: Contender
    best: Timing
    others: List[Timing]

    @property
    def name(self) -> str:
        return self.contender.name

    @property
    def family(self) -> str:
        return self.contender.family

    @property
    def matches(self) -> bool:
        return all(t.max_rel_error <= MATCH_TOLERANCE for t in [self.best] + self.others)


def best_rows(timings: Sequence[Timing]) -> List[Row]:
    rows = []
    for c in dict.fromkeys(t.contender.name for t in timings):
        mine = sorted((t for t in timings if t.contender.name == c), key=lambda t: t.median)
        rows.append(Row(mine[0].contender, mine[0], mine[1:]))
    return rows


# ----------------------------------------------------------------------------- results


@dataclass
class Peaks:
    simd: str
    active: float
    avx2: Optional[float]  # measured separately when the active level is above AVX2


@dataclass
class Result:
    workload: Workload
    rows: List[Row]
    notes: List[str]
    peaks: Peaks

    def row(self, name: str) -> Optional[Row]:
        return next((r for r in self.rows if r.name == name), None)

    @property
    def ours(self) -> Row:
        return next(r for r in self.rows if r.family == "ours")

    @property
    def fastest_peer(self) -> Optional[Row]:
        peers = [r for r in self.rows if r.family == "peer" and r.matches]
        return min(peers, key=lambda r: r.best.median) if peers else None

    def ratio(self, row: Row) -> Optional[float]:
        peer = self.fastest_peer
        return None if peer is None else peer.best.median / row.best.median

    def rate(self, seconds: float) -> float:
        """GFLOP/s of useful work, or GB/s for the shuffle."""
        if self.workload.kind == "pixel_shuffle":
            return self.workload.moved_bytes / seconds * 1e-9
        return self.workload.useful_flop / seconds * 1e-9

    def fraction(self, row: Row) -> Optional[float]:
        """Of the FMA peak in use, or of memcpy's bandwidth for the shuffle."""
        if self.workload.kind == "pixel_shuffle":
            memcpy = next((r for r in self.rows if r.family == "reference"), None)
            return None if memcpy is None else memcpy.best.median / row.best.median
        return self.rate(row.best.median) / self.peaks.active

    def direct_efficiency(self) -> Optional[Tuple[float, float, float]]:
        """(direct GFLOP/s counting all its multiply-adds, polyphase GFLOP/s, their ratio)."""
        direct, poly = self.row("ours direct"), self.row("ours polyphase")
        if direct is None or poly is None:
            return None
        all_macs = self.workload.direct_flop / direct.best.median * 1e-9
        useful = self.rate(poly.best.median)
        return all_macs, useful, all_macs / useful

    def to_json(self) -> Dict[str, Any]:
        w = self.workload
        contenders = []
        for row in self.rows:
            ratio, fraction = self.ratio(row), self.fraction(row)
            contenders.append({
                "name": row.name,
                "family": row.family,
                "method": row.contender.method,
                "best_layout": row.best.variant.layout,
                "median_s": row.best.median,
                "rate": self.rate(row.best.median),
                "fraction": fraction,
                "ratio_fastest_peer_over_this": ratio,
                "matches_ours": row.matches,
                "variants": [
                    {
                        "layout": t.variant.layout,
                        "median_s": t.median,
                        "samples_s": t.samples,
                        "calls_per_sample": t.number,
                        "max_rel_error_vs_ours": t.max_rel_error,
                    }
                    for t in [row.best] + row.others
                ],
            })
        peer = self.fastest_peer
        direct = self.direct_efficiency()
        return {
            "name": w.name,
            "kind": w.kind,
            "params": w.params,
            "out_shape": list(w.out_shape),
            "useful_flop": w.useful_flop,
            "moved_bytes": w.moved_bytes if w.kind == "pixel_shuffle" else None,
            "rate_unit": "GB/s" if w.kind == "pixel_shuffle" else "GFLOP/s",
            "fraction_of": "memcpy" if w.kind == "pixel_shuffle" else "fma_peak_active",
            "ours": self.ours.name,
            "fastest_peer": None if peer is None else peer.name,
            "ratio": self.ratio(self.ours),
            "direct_all_macs_gflops": None if direct is None else direct[0],
            "direct_all_macs_over_polyphase": None if direct is None else direct[2],
            "contenders": contenders,
            "notes": self.notes,
        }


def _fmt(value: Optional[float], spec: str) -> str:
    return "-" if value is None else f"{value:{spec}}"


def format_table(res: Result) -> str:
    w = res.workload
    us = res.ours.best.median < 1e-3
    unit, scale = ("us", 1e6) if us else ("ms", 1e3)
    shuffle = w.kind == "pixel_shuffle"
    frac_head = "%memcpy" if shuffle else "%peak"
    show_avx2 = res.peaks.avx2 is not None and not shuffle
    rate_head = "GB/s" if shuffle else "GFLOP/s"
    head = f"  {'contender':<24}{'layout':<15}{'time ' + unit:>11}{rate_head:>10}{frac_head:>9}"
    head += f"{'%avx2pk':>9}" if show_avx2 else ""
    head += f"{'ratio':>8}  other layouts"
    lines = [w.describe(), head]
    for row in res.rows:
        t = row.best.median
        line = f"  {row.name:<24}{row.best.variant.layout:<15}{t * scale:>11.3f}{res.rate(t):>10.2f}"
        line += f"{_fmt(res.fraction(row), '.1%'):>9}"
        if show_avx2:
            assert res.peaks.avx2 is not None
            line += f"{res.rate(t) / res.peaks.avx2:>9.1%}"
        line += f"{_fmt(res.ratio(row), '.2f'):>8}  "
        line += ", ".join(f"{o.variant.layout} {o.median * scale:.3f}" for o in row.others)
        if not row.matches:
            worst = max(t.max_rel_error for t in [row.best] + row.others)
            line += f"  MISMATCH vs ours (rel. error {worst:.1e}), not counted"
        lines.append(line)
    direct = res.direct_efficiency()
    if direct is not None:
        factor = w.direct_flop / w.useful_flop
        lines.append(
            f"  direct: {direct[0]:.2f} GFLOP/s counting all its multiply-adds"
            f" ({factor:.1f}x the useful ones)"
            f" = {direct[2]:.2f} x polyphase's {direct[1]:.2f} GFLOP/s"
        )
    lines += [f"  note: {n}" for n in res.notes]
    return "\n".join(lines)


# ----------------------------------------------------------------------------- summary and goals


@dataclass
class Goal:
    passed: Optional[bool]  # None: not measured in this run
    text: str

    def line(self) -> str:
        status = {True: "PASS", False: "FAIL", None: "SKIP"}[self.passed]
        return f"  {status} {self.text}"


def geomean(values: Sequence[float]) -> float:
    return math.exp(statistics.fmean(math.log(v) for v in values))


def ratios(results: Sequence[Result]) -> Dict[str, float]:
    found = {}
    for res in results:
        ratio = res.ratio(res.ours)
        if ratio is not None:
            found[res.workload.name] = ratio
    return found


def goals(results: Sequence[Result]) -> List[Goal]:
    by_name = {r.workload.name: r for r in results}
    found = ratios(results)
    out = []
    if found:
        geo = geomean(list(found.values()))
        worst = min(found, key=found.__getitem__)
        out.append(Goal(
            geo >= GEOMEAN_GOAL and found[worst] >= MIN_RATIO_GOAL,
            f"geomean ratio {geo:.2f} >= {GEOMEAN_GOAL} and every workload >= {MIN_RATIO_GOAL}"
            f" (min {found[worst]:.2f}, {worst})",
        ))
    else:
        out.append(Goal(
            None,
            f"geomean ratio >= {GEOMEAN_GOAL} and every workload >= {MIN_RATIO_GOAL}:"
            " no peer measured (use --compare)",
        ))
    for name in COMPUTE_BOUND:
        res = by_name.get(name)
        if res is None:
            out.append(Goal(None, f"{name} >= {PEAK_FRACTION_GOAL:.0%} of the FMA peak: not run"))
            continue
        frac = res.fraction(res.ours)
        assert frac is not None
        out.append(Goal(
            frac >= PEAK_FRACTION_GOAL,
            f"{name} at {frac:.1%} of the {res.peaks.simd} FMA peak (goal >= {PEAK_FRACTION_GOAL:.0%})",
        ))
    image_ratio = found.get(IMAGE_1CH_WORKLOAD)
    if image_ratio is None:
        out.append(Goal(
            None, f"{IMAGE_1CH_WORKLOAD} >= {IMAGE_1CH_RATIO_GOAL:g}x the fastest peer: not measured"
        ))
    else:
        out.append(Goal(
            image_ratio >= IMAGE_1CH_RATIO_GOAL,
            f"{IMAGE_1CH_WORKLOAD} {image_ratio:.2f}x the fastest peer (goal >= {IMAGE_1CH_RATIO_GOAL:g}x)",
        ))
    tiny = by_name.get(SEED_TINY_WORKLOAD)
    if tiny is None:
        out.append(Goal(None, f"{SEED_TINY_WORKLOAD} <= {SEED_TINY_SECONDS_GOAL * 1e6:g} us: not run"))
    else:
        t = tiny.ours.best.median
        out.append(Goal(
            t <= SEED_TINY_SECONDS_GOAL,
            f"{SEED_TINY_WORKLOAD} {t * 1e6:.2f} us end to end (goal <= {SEED_TINY_SECONDS_GOAL * 1e6:g} us)",
        ))
    shuffles = [r for r in results if r.workload.kind == "pixel_shuffle"]
    if not shuffles:
        out.append(Goal(None, f"pixel_shuffle >= {MEMCPY_FRACTION_GOAL:.0%} of memcpy: not run"))
    for res in shuffles:
        frac = res.fraction(res.ours)
        assert frac is not None
        out.append(Goal(
            frac >= MEMCPY_FRACTION_GOAL,
            f"{res.workload.name} at {frac:.1%} of memcpy bandwidth (goal >= {MEMCPY_FRACTION_GOAL:.0%})",
        ))
    for name in COMPUTE_BOUND:
        res = by_name.get(name)
        direct = None if res is None else res.direct_efficiency()
        if direct is None:
            out.append(Goal(
                None, f"{name} direct (all MACs) >= {DIRECT_FRACTION_GOAL:.0%} of polyphase: not run"
            ))
            continue
        out.append(Goal(
            direct[2] >= DIRECT_FRACTION_GOAL,
            f"{name} direct {direct[0]:.2f} GFLOP/s (all MACs) = {direct[2]:.1%}"
            f" of polyphase's {direct[1]:.2f}"
            f" (goal >= {DIRECT_FRACTION_GOAL:.0%})",
        ))
    return out


def format_summary(results: Sequence[Result], goal_list: Sequence[Goal]) -> str:
    found = ratios(results)
    lines = ["Summary (ratio = fastest peer time / our time, > 1 means we win)"]
    if found:
        geo = geomean(list(found.values()))
        worst = min(found, key=found.__getitem__)
        lines.append(
            f"  geomean ratio {geo:.2f} over {len(found)} workloads; min {found[worst]:.2f} ({worst})"
        )
        lines += [f"    {name:<14}{value:.2f}" for name, value in found.items()]
    else:
        lines.append("  no peer measured: run with --compare to get ratios")
    lines.append("Goals of the Performance issue (informational):")
    lines += [g.line() for g in goal_list]
    return "\n".join(lines)


# ----------------------------------------------------------------------------- machine


def cpu_model() -> Optional[str]:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def measure_peaks(threads: int) -> Peaks:
    simd = str(show_config()["simd_active"])
    active = float(_core.fma_peak_gflops(threads, PEAK_SECONDS))
    if simd != "avx512":
        return Peaks(simd, active, None)
    code = (
        "from subpixel_ext import _core, show_config; "
        "assert show_config()['simd_active'] == 'avx2'; "
        f"print(_core.fma_peak_gflops({threads}, {PEAK_SECONDS}))"
    )
    env = dict(os.environ, SUBPIXEL_EXT_SIMD="avx2")
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return Peaks(simd, active, float(done.stdout.strip()))


def load_average() -> Optional[float]:
    """The 1-minute load average: other processes competing for the cores skew every number."""
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else None


def usable_cpus() -> Optional[int]:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def machine_info(peers: Dict[str, Any], start_load: Optional[float]) -> Dict[str, Any]:
    return {
        "cpu_model": cpu_model(),
        "logical_cpus": os.cpu_count(),
        "usable_cpus": usable_cpus(),
        "load_average_1min_at_start": start_load,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "subpixel_ext": show_config(),
        "peers": {name: getattr(mod, "__version__", None) for name, mod in peers.items()},
    }


# ----------------------------------------------------------------------------- command line


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {text}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``python -m subpixel_ext bench``."""
    parser.add_argument("--threads", type=_positive_int, default=1,
                        help="threads for our calls and for every peer (default 1)")
    parser.add_argument("--compare", action="store_true",
                        help="also time PyTorch and ONNX Runtime when they are importable")
    parser.add_argument("--repeats", type=_positive_int, default=None,
                        help=f"timed rounds per workload (default {DEFAULT_REPEATS};"
                        f" {QUICK_REPEATS} with --quick)")
    parser.add_argument("--quick", action="store_true", help="fewer and shorter rounds, for smoke tests")
    parser.add_argument("--workloads", default=None,
                        help="comma-separated workload names to run (default: all)")
    parser.add_argument("--workloads-file", default=None,
                        help="a workloads JSON in the shared schema instead of the built-in standard set")
    parser.add_argument("--json", default=None, metavar="FILE", help="write every number to FILE")
    parser.add_argument("--plot", default=None, metavar="FILE",
                        help="draw ours vs the peers per workload into FILE (needs matplotlib)")
    parser.add_argument("--replot", nargs="+", default=None, metavar="JSON",
                        help="with --plot: draw these --json reports instead of measuring")


def _import_peers(threads: int) -> Tuple[Dict[str, Any], List[str]]:
    peers: Dict[str, Any] = {}
    notes = []
    for name in ("torch", "onnx", "onnxruntime"):
        try:
            peers[name] = importlib.import_module(name)
        except ImportError as e:
            notes.append(f"{name} is not importable ({e}); its contenders are skipped")
    if "torch" in peers:
        peers["torch"].set_num_threads(threads)
    if "onnxruntime" in peers and "onnx" not in peers:
        del peers["onnxruntime"]
        notes.append("onnxruntime needs the onnx package to build its graphs; skipped")
    return peers, notes


def _select(args: argparse.Namespace) -> List[Workload]:
    if args.workloads_file is None:
        workloads = parse_workloads(STANDARD_WORKLOADS)
    else:
        with open(args.workloads_file, encoding="utf-8") as f:
            workloads = parse_workloads(json.load(f))
    if args.workloads is None:
        return workloads
    wanted = [n.strip() for n in args.workloads.split(",") if n.strip()]
    known = {w.name for w in workloads}
    unknown = [n for n in wanted if n not in known]
    if unknown:
        raise ValueError(f"unknown workload(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    return [w for w in workloads if w.name in wanted]


def _settle(args: argparse.Namespace) -> float:
    return SETTLE_SECONDS if args.threads > 1 else 0.0


def _repeats(args: argparse.Namespace) -> int:
    return int(args.repeats or (QUICK_REPEATS if args.quick else DEFAULT_REPEATS))


@contextlib.contextmanager
def _quiet_gc() -> Iterator[None]:
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def run_workload(w: Workload, args: argparse.Namespace, peers: Dict[str, Any], peaks: Peaks) -> Result:
    inp = make_inputs(w, np.random.default_rng(0))
    contenders = our_contenders(w, inp, args.threads)
    notes: List[str] = []
    if w.kind == "pixel_shuffle":
        contenders.append(memcpy_contender(inp))
        notes.append("memcpy is one thread's np.copyto of the same bytes")
    if "torch" in peers:
        contenders += torch_contenders(peers["torch"], w, inp)
    if "onnxruntime" in peers:
        ort_list, ort_notes = ort_contenders(peers["onnx"], peers["onnxruntime"], w, inp, args.threads)
        contenders += ort_list
        notes += ort_notes
    with _quiet_gc():
        timings = measure(
            contenders,
            _repeats(args),
            QUICK_SAMPLE_SECONDS if args.quick else SAMPLE_SECONDS,
            _settle(args),
        )
    return Result(w, best_rows(timings), notes, peaks)


def plot_reports(reports: Sequence[Dict[str, Any]], path: str) -> None:
    """Per workload, each contender's speed relative to the fastest peer (one panel per report)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7 * len(reports), 7), dpi=100, layout="constrained")
    canvas = FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(reports), squeeze=False)[0]
    for ax, report in zip(axes, reports):
        workloads = [w for w in report["workloads"] if w["fastest_peer"] is not None]
        names = sorted({c["name"] for w in workloads for c in w["contenders"] if c["family"] != "reference"})
        names.sort(key=lambda n: (not n.startswith("ours"), n))
        height = 0.8 / max(1, len(names))
        for k, name in enumerate(names):
            speeds = []
            for w in workloads:
                c = next((c for c in w["contenders"] if c["name"] == name), None)
                speeds.append(np.nan if c is None else c["ratio_fastest_peer_over_this"] or np.nan)
            ys = np.arange(len(workloads)) + k * height
            ax.barh(ys, speeds, height=height, label=name)
        ax.set_yticks(np.arange(len(workloads)) + 0.4 - height / 2, [w["name"] for w in workloads])
        ax.invert_yaxis()
        ax.set_xscale("log")
        ax.axvline(1.0, color="black", linewidth=0.8)
        ax.set_xlabel("speed relative to the fastest peer (fastest peer time / time; > 1 is faster)")
        summary = report["summary"]
        ax.set_title(
            f"{report['threads']} thread(s), float32: "
            + (
                "no peer measured (run with --compare)" if summary["geomean_ratio"] is None
                else f"geomean ratio of ours {summary['geomean_ratio']:.2f}, min {summary['min_ratio']:.2f}"
            )
        )
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=4, fontsize="small")
    fig.suptitle(f"subpixel_ext vs PyTorch and ONNX Runtime ({reports[0]['machine'].get('cpu_model') or 'CPU'})")
    canvas.print_figure(path)


def _plot_or_explain(reports: Sequence[Dict[str, Any]], path: str) -> int:
    try:
        plot_reports(reports, path)
    except ImportError as e:
        print(f"bench: --plot needs matplotlib ({e}); install it with: pip install matplotlib", file=sys.stderr)
        return 2
    print(f"figure written to {path}", file=sys.stderr)
    return 0


def _progress(workloads: Sequence[Workload]) -> Iterator[Workload]:
    """A progress bar over the workloads when tqdm is installed, else plain progress lines."""
    try:
        from tqdm import tqdm
    except ImportError:
        yield from workloads
        return
    with tqdm(workloads, desc="bench", unit="workload", file=sys.stderr) as bar:
        for w in bar:
            bar.set_postfix_str(w.name)
            yield w


def run(args: argparse.Namespace) -> int:
    """Run the benchmark; 0 whatever the goals say, 2 on a bad workload selection."""
    if args.replot:
        if args.plot is None:
            print("bench: --replot needs --plot FILE", file=sys.stderr)
            return 2
        reports = []
        for name in args.replot:
            with open(name, encoding="utf-8") as f:
                reports.append(json.load(f))
        return _plot_or_explain(reports, args.plot)
    try:
        workloads = _select(args)
    except (ValueError, OSError, KeyError) as e:
        print(f"bench: {e}", file=sys.stderr)
        return 2
    start_load = load_average()
    peers, peer_notes = _import_peers(args.threads) if args.compare else ({}, [])
    peaks = measure_peaks(args.threads)
    header = [
        f"subpixel_ext {show_config()['version']} bench: threads={args.threads},"
        f" CPU {cpu_model() or 'unknown'}"
        f" ({usable_cpus()} usable), load average {_fmt(start_load, '.2f')} at start",
        f"FMA peak ({peaks.simd}, the SIMD level in use): {peaks.active:.1f} GFLOP/s"
        + ("" if peaks.avx2 is None else f"; AVX2-level peak: {peaks.avx2:.1f} GFLOP/s"),
    ]
    header += [f"note: {n}" for n in peer_notes]
    print("\n".join(header), flush=True)
    results = []
    with contextlib.ExitStack() as stack:
        if "torch" in peers:
            stack.enter_context(peers["torch"].inference_mode())
        for i, w in enumerate(_progress(workloads), 1):
            start = time.perf_counter()
            res = run_workload(w, args, peers, peaks)
            results.append(res)
            ratio = res.ratio(res.ours)
            print(
                f"[{i}/{len(workloads)}] {w.name} done in {time.perf_counter() - start:.1f} s: "
                f"{res.ours.name} {res.ours.best.variant.layout} {res.ours.best.median * 1e3:.3f} ms"
                + ("" if ratio is None else f", ratio {ratio:.2f}"),
                file=sys.stderr, flush=True,
            )
    goal_list = goals(results)
    print("\n\n".join([format_table(r) for r in results] + [format_summary(results, goal_list)]))
    found = ratios(results)
    report = {
        "machine": machine_info(peers, start_load),
        "threads": args.threads,
        "repeats": _repeats(args),
        "pause_before_sample_s": _settle(args),
        "peaks_gflops": {"simd_active": peaks.simd, "active": peaks.active, "avx2": peaks.avx2},
        "peer_notes": peer_notes,
        "workloads": [r.to_json() for r in results],
        "summary": {
            "ratios": found,
            "geomean_ratio": geomean(list(found.values())) if found else None,
            "min_ratio": min(found.values()) if found else None,
            "goals": [{"passed": g.passed, "text": g.text} for g in goal_list],
        },
    }
    if args.json is not None:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(report, f, indent=2)
    if args.plot is not None:
        return _plot_or_explain([report], args.plot)
    return 0
