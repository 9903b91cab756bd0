r"""Explicit penalties: regularisation written as a term of the loss.

An optimizer's ``weight_decay`` changes the *update*; a penalty changes the
*loss*, :math:`L_{total} = L_{data} + \Omega(\theta)`, and adds
:math:`\nabla\Omega` to the gradients before the optimizer runs. Both act only
on parameters with ``decay=True``.

* ``L2(lam)``: :math:`\Omega = \frac{\lambda}{2}\sum \theta^2`, gradient
  :math:`\lambda\theta` (so plain SGD with ``L2(lam)`` equals ``SGD(weight_decay=lam)``);
* ``L1(lam)``: :math:`\Omega = \lambda\sum |\theta|`, (sub)gradient
  :math:`\lambda\,\mathrm{sign}(\theta)`, with 0 at :math:`\theta = 0`.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from ._checks import check_number
from .layers import Parameter

__all__ = ["Penalty", "L1", "L2"]


class Penalty:
    r"""Base class: a regularisation term over the decayed parameters.

    Parameters
    ----------
    lam : float
        The strength :math:`\lambda`, finite and non-negative.
    """

    def __init__(self, lam: float) -> None:
        self.lam = check_number(lam, "lam", low=0.0)

    @staticmethod
    def decayed(params: Iterable[Parameter]) -> list[Parameter]:
        """The parameters the penalty applies to (``decay=True``)."""
        params = list(params)
        for i, p in enumerate(params):
            if not isinstance(p, Parameter):
                raise TypeError(f"params[{i}] must be a Parameter, got {type(p).__name__}")
        return [p for p in params if p.decay]

    def loss(self, params: Iterable[Parameter]) -> float:
        """The value of the term.

        Parameters
        ----------
        params : iterable of Parameter
            E.g. ``model.parameters()``; only those with ``decay=True`` count.
        """
        return float(sum(self._term(p.value) for p in self.decayed(params)))

    def backward(self, params: Iterable[Parameter]) -> None:
        """Add the term's gradient to each decayed parameter's ``.grad``.

        Parameters
        ----------
        params : iterable of Parameter
            E.g. ``model.parameters()``; those with ``decay=False`` are skipped.
        """
        for p in self.decayed(params):
            p.grad += self._grad(p.value)

    def _term(self, w: np.ndarray) -> float:
        raise NotImplementedError

    def _grad(self, w: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.lam:g})"


class L2(Penalty):
    r"""Ridge penalty :math:`\frac{\lambda}{2}\sum\theta^2`.

    Its gradient is :math:`\lambda\theta`.

    Examples
    --------
    >>> L2(0.1).loss([Parameter(np.array([3.0, 4.0]))])
    1.25
    """

    def _term(self, w: np.ndarray) -> float:
        return 0.5 * self.lam * float(np.sum(w * w))

    def _grad(self, w: np.ndarray) -> np.ndarray:
        return self.lam * w


class L1(Penalty):
    r"""Lasso penalty :math:`\lambda\sum|\theta|`, subgradient
    :math:`\lambda\,\mathrm{sign}(\theta)` (0 at 0).

    Examples
    --------
    >>> L1(0.1).loss([Parameter(np.array([3.0, -4.0]))])
    0.7000000000000001
    """

    def _term(self, w: np.ndarray) -> float:
        return self.lam * float(np.sum(np.abs(w)))

    def _grad(self, w: np.ndarray) -> np.ndarray:
        return self.lam * np.sign(w)
