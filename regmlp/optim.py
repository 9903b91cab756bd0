r"""Optimizers: SGD and Adam, each with coupled or decoupled weight decay.

The four classes match PyTorch step for step. The difference that matters:

* **coupled** (``SGD``, ``Adam``): weight decay is an L2 term in the gradient,
  :math:`g \leftarrow g + \lambda\theta`, which then flows through momentum
  and, for Adam, through the per-coordinate scaling :math:`1/\sqrt{\hat v}`;
* **decoupled** (``SGDW``, ``AdamW``; Loshchilov & Hutter, 2019): the weights
  shrink directly, :math:`\theta \leftarrow \theta - \eta\lambda\theta`, and the
  gradient statistics never see the decay.

For plain SGD the two are the same update; with momentum or Adam they differ.
Parameters with ``decay=False`` (biases, LayerNorm gains and shifts) are never
decayed by any of them.

Both kinds of decay are written once, in :meth:`Optimizer.step`, and the class
attribute ``decoupled`` picks one. Each optimizer supplies only its step
*direction* from a gradient (:meth:`SGD.direction`, :meth:`Adam.direction`),
so ``SGDW`` is ``SGD`` with ``decoupled = True`` and ``AdamW`` is ``Adam`` with
``decoupled = True``.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from ._checks import check_number
from .layers import Layer, Parameter

__all__ = ["Optimizer", "SGD", "SGDW", "Adam", "AdamW"]


class Optimizer:
    r"""Base class: the parameters, the learning rate and the weight decay.

    Parameters
    ----------
    params : iterable of Parameter
        Typically ``model.parameters()``.
    lr : float
        Learning rate :math:`\eta`, finite and non-negative.
    weight_decay : float
        Decay strength :math:`\lambda`, finite and non-negative.

    Attributes
    ----------
    decoupled : bool
        Class attribute: ``False`` for coupled decay (L2 in the gradient;
        ``SGD``, ``Adam``), ``True`` for decoupled decay (``SGDW``, ``AdamW``).
    t : int
        The number of steps taken so far.
    """

    decoupled: bool = False

    def __init__(self, params: Iterable[Parameter], lr: float, weight_decay: float) -> None:
        if isinstance(params, (Parameter, Layer)) or not isinstance(params, Iterable):
            raise TypeError("params must be a list of Parameter (e.g. model.parameters()), "
                            f"got {type(params).__name__}")
        self.params = list(params)
        for i, p in enumerate(self.params):
            if not isinstance(p, Parameter):
                raise TypeError(f"params[{i}] must be a Parameter, got {type(p).__name__}")
        if not self.params:
            raise ValueError("params is empty: the optimizer has nothing to update")
        self.lr = check_number(lr, "lr", low=0.0)
        self.weight_decay = check_number(weight_decay, "weight_decay", low=0.0)
        self.t = 0

    def zero_grad(self) -> None:
        """Set every parameter's gradient to zero (gradients accumulate otherwise)."""
        for p in self.params:
            p.grad.fill(0.0)

    def step(self) -> None:
        r"""Update every parameter from its ``.grad``, with weight decay.

        For a parameter :math:`\theta` with gradient :math:`g` and direction
        :math:`d` (:meth:`direction`), when :math:`\theta` decays:

        * coupled: :math:`d = d(g + \lambda\theta)`, then
          :math:`\theta \leftarrow \theta - \eta\, d`;
        * decoupled: :math:`d = d(g)`, then
          :math:`\theta \leftarrow \theta - \eta\lambda\theta - \eta\, d`.
        """
        self.t += 1
        for i, p in enumerate(self.params):
            decays = p.decay and self.weight_decay > 0
            g = p.grad
            if decays and not self.decoupled:   # coupled: L2 in the gradient
                g = g + self.weight_decay * p.value
            step = self.direction(i, g)
            if decays and self.decoupled:       # decoupled: shrink the weights
                p.value *= 1 - self.lr * self.weight_decay
            p.value -= self.lr * step

    def direction(self, i: int, g: np.ndarray) -> np.ndarray:
        """The step direction of parameter ``i`` from its gradient ``g``.

        ``step`` subtracts ``lr`` times it. Subclasses implement it and keep
        their per-parameter state (momentum, moments) in lists indexed by ``i``.

        Parameters
        ----------
        i : int
            The parameter's index in ``params``.
        g : ndarray
            Its gradient, with the L2 term added when the decay is coupled.

        Returns
        -------
        ndarray
            Of the shape of ``g``.
        """
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(lr={self.lr:g}, weight_decay={self.weight_decay:g})"


class SGD(Optimizer):
    r"""Stochastic gradient descent with momentum and **coupled** L2 decay (``torch.optim.SGD``).

    For each parameter :math:`\theta` with gradient :math:`g`:

    .. math::
        g &\leftarrow g + \lambda\,\theta \quad(\text{only if } \theta\text{.decay}) \\
        b &\leftarrow \mu\, b + g \quad(b = g \text{ at the first step}) \\
        \theta &\leftarrow \theta - \eta\, b

    With ``momentum=0`` there is no buffer and :math:`b = g`.

    Parameters
    ----------
    params : iterable of Parameter
        Typically ``model.parameters()``.
    lr : float
        Learning rate :math:`\eta`.
    momentum : float, default 0.0
        Momentum :math:`\mu` (PyTorch's, without dampening or Nesterov).
    weight_decay : float, default 0.0
        L2 strength :math:`\lambda`.

    Attributes
    ----------
    buffers : list of ndarray or None
        The momentum buffer :math:`b` of each parameter (``None`` before the
        first step or without momentum).

    Examples
    --------
    >>> p = Parameter(np.array([1.0, -2.0]))
    >>> p.grad[...] = [0.5, 0.5]
    >>> SGD([p], lr=0.1).step()
    >>> p.value
    array([ 0.95, -2.05])
    """

    def __init__(self, params: Iterable[Parameter], lr: float, momentum: float = 0.0,
                 weight_decay: float = 0.0) -> None:
        super().__init__(params, lr, weight_decay)
        self.momentum = check_number(momentum, "momentum", low=0.0)
        self.buffers: list[np.ndarray | None] = [None] * len(self.params)

    def direction(self, i: int, g: np.ndarray) -> np.ndarray:
        """The momentum buffer ``b <- momentum * b + g``, or ``g`` itself."""
        if self.momentum == 0:
            return g
        if self.buffers[i] is None:        # the first step: b = g
            self.buffers[i] = g.copy()
        else:
            self.buffers[i] = self.momentum * self.buffers[i] + g
        return self.buffers[i]


class SGDW(SGD):
    r"""SGD with momentum and **decoupled** weight decay (Loshchilov & Hutter's SGDW).

    .. math::
        b &\leftarrow \mu\, b + g \\
        \theta &\leftarrow \theta - \eta\lambda\,\theta - \eta\, b

    Both terms use the same old :math:`\theta`; the momentum buffer never sees
    the decay. With ``momentum=0`` this is exactly ``SGD`` with the same
    ``weight_decay``: :math:`\theta - \eta(g + \lambda\theta)`. The parameters
    are those of :class:`SGD`.
    """

    decoupled = True


class Adam(Optimizer):
    r"""Adam with **coupled** L2 decay (``torch.optim.Adam``; Kingma & Ba, 2015).

    At step :math:`t`, for each parameter :math:`\theta` with gradient :math:`g`:

    .. math::
        g &\leftarrow g + \lambda\,\theta \quad(\text{only if } \theta\text{.decay}) \\
        m &\leftarrow \beta_1 m + (1-\beta_1)\, g, \qquad
        v \leftarrow \beta_2 v + (1-\beta_2)\, g^2 \\
        \hat m &= \frac{m}{1-\beta_1^t}, \qquad \hat v = \frac{v}{1-\beta_2^t} \\
        \theta &\leftarrow \theta - \eta\, \frac{\hat m}{\sqrt{\hat v} + \epsilon}

    Because the decay term passes through :math:`1/\sqrt{\hat v}`, weights with
    large gradients are decayed *less*: the reason AdamW exists.

    Parameters
    ----------
    params : iterable of Parameter
        Typically ``model.parameters()``.
    lr : float, default 1e-3
        Learning rate :math:`\eta`.
    betas : (float, float), default (0.9, 0.999)
        Decay rates :math:`\beta_1, \beta_2` of the two moments, each in [0, 1).
    eps : float, default 1e-8
        :math:`\epsilon`, added to :math:`\sqrt{\hat v}`.
    weight_decay : float, default 0.0
        L2 strength :math:`\lambda`.

    Attributes
    ----------
    m, v : list of ndarray
        The first and second moments of each parameter (zeros at first).
    """

    def __init__(self, params: Iterable[Parameter], lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0) -> None:
        super().__init__(params, lr, weight_decay)
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise ValueError(f"betas must be a pair (beta1, beta2), got {betas!r}")
        self.betas = (check_number(betas[0], "betas[0]", low=0.0, high=1.0, high_inclusive=False),
                      check_number(betas[1], "betas[1]", low=0.0, high=1.0, high_inclusive=False))
        self.eps = check_number(eps, "eps", low=0.0)
        self.m = [np.zeros_like(p.value) for p in self.params]
        self.v = [np.zeros_like(p.value) for p in self.params]

    def direction(self, i: int, g: np.ndarray) -> np.ndarray:
        """Adam's direction ``m_hat / (sqrt(v_hat) + eps)`` for parameter i."""
        beta1, beta2 = self.betas
        self.m[i] = beta1 * self.m[i] + (1 - beta1) * g      # first moment
        self.v[i] = beta2 * self.v[i] + (1 - beta2) * g**2   # second moment
        m_hat = self.m[i] / (1 - beta1**self.t)              # bias corrections
        v_hat = self.v[i] / (1 - beta2**self.t)
        return m_hat / (np.sqrt(v_hat) + self.eps)


class AdamW(Adam):
    r"""Adam with **decoupled** weight decay (``torch.optim.AdamW``).

    Loshchilov & Hutter (2019):

    .. math::
        \theta \leftarrow \theta - \eta\lambda\theta
        - \eta\,\frac{\hat m}{\sqrt{\hat v} + \epsilon}

    (the decay only if ``decay``), with the moments of :class:`Adam` computed
    from the raw gradient: they never see the decay. The parameters are those
    of :class:`Adam`, except that ``weight_decay`` defaults to 0.01, as in
    PyTorch.

    Parameters
    ----------
    params : iterable of Parameter
        Typically ``model.parameters()``.
    lr : float, default 1e-3
        Learning rate :math:`\eta`.
    betas : (float, float), default (0.9, 0.999)
        :math:`\beta_1, \beta_2`, each in [0, 1).
    eps : float, default 1e-8
        :math:`\epsilon`.
    weight_decay : float, default 0.01
        Decoupled decay :math:`\lambda`.
    """

    decoupled = True

    def __init__(self, params: Iterable[Parameter], lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2) -> None:
        super().__init__(params, lr, betas, eps, weight_decay)
