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


def test_forward_accepts_the_solution(capsys):
    check_layernorm_forward(layernorm_forward)
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
    (ln_transposed, r"returned shape \(6, 5\), expected \(5, 6\)"),
    (stub_forward, r"not written yet"),
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


def test_backward_accepts_the_solution(capsys):
    check_layernorm_backward(layernorm_backward)
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
    (bwd_two_outputs, r"must return three arrays.*length 2"),
    (bwd_sign, r"dx is wrong \(largest difference"),
    (stub_backward, r"not written yet"),
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
