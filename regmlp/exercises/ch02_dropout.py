r"""Checkers for the exercises of chapter 2, *Dropout*.

* :func:`check_dropout_forward` -- ``dropout_forward(x, p, rng, training=True)``,
  inverted dropout: drop each entry with probability ``p``, scale the survivors
  by :math:`1/(1-p)`, and be the identity when ``training`` is False (the first
  two dropout bugs of DESIGN §7: no scaling, still active in evaluation);
* :func:`check_mc_dropout` -- ``mc_dropout_predict(model, x, n_samples)``,
  the mean and standard deviation of ``n_samples`` stochastic forward passes
  (Monte Carlo dropout), leaving the model's modes as they were.

The references are computed here from the definitions, independently of
``regmlp.layers.Dropout``: the Monte Carlo one in closed form (dropout right
before the last linear layer makes the output linear in the mask, so its mean
and variance over masks are exact sums).
* :func:`check_input_dropout_l2` -- ``input_dropout_l2(x, p)``, the L2
  strengths :math:`\lambda_j = \frac{2p}{1-p}\overline{x_j^2}` that input
  dropout adds, on average, to a linear model's squared error.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..layers import Dense, Dropout, Layer, ReLU, Sequential
from ._common import assert_close, passed, run_learner_code

__all__ = ["check_dropout_forward", "check_mc_dropout"]


# -- the forward pass ---------------------------------------------------------------

def _forward_input(shape: tuple[int, int] = (400, 250), seed: int = 202) -> np.ndarray:
    """Entries of size 0.5 to 1.5 with random signs: never 0, so ``out != 0`` is the mask."""
    rng = np.random.default_rng(seed)
    return rng.uniform(0.5, 1.5, shape) * rng.choice([-1.0, 1.0], shape)


def _as_output(result: Any, what: str, shape: tuple[int, ...]) -> np.ndarray:
    if isinstance(result, tuple):
        raise AssertionError(f"{what} returned a tuple of {len(result)} items; return only the "
                             "output array, not the mask.")
    out = np.asarray(result)
    if out.shape != shape:
        raise AssertionError(f"{what} returned shape {out.shape}, expected {shape}: dropout "
                             "keeps the shape of its input (one mask entry per element).")
    if out.dtype.kind != "f":
        raise AssertionError(f"{what} returned dtype {out.dtype}; it should be a float array "
                             "(multiply x by the mask and by 1 / (1 - p)).")
    return out


def _check_training_output(out: np.ndarray, x: np.ndarray, p: float, what: str) -> None:
    """``out`` must be ``x * mask / (1 - p)`` with a mask that keeps about ``1 - p``."""
    kept = out != 0
    frac = float(kept.mean())
    tol = 6 * np.sqrt(p * (1 - p) / x.size) + 1e-3
    if abs(frac - (1 - p)) > tol:
        if p != 0.5 and abs(frac - p) <= tol:
            raise AssertionError(
                f"{what} kept {frac:.1%} of the entries with p={p}, but p is the probability "
                f"of DROPPING an entry (PyTorch's convention), so {1 - p:.0%} should survive. "
                "You used p as the keep probability: keep an entry where rng.random(x.shape) "
                ">= p.")
        raise AssertionError(
            f"{what} kept {frac:.1%} of the entries with p={p}; about {1 - p:.1%} should "
            "survive. Draw one uniform number per entry and keep the entry where "
            "rng.random(x.shape) >= p.")
    ratio = out[kept] / x[kept]
    scale = 1.0 / (1.0 - p)
    if not np.allclose(ratio, scale, rtol=1e-12, atol=0.0):
        if np.allclose(ratio, 1.0):
            hint = (f"The kept entries are unchanged, but they must be divided by 1 - p = "
                    f"{1 - p:g}. Without the scaling the expected output is (1 - p) * x, so "
                    "the next layer sees smaller activations in training than in evaluation.")
        elif np.allclose(ratio, 1.0 - p):
            hint = "You multiplied the kept entries by 1 - p; divide by it instead."
        elif p > 0 and np.allclose(ratio, 1.0 / p):
            hint = "You divided by p; divide by the keep probability 1 - p."
        else:
            hint = (f"A kept entry must equal x / (1 - p) = {scale:.6g} * x; yours are "
                    f"between {ratio.min():.6g} * x and {ratio.max():.6g} * x.")
        raise AssertionError(f"{what} scales the surviving entries wrongly. {hint}")


def check_dropout_forward(dropout_forward: Callable[..., np.ndarray]) -> None:
    r"""Check ``dropout_forward(x, p, rng, training=True) -> out``.

    In training, ``out = x * mask / (1 - p)`` with an independent keep-mask
    entry per element, ``mask = rng.random(x.shape) >= p`` (or any other way
    of keeping each entry with probability ``1 - p`` that draws from ``rng``);
    in evaluation (``training=False``) ``out`` is ``x`` itself. ``x`` must not
    be changed in place.
    """
    what = "dropout_forward(x, p, rng, training=True)"
    x = _forward_input()
    x_before = x.copy()
    p = 0.3
    result = run_learner_code(dropout_forward, x, p, np.random.default_rng(7), training=True,
                              what=what)
    if not np.array_equal(x, x_before):
        raise AssertionError(f"{what} changed its input x in place (x *= mask?). Return a new "
                             "array: x * mask / (1 - p).")
    out = _as_output(result, what, x.shape)
    kept = out != 0
    if (kept == kept[:1]).all():
        raise AssertionError(
            f"{what} drops the same features in every row: your mask has one entry per column, "
            "shared by the whole batch. Draw a mask of x.shape, one entry per element, so "
            "that each example gets its own thinned network.")
    if (kept == kept[:, :1]).all():
        raise AssertionError(
            f"{what} keeps or drops whole rows: draw a mask of x.shape, one entry per element.")
    _check_training_output(out, x, p, what)

    again = run_learner_code(dropout_forward, x, p, np.random.default_rng(7), training=True,
                             what=what)
    other = run_learner_code(dropout_forward, x, p, np.random.default_rng(8), training=True,
                             what=what)
    if not np.array_equal(np.asarray(again), out):
        raise AssertionError(
            f"{what} gave different masks for two generators made with the same seed. Draw the "
            "mask from the rng argument (rng.random(x.shape)), not from np.random.* or a "
            "generator of your own, so that results are reproducible.")
    if np.array_equal(np.asarray(other), out):
        raise AssertionError(
            f"{what} gave the same mask for generators with different seeds: the mask does not "
            "come from the rng argument. Use rng.random(x.shape), and never np.random.seed.")

    # another p and shape, so that a hard-coded p or shape is caught
    x2 = _forward_input((300, 100), seed=203)
    out2 = run_learner_code(dropout_forward, x2, 0.6, np.random.default_rng(9), training=True,
                            what=f"{what} with p=0.6")
    out2 = _as_output(out2, f"{what} with p=0.6", x2.shape)
    _check_training_output(out2, x2, 0.6, f"{what} with p=0.6")

    # p = 0: nothing is dropped, nothing is scaled
    out0 = run_learner_code(dropout_forward, x2, 0.0, np.random.default_rng(10), training=True,
                            what=f"{what} with p=0")
    assert_close(_as_output(out0, f"{what} with p=0", x2.shape), x2, what=f"{what} with p=0",
                 hint="With p = 0 nothing is dropped and 1 / (1 - p) = 1: return x.")

    # evaluation mode: the identity
    what_eval = "dropout_forward(x, p, rng, training=False)"
    out_eval = run_learner_code(dropout_forward, x, p, np.random.default_rng(7), training=False,
                                what=what_eval)
    out_eval = _as_output(out_eval, what_eval, x.shape)
    if not np.array_equal(out_eval, x):
        frac = float(np.mean(out_eval == 0))
        raise AssertionError(
            f"{what_eval} is not the identity ({frac:.1%} of the entries are 0, the rest "
            "changed by up to a factor "
            f"{float(np.max(np.abs(out_eval[x != 0] / x[x != 0]))):.3g}). In evaluation "
            "dropout must be switched off: return x unchanged. Inverted dropout already made "
            "the expected training output equal to x, so no rescaling is needed at test time.")
    passed("dropout_forward: right mask, 1/(1-p) scaling, identity in eval.")


# -- Monte Carlo dropout -------------------------------------------------------------

def _mc_model() -> tuple[Sequential, np.ndarray, float]:
    """A small net whose output is linear in its only dropout mask, and 6 inputs."""
    rng = np.random.default_rng(222)
    p = 0.4
    model = Sequential(Dense(3, 16, rng=rng), ReLU(), Dropout(p, rng=rng), Dense(16, 1, rng=rng))
    x = rng.standard_normal((6, 3))
    return model, x, p


def _mc_reference(model: Sequential, x: np.ndarray, p: float) -> tuple[np.ndarray, np.ndarray]:
    r"""Exact mean and std over masks of ``Dense2(ReLU(Dense1(x)) * m / (1 - p))``.

    With hidden units :math:`h_j` and output weights :math:`w_j`, the output is
    :math:`b + \sum_j w_j h_j m_j/(1-p)` with independent :math:`m_j \sim
    \mathrm{Bernoulli}(1-p)`, so its mean is :math:`b + \sum_j w_j h_j` and its
    variance :math:`\sum_j (w_j h_j)^2\, p/(1-p)`.
    """
    first, last = model[0], model[3]
    h = np.maximum(x @ first.weight.value + first.bias.value, 0.0)
    contrib = h * last.weight.value[:, 0]
    mean = contrib.sum(axis=1, keepdims=True) + last.bias.value
    std = np.sqrt((contrib ** 2).sum(axis=1, keepdims=True) * p / (1.0 - p))
    return mean, std


def _flags(model: Layer) -> list[bool]:
    return [m.training for m in model.modules()]


def check_mc_dropout(mc_dropout_predict: Callable[..., tuple]) -> None:
    r"""Check ``mc_dropout_predict(model, x, n_samples) -> (mean, std)``.

    The function must run ``n_samples`` forward passes with dropout active,
    return the per-example mean and standard deviation over those passes (each
    of shape ``(n, 1)``), and leave every layer's ``training`` flag as it found
    it. The model here has one dropout layer right before its last linear
    layer, so the exact mean and standard deviation over all masks are known in
    closed form; 4000 passes must come within sampling error of them.
    """
    what = "mc_dropout_predict(model, x, n_samples)"
    model, x, p = _mc_model()
    weights = model.state_dict()
    ref_mean, ref_std = _mc_reference(model, x, p)
    n_samples = 4000

    for start_in_train in (False, True):
        model.train(start_in_train)
        flags = _flags(model)
        result = run_learner_code(mc_dropout_predict, model, x, n_samples, what=what)
        if not isinstance(result, (tuple, list)) or len(result) != 2:
            raise AssertionError(f"{what} must return two arrays (mean, std), got "
                                 f"{type(result).__name__}")
        if _flags(model) != flags:
            mode = "training" if start_in_train else "evaluation"
            raise AssertionError(
                f"{what} left the model's layers in a different mode: the model was in "
                f"{mode} mode before the call and is not afterwards. Remember every layer's "
                "training flag before switching dropout on, and put them back when you are "
                "done (use try/finally), or the next predict() may be silently stochastic.")
        if any(not np.array_equal(v, model.state_dict()[k]) for k, v in weights.items()):
            raise AssertionError(f"{what} changed the model's weights; it must only run "
                                 "forward passes.")
        mean, std = (np.asarray(r, dtype=np.float64) for r in result)
        for name, arr in (("mean", mean), ("std", std)):
            if arr.shape != ref_mean.shape:
                raise AssertionError(
                    f"{what} returned {name} of shape {arr.shape}, expected {ref_mean.shape} "
                    f"(one value per example, like the model's output). Stack the "
                    f"{n_samples} outputs into an array of shape ({n_samples}, n, 1) and "
                    "reduce over axis 0, the passes.")
        if np.all(std < 1e-12):
            raise AssertionError(
                f"{what} returned std = 0 for every example: all {n_samples} passes gave the "
                "same output, so dropout was switched off. Monte Carlo dropout keeps dropout "
                "ACTIVE at prediction time: call model.train() (not predict(), which runs in "
                "evaluation mode) before the passes, and restore the modes afterwards.")
        tol_mean = 6 * ref_std / np.sqrt(n_samples) + 1e-9
        if np.any(np.abs(mean - ref_mean) > tol_mean):
            worst = float(np.max(np.abs(mean - ref_mean)))
            raise AssertionError(
                f"{what} returned a mean that is off by up to {worst:.3g}, far more than the "
                f"sampling error of {n_samples} passes (about "
                f"{float(np.max(ref_std)) / np.sqrt(n_samples):.2g}). Average the outputs of "
                "the passes, each made with dropout active and the 1/(1-p) scaling.")
        if not np.allclose(std, ref_std, rtol=0.1, atol=0.0):
            if np.allclose(std, ref_std ** 2, rtol=0.2, atol=0.0):
                hint = "It looks like the variance: return its square root, the std."
            else:
                hint = ("Return the standard deviation of the outputs over the passes "
                        "(np.std over axis 0).")
            raise AssertionError(
                f"{what} returned std {np.round(std[:, 0], 4)}, but the exact standard "
                f"deviation over dropout masks is {np.round(ref_std[:, 0], 4)}. {hint}")
    passed("mc_dropout_predict: right mean and std, modes restored.")


# -- input dropout as an L2 penalty (a derivation) -----------------------------------

def _l2_inputs() -> list[tuple[np.ndarray, float]]:
    """Features that are neither centred nor of unit scale, so that the mean square,
    the variance and 1 all differ; and several drop probabilities."""
    rng = np.random.default_rng(232)
    x = rng.normal([0.0, 1.5, -2.0, 0.5], [1.0, 0.5, 2.0, 3.0], size=(40, 4))
    x_small = rng.normal(1.0, 2.0, size=(7, 3))
    return [(x, 0.1), (x, 0.5), (x_small, 0.3)]


def _input_dropout_l2_reference(x: np.ndarray, p: float) -> np.ndarray:
    r""":math:`\lambda_j = \frac{2p}{1-p}\,\frac1n\sum_i x_{ij}^2`.

    For :math:`z_i = \sum_j w_j x_{ij} m_{ij}/(1-p) + b`, the expected squared
    error over masks is :math:`(\hat z_i - y_i)^2 + \frac{p}{1-p}\sum_j w_j^2 x_{ij}^2`;
    averaged over the examples, the extra term is
    :math:`\sum_j \frac{\lambda_j}{2} w_j^2`, chapter 1's ``L2`` with one
    :math:`\lambda_j` per weight.
    """
    return 2.0 * p / (1.0 - p) * np.mean(x ** 2, axis=0)


def _input_dropout_l2_mistakes(x: np.ndarray, p: float) -> list[tuple[np.ndarray, str]]:
    """What the usual slips return for ``(x, p)``, each with the hint that fixes it."""
    m2, var, n = np.mean(x ** 2, axis=0), np.var(x, axis=0), len(x)
    return [
        (p / (1 - p) * m2,
         "You found the extra loss p/(1-p) * sum_j w_j^2 mean_i(x_ij^2); now match it to "
         "chapter 1's penalty L2(lam) = lam/2 * sum_j w_j^2. The 1/2 in lam/2 means lam is "
         "TWICE the coefficient in front of w_j^2."),
        (2 * p * m2,
         "The variance of the inverted-dropout factor m/(1-p) is p/(1-p), not p: "
         "E[(m/(1-p))^2] = 1/(1-p), minus the squared mean 1."),
        (2 * p * (1 - p) * m2,
         "p(1-p) is the variance of the mask m itself; the input is multiplied by m/(1-p), "
         "whose variance is p(1-p)/(1-p)^2 = p/(1-p)."),
        (2 * (1 - p) / p * m2,
         "The factor is upside down: it must grow with p (no dropout, no penalty), so it is "
         "p/(1-p), not (1-p)/p."),
        (2 * p / (1 - p) * var,
         "The penalty weighs w_j^2 by the mean of x_ij^2 over the examples, the raw second "
         "moment, not by the variance of feature j. They agree only for centred features "
         "(such as the standardised house prices on their training split); these are not."),
        (p / (1 - p) * var,
         "Two slips: use the mean of x_ij^2 (not the variance), and lam is twice the "
         "coefficient of w_j^2, because chapter 1's L2(lam) is lam/2 * sum_j w_j^2."),
        (2 * p / (1 - p) * n * m2,
         "The MSE averages over the examples, so the penalty does too: use the mean of "
         "x_ij^2 over the rows, not the sum."),
        (2 * p / (1 - p) * np.sqrt(m2),
         "The penalty is quadratic in x: the noise x_ij (m_ij/(1-p) - 1) w_j has variance "
         "p/(1-p) w_j^2 x_ij^2, so use the mean of x_ij^2, not its square root."),
        (np.full(x.shape[1], 2 * p / (1 - p)),
         "That is the answer for standardised features only (mean of x_ij^2 = 1 on the "
         "training data); these features are not standardised, so compute the mean of "
         "x_ij^2 over the rows for each feature."),
    ]


def check_input_dropout_l2(input_dropout_l2: Callable[..., Any]) -> None:
    r"""Check ``input_dropout_l2(x, p) -> lam``, the L2 strengths equivalent to input dropout.

    A linear regression :math:`z = x \cdot w + b` trained with the mean squared
    error, with inverted dropout of rate ``p`` on its inputs, has on average
    over the masks the loss of the plain model plus
    :math:`\sum_j \frac{\lambda_j}{2} w_j^2` (chapter 1's ``L2`` convention),
    with :math:`\lambda_j = \frac{2p}{1-p}\,\frac1n\sum_i x_{ij}^2`. The
    answer is the array of the :math:`\lambda_j`, one per feature (column of
    ``x``).
    """
    for x, p in _l2_inputs():
        what = f"input_dropout_l2(x, p={p:g}) with x of shape {x.shape}"
        x_before = x.copy()
        result = run_learner_code(input_dropout_l2, x, p, what=what)
        if not np.array_equal(x, x_before):
            raise AssertionError(f"{what} changed x in place; only read it.")
        if isinstance(result, tuple):
            raise AssertionError(f"{what} returned a tuple; return one array of lam_j, one "
                                 "per feature.")
        try:
            lam = np.asarray(result, dtype=np.float64)
        except (TypeError, ValueError):
            raise AssertionError(f"{what} returned {result!r}; return an array of numbers, "
                                 "one lam_j per feature.") from None
        expected = _input_dropout_l2_reference(x, p)
        if lam.shape != expected.shape:
            hint = (" A single number assumes every feature has the same mean square; give "
                    "one lam_j per column of x (average over axis 0, the examples)."
                    if lam.ndim == 0 else " Average over axis 0, the examples.")
            raise AssertionError(f"{what} returned shape {lam.shape}, expected "
                                 f"{expected.shape}: one lam_j per feature.{hint}")
        if np.allclose(lam, expected, rtol=1e-9, atol=1e-12):
            continue
        for candidate, hint in _input_dropout_l2_mistakes(x, p):
            if np.allclose(lam, candidate, rtol=1e-9, atol=1e-12):
                raise AssertionError(f"{what} is wrong: {np.round(lam, 4)}. {hint}")
        raise AssertionError(
            f"{what} returned {np.round(lam, 4)}, expected {np.round(expected, 4)}. Write "
            "the input as x_ij m_ij/(1-p), take the expectation of the squared error over "
            "the masks (mean plus variance), average over the examples and match the extra "
            "term to lam_j/2 * w_j^2.")
    passed("input_dropout_l2: lam_j = 2p/(1-p) * mean_i x_ij^2, chapter 1's L2 per weight.")


__all__ += ["check_input_dropout_l2"]
