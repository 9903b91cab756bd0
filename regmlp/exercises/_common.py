"""What every exercise checker shares.

A checker takes the learner's code (usually a function), runs it on small,
fixed inputs, compares the result with the right answer and raises
``AssertionError`` with a message a learner can act on: what was expected, what
came back, and the most likely cause. When everything is right it prints one
line (or more, within 79 characters) saying so.

The helpers here carry the patterns every checker repeats, in the order a
checker applies them (types and in-place changes before values, so that a
learner is told what is really wrong rather than shown a NumPy traceback):

* :func:`run_learner_code` calls the learner's function and turns any exception
  into feedback (a stub's ``NotImplementedError`` into "not written yet");
* :func:`call_pure` does the same and then requires that no argument was changed
  in place;
* :func:`expect_tuple` checks that a result is a tuple (or list) of the right
  length ("must return a pair (weights, intercepts)");
* :func:`as_array` and :func:`as_number` turn a returned value into a float
  array or a float, or say why they cannot;
* :func:`diagnose` compares a wrong answer with the known mistakes and raises the
  hint of the first that matches;
* :func:`assert_close` compares with the right answer and reports the largest
  difference.
"""

from __future__ import annotations

import copy
import textwrap
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

__all__ = ["run_learner_code", "assert_close", "passed", "call_pure", "expect_tuple",
           "as_array", "as_number", "diagnose", "unchanged"]

_COUNT_WORDS = {2: "a pair", 3: "a triple"}


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


def _snapshot(value: Any) -> Any:
    """A deep copy of an argument, to compare with after the learner's call."""
    if isinstance(value, np.ndarray):
        return value.copy()
    if hasattr(value, "copy") and hasattr(value, "equals"):       # a pandas object
        return value.copy(deep=True)
    return copy.deepcopy(value)


def unchanged(before: Any, after: Any) -> bool:
    """Whether ``after`` still equals the snapshot ``before`` (arrays, frames, lists, dicts)."""
    if isinstance(before, np.ndarray):
        return (isinstance(after, np.ndarray) and before.shape == after.shape
                and np.array_equal(before, after, equal_nan=before.dtype.kind in "fc"))
    if hasattr(before, "equals"):                                   # a pandas object
        return type(before) is type(after) and bool(before.equals(after)) \
            and list(getattr(before, "columns", [])) == list(getattr(after, "columns", []))
    if isinstance(before, dict):
        return (isinstance(after, dict) and list(before) == list(after)
                and all(unchanged(before[k], after[k]) for k in before))
    if isinstance(before, (list, tuple)):
        return (type(before) is type(after) and len(before) == len(after)
                and all(unchanged(b, a) for b, a in zip(before, after, strict=True)))
    if isinstance(before, (int, float, complex, str, bytes, np.generic)) or before is None:
        return type(before) is type(after) and (before == after or before != before)
    return True                                  # other objects: not compared


def call_pure(fn: Callable[..., Any], *args: Any, what: str, names: Sequence[str | None],
              hint: str = "", **kwargs: Any) -> Any:
    """Call the learner's ``fn(*args, **kwargs)`` and require that no argument changed.

    ``names`` names the positional arguments, in order (for the message); only
    those named are watched (``None`` skips one, e.g. a model whose state the
    checker follows itself). The check comes before any check of the result,
    since a function that changes its input can look right or wrong for the
    wrong reason.
    """
    watched = [(name, value) for name, value in zip(names, args, strict=False) if name]
    before = [_snapshot(value) for _, value in watched]
    result = run_learner_code(fn, *args, what=what, **kwargs)
    for (name, value), old in zip(watched, before, strict=True):
        if not unchanged(old, value):
            raise AssertionError(
                f"{what} changed its input {name} in place. Only read the arguments and "
                f"return new objects{': ' + hint if hint else '.'}")
    return result


def expect_tuple(result: Any, n: int, *, what: str, names: str) -> tuple:
    """Require ``result`` to be a tuple or list of ``n`` items; return it as a tuple.

    ``names`` is the pattern shown to the learner, e.g. ``"(weights, intercepts)"``.
    """
    word = _COUNT_WORDS.get(n, f"{n} values")
    if not isinstance(result, (tuple, list)) or len(result) != n:
        got = type(result).__name__
        if isinstance(result, (tuple, list)):
            got += f" of length {len(result)}"
        raise AssertionError(f"{what} must return {word} {names}, got {got}.")
    return tuple(result)


def as_array(value: Any, *, what: str, shape: tuple[int, ...] | None = None,
             hint: str = "") -> np.ndarray:
    """``value`` as a float64 array (of ``shape``, when given), or feedback saying why not."""
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise AssertionError(f"{what} must be an array of numbers, got "
                             f"{type(value).__name__} {_short(value)}.") from None
    if shape is not None and arr.shape != tuple(shape):
        raise AssertionError(f"{what} has shape {arr.shape}, expected {tuple(shape)}"
                             f"{': ' + hint if hint else '.'}")
    return arr


def as_number(value: Any, *, what: str) -> float:
    """``value`` as a float (a Python or NumPy number, or an array of one element)."""
    if isinstance(value, (bool, np.bool_)) or np.ndim(value) != 0:
        raise AssertionError(f"{what} must be one number, got {type(value).__name__} "
                             f"{_short(value)}.")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise AssertionError(f"{what} must be a number, got {type(value).__name__} "
                             f"{_short(value)}.") from None


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _allclose(a: Any, b: Any, rtol: float, atol: float) -> bool:
    a_arr, b_arr = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return a_arr.shape == b_arr.shape and bool(np.allclose(a_arr, b_arr, rtol=rtol, atol=atol))


def diagnose(got: Any, mistakes: Iterable[tuple[Any, str]], *, what: str,
             match: Callable[[Any, Any], bool] | None = None,
             rtol: float = 1e-7, atol: float = 1e-10,
             template: str = "{what} is wrong. {hint}") -> None:
    """Raise the hint of the first known mistake whose result ``got`` matches.

    ``mistakes`` holds ``(result of the mistake, hint)`` pairs; a result may be
    given as a function of no arguments, computed only when it is reached.
    ``match(got, candidate)`` decides a match (default: same shape and
    ``np.allclose`` with ``rtol`` and ``atol``). The message is ``template``
    filled with ``what`` and the mistake's ``hint``. Returns when nothing matches.
    """
    same = match if match is not None else (lambda a, b: _allclose(a, b, rtol, atol))
    for candidate, hint in mistakes:
        value = candidate() if callable(candidate) else candidate
        if same(got, value):
            raise AssertionError(template.format(what=what, hint=hint))


def assert_close(actual: Any, expected: np.ndarray, *, what: str, hint: str,
                 rtol: float = 1e-7, atol: float = 1e-10) -> None:
    """Assert ``actual`` has ``expected``'s shape and values, with an actionable message."""
    actual_arr = as_array(actual, what=what)
    if actual_arr.shape != np.shape(expected):
        raise AssertionError(f"{what} has shape {actual_arr.shape}, expected {np.shape(expected)}.")
    if not np.allclose(actual_arr, expected, rtol=rtol, atol=atol):
        with np.errstate(invalid="ignore"):
            worst = float(np.nanmax(np.abs(actual_arr - expected))) \
                if np.isfinite(actual_arr).any() else float("nan")
        if not np.isfinite(actual_arr).all():
            raise AssertionError(f"{what} holds NaN or inf. {hint}")
        raise AssertionError(f"{what} is wrong (largest difference {worst:.3g}). {hint}")


def passed(message: str) -> None:
    """Report a passed check, in lines of at most 79 characters (the book's code width)."""
    print(textwrap.fill(f"Correct: {message}", width=79, subsequent_indent="  ",
                        break_long_words=False, break_on_hyphens=False))
