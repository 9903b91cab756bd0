"""Tests of regmlp.gradcheck, including the check catching deliberately wrong backward passes."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import randn, randomise_layernorm

from regmlp.gradcheck import check_gradients, numerical_gradient, rel_error
from regmlp.layers import Dense, Dropout, Layer, LayerNorm, ReLU, Residual, Sequential

R_SEED = 999


# ---------------------------------------------------------------------------
# numerical_gradient
# ---------------------------------------------------------------------------

KNOWN = {
    "sum-of-squares": (lambda x: float(np.sum(x ** 2)), lambda x: 2 * x),
    "sin": (lambda x: float(np.sum(np.sin(x))), np.cos),
    "exp-weighted": (lambda x: float(np.sum(np.arange(x.size).reshape(x.shape) * np.exp(x))),
                     lambda x: np.arange(x.size).reshape(x.shape) * np.exp(x)),
    "product": (lambda x: float(np.prod(x)), lambda x: np.prod(x) / x),
}


@pytest.mark.parametrize("f, grad", KNOWN.values(), ids=KNOWN.keys())
@pytest.mark.parametrize("shape", [(5,), (2, 3)], ids=["1d", "2d"])
def test_numerical_gradient_of_known_functions(f, grad, shape):
    x = np.random.default_rng(3).uniform(0.5, 1.5, shape)
    numeric = numerical_gradient(f, x)
    assert numeric.shape == x.shape
    np.testing.assert_allclose(numeric, grad(x), rtol=1e-7, atol=1e-9)


def test_numerical_gradient_restores_x_exactly():
    x = randn(3, 4)
    before = x.copy()
    seen = []

    def f(v):
        seen.append(v is x)
        return float(np.sum(np.sin(v) * v))

    numerical_gradient(f, x)
    np.testing.assert_array_equal(x, before)
    assert all(seen) and len(seen) == 2 * x.size  # perturbed in place, two calls per entry


def test_numerical_gradient_step_size():
    x = np.array([1.0])
    # for a cubic, central differences are off by exactly h**2
    numeric = numerical_gradient(lambda v: float(v[0] ** 3), x, h=1e-2)
    assert numeric[0] == pytest.approx(3.0 + 1e-4, rel=1e-9)


# ---------------------------------------------------------------------------
# rel_error
# ---------------------------------------------------------------------------


def test_rel_error_formula():
    a, b = np.array([1.0, -2.0, 3.0]), np.array([1.5, -2.0, 2.0])
    # max|a-b| = 1.0, max(|a|+|b|) = 5.0
    assert rel_error(a, b) == pytest.approx(1.0 / 5.0, rel=1e-15)
    assert rel_error(b, a) == rel_error(a, b)
    assert rel_error(a, a) == 0.0


def test_rel_error_has_a_floor_of_1e_8():
    a, b = np.array([1e-10]), np.array([3e-10])
    # without the floor this would be 2e-10 / 4e-10 = 0.5
    assert rel_error(a, b) == pytest.approx(2e-10 / 1e-8, rel=1e-12)
    assert rel_error(np.zeros(3), np.zeros(3)) == 0.0
    assert rel_error(np.zeros(3), np.full(3, 1e-12)) == pytest.approx(1e-4, rel=1e-12)


def test_rel_error_returns_float_and_checks_shapes():
    assert type(rel_error([1.0], [2.0])) is float
    assert rel_error(np.zeros(0), np.zeros(0)) == 0.0
    with pytest.raises(ValueError, match="same shape"):
        rel_error(np.zeros(3), np.zeros((3, 1)))


# ---------------------------------------------------------------------------
# check_gradients: side effects and modes
# ---------------------------------------------------------------------------


def network():
    return Sequential(Dense(4, 6, rng=0), ReLU(), Dropout(0.3, rng=1),
                      Residual(Sequential(LayerNorm(6), Dense(6, 6, rng=2))), Dense(6, 2, rng=3))


def test_check_gradients_leaves_every_grad_unchanged():
    model = network()
    rng = np.random.default_rng(5)
    for p in model.parameters():
        p.grad[...] = rng.standard_normal(p.shape)
    grads = [p.grad.copy() for p in model.parameters()]
    objects = [p.grad for p in model.parameters()]
    values = [p.value.copy() for p in model.parameters()]
    assert check_gradients(model, randn(5, 4), rng=R_SEED) <= 1e-7
    for p, g, obj, v in zip(model.parameters(), grads, objects, values, strict=True):
        np.testing.assert_array_equal(p.grad, g)
        assert p.grad is obj
        np.testing.assert_array_equal(p.value, v)


def test_check_gradients_does_not_modify_x():
    x = randn(5, 4)
    before = x.copy()
    check_gradients(network(), x, rng=R_SEED)
    np.testing.assert_array_equal(x, before)


class ModeSpy(Layer):
    """Identity that records the training flag at each forward."""

    def __init__(self):
        super().__init__()
        self.modes = []

    def forward(self, x):
        self.modes.append(self.training)
        return x

    def backward(self, grad_out):
        return grad_out


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_check_gradients_runs_in_the_current_mode(training):
    spy = ModeSpy()
    model = Sequential(Dense(3, 3, rng=0), spy, Dropout(0.5, rng=1))
    model.train(training)
    assert check_gradients(model, randn(4, 3), rng=R_SEED) <= 1e-7
    assert spy.modes and all(m is training for m in spy.modes)
    assert all(m.training is training for m in model.modules())


def test_check_gradients_returns_the_largest_error():
    err = check_gradients(Dense(3, 2, rng=0), randn(4, 3), rng=R_SEED)
    assert isinstance(err, float) and 0.0 <= err <= 1e-7


def test_check_gradients_is_reproducible_with_a_seed():
    a = check_gradients(network(), randn(5, 4), rng=R_SEED)
    b = check_gradients(network(), randn(5, 4), rng=R_SEED)
    assert a == b


# ---------------------------------------------------------------------------
# wrong backward passes are caught
# ---------------------------------------------------------------------------


class TransposedWeightGradDense(Dense):
    """Weight gradient transposed (only possible to notice for a square layer)."""

    def backward(self, grad_out):
        self.weight.grad += (self._x.T @ grad_out).T
        self.bias.grad += grad_out.sum(axis=0)
        return grad_out @ self.weight.value.T


class ScaledWeightGradDense(Dense):
    """Weight gradient averaged over the batch although the forward sums."""

    def backward(self, grad_out):
        self.weight.grad += self._x.T @ grad_out / len(grad_out)
        self.bias.grad += grad_out.sum(axis=0)
        return grad_out @ self.weight.value.T


class NoBiasGradDense(Dense):
    def backward(self, grad_out):
        self.weight.grad += self._x.T @ grad_out
        return grad_out @ self.weight.value.T


class NoMeanTermsLayerNorm(LayerNorm):
    """Backward without the two mean terms: treats mu and sigma as constants."""

    def backward(self, grad_out):
        self.weight.grad += np.sum(grad_out * self._xhat, axis=0)
        self.bias.grad += np.sum(grad_out, axis=0)
        return self._rstd * grad_out * self.weight.value


class MaskIgnoringDropout(Dropout):
    """Section 7 bug: a dropout backward that ignores the mask (keeps the scale)."""

    def backward(self, grad_out):
        if not self._dropped:
            return grad_out
        return grad_out / (1.0 - self.p)


class UnscaledBackwardDropout(Dropout):
    """Backward with the mask but without the 1/(1-p) scale of the forward."""

    def backward(self, grad_out):
        if not self._dropped:
            return grad_out
        return grad_out * self.mask


class ReLUBackwardOnOutputSign(ReLU):
    """Passes the gradient everywhere (forgets the mask)."""

    def backward(self, grad_out):
        return grad_out


class ResidualWithoutSkipGradient(Residual):
    """Backward forgets the identity path."""

    def backward(self, grad_out):
        return self.block.backward(grad_out)


def layernorm_with_random_affine(cls, dim=5):
    return randomise_layernorm(cls(dim), seed=4)


WRONG = {
    "dense-transposed-weight-grad": lambda: TransposedWeightGradDense(5, 5, rng=0),
    "dense-scaled-weight-grad": lambda: ScaledWeightGradDense(5, 5, rng=0),
    "dense-no-bias-grad": lambda: NoBiasGradDense(5, 3, rng=0),
    "layernorm-no-mean-terms": lambda: layernorm_with_random_affine(NoMeanTermsLayerNorm),
    "dropout-ignores-mask": lambda: MaskIgnoringDropout(0.5, rng=0),
    "dropout-backward-unscaled": lambda: UnscaledBackwardDropout(0.5, rng=0),
    "relu-no-mask": lambda: ReLUBackwardOnOutputSign(),
    "residual-no-skip": lambda: ResidualWithoutSkipGradient(Dense(5, 5, rng=0)),
    "inside-a-network": lambda: Sequential(Dense(5, 5, rng=1), ReLU(),
                                           MaskIgnoringDropout(0.3, rng=2), Dense(5, 2, rng=3)),
}


@pytest.mark.parametrize("make", WRONG.values(), ids=WRONG.keys())
def test_wrong_backward_is_caught(make):
    x = randn(6, 5, seed=11)
    assert check_gradients(make(), x, rng=R_SEED) > 1e-3


def test_the_correct_versions_pass_on_the_same_inputs():
    x = randn(6, 5, seed=11)
    for layer in (Dense(5, 5, rng=0), layernorm_with_random_affine(LayerNorm),
                  Dropout(0.5, rng=0), ReLU(), Residual(Dense(5, 5, rng=0))):
        assert check_gradients(layer, x, rng=R_SEED) <= 1e-7
