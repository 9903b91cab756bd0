"""Loss functions: a scalar measure of how far predictions are from targets."""

from __future__ import annotations

import numpy as np

from ._checks import as_array

__all__ = ["MSE"]


class MSE:
    r"""Mean squared error, averaged over **all** elements (PyTorch's ``reduction="mean"``).

    .. math::
        L = \frac{1}{N}\sum_{i=1}^{N} (\hat y_i - y_i)^2, \qquad
        \frac{\partial L}{\partial \hat y_i} = \frac{2}{N}(\hat y_i - y_i).

    ``pred`` and ``target`` must have the same shape: a ``(n,)`` target
    against ``(n, 1)`` predictions would silently broadcast to an ``(n, n)``
    matrix, a classic bug, so it is refused.

    Examples
    --------
    >>> loss = MSE()
    >>> loss.forward(np.array([[1.0], [3.0]]), np.array([[0.0], [1.0]]))
    2.5
    >>> loss.backward()
    array([[1.],
           [2.]])
    """

    def __init__(self) -> None:
        self._diff: np.ndarray | None = None

    def forward(self, pred: np.ndarray, target: np.ndarray) -> float:
        """The mean of ``(pred - target) ** 2`` over all elements; keeps the difference.

        Parameters
        ----------
        pred : array_like
            The predictions, e.g. of shape ``(n, 1)``.
        target : array_like
            The targets, of exactly the shape of ``pred``.

        Returns
        -------
        float
            The loss. ``loss(pred, target)`` is ``loss.forward(pred, target)``.
        """
        pred = as_array(pred, "pred")
        target = as_array(target, "target")
        if pred.shape != target.shape:
            raise ValueError(f"target must have the shape of pred {pred.shape}, "
                             f"got {target.shape}")
        self._diff = pred - target
        return float(np.sum(self._diff * self._diff) / self._diff.size)

    __call__ = forward

    def backward(self) -> np.ndarray:
        """Return dL/dpred for the last ``forward``: ``2 (pred - target) / N``.

        Returns
        -------
        ndarray
            Of the shape of that call's ``pred``.
        """
        if self._diff is None:
            raise RuntimeError("MSE.backward called before forward")
        return self._diff * (2.0 / self._diff.size)

    def __repr__(self) -> str:
        return "MSE()"
