r"""Checkers for the exercises of chapter 3, *Early stopping*.

* :func:`check_should_stop` -- ``should_stop(valid_losses, patience, min_delta=0.0)``,
  the stopping rule of ``regmlp.EarlyStopping`` on a list of losses: an epoch
  improves when its loss is below ``best - min_delta``; training stops after
  ``patience`` epochs in a row without improvement;
* :func:`check_retrain_epochs` -- ``retrain_epochs(best_epoch, n_train,
  n_valid, batch_size)``, the number of epochs on train + validation that makes
  as many parameter updates as the early-stopped run (Goodfellow et al.'s
  algorithm 7.2). (DESIGN §7's bug, an early stopping that keeps the last
  weights, is caught by ``tests/test_callbacks.py``.)

The references are written here from the rules, independently of
``regmlp.callbacks.EarlyStopping``; the tests check that the two agree.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

from ._common import call_pure, passed, run_learner_code

__all__ = ["check_should_stop"]


# -- the rule ---------------------------------------------------------------------------

def _wait_and_best(losses: Sequence[float], min_delta: float) -> tuple[int, int | None, bool]:
    """Epochs since the last improvement, the best epoch, and whether the last epoch improved."""
    best, best_epoch, wait, improved = math.inf, None, 0, False
    for epoch, loss in enumerate(losses):
        wait += 1
        improved = loss < best - min_delta
        if improved:
            best, best_epoch, wait = loss, epoch, 0
    return wait, best_epoch, improved


def _should_stop(losses: Sequence[float], patience: int, min_delta: float) -> bool:
    """Stop at the end of an epoch that did not improve once ``wait >= patience``."""
    wait, _, improved = _wait_and_best(losses, min_delta)
    return bool(losses) and not improved and wait >= patience


# -- exercise 1: the decision -------------------------------------------------------------

# (losses, patience, min_delta, hint when the learner's answer differs). Every loss and
# min_delta is a multiple of 1/64, exact in binary, so that `loss < best - min_delta` and
# `best - loss > min_delta` agree, and a tie is a true tie.
_CASES: list[tuple[list[float], int, float, str]] = [
    ([3.0, 2.0, 1.0, 1.5, 1.625, 1.75, 0.5], 3, 0.0,
     "patience counts the epochs in a row without improvement: with patience=3 the "
     "answer is True right after the 3rd such epoch, not before and not one epoch later. "
     "Count `wait` = epochs since the last improvement (0 right after one) and stop when "
     "wait >= patience."),
    ([2.0, 1.0, 1.25, 0.875], 0, 0.0,
     "patience=0 means: stop at the first epoch that does not improve (and never on an "
     "epoch that does; the first epoch always improves on best = infinity)."),
    ([2.0, 1.0, 1.0, 1.0, 1.0], 3, 0.0,
     "a loss EQUAL to the best is not an improvement: compare strictly, "
     "loss < best - min_delta, not <=. Otherwise a plateau resets the patience forever."),
    ([1.0, 1.5, 1.25, 1.125], 3, 0.0,
     "an improvement must beat the BEST loss so far, not merely the previous epoch's: "
     "after a rise, coming part of the way back down (1.5 -> 1.25) is not progress."),
    ([1.0, 0.9375, 0.921875, 0.90625, 0.8984375], 3, 0.125,
     "with min_delta an epoch improves only if loss < best - min_delta: these small "
     "drops (less than min_delta=0.125) do not count, so patience runs out."),
    ([1.0, 0.9375, 0.875, 0.8125, 0.75, 0.6875], 3, 0.125,
     "move `best` only when an epoch counts as an improvement (loss < best - min_delta), "
     "and keep it there otherwise. If best follows every new minimum, a steady descent of "
     "less than min_delta per epoch is never an improvement, although over three epochs "
     "it beats the last improvement by more than min_delta."),
    ([1.0, 0.875, 0.8125, 0.75], 1, 0.125,
     "a loss exactly min_delta below the best is not an improvement: compare strictly, "
     "loss < best - min_delta, not <=."),
]


def _random_cases(n: int = 120) -> list[tuple[list[float], int, float]]:
    """Random curves on a grid of 1/64 (ties happen, and they are exact)."""
    rng = np.random.default_rng(303)
    cases = []
    for _ in range(n):
        length = int(rng.integers(1, 15))
        steps = rng.integers(-6, 5, length)                       # in units of 1/64
        losses = [float(v) / 64 for v in 64 + np.cumsum(steps)]
        cases.append((losses, int(rng.integers(0, 5)), float(rng.choice([0, 0, 3])) / 64))
    return cases


def _ask(should_stop: Callable[..., object], losses: list[float], patience: int,
         min_delta: float) -> bool:
    """The learner's answer; with ``min_delta=0`` the argument is left to its default."""
    what = f"should_stop({losses}, patience={patience}, min_delta={min_delta:g})"
    extra = (min_delta,) if min_delta else ()
    answer = call_pure(should_stop, list(losses), patience, *extra, what=what,
                       names=("valid_losses",))
    if not isinstance(answer, (bool, np.bool_)):
        raise AssertionError(f"{what} returned {answer!r} ({type(answer).__name__}); "
                             "return True or False.")
    return bool(answer)


def check_should_stop(should_stop: Callable[..., object]) -> None:
    r"""Check ``should_stop(valid_losses, patience, min_delta=0.0) -> bool``.

    ``valid_losses`` holds the validation loss of every epoch so far (at least
    one). The answer is whether training should stop now, after the last of
    them, by ``regmlp.EarlyStopping``'s rule: an epoch **improves** when its
    loss is below ``best - min_delta`` (``best`` is the loss of the last
    improving epoch, infinity at the start); ``wait`` counts the epochs since
    the last improvement; stop when the last epoch did not improve and
    ``wait >= patience``. Every prefix of several hand-made curves (one per
    usual mistake) and of 120 random ones is tried; the losses are multiples of
    1/64, so that ties are exact, and ``min_delta=0`` is left to the default.
    """
    for losses, patience, min_delta, hint in _CASES:
        for n in range(1, len(losses) + 1):
            prefix = losses[:n]
            expected = _should_stop(prefix, patience, min_delta)
            got = _ask(should_stop, prefix, patience, min_delta)
            if got != expected:
                wait = _wait_and_best(prefix, min_delta)[0]
                raise AssertionError(
                    f"should_stop({prefix}, patience={patience}, min_delta={min_delta:g}) "
                    f"returned {got}, expected {expected} (epochs since the last improvement: "
                    f"{wait}). Hint: {hint}")
    for losses, patience, min_delta in _random_cases():
        for n in range(1, len(losses) + 1):
            prefix = losses[:n]
            expected = _should_stop(prefix, patience, min_delta)
            got = _ask(should_stop, prefix, patience, min_delta)
            if got != expected:
                wait, best_epoch, _ = _wait_and_best(prefix, min_delta)
                raise AssertionError(
                    f"should_stop({prefix}, patience={patience}, min_delta={min_delta:g}) "
                    f"returned {got}, expected {expected}: the last improvement was epoch "
                    f"{best_epoch} (loss {prefix[best_epoch]}), {wait} epoch(s) ago. An "
                    "epoch improves when loss < best - min_delta, and only then is best "
                    "updated and wait reset to 0; stop when the last epoch did not improve "
                    "and wait >= patience.")
    passed("should_stop follows EarlyStopping's rule on every curve.")


# -- exercise: how long to retrain on train + validation -----------------------------------

def _updates_per_epoch(n: int, batch_size: int) -> int:
    """Mini-batches per epoch: the last, smaller batch is an update too."""
    return math.ceil(n / batch_size)


def _retrain_epochs(best_epoch: int, n_train: int, n_valid: int, batch_size: int) -> int:
    r"""Smallest number of epochs on train + validation with at least as many updates.

    The early-stopped run made :math:`U = (b + 1)\lceil n_{train}/B\rceil`
    updates up to and including its best epoch :math:`b`; one epoch on
    :math:`n_{train} + n_{valid}` examples makes
    :math:`\lceil (n_{train} + n_{valid})/B\rceil`.
    """
    updates = (best_epoch + 1) * _updates_per_epoch(n_train, batch_size)
    return math.ceil(updates / _updates_per_epoch(n_train + n_valid, batch_size))


# (best_epoch, n_train, n_valid, batch_size): together they tell every slip below apart
_RETRAIN_CASES = [(14, 2051, 440, 64), (11, 2051, 440, 64), (5, 70, 30, 16), (0, 2051, 440, 64),
                  (6, 2051, 440, 64)]

_RETRAIN_MISTAKES: list[tuple[Callable[[int, int, int, int], int], str]] = [
    (lambda b, nt, nv, bs: b + 1,
     "That is the same number of EPOCHS as the early-stopped run (what the chapter "
     "retrained for). The exercise asks for the same number of parameter UPDATES: an epoch "
     "on train + validation has more mini-batches, so fewer epochs are needed."),
    (lambda b, nt, nv, bs: math.ceil(b * math.ceil(nt / bs) / math.ceil((nt + nv) / bs)),
     "Epochs are counted from 0: up to and including its best epoch b, the run trained "
     "b + 1 epochs."),
    (lambda b, nt, nv, bs: (b + 1) * math.ceil(nt / bs) // math.ceil((nt + nv) / bs),
     "Rounding down gives fewer updates than the early-stopped run made; return the "
     "SMALLEST number of epochs with at least as many updates (round up)."),
    (lambda b, nt, nv, bs: round((b + 1) * math.ceil(nt / bs) / math.ceil((nt + nv) / bs)),
     "Rounding to the nearest can give fewer updates than the early-stopped run made; "
     "return the SMALLEST number of epochs with at least as many updates (round up)."),
    (lambda b, nt, nv, bs: math.ceil((b + 1) * (nt // bs) / ((nt + nv) // bs)),
     "The last, smaller mini-batch of an epoch is an update too: an epoch of n examples "
     "makes ceil(n / batch_size) updates, not n // batch_size."),
    (lambda b, nt, nv, bs: math.ceil((b + 1) * nt / (nt + nv)),
     "Count updates (mini-batches), not examples: an epoch of n examples makes "
     "ceil(n / batch_size) updates, and the ceilings do not cancel."),
    (lambda b, nt, nv, bs: round((b + 1) * nt / (nt + nv)),
     "Count updates (mini-batches, ceil(n / batch_size) per epoch), not examples, and "
     "round up."),
    (lambda b, nt, nv, bs: math.ceil((b + 1) * math.ceil((nt + nv) / bs) / math.ceil(nt / bs)),
     "The ratio is upside down: train + validation has MORE batches per epoch, so the "
     "same number of updates takes FEWER epochs."),
]


def check_retrain_epochs(retrain_epochs: Callable[..., object]) -> None:
    r"""Check ``retrain_epochs(best_epoch, n_train, n_valid, batch_size) -> int``.

    After early stopping chose ``best_epoch`` (counted from 0) on a run over
    ``n_train`` training examples, how many epochs over the ``n_train +
    n_valid`` examples of train + validation make at least as many parameter
    updates (mini-batches of ``batch_size``, the last one possibly smaller) as
    that run made up to and including its best epoch? The answer is the
    smallest such number (Goodfellow et al.'s algorithm 7.2 counts steps).
    """
    answers, expected = [], []
    for case in _RETRAIN_CASES:
        best_epoch, n_train, n_valid, batch_size = case
        what = (f"retrain_epochs(best_epoch={best_epoch}, n_train={n_train}, "
                f"n_valid={n_valid}, batch_size={batch_size})")
        got = run_learner_code(retrain_epochs, best_epoch, n_train, n_valid, batch_size,
                               what=what)
        if isinstance(got, (bool, np.bool_)) or not isinstance(got, (int, np.integer)):
            raise AssertionError(f"{what} returned {got!r} ({type(got).__name__}); return a "
                                 "whole number of epochs, an int (math.ceil gives one).")
        answers.append(int(got))
        expected.append(_retrain_epochs(*case))
    if answers == expected:
        passed("retrain_epochs: the smallest number of epochs with as many updates.")
        return
    for mistake, hint in _RETRAIN_MISTAKES:
        if answers == [mistake(*case) for case in _RETRAIN_CASES]:
            raise AssertionError(f"retrain_epochs returned {answers} for the cases "
                                 f"{_RETRAIN_CASES}, expected {expected}. {hint}")
    raise AssertionError(
        f"retrain_epochs returned {answers} for the cases (best_epoch, n_train, n_valid, "
        f"batch_size) = {_RETRAIN_CASES}, expected {expected}. The early-stopped run made "
        "(best_epoch + 1) * ceil(n_train / batch_size) updates; one epoch on train + "
        "validation makes ceil((n_train + n_valid) / batch_size); return the smallest number "
        "of such epochs with at least as many updates.")


__all__ += ["check_retrain_epochs"]
