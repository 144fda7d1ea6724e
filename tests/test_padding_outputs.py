"""Padding that no output reads costs nothing: memory and time follow the output and the
useful input. Outputs whose every tap lands in the padding are the bias (plus, for
correlations, the weights times zero: NaN for a non-finite weight, as the definition says);
the engine only runs on the box of outputs that reach the input, with the taps that do.
"""

from __future__ import annotations

import json
import sys
import zlib
from typing import Any, Dict

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import subpixel_ext as spx
from subpixel_ext import reference as ref

from _helpers import F32, F64, assert_close, oracle, random_array, run_child, under_asan

HUGE_PADDING_SCRIPT = r'''
import json, resource, sys, time
import numpy as np, subpixel_ext as spx
if not int(sys.argv[1]):  # an address-space limit, except under ASan (which reserves terabytes)
    resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
def peak_mib():  # this process's own high-water mark (ru_maxrss survives fork + exec)
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) / 1024
report = {}
for padding in (12000, 30000, 10**9, 2**40):
    t = time.perf_counter()
    y = spx.conv2d(np.ones((1, 1, 2, 2)), np.ones((1, 1, 1, 1)), padding=padding, stride=padding)
    report[str(padding)] = [y.tolist(), time.perf_counter() - t]
# Reads that jump over the input: dilation and padding far larger than the input.
y = spx.conv2d(np.ones((1, 1, 1, 1)), np.full((1, 1, 3, 3), 2.0), padding=50000, dilation=50000, bias=np.ones(1))
report["dilated"] = [y.tolist(), 0.0]
report["peak_mib"] = peak_mib()
print(json.dumps(report))
'''


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
def test_huge_padding_read_by_no_output_is_instant_and_small() -> None:
    # Was 3.5 GiB and 6.8 s of frame for a 3x3 result at padding 12000, MemoryError at 30000.
    proc = run_child(HUGE_PADDING_SCRIPT.replace("sys.argv[1]", str(int(under_asan()))), timeout=60)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout)
    centre = [[[[0.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 0.0]]]]
    for padding in ("12000", "30000", str(10**9), str(2**40)):
        result, seconds = report[padding]
        assert result == centre, (padding, result)
        assert seconds < 1.0, (padding, seconds)
    # One output per axis ((1 + 100000 - 100001) + 1): only the centre tap reaches x, bias 1.
    assert report["dilated"][0] == [[[[3.0]]]]
    if not under_asan():
        assert report["peak_mib"] < 400, report["peak_mib"]


@st.composite
def sparse_reads(draw: st.DrawFn) -> Dict[str, Any]:
    """A tiny input under padding, dilation and stride much larger than itself."""
    rank = draw(st.integers(1, 3))
    kind = draw(st.sampled_from(["conv", "subpixel", "direct"]))
    return dict(
        rank=rank,
        kind=kind,
        n=draw(st.integers(1, 2)),
        c_in=draw(st.integers(1, 3)),
        c_out=draw(st.integers(1, 3)),
        groups=draw(st.sampled_from([1, 1, "depthwise"])),
        size=tuple(draw(st.integers(1, 3)) for _ in range(rank)),
        kernel=tuple(draw(st.integers(1, 3)) for _ in range(rank)),
        stride=tuple(draw(st.integers(1, 9)) for _ in range(rank)),
        dilation=tuple(draw(st.integers(1, 12)) for _ in range(rank)),
        padding=tuple((draw(st.integers(0, 14)), draw(st.integers(0, 14))) for _ in range(rank)),
        factor=tuple(draw(st.integers(1, 2)) for _ in range(rank)),
        channels_last=draw(st.booleans()),
        bias=draw(st.booleans()),
        activation=draw(st.sampled_from([None, "relu", "sigmoid"])),
        dtype=draw(st.sampled_from([F32, F64])),
        nonfinite=draw(st.sampled_from([None, np.nan, np.inf, -np.inf])),
        threads=draw(st.sampled_from([1, 2])),
    )


def _call(cfg: Dict[str, Any], rng: np.random.Generator) -> Any:
    """(native function, oracle function, arrays, keyword arguments) of a sparse_reads config."""
    rank, kind = cfg["rank"], cfg["kind"]
    c_in = cfg["c_in"]
    groups = c_in if cfg["groups"] == "depthwise" else 1
    c_out = c_in if groups > 1 else cfg["c_out"]
    spatial = cfg["size"]
    layout = spx._params.LAYOUTS[rank][cfg["channels_last"]]
    x_shape = (cfg["n"],) + ((spatial + (c_in,)) if cfg["channels_last"] else ((c_in,) + spatial))
    x = random_array(rng, x_shape, cfg["dtype"])
    kwargs: Dict[str, Any] = dict(stride=cfg["stride"], dilation=cfg["dilation"], groups=groups, layout=layout,
                                  activation=cfg["activation"])
    if kind == "direct":
        w = random_array(rng, (c_in, c_out // groups) + cfg["kernel"], cfg["dtype"])
        full = [(h - 1) * s + d * (k - 1) + 1 for h, s, d, k in zip(spatial, cfg["stride"], cfg["dilation"], cfg["kernel"])]
        kwargs["padding"] = tuple((min(a, f - 1), min(b, f - 1 - min(a, f - 1))) for (a, b), f in zip(cfg["padding"], full))
        kwargs["method"] = "direct"
        bias_channels = c_out
        names = (f"conv_transpose{rank}d",) * 2
    else:
        k_eff = [d * (k - 1) + 1 for d, k in zip(cfg["dilation"], cfg["kernel"])]
        # Padding at least large enough that the kernel fits.
        kwargs["padding"] = tuple((a, max(b, e - h - a)) for (a, b), e, h in zip(cfg["padding"], k_eff, spatial))
        channels = c_out * (int(np.prod(cfg["factor"])) if kind == "subpixel" else 1)
        if kind == "subpixel":
            kwargs["upscale_factor"] = cfg["factor"]
            channels = c_out * int(np.prod(cfg["factor"]))
            kwargs["groups"] = 1
            groups = 1
        w = random_array(rng, (channels, c_in // groups) + cfg["kernel"], cfg["dtype"])
        bias_channels = channels
        names = (f"subpixel_conv{rank}d",) * 2 if kind == "subpixel" else (f"conv{rank}d",) * 2
    if cfg["nonfinite"] is not None:
        w.reshape(-1)[rng.integers(w.size)] = cfg["nonfinite"]
    b = random_array(rng, (bias_channels,), cfg["dtype"]) if cfg["bias"] else None
    native, definition = getattr(spx, names[0]), getattr(ref, names[1])
    # bias by keyword: the sub-pixel functions take the factor third.
    return (lambda x, w, b, **k: native(x, w, bias=b, **k)), (lambda x, w, b, **k: definition(x, w, bias=b, **k)), x, w, b, kwargs


@given(sparse_reads())
def test_sparse_reads_match_the_oracle(cfg: Dict[str, Any]) -> None:
    rng = np.random.default_rng(zlib.crc32(json.dumps(cfg, default=str).encode()))
    native, oracle_fn, x, w, b, kwargs = _call(cfg, rng)
    y = native(x, w, b, **kwargs, num_threads=cfg["threads"])
    expected, scale = oracle(oracle_fn, x, w, b, **{k: v for k, v in kwargs.items() if k != "method"})
    assert_close(y, expected, cfg["dtype"], scale, what=repr(cfg))


@pytest.mark.parametrize("weight_value", [1.0, np.nan, np.inf])
def test_outputs_reading_only_padding_follow_the_definition(weight_value: float) -> None:
    # Output 0 and 2 read padding only: 0 * w is 0 for a finite weight and NaN otherwise
    # (correlations multiply their padding); a transposed convolution's padding is never
    # multiplied, so its outputs that no input reaches are the bias whatever the weights.
    x = np.ones((1, 1, 2, 2))
    w = np.full((1, 1, 1, 1), weight_value)
    b = np.array([0.5])
    y = spx.conv2d(x, w, b, padding=12000, stride=12000)
    expected, _ = oracle(ref.conv2d, x, w, b, padding=12, stride=12)
    assert_close(y, expected, F64, what="conv2d")
    wt = np.full((1, 1, 1, 3), weight_value)
    yt = spx.conv_transpose2d(np.ones((1, 1, 1, 1)), wt, b, dilation=(1, 20000), padding=((0, 0), (1, 1)), method="direct")
    assert yt.shape == (1, 1, 1, 40000 - 1)
    nonzero = np.flatnonzero(yt[0, 0, 0] != 0.5)
    assert nonzero.tolist() == [19999], nonzero[:5]
    assert np.array_equal(yt[0, 0, 0, 19999], weight_value + 0.5, equal_nan=True)
