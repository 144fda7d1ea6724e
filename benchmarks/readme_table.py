"""The README's performance tables: from two bench.py reports (1 and 2 threads, or any two),
or from one bench_training.py report.

    python benchmarks/readme_table.py docs/bench/threads1.json docs/bench/threads2.json
    python benchmarks/readme_table.py --training docs/bench/training.json

Prints one Markdown row per workload: our functional call's time and ratio, the prepacked
layer's time and ratio, per report; then the geometric means and the machine line. With
--training, one row per workload, layout and thread count: forward + backward times and ratio,
and the ratios of the weight and input gradients alone.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Any, Dict, List, Optional, Sequence


def duration(seconds: float) -> str:
    return f"{seconds * 1e6:.2f} us" if seconds < 1e-3 else f"{seconds * 1e3:.2f} ms"


def ratio_text(value: Optional[float]) -> str:
    return "-" if value is None else f"{value:.2f}"


def cells(workload: Dict[str, Any]) -> List[str]:
    by_name = {c["name"]: c for c in workload["contenders"]}
    ours, layer = by_name[workload["ours"]], by_name.get(workload["layer"] or "")
    layer_cell = "-" if layer is None else f"{duration(layer['median_s'])} ({ratio_text(workload['layer_ratio'])})"
    return [duration(ours["median_s"]), f"**{ratio_text(workload['ratio'])}**", layer_cell]


def geomean(values: Sequence[float]) -> float:
    return math.exp(sum(math.log(v) for v in values) / len(values))


def table(reports: Sequence[Dict[str, Any]]) -> str:
    head = ["workload"]
    for r in reports:
        t = r["threads"]
        head += [f"ours, {t} thread{'s' if t > 1 else ''}", "ratio", "layer (ratio)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    names = [w["name"] for w in reports[0]["workloads"]]
    by_report = [{w["name"]: w for w in r["workloads"]} for r in reports]
    for name in names:
        row = [name]
        for workloads in by_report:
            row += cells(workloads[name]) if name in workloads else ["-"] * 3
        lines.append("| " + " | ".join(row) + " |")
    means = []
    for r in reports:
        found = [w["ratio"] for w in r["workloads"] if w["ratio"] is not None]
        means.append(f"{geomean(found):.2f} at {r['threads']} thread{'s' if r['threads'] > 1 else ''}" if found else "-")
    machine = reports[0]["machine"]
    peaks = reports[0]["peaks_gflops"]
    lines += ["", f"Geometric mean of the functional ratios: {', '.join(means)}.",
              f"Machine: {machine['cpu_model']}, {machine['usable_cpus']} usable CPUs, SIMD level "
              f"{machine['subpixel_ext']['simd_active']} (FMA peak {peaks['active']:.1f} GFLOP/s at "
              f"{reports[0]['threads']} thread(s)); load average "
              + ", ".join(f"{r['load_average_1min']['start']:.2f}" for r in reports) + " at the runs' starts."]
    return "\n".join(lines)


def training_table(report: Dict[str, Any]) -> str:
    head = ["workload", "layout", "threads", "ours fwd+bwd", "PyTorch fwd+bwd", "ratio",
            "weight gradient alone: ratio, GFLOP/s (of peak)", "input gradient alone: ratio"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in report["rows"]:
        ms, ratios = row["ms"], row["ratios"]
        lines.append("| " + " | ".join([
            row["workload"], row["layout"], str(row["threads"]), f"{ms['ours fwd+bwd']['median']:.1f} ms",
            f"{ms['torch fwd+bwd']['median']:.1f} ms", f"{ratios['fwd+bwd']:.2f}",
            f"{ratios['grad_weight']:.2f}, {row['grad_weight_gflops']:.1f} ({row['grad_weight_fraction_of_peak']:.0%})",
            f"{ratios['grad_input']:.2f}"]) + " |")
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("reports", nargs="+", help="bench.py --json reports, one column group each")
    p.add_argument("--training", action="store_true", help="one bench_training.py --json report instead")
    args = p.parse_args(argv)
    reports = []
    for name in args.reports:
        with open(name, encoding="utf-8") as f:
            reports.append(json.load(f))
    if args.training:
        if len(reports) != 1:
            p.error(f"--training takes one report, got {len(reports)}")
        print(training_table(reports[0]))
    else:
        print(table(reports))
    return 0


if __name__ == "__main__":
    sys.exit(main())
