"""Time an older build of subpixel_ext against the installed one on the 2-D workloads.

Both versions live in this one process: the older one is loaded from its install directory under
another module name (``subpixel_ext_old``), so its ``_core`` extension is a separate module. Each
workload's old and new functional calls (method "auto", both layouts) then run interleaved, as in
bench.py, and the table gives old median / new median for the best layout of each (< 1: the new
build is slower). Build the old one with, e.g.::

    git worktree add /tmp/oldmain 1a8f2c6
    pip install --no-build-isolation --target /tmp/oldpkg /tmp/oldmain
    python benchmarks/compare_versions.py --old /tmp/oldpkg --threads 1,2
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import sys
from pathlib import Path
from typing import Any, Dict, List

import numpy as np

import subpixel_ext as spx
from contenders import Contender, OurCalls, make_inputs
from report import fmt, load_average, machine_info
from timing import Row, best_rows, measure, quiet_gc
from workloads import DEFAULT_WORKLOADS_FILE, Workload, load_workloads, select_workloads

OLD_MODULE = "subpixel_ext_old"
NOT_SLOWER = 0.95  # old / new at or above this: no slower than before, within the noise
SAMPLE_SECONDS = 0.02
SETTLE_SECONDS = 0.025


def load_old(install_dir: Path) -> Any:
    package = install_dir / "subpixel_ext"
    spec = importlib.util.spec_from_file_location(
        OLD_MODULE, package / "__init__.py", submodule_search_locations=[str(package)]
    )
    if spec is None or spec.loader is None:
        raise ImportError(f"no subpixel_ext package in {install_dir}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[OLD_MODULE] = module  # its relative imports (._core, ._api) resolve under this name
    spec.loader.exec_module(module)
    return module


def version_contenders(w: Workload, old: Any, threads: int) -> List[Contender]:
    inp = make_inputs(w, np.random.default_rng(0))
    method = None if w.op != "conv_transpose" else "auto"
    return [
        Contender(name, "ours", calls.variants(calls.functional(method)), method)
        for name, calls in (("old", OurCalls(w, inp, threads, old)), ("new", OurCalls(w, inp, threads)))
    ]


def compare(w: Workload, old: Any, threads: int, repeats: int) -> Dict[str, Any]:
    with quiet_gc():
        timings = measure(version_contenders(w, old, threads), repeats, SAMPLE_SECONDS,
                          SETTLE_SECONDS if threads > 1 else 0.0)
    rows: Dict[str, Row] = {row.name: row for row in best_rows(timings)}
    per_layout = {
        t.variant.layout: {"old_median_s": t.median, "old_min_s": t.minimum}
        for t in timings if t.contender.name == "old"
    }
    for t in timings:
        if t.contender.name == "new":
            per_layout[t.variant.layout].update(new_median_s=t.median, new_min_s=t.minimum)
    old_row, new_row = rows["old"], rows["new"]
    return {
        "name": w.name,
        "threads": threads,
        "old_best_layout": old_row.best.variant.layout,
        "new_best_layout": new_row.best.variant.layout,
        "old_median_s": old_row.best.median,
        "new_median_s": new_row.best.median,
        "old_over_new": old_row.best.median / new_row.best.median,
        "results_match": new_row.matches,
        "layouts": per_layout,
    }


def format_table(entries: List[Dict[str, Any]]) -> str:
    lines = [
        f"old / new (best layout of each; >= {NOT_SLOWER} means the new build is not slower)",
        f"  {'workload':<14}{'threads':>8}{'old ms':>11}{'new ms':>11}{'old/new':>9}  per layout old/new",
    ]
    for e in entries:
        layouts = ", ".join(
            f"{layout} {v['old_median_s'] / v['new_median_s']:.2f}" for layout, v in e["layouts"].items()
        )
        flag = "" if e["old_over_new"] >= NOT_SLOWER else "  SLOWER"
        flag += "" if e["results_match"] else "  RESULTS DIFFER"
        lines.append(
            f"  {e['name']:<14}{e['threads']:>8}{e['old_median_s'] * 1e3:>11.3f}{e['new_median_s'] * 1e3:>11.3f}"
            f"{e['old_over_new']:>9.2f}  {layouts}{flag}"
        )
    return "\n".join(lines)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--old", type=Path, required=True, metavar="DIR", help="the install (--target) directory of the old build")
    p.add_argument("--workloads", type=Path, default=DEFAULT_WORKLOADS_FILE, metavar="FILE")
    p.add_argument("--only", default=None, metavar="NAMES", help="comma-separated workload names to run")
    p.add_argument("--threads", default="1", help="comma-separated thread counts (default 1)")
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--passes", type=int, default=1,
                   help="sweeps of every workload and thread count; with several, the verdict is each pair's median ratio")
    p.add_argument("--json", default=None, metavar="FILE")
    return p


def format_passes(passes: List[List[Dict[str, Any]]]) -> str:
    """Per workload and thread count, the old/new ratio of every pass and their median."""
    lines = [
        f"old / new per pass (best layout of each); median over {len(passes)} passes, >= {NOT_SLOWER}: not slower",
        f"  {'workload':<14}{'threads':>8}{'median':>8}  passes",
    ]
    for i, first in enumerate(passes[0]):
        ratios = [p[i]["old_over_new"] for p in passes]
        median = statistics.median(ratios)
        flag = "" if median >= NOT_SLOWER else "  SLOWER"
        lines.append(f"  {first['name']:<14}{first['threads']:>8}{median:>8.2f}  {' '.join(f'{r:.2f}' for r in ratios)}{flag}")
    return "\n".join(lines)


def main() -> int:
    args = parser().parse_args()
    old = load_old(args.old)
    workloads, notes = load_workloads(args.workloads)
    two_d = [w for w in select_workloads(workloads, args.only) if w.dims == 2]
    start_load = load_average()
    print(f"old: {old.__file__}\nnew: {spx.__file__}\nload average {fmt(start_load, '.2f')} at start", flush=True)
    passes: List[List[Dict[str, Any]]] = []
    for number in range(args.passes):
        entries = []
        for threads in (int(t) for t in args.threads.split(",")):
            for w in two_d:
                entries.append(compare(w, old, threads, args.repeats))
                print(f"pass {number + 1}: {w.name} threads={threads}: old/new {entries[-1]['old_over_new']:.2f}",
                      file=sys.stderr, flush=True)
        passes.append(entries)
        print(format_table(entries), flush=True)
    end_load = load_average()
    if len(passes) > 1:
        print(format_passes(passes))
    print(f"load average {fmt(start_load, '.2f')} at start, {fmt(end_load, '.2f')} at end")
    if args.json is not None:
        report = {
            "machine": machine_info({}), "old": str(old.__file__), "new": str(spx.__file__),
            "load_average_1min": {"start": start_load, "end": end_load}, "repeats": args.repeats,
            "notes": notes, "passes": passes,
        }
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(report, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
