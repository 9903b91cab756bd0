r"""Checkers for the exercises of chapter 2, *Dropout*.

* :func:`check_dropout_forward` -- ``dropout_forward(x, p, rng, training=True)``,
  inverted dropout: drop each entry with probability ``p``, scale the survivors
  by :math:`1/(1-p)`, and be the identity when ``training`` is False (the first
  two dropout bugs of DESIGN §7: no scaling, still active in evaluation);
* :func:`check_dropout_backward` -- ``dropout_backward(grad_out, mask, p)``,
  the gradient through the same mask and scale (the third: a backward that
  ignores the mask);
* :func:`check_mc_dropout` -- ``mc_dropout_predict(model, x, n_samples)``,
  the mean and standard deviation of ``n_samples`` stochastic forward passes
  (Monte Carlo dropout), leaving the model's modes as they were.

The references are computed here from the definitions, independently of
``regmlp.layers.Dropout``: the backward one by central differences of the
forward pass, the Monte Carlo one in closed form (dropout right before the last
linear layer makes the output linear in the mask, so its mean and variance over
masks are exact sums).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import numpy as np

from ..gradcheck import numerical_gradient
from ..layers import Dense, Dropout, Layer, ReLU, Sequential
from ._common import (
    as_array,
    assert_close,
    call_pure,
    diagnose,
    expect_tuple,
    passed,
    run_learner_code,
)

__all__ = ["check_dropout_forward", "check_dropout_backward", "check_mc_dropout"]


# -- the forward pass ---------------------------------------------------------------

def _forward_input(shape: tuple[int, int] = (400, 250), seed: int = 202) -> np.ndarray:
    """Entries of size 0.5 to 1.5 with random signs: never 0, so ``out != 0`` is the mask."""
    rng = np.random.default_rng(seed)
    return rng.uniform(0.5, 1.5, shape) * rng.choice([-1.0, 1.0], shape)


def _as_output(result: Any, what: str, shape: tuple[int, ...]) -> np.ndarray:
    if isinstance(result, tuple):
        raise AssertionError(f"{what} returned a tuple of {len(result)} items; return only the "
                             "output array (the backward exercise gets the mask separately).")
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


# -- the backward pass --------------------------------------------------------------

def _backward_cases() -> list[tuple[np.ndarray, np.ndarray, np.ndarray, float]]:
    """``(x, grad_out, mask, p)``: p = 0.4 on a matrix, then p = 0.75 on a 3-d array."""
    rng = np.random.default_rng(212)
    cases = []
    for shape, p in (((6, 5), 0.4), ((3, 4, 2), 0.75)):
        x = rng.standard_normal(shape)
        grad_out = rng.standard_normal(shape)
        mask = rng.random(shape) >= p
        mask.flat[0], mask.flat[1] = True, False       # at least one kept and one dropped
        cases.append((x, grad_out, mask, p))
    return cases


def check_dropout_backward(dropout_backward: Callable[..., np.ndarray]) -> None:
    r"""Check ``dropout_backward(grad_out, mask, p) -> grad_in``.

    ``mask`` is the boolean keep-mask of the forward pass
    ``out = x * mask / (1 - p)``. The reference is the numerical gradient of
    ``sum(grad_out * forward(x))`` with respect to ``x``; two cases (``p`` of 0.4
    and 0.75, two shapes) are tried.
    """
    for x, grad_out, mask, p in _backward_cases():
        what = f"dropout_backward(grad_out, mask, p) with p={p}"
        result = call_pure(dropout_backward, grad_out, mask, p, what=what,
                           names=("grad_out", "mask"), hint="grad_out * mask / (1 - p).")
        if isinstance(result, tuple):
            raise AssertionError(f"{what} returned a tuple; return only the gradient with "
                                 "respect to the input (dropout has no parameters).")

        def loss(v: np.ndarray, grad_out: np.ndarray = grad_out, mask: np.ndarray = mask,
                 p: float = p) -> float:
            return float(np.sum(grad_out * (v * mask / (1.0 - p))))

        expected = numerical_gradient(loss, x.copy())
        dx = as_array(result, what=what, shape=expected.shape, hint="the shape of grad_out.")
        if np.allclose(dx, expected, rtol=1e-6, atol=1e-8):
            continue
        scale = 1.0 / (1.0 - p)
        diagnose(dx, [
            (grad_out, "It returns grad_out unchanged: it ignores the mask. An entry that was "
                       "dropped did not affect the output, so its gradient is 0; return "
                       "grad_out * mask / (1 - p)."),
            (grad_out * scale, "It ignores the mask: the gradient of a dropped entry must be "
                               "0, because that entry did not affect the output. Multiply by "
                               "the mask as well: grad_out * mask / (1 - p)."),
            (grad_out * mask, "The mask is right but the 1 / (1 - p) is missing: the forward "
                              "pass multiplied each kept entry by 1 / (1 - p), so the backward "
                              "pass must too (chain rule)."),
            (grad_out * ~mask * scale, "You used the dropped entries instead of the kept "
                                       "ones: mask is True where the entry was KEPT."),
            (grad_out * mask * (1 - p), "Divide by 1 - p rather than multiplying by it."),
            (grad_out * mask / p, "You divided by p; divide by the keep probability 1 - p."),
            (grad_out * mask / 0.6, "You divided by 0.6, the 1 - p of the first case: use the "
                                    "p you are given."),
        ], what=what, rtol=1e-9, atol=1e-12)
        assert_close(dx, expected, what=what, rtol=1e-6, atol=1e-8,
                     hint="The forward pass is out = x * mask / (1 - p), so by the chain rule "
                          "grad_in = grad_out * mask / (1 - p).")
    passed("dropout_backward agrees with finite differences (two cases).")


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
