"""Threads and build configuration."""

from __future__ import annotations

from typing import Any

from . import _core, _params


def get_num_threads() -> int:
    """Threads a call uses when ``num_threads`` is not given.

    ``set_num_threads`` wins when it was called; otherwise OpenMP's default, which honours
    ``OMP_NUM_THREADS`` and ``threadpoolctl``. Always 1 in a process created by ``fork()``
    (GNU OpenMP's thread pool does not survive a fork) and in a build without OpenMP.

    Examples
    --------
    >>> import subpixel_ext as spx
    >>> spx.get_num_threads() >= 1
    True
    """
    return int(_core.get_num_threads())


def set_num_threads(n: int) -> None:
    """Set the default thread count for all later calls, from every Python thread.

    A call's own ``num_threads=`` still wins. Results are bit-identical for any count.

    Examples
    --------
    >>> import subpixel_ext as spx
    >>> before = spx.get_num_threads()
    >>> spx.set_num_threads(1); spx.get_num_threads()
    1
    >>> spx.set_num_threads(before)
    """
    _core.set_num_threads(_params.num_threads(n))


def show_config() -> dict[str, Any]:
    """Version, compiler, OpenMP and SIMD levels (compiled, supported by this CPU, in use).

    The level in use is the best one this CPU supports, capped by the environment variable
    ``SUBPIXEL_EXT_SIMD=baseline|avx2|avx512`` when it is set (read once, at first use).

    Examples
    --------
    >>> import subpixel_ext as spx
    >>> cfg = spx.show_config()
    >>> cfg["simd_active"] in cfg["simd_supported"].split(",")
    True
    """
    cfg = dict(_core.config())
    cfg["num_threads"] = get_num_threads()
    return cfg
