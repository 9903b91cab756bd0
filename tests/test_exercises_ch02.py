"""The chapter 2 checkers accept the reference solutions and reject the usual mistakes.

The first wrong versions are the dropout bugs of DESIGN.md section 7 (no 1/(1-p)
scaling, still active in evaluation; the third, a backward that ignores the
mask, is caught by tests/test_layers.py and by the chapter's gradient check);
the others are mistakes a learner is likely to make. Each must fail with an
AssertionError whose message says what to fix.
"""

from __future__ import annotations

import numpy as np
import pytest

from regmlp.exercises import check_dropout_forward, check_mc_dropout
from regmlp.layers import Dropout

# -- forward ------------------------------------------------------------------------


def dropout_forward(x, p, rng, training=True):
    if not training or p == 0:
        return x
    mask = rng.random(x.shape) >= p
    return x * mask / (1 - p)


def fwd_binomial(x, p, rng, training=True):
    """Another correct way to draw the mask."""
    if not training:
        return x
    return x * rng.binomial(1, 1 - p, size=x.shape) / (1 - p)


def fwd_no_scaling(x, p, rng, training=True):
    if not training:
        return x
    return x * (rng.random(x.shape) >= p)


def fwd_keep_probability(x, p, rng, training=True):
    if not training:
        return x
    return x * (rng.random(x.shape) < p) / p


def fwd_keep_probability_scaled(x, p, rng, training=True):
    if not training:
        return x
    return x * (rng.random(x.shape) < p) / (1 - p)


def fwd_always_on(x, p, rng, training=True):
    return x * (rng.random(x.shape) >= p) / (1 - p)


def fwd_eval_scaled(x, p, rng, training=True):
    """The non-inverted variant's test-time rule applied to inverted dropout."""
    if not training:
        return x * (1 - p)
    return x * (rng.random(x.shape) >= p) / (1 - p)


def fwd_times_keep(x, p, rng, training=True):
    if not training:
        return x
    return x * (rng.random(x.shape) >= p) * (1 - p)


def fwd_shared_mask(x, p, rng, training=True):
    if not training:
        return x
    return x * (rng.random(x.shape[1]) >= p) / (1 - p)


def fwd_global_seed(x, p, rng, training=True):
    if not training:
        return x
    return x * (np.random.default_rng(0).random(x.shape) >= p) / (1 - p)


def fwd_in_place(x, p, rng, training=True):
    if not training:
        return x
    x *= (rng.random(x.shape) >= p) / (1 - p)
    return x


def fwd_returns_mask(x, p, rng, training=True):
    mask = rng.random(x.shape) >= p
    return (x * mask / (1 - p), mask) if training else (x, None)


def fwd_hard_coded_p(x, p, rng, training=True):
    if not training:
        return x
    return x * (rng.random(x.shape) >= 0.3) / 0.7


def fwd_stub(x, p, rng, training=True):
    raise NotImplementedError("Exercise: replace this line with your code.")


@pytest.mark.parametrize("solution", [dropout_forward, fwd_binomial])
def test_forward_accepts_the_solution(solution, capsys):
    check_dropout_forward(solution)
    assert capsys.readouterr().out.startswith("Correct:")


def test_forward_accepts_the_package_layer(capsys):
    def with_layer(x, p, rng, training=True):
        layer = Dropout(p, rng=rng)
        layer.train(training)
        return layer.forward(x)

    check_dropout_forward(with_layer)
    assert capsys.readouterr().out.startswith("Correct:")


@pytest.mark.parametrize(("wrong", "message"), [
    (fwd_no_scaling, r"scales the surviving entries wrongly.*must be divided by 1 - p"),
    (fwd_keep_probability, r"p is the probability\s+of DROPPING.*keep probability"),
    (fwd_keep_probability_scaled, r"keep probability: keep an entry where"),
    (fwd_always_on, r"training=False\) is not the identity.*switched off"),
    (fwd_eval_scaled, r"training=False\) is not the identity.*no rescaling is needed"),
    (fwd_times_keep, r"multiplied the kept entries by 1 - p; divide"),
    (fwd_shared_mask, r"same features in every row.*mask of x.shape"),
    (fwd_global_seed, r"same mask for generators with different seeds.*rng.random"),
    (fwd_in_place, r"changed its input x in place"),
    (fwd_returns_mask, r"returned a tuple of 2 items"),
    (fwd_hard_coded_p, r"with p=0.6 kept \d+\.\d% of the entries.*about 40\.0%"),
    (fwd_stub, r"not written yet"),
])
def test_forward_rejects(wrong, message):
    with pytest.raises(AssertionError, match=message):
        check_dropout_forward(wrong)


# -- Monte Carlo dropout --------------------------------------------------------------


def mc_dropout_predict(model, x, n_samples=100):
    flags = [(m, m.training) for m in model.modules()]
    model.train()
    try:
        outs = np.stack([model.forward(x) for _ in range(n_samples)])
    finally:
        for m, training in flags:
            m.training = training
    return outs.mean(axis=0), outs.std(axis=0)


def mc_vectorised(model, x, n_samples=100):
    """One big batch: a different but equally valid draw of the masks."""
    flags = [(m, m.training) for m in model.modules()]
    model.train()
    try:
        outs = model.forward(np.tile(x, (n_samples, 1))).reshape(n_samples, len(x), 1)
    finally:
        for m, training in flags:
            m.training = training
    return outs.mean(axis=0), outs.std(axis=0, ddof=1)


def mc_eval_mode(model, x, n_samples=100):
    flags = [(m, m.training) for m in model.modules()]
    model.eval()
    outs = np.stack([model.forward(x) for _ in range(n_samples)])
    for m, training in flags:
        m.training = training
    return outs.mean(axis=0), outs.std(axis=0)


def mc_no_restore(model, x, n_samples=100):
    model.train()
    outs = np.stack([model.forward(x) for _ in range(n_samples)])
    return outs.mean(axis=0), outs.std(axis=0)


def mc_always_eval_after(model, x, n_samples=100):
    model.train()
    outs = np.stack([model.forward(x) for _ in range(n_samples)])
    model.eval()
    return outs.mean(axis=0), outs.std(axis=0)


def mc_variance(model, x, n_samples=100):
    mean, std = mc_dropout_predict(model, x, n_samples)
    return mean, std ** 2


def mc_wrong_axis(model, x, n_samples=100):
    flags = [(m, m.training) for m in model.modules()]
    model.train()
    outs = np.stack([model.forward(x) for _ in range(n_samples)])
    for m, training in flags:
        m.training = training
    return outs.mean(axis=1), outs.std(axis=1)


def mc_unscaled(model, x, n_samples=100):
    """Drops units but forgets that the package already rescales: divides again."""
    mean, std = mc_dropout_predict(model, x, n_samples)
    return mean * 0.6, std * 0.6


def mc_stub(model, x, n_samples=100):
    raise NotImplementedError("Exercise: replace this line with your code.")


@pytest.mark.parametrize("solution", [mc_dropout_predict, mc_vectorised])
def test_mc_accepts_the_solution(solution, capsys):
    check_mc_dropout(solution)
    assert capsys.readouterr().out.startswith("Correct:")


@pytest.mark.parametrize(("wrong", "message"), [
    (mc_eval_mode, r"std = 0 for every example.*dropout was switched off"),
    (mc_no_restore, r"evaluation\s+mode before the call and is not afterwards"),
    (mc_always_eval_after, r"training\s+mode before the call and is not afterwards"),
    (mc_variance, r"looks like the variance"),
    (mc_wrong_axis, r"mean of shape \(4000, 1\), expected \(6, 1\).*axis 0"),
    (mc_unscaled, r"mean that is off by"),
    (mc_stub, r"not written yet"),
])
def test_mc_rejects(wrong, message):
    with pytest.raises(AssertionError, match=message):
        check_mc_dropout(wrong)


def test_mc_reference_matches_many_passes_of_the_package():
    """The closed-form reference agrees with brute force through regmlp's Dropout."""
    from regmlp.exercises.ch02_dropout import _mc_model, _mc_reference

    model, x, p = _mc_model()
    mean, std = _mc_reference(model, x, p)
    model.train()
    outs = np.stack([model.forward(x) for _ in range(20000)])
    assert np.allclose(outs.mean(axis=0), mean, atol=5 * std.max() / np.sqrt(20000))
    assert np.allclose(outs.std(axis=0), std, rtol=0.05)


# -- input dropout as an L2 penalty ---------------------------------------------------

from regmlp.exercises import check_input_dropout_l2  # noqa: E402


def input_dropout_l2(x, p):
    return 2 * p / (1 - p) * np.mean(x ** 2, axis=0)


def l2_loop(x, p):
    """Another correct version: one feature at a time, through E[(m/(1-p))^2] - 1."""
    factor = 1 / (1 - p) - 1
    return np.array([2 * factor * float(x[:, j] @ x[:, j]) / len(x) for j in range(x.shape[1])])


def l2_stub(x, p):
    raise NotImplementedError("Exercise: replace this line with your code.")


@pytest.mark.parametrize("solution", [input_dropout_l2, l2_loop])
def test_input_dropout_l2_accepts_the_solution(solution, capsys):
    check_input_dropout_l2(solution)
    assert capsys.readouterr().out.startswith("Correct:")


@pytest.mark.parametrize(("wrong", "message"), [
    (lambda x, p: p / (1 - p) * np.mean(x ** 2, axis=0), r"TWICE the coefficient"),
    (lambda x, p: 2 * p * np.mean(x ** 2, axis=0), r"variance of the inverted-dropout factor"),
    (lambda x, p: 2 * p * (1 - p) * np.mean(x ** 2, axis=0), r"variance of the mask m itself"),
    (lambda x, p: 2 * (1 - p) / p * np.mean(x ** 2, axis=0), r"upside down"),
    (lambda x, p: 2 * p / (1 - p) * np.var(x, axis=0), r"raw second\s+moment"),
    (lambda x, p: p / (1 - p) * np.var(x, axis=0), r"Two slips"),
    (lambda x, p: 2 * p / (1 - p) * np.sum(x ** 2, axis=0), r"not the sum"),
    (lambda x, p: 2 * p / (1 - p) * np.std(x, axis=0), r"expected"),
    (lambda x, p: 2 * p / (1 - p) * np.sqrt(np.mean(x ** 2, axis=0)), r"not its square root"),
    (lambda x, p: np.full(x.shape[1], 2 * p / (1 - p)), r"standardised features only"),
    (lambda x, p: 2 * p / (1 - p), r"returned shape \(\), expected \(4,\).*one lam_j per"),
    (lambda x, p: 2 * p / (1 - p) * np.mean(x ** 2), r"returned shape \(\)"),
    (lambda x, p: 2 * p / (1 - p) * np.mean(x ** 2, axis=1), r"returned shape \(40,\)"),
    (lambda x, p: (2 * p / (1 - p) * np.mean(x ** 2, axis=0), p), r"returned a tuple"),
    (lambda x, p: np.square(x, out=x).mean(axis=0) * 2 * p / (1 - p), r"changed x in place"),
    (l2_stub, r"not written yet"),
])
def test_input_dropout_l2_rejects(wrong, message):
    with pytest.raises(AssertionError, match=message):
        check_input_dropout_l2(wrong)


def test_input_dropout_l2_reference_is_the_expected_extra_loss():
    """Monte Carlo through regmlp's Dropout: the mean loss over masks minus the plain loss
    is sum_j lam_j / 2 * w_j^2 with the reference lam_j."""
    from regmlp.exercises.ch02_dropout import _input_dropout_l2_reference, _l2_inputs

    x, p = _l2_inputs()[0]
    rng = np.random.default_rng(0)
    w, b = rng.standard_normal(x.shape[1]), 0.3
    y = x @ w + rng.standard_normal(len(x))
    drop = Dropout(p, rng=1)
    losses = np.array([np.mean((drop.forward(x) @ w + b - y) ** 2) for _ in range(40_000)])
    extra = losses.mean() - np.mean((x @ w + b - y) ** 2)
    expected = float(np.sum(_input_dropout_l2_reference(x, p) / 2 * w ** 2))
    assert abs(extra - expected) < 4 * losses.std() / np.sqrt(len(losses))
