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


def fwd_one_draw(x, p, rng, training=True):
    """One random number for the whole array."""
    if not training:
        return x
    return x * (rng.random() >= p) / (1 - p)


def fwd_two_axes(x, p, rng, training=True):
    """A mask for matrices only: fails on an input with three axes."""
    if not training:
        return x
    return x * (rng.random((x.shape[0], x.shape[1])) >= p) / (1 - p)


# Other correct solutions: np.where with the keep test written the other way round, and a
# float32 mask multiplied by the reciprocal of 1 - p.
def fwd_where(x, p, rng, training=True):
    if not training:
        return x.copy()
    return np.where(rng.random(x.shape) < 1 - p, x / (1 - p), 0.0)


def fwd_float_mask(x, p, rng, training=True):
    if not training:
        return x
    mask = (rng.random(x.shape, dtype=np.float32) >= p).astype(x.dtype)
    return x * mask * (1.0 / (1.0 - p))


@pytest.mark.parametrize("solution", [dropout_forward, fwd_binomial, fwd_where, fwd_float_mask])
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
    (fwd_one_draw, r"(kept|dropped) every entry of x: one random number"),
    (fwd_two_axes, r"with p=0.6 raised ValueError"),
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


def mc_global_flag(model, x, n_samples=100):
    """Restores one flag for the whole model (right only when all layers share it)."""
    was = model.training
    model.train()
    try:
        outs = np.stack([model.forward(x) for _ in range(n_samples)])
    finally:
        model.train(was)
    return outs.mean(axis=0), outs.std(axis=0)


def mc_no_finally(model, x, n_samples=100):
    flags = [(m, m.training) for m in model.modules()]
    model.train()
    outs = np.stack([model.forward(x) for _ in range(n_samples)])
    for m, training in flags:
        m.training = training
    return outs.mean(axis=0), outs.std(axis=0)


def mc_eval_mean(model, x, n_samples=100):
    """The eval-mode output as the mean (right only when the output is linear in the mask)."""
    _, std = mc_dropout_predict(model, x, n_samples)
    flags = [(m, m.training) for m in model.modules()]
    model.eval()
    mean = model.forward(x)
    for m, training in flags:
        m.training = training
    return mean, std


def mc_fixed_samples(model, x, n_samples=100):
    return mc_dropout_predict(model, x, 100)


# Other correct solutions: switch only the Dropout layers; a running (Welford) mean and variance.
def mc_only_dropout_layers(model, x, n_samples=100):
    from regmlp.layers import Dropout as DropoutLayer

    layers = [m for m in model.modules() if isinstance(m, DropoutLayer)]
    saved = [m.training for m in layers]
    for m in layers:
        m.training = True
    try:
        outs = [model(x) for _ in range(n_samples)]
    finally:
        for m, flag in zip(layers, saved, strict=True):
            m.training = flag
    return np.mean(outs, axis=0), np.std(outs, axis=0)


def mc_welford(model, x, n_samples=100):
    flags = [(m, m.training) for m in model.modules()]
    try:
        model.train()
        mean, m2 = 0.0, 0.0
        for k in range(1, n_samples + 1):
            out = model.forward(x)
            delta = out - mean
            mean = mean + delta / k
            m2 = m2 + delta * (out - mean)
    finally:
        for m, training in flags:
            m.training = training
    return mean, np.sqrt(m2 / n_samples)


@pytest.mark.parametrize("solution", [mc_dropout_predict, mc_vectorised, mc_only_dropout_layers,
                                      mc_welford])
def test_mc_accepts_the_solution(solution, capsys):
    check_mc_dropout(solution)
    assert capsys.readouterr().out.startswith("Correct:")


@pytest.mark.parametrize(("wrong", "message"), [
    (mc_eval_mode, r"std = 0 for every example.*dropout was switched off"),
    (mc_no_restore, r"did not restore the layers' modes \(on a model in evaluation mode\)"),
    (mc_always_eval_after, r"did not restore the layers' modes \(on a model whose layers were"),
    (mc_variance, r"looks like the variance"),
    (mc_wrong_axis, r"mean of shape \(4000, 1\), expected \(6, 1\).*axis 0"),
    (mc_unscaled, r"mean that is off by"),
    (mc_stub, r"not written yet"),
    (mc_global_flag, r"modes \(on a model whose layers were in mixed modes\)"),
    (mc_no_finally, r"did not restore the layers' modes when a forward pass raised"),
    (mc_eval_mean, r"mean that is off.*Your mean is the evaluation-mode output"),
    (mc_fixed_samples, r"ran 100 forward passes, but n_samples=4000"),
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
