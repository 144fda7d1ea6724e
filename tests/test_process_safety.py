"""Process safety of the native core.

* fork / multiprocessing ("fork" and "spawn"): the package keeps working, single-threaded, in a
  forked child of a process whose OpenMP pool is running, and never hangs there;
* 8 Python threads calling every public function and layer at once get the serial results;
* the GIL is released during native work;
* repeated calls keep resident memory and reference counts flat;
* a child process feeds a long list of bad inputs (must raise ValueError / TypeError /
  OverflowError / MemoryError, never crash); absurd thread counts and strides.
"""

from __future__ import annotations

import functools
import gc
import json
import math
import multiprocessing
import os
import select
import signal
import subprocess
import sys
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np
import pytest

import subpixel_ext as spx
from subpixel_ext import reference as ref

from _helpers import F32, bits, parallel_problems, random_array, run_child, under_asan

# ============================================================================ fork / multiprocessing


def _fork_and_wait(child: Callable[[], Any], timeout: float) -> Any:
    """Run child() in a forked process; return what it returned (JSON), fail on error or hang."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: never return into pytest
        code = 1
        try:
            os.close(r)
            payload = json.dumps({"ok": child()}).encode()
            code = 0
        except BaseException:
            payload = json.dumps({"error": traceback.format_exc()}).encode()
        try:
            view = memoryview(payload)
            while view:
                view = view[os.write(w, view) :]
        finally:
            os._exit(code)
    os.close(w)
    deadline = time.monotonic() + timeout
    chunks: List[bytes] = []
    try:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                pytest.fail(f"forked child did not finish within {timeout} s (killed): hang after fork")
            ready, _, _ = select.select([r], [], [], remaining)
            if ready:
                data = os.read(r, 1 << 16)
                if not data:
                    break
                chunks.append(data)
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                pytest.fail("forked child closed its pipe but did not exit")
            time.sleep(0.005)
    finally:
        os.close(r)
    message = json.loads(b"".join(chunks).decode() or "{}")
    assert "error" not in message, "forked child failed:\n" + message["error"]
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, f"forked child status {status}"
    return message["ok"]


def _warm_up_thread_pool() -> None:
    """Use the package with 2 threads so that OpenMP's pool exists when we fork."""
    for f in parallel_problems(F32).values():
        f(2)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_forked_child_is_single_threaded_and_correct() -> None:
    _warm_up_thread_pool()
    assert spx.get_num_threads() >= 1
    rng = np.random.default_rng(1)
    x = random_array(rng, (2, 8, 24, 24))
    wt = random_array(rng, (8, 6, 4, 4))
    wc = random_array(rng, (6, 8, 3, 3))
    xs = random_array(rng, (2, 16, 64, 64))
    parent = {
        "convT": spx.conv_transpose2d(x, wt, stride=2, padding=1, num_threads=2),
        "conv2d": spx.conv2d(x, wc, padding=1, num_threads=2),
        "shuffle": spx.pixel_shuffle(xs, 2, num_threads=2),
    }

    def child() -> Dict[str, Any]:
        out: Dict[str, Any] = {"threads": spx.get_num_threads(), "config_threads": spx.show_config()["num_threads"]}
        for t in (None, 1, 2, 4):  # explicit thread counts must not start OpenMP after fork either
            yt = spx.conv_transpose2d(x, wt, stride=2, padding=1, num_threads=t)
            yc = spx.conv2d(x, wc, padding=1, num_threads=t)
            ys = spx.pixel_shuffle(xs, 2, num_threads=t)
            for name, y in (("convT", yt), ("conv2d", yc), ("shuffle", ys)):
                out[f"{name}/{t}/same_as_parent"] = bool(np.array_equal(bits(y), bits(parent[name])))
        out["convT_vs_oracle"] = float(np.max(np.abs(yt - ref.conv_transpose2d(x, wt, stride=2, padding=1))))
        out["conv2d_vs_oracle"] = float(np.max(np.abs(yc - ref.conv2d(x, wc, padding=1))))
        out["shuffle_vs_oracle"] = bool(np.array_equal(ys, ref.pixel_shuffle(xs, 2)))
        return out

    res = _fork_and_wait(child, timeout=60.0)
    assert res.pop("threads") == 1
    assert res.pop("config_threads") == 1
    assert res.pop("convT_vs_oracle") < 1e-10
    assert res.pop("conv2d_vs_oracle") < 1e-10
    assert res.pop("shuffle_vs_oracle") is True
    assert all(res.values()), {k: v for k, v in res.items() if not v}
    # And the parent still runs in parallel and correctly afterwards.
    np.testing.assert_array_equal(spx.conv_transpose2d(x, wt, stride=2, padding=1, num_threads=2), parent["convT"])


IMPORT_AFTER_FORK_SCRIPT = r"""
import os, select, sys, time
import numpy as np
first = sys.argv[1]
if first == "torch":  # PyTorch's OpenMP runtime runs (and is shared by this package) before the fork
    import torch
    torch.set_num_threads(2)
    torch.nn.functional.conv2d(torch.ones(2, 8, 64, 64), torch.ones(8, 8, 3, 3))
r, w = os.pipe()
pid = os.fork()
if pid == 0:
    os.close(r)
    import subpixel_ext as spx  # first imported in the child, as in a DataLoader worker
    x = np.ones((2, 16, 64, 64), np.float32); wc = np.ones((16, 16, 3, 3), np.float32)
    wt = np.ones((16, 8, 4, 4), np.float32)
    ok = float(spx.conv2d(x, wc, padding=1, num_threads=2)[0, 0, 5, 5]) == 144.0
    ok &= float(spx.conv_transpose2d(x, wt, stride=2, num_threads=2).max()) == 64.0
    ok &= spx.pixel_shuffle(np.ones((2, 16, 256, 256), np.float32), 2, num_threads=2).shape == (2, 4, 512, 512)
    ok &= float(spx.Conv2d(wc, padding=1)(x)[1, 3, 0, 0]) == 64.0  # the default thread count
    os.write(w, b"ok" if ok else b"wrong")
    os._exit(0)
os.close(w)
ready, _, _ = select.select([r], [], [], 30)
if not ready:
    os.kill(pid, 9)
    print("hang"); sys.exit(0)
print(os.read(r, 100).decode()); os.waitpid(pid, 0)
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
@pytest.mark.parametrize("first", ["torch", "nothing"])
def test_package_first_imported_in_a_forked_child_runs_in_parallel(first: str) -> None:
    # Was a hang: with PyTorch's libgomp.so.1 already used in the parent, the child's first
    # multi-threaded call waited forever for the parent's pool threads.
    if first == "torch":
        pytest.importorskip("torch")
    proc = run_child(IMPORT_AFTER_FORK_SCRIPT.replace("sys.argv[1]", repr(first)), timeout=90)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip() == "ok", (proc.stdout, proc.stderr[-3000:])


RAW_FORK_SCRIPT = r"""
import ctypes, os, sys
import numpy as np, subpixel_ext as spx
x = np.ones((2, 16, 64, 64), np.float32); w = np.ones((16, 16, 3, 3), np.float32)
spx.conv2d(x, w, num_threads=2)  # the pool exists
libc = ctypes.CDLL(None, use_errno=True)
pid = libc.syscall(57)  # SYS_fork on x86-64: no pthread_atfork handlers run in the child
if pid == 0:
    threads = spx.get_num_threads()
    y = spx.conv2d(x, w, num_threads=2)
    os.write(1, f"{threads} {float(y.min())}\n".encode())
    os._exit(0)
_, status = os.waitpid(pid, 0)
"""


@pytest.mark.skipif(not (hasattr(os, "fork") and os.uname().machine == "x86_64" and sys.platform == "linux"),
                    reason="raw fork(2) syscall number known for x86-64 Linux only")
def test_a_changed_process_id_is_a_forked_child_without_atfork_handlers() -> None:
    # A child made by the raw fork system call skips pthread_atfork handlers: only the
    # process-id check at call time can tell it must not use the parent's OpenMP pool.
    try:
        proc = run_child(RAW_FORK_SCRIPT, timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail("the child of a raw fork hung in its first multi-threaded call")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split() == ["1", "144.0"], proc.stdout


@pytest.mark.parametrize("start_method", ["fork", "spawn"])
def test_multiprocessing_pool_matches_parent(start_method: str) -> None:
    if start_method not in multiprocessing.get_all_start_methods():
        pytest.skip(f"start method {start_method!r} not available")
    _warm_up_thread_pool()
    rng = np.random.default_rng(2)
    wt = random_array(rng, (8, 4, 3, 3), np.float32)
    wc = random_array(rng, (4, 8, 3, 3))
    # Functions from the package itself (partials pickle by reference, spawn needs no test code).
    tasks: List[Tuple[Callable[..., np.ndarray], np.ndarray]] = []
    for i in range(4):
        tasks.append((functools.partial(spx.conv_transpose2d, weight=wt, stride=2, padding=1, num_threads=2),
                      random_array(rng, (2, 8, 20 + i, 24), np.float32)))
        tasks.append((functools.partial(spx.conv2d, weight=wc, padding="same", num_threads=2),
                      random_array(rng, (2, 8, 30, 22 + i))))
        tasks.append((functools.partial(spx.pixel_shuffle, upscale_factor=2, num_threads=2),
                      random_array(rng, (2, 16, 40, 40 + i), np.float32)))
        tasks.append((functools.partial(spx.zero_insert, stride=(2, 3)), random_array(rng, (3, 50, 60 + i))))
    expected = [f(a) for f, a in tasks]
    ctx = multiprocessing.get_context(start_method)
    with ctx.Pool(2) as pool:
        pending = [pool.apply_async(f, (a,)) for f, a in tasks]
        got = [p.get(timeout=120) for p in pending]
        threads = pool.apply_async(spx.get_num_threads).get(timeout=60)
    for (f, _), e, g in zip(tasks, expected, got):
        assert g.dtype == e.dtype and g.shape == e.shape
        assert np.array_equal(bits(g), bits(e)), f.func.__name__
    if start_method == "fork":
        assert threads == 1
    else:
        assert threads >= 1


# ============================================================================ Python threads


def _every_public_call(seed: int) -> List[Tuple[str, Callable[[], Any]]]:
    """(public function, zero-argument call) for every public function, on inputs that depend
    on `seed`; some functions several times (methods, layouts, `out=`)."""
    rng = np.random.default_rng(seed)
    n = 1 + seed % 2
    x = random_array(rng, (n, 4, 12 + seed, 10), np.float32)
    x64 = random_array(rng, (n, 4, 9, 11 + seed))
    x_nhwc = random_array(rng, (n, 10 + seed, 9, 4))
    wt = random_array(rng, (4, 3, 3, 3), np.float32)
    wc = random_array(rng, (6, 4, 3, 3))
    ws = random_array(rng, (12, 4, 3, 3))
    bt, bc = random_array(rng, (3,), np.float32), random_array(rng, (6,))
    big = random_array(rng, (2, 8, 24 + 2 * seed, 32))
    out = np.empty((n, 3, 2 * (12 + seed) - 1, 19), np.float32)
    pw = spx.polyphase_weight(wt, 2, padding=1)
    dw = spx.deconv_weight(ws, 2, padding=1)
    threads = spx.get_num_threads()
    x1 = random_array(rng, (n, 4, 40 + seed))
    w1t, w1c, w1s = random_array(rng, (4, 3, 5)), random_array(rng, (3, 4, 3)), random_array(rng, (6, 4, 3))
    x3 = random_array(rng, (n, 4, 4, 5, 3 + seed % 3), np.float32)
    x3_lo = random_array(rng, (n, 16, 3, 4, 5))
    w3t, w3c = random_array(rng, (4, 2, 3, 3, 2), np.float32), random_array(rng, (2, 4, 3, 3, 3), np.float32)
    w3s, b3 = random_array(rng, (16, 4, 3, 3, 3), np.float32), random_array(rng, (2,), np.float32)
    # Layers shared by every worker: one object called from 8 threads at once.
    layers = _SHARED_LAYERS

    def grad_of(y: np.ndarray) -> np.ndarray:
        return random_array(rng, y.shape, y.dtype)

    g2t, g2c = grad_of(spx.conv_transpose2d(x, wt, stride=2, padding=1)), grad_of(spx.conv2d(x64, wc, padding="same"))
    g1t, g1c = grad_of(spx.conv_transpose1d(x1, w1t, stride=3)), grad_of(spx.conv1d(x1, w1c, stride=2))
    g3t = grad_of(spx.conv_transpose3d(x3, w3t, stride=(1, 2, 3), padding=1))
    g3c = grad_of(spx.conv3d(x3, w3c, padding=1, dilation=(1, 2, 1)))
    return [
        ("conv_transpose2d_backward", lambda: _flat(spx.conv_transpose2d_backward(g2t, x, wt, stride=2, padding=1,
                                                                                  num_threads=2))),
        ("conv2d_backward", lambda: _flat(spx.conv2d_backward(g2c, x64, wc, padding="same"))),
        ("conv_transpose1d_backward", lambda: _flat(spx.conv_transpose1d_backward(g1t, x1, w1t, stride=3,
                                                                                  num_threads=2))),
        ("conv1d_backward", lambda: _flat(spx.conv1d_backward(g1c, x1, w1c, stride=2, output_mask=(True, True, False)))),
        ("conv_transpose3d_backward", lambda: _flat(spx.conv_transpose3d_backward(
            g3t, x3, w3t, stride=(1, 2, 3), padding=1, method="direct"))),
        ("conv3d_backward", lambda: _flat(spx.conv3d_backward(g3c, x3, w3c, padding=1, dilation=(1, 2, 1),
                                                              num_threads=2))),
        ("conv_transpose2d", lambda: spx.conv_transpose2d(x, wt, bt, stride=2, padding=1, num_threads=2)),
        ("conv_transpose2d", lambda: spx.conv_transpose2d(x64, wt, None, stride=(2, 3), dilation=2, method="direct", num_threads=1)),
        ("conv_transpose2d", lambda: spx.conv_transpose2d(x, wt, bt, stride=2, padding=1, out=out).copy()),
        ("conv_transpose2d", lambda: spx.conv_transpose2d(x_nhwc, wt, None, stride=2, layout="NHWC", method="polyphase", num_threads=2)),
        ("conv2d", lambda: spx.conv2d(x64, wc, bc, padding="same", num_threads=2)),
        ("conv2d", lambda: spx.conv2d(x_nhwc, wc, bc, stride=2, padding=1, layout="NHWC")),
        ("subpixel_conv2d", lambda: spx.subpixel_conv2d(x, ws, 2, None, padding=1, num_threads=2)),
        ("subpixel_conv2d", lambda: spx.subpixel_conv2d(x_nhwc, ws, (2, 1), None, layout="NHWC", mode="DCR", num_threads=1)),
        ("pixel_shuffle", lambda: spx.pixel_shuffle(big, 2, num_threads=2)),
        ("pixel_unshuffle", lambda: spx.pixel_unshuffle(big, (2, 4), mode="DCR")),
        ("zero_insert", lambda: spx.zero_insert(big, 3, num_threads=2)),
        ("split_kernel", lambda: spx.split_kernel(wt, (2, 3))),
        ("polyphase_weight", lambda: spx.polyphase_weight(wt, 2, padding=1).weight),
        ("polyphase_weight", lambda: pw.apply(x, bt, num_threads=2)),
        ("deconv_weight", lambda: spx.deconv_weight(ws, 2, padding=1).weight),
        ("deconv_weight", lambda: dw.apply(x64)),
        ("PolyphaseWeight", lambda: pw.apply(x64, num_threads=1)),
        ("DeconvWeight", lambda: dw.apply(x, num_threads=2)),
        ("conv_transpose1d", lambda: spx.conv_transpose1d(x1, w1t, None, stride=3, padding=((2, 1),), num_threads=2)),
        ("conv_transpose1d", lambda: spx.conv_transpose1d(x1, w1t, None, stride=2, method="direct",
                                                          activation="tanh")),
        ("conv_transpose3d", lambda: spx.conv_transpose3d(x3, w3t, b3, stride=(1, 2, 3), padding=1, num_threads=2)),
        ("conv1d", lambda: spx.conv1d(x1, w1c, padding="same", activation="relu", num_threads=2)),
        ("conv3d", lambda: spx.conv3d(x3, w3c, None, padding=1, dilation=(1, 2, 1))),
        ("subpixel_conv1d", lambda: spx.subpixel_conv1d(x1, w1s, 3, padding=1, num_threads=2)),
        ("subpixel_conv3d", lambda: spx.subpixel_conv3d(x3, w3s, 2, padding=1, mode="DCR")),
        ("pixel_shuffle", lambda: spx.pixel_shuffle(x3_lo, (2, 2, 2), num_threads=2)),
        ("zero_insert", lambda: spx.zero_insert(x1, (3,))),
        ("ConvTranspose1d", lambda: layers["ConvTranspose1d"](x1, num_threads=2)),
        ("ConvTranspose2d", lambda: layers["ConvTranspose2d"](x, output_size=(2 * (12 + seed), 20))),
        ("ConvTranspose3d", lambda: layers["ConvTranspose3d"](x3, num_threads=1)),
        ("Conv1d", lambda: layers["Conv1d"](x1)),
        ("Conv2d", lambda: layers["Conv2d"](x_nhwc, num_threads=2)),
        ("Conv3d", lambda: layers["Conv3d"](x3)),
        ("SubPixelConv1d", lambda: layers["SubPixelConv1d"](x1, num_threads=2)),
        ("SubPixelConv2d", lambda: layers["SubPixelConv2d"](x64)),
        ("SubPixelConv3d", lambda: layers["SubPixelConv3d"](x3, num_threads=2)),
        ("get_num_threads", lambda: spx.get_num_threads()),
        ("set_num_threads", lambda: spx.set_num_threads(threads)),  # the current value: no effect
        ("show_config", lambda: dict(spx.show_config())),
    ]


_r = np.random.default_rng(99)
_SHARED_LAYERS: Dict[str, Any] = {
    "ConvTranspose1d": spx.ConvTranspose1d(random_array(_r, (4, 2, 4)), stride=2, padding=1),
    "ConvTranspose2d": spx.ConvTranspose2d(random_array(_r, (4, 3, 4, 3), np.float32), random_array(_r, (3,)),
                                           stride=2, padding=1, activation="leaky_relu", negative_slope=0.2),
    "ConvTranspose3d": spx.ConvTranspose3d(random_array(_r, (4, 2, 2, 3, 2), np.float32), stride=(2, 1, 2),
                                           method="direct"),
    "Conv1d": spx.Conv1d(random_array(_r, (6, 2, 3)), groups=2, padding="same", stride=2),
    "Conv2d": spx.Conv2d(random_array(_r, (5, 4, 3, 3)), padding=1, layout="NHWC", activation="sigmoid"),
    "Conv3d": spx.Conv3d(random_array(_r, (3, 4, 2, 2, 2), np.float32), padding="same"),
    "SubPixelConv1d": spx.SubPixelConv1d(random_array(_r, (8, 4, 3)), 4, padding=1),
    "SubPixelConv2d": spx.SubPixelConv2d(random_array(_r, (12, 4, 3, 3)), 2, padding=1, activation="relu6"),
    "SubPixelConv3d": spx.SubPixelConv3d(random_array(_r, (8, 4, 1, 3, 3), np.float32), (1, 2, 2), padding=(0, 1, 1)),
}


def _flat(gradients: Tuple[Optional[np.ndarray], ...]) -> np.ndarray:
    """A backward op's gradients as one array (the masked ones left out)."""
    return np.concatenate([g.ravel() for g in gradients if g is not None])


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and a.dtype == b.dtype and np.array_equal(a, b)
    return bool(a == b)


def test_eight_python_threads_match_serial_results() -> None:
    workers, rounds = 8, 3
    calls = [_every_public_call(seed) for seed in range(workers)]
    public = {name for name in spx.__all__ if callable(getattr(spx, name))}  # functions and classes
    assert public <= {name for name, _ in calls[0]}, f"not exercised: {public - {name for name, _ in calls[0]}}"
    serial = [[fn() for _, fn in worker_calls] for worker_calls in calls]
    barrier = threading.Barrier(workers)

    def work(i: int) -> List[List[Any]]:
        barrier.wait(timeout=60)  # all start together
        order = list(range(len(calls[i])))
        results: List[List[Any]] = [[] for _ in order]
        for r in range(rounds):
            np.random.default_rng(100 * i + r).shuffle(order)  # different interleavings
            for j in order:
                results[j].append(calls[i][j][1]())
        return results

    with ThreadPoolExecutor(max_workers=workers) as pool:
        concurrent = list(pool.map(work, range(workers), timeout=300))
    bad = [
        (i, j, calls[i][j][0], r)
        for i in range(workers)
        for j in range(len(calls[i]))
        for r, got in enumerate(concurrent[i][j])
        if not _same(serial[i][j], got)
    ]
    assert not bad, f"results differ from the serial run (worker, call, function, round): {bad[:10]}"


# ============================================================================ GIL


def _long_call(op: str) -> Callable[[], Any]:
    """A single native call of `op` on one thread taking ~0.3 s or more (calibrated, so that
    it also fits a slow sanitizer build)."""
    rng = np.random.default_rng(3)
    for c in (16, 32, 64, 128, 256):
        x = random_array(rng, (1, c, 64, 64), np.float32)
        if op == "conv_transpose2d":
            w = random_array(rng, (c, c, 8, 8), np.float32)
            f = functools.partial(spx.conv_transpose2d, weight=w, stride=2, num_threads=1)
        elif op == "conv2d":
            w = random_array(rng, (c, c, 7, 7), np.float32)
            f = functools.partial(spx.conv2d, weight=w, num_threads=1)
        else:
            w = random_array(rng, (4 * c, c, 5, 5), np.float32)
            f = functools.partial(spx.subpixel_conv2d, weight=w, upscale_factor=2, num_threads=1)
        t0 = time.perf_counter()
        f(x)
        one = time.perf_counter() - t0
        if one >= 0.05:
            break
    xn = np.ascontiguousarray(np.repeat(x, max(1, min(8, math.ceil(0.3 / one))), axis=0))
    return lambda: f(xn)


@pytest.mark.parametrize("op", ["conv_transpose2d", "conv2d", "subpixel_conv2d"])
def test_gil_is_released_during_native_work(op: str) -> None:
    call = _long_call(op)
    best = (0, 0.0)
    for _attempt in range(3):  # a noisy machine may starve the ticker once; not three times
        ticks: List[float] = []
        stop = [False]

        def ticker() -> None:
            n = 0
            while not stop[0]:
                n += 1
                if n % 64 == 0:
                    ticks.append(time.perf_counter())

        thread = threading.Thread(target=ticker, daemon=True)
        thread.start()
        time.sleep(0.02)
        t0 = time.perf_counter()
        call()
        t1 = time.perf_counter()
        stop[0] = True
        thread.join(10)
        # The middle 60% of the call: a thread holding the GIL in native code lets the ticker
        # run at most for a switch interval (5 ms) around its entry and exit, never in here.
        lo, hi = t0 + 0.2 * (t1 - t0), t1 - 0.2 * (t1 - t0)
        inside = sum(lo <= t <= hi for t in ticks)
        best = max(best, (inside, t1 - t0))
        if inside >= 20:
            return
    pytest.fail(f"another Python thread made no progress during a {best[1]:.2f} s native {op} call "
                f"(best of 3: {best[0]} ticks): the GIL is held")


# ============================================================================ memory


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/statm")
@pytest.mark.skipif(under_asan(), reason="ASan's quarantine keeps freed memory resident")
def test_repeated_calls_keep_memory_and_refcounts_flat() -> None:
    rng = np.random.default_rng(4)
    x = random_array(rng, (1, 8, 24, 24))  # ~37 KB: a leaked frame or output per call adds up fast
    x32 = x.astype(np.float32)
    wt, wc, ws = random_array(rng, (8, 8, 3, 3)), random_array(rng, (8, 8, 3, 3)), random_array(rng, (32, 8, 3, 3))
    wt32 = wt.astype(np.float32)
    b8 = random_array(rng, (8,))
    big = random_array(rng, (1, 16, 32, 32))
    bad_w = random_array(rng, (3, 8, 3, 3))
    out = np.empty((1, 8, 47, 47))
    x_par = random_array(rng, (1, 16, 64, 64))  # ~0.5 MB: fewer calls still show a leak
    w_par = random_array(rng, (16, 16, 3, 3))
    w_nan = wt.copy()
    w_nan[0, 0, 1, 1] = np.nan

    def raises() -> None:
        try:
            spx.conv_transpose2d(x, bad_w)
        except ValueError:
            pass

    # (call, repetitions). One thread for the 2,000-call loops (waking a pool 20,000 times on
    # a busy 2-core machine takes long); the parallel path gets larger inputs and 300 calls.
    ops: Dict[str, Tuple[Callable[[], Any], int]] = {
        "conv_transpose2d_polyphase": (lambda: spx.conv_transpose2d(x, wt, b8, stride=2, padding=1, method="polyphase", num_threads=1), 2000),
        "conv_transpose2d_direct": (lambda: spx.conv_transpose2d(x32, wt32, stride=2, method="direct", num_threads=1), 2000),
        "conv_transpose2d_out": (lambda: spx.conv_transpose2d(x, wt, b8, stride=2, padding=1, out=out, num_threads=1), 2000),
        "conv_transpose2d_nan_weight": (lambda: spx.conv_transpose2d(x, w_nan, b8, stride=2, padding=1, num_threads=1), 2000),
        "conv2d": (lambda: spx.conv2d(x, wc, b8, padding=1, num_threads=1), 2000),
        "subpixel_conv2d": (lambda: spx.subpixel_conv2d(x, ws, 2, padding=1, num_threads=1), 2000),
        "pixel_shuffle": (lambda: spx.pixel_shuffle(big, 2, num_threads=1), 2000),
        "pixel_unshuffle": (lambda: spx.pixel_unshuffle(big, 2, num_threads=1), 2000),
        "zero_insert": (lambda: spx.zero_insert(big, 2, num_threads=1), 2000),
        "validation_error": (raises, 2000),
        "conv2d_2_threads": (lambda: spx.conv2d(x_par, w_par, padding=1, num_threads=2), 300),
        "conv_transpose2d_2_threads": (lambda: spx.conv_transpose2d(x_par, w_par, stride=2, num_threads=2), 300),
    }
    arrays = {"x": x, "x32": x32, "wt": wt, "wt32": wt32, "wc": wc, "ws": ws, "b8": b8, "big": big,
              "out": out, "bad_w": bad_w, "x_par": x_par, "w_par": w_par, "w_nan": w_nan}
    growth: Dict[str, float] = {}
    for name, (fn, calls) in ops.items():
        for _ in range(max(50, calls // 10)):  # warm-up: caches, pools, allocator arenas
            fn()
        gc.collect()
        refs = {k: sys.getrefcount(v) for k, v in arrays.items()}
        before = _rss_bytes()
        for _ in range(calls):
            fn()
        gc.collect()
        growth[name] = (_rss_bytes() - before) / 2**20
        leaked = {k: sys.getrefcount(v) - refs[k] for k, v in arrays.items() if sys.getrefcount(v) != refs[k]}
        assert not leaked, f"{name}: references leaked over {calls} calls: {leaked}"
    too_much = {k: round(v, 1) for k, v in growth.items() if v >= 20}
    assert not too_much, f"resident memory grew (MB) over the repeated calls: {too_much}"

# ============================================================================ bad inputs, in a child

BAD_INPUTS_SCRIPT = r'''
import json, sys, traceback
import numpy as np
from numpy.lib.stride_tricks import as_strided
import subpixel_ext as spx

f32, f64 = np.float32, np.float64
x = np.ones((1, 2, 4, 4), f32)
x3 = np.ones((2, 4, 4), f32)
wt = np.ones((2, 3, 3, 3), f32)       # transposed: (C_in, C_out/groups, kh, kw)
wc = np.ones((3, 2, 3, 3), f32)       # conv: (C_out, C_in/groups, kh, kw)
ws = np.ones((12, 2, 3, 3), f32)      # sub-pixel, r=2: 3 channels
big = np.ones((1, 8, 4, 4), f32)

def huge(shape, dtype=f32):
    """A zero-strided view of one element: any shape, no memory."""
    return as_strided(np.zeros(1, dtype), shape=shape, strides=(0,) * len(shape))

H = 2**30                               # (1, 1, H, H) float32 is 2**62 bytes: the most numpy allows
readonly = np.empty((1, 3, 6, 6), f32); readonly.flags.writeable = False

cases = []
def case(name, fn):
    cases.append((name, fn))

# --- conv_transpose2d
T = spx.conv_transpose2d
case("convT x 2-D", lambda: T(np.ones((4, 4), f32), wt))
case("convT x 5-D", lambda: T(np.ones((1, 1, 2, 4, 4), f32), wt))
case("convT x 1-D", lambda: T(np.ones(4, f32), wt))
case("convT x 0-D", lambda: T(np.float32(1), wt))
case("convT weight 3-D", lambda: T(x, wt[0]))
case("convT weight 5-D", lambda: T(x, wt[None]))
case("convT channel mismatch", lambda: T(x, np.ones((3, 3, 3, 3), f32)))
case("convT NHWC channel mismatch", lambda: T(x, wt, layout="NHWC"))
case("convT groups 0", lambda: T(x, wt, groups=0))
case("convT groups -1", lambda: T(x, wt, groups=-1))
case("convT groups 3 of 2 channels", lambda: T(x, wt, groups=3))
case("convT groups True", lambda: T(x, wt, groups=True))
case("convT groups 1.0", lambda: T(x, wt, groups=1.0))
case("convT groups 2**64", lambda: T(x, wt, groups=2**64))
case("convT stride 0", lambda: T(x, wt, stride=0))
case("convT stride -1", lambda: T(x, wt, stride=-1))
case("convT stride (1, 0)", lambda: T(x, wt, stride=(1, 0)))
case("convT stride triple", lambda: T(x, wt, stride=(1, 1, 1)))
case("convT stride str", lambda: T(x, wt, stride="2"))
case("convT stride float", lambda: T(x, wt, stride=2.0))
case("convT stride None", lambda: T(x, wt, stride=None))
case("convT stride 2**62 (output too big)", lambda: T(x, wt, stride=2**62))
case("convT stride 2**63", lambda: T(x, wt, stride=2**63))
case("convT stride -2**63", lambda: T(x, wt, stride=-2**63))
case("convT dilation 0", lambda: T(x, wt, dilation=0))
case("convT dilation 2**62", lambda: T(x, wt, dilation=2**62))
case("convT padding -1", lambda: T(x, wt, padding=-1))
case("convT padding (0, -1)", lambda: T(x, wt, padding=(0, -1)))
case("convT padding nested negative", lambda: T(x, wt, padding=((0, -1), (0, 0))))
case("convT padding nested short", lambda: T(x, wt, padding=((0,), (0, 0))))
case("convT padding 'full'", lambda: T(x, wt, padding="full"))
case("convT padding empties output", lambda: T(x, wt, padding=3))
case("convT padding 2**62", lambda: T(x, wt, padding=2**62))
case("convT padding float", lambda: T(x, wt, padding=0.5))
case("convT output_padding >= stride", lambda: T(x, wt, stride=2, output_padding=2))
case("convT output_padding -1", lambda: T(x, wt, stride=2, output_padding=-1))
case("convT output_padding with same", lambda: T(x, wt, stride=2, padding="same", output_padding=1))
case("convT output_size unreachable", lambda: T(x, wt, stride=2, output_size=(20, 20)))
case("convT output_size and output_padding", lambda: T(x, wt, stride=2, output_size=(9, 9), output_padding=1))
case("convT output_size 0", lambda: T(x, wt, output_size=0))
case("convT layout", lambda: T(x, wt, layout="NCWH"))
case("convT layout int", lambda: T(x, wt, layout=1))
case("convT method", lambda: T(x, wt, method="fft"))
case("convT bias shape", lambda: T(x, wt, np.ones(4, f32)))
case("convT bias 2-D", lambda: T(x, wt, np.ones((1, 3), f32)))
case("convT complex x", lambda: T(x.astype(np.complex64), wt))
case("convT object x", lambda: T(np.array([[[[1]]]], dtype=object), np.ones((1, 1, 1, 1))))
case("convT str x", lambda: T(np.array([[[["a"]]]]), np.ones((1, 1, 1, 1))))
case("convT ragged x", lambda: T([[[[1.0, 2.0], [1.0]]]], wt))
case("convT datetime weight", lambda: T(x, wt.astype("datetime64[s]")))
case("convT empty kernel", lambda: T(x, np.ones((2, 3, 0, 3), f32)))
case("convT empty spatial", lambda: T(np.ones((1, 2, 0, 4), f32), wt))
case("convT out wrong shape", lambda: T(x, wt, out=np.empty((1, 3, 5, 5), f32)))
case("convT out wrong dtype", lambda: T(x, wt, out=np.empty((1, 3, 6, 6), f64)))
case("convT out non-contiguous", lambda: T(x, wt, out=np.empty((1, 3, 6, 12), f32)[..., ::2]))
case("convT out zero-strided", lambda: T(x, wt, out=huge((1, 3, 6, 6))))
case("convT out read-only", lambda: T(x, wt, out=readonly))
case("convT out list", lambda: T(x, wt, out=[[0.0]]))
case("convT out overlaps x", lambda: _overlap())
case("convT out byteswapped", lambda: T(x, wt, out=np.empty((1, 3, 6, 6), ">f4")))
case("convT num_threads 0", lambda: T(x, wt, num_threads=0))
case("convT num_threads -1", lambda: T(x, wt, num_threads=-1))
case("convT num_threads str", lambda: T(x, wt, num_threads="2"))
case("convT huge x output > 2**63 bytes", lambda: T(huge((1, 1, H, H)), np.ones((1, 1, 2, 2), f32), stride=2))
case("convT huge x, float64 result > 2**63 bytes", lambda: T(huge((1, 1, H, H)), np.ones((1, 1, 1, 1), f64)))
case("convT huge weight", lambda: T(np.ones((1, 1, 1, 1), f32), huge((1, 1, H, H))))
case("convT huge channels", lambda: T(huge((1, H, 1, 1)), huge((H, H, 1, 1))))

def _overlap():
    buf = np.zeros((1, 3, 6, 6), f32)
    return T(buf[:, :2, :4, :4], wt, out=buf)

# --- conv2d
C = spx.conv2d
case("conv2d x 2-D", lambda: C(np.ones((4, 4), f32), wc))
case("conv2d channel mismatch", lambda: C(x, np.ones((3, 3, 3, 3), f32)))
case("conv2d groups not dividing out", lambda: C(x, np.ones((3, 1, 3, 3), f32), groups=2))
case("conv2d groups 0", lambda: C(x, wc, groups=0))
case("conv2d stride 0", lambda: C(x, wc, stride=0))
case("conv2d dilation -1", lambda: C(x, wc, dilation=-1))
case("conv2d kernel larger than input", lambda: C(x, np.ones((3, 2, 5, 5), f32)))
case("conv2d dilated kernel larger than input", lambda: C(x, wc, dilation=2))
case("conv2d dilation 2**62", lambda: C(x, wc, dilation=2**62))
case("conv2d padding -2", lambda: C(x, wc, padding=-2))
case("conv2d padding 2**62", lambda: C(x, wc, padding=2**62))
case("conv2d padding 'full'", lambda: C(x, wc, padding="full"))
case("conv2d bias shape", lambda: C(x, wc, np.ones(2, f32)))
case("conv2d complex weight", lambda: C(x, wc.astype(complex)))
case("conv2d out wrong shape", lambda: C(x, wc, out=np.empty((1, 3, 3, 3), f32)))
case("conv2d layout", lambda: C(x, wc, layout="nchw "))
case("conv2d huge x and kernel", lambda: C(huge((1, 1, H, H)), huge((1, 1, H, H))))
case("conv2d huge padding area", lambda: C(x, wc, padding=2**31))
case("conv2d huge x, padding", lambda: C(huge((1, 1, H, H)), np.ones((1, 1, 1, 1), f32), padding=1))

# --- subpixel_conv2d
S = spx.subpixel_conv2d
case("subpixel factor 0", lambda: S(x, ws, 0))
case("subpixel factor -2", lambda: S(x, ws, -2))
case("subpixel factor str", lambda: S(x, ws, "2"))
case("subpixel channels not divisible", lambda: S(x, ws, 3))
case("subpixel factor (2, 2, 2)", lambda: S(x, ws, (2, 2, 2)))
case("subpixel mode", lambda: S(x, ws, 2, mode="RCD"))
case("subpixel channel mismatch", lambda: S(x, np.ones((12, 3, 3, 3), f32), 2))
case("subpixel groups", lambda: S(x, ws, 2, groups=4))
case("subpixel padding -1", lambda: S(x, ws, 2, padding=-1))
case("subpixel bias shape (C instead of C*r*r)", lambda: S(x, ws, 2, np.ones(3, f32)))
case("subpixel factor 2**32", lambda: S(x, np.ones((4, 2, 1, 1), f32), 2**32))
case("subpixel output too big", lambda: S(huge((1, 1, H, H)), np.ones((4, 1, 1, 1), f32), 2))
case("subpixel kernel larger than input", lambda: S(x, np.ones((4, 2, 5, 5), f32), 2))

# --- pixel_shuffle / pixel_unshuffle
P, U = spx.pixel_shuffle, spx.pixel_unshuffle
case("shuffle x 2-D", lambda: P(np.ones((4, 4), f32), 2))
case("shuffle channels not divisible", lambda: P(np.ones((1, 6, 2, 2), f32), 2))
case("shuffle NHWC channels not divisible", lambda: P(np.ones((1, 2, 2, 6), f32), 2, layout="NHWC"))
case("shuffle factor 0", lambda: P(big, 0))
case("shuffle factor -1", lambda: P(big, -1))
case("shuffle factor (2, 2, 2)", lambda: P(big, (2, 2, 2)))
case("shuffle factor float", lambda: P(big, 2.0))
case("shuffle mode", lambda: P(big, 2, mode="crd2"))
case("shuffle layout", lambda: P(big, 2, layout="CHW"))
case("shuffle object", lambda: P(big.astype(object), 2))
case("shuffle num_threads 0", lambda: P(big, 2, num_threads=0))
case("shuffle output too big", lambda: P(huge((4, H // 2, H // 2)), 2**31))
case("shuffle huge channels", lambda: P(huge((2**62, 1, 1), np.uint8), 2**31))
case("shuffle huge lead dims", lambda: P(huge((2**20, 2**20, 4, 2**10, 2**10), np.uint8), 2))
case("unshuffle spatial not divisible", lambda: U(np.ones((1, 1, 3, 4), f32), 2))
case("unshuffle NHWC spatial not divisible", lambda: U(np.ones((1, 4, 3, 1), f32), 2, layout="NHWC"))
case("unshuffle factor 0", lambda: U(big, 0))
case("unshuffle factor 2**62", lambda: U(big, 2**62))
case("unshuffle x 1-D", lambda: U(np.ones(4, f32), 2))
case("unshuffle output too big", lambda: U(huge((2**31, H, 2), np.uint8), (1, 2)))

# --- zero_insert / split_kernel
Z, K = spx.zero_insert, spx.split_kernel
case("zero_insert x 1-D", lambda: Z(np.ones(4, f32), 2))
case("zero_insert x 0-D", lambda: Z(np.float32(1), 2))
case("zero_insert stride 0", lambda: Z(x, 0))
case("zero_insert stride -1", lambda: Z(x, (2, -1)))
case("zero_insert stride str", lambda: Z(x, "2"))
case("zero_insert stride 2**62", lambda: Z(x, 2**62))
case("zero_insert huge x", lambda: Z(huge((H, H)), 2))
case("zero_insert object", lambda: Z(x.astype(object), 2))
case("split_kernel 1-D", lambda: K(np.ones(3), 2))
case("split_kernel stride 0", lambda: K(np.ones((3, 3)), 0))
case("split_kernel complex", lambda: K(np.ones((3, 3), complex), 2))

# --- weights helpers and thread settings
case("polyphase_weight 2-D", lambda: spx.polyphase_weight(np.ones((2, 3)), 2))  # 3-D is a 1-D weight
case("polyphase_weight stride 0", lambda: spx.polyphase_weight(wt, 0))
case("polyphase_weight groups", lambda: spx.polyphase_weight(wt, 2, groups=3))
case("polyphase_weight output_padding", lambda: spx.polyphase_weight(wt, 2, output_padding=2))
case("deconv_weight factor not dividing", lambda: spx.deconv_weight(ws, 3))
case("deconv_weight groups 0", lambda: spx.deconv_weight(ws, 2, groups=0))
case("set_num_threads 0", lambda: spx.set_num_threads(0))
case("set_num_threads -3", lambda: spx.set_num_threads(-3))
case("set_num_threads None", lambda: spx.set_num_threads(None))
case("set_num_threads str", lambda: spx.set_num_threads("4"))

# --- the same mistakes right after the valid call they resemble (no cached validation)
case("convT stride True after stride 1", lambda: (T(x, wt, stride=1), T(x, wt, stride=True)))
case("convT stride 2.0 after stride 2", lambda: (T(x, wt, stride=2), T(x, wt, stride=2.0)))
case("convT padding True after padding 1", lambda: (T(x, wt, padding=1), T(x, wt, padding=True)))
case("conv2d groups 1.0 after groups 1", lambda: (C(x, wc, groups=1), C(x, wc, groups=1.0)))
case("conv2d num_threads 1.0 after 1", lambda: (C(x, wc, num_threads=1), C(x, wc, num_threads=1.0)))
case("subpixel factor 2.0 after 2", lambda: (S(x, ws, 2), S(x, ws, 2.0)))
case("shuffle factor 2.0 after 2", lambda: (P(big, 2), P(big, 2.0)))
case("zero_insert stride True after 1", lambda: (Z(x, 1), Z(x, True)))

# --- the N-D ops and the layers
T1, T3, C1, C3, S1, S3 = (spx.conv_transpose1d, spx.conv_transpose3d, spx.conv1d, spx.conv3d,
                          spx.subpixel_conv1d, spx.subpixel_conv3d)
x1, x5 = np.ones((1, 2, 6), f32), np.ones((1, 2, 3, 3, 3), f32)
w1, w5 = np.ones((2, 3, 3), f32), np.ones((2, 3, 2, 2, 2), f32)
case("convT1d weight 4-D", lambda: T1(x1, wt))
case("convT1d stride pair", lambda: T1(x1, w1, stride=(1, 2)))
case("convT1d x 4-D", lambda: T1(x, w1))
case("convT1d padding pair of pairs", lambda: T1(x1, w1, padding=((0, 0), (0, 0))))
case("convT1d layout NCHW", lambda: T1(x1, w1, layout="NCHW"))
case("convT1d output_size unreachable", lambda: T1(x1, w1, stride=2, output_size=(40,)))
case("convT3d weight 4-D", lambda: T3(x5, wt))
case("convT3d stride 2**63", lambda: T3(x5, w5, stride=(1, 2**63, 1)))
case("convT3d dilation 0", lambda: T3(x5, w5, dilation=(1, 1, 0)))
case("convT3d activation", lambda: T3(x5, w5, activation="gelu"))
case("convT3d negative_slope str", lambda: T3(x5, w5, activation="leaky_relu", negative_slope="0.1"))
case("conv1d kernel larger than input", lambda: C1(x1, np.ones((3, 2, 9), f32)))
case("conv3d groups 3", lambda: C3(x5, np.ones((3, 2, 1, 1, 1), f32), groups=3))
case("conv3d padding 2**62", lambda: C3(x5, np.ones((3, 2, 1, 1, 1), f32), padding=2**62))
case("subpixel1d factor pair", lambda: S1(x1, np.ones((4, 2, 3), f32), (2, 2)))
case("subpixel3d channels not divisible", lambda: S3(x5, np.ones((12, 2, 1, 1, 1), f32), 2))
case("subpixel3d mode", lambda: S3(x5, np.ones((8, 2, 1, 1, 1), f32), 2, mode="XYZ"))
case("ConvTranspose1d weight 4-D", lambda: spx.ConvTranspose1d(wt))
case("ConvTranspose2d stride 0", lambda: spx.ConvTranspose2d(wt, stride=0))
case("ConvTranspose3d method", lambda: spx.ConvTranspose3d(w5, method="fft"))
case("Conv2d groups 0", lambda: spx.Conv2d(wc, groups=0))
case("Conv3d activation", lambda: spx.Conv3d(np.ones((3, 2, 1, 1, 1), f32), activation="swish"))
case("SubPixelConv2d factor 0", lambda: spx.SubPixelConv2d(ws, 0))
case("SubPixelConv1d weight 2-D", lambda: spx.SubPixelConv1d(np.ones((4, 2), f32), 2))
case("layer x channel mismatch", lambda: spx.ConvTranspose2d(wt)(np.ones((1, 3, 4, 4), f32)))
case("layer x rank", lambda: spx.Conv1d(np.ones((3, 2, 3), f32))(x))
case("layer out wrong dtype", lambda: spx.Conv2d(wc)(x, out=np.empty((1, 3, 2, 2), f64)))
case("layer num_threads 0", lambda: spx.Conv2d(wc)(x, num_threads=0))
case("layer output_size unreachable", lambda: spx.ConvTranspose2d(wt, stride=2)(x, output_size=(30, 30)))
case("shuffle factor 4 axes", lambda: P(big, (1, 1, 1, 1)))
case("zero_insert stride 4 axes", lambda: Z(np.ones((2, 2, 2, 2), f32), (1, 1, 1, 1)))

# Out-of-range ints may raise OverflowError (Python's own word for it) as well as ValueError.
expected = (ValueError, TypeError, OverflowError, MemoryError)
unexpected = []
for name, fn in cases:
    try:
        fn()
    except expected:
        continue
    except BaseException as exc:
        unexpected.append(f"{name}: {type(exc).__name__}: {exc}")
    else:
        unexpected.append(f"{name}: no exception")
# Accepted, not errors: thread counts beyond any machine are capped.
accepted = {
    "convT num_threads 2**40": lambda: T(x, wt, num_threads=2**40),
    "conv3d num_threads 2**40": lambda: C3(x5, np.ones((3, 2, 1, 1, 1), f32), num_threads=2**40),
    "set_num_threads 2**40": lambda: spx.set_num_threads(2**40),
}
before = spx.get_num_threads()
for name, fn in accepted.items():
    cases.append((name, fn))
    try:
        fn()
    except BaseException as exc:
        unexpected.append(f"{name}: {type(exc).__name__}: {exc} (should be accepted)")
capped = spx.get_num_threads()
if not 1 <= capped < 2**40:
    unexpected.append(f"set_num_threads(2**40) left get_num_threads() == {capped}, not a capped count")
spx.set_num_threads(before)
# Still alive and computing correctly after all of that.
y = spx.conv_transpose2d(x, wt, stride=2)
assert y.shape == (1, 3, 9, 9) and float(y.max()) == 8.0, y.max()
print(json.dumps({"total": len(cases), "raised": len(cases) - len(unexpected), "unexpected": unexpected}))
'''


def test_bad_inputs_raise_in_a_child_process() -> None:
    proc = run_child(BAD_INPUTS_SCRIPT, timeout=120)
    assert proc.returncode == 0, f"child died with {proc.returncode}:\n{proc.stdout}\n{proc.stderr[-4000:]}"
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert not report["unexpected"], "\n".join(report["unexpected"])
    assert report["raised"] == report["total"] >= 180, report


HUGE_THREADS_SCRIPT = r'''
import numpy as np, subpixel_ext as spx
x = np.ones((1, 8, 64, 64), np.float32); w = np.ones((8, 8, 3, 3), np.float32)
for n in (100_000, 2**31 - 1):
    try:
        y = spx.conv2d(x, w, num_threads=n)
        assert float(y.min()) == 72.0
    except (ValueError, MemoryError):
        pass
print("ok")
'''


def test_absurd_thread_counts_do_not_crash() -> None:
    # Was a crash (SIGSEGV at 100000, libgomp "Out of memory" exit at 2**31-1): run in a child.
    proc = run_child(HUGE_THREADS_SCRIPT, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", (proc.returncode, proc.stderr[-2000:])


HUGE_STRIDE_SCRIPT = r'''
import json, sys, time
import numpy as np, subpixel_ext as spx
from subpixel_ext import reference as ref
x = np.full((1, 1, 1, 1), 2.0); w = np.arange(9.0).reshape(1, 1, 3, 3)
report = {}
for stride in (2**40, (2**62, 1), (1, 2**62), (30_000, 30_000), (1, 10**8)):
    expected = ref.conv_transpose2d(x, w, stride=stride)[0, 0]
    for layout in ("NCHW", "NHWC"):
        for method in ("polyphase", "direct"):
            t = time.perf_counter()
            try:
                y = spx.conv_transpose2d(x, w, stride=stride, layout=layout, method=method)
                seconds = time.perf_counter() - t
                ok = bool(np.array_equal(y.reshape(3, 3), expected))
            except Exception as exc:
                seconds, ok = time.perf_counter() - t, f"{type(exc).__name__}: {exc}"
            report[f"{stride} {layout} {method}"] = [ok, round(seconds, 3)]
            print(json.dumps(report), flush=True)
'''


def test_huge_stride_on_a_tiny_input_is_valid_and_fast() -> None:
    # Valid calls (the output is the kernel times x): they must be exact and take no time.
    # Were bugs: polyphase looped and allocated per phase (stride 2**40: MemoryError, (2**62, 1):
    # ValueError), then cost time linear in stride_w (stride (1, 2**62): a hang).
    try:
        proc = run_child(HUGE_STRIDE_SCRIPT, timeout=10)
    except subprocess.TimeoutExpired as exc:
        done = (exc.stdout or b"").decode().strip().splitlines()
        pytest.fail(f"hang: no result within 10 s after {done[-1] if done else 'nothing'}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    slow_or_wrong = {k: v for k, v in report.items() if v[0] is not True or v[1] > 0.5}
    assert not slow_or_wrong, slow_or_wrong


# ============================================================================ Ctrl-C

CTRL_C_SCRIPT = r'''
import json, os, signal, threading, time
import numpy as np, subpixel_ext as spx
x = np.ones((4, 64, 96, 96), np.float32); w = np.ones((64, 64, 3, 3), np.float32)
layer = spx.Conv2d(w, padding=1)
expected = layer(x, num_threads=2)
t = time.perf_counter(); layer(x, num_threads=2); full = time.perf_counter() - t
x_before = x.copy()
report = {"full": full}

def interrupt_soon(delay):
    # The signal waits for `go`: it must not land before the main thread is inside its try.
    go = threading.Event()
    def fire():
        go.wait()
        time.sleep(delay)
        report["sent"] = time.perf_counter()
        os.kill(os.getpid(), signal.SIGINT)
    thread = threading.Thread(target=fire)
    thread.start()
    return thread, go

thread, go = interrupt_soon(full * 0.2)
try:
    go.set()
    for _ in range(20):
        layer(x, num_threads=2)
    report["outcome"] = "finished"
except KeyboardInterrupt:
    report["outcome"] = "KeyboardInterrupt"
    report["after_signal"] = time.perf_counter() - report["sent"]
thread.join()
report["inputs_intact"] = bool(np.array_equal(x, x_before))
report["next_call_exact"] = bool(np.array_equal(layer(x, num_threads=2), expected))
# A Python handler that does not raise: the call must run to completion, never stop early.
caught = []
signal.signal(signal.SIGINT, lambda *args: caught.append(1))
thread, go = interrupt_soon(full * 0.2)
go.set()
y = spx.conv2d(x, w, padding=1, num_threads=2)
thread.join()
report["custom_handler_exact"] = bool(np.array_equal(y, expected))
print(json.dumps(report))
'''


@pytest.mark.skipif(not hasattr(signal, "SIGINT") or sys.platform == "win32", reason="needs POSIX signals")
def test_ctrl_c_interrupts_a_long_call() -> None:
    # Was: KeyboardInterrupt only after the native call returned.
    proc = run_child(CTRL_C_SCRIPT, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout)
    assert report["outcome"] == "KeyboardInterrupt", report
    # Stopped long before the call (and the 19 after it) would have finished.
    assert report["after_signal"] < 0.5 * report["full"] + 0.1, report
    assert report["inputs_intact"] and report["next_call_exact"] and report["custom_handler_exact"], report
