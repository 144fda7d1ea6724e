"""Geometry at the edges of int64: stride, dilation, padding and output_padding near 2**31,
2**62, 2**63 and 2**64 on tiny inputs. Every call either raises a clear Python error (naming
the parameter, or MemoryError for a result that cannot be allocated) or returns exactly the
definition's result, computed here with Python integers over the few output pixels. Cheap
enough to run under ASan + UBSan (tools/sanitize.sh), which is where a signed overflow in the
native geometry would stop the run.
"""

from __future__ import annotations

import itertools
import math
import sys
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import subpixel_ext as spx
from subpixel_ext import _params

EDGES = [2**31 - 1, 2**31, 2**31 + 1, 2**32, 2**62 - 1, 2**62, 2**62 + 1, 3 * 2**61, 2**63 - 2, 2**63 - 1,
         2**63, 2**64 - 1, 2**64]
EXTREME = st.sampled_from(EDGES) | st.integers(1, 4) | st.integers(2**60, 2**64)
MAX_CHECKED_OUTPUTS = 256  # larger (valid) results are allocated but not compared

# ----------------------------------------------------------------------------- the definition


def _axis_taps_conv(o: int, k: int, s: int, d: int, lo: int, size: int) -> List[Tuple[int, int]]:
    """(kernel index, input index) pairs read by correlation output o on one axis."""
    return [(kk, o * s + kk * d - lo) for kk in range(k) if 0 <= o * s + kk * d - lo < size]


def _axis_taps_transposed(o: int, k: int, s: int, d: int, lo: int, size: int) -> List[Tuple[int, int]]:
    """(kernel index, input index) pairs with i*s + k*d = o + crop on one axis."""
    pairs = []
    for kk in range(k):
        num = o + lo - kk * d
        if num >= 0 and num % s == 0 and num // s < size:
            pairs.append((kk, num // s))
    return pairs


def definition(kind: str, x: np.ndarray, w: np.ndarray, b: Optional[np.ndarray], geo: _params.ConvGeometry,
               params: _params.ConvParams) -> np.ndarray:
    """y for (N, C, *spatial) x, integer-valued, in exact float64 arithmetic."""
    rank = params.rank
    c_out = params.out_channels
    y = np.zeros((geo.n, c_out) + geo.out_spatial)
    taps_of = _axis_taps_transposed if kind == "conv_transpose" else _axis_taps_conv
    for o in itertools.product(*(range(v) for v in geo.out_spatial)):
        per_axis = [taps_of(o[a], params.kernel[a], params.stride[a], params.dilation[a], geo.pad_begin[a],
                            geo.in_spatial[a]) for a in range(rank)]
        for pairs in itertools.product(*per_axis):
            k = tuple(p[0] for p in pairs)
            i = tuple(p[1] for p in pairs)
            for co in range(c_out):
                if kind == "conv_transpose":
                    contribution = np.einsum("nc,c->n", x[(slice(None), slice(None)) + i], w[(slice(None), co) + k])
                else:
                    contribution = np.einsum("nc,c->n", x[(slice(None), slice(None)) + i], w[(co, slice(None)) + k])
                y[(slice(None), co) + o] += contribution
    if b is not None:
        y += b.reshape((1, -1) + (1,) * rank)
    return y


# ----------------------------------------------------------------------------- the calls


@st.composite
def extreme_calls(draw: st.DrawFn) -> Dict[str, Any]:
    kind = draw(st.sampled_from(["conv", "conv_transpose"]))
    rank = draw(st.integers(1, 2))
    size = tuple(draw(st.integers(1, 3)) for _ in range(rank))
    kernel = tuple(draw(st.integers(1, 3)) for _ in range(rank))
    stride = tuple(draw(EXTREME) for _ in range(rank))
    dilation = tuple(draw(EXTREME) for _ in range(rank))
    padding: List[Tuple[int, int]] = []
    for a in range(rank):
        if kind == "conv_transpose" and draw(st.booleans()):
            # Crop the full output to a few pixels: a valid call with extreme intermediates.
            full = (size[a] - 1) * stride[a] + dilation[a] * (kernel[a] - 1) + 1
            keep = draw(st.integers(1, 3))
            begin = draw(st.integers(0, max(0, full - keep)))
            padding.append((begin, max(0, full - keep - begin)))
        else:
            padding.append((draw(EXTREME | st.just(0)), draw(EXTREME | st.just(0))))
    output_padding = tuple(draw(st.sampled_from([0, 1, 2**62, 2**63 - 1])) for _ in range(rank))
    return dict(kind=kind, rank=rank, size=size, kernel=kernel, stride=stride, dilation=dilation,
                padding=tuple(padding), output_padding=output_padding, layout=draw(st.sampled_from([0, 1])),
                method=draw(st.sampled_from(["polyphase", "direct"])), bias=draw(st.booleans()),
                threads=draw(st.sampled_from([1, 2])))


def _arrays(cfg: Dict[str, Any]) -> Tuple[np.ndarray, np.ndarray, Optional[np.ndarray]]:
    rng = np.random.default_rng(len(str(cfg)))
    c_in, c_out = 2, 2
    x = rng.integers(-3, 4, size=(1, c_in) + cfg["size"]).astype(np.float64)
    w_shape = ((c_in, c_out) if cfg["kind"] == "conv_transpose" else (c_out, c_in)) + cfg["kernel"]
    w = rng.integers(-3, 4, size=w_shape).astype(np.float64)
    b = rng.integers(-3, 4, size=c_out).astype(np.float64) if cfg["bias"] else None
    return x, w, b


def _run(cfg: Dict[str, Any]) -> None:
    x, w, b = _arrays(cfg)
    rank, kind = cfg["rank"], cfg["kind"]
    layout = _params.LAYOUTS[rank][cfg["layout"]]
    kwargs: Dict[str, Any] = dict(stride=cfg["stride"], dilation=cfg["dilation"], padding=cfg["padding"],
                                  layout=layout, num_threads=cfg["threads"])
    if kind == "conv_transpose":
        kwargs.update(output_padding=cfg["output_padding"], method=cfg["method"])
    fn = getattr(spx, f"{kind}{rank}d")
    x_in = np.ascontiguousarray(np.moveaxis(x, 1, -1)) if cfg["layout"] else x
    try:
        params = _params.conv_params(kind, w, b, rank=rank, **{k: v for k, v in kwargs.items()
                                                              if k not in ("num_threads", "method")})
        geo = _params.conv_geometry(params, x_in.shape)
    except (ValueError, OverflowError) as exc:
        expected_error: Optional[BaseException] = exc
    else:
        expected_error = None
    if expected_error is not None:
        with pytest.raises(type(expected_error)) as info:
            fn(x_in, w, b, **kwargs)
        message = str(info.value)
        assert any(name in message for name in ("stride", "dilation", "padding", "output_padding", "kernel", "output")), message
        return
    elements = math.prod(geo.out_shape)
    if elements * x.itemsize > sys.maxsize:
        with pytest.raises(MemoryError):
            fn(x_in, w, b, **kwargs)
        return
    if elements > MAX_CHECKED_OUTPUTS:
        return  # a valid call with a large result: the ordinary test suite covers those
    y = fn(x_in, w, b, **kwargs)
    expected = definition(kind, x, w, b, geo, params)
    if cfg["layout"]:
        expected = np.moveaxis(expected, 1, -1)
    assert np.array_equal(y, expected), (cfg, y, expected)


@settings(max_examples=400)
@given(extreme_calls())
def test_extreme_geometry_is_refused_or_exact(cfg: Dict[str, Any]) -> None:
    _run(cfg)


# ----------------------------------------------------------------------------- the cases


def test_conv_reading_past_int64_is_refused_not_a_crash() -> None:
    # Were a segfault (with the stride) and an out-of-bounds read returning [2.03e-43, 0, 0].
    x = np.ones((1, 1, 1, 3), np.float32)
    w = np.ones((1, 1, 1, 3), np.float32)
    for stride in ((1, 3), 1):
        with pytest.raises(OverflowError, match="dilation"):
            spx.conv2d(x, w, stride=stride, dilation=(1, 2**63 - 1), padding=(0, 2**63 - 1))


@pytest.mark.parametrize("method", ["direct", "polyphase"])
def test_transposed_with_huge_dilation_is_exact(method: str) -> None:
    # Were [3.] (direct, dilation 2**62) and [2.] (polyphase, stride 3*2**61): the answer is [1.].
    one = np.ones((1, 1, 1, 1))
    y = spx.conv_transpose2d(one, np.ones((1, 1, 1, 3)), dilation=(1, 2**61), padding=((0, 0), (2**61, 2**61)),
                             method=method)
    assert y.tolist() == [[[[1.0]]]]
    y = spx.conv_transpose2d(one, np.ones((1, 1, 3, 1)), stride=(3 * 2**61, 1), dilation=(2**61, 1),
                             padding=((2**62, 0), (0, 0)), method=method)
    assert y.tolist() == [[[[1.0]]]]
    with pytest.raises(OverflowError, match="dilation"):
        spx.conv_transpose2d(one, np.ones((1, 1, 1, 3)), dilation=(1, 2**62), padding=((0, 0), (0, 2**63)),
                             method=method)


@pytest.mark.parametrize("value", [2**63, 2**64, -(2**63) - 1, 10**30])
@pytest.mark.parametrize("name", ["stride", "dilation", "padding", "groups"])
def test_integers_beyond_int64_name_the_parameter(name: str, value: int) -> None:
    x, w = np.ones((1, 1, 2, 2)), np.ones((1, 1, 1, 1))
    with pytest.raises((ValueError, OverflowError), match=name):
        spx.conv2d(x, w, **{name: value})
    with pytest.raises((ValueError, OverflowError), match=name):
        spx.Conv2d(w, **{name: value})


@pytest.mark.parametrize("value", [2**31, 2**31 + 7, 2**63, 2**64, 10**30, np.int64(2**62), np.uint64(2**64 - 1)])
def test_thread_requests_of_any_size_are_capped(value: Any) -> None:
    # Were pybind11's signature dump (a C int parameter): capped as documented instead.
    x, w = np.ones((1, 1, 4, 4)), np.ones((1, 1, 3, 3))
    expected = spx.conv2d(x, w, num_threads=1)
    assert np.array_equal(spx.conv2d(x, w, num_threads=value), expected)
    assert np.array_equal(spx.Conv2d(w)(x, num_threads=value), expected)
    assert np.array_equal(spx.pixel_shuffle(np.ones((4, 2, 2)), 2, num_threads=value), np.ones((1, 4, 4)))
    before = spx.get_num_threads()
    try:
        spx.set_num_threads(value)
        assert 1 <= spx.get_num_threads() < 2**31
    finally:
        spx.set_num_threads(before)


@pytest.mark.parametrize("value", [0, -1, -(2**63), 2**64 * -1])
def test_thread_requests_below_one_are_refused(value: int) -> None:
    with pytest.raises(ValueError, match="num_threads"):
        spx.conv2d(np.ones((1, 1, 2, 2)), np.ones((1, 1, 1, 1)), num_threads=value)
    with pytest.raises(ValueError, match="num_threads"):
        spx.set_num_threads(value)
