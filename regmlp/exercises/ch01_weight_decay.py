r"""Checkers for the exercises of chapter 1, *Weight decay*.

* :func:`check_l2_penalty` -- the value and gradient of the L2 penalty
  :math:`\frac{\lambda}{2}\sum\theta^2` over the decayed parameters only
  (decaying biases and LayerNorm parameters is a bug of DESIGN §7);
* :func:`check_adamw_step` -- one AdamW step with decoupled weight decay
  ("AdamW" that is really Adam with L2 in the gradient is a bug of DESIGN §7);
* :func:`check_decay_mask` -- which entries of a ``state_dict`` to decay.

Each checker runs the learner's function on small, fixed inputs, compares the
result with an answer computed here independently, and raises ``AssertionError``
with the most likely cause when they differ.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from ..layers import Dense, LayerNorm, Parameter, ReLU, Residual, Sequential
from ._common import assert_close, passed, run_learner_code

__all__ = ["check_l2_penalty", "check_adamw_step", "check_decay_mask"]


# --------------------------------------------------------------------------
# Exercise: the L2 penalty, its value and its gradient
# --------------------------------------------------------------------------

def _penalty_params() -> list[Parameter]:
    """A Dense weight and bias, a LayerNorm gain and shift, and a last weight."""
    rng = np.random.default_rng(1992)
    return [
        Parameter(rng.normal(size=(3, 2))),                      # 0.weight
        Parameter(rng.normal(size=2) + 1.0, decay=False),        # 0.bias
        Parameter(1.0 + 0.1 * rng.normal(size=2), decay=False),  # LayerNorm gain
        Parameter(0.3 * rng.normal(size=2), decay=False),        # LayerNorm shift
        Parameter(rng.normal(size=(2, 1))),                      # 2.weight
    ]


def check_l2_penalty(l2_penalty: Callable[[list[Parameter], float], tuple]) -> None:
    r"""Check ``l2_penalty(params, lam) -> (value, grads)``.

    ``value`` is :math:`\frac{\lambda}{2}\sum\theta^2` over the parameters with
    ``decay=True``; ``grads`` is a list with one array per parameter, in order:
    :math:`\lambda\theta` for a decayed parameter, zeros for the others. The
    parameters' ``.value`` and ``.grad`` must not change.
    """
    what = "l2_penalty(params, lam)"
    lam = 0.3
    params = _penalty_params()
    values = [p.value.copy() for p in params]
    for p in params:
        p.grad[...] = 0.5                        # a gradient already there must stay
    result = run_learner_code(l2_penalty, params, lam, what=what)
    if any(not np.array_equal(p.value, v) for p, v in zip(params, values, strict=True)):
        raise AssertionError(f"{what} changed a parameter's .value. It must only compute "
                             "the penalty and its gradient; the optimizer changes the weights.")
    if any(not np.all(p.grad == 0.5) for p in params):
        raise AssertionError(f"{what} changed a parameter's .grad. Return the gradients in a "
                             "new list instead (fit adds them to .grad itself).")
    if not isinstance(result, (tuple, list)) or len(result) != 2:
        raise AssertionError(f"{what} must return a pair (value, grads), "
                             f"got {type(result).__name__}.")
    value, grads = result
    if not isinstance(grads, (tuple, list)) or len(grads) != len(params):
        got = len(grads) if isinstance(grads, (tuple, list)) else type(grads).__name__
        raise AssertionError(f"grads must be a list with one array per parameter "
                             f"({len(params)} here, zeros for decay=False), got {got}.")
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise AssertionError(f"value must be a number, got {type(value).__name__}.") from None

    decayed = [p.decay for p in params]
    sq_decayed = sum(float(np.sum(v * v)) for v, d in zip(values, decayed, strict=True) if d)
    sq_all = sum(float(np.sum(v * v)) for v in values)
    want_value = 0.5 * lam * sq_decayed
    if not math.isclose(value, want_value, rel_tol=1e-9):
        diagnoses = [
            (0.5 * lam * sq_all, "It includes parameters with decay=False (biases, LayerNorm "
             "gains and shifts). Skip every parameter whose .decay is False: decaying a bias "
             "or a LayerNorm gain is not regularisation, it only pulls them toward 0."),
            (lam * sq_decayed, "It is twice the right value: the penalty is (lam/2) * "
             "sum(theta**2), with the 1/2 that makes its gradient exactly lam * theta."),
            (lam * sq_all, "It is missing the 1/2 of (lam/2) * sum(theta**2), and it also "
             "includes parameters with decay=False (biases, LayerNorm parameters)."),
        ]
        for candidate, message in diagnoses:
            if math.isclose(value, candidate, rel_tol=1e-9):
                raise AssertionError(f"value is wrong ({value:.6g}, expected {want_value:.6g}). "
                                     f"{message}")
        raise AssertionError(f"value is wrong ({value:.6g}, expected {want_value:.6g}). It "
                             "should be (lam/2) times the sum of the squares of every entry "
                             "of every parameter with decay=True.")

    for i, (p, g) in enumerate(zip(params, grads, strict=True)):
        g = np.asarray(g, dtype=float)
        if g.shape != p.shape:
            raise AssertionError(f"grads[{i}] has shape {g.shape}, expected the shape of "
                                 f"its parameter {p.shape}.")
        if not p.decay:
            if np.allclose(g, lam * p.value):
                raise AssertionError(
                    f"grads[{i}] belongs to a parameter with decay=False (a bias or a "
                    "LayerNorm gain/shift) and must be zeros, but you gave it lam * theta: "
                    "the penalty does not apply to it, so neither does its gradient.")
            assert_close(g, np.zeros(p.shape), what=f"grads[{i}]",
                         hint="Its parameter has decay=False: its gradient must be zeros.")
            continue
        if np.allclose(g, 2 * lam * p.value):
            raise AssertionError(f"grads[{i}] is 2 * lam * theta, twice the right gradient: "
                                 "d/dtheta of (lam/2) * theta**2 is lam * theta.")
        assert_close(g, lam * p.value, what=f"grads[{i}]",
                     hint="The gradient of (lam/2) * sum(theta**2) is lam * theta.")
    passed("L2 penalty and gradient, decayed parameters only.")


# --------------------------------------------------------------------------
# Exercise: one AdamW step
# --------------------------------------------------------------------------

_BETAS = (0.9, 0.999)
_EPS = 1e-8


def _adam_reference(w: np.ndarray, g: np.ndarray, m: np.ndarray, v: np.ndarray, t: int,
                    lr: float, wd: float, variant: str) -> tuple[np.ndarray, ...]:
    """One step of AdamW (``variant="adamw"``) or of a known-wrong variant."""
    b1, b2 = _BETAS
    w = w.copy()
    if variant == "coupled":                     # Adam with L2 in the gradient
        g = g + wd * w
    m = b1 * m + (1 - b1) * g
    v = b2 * v + (1 - b2) * g * g
    if variant == "no_bias_correction":
        step = lr * m / (np.sqrt(v) + _EPS)
    else:
        tt = t + 1 if variant == "t_plus_one" else t
        step = lr * (m / (1 - b1 ** tt)) / (np.sqrt(v / (1 - b2 ** tt)) + _EPS)
    if variant in ("adamw", "no_bias_correction", "t_plus_one"):
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


def _adamw_case() -> tuple[np.ndarray, list[np.ndarray]]:
    """Weights and five gradients whose scales differ by 100x between coordinates."""
    rng = np.random.default_rng(2019)
    w0 = np.array([[1.5, -2.0, 0.5], [0.8, -0.3, 2.5]])
    scales = np.array([[10.0, 0.1, 1.0], [0.01, 3.0, 0.1]])
    grads = [scales * rng.normal(size=w0.shape) for _ in range(5)]
    return w0, grads


def _trajectory(step_fn: Callable, lr: float, wd: float, what: str,
                learner: bool) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Run five steps from the fixed case; each state is ``(w, m, v)`` after a step."""
    w, grads = _adamw_case()
    m, v = np.zeros_like(w), np.zeros_like(w)
    states = []
    for t, g in enumerate(grads, start=1):
        args = (w.copy(), g.copy(), m.copy(), v.copy(), t)
        kwargs = {"lr": lr, "betas": _BETAS, "eps": _EPS, "weight_decay": wd}
        if learner:
            out = run_learner_code(step_fn, *args, what=what, **kwargs)
            if not isinstance(out, (tuple, list)) or len(out) != 3:
                raise AssertionError(f"{what} must return a triple (w, m, v) of new arrays, "
                                     f"got {type(out).__name__}.")
            out = tuple(np.asarray(o, dtype=float) for o in out)
            for name, arr in zip("wmv", out, strict=True):
                if arr.shape != w.shape:
                    raise AssertionError(f"the returned {name} has shape {arr.shape}, "
                                         f"expected {w.shape}.")
        else:
            out = step_fn(*args, lr, wd)
        w, m, v = out
        states.append(out)
    return states


def _same(a: list, b: list) -> bool:
    return all(np.allclose(x, y, rtol=1e-7, atol=1e-12)
               for sa, sb in zip(a, b, strict=True) for x, y in zip(sa, sb, strict=True))


def check_adamw_step(adamw_step: Callable[..., tuple]) -> None:
    r"""Check ``adamw_step(w, g, m, v, t, *, lr, betas, eps, weight_decay) -> (w, m, v)``.

    One step of AdamW (PyTorch's ``torch.optim.AdamW``) from weights ``w``,
    gradient ``g``, moment estimates ``m`` and ``v`` and step number ``t``
    (1 for the first step): the moments see only ``g``; the weights shrink by
    :math:`\eta\lambda w` (from the old ``w``) besides the Adam step. The
    checker runs five steps, first with ``weight_decay=0`` (plain Adam), then
    with ``weight_decay=0.5`` and ``lr=0.1``.
    """
    what = "adamw_step(w, g, m, v, t, ...)"

    def reference(variant: str) -> Callable:
        return lambda w, g, m, v, t, lr, wd: _adam_reference(w, g, m, v, t, lr, wd, variant)

    # 1. Without decay AdamW is Adam: get the Adam part right first.
    lr = 0.1
    got = _trajectory(adamw_step, lr, 0.0, what, learner=True)
    want = _trajectory(reference("adamw"), lr, 0.0, what, learner=False)
    if not _same(got, want):
        if _same(got, _trajectory(reference("no_bias_correction"), lr, 0.0, what, False)):
            raise AssertionError(
                "With weight_decay=0 your step is Adam without bias correction. Divide m by "
                "(1 - beta1**t) and v by (1 - beta2**t) before using them: m and v start at "
                "0, so the first steps would otherwise be far too small.")
        if _same(got, _trajectory(reference("t_plus_one"), lr, 0.0, what, False)):
            raise AssertionError(
                "With weight_decay=0 your bias correction uses t + 1: t is already the "
                "number of the step being taken (1 for the first step), so use "
                "1 - beta1**t and 1 - beta2**t.")
        for k, (sg, sw) in enumerate(zip(got, want, strict=True), start=1):
            for name, a, b in zip("mvw", (sg[1], sg[2], sg[0]), (sw[1], sw[2], sw[0]),
                                  strict=True):
                assert_close(a, b, what=f"With weight_decay=0, {name} after step {k}",
                             hint="Without decay this is plain Adam: m = beta1*m + (1-beta1)*g; "
                                  "v = beta2*v + (1-beta2)*g**2; w -= lr * m_hat / "
                                  "(sqrt(v_hat) + eps), with m_hat = m / (1 - beta1**t) and "
                                  "v_hat = v / (1 - beta2**t).")

    # 2. With decay: the decay is decoupled from the gradient statistics.
    wd = 0.5
    got = _trajectory(adamw_step, lr, wd, what, learner=True)
    want = _trajectory(reference("adamw"), lr, wd, what, learner=False)
    if _same(got, want):
        passed("AdamW's decoupled weight decay, over five steps.")
        return
    diagnoses = [
        ("coupled",
         "This is Adam with L2 in the gradient (g + weight_decay * w), not AdamW: the decay "
         "then passes through m and v and is divided by sqrt(v_hat), so weights with large "
         "gradients are barely decayed. In AdamW, m and v see only the raw g, and the "
         "weights shrink separately: w = w - lr * weight_decay * w - lr * m_hat / "
         "(sqrt(v_hat) + eps)."),
        ("decay_without_lr",
         "The decay is not multiplied by the learning rate: PyTorch's AdamW shrinks by "
         "lr * weight_decay * w per step (w *= 1 - lr * weight_decay), not weight_decay * w."),
        ("decay_after_step",
         "The decay is applied to the weights *after* the Adam step. Both terms use the "
         "old weights: w_new = w - lr * weight_decay * w - lr * m_hat / (sqrt(v_hat) + eps) "
         "(as PyTorch does by shrinking w first, then taking the Adam step)."),
    ]
    for variant, message in diagnoses:
        if _same(got, _trajectory(reference(variant), lr, wd, what, learner=False)):
            raise AssertionError(f"{what} is wrong with weight_decay > 0. {message}")
    for k, (sg, sw) in enumerate(zip(got, want, strict=True), start=1):
        for name, a, b in zip("mvw", (sg[1], sg[2], sg[0]), (sw[1], sw[2], sw[0]), strict=True):
            assert_close(a, b, what=f"With weight_decay=0.5, {name} after step {k}",
                         hint="m and v must not see the decay; the weights get "
                              "w - lr * weight_decay * w - lr * m_hat / (sqrt(v_hat) + eps).")


# --------------------------------------------------------------------------
# Exercise: which parameters to decay
# --------------------------------------------------------------------------

def _mask_model() -> Sequential:
    rng = np.random.default_rng(7)
    return Sequential(
        Dense(5, 8, rng=rng), LayerNorm(8), ReLU(),
        Residual(Sequential(LayerNorm(8), Dense(8, 8, rng=rng), ReLU())),
        Dense(8, 1, bias=False, rng=rng),
    )


def check_decay_mask(decay_mask: Callable[[dict[str, np.ndarray]], dict[str, bool]]) -> None:
    """Check ``decay_mask(state) -> {name: bool}`` for a model's ``state_dict()``.

    The answer must say ``True`` for exactly the weight matrices of the Dense
    layers, and ``False`` for every bias and every LayerNorm gain and shift,
    knowing only each entry's name and array (no ``Parameter.decay`` flags).
    """
    what = "decay_mask(state)"
    model = _mask_model()
    named = model.named_parameters()
    want = {name: p.decay for name, p in named}       # the package's flags
    state = model.state_dict()
    result = run_learner_code(decay_mask, {k: v.copy() for k, v in state.items()}, what=what)
    if not isinstance(result, dict):
        raise AssertionError(f"{what} must return a dict {{name: bool}}, "
                             f"got {type(result).__name__}.")
    missing, extra = sorted(set(want) - set(result)), sorted(set(result) - set(want))
    if missing or extra:
        raise AssertionError(f"{what} must have exactly the keys of state: missing {missing}, "
                             f"unexpected {extra}.")
    kinds = {}
    for (name, p), (_, layer) in zip(named, _owners(model), strict=True):
        kinds[name] = ("a LayerNorm " + ("gain" if name.endswith("weight") else "shift")
                       if isinstance(layer, LayerNorm)
                       else "a Dense " + ("weight matrix" if p.value.ndim == 2 else "bias"))
    wrong = {name: bool(result[name]) for name in want if bool(result[name]) != want[name]}
    if not wrong:
        passed(f"only the {sum(want.values())} weight matrices are decayed.")
        return
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
                       "decayed.")
    reasons.append("The rule: decay exactly the arrays with 2 or more dimensions.")
    reason = " ".join(reasons)
    raise AssertionError(f"{what} is wrong for {listed}. {reason}")


def _owners(model: Sequential) -> list[tuple[str, object]]:
    """For each named parameter, the layer that owns it (same order as named_parameters)."""
    owners = []
    for module in model.modules():
        owners += [(name, module) for name in module._params]
    return owners
