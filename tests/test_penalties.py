"""Tests of regmlp.penalties: values, gradients (checked numerically), scope, validation."""

from __future__ import annotations

import numpy as np
import pytest

from regmlp.gradcheck import numerical_gradient, rel_error
from regmlp.layers import Dense, LayerNorm, Parameter, Sequential
from regmlp.penalties import L1, L2


def params():
    rng = np.random.default_rng(0)
    return [Parameter(rng.standard_normal((3, 4))), Parameter(rng.standard_normal(5)),
            Parameter(rng.standard_normal(4), decay=False)]


def test_l2_value_is_half_lambda_sum_of_squares():
    ps = params()
    expected = 0.3 / 2 * (np.sum(ps[0].value ** 2) + np.sum(ps[1].value ** 2))
    assert L2(0.3).loss(ps) == pytest.approx(expected, rel=1e-14)
    assert L2(0.1).loss([Parameter(np.array([3.0, 4.0]))]) == pytest.approx(1.25, rel=1e-15)


def test_l1_value_is_lambda_sum_of_absolute_values():
    ps = params()
    expected = 0.3 * (np.sum(np.abs(ps[0].value)) + np.sum(np.abs(ps[1].value)))
    assert L1(0.3).loss(ps) == pytest.approx(expected, rel=1e-14)
    assert L1(0.1).loss([Parameter(np.array([3.0, -4.0]))]) == pytest.approx(0.7, rel=1e-15)


def test_loss_is_a_python_float():
    assert type(L2(0.1).loss(params())) is float
    assert type(L1(0.1).loss(params())) is float


def test_l2_gradient_is_lambda_theta_added_to_grad():
    ps = params()
    for p in ps:
        p.grad[...] = 1.0
    L2(0.3).backward(ps)
    for p in ps[:2]:
        np.testing.assert_allclose(p.grad, 1.0 + 0.3 * p.value, rtol=1e-15)
    np.testing.assert_array_equal(ps[2].grad, 1.0)


def test_l1_gradient_is_lambda_sign_with_sign_zero_zero():
    p = Parameter(np.array([-2.0, 0.0, 3.0, 0.0, -0.0]))
    L1(0.5).backward([p])
    np.testing.assert_array_equal(p.grad, [-0.5, 0.0, 0.5, 0.0, 0.0])


@pytest.mark.parametrize("penalty", [L1(0.7), L2(0.7)], ids=["L1", "L2"])
def test_gradient_matches_finite_differences(penalty):
    rng = np.random.default_rng(1)
    # away from 0, where |.| is differentiable
    p = Parameter(rng.choice([-1.0, 1.0], (4, 3)) * rng.uniform(0.1, 2.0, (4, 3)))
    numeric = numerical_gradient(lambda _: penalty.loss([p]), p.value)
    penalty.backward([p])
    assert rel_error(p.grad, numeric) <= 1e-7


@pytest.mark.parametrize("penalty", [L1(0.7), L2(0.7)], ids=["L1", "L2"])
def test_only_decayed_parameters_are_affected(penalty):
    model = Sequential(Dense(3, 4, rng=0), LayerNorm(4), Dense(4, 1, rng=1))
    decayed = [p for p in model.parameters() if p.decay]
    assert [p.shape for p in decayed] == [(3, 4), (4, 1)]
    assert penalty.loss(model.parameters()) == penalty.loss(decayed)
    penalty.backward(model.parameters())
    for p in model.parameters():
        if p.decay:
            assert np.all(p.grad != 0)
        else:
            assert np.all(p.grad == 0)
    # a decay=False parameter alone gives no term at all
    assert penalty.loss([Parameter(np.ones(3), decay=False)]) == 0.0


def test_lambda_zero_gives_nothing():
    ps = params()
    assert L2(0.0).loss(ps) == 0.0 and L1(0).loss(ps) == 0.0
    L2(0.0).backward(ps)
    L1(0.0).backward(ps)
    assert all(np.all(p.grad == 0) for p in ps)


@pytest.mark.parametrize("cls", [L1, L2])
@pytest.mark.parametrize("lam, exc", [(-0.1, ValueError), (float("nan"), ValueError),
                                      (float("inf"), ValueError), ("0.1", TypeError),
                                      (None, TypeError), (True, TypeError)],
                         ids=["negative", "nan", "inf", "str", "None", "bool"])
def test_lambda_is_validated(cls, lam, exc):
    with pytest.raises(exc, match="lam"):
        cls(lam)


def test_non_parameter_is_refused():
    with pytest.raises(TypeError, match=r"params\[1\] must be a Parameter"):
        L2(0.1).loss([Parameter(np.ones(2)), np.ones(2)])
    with pytest.raises(TypeError, match=r"params\[0\] must be a Parameter"):
        L1(0.1).backward([np.ones(2)])


def test_lam_is_stored_as_float_and_repr():
    assert L2(1).lam == 1.0 and isinstance(L2(1).lam, float)
    assert repr(L1(0.5)) == "L1(0.5)"
