"""Training: mini-batches, the training loop, evaluation and prediction.

``fit`` is the loop every chapter uses. One epoch is one pass over the
shuffled training set in mini-batches; each step is

.. code-block:: python

    optimizer.zero_grad()
    loss.forward(model.forward(xb), yb)
    model.backward(loss.backward())
    penalty.backward(model.parameters())      # only with a penalty
    optimizer.step()

One epoch is :func:`train_epoch`. After each epoch the validation loss is
computed in evaluation mode, both losses are added to the :class:`History`
and the callbacks run. The model is in training mode during the epoch and
every layer's ``training`` flag is put back as it was when ``fit`` returns.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ._checks import as_array, as_generator, check_finite_array, check_flag, check_int
from .callbacks import Callback, TrainState
from .layers import Layer

__all__ = ["batches", "train_epoch", "History", "fit", "evaluate", "predict"]

#: One mini-batch: inputs ``xb`` of shape ``(b, features)``, targets ``yb`` ``(b, 1)``.
Batch = tuple[np.ndarray, np.ndarray]


# -- mini-batches --------------------------------------------------------------

def batches(x: np.ndarray, y: np.ndarray, batch_size: int = 32, *,
            rng: np.random.Generator | int | None = None,
            shuffle: bool = True) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield ``(xb, yb)`` mini-batches that together cover every row once.

    The rows are permuted once (``rng.permutation(n)``) and the permutation
    is cut into consecutive slices of ``batch_size``; the last batch holds
    the ``n % batch_size`` remaining rows when ``n`` is not a multiple.
    With ``shuffle=False`` the batches are consecutive views of ``x`` and
    ``y`` in their order (and ``rng`` is not used).

    Parameters
    ----------
    x, y : ndarray
        Arrays with the same number of rows (first axis).
    batch_size : int, default 32
    rng : numpy.random.Generator, int or None
        Source of the permutation.
    shuffle : bool, default True
        Whether to permute the rows (``True`` or ``False``; anything else is
        a ``TypeError``).

    Examples
    --------
    >>> x, y = np.arange(10.0).reshape(5, 2), np.arange(5.0).reshape(5, 1)
    >>> [len(yb) for _, yb in batches(x, y, batch_size=2, rng=0)]
    [2, 2, 1]
    """
    x, y = as_array(x, "x"), as_array(y, "y")
    if x.ndim == 0 or y.ndim == 0 or len(x) != len(y):
        raise ValueError(f"x and y must have the same number of rows, "
                         f"got shapes {x.shape} and {y.shape}")
    batch_size = check_int(batch_size, "batch_size", low=1)
    shuffle = check_flag(shuffle, "shuffle")
    order = as_generator(rng).permutation(len(x)) if shuffle else None
    return _iterate_batches(x, y, batch_size, order)


def _iterate_batches(x: np.ndarray, y: np.ndarray, batch_size: int,
                     order: np.ndarray | None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    for start in range(0, len(x), batch_size):
        if order is None:  # consecutive rows: views, no copy
            yield x[start:start + batch_size], y[start:start + batch_size]
        else:              # x.take(rows, axis=0) is x[rows], with less overhead
            rows = order[start:start + batch_size]
            yield x.take(rows, axis=0), y.take(rows, axis=0)


# -- the record of a run ---------------------------------------------------------

@dataclass
class History:
    """The losses of every epoch of a :func:`fit` run.

    Attributes
    ----------
    epochs : list of int
        The epoch numbers, from 0.
    train_loss : list of float
        Mean data loss over the epoch's mini-batches (training mode, no penalty).
    valid_loss : list of float
        Loss on the whole validation set in evaluation mode (empty without
        validation data).
    """

    epochs: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    valid_loss: list[float] = field(default_factory=list)

    def append(self, epoch: int, logs: dict[str, float]) -> None:
        """Record one epoch's ``logs``.

        Parameters
        ----------
        epoch : int
        logs : dict of str to float
            ``"train_loss"`` and, optionally, ``"valid_loss"``.
        """
        self.epochs.append(epoch)
        self.train_loss.append(logs["train_loss"])
        if "valid_loss" in logs:
            self.valid_loss.append(logs["valid_loss"])

    def __len__(self) -> int:
        return len(self.epochs)

    def to_frame(self) -> Any:
        """A pandas DataFrame indexed by ``epoch``, one column per loss."""
        import pandas as pd

        columns = {"train_loss": self.train_loss}
        if self.valid_loss:
            columns["valid_loss"] = self.valid_loss
        return pd.DataFrame(columns, index=pd.Index(self.epochs, name="epoch"))

    def plot(self, ax: Any = None) -> Any:
        """Plot the loss curves (see :func:`regmlp.diagnostics.plot_losses`).

        Parameters
        ----------
        ax : matplotlib Axes, optional
            Where to draw; a new figure if ``None``.

        Returns
        -------
        matplotlib.axes.Axes
        """
        from .diagnostics import plot_losses

        return plot_losses(self, ax=ax)


# -- modes -------------------------------------------------------------------------

def _training_flags(model: Layer) -> list[tuple[Layer, bool]]:
    """Every module with its current ``training`` flag."""
    return [(module, module.training) for module in model.modules()]


def _restore_flags(flags: list[tuple[Layer, bool]]) -> None:
    for module, training in flags:
        module.training = training


@contextmanager
def _eval_mode(model: Layer) -> Iterator[Layer]:
    """Run a block in evaluation mode and put every flag back afterwards, even on error."""
    flags = _training_flags(model)
    model.eval()
    try:
        yield model
    finally:
        _restore_flags(flags)


# -- argument checks (once, before the loop) ----------------------------------------

def _check_model(model: object) -> Layer:
    if not isinstance(model, Layer):
        raise TypeError(f"model must be a regmlp Layer (e.g. a Sequential), "
                        f"got {type(model).__name__}")
    return model


def _check_x(x: object, name: str) -> np.ndarray:
    x = as_array(x, name)
    if x.ndim != 2 or len(x) == 0:
        raise ValueError(f"{name} must have shape (n, features) with n >= 1, got {x.shape}")
    return check_finite_array(x, name)


def _check_xy(x: object, y: object, prefix: str = "") -> tuple[np.ndarray, np.ndarray]:
    """Numeric, finite ``x`` of shape ``(n, features)`` and ``y`` of shape ``(n, 1)``."""
    x = _check_x(x, f"{prefix}x")
    y = as_array(y, f"{prefix}y")
    if y.shape != (len(x), 1):
        raise ValueError(f"{prefix}y must have shape (n, 1) = ({len(x)}, 1) to match "
                         f"{prefix}x of shape {x.shape}, got {y.shape}")
    return x, check_finite_array(y, f"{prefix}y")


def _check_data(data: object, name: str) -> tuple[np.ndarray, np.ndarray]:
    """``data`` is an ``(x, y)`` pair or a ``Split``."""
    if not isinstance(data, Sequence) or isinstance(data, str) or len(data) != 2:
        raise TypeError(f"{name} must be an (x, y) pair or a Split, got {type(data).__name__}")
    return _check_xy(data[0], data[1], f"{name} ")


def _check_has(obj: object, name: str, methods: tuple[str, ...], example: str) -> None:
    """``obj`` is an object (not a class) with the given methods."""
    if isinstance(obj, type):
        raise TypeError(f"{name} must be an instance, not the class {obj.__name__}: "
                        f"write {name}={example}")
    missing = [m for m in methods if not callable(getattr(obj, m, None))]
    if missing:
        raise TypeError(f"{name} must have {' and '.join(methods)} methods (e.g. {example}), "
                        f"got {type(obj).__name__}")


def _check_callbacks(callbacks: object) -> list[Callback]:
    if isinstance(callbacks, Callback):
        raise TypeError("callbacks must be a list of Callback, got a single "
                        f"{type(callbacks).__name__}: write callbacks=[...]")
    try:
        callbacks = list(callbacks)
    except TypeError:
        raise TypeError(f"callbacks must be a list of Callback, "
                        f"got {type(callbacks).__name__}") from None
    for i, cb in enumerate(callbacks):
        if isinstance(cb, type):
            raise TypeError(f"callbacks[{i}] must be an instance, not the class "
                            f"{cb.__name__}: write {cb.__name__}(...)")
        if not isinstance(cb, Callback):
            raise TypeError(f"callbacks[{i}] must be a Callback, got {type(cb).__name__}")
    return callbacks


def _in_model_dtype(model: Layer, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``x`` and ``y`` in the dtype of the model's parameters, when they all share one.

    Converted once, before the loop: float32 layers then train in float32 end to end
    (float64 targets would turn the loss and the whole backward pass into float64).
    """
    dtypes = {p.value.dtype for p in model.parameters()}
    if len(dtypes) != 1:
        return x, y
    dtype = dtypes.pop()
    return x.astype(dtype, copy=False), y.astype(dtype, copy=False)


# -- progress bar -----------------------------------------------------------------

_OFF = ("0", "false", "no", "off")
_ON = ("1", "true", "yes", "on")


def _in_notebook() -> bool:
    """True inside a Jupyter (ipykernel) kernel."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return type(shell).__name__ == "ZMQInteractiveShell"


def _show_progress(progress: bool | None) -> bool:
    """Decide whether ``fit`` shows a progress bar.

    ``True``/``False`` decide. ``None`` applies these rules in order:

    1. ``REGMLP_PROGRESS`` set to ``0/false/no/off`` hides the bar, to
       ``1/true/yes/on`` shows it (the Makefile and the test configuration
       set ``REGMLP_PROGRESS=0`` for the book build and the tests);
    2. under pytest (``PYTEST_CURRENT_TEST`` is set; notebook kernels that
       nbval starts inherit it) or in CI (``CI`` set, as CI services do): no bar;
    3. otherwise a bar when a person can see it: in a Jupyter kernel, or
       when stderr is a terminal. Output to a file or a pipe gets none.
    """
    if progress is not None:
        return progress
    setting = os.environ.get("REGMLP_PROGRESS", "").strip().lower()
    if setting in _OFF or setting in _ON:
        return setting in _ON
    if "PYTEST_CURRENT_TEST" in os.environ:
        return False
    if os.environ.get("CI", "").strip().lower() not in ("", *_OFF):
        return False
    if _in_notebook():
        return True
    return bool(getattr(sys.stderr, "isatty", lambda: False)())


def _progress_bar(epochs: int, show: bool) -> Any:
    """A tqdm bar over the epochs (a widget in Jupyter when ipywidgets is there), or None."""
    if not show:
        return None
    from tqdm import TqdmWarning

    with warnings.catch_warnings():  # tqdm.auto warns when ipywidgets is missing
        warnings.simplefilter("ignore", TqdmWarning)
        from tqdm.auto import tqdm
        return tqdm(total=epochs, desc="epochs", unit="epoch")


# -- the loop ---------------------------------------------------------------------

def _check_parts(model: object, loss: object, optimizer: object, penalty: object) -> None:
    """The model, loss, optimizer and penalty of a training step have what it needs."""
    _check_model(model)
    _check_has(loss, "loss", ("forward", "backward"), "MSE()")
    _check_has(optimizer, "optimizer", ("zero_grad", "step"), "SGD(model.parameters(), lr=0.01)")
    if penalty is not None:
        _check_has(penalty, "penalty", ("loss", "backward"), "L2(1e-3)")


def train_epoch(model: Layer, minibatches: Iterable[Batch], *, loss: Any,
                optimizer: Any, penalty: Any = None) -> float:
    r"""One pass over ``minibatches`` in training mode; return the mean loss.

    Each step zeroes the gradients, runs forward and backward, adds the
    penalty's gradient (if any) and takes an optimizer step. For batches of
    sizes :math:`n_j` with data losses :math:`\ell_j` the result is
    :math:`\sum_j n_j \ell_j / \sum_j n_j` (without the penalty).

    Parameters
    ----------
    model : Layer
        Trained in place; left in training mode.
    minibatches : iterable of (xb, yb)
        E.g. ``batches(x, y, 32, rng=rng)``; must yield at least one row.
    loss, optimizer, penalty
        As for :func:`fit`.
    """
    _check_parts(model, loss, optimizer, penalty)
    model.train()
    total, rows = 0.0, 0
    for xb, yb in minibatches:
        optimizer.zero_grad()
        total += loss.forward(model.forward(xb), yb) * len(xb)
        model.backward(loss.backward())
        if penalty is not None:
            penalty.backward(model.parameters())
        optimizer.step()
        rows += len(xb)
    if rows == 0:
        raise ValueError("minibatches is empty: there is no row to train on")
    return total / rows


def _eval_loss(model: Layer, x: np.ndarray, y: np.ndarray, loss: Any) -> float:
    with _eval_mode(model):
        return float(loss.forward(model.forward(x), y))


def fit(model: Layer, train: Sequence[np.ndarray], valid: Sequence[np.ndarray] | None = None,
        *, loss: Any, optimizer: Any, epochs: int, batch_size: int = 32, penalty: Any = None,
        callbacks: Sequence[Callback] = (), rng: np.random.Generator | int | None = None,
        progress: bool | None = None) -> History:
    r"""Train ``model`` with mini-batch gradient descent; return the :class:`History`.

    Parameters
    ----------
    model : Layer
        E.g. a ``Sequential``; trained in place.
    train : (x, y) pair or Split
        ``x`` of shape ``(n, features)``, ``y`` of shape ``(n, 1)``, finite numbers.
    valid : (x, y) pair or Split, optional
        Validation data; its loss is computed after every epoch in eval mode.
    loss : loss object
        With ``forward(pred, target) -> float`` and ``backward()``, e.g. ``MSE()``.
    optimizer : Optimizer
        With ``zero_grad()`` and ``step()``, built on ``model.parameters()``.
    epochs : int
        Number of passes over ``train`` (fewer if a callback stops training).
    batch_size : int, default 32
    penalty : L1 or L2, optional
        An explicit penalty; its gradient is added before every step. It is
        **not** included in the reported losses, which stay comparable across
        penalties.
    callbacks : list of Callback
        Called in order after each epoch; ``state.stop = True`` ends training.
        If training raises (any exception, ``KeyboardInterrupt`` included),
        each callback whose ``on_train_begin`` ran gets ``on_exception`` and
        the exception is re-raised: with ``EarlyStopping(restore_best_weights=
        True)`` the model then holds the best weights seen so far.
    rng : numpy.random.Generator, int or None
        Source of the shuffling. The same seed (and the same model and
        optimizer) gives the same history, bit for bit.
    progress : bool or None
        Show a tqdm progress bar over the epochs with the latest losses.
        ``None`` decides by these rules, in order: the environment variable
        ``REGMLP_PROGRESS`` (``0``/``false``/``off`` hides the bar,
        ``1``/``true``/``on`` shows it; the book build and the tests set
        ``REGMLP_PROGRESS=0``); no bar under pytest (``PYTEST_CURRENT_TEST``,
        which notebook kernels started by nbval inherit) or in CI (``CI``
        set); otherwise a bar in a Jupyter kernel or when stderr is a
        terminal, none when output goes to a file or pipe.

    Returns
    -------
    History
        ``train_loss``: for batches :math:`B_1, \dots, B_k` of sizes
        :math:`n_j` with data losses :math:`\ell_j`,
        :math:`\sum_j n_j \ell_j / \sum_j n_j` (training mode, no penalty);
        ``valid_loss``: the loss on all of ``valid`` in evaluation mode.

    Notes
    -----
    Every argument is checked once, before the first epoch and before any
    callback runs (a class passed where an instance belongs, such as
    ``loss=MSE``, is a ``TypeError`` at once). The data is
    used in the dtype of the model's parameters (converted once, so a
    float32 model trains in float32 throughout). Epochs are numbered
    from 0. After ``fit`` (even if it raises) every layer's ``training``
    flag is what it was before.

    Examples
    --------
    >>> from regmlp import MSE, SGD, Dense, ReLU, Sequential
    >>> model = Sequential(Dense(3, 8, rng=0), ReLU(), Dense(8, 1, rng=1))
    >>> x, y = np.ones((20, 3)), np.zeros((20, 1))
    >>> history = fit(model, (x, y), loss=MSE(), optimizer=SGD(model.parameters(), lr=0.1),
    ...               epochs=3, rng=0, progress=False)
    >>> history.epochs
    [0, 1, 2]
    """
    model = _check_model(model)
    x, y = _in_model_dtype(model, *_check_data(train, "train"))
    if valid is not None:
        xv, yv = _in_model_dtype(model, *_check_data(valid, "valid"))
        if xv.shape[1] != x.shape[1]:
            raise ValueError(f"valid x has {xv.shape[1]} features but train x has {x.shape[1]}")
    epochs = check_int(epochs, "epochs", low=1)
    batch_size = check_int(batch_size, "batch_size", low=1)
    _check_parts(model, loss, optimizer, penalty)
    callbacks = _check_callbacks(callbacks)
    rng = as_generator(rng)
    if progress is not None and not isinstance(progress, bool):
        raise TypeError(f"progress must be True, False or None, got {progress!r}")

    history = History()
    state = TrainState(model, optimizer, history)
    flags = _training_flags(model)
    bar = _progress_bar(epochs, _show_progress(progress))
    started: list[Callback] = []
    try:
        for cb in callbacks:
            cb.on_train_begin(state)
            started.append(cb)
        for epoch in range(epochs):
            state.epoch = epoch
            logs = {"train_loss": train_epoch(model, batches(x, y, batch_size, rng=rng),
                                              loss=loss, optimizer=optimizer, penalty=penalty)}
            if valid is not None:
                logs["valid_loss"] = _eval_loss(model, xv, yv, loss)
            history.append(epoch, logs)
            if bar is not None:
                bar.set_postfix({k: f"{v:.4g}" for k, v in logs.items()}, refresh=False)
                bar.update(1)
            for cb in callbacks:
                cb.on_epoch_end(epoch, logs, state)
            if state.stop:
                break
        for cb in callbacks:
            cb.on_train_end(state)
    except BaseException as error:  # KeyboardInterrupt too: keep what the callbacks saved
        for cb in started:
            cb.on_exception(error, state)
        raise
    finally:
        _restore_flags(flags)
        if bar is not None:
            bar.close()
    return history


# -- using a trained model ----------------------------------------------------------

def evaluate(model: Layer, x: np.ndarray, y: np.ndarray, loss: Any) -> float:
    """The loss of ``model`` on all of ``(x, y)``, in evaluation mode.

    Every layer's ``training`` flag is restored afterwards, even on error.

    Parameters
    ----------
    model : Layer
    x : ndarray, shape (n, features)
        Finite numbers.
    y : ndarray, shape (n, 1)
        Finite numbers.
    loss : loss object
        With ``forward(pred, target) -> float``, e.g. ``MSE()``.

    Returns
    -------
    float

    Examples
    --------
    >>> evaluate(model, valid.x, valid.y, MSE())        # doctest: +SKIP
    0.1234
    """
    model = _check_model(model)
    x, y = _in_model_dtype(model, *_check_xy(x, y))
    _check_has(loss, "loss", ("forward", "backward"), "MSE()")
    return _eval_loss(model, x, y, loss)


def predict(model: Layer, x: np.ndarray) -> np.ndarray:
    """The output of ``model`` for ``x`` of shape ``(n, features)``, in evaluation mode.

    Dropout is off, so the prediction is deterministic. Every layer's
    ``training`` flag is restored afterwards, even on error.

    Parameters
    ----------
    model : Layer
    x : ndarray, shape (n, features)
        Finite numbers.

    Returns
    -------
    ndarray, shape (n, outputs)
    """
    model = _check_model(model)
    x = _check_x(x, "x")
    with _eval_mode(model):
        return model.forward(x)
