"""subpixel_ext.dask against the in-memory functions: random geometries x random chunkings, the
graph's shape, Zarr in and out, a LocalCluster of worker processes.
"""

from __future__ import annotations

import pickle
from typing import Any, Callable, Dict, Optional, Sequence, Tuple

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import subpixel_ext as spx

da = pytest.importorskip("dask.array", reason="needs the [dask] extra: dask[array]")
dask = pytest.importorskip("dask")
sxd = pytest.importorskip("subpixel_ext.dask")

from conftest import TOLERANCE, assert_close  # noqa: E402

RANKS = [1, 2, 3]
LAYOUTS = {1: ("NCL", "NLC"), 2: ("NCHW", "NHWC"), 3: ("NCDHW", "NDHWC")}
EXAMPLES = min(50, settings().max_examples)


# ----------------------------------------------------------------------------- strategies


@st.composite
def chunking(draw: st.DrawFn, size: int) -> Tuple[int, ...]:
    """One chunk, all chunks of 1 (smaller than any halo), or a random uneven split."""
    kind = draw(st.sampled_from(["one", "ones", "random"]))
    if kind == "one" or size == 0:
        return (size,)
    if kind == "ones":
        return (1,) * size
    cuts = sorted(draw(st.sets(st.integers(1, size - 1), max_size=size - 1))) if size > 1 else []
    edges = [0, *cuts, size]
    return tuple(b - a for a, b in zip(edges, edges[1:]))


@st.composite
def padding_arg(draw: st.DrawFn, rank: int, most: int, words: bool = True) -> Any:
    kinds = ["int", "per_axis", "pairs"] + (["same", "valid"] if words else [])
    kind = draw(st.sampled_from(kinds))
    amount = st.integers(0, most)
    if kind == "int":
        return draw(amount)
    if kind == "per_axis":
        return tuple(draw(amount) for _ in range(rank))
    if kind == "pairs":
        return tuple((draw(amount), draw(amount)) for _ in range(rank))
    return kind


@st.composite
def problem(draw: st.DrawFn, rank: int, transposed: bool, factor: bool = False) -> Dict[str, Any]:
    """Random input, weight, bias, arguments and a chunking of the input."""
    groups = draw(st.integers(1, 2))
    c_in, c_out = groups * draw(st.integers(1, 3)), groups * draw(st.integers(1, 3))
    layout = draw(st.sampled_from(LAYOUTS[rank]))
    batch = draw(st.sampled_from([None, 1, 2, 3]))
    spatial = tuple(draw(st.integers(1, 11)) for _ in range(rank))
    kernel = tuple(draw(st.integers(1, 5)) for _ in range(rank))
    stride = tuple(draw(st.integers(1, 4)) for _ in range(rank))
    dilation = tuple(draw(st.integers(1, 3)) for _ in range(rank))
    args: Dict[str, Any] = dict(
        stride=stride, dilation=dilation, groups=groups, layout=layout,
        padding=draw(padding_arg(rank, 6)),
    )
    r = tuple(draw(st.integers(1, 3)) for _ in range(rank)) if factor else None
    if transposed:
        weight_shape = (c_in, c_out // groups) + kernel
        args["method"] = draw(st.sampled_from(["direct", "polyphase"]))
        if args["padding"] != "same" and draw(st.booleans()):
            args["output_padding"] = tuple(
                draw(st.integers(0, max(s, d) - 1)) for s, d in zip(stride, dilation)
            )
    else:
        weight_shape = (c_out * (int(np.prod(r)) if r else 1), c_in // groups) + kernel
        if r:
            args.update(upscale_factor=r, mode=draw(st.sampled_from(["CRD", "DCR"])))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    channels_last = layout == LAYOUTS[rank][1]
    x_shape = spatial + (c_in,) if channels_last else (c_in,) + spatial
    if batch is not None:
        x_shape = (batch,) + x_shape
    x = rng.standard_normal(x_shape).astype(dtype)
    weight = rng.standard_normal(weight_shape).astype(dtype)
    bias = rng.standard_normal(weight_shape[0] if not transposed else c_out).astype(dtype)
    channel_axis = x.ndim - 1 if channels_last else x.ndim - rank - 1
    chunks = tuple(
        (n,) if axis == channel_axis else draw(chunking(n)) for axis, n in enumerate(x.shape)
    )
    with_bias = draw(st.booleans())
    return dict(x=x, weight=weight, bias=bias if with_bias else None, args=args, chunks=chunks)


# ----------------------------------------------------------------------------- comparisons


def check(lazy_fn: Callable[..., Any], memory_fn: Callable[..., np.ndarray], p: Dict[str, Any]) -> None:
    """The lazy result equals the in-memory one, up to the rounding of the summation order;
    invalid arguments fail in both, when the graph is built."""
    x, weight, bias, args = p["x"], p["weight"], p["bias"], p["args"]
    try:
        expected = memory_fn(x, weight, bias=bias, **args)
    except ValueError:
        with pytest.raises(ValueError):
            lazy_fn(da.from_array(x, chunks=p["chunks"]), weight, bias=bias, **args)
        return
    assume(expected.size <= 20000)
    lazy = lazy_fn(da.from_array(x, chunks=p["chunks"]), weight, bias=bias, **args)
    assert lazy.shape == expected.shape and lazy.dtype == expected.dtype
    assert all(c > 0 for sizes in lazy.chunks for c in sizes) or expected.size == 0
    actual = lazy.compute(scheduler="threads")
    absolute = [None if a is None else np.abs(a) for a in (x, weight, bias)]
    scale = memory_fn(absolute[0], absolute[1], bias=absolute[2], **args)
    what = f"{args} chunks={p['chunks']}"
    assert_close(actual, expected, expected.dtype, scale, what=what)
    if same_reduction_order(p, lazy):
        assert np.array_equal(actual, expected), f"{what}: not bit-identical"


def same_reduction_order(p: Dict[str, Any], lazy: Any) -> bool:
    """Whether every chunk's native call is guaranteed to sum each output in the whole call's
    order, i.e. picks the same microkernel family. The family is chosen by a cost model from
    the output width (so the innermost spatial axis must be one chunk), the layout, and, for
    channels first, whether a channel's output is contiguous, which it is when it has one pixel
    (so a chunk's convolution grid must have more than one pixel unless the whole's has one).
    Polyphase is excluded: its per-phase sizes and the scatter path for tiny problems also
    depend on the chunk."""
    args = p["args"]
    rank = len(p["weight"].shape) - 2
    channels_last = args["layout"].upper().endswith("C")
    first = lazy.ndim - rank - (1 if channels_last else 0)
    spatial = range(first, first + rank)
    factors = args.get("upscale_factor", (1,) * rank)
    grid = [[c // f for c in lazy.chunks[a]] for a, f in zip(spatial, factors)]
    one_pixel_chunks = np.prod([min(g) for g in grid]) == 1 < np.prod([sum(g) for g in grid])
    return (
        args.get("method") != "polyphase"
        and len(p["chunks"][first + rank - 1]) == 1
        and (channels_last or not one_pixel_chunks)
    )


@pytest.mark.parametrize("rank", RANKS)
@settings(max_examples=EXAMPLES)
@given(data=st.data())
def test_conv_transpose_matches_in_memory(rank: int, data: st.DataObject) -> None:
    name = f"conv_transpose{rank}d"
    check(getattr(sxd, name), getattr(spx, name), data.draw(problem(rank, transposed=True)))


@pytest.mark.parametrize("rank", RANKS)
@settings(max_examples=EXAMPLES)
@given(data=st.data())
def test_conv_matches_in_memory(rank: int, data: st.DataObject) -> None:
    name = f"conv{rank}d"
    check(getattr(sxd, name), getattr(spx, name), data.draw(problem(rank, transposed=False)))


@pytest.mark.parametrize("rank", RANKS)
@settings(max_examples=EXAMPLES)
@given(data=st.data())
def test_subpixel_conv_matches_in_memory(rank: int, data: st.DataObject) -> None:
    name = f"subpixel_conv{rank}d"
    check(getattr(sxd, name), getattr(spx, name), data.draw(problem(rank, transposed=False, factor=True)))


@pytest.mark.parametrize("function", ["conv_transpose2d", "conv2d", "subpixel_conv2d"])
@pytest.mark.parametrize("layout", LAYOUTS[2])
@pytest.mark.parametrize("chunks", [(1, -1, -1, -1), (2, -1, (1, 5, 1, 9, 8), -1), (3, -1, 1, -1)])
def test_bit_identical_for_batch_and_row_chunks(function: str, layout: str, chunks: Any) -> None:
    rng = np.random.default_rng(7)
    x = rng.standard_normal((3, 6, 24, 20)).astype(np.float32)
    if layout == "NHWC":
        x = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
        chunks = (chunks[0], chunks[2], chunks[3], chunks[1])
    args: Dict[str, Any] = dict(layout=layout, padding=1)
    if function == "conv_transpose2d":
        weight, args = rng.standard_normal((6, 5, 4, 4)), dict(args, stride=2, method="direct")
    elif function == "conv2d":
        weight, args = rng.standard_normal((5, 6, 3, 3)), dict(args, stride=(2, 1))
    else:
        weight, args = rng.standard_normal((20, 6, 3, 3)), dict(args, upscale_factor=2)
    weight = weight.astype(np.float32)
    bias = rng.standard_normal(5 if function == "conv_transpose2d" else weight.shape[0]).astype(np.float32)
    expected = getattr(spx, function)(x, weight, bias=bias, **args)
    actual = getattr(sxd, function)(da.from_array(x, chunks=chunks), weight, bias=bias, **args).compute()
    assert np.array_equal(actual, expected)


def test_bit_identical_polyphase_per_image() -> None:
    rng = np.random.default_rng(8)
    x = rng.standard_normal((4, 8, 30, 33)).astype(np.float32)
    weight = rng.standard_normal((8, 4, 5, 5)).astype(np.float32)
    args = dict(stride=2, padding=2, output_padding=1, method="polyphase")
    expected = spx.conv_transpose2d(x, weight, **args)
    actual = sxd.conv_transpose2d(da.from_array(x, chunks=(1, -1, -1, -1)), weight, **args).compute()
    assert np.array_equal(actual, expected)


# ----------------------------------------------------------------------------- chunk edges


def test_halo_spans_several_chunks_per_the_issue_formula() -> None:
    """Output chunk j reads input chunks [a - floor((d(K-1) - p)/s), b - 1 + ceil(p/s)] of its
    own input chunk [a, b), however many chunks that is."""
    kernel, stride, dilation, pad = 4, 2, 3, 2
    x = da.zeros((1, 1, 40, 1), chunks=(1, 1, 2, 1))  # reach d*(K-1) = 9 spans five chunks
    weight = np.ones((1, 1, kernel, 1))
    y = sxd.conv_transpose2d(x, weight, stride=(stride, 1), dilation=(dilation, 1), padding=(pad, 0))
    graph = dict(y.__dask_graph__())
    left, right = (dilation * (kernel - 1) - pad) // stride, -(-pad // stride)
    assert y.chunks[2][:-1] == (4,) * (len(y.chunks[2]) - 1)
    for j in range(len(y.chunks[2]) - 1):
        a, b = 2 * j, 2 * j + 2
        first, last = max(0, a - left), min(39, b - 1 + right)
        rows = {k[3] for k in dask.core.get_dependencies(graph, (y.name, 0, 0, j, 0)) if isinstance(k, tuple)}
        assert rows == set(range(first // 2, last // 2 + 1)), j
    expected = spx.conv_transpose2d(
        np.zeros((1, 1, 40, 1)), weight, stride=(stride, 1), dilation=(dilation, 1), padding=(pad, 0)
    )
    assert y.shape == expected.shape


def test_last_chunks_merge_when_the_end_crop_exceeds_them() -> None:
    """s=3, K=1, crop 5 at the end: the last input chunk (2 pixels -> 6 outputs) would end 1
    output short of nothing, so it merges into its neighbour instead of coming out empty."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((1, 2, 10, 3))
    weight = rng.standard_normal((2, 3, 1, 1))
    args = dict(stride=(3, 1), padding=((0, 5), (0, 0)))
    y = sxd.conv_transpose2d(da.from_array(x, chunks=(1, 2, (4, 4, 2), 3)), weight, **args)
    assert y.chunks[2] == (12, 11)
    assert np.array_equal(y.compute(), spx.conv_transpose2d(x, weight, **args))


def test_conv_chunks_that_see_only_padding() -> None:
    rng = np.random.default_rng(4)
    x = rng.standard_normal((1, 1, 3, 2))
    weight, bias = rng.standard_normal((2, 1, 1, 1)), np.array([0.5, -2.0])
    args = dict(padding=((7, 9), (0, 0)))
    y = sxd.conv2d(da.from_array(x, chunks=(1, 1, 1, 2)), weight, bias, **args)
    assert len(y.chunks[2]) >= 2 and min(y.chunks[2]) > 0
    assert np.array_equal(y.compute(), spx.conv2d(x, weight, bias, **args))


# ----------------------------------------------------------------------------- rearrangements


@settings(max_examples=min(15, settings().max_examples))
@given(data=st.data())
def test_rearrangements_match_in_memory(data: st.DataObject) -> None:
    layout = data.draw(st.sampled_from(LAYOUTS[2]))
    mode = data.draw(st.sampled_from(["CRD", "DCR"]))
    r = (data.draw(st.integers(1, 3)), data.draw(st.integers(1, 3)))
    h, w, c = data.draw(st.integers(1, 4)) * r[0], data.draw(st.integers(1, 4)) * r[1], 2 * r[0] * r[1]
    shape = (2, c, h, w) if layout == "NCHW" else (2, h, w, c)
    x = np.random.default_rng(data.draw(st.integers(0, 1000))).standard_normal(shape).astype(np.float32)
    channel_axis = 1 if layout == "NCHW" else 3
    chunks = tuple((n,) if a == channel_axis else data.draw(chunking(n)) for a, n in enumerate(shape))
    lazy = da.from_array(x, chunks=chunks)
    for name, factor in (("pixel_shuffle", r), ("pixel_unshuffle", r)):
        expected = getattr(spx, name)(x, factor, layout=layout, mode=mode)
        assert np.array_equal(getattr(sxd, name)(lazy, factor, layout=layout, mode=mode).compute(), expected)
    any_chunks = tuple(data.draw(chunking(n)) for n in shape)
    spread = sxd.zero_insert(da.from_array(x, chunks=any_chunks), r)
    assert np.array_equal(spread.compute(), spx.zero_insert(x, r))


# ----------------------------------------------------------------------------- graph and shipping


def kernel_and_blocks(y: Any) -> Tuple[Dict[Any, Any], Any, list]:
    graph = dict(y.__dask_graph__())
    heavy = [k for k, v in graph.items() if isinstance(v, sxd.ChunkKernel)]
    assert len(heavy) == 1
    blocks = [k for k in graph if isinstance(k, tuple) and k[0] == y.name]
    return graph, heavy[0], blocks


def test_weights_are_one_graph_dependency() -> None:
    weight = np.random.default_rng(5).standard_normal((16, 16, 5, 5)).astype(np.float32)  # 25 KiB
    x = da.ones((2, 16, 40, 40), chunks=(1, 16, 10, 10), dtype=np.float32)
    y = sxd.conv_transpose2d(x, weight, stride=2, padding=2)
    graph, kernel_key, blocks = kernel_and_blocks(y)
    assert len(blocks) == 2 * 4 * 4
    for key in blocks:
        assert kernel_key in dask.core.get_dependencies(graph, key)
        assert len(pickle.dumps(graph[key])) < weight.nbytes / 10, "weights embedded in a task"


def test_shipped_kernel_pickles() -> None:
    rng = np.random.default_rng(6)
    weight, bias = rng.standard_normal((3, 4, 3, 3)), rng.standard_normal(4)
    y = sxd.conv_transpose2d(da.ones((1, 3, 8, 8), chunks=4), weight, bias, stride=2, layout="NCHW")
    graph, kernel_key, _ = kernel_and_blocks(y)
    kernel = graph[kernel_key]
    clone = pickle.loads(pickle.dumps(kernel))
    slab, padding, extra = rng.standard_normal((1, 3, 5, 4)), ((1, 2), (0, 1)), (1, 0)
    assert np.array_equal(clone(slab, padding, extra), kernel(slab, padding, extra))
    assert dask.base.tokenize(clone) == dask.base.tokenize(kernel)
    # The chunks run through prepacked layers, one per distinct padding, kept across chunks
    # and never pickled with the kernel.
    layer = clone.bound(padding, extra)
    assert isinstance(layer, spx.ConvTranspose2d) and clone.bound(padding, extra) is layer
    assert clone.bound(((0, 0), (0, 0)), extra) is not layer
    assert len(pickle.dumps(clone)) < len(pickle.dumps(kernel)) + 200
    assert pickle.loads(pickle.dumps(clone))._layers == {}


# ----------------------------------------------------------------------------- errors and threads


def test_split_channel_axis_is_refused() -> None:
    weight = np.ones((4, 2, 3, 3))
    with pytest.raises(ValueError, match=r"channel axis \(axis 1\) of x must be a single chunk.*rechunk\(\{1: -1\}\)"):
        sxd.conv_transpose2d(da.ones((1, 4, 8, 8), chunks=(1, 2, 8, 8)), weight)
    with pytest.raises(ValueError, match=r"axis 3"):
        sxd.conv2d(da.ones((1, 8, 8, 4), chunks=(1, 8, 8, 3)), np.ones((2, 4, 1, 1)), layout="NHWC")
    with pytest.raises(ValueError, match="channel axis"):
        sxd.pixel_shuffle(da.ones((4, 2, 2), chunks=(2, 2, 2)), 2)


def test_bad_inputs_are_named() -> None:
    x = da.ones((1, 4, 8, 8), chunks=4)
    with pytest.raises(ValueError, match="unknown chunk sizes"):
        sxd.conv2d(x[x[:, 0, 0, 0] > 0], np.ones((2, 4, 1, 1)))
    with pytest.raises(TypeError, match="x must be a dask.array.Array"):
        sxd.conv2d(np.ones((1, 4, 8, 8)), np.ones((2, 4, 1, 1)))
    with pytest.raises(ValueError, match="layout must be one of"):
        sxd.conv2d(x.rechunk({1: -1}), np.ones((2, 4, 1, 1)), layout="HWCN")
    with pytest.raises(ValueError, match=r"weight .* x has 3 .*shape is \(1, 3, 8, 8\)"):
        sxd.conv2d(da.ones((1, 3, 8, 8)), np.ones((2, 4, 1, 1)))
    with pytest.raises(ValueError, match="output_padding must be smaller than max"):
        sxd.conv_transpose2d(da.ones((1, 4, 8, 8)), np.ones((4, 1, 3, 3)), stride=2, output_padding=2)


@pytest.mark.parametrize("num_workers", [1, 2])
def test_threads_per_task_share_the_process_budget(num_workers: int) -> None:
    task = dask.delayed(sxd._threads_per_task)()
    with dask.config.set(num_workers=num_workers):
        assert task.compute(scheduler="threads") == max(1, spx.get_num_threads() // num_workers)


# ----------------------------------------------------------------------------- zarr, cluster


def upsample_via_zarr(tmp_path: Any) -> Tuple[np.ndarray, np.ndarray]:
    """x (in a Zarr store) -> conv_transpose2d -> another Zarr store; (stored, in-memory)."""
    zarr = pytest.importorskip("zarr", reason="needs the [dask] extra: zarr")
    rng = np.random.default_rng(9)
    x = rng.standard_normal((1, 3, 48, 40)).astype(np.float32)
    weight, bias = rng.standard_normal((3, 2, 4, 4)).astype(np.float32), np.float32([0.5, -1])
    source = zarr.create_array(str(tmp_path / "in.zarr"), shape=x.shape, chunks=(1, 3, 16, 16), dtype=x.dtype)
    source[...] = x
    y = sxd.conv_transpose2d(da.from_zarr(str(tmp_path / "in.zarr")), weight, bias, stride=2, padding=1)
    assert y.chunks[2] == (32, 32, 32) and y.chunks[3] == (32, 32, 16)
    y.to_zarr(str(tmp_path / "out.zarr"))
    stored = zarr.open_array(str(tmp_path / "out.zarr"), mode="r")[...]
    return stored, spx.conv_transpose2d(x, weight, bias, stride=2, padding=1)


def test_zarr_in_and_out_threaded(tmp_path: Any) -> None:
    with dask.config.set(scheduler="threads"):
        stored, expected = upsample_via_zarr(tmp_path)
    assert_close(stored, expected, np.float32)


def test_local_cluster_of_two_worker_processes(tmp_path: Any) -> None:
    distributed = pytest.importorskip("distributed", reason="needs the [dask] extra: distributed")
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster, distributed.Client(cluster) as client:
        stored, expected = upsample_via_zarr(tmp_path)
        # the nanny's OMP_NUM_THREADS=1 is the budget of a one-thread worker
        assert set(client.run(sxd._threads_per_task).values()) == {1}
    assert_close(stored, expected, np.float32)


def test_readme_example_runs_on_a_small_store(tmp_path: Any, monkeypatch: Any) -> None:
    """The README's "Arrays larger than memory" example, on a small slide.zarr made here."""
    import pathlib
    import re

    readme = pathlib.Path(__file__).resolve().parents[1] / "README.md"
    section = readme.read_text().split("## Arrays larger than memory", 1)[1].split("\n## ", 1)[0]
    (block,) = re.findall(r"```python\n(.*?)```", section, re.S)
    monkeypatch.chdir(tmp_path)
    image = np.random.default_rng(5).random((1, 1, 96, 80), dtype=np.float32)
    da.from_array(image, chunks=(1, 1, 32, 40)).to_zarr("slide.zarr")
    exec(compile(block, f"{readme} (Arrays larger than memory)", "exec"), {})
    result = da.from_zarr("slide_x2.zarr").compute()
    taps = np.array([0.25, 0.75, 0.75, 0.25], np.float32)
    expected = spx.conv_transpose2d(image, np.outer(taps, taps)[None, None], stride=2, padding=1)
    np.testing.assert_array_equal(result, expected)


@pytest.mark.parametrize("factor, layout, shape, chunks", [
    ((3,), None, (2, 6, 10), (1, 6, 4)),
    ((2,), "NLC", (1, 9, 4), (1, 4, 4)),
    ((2, 1, 2), "NCDHW", (1, 8, 3, 4, 5), (1, 8, 2, 3, 2)),
    ((1, 2, 2), "channels_last", (2, 3, 4, 5, 8), (1, 2, 3, 2, 8)),
])
def test_nd_rearrangements_match_in_memory(factor: Any, layout: Any, shape: Any, chunks: Any) -> None:
    x = np.random.default_rng(7).random(shape)
    lazy = da.from_array(x, chunks=chunks)
    y = sxd.pixel_shuffle(lazy, factor, layout=layout).compute()
    np.testing.assert_array_equal(y, spx.pixel_shuffle(x, factor, layout=layout))
    back = sxd.pixel_unshuffle(da.from_array(y, chunks=y.shape), factor, layout=layout).compute()
    np.testing.assert_array_equal(back, x)
    z = sxd.zero_insert(lazy, factor).compute()
    np.testing.assert_array_equal(z, spx.zero_insert(x, factor))
