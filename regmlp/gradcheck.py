r"""Gradient checking: compare backward passes with finite differences.

A backward pass is easy to get subtly wrong and hard to debug from a loss
curve. The check here is the standard one: pick a random linear functional of
the output, :math:`L(x) = \sum_{ij} R_{ij}\, f(x)_{ij}`, whose upstream
gradient is simply :math:`R`; compute every gradient analytically with one
``backward(R)``; and compare each with central differences

.. math:: \frac{\partial L}{\partial \theta_k} \approx
          \frac{L(\theta + h e_k) - L(\theta - h e_k)}{2h},

whose error is :math:`O(h^2)`. In float64 with :math:`h = 10^{-6}` a correct
layer agrees to a relative error of about :math:`10^{-9}`; a wrong one is off
by :math:`10^{-2}` or more.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ._checks import as_array, as_generator
from .layers import Layer

__all__ = ["numerical_gradient", "rel_error", "check_gradients"]


def numerical_gradient(f: Callable[[np.ndarray], float], x: np.ndarray,
                       h: float = 1e-6) -> np.ndarray:
    """Central-difference gradient of the scalar function ``f`` at ``x``.

    ``x`` is perturbed **in place**, one element at a time, and restored, so
    ``f`` may read ``x`` through a closure (a layer's parameter, say).

    Parameters
    ----------
    f : callable
        ``f(x) -> float``, the function to differentiate.
    x : ndarray of float
        The point; a floating-point NumPy array (changed and restored).
    h : float, default 1e-6
        The step: ``(f(x + h e_i) - f(x - h e_i)) / (2 h)`` for each element.

    Returns
    -------
    ndarray
        The gradient, of the shape of ``x``.

    Examples
    --------
    >>> x = np.array([1.0, 2.0])
    >>> np.round(numerical_gradient(lambda v: float(np.sum(v ** 2)), x), 6)
    array([2., 4.])
    """
    if not isinstance(x, np.ndarray) or x.dtype.kind != "f":
        raise TypeError("x must be a floating-point numpy array (it is perturbed in place)")
    grad = np.zeros_like(x)
    it = np.nditer(x, flags=["multi_index"])
    for _ in it:
        i = it.multi_index
        old = x[i]
        x[i] = old + h
        f_plus = f(x)
        x[i] = old - h
        f_minus = f(x)
        x[i] = old
        grad[i] = (f_plus - f_minus) / (2 * h)
    return grad


def rel_error(a: np.ndarray, b: np.ndarray) -> float:
    r"""Relative error :math:`\max|a-b| \,/\, \max(10^{-8}, \max(|a|+|b|))`.

    Parameters
    ----------
    a, b : array_like
        Two arrays of the same shape (e.g. an analytic and a numerical gradient).

    Returns
    -------
    float
        0 for two empty arrays.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"a and b must have the same shape, got {a.shape} and {b.shape}")
    if a.size == 0:
        return 0.0
    return float(np.max(np.abs(a - b)) / max(1e-8, float(np.max(np.abs(a) + np.abs(b)))))


def _random_states(model: Layer) -> list[tuple[np.random.Generator, dict]]:
    """Snapshots of every random generator a layer in ``model`` draws from."""
    gens = {id(m.rng): m.rng for m in model.modules()
            if isinstance(getattr(m, "rng", None), np.random.Generator)}
    return [(g, g.bit_generator.state) for g in gens.values()]


def check_gradients(model: Layer, x: np.ndarray, *,
                    rng: np.random.Generator | int | None = None) -> float:
    """Largest relative error between analytic and numerical gradients.

    Checks the gradient with respect to the input ``x`` and to every
    parameter, for the loss ``sum(R * model(x))`` with a random ``R``. The
    model runs in its current mode; random layers (dropout) replay the same
    random numbers at every evaluation, so their masks are held fixed. Every
    parameter's ``.grad`` is left as it was.

    Parameters
    ----------
    model : Layer
    x : ndarray
        An input batch; use float64 for a meaningful check.
    rng : numpy.random.Generator, int or None
        Source of the random functional ``R``.

    Returns
    -------
    float
        ``max`` of :func:`rel_error` over the input and all parameters. A
        correct float64 layer gives at most about 1e-7.
    """
    if not isinstance(model, Layer):
        raise TypeError(f"model must be a Layer, got {type(model).__name__}")
    x = as_array(x, "x")
    x = np.array(x, dtype=x.dtype if x.dtype.kind == "f" else np.float64)  # a private copy
    rng = as_generator(rng)
    params = model.parameters()
    saved_grads = [p.grad.copy() for p in params]
    states = _random_states(model)

    def forward(inp: np.ndarray) -> np.ndarray:
        for gen, state in states:
            gen.bit_generator.state = state
        return model.forward(inp)

    out = forward(x)
    r = rng.standard_normal(out.shape)

    def loss(_: np.ndarray) -> float:
        return float(np.sum(r * forward(x)))

    try:
        for p in params:
            p.zero_grad()
        forward(x)
        grad_x = model.backward(r.astype(out.dtype))
        analytic = [p.grad.copy() for p in params]
        errors = [rel_error(grad_x, numerical_gradient(loss, x))]
        errors += [rel_error(a, numerical_gradient(loss, p.value))
                   for a, p in zip(analytic, params, strict=True)]
    finally:
        for p, g in zip(params, saved_grads, strict=True):
            p.grad[...] = g
    return max(errors)
