"""Threads and build configuration."""

from __future__ import annotations

import warnings
from typing import Any

from . import _core, _params

SIMD_ENV_VAR = "SUBPIXEL_EXT_SIMD"
SIMD_LEVELS = ("baseline", "avx2", "avx512")  # accepted values of SIMD_ENV_VAR, in any case


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
    ``SUBPIXEL_EXT_SIMD=baseline|avx2|avx512`` (any case) when it is set (read once, at first
    use; any other value is ignored with a warning at import).

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


def warn_on_unknown_simd_request() -> None:
    """Warn when SUBPIXEL_EXT_SIMD is set to a value that is not applied, naming the accepted ones."""
    cfg = _core.config()
    requested = str(cfg.get("simd_requested", ""))
    # The native side reports whether it applied the value; a known level it did not apply is
    # as ignored as a typo.
    if not requested or (requested.lower() in SIMD_LEVELS and cfg.get("simd_request_understood", True)):
        return
    warnings.warn(
        f"{SIMD_ENV_VAR}={requested!r} is not understood and is ignored; accepted values (any "
        f"case): {', '.join(SIMD_LEVELS)}. SIMD level in use: {cfg['simd_active']}",
        RuntimeWarning,
        stacklevel=2,
    )


warn_on_unknown_simd_request()
