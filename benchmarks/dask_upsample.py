"""subpixel_ext.dask at scale: throughput against one in-memory call, then an out-of-core run.

Run from a source checkout with the [dask] extra installed:

    python benchmarks/dask_upsample.py                  # both parts, 24576^2 out-of-core
    python benchmarks/dask_upsample.py --size 8192      # a smaller out-of-core run
    python benchmarks/dask_upsample.py --skip-out-of-core

Part 1 runs the same transposed convolution on an in-memory array once as a single
``conv_transpose2d`` call with ``--threads`` threads and once through dask's threaded scheduler
with ``--threads`` workers (one OpenMP thread per task, the module's default rule), storing the
chunks into a preallocated array, and prints the ratio of their throughputs (best of
``--repeats``).

Part 2 writes a ``--size``^2 float32 Zarr array (uncompressed) under ``--data-dir``, upsamples
it by 2 into another Zarr array (4x the size on disk) with a progress bar, and reports the time
and the peak resident memory of the process that did it (each step runs in its own process, so
the peak is that step's alone). The data is deleted at the end unless ``--keep``.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict

import dask
import dask.array as da
import numpy as np
from dask.diagnostics import ProgressBar

import subpixel_ext as spx
import subpixel_ext.dask as sxd

# Bilinear upsampling by 2 as a transposed convolution: kernel 4, stride 2, padding 1.
BILINEAR = np.outer([0.25, 0.75, 0.75, 0.25], [0.25, 0.75, 0.75, 0.25]).astype(np.float32)
UPSAMPLE = dict(stride=2, padding=1)


def peak_rss_gib() -> float:
    """This process's peak resident memory. VmHWM, because ru_maxrss survives fork + exec and
    would report the parent's peak."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 2**20  # KiB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def best_time(run: Callable[[], Any], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def throughput(name: str, x: np.ndarray, weight: np.ndarray, chunk: int, threads: int, repeats: int) -> Dict[str, Any]:
    """One in-memory call (allocating its result, and into a preallocated `out`) vs the dask
    graph over `chunk`^2 tiles stored into a preallocated array, the same total threads."""
    expected = spx.conv_transpose2d(x, weight, **UPSAMPLE, num_threads=threads)
    out = np.empty_like(expected)
    memory = best_time(lambda: spx.conv_transpose2d(x, weight, **UPSAMPLE, num_threads=threads), repeats)
    into_out = best_time(lambda: spx.conv_transpose2d(x, weight, **UPSAMPLE, out=out, num_threads=threads), repeats)
    lazy = sxd.conv_transpose2d(da.from_array(x, chunks=(1, -1, chunk, chunk)), weight, **UPSAMPLE)
    with dask.config.set(scheduler="threads", num_workers=threads):
        chunked = best_time(lambda: da.store(lazy, out, lock=False), repeats)
    identical = bool(np.array_equal(out, expected))
    moved = x.nbytes + expected.nbytes
    row = dict(
        problem=name, input=list(x.shape), weight=list(weight.shape), chunk=chunk, threads=threads,
        in_memory_s=round(memory, 3), in_memory_out_s=round(into_out, 3), dask_s=round(chunked, 3),
        ratio=round(memory / chunked, 3), ratio_vs_out=round(into_out / chunked, 3),
        dask_gb_per_s=round(moved / chunked / 1e9, 2), bit_identical=identical,
    )
    print(json.dumps(row), flush=True)
    return row


def part_throughput(args: argparse.Namespace) -> None:
    rng = np.random.default_rng(0)
    image = rng.standard_normal((1, 1, 8192, 8192), dtype=np.float32)
    throughput("bilinear x2, 1 channel, 8192^2", image, BILINEAR[None, None], 1024, args.threads, args.repeats)
    features = rng.standard_normal((1, 16, 1024, 1024), dtype=np.float32)
    weight = rng.standard_normal((16, 16, 4, 4), dtype=np.float32)
    throughput("16 -> 16 channels, kernel 4, 1024^2", features, weight, 256, args.threads, args.repeats)


def step_make(path: Path, size: int, chunk: int) -> None:
    source = da.random.default_rng(1).standard_normal((1, 1, size, size), dtype=np.float32, chunks=(1, 1, chunk, chunk))
    source.to_zarr(str(path), compressors=None, overwrite=True)


def step_upsample(source: Path, target: Path) -> None:
    x = da.from_zarr(str(source))
    y = sxd.conv_transpose2d(x, BILINEAR[None, None], **UPSAMPLE)
    y.to_zarr(str(target), compressors=None, overwrite=True)


def run_step(step: str, args: argparse.Namespace) -> Dict[str, Any]:
    """Run one out-of-core step in a fresh process; its wall time and peak RSS."""
    command = [sys.executable, __file__, "--step", step, "--size", str(args.size), "--chunk", str(args.chunk),
               "--data-dir", str(args.data_dir), "--threads", str(args.threads)]
    result = subprocess.run(command, check=True, stdout=subprocess.PIPE, text=True)
    return dict(json.loads(result.stdout.strip().splitlines()[-1]))


def part_out_of_core(args: argparse.Namespace) -> None:
    args.data_dir.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(args.data_dir).free
    needed = 5 * args.size**2 * 4
    if free < 1.2 * needed:
        raise SystemExit(f"--data-dir {args.data_dir} has {free / 2**30:.1f} GiB free, needs {needed / 2**30:.1f}")
    try:
        for step in ("make", "upsample"):
            report = run_step(step, args)
            print(json.dumps(dict(step=step, size=args.size, chunk=args.chunk, **report)), flush=True)
    finally:
        if not args.keep:
            shutil.rmtree(args.data_dir / "in.zarr", ignore_errors=True)
            shutil.rmtree(args.data_dir / "out.zarr", ignore_errors=True)


def child(args: argparse.Namespace) -> None:
    source, target = args.data_dir / "in.zarr", args.data_dir / "out.zarr"
    start = time.perf_counter()
    with dask.config.set(scheduler="threads", num_workers=args.threads), ProgressBar(out=sys.stderr):
        if args.step == "make":
            step_make(source, args.size, args.chunk)
        else:
            step_upsample(source, target)
    seconds = time.perf_counter() - start
    written = 4 * args.size**2 * (1 if args.step == "make" else 4)
    print(json.dumps(dict(
        seconds=round(seconds, 1), written_gib=round(written / 2**30, 2),
        gb_per_s_written=round(written / seconds / 1e9, 3), peak_rss_gib=round(peak_rss_gib(), 3),
    )))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2, help="total threads of both contenders (default 2)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--size", type=int, default=24576, help="side of the out-of-core input (default 24576)")
    parser.add_argument("--chunk", type=int, default=2048, help="side of its Zarr chunks (default 2048)")
    parser.add_argument("--data-dir", type=Path, default=Path("/tmp/subpixel_ext_bench"))
    parser.add_argument("--keep", action="store_true", help="keep the Zarr arrays")
    parser.add_argument("--skip-out-of-core", action="store_true")
    parser.add_argument("--step", choices=["make", "upsample"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.step:
        child(args)
        return
    print(json.dumps(dict(config=spx.show_config(), dask=dask.__version__)), flush=True)
    part_throughput(args)
    if not args.skip_out_of_core:
        part_out_of_core(args)


if __name__ == "__main__":
    main()
