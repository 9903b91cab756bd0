r"""Checkers for the exercises of chapter 4, layer normalisation.

* :func:`check_layernorm_forward` -- ``layernorm_forward(x, gamma, beta, eps)``,
  the forward pass over the last axis with the biased variance and ``eps``
  inside the square root;
* :func:`check_layernorm_backward` -- ``layernorm_backward(grad_out, x, gamma, eps)``,
  the gradients with respect to the input, the gain and the shift.

The reference answers are computed here from the definition, independently of
``regmlp.layers.LayerNorm``; the backward reference goes through the
computational graph one node at a time (mean, centre, square, variance, add
eps, reciprocal square root, multiply, scale and shift).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ._common import as_array, assert_close, call_pure, diagnose, expect_tuple, passed

__all__ = ["check_layernorm_forward", "check_layernorm_backward"]


# -- references ---------------------------------------------------------------------

def _forward(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, eps: float, *,
             ddof: int = 0, eps_outside: bool = False, axis: int = -1) -> np.ndarray:
    """The layer norm of ``x`` (and, with the keywords, its usual wrong variants)."""
    mu = x.mean(axis=axis, keepdims=True)
    var = x.var(axis=axis, keepdims=True, ddof=ddof)
    with np.errstate(divide="ignore", invalid="ignore"):
        if eps_outside:
            xhat = (x - mu) / (np.sqrt(var) + eps)
        else:
            xhat = (x - mu) / np.sqrt(var + eps)
    return gamma * xhat + beta


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


# -- the forward pass ---------------------------------------------------------------

def _forward_inputs() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows with ordinary spread, one constant row and one with a tiny spread."""
    rng = np.random.default_rng(404)
    x = 2.0 + 3.0 * rng.standard_normal((5, 6))
    x[2] = 5.0                                     # constant: variance 0
    x[4] = 1.0 + 1e-3 * rng.standard_normal(6)     # variance ~1e-6, below eps
    gamma = 1.0 + 0.5 * rng.standard_normal(6)
    beta = 0.5 * rng.standard_normal(6)
    return x, gamma, beta


def check_layernorm_forward(layernorm_forward: Callable[..., np.ndarray]) -> None:
    r"""Check ``layernorm_forward(x, gamma, beta, eps=1e-5)``.

    It must return :math:`\gamma \odot (x-\mu)/\sqrt{\sigma^2+\epsilon} + \beta`,
    with the mean :math:`\mu` and the *biased* variance :math:`\sigma^2` of each
    row (the last axis), and leave ``x`` unchanged. The inputs include a constant
    row (variance 0) and a row whose variance is far below ``eps``.
    """
    what = "layernorm_forward(x, gamma, beta, eps)"
    x, gamma, beta = _forward_inputs()
    eps = 1e-5
    out = _run_forward(layernorm_forward, x, gamma, beta, eps, what)
    if not np.all(np.isfinite(out[2])):
        raise AssertionError(
            f"{what} gave {out[2][:3]}... for a row whose entries are all equal. Its variance "
            "is 0, so without eps you compute 0/0 = NaN. Add eps to the variance inside the "
            "square root: (x - mu) / sqrt(var + eps).")
    expected = _forward(x, gamma, beta, eps)
    if not np.allclose(out, expected, rtol=1e-7, atol=1e-10):
        diagnoses = [
            (_forward(x, gamma, beta, eps, ddof=1),
             "You used the unbiased variance (dividing by D - 1, ddof=1, as pandas' .var() "
             "and torch.var() do by default). LayerNorm uses the biased variance: the mean of "
             "(x - mu)**2, dividing by D (np.var's default, ddof=0)."),
            (_forward(x, gamma, beta, eps, eps_outside=True),
             "eps must go inside the square root: (x - mu) / sqrt(var + eps), not "
             "(x - mu) / (sqrt(var) + eps). The difference shows on the row whose variance "
             "is smaller than eps (row 4)."),
            (_forward(x, gamma, beta, 0.0),
             "You seem to ignore eps on rows with a nonzero variance: add it to every row's "
             "variance, inside the square root."),
            (_forward(x, np.ones_like(gamma), np.zeros_like(beta), eps),
             "The normalisation is right but the gain and shift are missing: return "
             "gamma * xhat + beta."),
            (_forward(x, gamma, np.zeros_like(beta), eps),
             "The shift is missing: return gamma * xhat + beta."),
            (_forward(x, beta, gamma, eps),
             "gamma and beta are swapped: gamma multiplies xhat, beta is added."),
            (_forward(x, gamma, beta, eps, axis=0),
             "You normalised each column (over the batch, axis=0). LayerNorm normalises each "
             "row over its features: use axis=-1 with keepdims=True."),
        ]
        # rows 0, 1, 3 and 4: the constant row 2 gives NaN in some of the wrong variants
        diagnose(out, diagnoses, what=what, match=lambda a, b: np.allclose(
            a[[0, 1, 3, 4]], b[[0, 1, 3, 4]], rtol=1e-7, atol=1e-10))
        assert_close(out, expected, what=what,
                     hint="Compute mu and var over the last axis (keepdims=True), "
                          "xhat = (x - mu) / sqrt(var + eps), and return gamma * xhat + beta.")
    # eps must be the argument, not a constant typed into the function
    big_eps = 0.5
    out_big = _run_forward(layernorm_forward, x, gamma, beta, big_eps, what)
    assert_close(out_big, _forward(x, gamma, beta, big_eps), what=f"{what} with eps=0.5",
                 hint="Use the eps you are given rather than a fixed 1e-5.")
    # any number of leading axes: statistics over the last axis only
    x3 = x[[0, 1, 3, 0, 1, 3]].reshape(2, 3, 6) * np.array([[[1.0]], [[-2.0]]])
    out3 = _run_forward(layernorm_forward, x3, gamma, beta, eps, what)
    assert_close(out3, _forward(x3, gamma, beta, eps), what=f"{what} on a (2, 3, 6) input",
                 hint="Take the statistics over the last axis (axis=-1, keepdims=True), "
                      "not axis=1, so that any number of leading axes works.")
    # another number of features, with a gain and shift of their own
    rng = np.random.default_rng(406)
    x4, gamma4, beta4 = (rng.standard_normal((3, 4)) * 2.0 - 1.0,
                         rng.uniform(0.5, 2.0, 4), rng.standard_normal(4))
    out4 = _run_forward(layernorm_forward, x4, gamma4, beta4, 1e-3, what)
    assert_close(out4, _forward(x4, gamma4, beta4, 1e-3),
                 what=f"{what} on a (3, 4) input with eps=1e-3",
                 hint="Nothing may depend on the chapter's sizes: take D = x.shape[-1].")
    passed("layernorm_forward: biased variance, eps in the root, gain, shift.")


def _run_forward(layernorm_forward: Callable[..., np.ndarray], x: np.ndarray, gamma: np.ndarray,
                 beta: np.ndarray, eps: float, what: str) -> np.ndarray:
    """The learner's output, after checking that no input changed and the shape is kept."""
    with np.errstate(all="ignore"):
        out = call_pure(layernorm_forward, x, gamma, beta, eps, what=what,
                        names=("x", "gamma", "beta"), hint="x - mu, not x -= mu.")
    return as_array(out, what=f"{what}'s output", shape=x.shape,
                    hint="the output of a layer norm has the shape of its input.")


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
