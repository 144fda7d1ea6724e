"""Type aliases of the public signatures (instead of ``Any``)."""

from __future__ import annotations

from typing import Sequence, Tuple, Union

from numpy.typing import ArrayLike

__all__ = ["ArrayLike", "IntOrTuple", "Layout", "OutputSize", "Padding"]

#: One int for every spatial axis, or one per axis.
IntOrTuple = Union[int, Sequence[int]]
#: "same" / "valid", one int for every axis, one per axis, or one (begin, end) pair per axis.
Padding = Union[int, str, Sequence[int], Sequence[Tuple[int, int]]]
#: "NCHW", "NHWC" (per rank: "NCL"/"NLC", "NCDHW"/"NDHWC"), "channels_first", "channels_last".
Layout = str
#: The spatial output size, or a longer sequence (such as a tensor's ``size()``) ending in it.
OutputSize = Union[int, Sequence[int]]
