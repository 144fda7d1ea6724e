"""The operations on Dask arrays: lazy, chunk by chunk, each chunk with the exact halo it needs.

Install with ``pip install "subpixel-ext[dask]"``. Every function takes a ``dask.array.Array`` and
the arguments of the in-memory function of the same name (without ``out=``) and returns a lazy
``dask.array.Array`` equal, bit for bit, to what the in-memory function returns on the whole
array.

Chunking
    Batch and spatial axes may be chunked in any way (uneven chunks, chunks smaller than the
    halo, one chunk). The channel axis must be one chunk: every output channel reads every input
    channel of its group, so a split channel axis would make each task read all of its chunks
    anyway. It is refused with a ``ValueError`` naming the fix (``x.rechunk({axis: -1})``) rather
    than rechunked silently, so the memory per task stays what the caller chose.

Graph
    The weight, bias and keyword arguments travel once, as one graph key holding a small
    picklable object; every output chunk is one task that depends on that key and on the input
    chunks its halo touches (possibly several per side) and runs the in-memory function on them
    with the padding rewritten for the chunk. Output chunks follow the input chunks: ``stride x``
    them for a transposed convolution, the chunk's first output for a convolution; a chunk that
    would come out empty is merged into its neighbour.

Threads
    ``num_threads=None`` gives each task ``max(1, get_num_threads() // T)`` OpenMP threads, where
    ``T`` is the number of tasks the process runs at once: the worker's ``nthreads`` on
    ``distributed``, else dask's ``num_workers`` setting or the CPU count (the threaded
    scheduler's pool size). A ``distributed`` nanny starts workers with ``OMP_NUM_THREADS=1``
    (its ``pre-spawn-environ``), so there every task runs one thread unless that is raised.
"""

from __future__ import annotations

import bisect
import itertools
import math
from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence, Tuple, Union

import numpy as np

try:
    import dask
    import dask.array as da
    from dask.base import tokenize
    from dask.highlevelgraph import HighLevelGraph
    from dask.system import CPU_COUNT
except ImportError as error:
    raise ImportError(
        f"subpixel_ext.dask needs the [dask] extra: pip install 'subpixel-ext[dask]' ({error})"
    ) from error

import subpixel_ext
from subpixel_ext import _params as _p

__all__ = [
    "conv1d",
    "conv2d",
    "conv3d",
    "conv_transpose1d",
    "conv_transpose2d",
    "conv_transpose3d",
    "pixel_shuffle",
    "pixel_unshuffle",
    "subpixel_conv1d",
    "subpixel_conv2d",
    "subpixel_conv3d",
    "zero_insert",
]

Pair = Tuple[int, int]
Chunks = Tuple[int, ...]

_LAYOUTS = {1: ("NCL", "NLC"), 2: ("NCHW", "NHWC"), 3: ("NCDHW", "NDHWC")}


# ----------------------------------------------------------------------------- arguments


def _num_threads(value: Any) -> Optional[int]:
    """None (each task takes its share, see the module docstring) or the parser's count."""
    return None if value is None else _p.num_threads(value)


def _threads_per_task() -> int:
    """The process's thread budget shared by the tasks it runs at once (module docstring)."""
    try:
        from distributed import get_worker

        concurrent = int(get_worker().state.nthreads)
    except (ImportError, ValueError):  # not inside a distributed worker
        concurrent = int(dask.config.get("num_workers", None) or CPU_COUNT)
    return max(1, subpixel_ext.get_num_threads() // concurrent)


def _input_array(x: Any, rank: int, layout: Any) -> Tuple[da.Array, int, bool]:
    """x as a dask array with known chunks; returns (x, channel axis, channels_last)."""
    if not isinstance(x, da.Array):
        raise TypeError(
            f"x must be a dask.array.Array (wrap a NumPy array with dask.array.from_array), "
            f"got {type(x).__name__}"
        )
    names = _LAYOUTS[rank] + ("channels_first", "channels_last")
    if not isinstance(layout, str) or layout.lower() not in [n.lower() for n in names]:
        raise ValueError(f"layout must be one of {list(names)}, got {layout!r}")
    channels_last = layout.lower() in (_LAYOUTS[rank][1].lower(), "channels_last")
    if x.ndim not in (rank + 1, rank + 2):
        raise ValueError(
            f"x must be {rank + 2}-D ({layout}) or unbatched {rank + 1}-D, got shape {x.shape}"
        )
    if any(math.isnan(c) for c in itertools.chain.from_iterable(x.chunks)):
        raise ValueError(
            "x has unknown chunk sizes (NaN); call x.compute_chunk_sizes() first"
        )
    channel_axis = x.ndim - 1 if channels_last else x.ndim - rank - 1
    _require_single_chunk(x, channel_axis, "channel")
    return x, channel_axis, channels_last


def _require_single_chunk(x: da.Array, axis: int, what: str) -> None:
    if len(x.chunks[axis]) != 1:
        raise ValueError(
            f"the {what} axis (axis {axis}) of x must be a single chunk, got chunks "
            f"{x.chunks[axis]}; rechunk it with x.rechunk({{{axis}: -1}})"
        )


# ----------------------------------------------------------------------------- per-axis geometry


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


@dataclass(frozen=True)
class _Piece:
    """How one output chunk along one spatial axis is computed from the input.

    The in-memory function runs on input[start:stop] with `padding` (and `output_padding` for a
    transposed convolution); of its local result, `length` outputs from `skip` on are kept.
    """

    start: int
    stop: int
    padding: Pair
    output_padding: int
    skip: int
    length: int


@dataclass(frozen=True)
class _TransposedAxis:
    """y[o] = sum over (i, k) with i*stride + k*dilation - pad_begin = o of x[i] * w[k]."""

    size: int
    kernel: int
    stride: int
    dilation: int
    pad_begin: int
    out_size: int

    def output_chunks(self, input_chunks: Chunks) -> Chunks:
        """`stride x` the input chunks; the last one takes the difference, merged when needed."""
        inner = [a * self.stride for a in itertools.accumulate(input_chunks[:-1])]
        return _chunks_from_boundaries(inner, self.out_size)

    def piece(self, begin: int, end: int) -> _Piece:
        s, pb, reach = self.stride, self.pad_begin, self.dilation * (self.kernel - 1)
        first_needed = _ceil_div(begin + pb - reach, s)
        # Never start right of the chunk's first output: its local crop would be negative.
        start = min(max(0, min(first_needed, (begin + pb) // s)), self.size - 1)
        stop = max(start + 1, min(self.size, (end - 1 + pb) // s + 1))
        crop_begin = begin + pb - start * s
        surplus = (stop - start - 1) * s + reach + 1 - crop_begin - (end - begin)
        # A negative surplus (outputs past the local full output) is output_padding, < stride.
        return _Piece(start, stop, (crop_begin, max(surplus, 0)), max(-surplus, 0), 0, end - begin)


@dataclass(frozen=True)
class _ConvAxis:
    """y[o] = sum over k of x[o*stride + k*dilation - pad_begin] * w[k]; `factor` for sub-pixel."""

    size: int
    kernel: int
    stride: int
    dilation: int
    pad_begin: int
    out_size: int  # before the sub-pixel shuffle
    factor: int = 1

    def output_chunks(self, input_chunks: Chunks) -> Chunks:
        """Each output goes to the chunk holding the centre of its window; empty chunks merge."""
        centre = (self.dilation * (self.kernel - 1)) // 2
        inner = [
            _ceil_div(a + self.pad_begin - centre, self.stride)
            for a in itertools.accumulate(input_chunks[:-1])
        ]
        chunks = _chunks_from_boundaries(inner, self.out_size)
        return tuple(c * self.factor for c in chunks)

    def piece(self, begin: int, end: int) -> _Piece:
        begin, end = begin // self.factor, end // self.factor
        s, k_eff = self.stride, self.dilation * (self.kernel - 1) + 1
        window_begin = begin * s - self.pad_begin
        window_end = (end - 1) * s - self.pad_begin + k_eff
        start, stop = max(0, window_begin), min(self.size, window_end)
        if start >= stop:  # the chunk sees padding only: compute next to the nearest pixel
            start, stop = (0, 1) if window_end <= 0 else (self.size - 1, self.size)
        skip = max(0, _ceil_div(window_begin - start, s))
        padding = (start - window_begin + skip * s, max(0, window_end - stop))
        r = self.factor
        return _Piece(start, stop, padding, 0, skip * r, (end - begin) * r)


def _chunks_from_boundaries(inner: Sequence[int], total: int) -> Chunks:
    """Chunk sizes between 0, the increasing `inner` boundaries inside (0, total), and total."""
    kept = sorted({b for b in inner if 0 < b < total})
    edges = [0] + kept + [total]
    return tuple(b - a for a, b in zip(edges, edges[1:]))


def _transposed_axis(
    size: int, kernel: int, stride: int, dilation: int, spec: Any, output_padding: int,
    output_size: Optional[int], axis: int,
) -> _TransposedAxis:
    k_eff = dilation * (kernel - 1) + 1
    full = (size - 1) * stride + k_eff
    if spec == "same":
        if output_padding:
            raise ValueError(f"output_padding must be 0 with padding='same', got {output_padding!r}")
        begin = max(k_eff - stride, 0) // 2
        out = size * stride
    else:
        begin, end = (0, 0) if spec == "valid" else spec
        smallest = full - begin - end
        if output_size is not None:
            if not smallest <= output_size < smallest + stride:
                raise ValueError(
                    f"output_size {output_size} is out of reach along spatial axis {axis}: it "
                    f"must be between {smallest} and {smallest + stride - 1}"
                )
            out = output_size
        elif output_padding >= max(stride, dilation):
            raise ValueError(
                f"output_padding must be smaller than max(stride, dilation) = "
                f"{max(stride, dilation)} along spatial axis {axis}, got {output_padding}"
            )
        else:
            out = smallest + output_padding
    if out <= 0:
        raise ValueError(f"the output along spatial axis {axis} would have size {out}")
    return _TransposedAxis(size, kernel, stride, dilation, begin, out)


def _conv_axis(
    size: int, kernel: int, stride: int, dilation: int, spec: Any, factor: int, axis: int
) -> _ConvAxis:
    k_eff = dilation * (kernel - 1) + 1
    if spec == "same":
        total = max((_ceil_div(size, stride) - 1) * stride + k_eff - size, 0)
        begin, end = total // 2, total - total // 2
    else:
        begin, end = (0, 0) if spec == "valid" else spec
    padded = size + begin + end
    if padded < k_eff:
        raise ValueError(
            f"kernel of effective size {k_eff} is larger than the padded input ({padded}) "
            f"along spatial axis {axis}"
        )
    return _ConvAxis(size, kernel, stride, dilation, begin, (padded - k_eff) // stride + 1, factor)


Axis = Union[_TransposedAxis, _ConvAxis]


# ----------------------------------------------------------------------------- shipped object


# The layer class of each in-memory function's family ("conv_transpose2d" -> ConvTranspose2d).
_LAYER_FAMILIES = {"conv_transpose": "ConvTranspose", "conv": "Conv", "subpixel_conv": "SubPixelConv"}


class ChunkKernel:
    """What every task of one operation shares: the weight, the bias and the keyword arguments,
    under one graph key (so the weights travel to each worker once). On the worker it builds the
    prepacked layer objects the chunks run through, one per distinct chunk padding (interior
    chunks share one; only the array's edges differ) and keeps them, so each worker validates
    and packs the weights once per padding, not once per chunk."""

    def __init__(
        self,
        function: str,
        weight: np.ndarray,
        bias: Optional[np.ndarray],
        arguments: dict[str, Any],
        num_threads: Optional[int],
    ) -> None:
        self.function = function
        self.weight = weight
        self.bias = bias
        self.arguments = arguments
        self.num_threads = num_threads
        self._layers: dict[Tuple[Any, ...], Any] = {}

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_layers"] = {}  # rebuilt where the tasks run
        return state

    def __dask_tokenize__(self) -> str:
        parts = (self.function, self.weight, self.bias, sorted(self.arguments.items()), self.num_threads)
        return str(tokenize(*parts))

    def __call__(
        self,
        x: np.ndarray,
        padding: Tuple[Pair, ...],
        output_padding: Optional[Tuple[int, ...]],
        num_threads: Optional[int] = None,
    ) -> np.ndarray:
        threads = num_threads or self.num_threads or _threads_per_task()
        return self.bound(padding, output_padding)(x, num_threads=threads)  # type: ignore[no-any-return]

    def bound(self, padding: Tuple[Pair, ...], output_padding: Optional[Tuple[int, ...]]) -> Any:
        """The prepacked layer with one chunk's padding (built on first use, then reused)."""
        key = (padding, output_padding)
        layer = self._layers.get(key)
        if layer is None:  # two threads may both build it: the same layer, one is kept
            family, rank = self.function[:-2], self.function[-2:]
            layer_class = getattr(subpixel_ext, _LAYER_FAMILIES[family] + rank)
            extra = {} if output_padding is None else {"output_padding": output_padding}
            layer = layer_class(self.weight, bias=self.bias, padding=padding, **extra, **self.arguments)
            self._layers[key] = layer
        return layer


@dataclass(frozen=True)
class _BlockPlan:
    """One output chunk: which slices of which input chunks, the local padding, the crop."""

    slices: Tuple[Tuple[slice, ...], ...]  # one per input chunk, C order over `grid`
    grid: Tuple[int, ...]  # input chunks touched per spatial axis
    spatial_axes: Tuple[int, ...]
    padding: Tuple[Pair, ...]
    output_padding: Optional[Tuple[int, ...]]
    crop: Tuple[slice, ...]
    shape: Tuple[int, ...]


def _compute_block(kernel: ChunkKernel, plan: _BlockPlan, blocks: Sequence[np.ndarray]) -> np.ndarray:
    pieces = [block[s] for block, s in zip(blocks, plan.slices)]
    slab = _concatenate_grid(pieces, plan.grid, plan.spatial_axes)
    result = kernel(slab, plan.padding, plan.output_padding)[plan.crop]
    if result.shape != plan.shape:
        raise RuntimeError(
            f"{kernel.function} gave a chunk of shape {result.shape}, the graph expects {plan.shape}"
        )
    return result


def _concatenate_grid(
    pieces: Sequence[np.ndarray], grid: Tuple[int, ...], axes: Tuple[int, ...]
) -> np.ndarray:
    if len(pieces) == 1:
        return pieces[0]
    step = len(pieces) // grid[0]
    rows = [
        _concatenate_grid(pieces[i * step : (i + 1) * step], grid[1:], axes[1:])
        for i in range(grid[0])
    ]
    return rows[0] if len(rows) == 1 else np.concatenate(rows, axis=axes[0])


# ----------------------------------------------------------------------------- graph


@dataclass(frozen=True)
class _OutputChunk:
    """One output chunk along one spatial axis and the input chunks (index, slice) it reads."""

    piece: _Piece
    sources: Tuple[Tuple[int, slice], ...]


def _axis_chunks(geometry: Axis, input_chunks: Chunks) -> list[_OutputChunk]:
    edges = [0, *itertools.accumulate(input_chunks)]
    result, begin = [], 0
    for length in geometry.output_chunks(input_chunks):
        piece = geometry.piece(begin, begin + length)
        begin += length
        first = bisect.bisect_right(edges, piece.start) - 1
        sources = []
        for block in range(first, len(input_chunks)):
            lo, hi = max(piece.start, edges[block]), min(piece.stop, edges[block + 1])
            if lo >= hi:
                break
            sources.append((block, slice(lo - edges[block], hi - edges[block])))
        result.append(_OutputChunk(piece, tuple(sources)))
    return result


def _lazy_convolution(
    kernel: ChunkKernel,
    x: da.Array,
    channel_axis: int,
    geometry: Sequence[Axis],
    out_channels: int,
    dtype: np.dtype,
) -> da.Array:
    rank = len(geometry)
    batched = x.ndim == rank + 2
    first_spatial = channel_axis + 1 if channel_axis < x.ndim - 1 else channel_axis - rank
    spatial_axes = tuple(range(first_spatial, first_spatial + rank))
    per_axis = [_axis_chunks(g, x.chunks[a]) for g, a in zip(geometry, spatial_axes)]
    chunks = list(x.chunks)
    chunks[channel_axis] = (out_channels,)
    for axis, outputs in zip(spatial_axes, per_axis):
        chunks[axis] = tuple(o.piece.length for o in outputs)
    kernel_key = f"{kernel.function}-kernel-{tokenize(kernel)}"
    name = f"{kernel.function}-{tokenize(kernel_key, x.name, x.chunks, geometry)}"
    layer: dict[Any, Any] = {kernel_key: kernel}
    transposed = isinstance(geometry[0], _TransposedAxis)
    for batch_block in range(len(x.chunks[0])) if batched else [0]:
        for combo in itertools.product(*(list(enumerate(outputs)) for outputs in per_axis)):
            index = [0] * x.ndim  # the channel axis is block 0
            if batched:
                index[0] = batch_block
            for axis, (position, _) in zip(spatial_axes, combo):
                index[axis] = position
            chosen = [output for _, output in combo]
            keys, plan = _block_plan(x, index, chosen, spatial_axes, chunks, transposed)
            layer[(name,) + tuple(index)] = (_compute_block, kernel_key, plan, keys)
    graph = HighLevelGraph.from_collections(name, layer, dependencies=[x])
    return da.Array(graph, name, tuple(chunks), meta=np.empty((0,) * x.ndim, dtype))


def _block_plan(
    x: da.Array,
    index: Sequence[int],
    combo: Sequence[_OutputChunk],
    spatial_axes: Tuple[int, ...],
    chunks: Sequence[Chunks],
    transposed: bool,
) -> Tuple[list[Any], _BlockPlan]:
    """The input keys one output chunk reads and how it is computed from them."""
    keys, slices = [], []
    for sources in itertools.product(*(c.sources for c in combo)):
        key_index, block_slices = list(index), [slice(None)] * x.ndim
        for axis, (block, within) in zip(spatial_axes, sources):
            key_index[axis], block_slices[axis] = block, within
        keys.append((x.name, *key_index))
        slices.append(tuple(block_slices))
    crop = [slice(None)] * x.ndim
    for axis, chunk in zip(spatial_axes, combo):
        crop[axis] = slice(chunk.piece.skip, chunk.piece.skip + chunk.piece.length)
    shape = tuple(c[i] for c, i in zip(chunks, index))
    plan = _BlockPlan(
        slices=tuple(slices),
        grid=tuple(len(c.sources) for c in combo),
        spatial_axes=spatial_axes,
        padding=tuple(c.piece.padding for c in combo),
        output_padding=tuple(c.piece.output_padding for c in combo) if transposed else None,
        crop=tuple(crop),
        shape=shape,
    )
    return keys, plan


# ----------------------------------------------------------------------------- convolutions


def _spatial_axes(x: da.Array, rank: int, channels_last: bool) -> Tuple[int, ...]:
    first = x.ndim - rank - 1 if channels_last else x.ndim - rank
    return tuple(range(first, first + rank))


def _weights(weight: Any, bias: Any, rank: int) -> Tuple[np.ndarray, Optional[np.ndarray]]:
    w = np.asarray(weight)
    if w.ndim != rank + 2:
        raise ValueError(f"weight must be {rank + 2}-D for a {rank}-D operation, got shape {w.shape}")
    return w, None if bias is None else np.asarray(bias)


def _probe(
    kernel: ChunkKernel,
    x: da.Array,
    spatial_axes: Tuple[int, ...],
    padding: Tuple[Pair, ...],
    output_padding: Optional[Tuple[int, ...]],
) -> np.ndarray:
    """Run the in-memory function on one pixel of x's shape: its checks of the weight, bias,
    groups, layout and mode run now instead of in every task, and it tells the dtype."""
    batched = x.ndim == len(spatial_axes) + 2
    shape = [
        1 if axis in spatial_axes or (batched and axis == 0) else n for axis, n in enumerate(x.shape)
    ]
    try:
        return kernel(np.zeros(shape, x.dtype), padding, output_padding, num_threads=1)
    except (TypeError, ValueError) as error:
        raise type(error)(f"{error} (checked on one pixel of x, whose shape is {x.shape})") from None


def _conv_transpose(
    rank: int, x: Any, weight: Any, bias: Any, stride: Any, padding: Any, output_padding: Any,
    groups: Any, dilation: Any, output_size: Any, layout: Any, method: Any, num_threads: Any,
) -> da.Array:
    x, channel_axis, channels_last = _input_array(x, rank, layout)
    w, b = _weights(weight, bias, rank)
    strides = _p.per_axis(stride, "stride", rank, 1)
    dilations = _p.per_axis(dilation, "dilation", rank, 1)
    extra = _p.per_axis(output_padding, "output_padding", rank, 0)
    spec = _p.padding_spec(padding, rank)
    if output_size is not None:
        if any(extra):
            raise ValueError(
                f"output_size and output_padding cannot both be given (output_padding={output_padding!r})"
            )
        if spec == "same":
            raise ValueError("output_size cannot be combined with padding='same'")
    targets = [None] * rank if output_size is None else _p.output_size_spec(output_size, rank)
    spatial_axes = _spatial_axes(x, rank, channels_last)
    geometry = [
        _transposed_axis(
            x.shape[a], w.shape[2 + j], strides[j], dilations[j],
            spec if isinstance(spec, str) else spec[j], extra[j], targets[j], j,
        )
        for j, a in enumerate(spatial_axes)
    ]
    arguments = dict(stride=strides, groups=groups, dilation=dilations, layout=layout, method=method)
    kernel = ChunkKernel(f"conv_transpose{rank}d", w, b, arguments, _num_threads(num_threads))
    sample = _probe(kernel, x, spatial_axes, ((0, 0),) * rank, (0,) * rank)
    return _lazy_convolution(
        kernel, x, channel_axis, geometry, sample.shape[channel_axis], sample.dtype
    )


def _conv(
    rank: int, x: Any, weight: Any, bias: Any, upscale_factor: Any, stride: Any, padding: Any,
    dilation: Any, groups: Any, layout: Any, mode: Any, num_threads: Any,
) -> da.Array:
    """conv{rank}d, or subpixel_conv{rank}d when upscale_factor is given."""
    x, channel_axis, channels_last = _input_array(x, rank, layout)
    w, b = _weights(weight, bias, rank)
    strides = _p.per_axis(stride, "stride", rank, 1)
    dilations = _p.per_axis(dilation, "dilation", rank, 1)
    spec = _p.padding_spec(padding, rank)
    subpixel = upscale_factor is not None
    factors = _p.per_axis(upscale_factor if subpixel else 1, "upscale_factor", rank, 1)
    spatial_axes = _spatial_axes(x, rank, channels_last)
    geometry = [
        _conv_axis(
            x.shape[a], w.shape[2 + j], strides[j], dilations[j],
            spec if isinstance(spec, str) else spec[j], factors[j], j,
        )
        for j, a in enumerate(spatial_axes)
    ]
    arguments: dict[str, Any] = dict(stride=strides, dilation=dilations, groups=groups, layout=layout)
    if subpixel:
        arguments.update(upscale_factor=factors, mode=mode)
    function = f"subpixel_conv{rank}d" if subpixel else f"conv{rank}d"
    kernel = ChunkKernel(function, w, b, arguments, _num_threads(num_threads))
    one_output = tuple((g.dilation * (g.kernel - 1), 0) for g in geometry)
    sample = _probe(kernel, x, spatial_axes, one_output, None)
    return _lazy_convolution(
        kernel, x, channel_axis, geometry, sample.shape[channel_axis], sample.dtype
    )


_CONV_TRANSPOSE_DOC = """Lazy ``subpixel_ext.conv_transpose{rank}d`` of a dask array (same arguments, no ``out``).

    Chunks of x along the batch and spatial axes may be anything; the channel axis must be one
    chunk. The result's spatial chunks are ``stride x`` x's, the last one longer or shorter by
    the geometry's difference (merged into its neighbour if that would leave it empty).
    """


def conv_transpose1d(
    x: Any, weight: Any, bias: Any = None, stride: Any = 1, padding: Any = 0,
    output_padding: Any = 0, groups: int = 1, dilation: Any = 1, *, output_size: Any = None,
    layout: str = "NCL", method: str = "auto", num_threads: Optional[int] = None,
) -> da.Array:
    return _conv_transpose(
        1, x, weight, bias, stride, padding, output_padding, groups, dilation, output_size,
        layout, method, num_threads,
    )


def conv_transpose2d(
    x: Any, weight: Any, bias: Any = None, stride: Any = 1, padding: Any = 0,
    output_padding: Any = 0, groups: int = 1, dilation: Any = 1, *, output_size: Any = None,
    layout: str = "NCHW", method: str = "auto", num_threads: Optional[int] = None,
) -> da.Array:
    return _conv_transpose(
        2, x, weight, bias, stride, padding, output_padding, groups, dilation, output_size,
        layout, method, num_threads,
    )


def conv_transpose3d(
    x: Any, weight: Any, bias: Any = None, stride: Any = 1, padding: Any = 0,
    output_padding: Any = 0, groups: int = 1, dilation: Any = 1, *, output_size: Any = None,
    layout: str = "NCDHW", method: str = "auto", num_threads: Optional[int] = None,
) -> da.Array:
    return _conv_transpose(
        3, x, weight, bias, stride, padding, output_padding, groups, dilation, output_size,
        layout, method, num_threads,
    )


_CONV_DOC = """Lazy ``subpixel_ext.conv{rank}d`` of a dask array (same arguments, no ``out``).

    Chunks of x along the batch and spatial axes may be anything; the channel axis must be one
    chunk. Each output goes to the chunk of x holding the centre of its window.
    """


def conv1d(
    x: Any, weight: Any, bias: Any = None, stride: Any = 1, padding: Any = 0, dilation: Any = 1,
    groups: int = 1, *, layout: str = "NCL", num_threads: Optional[int] = None,
) -> da.Array:
    return _conv(1, x, weight, bias, None, stride, padding, dilation, groups, layout, None, num_threads)


def conv2d(
    x: Any, weight: Any, bias: Any = None, stride: Any = 1, padding: Any = 0, dilation: Any = 1,
    groups: int = 1, *, layout: str = "NCHW", num_threads: Optional[int] = None,
) -> da.Array:
    return _conv(2, x, weight, bias, None, stride, padding, dilation, groups, layout, None, num_threads)


def conv3d(
    x: Any, weight: Any, bias: Any = None, stride: Any = 1, padding: Any = 0, dilation: Any = 1,
    groups: int = 1, *, layout: str = "NCDHW", num_threads: Optional[int] = None,
) -> da.Array:
    return _conv(3, x, weight, bias, None, stride, padding, dilation, groups, layout, None, num_threads)


_SUBPIXEL_DOC = """Lazy ``subpixel_ext.subpixel_conv{rank}d`` of a dask array (same arguments, no ``out``).

    Chunked like :func:`conv{rank}d`, then ``upscale_factor x`` along the spatial axes.
    """


def subpixel_conv1d(
    x: Any, weight: Any, upscale_factor: Any, bias: Any = None, stride: Any = 1, padding: Any = 0,
    dilation: Any = 1, groups: int = 1, *, layout: str = "NCL", mode: str = "CRD",
    num_threads: Optional[int] = None,
) -> da.Array:
    return _conv(
        1, x, weight, bias, upscale_factor, stride, padding, dilation, groups, layout, mode, num_threads
    )


def subpixel_conv2d(
    x: Any, weight: Any, upscale_factor: Any, bias: Any = None, stride: Any = 1, padding: Any = 0,
    dilation: Any = 1, groups: int = 1, *, layout: str = "NCHW", mode: str = "CRD",
    num_threads: Optional[int] = None,
) -> da.Array:
    return _conv(
        2, x, weight, bias, upscale_factor, stride, padding, dilation, groups, layout, mode, num_threads
    )


def subpixel_conv3d(
    x: Any, weight: Any, upscale_factor: Any, bias: Any = None, stride: Any = 1, padding: Any = 0,
    dilation: Any = 1, groups: int = 1, *, layout: str = "NCDHW", mode: str = "CRD",
    num_threads: Optional[int] = None,
) -> da.Array:
    return _conv(
        3, x, weight, bias, upscale_factor, stride, padding, dilation, groups, layout, mode, num_threads
    )


for _rank in (1, 2, 3):
    _names = (f"conv_transpose{_rank}d", f"conv{_rank}d", f"subpixel_conv{_rank}d")
    for _name, _doc in zip(_names, (_CONV_TRANSPOSE_DOC, _CONV_DOC, _SUBPIXEL_DOC)):
        globals()[_name].__doc__ = _doc.format(rank=_rank)


# ----------------------------------------------------------------------------- rearrangements


def _rearrange_block(block: np.ndarray, function: str, factor: Any, num_threads: Optional[int], **kwargs: Any) -> np.ndarray:
    call = getattr(subpixel_ext, function)
    return call(block, factor, num_threads=num_threads or _threads_per_task(), **kwargs)  # type: ignore[no-any-return]


def _shuffle(x: Any, factor: Any, layout: Any, mode: Any, num_threads: Any, inverse: bool) -> da.Array:
    name = "downscale_factor" if inverse else "upscale_factor"
    function = "pixel_unshuffle" if inverse else "pixel_shuffle"
    r = _p.trailing_factor(factor, name)
    rank = len(r)
    if not isinstance(x, da.Array) or x.ndim < rank + 1:
        raise TypeError(
            f"x must be a dask.array.Array with at least {rank + 1} dimensions, got {type(x).__name__} "
            f"of shape {getattr(x, 'shape', None)}"
        )
    channels_last = _p.parse_layout(layout, rank)
    channel_axis = x.ndim - 1 if channels_last else x.ndim - 1 - rank
    first_spatial = x.ndim - 1 - rank if channels_last else x.ndim - rank
    spatial = tuple(range(first_spatial, first_spatial + rank))
    _require_single_chunk(x, channel_axis, "channel")
    if inverse:
        for axis, f in zip(spatial, r):
            if x.shape[axis] % f:
                raise ValueError(f"spatial size {x.shape[axis]} (axis {axis}) is not divisible by {name}={factor!r}")
        x = x.rechunk({axis: _multiples_of(x.chunks[axis], f) for axis, f in zip(spatial, r)})
    sample_shape = [1] * x.ndim
    sample_shape[channel_axis] = x.shape[channel_axis]
    for axis, f in zip(spatial, r):
        sample_shape[axis] = f if inverse else 1
    sample = getattr(subpixel_ext, function)(
        np.zeros(sample_shape, x.dtype), r, layout=layout, mode=mode, num_threads=1
    )
    chunks = list(x.chunks)
    chunks[channel_axis] = (sample.shape[channel_axis],)
    for axis, f in zip(spatial, r):
        chunks[axis] = tuple(c // f if inverse else c * f for c in x.chunks[axis])
    return x.map_blocks(
        _rearrange_block, function=function, factor=r, num_threads=_num_threads(num_threads),
        layout=layout, mode=mode, chunks=tuple(chunks), dtype=sample.dtype,
        meta=np.empty((0,) * x.ndim, sample.dtype),
    )


def _multiples_of(chunks: Chunks, factor: int) -> Chunks:
    """The chunks with every boundary moved down to a multiple of `factor` (merging as needed)."""
    inner = [(b // factor) * factor for b in itertools.accumulate(chunks[:-1])]
    return _chunks_from_boundaries(inner, sum(chunks))


def pixel_shuffle(
    x: Any, upscale_factor: Any, *, layout: Optional[str] = None, mode: str = "CRD",
    num_threads: Optional[int] = None,
) -> da.Array:
    """Lazy ``subpixel_ext.pixel_shuffle``: chunk by chunk, spatial chunks ``upscale_factor x``.

    Any chunking of the leading and spatial axes; the channel axis must be one chunk.
    """
    return _shuffle(x, upscale_factor, layout, mode, num_threads, inverse=False)


def pixel_unshuffle(
    x: Any, downscale_factor: Any, *, layout: Optional[str] = None, mode: str = "CRD",
    num_threads: Optional[int] = None,
) -> da.Array:
    """Lazy ``subpixel_ext.pixel_unshuffle``. Spatial chunks that are not multiples of
    ``downscale_factor`` are first merged to the nearest multiple below their end."""
    return _shuffle(x, downscale_factor, layout, mode, num_threads, inverse=True)


def zero_insert(x: Any, stride: Any, *, num_threads: Optional[int] = None) -> da.Array:
    """Lazy ``subpixel_ext.zero_insert``: any chunking; the spread axes' chunks ``stride x``
    (an int stride spreads the last two axes, a tuple of k ints the last k)."""
    s = _p.trailing_factor(stride, "stride")
    if not isinstance(x, da.Array) or x.ndim < len(s):
        raise TypeError(
            f"x must be a dask.array.Array with at least {len(s)} dimensions, got {type(x).__name__} "
            f"of shape {getattr(x, 'shape', None)}"
        )
    sample = subpixel_ext.zero_insert(np.zeros((1,) * len(s), x.dtype), s)
    axes = range(x.ndim - len(s), x.ndim)
    chunks = x.chunks[: x.ndim - len(s)] + tuple(tuple(c * f for c in x.chunks[a]) for a, f in zip(axes, s))
    return x.map_blocks(
        _rearrange_block, function="zero_insert", factor=s, num_threads=_num_threads(num_threads),
        chunks=chunks, dtype=sample.dtype, meta=np.empty((0,) * x.ndim, sample.dtype),
    )
