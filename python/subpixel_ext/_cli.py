"""``python -m subpixel_ext``: the seed notebook's demo, the benchmark and the build configuration.

The demo's computation (:func:`compute_demo`) is kept apart from its text rendering
(:func:`print_demo`), so that another rendering of the same :class:`Demo` (a plot) can be added
next to the text one without touching the arithmetic.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from typing import Any, Optional, Sequence, Tuple, Union

import numpy as np
import numpy.typing as npt

from . import _api, _config, _weights

Array = npt.NDArray[np.floating[Any]]
Pair = Tuple[int, int]
PairPair = Tuple[Pair, Pair]

PROG = "python -m subpixel_ext"
PRECISION = 3


# ----------------------------------------------------------------------------- demo


@dataclass(frozen=True)
class Demo:
    """Every intermediate of the demo, as printed (2-D arrays; ``subkernels`` and ``phases``
    are stacks of stride**2 of them in CRD phase order ``rh*s + rw``)."""

    stride: int
    image: Array
    zero_inserted: Array
    kernel: Array
    subkernels: Array
    notebook_pads: PairPair
    padding: PairPair
    output_padding: Pair
    direct: Array
    notebook_direct: Array
    phase_padding: PairPair
    phases: Array
    shuffled: Array
    crop: PairPair
    polyphase: Array
    library_polyphase: Array

    def differences(self) -> Tuple[float, float, float]:
        """Max abs difference of the direct result from (the notebook's direct route,
        the polyphase route built here, ``conv_transpose2d(method="polyphase")``)."""
        return (
            _max_abs_diff(self.direct, self.notebook_direct),
            _max_abs_diff(self.direct, self.polyphase),
            _max_abs_diff(self.direct, self.library_polyphase),
        )

    def tolerance(self) -> float:
        """Rounding allowance: the results are sums of kH*kW products in ``direct.dtype``."""
        eps = float(np.finfo(self.direct.dtype).eps)
        scale = max(1.0, float(np.abs(self.direct).max(initial=0.0)))
        return 16.0 * eps * self.kernel.size * scale


def _max_abs_diff(a: Array, b: Array) -> float:
    return float(np.abs(a - b).max(initial=0.0))


def notebook_padding(kernel_size: int, stride: int) -> Pair:
    """``(p_top, p_bottom)`` along one axis for which ``conv_transpose2d`` with the flipped
    kernel equals the notebook's TensorFlow-SAME correlation of the zero-inserted image with
    the kernel (design/polyphase.md); a negative ``p_bottom`` is output_padding ``-p_bottom``."""
    return kernel_size // 2, kernel_size - stride - kernel_size // 2


def compute_demo(
    size: Pair, kernel_size: Pair, stride: int, seed: int, dtype: npt.DTypeLike
) -> Demo:
    """Reproduce the seed notebook on a seeded random image and kernel, one channel."""
    rng = np.random.default_rng(seed)
    image: Array = rng.standard_normal(size).astype(dtype)
    kernel: Array = rng.standard_normal(kernel_size).astype(dtype)
    flipped = np.ascontiguousarray(kernel[::-1, ::-1])[None, None]  # (C_in, C_out, kH, kW)
    pads = (top_h, bottom_h), (top_w, bottom_w) = (
        notebook_padding(kernel_size[0], stride), notebook_padding(kernel_size[1], stride)
    )
    padding = (top_h, max(bottom_h, 0)), (top_w, max(bottom_w, 0))
    output_padding = max(-bottom_h, 0), max(-bottom_w, 0)

    zero_inserted = _api.zero_insert(image, stride)
    direct = _api.conv_transpose2d(
        image[None], flipped, stride=stride, padding=padding,
        output_padding=output_padding, method="direct",
    )[0]
    notebook_direct = _api.conv2d(zero_inserted[None], kernel[None, None], padding="same")[0]

    # The polyphase route, spelled out: one stride-1 conv2d per output phase on the
    # low-resolution image, then the periodic shuffle and the crop of the shuffled result.
    poly = _weights.polyphase_weight(flipped, stride, padding, output_padding)
    phases = np.stack(
        [_api.conv2d(image[None], poly.weight[p : p + 1], padding=poly.padding)[0]
         for p in range(stride * stride)]
    )
    shuffled = _api.pixel_shuffle(phases, stride)[0]
    (top, bottom), (left, right) = poly.crop
    polyphase = shuffled[top : shuffled.shape[0] - bottom, left : shuffled.shape[1] - right]

    library_polyphase = _api.conv_transpose2d(
        image[None], flipped, stride=stride, padding=padding,
        output_padding=output_padding, method="polyphase",
    )[0]
    return Demo(
        stride=stride,
        image=image,
        zero_inserted=zero_inserted,
        kernel=kernel,
        subkernels=_api.split_kernel(kernel, stride),
        notebook_pads=pads,
        padding=padding,
        output_padding=output_padding,
        direct=direct,
        notebook_direct=notebook_direct,
        phase_padding=poly.padding,
        phases=phases,
        shuffled=shuffled,
        crop=poly.crop,
        polyphase=polyphase,
        library_polyphase=library_polyphase,
    )


def _format(a: Array) -> str:
    body = np.array2string(
        a, precision=PRECISION, floatmode="fixed", suppress_small=True, max_line_width=200
    )
    return "  " + body.replace("\n", "\n  ")


def _shape(a: Array) -> str:
    return "x".join(str(n) for n in a.shape)


def print_demo(demo: Demo) -> None:
    """Print every step of the demo, labelled, and the agreement line last."""
    s = demo.stride
    (top_h, bottom_h), (top_w, bottom_w) = demo.notebook_pads

    def show(title: str, a: Array) -> None:
        print(f"{title} ({_shape(a)}):")
        print(_format(a))

    show("image", demo.image)
    show(f"zero-inserted image, zero_insert(image, {s})", demo.zero_inserted)
    show("kernel", demo.kernel)
    print(
        f"split_kernel(kernel, {s}): {s * s} sub-kernels, (a, b) = kernel[a::{s}, b::{s}] "
        f"of the kernel zero-padded to a multiple of {s}"
    )
    for i, sub in enumerate(demo.subkernels):
        show(f"sub-kernel ({i // s}, {i % s})", sub)
    show(
        f"direct = conv_transpose2d(image, kernel[::-1, ::-1], stride={s}, padding={demo.padding}, "
        f"output_padding={demo.output_padding}, method='direct')",
        demo.direct,
    )
    print(
        f"  this is the notebook's SAME conv of the zero-inserted image with the kernel: flipped "
        f"kernel, p_top = K//2 = ({top_h}, {top_w}), p_bottom = K - s - K//2 = "
        f"({bottom_h}, {bottom_w}), negative -> output_padding; "
        f"max abs difference {demo.differences()[0]:.3e}"
    )
    print(
        f"pw = polyphase_weight(kernel[::-1, ::-1], {s}, {demo.padding}, {demo.output_padding}): "
        f"{s * s} phase kernels, conv2d padding {demo.phase_padding}, crop {demo.crop}"
    )
    for p, phase in enumerate(demo.phases):
        show(f"phase ({p // s}, {p % s}) = conv2d(image, pw.weight[{p}], padding=pw.padding)", phase)
    show(f"pixel_shuffle(phases, {s})", demo.shuffled)
    print(f"polyphase = pixel shuffle cropped by pw.crop = {demo.crop} ({_shape(demo.polyphase)})")
    notebook, polyphase, library = demo.differences()
    verdict = "agree" if agrees(demo) else "DISAGREE"
    print(
        f"direct and polyphase {verdict}: max abs difference {polyphase:.3e} "
        f"(conv_transpose2d(method='polyphase'): {library:.3e}, notebook SAME conv: "
        f"{notebook:.3e}, tolerance {demo.tolerance():.1e})"
    )


def agrees(demo: Demo) -> bool:
    """Whether all three routes match the direct result within the tolerance."""
    return max(demo.differences()) <= demo.tolerance()


def _run_demo(args: argparse.Namespace) -> int:
    demo = compute_demo(args.size, args.kernel, args.stride, args.seed, args.dtype)
    print_demo(demo)
    return 0 if agrees(demo) else 1


# ----------------------------------------------------------------------------- bench, config


def _run_bench(arguments: Sequence[str]) -> int:
    from . import _bench  # lazily: --help, demo and config must not depend on it

    parser = argparse.ArgumentParser(
        prog=f"{PROG} bench", description="Benchmark the native kernels on the standard workloads."
    )
    _bench.add_arguments(parser)
    return _bench.run(parser.parse_args(arguments))


def _run_config() -> int:
    config = _config.show_config()
    width = max(len(key) for key in config) + 1
    for key, value in config.items():
        print(f"{key + ':':<{width}} {value}".rstrip())
    return 0


# ----------------------------------------------------------------------------- parser


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


class _Formatter(argparse.HelpFormatter):
    """Shows a :class:`_SquareOrPair` option as ``--size H [W]`` (not ``H [W ...]``)."""

    def _format_args(self, action: argparse.Action, default_metavar: str) -> str:
        if isinstance(action, _SquareOrPair):
            first, second = self._metavar_formatter(action, default_metavar)(2)
            return f"{first} [{second}]"
        return super()._format_args(action, default_metavar)


class _SquareOrPair(argparse.Action):
    """``N`` or ``N M`` -> ``(N, N)`` or ``(N, M)``."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Union[str, Sequence[Any], None],
        option_string: Optional[str] = None,
    ) -> None:
        assert isinstance(values, list)
        if len(values) > 2:
            parser.error(f"{option_string} takes one or two values, got {len(values)}")
        setattr(namespace, self.dest, (values[0], values[-1]))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Transposed convolution and sub-pixel convolution: direct vs. polyphase.",
        epilog="Without a command, runs the demo with its defaults.",
        formatter_class=_Formatter,
    )
    commands = parser.add_subparsers(
        dest="command", metavar="COMMAND", title="commands", required=True
    )

    demo = commands.add_parser(
        "demo",
        formatter_class=_Formatter,
        help="seed notebook: direct vs. polyphase transposed conv (default)",
        description="Reproduce the seed notebook on a seeded random image: the direct "
        "transposed convolution (zero insertion) against stride**2 phase convolutions and "
        "their pixel shuffle. Exit code 0 when they agree, 1 otherwise.",
    )
    demo.add_argument("--size", nargs="+", type=_positive_int, action=_SquareOrPair,
                      default=(4, 4), metavar=("H", "W"), help="image size (default: 4 4)")
    demo.add_argument("--kernel", nargs="+", type=_positive_int, action=_SquareOrPair,
                      default=(4, 4), metavar=("K", "KW"), help="kernel size (default: 4 4)")
    demo.add_argument("--stride", type=_positive_int, default=2, metavar="S",
                      help="stride = upscale factor (default: 2)")
    demo.add_argument("--seed", type=int, default=0, metavar="N",
                      help="seed of the random image and kernel (default: 0)")
    demo.add_argument("--dtype", choices=("float32", "float64"), default="float64",
                      help="dtype of the image and kernel (default: float64)")

    # The benchmark's own options are parsed by _bench (imported only when it runs).
    commands.add_parser(
        "bench",
        help="time direct vs. polyphase on the workloads (see bench --help)",
        add_help=False,
    )
    commands.add_parser(
        "config", help="version, compiler, OpenMP, SIMD levels and threads"
    )
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the command line; returns the exit code."""
    parser = build_parser()
    args, rest = parser.parse_known_args(list(sys.argv[1:] if argv is None else argv) or ["demo"])
    if args.command == "bench":
        return _run_bench(rest)
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    if args.command == "demo":
        return _run_demo(args)
    return _run_config()
