"""The chapter 1 checkers accept the reference solutions and reject the usual mistakes.

Two of the mistakes are bugs of DESIGN.md section 7 (weight decay applied to
biases and LayerNorm gains; an "AdamW" that is really Adam with L2 in the
gradient); the others are ones a learner is likely to make. Each checker must
fail on them with an ``AssertionError`` whose message says what to fix.
"""

from __future__ import annotations

import numpy as np
import pytest

from regmlp import AdamW
from regmlp.exercises import check_adamw_step, check_decay_mask, check_l2_penalty
from regmlp.layers import Parameter

# -- the L2 penalty -------------------------------------------------------------------


def l2_penalty(params, lam):
    value = sum(0.5 * lam * float(np.sum(p.value**2)) for p in params if p.decay)
    grads = [lam * p.value if p.decay else np.zeros_like(p.value) for p in params]
    return value, grads


def l2_decays_everything(params, lam):
    value = sum(0.5 * lam * float(np.sum(p.value**2)) for p in params)
    return value, [lam * p.value for p in params]


def l2_right_value_but_bias_gradients(params, lam):
    value, _ = l2_penalty(params, lam)
    return value, [lam * p.value for p in params]


def l2_missing_half(params, lam):
    value = sum(lam * float(np.sum(p.value**2)) for p in params if p.decay)
    return value, [2 * lam * p.value if p.decay else np.zeros_like(p.value) for p in params]


def l2_missing_half_in_gradient(params, lam):
    value, _ = l2_penalty(params, lam)
    return value, [2 * lam * p.value if p.decay else np.zeros_like(p.value) for p in params]


def l2_norm_not_squared(params, lam):
    value = sum(0.5 * lam * float(np.linalg.norm(p.value)) for p in params if p.decay)
    return value, l2_penalty(params, lam)[1]


def l2_into_grad(params, lam):
    for p in params:
        if p.decay:
            p.grad += lam * p.value
    return l2_penalty(params, lam)


def l2_only_decayed_grads(params, lam):
    value = l2_penalty(params, lam)[0]
    return value, [lam * p.value for p in params if p.decay]


def l2_stub(params, lam):
    raise NotImplementedError


def test_l2_penalty_accepts_the_solution(capsys):
    check_l2_penalty(l2_penalty)
    assert capsys.readouterr().out.startswith("Correct:")


@pytest.mark.parametrize("wrong, message", [
    (l2_decays_everything, "includes parameters with decay=False"),
    (l2_right_value_but_bias_gradients, "must be zeros"),
    (l2_missing_half, "twice the right value"),
    (l2_missing_half_in_gradient, "twice the right gradient"),
    (l2_norm_not_squared, "sum of the squares"),
    (l2_into_grad, r"changed a parameter's \.grad"),
    (l2_only_decayed_grads, "one array per parameter"),
    (l2_stub, "not written yet"),
])
def test_l2_penalty_rejects(wrong, message):
    with pytest.raises(AssertionError, match=message):
        check_l2_penalty(wrong)


# -- one AdamW step ----------------------------------------------------------------------


def adamw_step(w, g, m, v, t, *, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01):
    beta1, beta2 = betas
    m = beta1 * m + (1 - beta1) * g
    v = beta2 * v + (1 - beta2) * g**2
    m_hat, v_hat = m / (1 - beta1**t), v / (1 - beta2**t)
    w = w - lr * weight_decay * w - lr * m_hat / (np.sqrt(v_hat) + eps)
    return w, m, v


def adamw_step_with_package(w, g, m, v, t, *, lr, betas=(0.9, 0.999), eps=1e-8,
                            weight_decay=0.01):
    """The package's AdamW, driven one step at a time, must pass too."""
    p = Parameter(w)
    opt = AdamW([p], lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
    opt.m[0][...], opt.v[0][...], opt.t = m, v, t - 1
    p.grad[...] = g
    opt.step()
    return p.value, opt.m[0], opt.v[0]


def adam_with_l2(w, g, m, v, t, *, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01):
    return adamw_step(w, g + weight_decay * w, m, v, t, lr=lr, betas=betas, eps=eps,
                      weight_decay=0.0)


def adamw_no_bias_correction(w, g, m, v, t, *, lr, betas=(0.9, 0.999), eps=1e-8,
                             weight_decay=0.01):
    beta1, beta2 = betas
    m = beta1 * m + (1 - beta1) * g
    v = beta2 * v + (1 - beta2) * g**2
    return w - lr * weight_decay * w - lr * m / (np.sqrt(v) + eps), m, v


def adamw_t_plus_one(w, g, m, v, t, *, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01):
    return adamw_step(w, g, m, v, t + 1, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)


def adamw_decay_without_lr(w, g, m, v, t, *, lr, betas=(0.9, 0.999), eps=1e-8,
                           weight_decay=0.01):
    w2, m, v = adamw_step(w, g, m, v, t, lr=lr, betas=betas, eps=eps, weight_decay=0.0)
    return w2 - weight_decay * w, m, v


def adamw_decay_after_step(w, g, m, v, t, *, lr, betas=(0.9, 0.999), eps=1e-8,
                           weight_decay=0.01):
    w2, m, v = adamw_step(w, g, m, v, t, lr=lr, betas=betas, eps=eps, weight_decay=0.0)
    return w2 * (1 - lr * weight_decay), m, v


def adamw_decay_in_m_only(w, g, m, v, t, *, lr, betas=(0.9, 0.999), eps=1e-8,
                          weight_decay=0.01):
    beta1, beta2 = betas
    m = beta1 * m + (1 - beta1) * (g + weight_decay * w)
    v = beta2 * v + (1 - beta2) * g**2
    m_hat, v_hat = m / (1 - beta1**t), v / (1 - beta2**t)
    return w - lr * m_hat / (np.sqrt(v_hat) + eps), m, v


def adamw_wrong_v(w, g, m, v, t, *, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01):
    beta1, beta2 = betas
    m = beta1 * m + (1 - beta1) * g
    v = beta2 * v + (1 - beta2) * np.abs(g)
    m_hat, v_hat = m / (1 - beta1**t), v / (1 - beta2**t)
    return w - lr * weight_decay * w - lr * m_hat / (np.sqrt(v_hat) + eps), m, v


def adamw_returns_w_only(w, g, m, v, t, *, lr, betas=(0.9, 0.999), eps=1e-8,
                         weight_decay=0.01):
    return adamw_step(w, g, m, v, t, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)[0]


def adamw_stub(w, g, m, v, t, *, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01):
    raise NotImplementedError


@pytest.mark.parametrize("solution", [adamw_step, adamw_step_with_package])
def test_adamw_step_accepts_the_solutions(solution, capsys):
    check_adamw_step(solution)
    assert capsys.readouterr().out.startswith("Correct:")


@pytest.mark.parametrize("wrong, message", [
    (adam_with_l2, "Adam with L2 in the gradient"),
    (adamw_no_bias_correction, "without bias correction"),
    (adamw_t_plus_one, "uses t \\+ 1"),
    (adamw_decay_without_lr, "not multiplied by the learning rate"),
    (adamw_decay_after_step, "after"),
    (adamw_decay_in_m_only, "m and v must not see the decay"),
    (adamw_wrong_v, "plain Adam"),
    (adamw_returns_w_only, "must return a triple"),
    (adamw_stub, "not written yet"),
])
def test_adamw_step_rejects(wrong, message):
    with pytest.raises(AssertionError, match=message):
        check_adamw_step(wrong)


# -- which parameters to decay ------------------------------------------------------------


def decay_mask(state):
    return {name: value.ndim >= 2 for name, value in state.items()}


def mask_everything(state):
    return {name: True for name in state}


def mask_by_name(state):
    return {name: name.endswith("weight") for name in state}


def mask_not_bias(state):
    return {name: "bias" not in name for name in state}


def mask_nothing(state):
    return {name: False for name in state}


def mask_missing_keys(state):
    return {name: True for name, value in state.items() if value.ndim >= 2}


def mask_list(state):
    return [value.ndim >= 2 for value in state.values()]


def mask_stub(state):
    raise NotImplementedError


def test_decay_mask_accepts_the_solution(capsys):
    check_decay_mask(decay_mask)
    assert capsys.readouterr().out.startswith("Correct:")


@pytest.mark.parametrize("wrong, message", [
    (mask_everything, "Biases and LayerNorm shifts are not decayed"),
    (mask_by_name, "LayerNorm gain is called 'weight'"),
    (mask_not_bias, "LayerNorm gain"),
    (mask_nothing, "must be decayed"),
    (mask_missing_keys, "missing"),
    (mask_list, "must return a dict"),
    (mask_stub, "not written yet"),
])
def test_decay_mask_rejects(wrong, message):
    with pytest.raises(AssertionError, match=message):
        check_decay_mask(wrong)
