"""Non-finite weights and inputs against the finite call of the same workload.

``python benchmarks/bench_non_finite.py [--workload gan_decoder] [--workloads FILE] [--threads 2] [--repeats 7]``:
one process, the same threads; every round times each case once in a rotating order; reports
min and median seconds and their ratios to the finite case.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from typing import Callable, Dict, List

import numpy as np

import subpixel_ext as spx
from workloads import DEFAULT_WORKLOADS_FILE, load_workloads, select_workloads


def cases(params: Dict[str, int], rng: np.random.Generator) -> Dict[str, Callable[[], np.ndarray]]:
    x = rng.standard_normal((params["N"], params["C_in"], params["H"], params["W"])).astype(np.float32)
    w = rng.standard_normal((params["C_in"], params["C_out"], params["k"], params["k"])).astype(np.float32)
    x_one, w_one, w_inf = x.copy(), w.copy(), w.copy()
    w_one[3, 5, 1, 2] = np.nan
    x_one[0, 7, 3, 4] = np.nan
    w_inf[::7, ::5, 0, ::3] = np.inf
    w_nan = np.full_like(w, np.nan)
    y = np.empty_like(spx.conv_transpose2d(x, w, stride=params["stride"], padding=params["padding"]))
    geometry = dict(stride=params["stride"], padding=params["padding"], out=y)
    return {
        "finite": lambda: spx.conv_transpose2d(x, w, **geometry),
        "all weights NaN": lambda: spx.conv_transpose2d(x, w_nan, **geometry),
        "one NaN weight + one NaN input": lambda: spx.conv_transpose2d(x_one, w_one, **geometry),
        "some Inf weights": lambda: spx.conv_transpose2d(x, w_inf, **geometry),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workload", default="gan_decoder")
    parser.add_argument("--workloads", type=Path, default=DEFAULT_WORKLOADS_FILE, help="the workloads file")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    workloads, _ = load_workloads(args.workloads)
    workload = select_workloads([w for w in workloads if w.kind == "conv_transpose2d"], args.workload)[0]
    spx.set_num_threads(args.threads)
    calls = cases(workload.params, np.random.default_rng(0))
    names = list(calls)
    samples: Dict[str, List[float]] = {name: [] for name in names}
    for name in names:  # warm-up: plans and packed weights
        calls[name]()
    for round_ in range(args.repeats):
        for name in names[round_ % len(names):] + names[: round_ % len(names)]:
            start = time.perf_counter()
            calls[name]()
            samples[name].append(time.perf_counter() - start)
    base_min, base_median = min(samples["finite"]), statistics.median(samples["finite"])
    print(f"{workload.name}, {args.threads} threads, {args.repeats} interleaved rounds")
    print(f"{'case':34} {'min s':>9} {'median s':>9} {'min ratio':>9} {'median ratio':>12}")
    for name in names:
        lo, mid = min(samples[name]), statistics.median(samples[name])
        print(f"{name:34} {lo:9.4f} {mid:9.4f} {lo / base_min:9.2f} {mid / base_median:12.2f}")


if __name__ == "__main__":
    main()
