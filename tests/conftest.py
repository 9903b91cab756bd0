"""Helpers shared by several test files.

Plain functions are imported as ``from conftest import randn``; fixtures are
found by pytest. Nothing here changes the process environment: a test that
needs an environment variable sets it with ``monkeypatch.setenv``, which
undoes it when the test ends.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest


def randn(*shape: int, seed: int = 0) -> np.ndarray:
    """Standard normal values of the given shape from a seeded generator."""
    return np.random.default_rng(seed).standard_normal(shape)


def randomise_layernorm(ln, seed: int):
    """Give a LayerNorm a random gain (|g| in [0.5, 2], either sign) and shift.

    With the default gain 1 and shift 0, a wrong gradient of either can hide.
    """
    rng = np.random.default_rng(seed)
    ln.weight.value[...] = rng.uniform(0.5, 2.0, ln.dim) * rng.choice([-1.0, 1.0], ln.dim)
    ln.bias.value[...] = rng.standard_normal(ln.dim)
    return ln


def same_state(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> bool:
    """Whether two state dicts have the same keys and exactly equal arrays."""
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


@pytest.fixture(autouse=True)
def _close_figures():
    """Close the figures a test opened (only if it used pyplot at all)."""
    yield
    if "matplotlib.pyplot" in sys.modules:
        sys.modules["matplotlib.pyplot"].close("all")
