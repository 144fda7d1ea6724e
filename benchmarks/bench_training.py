"""Training benchmark: forward + backward of subpixel_ext.torch against PyTorch autograd.

Run from a source checkout with the package and torch installed:
``python benchmarks/bench_training.py [--threads 1 2] [--only sr_64ch,...]``. Per workload and
thread count, every contender runs interleaved in one process (timing.measure: calibrated
samples, a warmup, then rotating rounds) on the same tensors:

* fwd+bwd: ``y = conv_transpose(x, w, b)``, ``y.backward(grad)`` with x, w and b requiring grad,
  through ``subpixel_ext.torch`` (ours) and ``torch.nn.functional`` (PyTorch's autograd);
* grad_weight / grad_input: the backward kernels alone, ours (the NumPy backward API) against
  ``torch.ops.aten.convolution_backward`` with the same output mask.

Each in both memory layouts (``--layouts``): channels first, and channels last (torch's
``channels_last`` / ``channels_last_3d`` tensors, NHWC / NDHWC arrays for the NumPy API; 1-D
workloads have no torch channels-last format and run channels first only).

Ratios are PyTorch's median time over ours (> 1: ours is faster). The weight gradient's GFLOP/s
(2 x its useful multiply-adds per second) is compared with the FMA peak measured in the process.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Callable, Dict, List, Sequence, Tuple

import numpy as np

import subpixel_ext as spx
from bench import measure_peaks
from contenders import LAYOUTS as NUMPY_LAYOUTS, Contender, Variant
from report import cpu_model, load_average, usable_cpus
from timing import measure, quiet_gc
from workloads import DEFAULT_WORKLOADS_FILE, Workload, load_workloads, select_workloads

DEFAULT_WORKLOADS = "sr_64ch,gan_decoder,hifigan_up1,nnunet_up3d"
REPEATS, SAMPLE_SECONDS, SETTLE_SECONDS = 7, 0.05, 0.025
PAIRS = (("fwd+bwd", "ours fwd+bwd", "torch fwd+bwd"), ("grad_weight", "ours grad_weight", "torch grad_weight"),
         ("grad_input", "ours grad_input", "torch grad_input"))


LAYOUTS = ("first", "last")
CHANNELS_LAST_FORMATS = {2: "channels_last", 3: "channels_last_3d"}  # torch has none for 1-D


def _numpy_layout(rank: int, layout: str) -> str:
    return NUMPY_LAYOUTS[rank][layout == "last"]


def _tensors(torch: Any, w: Workload, layout: str) -> Dict[str, Any]:
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.uniform(-1, 1, w.in_shape).astype(np.float32))
    weight = torch.from_numpy(rng.uniform(-1, 1, w.weight_shape).astype(np.float32))
    bias = torch.from_numpy(rng.uniform(-1, 1, w.out_shape[1]).astype(np.float32))
    grad = torch.from_numpy(rng.uniform(-1, 1, w.out_shape).astype(np.float32))
    if layout == "last":
        fmt = getattr(torch, CHANNELS_LAST_FORMATS[w.dims])
        x, grad = x.contiguous(memory_format=fmt), grad.contiguous(memory_format=fmt)
    return dict(x=x, weight=weight, bias=bias, grad=grad)


def _numpy_arrays(t: Dict[str, Any], layout: str) -> Dict[str, np.ndarray]:
    """The tensors as arrays in the layout's memory order (channels last: N, spatial..., C)."""
    arrays = {k: v.numpy() for k, v in t.items() if k in ("weight", "bias")}
    for k in ("x", "grad"):
        v = t[k]
        arrays[k] = v.movedim(1, -1).numpy() if layout == "last" else v.numpy()
    return arrays


def _training_calls(torch: Any, w: Workload, t: Dict[str, Any], layout: str) -> Dict[str, Callable[[], Any]]:
    import subpixel_ext.torch as spt

    rank = w.dims
    kwargs = dict(stride=w.axis("stride"), padding=w.axis("padding"), groups=w.groups)
    leaves = {k: t[k].clone().requires_grad_() for k in ("x", "weight", "bias")}
    ours_fn, torch_fn = getattr(spt, f"conv_transpose{rank}d"), getattr(torch.nn.functional, f"conv_transpose{rank}d")

    def step(fn: Callable[..., Any]) -> Callable[[], Any]:
        def call() -> Any:
            for leaf in leaves.values():
                leaf.grad = None
            fn(leaves["x"], leaves["weight"], leaves["bias"], **kwargs).backward(t["grad"])
            return [leaf.grad for leaf in leaves.values()]
        return call

    arrays = _numpy_arrays(t, layout)
    ours_backward = getattr(spx, f"conv_transpose{rank}d_backward")
    numpy_layout = _numpy_layout(rank, layout)

    def ours(mask: Tuple[bool, bool, bool]) -> Callable[[], Any]:
        return lambda: ours_backward(arrays["grad"], arrays["x"], arrays["weight"], output_mask=mask,
                                     layout=numpy_layout, **kwargs)

    def theirs(mask: List[bool]) -> Callable[[], Any]:
        return lambda: torch.ops.aten.convolution_backward(
            t["grad"], t["x"], t["weight"], [w.out_shape[1]], list(kwargs["stride"]), list(kwargs["padding"]),
            [1] * rank, True, [0] * rank, w.groups, mask)

    return {
        "ours fwd+bwd": step(ours_fn), "torch fwd+bwd": step(torch_fn),
        "ours grad_weight": ours((False, True, False)), "torch grad_weight": theirs([False, True, False]),
        "ours grad_input": ours((True, False, False)), "torch grad_input": theirs([True, False, False]),
    }


def _check(torch: Any, calls: Dict[str, Callable[[], Any]]) -> float:
    """Largest difference of our gradients from PyTorch's, relative to each gradient's max |value|."""
    ours, theirs = calls["ours fwd+bwd"](), calls["torch fwd+bwd"]()
    return max(float((a - b).abs().max() / b.abs().max()) for a, b in zip(ours, theirs))


def run_workload(torch: Any, w: Workload, layout: str, threads: int, peak: float, repeats: int) -> Dict[str, Any]:
    torch.set_num_threads(threads)
    spx.set_num_threads(threads)
    calls = _training_calls(torch, w, _tensors(torch, w, layout), layout)
    error = _check(torch, calls)
    contenders = [Contender(name, "ours" if name.startswith("ours") else "peer", [Variant("NC", call, None)])
                  for name, call in calls.items()]
    with quiet_gc():
        timings = measure(contenders, repeats, SAMPLE_SECONDS, SETTLE_SECONDS if threads > 1 else 0.0)
    times = {t.contender.name: (t.minimum, t.median) for t in timings}
    row: Dict[str, Any] = {"workload": w.name, "layout": _numpy_layout(w.dims, layout), "threads": threads,
                           "max_rel_grad_error": error,
                           "ms": {k: {"min": v[0] * 1e3, "median": v[1] * 1e3} for k, v in times.items()}}
    row["ratios"] = {label: times[theirs][1] / times[ours][1] for label, ours, theirs in PAIRS}
    gflops = w.useful_flop / times["ours grad_weight"][1] * 1e-9
    row["grad_weight_gflops"] = gflops
    row["grad_weight_fraction_of_peak"] = gflops / peak
    row["torch_grad_weight_gflops"] = w.useful_flop / times["torch grad_weight"][1] * 1e-9
    return row


def format_rows(rows: Sequence[Dict[str, Any]], peaks: Dict[int, float]) -> str:
    head = (f"{'workload':<13}{'layout':<7}{'thr':>4}{'ours f+b ms':>13}{'torch f+b ms':>14}{'ratio':>7}{'gw ratio':>10}"
            f"{'gi ratio':>10}{'gw GFLOP/s':>12}{'of peak':>9}{'torch gw':>10}{'grad err':>10}")
    lines = [head]
    for r in rows:
        ms = r["ms"]
        lines.append(
            f"{r['workload']:<13}{r['layout']:<7}{r['threads']:>4}{ms['ours fwd+bwd']['median']:>13.2f}"
            f"{ms['torch fwd+bwd']['median']:>14.2f}{r['ratios']['fwd+bwd']:>7.2f}{r['ratios']['grad_weight']:>10.2f}"
            f"{r['ratios']['grad_input']:>10.2f}{r['grad_weight_gflops']:>12.1f}"
            f"{100 * r['grad_weight_fraction_of_peak']:>8.0f}%{r['torch_grad_weight_gflops']:>10.1f}"
            f"{r['max_rel_grad_error']:>10.1e}")
    lines.append("ratio: PyTorch median / ours (> 1: ours faster); gw/gi: the weight/input gradient alone; "
                 "GFLOP/s of our weight gradient vs the FMA peak " +
                 ", ".join(f"{p:.1f} GFLOP/s at {t} thread(s)" for t, p in peaks.items()))
    return "\n".join(lines)


def main(argv: Sequence[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workloads", type=Path, default=DEFAULT_WORKLOADS_FILE, metavar="FILE",
                   help=f"the workloads JSON (default {DEFAULT_WORKLOADS_FILE})")
    p.add_argument("--only", default=DEFAULT_WORKLOADS, help=f"comma-separated workloads (default {DEFAULT_WORKLOADS})")
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="thread counts (default 1 2)")
    p.add_argument("--layouts", default=",".join(LAYOUTS),
                   help="comma-separated memory layouts: first (NCHW), last (NHWC) (default first,last)")
    p.add_argument("--repeats", type=int, default=REPEATS, help=f"timed rounds (default {REPEATS})")
    p.add_argument("--json", default=None, metavar="FILE", help="write every number to FILE")
    args = p.parse_args(argv)
    try:
        import torch
    except ImportError as e:
        print(f"bench_training: needs torch ({e})", file=sys.stderr)
        return 2
    workloads = select_workloads(load_workloads(args.workloads)[0], args.only)
    layouts = args.layouts.split(",")
    unknown = sorted(set(layouts) - set(LAYOUTS))
    if unknown:
        p.error(f"--layouts: unknown {', '.join(unknown)} (choose from {', '.join(LAYOUTS)})")
    peaks = {t: measure_peaks(t).active for t in args.threads}
    print(f"subpixel_ext {spx.__version__}, torch {torch.__version__}, CPU {cpu_model()} ({usable_cpus()} usable), "
          f"SIMD {spx.show_config()['simd_active']}, load average {load_average()}", flush=True)
    rows = []
    for threads in args.threads:
        for layout in layouts:
            for w in workloads:
                if layout == "last" and w.dims not in CHANNELS_LAST_FORMATS:
                    continue
                rows.append(run_workload(torch, w, layout, threads, peaks[threads], args.repeats))
                print(f"{w.name} {rows[-1]['layout']} at {threads} thread(s): ratio {rows[-1]['ratios']['fwd+bwd']:.2f}",
                      file=sys.stderr)
    print(format_rows(rows, peaks))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"peaks_gflops": peaks, "rows": rows}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
