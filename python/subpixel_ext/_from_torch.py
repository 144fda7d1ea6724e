"""Layers from PyTorch modules: a conv, an optional eval-mode BatchNorm folded into its weights
and bias, an optional activation. torch is imported only here, and only when called."""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from . import _params as _p


def _activation_of(module: Any) -> Optional[Tuple[str, float]]:
    import torch.nn as nn

    if isinstance(module, nn.ReLU6):  # before ReLU-like checks: ReLU6 is a Hardtanh
        return "relu6", 0.01
    if isinstance(module, nn.Hardtanh) and (module.min_val, module.max_val) == (0.0, 6.0):
        return "relu6", 0.01
    if isinstance(module, nn.ReLU):
        return "relu", 0.01
    if isinstance(module, nn.LeakyReLU):
        return "leaky_relu", float(module.negative_slope)
    if isinstance(module, nn.Tanh):
        return "tanh", 0.01
    if isinstance(module, nn.Sigmoid):
        return "sigmoid", 0.01
    return None


def _parts(module: Any) -> List[Any]:
    import torch.nn as nn

    return list(module) if isinstance(module, nn.Sequential) else [module]


def _numpy(tensor: Any) -> np.ndarray:
    # as_array: bfloat16 parameters through their bits (torch has no NumPy bfloat16)
    return np.array(_p.as_array(tensor.detach().cpu(), "parameter"), copy=True)


def _fold_batchnorm(weight: np.ndarray, bias: Optional[np.ndarray], bn: Any, transposed: bool, groups: int) -> Tuple[np.ndarray, np.ndarray]:
    """w' = w * gamma/sqrt(var + eps) per output channel, b' = (b - mean) * that + beta."""
    if bn.training:
        raise ValueError(f"BatchNorm must be in eval mode to be folded (call .eval()), got {bn}")
    if not bn.track_running_stats or bn.running_mean is None:
        raise ValueError(f"BatchNorm without running statistics cannot be folded: {bn}")
    mean, var = _numpy(bn.running_mean).astype(np.float64), _numpy(bn.running_var).astype(np.float64)
    gamma = _numpy(bn.weight).astype(np.float64) if bn.affine else np.ones_like(mean)
    beta = _numpy(bn.bias).astype(np.float64) if bn.affine else np.zeros_like(mean)
    scale = gamma / np.sqrt(var + bn.eps)
    spatial = (1,) * (weight.ndim - 2)
    if transposed:  # (C_in, C_out/groups, *k): output channel g*cg_out + j
        c_in, cg_out = weight.shape[:2]
        per_group = weight.reshape((groups, c_in // groups, cg_out) + weight.shape[2:])
        folded = per_group * scale.reshape((groups, 1, cg_out) + spatial)
        new_weight = folded.reshape(weight.shape)
    else:
        new_weight = weight * scale.reshape((-1, 1) + spatial)
    base = np.zeros_like(mean) if bias is None else bias.astype(np.float64)
    new_bias = (base - mean) * scale + beta
    return new_weight.astype(weight.dtype), new_bias.astype(weight.dtype)


def _conv_module(cls: Any, module: Any) -> Any:
    import torch.nn as nn

    kinds = {"conv_transpose": (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d),
             "conv": (nn.Conv1d, nn.Conv2d, nn.Conv3d)}
    expected = kinds[cls._kind][cls._rank - 1]
    if not isinstance(module, expected):
        raise TypeError(f"{cls.__name__}.from_torch needs a torch.nn.{expected.__name__} first, got {type(module).__name__}")
    padding_mode = getattr(module, "padding_mode", "zeros")
    if padding_mode != "zeros":
        raise ValueError(f"padding_mode={padding_mode!r} is not supported (only 'zeros')")
    return module


def _settings(conv: Any, transposed: bool) -> Dict[str, Any]:
    padding = conv.padding if isinstance(conv.padding, str) else tuple(conv.padding)
    settings: Dict[str, Any] = dict(stride=tuple(conv.stride), padding=padding, dilation=tuple(conv.dilation), groups=conv.groups)
    if transposed:
        settings["output_padding"] = tuple(conv.output_padding)
    return settings


def layer_from_torch(cls: Any, module: Any, **options: Any) -> Any:
    """``cls`` (a conv or transposed-conv layer class) from ``module`` or a Sequential of
    (conv, [BatchNorm], [activation])."""
    import torch.nn as nn

    parts = _parts(module)
    conv = _conv_module(cls, parts[0])
    transposed = cls._kind == "conv_transpose"
    weight = _numpy(conv.weight)
    bias = None if conv.bias is None else _numpy(conv.bias)
    rest = parts[1:]
    batchnorms = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
    if rest and isinstance(rest[0], batchnorms):
        weight, bias = _fold_batchnorm(weight, bias, rest[0], transposed, conv.groups)
        rest = rest[1:]
    activation, slope = None, 0.01
    if rest:
        found = _activation_of(rest[0])
        if found is None or len(rest) > 1:
            raise ValueError(f"unsupported module after the convolution: {rest[0]!r} (supported: BatchNorm, "
                             "ReLU, ReLU6, LeakyReLU, Tanh, Sigmoid)")
        activation, slope = found
    options = {k: v for k, v in options.items() if v is not None}
    return cls(weight, bias, activation=activation, negative_slope=slope, **_settings(conv, transposed), **options)


def subpixel_from_torch(cls: Any, module: Any, **options: Any) -> Any:
    """``cls`` from ``nn.Sequential(nn.Conv2d, [activation], nn.PixelShuffle)``."""
    import torch.nn as nn

    parts = _parts(module)
    if cls._rank != 2 or len(parts) not in (2, 3) or not isinstance(parts[0], nn.Conv2d) or not isinstance(parts[-1], nn.PixelShuffle):
        raise TypeError(f"{cls.__name__}.from_torch needs nn.Sequential(nn.Conv2d, [activation], nn.PixelShuffle), got {module!r}")
    conv = _conv_module(type("_Conv2d", (), {"_kind": "conv", "_rank": 2}), parts[0])
    activation, slope = None, 0.01
    if len(parts) == 3:
        found = _activation_of(parts[1])
        if found is None:
            raise ValueError(f"unsupported activation {parts[1]!r} (supported: ReLU, ReLU6, LeakyReLU, Tanh, Sigmoid)")
        activation, slope = found  # elementwise: it commutes with the shuffle
    weight = _numpy(conv.weight)
    bias = None if conv.bias is None else _numpy(conv.bias)
    options = {k: v for k, v in options.items() if v is not None}
    return cls(weight, int(parts[-1].upscale_factor), bias, activation=activation, negative_slope=slope,
               **_settings(conv, False), **options)
