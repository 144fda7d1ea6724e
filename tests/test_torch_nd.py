"""Against PyTorch (skipped when torch is not installed): the 1-D and 3-D functional ops, and
every layer's ``from_torch`` -- plain modules and nn.Sequential(conv, BatchNorm in eval mode
with non-trivial running statistics, each activation) -- in float64."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import subpixel_ext as spx

from _helpers import F64, assert_close, random_array

torch = pytest.importorskip("torch", reason="PyTorch is not installed")
nn = torch.nn
F = torch.nn.functional

ACTS = {None: None, "relu": nn.ReLU, "relu6": nn.ReLU6, "leaky_relu": lambda: nn.LeakyReLU(0.23), "tanh": nn.Tanh,
        "sigmoid": nn.Sigmoid}


def _t(a: np.ndarray) -> Any:
    return torch.from_numpy(np.ascontiguousarray(a))


CASES_T = [  # (rank, in spatial, kernel, stride, padding, output_padding, dilation, groups)
    (1, (7,), (5,), (2,), (1,), (1,), (1,), 1),
    (1, (9,), (2,), (3,), (0,), (2,), (1,), 2),
    (1, (40,), (4,), (4,), (2,), (0,), (2,), 1),
    (3, (3, 4, 2), (3, 2, 3), (2, 1, 3), (1, 0, 1), (1, 0, 2), (1, 1, 1), 1),
    (3, (4, 3, 3), (2, 3, 3), (2, 2, 2), (0, 1, 1), (0, 1, 1), (2, 1, 1), 2),
]


@pytest.mark.parametrize("case", CASES_T, ids=str)
@pytest.mark.parametrize("method", ["direct", "polyphase"])
def test_conv_transpose_1d_3d_match_torch(case: Any, method: str) -> None:
    rank, spatial, k, s, p, op, d, g = case
    rng = np.random.default_rng(len(spatial) + sum(k))
    x = random_array(rng, (2, 2 * g) + spatial)
    w = random_array(rng, (2 * g, 3) + k)
    b = random_array(rng, (3 * g,))
    expected = getattr(F, f"conv_transpose{rank}d")(_t(x), _t(w), _t(b), s, p, op, g, d).numpy()
    y = getattr(spx, f"conv_transpose{rank}d")(x, w, b, s, p, op, g, d, method=method)
    assert_close(y, expected, F64)


CASES_C = [  # (rank, in spatial, kernel, stride, padding, dilation, groups)
    (1, (20,), (5,), (2,), (2,), (1,), 1),
    (1, (11,), (3,), (1,), "same", (3,), 2),
    (3, (5, 6, 4), (3, 3, 2), (2, 1, 1), (1, 1, 0), (1, 1, 2), 1),
    (3, (4, 5, 6), (2, 3, 3), (1, 1, 1), "same", (1, 2, 1), 2),
]


@pytest.mark.parametrize("case", CASES_C, ids=str)
def test_conv_1d_3d_match_torch(case: Any) -> None:
    rank, spatial, k, s, p, d, g = case
    rng = np.random.default_rng(sum(spatial))
    x = random_array(rng, (2, 2 * g) + spatial)
    w = random_array(rng, (3 * g, 2) + k)
    b = random_array(rng, (3 * g,))
    expected = getattr(F, f"conv{rank}d")(_t(x), _t(w), _t(b), s, p, d, g).numpy()
    assert_close(getattr(spx, f"conv{rank}d")(x, w, b, s, p, d, g), expected, F64)


def _module(kind: str, rank: int, batchnorm: bool, activation: Any) -> Any:
    if kind == "conv_transpose":
        conv = getattr(nn, f"ConvTranspose{rank}d")(4, 6, 3, stride=2, padding=1, output_padding=1, groups=2,
                                                     dilation=1)
    else:
        conv = getattr(nn, f"Conv{rank}d")(4, 6, 3, stride=1, padding=1, groups=2)
    parts = [conv]
    if batchnorm:
        bn = getattr(nn, f"BatchNorm{rank}d")(6, eps=1e-3)
        with torch.no_grad():  # non-trivial running statistics and affine parameters
            bn.running_mean.uniform_(-1, 1)
            bn.running_var.uniform_(0.2, 3)
            bn.weight.uniform_(-2, 2)
            bn.bias.uniform_(-1, 1)
        parts.append(bn)
    if activation is not None:
        parts.append(ACTS[activation]())
    module = parts[0] if len(parts) == 1 else nn.Sequential(*parts)
    return module.double().eval()


@pytest.mark.parametrize("activation", list(ACTS))
@pytest.mark.parametrize("batchnorm", [False, True], ids=["plain", "bn"])
@pytest.mark.parametrize("kind", ["conv_transpose", "conv"])
@pytest.mark.parametrize("rank", [1, 2, 3])
def test_from_torch_matches_the_module(rank: int, kind: str, batchnorm: bool, activation: Any) -> None:
    torch.manual_seed(rank * 7 + len(kind))
    module = _module(kind, rank, batchnorm, activation)
    cls = getattr(spx, ("ConvTranspose" if kind == "conv_transpose" else "Conv") + f"{rank}d")
    layer = cls.from_torch(module)
    assert layer.activation == activation
    x = random_array(np.random.default_rng(rank), (2, 4) + (5, 4, 3)[:rank]) * 3
    with torch.no_grad():
        expected = module(_t(x)).numpy()
    assert_close(layer(x), expected, F64, scale=np.abs(expected).max() * 10)
    if kind == "conv_transpose":  # output_size through the layer, as nn.ConvTranspose's forward
        size = tuple(v * 2 for v in (5, 4, 3)[:rank])
        with torch.no_grad():
            conv = module[0] if isinstance(module, nn.Sequential) else module
            ref_conv = conv(_t(x), output_size=size).numpy()
        plain = cls.from_torch(conv)
        assert_close(plain(x, output_size=size), ref_conv, F64)
    # channels last: the same values, moved
    last = cls.from_torch(module, layout="channels_last")
    y_last = last(np.ascontiguousarray(np.moveaxis(x, 1, -1)))
    assert_close(np.ascontiguousarray(np.moveaxis(y_last, -1, 1)), expected, F64, scale=np.abs(expected).max() * 10)


@pytest.mark.parametrize("activation", list(ACTS))
def test_subpixel_from_torch_matches_the_module(activation: Any) -> None:
    torch.manual_seed(5)
    parts = [nn.Conv2d(3, 2 * 9, 3, padding=1)] + ([ACTS[activation]()] if activation else []) + [nn.PixelShuffle(3)]
    module = nn.Sequential(*parts).double().eval()
    layer = spx.SubPixelConv2d.from_torch(module)
    assert layer.upscale_factor == (3, 3) and layer.activation == activation
    x = random_array(np.random.default_rng(1), (2, 3, 5, 4)) * 3
    with torch.no_grad():
        expected = module(_t(x)).numpy()
    assert_close(layer(x), expected, F64)


def test_from_torch_rejects_training_batchnorm_and_unknown_modules() -> None:
    conv = nn.Conv1d(2, 3, 3)
    with pytest.raises(ValueError, match="eval"):
        spx.Conv1d.from_torch(nn.Sequential(conv, nn.BatchNorm1d(3)).train())
    with pytest.raises(ValueError, match="unsupported"):
        spx.Conv1d.from_torch(nn.Sequential(conv, nn.GELU()))
    with pytest.raises(TypeError):
        spx.Conv2d.from_torch(conv)
