"""``python -m subpixel_ext``: the demo and the build configuration.

The demo computes one transposed convolution two ways, directly and as the paper's sub-pixel
convolution (Shi et al. 2016, arXiv:1609.07009). Its computation (:func:`compute_demo`) is kept
apart from its renderings: the text one (:func:`print_demo`, a Python script that recomputes
every step as printed) and the figure of ``demo --plot PATH`` (:func:`plot_demo`, which needs
the optional matplotlib, imported only there).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import numpy.typing as npt

from . import _api, _config, _weights

if TYPE_CHECKING:  # matplotlib is optional (the [plot] extra), imported only by plot_demo
    from matplotlib.axes import Axes
    from matplotlib.figure import SubFigure

Array = npt.NDArray[np.floating[Any]]
Pair = Tuple[int, int]
PairPair = Tuple[Pair, Pair]
CellLabels = List[List[Tuple[str, str]]]  # (text, colour) per cell of a figure panel

PROG = "python -m subpixel_ext"
PRECISION = 3
PLOT_INSTALL = "pip install matplotlib (the package's [plot] extra)"


# ----------------------------------------------------------------------------- demo


@dataclass(frozen=True)
class Demo:
    """Every intermediate of the demo, as printed (2-D arrays; ``subkernels`` and ``phases``
    are stacks of stride**2 of them in CRD phase order ``rh*s + rw``)."""

    stride: int
    seed: int
    image: Array
    zero_inserted: Array
    kernel: Array
    subkernels: Array
    same_pads: PairPair
    padding: PairPair
    output_padding: Pair
    direct: Array
    same_correlation: Array
    phase_padding: Tuple[Tuple[int, int], ...]
    phases: Array
    shuffled: Array
    crop: Tuple[Tuple[int, int], ...]
    polyphase: Array
    library_polyphase: Array

    def differences(self) -> Tuple[float, float, float]:
        """Max abs difference of the direct result from (the SAME correlation of the
        zero-inserted image, the polyphase route built here, ``conv_transpose2d(method="polyphase")``)."""
        return (
            _max_abs_diff(self.direct, self.same_correlation),
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


def same_padding(kernel_size: int, stride: int) -> Pair:
    """``(p_top, p_bottom)`` along one axis for which ``conv_transpose2d`` with the flipped
    kernel equals the TensorFlow-SAME correlation of the zero-inserted image with the kernel;
    a negative ``p_bottom`` is output_padding ``-p_bottom``."""
    return kernel_size // 2, kernel_size - stride - kernel_size // 2


def compute_demo(
    size: Pair, kernel_size: Pair, stride: int, seed: int, dtype: npt.DTypeLike
) -> Demo:
    """Both routes on a seeded random image and kernel, one channel (as :func:`print_demo`
    prints them: keep the two in step)."""
    rng = np.random.default_rng(seed)
    image: Array = rng.standard_normal(size).astype(dtype)
    kernel: Array = rng.standard_normal(kernel_size).astype(dtype)
    flipped = np.ascontiguousarray(kernel[::-1, ::-1])[None, None]  # (C_in, C_out, kH, kW)
    pads = (top_h, bottom_h), (top_w, bottom_w) = (
        same_padding(kernel_size[0], stride), same_padding(kernel_size[1], stride)
    )
    padding = (top_h, max(bottom_h, 0)), (top_w, max(bottom_w, 0))
    output_padding = max(-bottom_h, 0), max(-bottom_w, 0)

    zero_inserted = _api.zero_insert(image, stride)
    direct = _api.conv_transpose2d(
        image[None], flipped, stride=stride, padding=padding,
        output_padding=output_padding, method="direct",
    )[0]
    same_correlation = _api.conv2d(zero_inserted[None], kernel[None, None], padding="same")[0]

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
        seed=seed,
        image=image,
        zero_inserted=zero_inserted,
        kernel=kernel,
        subkernels=_api.split_kernel(kernel, stride),
        same_pads=pads,
        padding=padding,
        output_padding=output_padding,
        direct=direct,
        same_correlation=same_correlation,
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
    return "#   " + body.replace("\n", "\n#   ")


def _shape(a: Array) -> str:
    return "x".join(str(n) for n in a.shape)


def _calls(demo: Demo) -> Dict[str, str]:
    """The code lines of the steps named in both renderings, exactly as they run."""
    s, padding, output_padding = demo.stride, demo.padding, demo.output_padding
    transposed = (f"spx.conv_transpose2d(image[None], flipped, stride={s}, padding={padding}, "
                  f"output_padding={output_padding}, method=")
    return {
        "direct": f'direct = {transposed}"direct")[0]',
        "pw": f"pw = spx.polyphase_weight(flipped, {s}, {padding}, {output_padding})",
        "library": f'library = {transposed}"polyphase")[0]',
    }


INTRO = """\
# A transposed convolution computed two ways, step by step: directly (zero insertion, then a
# correlation) and as stride**2 small convolutions on the low-resolution image followed by a
# periodic shuffle (Shi et al. 2016, "Is the deconvolution layer the same as a convolutional
# layer?", arXiv:1609.07009). This text runs as Python; each array is shown as a comment
# under the line that computes it."""


def print_demo(demo: Demo) -> None:
    """Print the demo as a Python script that recomputes every step, each array (as a comment)
    under the line computing it, and the agreement line last."""
    s = demo.stride
    (top_h, bottom_h), (top_w, bottom_w) = demo.same_pads
    calls = _calls(demo)
    cast = "" if demo.image.dtype == np.float64 else f".astype(np.{demo.image.dtype})"

    def show(title: str, a: Array) -> None:
        print(f"# {title} ({_shape(a)}):")
        print(_format(a))

    print(INTRO)
    print("import numpy as np\nimport subpixel_ext as spx\n")
    print(f"rng = np.random.default_rng({demo.seed})")
    print(f"image = rng.standard_normal({demo.image.shape}){cast}")
    show("image", demo.image)
    print(f"kernel = rng.standard_normal({demo.kernel.shape}){cast}")
    show("kernel", demo.kernel)

    print(f"\n# Direct: {s - 1} zero(s) between neighbouring pixels, then a correlation.")
    print(f"zero_inserted = spx.zero_insert(image, {s})")
    show("zero_inserted", demo.zero_inserted)
    print("flipped = np.ascontiguousarray(kernel[::-1, ::-1])[None, None]  # (C_in, C_out, kH, kW)")
    print(calls["direct"])
    show("direct", demo.direct)
    print(
        f"# This equals the SAME correlation of zero_inserted with the kernel: a transposed "
        f"convolution\n# with the kernel flipped, p_top = K//2 = ({top_h}, {top_w}) and p_bottom "
        f"= K - s - K//2 = ({bottom_h}, {bottom_w})\n# (a negative p_bottom is output_padding)."
    )
    print('same_correlation = spx.conv2d(zero_inserted[None], kernel[None, None], padding="same")[0]')
    print(f"# max abs difference from direct: {demo.differences()[0]:.3e}")

    print(f"\n# Polyphase: the kernel split into {s * s} sub-kernels, sub-kernel (a, b) = "
          f"kernel[a::{s}, b::{s}]\n# of the kernel zero-padded to a multiple of {s}.")
    print(f"subkernels = spx.split_kernel(kernel, {s})")
    for i, sub in enumerate(demo.subkernels):
        show(f"subkernels[{i}], sub-kernel ({i // s}, {i % s})", sub)
    print(f"# pw.weight: {s * s} stride-1 conv2d kernels, one per output phase, from the flipped kernel's taps:")
    print(calls["pw"])
    print(f"# pw.padding = {demo.phase_padding}, pw.crop = {demo.crop}")
    print(f"phases = np.stack([spx.conv2d(image[None], pw.weight[p : p + 1], padding=pw.padding)[0] "
          f"for p in range({s * s})])")
    for p, phase in enumerate(demo.phases):
        show(f"phases[{p}], phase ({p // s}, {p % s})", phase)
    print(f"# The periodic shuffle interleaves the phases: shuffled[{s}*i + a, {s}*j + b] = phase (a, b)[i, j].")
    print(f"shuffled = spx.pixel_shuffle(phases, {s})[0]")
    show("shuffled", demo.shuffled)
    print("(top, bottom), (left, right) = pw.crop")
    print("polyphase = shuffled[top : shuffled.shape[0] - bottom, left : shuffled.shape[1] - right]")
    print(f"# polyphase: {_shape(demo.polyphase)}, shuffled cropped by pw.crop = {demo.crop}")
    print(calls["library"])
    same, polyphase, library = demo.differences()
    verdict = "agree" if agrees(demo) else "DISAGREE"
    print(
        f"# direct and polyphase {verdict}: max abs difference {polyphase:.3e} "
        f"(library: {library:.3e}, same_correlation: {same:.3e}, tolerance {demo.tolerance():.1e})"
    )


def agrees(demo: Demo) -> bool:
    """Whether all three routes match the direct result within the tolerance."""
    return max(demo.differences()) <= demo.tolerance()


# ----------------------------------------------------------------------------- demo figure

FIGURE_SIZE = (16.0, 10.0)  # inches; at FIGURE_DPI, 1600 x 1000 pixels
FIGURE_DPI = 100
CMAP = "RdBu_r"  # blue < 0 < red, white at 0; every panel shares one symmetric scale
MAX_CELL_FONT = 11.0  # points
MIN_CELL_FONT = 5.0  # cells too small for this are left unannotated
MAX_GRID_LINES = 24  # lines between the cells (or the stride x stride blocks) per axis
TITLE_CHARS_PER_CELL = 5.0  # a 10-point title character is about 1/5 of a typical cell wide


class _Panels:
    """One figure's heatmap panels on a shared colour scale, and the layout helpers."""

    def __init__(self, limit: float) -> None:
        from matplotlib.colors import Normalize

        self.limit = limit
        self.norm = Normalize(-(limit or 1.0), limit or 1.0)
        self.drawn: list[Tuple[Axes, CellLabels]] = []

    def panel(self, ax: Axes, a: Array, title: str, period: int = 1) -> None:
        ax.imshow(a, cmap=CMAP, norm=self.norm, interpolation="nearest")
        ax.set_title(title, fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
        if max(a.shape) <= MAX_GRID_LINES * period:  # more lines would only grey the panel
            for k in range(period, a.shape[0], period):
                ax.axhline(k - 0.5, color="0.3", linewidth=1.0)
            for k in range(period, a.shape[1], period):
                ax.axvline(k - 0.5, color="0.3", linewidth=1.0)
        self.drawn.append((ax, _cell_labels(a, self.limit)))

    @staticmethod
    def columns(parent: SubFigure, widths: Sequence[Tuple[int, str]]) -> list[SubFigure]:
        """Side-by-side subfigures, as wide as their cells or their title (in typical cells)."""
        ratios = [max([cells] + [len(line) / TITLE_CHARS_PER_CELL for line in title.split("\n")])
                  for cells, title in widths]
        grid = parent.add_gridspec(1, len(ratios), width_ratios=ratios, wspace=0.0)
        return [parent.add_subfigure(grid[0, i]) for i in range(len(ratios))]

    @staticmethod
    def operator(cell: SubFigure, symbol: str, size: float = 24) -> None:
        cell.text(0.5, 0.5, symbol, fontsize=size, ha="center", va="center")

    def annotate(self) -> None:
        """Values in the cells, at one font size that fits every panel (none if too small)."""
        size = min(_cell_font_size(ax, labels) for ax, labels in self.drawn)
        if size >= MIN_CELL_FONT:
            for ax, labels in self.drawn:
                _annotate(ax, labels, size)


def _draw_direct(panels: _Panels, top: SubFigure, demo: Demo) -> None:
    s = demo.stride
    top.suptitle(
        "direct: zero-insert the image, then a SAME correlation with the kernel, the same as\n"
        + _calls(demo)["direct"],
        fontsize=11,
    )
    image_title = f"image ({_shape(demo.image)})"
    zero_title = f"zero_insert(image, {s}) ({_shape(demo.zero_inserted)})"
    kernel_title = f"kernel ({_shape(demo.kernel)})"
    direct_title = f"direct result ({_shape(demo.direct)})"
    cols = panels.columns(top, [
        (demo.image.shape[1], image_title), (1, ""), (demo.zero_inserted.shape[1], zero_title),
        (1, ""), (demo.kernel.shape[1], kernel_title), (1, ""), (demo.direct.shape[1], direct_title),
    ])
    panels.panel(cols[0].add_subplot(), demo.image, image_title)
    panels.operator(cols[1], "→")
    panels.panel(cols[2].add_subplot(), demo.zero_inserted, zero_title, s)
    panels.operator(cols[3], "⋆", 40)
    panels.panel(cols[4].add_subplot(), demo.kernel, kernel_title)
    panels.operator(cols[5], "=")
    panels.panel(cols[6].add_subplot(), demo.direct, direct_title, s)


def _draw_polyphase(panels: _Panels, bottom: SubFigure, demo: Demo) -> None:
    from matplotlib.patches import Rectangle

    s = demo.stride
    bottom.suptitle(
        f"polyphase: {s * s} stride-1 convolutions in low-resolution space, then the periodic "
        f"shuffle\n{_calls(demo)['pw']}: one conv2d kernel per phase, "
        f"conv2d padding {demo.phase_padding}, crop {demo.crop}",
        fontsize=11,
    )
    sub_title = f"sub-kernels (a, b)\nsplit_kernel(kernel, {s})[a*{s}+b]"
    phase_title = f"phases (a, b)\nconv2d(image, pw.weight[a*{s}+b])"
    shuffled_title = f"pixel_shuffle(phases, {s}) ({_shape(demo.shuffled)})"
    # Both s x s groups as wide as the phases (their "(a, b)" titles need about 2 cells each).
    group_width = s * max(demo.phases.shape[2], demo.subkernels.shape[2], 2)
    cols = panels.columns(bottom, [(group_width, sub_title), (1, ""), (group_width, phase_title), (1, ""),
                                   (demo.shuffled.shape[1], shuffled_title)])
    for group, stack, title in ((cols[0], demo.subkernels, sub_title), (cols[2], demo.phases, phase_title)):
        group.suptitle(title, fontsize=10)
        axes = group.subplots(s, s, squeeze=False)
        for p, a in enumerate(stack):
            panels.panel(axes[p // s, p % s], a, f"({p // s}, {p % s})")
    panels.operator(cols[1], "→")
    panels.operator(cols[3], "→")
    shuffled = cols[4].add_subplot()
    panels.panel(shuffled, demo.shuffled, shuffled_title, s)
    caption = f"each {s}x{s} block: cell (a, b) from phase (a, b)"
    (top_crop, bottom_crop), (left_crop, right_crop) = demo.crop
    if top_crop or bottom_crop or left_crop or right_crop:
        height, width = demo.polyphase.shape
        shuffled.add_patch(Rectangle((left_crop - 0.5, top_crop - 0.5), width, height,
                                     fill=False, edgecolor="black", linewidth=3.0))
        caption += f"\nframed: the {height}x{width} result = direct"
    shuffled.set_xlabel(caption, fontsize=10)


def plot_demo(demo: Demo, path: str) -> None:
    """Draw every step of the demo as annotated heatmaps in one figure and save it to ``path``
    (format from the suffix). Needs matplotlib; draws on an Agg canvas, never through pyplot."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    # One colour scale for all panels: every value shown is among these arrays' (or equal to one).
    panels = _Panels(max(float(np.abs(a).max(initial=0.0)) for a in (demo.image, demo.kernel, demo.shuffled)))
    fig = Figure(figsize=FIGURE_SIZE, dpi=FIGURE_DPI, layout="constrained")
    FigureCanvasAgg(fig)
    _, polyphase, library = demo.differences()
    fig.suptitle(
        f"Transposed convolution = sub-pixel convolution: {_shape(demo.image)} image, "
        f"{_shape(demo.kernel)} kernel, stride {demo.stride}, {demo.direct.dtype}\n"
        f"direct {'=' if agrees(demo) else '≠'} polyphase: max abs difference {polyphase:.1e}  "
        f"(conv_transpose2d(method='polyphase'): {library:.1e}; tolerance {demo.tolerance():.1e})",
        fontsize=14, fontweight="bold",
    )
    rows = fig.add_gridspec(2, 1, height_ratios=(1.0, 1.2))
    _draw_direct(panels, fig.add_subfigure(rows[0, 0]), demo)
    _draw_polyphase(panels, fig.add_subfigure(rows[1, 0]), demo)
    fig.canvas.draw()  # fixes the layout: the cells' sizes in pixels are known from here on
    panels.annotate()
    fig.savefig(path, dpi=FIGURE_DPI)


def _cell_font_size(ax: Axes, labels: CellLabels) -> float:
    """The largest font (points) whose widest label fills at most 80% of a cell's width and
    whose digits at most 35% of its height."""
    box = ax.get_window_extent()
    cell = min(box.width / len(labels[0]), box.height / len(labels))  # pixels
    widest = max((text for row in labels for text, _ in row), key=len)
    probe = ax.text(0, 0, widest, fontsize=MAX_CELL_FONT)
    width = probe.get_window_extent().width  # pixels at MAX_CELL_FONT
    probe.remove()
    return float(min(MAX_CELL_FONT * 0.8 * cell / width, 72.0 / FIGURE_DPI * 0.35 * cell))


def _annotate(ax: Axes, labels: CellLabels, size: float) -> None:
    for i, row in enumerate(labels):
        for j, (text, color) in enumerate(row):
            ax.text(j, i, text, ha="center", va="center", fontsize=size, color=color)


def _cell_labels(a: Array, limit: float) -> CellLabels:
    """(text, colour) per cell: exact zeros (inserted, padding) as a grey "0", the rest to
    PRECISION decimals, white on the dark ends of the colour scale."""
    return [
        [("0", "0.55") if v == 0 else (f"{v:.{PRECISION}f}", "white" if abs(v) > 0.6 * limit else "black")
         for v in row]
        for row in a.tolist()
    ]


def _run_demo(args: argparse.Namespace) -> int:
    if args.plot is not None:
        try:
            import matplotlib  # noqa: F401 -- checked before the demo runs, used by plot_demo
        except ImportError as error:
            print(
                f"{PROG} demo: error: --plot needs matplotlib, which cannot be imported ({error}); "
                f"install it with: {PLOT_INSTALL}",
                file=sys.stderr,
            )
            return 2
    demo = compute_demo(args.size, args.kernel, args.stride, args.seed, args.dtype)
    if args.plot is not None:
        try:
            plot_demo(demo, args.plot)
        except (OSError, ValueError) as error:  # unwritable path, unknown image format
            print(f"{PROG} demo: error: cannot write {args.plot}: {error}", file=sys.stderr)
            return 2
        print(f"figure written to {args.plot}", file=sys.stderr)
    print_demo(demo)
    return 0 if agrees(demo) else 1


# ----------------------------------------------------------------------------- config


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
        help="a transposed convolution two ways, step by step (default)",
        description="Compute a transposed convolution of a seeded random image two ways: "
        "directly (zero insertion, then a correlation) and as stride**2 phase convolutions on "
        "the low-resolution image followed by a periodic shuffle (Shi et al. 2016, "
        "arXiv:1609.07009). Prints every step as a Python script that recomputes it. "
        "Exit code 0 when the two agree, 1 otherwise.",
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
    demo.add_argument("--plot", metavar="PATH",
                      help="also draw every step as annotated heatmaps into one image file "
                      "(format from the suffix, e.g. demo.png); needs matplotlib")

    commands.add_parser(
        "config", help="version, compiler, OpenMP, SIMD levels and threads"
    )
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the command line; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv) or ["demo"])
    if args.command == "demo":
        return _run_demo(args)
    return _run_config()
