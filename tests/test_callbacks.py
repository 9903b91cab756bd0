"""Tests of regmlp.callbacks: EarlyStopping rule by rule, CSVLogger, WandbLogger.

Every EarlyStopping rule is driven by a scripted sequence of monitored values
through two drivers: a tiny hand-written loop that calls the hooks the way
``fit`` does, and the real ``fit``, where a callback placed before the
stopper overwrites ``logs[monitor]`` with the scripted value of the epoch.
Both record the model's weights after every epoch, so that restoring the
best weights can be checked exactly.
"""

from __future__ import annotations

import csv
import glob
import json
import math
import os
import struct
import sys
from dataclasses import dataclass

import numpy as np
import pytest

from regmlp.callbacks import Callback, CSVLogger, EarlyStopping, TrainState, WandbLogger
from regmlp.layers import Dense, ReLU, Sequential
from regmlp.losses import MSE
from regmlp.optim import SGD, Adam
from regmlp.training import evaluate, fit

NAN, INF = math.nan, math.inf


# ---------------------------------------------------------------------------
# two drivers for a scripted run
# ---------------------------------------------------------------------------


@dataclass
class Run:
    epochs: list[int]                       # the epochs that ran
    model: Dense
    weights: list[dict[str, np.ndarray]]    # state_dict after each epoch


class Script(Callback):
    """Overwrite ``logs[key]`` with the scripted value of the epoch."""

    def __init__(self, key: str, values: list[float]) -> None:
        self.key, self.values = key, values

    def on_epoch_end(self, epoch, logs, state):
        logs[self.key] = self.values[epoch]


class Recorder(Callback):
    """Keep a copy of the weights after every epoch."""

    def __init__(self) -> None:
        self.weights: list[dict[str, np.ndarray]] = []

    def on_epoch_end(self, epoch, logs, state):
        self.weights.append(state.model.state_dict())


def drive_loop(stopper: EarlyStopping, values: list[float]) -> Run:
    """A fake training loop: the weight after epoch e is e (distinct each epoch)."""
    model = Dense(1, 1, rng=0)
    state = TrainState(model)
    recorder = Recorder()
    stopper.on_train_begin(state)
    ran = []
    for epoch, value in enumerate(values):
        model.weight.value[...] = epoch
        logs = {"train_loss": 0.0, stopper.monitor: value}
        recorder.on_epoch_end(epoch, logs, state)
        stopper.on_epoch_end(epoch, logs, state)
        ran.append(epoch)
        if state.stop:
            break
    stopper.on_train_end(state)
    return Run(ran, model, recorder.weights)


def drive_fit(stopper: EarlyStopping, values: list[float]) -> Run:
    """The real ``fit`` on a tiny regression; the monitored values are scripted."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 2))
    y = x @ np.array([[1.0], [-2.0]]) + 0.5
    model = Dense(2, 1, rng=0)
    recorder = Recorder()
    history = fit(model, (x, y), (x[:4], y[:4]), loss=MSE(),
                  optimizer=SGD(model.parameters(), lr=0.05), epochs=len(values), batch_size=4,
                  callbacks=[Script(stopper.monitor, values), recorder, stopper], rng=0)
    return Run(history.epochs, model, recorder.weights)


@pytest.fixture(params=["loop", "fit"])
def drive(request):
    return {"loop": drive_loop, "fit": drive_fit}[request.param]


def holds_weights(model: Dense, weights: dict[str, np.ndarray]) -> bool:
    state = model.state_dict()
    return all(np.array_equal(state[k], weights[k]) for k in weights)


def check_restores_best(stopper: EarlyStopping, run: Run) -> None:
    """The check that catches an early stopping keeping the last weights."""
    best = stopper.best_epoch
    if not holds_weights(run.model, run.weights[best]):
        held = [e for e in run.epochs if holds_weights(run.model, run.weights[e])]
        raise AssertionError(f"after training the model should hold the weights of the best "
                             f"epoch {best}, but it holds those of epoch(s) {held}")


# ---------------------------------------------------------------------------
# the rules
# ---------------------------------------------------------------------------


def test_starts_empty():
    stopper = EarlyStopping()
    assert stopper.best == INF and stopper.best_epoch is None
    assert stopper.stopped_epoch is None and stopper.wait == 0
    assert EarlyStopping(mode="max").best == -INF


@pytest.mark.parametrize("patience", [1, 2, 3])
def test_patience_counts_epochs_without_improvement(drive, patience):
    values = [5.0, 4.0, 4.5, 4.6, 4.7, 4.8, 4.9]
    stopper = EarlyStopping(patience=patience)
    run = drive(stopper, values)
    assert stopper.best == 4.0 and stopper.best_epoch == 1
    assert stopper.stopped_epoch == 1 + patience
    assert run.epochs == list(range(2 + patience))
    assert stopper.wait == patience


def test_patience_zero_stops_at_first_epoch_without_improvement(drive):
    stopper = EarlyStopping(patience=0)
    run = drive(stopper, [3.0, 2.0, 1.0, 1.0, 0.5])
    assert stopper.stopped_epoch == 3 and run.epochs == [0, 1, 2, 3]
    assert stopper.best_epoch == 2


def test_improvement_resets_wait(drive):
    stopper = EarlyStopping(patience=2)
    run = drive(stopper, [5.0, 4.0, 4.5, 3.0, 3.5, 3.6, 1.0])
    assert stopper.best_epoch == 3 and stopper.stopped_epoch == 5
    assert run.epochs == [0, 1, 2, 3, 4, 5]


def test_wait_sequence_step_by_step():
    stopper = EarlyStopping(patience=3)
    state = TrainState(Dense(1, 1, rng=0))
    waits = []
    for epoch, value in enumerate([2.0, 3.0, 1.0, 1.5, 1.5]):
        stopper.on_epoch_end(epoch, {"valid_loss": value}, state)
        waits.append(stopper.wait)
    assert waits == [0, 1, 0, 1, 2] and not state.stop


def test_min_delta_is_a_strict_margin(drive):
    # best 2.0; 1.5 is exactly best - min_delta: not an improvement; 1.25 is.
    stopper = EarlyStopping(patience=2, min_delta=0.5)
    run = drive(stopper, [2.0, 1.5, 1.25, 1.0, 0.875, 0.75])
    assert stopper.best_epoch == 2 and stopper.best == 1.25
    assert stopper.stopped_epoch == 4 and run.epochs == [0, 1, 2, 3, 4]


def test_min_delta_small_gains_do_not_count(drive):
    stopper = EarlyStopping(patience=2, min_delta=0.1)
    drive(stopper, [1.0, 0.95, 0.91, 0.85])
    assert stopper.best_epoch == 0 and stopper.stopped_epoch == 2


def test_mode_max_mirrors_min(drive):
    stopper = EarlyStopping(monitor="score", mode="max", patience=1, min_delta=0.25)
    run = drive(stopper, [0.5, 1.0, 1.25, 2.0, 1.0])
    # 1.25 is not > 1.0 + 0.25, so epoch 2 does not improve and patience 1 stops there
    assert stopper.best == 1.0 and stopper.best_epoch == 1
    assert stopper.stopped_epoch == 2 and run.epochs == [0, 1, 2]


def test_mode_max_runs_while_improving(drive):
    stopper = EarlyStopping(monitor="score", mode="max", patience=0)
    run = drive(stopper, [0.1, 0.2, 0.3, 0.25])
    assert stopper.best == 0.3 and stopper.stopped_epoch == 3 and len(run.epochs) == 4


def test_baseline_not_beaten_within_patience_stops(drive):
    # every epoch improves on the previous best, but none beats the baseline 1.0
    stopper = EarlyStopping(patience=2, baseline=1.0)
    run = drive(stopper, [2.0, 1.5, 1.2, 1.1, 0.5])
    assert stopper.stopped_epoch == 1 and run.epochs == [0, 1]
    assert stopper.best == 1.5 and stopper.best_epoch == 1 and stopper.wait == 2


def test_baseline_beaten_resets_wait(drive):
    stopper = EarlyStopping(patience=2, baseline=1.0)
    run = drive(stopper, [2.0, 0.9, 0.95, 0.97, 0.98, 0.1])
    assert stopper.best_epoch == 1 and stopper.stopped_epoch == 3
    assert run.epochs == [0, 1, 2, 3]


def test_baseline_with_patience_zero_stops_at_once(drive):
    stopper = EarlyStopping(patience=0, baseline=1.0)
    run = drive(stopper, [1.5, 0.5])
    assert stopper.stopped_epoch == 0 and run.epochs == [0] and stopper.best_epoch == 0


def test_baseline_in_max_mode(drive):
    stopper = EarlyStopping(monitor="score", mode="max", patience=1, baseline=0.8)
    drive(stopper, [0.5, 0.6, 0.9])
    assert stopper.stopped_epoch == 0


def test_start_from_epoch_ignores_warm_up(drive):
    stopper = EarlyStopping(patience=1, start_from_epoch=3)
    run = drive(stopper, [1.0, 2.0, 3.0, 10.0, 11.0, 0.0])
    # epochs 0-2 are not monitored; 10.0 at epoch 3 is the first (and best) value
    assert stopper.best == 10.0 and stopper.best_epoch == 3
    assert stopper.stopped_epoch == 4 and run.epochs == [0, 1, 2, 3, 4]


def test_best_epoch_is_none_before_start_from_epoch():
    stopper = EarlyStopping(start_from_epoch=2)
    state = TrainState(Dense(1, 1, rng=0))
    for epoch in range(2):
        stopper.on_epoch_end(epoch, {"valid_loss": 1.0}, state)
        assert stopper.best_epoch is None and stopper.wait == 0
    stopper.on_epoch_end(2, {"valid_loss": 1.0}, state)
    assert stopper.best_epoch == 2


def test_restores_best_weights_when_stopping_fired(drive):
    stopper = EarlyStopping(patience=2)
    run = drive(stopper, [3.0, 1.0, 2.0, 2.5, 2.7, 0.1])
    assert stopper.stopped_epoch == 3
    check_restores_best(stopper, run)
    assert not holds_weights(run.model, run.weights[-1])


def test_restores_best_weights_when_stopping_never_fired(drive):
    stopper = EarlyStopping(patience=10)
    run = drive(stopper, [3.0, 1.0, 2.0, 2.5])
    assert stopper.stopped_epoch is None and run.epochs == [0, 1, 2, 3]
    check_restores_best(stopper, run)


def test_keeps_last_weights_without_restore(drive):
    stopper = EarlyStopping(patience=1, restore_best_weights=False)
    run = drive(stopper, [1.0, 2.0, 3.0])
    assert stopper.stopped_epoch == 1
    assert holds_weights(run.model, run.weights[1])


def test_never_fired_has_no_stopped_epoch(drive):
    stopper = EarlyStopping(patience=2)
    run = drive(stopper, [5.0, 4.0, 3.0, 2.0, 1.0])
    assert stopper.stopped_epoch is None and len(run.epochs) == 5
    assert stopper.best_epoch == 4 and stopper.wait == 0


@pytest.mark.parametrize("bad", [NAN, INF, -INF])
def test_check_finite_stops_on_nan_or_inf(drive, bad):
    stopper = EarlyStopping(patience=5)
    run = drive(stopper, [2.0, 1.0, bad, 0.5])
    assert stopper.stopped_epoch == 2 and run.epochs == [0, 1, 2]
    check_restores_best(stopper, run)          # the weights of epoch 1, not the NaN epoch


def test_check_finite_applies_before_start_from_epoch(drive):
    stopper = EarlyStopping(patience=5, start_from_epoch=10)
    run = drive(stopper, [1.0, NAN, 0.5])
    assert stopper.stopped_epoch == 1 and run.epochs == [0, 1]
    assert stopper.best_epoch is None


def test_check_finite_off_counts_nan_as_no_improvement(drive):
    stopper = EarlyStopping(patience=2, check_finite=False)
    run = drive(stopper, [1.0, NAN, NAN, 0.5])
    assert stopper.stopped_epoch == 2 and run.epochs == [0, 1, 2]
    assert stopper.best == 1.0


def test_missing_monitor_key_is_a_key_error():
    stopper = EarlyStopping(monitor="valid_loss")
    with pytest.raises(KeyError, match=r"valid_loss.*available keys: \['train_loss'\]"):
        stopper.on_epoch_end(0, {"train_loss": 1.0}, TrainState(Dense(1, 1, rng=0)))


def test_missing_monitor_key_in_fit_without_validation_data():
    x, y = np.ones((4, 2)), np.ones((4, 1))
    model = Dense(2, 1, rng=0)
    with pytest.raises(KeyError, match="valid_loss"):
        fit(model, (x, y), loss=MSE(), optimizer=SGD(model.parameters(), lr=0.1), epochs=2,
            callbacks=[EarlyStopping()])


def test_state_is_reset_when_training_begins(drive):
    stopper = EarlyStopping(patience=1)
    first = drive(stopper, [1.0, 2.0, 3.0])
    second = drive(stopper, [3.0, 2.0, 1.0])
    assert first.epochs == [0, 1] and second.epochs == [0, 1, 2]
    assert stopper.stopped_epoch is None and stopper.best == 1.0 and stopper.best_epoch == 2


# ---------------------------------------------------------------------------
# the section 7 bug: an early stopping that keeps the last weights
# ---------------------------------------------------------------------------


class LastWeightsEarlyStopping(EarlyStopping):
    """The shipped bug: stops at the right epoch but never puts the best weights back."""

    def on_train_end(self, state):
        pass


def test_the_check_catches_early_stopping_that_keeps_the_last_weights(drive):
    values = [3.0, 1.0, 2.0, 2.5, 2.7]
    correct, buggy = EarlyStopping(patience=2), LastWeightsEarlyStopping(patience=2)
    check_restores_best(correct, drive(correct, values))
    run = drive(buggy, values)
    assert buggy.stopped_epoch == correct.stopped_epoch == 3
    message = r"best epoch 1, but it holds those of epoch\(s\) \[3\]"
    with pytest.raises(AssertionError, match=message):
        check_restores_best(buggy, run)


def overfitting_run(stopper_class):
    """A wide net on 30 noisy points: the validation loss turns up, early stopping fires."""
    rng = np.random.default_rng(3)
    x = rng.uniform(-1, 1, size=(60, 1))
    y = np.sin(3 * x) + 0.3 * rng.normal(size=(60, 1))
    model = Sequential(Dense(1, 64, rng=1), ReLU(), Dense(64, 64, rng=2), ReLU(),
                       Dense(64, 1, rng=3))
    stopper = stopper_class(patience=5)
    history = fit(model, (x[:30], y[:30]), (x[30:], y[30:]), loss=MSE(),
                  optimizer=Adam(model.parameters(), lr=3e-2), epochs=300, batch_size=8,
                  callbacks=[stopper], rng=0, progress=False)
    return model, stopper, history, evaluate(model, x[30:], y[30:], MSE())


def test_real_training_ends_with_the_best_validation_loss():
    model, stopper, history, final = overfitting_run(EarlyStopping)
    assert stopper.stopped_epoch is not None and stopper.stopped_epoch < 299
    assert len(history) == stopper.stopped_epoch + 1
    assert stopper.best_epoch == int(np.argmin(history.valid_loss))
    assert stopper.stopped_epoch == stopper.best_epoch + 5
    assert final == min(history.valid_loss) < history.valid_loss[-1]


def test_real_training_exposes_the_last_weights_bug():
    _, stopper, history, final = overfitting_run(LastWeightsEarlyStopping)
    assert final == history.valid_loss[-1] > min(history.valid_loss)


# ---------------------------------------------------------------------------
# argument checks
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    ({"patience": 1.5}, TypeError, "patience"),
    ({"patience": True}, TypeError, "patience"),
    ({"min_delta": NAN}, ValueError, "min_delta"),
    ({"min_delta": INF}, ValueError, "min_delta"),
    ({"min_delta": "0.1"}, TypeError, "min_delta"),
    ({"baseline": NAN}, ValueError, "baseline"),
    ({"start_from_epoch": -2}, ValueError, "start_from_epoch"),
    ({"start_from_epoch": 0.5}, TypeError, "start_from_epoch"),
    ({"restore_best_weights": "yes"}, TypeError, "restore_best_weights"),
    ({"check_finite": 1}, TypeError, "check_finite"),
    ({"monitor": 3}, TypeError, "monitor"),
    ({"monitor": ""}, TypeError, "monitor"),
])
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        EarlyStopping(**kwargs)


def test_numpy_integers_are_accepted():
    stopper = EarlyStopping(patience=np.int64(3), start_from_epoch=np.int32(1))
    assert stopper.patience == 3 and type(stopper.patience) is int


def test_callback_base_hooks_are_no_ops():
    cb, state = Callback(), TrainState(model=None)
    assert cb.on_train_begin(state) is None
    assert cb.on_epoch_end(0, {"train_loss": 1.0}, state) is None
    assert cb.on_train_end(state) is None
    assert (state.epoch, state.stop, state.optimizer, state.history) == (0, False, None, None)


# ---------------------------------------------------------------------------
# CSVLogger
# ---------------------------------------------------------------------------


def small_problem():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(20, 3))
    y = x @ np.array([[0.5], [-1.0], [2.0]])
    model = Dense(3, 1, rng=0)
    return model, (x[:14], y[:14]), (x[14:], y[14:])


def open_fds_to(path) -> list[str]:
    fd_dir = "/proc/self/fd"
    if not os.path.isdir(fd_dir):
        return []
    targets = []
    for fd in os.listdir(fd_dir):
        try:
            targets.append(os.readlink(os.path.join(fd_dir, fd)))
        except OSError:
            pass
    return [t for t in targets if t == str(path)]


def test_csv_logger_writes_one_row_per_epoch(tmp_path):
    model, train, valid = small_problem()
    path = tmp_path / "runs" / "deep" / "log.csv"
    history = fit(model, train, valid, loss=MSE(), optimizer=SGD(model.parameters(), lr=0.05),
                  epochs=4, batch_size=5, callbacks=[CSVLogger(path)], rng=0)
    with path.open(newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["epoch", "train_loss", "valid_loss"]
    assert len(rows) == 1 + 4
    assert [int(r[0]) for r in rows[1:]] == history.epochs
    assert [float(r[1]) for r in rows[1:]] == history.train_loss      # exact: written with repr
    assert [float(r[2]) for r in rows[1:]] == history.valid_loss
    assert open_fds_to(path.resolve()) == []


def test_csv_logger_without_validation_and_with_early_stop(tmp_path):
    model, train, _ = small_problem()
    path = tmp_path / "log.csv"

    class StopAtOne(Callback):
        def on_epoch_end(self, epoch, logs, state):
            state.stop = epoch == 1

    fit(model, train, loss=MSE(), optimizer=SGD(model.parameters(), lr=0.05), epochs=10,
        callbacks=[CSVLogger(path), StopAtOne()], rng=0)
    lines = path.read_text().splitlines()
    assert lines[0] == "epoch,train_loss" and len(lines) == 3


def test_csv_logger_overwrites_an_old_file(tmp_path):
    model, train, valid = small_problem()
    path = tmp_path / "log.csv"
    path.write_text("old,content\n1,2\n3,4\n5,6\n7,8\n9,10\n")
    fit(model, train, valid, loss=MSE(), optimizer=SGD(model.parameters(), lr=0.05),
        epochs=2, callbacks=[CSVLogger(str(path))], rng=0)
    lines = path.read_text().splitlines()
    assert lines[0] == "epoch,train_loss,valid_loss" and len(lines) == 3


def test_csv_logger_refuses_new_keys(tmp_path):
    logger = CSVLogger(tmp_path / "log.csv")
    state = TrainState(model=None)
    logger.on_train_begin(state)
    logger.on_epoch_end(0, {"train_loss": 1.0}, state)
    with pytest.raises(ValueError, match="lr"):
        logger.on_epoch_end(1, {"train_loss": 1.0, "lr": 0.1}, state)


def test_csv_logger_path_type():
    with pytest.raises(TypeError, match="path"):
        CSVLogger(3)


# ---------------------------------------------------------------------------
# WandbLogger, for real, offline
# ---------------------------------------------------------------------------


def read_wandb_records(path: str) -> list:
    """Decode a ``.wandb`` file: a LevelDB-style log of protobuf ``Record`` messages.

    The file starts with a 7-byte header (":W&B", magic, version) and is cut
    into 32 KiB blocks; each chunk has a 7-byte header (crc32, length, type:
    1 full, 2 first, 3 middle, 4 last).
    """
    from wandb.proto import wandb_internal_pb2

    block = 32768
    with open(path, "rb") as f:
        data = f.read()
    assert data[:4] == b":W&B"
    pos, records, pending = 7, [], b""
    while pos + 7 <= len(data):
        left = block - pos % block
        if left < 7:
            pos += left
            continue
        _, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        chunk, pos = data[pos + 7:pos + 7 + length], pos + 7 + length
        if kind == 1:
            records.append(chunk)
        elif kind == 2:
            pending = chunk
        elif kind == 3:
            pending += chunk
        elif kind == 4:
            records.append(pending + chunk)
    return [wandb_internal_pb2.Record.FromString(r) for r in records]


def wandb_history(records: list) -> dict[int, dict[str, float]]:
    rows = {}
    for rec in records:
        if rec.WhichOneof("record_type") == "history":
            items = {item.key or "/".join(item.nested_key): json.loads(item.value_json)
                     for item in rec.history.item}
            rows[int(items["_step"])] = items
    return rows


@pytest.fixture
def offline_wandb(tmp_path, monkeypatch):
    wandb = pytest.importorskip("wandb")
    for var in ("WANDB_DIR", "WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR"):
        monkeypatch.setenv(var, str(tmp_path / var.lower()))
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_CONSOLE", "off")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    yield wandb
    if wandb.run is not None:
        wandb.run.finish()


def test_wandb_logger_offline_records_the_history(offline_wandb, tmp_path):
    model, train, valid = small_problem()
    logger = WandbLogger(project="regmlp-tests", name="tiny", config={"lr": 0.05},
                         dir=tmp_path)
    history = fit(model, train, valid, loss=MSE(), optimizer=SGD(model.parameters(), lr=0.05),
                  epochs=3, callbacks=[logger], rng=0)
    assert logger.run is not None and logger.run.offline
    # wandb-core writes the .wandb file asynchronously: run.finish() may return
    # before it is flushed; teardown() waits for the service to close it.
    offline_wandb.teardown()
    run_dirs = glob.glob(str(tmp_path / "wandb" / "offline-run-*"))
    assert len(run_dirs) == 1
    files = glob.glob(os.path.join(run_dirs[0], "run-*.wandb"))
    assert len(files) == 1 and os.path.getsize(files[0]) > 0

    records = read_wandb_records(files[0])
    run = next(r.run for r in records if r.WhichOneof("record_type") == "run")
    assert run.project == "regmlp-tests" and run.display_name == "tiny"
    config = {u.key: json.loads(u.value_json) for u in run.config.update}
    assert config["lr"] == 0.05
    rows = wandb_history(records)
    assert sorted(rows) == history.epochs
    assert [rows[e]["train_loss"] for e in history.epochs] == history.train_loss
    assert [rows[e]["valid_loss"] for e in history.epochs] == history.valid_loss
    assert any(r.WhichOneof("record_type") == "exit" for r in records)   # finish() ran


def test_wandb_logger_without_wandb_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)
    with pytest.raises(ImportError, match=r"pip install 'regmlp\[wandb\]'"):
        WandbLogger(project="p")


def test_wandb_logger_checks_its_arguments():
    pytest.importorskip("wandb")
    with pytest.raises(ValueError, match="mode"):
        WandbLogger(project="p", mode="sometimes")
    with pytest.raises(TypeError, match="project"):
        WandbLogger(project="")


# ---------------------------------------------------------------------------
# training cut short: an exception or KeyboardInterrupt inside fit
# ---------------------------------------------------------------------------


class RaiseAt(Callback):
    """Raise ``error`` at the end of epoch ``epoch`` (after the callbacks before it ran)."""

    def __init__(self, epoch: int, error: BaseException) -> None:
        self.epoch, self.error = epoch, error

    def on_epoch_end(self, epoch, logs, state):
        if epoch == self.epoch:
            raise self.error


class InterruptingMSE(MSE):
    """An MSE whose ``calls``-th forward raises KeyboardInterrupt: Ctrl-C in mid-epoch."""

    def __init__(self, calls: int) -> None:
        super().__init__()
        self.calls = calls

    def forward(self, pred, target):
        self.calls -= 1
        if self.calls == 0:
            raise KeyboardInterrupt
        return super().forward(pred, target)


def interrupted_fit(stopper, values, raiser=None, loss=None):
    """``drive_fit`` with a raising callback after the stopper; returns the run and the error."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 2))
    y = x @ np.array([[1.0], [-2.0]]) + 0.5
    model = Dense(2, 1, rng=0)
    recorder = Recorder()
    callbacks = [Script(stopper.monitor, values), recorder, stopper]
    with pytest.raises(BaseException) as info:
        fit(model, (x, y), (x[:4], y[:4]), loss=loss or MSE(),
            optimizer=SGD(model.parameters(), lr=0.05), epochs=len(values), batch_size=4,
            callbacks=callbacks + ([raiser] if raiser else []), rng=0)
    return Run(list(range(len(recorder.weights))), model, recorder.weights), info.value


class KerasLikeEarlyStopping(EarlyStopping):
    """Keras's behaviour: an exception leaves the last epoch's weights in the model."""

    def on_exception(self, error, state):
        pass


@pytest.mark.parametrize("error", [RuntimeError("disk full"), KeyboardInterrupt()],
                         ids=["exception", "KeyboardInterrupt"])
def test_an_exception_in_fit_restores_the_best_weights_and_is_re_raised(error):
    stopper = EarlyStopping(patience=10)
    run, raised = interrupted_fit(stopper, [3.0, 1.0, 2.0, 2.5, 2.7, 2.9],
                                  raiser=RaiseAt(3, error))
    assert raised is error                       # the same exception, unchanged
    assert run.epochs == [0, 1, 2, 3] and stopper.best_epoch == 1
    check_restores_best(stopper, run)


def test_ctrl_c_in_mid_epoch_restores_the_best_weights():
    # per epoch, 2 training batches and 1 validation call: call 11 is in epoch 3
    stopper = EarlyStopping(patience=10)
    run, raised = interrupted_fit(stopper, [3.0, 1.0, 2.0, 2.5, 2.7], loss=InterruptingMSE(11))
    assert isinstance(raised, KeyboardInterrupt)
    assert run.epochs == [0, 1, 2] and stopper.best_epoch == 1
    check_restores_best(stopper, run)


def test_the_check_catches_keeping_the_last_weights_on_an_exception():
    stopper = KerasLikeEarlyStopping(patience=10)
    run, _ = interrupted_fit(stopper, [3.0, 1.0, 2.0, 2.5], raiser=RaiseAt(3, RuntimeError()))
    message = r"best epoch 1, but it holds those of epoch\(s\) \[3\]"
    with pytest.raises(AssertionError, match=message):
        check_restores_best(stopper, run)


def test_without_restore_an_exception_leaves_the_last_weights():
    stopper = EarlyStopping(patience=10, restore_best_weights=False)
    run, _ = interrupted_fit(stopper, [3.0, 1.0, 2.0, 2.5], raiser=RaiseAt(3, RuntimeError()))
    assert holds_weights(run.model, run.weights[3])


class Journal(Callback):
    def __init__(self, name, journal, fail_begin=False):
        self.name, self.journal, self.fail_begin = name, journal, fail_begin

    def on_train_begin(self, state):
        self.journal.append(f"{self.name}.begin")
        if self.fail_begin:
            raise RuntimeError("cannot start")

    def on_train_end(self, state):
        self.journal.append(f"{self.name}.end")

    def on_exception(self, error, state):
        self.journal.append(f"{self.name}.exception:{type(error).__name__}")


def test_on_exception_goes_to_the_callbacks_that_began_and_replaces_on_train_end():
    model, train, _ = small_problem()
    journal = []
    callbacks = [Journal("a", journal), Journal("b", journal, fail_begin=True),
                 Journal("c", journal)]
    with pytest.raises(RuntimeError, match="cannot start"):
        fit(model, train, loss=MSE(), optimizer=SGD(model.parameters(), lr=0.1), epochs=2,
            callbacks=callbacks, rng=0)
    assert journal == ["a.begin", "b.begin", "a.exception:RuntimeError"]
    journal.clear()
    fit(model, train, loss=MSE(), optimizer=SGD(model.parameters(), lr=0.1), epochs=2,
        callbacks=[Journal("a", journal)], rng=0)
    assert journal == ["a.begin", "a.end"]


def test_a_stale_best_from_an_earlier_run_is_never_restored():
    """A stopper whose on_train_begin did not run (a callback before it failed) keeps hands off."""
    model, train, valid = small_problem()
    stopper = EarlyStopping(patience=10)
    fit(model, train, valid, loss=MSE(), optimizer=SGD(model.parameters(), lr=0.1), epochs=3,
        callbacks=[stopper], rng=0)
    before = model.state_dict()
    model.weight.value[...] = 7.0
    after_change = model.state_dict()
    with pytest.raises(RuntimeError):
        fit(model, train, valid, loss=MSE(), optimizer=SGD(model.parameters(), lr=0.1),
            epochs=3, callbacks=[Journal("x", [], fail_begin=True), stopper], rng=0)
    assert holds_weights(model, after_change) and not holds_weights(model, before)


def test_wandb_logger_marks_an_interrupted_run_as_failed(monkeypatch):
    class FakeRun:
        def __init__(self):
            self.finished = []

        def log(self, logs, step):
            pass

        def finish(self, exit_code=None):
            self.finished.append(exit_code)

    logger = WandbLogger(project="p", mode="disabled")
    fake = FakeRun()
    monkeypatch.setattr(logger._wandb, "init", lambda **kwargs: fake)
    model, train, _ = small_problem()
    with pytest.raises(KeyboardInterrupt):
        fit(model, train, loss=MSE(), optimizer=SGD(model.parameters(), lr=0.1), epochs=3,
            callbacks=[logger, RaiseAt(1, KeyboardInterrupt())], rng=0)
    assert fake.finished == [1]
