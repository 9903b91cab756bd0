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


def l2_by_ndim(params, lam):
    """Decides what to decay by the shape (right only when flags and shapes agree)."""
    value = sum(0.5 * lam * float(np.sum(p.value**2)) for p in params if p.value.ndim >= 2)
    return value, [lam * p.value if p.value.ndim >= 2 else np.zeros_like(p.value)
                   for p in params]


def l2_gradients_by_ndim(params, lam):
    return l2_penalty(params, lam)[0], l2_by_ndim(params, lam)[1]


def l2_fixed_lam(params, lam):
    return l2_penalty(params, 0.3)


def l2_value_as_array(params, lam):
    value, grads = l2_penalty(params, lam)
    return np.array([value]), grads


# Other correct solutions: a loop that sums with math.fsum, and a flattened, vectorised one.
def l2_loop(params, lam):
    import math

    squares, grads = [], []
    for p in params:
        if p.decay:
            squares.append(float(np.vdot(p.value, p.value)))
            grads.append(np.multiply(p.value, lam))
        else:
            grads.append(np.zeros(p.value.shape))
    return lam / 2 * math.fsum(squares), tuple(grads)


def l2_flat(params, lam):
    flat = np.concatenate([p.value.ravel() for p in params if p.decay])
    return np.float64(0.5 * lam * flat @ flat), [p.value * lam * p.decay for p in params]


@pytest.mark.parametrize("solution", [l2_penalty, l2_loop, l2_flat])
def test_l2_penalty_accepts_the_solution(solution, capsys):
    check_l2_penalty(solution)
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
    (l2_by_ndim, r"chose the parameters by their shape \(ndim >= 2\)"),
    (l2_gradients_by_ndim, r"grads\[0\] belongs to a matrix with decay=False"),
    (l2_fixed_lam, "use the lam you are given"),
    (l2_value_as_array, "value must be one number"),
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
