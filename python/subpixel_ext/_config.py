"""Threads and build configuration."""

from __future__ import annotations

from typing import Any

from . import _core, _params


def get_num_threads() -> int:
    """Threads a call uses when ``num_threads`` is not given.

    ``set_num_threads`` wins when it was called; otherwise OpenMP's default, which honours
    ``OMP_NUM_THREADS`` and ``threadpoolctl``. Always 1 in a process created by ``fork()``
    (GNU OpenMP's thread pool does not survive a fork) and in a build without OpenMP.
    """
    return int(_core.get_num_threads())


def set_num_threads(n: int) -> None:
    """Set the default thread count for all later calls, from every Python thread."""
    _core.set_num_threads(_params.num_threads(n))


def show_config() -> dict[str, Any]:
    """Version, compiler, OpenMP and SIMD levels (compiled, supported by this CPU, in use).

    The level in use is the best one this CPU supports, capped by the environment variable
    ``SUBPIXEL_EXT_SIMD=baseline|avx2|avx512`` when it is set (read once, at first use).
    """
    cfg = dict(_core.config())
    cfg["num_threads"] = get_num_threads()
    return cfg
