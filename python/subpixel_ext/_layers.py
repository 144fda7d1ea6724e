"""Layer objects: a convolution's parameters validated and its weights copied once.

A layer owns a private copy of its weights and one native operator per compute dtype; the
operator plans per input shape and packs the weights per weight layout, caching both, so a
layer called in a loop repeats neither. The functional API runs the same operators.
"""

from __future__ import annotations

import dataclasses
import threading
from typing import Any, Callable, ClassVar, Dict, Optional, Tuple

import numpy as np

from . import _core
from . import _params as _p
from ._typing import ArrayLike, IntOrTuple, OutputSize, Padding

def operator_factory(
    params: _p.ConvParams, method: str, activation: Optional[str], negative_slope: float
) -> Callable[[np.ndarray, Optional[np.ndarray]], Any]:
    """``make(weight, bias)`` -> the native operator for `params`, which reads `weight` and
    `bias` in place (and keeps them alive)."""
    act = getattr(_core.Activation, activation or "none")
    common = (list(params.stride), list(params.dilation), params.groups, params.channels_last)
    if params.kind == "conv_transpose":
        meth = _core.Method.direct if method == "direct" else _core.Method.polyphase
        return lambda w, b: _core.ConvTranspose(w, b, *common, meth, act, negative_slope)
    if params.kind == "subpixel":
        factor = list(params.factor)
        return lambda w, b: _core.SubpixelConv(w, b, factor, params.dcr, *common, act, negative_slope)
    return lambda w, b: _core.Conv(w, b, *common, act, negative_slope)


def run_native(
    native: Any,
    geometry: _p.ConvGeometry,
    x: np.ndarray,
    dtype: np.dtype,
    out: Optional[np.ndarray],
    threads: int,
    originals: Tuple[Optional[np.ndarray], ...] = (),
) -> np.ndarray:
    """Compute into `out` (checked) or a new array; `x` is already in the compute dtype.

    The native call refuses an `out` overlapping the arrays it is given; `originals` are the
    caller's inputs that were converted (copied), checked here instead."""
    if out is None:
        y = np.empty(geometry.out_shape, dtype)
    else:
        y = _p.check_out(out, geometry.out_shape, dtype, [a for a in originals if a is not None])
    if y.size:
        x_batched, y_batched = (x, y) if geometry.batched else (x[None], y[None])
        native(x_batched, y_batched, geometry.pad_begin, threads)
    return y


class _PreparedCall:
    """What a layer derives once per input shape and dtype: geometry and operator, and the
    operator bound to that shape (which runs arrays of exactly that shape and dtype)."""

    __slots__ = ("geometry", "dtype", "native", "bound")

    def __init__(self, geometry: _p.ConvGeometry, dtype: np.dtype, native: Any, x_shape: Tuple[int, ...]) -> None:
        self.geometry, self.dtype, self.native = geometry, dtype, native
        self.bound = native.bind(list(x_shape), list(geometry.out_shape), list(geometry.pad_begin))

    def run(self, x: np.ndarray, out: Optional[np.ndarray], threads: int) -> np.ndarray:
        y = self.bound(x, out, threads)
        if y is not None:
            return y  # type: ignore[no-any-return]
        xc = _p.as_compute(x, self.dtype)
        return run_native(self.native, self.geometry, xc, self.dtype, out, threads, (x,) if xc is not x else ())


class _ConvLayer:
    """Shared machinery of the layer classes (see ConvTranspose2d for the parameters)."""

    _kind: ClassVar[str]
    _rank: ClassVar[int]

    def __init__(
        self,
        weight: ArrayLike,
        bias: Optional[ArrayLike],
        *,
        method: str = "auto",
        activation: Optional[str] = None,
        negative_slope: float = 0.01,
        **settings: Any,
    ) -> None:
        w = _p.as_array(weight, "weight")
        b = None if bias is None else _p.as_array(bias, "bias")
        self._params = _p.conv_params(self._kind, w, b, rank=self._rank, **settings)
        self._method = _p.choice(method, "method", _p.METHODS)
        self._activation, self._negative_slope = _p.activation_spec(activation, negative_slope)
        self._settings = settings
        dtype = _p.result_dtype(w, b)
        # Private, read-only copies: later changes to the caller's arrays do not reach the layer.
        self._weight = _private_copy(w, dtype)
        self._bias = None if b is None else _private_copy(b, dtype)
        self._natives: Dict[np.dtype, Any] = {}
        self._calls: Dict[Tuple[Any, ...], _PreparedCall] = {}
        self._by_shape: Dict[Tuple[int, ...], _PreparedCall] = {}
        self._lock = threading.Lock()

    # -- reading back ------------------------------------------------------------------------

    @property
    def weight(self) -> np.ndarray:
        """The layer's weights (a read-only private copy)."""
        return self._weight

    @property
    def bias(self) -> Optional[np.ndarray]:
        return self._bias

    @property
    def rank(self) -> int:
        return self._rank

    @property
    def stride(self) -> Tuple[int, ...]:
        return self._params.stride

    @property
    def dilation(self) -> Tuple[int, ...]:
        return self._params.dilation

    @property
    def padding(self) -> Any:
        """ "same", "valid" or per-axis (begin, end) pairs."""
        return self._params.padding

    @property
    def groups(self) -> int:
        return self._params.groups

    @property
    def layout(self) -> str:
        return _p.LAYOUTS[self._rank][1 if self._params.channels_last else 0]

    @property
    def activation(self) -> Optional[str]:
        return self._activation

    @property
    def negative_slope(self) -> float:
        return self._negative_slope

    @property
    def in_channels(self) -> int:
        return self._params.in_channels

    @property
    def out_channels(self) -> int:
        return self._params.out_channels

    def __repr__(self) -> str:
        shown = [f"{self.in_channels}, {self.out_channels}", f"kernel_size={self._params.kernel}"]
        shown += [f"{k}={v!r}" for k, v in self._described().items()]
        if self._bias is None:
            shown.append("bias=False")
        shown.append(f"dtype={self._weight.dtype}")
        return f"{type(self).__name__}({', '.join(shown)})"

    def _described(self) -> Dict[str, Any]:
        """Settings that differ from their defaults, for repr."""
        p = self._params
        ones, no_padding = (1,) * p.rank, ((0, 0),) * p.rank
        candidates: Dict[str, Tuple[Any, Any]] = {
            "upscale_factor": (p.factor, ones), "stride": (p.stride, ones), "padding": (p.padding, no_padding),
            "output_padding": (p.output_padding, (0,) * p.rank), "dilation": (p.dilation, ones),
            "groups": (p.groups, 1), "layout": (self.layout, _p.LAYOUTS[p.rank][0]), "method": (self._method, "auto"),
            "mode": ("DCR" if p.dcr else "CRD", "CRD"), "activation": (self._activation, None),
        }
        shown = {name: value for name, (value, default) in candidates.items() if value != default}
        if self._activation == "leaky_relu":
            shown["negative_slope"] = self._negative_slope
        return shown

    # -- pickling: the constructor's arguments; operators are rebuilt on arrival ---------------

    def __getstate__(self) -> Dict[str, Any]:
        return {
            "weight": self._weight, "bias": self._bias, "method": self._method,
            "activation": self._activation, "negative_slope": self._negative_slope, "settings": self._settings,
        }

    def __setstate__(self, state: Dict[str, Any]) -> None:
        _ConvLayer.__init__(
            self, state["weight"], state["bias"], method=state["method"], activation=state["activation"],
            negative_slope=state["negative_slope"], **state["settings"],
        )

    # -- running -------------------------------------------------------------------------------

    def _run(self, x: ArrayLike, output_size: Any, out: Optional[np.ndarray], num_threads: Any) -> np.ndarray:
        threads = 0 if num_threads is None else _p.num_threads(num_threads)
        if output_size is None and type(x) is np.ndarray:
            call = self._by_shape.get(x.shape)  # the common case: one dtype per input shape
            if call is not None:
                y = call.bound(x, out, threads)
                if y is not None:
                    return y  # type: ignore[no-any-return]
        xa = x if type(x) is np.ndarray else _p.as_array(x, "x")
        key: Optional[Tuple[Any, ...]] = (xa.shape, xa.dtype, output_size)
        try:
            call = self._calls.get(key)  # type: ignore[arg-type]
        except TypeError:  # an unhashable output_size (a list): not cached
            key = call = None
        if call is None:
            call = self._prepare(_p.as_array(xa, "x"), output_size)
            if key is not None:
                if len(self._calls) >= 64:
                    self._calls.clear()
                    self._by_shape.clear()
                self._calls[key] = call
                if output_size is None:
                    self._by_shape.setdefault(xa.shape, call)
        return call.run(xa, out, threads)

    def _prepare(self, x: np.ndarray, output_size: Any) -> _PreparedCall:
        dtype = _p.result_dtype(x, self._weight, self._bias)
        params = self._params
        if output_size is not None and any(params.output_padding):
            # As nn.ConvTranspose*d.forward: output_size chooses the output padding, the
            # layer's own output_padding (e.g. copied by from_torch) is then not used.
            params = dataclasses.replace(params, output_padding=(0,) * params.rank)
        geometry = _p.conv_geometry(params, x.shape, output_size)
        _p.checked_elements(geometry.out_shape, dtype.itemsize, "the result")
        return _PreparedCall(geometry, dtype, self._native(dtype), x.shape)

    def _native(self, dtype: np.dtype) -> Any:
        native = self._natives.get(dtype)
        if native is None:
            with self._lock:
                native = self._natives.get(dtype)
                if native is None:
                    w = self._weight if self._weight.dtype == dtype else _private_copy(self._weight, dtype)
                    b = self._bias
                    if b is not None and b.dtype != dtype:
                        b = _private_copy(b, dtype)
                    make = operator_factory(self._params, self._method, self._activation, self._negative_slope)
                    native = make(w, b)
                    self._natives[dtype] = native
        return native


def _private_copy(a: np.ndarray, dtype: np.dtype) -> np.ndarray:
    copy = np.array(a, dtype=dtype, order="C", copy=True)
    copy.flags.writeable = False
    return copy


class _ConvTransposeNd(_ConvLayer):
    _kind = "conv_transpose"

    def __init__(
        self,
        weight: ArrayLike,
        bias: Optional[ArrayLike] = None,
        stride: IntOrTuple = 1,
        padding: Padding = 0,
        output_padding: IntOrTuple = 0,
        groups: int = 1,
        dilation: IntOrTuple = 1,
        *,
        layout: Optional[str] = None,
        method: str = "auto",
        activation: Optional[str] = None,
        negative_slope: float = 0.01,
    ) -> None:
        super().__init__(
            weight, bias, method=method, activation=activation, negative_slope=negative_slope, stride=stride,
            padding=padding, output_padding=output_padding, groups=groups, dilation=dilation, layout=layout,
        )

    @property
    def output_padding(self) -> Tuple[int, ...]:
        return self._params.output_padding

    @property
    def method(self) -> str:
        return self._method

    def __call__(
        self,
        x: ArrayLike,
        *,
        output_size: Optional[OutputSize] = None,
        out: Optional[np.ndarray] = None,
        num_threads: Optional[int] = None,
    ) -> np.ndarray:
        """The transposed convolution of `x`; `output_size` as in ``nn.ConvTranspose2d.forward``."""
        return self._run(x, output_size, out, num_threads)

    @classmethod
    def from_torch(cls, module: Any, *, layout: Optional[str] = None, method: str = "auto") -> Any:
        """From ``torch.nn.ConvTranspose{1,2,3}d`` or ``nn.Sequential(conv, [BatchNorm], [activation])``."""
        from ._from_torch import layer_from_torch

        return layer_from_torch(cls, module, layout=layout, method=method)


class _ConvNd(_ConvLayer):
    _kind = "conv"

    def __init__(
        self,
        weight: ArrayLike,
        bias: Optional[ArrayLike] = None,
        stride: IntOrTuple = 1,
        padding: Padding = 0,
        dilation: IntOrTuple = 1,
        groups: int = 1,
        *,
        layout: Optional[str] = None,
        activation: Optional[str] = None,
        negative_slope: float = 0.01,
    ) -> None:
        super().__init__(
            weight, bias, activation=activation, negative_slope=negative_slope, stride=stride, padding=padding,
            dilation=dilation, groups=groups, layout=layout,
        )

    def __call__(self, x: ArrayLike, *, out: Optional[np.ndarray] = None, num_threads: Optional[int] = None) -> np.ndarray:
        """The convolution (cross-correlation) of `x`."""
        return self._run(x, None, out, num_threads)

    @classmethod
    def from_torch(cls, module: Any, *, layout: Optional[str] = None) -> Any:
        """From ``torch.nn.Conv{1,2,3}d`` or ``nn.Sequential(conv, [BatchNorm], [activation])``."""
        from ._from_torch import layer_from_torch

        return layer_from_torch(cls, module, layout=layout)


class _SubPixelConvNd(_ConvLayer):
    _kind = "subpixel"

    def __init__(
        self,
        weight: ArrayLike,
        upscale_factor: IntOrTuple,
        bias: Optional[ArrayLike] = None,
        stride: IntOrTuple = 1,
        padding: Padding = 0,
        dilation: IntOrTuple = 1,
        groups: int = 1,
        *,
        layout: Optional[str] = None,
        mode: str = "CRD",
        activation: Optional[str] = None,
        negative_slope: float = 0.01,
    ) -> None:
        super().__init__(
            weight, bias, activation=activation, negative_slope=negative_slope, upscale_factor=upscale_factor,
            stride=stride, padding=padding, dilation=dilation, groups=groups, layout=layout, mode=mode,
        )

    @property
    def upscale_factor(self) -> Tuple[int, ...]:
        return self._params.factor

    @property
    def mode(self) -> str:
        return "DCR" if self._params.dcr else "CRD"

    def __call__(self, x: ArrayLike, *, out: Optional[np.ndarray] = None, num_threads: Optional[int] = None) -> np.ndarray:
        """``pixel_shuffle(conv(x))`` in one pass."""
        return self._run(x, None, out, num_threads)

    @classmethod
    def from_torch(cls, module: Any, *, layout: Optional[str] = None) -> Any:
        """From ``nn.Sequential(nn.Conv2d, [activation], nn.PixelShuffle)``."""
        from ._from_torch import subpixel_from_torch

        return subpixel_from_torch(cls, module, layout=layout)


class ConvTranspose1d(_ConvTransposeNd):
    """Prepacked ``conv_transpose1d``: weight ``(C_in, C_out/groups, k)``; see :class:`ConvTranspose2d`."""

    _rank = 1


class ConvTranspose2d(_ConvTransposeNd):
    """A transposed convolution with its weights validated, copied and packed once.

    ``ConvTranspose2d(weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,
    dilation=1, *, layout="NCHW", method="auto", activation=None, negative_slope=0.01)`` takes
    the arguments of :func:`conv_transpose2d`; ``layer(x, *, output_size=None, out=None,
    num_threads=None)`` accepts any batch and spatial size and returns exactly what the
    functional call returns. ``activation`` ("relu", "relu6", "leaky_relu", "tanh", "sigmoid")
    is applied in the microkernels' store. Layers pickle (their weights and arguments).

    Examples
    --------
    >>> import numpy as np, subpixel_ext as spx
    >>> layer = spx.ConvTranspose2d(np.ones((2, 3, 4, 4), np.float32), stride=2, padding=1)
    >>> layer(np.ones((1, 2, 8, 8), np.float32)).shape
    (1, 3, 16, 16)
    """

    _rank = 2


class ConvTranspose3d(_ConvTransposeNd):
    """Prepacked ``conv_transpose3d``: weight ``(C_in, C_out/groups, kD, kH, kW)``; see :class:`ConvTranspose2d`."""

    _rank = 3


class Conv1d(_ConvNd):
    """Prepacked ``conv1d``: weight ``(C_out, C_in/groups, k)``; see :class:`Conv2d`."""

    _rank = 1


class Conv2d(_ConvNd):
    """A convolution with its weights validated, copied and packed once (see :func:`conv2d`).

    Examples
    --------
    >>> import numpy as np, subpixel_ext as spx
    >>> spx.Conv2d(np.ones((4, 2, 3, 3)), padding="same", activation="relu")(np.ones((2, 5, 5))).shape
    (4, 5, 5)
    """

    _rank = 2


class Conv3d(_ConvNd):
    """Prepacked ``conv3d``: weight ``(C_out, C_in/groups, kD, kH, kW)``; see :class:`Conv2d`."""

    _rank = 3


class SubPixelConv1d(_SubPixelConvNd):
    """Prepacked ``subpixel_conv1d``; see :class:`SubPixelConv2d`."""

    _rank = 1


class SubPixelConv2d(_SubPixelConvNd):
    """The sub-pixel convolution layer with its weights packed once (see :func:`subpixel_conv2d`).

    Examples
    --------
    >>> import numpy as np, subpixel_ext as spx
    >>> spx.SubPixelConv2d(np.ones((12, 2, 3, 3)), 2, padding=1)(np.ones((1, 2, 4, 4))).shape
    (1, 3, 8, 8)
    """

    _rank = 2


class SubPixelConv3d(_SubPixelConvNd):
    """Prepacked ``subpixel_conv3d``; see :class:`SubPixelConv2d`."""

    _rank = 3
