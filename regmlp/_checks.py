"""Small argument checks shared by the package.

Every public entry point validates its arguments with these helpers, so that a
wrong call fails early with a message that names the argument and says what was
expected, instead of a broadcasting error from deep inside NumPy.
"""

from __future__ import annotations

import math
from numbers import Real

import numpy as np

__all__ = ["as_array", "check_number", "check_int", "check_flag", "check_seed",
           "check_float_dtype", "check_finite_array", "as_generator"]


def check_seed(seed: object, name: str = "seed") -> int:
    """Check that ``seed`` is a non-negative integer (``bool`` refused), as NumPy needs."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"{name} must be a non-negative int seed, "
                        f"got {type(seed).__name__} {seed!r}")
    if seed < 0:
        raise ValueError(f"{name} must be a non-negative int seed, got {seed}")
    return int(seed)


def as_generator(rng: np.random.Generator | int | None, name: str = "rng") -> np.random.Generator:
    """Return a :class:`numpy.random.Generator` built from ``rng``.

    ``None`` gives a fresh, unpredictably seeded generator, a non-negative
    ``int`` a seeded one (checked by :func:`check_seed`), and a ``Generator``
    is returned as it is (so that several layers can share one stream).
    NumPy's global random state is never used.
    """
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None:
        return np.random.default_rng()
    if isinstance(rng, bool) or not isinstance(rng, (int, np.integer)):
        raise TypeError(f"{name} must be a numpy.random.Generator, an int seed or None, "
                        f"got {rng!r}")
    return np.random.default_rng(check_seed(rng, name))


def check_flag(value: object, name: str) -> bool:
    """Check that ``value`` is ``True`` or ``False`` (a NumPy bool too); strings are refused."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def check_float_dtype(dtype: object, name: str = "dtype") -> np.dtype:
    """Return ``np.dtype(dtype)`` if it is a floating-point dtype, else a ``TypeError``."""
    try:
        result = np.dtype(dtype)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        result = None
    if result is None or result.kind != "f":
        raise TypeError(f"{name} must be a floating-point NumPy dtype "
                        f"(np.float64, np.float32 or 'float64', ...), got {dtype!r}")
    return result


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
    try:
        arr = np.asarray(x)
    except ValueError as err:  # ragged nested lists: "inhomogeneous shape"
        raise ValueError(f"{name} must be a rectangular array; a nested list whose rows "
                         f"have different lengths cannot be one ({err})") from None
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
