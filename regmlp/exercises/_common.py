"""What every exercise checker shares.

A checker takes the learner's code (usually a function), runs it on small,
fixed inputs, compares with the right answer and raises ``AssertionError``
with a message a learner can act on: what was expected, what came back, and
the most likely cause. When everything is right it prints one line saying so.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["run_learner_code", "assert_close", "passed"]


def run_learner_code(fn: Callable[..., Any], *args: Any, what: str, **kwargs: Any) -> Any:
    """Call ``fn`` and turn any exception into an ``AssertionError`` that says where it came from.

    A stub that still raises ``NotImplementedError`` gets a message saying the
    exercise is not done yet, rather than a traceback.
    """
    if not callable(fn):
        raise AssertionError(f"{what}: expected a function, got {type(fn).__name__}")
    try:
        return fn(*args, **kwargs)
    except NotImplementedError as exc:
        raise AssertionError(f"{what} is not written yet: it raised NotImplementedError "
                             f"({exc}). Replace the stub's body with your code.") from exc
    except Exception as exc:  # noqa: BLE001 - any learner error becomes feedback
        raise AssertionError(f"{what} raised {type(exc).__name__}: {exc}") from exc


def assert_close(actual: Any, expected: np.ndarray, *, what: str, hint: str,
                 rtol: float = 1e-7, atol: float = 1e-10) -> None:
    """Assert ``actual`` has ``expected``'s shape and values, with an actionable message."""
    actual_arr = np.asarray(actual)
    if actual_arr.shape != np.shape(expected):
        raise AssertionError(f"{what} has shape {actual_arr.shape}, expected {np.shape(expected)}.")
    if not np.allclose(actual_arr, expected, rtol=rtol, atol=atol):
        worst = float(np.max(np.abs(actual_arr - expected)))
        raise AssertionError(f"{what} is wrong (largest difference {worst:.3g}). {hint}")


def passed(message: str) -> None:
    """Report a passed check."""
    print(f"Correct: {message}")
