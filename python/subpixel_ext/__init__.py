"""Transposed convolution and sub-pixel convolution on the CPU, fast and exactly.

Shi et al. 2016 ("Is the deconvolution layer the same as a convolutional layer?") show that a
strided transposed convolution equals a convolution in low-resolution space with stride**2
sub-kernels followed by a periodic shuffle. Both forms run here as native kernels; the NumPy
oracle in :mod:`subpixel_ext.reference` defines the truth they are tested against.
"""

from ._api import (
    conv2d,
    conv_transpose2d,
    pixel_shuffle,
    pixel_unshuffle,
    split_kernel,
    subpixel_conv2d,
    zero_insert,
)
from ._config import get_num_threads, set_num_threads, show_config
from ._weights import DeconvWeight, PolyphaseWeight, deconv_weight, polyphase_weight

__version__ = str(show_config()["version"])

__all__ = [
    "DeconvWeight",
    "PolyphaseWeight",
    "conv2d",
    "conv_transpose2d",
    "deconv_weight",
    "get_num_threads",
    "pixel_shuffle",
    "pixel_unshuffle",
    "polyphase_weight",
    "set_num_threads",
    "show_config",
    "split_kernel",
    "subpixel_conv2d",
    "zero_insert",
]
