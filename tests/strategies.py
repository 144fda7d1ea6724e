"""Hypothesis strategies of the test suite: random valid convolution calls, 2-D and any rank."""

from __future__ import annotations

from typing import Any, Dict, Tuple

import numpy as np
from hypothesis import strategies as st

from _helpers import F32, F64, LAYOUTS, resolve_padding

# ----------------------------------------------------------------------------- strategies


@st.composite
def padding_strategy(
    draw: st.DrawFn, full: Tuple[int, int], allow_words: bool = True
) -> Any:
    """A padding argument in one of its forms, cropping at most full-1 per axis in total."""
    forms = ["int", "pair", "nested"] + (["same", "valid"] if allow_words else [])
    form = draw(st.sampled_from(forms))
    if form in ("same", "valid"):
        return form
    if form == "int":
        p = draw(st.integers(0, max(0, (min(full) - 1) // 2)))
        return p
    if form == "pair":
        return (
            draw(st.integers(0, max(0, (full[0] - 1) // 2))),
            draw(st.integers(0, max(0, (full[1] - 1) // 2))),
        )
    pads = []
    for axis in range(2):
        top = draw(st.integers(0, full[axis] - 1))
        bottom = draw(st.integers(0, full[axis] - 1 - top))
        pads.append((top, bottom))
    return (pads[0], pads[1])


@st.composite
def conv_transpose_configs(draw: st.DrawFn, max_stride: int = 4) -> Dict[str, Any]:
    """A random valid conv_transpose2d call: shapes, geometry and call options."""
    groups = draw(st.integers(1, 3))
    c_in = groups * draw(st.integers(1, 3))
    c_out = groups * draw(st.integers(1, 3))
    h, w = draw(st.integers(1, 7)), draw(st.integers(1, 7))
    kh, kw = draw(st.integers(1, 7)), draw(st.integers(1, 7))
    sh, sw = draw(st.integers(1, max_stride)), draw(st.integers(1, max_stride))
    dh, dw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    full = ((h - 1) * sh + dh * (kh - 1) + 1, (w - 1) * sw + dw * (kw - 1) + 1)
    padding = draw(padding_strategy(full))
    kwargs: Dict[str, Any] = dict(
        stride=(sh, sw), padding=padding, groups=groups, dilation=(dh, dw)
    )
    if padding != "same":
        pads = ((0, 0), (0, 0)) if padding == "valid" else resolve_padding(padding)
        smallest = [full[i] - pads[i][0] - pads[i][1] for i in range(2)]
        extra = draw(st.sampled_from(["none", "output_padding", "output_size"]))
        if extra == "output_padding":
            kwargs["output_padding"] = (
                draw(st.integers(0, max(sh, dh) - 1)),
                draw(st.integers(0, max(sw, dw) - 1)),
            )
        elif extra == "output_size":
            kwargs["output_size"] = (
                draw(st.integers(smallest[0], smallest[0] + sh - 1)),
                draw(st.integers(smallest[1], smallest[1] + sw - 1)),
            )
    return dict(
        n=draw(st.sampled_from([None, 0, 1, 2])),
        c_in=c_in,
        c_out=c_out,
        hw=(h, w),
        kernel=(kh, kw),
        groups=groups,
        layout=draw(st.sampled_from(["NCHW", "NHWC"])),
        dtype=draw(st.sampled_from([F32, F64])),
        bias=draw(st.booleans()),
        kwargs=kwargs,
    )


@st.composite
def conv2d_configs(draw: st.DrawFn, max_stride: int = 3) -> Dict[str, Any]:
    """A random valid conv2d call (the padded input always holds the dilated kernel)."""
    groups = draw(st.integers(1, 3))
    c_in = groups * draw(st.integers(1, 3))
    c_out = groups * draw(st.integers(1, 3))
    kh, kw = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    sh, sw = draw(st.integers(1, max_stride)), draw(st.integers(1, max_stride))
    dh, dw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    keh, kew = dh * (kh - 1) + 1, dw * (kw - 1) + 1
    padding = draw(
        st.one_of(
            st.sampled_from(["same", "valid"]),
            st.integers(0, 3),
            st.tuples(st.integers(0, 3), st.integers(0, 3)),
            st.tuples(
                st.tuples(st.integers(0, 4), st.integers(0, 4)),
                st.tuples(st.integers(0, 4), st.integers(0, 4)),
            ),
        )
    )
    if padding == "same":
        lo = (1, 1)
    else:
        pads = ((0, 0), (0, 0)) if padding == "valid" else resolve_padding(padding)
        lo = (max(1, keh - sum(pads[0])), max(1, kew - sum(pads[1])))
    h = draw(st.integers(lo[0], lo[0] + 8))
    w = draw(st.integers(lo[1], lo[1] + 8))
    return dict(
        n=draw(st.sampled_from([None, 0, 1, 2])),
        c_in=c_in,
        c_out=c_out,
        hw=(h, w),
        kernel=(kh, kw),
        groups=groups,
        layout=draw(st.sampled_from(["NCHW", "NHWC"])),
        dtype=draw(st.sampled_from([F32, F64])),
        bias=draw(st.booleans()),
        kwargs=dict(stride=(sh, sw), padding=padding, dilation=(dh, dw), groups=groups),
    )



# ----------------------------------------------------------------------------- any rank


def _full_len(size: int, k: int, s: int, d: int) -> int:
    return (size - 1) * s + d * (k - 1) + 1


@st.composite
def nd_padding(draw: st.DrawFn, rank: int, full: Tuple[int, ...], allow_words: bool = True) -> Any:
    """A rank-`rank` padding in one of its forms (int, per-axis ints, per-axis pairs, words),
    cropping at most full-1 per axis in total (transposed) -- also a fine conv padding."""
    forms = ["int", "ints", "pairs"] + (["same", "valid"] if allow_words else [])
    form = draw(st.sampled_from(forms))
    if form in ("same", "valid"):
        return form
    if form == "int":
        return draw(st.integers(0, max(0, (min(full) - 1) // 2)))
    if form == "ints":
        return tuple(draw(st.integers(0, max(0, (f - 1) // 2))) for f in full)
    pads = []
    for f in full:
        lo = draw(st.integers(0, f - 1))
        pads.append((lo, draw(st.integers(0, f - 1 - lo))))
    return tuple(pads)


def nd_pairs(padding: Any, rank: int) -> Tuple[Tuple[int, int], ...]:
    """Explicit N-D padding forms -> per-axis (begin, end)."""
    if padding == "valid":
        return ((0, 0),) * rank
    if isinstance(padding, int):
        return ((padding, padding),) * rank
    return tuple(p if isinstance(p, tuple) else (p, p) for p in padding)


@st.composite
def nd_conv_transpose_configs(draw: st.DrawFn, rank: int, max_stride: int = 4) -> Dict[str, Any]:
    """A random valid conv_transpose{rank}d call: shapes, geometry and call options."""
    small = rank == 3
    groups = draw(st.integers(1, 2 if small else 3))
    c_in = groups * draw(st.integers(1, 2 if small else 3))
    c_out = groups * draw(st.integers(1, 2 if small else 3))
    spatial = tuple(draw(st.integers(1, 4 if small else 7)) for _ in range(rank))
    kernel = tuple(draw(st.integers(1, 4 if small else 7)) for _ in range(rank))
    stride = tuple(draw(st.integers(1, 3 if small else max_stride)) for _ in range(rank))
    dilation = tuple(draw(st.integers(1, 3)) for _ in range(rank))
    full = tuple(_full_len(*v) for v in zip(spatial, kernel, stride, dilation))
    padding = draw(nd_padding(rank, full))
    kwargs: Dict[str, Any] = dict(stride=stride, padding=padding, groups=groups, dilation=dilation)
    if padding != "same":
        pads = nd_pairs(padding, rank)
        smallest = [f - lo - hi for f, (lo, hi) in zip(full, pads)]
        extra = draw(st.sampled_from(["none", "output_padding", "output_size", "output_size_long"]))
        if extra == "output_padding":
            kwargs["output_padding"] = tuple(draw(st.integers(0, max(s, d) - 1)) for s, d in zip(stride, dilation))
        elif extra.startswith("output_size"):
            size = tuple(draw(st.integers(m, m + s - 1)) for m, s in zip(smallest, stride))
            # a longer sequence (like skip.shape) is read from its end
            kwargs["output_size"] = (7, c_out) + size if extra == "output_size_long" else size
    return dict(
        rank=rank, kind="conv_transpose",
        n=draw(st.sampled_from([None, 0, 1, 2])), c_in=c_in, c_out=c_out, spatial=spatial, kernel=kernel,
        groups=groups, channels_last=draw(st.booleans()), dtype=draw(st.sampled_from([F32, F64])),
        bias=draw(st.booleans()), kwargs=kwargs,
    )


@st.composite
def nd_conv_configs(draw: st.DrawFn, rank: int, subpixel: bool = False, max_stride: int = 3) -> Dict[str, Any]:
    """A random valid conv{rank}d (or subpixel_conv{rank}d) call; the padded input always
    holds the dilated kernel."""
    small = rank == 3
    groups = draw(st.integers(1, 2 if small else 3))
    c_in = groups * draw(st.integers(1, 2 if small else 3))
    c_out = groups * draw(st.integers(1, 2 if small else 3))
    kernel = tuple(draw(st.integers(1, 3 if small else 5)) for _ in range(rank))
    stride = tuple(draw(st.integers(1, max_stride)) for _ in range(rank))
    dilation = tuple(draw(st.integers(1, 2 if small else 3)) for _ in range(rank))
    padding = draw(st.one_of(
        st.sampled_from(["same", "valid"]), st.integers(0, 2),
        st.tuples(*[st.integers(0, 2)] * rank),
        st.tuples(*[st.tuples(st.integers(0, 3), st.integers(0, 3))] * rank),
    ))
    eff = [d * (k - 1) + 1 for k, d in zip(kernel, dilation)]
    if padding == "same":
        lo = [1] * rank
    else:
        lo = [max(1, e - sum(p)) for e, p in zip(eff, nd_pairs(padding, rank))]
    spatial = tuple(draw(st.integers(m, m + (3 if small else 7))) for m in lo)
    cfg: Dict[str, Any] = dict(
        rank=rank, kind="subpixel" if subpixel else "conv",
        n=draw(st.sampled_from([None, 0, 1, 2])), c_in=c_in, c_out=c_out, spatial=spatial, kernel=kernel,
        groups=groups, channels_last=draw(st.booleans()), dtype=draw(st.sampled_from([F32, F64])),
        bias=draw(st.booleans()), kwargs=dict(stride=stride, padding=padding, dilation=dilation, groups=groups),
    )
    if subpixel:
        factor = tuple(draw(st.integers(1, 2 if small else 3)) for _ in range(rank))
        # conv channels C*prod(r) must be a multiple of groups: C a multiple of groups
        cfg["factor"] = factor
        cfg["kwargs"]["upscale_factor"] = factor
        cfg["kwargs"]["mode"] = draw(st.sampled_from(["CRD", "DCR"]))
    return cfg


def nd_inputs_for(rng: np.random.Generator, cfg: Dict[str, Any]) -> Tuple[Any, ...]:
    from _helpers import nd_conv_inputs

    return nd_conv_inputs(
        rng, n=cfg["n"], c_in=cfg["c_in"], c_out=cfg["c_out"], spatial=cfg["spatial"], kernel=cfg["kernel"],
        groups=cfg["groups"], kind=cfg["kind"], factor=cfg.get("factor", ()), channels_last=cfg["channels_last"],
        dtype=cfg["dtype"], bias=cfg["bias"],
    )


def layout_of(cfg: Dict[str, Any]) -> str:
    return LAYOUTS[cfg["rank"]][1 if cfg["channels_last"] else 0]
