"""Callbacks: code that runs at fixed points of :func:`regmlp.training.fit`.

``fit`` calls every callback's ``on_train_begin(state)`` once, then
``on_epoch_end(epoch, logs, state)`` after each epoch (epochs are numbered
from 0; ``logs`` holds ``"train_loss"`` and, with validation data,
``"valid_loss"``), then ``on_train_end(state)`` once. A callback ends training
by setting ``state.stop = True``; ``fit`` finishes the current epoch's
callbacks and stops. If training is cut short by an exception (including
``KeyboardInterrupt``, a user pressing Ctrl-C), ``fit`` calls
``on_exception(error, state)`` instead of ``on_train_end`` and then re-raises.

``EarlyStopping`` is the one regularizer here (Prechelt, 1998): it watches the
validation loss and keeps the weights of the best epoch. ``CSVLogger`` and
``WandbLogger`` record the same logs to a file or to Weights & Biases.
"""

from __future__ import annotations

import csv
import math
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np

from ._checks import check_flag, check_int, check_number

__all__ = ["Callback", "TrainState", "EarlyStopping", "CSVLogger", "WandbLogger"]


class TrainState:
    """What ``fit`` shares with its callbacks while it trains.

    Parameters
    ----------
    model : Layer
        The model being trained.
    optimizer : Optimizer, optional
    history : History, optional
        Filled by ``fit`` as the epochs go by.

    Attributes
    ----------
    epoch : int
        The current epoch (from 0).
    stop : bool
        Set it to ``True`` to end training after the current epoch.
    """

    def __init__(self, model: Any, optimizer: Any = None, history: Any = None) -> None:
        self.model = model
        self.optimizer = optimizer
        self.history = history
        self.epoch = 0
        self.stop = False

    def __repr__(self) -> str:
        return f"TrainState(epoch={self.epoch}, stop={self.stop})"


class Callback:
    """Base class: every hook is a no-op; override the ones you need.

    Examples
    --------
    >>> class StopAt(Callback):
    ...     def on_epoch_end(self, epoch, logs, state):
    ...         state.stop = epoch == 3
    """

    def on_train_begin(self, state: TrainState) -> None:
        """Called once, before the first epoch.

        Parameters
        ----------
        state : TrainState
            Shared with ``fit``: the model, the optimizer, the history, ``stop``.
        """

    def on_epoch_end(self, epoch: int, logs: dict[str, float], state: TrainState) -> None:
        """Called after every epoch, with that epoch's ``logs``.

        Parameters
        ----------
        epoch : int
            The epoch that just ended, from 0.
        logs : dict of str to float
            ``"train_loss"`` and, with validation data, ``"valid_loss"``.
        state : TrainState
            Set ``state.stop = True`` to end training after this epoch.
        """

    def on_train_end(self, state: TrainState) -> None:
        """Called once, after the last epoch.

        Parameters
        ----------
        state : TrainState
        """

    def on_exception(self, error: BaseException, state: TrainState) -> None:
        """Called instead of ``on_train_end`` when training raises ``error``.

        ``fit`` re-raises ``error`` once every callback whose
        ``on_train_begin`` ran has run this hook; it is called for
        ``KeyboardInterrupt`` too.

        Parameters
        ----------
        error : BaseException
            The exception that ended training.
        state : TrainState
        """


class EarlyStopping(Callback):
    r"""Stop training when the monitored value stops improving; keep the best weights.

    The rules (those of Keras, made exact):

    * an epoch **improves** when :math:`v < v_{best} - \delta` (``mode="min"``)
      or :math:`v > v_{best} + \delta` (``mode="max"``), with
      :math:`\delta` = ``min_delta``;
    * every monitored epoch adds 1 to ``wait``; an improvement resets it to 0;
      training stops at the end of an epoch that did not reset ``wait`` once
      ``wait >= patience`` (so ``patience=0`` stops at the first epoch
      without improvement);
    * with a ``baseline``, an improvement resets ``wait`` only if it also
      improves on the baseline by the same test (``v < baseline - min_delta``
      in "min" mode; as in tf.keras 2): training stops if the baseline is not
      beaten within ``patience`` epochs;
    * epochs before ``start_from_epoch`` are not monitored, but with
      ``check_finite`` a NaN or infinite value stops training at any epoch;
    * with ``restore_best_weights``, the model holds the weights of the best
      epoch when training ends, whether or not stopping fired;
    * also when training is cut short by an exception or ``KeyboardInterrupt``
      (:meth:`on_exception`): the best weights seen so far are put back
      before ``fit`` re-raises, so interrupting a long run keeps its best
      model. Keras, by contrast, leaves the last epoch's weights.

    Parameters
    ----------
    monitor : str, default "valid_loss"
        The key of ``logs`` to watch; a missing key is a ``KeyError``.
    patience : int, default 5
        Epochs without improvement to wait before stopping.
    min_delta : float, default 0.0
        The smallest change that counts as an improvement.
    mode : {"min", "max"}, default "min"
        Whether lower or higher values are better.
    baseline : float, optional
        A value the model must beat within ``patience`` epochs.
    restore_best_weights : bool, default True
    start_from_epoch : int, default 0
        The first epoch that is monitored (a warm-up before it).
    check_finite : bool, default True
        Stop at once on a NaN or infinite value.

    Attributes
    ----------
    best : float
        The best value so far (``inf`` for "min", ``-inf`` for "max" before any).
    best_epoch : int or None
        The epoch of ``best``; ``None`` before the first monitored epoch.
    stopped_epoch : int or None
        The epoch at whose end training stopped; ``None`` if it never fired.
    wait : int
        Monitored epochs since the last improvement that reset it.

    Examples
    --------
    >>> from regmlp.layers import Dense
    >>> stopper = EarlyStopping(patience=2)
    >>> state = TrainState(model=Dense(2, 1, rng=0))
    >>> for epoch, loss in enumerate([3.0, 2.0, 2.5, 2.1, 1.0]):
    ...     stopper.on_epoch_end(epoch, {"valid_loss": loss}, state)
    ...     if state.stop:
    ...         break
    >>> stopper.best_epoch, stopper.stopped_epoch
    (1, 3)
    """

    def __init__(self, monitor: str = "valid_loss", patience: int = 5, min_delta: float = 0.0,
                 mode: str = "min", baseline: float | None = None,
                 restore_best_weights: bool = True, start_from_epoch: int = 0,
                 check_finite: bool = True) -> None:
        if not isinstance(monitor, str) or not monitor:
            raise TypeError(f"monitor must be the name of a logs key, got {monitor!r}")
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
        self.monitor = monitor
        self.patience = check_int(patience, "patience")
        self.min_delta = check_number(min_delta, "min_delta", low=0.0)
        self.mode = mode
        self.baseline = None if baseline is None else check_number(baseline, "baseline")
        self.restore_best_weights = check_flag(restore_best_weights, "restore_best_weights")
        self.start_from_epoch = check_int(start_from_epoch, "start_from_epoch")
        self.check_finite = check_flag(check_finite, "check_finite")
        self._reset()

    def _reset(self) -> None:
        """Forget everything seen so far (a new training run starts)."""
        self.best = math.inf if self.mode == "min" else -math.inf
        self.best_epoch: int | None = None
        self.best_weights: dict[str, np.ndarray] | None = None
        self.stopped_epoch: int | None = None
        self.wait = 0

    def on_train_begin(self, state: TrainState) -> None:
        """A new run: forget the previous one."""
        self._reset()

    def on_epoch_end(self, epoch: int, logs: dict[str, float],
                     state: TrainState) -> None:
        """Apply the rules to this epoch's value of ``logs[monitor]``."""
        current = self._monitored_value(logs)
        if self.check_finite and not math.isfinite(current):
            self._stop(epoch, state)                 # NaN/inf: stop at once
            return
        if epoch < self.start_from_epoch:            # warm-up: not monitored
            return
        self.wait += 1
        if self.is_improvement(current, self.best):
            self.record_best(current, epoch, state)
            beats_baseline = (self.baseline is None
                              or self.is_improvement(current, self.baseline))
            if beats_baseline:
                self.wait = 0                        # a real improvement
                return
        if self.wait >= self.patience:               # patience has run out
            self._stop(epoch, state)

    def _monitored_value(self, logs: dict[str, float]) -> float:
        """``logs[monitor]`` as a float; a clear ``KeyError`` if it is missing."""
        if self.monitor not in logs:
            raise KeyError(f"EarlyStopping monitors {self.monitor!r}, which is not in logs; "
                           f"available keys: {sorted(logs)} (did you pass validation data?)")
        return float(logs[self.monitor])

    def is_improvement(self, current: float, reference: float) -> bool:
        """Whether ``current`` beats ``reference`` by more than min_delta.

        Parameters
        ----------
        current, reference : float
            This epoch's value, and the value it must beat.
        """
        if self.mode == "min":
            return current < reference - self.min_delta
        return current > reference + self.min_delta

    def record_best(self, current: float, epoch: int,
                    state: TrainState) -> None:
        """Remember the new best value, its epoch and a copy of the weights.

        Parameters
        ----------
        current : float
            The new best value.
        epoch : int
            The epoch it was reached in.
        state : TrainState
            Its ``model`` holds the weights to copy.
        """
        self.best = current
        self.best_epoch = epoch
        if self.restore_best_weights:
            self.best_weights = state.model.state_dict()

    def _stop(self, epoch: int, state: TrainState) -> None:
        """Ask ``fit`` to end training after this epoch."""
        self.stopped_epoch = epoch
        state.stop = True

    def on_train_end(self, state: TrainState) -> None:
        """Put the best epoch's weights back (if asked for and known)."""
        if self.restore_best_weights and self.best_weights is not None:
            state.model.load_state_dict(self.best_weights)

    def on_exception(self, error: BaseException, state: TrainState) -> None:
        """Training was cut short: put back the best weights seen so far, as at the end."""
        self.on_train_end(state)

    def __repr__(self) -> str:
        return (f"EarlyStopping(monitor={self.monitor!r}, patience={self.patience}, "
                f"min_delta={self.min_delta:g}, mode={self.mode!r})")


class CSVLogger(Callback):
    """Write one row per epoch to a CSV file: the epoch and every key of ``logs``.

    The header (``epoch`` followed by the keys of the first epoch's logs) is
    written with the first row; the parent folder is created if needed; an
    existing file is overwritten when training begins. Each row is appended
    and the file closed again at once, so the file is complete after every
    epoch and nothing stays open when training ends (or is interrupted).
    Numbers are written with ``repr``, so they read back exactly.

    Parameters
    ----------
    path : str or path-like

    Examples
    --------
    >>> logger = CSVLogger("runs/dropout.csv")      # doctest: +SKIP
    >>> fit(model, train, valid, ..., callbacks=[logger])  # doctest: +SKIP
    >>> pd.read_csv("runs/dropout.csv", index_col="epoch")  # doctest: +SKIP
    """

    def __init__(self, path: str | PathLike[str]) -> None:
        if not isinstance(path, (str, PathLike)):
            raise TypeError(f"path must be a str or a path, got {type(path).__name__}")
        self.path = Path(path)
        self.fieldnames: list[str] | None = None

    def on_train_begin(self, state: TrainState) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text("")
        self.fieldnames = None

    def on_epoch_end(self, epoch: int, logs: dict[str, float], state: TrainState) -> None:
        first = self.fieldnames is None
        if first:
            self.fieldnames = ["epoch", *logs]
        unknown = sorted(set(logs) - set(self.fieldnames))
        if unknown:
            raise ValueError(f"logs of epoch {epoch} have keys {unknown} that the first "
                             f"epoch did not have; the CSV columns are {self.fieldnames}")
        with self.path.open("a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=self.fieldnames, lineterminator="\n")
            if first:
                writer.writeheader()
            writer.writerow({"epoch": epoch, **logs})

    def __repr__(self) -> str:
        return f"CSVLogger({str(self.path)!r})"


def _import_wandb() -> Any:
    try:
        import wandb
    except ImportError as err:
        raise ImportError("WandbLogger needs the optional wandb package: "
                          "pip install 'regmlp[wandb]'") from err
    return wandb


class WandbLogger(Callback):
    """Send each epoch's logs to Weights & Biases.

    ``wandb.init`` is called when training begins, ``run.log(logs,
    step=epoch)`` after every epoch and ``run.finish()`` when training ends.
    Without an account or network, use ``mode="offline"`` (or set
    ``WANDB_MODE=offline``): the run is written under ``dir`` and can be
    uploaded later with ``wandb sync``.

    Parameters
    ----------
    project : str
        The W&B project.
    name : str, optional
        The run's name.
    config : dict, optional
        Hyperparameters to record with the run.
    mode : {"online", "offline", "disabled"}, optional
        ``None`` leaves the choice to wandb (``WANDB_MODE``).
    dir : str or path-like, optional
        Where wandb writes its files.
    **init_kwargs
        Passed on to ``wandb.init``.

    Raises
    ------
    ImportError
        If ``wandb`` is not installed (``pip install 'regmlp[wandb]'``).
    """

    def __init__(self, project: str, name: str | None = None, config: dict | None = None,
                 mode: str | None = None, dir: str | PathLike[str] | None = None,
                 **init_kwargs: Any) -> None:
        if not isinstance(project, str) or not project:
            raise TypeError(f"project must be a non-empty str, got {project!r}")
        if mode not in (None, "online", "offline", "disabled"):
            raise ValueError(f"mode must be 'online', 'offline', 'disabled' or None, got {mode!r}")
        self._wandb = _import_wandb()
        self.init_kwargs = dict(project=project, name=name, config=config, mode=mode,
                                dir=None if dir is None else str(dir), **init_kwargs)
        self.run: Any = None

    def on_train_begin(self, state: TrainState) -> None:
        self.run = self._wandb.init(**self.init_kwargs)

    def on_epoch_end(self, epoch: int, logs: dict[str, float], state: TrainState) -> None:
        self.run.log(dict(logs), step=epoch)

    def on_train_end(self, state: TrainState) -> None:
        self.run.finish()

    def on_exception(self, error: BaseException, state: TrainState) -> None:
        """Close the run, marked as failed (exit code 1)."""
        if self.run is not None:
            self.run.finish(exit_code=1)

    def __repr__(self) -> str:
        return f"WandbLogger(project={self.init_kwargs['project']!r})"
