"""Half precision: our float16 / bfloat16 against our float32 and PyTorch in the same dtype.

Run from a source checkout with the package installed (bfloat16 needs ml_dtypes):
``python benchmarks/bench_half.py [--only NAMES] [--threads N] [--repeats R]``.
Per workload every contender runs interleaved in one process with the same thread count (a
warmup, then rounds in a rotating order; see timing.py), each in its best layout: ours (method
"auto", out= pre-allocated) in float32, float16 and bfloat16, PyTorch in float16 and bfloat16
(contiguous and channels-last memory formats). The table reports medians (min in the JSON) and
the ratios our float32 / our half (>= 1: half is faster) and PyTorch / ours in the same dtype.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np

import subpixel_ext as spx
from contenders import TORCH_CHANNELS_LAST, Contender, Inputs, OurCalls, Variant, make_inputs
from report import cpu_model, fmt
from timing import best_rows, measure, quiet_gc
from workloads import DEFAULT_WORKLOADS_FILE, Workload, load_workloads, select_workloads

DTYPES = ("float32", "float16", "bfloat16")
DEFAULT_ONLY = "image_1ch,sr_64ch,gan_decoder,stride3,dcgan_block,espcn_last,shuffle_256,hifigan_up3,nnunet_up3d"


def numpy_dtype(name: str) -> np.dtype:
    if name == "bfloat16":
        import ml_dtypes

        return np.dtype(ml_dtypes.bfloat16)
    return np.dtype(name)


def ours(w: Workload, inp: Inputs, dtype: str, threads: int) -> Contender:
    dt = numpy_dtype(dtype)
    cast = Inputs(inp.x.astype(dt), None if inp.weight is None else inp.weight.astype(dt))
    calls = OurCalls(w, cast, threads)
    variants = calls.variants(calls.functional(None if w.op != "conv_transpose" else "auto"))
    for v in variants:  # compared in float32 with the first contender (our float32)
        to_first = v.to_channels_first
        assert to_first is not None
        v.to_channels_first = lambda y, f=to_first: np.asarray(f(y), dtype=np.float32)
    return Contender(f"ours {dtype}", "ours", variants)


def torch_peer(torch: Any, w: Workload, inp: Inputs, dtype: str) -> Optional[Contender]:
    if w.op != "conv_transpose" and w.dims != 2:
        return None
    F, tdtype = torch.nn.functional, getattr(torch, dtype)
    formats = {"contiguous": torch.contiguous_format}
    if w.dims in TORCH_CHANNELS_LAST:
        formats[TORCH_CHANNELS_LAST[w.dims]] = getattr(torch, TORCH_CHANNELS_LAST[w.dims])
    r = w.params.get("r")
    padding = w.axis("padding") if "padding" in w.params else None

    def call(fmt: str) -> Any:
        x = torch.from_numpy(inp.x).to(tdtype).contiguous(memory_format=formats[fmt])
        if inp.weight is None:
            return lambda: F.pixel_shuffle(x, r)
        wt = torch.from_numpy(inp.weight).to(tdtype).contiguous(memory_format=formats[fmt])
        if w.op == "subpixel_conv":
            return lambda: F.pixel_shuffle(F.conv2d(x, wt, padding=padding), r)
        deconv = getattr(F, f"conv_transpose{w.dims}d")
        stride, groups = w.axis("stride"), w.groups
        return lambda: deconv(x, wt, stride=stride, padding=padding, groups=groups)

    def to_numpy(t: Any) -> np.ndarray:
        return np.asarray(t.float().contiguous().numpy())

    return Contender(f"torch {dtype}", "peer", [Variant(fmt, call(fmt), to_numpy) for fmt in formats])


def run_workload(w: Workload, args: argparse.Namespace, torch: Any) -> Dict[str, Any]:
    inp = make_inputs(w, np.random.default_rng(0))
    contenders = [ours(w, inp, d, args.threads) for d in DTYPES]
    if torch is not None:
        contenders += [c for c in (torch_peer(torch, w, inp, d) for d in DTYPES[1:]) if c is not None]
    with quiet_gc():
        rows = best_rows(measure(contenders, args.repeats, 0.02, 0.025 if args.threads > 1 else 0.0))
    found = {row.name: {"median_ms": row.best.median * 1e3, "min_ms": row.best.minimum * 1e3,
                        "layout": row.best.variant.layout, "max_rel_error_vs_ours_f32": row.best.max_rel_error}
             for row in rows}
    return {"workload": w.name, "contenders": found}


def ratio(result: Dict[str, Any], slow: str, fast: str) -> Optional[float]:
    c = result["contenders"]
    return c[slow]["median_ms"] / c[fast]["median_ms"] if slow in c and fast in c else None


def table(results: List[Dict[str, Any]]) -> str:
    head = ("workload", "f32 ms", "f16 ms", "bf16 ms", "f32/f16", "f32/bf16", "torch f16 ms", "torch bf16 ms",
            "torch/ours f16", "torch/ours bf16", "f16 err", "bf16 err")
    lines = [" | ".join(head), " | ".join("---" for _ in head)]
    for r in results:
        c = r["contenders"]
        ms = [fmt(c.get(name, {}).get("median_ms"), ".3f") for name in
              ("ours float32", "ours float16", "ours bfloat16", "torch float16", "torch bfloat16")]
        errs = [fmt(c.get(name, {}).get("max_rel_error_vs_ours_f32"), ".1e") for name in ("ours float16", "ours bfloat16")]
        ratios = [fmt(ratio(r, *pair), ".2f") for pair in (("ours float32", "ours float16"), ("ours float32", "ours bfloat16"),
                                                          ("torch float16", "ours float16"), ("torch bfloat16", "ours bfloat16"))]
        lines.append(" | ".join([r["workload"]] + ms[:3] + ratios[:2] + ms[3:] + ratios[2:] + errs))
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workloads", type=Path, default=DEFAULT_WORKLOADS_FILE, metavar="FILE",
                   help=f"the workloads JSON (default {DEFAULT_WORKLOADS_FILE})")
    p.add_argument("--only", default=DEFAULT_ONLY, help="comma-separated workload names")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--no-peers", action="store_true", help="time only our contenders")
    p.add_argument("--json", default=None, metavar="FILE")
    args = p.parse_args()
    loaded, _ = load_workloads(args.workloads)
    workloads = select_workloads(loaded, args.only)
    torch = None
    if not args.no_peers:
        try:
            import torch
            torch.set_num_threads(args.threads)
        except ImportError:
            print("note: torch is not importable; its contenders are skipped", file=sys.stderr)
    print(f"subpixel_ext {spx.__version__} half-precision benchmark: threads={args.threads}, repeats={args.repeats}, "
          f"CPU {cpu_model() or 'unknown'}, SIMD {spx.show_config()['simd_active']}")
    results = []
    for w in workloads:
        if torch is not None:
            with torch.inference_mode():
                results.append(run_workload(w, args, torch))
        else:
            results.append(run_workload(w, args, None))
        print(f"{w.name} done", file=sys.stderr, flush=True)
    print(table(results))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"threads": args.threads, "repeats": args.repeats, "results": results}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
