"""The chapter 4 checkers accept the reference solutions and reject the usual mistakes.

Each wrong version is one a learner is likely to write (DESIGN.md section 7 lists
the first two: LayerNorm without eps, unbiased variance); the checker must fail
on it with an AssertionError whose message says what to fix.
"""

from __future__ import annotations

import numpy as np
import pytest

from regmlp.exercises import check_layernorm_backward, check_layernorm_forward

# -- forward ------------------------------------------------------------------------

def layernorm_forward(x, gamma, beta, eps=1e-5):
    mu = x.mean(axis=-1, keepdims=True)
    var = ((x - mu) ** 2).mean(axis=-1, keepdims=True)
    return gamma * (x - mu) / np.sqrt(var + eps) + beta


def ln_no_eps(x, gamma, beta, eps=1e-5):
    mu = x.mean(axis=-1, keepdims=True)
    return gamma * (x - mu) / x.std(axis=-1, keepdims=True) + beta


def ln_unbiased(x, gamma, beta, eps=1e-5):
    mu = x.mean(axis=-1, keepdims=True)
    var = x.var(axis=-1, keepdims=True, ddof=1)
    return gamma * (x - mu) / np.sqrt(var + eps) + beta


def ln_eps_outside(x, gamma, beta, eps=1e-5):
    mu = x.mean(axis=-1, keepdims=True)
    return gamma * (x - mu) / (x.std(axis=-1, keepdims=True) + eps) + beta


def ln_no_affine(x, gamma, beta, eps=1e-5):
    mu = x.mean(axis=-1, keepdims=True)
    return (x - mu) / np.sqrt(x.var(axis=-1, keepdims=True) + eps)


def ln_batch_axis(x, gamma, beta, eps=1e-5):
    mu = x.mean(axis=0, keepdims=True)
    return gamma * (x - mu) / np.sqrt(x.var(axis=0, keepdims=True) + eps) + beta


def ln_axis_1(x, gamma, beta, eps=1e-5):
    mu = x.mean(axis=1, keepdims=True)
    return gamma * (x - mu) / np.sqrt(x.var(axis=1, keepdims=True) + eps) + beta


def ln_fixed_eps(x, gamma, beta, eps=1e-5):
    return layernorm_forward(x, gamma, beta, 1e-5)


def ln_in_place(x, gamma, beta, eps=1e-5):
    x -= x.mean(axis=-1, keepdims=True)
    return gamma * x / np.sqrt((x ** 2).mean(axis=-1, keepdims=True) + eps) + beta


def ln_transposed(x, gamma, beta, eps=1e-5):
    return layernorm_forward(x, gamma, beta, eps).T


def stub_forward(x, gamma, beta, eps=1e-5):
    raise NotImplementedError("Exercise: replace this line with your code.")


def ln_no_shift(x, gamma, beta, eps=1e-5):
    return layernorm_forward(x, gamma, np.zeros_like(beta), eps)


def ln_swapped(x, gamma, beta, eps=1e-5):
    return layernorm_forward(x, beta, gamma, eps)


def ln_six_features(x, gamma, beta, eps=1e-5):
    """Divides by the chapter's 6 features instead of x.shape[-1]."""
    mu = x.sum(axis=-1, keepdims=True) / 6
    var = ((x - mu) ** 2).sum(axis=-1, keepdims=True) / 6
    return gamma * (x - mu) / np.sqrt(var + eps) + beta


def ln_normalises_gamma_in_place(x, gamma, beta, eps=1e-5):
    gamma /= np.abs(gamma).max()
    return layernorm_forward(x, gamma, beta, eps)


# Other correct solutions: the variance as E[x^2] - mu^2 with a reciprocal square root, and a
# loop over the rows of a flattened view.
def ln_moments(x, gamma, beta, eps=1e-5):
    mu = np.mean(x, axis=-1, keepdims=True)
    var = np.mean(x * x, axis=-1, keepdims=True) - mu * mu
    return (x - mu) * (1.0 / np.sqrt(var + eps)) * gamma + beta


def ln_loop(x, gamma, beta, eps=1e-5):
    flat = x.reshape(-1, x.shape[-1])
    out = np.empty_like(flat)
    for i, row in enumerate(flat):
        mu = row.mean()
        out[i] = gamma * ((row - mu) / np.sqrt(((row - mu) ** 2).mean() + eps)) + beta
    return out.reshape(x.shape)


@pytest.mark.parametrize("solution", [layernorm_forward, ln_moments, ln_loop])
def test_forward_accepts_the_solution(solution, capsys):
    check_layernorm_forward(solution)
    assert capsys.readouterr().out.startswith("Correct:")


@pytest.mark.parametrize(("wrong", "message"), [
    (ln_no_eps, r"all equal.*0/0 = NaN.*inside the\s+square root"),
    (ln_unbiased, r"unbiased variance.*dividing by D"),
    (ln_eps_outside, r"eps must go inside the square root"),
    (ln_no_affine, r"gain and shift are missing"),
    (ln_batch_axis, r"normalised each column.*axis=-1"),
    (ln_axis_1, r"\(2, 3, 6\) input.*axis=-1"),
    (ln_fixed_eps, r"eps=0\.5.*Use the eps you are given"),
    (ln_in_place, r"changed its input x in place"),
    (ln_transposed, r"output has shape \(6, 5\), expected \(5, 6\)"),
    (stub_forward, r"not written yet"),
    (ln_no_shift, r"The shift is missing"),
    (ln_swapped, r"gamma and beta are swapped"),
    (ln_six_features, r"on a \(3, 4\) input with eps=1e-3 is wrong.*D = x.shape\[-1\]"),
    (ln_normalises_gamma_in_place, r"changed its input gamma in place"),
])
def test_forward_rejects(wrong, message):
    with pytest.raises(AssertionError, match=message):
        check_layernorm_forward(wrong)


# -- backward -----------------------------------------------------------------------

def layernorm_backward(grad_out, x, gamma, eps=1e-5):
    mu = x.mean(axis=-1, keepdims=True)
    rstd = 1.0 / np.sqrt(x.var(axis=-1, keepdims=True) + eps)
    xhat = (x - mu) * rstd
    g = grad_out * gamma
    dx = rstd * (g - g.mean(axis=-1, keepdims=True)
                 - xhat * (g * xhat).mean(axis=-1, keepdims=True))
    return dx, (grad_out * xhat).sum(axis=0), grad_out.sum(axis=0)


def _parts(x, gamma, grad_out, eps):
    mu = x.mean(axis=-1, keepdims=True)
    rstd = 1.0 / np.sqrt(x.var(axis=-1, keepdims=True) + eps)
    xhat = (x - mu) * rstd
    return rstd, xhat, grad_out * gamma


def bwd_no_mean_terms(grad_out, x, gamma, eps=1e-5):
    rstd, xhat, g = _parts(x, gamma, grad_out, eps)
    return rstd * g, (grad_out * xhat).sum(axis=0), grad_out.sum(axis=0)


def bwd_no_variance_term(grad_out, x, gamma, eps=1e-5):
    rstd, xhat, g = _parts(x, gamma, grad_out, eps)
    return rstd * (g - g.mean(axis=-1, keepdims=True)), (grad_out * xhat).sum(0), grad_out.sum(0)


def bwd_no_mean_term(grad_out, x, gamma, eps=1e-5):
    rstd, xhat, g = _parts(x, gamma, grad_out, eps)
    dx = rstd * (g - xhat * (g * xhat).mean(axis=-1, keepdims=True))
    return dx, (grad_out * xhat).sum(axis=0), grad_out.sum(axis=0)


def bwd_no_gamma(grad_out, x, gamma, eps=1e-5):
    return layernorm_backward(grad_out, x, np.ones_like(gamma), eps)[0], \
        *layernorm_backward(grad_out, x, gamma, eps)[1:]


def bwd_batch_means(grad_out, x, gamma, eps=1e-5):
    rstd, xhat, g = _parts(x, gamma, grad_out, eps)
    dx = rstd * (g - g.mean(axis=0, keepdims=True)
                 - xhat * (g * xhat).mean(axis=0, keepdims=True))
    return dx, (grad_out * xhat).sum(axis=0), grad_out.sum(axis=0)


def bwd_dgamma_with_x(grad_out, x, gamma, eps=1e-5):
    dx, _, dbeta = layernorm_backward(grad_out, x, gamma, eps)
    return dx, (grad_out * x).sum(axis=0), dbeta


def bwd_no_sum(grad_out, x, gamma, eps=1e-5):
    dx, _, _ = layernorm_backward(grad_out, x, gamma, eps)
    rstd, xhat, g = _parts(x, gamma, grad_out, eps)
    return dx, grad_out * xhat, grad_out


def bwd_dbeta_mean(grad_out, x, gamma, eps=1e-5):
    dx, dgamma, _ = layernorm_backward(grad_out, x, gamma, eps)
    return dx, dgamma, grad_out.mean(axis=0)


def bwd_two_outputs(grad_out, x, gamma, eps=1e-5):
    return layernorm_backward(grad_out, x, gamma, eps)[:2]


def bwd_sign(grad_out, x, gamma, eps=1e-5):
    dx, dgamma, dbeta = layernorm_backward(grad_out, x, gamma, eps)
    return -dx, dgamma, dbeta


def stub_backward(grad_out, x, gamma, eps=1e-5):
    raise NotImplementedError("Exercise: replace this line with your code.")


def bwd_fixed_eps(grad_out, x, gamma, eps=1e-5):
    return layernorm_backward(grad_out, x, gamma, 1e-5)


def bwd_centres_x_in_place(grad_out, x, gamma, eps=1e-5):
    x -= x.mean(axis=-1, keepdims=True)
    return layernorm_backward(grad_out, x, gamma, eps)


# Other correct solutions: node by node (the graph reversed), and the compact formula
# written with sums over the row and 1/D instead of means.
def bwd_node_by_node(grad_out, x, gamma, eps=1e-5):
    d = x.shape[-1]
    mu = x.mean(axis=-1, keepdims=True)
    xc = x - mu
    var = (xc ** 2).mean(axis=-1, keepdims=True)
    rstd = 1.0 / np.sqrt(var + eps)
    xhat = xc * rstd
    dxhat = grad_out * gamma
    dvar = (dxhat * xc).sum(axis=-1, keepdims=True) * -0.5 * rstd ** 3
    dmu = -(dxhat * rstd).sum(axis=-1, keepdims=True) - 2.0 * dvar * xc.mean(axis=-1,
                                                                               keepdims=True)
    dx = dxhat * rstd + dvar * 2.0 * xc / d + dmu / d
    return dx, (grad_out * xhat).sum(axis=0), grad_out.sum(axis=0)


def bwd_sums(grad_out, x, gamma, eps=1e-5):
    d = x.shape[1]
    xhat = (x - x.mean(1, keepdims=True)) / np.sqrt(x.var(1, keepdims=True) + eps)
    g = grad_out * gamma
    dx = (d * g - g.sum(1, keepdims=True) - xhat * (g * xhat).sum(1, keepdims=True))
    dx = dx / (d * np.sqrt(x.var(1, keepdims=True) + eps))
    return [dx, np.einsum("nd,nd->d", grad_out, xhat), grad_out.sum(0)]


@pytest.mark.parametrize("solution", [layernorm_backward, bwd_node_by_node, bwd_sums])
def test_backward_accepts_the_solution(solution, capsys):
    check_layernorm_backward(solution)
    assert capsys.readouterr().out.startswith("Correct:")


@pytest.mark.parametrize(("wrong", "message"), [
    (bwd_no_mean_terms, r"treated mu and sigma as constants"),
    (bwd_no_variance_term, r"path through the variance is\s+missing"),
    (bwd_no_mean_term, r"path through the mean is\s+missing"),
    (bwd_no_gamma, r"gamma is missing"),
    (bwd_batch_means, r"means over each row"),
    (bwd_dgamma_with_x, r"dgamma is wrong.*You multiplied by x"),
    (bwd_no_sum, r"dgamma of shape \(5, 7\).*sum over axis 0"),
    (bwd_dbeta_mean, r"dbeta is wrong.*grad_out.sum\(axis=0\)"),
    (bwd_two_outputs, r"must return a triple \(dx, dgamma, dbeta\).*length 2"),
    (bwd_sign, r"dx is wrong \(largest difference"),
    (stub_backward, r"not written yet"),
    (bwd_fixed_eps, r"eps=0\.25 here: use the eps you are given"),
    (bwd_centres_x_in_place, r"changed its input x in place"),
])
def test_backward_rejects(wrong, message):
    with pytest.raises(AssertionError, match=message):
        check_layernorm_backward(wrong)


def test_the_backward_reference_is_the_compact_formula_and_the_package():
    """The checker's staged reference, the compact formula and regmlp's LayerNorm agree."""
    from regmlp.exercises.ch04_layernorm import _backward, _backward_inputs
    from regmlp.layers import LayerNorm

    grad_out, x, gamma = _backward_inputs()
    staged = _backward(grad_out, x, gamma, 1e-5)
    compact = layernorm_backward(grad_out, x, gamma, 1e-5)
    ln = LayerNorm(x.shape[1])
    ln.weight.value[...] = gamma
    ln.forward(x)
    package = (ln.backward(grad_out), ln.weight.grad, ln.bias.grad)
    for a, b, c in zip(staged, compact, package, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(a, c, rtol=1e-10, atol=1e-12)
