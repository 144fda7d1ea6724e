"""Benchmark subpixel_ext against PyTorch and ONNX Runtime on the shared workloads.

Run from a source checkout with the package installed: ``python benchmarks/bench.py --help``.
All contenders of a workload run interleaved in one process with the same thread count: a warmup
round, then ``--repeats`` rounds in which every contender is timed once, in a rotating order.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

import subpixel_ext as spx
from contenders import all_contenders, make_inputs
from report import (
    Peaks, Result, format_overview, format_summary, format_table, fmt, geomean, goals, load_average,
    machine_info, ratios, scaling_goals, usable_cpus, cpu_model,
)
from timing import best_rows, measure, quiet_gc
from workloads import DEFAULT_WORKLOADS_FILE, Workload, load_workloads, select_workloads

PEAK_SECONDS = 0.3
DEFAULT_REPEATS, QUICK_REPEATS = 7, 3
# One timed sample runs a contender this long at least (several calls when one is shorter).
SAMPLE_SECONDS, QUICK_SAMPLE_SECONDS = 0.02, 0.002
# With several threads, a thread pool spin-waits after each call (ONNX Runtime's ~15 ms, OpenMP's
# ~5 ms), taking cores from whichever contender runs next: each sample then starts after a pause.
SETTLE_SECONDS = 0.025
PEER_MODULES = ("torch", "onnx", "onnxruntime")


def measure_peaks(threads: int) -> Peaks:
    simd = str(spx.show_config()["simd_active"])
    active = float(spx._core.fma_peak_gflops(threads, PEAK_SECONDS))
    if simd != "avx512":
        return Peaks(simd, active, None)
    code = (
        "import subpixel_ext as spx; assert spx.show_config()['simd_active'] == 'avx2'; "
        f"print(spx._core.fma_peak_gflops({threads}, {PEAK_SECONDS}))"
    )
    env = dict(os.environ, SUBPIXEL_EXT_SIMD="avx2")
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return Peaks(simd, active, float(done.stdout.strip()))


def import_peers(threads: int) -> Tuple[Dict[str, Any], List[str]]:
    peers: Dict[str, Any] = {}
    notes = []
    for name in PEER_MODULES:
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


def progress(workloads: Sequence[Workload]) -> Iterator[Workload]:
    """A progress bar over the workloads when tqdm is installed."""
    try:
        from tqdm import tqdm
    except ImportError:
        yield from workloads
        return
    with tqdm(workloads, desc="bench", unit="workload", file=sys.stderr) as bar:
        for w in bar:
            bar.set_postfix_str(w.name)
            yield w


def run_workload(w: Workload, args: argparse.Namespace, peers: Dict[str, Any], peaks: Peaks) -> Result:
    inp = make_inputs(w, np.random.default_rng(0))
    contenders, notes = all_contenders(w, inp, args.threads, peers)
    with quiet_gc():
        timings = measure(
            contenders,
            repeats(args),
            QUICK_SAMPLE_SECONDS if args.quick else SAMPLE_SECONDS,
            SETTLE_SECONDS if args.threads > 1 else 0.0,
        )
    return Result(w, best_rows(timings), notes, peaks)


def repeats(args: argparse.Namespace) -> int:
    return int(args.repeats or (QUICK_REPEATS if args.quick else DEFAULT_REPEATS))


def header(args: argparse.Namespace, peaks: Peaks, start_load: Optional[float], notes: Sequence[str]) -> str:
    lines = [
        f"subpixel_ext {spx.__version__} benchmark: threads={args.threads}, repeats={repeats(args)},"
        f" CPU {cpu_model() or 'unknown'} ({usable_cpus()} usable), load average {fmt(start_load, '.2f')} at start",
        f"FMA peak ({peaks.simd}, the SIMD level in use): {peaks.active:.1f} GFLOP/s"
        + ("" if peaks.avx2 is None else f"; AVX2-level peak: {peaks.avx2:.1f} GFLOP/s"),
    ]
    return "\n".join(lines + [f"note: {n}" for n in notes])


def run_all(workloads: Sequence[Workload], args: argparse.Namespace, peers: Dict[str, Any], peaks: Peaks) -> List[Result]:
    results = []
    with contextlib.ExitStack() as stack:
        if "torch" in peers:
            stack.enter_context(peers["torch"].inference_mode())
        for w in progress(workloads):
            start = time.perf_counter()
            res = run_workload(w, args, peers, peaks)
            results.append(res)
            print(
                f"{w.name} done in {time.perf_counter() - start:.1f} s: {res.ours.name}"
                f" {res.ours.best.median * 1e3:.3f} ms, ratio {fmt(res.ratio(res.ours), '.2f')}",
                file=sys.stderr, flush=True,
            )
    return results


def build_report(
    args: argparse.Namespace, results: Sequence[Result], peers: Dict[str, Any], peaks: Peaks,
    loads: Tuple[Optional[float], Optional[float]], notes: Sequence[str],
) -> Dict[str, Any]:
    found = ratios(results)
    return {
        "machine": machine_info(peers),
        "load_average_1min": {"start": loads[0], "end": loads[1]},
        "workloads_file": str(args.workloads),
        "threads": args.threads,
        "repeats": repeats(args),
        "pause_before_sample_s": SETTLE_SECONDS if args.threads > 1 else 0.0,
        "peaks_gflops": {"simd_active": peaks.simd, "active": peaks.active, "avx2": peaks.avx2},
        "notes": list(notes),
        "workloads": [r.to_json() for r in results],
        "summary": {
            "ratios": found,
            "geomean_ratio": geomean(list(found.values())) if found else None,
            "min_ratio": min(found.values()) if found else None,
            "goals": [{"passed": g.passed, "text": g.text} for g in goals(results)],
        },
    }


def plot_or_explain(reports: Sequence[Dict[str, Any]], path: str) -> int:
    from plot import plot_reports

    try:
        plot_reports(reports, path)
    except ImportError as e:
        print(f"bench: --plot needs matplotlib ({e})", file=sys.stderr)
        return 2
    print(f"figure written to {path}", file=sys.stderr)
    return 0


def replot(args: argparse.Namespace) -> int:
    if args.plot is None:
        print("bench: --replot needs --plot FILE", file=sys.stderr)
        return 2
    reports = []
    for name in args.replot:
        with open(name, encoding="utf-8") as f:
            reports.append(json.load(f))
    return plot_or_explain(reports, args.plot)


def run_threads(args: argparse.Namespace, workloads: Sequence[Workload], notes: List[str]) -> Tuple[List[Result], Dict[str, Any]]:
    """One full run at args.threads: the tables, the summary and the report."""
    start_load = load_average()
    peers, peer_notes = ({}, []) if args.no_peers else import_peers(args.threads)
    notes = notes + peer_notes
    peaks = measure_peaks(args.threads)
    print(header(args, peaks, start_load, notes), flush=True)
    results = run_all(workloads, args, peers, peaks)
    end_load = load_average()
    print("\n\n".join([format_table(r) for r in results] + [format_overview(results)]))
    print(f"load average {fmt(start_load, '.2f')} at start, {fmt(end_load, '.2f')} at end")
    print(format_summary(results, goals(results)))
    return results, build_report(args, results, peers, peaks, (start_load, end_load), notes)


def run(args: argparse.Namespace) -> int:
    """Run the benchmark: 0 whatever the goal checks say, 2 on bad arguments or workloads."""
    if args.replot:
        return replot(args)
    if len(args.threads) > 1 and args.json is not None and "{threads}" not in args.json:
        print("bench: with several thread counts, --json needs a {threads} placeholder", file=sys.stderr)
        return 2
    try:
        loaded, notes = load_workloads(args.workloads)
        workloads = select_workloads(loaded, args.only)
    except (ValueError, OSError, KeyError) as e:
        print(f"bench: {e}", file=sys.stderr)
        return 2
    by_threads, reports = {}, []
    for threads in args.threads:
        one = argparse.Namespace(**{**vars(args), "threads": threads})
        by_threads[threads], report = run_threads(one, workloads, notes)
        reports.append(report)
        if args.json is not None:
            with open(args.json.format(threads=threads), "w", encoding="utf-8") as f:
                json.dump(report, f, indent=2)
    if 1 in by_threads and 2 in by_threads:
        print("Scaling (informational):")
        print("\n".join(g.line() for g in scaling_goals(by_threads[1], by_threads[2])))
    return 0 if args.plot is None else plot_or_explain(reports, args.plot)


def thread_counts(text: str) -> List[int]:
    counts = [positive_int(part) for part in text.split(",")]
    if len(set(counts)) != len(counts):
        raise argparse.ArgumentTypeError(f"thread counts must differ, got {text}")
    return counts


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {text}")
    return value


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workloads", type=Path, default=DEFAULT_WORKLOADS_FILE, metavar="FILE",
                   help=f"the workloads JSON (default {DEFAULT_WORKLOADS_FILE})")
    p.add_argument("--only", default=None, metavar="NAMES", help="comma-separated workload names to run")
    p.add_argument("--threads", type=thread_counts, default=[1], metavar="COUNTS",
                   help="comma-separated thread counts, each a full run with every contender at that count "
                        "(default 1); 1,2 adds the speed-up from the second thread")
    p.add_argument("--repeats", type=positive_int, default=None,
                   help=f"timed rounds per workload (default {DEFAULT_REPEATS}; {QUICK_REPEATS} with --quick)")
    p.add_argument("--quick", action="store_true", help="fewer and shorter samples, for smoke tests")
    p.add_argument("--no-peers", action="store_true", help="time only our contenders")
    p.add_argument("--json", default=None, metavar="FILE", help="write every number to FILE")
    p.add_argument("--plot", default=None, metavar="FILE", help="draw the ratios into FILE (needs matplotlib)")
    p.add_argument("--replot", nargs="+", default=None, metavar="JSON",
                   help="with --plot: draw these --json reports (side by side) instead of measuring")
    return p


if __name__ == "__main__":
    sys.exit(run(parser().parse_args()))
