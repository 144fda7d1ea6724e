"""Smoke test of the benchmark (``subpixel_ext._bench``): it runs, and its JSON holds positive times.

The goal lines it prints are informational and never asserted here.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict

# Calls the two functions the command line (`python -m subpixel_ext bench`) is built on.
DRIVER = (
    "import argparse, sys; from subpixel_ext import _bench; "
    "parser = argparse.ArgumentParser(); _bench.add_arguments(parser); "
    "sys.exit(_bench.run(parser.parse_args()))"
)


def run_bench(tmp_path: Path) -> Dict[str, Any]:
    out = tmp_path / "bench.json"
    done = subprocess.run(
        [sys.executable, "-c", DRIVER, "--quick", "--workloads", "seed_tiny,shuffle_256", "--json", str(out)],
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "seed_tiny" in done.stdout and "shuffle_256" in done.stdout
    report: Dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
    return report


def test_bench_json_structure_and_positive_times(tmp_path: Path) -> None:
    report = run_bench(tmp_path)
    assert report["threads"] == 1 and report["repeats"] == 3
    assert report["machine"]["subpixel_ext"]["version"]
    assert report["peaks_gflops"]["active"] > 0
    assert [w["name"] for w in report["workloads"]] == ["seed_tiny", "shuffle_256"]
    tiny, shuffle = report["workloads"]
    # Without --compare only our contenders (and memcpy for the shuffle) run.
    assert [c["name"] for c in tiny["contenders"]] == ["ours auto", "ours direct", "ours polyphase"]
    assert [c["family"] for c in shuffle["contenders"]] == ["ours", "reference"]
    assert tiny["ratio"] is None and report["summary"]["geomean_ratio"] is None
    assert tiny["direct_all_macs_gflops"] > 0
    for workload in report["workloads"]:
        for contender in workload["contenders"]:
            assert contender["median_s"] > 0 and contender["rate"] > 0
            layouts = [v["layout"] for v in contender["variants"]]
            assert contender["best_layout"] == layouts[0]
            if contender["family"] == "ours":
                assert sorted(layouts) == ["NCHW", "NHWC"]
                assert contender["matches_ours"]
            for variant in contender["variants"]:
                assert len(variant["samples_s"]) == 3
                assert all(t > 0 for t in variant["samples_s"])
                assert variant["median_s"] >= contender["median_s"]
    assert shuffle["contenders"][0]["fraction"] > 0  # of memcpy's bandwidth
    assert {g["passed"] for g in report["summary"]["goals"]} <= {True, False, None}


def test_bench_replots_its_json(tmp_path: Path) -> None:
    if importlib.util.find_spec("matplotlib") is None:
        import pytest

        pytest.skip("matplotlib is not installed")
    run_bench(tmp_path)
    figure = tmp_path / "bench.png"
    done = subprocess.run(
        [sys.executable, "-m", "subpixel_ext", "bench", "--replot", str(tmp_path / "bench.json"),
         str(tmp_path / "bench.json"), "--plot", str(figure)],
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bench_rejects_unknown_workload() -> None:
    done = subprocess.run(
        [sys.executable, "-c", DRIVER, "--workloads", "no_such_workload"],
        capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 2
    assert "no_such_workload" in done.stderr
