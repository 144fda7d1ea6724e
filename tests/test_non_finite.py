"""Special float values: NaN and +-Inf (propagated exactly where the oracle puts them, no
warnings, results bit-identical across thread counts and runs) and subnormals (never flushed
to zero, by the import or by a computation).
"""

from __future__ import annotations

import json
import sys
import textwrap
import warnings
from typing import Any, Callable, Dict, Tuple

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import subpixel_ext as spx
from subpixel_ext import reference as ref

from _helpers import F32, F64, assert_close, bits, parallel_problems, random_array, run_child, under_asan
from strategies import layout_of, nd_conv_transpose_configs, nd_inputs_for

# ============================================================================ subnormals


def test_import_and_use_do_not_flush_subnormals() -> None:
    # A fresh interpreter: loading the extension (e.g. one linked with -ffast-math's
    # crtfastmath.o) or running its threads must not set FTZ/DAZ.
    code = textwrap.dedent(
        """
        import sys
        import numpy as np
        assert sys.float_info.min / 2 != 0
        import subpixel_ext as spx
        checks = {}
        checks["import/float"] = sys.float_info.min / 2 != 0
        checks["import/float32"] = bool(np.float32(np.finfo(np.float32).tiny) / np.float32(2) != 0)
        x = np.ones((2, 4, 64, 64), np.float32)
        spx.conv2d(x, np.ones((4, 4, 3, 3), np.float32), num_threads=2)
        spx.conv_transpose2d(x, np.ones((4, 4, 3, 3), np.float32), stride=2, num_threads=2)
        checks["call/float"] = sys.float_info.min / 2 != 0
        checks["call/float64"] = bool(np.float64(sys.float_info.min) / 2 != 0)
        print(all(checks.values()), checks)
        """
    )
    proc = run_child(code, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("True"), proc.stdout
    # And in this process, after using the package on several threads.
    for f in parallel_problems(F32).values():
        f(2)
    assert sys.float_info.min / 2 != 0
    assert np.float32(np.finfo(np.float32).tiny) / np.float32(2) != 0


@pytest.mark.parametrize("dtype", [F32, F64])
@pytest.mark.parametrize("threads", [1, 2])
def test_subnormal_inputs_survive_a_conv_with_weight_one(dtype: np.dtype, threads: int) -> None:
    rng = np.random.default_rng(5)
    tiny = np.finfo(dtype).smallest_subnormal
    x = (rng.integers(-1000, 1001, size=(2, 1, 256, 130)) * tiny).astype(dtype)  # 65k MACs: parallel
    assert np.all(np.abs(x) < np.finfo(dtype).tiny) and np.count_nonzero(x) > x.size // 2
    one = np.ones((1, 1, 1, 1), dtype)
    centre = np.zeros((1, 1, 3, 3), dtype)
    centre[0, 0, 1, 1] = 1  # the zeros multiply subnormal neighbours and padding: still exact
    x_nhwc = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    results = {
        "conv2d 1x1": spx.conv2d(x, one, num_threads=threads),
        "conv2d 3x3 centre": spx.conv2d(x, centre, padding=1, num_threads=threads),
        "conv2d NHWC": spx.conv2d(x_nhwc, centre, padding=1, layout="NHWC", num_threads=threads),
        "convT direct": spx.conv_transpose2d(x, centre, padding=1, method="direct", num_threads=threads),
        "convT polyphase": spx.conv_transpose2d(x, one, method="polyphase", num_threads=threads),
        "convT NHWC": spx.conv_transpose2d(x_nhwc, centre, padding=1, layout="NHWC", num_threads=threads),
        "subpixel r=1": spx.subpixel_conv2d(x, centre, 1, padding=1, num_threads=threads),
        "shuffle round trip": spx.pixel_shuffle(spx.pixel_unshuffle(x, 2, num_threads=threads), 2, num_threads=threads),
    }
    for name, y in results.items():
        expected = x_nhwc if "NHWC" in name else x
        assert y.dtype == dtype, name
        assert np.array_equal(bits(y), bits(expected)), f"{name}: subnormals changed ({np.count_nonzero(y)} nonzero of {np.count_nonzero(expected)})"

# ============================================================================ determinism, NaN/Inf


def _with_non_finite(a: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    a = a.copy()
    flat = a.reshape(-1)
    idx = rng.permutation(flat.size)
    k = max(3, flat.size // 100)
    flat[idx[:k]] = np.nan
    flat[idx[k : 2 * k]] = np.inf
    flat[idx[2 * k : 3 * k]] = -np.inf
    return a


def _nonfinite_problems(dtype: np.dtype) -> Dict[str, Tuple[Callable[..., np.ndarray], Callable[[], np.ndarray]]]:
    """name -> (native(num_threads), oracle()) with ~1% NaN, +Inf and -Inf in x (or in a few
    weights of the transposed convolution)."""
    rng = np.random.default_rng(6)
    x = _with_non_finite(random_array(rng, (2, 6, 20, 24), dtype), rng)
    x_nhwc = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    wt, wc, ws = random_array(rng, (6, 4, 4, 3), dtype), random_array(rng, (8, 6, 3, 3), dtype), random_array(rng, (12, 3, 3, 2), dtype)
    b4, b8, b12 = random_array(rng, (4,), dtype), random_array(rng, (8,), dtype), random_array(rng, (12,), dtype)
    big = _with_non_finite(random_array(rng, (2, 16, 48, 48), dtype), rng)
    # Finite x, one NaN, one +Inf and one -Inf weight (the transposed convolution's fix-up path).
    x_fin = random_array(rng, (2, 6, 20, 24), dtype)
    x_fin_nhwc = np.ascontiguousarray(x_fin.transpose(0, 2, 3, 1))
    wt_bad = wt.copy()
    wt_bad[0, 0, 0, 0], wt_bad[2, 1, 3, 2], wt_bad[5, 3, 1, 1] = np.nan, np.inf, -np.inf

    def pair(native: Callable[..., np.ndarray], reference: Callable[..., np.ndarray], *arrays: Any, **kw: Any):
        native_kw = {k: kw.pop(k) for k in ("method",) if k in kw}
        return (lambda t: native(*arrays, **kw, **native_kw, num_threads=t), lambda: reference(*arrays, **kw))

    return {
        "convT_direct": pair(spx.conv_transpose2d, ref.conv_transpose2d, x, wt, b4, stride=2, padding=1, method="direct"),
        "convT_polyphase": pair(spx.conv_transpose2d, ref.conv_transpose2d, x, wt, b4, stride=(2, 3),
                                padding=((1, 0), (2, 1)), output_padding=1, method="polyphase"),
        "convT_nhwc": pair(spx.conv_transpose2d, ref.conv_transpose2d, x_nhwc, wt, b4, stride=2, layout="NHWC"),
        "convT_direct_nhwc": pair(spx.conv_transpose2d, ref.conv_transpose2d, x_nhwc, wt, None, stride=3,
                                  dilation=2, layout="NHWC", method="direct"),
        "convT_bad_weights_direct": pair(spx.conv_transpose2d, ref.conv_transpose2d, x_fin, wt_bad, b4, stride=2,
                                         padding=1, method="direct"),
        "convT_bad_weights_polyphase_nhwc": pair(spx.conv_transpose2d, ref.conv_transpose2d, x_fin_nhwc, wt_bad, b4,
                                                 stride=(3, 2), padding=((2, 0), (1, 1)), layout="NHWC"),
        "convT_bad_weights_and_x": pair(spx.conv_transpose2d, ref.conv_transpose2d, x, wt_bad, None, stride=2,
                                        dilation=(1, 2), output_padding=1),
        "conv2d": pair(spx.conv2d, ref.conv2d, x, wc, b8, padding="same"),
        "conv2d_nhwc": pair(spx.conv2d, ref.conv2d, x_nhwc, wc, b8, stride=2, padding=1, layout="NHWC"),
        "subpixel": pair(spx.subpixel_conv2d, ref.subpixel_conv2d, x, ws, 2, b12, padding=(1, 0), groups=2),
        "subpixel_nhwc_dcr": pair(spx.subpixel_conv2d, ref.subpixel_conv2d, x_nhwc, ws, 2, b12, padding=1,
                                  groups=2, layout="NHWC", mode="DCR"),
        "pixel_shuffle": pair(spx.pixel_shuffle, ref.pixel_shuffle, big, 2),
        "pixel_shuffle_nhwc": pair(spx.pixel_shuffle, ref.pixel_shuffle, big, (4, 2), layout="NHWC", mode="DCR"),
        "pixel_unshuffle": pair(spx.pixel_unshuffle, ref.pixel_unshuffle, big, (2, 3)),
        "zero_insert": pair(spx.zero_insert, ref.zero_insert, big, (2, 3)),
    }


@pytest.mark.parametrize("dtype", [F32, F64])
def test_bit_identical_across_thread_counts_and_runs_with_nan_inf(dtype: np.dtype) -> None:
    for name, (native, reference) in _nonfinite_problems(dtype).items():
        runs = [native(t) for t in (1, 2, 3, 2, 1, None)]
        first = bits(runs[0])
        for t, y in zip((1, 2, 3, 2, 1, None), runs):
            assert y.dtype == dtype, name
            assert np.array_equal(bits(y), first), f"{name}: num_threads={t} differs from num_threads=1"
        with np.errstate(invalid="ignore", over="ignore"):  # the oracle adds +Inf and -Inf on purpose
            expected = reference()
        assert np.isnan(runs[0]).any() and np.isinf(runs[0]).any(), f"{name}: test input lost its NaN/Inf"
        if name.startswith(("pixel", "zero")):
            assert np.array_equal(first, bits(expected)), f"{name}: not a bit-exact move"
        else:
            # NaN and Inf exactly where the oracle has them; close elsewhere.
            assert_close(runs[0], expected, dtype, scale=None, what=name)


@pytest.mark.parametrize("dtype", [F32, F64])
def test_bit_identical_across_thread_counts_finite(dtype: np.dtype) -> None:
    for name, f in parallel_problems(dtype, seed=7).items():
        base = bits(f(1))
        for t in (2, 3, 1, 2):
            assert np.array_equal(bits(f(t)), base), f"{name}: num_threads={t} differs from num_threads=1"


@pytest.mark.parametrize("method", ["direct", "polyphase"])
def test_non_finite_weights_match_the_oracle(method: str) -> None:
    # Was wrong: the kernels multiplied NaN/Inf weights by padding and inserted zeros.
    x = np.ones((1, 1, 3, 3))
    for special, pos in ((np.nan, (1, 1)), (np.inf, (0, 0))):
        w = np.ones((1, 1, 3, 3))
        w[0, 0][pos] = special
        for padding in (0, 1):
            y = spx.conv_transpose2d(x, w, stride=2, padding=padding, method=method)
            assert_close(y, ref.conv_transpose2d(x, w, stride=2, padding=padding), F64, what=f"{special} {padding}")


@pytest.mark.parametrize("method", ["direct", "polyphase"])
def test_non_finite_inputs_do_not_warn(method: str) -> None:
    x = np.ones((1, 1, 3, 3))
    x[0, 0, 1, 1] = np.inf
    w = np.ones((1, 1, 3, 3))
    w[0, 0, 0, 0] = -np.inf
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y = spx.conv_transpose2d(x, w, stride=2, method=method)
        spx.conv2d(x, w, padding=1)
    assert np.isnan(y).any()


# ============================================================================ non-finite weights at native speed


@given(st.integers(1, 3).flatmap(lambda rank: nd_conv_transpose_configs(rank)), st.data())
def test_non_finite_weights_and_inputs_land_where_the_definition_puts_them(cfg: Dict[str, Any], data: Any) -> None:
    # The engine runs on the arrays as they are; only the outputs that come out non-finite and
    # read padding or inserted zeros are summed again without them.
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    x, w, b = nd_inputs_for(rng, cfg)
    for a, share in ((w, data.draw(st.sampled_from([0.05, 0.3, 1.0]))), (x, data.draw(st.sampled_from([0.0, 0.05])))):
        flat = a.reshape(-1)
        picks = rng.random(flat.size) < share
        flat[picks] = rng.choice(np.array([np.nan, np.inf, -np.inf, 0.0]), size=int(picks.sum()))
    method = data.draw(st.sampled_from(["direct", "polyphase"]))
    activation = data.draw(st.sampled_from([None, "relu", "sigmoid", "tanh"]))
    fn = getattr(spx, f"conv_transpose{cfg['rank']}d")
    oracle_fn = getattr(ref, f"conv_transpose{cfg['rank']}d")
    layout = layout_of(cfg)
    y = fn(x, w, b, **cfg["kwargs"], layout=layout, method=method, activation=activation)
    with np.errstate(invalid="ignore", over="ignore"):
        expected = oracle_fn(x.astype(np.float64), w.astype(np.float64), None if b is None else b.astype(np.float64),
                             **cfg["kwargs"], layout=layout, activation=activation)
    assert_close(y, expected, cfg["dtype"], scale=None, what=f"{cfg} {method} {activation}")


# Engine-sized problems (beyond the tiny scatter path), where outputs that read padding or
# inserted zeros sit beside outputs that read only the input: the first are summed again, the
# second kept as the engine computed them.
ENGINE_CASES = {
    "1-D k not a multiple of s, output_padding": (1, (3, 4, 6), (7,), dict(stride=3, padding=2, output_padding=1)),
    "2-D groups, dilation, asymmetric padding": (
        2, (2, 6, 4), (3, 5), dict(stride=(2, 3), padding=((1, 0), (2, 3)), groups=2, dilation=(2, 1))),
    "2-D kernel smaller than the stride": (2, (1, 5, 5), (2, 2), dict(stride=3, padding=1)),
    "3-D": (3, (2, 4, 3), (3, 2, 3), dict(stride=2, padding=(1, 0, 1))),
}


@pytest.mark.parametrize("case", list(ENGINE_CASES))
@pytest.mark.parametrize("method", ["direct", "polyphase"])
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("channels_last", [False, True])
def test_non_finite_weights_in_engine_sized_problems(case: str, method: str, threads: int, channels_last: bool) -> None:
    rank, (n, c_in, c_out), kernel, kwargs = ENGINE_CASES[case]
    groups = kwargs.get("groups", 1)
    rng = np.random.default_rng(len(case))
    spatial = (5, 9, 12)[3 - rank:] if rank < 3 else (5, 6, 7)
    x = random_array(rng, (n, c_in) + spatial, F64)
    w = random_array(rng, (c_in, c_out // groups) + kernel, F64)
    b = random_array(rng, (c_out,), F64)
    flat = w.reshape(-1)
    flat[rng.random(flat.size) < 0.15] = np.inf
    flat[rng.random(flat.size) < 0.05] = -np.inf
    x.reshape(-1)[rng.integers(x.size)] = np.nan
    layout = "channels_last" if channels_last else "channels_first"
    move = (lambda a: np.moveaxis(a, 1, -1).copy()) if channels_last else (lambda a: a)
    fn = getattr(spx, f"conv_transpose{rank}d")
    y = fn(move(x), w, b, **kwargs, method=method, layout=layout, num_threads=threads)
    with np.errstate(invalid="ignore", over="ignore"):
        expected = getattr(ref, f"conv_transpose{rank}d")(x, w, b, **kwargs)
    assert_close(y, move(expected), F64, scale=None, what=f"{case} {method}")
    assert np.isinf(y).any() and np.isfinite(y).any(), "the case should mix finite and non-finite outputs"


@pytest.mark.parametrize("case", ["all weights NaN", "one NaN weight and one NaN input", "Inf weights"])
def test_gan_decoder_with_non_finite_values_matches_the_oracle(case: str) -> None:
    # The benchmark's gan_decoder with batch 2: was 9.4 s (all NaN) and 33.5 s / 1.3 GiB (one
    # NaN weight and one NaN input) through a Python fix-up loop.
    rng = np.random.default_rng(8)
    x = random_array(rng, (2, 256, 16, 16), F32)
    w = random_array(rng, (256, 128, 4, 4), F32)
    if case == "all weights NaN":
        w[...] = np.nan
    elif case == "one NaN weight and one NaN input":
        w[3, 5, 1, 2] = np.nan
        x[1, 7, 3, 4] = np.nan
    else:
        w[::7, ::5, 0, ::3] = np.inf
        w[::11, ::3, 2, 1] = -np.inf
    y = spx.conv_transpose2d(x, w, stride=2, padding=1)
    with np.errstate(invalid="ignore", over="ignore"):
        expected = ref.conv_transpose2d(x.astype(np.float64), w.astype(np.float64), stride=2, padding=1)
    assert_close(y, expected, F32, scale=None, what=case)
    assert np.isnan(y).any()


NONFINITE_MEMORY_SCRIPT = r'''
import json
import numpy as np, subpixel_ext as spx
rng = np.random.default_rng(0)
x = rng.standard_normal((8, 256, 32, 32)).astype(np.float32)  # 8 MiB, output 32 MiB
w = rng.standard_normal((256, 128, 4, 4)).astype(np.float32)
y = np.empty((8, 128, 64, 64), np.float32)
# Every array exists before the first call: peaks then differ by the calls' own scratch only.
w_nan = np.full_like(w, np.nan)
w_one = w.copy(); w_one[3, 5, 1, 2] = np.nan
x_one = x.copy(); x_one[2, 7, 3, 4] = np.nan
def peak_mib():  # this process's own high-water mark (ru_maxrss survives fork + exec)
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) / 1024
report = {}
for name, xs, ws in (("finite", x, w), ("all weights NaN", x, w_nan), ("one NaN weight and input", x_one, w_one)):
    for _ in range(2):
        spx.conv_transpose2d(xs, ws, stride=2, padding=1, out=y)
    report[name] = peak_mib()
print(json.dumps(report))
'''


@pytest.mark.skipif(under_asan() or not sys.platform.startswith("linux"),
                    reason="reads /proc/self/status; ASan's allocator changes the resident size")
def test_non_finite_values_need_no_extra_memory() -> None:
    # Was a copy of x (and 1.3 GiB on the benchmark): now the engine's own scratch only.
    proc = run_child(NONFINITE_MEMORY_SCRIPT, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout)
    assert report["all weights NaN"] - report["finite"] < 4, report  # MiB; x alone is 8 MiB
    assert report["one NaN weight and input"] - report["finite"] < 4, report
