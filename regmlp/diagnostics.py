r"""Diagnostics: look inside a network while and after it trains.

Three questions come back in every chapter, and each has a helper here:

* **Does it overfit?** :func:`plot_losses` draws training and validation
  curves (and marks the best validation epoch).
* **What does regularisation do to the weights?** :func:`weight_norm` and
  :func:`weight_histogram` summarise the decayed weights
  :math:`\theta` (those with ``decay=True``).
* **Is a deep network healthy?** :func:`activation_stats`,
  :func:`gradient_norms` and :func:`layer_stats` show how the signal and the
  gradient change from layer to layer; :func:`dead_relu_fraction` counts the
  ReLU units that are off for every input; :func:`update_to_data_ratio` measures
  how large one optimizer step is compared with the weights,
  :math:`\lVert\Delta\theta\rVert / \lVert\theta\rVert` (about
  :math:`10^{-3}` is the usual healthy order of magnitude).

The per-layer helpers run the model in its **current** mode (call
``model.eval()`` first to switch dropout off) and leave every ``.grad`` as it
was. "Layer" means a top-level layer of a ``Sequential`` (a model that is
not a ``Sequential`` counts as one layer); the Dense layers inside
``Residual`` blocks are found with ``model.modules()``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ._checks import as_array
from .layers import Dense, Layer, Parameter, ReLU, Sequential

__all__ = [
    "plot_losses",
    "weight_histogram",
    "weight_norm",
    "activation_stats",
    "gradient_norms",
    "layer_stats",
    "dead_relu_fraction",
    "update_to_data_ratio",
]


def _check_model(model: object) -> Layer:
    if not isinstance(model, Layer):
        raise TypeError(f"model must be a regmlp Layer, got {type(model).__name__}")
    return model


def _decayed_weights(model: Layer) -> list[Parameter]:
    return [p for p in _check_model(model).parameters() if p.decay]


def _axes(ax: Any) -> Any:
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots()
    return ax


# -- loss curves -------------------------------------------------------------------

def _named_histories(histories: Any, labels: Sequence[str] | None) -> list[tuple[str, Any]]:
    """Turn one History, a list of them or a ``{label: History}`` dict into pairs."""
    if isinstance(histories, Mapping):
        if labels is not None:
            raise ValueError("give labels either as the keys of a dict or as labels=, not both")
        return [(str(k), h) for k, h in histories.items()]
    if hasattr(histories, "train_loss"):
        histories = [histories]
    histories = list(histories)
    if labels is None:
        labels = [""] if len(histories) == 1 else [f"run {i}" for i in range(len(histories))]
    if len(labels) != len(histories):
        raise ValueError(f"labels has {len(labels)} entries for {len(histories)} histories")
    for h in histories:
        if not hasattr(h, "train_loss") or not hasattr(h, "epochs"):
            raise TypeError(f"expected a History, got {type(h).__name__}")
    return list(zip(labels, histories, strict=True))


def plot_losses(histories: Any, ax: Any = None, labels: Sequence[str] | None = None,
                mark_best: bool = False) -> Any:
    """Plot training (dashed) and validation (solid) loss against the epoch.

    Parameters
    ----------
    histories : History, list of History or dict of {label: History}
        One colour per run.
    ax : matplotlib Axes, optional
        Drawn into; a new figure otherwise.
    labels : list of str, optional
        Names of the runs (not with a dict).
    mark_best : bool, default False
        Mark each run's lowest validation loss with a dot.

    Returns
    -------
    matplotlib Axes
        With labelled axes, a title and a legend.

    Examples
    --------
    >>> plot_losses({"no dropout": h0, "dropout 0.3": h1}, mark_best=True)  # doctest: +SKIP
    """
    runs = _named_histories(histories, labels)
    ax = _axes(ax)
    for i, (label, h) in enumerate(runs):
        color = f"C{i % 10}"
        prefix = f"{label} " if label else ""
        ax.plot(h.epochs, h.train_loss, "--", color=color, label=f"{prefix}train")
        if len(h.valid_loss):
            ax.plot(h.epochs, h.valid_loss, "-", color=color, label=f"{prefix}validation")
            if mark_best:
                best = int(np.argmin(h.valid_loss))
                ax.plot(h.epochs[best], h.valid_loss[best], "o", color=color,
                        label=f"{prefix}best (epoch {h.epochs[best]})")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.set_title("Training and validation loss")
    ax.legend()
    return ax


# -- weights -------------------------------------------------------------------------

def weight_norm(model: Layer) -> float:
    r"""The L2 norm of all decayed weights, :math:`\sqrt{\sum_{\theta:\,decay} \theta^2}`.

    Biases and LayerNorm's gain and shift (``decay=False``) are left out:
    they are what weight decay does not touch.

    Examples
    --------
    >>> from regmlp.layers import Dense
    >>> layer = Dense(2, 1, rng=0)
    >>> layer.weight.value[:] = [[3.0], [4.0]]
    >>> weight_norm(layer)
    5.0
    """
    return float(np.sqrt(sum(float(np.sum(p.value ** 2)) for p in _decayed_weights(model))))


def weight_histogram(model: Layer, ax: Any = None, bins: int | np.ndarray = 50, *,
                     decayed_only: bool = True, label: str | None = None) -> Any:
    """Histogram of the model's weights (by default only the decayed ones).

    Call it several times with the same ``ax`` and a ``label`` to compare
    models (pass the same ``bins`` array so the bars line up).

    Parameters
    ----------
    model : Layer
    ax : matplotlib Axes, optional
    bins : int or array, default 50
        As for :func:`numpy.histogram`.
    decayed_only : bool, default True
        Leave out biases and LayerNorm parameters.
    label : str, optional
        Legend entry; defaults to the number of weights.

    Returns
    -------
    matplotlib Axes
    """
    params = _decayed_weights(model) if decayed_only else _check_model(model).parameters()
    if not params:
        raise ValueError("the model has no weights to plot")
    values = np.concatenate([p.value.ravel() for p in params])
    ax = _axes(ax)
    label = label if label is not None else f"{values.size} weights"
    ax.hist(values, bins=bins, alpha=0.6, label=label)
    ax.set_xlabel("weight value")
    ax.set_ylabel("count")
    ax.set_title("Decayed weights" if decayed_only else "All parameters")
    ax.legend()
    return ax


def update_to_data_ratio(before: dict[str, np.ndarray],
                         after: dict[str, np.ndarray]) -> dict[str, float]:
    r"""How big one update is relative to the weights, per parameter.

    .. math:: r = \frac{\lVert \theta_{after} - \theta_{before} \rVert_2}
                       {\lVert \theta_{before} \rVert_2}

    Take ``before = model.state_dict()``, run ``optimizer.step()``, then call
    ``update_to_data_ratio(before, model.state_dict())``. A ratio near
    :math:`10^{-3}` is the usual rule of thumb for a healthy learning rate;
    much larger means the step rewrites the weights, much smaller that
    they hardly move. A zero ``before`` gives ``inf`` (or ``nan`` if it did
    not move either).

    Parameters
    ----------
    before, after : dict of str to ndarray
        Two state dicts with the same keys and shapes.

    Returns
    -------
    dict of str to float
        In the order of ``before``.
    """
    if not isinstance(before, Mapping) or not isinstance(after, Mapping):
        raise TypeError("before and after must be state dicts (model.state_dict())")
    if set(before) != set(after):
        raise ValueError(f"before and after must have the same keys: only in before "
                         f"{sorted(set(before) - set(after))}, only in after "
                         f"{sorted(set(after) - set(before))}")
    ratios = {}
    for name, w0 in before.items():
        w0, w1 = as_array(w0, f"before[{name!r}]"), as_array(after[name], f"after[{name!r}]")
        if w0.shape != w1.shape:
            raise ValueError(f"{name!r} has shape {w0.shape} before and {w1.shape} after")
        with np.errstate(divide="ignore", invalid="ignore"):
            ratios[name] = float(np.linalg.norm(w1 - w0) / np.linalg.norm(w0))
    return ratios


# -- signals and gradients through the layers ---------------------------------------

def _top_layers(model: Layer) -> list[tuple[str, Layer]]:
    """The top-level layers: a Sequential's children, or the model itself."""
    if isinstance(model, Sequential):
        return model.children()
    return [("0", model)]


def _forward_by_layer(model: Layer, x: np.ndarray) -> list[np.ndarray]:
    """Run the model layer by layer, keeping each top-level layer's output."""
    outputs = []
    for _, layer in _top_layers(model):
        x = layer.forward(x)
        outputs.append(x)
    return outputs


def _dense_layers(model: Layer) -> list[Dense]:
    return [m for m in model.modules() if isinstance(m, Dense)]


def _weight_grads(model: Layer, x: np.ndarray, y: np.ndarray, loss: Any,
                  ) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """One forward/backward of the data loss in the current mode.

    Returns the top-level outputs and dL/dW of every Dense weight
    (``model.modules()`` order); every ``.grad`` is put back afterwards.
    """
    params = model.parameters()
    saved = [p.grad.copy() for p in params]
    try:
        for p in params:
            p.grad.fill(0.0)
        outputs = _forward_by_layer(model, x)
        loss.forward(outputs[-1], y)
        model.backward(loss.backward())
        grads = [layer.weight.grad.copy() for layer in _dense_layers(model)]
    finally:
        for p, g in zip(params, saved, strict=True):
            p.grad[...] = g
    return outputs, grads


def _check_inputs(model: object, x: object, y: object = None) -> tuple[np.ndarray, Any]:
    _check_model(model)
    x = as_array(x, "x")
    if x.ndim != 2:
        raise ValueError(f"x must have shape (n, features), got {x.shape}")
    if y is not None:
        y = as_array(y, "y")
        if y.shape[:1] != x.shape[:1]:
            raise ValueError(f"y must have {len(x)} rows like x, got shape {y.shape}")
    return x, y


def activation_stats(model: Layer, x: np.ndarray) -> np.ndarray:
    r"""The standard deviation of each top-level layer's output on ``x``.

    For a plain deep network the signal often shrinks (or grows) layer after
    layer; LayerNorm and residual connections keep it near a constant scale.
    Runs in the model's current mode.

    Returns
    -------
    ndarray of shape (n_layers,)
        :math:`\operatorname{std}(h_\ell)` over all entries of layer
        :math:`\ell`'s output :math:`h_\ell`.

    Examples
    --------
    >>> from regmlp.layers import ReLU
    >>> activation_stats(Sequential(ReLU()), np.array([[-1.0, 1.0]]))
    array([0.5])
    """
    x, _ = _check_inputs(model, x)
    return np.array([float(np.std(h)) for h in _forward_by_layer(model, x)])


def gradient_norms(model: Layer, x: np.ndarray, y: np.ndarray, loss: Any) -> np.ndarray:
    r"""The norm of the data-loss gradient of each Dense weight, first layer first.

    :math:`\lVert \partial L / \partial W_\ell \rVert_F` for every ``Dense``
    in ``model.modules()`` order (so those inside ``Residual`` blocks too),
    from one forward/backward on ``(x, y)`` in the current mode. Vanishing
    gradients show as norms that fall by orders of magnitude towards the
    input. Every ``.grad`` is left as it was.

    Returns
    -------
    ndarray of shape (n_dense,)
    """
    x, y = _check_inputs(model, x, y)
    _, grads = _weight_grads(model, x, y, loss)
    return np.array([float(np.linalg.norm(g)) for g in grads])


def layer_stats(model: Layer, x: np.ndarray, y: np.ndarray | None = None,
                loss: Any = None) -> Any:
    r"""Per-layer statistics of one forward (and backward) pass, as a DataFrame.

    One row per top-level layer, indexed by its position:

    * ``layer``: its name, e.g. ``"Dense(33, 64, bias=True)"``;
    * ``out_mean``, ``out_std``: mean and standard deviation of its output;
    * ``grad_norm`` (only with ``y`` and ``loss``): the norm of the data-loss
      gradient of the Dense weights *inside* the layer,
      :math:`\sqrt{\sum_{W \in \ell} \lVert \partial L/\partial W\rVert_F^2}`
      (for a Dense layer its own weight gradient; for a ``Residual`` block all
      its Dense weights; ``NaN`` for a layer without one).

    Runs in the model's current mode and leaves every ``.grad`` as it was.
    """
    import pandas as pd

    x, y = _check_inputs(model, x, y)
    if (y is None) != (loss is None):
        raise ValueError("give both y and loss for gradient norms, or neither")
    if y is None:
        outputs, grads = _forward_by_layer(model, x), None
    else:
        outputs, grads = _weight_grads(model, x, y, loss)
    rows = []
    for (name, layer), h in zip(_top_layers(model), outputs, strict=True):
        row = {"name": name, "layer": _short_name(layer),
               "out_mean": float(np.mean(h)), "out_std": float(np.std(h))}
        if grads is not None:
            row["grad_norm"] = _grad_norm_inside(model, layer, grads)
        rows.append(row)
    return pd.DataFrame(rows).set_index("name")


def _short_name(layer: Layer) -> str:
    """``repr`` for a single layer, the class name for a container."""
    return type(layer).__name__ if layer.children() else repr(layer)


def _grad_norm_inside(model: Layer, layer: Layer, grads: list[np.ndarray]) -> float:
    """Combined norm of the weight gradients of the Dense layers inside ``layer``."""
    inside = {id(m) for m in layer.modules()}
    squares = [float(np.sum(g ** 2))
               for dense, g in zip(_dense_layers(model), grads, strict=True)
               if id(dense) in inside]
    return float(np.sqrt(sum(squares))) if squares else float("nan")


def dead_relu_fraction(model: Layer, x: np.ndarray) -> np.ndarray:
    r"""The fraction of each ReLU layer's units that are off for every row of ``x``.

    A unit :math:`j` of a ReLU layer is *dead* on ``x`` when its output is 0
    for every sample, :math:`\max_i h_{ij} = 0`: it passes no signal forward
    and no gradient back, so the weights in front of it stop learning from
    these inputs. A few dead units are normal; a layer where most units are
    dead has lost most of its width.

    Every ``ReLU`` in ``model.modules()`` order counts (those inside
    ``Residual`` blocks too). Runs one forward pass in the model's current
    mode.

    Returns
    -------
    ndarray of shape (n_relu,)
        For each ReLU layer, the dead units divided by its width.

    Examples
    --------
    >>> from regmlp.layers import Dense
    >>> layer = Dense(1, 2, rng=0)
    >>> layer.weight.value[:] = [[1.0, -1.0]]
    >>> layer.bias.value[:] = 0.0
    >>> dead_relu_fraction(Sequential(layer, ReLU()), np.array([[1.0], [2.0]]))
    array([0.5])
    """
    x, _ = _check_inputs(model, x)
    relus = [m for m in model.modules() if isinstance(m, ReLU)]
    if not relus:
        raise ValueError("model has no ReLU layer")
    model.forward(x)        # each ReLU keeps the mask (output > 0) of its last forward
    return np.array([float(np.mean(~np.any(relu._mask.reshape(len(x), -1), axis=0)))
                     for relu in relus])
