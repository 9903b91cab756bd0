"""Small argument checks shared by the package.

Every public entry point validates its arguments with these helpers, so that a
wrong call fails early with a message that names the argument and says what was
expected, instead of a broadcasting error from deep inside NumPy.
"""

from __future__ import annotations

import math
from numbers import Real

import numpy as np

__all__ = ["as_array", "check_number", "check_int", "check_finite_array", "as_generator"]


def as_generator(rng: np.random.Generator | int | None, name: str = "rng") -> np.random.Generator:
    """Return a :class:`numpy.random.Generator` built from ``rng``.

    ``None`` gives a fresh, unpredictably seeded generator, an ``int`` a seeded
    one, and a ``Generator`` is returned as it is (so that several layers can
    share one stream). NumPy's global random state is never used.
    """
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None or (isinstance(rng, (int, np.integer)) and not isinstance(rng, bool)):
        return np.random.default_rng(rng)
    raise TypeError(f"{name} must be a numpy.random.Generator, an int seed or None, got {rng!r}")


def check_number(
    value: object,
    name: str,
    *,
    low: float | None = None,
    high: float | None = None,
    low_inclusive: bool = True,
    high_inclusive: bool = True,
) -> float:
    """Check that ``value`` is a finite real number inside the given bounds."""
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__} {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    too_low = low is not None and (value < low or (value == low and not low_inclusive))
    too_high = high is not None and (value > high or (value == high and not high_inclusive))
    if too_low or too_high:
        lo = "-inf" if low is None else f"{low:g}"
        hi = "inf" if high is None else f"{high:g}"
        left = "[" if low_inclusive and low is not None else "("
        right = "]" if high_inclusive and high is not None else ")"
        raise ValueError(f"{name} must be in {left}{lo}, {hi}{right}, got {value:g}")
    return value


def check_int(value: object, name: str, *, low: int = 0) -> int:
    """Check that ``value`` is an integer (``bool`` refused) and at least ``low`` (0 or 1)."""
    kind = "a positive integer" if low == 1 else "a non-negative integer"
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be {kind}, got {value!r}")
    if value < low:
        raise ValueError(f"{name} must be {kind}, got {value}")
    return int(value)


def as_array(x: object, name: str, dtype: np.dtype | type | None = None) -> np.ndarray:
    """Convert ``x`` to a numeric NumPy array, raising ``TypeError`` for anything else.

    Booleans, strings and objects are refused; numbers are converted to
    ``dtype`` when it is given (without a copy when they already have it).
    """
    arr = np.asarray(x)
    if arr.dtype.kind not in "iuf":
        raise TypeError(f"{name} must be a numeric (integer or float) array, "
                        f"got dtype {arr.dtype}")
    if dtype is not None and arr.dtype != dtype:
        arr = arr.astype(dtype)
    return arr


def check_finite_array(x: np.ndarray, name: str) -> np.ndarray:
    """Raise ``ValueError`` if ``x`` holds NaN or infinity."""
    if not np.isfinite(x).all():
        bad = int(np.size(x) - np.count_nonzero(np.isfinite(x)))
        raise ValueError(f"{name} must be finite, but it holds {bad} NaN or infinite value(s)")
    return x
