"""SIMD dispatch levels (each in a fresh interpreter: the level is chosen once per process)
and thread-count independence of the results."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from typing import Dict, List, Optional, Tuple

import numpy as np
import pytest

import subpixel_ext as spx

from _helpers import F32, F64, random_array

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
LEVELS = ("baseline", "avx2", "avx512")  # every name the dispatcher knows, in order
ENV_VAR = "SUBPIXEL_EXT_SIMD"


def _run_python(jobs: Dict[str, Tuple[Optional[str], str]], timeout: float = 120) -> Dict[str, str]:
    """Run `python -c code` with SUBPIXEL_EXT_SIMD=value (None: unset) for every job, all
    concurrently; return each job's stdout. A failing job fails the test with its stderr."""
    procs = {}
    for name, (value, code) in jobs.items():
        env = dict(os.environ)
        env.pop(ENV_VAR, None)
        if value is not None:
            env[ENV_VAR] = value
        env["PYTHONPATH"] = TESTS_DIR + os.pathsep + env.get("PYTHONPATH", "")
        procs[name] = subprocess.Popen(
            [sys.executable, "-c", code], env=env, cwd=TESTS_DIR,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
    results = {}
    failures = []
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=timeout)
        if proc.returncode != 0:
            failures.append(f"--- {name} (exit {proc.returncode}):\n{err[-4000:]}")
        results[name] = out
    assert not failures, "\n".join(failures)
    return results


CONFIG_SCRIPT = "import json, subpixel_ext as spx; print(json.dumps(spx.show_config()))"


@pytest.fixture(scope="module")
def configs() -> Dict[str, dict]:
    """show_config() of fresh interpreters under various SUBPIXEL_EXT_SIMD values."""
    requests = {"unset": None, "empty": "", "auto": "auto", "baseline": "baseline", "avx2": "avx2",
                "avx512": "avx512", "bogus": "sse9000", "upper": "AVX2"}
    out = _run_python({k: (v, CONFIG_SCRIPT) for k, v in requests.items()})
    return {k: json.loads(v.strip().splitlines()[-1]) for k, v in out.items()}


def _levels(csv: str) -> List[str]:
    return [s for s in csv.split(",") if s]


def _cpu_flags() -> Optional[set]:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return None


# ============================================================================ level selection


def test_supported_levels_are_compiled_and_ordered(configs) -> None:
    cfg = configs["unset"]
    compiled, supported = _levels(cfg["simd_compiled"]), _levels(cfg["simd_supported"])
    assert compiled[0] == "baseline" and supported[0] == "baseline"
    assert set(supported) <= set(compiled) <= set(LEVELS)
    assert supported == sorted(supported, key=LEVELS.index)
    # the default is the best level this CPU supports
    assert cfg["simd_active"] == supported[-1]
    assert cfg["simd_requested"] == "" and cfg["simd_request_understood"] is True
    assert spx.show_config()["simd_supported"] == cfg["simd_supported"]


def test_supported_levels_match_the_cpu_flags(configs) -> None:
    flags = _cpu_flags()
    if flags is None or not ({"sse2", "avx"} & flags):
        pytest.skip("no x86 /proc/cpuinfo flags to compare with")
    compiled, supported = _levels(configs["unset"]["simd_compiled"]), _levels(configs["unset"]["simd_supported"])
    has = {"baseline": True, "avx2": {"avx2", "fma"} <= flags, "avx512": {"avx2", "fma", "avx512f"} <= flags}
    assert supported == [lvl for lvl in compiled if has[lvl]]


@pytest.mark.parametrize("request_name", ["baseline", "avx2", "avx512"])
def test_requested_level_is_capped_by_the_cpu(configs, request_name) -> None:
    cfg = configs[request_name]
    supported = _levels(cfg["simd_supported"])
    assert cfg["simd_requested"] == request_name and cfg["simd_request_understood"] is True
    at_most = [lvl for lvl in supported if LEVELS.index(lvl) <= LEVELS.index(request_name)]
    assert cfg["simd_active"] == at_most[-1]
    assert cfg["simd_active"] in supported


@pytest.mark.parametrize("request_name", ["empty", "auto"])
def test_empty_and_auto_requests_give_the_default(configs, request_name) -> None:
    cfg = configs[request_name]
    assert cfg["simd_request_understood"] is True
    assert cfg["simd_active"] == configs["unset"]["simd_active"]


def test_unknown_request_is_reported_and_ignored(configs) -> None:
    cfg = configs["bogus"]
    assert cfg["simd_request_understood"] is False
    assert cfg["simd_requested"] == "sse9000"
    assert cfg["simd_active"] == configs["unset"]["simd_active"]


def test_request_is_case_insensitive(configs) -> None:
    # "AVX2" was once reported as not understood; level names are now case-insensitive.
    cfg = configs["upper"]
    assert cfg["simd_request_understood"] is True
    assert cfg["simd_requested"].lower() == "avx2"
    assert cfg["simd_active"] == configs["avx2"]["simd_active"]


# ============================================================================ every level computes right

MATRIX_SCRIPT = textwrap.dedent(
    """
    import numpy as np
    import subpixel_ext as spx
    from subpixel_ext import reference as ref
    from _helpers import assert_close, oracle, random_array

    cfg = spx.show_config()
    assert cfg["simd_active"] == LEVEL, (cfg, LEVEL)

    rng = np.random.default_rng(7)
    CHANNELS = [1, 5, 13, 17, 33]      # not multiples of the register tile sizes
    WIDTHS = list(range(1, 41)) + [47, 48, 49, 97]
    checks = 0

    def check(native, reference, x, w, b, dtype, **kw):
        global checks
        expected, scale = oracle(reference, x, w, b, **kw)
        assert_close(native(x, w, b, **kw), expected, dtype, scale, what=f"{native.__name__} {kw} {x.shape} {w.shape}")
        checks += 1

    def ct(method):
        def native(x, w, b, **kw):
            return spx.conv_transpose2d(x, w, b, method=method, **kw)
        native.__name__ = "conv_transpose2d_" + method
        return native

    def sp_native(x, w, b, **kw):
        return spx.subpixel_conv2d(x, w, bias=b, **kw)

    def sp_ref(x, w, b, **kw):
        return ref.subpixel_conv2d(x, w, bias=b, **kw)

    # Each (dtype, layout) pass runs one op per width, rotating, so that over the four passes
    # every op meets every width.
    for combo, (dtype, layout) in enumerate(
        [(d, l) for d in (np.float32, np.float64) for l in ("NCHW", "NHWC")]
    ):
        for i, width in enumerate(WIDTHS):
            c_in = CHANNELS[i % 5]
            c_out = CHANNELS[(2 * i + combo + 1) % 5]
            n = 1 + i % 2
            xshape = (n, c_in, 2, width) if layout == "NCHW" else (n, 2, width, c_in)
            x = random_array(rng, xshape, dtype)
            b = random_array(rng, (c_out,), dtype)
            op = (i + combo) % 3
            if op == 0:
                k = (2 + i % 3, 1 + i % 4)
                s = (1 + i % 2, 1 + i % 3)
                wt = random_array(rng, (c_in, c_out) + k, dtype)
                pad = ((i % 2, 0), (0, i % 3)) if width > 3 else 0
                for method in ("direct", "polyphase"):
                    check(ct(method), ref.conv_transpose2d, x, wt, b, dtype, stride=s, padding=pad, layout=layout)
            elif op == 1:
                wc = random_array(rng, (c_out, c_in, 1 + i % 3, 1 + i % 3), dtype)
                check(spx.conv2d, ref.conv2d, x, wc, b, dtype, stride=(1, 1 + i % 2), padding="same",
                      layout=layout)
            else:
                r = (1 + i % 2, 2)
                c_sp = 1 + i % 5  # keeps C*r*r small; 1..5 shuffled channels
                ws = random_array(rng, (c_sp * r[0] * r[1], c_in, 3, 3), dtype)
                bs = random_array(rng, (c_sp * r[0] * r[1],), dtype)
                check(sp_native, sp_ref, x, ws, bs, dtype, upscale_factor=r, padding=1, layout=layout,
                      mode=("CRD", "DCR")[i % 2])
    # shuffles move bits: must be exact at every level
    for layout in ("NCHW", "NHWC"):
        for mode in ("CRD", "DCR"):
            lo = random_array(rng, (2, 36, 5, 7) if layout == "NCHW" else (2, 5, 7, 36), np.float32)
            np.testing.assert_array_equal(spx.pixel_shuffle(lo, (2, 3), layout=layout, mode=mode),
                                          ref.pixel_shuffle(lo, (2, 3), layout=layout, mode=mode))
            checks += 1
    print("checks", checks)
    """
)


def test_every_supported_level_matches_the_oracle() -> None:
    supported = _levels(spx.show_config()["simd_supported"])
    jobs = {lvl: (lvl, MATRIX_SCRIPT.replace("LEVEL", repr(lvl))) for lvl in supported}
    out = _run_python(jobs, timeout=300)
    for lvl in supported:
        last = out[lvl].strip().splitlines()[-1]
        assert last.startswith("checks ") and int(last.split()[1]) > 200, (lvl, out[lvl])


ND_SCRIPT = textwrap.dedent(
    """
    import numpy as np
    import subpixel_ext as spx
    from subpixel_ext import reference as ref
    from _helpers import LAYOUTS, assert_close, nd_conv_inputs, oracle

    assert spx.show_config()["simd_active"] == LEVEL
    checks = 0
    ACTS = [None, "relu", "relu6", "leaky_relu", "tanh", "sigmoid"]
    LAYER = {"conv_transpose": "ConvTranspose", "conv": "Conv", "subpixel": "SubPixelConv"}
    NAME = {"conv_transpose": "conv_transpose", "conv": "conv", "subpixel": "subpixel_conv"}
    for i, (rank, kind) in enumerate([(r, k) for r in (1, 3) for k in ("conv_transpose", "conv", "subpixel")] * 2):
        rng = np.random.default_rng(i)
        dtype = (np.float32, np.float64)[i % 2]
        last = i // 6 == 1
        big = i % 3 != 0
        spatial = ((41 if big else 4),) if rank == 1 else ((4, 5, 3) if big else (2, 2, 3))
        factor = (2,) * rank if kind == "subpixel" else ()
        c_in, c_out = (5, 7) if big else (1, 2)
        x, w, b = nd_conv_inputs(rng, n=1 + i % 2, c_in=c_in, c_out=c_out, spatial=spatial, kernel=(3,) * rank,
                                 kind=kind, factor=factor, channels_last=last, dtype=dtype)
        act = ACTS[i % 6]
        kw = dict(padding=1, layout=LAYOUTS[rank][last], activation=act, negative_slope=0.1)
        if kind == "conv_transpose":
            kw["stride"] = (3,) if rank == 1 else (2, 1, 3)
        fn, ref_fn = getattr(spx, NAME[kind] + f"{rank}d"), getattr(ref, NAME[kind] + f"{rank}d")
        if kind == "subpixel":
            expected, scale = oracle(lambda x_, w_, b_, **k: ref_fn(x_, w_, 2, b_, **k), x, w, b, **kw)
            calls = [lambda t: fn(x, w, 2, b, **kw, num_threads=t)]
            layer = getattr(spx, LAYER[kind] + f"{rank}d")(w, 2, b, **kw)
        else:
            expected, scale = oracle(ref_fn, x, w, b, **kw)
            methods = [{"method": "direct"}, {"method": "polyphase"}] if kind == "conv_transpose" else [{}]
            calls = [lambda t, m=m: fn(x, w, b, **kw, **m, num_threads=t) for m in methods]
            layer = getattr(spx, LAYER[kind] + f"{rank}d")(w, b, **kw)
        for call in calls:
            one = call(1)
            assert_close(one, expected, np.dtype(dtype), scale, what=f"{kind}{rank}d {kw} {x.shape}")
            assert np.array_equal(call(2), one) and np.array_equal(layer(x, num_threads=2), calls[-1](1))
            checks += 1
    print("checks", checks)
    """
)


def test_every_supported_level_matches_the_oracle_in_1d_and_3d() -> None:
    # 1-D and 3-D ops, layers and every activation at each SIMD level; thread counts 1 and 2.
    supported = _levels(spx.show_config()["simd_supported"])
    jobs = {lvl: (lvl, ND_SCRIPT.replace("LEVEL", repr(lvl))) for lvl in supported}
    out = _run_python(jobs, timeout=300)
    for lvl in supported:
        last = out[lvl].strip().splitlines()[-1]
        assert last.startswith("checks ") and int(last.split()[1]) == 16, (lvl, out[lvl])


# ============================================================================ threads

SERIAL_MACS = 1 << 16  # the native code runs single-threaded below this many multiply-adds


def _big_problems(rng: np.random.Generator):
    """(name, callable(num_threads) -> result, work) for every op, each large enough to run
    in parallel."""
    problems = []
    for dtype in (F32, F64):
        for layout in ("NCHW", "NHWC"):
            n, c_in, c_out, h, w = 2, 8, 6, 20, 24
            xs = (n, c_in, h, w) if layout == "NCHW" else (n, h, w, c_in)
            x = random_array(rng, xs, dtype)
            wt = random_array(rng, (c_in, c_out, 4, 4), dtype)
            b = random_array(rng, (c_out,), dtype)
            macs = n * c_in * h * w * c_out * 16
            for method in ("direct", "polyphase"):
                problems.append((
                    f"conv_transpose2d-{method}-{dtype}-{layout}",
                    lambda t, x=x, wt=wt, b=b, method=method, layout=layout: spx.conv_transpose2d(
                        x, wt, b, 2, 1, layout=layout, method=method, num_threads=t),
                    macs,
                ))
            wc = random_array(rng, (c_out, c_in, 3, 3), dtype)
            problems.append((
                f"conv2d-{dtype}-{layout}",
                lambda t, x=x, wc=wc, b=b, layout=layout: spx.conv2d(x, wc, b, padding=1, layout=layout,
                                                                     num_threads=t),
                n * h * w * c_out * c_in * 9,
            ))
            ws = random_array(rng, (c_out * 4, c_in, 3, 3), dtype)
            problems.append((
                f"subpixel_conv2d-{dtype}-{layout}",
                lambda t, x=x, ws=ws, layout=layout: spx.subpixel_conv2d(x, ws, 2, padding=1, layout=layout,
                                                                         mode="DCR", num_threads=t),
                n * h * w * c_out * 4 * c_in * 9,
            ))
        lo = random_array(rng, (2, 16, 64, 64), dtype)
        problems.append(("pixel_shuffle-" + str(dtype),
                         lambda t, lo=lo: spx.pixel_shuffle(lo, 2, num_threads=t), lo.size))
        problems.append(("pixel_unshuffle-" + str(dtype),
                         lambda t, lo=lo: spx.pixel_unshuffle(lo, 2, layout="NHWC", mode="DCR", num_threads=t),
                         lo.size))
        zi = random_array(rng, (8, 64, 64), dtype)
        problems.append(("zero_insert-" + str(dtype),
                         lambda t, zi=zi: spx.zero_insert(zi, 2, num_threads=t), zi.size * 4))
    return problems


def test_thread_count_does_not_change_a_single_bit(rng) -> None:
    for name, fn, work in _big_problems(rng):
        assert work > SERIAL_MACS, name
        one = fn(1)
        for threads in (2, 3, None):
            np.testing.assert_array_equal(fn(threads), one, err_msg=f"{name} num_threads={threads}")
            assert fn(threads).tobytes() == one.tobytes(), name
        # repeated calls are bit-identical too
        assert fn(2).tobytes() == fn(2).tobytes() == one.tobytes(), name


def test_parallel_result_is_correct(rng) -> None:
    from _helpers import assert_close, oracle
    from subpixel_ext import reference as ref

    x = random_array(rng, (2, 8, 20, 24), F32)
    w = random_array(rng, (8, 6, 5, 3), F32)
    b = random_array(rng, (6,), F32)
    expected, scale = oracle(ref.conv_transpose2d, x, w, b, stride=(3, 2), padding=((2, 1), (0, 1)))
    for method in ("direct", "polyphase"):
        y = spx.conv_transpose2d(x, w, b, (3, 2), ((2, 1), (0, 1)), method=method, num_threads=2)
        assert_close(y, expected, F32, scale)


def test_set_and_get_num_threads_round_trip(rng) -> None:
    original = spx.get_num_threads()
    assert original >= 1
    problem = _big_problems(rng)[1]  # polyphase conv_transpose2d, float32, NCHW
    reference_result = problem[1](1)
    try:
        for n in (1, 2, 3, 1):
            spx.set_num_threads(n)
            assert spx.get_num_threads() == n
            assert spx.show_config()["num_threads"] == n
            assert problem[1](None).tobytes() == reference_result.tobytes()
        with pytest.raises(ValueError, match="num_threads"):
            spx.set_num_threads(0)
        assert spx.get_num_threads() == 1  # a rejected value leaves the setting alone
    finally:
        spx.set_num_threads(original)
    assert spx.get_num_threads() == original
