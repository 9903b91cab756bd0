r"""Checkers for the exercises of chapter 4, layer normalisation.

* :func:`check_layernorm_backward` -- ``layernorm_backward(grad_out, x, gamma, eps)``,
  the gradients with respect to the input, the gain and the shift;
* :func:`check_rmsnorm_backward` -- ``rmsnorm_backward(grad_out, x, gamma, eps)``,
  the backward pass of RMSNorm, derived by the learner.

The reference answers are computed here from the definition, independently of
``regmlp.layers.LayerNorm``; the LayerNorm backward reference goes through the
computational graph one node at a time (mean, centre, square, variance, add
eps, reciprocal square root, multiply, scale and shift).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ._common import (
    as_array,
    assert_close,
    call_pure,
    diagnose,
    expect_tuple,
    passed,
    run_learner_code,
)

__all__ = ["check_layernorm_backward", "check_rmsnorm_backward"]


# -- references ---------------------------------------------------------------------

def _backward(grad_out: np.ndarray, x: np.ndarray, gamma: np.ndarray,
              eps: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Reverse the graph of the forward pass node by node (rows of ``x`` are samples)."""
    d = x.shape[-1]
    mu = x.mean(axis=-1, keepdims=True)           # node 1: mean
    xc = x - mu                                   # node 2: centre
    sq = xc ** 2                                  # node 3: square
    var = sq.mean(axis=-1, keepdims=True)         # node 4: variance
    ve = var + eps                                # node 5: add eps
    rstd = ve ** -0.5                             # node 6: reciprocal square root
    xhat = xc * rstd                              # node 7: multiply
    # node 8: y = gamma * xhat + beta
    dbeta = grad_out.sum(axis=0)
    dgamma = (grad_out * xhat).sum(axis=0)
    dxhat = grad_out * gamma
    dxc = dxhat * rstd                            # node 7, through xc
    drstd = (dxhat * xc).sum(axis=-1, keepdims=True)  # node 7, through rstd
    dve = drstd * (-0.5) * ve ** -1.5             # node 6
    dvar = dve                                    # node 5
    dsq = np.broadcast_to(dvar / d, sq.shape)     # node 4
    dxc = dxc + dsq * 2 * xc                      # node 3
    dmu = -dxc.sum(axis=-1, keepdims=True)        # node 2, through mu
    dx = dxc + np.broadcast_to(dmu / d, x.shape)  # nodes 2 and 1
    return dx, dgamma, dbeta


# -- the backward pass --------------------------------------------------------------

def _backward_inputs(shape: tuple[int, int] = (5, 7),
                     seed: int = 405) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = 1.0 + 2.0 * rng.standard_normal(shape)
    gamma = 1.0 + 0.5 * rng.standard_normal(shape[1])
    grad_out = rng.standard_normal(shape)
    return grad_out, x, gamma


def check_layernorm_backward(layernorm_backward: Callable[..., tuple]) -> None:
    r"""Check ``layernorm_backward(grad_out, x, gamma, eps=1e-5) -> (dx, dgamma, dbeta)``.

    ``x`` has shape ``(N, D)``; ``dgamma`` and ``dbeta`` have shape ``(D,)``. The
    reference reverses the forward graph node by node.
    """
    for (shape, seed), eps in (((5, 7), 405), 1e-5), (((3, 4), 407), 0.25):
        _check_backward_case(layernorm_backward, *_backward_inputs(shape, seed), eps)
    passed("layernorm_backward: dx, dgamma and dbeta are right (two cases).")


def _check_backward_case(layernorm_backward: Callable[..., tuple], grad_out: np.ndarray,
                         x: np.ndarray, gamma: np.ndarray, eps: float) -> None:
    what = f"layernorm_backward(grad_out, x, gamma, eps) with x of shape {x.shape}, eps={eps:g}"
    result = call_pure(layernorm_backward, grad_out, x, gamma, eps, what=what,
                       names=("grad_out", "x", "gamma"), hint="compute on new arrays.")
    dx, dgamma, dbeta = (as_array(r, what=name) for r, name in zip(
        expect_tuple(result, 3, what=what, names="(dx, dgamma, dbeta)"),
        ("dx", "dgamma", "dbeta"), strict=True))
    ref_dx, ref_dgamma, ref_dbeta = _backward(grad_out, x, gamma, eps)
    if eps != 1e-5 and dx.shape == x.shape and dgamma.shape == ref_dgamma.shape:
        diagnose((dx, dgamma), [(_backward(grad_out, x, gamma, 1e-5)[:2],
                                 f"It is right for eps=1e-5, but eps={eps:g} here: use the eps "
                                 "you are given.")],
                 what=what, match=lambda a, b: all(np.allclose(u, v) for u, v in zip(a, b,
                                                                                      strict=True)))

    if dbeta.shape != ref_dbeta.shape or dgamma.shape != ref_dgamma.shape:
        raise AssertionError(
            f"{what} returned dgamma of shape {dgamma.shape} and dbeta of shape {dbeta.shape}; "
            f"both should have shape {ref_dbeta.shape}, like gamma and beta. A parameter used "
            "by every sample collects its gradient from every sample: sum over axis 0.")
    assert_close(dbeta, ref_dbeta, what="dbeta",
                 hint="beta is added to every row, so dbeta = grad_out.sum(axis=0).")
    if not np.allclose(dgamma, ref_dgamma, rtol=1e-7, atol=1e-10):
        if np.allclose(dgamma, (grad_out * x).sum(axis=0)):
            hint = ("You multiplied by x; gamma multiplies the *normalised* input, so "
                    "dgamma = (grad_out * xhat).sum(axis=0).")
        else:
            hint = "gamma multiplies xhat, so dgamma = (grad_out * xhat).sum(axis=0)."
        assert_close(dgamma, ref_dgamma, what="dgamma", hint=hint)

    if dx.shape != x.shape:
        raise AssertionError(f"dx has shape {dx.shape}, expected {x.shape} (the shape of x).")
    if not np.allclose(dx, ref_dx, rtol=1e-7, atol=1e-10):
        mu = x.mean(axis=-1, keepdims=True)
        rstd = 1.0 / np.sqrt(x.var(axis=-1, keepdims=True) + eps)
        xhat = (x - mu) * rstd
        g = grad_out * gamma
        mean_g = g.mean(axis=-1, keepdims=True)
        mean_gx = (g * xhat).mean(axis=-1, keepdims=True)
        diagnoses = [
            (rstd * g,
             "You treated mu and sigma as constants: dx = gamma * grad_out / sigma is only the "
             "direct path. x also moves the mean and the variance of its row, and those paths "
             "add the terms - mean(g) - xhat * mean(g * xhat), with g = gamma * grad_out."),
            (rstd * (g - mean_g),
             "The path through the mean is there, but the path through the variance is "
             "missing: subtract xhat * mean(g * xhat) as well."),
            (rstd * (g - xhat * mean_gx),
             "The path through the variance is there, but the path through the mean is "
             "missing: subtract mean(g) over the row as well."),
            (rstd * (grad_out - grad_out.mean(axis=-1, keepdims=True)
                     - xhat * (grad_out * xhat).mean(axis=-1, keepdims=True)),
             "The formula is right but gamma is missing: the gradient reaching xhat is "
             "g = gamma * grad_out; use g everywhere in dx."),
            (rstd * (g - g.mean(axis=0, keepdims=True)
                     - xhat * (g * xhat).mean(axis=0, keepdims=True)),
             "Take the means over each row (axis=-1, keepdims=True), not over the batch: "
             "each sample has its own mean and variance."),
        ]
        diagnose(dx, diagnoses, what="dx")
        assert_close(dx, ref_dx, what="dx",
                     hint="With g = gamma * grad_out, dx = (g - mean(g) - xhat * mean(g * xhat))"
                          " / sqrt(var + eps), the means taken over each row.")


# -- RMSNorm's backward pass (derived by the learner) ---------------------------------

def _rms_forward(x: np.ndarray, gamma: np.ndarray, eps: float) -> np.ndarray:
    """RMSNorm over the last axis: gamma * x / sqrt(mean(x**2) + eps)."""
    return gamma * x / np.sqrt((x * x).mean(axis=-1, keepdims=True) + eps)


def _rms_backward(grad_out: np.ndarray, x: np.ndarray, gamma: np.ndarray,
                  eps: float) -> tuple[np.ndarray, np.ndarray]:
    """Node by node: s = mean(x**2), r = (s + eps)**-1/2, xhat = x r, y = gamma xhat."""
    d = x.shape[-1]
    s = (x * x).mean(axis=-1, keepdims=True)
    r = (s + eps) ** -0.5
    xhat = x * r
    dgamma = (grad_out * xhat).sum(axis=0)
    dxhat = grad_out * gamma
    dx = dxhat * r                                    # xhat = x * r, through x
    dr = (dxhat * x).sum(axis=-1, keepdims=True)      # ... and through r
    ds = dr * (-0.5) * (s + eps) ** -1.5
    dx = dx + ds * 2 * x / d                          # s = mean(x**2)
    return dx, dgamma


def _rms_inputs(shape: tuple[int, int], seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows with a clear nonzero mean (so that centring changes the answer)."""
    rng = np.random.default_rng(seed)
    x = 1.5 + 2.0 * rng.standard_normal(shape)
    gamma = 1.0 + 0.5 * rng.standard_normal(shape[1])
    grad_out = rng.standard_normal(shape)
    return grad_out, x, gamma


def _numerical_dx(grad_out: np.ndarray, x: np.ndarray, gamma: np.ndarray,
                  eps: float) -> np.ndarray:
    """Central differences of sum(grad_out * rmsnorm(x)) with respect to x."""
    from ..gradcheck import numerical_gradient

    x = x.copy()
    return numerical_gradient(lambda z: float(np.sum(grad_out * _rms_forward(z, gamma, eps))), x)


def _rms_diagnoses(grad_out: np.ndarray, x: np.ndarray, gamma: np.ndarray,
                   eps: float) -> list[tuple[np.ndarray, str]]:
    """The usual wrong dx, each with what to change."""
    r = 1.0 / np.sqrt((x * x).mean(axis=-1, keepdims=True) + eps)
    xhat = x * r
    g = grad_out * gamma

    def row_mean(a: np.ndarray, axis: int = -1) -> np.ndarray:
        return a.mean(axis=axis, keepdims=True)

    xc = x - row_mean(x)
    ln_r = 1.0 / np.sqrt(row_mean(xc * xc) + eps)
    ln_hat = xc * ln_r
    return [
        (r * g, "You treated the root mean square as a constant: r * g is only the direct "
                "path. x also changes mean(x**2), and that path adds - xhat * mean(g * xhat)."),
        (r * (g - row_mean(g) - xhat * row_mean(g * xhat)),
         "That is LayerNorm's formula. RMSNorm does not subtract the row mean, so there is no "
         "path through a mean and no - mean(g) term."),
        (ln_r * (g - row_mean(g) - ln_hat * row_mean(g * ln_hat)),
         "That is LayerNorm's backward pass (centred rows). RMSNorm divides x itself by its "
         "root mean square: nothing is centred."),
        (r * (grad_out - xhat * row_mean(grad_out * xhat)),
         "The formula is right but gamma is missing: the gradient reaching xhat is "
         "g = gamma * grad_out; use g in both terms."),
        (r * (g - 2 * xhat * row_mean(g * xhat)),
         "The correction term is twice too large. d/dx_j of mean(x**2) is 2 x_j / D, and the "
         "derivative of (s + eps)**-1/2 brings a factor -1/2: the two cancel to - xhat * "
         "mean(g * xhat)."),
        (r * (g - xhat * (g * xhat).sum(axis=-1, keepdims=True)),
         "You summed g * xhat over the row where its mean belongs: the variance-like term "
         "mean(x**2) divides by D, so use mean(g * xhat) (or divide the sum by D)."),
        (r * (g - xhat * row_mean(g * xhat, axis=0)),
         "Take the mean of g * xhat over each row (axis=-1, keepdims=True), not over the "
         "batch: each sample has its own root mean square."),
    ]


def check_rmsnorm_backward(rmsnorm_backward: Callable[..., tuple]) -> None:
    r"""Check ``rmsnorm_backward(grad_out, x, gamma, eps=1e-5) -> (dx, dgamma)``.

    RMSNorm is :math:`y = \gamma \odot x / \sqrt{\overline{x^2} + \varepsilon}` over the
    last axis of ``x`` (shape ``(N, D)``). The learner's ``dx`` is compared with central
    finite differences of :math:`\sum G \odot y` (a gradient check, relative error at
    most 1e-7) and with the node-by-node reference, on two shapes and two values of
    ``eps``; ``dgamma`` with :math:`\sum_{samples} G \odot \hat x`.
    """
    from ..gradcheck import rel_error

    what = "rmsnorm_backward(grad_out, x, gamma, eps)"
    for shape, seed, eps in [((5, 7), 406, 1e-3), ((3, 4), 407, 1e-5)]:
        grad_out, x, gamma = _rms_inputs(shape, seed)
        before = (grad_out.copy(), x.copy(), gamma.copy())
        result = run_learner_code(rmsnorm_backward, grad_out, x, gamma, eps, what=what)
        if not isinstance(result, (tuple, list)) or len(result) != 2:
            raise AssertionError(f"{what} must return two arrays (dx, dgamma), got "
                                 f"{type(result).__name__}"
                                 + (f" of length {len(result)}" if hasattr(result, "__len__")
                                    else ""))
        dx, dgamma = (np.asarray(r, dtype=np.float64) for r in result)
        for name, arr, old in zip(("grad_out", "x", "gamma"), (grad_out, x, gamma), before,
                                  strict=True):
            if not np.array_equal(arr, old):
                raise AssertionError(f"{what} changed its argument {name} in place; "
                                     "compute on new arrays.")
        ref_dx, ref_dgamma = _rms_backward(grad_out, x, gamma, eps)
        if dx.shape != x.shape:
            raise AssertionError(f"dx has shape {dx.shape}, expected {x.shape} (the shape of "
                                 "x).")
        numerical = _numerical_dx(grad_out, x, gamma, eps)
        if rel_error(dx, numerical) > 1e-7:
            for candidate, hint in _rms_diagnoses(grad_out, x, gamma, eps):
                if np.allclose(dx, candidate, rtol=1e-7, atol=1e-10):
                    raise AssertionError(f"dx fails the gradient check. {hint}")
            if eps != 1e-5 and np.allclose(dx, _rms_backward(grad_out, x, gamma, 1e-5)[0]):
                raise AssertionError(f"dx is right for eps = 1e-5 but was asked for eps = {eps}:"
                                     " use the eps argument instead of a fixed value.")
            raise AssertionError(
                f"dx fails the gradient check (relative error {rel_error(dx, numerical):.1e} "
                "against central differences, for x of shape "
                f"{x.shape}). With r = 1 / sqrt(mean(x**2) + eps), xhat = x * r and "
                "g = gamma * grad_out, dx = r * (g - xhat * mean(g * xhat)), the mean over "
                "each row.")
        if dgamma.shape != ref_dgamma.shape:
            raise AssertionError(
                f"dgamma has shape {dgamma.shape}, expected {ref_dgamma.shape} like gamma: "
                "gamma is used by every sample, so sum its gradient over axis 0.")
        if not np.allclose(dgamma, ref_dgamma, rtol=1e-7, atol=1e-10):
            if np.allclose(dgamma, (grad_out * x).sum(axis=0)):
                hint = ("You multiplied by x; gamma multiplies the *normalised* input, so "
                        "dgamma = (grad_out * xhat).sum(axis=0).")
            elif np.allclose(dgamma, ref_dgamma / len(x)):
                hint = "Sum over the samples (axis 0), do not average."
            else:
                hint = "gamma multiplies xhat = x * r, so dgamma = (grad_out * xhat).sum(axis=0)."
            assert_close(dgamma, ref_dgamma, what="dgamma", hint=hint)
        assert_close(dx, ref_dx, what="dx", hint="dx passes the gradient check but differs "
                     "from the reference; write it as r * (g - xhat * mean(g * xhat)).")
    passed("rmsnorm_backward: dx passes the gradient check, and dgamma is right.")
