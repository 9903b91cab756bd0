"""The chapter 4 checkers accept the reference solutions and reject the usual mistakes.

Each wrong version is one a learner is likely to write; the checker must fail
on it with an AssertionError whose message says what to fix.
"""

from __future__ import annotations

import numpy as np
import pytest

from regmlp.exercises import check_layernorm_backward, check_rmsnorm_backward

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



# -- RMSNorm's backward pass --------------------------------------------------------

def _rms(x, eps):
    return 1.0 / np.sqrt((x * x).mean(axis=-1, keepdims=True) + eps)


def rmsnorm_backward(grad_out, x, gamma, eps=1e-5):
    r = _rms(x, eps)
    xhat = x * r
    g = grad_out * gamma
    return r * (g - xhat * (g * xhat).mean(axis=-1, keepdims=True)), (grad_out * xhat).sum(axis=0)


def rmsnorm_backward_loops(grad_out, x, gamma, eps=1e-5):
    """Another correct version: one row at a time, the Jacobian written out."""
    n, d = x.shape
    dx = np.empty_like(x)
    dgamma = np.zeros(d)
    for i in range(n):
        s = float(np.mean(x[i] ** 2)) + eps
        jac = np.eye(d) / np.sqrt(s) - np.outer(x[i], x[i]) / (d * s ** 1.5)  # dxhat/dx
        dx[i] = jac.T @ (grad_out[i] * gamma)
        dgamma += grad_out[i] * x[i] / np.sqrt(s)
    return dx, dgamma


def rms_constant(grad_out, x, gamma, eps=1e-5):
    return _rms(x, eps) * grad_out * gamma, rmsnorm_backward(grad_out, x, gamma, eps)[1]


def rms_layernorm_terms(grad_out, x, gamma, eps=1e-5):
    r, g = _rms(x, eps), grad_out * gamma
    xhat = x * r
    dx = r * (g - g.mean(axis=-1, keepdims=True) - xhat * (g * xhat).mean(axis=-1, keepdims=True))
    return dx, (grad_out * xhat).sum(axis=0)


def rms_layernorm_backward(grad_out, x, gamma, eps=1e-5):
    xc = x - x.mean(axis=-1, keepdims=True)
    r, g = 1.0 / np.sqrt((xc * xc).mean(axis=-1, keepdims=True) + eps), grad_out * gamma
    xhat = xc * r
    dx = r * (g - g.mean(axis=-1, keepdims=True) - xhat * (g * xhat).mean(axis=-1, keepdims=True))
    return dx, (grad_out * xhat).sum(axis=0)


def rms_no_gamma(grad_out, x, gamma, eps=1e-5):
    r = _rms(x, eps)
    xhat = x * r
    return (r * (grad_out - xhat * (grad_out * xhat).mean(axis=-1, keepdims=True)),
            (grad_out * xhat).sum(axis=0))


def rms_factor_two(grad_out, x, gamma, eps=1e-5):
    r, g = _rms(x, eps), grad_out * gamma
    xhat = x * r
    return r * (g - 2 * xhat * (g * xhat).mean(axis=-1, keepdims=True)), (grad_out * xhat).sum(0)


def rms_sum_not_mean(grad_out, x, gamma, eps=1e-5):
    r, g = _rms(x, eps), grad_out * gamma
    xhat = x * r
    return r * (g - xhat * (g * xhat).sum(axis=-1, keepdims=True)), (grad_out * xhat).sum(0)


def rms_batch_mean(grad_out, x, gamma, eps=1e-5):
    r, g = _rms(x, eps), grad_out * gamma
    xhat = x * r
    return r * (g - xhat * (g * xhat).mean(axis=0, keepdims=True)), (grad_out * xhat).sum(0)


def rms_fixed_eps(grad_out, x, gamma, eps=1e-5):
    return rmsnorm_backward(grad_out, x, gamma, 1e-5)


def rms_dgamma_with_x(grad_out, x, gamma, eps=1e-5):
    return rmsnorm_backward(grad_out, x, gamma, eps)[0], (grad_out * x).sum(axis=0)


def rms_dgamma_mean(grad_out, x, gamma, eps=1e-5):
    dx, dgamma = rmsnorm_backward(grad_out, x, gamma, eps)
    return dx, dgamma / len(x)


def rms_dgamma_no_sum(grad_out, x, gamma, eps=1e-5):
    return rmsnorm_backward(grad_out, x, gamma, eps)[0], grad_out * x * _rms(x, eps)


def rms_in_place(grad_out, x, gamma, eps=1e-5):
    r = _rms(x, eps)
    x *= r
    g = grad_out * gamma
    return r * (g - x * (g * x).mean(axis=-1, keepdims=True)), (grad_out * x).sum(axis=0)


def rms_three_outputs(grad_out, x, gamma, eps=1e-5):
    return (*rmsnorm_backward(grad_out, x, gamma, eps), grad_out.sum(axis=0))


def rms_sign(grad_out, x, gamma, eps=1e-5):
    dx, dgamma = rmsnorm_backward(grad_out, x, gamma, eps)
    return -dx, dgamma


def rms_stub(grad_out, x, gamma, eps=1e-5):
    raise NotImplementedError("Exercise: replace this line with your code.")


@pytest.mark.parametrize("right", [rmsnorm_backward, rmsnorm_backward_loops])
def test_rmsnorm_backward_accepts_correct_versions(right, capsys):
    check_rmsnorm_backward(right)
    assert capsys.readouterr().out.startswith("Correct:")


@pytest.mark.parametrize(("wrong", "message"), [
    (rms_constant, r"gradient check\. You treated the root mean square as a constant"),
    (rms_layernorm_terms, r"That is LayerNorm's formula"),
    (rms_layernorm_backward, r"That is LayerNorm's backward pass"),
    (rms_no_gamma, r"gamma is missing"),
    (rms_factor_two, r"twice too large"),
    (rms_sum_not_mean, r"You summed g \* xhat"),
    (rms_batch_mean, r"over each row \(axis=-1"),
    (rms_fixed_eps, r"right for eps = 1e-5 but was asked for eps = 0\.001"),
    (rms_dgamma_with_x, r"dgamma is wrong.*You multiplied by x"),
    (rms_dgamma_mean, r"dgamma is wrong.*do not average"),
    (rms_dgamma_no_sum, r"dgamma has shape \(5, 7\).*sum its gradient over axis 0"),
    (rms_in_place, r"changed its argument x in place"),
    (rms_three_outputs, r"must return two arrays.*length 3"),
    (rms_sign, r"relative error .* against central differences"),
    (rms_stub, r"not written yet"),
])
def test_rmsnorm_backward_rejects(wrong, message):
    with pytest.raises(AssertionError, match=message):
        check_rmsnorm_backward(wrong)


def test_the_rmsnorm_reference_passes_the_gradient_check():
    """The checker's own reference and numerical gradient agree to far below 1e-7."""
    from regmlp.exercises.ch04_layernorm import _numerical_dx, _rms_backward, _rms_inputs
    from regmlp.gradcheck import rel_error

    for shape, seed, eps in [((5, 7), 406, 1e-3), ((3, 4), 407, 1e-5)]:
        grad_out, x, gamma = _rms_inputs(shape, seed)
        assert rel_error(_rms_backward(grad_out, x, gamma, eps)[0],
                         _numerical_dx(grad_out, x, gamma, eps)) < 1e-8
