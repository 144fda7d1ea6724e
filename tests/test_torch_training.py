"""subpixel_ext.torch: the custom ops (opcheck), their gradients (gradcheck in float64, PyTorch
autograd), the modules (torch's constructor, parameters, state_dict, output_size forms),
convert(), torch.compile(fullgraph=True) and a few optimizer steps against torch's modules."""

from __future__ import annotations

import copy
from typing import Any, Callable, Dict, List, Tuple

import pytest

torch = pytest.importorskip("torch", reason="subpixel_ext.torch needs the [torch] extra")
import torch.nn.functional as F  # noqa: E402

import subpixel_ext as spx  # noqa: E402
import subpixel_ext.torch as spt  # noqa: E402

F64 = torch.float64
OPS = torch.ops.subpixel_ext


def _randn(*shape: int, dtype: Any = F64, grad: bool = False) -> Any:
    return torch.randn(*shape, dtype=dtype, requires_grad=grad)


# (rank, transposed, x shape, weight shape, keyword arguments): odd geometry for every rank.
CASES: List[Tuple[int, bool, Tuple[int, ...], Tuple[int, ...], Dict[str, Any]]] = [
    (1, True, (2, 4, 7), (4, 3, 5), dict(stride=3, padding=1, output_padding=2, dilation=1)),
    (1, False, (2, 4, 11), (6, 2, 3), dict(stride=2, padding=2, dilation=2, groups=2)),
    (2, True, (2, 4, 5, 4), (4, 3, 3, 2), dict(stride=(2, 3), padding=(1, 0), groups=1, dilation=(1, 2))),
    (2, True, (1, 4, 3, 3), (4, 1, 1, 1), dict(stride=2, groups=2)),  # kernel < stride: empty phases
    (2, False, (2, 3, 6, 7), (4, 3, 3, 3), dict(stride=(2, 1), padding=1)),
    (3, True, (1, 2, 3, 2, 3), (2, 2, 2, 3, 2), dict(stride=2, padding=(0, 1, 0), output_padding=(1, 0, 1))),
    (3, False, (2, 2, 4, 3, 4), (2, 1, 2, 2, 3), dict(padding=1, groups=2)),
]


def _functions(rank: int, transposed: bool) -> Tuple[Callable[..., Any], Callable[..., Any]]:
    name = f"conv_transpose{rank}d" if transposed else f"conv{rank}d"
    return getattr(spt, name), getattr(F, name)


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0]}d-{'T' if c[1] else 'C'}-{c[4]}")
def test_gradcheck_float64(case: Any) -> None:
    rank, transposed, xs, ws, kwargs = case
    ours, _ = _functions(rank, transposed)
    c_out = ws[1] * kwargs.get("groups", 1) if transposed else ws[0]
    args = (_randn(*xs, grad=True), _randn(*ws, grad=True), _randn(c_out, grad=True))
    assert torch.autograd.gradcheck(lambda x, w, b: ours(x, w, b, **kwargs), args)


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0]}d-{'T' if c[1] else 'C'}-{c[4]}")
@pytest.mark.parametrize("channels_last", [False, True])
def test_matches_torch_autograd(case: Any, channels_last: bool) -> None:
    rank, transposed, xs, ws, kwargs = case
    ours, theirs = _functions(rank, transposed)
    c_out = ws[1] * kwargs.get("groups", 1) if transposed else ws[0]
    x, w, b = torch.randn(*xs, dtype=F64), torch.randn(*ws, dtype=F64), torch.randn(c_out, dtype=F64)
    if channels_last:  # torch.channels_last(_3d) for 2-D and 3-D, its analogue (N, L, C) in 1-D
        x = x.movedim(1, -1).contiguous().movedim(-1, 1)
    results = []
    for fn in (ours, theirs):
        leaves = [t.clone().requires_grad_() for t in (x, w, b)]
        y = fn(*leaves, **kwargs)
        y.backward(torch.linspace(-1, 1, y.numel(), dtype=F64).reshape(y.shape))
        results.append((y, [leaf.grad for leaf in leaves]))
    (y, grads), (y_ref, grads_ref) = results
    torch.testing.assert_close(y, y_ref)
    for g, g_ref in zip(grads, grads_ref):
        torch.testing.assert_close(g, g_ref)
    if channels_last:  # channels_last in, channels_last out (and for the input gradient)
        assert not y.is_contiguous() and y.movedim(1, -1).is_contiguous()
        assert grads[0].movedim(1, -1).is_contiguous()


@pytest.mark.parametrize("transposed", [True, False])
def test_channels_last_layer_of_realistic_size(transposed: bool) -> None:
    """A super-resolution layer's training step on channels_last tensors: frames of over a
    million elements, as a real model's (small shapes do not reach them)."""
    ours, theirs = _functions(2, transposed)
    x = torch.randn(1, 64, 64, 64).contiguous(memory_format=torch.channels_last)
    w, b = torch.randn(64, 64, 4, 4) / 32, torch.randn(64)
    results = []
    for fn in (ours, theirs):
        leaves = [t.clone().requires_grad_() for t in (x, w, b)]
        y = fn(*leaves, stride=2, padding=1)
        y.backward(torch.linspace(-1, 1, y.numel()).reshape(y.shape))
        results.append((y, [leaf.grad for leaf in leaves]))
    (y, grads), (y_ref, grads_ref) = results
    torch.testing.assert_close(y, y_ref, rtol=1e-4, atol=1e-4)
    for g, g_ref in zip(grads, grads_ref):
        torch.testing.assert_close(g, g_ref, rtol=1e-4, atol=1e-3 * float(g_ref.abs().max()))


def _op_args(rank: int, transposed: bool, xs: Any, ws: Any, kwargs: Dict[str, Any], bias: bool) -> Tuple[Any, ...]:
    """The registered op's arguments for one case (as the wrapper computes them)."""
    _, geometry = spt._parse_geometry(
        "conv_transpose" if transposed else "conv", rank, (xs, ws, None), tuple(kwargs.items()), None, "auto"
    )
    c_out = ws[1] * kwargs.get("groups", 1) if transposed else ws[0]
    return (_randn(*xs, grad=True), _randn(*ws, grad=True), _randn(c_out, grad=True) if bias else None, *geometry)


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0]}d-{'T' if c[1] else 'C'}-{c[4]}")
@pytest.mark.parametrize("bias", [True, False])
def test_opcheck_forward_and_backward(case: Any, bias: bool) -> None:
    rank, transposed, xs, ws, kwargs = case
    name = f"conv_transpose{rank}d" if transposed else f"conv{rank}d"
    args = _op_args(rank, transposed, tuple(xs), tuple(ws), kwargs, bias)
    torch.library.opcheck(getattr(OPS, name), args)
    y = getattr(OPS, name)(*args)
    plain = tuple(a.detach() if isinstance(a, torch.Tensor) else a for a in args)
    backward_args = (torch.randn_like(y.detach()), plain[0], plain[1], *plain[3:], [True, True, bias])
    torch.library.opcheck(getattr(OPS, f"{name}_backward"), backward_args)


def test_opcheck_shuffles_and_subpixel() -> None:
    x = _randn(2, 12, 3, 4, grad=True)
    torch.library.opcheck(OPS.pixel_shuffle, (x, [2, 2], "CRD"))
    torch.library.opcheck(OPS.pixel_unshuffle, (_randn(2, 3, 6, 4, grad=True), [3, 2], "DCR"))
    torch.library.opcheck(OPS.pixel_shuffle, (_randn(2, 6, 5, grad=True), [3], "CRD"))
    w, b = _randn(12, 3, 3, 3, grad=True), _randn(12, grad=True)
    _, geometry = spt._parse_geometry("subpixel", 2, ((2, 3, 5, 5), (12, 3, 3, 3), (12,)),
                                   (("padding", 1), ("upscale_factor", (2, 2))), None, "auto")
    torch.library.opcheck(OPS.subpixel_conv2d, (_randn(2, 3, 5, 5, grad=True), w, b, [2, 2], "CRD", *geometry))


def test_shuffle_and_subpixel_gradients() -> None:
    x = _randn(2, 12, 3, 4, grad=True)
    assert torch.autograd.gradcheck(lambda t: spt.pixel_shuffle(t, 2), (x,))
    assert torch.autograd.gradgradcheck(lambda t: spt.pixel_shuffle(t, 2), (x,))  # a permutation: any order
    torch.testing.assert_close(spt.pixel_shuffle(x, 2), F.pixel_shuffle(x, 2))
    torch.testing.assert_close(spt.pixel_unshuffle(x, 1), F.pixel_unshuffle(x, 1))
    torch.testing.assert_close(spt.pixel_unshuffle(spt.pixel_shuffle(x, 2), 2), x)
    xs, w, b = _randn(2, 3, 5, 5, grad=True), _randn(12, 3, 3, 3, grad=True), _randn(12, grad=True)
    assert torch.autograd.gradcheck(lambda *t: spt.subpixel_conv2d(t[0], t[1], 2, t[2], padding=1), (xs, w, b))
    torch.testing.assert_close(spt.subpixel_conv2d(xs, w, 2, b, padding=1),
                               F.pixel_shuffle(F.conv2d(xs, w, b, padding=1), 2))


def test_double_backward_is_a_clear_error() -> None:
    x, w = _randn(1, 2, 4, 4, grad=True), _randn(2, 3, 3, 3, grad=True)
    (gx,) = torch.autograd.grad(spt.conv_transpose2d(x, w, stride=2).sum(), x, create_graph=True)
    with pytest.raises(RuntimeError, match="does not support double backward"):
        gx.sum().backward()


# ----------------------------------------------------------------------------- modules

MODULES = [
    (spt.ConvTranspose1d, torch.nn.ConvTranspose1d, (5, 3, 4), dict(stride=2, padding=1), (2, 5, 9)),
    (spt.ConvTranspose2d, torch.nn.ConvTranspose2d, (4, 6, 3), dict(stride=2, padding=1, groups=2, dilation=2),
     (2, 4, 5, 6)),
    (spt.ConvTranspose3d, torch.nn.ConvTranspose3d, (2, 3, 2), dict(stride=2, bias=False), (1, 2, 3, 3, 2)),
    (spt.Conv1d, torch.nn.Conv1d, (3, 4, 3), dict(stride=2, padding=1), (2, 3, 10)),
    (spt.Conv2d, torch.nn.Conv2d, (4, 6, 3), dict(padding="same", groups=2, dilation=2), (2, 4, 7, 6)),
    (spt.Conv3d, torch.nn.Conv3d, (2, 2, (1, 2, 3)), dict(padding=(0, 1, 1)), (2, 2, 3, 3, 4)),
]


@pytest.mark.parametrize("ours,theirs,args,kwargs,x_shape", MODULES, ids=lambda v: getattr(v, "__name__", ""))
def test_modules_are_torch_modules(ours: Any, theirs: Any, args: Any, kwargs: Any, x_shape: Any) -> None:
    torch.manual_seed(0)
    mine = ours(*args, **kwargs)
    torch.manual_seed(0)
    reference = theirs(*args, **kwargs)
    assert isinstance(mine, theirs)
    assert list(mine.state_dict()) == list(reference.state_dict())
    for key, value in reference.state_dict().items():
        assert torch.equal(mine.state_dict()[key], value)  # same initialisation from the same seed
    loaded = ours(*args, **kwargs)
    loaded.load_state_dict(mine.state_dict())
    reference.load_state_dict(loaded.state_dict())
    x = torch.randn(*x_shape)
    y, y_ref = mine(x), reference(x)
    torch.testing.assert_close(y, y_ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(mine(x[0]), reference(x[0]), rtol=1e-5, atol=1e-5)  # unbatched
    y.square().sum().backward()
    y_ref.square().sum().backward()
    for p, p_ref in zip(mine.parameters(), reference.parameters()):
        torch.testing.assert_close(p.grad, p_ref.grad, rtol=1e-4, atol=1e-4)


def test_output_size_in_every_form() -> None:
    torch.manual_seed(1)
    mine = spt.ConvTranspose2d(4, 2, 3, stride=2, padding=1, output_padding=1)
    reference = torch.nn.ConvTranspose2d(4, 2, 3, stride=2, padding=1, output_padding=1)
    reference.load_state_dict(mine.state_dict())
    x = torch.randn(1, 4, 5, 6)
    skip = torch.randn(1, 7, 9, 12)
    for size in (skip.size(), skip.shape[2:], [9, 12], (10, 11), torch.Size([1, 2, 10, 12])):
        torch.testing.assert_close(mine(x, output_size=size), reference(x, output_size=size), rtol=1e-5, atol=1e-5)
    three = spt.ConvTranspose3d(2, 2, 2, stride=2)
    skip3 = torch.randn(1, 2, 5, 4, 5)
    assert three(torch.randn(1, 2, 2, 2, 2), output_size=skip3.size()).shape == (1, 2, 5, 4, 5)
    with pytest.raises(ValueError, match="output_size .* is out of reach"):
        mine(x, output_size=(20, 12))


def test_repeated_calls_with_other_shapes_and_sizes_match_torch() -> None:
    """The wrappers keep each call's parsed geometry: shapes, output sizes and parameters that
    alternate (some equal as values, not as types) each get their own, and a bad call after a
    good one is refused as on a first call."""
    torch.manual_seed(2)
    w, b = torch.randn(4, 2, 3, 3), torch.randn(2)
    x = torch.randn(1, 4, 5, 6)
    sizes = ((torch.Size([1, 2, 10, 12]), (1, 1)), ((9, 11), (0, 0)), ([10, 11], (1, 0)))  # and the output_padding
    calls = [(x, {}, {}), (torch.randn(2, 4, 5, 6), {}, {}), (torch.randn(4, 5, 6), {}, {}),
             (torch.randn(1, 4, 7, 6), {}, {}), (x, dict(padding=0), dict(padding=0)),
             (x, dict(dilation=2), dict(dilation=2))]
    calls += [(x, dict(output_size=size), dict(output_padding=extra)) for size, extra in sizes]
    for _ in range(2):
        for xc, ours, theirs in calls:
            torch.testing.assert_close(spt.conv_transpose2d(xc, w, b, **dict(dict(stride=2, padding=1), **ours)),
                                       F.conv_transpose2d(xc, w, b, **dict(dict(stride=2, padding=1), **theirs)),
                                       rtol=1e-5, atol=1e-5)
    shorter = torch.randn(1, 4, 4, 6)  # (10, 12) is out of its reach
    for good, bad, error, match in ((dict(), dict(stride=2.0), TypeError, "stride"),
                                    (dict(), dict(stride=(2, True)), TypeError, "stride"),
                                    (dict(output_size=(10, 12)), dict(x=shorter, output_size=(10, 12)), ValueError,
                                     "output_size")):
        for _ in range(2):
            spt.conv_transpose2d(x, w, b, stride=2, padding=1, **good)
            with pytest.raises(error, match=match):
                spt.conv_transpose2d(**dict(dict(x=x, weight=w, bias=b, stride=2, padding=1), **bad))


def test_errors_name_the_argument() -> None:
    x, w = torch.randn(1, 2, 4, 4), torch.randn(2, 3, 3, 3)
    with pytest.raises(ValueError, match="stride must be >= 1, got 0"):
        spt.conv_transpose2d(x, w, stride=0)
    with pytest.raises(TypeError, match="weight has dtype torch.float64"):
        spt.conv_transpose2d(x, w.double())
    with pytest.raises(TypeError, match="x must be float32 or float64, got torch.int64"):
        spt.conv2d(x.long(), w)
    with pytest.raises(ValueError, match="padding_mode must be 'zeros'"):
        spt.Conv2d(2, 2, 3, padding=1, padding_mode="reflect")
    with pytest.raises(ValueError, match="method must be one of"):
        spt.ConvTranspose2d(2, 2, 3, method="fft")


def test_convert_swaps_and_shares_parameters() -> None:
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(),
        torch.nn.Sequential(torch.nn.ConvTranspose2d(8, 4, 4, stride=2, padding=1), torch.nn.BatchNorm2d(4)),
        torch.nn.Conv2d(4, 4, 3, padding=1, padding_mode="circular"),  # not supported: kept
    ).eval()
    x = torch.randn(2, 3, 6, 5)
    expected = model(x)
    converted = spt.convert(model)
    assert type(converted[0]) is spt.Conv2d and type(converted[2][0]) is spt.ConvTranspose2d
    assert type(converted[3]) is torch.nn.Conv2d and type(model[0]) is torch.nn.Conv2d  # original unchanged
    assert converted[0].weight is model[0].weight and converted[2][1].running_mean is model[2][1].running_mean
    torch.testing.assert_close(converted(x), expected, rtol=1e-5, atol=1e-5)
    assert spt.convert(model, inplace=True) is model and type(model[2][0]) is spt.ConvTranspose2d
    single = spt.convert(torch.nn.ConvTranspose1d(2, 3, 4, stride=2))
    assert type(single) is spt.ConvTranspose1d


def _decoder(ours: bool) -> Any:
    up, conv = (spt.ConvTranspose2d, spt.Conv2d) if ours else (torch.nn.ConvTranspose2d, torch.nn.Conv2d)
    return torch.nn.Sequential(
        up(16, 8, 4, stride=2, padding=1), torch.nn.LeakyReLU(0.2),
        up(8, 8, 4, stride=2, padding=1), torch.nn.ReLU(), conv(8, 3, 3, padding=1),
    )


def test_training_steps_match_torch() -> None:
    """A few Adam steps of the same decoder from the same initialisation stay within float32 noise."""
    torch.manual_seed(3)
    ours = _decoder(True)
    theirs = _decoder(False)
    theirs.load_state_dict(ours.state_dict())
    data = [(torch.randn(4, 16, 6, 6), torch.randn(4, 3, 24, 24)) for _ in range(5)]
    losses: Dict[str, List[float]] = {"ours": [], "theirs": []}
    for key, model in (("ours", ours), ("theirs", theirs)):
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        for x, target in data:
            opt.zero_grad()
            loss = F.mse_loss(model(x), target)
            loss.backward()
            opt.step()
            losses[key].append(loss.item())
    assert losses["ours"][-1] < losses["ours"][0]
    for a, b in zip(losses["ours"], losses["theirs"]):
        assert abs(a - b) <= 1e-4 * abs(b)
    for p, q in zip(ours.parameters(), theirs.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-3, atol=1e-4)


def test_compile_fullgraph_forward_and_backward() -> None:
    torch.manual_seed(4)
    model = torch.nn.Sequential(spt.ConvTranspose2d(4, 3, 4, stride=2, padding=1), torch.nn.ReLU(),
                                spt.Conv2d(3, 2, 3, padding=1))
    eager = copy.deepcopy(model)
    compiled = torch.compile(model, fullgraph=True)
    x = torch.randn(2, 4, 5, 6)
    y, y_ref = compiled(x), eager(x)
    torch.testing.assert_close(y, y_ref)
    y.sum().backward()
    y_ref.sum().backward()
    for p, q in zip(model.parameters(), eager.parameters()):
        torch.testing.assert_close(p.grad, q.grad)


def test_method_is_kept_and_shown() -> None:
    up = spt.ConvTranspose2d(2, 3, 4, stride=2, method="direct")
    assert up.method == "direct" and "method='direct'" in repr(up)
    assert "method" not in repr(spt.Conv1d(2, 3, 3))
    x = torch.randn(1, 2, 5, 5)
    torch.testing.assert_close(up(x), F.conv_transpose2d(x, up.weight, up.bias, stride=2), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("rank", [1, 3])
def test_subpixel_conv_other_ranks(rank: int) -> None:
    spatial, kernel, factor = {1: ((7,), (3,), (3,)), 3: ((3, 2, 3), (2, 2, 2), (2, 1, 2))}[rank]
    phases = 1
    for f in factor:
        phases *= f
    x, w = _randn(2, 2, *spatial, grad=True), _randn(2 * phases, 2, *kernel, grad=True)
    b = _randn(2 * phases, grad=True)
    fn = getattr(spt, f"subpixel_conv{rank}d")
    settings = (("padding", 1), ("upscale_factor", factor), ("mode", "DCR"))
    _, geometry = spt._parse_geometry("subpixel", rank, (tuple(x.shape), tuple(w.shape), tuple(b.shape)), settings,
                                      None, "auto")
    torch.library.opcheck(getattr(OPS, f"subpixel_conv{rank}d"), (x, w, b, list(factor), "DCR", *geometry))
    assert torch.autograd.gradcheck(lambda *t: fn(t[0], t[1], factor, t[2], padding=1, mode="DCR"), (x, w, b))
    y = fn(x, w, factor, b, padding=1, mode="DCR")
    expected = getattr(spx, f"subpixel_conv{rank}d")(*(t.detach().numpy() for t in (x, w)), factor,
                                                      b.detach().numpy(), padding=1, mode="DCR")
    torch.testing.assert_close(y.detach(), torch.from_numpy(expected))


def test_compile_with_dynamic_shapes() -> None:
    """Sizes torch.compile keeps symbolic: "same" padding with a stride, output_size=skip.size()."""
    torch.manual_seed(5)
    up = spt.ConvTranspose2d(4, 3, 3, stride=2, padding=1)
    w = torch.randn(2, 3, 3, 3)

    def block(x: Any, skip: Any) -> Any:
        return spt.conv2d(up(x, output_size=skip.size()), w, padding="same", stride=2)

    compiled = torch.compile(block, fullgraph=True, dynamic=True)
    for size in ((5, 6), (8, 7)):
        x = torch.randn(2, 4, *size)
        skip = torch.randn(2, 3, 2 * size[0], 2 * size[1] - 1)
        torch.testing.assert_close(compiled(x, skip), block(x, skip))
