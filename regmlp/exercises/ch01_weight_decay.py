r"""Checkers for the exercises of chapter 1, *Weight decay*.

* :func:`check_adamw_step` -- one AdamW step with decoupled weight decay
  ("AdamW" that is really Adam with L2 in the gradient is a bug of `DESIGN.md` §7);
* :func:`check_decay_mask` -- which entries of a ``state_dict`` to decay;
* :func:`check_prox_l1_step` -- the proximal (soft-thresholding) L1 step.

Each checker runs the learner's function on small, fixed inputs, compares the
result with an answer computed here independently, and raises ``AssertionError``
with the most likely cause when they differ.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..layers import Dense, LayerNorm, ReLU, Residual, Sequential
from ._common import (
    as_array,
    assert_close,
    call_pure,
    diagnose,
    expect_tuple,
    passed,
    run_learner_code,
)

__all__ = ["check_adamw_step", "check_decay_mask"]


# --------------------------------------------------------------------------
# Exercise: one AdamW step
# --------------------------------------------------------------------------

_BETAS = (0.9, 0.999)
_EPS = 1e-8


def _adam_reference(w: np.ndarray, g: np.ndarray, m: np.ndarray, v: np.ndarray, t: int,
                    lr: float, wd: float, variant: str, betas: tuple[float, float] = _BETAS,
                    eps: float = _EPS) -> tuple[np.ndarray, ...]:
    """One step of AdamW (``variant="adamw"``) or of a known-wrong variant."""
    b1, b2 = betas
    w = w.copy()
    if variant == "coupled":                     # Adam with L2 in the gradient
        g = g + wd * w
    m = b1 * m + (1 - b1) * g
    v = b2 * v + (1 - b2) * g * g
    if variant == "no_bias_correction":
        step = lr * m / (np.sqrt(v) + eps)
    elif variant == "eps_inside":
        step = lr * (m / (1 - b1 ** t)) / np.sqrt(v / (1 - b2 ** t) + eps)
    else:
        tt = t + 1 if variant == "t_plus_one" else t
        step = lr * (m / (1 - b1 ** tt)) / (np.sqrt(v / (1 - b2 ** tt)) + eps)
    if variant in ("adamw", "no_bias_correction", "t_plus_one", "eps_inside"):
        w_new = w - step - lr * wd * w
    elif variant == "decay_without_lr":
        w_new = w - step - wd * w
    elif variant == "decay_after_step":
        w_new = (w - step) * (1 - lr * wd)
    elif variant == "coupled":
        w_new = w - step
    else:  # pragma: no cover - a typo in this module
        raise ValueError(variant)
    return w_new, m, v


def _adamw_case(shape: tuple[int, ...] = (2, 3)) -> tuple[np.ndarray, list[np.ndarray]]:
    """Weights and five gradients whose scales differ by 1000x between coordinates."""
    rng = np.random.default_rng(2019)
    if shape == (2, 3):
        w0 = np.array([[1.5, -2.0, 0.5], [0.8, -0.3, 2.5]])
        scales = np.array([[10.0, 0.1, 1.0], [0.01, 3.0, 0.1]])
    else:
        w0 = rng.normal(size=shape) * 2.0
        scales = 10.0 ** rng.integers(-2, 2, size=shape)
    grads = [scales * rng.normal(size=w0.shape) for _ in range(5)]
    return w0, grads


# The settings the checker tries: the defaults first without and with decay, then every
# argument changed (and another shape), so that a value typed into the function shows.
_ADAMW_SETTINGS = [
    dict(lr=0.1, wd=0.0, betas=_BETAS, eps=_EPS, shape=(2, 3)),
    dict(lr=0.1, wd=0.5, betas=_BETAS, eps=_EPS, shape=(2, 3)),
    dict(lr=0.05, wd=0.25, betas=(0.8, 0.99), eps=1e-3, shape=(4,)),
]


def _trajectory(step_fn: Callable, setting: dict, what: str,
                learner: bool) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Run five steps from the setting's case; each state is ``(w, m, v)`` after a step."""
    w, grads = _adamw_case(setting["shape"])
    m, v = np.zeros_like(w), np.zeros_like(w)
    states = []
    for t, g in enumerate(grads, start=1):
        args = (w.copy(), g.copy(), m.copy(), v.copy(), t)
        if learner:
            out = run_learner_code(step_fn, *args, what=what, lr=setting["lr"],
                                   betas=setting["betas"], eps=setting["eps"],
                                   weight_decay=setting["wd"])
            out = tuple(as_array(o, what=f"the returned {name}", shape=w.shape)
                        for o, name in zip(expect_tuple(out, 3, what=what, names="(w, m, v)"),
                                           "wmv", strict=True))
        else:
            out = step_fn(*args, setting["lr"], setting["wd"])
        w, m, v = out
        states.append(out)
    return states


def _same(a: list, b: list) -> bool:
    return all(np.allclose(x, y, rtol=1e-7, atol=1e-12)
               for sa, sb in zip(a, b, strict=True) for x, y in zip(sa, sb, strict=True))


_EPS_INSIDE = ("eps is inside the square root: PyTorch divides by sqrt(v_hat) + eps, not by "
               "sqrt(v_hat + eps). The two differ most where v_hat is small.")


def _settings_text(setting: dict) -> str:
    return (f"lr={setting['lr']}, betas={setting['betas']}, eps={setting['eps']:g}, "
            f"weight_decay={setting['wd']}")


def check_adamw_step(adamw_step: Callable[..., tuple]) -> None:
    r"""Check ``adamw_step(w, g, m, v, t, *, lr, betas, eps, weight_decay) -> (w, m, v)``.

    One step of AdamW (PyTorch's ``torch.optim.AdamW``) from weights ``w``,
    gradient ``g``, moment estimates ``m`` and ``v`` and step number ``t``
    (1 for the first step): the moments see only ``g``; the weights shrink by
    :math:`\eta\lambda w` (from the old ``w``) besides the Adam step. The
    checker runs five steps with ``weight_decay=0`` (plain Adam), five with
    ``weight_decay=0.5`` and ``lr=0.1``, then five with every argument changed
    (``betas=(0.8, 0.99)``, ``eps=1e-3``, ``lr=0.05``, ``weight_decay=0.25``) on
    a one-dimensional ``w``.
    """
    what = "adamw_step(w, g, m, v, t, ...)"

    def reference(variant: str, setting: dict, **changes: Any) -> list:
        betas, eps = changes.get("betas", setting["betas"]), changes.get("eps", setting["eps"])
        return _trajectory(lambda w, g, m, v, t, lr, wd: _adam_reference(
            w, g, m, v, t, lr, wd, variant, betas, eps), setting, what, learner=False)

    plain, decayed, changed = _ADAMW_SETTINGS
    match = _same

    # 1. Without decay AdamW is Adam: get the Adam part right first.
    got = _trajectory(adamw_step, plain, what, learner=True)
    if not _same(got, reference("adamw", plain)):
        diagnose(got, [
            (lambda: reference("no_bias_correction", plain),
             "With weight_decay=0 your step is Adam without bias correction. Divide m by "
             "(1 - beta1**t) and v by (1 - beta2**t) before using them: m and v start at "
             "0, so the first steps would otherwise be far too small."),
            (lambda: reference("t_plus_one", plain),
             "With weight_decay=0 your bias correction uses t + 1: t is already the "
             "number of the step being taken (1 for the first step), so use "
             "1 - beta1**t and 1 - beta2**t."),
            (lambda: reference("eps_inside", plain), _EPS_INSIDE),
        ], what=what, match=match)
        _first_difference(got, reference("adamw", plain), "With weight_decay=0",
                          "Without decay this is plain Adam: m = beta1*m + (1-beta1)*g; "
                          "v = beta2*v + (1-beta2)*g**2; w -= lr * m_hat / (sqrt(v_hat) + eps), "
                          "with m_hat = m / (1 - beta1**t) and v_hat = v / (1 - beta2**t).")

    # 2. With decay: the decay is decoupled from the gradient statistics.
    got = _trajectory(adamw_step, decayed, what, learner=True)
    if not _same(got, reference("adamw", decayed)):
        diagnose(got, [
            (lambda: reference("coupled", decayed),
             "This is Adam with L2 in the gradient (g + weight_decay * w), not AdamW: the "
             "decay then passes through m and v and is divided by sqrt(v_hat), so weights "
             "with large gradients are barely decayed. In AdamW, m and v see only the raw g, "
             "and the weights shrink separately: w = w - lr * weight_decay * w - lr * m_hat / "
             "(sqrt(v_hat) + eps)."),
            (lambda: reference("decay_without_lr", decayed),
             "The decay is not multiplied by the learning rate: PyTorch's AdamW shrinks by "
             "lr * weight_decay * w per step (w *= 1 - lr * weight_decay), not "
             "weight_decay * w."),
            (lambda: reference("decay_after_step", decayed),
             "The decay is applied to the weights *after* the Adam step. Both terms use the "
             "old weights: w_new = w - lr * weight_decay * w - lr * m_hat / (sqrt(v_hat) + eps)"
             " (as PyTorch does by shrinking w first, then taking the Adam step)."),
        ], what=f"{what} with weight_decay > 0", match=match)
        _first_difference(got, reference("adamw", decayed), "With weight_decay=0.5",
                          "m and v must not see the decay; the weights get "
                          "w - lr * weight_decay * w - lr * m_hat / (sqrt(v_hat) + eps).")

    # 3. Every argument changed: each must be used as given.
    got = _trajectory(adamw_step, changed, what, learner=True)
    if not _same(got, reference("adamw", changed)):
        where = f"{what} with {_settings_text(changed)}"
        diagnose(got, [
            (lambda: reference("adamw", changed, betas=_BETAS),
             "It ignores the betas argument (it uses 0.9 and 0.999 whatever it is given): "
             "unpack beta1, beta2 = betas."),
            (lambda: reference("adamw", changed, eps=_EPS),
             "It ignores the eps argument (it uses 1e-8 whatever it is given)."),
            (lambda: reference("adamw", changed, betas=_BETAS, eps=_EPS),
             "It ignores both betas and eps: use the arguments, not their default values."),
            (lambda: reference("eps_inside", changed), _EPS_INSIDE),
        ], what=where, match=match)
        _first_difference(got, reference("adamw", changed), f"With {_settings_text(changed)}",
                          "Use every argument as given (lr, betas, eps, weight_decay), and "
                          "make the step work for a w of any shape.")
    passed("AdamW's decoupled weight decay, over three runs of five steps.")


def _first_difference(got: list, want: list, when: str, hint: str) -> None:
    """Report the first step and array (m, v, then w) where ``got`` leaves ``want``."""
    for k, (sg, sw) in enumerate(zip(got, want, strict=True), start=1):
        for name, a, b in zip("mvw", (sg[1], sg[2], sg[0]), (sw[1], sw[2], sw[0]), strict=True):
            assert_close(a, b, what=f"{when}, {name} after step {k}", hint=hint, atol=1e-12)


# --------------------------------------------------------------------------
# Exercise: which parameters to decay
# --------------------------------------------------------------------------

def _mask_models() -> list[Sequential]:
    """The chapter's model, and a second one laid out differently (LayerNorm first, a
    Dense layer without bias in the middle, shapes of its own)."""
    rng = np.random.default_rng(7)
    first = Sequential(
        Dense(5, 8, rng=rng), LayerNorm(8), ReLU(),
        Residual(Sequential(LayerNorm(8), Dense(8, 8, rng=rng), ReLU())),
        Dense(8, 1, bias=False, rng=rng),
    )
    second = Sequential(
        LayerNorm(3), Dense(3, 6, bias=False, rng=rng), ReLU(),
        Residual(Sequential(Dense(6, 6, rng=rng), LayerNorm(6))), Dense(6, 2, rng=rng),
    )
    return [first, second]


def check_decay_mask(decay_mask: Callable[[dict[str, np.ndarray]], dict[str, bool]]) -> None:
    """Check ``decay_mask(state) -> {name: bool}`` for a model's ``state_dict()``.

    The answer must say ``True`` for exactly the weight matrices of the Dense
    layers, and ``False`` for every bias and every LayerNorm gain and shift,
    knowing only each entry's name and array (no ``Parameter.decay`` flags).
    Every value must be ``True`` or ``False``, and ``state`` must not change.
    Two models are tried.
    """
    what = "decay_mask(state)"
    for model in _mask_models():
        named = model.named_parameters()
        want = {name: p.decay for name, p in named}       # the package's flags
        state = model.state_dict()
        result = call_pure(decay_mask, state, what=what, names=("state",),
                           hint="build a new dict, e.g. {name: ... for name, value in "
                                "state.items()}.")
        if not isinstance(result, dict):
            raise AssertionError(f"{what} must return a dict {{name: bool}}, "
                                 f"got {type(result).__name__}.")
        missing, extra = sorted(set(want) - set(result)), sorted(set(result) - set(want))
        if missing or extra:
            raise AssertionError(f"{what} must have exactly the keys of state: missing "
                                 f"{missing}, unexpected {extra}.")
        for name in want:
            if not isinstance(result[name], (bool, np.bool_)):
                raise AssertionError(
                    f"{what}[{name!r}] is {_describe(result[name])}; every value must be "
                    "True or False (one decision per array, e.g. value.ndim >= 2, "
                    "not an array of element-wise comparisons).")
        kinds = {}
        for (name, p), (_, layer) in zip(named, _owners(model), strict=True):
            kinds[name] = ("a LayerNorm " + ("gain" if name.endswith("weight") else "shift")
                           if isinstance(layer, LayerNorm)
                           else "a Dense " + ("weight matrix" if p.value.ndim == 2 else "bias"))
        wrong = {name: bool(result[name]) for name in want if bool(result[name]) != want[name]}
        if wrong:
            _explain_mask(what, wrong, kinds)
    passed("only the weight matrices are decayed (two models).")


def _describe(value: Any) -> str:
    if isinstance(value, np.ndarray):
        return f"an ndarray of shape {value.shape}"
    return f"{type(value).__name__} {value!r}"


def _explain_mask(what: str, wrong: dict[str, bool], kinds: dict[str, str]) -> None:
    listed = ", ".join(f"{n!r} ({kinds[n]})" for n in wrong)
    reasons = []
    if any(flag and "gain" in kinds[n] for n, flag in wrong.items()):
        reasons.append("A LayerNorm gain is called 'weight' but is not a weight matrix: "
                       "decaying it pulls the gain toward 0 and fights the normalisation. "
                       "Decide by the array's shape, not its name.")
    if any(flag and "gain" not in kinds[n] for n, flag in wrong.items()):
        reasons.append("Biases and LayerNorm shifts are not decayed: pulling them toward 0 "
                       "only moves the outputs toward 0, it does not make the function "
                       "simpler.")
    if any(not flag for flag in wrong.values()):
        reasons.append("Weight matrices are the parameters weight decay is for: they must be "
                       "decayed, whatever their position and shape.")
    reasons.append("The rule: decay exactly the arrays with 2 or more dimensions.")
    raise AssertionError(f"{what} is wrong for {listed}. {' '.join(reasons)}")


def _owners(model: Sequential) -> list[tuple[str, object]]:
    """For each named parameter, the layer that owns it (same order as named_parameters)."""
    owners = []
    for module in model.modules():
        owners += [(name, module) for name in module._params]
    return owners


# --------------------------------------------------------------------------
# Exercise: the proximal (soft-thresholding) L1 step
# --------------------------------------------------------------------------

__all__ += ["check_prox_l1_step"]


def _prox_case() -> tuple[np.ndarray, np.ndarray, float, float]:
    """Weights of both signs, some of them landing within the threshold after the step."""
    w = np.array([[0.8, -0.6, 0.045, -0.04, 0.031],
                  [0.01, 0.3, -0.3, 0.0, 0.12]])
    grad = np.array([[1.0, -2.0, 0.4, -0.3, 0.0],
                     [1.0, 3.0, -0.5, 0.0, 1.5]])
    return w, grad, 0.05, 0.6          # threshold lr * lam = 0.03


def _soft_threshold(z: np.ndarray, t: float) -> np.ndarray:
    return np.sign(z) * np.maximum(np.abs(z) - t, 0.0)


def check_prox_l1_step(prox_l1_step: Callable[..., np.ndarray]) -> None:
    r"""Check ``prox_l1_step(w, grad, lr, lam) -> new w``.

    One proximal-gradient (ISTA) step for :math:`L(w) + \lambda\lVert w\rVert_1`:
    :math:`z = w - \eta\nabla L`, then soft-thresholding
    :math:`\mathrm{sign}(z)\max(|z| - \eta\lambda, 0)`; the coordinates with
    :math:`|z| \le \eta\lambda` must be exactly zero, and ``w`` must not change.
    """
    what = "prox_l1_step(w, grad, lr, lam)"
    w, grad, lr, lam = _prox_case()
    t = lr * lam
    w_arg, grad_arg = w.copy(), grad.copy()
    got = run_learner_code(prox_l1_step, w_arg, grad_arg, lr, lam, what=what)
    if not (np.array_equal(w_arg, w) and np.array_equal(grad_arg, grad)):
        raise AssertionError(f"{what} changed w or grad in place. Compute z = w - lr * grad "
                             "as a new array and return a new array.")
    if got is None:
        raise AssertionError(f"{what} returned None: return the new weights.")
    got = np.asarray(got, dtype=float)
    if got.shape != w.shape:
        raise AssertionError(f"{what} returned shape {got.shape}, expected {w.shape}: one new "
                             "value per weight.")
    z = w - lr * grad
    want = _soft_threshold(z, t)
    zeros = np.abs(z) <= t
    if np.allclose(got, want, rtol=1e-12, atol=1e-12):
        if np.any(got[zeros] != 0.0):
            raise AssertionError(
                f"{what} is right up to rounding, but the weights with |z| <= lr * lam are "
                f"not exactly zero (largest {np.max(np.abs(got[zeros])):.1e}). Exact zeros "
                "are the point of the proximal step: compute max(|z| - lr * lam, 0) and "
                "multiply by sign(z), rather than subtracting a clipped value in a way "
                "that leaves rounding errors.")
        passed("the proximal L1 step: gradient step, then soft-thresholding to exact zeros.")
        return
    diagnoses = [
        (w - lr * (grad + lam * np.sign(w)),
         "This is the subgradient step w - lr * (grad + lam * sign(w)): it moves every weight "
         "by lr * lam toward zero and jumps across zero instead of stopping there. The "
         "proximal step takes the gradient step on the data loss alone, z = w - lr * grad, "
         "then sets u = sign(z) * max(|z| - lr * lam, 0)."),
        (z - t * np.sign(z),
         "You subtracted lr * lam * sign(z) from z: that is right for |z| > lr * lam, but a "
         "weight with |z| <= lr * lam crosses zero instead of stopping at it. The minimiser "
         "of (u - z)**2 / 2 + lr * lam * |u| is u = 0 for those: use max(|z| - lr * lam, 0)."),
        (_soft_threshold(w, t) - lr * grad,
         "You thresholded w and then took the gradient step. The order is the other way "
         "round: first z = w - lr * grad, then soft-threshold z (the proximal operator acts "
         "on the point the gradient step reached)."),
        (np.where(np.abs(z) > t, z, 0.0),
         "This is hard thresholding: you zeroed the small weights but left the others at z. "
         "Soft thresholding also shrinks every surviving weight by lr * lam toward zero: "
         "u = sign(z) * max(|z| - lr * lam, 0)."),
        (_soft_threshold(z, lam),
         "The threshold is lam, but it must be lr * lam: the penalty's strength is scaled by "
         "the step size, exactly as the gradient step is."),
        (_soft_threshold(z, lr * lam / 2),
         "The threshold is lr * lam / 2. The penalty here is lam * |w| (no 1/2), so the "
         "proximal step shrinks by lr * lam."),
        (_soft_threshold(z, 2 * lr * lam),
         "The threshold is 2 * lr * lam. Minimising (u - z)**2 / 2 + lr * lam * |u| gives "
         "the threshold lr * lam."),
        (np.maximum(z - t, 0.0),
         "Negative weights all became zero: max(z - lr * lam, 0) is right only for z > 0. "
         "Work with the magnitude and restore the sign: sign(z) * max(|z| - lr * lam, 0)."),
        (np.maximum(np.abs(z) - t, 0.0),
         "The result lost the signs of the weights: multiply max(|z| - lr * lam, 0) by "
         "sign(z)."),
        (_soft_threshold(w, t),
         "You soft-thresholded w but forgot the gradient step on the data loss: first "
         "z = w - lr * grad, then threshold z."),
    ]
    for candidate, message in diagnoses:
        if np.allclose(got, candidate, rtol=1e-10, atol=1e-12):
            raise AssertionError(f"{what} is wrong. {message}")
    assert_close(got, want, what=f"{what}'s result",
                 hint="z = w - lr * grad, then sign(z) * max(|z| - lr * lam, 0).",
                 rtol=1e-12, atol=1e-12)
