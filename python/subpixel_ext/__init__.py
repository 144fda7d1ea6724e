"""Transposed convolution and sub-pixel convolution on the CPU, fast and exactly.

Shi et al. 2016 ("Is the deconvolution layer the same as a convolutional layer?") show that a
strided transposed convolution equals a convolution in low-resolution space with prod(stride)
sub-kernels followed by a periodic shuffle. Both forms run here as native kernels, in 1-D, 2-D
and 3-D, as functions and as prepacked layers; the NumPy oracle in
:mod:`subpixel_ext.reference` defines the truth they are tested against.
"""

from ._api import (
    conv1d,
    conv2d,
    conv3d,
    conv_transpose1d,
    conv_transpose2d,
    conv_transpose3d,
    pixel_shuffle,
    pixel_unshuffle,
    split_kernel,
    subpixel_conv1d,
    subpixel_conv2d,
    subpixel_conv3d,
    zero_insert,
)
from ._backward import (
    conv1d_backward,
    conv2d_backward,
    conv3d_backward,
    conv_transpose1d_backward,
    conv_transpose2d_backward,
    conv_transpose3d_backward,
)
from ._config import get_num_threads, set_num_threads, show_config
from ._layers import (
    Conv1d,
    Conv2d,
    Conv3d,
    ConvTranspose1d,
    ConvTranspose2d,
    ConvTranspose3d,
    SubPixelConv1d,
    SubPixelConv2d,
    SubPixelConv3d,
)
from ._weights import DeconvWeight, PolyphaseWeight, deconv_weight, polyphase_weight

__version__ = str(show_config()["version"])

__all__ = [
    "Conv1d",
    "Conv2d",
    "Conv3d",
    "ConvTranspose1d",
    "ConvTranspose2d",
    "ConvTranspose3d",
    "DeconvWeight",
    "PolyphaseWeight",
    "SubPixelConv1d",
    "SubPixelConv2d",
    "SubPixelConv3d",
    "conv1d",
    "conv1d_backward",
    "conv2d",
    "conv2d_backward",
    "conv3d",
    "conv3d_backward",
    "conv_transpose1d",
    "conv_transpose1d_backward",
    "conv_transpose2d",
    "conv_transpose2d_backward",
    "conv_transpose3d",
    "conv_transpose3d_backward",
    "deconv_weight",
    "get_num_threads",
    "pixel_shuffle",
    "pixel_unshuffle",
    "polyphase_weight",
    "set_num_threads",
    "show_config",
    "split_kernel",
    "subpixel_conv1d",
    "subpixel_conv2d",
    "subpixel_conv3d",
    "zero_insert",
]
