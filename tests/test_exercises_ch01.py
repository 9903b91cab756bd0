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
from regmlp.exercises import check_adamw_step, check_decay_mask
from regmlp.layers import Parameter

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


def adamw_default_betas(w, g, m, v, t, *, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01):
    return adamw_step(w, g, m, v, t, lr=lr, eps=eps, weight_decay=weight_decay)


def adamw_default_eps(w, g, m, v, t, *, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01):
    return adamw_step(w, g, m, v, t, lr=lr, betas=betas, weight_decay=weight_decay)


def adamw_eps_inside(w, g, m, v, t, *, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01):
    beta1, beta2 = betas
    m = beta1 * m + (1 - beta1) * g
    v = beta2 * v + (1 - beta2) * g**2
    m_hat, v_hat = m / (1 - beta1**t), v / (1 - beta2**t)
    return w - lr * weight_decay * w - lr * m_hat / np.sqrt(v_hat + eps), m, v


def adamw_fixed_lr(w, g, m, v, t, *, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01):
    return adamw_step(w, g, m, v, t, lr=0.1, betas=betas, eps=eps, weight_decay=weight_decay)


def adamw_shrink_first_in_place(w, g, m, v, t, *, lr, betas=(0.9, 0.999), eps=1e-8,
                                weight_decay=0.01):
    """Another correct solution, PyTorch's order: shrink w, then the Adam step, in place."""
    beta1, beta2 = betas
    w *= 1 - lr * weight_decay
    m *= beta1
    m += (1 - beta1) * g
    v *= beta2
    v += (1 - beta2) * g * g
    step_size = lr / (1 - beta1**t)
    denom = np.sqrt(v) / np.sqrt(1 - beta2**t) + eps
    w -= step_size * m / denom
    return w, m, v


@pytest.mark.parametrize("solution", [adamw_step, adamw_step_with_package,
                                      adamw_shrink_first_in_place])
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
    (adamw_default_betas, "ignores the betas argument"),
    (adamw_default_eps, "ignores the eps argument"),
    (adamw_eps_inside, "eps is inside the square root"),
    (adamw_fixed_lr, r"With lr=0\.05, betas=\(0\.8, 0\.99\).*Use every argument as given"),
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


def mask_arrays(state):
    """Element-wise masks instead of one decision per array."""
    return {name: np.full(value.shape, value.ndim >= 2) for name, value in state.items()}


def mask_pops(state):
    names = list(state)
    return {name: state.pop(name).ndim >= 2 for name in names}


def mask_chapter_names(state):
    """Knows the LayerNorm names of the chapter's model instead of looking at the arrays."""
    layernorm = {"1.weight", "1.bias", "3.block.0.weight", "3.block.0.bias"}
    return {name: name.endswith("weight") and name not in layernorm for name in state}


def mask_square_or_wide(state):
    """Decides by the number of columns: a Dense layer with one output looks like a vector."""
    return {name: value.ndim >= 2 and value.shape[1] > 1 for name, value in state.items()}


# Other correct solutions: by the last part of the name and the shape; a loop with np.ndim.
def mask_name_and_shape(state):
    return {name: name.rsplit(".", 1)[-1] == "weight" and value.ndim > 1
            for name, value in state.items()}


def mask_loop(state):
    out = {}
    for name in sorted(state):
        out[name] = bool(np.ndim(state[name]) >= 2)
    return out


@pytest.mark.parametrize("solution", [decay_mask, mask_name_and_shape, mask_loop])
def test_decay_mask_accepts_the_solution(solution, capsys):
    check_decay_mask(solution)
    assert capsys.readouterr().out.startswith("Correct:")


@pytest.mark.parametrize("wrong, message", [
    (mask_everything, "Biases and LayerNorm shifts are not decayed"),
    (mask_by_name, "LayerNorm gain is called 'weight'"),
    (mask_not_bias, "LayerNorm gain"),
    (mask_nothing, "must be decayed"),
    (mask_missing_keys, "missing"),
    (mask_list, "must return a dict"),
    (mask_stub, "not written yet"),
    (mask_arrays, r"\['0.weight'\] is an ndarray of shape \(5, 8\).*must be True or False"),
    (mask_pops, "changed its input state in place"),
    (mask_chapter_names, r"'0.weight' \(a LayerNorm gain\).*Decide by the array's shape"),
    (mask_square_or_wide, r"'4.weight' \(a Dense weight matrix\).*must be\s+decayed"),
])
def test_decay_mask_rejects(wrong, message):
    with pytest.raises(AssertionError, match=message):
        check_decay_mask(wrong)


# -- the proximal L1 step ------------------------------------------------------------------

from regmlp.exercises import check_prox_l1_step  # noqa: E402


def prox_l1_step(w, grad, lr, lam):
    z = w - lr * grad
    return np.sign(z) * np.maximum(np.abs(z) - lr * lam, 0.0)


def prox_l1_step_clip(w, grad, lr, lam):
    """Another correct form: z minus its projection onto [-t, t]."""
    z = w - lr * grad
    t = lr * lam
    return z - np.clip(z, -t, t)


def prox_l1_step_where(w, grad, lr, lam):
    """A third: the three cases of the derivation, one np.where each."""
    z = w - lr * grad
    t = lr * lam
    return np.where(z > t, z - t, np.where(z < -t, z + t, 0.0))


def prox_subgradient(w, grad, lr, lam):
    return w - lr * (grad + lam * np.sign(w))


def prox_crosses_zero(w, grad, lr, lam):
    z = w - lr * grad
    return z - lr * lam * np.sign(z)


def prox_threshold_first(w, grad, lr, lam):
    t = lr * lam
    return np.sign(w) * np.maximum(np.abs(w) - t, 0.0) - lr * grad


def prox_hard(w, grad, lr, lam):
    z = w - lr * grad
    return np.where(np.abs(z) > lr * lam, z, 0.0)


def prox_threshold_lam(w, grad, lr, lam):
    z = w - lr * grad
    return np.sign(z) * np.maximum(np.abs(z) - lam, 0.0)


def prox_threshold_half(w, grad, lr, lam):
    z = w - lr * grad
    return np.sign(z) * np.maximum(np.abs(z) - lr * lam / 2, 0.0)


def prox_threshold_double(w, grad, lr, lam):
    z = w - lr * grad
    return np.sign(z) * np.maximum(np.abs(z) - 2 * lr * lam, 0.0)


def prox_positive_only(w, grad, lr, lam):
    return np.maximum(w - lr * grad - lr * lam, 0.0)


def prox_no_sign(w, grad, lr, lam):
    return np.maximum(np.abs(w - lr * grad) - lr * lam, 0.0)


def prox_no_gradient(w, grad, lr, lam):
    return np.sign(w) * np.maximum(np.abs(w) - lr * lam, 0.0)


def prox_in_place(w, grad, lr, lam):
    w -= lr * grad
    w[...] = np.sign(w) * np.maximum(np.abs(w) - lr * lam, 0.0)
    return w


def prox_not_exact_zero(w, grad, lr, lam):
    return prox_l1_step(w, grad, lr, lam) + 1e-15 * (np.abs(w - lr * grad) <= lr * lam)


def prox_returns_nothing(w, grad, lr, lam):
    prox_l1_step(w, grad, lr, lam)


def prox_stub(w, grad, lr, lam):
    raise NotImplementedError


@pytest.mark.parametrize("right", [prox_l1_step, prox_l1_step_clip, prox_l1_step_where])
def test_prox_l1_step_accepts_correct_versions(right, capsys):
    check_prox_l1_step(right)
    assert capsys.readouterr().out.startswith("Correct:")


@pytest.mark.parametrize(("wrong", "message"), [
    (prox_subgradient, "subgradient step"),
    (prox_crosses_zero, "crosses zero"),
    (prox_threshold_first, "thresholded w and then took the gradient step"),
    (prox_hard, "hard thresholding"),
    (prox_threshold_lam, r"must be lr \* lam"),
    (prox_threshold_half, r"lr \* lam / 2"),
    (prox_threshold_double, r"2 \* lr \* lam"),
    (prox_positive_only, "Negative weights"),
    (prox_no_sign, "lost the signs"),
    (prox_no_gradient, "forgot the gradient step"),
    (prox_in_place, "in place"),
    (prox_not_exact_zero, "not exactly zero"),
    (prox_returns_nothing, "returned None"),
    (prox_stub, "not written yet"),
])
def test_prox_l1_step_rejects(wrong, message):
    with pytest.raises(AssertionError, match=message):
        check_prox_l1_step(wrong)
