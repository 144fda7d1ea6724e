"""The benchmark's workloads: the shared workloads file parsed into shapes, FLOP and byte counts."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_WORKLOADS_FILE = REPO_ROOT.parent / "shared" / "bench" / "workloads.json"

# kind -> (operation, spatial rank; None: the entry's "dims", 2 if absent)
KINDS = {
    "conv_transpose1d": ("conv_transpose", 1),
    "conv_transpose2d": ("conv_transpose", 2),
    "conv_transpose3d": ("conv_transpose", 3),
    "subpixel_conv2d": ("subpixel_conv", 2),
    "pixel_shuffle": ("pixel_shuffle", None),
}
SPATIAL_NAMES = {1: ("L",), 2: ("H", "W"), 3: ("D", "H", "W")}
# Entry keys that are not numeric parameters.
DESCRIPTIVE_KEYS = ("name", "note")


def per_axis(value: Any, dims: int) -> Tuple[int, ...]:
    """An int or a list of `dims` ints as a tuple of `dims` ints."""
    if isinstance(value, (list, tuple)):
        if len(value) != dims:
            raise ValueError(f"expected {dims} values, got {value!r}")
        return tuple(int(v) for v in value)
    return (int(value),) * dims


@dataclass(frozen=True)
class Workload:
    kind: str
    name: str
    params: Dict[str, Any]

    @property
    def dims(self) -> int:
        return int(self.params.get("dims", KINDS[self.kind][1] or 2))

    @property
    def op(self) -> str:
        """conv_transpose, subpixel_conv or pixel_shuffle."""
        return KINDS[self.kind][0]

    @property
    def groups(self) -> int:
        return int(self.params.get("groups", 1))

    @property
    def in_spatial(self) -> Tuple[int, ...]:
        return tuple(int(self.params[a]) for a in SPATIAL_NAMES[self.dims])

    def axis(self, key: str) -> Tuple[int, ...]:
        return per_axis(self.params[key], self.dims)

    @property
    def conv_spatial(self) -> Tuple[int, ...]:
        """The sub-pixel convolution's low-resolution output size (before the shuffle)."""
        return tuple(s + 2 * p - k + 1 for s, p, k in zip(self.in_spatial, self.axis("padding"), self.axis("k")))

    @property
    def in_shape(self) -> Tuple[int, ...]:
        """The channels-first input shape."""
        channels = self.params["C"] if self.op == "pixel_shuffle" else self.params["C_in"]
        return (self.params["N"], channels, *self.in_spatial)

    @property
    def weight_shape(self) -> Tuple[int, ...]:
        p = self.params
        if self.op == "conv_transpose":
            return (p["C_in"], p["C_out"] // self.groups, *self.axis("k"))
        return (p["C_out"] * math.prod(self.axis("r")), p["C_in"], *self.axis("k"))

    @property
    def out_shape(self) -> Tuple[int, ...]:
        """The channels-first result shape."""
        p = self.params
        if self.op == "conv_transpose":
            sizes = (
                (s - 1) * st - 2 * pad + k
                for s, st, pad, k in zip(self.in_spatial, self.axis("stride"), self.axis("padding"), self.axis("k"))
            )
            return (p["N"], p["C_out"], *sizes)
        r = self.axis("r")
        if self.op == "subpixel_conv":
            return (p["N"], p["C_out"], *(s * f for s, f in zip(self.conv_spatial, r)))
        return (p["N"], p["C"] // math.prod(r), *(s * f for s, f in zip(self.in_spatial, r)))

    @property
    def useful_flop(self) -> int:
        """2 x the multiply-adds the operation needs (0 for the shuffle, which has none)."""
        p = self.params
        kernel = math.prod(self.axis("k")) if "k" in p else 0
        if self.op == "conv_transpose":
            return 2 * p["N"] * p["C_in"] * math.prod(self.in_spatial) * (p["C_out"] // self.groups) * kernel
        if self.op == "subpixel_conv":
            conv_channels = self.weight_shape[0]
            return 2 * p["N"] * math.prod(self.conv_spatial) * p["C_in"] * conv_channels * kernel
        return 0

    @property
    def direct_flop(self) -> int:
        """2 x the multiply-adds of the direct method: a dense kernel over the zero-inserted input."""
        n, c_out, *out_spatial = self.out_shape
        per_group_in = self.params["C_in"] // self.groups
        return 2 * n * per_group_in * c_out * math.prod(self.axis("k")) * math.prod(out_spatial)

    @property
    def moved_bytes(self) -> int:
        """Bytes a call must read plus write (float32): input and result, and the weights of a
        convolution."""
        weights = 0 if self.op == "pixel_shuffle" else math.prod(self.weight_shape)
        return 4 * (math.prod(self.in_shape) + math.prod(self.out_shape) + weights)

    def describe(self) -> str:
        args = " ".join(f"{k}={v}" for k, v in self.params.items())
        return f"{self.name}: {self.kind} {args} -> {self.out_shape}"


def parse_workloads(spec: Dict[str, Any]) -> Tuple[List[Workload], List[str]]:
    """The workloads of the shared file's schema, and notes on the kinds skipped.

    Top-level values that are not lists (e.g. "about") are descriptions, not kinds."""
    found, notes = [], []
    for kind, entries in spec.items():
        if not isinstance(entries, list):
            continue
        if kind not in KINDS:
            notes.append(f"skipping {len(entries)} workload(s) of unknown kind {kind!r}")
            continue
        for entry in entries:
            params = {k: v for k, v in entry.items() if k not in DESCRIPTIVE_KEYS}
            workload = Workload(kind, str(entry["name"]), params)
            kind_dims = KINDS[kind][1]
            if kind_dims is not None and workload.dims != kind_dims:
                raise ValueError(f"{workload.name}: dims={workload.dims} contradicts kind {kind}")
            found.append(workload)
    return found, notes


def load_workloads(path: Path) -> Tuple[List[Workload], List[str]]:
    with open(path, encoding="utf-8") as f:
        return parse_workloads(json.load(f))


def select_workloads(workloads: List[Workload], only: Optional[str]) -> List[Workload]:
    """The workloads named in the comma-separated `only` (all when None), in the file's order."""
    if only is None:
        return workloads
    wanted = [n.strip() for n in only.split(",") if n.strip()]
    known = {w.name for w in workloads}
    unknown = [n for n in wanted if n not in known]
    if unknown:
        raise ValueError(f"unknown workload(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    return [w for w in workloads if w.name in wanted]
