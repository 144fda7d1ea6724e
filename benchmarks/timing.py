"""Interleaved timing: every contender is sampled once per round, in a rotating order."""

from __future__ import annotations

import contextlib
import gc
import math
import statistics
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, List, Optional, Sequence

import numpy as np

from contenders import Contender, Variant

# A contender whose result differs from ours by more than this (relative to max |y|) is
# reported as a mismatch and not counted as a peer.
MATCH_TOLERANCE = 1e-4


@dataclass
class Timing:
    contender: Contender
    variant: Variant
    number: int = 1  # calls per sample
    samples: List[float] = field(default_factory=list)  # seconds per call, one per round
    max_rel_error: float = 0.0

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def minimum(self) -> float:
        return min(self.samples)


def time_calls(call: Callable[[], Any], number: int) -> float:
    """Seconds per call over `number` back-to-back calls."""
    start = time.perf_counter()
    for _ in range(number):
        call()
    return (time.perf_counter() - start) / number


def check_against(reference: Optional[np.ndarray], t: Timing, raw: Any) -> Optional[np.ndarray]:
    """Record t's error relative to `reference` (the first comparable result); return the reference."""
    if t.variant.to_channels_first is None:
        return reference
    result = t.variant.to_channels_first(raw)
    if reference is None:
        return np.array(result, copy=True)
    scale = max(float(np.max(np.abs(reference))), float(np.finfo(np.float32).tiny))
    t.max_rel_error = float(np.max(np.abs(result - reference))) / scale
    return reference


def measure(contenders: Sequence[Contender], repeats: int, sample_seconds: float, settle: float) -> List[Timing]:
    """Check every variant against the first, size its samples to `sample_seconds`, warm up, then
    run `repeats` rounds in a rotating order, pausing `settle` seconds before each sample."""
    timings = [Timing(c, v) for c in contenders for v in c.variants]
    reference = None
    for t in timings:
        reference = check_against(reference, t, t.variant.call())
        t.number = max(1, math.ceil(sample_seconds / time_calls(t.variant.call, 1)))
    for t in timings:  # warmup at the calibrated size; a single call was just warmed up by calibrating
        if t.number > 1:
            time_calls(t.variant.call, t.number)
    for r in range(repeats):
        shift = r % len(timings)
        for t in timings[shift:] + timings[:shift]:
            time.sleep(settle)
            t.samples.append(time_calls(t.variant.call, t.number))
    return timings


@contextlib.contextmanager
def quiet_gc() -> Iterator[None]:
    """No garbage collection pauses inside the timed rounds."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


@dataclass
class Row:
    """A contender with its fastest variant (by median) first."""

    contender: Contender
    best: Timing
    others: List[Timing]

    @property
    def name(self) -> str:
        return self.contender.name

    @property
    def family(self) -> str:
        return self.contender.family

    @property
    def matches(self) -> bool:
        return all(t.max_rel_error <= MATCH_TOLERANCE for t in [self.best] + self.others)


def best_rows(timings: Sequence[Timing]) -> List[Row]:
    rows = []
    for name in dict.fromkeys(t.contender.name for t in timings):
        mine = sorted((t for t in timings if t.contender.name == name), key=lambda t: t.median)
        rows.append(Row(mine[0].contender, mine[0], mine[1:]))
    return rows
