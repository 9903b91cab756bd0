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
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

from ._checks import check_number
from .layers import Layer, Parameter

__all__ = ["Optimizer", "SGD", "SGDW", "Adam", "AdamW"]


class Optimizer:
    """Base class: holds the parameters and the learning rate.

    Parameters
    ----------
    params : iterable of Parameter
        Typically ``model.parameters()``.
    lr : float
        Learning rate, finite and non-negative.
    weight_decay : float
        Decay strength, finite and non-negative.
    """

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
        """Update every parameter from its ``.grad``."""
        self.t += 1
        for i, p in enumerate(self.params):
            self._update(i, p)

    def _update(self, i: int, p: Parameter) -> None:
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

    With ``momentum=0`` the buffer is skipped and :math:`b = g`.
    """

    def __init__(self, params: Iterable[Parameter], lr: float, momentum: float = 0.0,
                 weight_decay: float = 0.0) -> None:
        super().__init__(params, lr, weight_decay)
        self.momentum = check_number(momentum, "momentum", low=0.0)
        self.buffers: list[np.ndarray | None] = [None] * len(self.params)

    def _direction(self, i: int, g: np.ndarray) -> np.ndarray:
        """The momentum buffer (or the gradient itself when ``momentum == 0``)."""
        if self.momentum == 0.0:
            return g
        buf = self.buffers[i]
        if buf is None:
            self.buffers[i] = buf = g.copy()
        else:
            buf *= self.momentum
            buf += g
        return buf

    def _update(self, i: int, p: Parameter) -> None:
        g = p.grad
        if self.weight_decay and p.decay:
            g = g + self.weight_decay * p.value
        p.value -= self.lr * self._direction(i, g)


class SGDW(SGD):
    r"""SGD with momentum and **decoupled** weight decay (Loshchilov & Hutter's SGDW).

    .. math::
        b &\leftarrow \mu\, b + g \\
        \theta &\leftarrow \theta - \eta\, b - \eta\lambda\,\theta

    Both terms use the same old :math:`\theta`; the momentum buffer never sees
    the decay. With ``momentum=0`` this is exactly ``SGD`` with the same
    ``weight_decay``: :math:`\theta - \eta(g + \lambda\theta)`.
    """

    def _update(self, i: int, p: Parameter) -> None:
        direction = self._direction(i, p.grad)
        if self.weight_decay and p.decay:
            p.value *= 1.0 - self.lr * self.weight_decay
        p.value -= self.lr * direction


class Adam(Optimizer):
    r"""Adam with **coupled** L2 decay (``torch.optim.Adam``; Kingma & Ba, 2015).

    .. math::
        g &\leftarrow g + \lambda\,\theta \quad(\text{only if } \theta\text{.decay}) \\
        m &\leftarrow \beta_1 m + (1-\beta_1)\, g, \qquad
        v \leftarrow \beta_2 v + (1-\beta_2)\, g^2 \\
        \theta &\leftarrow \theta - \frac{\eta}{1-\beta_1^t}\,
                 \frac{m}{\sqrt{v}/\sqrt{1-\beta_2^t} + \epsilon}

    Because the decay term passes through :math:`1/\sqrt{v}`, weights with
    large gradients are decayed *less*: the reason AdamW exists.
    """

    _decoupled = False

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
        self._scratch = [np.empty_like(p.value) for p in self.params]

    def _update(self, i: int, p: Parameter) -> None:
        beta1, beta2 = self.betas
        g = p.grad
        if self.weight_decay and p.decay:
            if self._decoupled:
                p.value *= 1.0 - self.lr * self.weight_decay
            else:
                g = g + self.weight_decay * p.value
        # In place, in a scratch array kept per parameter: nothing is allocated.
        m, v, tmp = self.m[i], self.v[i], self._scratch[i]
        # m <- beta1 m + (1 - beta1) g
        m *= beta1
        m += np.multiply(1.0 - beta1, g, out=tmp)
        # v <- beta2 v + (1 - beta2) g^2
        v *= beta2
        v += np.multiply(1.0 - beta2, np.square(g, out=tmp), out=tmp)
        # p <- p - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps), computed as
        # p <- p - lr * c / (1 - beta1^t) * m / (sqrt(v) + eps * c), c = sqrt(1 - beta2^t):
        # the same update (multiply through by c), with one pass over the array fewer.
        c = math.sqrt(1.0 - beta2 ** self.t)
        denom = np.sqrt(v, out=tmp)
        denom += self.eps * c
        step = np.divide(m, denom, out=tmp)
        step *= self.lr * c / (1.0 - beta1 ** self.t)
        p.value -= step


class AdamW(Adam):
    r"""Adam with **decoupled** weight decay (``torch.optim.AdamW``; Loshchilov & Hutter, 2019).

    First :math:`\theta \leftarrow \theta - \eta\lambda\theta` (only if
    ``decay``), then the Adam step of :class:`Adam` computed from the raw
    gradient: the moments :math:`m, v` never see the decay. The default
    ``weight_decay`` is 0.01, as in PyTorch.
    """

    _decoupled = True

    def __init__(self, params: Iterable[Parameter], lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2) -> None:
        super().__init__(params, lr, betas, eps, weight_decay)
