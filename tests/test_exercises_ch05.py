"""The chapter 5 checkers accept the reference solutions and reject the usual mistakes."""

from __future__ import annotations

import numpy as np
import pytest

from regmlp.exercises import (
    check_dense_gradient_norms,
    check_pre_ln_block,
    check_residual,
    check_stream_variance,
)
from regmlp.layers import Dense, LayerNorm, ReLU, Residual, Sequential


def stub(*args, **kwargs):
    raise NotImplementedError("Exercise: replace this line with your code.")


# -- residual forward and backward --------------------------------------------------

def residual_forward(x, block):
    return x + block.forward(x)


def residual_backward(grad_out, block):
    return grad_out + block.backward(grad_out)


def forward_in_place(x, block):
    """Right output, but x is changed, and the block's cached input with it."""
    x += block.forward(x)
    return x


def backward_zeroes_first(grad_out, block):
    block.zero_grad()
    return grad_out + block.backward(grad_out)


def backward_in_place(grad_out, block):
    grad_out += block.backward(grad_out)
    return grad_out


# Other correct solutions: the block called as a function and np.add; the block's
# gradient kept in a variable and added in the other order.
def forward_call(x, block):
    return np.add(block(x), x)


def backward_other_order(grad_out, block):
    through_block = block.backward(grad_out)
    return through_block + grad_out


@pytest.mark.parametrize(("forward", "backward"), [(residual_forward, residual_backward),
                                                   (forward_call, backward_other_order)])
def test_residual_accepts_the_solution(forward, backward, capsys):
    check_residual(forward, backward)
    assert capsys.readouterr().out.startswith("Correct:")


@pytest.mark.parametrize(("forward", "backward", "message"), [
    (lambda x, block: block.forward(x), residual_backward, r"identity path is\s+missing"),
    (lambda x, block: x, residual_backward, r"returned x unchanged"),
    (residual_forward, lambda g, block: block.backward(g),
     r"only the block's input gradient: the identity path is\s+missing"),
    (residual_forward, lambda g, block: g, r"path through the block is missing"),
    (residual_forward, lambda g, block: g + 2 * block.backward(g), r"counted the block's path"),
    (residual_forward, lambda g, block: (block.backward(g), g + block.backward(g))[1],
     r"twice\s+what it should be"),
    (residual_forward, lambda g, block: g * block.backward(g), r"residual_backward.*is wrong"),
    (stub, residual_backward, r"residual_forward\(x, block\) is not written yet"),
    (residual_forward, stub, r"residual_backward\(grad_out, block\) is not written yet"),
    (forward_in_place, residual_backward, r"residual_forward\(x, block\) changed its input x"),
    (residual_forward, backward_zeroes_first, r"gradients that were already there are gone"),
    (residual_forward, backward_in_place, r"changed its input grad_out in place"),
])
def test_residual_rejects(forward, backward, message):
    with pytest.raises(AssertionError, match=message):
        check_residual(forward, backward)


def test_residual_reports_a_block_that_got_no_gradient():
    def backward_without_block(grad_out, block):
        # the right input gradient, computed without touching the block's parameters
        saved = [p.grad.copy() for p in block.parameters()]
        dx = grad_out + block.backward(grad_out)
        for p, g in zip(block.parameters(), saved, strict=True):
            p.grad[...] = g
        return dx

    with pytest.raises(AssertionError, match=r"has no gradient: call block.backward"):
        check_residual(residual_forward, backward_without_block)


# -- per-layer gradient norms -------------------------------------------------------

def dense_gradient_norms(model):
    return [float(np.linalg.norm(m.weight.grad)) for m in model.modules()
            if isinstance(m, Dense)]


def norms_top_level_only(model):
    return [np.linalg.norm(m.weight.grad) for m in model if isinstance(m, Dense)]


def norms_reversed(model):
    return dense_gradient_norms(model)[::-1]


def norms_squared(model):
    return [np.sum(m.weight.grad ** 2) for m in model.modules() if isinstance(m, Dense)]


def norms_of_weights(model):
    return [np.linalg.norm(m.weight.value) for m in model.modules() if isinstance(m, Dense)]


def norms_with_bias(model):
    return [np.sqrt(np.sum(m.weight.grad ** 2)
                    + (np.sum(m.bias.grad ** 2) if m.bias is not None else 0.0))
            for m in model.modules() if isinstance(m, Dense)]


def norms_every_parameter(model):
    return [np.linalg.norm(p.grad) for p in model.parameters()]


def norms_zeroing(model):
    norms = dense_gradient_norms(model)
    model.zero_grad()
    return norms


def norms_max_abs(model):
    return [np.abs(m.weight.grad).max() for m in model.modules() if isinstance(m, Dense)]


def norms_by_name(model):
    """Every parameter called 'weight': right only when the model has no LayerNorm."""
    return [np.linalg.norm(p.grad) for name, p in model.named_parameters()
            if name.endswith("weight")]


def norms_chapter_layout(model):
    """Knows where the first test model keeps its Dense layers instead of looking for them."""
    block = model[2].block
    return [np.linalg.norm(layer.weight.grad) for layer in (model[0], block[1], block[3],
                                                            model[4])]


def norms_normalised_in_place(model):
    norms = dense_gradient_norms(model)
    for m in model.modules():
        if isinstance(m, Dense):
            m.weight.grad /= max(norms)
    return norms


# Other correct solutions: an explicit recursion over children(), and np.sqrt of a sum.
def norms_recursive(model):
    out = []

    def visit(layer):
        if isinstance(layer, Dense):
            out.append(np.sqrt(np.sum(np.square(layer.weight.grad))))
        for _, child in layer.children():
            visit(child)

    visit(model)
    return np.array(out)


@pytest.mark.parametrize("solution", [dense_gradient_norms, norms_recursive])
def test_norms_accept_the_solution(solution, capsys):
    check_dense_gradient_norms(solution)
    assert capsys.readouterr().out.startswith("Correct:")


@pytest.mark.parametrize(("wrong", "message"), [
    (norms_top_level_only, r"returned 2 norms.*only the top-level.*model.modules\(\)"),
    (norms_reversed, r"reverse order"),
    (norms_squared, r"squared norms"),
    (norms_of_weights, r"norms of the weights themselves"),
    (norms_with_bias, r"include the bias gradients"),
    (norms_every_parameter, r"returned 9 norms.*Dense weights only"),
    (norms_zeroing, r"changed the parameters' .grad"),
    (norms_max_abs, r"largest difference"),
    (lambda model: "large", r"must return a list or array of numbers"),
    (norms_by_name, r"returned 5 norms.*LayerNorm's gain is also called 'weight'"),
    (norms_normalised_in_place, r"changed the parameters' .grad or .value"),
    (norms_chapter_layout, r"raised (AttributeError|IndexError|TypeError)"),
    (stub, r"not written yet"),
])
def test_norms_reject(wrong, message):
    with pytest.raises(AssertionError, match=message):
        check_dense_gradient_norms(wrong)


# -- the pre-LN block ---------------------------------------------------------------

def pre_ln_block(dim, hidden, rng):
    return Residual(Sequential(LayerNorm(dim), Dense(dim, hidden, rng=rng), ReLU(),
                               Dense(hidden, dim, rng=rng)))


def post_ln(dim, hidden, rng):
    """LN(x + f(x)), the original Transformer's order."""
    return Sequential(Residual(Sequential(Dense(dim, hidden, rng=rng), ReLU(),
                                          Dense(hidden, dim, rng=rng))), LayerNorm(dim))


def no_skip(dim, hidden, rng):
    return Sequential(LayerNorm(dim), Dense(dim, hidden, rng=rng), ReLU(),
                      Dense(hidden, dim, rng=rng))


def no_ln(dim, hidden, rng):
    return Residual(Sequential(Dense(dim, hidden, rng=rng), ReLU(), Dense(hidden, dim, rng=rng)))


def ln_at_the_end(dim, hidden, rng):
    return Residual(Sequential(Dense(dim, hidden, rng=rng), ReLU(), Dense(hidden, dim, rng=rng),
                               LayerNorm(dim)))


def no_relu(dim, hidden, rng):
    return Residual(Sequential(LayerNorm(dim), Dense(dim, hidden, rng=rng),
                               Dense(hidden, dim, rng=rng)))


def fixed_seed(dim, hidden, rng):
    return pre_ln_block(dim, hidden, 0)


def fresh_entropy(dim, hidden, rng):
    return pre_ln_block(dim, hidden, None)


def not_a_layer(dim, hidden, rng):
    block = pre_ln_block(dim, hidden, rng)
    return block.forward


def one_layer_fixed_seed(dim, hidden, rng):
    """The first Dense from rng, the second from a seed of its own."""
    return Residual(Sequential(LayerNorm(dim), Dense(dim, hidden, rng=rng), ReLU(),
                               Dense(hidden, dim, rng=0)))


def hidden_ten(dim, hidden, rng):
    return pre_ln_block(dim, 10, rng)


# Other correct solution: the branch nested differently, the layers made first.
def pre_ln_nested(dim, hidden, rng):
    up, down = Dense(dim, hidden, rng=rng), Dense(hidden, dim, rng=rng)
    branch = Sequential(LayerNorm(dim), Sequential(up, ReLU()), down)
    return Residual(branch)


@pytest.mark.parametrize("solution", [pre_ln_block, pre_ln_nested])
def test_pre_ln_accepts_the_solution(solution, capsys):
    check_pre_ln_block(solution)
    assert capsys.readouterr().out.startswith("Correct:")


@pytest.mark.parametrize(("wrong", "message"), [
    (post_ln, r"mean 0 and standard deviation 1.*post-LN"),
    (no_skip, r"identity path\s+is missing"),
    (no_ln, r"has 136 parameters, expected 148.*no LayerNorm"),
    (ln_at_the_end, r"branch output y - x changed.*first layer\s+of the branch"),
    (no_relu, r"affine in LN\(x\): put a ReLU"),
    (fixed_seed, r"same block for different rng seeds"),
    (fresh_entropy, r"same seed gave\s+different blocks"),
    (not_a_layer, r"must return a regmlp Layer"),
    (one_layer_fixed_seed, r"the parameter '.*weight' is the same for different rng seeds"),
    (hidden_ten, r"dim=4, hidden=3.*has \d+ parameters, expected 39"),
    (stub, r"not written yet"),
])
def test_pre_ln_rejects(wrong, message):
    with pytest.raises(AssertionError, match=message):
        check_pre_ln_block(wrong)



# -- the variance of a residual stream after k blocks ---------------------------------

def stream_variance(v0, alpha, k, pre_ln=False):
    return v0 + k * alpha if pre_ln else v0 * (1 + alpha) ** k


def stream_variance_loop(v0, alpha, k, pre_ln=False):
    """Another correct version: add one block's variance at a time."""
    var = v0
    for _ in range(k):
        var += alpha * (1.0 if pre_ln else var)
    return var


def sv_no_identity(v0, alpha, k, pre_ln=False):
    return v0 + k * alpha if pre_ln else v0 * alpha ** k


def sv_linear(v0, alpha, k, pre_ln=False):
    return v0 + k * alpha if pre_ln else v0 * (1 + k * alpha)


def sv_off_by_one(v0, alpha, k, pre_ln=False):
    return v0 + k * alpha if pre_ln else v0 * (1 + alpha) ** (k - 1)


def sv_alpha_squared(v0, alpha, k, pre_ln=False):
    return v0 + k * alpha if pre_ln else v0 * (1 + alpha ** 2) ** k


def sv_std_factor(v0, alpha, k, pre_ln=False):
    return v0 + k * alpha if pre_ln else v0 * (1 + alpha) ** (2 * k)


def sv_ignores_pre_ln(v0, alpha, k, pre_ln=False):
    return v0 * (1 + alpha) ** k


def sv_pre_ln_scaled(v0, alpha, k, pre_ln=False):
    return v0 + k * alpha * v0 if pre_ln else v0 * (1 + alpha) ** k


def sv_pre_ln_no_start(v0, alpha, k, pre_ln=False):
    return k * alpha if pre_ln else v0 * (1 + alpha) ** k


def sv_pre_ln_off_by_one(v0, alpha, k, pre_ln=False):
    return v0 + (k + 1) * alpha if pre_ln else v0 * (1 + alpha) ** k


def sv_other(v0, alpha, k, pre_ln=False):
    return v0 + k * alpha if pre_ln else v0 * np.exp(alpha * k)


def sv_array(v0, alpha, k, pre_ln=False):
    return np.array([1.0, 2.0])


@pytest.mark.parametrize("right", [stream_variance, stream_variance_loop])
def test_stream_variance_accepts_correct_versions(right, capsys):
    check_stream_variance(right)
    assert capsys.readouterr().out.startswith("Correct:")


@pytest.mark.parametrize(("wrong", "message"), [
    (sv_no_identity, r"identity path is missing"),
    (sv_linear, r"the k factors \(1 \+ alpha\)\s+multiply"),
    (sv_off_by_one, r"Off by one: k blocks give k factors"),
    (sv_alpha_squared, r"do not square it"),
    (sv_std_factor, r"not its square"),
    (sv_ignores_pre_ln, r"pre_ln=True.*linear, v0 \+ k \* alpha"),
    (sv_pre_ln_scaled, r"variance 1, not the stream's v0"),
    (sv_pre_ln_no_start, r"starts with variance v0"),
    (sv_pre_ln_off_by_one, r"Off by one: k blocks add k increments"),
    (sv_other, r"the form v0 \* \(1 \+ alpha\)\*\*k"),
    (sv_array, r"must return a number"),
    (stub, r"not written yet"),
])
def test_stream_variance_rejects(wrong, message):
    with pytest.raises(AssertionError, match=message):
        check_stream_variance(wrong)
