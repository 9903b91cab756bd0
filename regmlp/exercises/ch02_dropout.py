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

import itertools
from collections.abc import Callable
from typing import Any

import numpy as np

from ..layers import Dense, Dropout, Layer, ReLU, Sequential
from ._common import (
    as_array,
    assert_close,
    call_pure,
    expect_tuple,
    passed,
    run_learner_code,
)

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
    if np.asarray(result).dtype.kind not in "fO":
        raise AssertionError(f"{what} returned dtype {np.asarray(result).dtype}; it should be a "
                             "float array (multiply x by the mask and by 1 / (1 - p)).")
    return as_array(result, what=f"{what}'s output", shape=shape,
                    hint="dropout keeps the shape of its input (one mask entry per element).")


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
    p = 0.3
    result = call_pure(dropout_forward, x, p, np.random.default_rng(7), training=True,
                       what=what, names=("x",), hint="x * mask / (1 - p), not x *= mask.")
    out = _as_output(result, what, x.shape)
    kept = out != 0
    if kept.all() or not kept.any():
        raise AssertionError(
            f"{what} {'kept' if kept.all() else 'dropped'} every entry of x: one random number "
            "decided for the whole array. Draw one number per entry, rng.random(x.shape).")
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

    # another p and another shape (three axes), so that a hard-coded p or shape is caught
    x2 = _forward_input((30, 10, 100), seed=203)
    out2 = call_pure(dropout_forward, x2, 0.6, np.random.default_rng(9), training=True,
                     what=f"{what} with p=0.6", names=("x",))
    out2 = _as_output(out2, f"{what} with p=0.6", x2.shape)
    _check_training_output(out2, x2, 0.6, f"{what} with p=0.6")

    # p = 0: nothing is dropped, nothing is scaled
    out0 = run_learner_code(dropout_forward, x2, 0.0, np.random.default_rng(10), training=True,
                            what=f"{what} with p=0")
    assert_close(_as_output(out0, f"{what} with p=0", x2.shape), x2, what=f"{what} with p=0",
                 hint="With p = 0 nothing is dropped and 1 / (1 - p) = 1: return x.")

    # evaluation mode: the identity
    what_eval = "dropout_forward(x, p, rng, training=False)"
    out_eval = call_pure(dropout_forward, x, p, np.random.default_rng(7), training=False,
                         what=what_eval, names=("x",))
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


def _mc_nonlinear_model() -> tuple[Sequential, np.ndarray, float]:
    """A net with a ReLU *after* its dropout layer: the mean over masks is not the eval output."""
    rng = np.random.default_rng(223)
    p = 0.25
    model = Sequential(Dense(3, 5, rng=rng), ReLU(), Dropout(p, rng=rng), Dense(5, 4, rng=rng),
                       ReLU(), Dense(4, 1, rng=rng))
    x = 2.0 * rng.standard_normal((5, 3))
    return model, x, p


def _mc_enumerate(model: Sequential, x: np.ndarray,
                  p: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exact mean, std and kurtosis over all ``2**5`` masks of :func:`_mc_nonlinear_model`."""
    d1, d2, d3 = model[0], model[3], model[5]
    h = np.maximum(x @ d1.weight.value + d1.bias.value, 0.0)
    masks = np.array(list(itertools.product([0.0, 1.0], repeat=h.shape[1])))
    prob = np.prod(np.where(masks == 1.0, 1.0 - p, p), axis=1)[:, None, None]
    z = np.maximum((h[None] * masks[:, None, :] / (1.0 - p)) @ d2.weight.value
                   + d2.bias.value, 0.0)
    outs = z @ d3.weight.value + d3.bias.value                  # (masks, n, 1)
    mean = (prob * outs).sum(axis=0)
    var = (prob * (outs - mean) ** 2).sum(axis=0)
    kurt = (prob * (outs - mean) ** 4).sum(axis=0) / np.maximum(var, 1e-300) ** 2
    return mean, np.sqrt(var), kurt


class _Count(Layer):
    """The identity, counting the rows it sees (the passes made, times the batch size)."""

    def __init__(self) -> None:
        super().__init__()
        self.rows = 0

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.rows += len(x)
        return x

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        return grad_out


class _Fails(Layer):
    """A layer whose forward pass raises (a bug deep in a model)."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        raise RuntimeError("this layer fails on purpose (a test of the cleanup)")

    def backward(self, grad_out: np.ndarray) -> np.ndarray:  # pragma: no cover - never reached
        return grad_out


def _flags(model: Layer) -> list[bool]:
    return [m.training for m in model.modules()]


def _restored(model: Layer, flags: list[bool], what: str, situation: str) -> None:
    if _flags(model) != flags:
        before = ", ".join("train" if f else "eval" for f in flags)
        after = ", ".join("train" if f else "eval" for f in _flags(model))
        raise AssertionError(
            f"{what} did not restore the layers' modes {situation}: before the call they were "
            f"[{before}], afterwards [{after}]. Remember every layer's own training flag "
            "(flags = [(m, m.training) for m in model.modules()]) before switching dropout "
            "on, and put each back in a finally block, or the next predict() may be silently "
            "stochastic.")


def check_mc_dropout(mc_dropout_predict: Callable[..., tuple]) -> None:
    r"""Check ``mc_dropout_predict(model, x, n_samples) -> (mean, std)``.

    The function must run ``n_samples`` forward passes with dropout active,
    return the per-example mean and standard deviation over those passes (each
    of shape ``(n, 1)``), and leave every layer's ``training`` flag as it found
    it, even if a forward pass raises. Two models are tried: one with its
    dropout layer right before the last linear layer (the exact mean and standard
    deviation over masks are known in closed form; the model starts in
    evaluation mode), and one with a ReLU after the dropout (the exact moments
    are sums over its 32 masks, and the mean is not the evaluation-mode output;
    the model starts with its layers in mixed modes). 4000 passes must come
    within sampling error of the exact values.
    """
    what = "mc_dropout_predict(model, x, n_samples)"
    n_samples = 4000
    model1, x1, p1 = _mc_model()
    mean1, std1 = _mc_reference(model1, x1, p1)
    model2, x2, p2 = _mc_nonlinear_model()
    mean2, std2, kurt2 = _mc_enumerate(model2, x2, p2)
    # the relative standard error of a sample std is about sqrt((kurtosis - 1) / (4 n))
    std_rtol2 = np.maximum(0.1, 6 * np.sqrt((kurt2 - 1) / (4 * n_samples)))
    cases = [(model1, x1, mean1, std1, 0.1, [False] * 5, "a model in evaluation mode"),
             (model2, x2, mean2, std2, std_rtol2, [True, False, True, False, True, True, False],
              "a model whose layers were in mixed modes")]
    for model, x, ref_mean, ref_std, std_rtol, modes, situation in cases:
        counter = _Count()
        counted = Sequential(model, counter)
        counted.train(False)                     # the wrapper and the counter start in eval
        for m, mode in zip(model.modules(), modes, strict=True):
            m.training = mode
        flags = _flags(counted)
        weights = model.state_dict()
        result = call_pure(mc_dropout_predict, counted, x, n_samples, what=what,
                           names=(None, "x"))
        mean, std = (as_array(r, what=f"{what}'s {name}") for r, name in zip(
            expect_tuple(result, 2, what=what, names="(mean, std)"), ("mean", "std"),
            strict=True))
        _restored(counted, flags, what, f"(on {situation})")
        if any(not np.array_equal(v, model.state_dict()[k]) for k, v in weights.items()):
            raise AssertionError(f"{what} changed the model's weights; it must only run "
                                 "forward passes.")
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
        if not n_samples * len(x) <= counter.rows <= (n_samples + 1) * len(x):
            raise AssertionError(
                f"{what} ran {counter.rows / len(x):g} forward passes, but "
                f"n_samples={n_samples}: run exactly n_samples passes (use the argument, not "
                "a number of your own).")
        tol_mean = 6 * ref_std / np.sqrt(n_samples) + 1e-9
        if np.any(np.abs(mean - ref_mean) > tol_mean):
            worst = float(np.max(np.abs(mean - ref_mean)))
            model.eval()
            eval_out = model.forward(x)
            model.train()
            hint = ("Average the outputs of the passes, each made with dropout active and "
                    "the 1/(1-p) scaling.")
            if np.allclose(mean, eval_out):
                hint = ("Your mean is the evaluation-mode output. With a nonlinearity after "
                        "the dropout layer, the average over masks differs from the output "
                        "with dropout off: return the mean of the stochastic passes.")
            raise AssertionError(
                f"{what} returned a mean that is off by up to {worst:.3g} on {situation}, far "
                f"more than the sampling error of {n_samples} passes (about "
                f"{float(np.max(ref_std)) / np.sqrt(n_samples):.2g}). {hint}")
        if not np.all(np.abs(std - ref_std) <= std_rtol * ref_std):
            if np.allclose(std, ref_std ** 2, rtol=0.2, atol=0.0):
                hint = "It looks like the variance: return its square root, the std."
            else:
                hint = ("Return the standard deviation of the outputs over the passes "
                        "(np.std over axis 0).")
            raise AssertionError(
                f"{what} returned std {np.round(std[:, 0], 4)}, but the exact standard "
                f"deviation over dropout masks is {np.round(ref_std[:, 0], 4)}. {hint}")

    # the modes come back even when a forward pass raises
    failing = Sequential(Dense(3, 4, rng=0), Dropout(0.5, rng=1), _Fails())
    failing.train(False)
    failing[1].training = True
    flags = _flags(failing)
    try:
        run_learner_code(mc_dropout_predict, failing, x1, 5, what=what)
    except AssertionError:
        pass                                     # the error may propagate: that is right
    _restored(failing, flags, what, "when a forward pass raised")
    passed("mc_dropout_predict: right mean and std, every layer's mode restored.")


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
