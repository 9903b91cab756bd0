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
from typing import Any

import numpy as np

from ..layers import Dense, LayerNorm, Parameter, ReLU, Residual, Sequential
from ._common import (
    as_array,
    as_number,
    assert_close,
    call_pure,
    diagnose,
    expect_tuple,
    passed,
    run_learner_code,
)

__all__ = ["check_l2_penalty", "check_adamw_step", "check_decay_mask"]


# --------------------------------------------------------------------------
# Exercise: the L2 penalty, its value and its gradient
# --------------------------------------------------------------------------

def _penalty_cases() -> list[tuple[list[Parameter], list[str], float]]:
    """Parameter lists with a description of each, and the ``lam`` to use.

    The first is the chapter's: a Dense weight and bias, a LayerNorm gain and
    shift, a last weight. In the second the ``decay`` flags and the shapes
    disagree (a matrix with ``decay=False``, a vector with ``decay=True``, a
    three-dimensional weight), so that only the flags give the right answer.
    """
    rng = np.random.default_rng(1992)
    first = [
        Parameter(rng.normal(size=(3, 2))),                      # 0.weight
        Parameter(rng.normal(size=2) + 1.0, decay=False),        # 0.bias
        Parameter(1.0 + 0.1 * rng.normal(size=2), decay=False),  # LayerNorm gain
        Parameter(0.3 * rng.normal(size=2), decay=False),        # LayerNorm shift
        Parameter(rng.normal(size=(2, 1))),                      # 2.weight
    ]
    first_kinds = ["a Dense weight", "a Dense bias", "a LayerNorm gain", "a LayerNorm shift",
                   "a Dense weight"]
    second = [
        Parameter(rng.normal(size=(4, 3)), decay=False),          # a frozen embedding
        Parameter(rng.normal(size=3)),                            # a vector that is decayed
        Parameter(rng.normal(size=(2, 3, 2))),                    # a 3-d kernel
        Parameter(rng.normal(size=(3, 1)) + 2.0, decay=False),
    ]
    second_kinds = ["a matrix with decay=False", "a vector with decay=True",
                    "a 3-d array with decay=True", "a matrix with decay=False"]
    return [(first, first_kinds, 0.3), (second, second_kinds, 0.125)]


def _squares(params: list[Parameter], keep: Callable[[Parameter], bool]) -> float:
    return sum(float(np.sum(p.value * p.value)) for p in params if keep(p))


def check_l2_penalty(l2_penalty: Callable[[list[Parameter], float], tuple]) -> None:
    r"""Check ``l2_penalty(params, lam) -> (value, grads)``.

    ``value`` is :math:`\frac{\lambda}{2}\sum\theta^2` over the parameters with
    ``decay=True``; ``grads`` is a list with one array per parameter, in order:
    :math:`\lambda\theta` for a decayed parameter, zeros for the others. The
    parameters' ``.value`` and ``.grad`` must not change. Two lists are tried,
    the second with flags that do not follow the shapes, and two values of ``lam``.
    """
    what = "l2_penalty(params, lam)"
    for params, kinds, lam in _penalty_cases():
        values = [p.value.copy() for p in params]
        for p in params:
            p.grad[...] = 0.5                        # a gradient already there must stay
        result = run_learner_code(l2_penalty, params, lam, what=what)
        if any(not np.array_equal(p.value, v) for p, v in zip(params, values, strict=True)):
            raise AssertionError(f"{what} changed a parameter's .value. It must only compute "
                                 "the penalty and its gradient; the optimizer changes the "
                                 "weights.")
        if any(not np.all(p.grad == 0.5) for p in params):
            raise AssertionError(f"{what} changed a parameter's .grad. Return the gradients in "
                                 "a new list instead (fit adds them to .grad itself).")
        value, grads = expect_tuple(result, 2, what=what, names="(value, grads)")
        if not isinstance(grads, (tuple, list)) or len(grads) != len(params):
            got = len(grads) if isinstance(grads, (tuple, list)) else type(grads).__name__
            raise AssertionError(f"grads must be a list with one array per parameter "
                                 f"({len(params)} here, zeros for decay=False), got {got}.")
        value = as_number(value, what="value")
        _check_penalty_value(value, params, lam)
        for i, (p, g, kind) in enumerate(zip(params, grads, kinds, strict=True)):
            g = as_array(g, what=f"grads[{i}]", shape=p.shape,
                         hint="the shape of its parameter.")
            if not p.decay:
                if np.allclose(g, lam * p.value):
                    raise AssertionError(
                        f"grads[{i}] belongs to {kind} (decay=False) and must be zeros, but "
                        "you gave it lam * theta: the penalty does not apply to it, so neither "
                        "does its gradient. Decide by each parameter's .decay flag.")
                assert_close(g, np.zeros(p.shape), what=f"grads[{i}]",
                             hint="Its parameter has decay=False: its gradient must be zeros.")
                continue
            if np.allclose(g, lam * p.value, rtol=1e-7, atol=1e-10):
                continue
            diagnose(g, [
                (np.zeros(p.shape), f"It is zero, but it belongs to {kind}: its .decay flag is "
                                    "True, so its gradient is lam * theta. Decide by the flag, "
                                    "not by the shape or the name."),
                (2 * lam * p.value, "It is 2 * lam * theta, twice the right gradient: "
                                    "d/dtheta of (lam/2) * theta**2 is lam * theta."),
                (0.3 * p.value, "It is 0.3 * theta: use the lam you are given."),
            ], what=f"grads[{i}]")
            assert_close(g, lam * p.value, what=f"grads[{i}]",
                         hint="The gradient of (lam/2) * sum(theta**2) is lam * theta.")
    passed("L2 penalty and gradient, decayed parameters only (two parameter lists).")


def _check_penalty_value(value: float, params: list[Parameter], lam: float) -> None:
    """The penalty's value, with a hint for each usual mistake."""
    decayed = _squares(params, lambda p: p.decay)
    want = 0.5 * lam * decayed
    if math.isclose(value, want, rel_tol=1e-9):
        return
    by_shape = _squares(params, lambda p: p.value.ndim >= 2)
    every = _squares(params, lambda p: True)
    diagnoses = [
        (0.5 * lam * every, "It includes parameters with decay=False (biases, LayerNorm "
         "gains and shifts). Skip every parameter whose .decay is False: decaying a bias "
         "or a LayerNorm gain is not regularisation, it only pulls them toward 0."),
        (0.5 * lam * by_shape, "You chose the parameters by their shape (ndim >= 2). Here the "
         "shapes and the flags disagree: decide by each parameter's .decay flag."),
        (lam * decayed, "It is twice the right value: the penalty is (lam/2) * "
         "sum(theta**2), with the 1/2 that makes its gradient exactly lam * theta."),
        (lam * every, "It is missing the 1/2 of (lam/2) * sum(theta**2), and it also "
         "includes parameters with decay=False (biases, LayerNorm parameters)."),
        (0.5 * 0.3 * decayed, "It is 0.3/2 times the sum of squares: use the lam you are "
         "given, not a fixed number."),
    ]
    diagnose(value, diagnoses, what=f"value is wrong ({value:.6g}, expected {want:.6g}) with "
             f"lam={lam}.", match=lambda a, b: math.isclose(a, b, rel_tol=1e-9),
             template="{what} {hint}")
    raise AssertionError(f"value is wrong ({value:.6g}, expected {want:.6g}) with lam={lam}. "
                         "It should be (lam/2) times the sum of the squares of every entry "
                         "of every parameter with decay=True.")


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
