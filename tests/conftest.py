"""pytest configuration of the subpixel_ext test suite: hypothesis profiles and fixtures.

Importable helpers live in ``_helpers.py`` (tolerances, the oracle comparison, inputs, process
tools) and hypothesis strategies in ``strategies.py``; test modules import them directly.

Hypothesis profiles: "ci" (200 examples per test, no deadline; the default) and "dev"
(30 examples). Select with the environment variable ``HYPOTHESIS_PROFILE``.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

# Re-exported for test modules that still import helpers from conftest (test_weights.py).
from _helpers import *  # noqa: F401,F403
from _helpers import __all__ as _helper_names  # noqa: F401
from strategies import conv2d_configs, conv_transpose_configs, padding_strategy  # noqa: F401

# ----------------------------------------------------------------------------- hypothesis

_COMMON = dict(
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    print_blob=True,
)
settings.register_profile("ci", max_examples=200, **_COMMON)
settings.register_profile("dev", max_examples=30, **_COMMON)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20240611)
