"""The benchmark figure: per workload, each contender's speed relative to the fastest peer."""

from __future__ import annotations

from typing import Any, Dict, List, Sequence

import numpy as np


def series_name(contender: Dict[str, Any]) -> str:
    """A legend entry shared by the workloads of every kind (the functional names differ per kind)."""
    if contender["family"] == "layer":
        return "ours, prepacked layer"
    if contender["family"] == "ours":
        return f"ours {contender['method'] or 'auto'}"
    return str(contender["name"])


def series_order(names: Sequence[str]) -> List[str]:
    return sorted(set(names), key=lambda n: (not n.startswith("ours"), n))


def draw_report(ax: Any, report: Dict[str, Any]) -> None:
    workloads = [w for w in report["workloads"] if w["fastest_peer"] is not None]
    speeds: Dict[str, List[float]] = {}
    for i, w in enumerate(workloads):
        for c in w["contenders"]:
            if c["family"] != "reference":
                speeds.setdefault(series_name(c), [np.nan] * len(workloads))[i] = c["ratio_fastest_peer_over_this"]
    names = series_order(list(speeds))
    height = 0.8 / max(1, len(names))
    for k, name in enumerate(names):
        ax.barh(np.arange(len(workloads)) + k * height, speeds[name], height=height, label=name)
    ax.set_yticks(np.arange(len(workloads)) + 0.4 - height / 2, [w["name"] for w in workloads])
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.axvline(1.0, color="black", linewidth=0.8)
    ax.set_xlabel("fastest peer time / time (> 1: faster than every peer)")
    summary = report["summary"]
    title = f"{report['threads']} thread(s), float32"
    if summary["geomean_ratio"] is not None:
        title += f": geomean ratio of ours {summary['geomean_ratio']:.2f}, min {summary['min_ratio']:.2f}"
    ax.set_title(title)


def plot_reports(reports: Sequence[Dict[str, Any]], path: str) -> None:
    """One panel per report, side by side, written to `path` (needs matplotlib)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7 * len(reports), 8), dpi=100, layout="constrained")
    canvas = FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(reports), squeeze=False)[0]
    for ax, report in zip(axes, reports):
        draw_report(ax, report)
    legend: Dict[str, Any] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            legend.setdefault(label, handle)
    fig.legend(list(legend.values()), list(legend), loc="outside lower center", ncols=4, fontsize="small")
    fig.suptitle(f"subpixel_ext vs PyTorch and ONNX Runtime ({reports[0]['machine'].get('cpu_model') or 'CPU'})")
    canvas.print_figure(path)
