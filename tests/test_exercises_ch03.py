"""The chapter 3 checkers accept the reference solutions and reject the usual mistakes.

The loop checker must catch DESIGN.md section 7's early-stopping bug (keeping the
last weights instead of the best); the decision checker the usual off-by-one,
``<=`` for ``<`` and min_delta mistakes. Each wrong version must fail with an
AssertionError whose message says what to fix.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from regmlp.callbacks import EarlyStopping, TrainState
from regmlp.exercises import check_restore_best, check_should_stop
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


# -- the loop that restores the best weights ------------------------------------------


def train_with_early_stopping(model, train_epoch, valid_loss, max_epochs, patience,
                              min_delta=0.0):
    best, best_epoch, best_state, wait = math.inf, None, None, 0
    for epoch in range(max_epochs):
        train_epoch(model)
        loss = valid_loss(model)
        wait += 1
        if loss < best - min_delta:
            best, best_epoch, best_state, wait = loss, epoch, model.state_dict(), 0
        elif wait >= patience:
            break
    model.load_state_dict(best_state)
    return best_epoch


def with_package_callback(model, train_epoch, valid_loss, max_epochs, patience, min_delta=0.0):
    """The same loop driven by regmlp.EarlyStopping."""
    stopper = EarlyStopping(patience=patience, min_delta=min_delta)
    state = TrainState(model)
    stopper.on_train_begin(state)
    for epoch in range(max_epochs):
        train_epoch(model)
        stopper.on_epoch_end(epoch, {"valid_loss": valid_loss(model)}, state)
        if state.stop:
            break
    stopper.on_train_end(state)
    return stopper.best_epoch


def _loop(*, restore=True, copy=True, restore_only_on_stop=False, late=0, no_delta=False,
          returns=None, snapshot_before_training=False):
    def loop(model, train_epoch, valid_loss, max_epochs, patience, min_delta=0.0):
        delta = 0.0 if no_delta else min_delta
        best, best_epoch, best_state, wait, stopped = math.inf, None, None, 0, False
        for epoch in range(max_epochs):
            if snapshot_before_training:
                before = model.state_dict()
            train_epoch(model)
            loss = valid_loss(model)
            wait += 1
            if loss < best - delta:
                best, best_epoch, wait = loss, epoch, 0
                if snapshot_before_training:
                    best_state = before
                elif copy:
                    best_state = model.state_dict()
                else:
                    best_state = {name: p.value for name, p in model.named_parameters()}
            elif wait >= patience + late:
                stopped = True
                break
        if restore and (stopped or not restore_only_on_stop):
            model.load_state_dict(best_state)
        return best_epoch if returns is None else returns(best_epoch, epoch)
    return loop


def loop_stub(model, train_epoch, valid_loss, max_epochs, patience, min_delta=0.0):
    raise NotImplementedError("Exercise: replace this line with your code.")


def loop_ignores_max_epochs(model, train_epoch, valid_loss, max_epochs, patience,
                            min_delta=0.0):
    return train_with_early_stopping(model, train_epoch, valid_loss, 10**6, patience,
                                     min_delta)


def loop_first_layer_only(model, train_epoch, valid_loss, max_epochs, patience, min_delta=0.0):
    """Saves and restores the first layer only."""
    best, best_epoch, saved, wait = math.inf, None, None, 0
    for epoch in range(max_epochs):
        train_epoch(model)
        loss = valid_loss(model)
        wait += 1
        if loss < best - min_delta:
            best, best_epoch, wait = loss, epoch, 0
            saved = [p.value.copy() for p in model[0].parameters()]
        elif wait >= patience:
            break
    for p, v in zip(model[0].parameters(), saved, strict=True):
        p.value[...] = v
    return best_epoch


def loop_ties_improve(model, train_epoch, valid_loss, max_epochs, patience, min_delta=0.0):
    best, best_epoch, best_state, wait = math.inf, None, None, 0
    for epoch in range(max_epochs):
        train_epoch(model)
        loss = valid_loss(model)
        wait += 1
        if loss <= best - min_delta:
            best, best_epoch, best_state, wait = loss, epoch, model.state_dict(), 0
        elif wait >= patience:
            break
    model.load_state_dict(best_state)
    return best_epoch


def loop_copies_values(model, train_epoch, valid_loss, max_epochs, patience, min_delta=0.0):
    """Another correct solution: copies of the arrays, written back in place, a while loop."""
    params = model.parameters()
    best, best_epoch, saved, epoch, wait = float("inf"), -1, None, 0, 0
    while epoch < max_epochs:
        train_epoch(model)
        loss = valid_loss(model)
        epoch += 1
        if best - loss > min_delta:
            best, best_epoch, saved, wait = loss, epoch - 1, [p.value.copy() for p in params], 0
        else:
            wait += 1
            if wait >= patience:
                break
    for p, value in zip(params, saved, strict=True):
        p.value[...] = value
    return best_epoch


@pytest.mark.parametrize("solution", [train_with_early_stopping, with_package_callback,
                                      loop_copies_values])
def test_restore_best_accepts_the_solution(solution, capsys):
    check_restore_best(solution)
    assert capsys.readouterr().out.startswith("Correct:")


@pytest.mark.parametrize(("wrong", "message"), [
    (_loop(restore=False), r"weights of the LAST epoch \(8\) instead of the best one.*copy"),
    (_loop(copy=False), r"weights of the LAST epoch \(8\).*overwritten by the next epochs"),
    (_loop(restore_only_on_stop=True),
     r"LAST epoch \(5\).*also when the loop ends without early stopping firing"),
    (_loop(late=1), r"trained 10 epoch\(s\), expected 9.*stop after epoch 8"),
    (_loop(late=-1), r"trained 8 epoch\(s\), expected 9"),
    (_loop(no_delta=True), r"min_delta=0\.125\) trained 6 epoch\(s\), expected 4"),
    (_loop(snapshot_before_training=True), r"weights of epoch 4, not those of the best epoch 5"),
    (_loop(returns=lambda best, last: last), r"returned 8; it should return the best epoch, 5"),
    (_loop(returns=lambda best, last: best + 1), r"returned 6; it should return the best"),
    (loop_stub, r"not written yet"),
    (loop_ignores_max_epochs, r"train_epoch was called more than max_epochs=6 times: train at"),
    (loop_first_layer_only, r"left the model with weights that no epoch produced"),
    (loop_ties_improve, r"trained 6 epoch\(s\), expected 5.*case: a plateau"),
])
def test_restore_best_rejects(wrong, message):
    with pytest.raises(AssertionError, match=message):
        check_restore_best(wrong)


def test_scripted_run_sees_through_a_stale_snapshot():
    """The fake run updates in place, so a snapshot of references goes stale (the §7 bug)."""
    from regmlp.exercises.ch03_early_stopping import _ScriptedRun

    run = _ScriptedRun([1.0, 2.0, 3.0])
    run.train_epoch(run.model)
    refs = [p.value for p in run.model.parameters()]
    copies = run.model.state_dict()
    run.train_epoch(run.model)
    assert np.all(refs[0] == 2.0) and np.all(copies["0.weight"] == 1.0)
    assert run.held_epoch() == 1 and run.valid_loss(run.model) == 2.0
