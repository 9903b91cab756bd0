"""The chapter 3 checkers accept the reference solutions and reject the usual mistakes.

The decision checker must catch the usual off-by-one, ``<=`` for ``<`` and
min_delta mistakes; the retraining checker the slips in counting epochs and
updates. (DESIGN.md section 7's early-stopping bug, keeping the last weights
instead of the best, is caught by tests/test_callbacks.py.) Each wrong version must fail with an
AssertionError whose message says what to fix.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from regmlp.callbacks import EarlyStopping, TrainState
from regmlp.exercises import check_should_stop
from regmlp.exercises.ch03_early_stopping import _CASES, _random_cases, _should_stop
from regmlp.layers import Dense

# -- the decision ---------------------------------------------------------------------


def should_stop(valid_losses, patience, min_delta=0.0):
    best, wait, improved = math.inf, 0, False
    for loss in valid_losses:
        wait += 1
        improved = loss < best - min_delta
        if improved:
            best, wait = loss, 0
    return not improved and wait >= patience


def _variant(*, late=0, ties=False, no_delta=False, running_min=False, previous=False):
    def decide(valid_losses, patience, min_delta=0.0):
        delta = 0.0 if no_delta else min_delta
        best, wait, improved, prev = math.inf, 0, False, math.inf
        for loss in valid_losses:
            wait += 1
            ref = prev if previous else best
            improved = loss <= ref - delta if ties else loss < ref - delta
            if improved:
                wait = 0
            if improved or running_min:
                best = min(best, loss) if running_min else loss
            prev = loss
        return not improved and wait >= patience + late
    return decide


def stop_min_window(valid_losses, patience, min_delta=0.0):
    """A compact rule people write: no new best in the last `patience` epochs."""
    if len(valid_losses) <= patience:
        return False
    cut = len(valid_losses) - patience
    recent = min(valid_losses[cut:], default=math.inf)
    return recent >= min(valid_losses[:cut]) - min_delta


def stop_returns_none(valid_losses, patience, min_delta=0.0):
    should_stop(valid_losses, patience, min_delta)


def stop_pops(valid_losses, patience, min_delta=0.0):
    answer = should_stop(valid_losses, patience, min_delta)
    valid_losses.pop()
    return answer


def stop_stub(valid_losses, patience, min_delta=0.0):
    raise NotImplementedError("Exercise: replace this line with your code.")


def stop_default_delta(valid_losses, patience, min_delta=0.1):
    """A default of its own for min_delta (the checker leaves min_delta=0 to the default)."""
    return should_stop(valid_losses, patience, min_delta)


def stop_sorts(valid_losses, patience, min_delta=0.0):
    answer = should_stop(valid_losses, patience, min_delta)
    valid_losses.sort()
    return answer


# Other correct solutions: the same rule as `best - loss > min_delta` (the form that failed on
# near-ties when the curves were rounded to two decimals), and one that tracks the index of
# the last improvement instead of a counter.
def stop_difference_form(valid_losses, patience, min_delta=0.0):
    best, wait, improved = math.inf, 0, False
    for loss in valid_losses:
        improved = best - loss > min_delta
        wait = 0 if improved else wait + 1
        best = loss if improved else best
    return not improved and wait >= patience


def stop_by_index(valid_losses, patience, min_delta=0.0):
    best, best_at = math.inf, -1
    for i, loss in enumerate(valid_losses):
        if loss < best - min_delta:
            best, best_at = loss, i
    last = len(valid_losses) - 1
    return best_at != last and last - best_at >= patience


@pytest.mark.parametrize("solution", [should_stop, stop_difference_form, stop_by_index])
def test_should_stop_accepts_the_solution(solution, capsys):
    check_should_stop(solution)
    assert capsys.readouterr().out.startswith("Correct:")


@pytest.mark.parametrize(("wrong", "message"), [
    (_variant(late=1), r"returned False, expected True.*patience counts the epochs in a row"),
    (_variant(late=-1), r"returned True, expected False.*patience counts the epochs in a row"),
    (_variant(ties=True), r"EQUAL to the best is not an improvement.*not <="),
    (_variant(no_delta=True), r"min_delta=0\.125.*do not count"),
    (_variant(running_min=True), r"move `best` only when an epoch counts as an improvement"),
    (_variant(previous=True), r"beat the BEST loss so far, not merely the previous"),
    (stop_min_window, r"should_stop\(\[2\.0\], patience=0.*patience=0 means"),
    (stop_returns_none, r"returned None \(NoneType\); return True or False"),
    (stop_pops, r"changed its input valid_losses in place"),
    (stop_stub, r"not written yet"),
    (stop_default_delta, r"min_delta=0\) returned (True|False), expected"),
    (stop_sorts, r"changed its input valid_losses in place"),
])
def test_should_stop_rejects(wrong, message):
    with pytest.raises(AssertionError, match=message):
        check_should_stop(wrong)


def _package_decisions(losses, patience, min_delta):
    """regmlp.EarlyStopping's decision after each epoch of ``losses`` (run to the end)."""
    decisions = []
    for n in range(1, len(losses) + 1):
        stopper = EarlyStopping(patience=patience, min_delta=min_delta)
        state = TrainState(model=Dense(1, 1, rng=0))
        for epoch, loss in enumerate(losses[:n]):
            state.stop = False
            stopper.on_epoch_end(epoch, {"valid_loss": loss}, state)
        decisions.append(state.stop)
    return decisions


def test_the_reference_rule_is_the_package_rule():
    """On every prefix of every case, the checker's rule says what EarlyStopping does."""
    cases = [case[:3] for case in _CASES] + _random_cases()
    for losses, patience, min_delta in cases:
        ours = [_should_stop(losses[:n], patience, min_delta) for n in range(1, len(losses) + 1)]
        assert ours == _package_decisions(losses, patience, min_delta), (losses, patience)


# -- how long to retrain on train + validation ------------------------------------------

from regmlp.exercises import check_retrain_epochs  # noqa: E402
from regmlp.exercises.ch03_early_stopping import (  # noqa: E402
    _RETRAIN_CASES,
    _RETRAIN_MISTAKES,
    _retrain_epochs,
)


def retrain_epochs(best_epoch, n_train, n_valid, batch_size):
    updates = (best_epoch + 1) * math.ceil(n_train / batch_size)
    return math.ceil(updates / math.ceil((n_train + n_valid) / batch_size))


def retrain_by_counting(best_epoch, n_train, n_valid, batch_size):
    """Another correct version: add epochs until the updates reach the target."""
    target = (best_epoch + 1) * (-(-n_train // batch_size))
    per_epoch = -(-(n_train + n_valid) // batch_size)
    epochs = 0
    while epochs * per_epoch < target:
        epochs += 1
    return epochs


def retrain_by_simulation(best_epoch, n_train, n_valid, batch_size):
    """Another correct version: count the batches regmlp.training.batches yields."""
    from regmlp.training import batches

    def n_batches(n):
        x = np.zeros((n, 1))
        return sum(1 for _ in batches(x, x, batch_size=batch_size, shuffle=False))

    target = (best_epoch + 1) * n_batches(n_train)
    return int(np.ceil(target / n_batches(n_train + n_valid)))


def retrain_stub(best_epoch, n_train, n_valid, batch_size):
    raise NotImplementedError("Exercise: replace this line with your code.")


@pytest.mark.parametrize("solution", [retrain_epochs, retrain_by_counting,
                                      retrain_by_simulation])
def test_retrain_epochs_accepts_the_solution(solution, capsys):
    check_retrain_epochs(solution)
    assert capsys.readouterr().out.startswith("Correct:")


@pytest.mark.parametrize(("index", "message"), [
    (0, r"same number of EPOCHS"),
    (1, r"counted from 0"),
    (2, r"Rounding down"),
    (3, r"Rounding to the nearest"),
    (4, r"last, smaller mini-batch"),
    (5, r"Count updates \(mini-batches\), not examples: an epoch"),
    (6, r"Count updates .* and\s+round up"),
    (7, r"upside down"),
])
def test_retrain_epochs_rejects_each_mistake(index, message):
    mistake, _ = _RETRAIN_MISTAKES[index]
    with pytest.raises(AssertionError, match=message):
        check_retrain_epochs(mistake)


@pytest.mark.parametrize(("wrong", "message"), [
    (lambda b, nt, nv, bs: float(retrain_epochs(b, nt, nv, bs)), r"return a\s+whole number"),
    (lambda b, nt, nv, bs: (b + 1) * math.ceil(nt / bs) / math.ceil((nt + nv) / bs),
     r"return a\s+whole number"),
    (lambda b, nt, nv, bs: retrain_epochs(b, nt, nv, bs) + 1, r"expected \[13, 11, 5, 1, 6\]"),
    (retrain_stub, r"not written yet"),
])
def test_retrain_epochs_rejects(wrong, message):
    with pytest.raises(AssertionError, match=message):
        check_retrain_epochs(wrong)


def test_retrain_cases_tell_every_mistake_apart():
    """Each mistake gives answers different from the right ones and from every other."""
    right = [_retrain_epochs(*case) for case in _RETRAIN_CASES]
    answers = [tuple(m(*case) for case in _RETRAIN_CASES) for m, _ in _RETRAIN_MISTAKES]
    assert tuple(right) not in answers
    assert len(set(answers)) == len(answers)


def test_retrain_reference_counts_the_updates_of_fit():
    """The reference agrees with the number of optimizer steps fit really takes."""
    from regmlp import SGD, Dense, Sequential, fit
    from regmlp.losses import MSE

    class CountingSGD(SGD):
        steps = 0

        def step(self):
            CountingSGD.steps += 1
            super().step()

    def steps_of(n, epochs, batch_size):
        CountingSGD.steps = 0
        model = Sequential(Dense(1, 1, rng=0))
        x = np.zeros((n, 1))
        fit(model, (x, x), loss=MSE(), optimizer=CountingSGD(model.parameters(), lr=0.0),
            epochs=epochs, batch_size=batch_size, rng=0, progress=False)
        return CountingSGD.steps

    best_epoch, n_train, n_valid, batch_size = 5, 70, 30, 16
    epochs = _retrain_epochs(best_epoch, n_train, n_valid, batch_size)
    target = steps_of(n_train, best_epoch + 1, batch_size)
    assert steps_of(n_train + n_valid, epochs, batch_size) >= target
    assert steps_of(n_train + n_valid, epochs - 1, batch_size) < target
