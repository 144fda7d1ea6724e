"""Smoke test of the benchmark harness in benchmarks/ on a tiny workloads file, one round each.

Only the harness is checked (it runs, its JSON holds the fields, it skips unknown kinds); the
goal lines it prints are informational and never asserted here.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List

import pytest

BENCH = Path(__file__).resolve().parent.parent / "benchmarks" / "bench.py"
pytestmark = pytest.mark.skipif(not BENCH.exists(), reason="benchmarks/ is not in this checkout")

TINY_WORKLOADS: Dict[str, Any] = {
    "about": "tiny shapes for the smoke test",
    "conv_transpose2d": [
        {"name": "tiny2d", "N": 1, "C_in": 2, "C_out": 3, "H": 5, "W": 5, "k": 4, "stride": 2, "padding": 1}
    ],
    "conv_transpose1d": [
        {"name": "tiny1d", "dims": 1, "N": 1, "C_in": 2, "C_out": 3, "L": 9, "k": 4, "stride": 2, "padding": 1}
    ],
    "conv_transpose3d": [
        {"name": "tiny3d", "dims": 3, "N": 1, "C_in": 2, "C_out": 2, "D": 3, "H": 3, "W": 4, "k": 2, "stride": 2,
         "padding": 0}
    ],
    "subpixel_conv2d": [
        {"name": "tiny_subpixel", "N": 1, "C_in": 2, "C_out": 1, "r": 2, "H": 6, "W": 6, "k": 3, "padding": 1}
    ],
    "pixel_shuffle": [{"name": "tiny_shuffle", "N": 1, "C": 8, "r": 2, "H": 6, "W": 6}],
    "conv_transpose4d": [{"name": "from_the_future", "dims": 4, "N": 1}],
}
NAMES = ["tiny2d", "tiny1d", "tiny3d", "tiny_subpixel", "tiny_shuffle"]  # in the file's order


def has(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def run_bench(tmp_path: Path, *options: str) -> subprocess.CompletedProcess[str]:
    workloads = tmp_path / "workloads.json"
    workloads.write_text(json.dumps(TINY_WORKLOADS), encoding="utf-8")
    return subprocess.run(
        [sys.executable, str(BENCH), "--workloads", str(workloads), "--quick", "--repeats", "1", *options],
        capture_output=True, text=True, timeout=300,
    )


def bench_report(tmp_path: Path, *options: str) -> Dict[str, Any]:
    done = run_bench(tmp_path, "--json", str(tmp_path / "bench.json"), *options)
    assert done.returncode == 0, done.stderr
    assert "unknown kind 'conv_transpose4d'" in done.stdout
    report: Dict[str, Any] = json.loads((tmp_path / "bench.json").read_text(encoding="utf-8"))
    return report


def check_contender(contender: Dict[str, Any]) -> None:
    assert contender["median_s"] > 0 and contender["min_s"] <= contender["median_s"]
    layouts = [v["layout"] for v in contender["variants"]]
    assert contender["best_layout"] == layouts[0]
    for variant in contender["variants"]:
        assert len(variant["samples_s"]) == 1 and variant["samples_s"][0] > 0
        assert variant["median_s"] >= contender["median_s"]


def test_ours_only_report_has_every_field(tmp_path: Path) -> None:
    report = bench_report(tmp_path, "--no-peers")
    assert report["threads"] == 1 and report["repeats"] == 1
    assert report["machine"]["subpixel_ext"]["version"] and "cpu_model" in report["machine"]
    assert report["peaks_gflops"]["active"] > 0
    assert set(report["load_average_1min"]) == {"start", "end"}
    assert any("conv_transpose4d" in n for n in report["notes"])
    assert [w["name"] for w in report["workloads"]] == NAMES
    by_name = {w["name"]: w for w in report["workloads"]}
    families: List[str] = [c["family"] for c in by_name["tiny3d"]["contenders"]]
    assert families == ["ours", "ours", "ours", "layer"]
    assert by_name["tiny3d"]["layer"] == "ours ConvTranspose3d layer"
    assert by_name["tiny_subpixel"]["layer"] == "ours SubPixelConv2d layer"
    assert [c["family"] for c in by_name["tiny_shuffle"]["contenders"]] == ["ours", "reference"]
    for workload in report["workloads"]:
        assert workload["fastest_peer"] is None and workload["ratio"] is None
        for contender in workload["contenders"]:
            check_contender(contender)
            if contender["family"] in ("ours", "layer"):
                assert len(contender["variants"]) == 2 and contender["matches_ours"]
    assert {g["passed"] for g in report["summary"]["goals"]} <= {True, False, None}


@pytest.mark.skipif(not has("torch"), reason="torch is not installed")
def test_peers_are_timed_and_agree(tmp_path: Path) -> None:
    report = bench_report(tmp_path)
    for workload in report["workloads"]:
        peers = [c for c in workload["contenders"] if c["family"] == "peer"]
        names = [c["name"] for c in peers]
        assert "torch" in names
        if has("onnxruntime") and has("onnx"):
            assert "onnxruntime" in names
        assert all(c["matches_ours"] for c in peers)
        assert workload["ratio"] > 0
        if workload["layer"] is not None:
            assert workload["layer_ratio"] > 0


@pytest.mark.skipif(not has("matplotlib"), reason="matplotlib is not installed")
def test_replot_draws_a_png(tmp_path: Path) -> None:
    bench_report(tmp_path, "--no-peers", "--only", "tiny2d")
    report = tmp_path / "bench.json"
    done = subprocess.run(
        [sys.executable, str(BENCH), "--replot", str(report), str(report), "--plot", str(tmp_path / "bench.png")],
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "bench.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_unknown_workload_name_is_refused(tmp_path: Path) -> None:
    done = run_bench(tmp_path, "--only", "no_such_workload")
    assert done.returncode == 2
    assert "no_such_workload" in done.stderr


def test_two_thread_counts_write_two_reports_and_the_speedups(tmp_path: Path) -> None:
    pattern = str(tmp_path / "t{threads}.json")
    done = run_bench(tmp_path, "--no-peers", "--only", "tiny_subpixel,tiny2d", "--threads", "1,2", "--json", pattern)
    assert done.returncode == 0, done.stderr
    for threads in (1, 2):
        report = json.loads(Path(pattern.format(threads=threads)).read_text(encoding="utf-8"))
        assert report["threads"] == threads
        for workload in report["workloads"]:
            assert workload["channels_last_over_channels_first"] > 0
    assert "Scaling (informational):" in done.stdout
    table = subprocess.run(
        [sys.executable, str(BENCH.parent / "readme_table.py"), pattern.format(threads=1), pattern.format(threads=2)],
        capture_output=True, text=True, timeout=60,
    )
    assert table.returncode == 0, table.stderr
    rows = [line for line in table.stdout.splitlines() if line.startswith("| tiny")]
    assert [row.split(" | ")[0] for row in rows] == ["| tiny2d", "| tiny_subpixel"]
    assert all(len(row.split(" | ")) == 7 for row in rows)


def test_several_thread_counts_need_a_json_placeholder(tmp_path: Path) -> None:
    done = run_bench(tmp_path, "--no-peers", "--threads", "1,2", "--json", str(tmp_path / "one.json"))
    assert done.returncode == 2 and "{threads}" in done.stderr


def test_half_precision_bench_times_every_dtype(tmp_path: Path) -> None:
    pytest.importorskip("ml_dtypes")
    workloads = tmp_path / "workloads.json"
    workloads.write_text(json.dumps(TINY_WORKLOADS), encoding="utf-8")
    script = BENCH.parent / "bench_half.py"
    done = subprocess.run(
        [sys.executable, str(script), "--workloads", str(workloads), "--only", ",".join(NAMES), "--repeats", "1",
         "--json", str(tmp_path / "half.json")],
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads((tmp_path / "half.json").read_text(encoding="utf-8"))
    assert [r["workload"] for r in report["results"]] == NAMES
    for result in report["results"]:
        found = result["contenders"]
        for dtype, tolerance in (("float16", 2e-3), ("bfloat16", 2e-2)):
            assert found[f"ours {dtype}"]["median_ms"] > 0
            assert found[f"ours {dtype}"]["max_rel_error_vs_ours_f32"] < tolerance
        if has("torch"):
            assert "torch float16" in found and "torch bfloat16" in found
    assert "f32/f16" in done.stdout


def test_training_bench_and_its_readme_table(tmp_path: Path) -> None:
    pytest.importorskip("torch", reason="the training benchmark compares with torch")
    workloads = tmp_path / "workloads.json"
    workloads.write_text(json.dumps(TINY_WORKLOADS), encoding="utf-8")
    report = tmp_path / "training.json"
    done = subprocess.run(
        [sys.executable, str(BENCH.parent / "bench_training.py"), "--workloads", str(workloads), "--only",
         "tiny2d,tiny1d", "--threads", "1", "--repeats", "1", "--json", str(report)],
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr
    rows = json.loads(report.read_text(encoding="utf-8"))["rows"]
    assert [(r["workload"], r["layout"]) for r in rows] == [("tiny2d", "NCHW"), ("tiny1d", "NCL"), ("tiny2d", "NHWC")]
    table = subprocess.run([sys.executable, str(BENCH.parent / "readme_table.py"), "--training", str(report)],
                           capture_output=True, text=True, timeout=60)
    assert table.returncode == 0, table.stderr
    lines = [line for line in table.stdout.splitlines() if line.startswith("| tiny")]
    assert [line.split(" | ")[:3] for line in lines] == [["| tiny2d", "NCHW", "1"], ["| tiny1d", "NCL", "1"],
                                                           ["| tiny2d", "NHWC", "1"]]
    assert all(len(line.split(" | ")) == 8 for line in lines)
