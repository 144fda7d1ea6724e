"""Hypothesis on the N-D ops: random valid conv_transpose / conv / subpixel_conv calls of every
rank (rank-generic strategies in strategies.py) against the float64 oracle, on random methods
and thread counts; the layer built from the same arguments gives bit-identical results."""

from __future__ import annotations

from typing import Any, Dict

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import subpixel_ext as spx
from subpixel_ext import reference as ref

from _helpers import assert_close, oracle
from strategies import layout_of, nd_conv_configs, nd_conv_transpose_configs, nd_inputs_for

# A quarter of the profile's examples per test (9 tests: 3 ops x 3 ranks): 50 in CI, 10 in dev.
ND_SETTINGS = settings(
    max_examples=max(10, settings.default.max_examples // 4),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

LAYERS = {"conv_transpose": "ConvTranspose", "conv": "Conv", "subpixel": "SubPixelConv"}


def _run(cfg: Dict[str, Any], seed: int, native_kw: Dict[str, Any]) -> None:
    rank, kind = cfg["rank"], cfg["kind"]
    x, w, b = nd_inputs_for(np.random.default_rng(seed), cfg)
    kwargs = dict(cfg["kwargs"], layout=layout_of(cfg))
    output_size = kwargs.pop("output_size", None)
    name = {"conv_transpose": "conv_transpose", "conv": "conv", "subpixel": "subpixel_conv"}[kind]
    fn, ref_fn = getattr(spx, f"{name}{rank}d"), getattr(ref, f"{name}{rank}d")
    if kind == "subpixel":
        factor = kwargs.pop("upscale_factor")
        y = fn(x, w, factor, b, **kwargs, **native_kw)
        expected, scale = oracle(lambda x_, w_, b_, **kw: ref_fn(x_, w_, factor, b_, **kw), x, w, b, **kwargs)
        layer = getattr(spx, f"{LAYERS[kind]}{rank}d")(w, factor, b, **kwargs)
    else:
        size_kw = {} if output_size is None else {"output_size": output_size}
        y = fn(x, w, b, **kwargs, **size_kw, **native_kw)
        expected, scale = oracle(ref_fn, x, w, b, **kwargs, **size_kw)
        layer_kw = dict(kwargs, method=native_kw["method"]) if kind == "conv_transpose" else kwargs
        layer = getattr(spx, f"{LAYERS[kind]}{rank}d")(w, b, **layer_kw)
        native_kw = {"num_threads": native_kw["num_threads"], **size_kw}
    assert_close(y, expected, cfg["dtype"], scale, what=repr(kwargs))
    via_layer = layer(x, **{k: v for k, v in native_kw.items() if k != "method"})
    assert via_layer.dtype == y.dtype and np.array_equal(via_layer, y, equal_nan=True), "layer != functional"


@pytest.mark.parametrize("rank", [1, 2, 3])
@ND_SETTINGS
@given(data=st.data())
def test_property_conv_transpose_nd(rank: int, data: st.DataObject) -> None:
    cfg = data.draw(nd_conv_transpose_configs(rank))
    native_kw = dict(method=data.draw(st.sampled_from(["auto", "direct", "polyphase"])),
                     num_threads=data.draw(st.sampled_from([None, 1, 2])))
    _run(cfg, data.draw(st.integers(0, 2**32 - 1)), native_kw)


@pytest.mark.parametrize("rank", [1, 2, 3])
@ND_SETTINGS
@given(data=st.data())
def test_property_conv_nd(rank: int, data: st.DataObject) -> None:
    cfg = data.draw(nd_conv_configs(rank))
    _run(cfg, data.draw(st.integers(0, 2**32 - 1)), dict(num_threads=data.draw(st.sampled_from([None, 1, 2]))))


@pytest.mark.parametrize("rank", [1, 2, 3])
@ND_SETTINGS
@given(data=st.data())
def test_property_subpixel_conv_nd(rank: int, data: st.DataObject) -> None:
    cfg = data.draw(nd_conv_configs(rank, subpixel=True))
    _run(cfg, data.draw(st.integers(0, 2**32 - 1)), dict(num_threads=data.draw(st.sampled_from([None, 1, 2]))))
