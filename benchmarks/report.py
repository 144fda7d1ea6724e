"""Results of a run: rates, ratios, the printed tables, the goal checks and the JSON report."""

from __future__ import annotations

import math
import os
import platform
import statistics
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

import subpixel_ext as spx
from timing import Row, Timing
from contenders import LAYOUTS
from workloads import Workload

# Developer goal thresholds (informational: they never change the exit code).
MIN_RATIO_GOAL, GEOMEAN_GOAL = 1.1, 1.5
SUBPIXEL_WORKLOAD, SUBPIXEL_RATIO_GOAL = "espcn_last", 1.2
COMPUTE_BOUND = ("sr_64ch", "gan_decoder", "stride3", "dcgan_block", "hifigan_up1")
PEAK_FRACTION_GOAL = 0.85
SCALING_WORKLOADS, SCALING_GOAL = (SUBPIXEL_WORKLOAD,) + COMPUTE_BOUND, 1.8  # from 1 to 2 threads
LAYOUT_GOAL = 0.9  # channels-first speed over channels-last speed, ours
SEED_TINY_WORKLOAD, SEED_TINY_GOALS = "seed_tiny", {"ours": 4e-6, "layer": 2e-6}  # seconds per call
MEMCPY_FRACTION_GOAL = 0.80


@dataclass
class Peaks:
    simd: str
    active: float
    avx2: Optional[float]  # measured separately when the active level is above AVX2


@dataclass
class Result:
    workload: Workload
    rows: List[Row]
    notes: List[str]
    peaks: Peaks

    def first(self, family: str) -> Optional[Row]:
        return next((r for r in self.rows if r.family == family), None)

    @property
    def ours(self) -> Row:
        row = self.first("ours")
        assert row is not None
        return row

    @property
    def layer(self) -> Optional[Row]:
        return self.first("layer")

    @property
    def fastest_peer(self) -> Optional[Row]:
        peers = [r for r in self.rows if r.family == "peer" and r.matches]
        return min(peers, key=lambda r: r.best.median) if peers else None

    def ratio(self, row: Row) -> Optional[float]:
        """Fastest peer's median / this row's median: > 1 means this row wins."""
        peer = self.fastest_peer
        return None if peer is None else peer.best.median / row.best.median

    @property
    def is_shuffle(self) -> bool:
        return self.workload.op == "pixel_shuffle"

    def rate(self, seconds: float) -> float:
        """GFLOP/s of useful work, or GB/s moved for the shuffle."""
        work = self.workload.moved_bytes if self.is_shuffle else self.workload.useful_flop
        return work / seconds * 1e-9

    def fraction(self, row: Row) -> Optional[float]:
        """Of the FMA peak in use, or of memcpy's bandwidth for the shuffle."""
        if self.is_shuffle:
            return self.bandwidth_fraction(row)
        return self.rate(row.best.median) / self.peaks.active

    def bandwidth_fraction(self, row: Row) -> Optional[float]:
        """memcpy of the bytes the call must move over this row's time (None: not timed)."""
        memcpy = self.first("reference")
        return None if memcpy is None else memcpy.best.median / row.best.median

    def method_row(self, method: str) -> Optional[Row]:
        return next((r for r in self.rows if r.family == "ours" and r.contender.method == method), None)

    def layout_ratio(self) -> Optional[float]:
        """Channels-first speed over channels-last speed of the headline contender (its
        channels-last median / channels-first median; >= 1: channels first is as fast)."""
        row = self.ours
        by_layout = {t.variant.layout: t.median for t in [row.best] + row.others}
        first, last = (by_layout.get(layout) for layout in LAYOUTS[self.workload.dims])
        return None if first is None or last is None else last / first

    def direct_over_polyphase(self) -> Optional[float]:
        """Direct's GFLOP/s counting all its multiply-adds over polyphase's useful GFLOP/s."""
        direct = next((r for r in self.rows if r.contender.method == "direct"), None)
        poly = next((r for r in self.rows if r.contender.method == "polyphase"), None)
        if direct is None or poly is None:
            return None
        return (self.workload.direct_flop / direct.best.median) / (self.workload.useful_flop / poly.best.median)

    def to_json(self) -> Dict[str, Any]:
        w, peer, layer = self.workload, self.fastest_peer, self.layer
        return {
            "name": w.name,
            "kind": w.kind,
            "dims": w.dims,
            "params": w.params,
            "out_shape": list(w.out_shape),
            "useful_flop": w.useful_flop,
            "moved_bytes": w.moved_bytes,
            "rate_unit": "GB/s" if self.is_shuffle else "GFLOP/s",
            "fraction_of": "memcpy" if self.is_shuffle else "fma_peak_active",
            "ours": self.ours.name,
            "layer": None if layer is None else layer.name,
            "fastest_peer": None if peer is None else peer.name,
            "ratio": self.ratio(self.ours),
            "layer_ratio": None if layer is None else self.ratio(layer),
            "direct_all_macs_over_polyphase": self.direct_over_polyphase(),
            "memcpy_fraction": self.bandwidth_fraction(self.ours),
            "channels_last_over_channels_first": self.layout_ratio(),
            "contenders": [self.row_json(row) for row in self.rows],
            "notes": self.notes,
        }

    def row_json(self, row: Row) -> Dict[str, Any]:
        return {
            "name": row.name,
            "family": row.family,
            "method": row.contender.method,
            "best_layout": row.best.variant.layout,
            "median_s": row.best.median,
            "min_s": row.best.minimum,
            "rate": self.rate(row.best.median),
            "fraction": self.fraction(row),
            "ratio_fastest_peer_over_this": self.ratio(row),
            "matches_ours": row.matches,
            "variants": [variant_json(t) for t in [row.best] + row.others],
        }


def variant_json(t: Timing) -> Dict[str, Any]:
    return {
        "layout": t.variant.layout,
        "median_s": t.median,
        "min_s": t.minimum,
        "samples_s": t.samples,
        "calls_per_sample": t.number,
        "max_rel_error_vs_ours": t.max_rel_error,
    }


def fmt(value: Optional[float], spec: str) -> str:
    return "-" if value is None else f"{value:{spec}}"


def time_unit(res: Result) -> tuple[str, float]:
    """Microseconds for the call-overhead workloads, else milliseconds."""
    return ("us", 1e6) if res.ours.best.median < 1e-3 else ("ms", 1e3)


def format_row(res: Result, row: Row, scale: float, show_avx2: bool) -> str:
    t = row.best.median
    line = f"  {row.name:<28}{row.best.variant.layout:<17}{t * scale:>10.3f}{row.best.minimum * scale:>10.3f}"
    line += f"{res.rate(t):>10.2f}{fmt(res.fraction(row), '.1%'):>9}"
    if show_avx2:
        assert res.peaks.avx2 is not None
        line += f"{res.rate(t) / res.peaks.avx2:>9.1%}"
    line += f"{fmt(res.ratio(row), '.2f'):>8}  "
    line += ", ".join(f"{o.variant.layout} {o.median * scale:.3f}" for o in row.others)
    if not row.matches:
        worst = max(t.max_rel_error for t in [row.best] + row.others)
        line += f"  MISMATCH vs ours (rel. error {worst:.1e}), not counted"
    return line


def format_table(res: Result) -> str:
    unit, scale = time_unit(res)
    show_avx2 = res.peaks.avx2 is not None and not res.is_shuffle
    head = f"  {'contender':<28}{'layout':<17}{'median ' + unit:>10}{'min ' + unit:>10}"
    head += f"{'GB/s' if res.is_shuffle else 'GFLOP/s':>10}{'%memcpy' if res.is_shuffle else '%peak':>9}"
    head += f"{'%avx2pk':>9}" if show_avx2 else ""
    head += f"{'ratio':>8}  other layouts (median)"
    lines = [res.workload.describe(), head] + [format_row(res, row, scale, show_avx2) for row in res.rows]
    direct = res.direct_over_polyphase()
    if direct is not None:
        factor = res.workload.direct_flop / res.workload.useful_flop
        lines.append(
            f"  direct runs {factor:.1f}x the useful multiply-adds, at {direct:.2f}x polyphase's FLOP rate"
        )
    lines += [f"  note: {n}" for n in res.notes]
    return "\n".join(lines)


def format_overview(results: Sequence[Result]) -> str:
    """One line per workload: ours (headline), its rate and peak fraction, the best peer, the layer."""
    lines = [
        "Overview (median times; ratio = fastest peer time / ours, > 1 means we win)",
        f"  {'workload':<14}{'ours':>11}{'rate':>14}{'%peak':>8}  {'best peer':<34}{'ratio':>7}"
        f"{'layer':>11}{'ratio':>7}",
    ]
    for res in results:
        unit, scale = time_unit(res)
        rate_unit = "GB/s" if res.is_shuffle else "GFLOP/s"
        peer, layer = res.fastest_peer, res.layer
        peer_text = "-" if peer is None else f"{peer.name} {peer.best.median * scale:.3f} {unit}"
        layer_text = "-" if layer is None else f"{layer.best.median * scale:.3f} {unit}"
        lines.append(
            f"  {res.workload.name:<14}{res.ours.best.median * scale:>8.3f} {unit}"
            f"{res.rate(res.ours.best.median):>7.1f} {rate_unit:<7}{fmt(res.fraction(res.ours), '.1%'):>7}"
            f"  {peer_text:<34}{fmt(res.ratio(res.ours), '.2f'):>7}{layer_text:>11}"
            f"{fmt(None if layer is None else res.ratio(layer), '.2f'):>7}"
        )
    lines.append("  (%peak: of the FMA peak; for the shuffle, of memcpy's bandwidth)")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- goals


@dataclass
class Goal:
    passed: Optional[bool]  # None: not measured in this run
    text: str

    def line(self) -> str:
        return f"  {({True: 'PASS', False: 'FAIL', None: 'SKIP'})[self.passed]} {self.text}"


def geomean(values: Sequence[float]) -> float:
    return math.exp(statistics.fmean(math.log(v) for v in values))


def ratios(results: Sequence[Result]) -> Dict[str, float]:
    found = {res.workload.name: res.ratio(res.ours) for res in results}
    return {name: ratio for name, ratio in found.items() if ratio is not None}


def ratio_goal(found: Dict[str, float]) -> Goal:
    text = f"every workload >= {MIN_RATIO_GOAL}x the fastest peer, geomean >= {GEOMEAN_GOAL}"
    if not found:
        return Goal(None, f"{text}: no peer")
    geo, worst = geomean(list(found.values())), min(found, key=found.__getitem__)
    return Goal(
        geo >= GEOMEAN_GOAL and found[worst] >= MIN_RATIO_GOAL,
        f"{text} (geomean {geo:.2f}, min {found[worst]:.2f} {worst})",
    )


def at_least(value: Optional[float], goal: float, text: str, style: str = ".2f") -> Goal:
    """`text` then the value and the goal; SKIP when the value was not measured."""
    shown = fmt(value, style)
    goal_shown = format(goal, style) if style != ".1%" else f"{goal:.0%}"
    return Goal(None if value is None else value >= goal, f"{text} {shown} (goal >= {goal_shown})")


def goals(results: Sequence[Result]) -> List[Goal]:
    by_name = {r.workload.name: r for r in results}
    found = ratios(results)
    out = [ratio_goal(found)]
    if SUBPIXEL_WORKLOAD in by_name:
        out.append(at_least(found.get(SUBPIXEL_WORKLOAD), SUBPIXEL_RATIO_GOAL, f"{SUBPIXEL_WORKLOAD} ratio"))
    for name in (n for n in COMPUTE_BOUND if n in by_name):
        res = by_name[name]
        row = res.method_row("polyphase") or res.ours
        out.append(at_least(res.fraction(row), PEAK_FRACTION_GOAL, f"{name} {row.name} of the FMA peak", ".1%"))
    for res in results:
        out.append(at_least(res.layout_ratio(), LAYOUT_GOAL, f"{res.workload.name} channels-first speed / channels-last"))
    tiny = by_name.get(SEED_TINY_WORKLOAD)
    for row in [] if tiny is None else [r for r in (tiny.ours, tiny.layer) if r is not None]:
        t, goal = row.best.median, SEED_TINY_GOALS[row.family]
        out.append(Goal(t <= goal, f"{SEED_TINY_WORKLOAD} {row.name} {t * 1e6:.2f} us per call (goal <= {goal * 1e6:g} us)"))
    for res in (r for r in results if r.first("reference") is not None):
        out.append(at_least(res.bandwidth_fraction(res.ours), MEMCPY_FRACTION_GOAL,
                            f"{res.workload.name} of memcpy bandwidth", ".1%"))
    return out


def scaling_goals(one: Sequence[Result], two: Sequence[Result]) -> List[Goal]:
    """Our speed-up from the second thread, per workload measured at both counts."""
    at_two = {r.workload.name: r for r in two}
    out = []
    for res in (r for r in one if r.workload.name in SCALING_WORKLOADS and r.workload.name in at_two):
        name = res.workload.name
        speedup = res.ours.best.median / at_two[name].ours.best.median
        out.append(at_least(speedup, SCALING_GOAL, f"{name} {res.ours.name} speed-up from the second thread"))
    return out


def format_summary(results: Sequence[Result], goal_list: Sequence[Goal]) -> str:
    found = ratios(results)
    lines = ["Summary (ratio = fastest peer time / our time, > 1 means we win)"]
    if found:
        geo, worst = geomean(list(found.values())), min(found, key=found.__getitem__)
        lines.append(f"  geomean ratio {geo:.2f} over {len(found)} workloads; min {found[worst]:.2f} ({worst})")
    else:
        lines.append("  no peer measured")
    lines.append("Goal checks (informational):")
    lines += [g.line() for g in goal_list]
    return "\n".join(lines)


# ----------------------------------------------------------------------------- machine


def cpu_model() -> Optional[str]:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def load_average() -> Optional[float]:
    """The 1-minute load average: other processes competing for the cores skew every number."""
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else None


def usable_cpus() -> Optional[int]:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def machine_info(peers: Dict[str, Any]) -> Dict[str, Any]:
    return {
        "cpu_model": cpu_model(),
        "logical_cpus": os.cpu_count(),
        "usable_cpus": usable_cpus(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "subpixel_ext": spx.show_config(),
        "peers": {name: getattr(mod, "__version__", None) for name, mod in peers.items()},
    }
