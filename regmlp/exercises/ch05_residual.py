r"""Checkers for the exercises of chapter 5, residual connections.

* :func:`check_residual` -- ``residual_forward(x, block)`` and
  ``residual_backward(grad_out, block)``: :math:`y = x + f(x)` and
  :math:`\partial L/\partial x = G + f'(x)^\top G`;
* :func:`check_dense_gradient_norms` -- ``dense_gradient_norms(model)``: the norm
  of every Dense layer's weight gradient, first layer first, Dense layers inside
  ``Residual`` blocks included;
* :func:`check_pre_ln_block` -- ``pre_ln_block(dim, hidden, rng)``: a pre-LN
  residual block :math:`x + W_2\,\mathrm{relu}(W_1\,\mathrm{LN}(x) + b_1) + b_2`;
* :func:`check_stream_variance` -- ``stream_variance(v0, alpha, k, pre_ln)``: the
  predicted variance of a residual stream after ``k`` blocks.

The references are computed here from ``regmlp``'s tested layers (a fresh
copy of the same block), not from the learner's code.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..layers import Dense, Layer, LayerNorm, ReLU, Residual, Sequential
from ._common import as_array, assert_close, call_pure, diagnose, passed, run_learner_code

__all__ = ["check_residual", "check_dense_gradient_norms", "check_pre_ln_block",
           "check_stream_variance"]


# -- residual forward and backward --------------------------------------------------

def _residual_cases() -> list[tuple[Callable[[], Layer], np.ndarray, np.ndarray, str]]:
    """``(make the block, x, grad_out, what the case is)``: two blocks of different sizes.

    In the second case the block's gradients already hold something (as after an
    earlier backward pass): the residual backward must add to them, not reset them.
    """
    rng = np.random.default_rng(505)
    x1, g1 = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    x2, g2 = rng.standard_normal((2, 5)) * 2.0, rng.standard_normal((2, 5))

    def first() -> Layer:
        r = np.random.default_rng(5)
        return Sequential(Dense(4, 6, rng=r), ReLU(), Dense(6, 4, rng=r))

    def second() -> Layer:
        r = np.random.default_rng(6)
        block = Sequential(LayerNorm(5), Dense(5, 3, rng=r), ReLU(), Dense(3, 5, rng=r))
        for k, p in enumerate(block.parameters()):
            p.grad[...] = 0.25 * (k + 1)                  # gradients already accumulated
        return block

    return [(first, x1, g1, "a Dense-ReLU-Dense block"),
            (second, x2, g2, "a block whose gradients already hold an earlier pass")]


def check_residual(residual_forward: Callable[..., np.ndarray],
                   residual_backward: Callable[..., np.ndarray]) -> None:
    r"""Check ``residual_forward(x, block)`` and ``residual_backward(grad_out, block)``.

    ``block`` is a ``regmlp`` layer. The forward pass returns ``x + block(x)``
    without changing ``x``; the backward pass (called after the forward pass on
    the same block) returns ``grad_out + block.backward(grad_out)``, which also
    adds the block's parameter gradients to ``.grad`` exactly once (gradients
    accumulate). Two blocks are tried, the second with gradients already there.
    """
    for make, x, grad_out, about in _residual_cases():
        _check_residual_case(residual_forward, residual_backward, make, x, grad_out, about)
    passed("residual: the identity is added forward, both paths backward.")


def _check_residual_case(residual_forward: Callable[..., np.ndarray],
                         residual_backward: Callable[..., np.ndarray],
                         make: Callable[[], Layer], x: np.ndarray, grad_out: np.ndarray,
                         about: str) -> None:
    block, ref_block = make(), make()
    what = "residual_forward(x, block)"
    y = call_pure(residual_forward, x, block, what=what, names=("x",),
                  hint="return x + block.forward(x), not x += ... (the block keeps a reference "
                       "to x for its backward pass).")
    fx = ref_block.forward(x)
    expected_y = x + fx
    y = as_array(y, what=f"{what}'s output", shape=x.shape, hint="the shape of x.")
    if not np.allclose(y, expected_y):
        diagnose(y, [(fx, "It returned block(x) alone: the identity path is missing. Return "
                          "x + block.forward(x)."),
                     (x, "It returned x unchanged: add the block's output, "
                         "x + block.forward(x).")], what=what)
        assert_close(y, expected_y, what=what, hint="Return x + block.forward(x).")

    what = "residual_backward(grad_out, block)"
    before = [p.grad.copy() for p in ref_block.parameters()]
    ref_dx = grad_out + ref_block.backward(grad_out)
    dx = call_pure(residual_backward, grad_out, block, what=what, names=("grad_out",))
    dx = as_array(dx, what=f"{what}'s output", shape=x.shape, hint="the shape of grad_out.")
    branch = ref_dx - grad_out
    if not np.allclose(dx, ref_dx):
        diagnose(dx, [
            (branch, "It returned only the block's input gradient: the identity path is "
                     "missing. y = x + f(x), so dL/dx = grad_out + block.backward(grad_out). "
                     "The identity's term is what lets the gradient reach early layers "
                     "undiminished."),
            (grad_out, "It returned grad_out alone: the path through the block is missing. "
                       "Call block.backward(grad_out) (it also fills the block's parameter "
                       "gradients) and add its result to grad_out."),
            (grad_out + 2 * branch, "It counted the block's path twice: call "
                                    "block.backward(grad_out) once and add it to grad_out."),
        ], what=what)
        assert_close(dx, ref_dx, what=what,
                     hint="Return grad_out + block.backward(grad_out): the two paths add.")
    for (name, p), q, old in zip(block.named_parameters(), ref_block.parameters(), before,
                                 strict=True):
        added, want = p.grad - old, q.grad - old
        if np.allclose(added, 0) and not np.allclose(want, 0):
            raise AssertionError(f"After {what} on {about}, the block's parameter {name!r} "
                                 "has no gradient: call block.backward(grad_out), so that the "
                                 "block can learn.")
        if np.allclose(p.grad, want) and not np.allclose(old, 0):
            raise AssertionError(
                f"After {what} on {about}, the gradient of the block's {name!r} holds only this "
                "pass: the gradients that were already there are gone. Do not call zero_grad "
                "in a backward pass; gradients accumulate until the optimizer's zero_grad.")
        if np.allclose(added, 2 * want):
            raise AssertionError(f"After {what} the gradient of the block's {name!r} is twice "
                                 "what it should be: call block.backward only once (gradients "
                                 "accumulate).")
        assert_close(p.grad, q.grad, what=f"the gradient of the block's {name!r}",
                     hint="Call block.backward(grad_out) exactly once, after the forward pass.")


# -- per-layer gradient norms -------------------------------------------------------

def _norms_models() -> list[tuple[Sequential, list[Dense]]]:
    """Two models after a backward pass, with their Dense layers in forward order.

    The first has a LayerNorm inside its residual block (its gain is also called
    "weight", but it is no Dense layer) and a Dense layer without bias; the second
    starts with its residual block and has other sizes, so that no layout is
    hard-coded. The weights are scaled so that the norms differ a lot from layer
    to layer, and the order shows.
    """
    rng = np.random.default_rng(506)
    dense = [Dense(3, 5, rng=rng), Dense(5, 5, rng=rng), Dense(5, 5, bias=False, rng=rng),
             Dense(5, 1, rng=rng)]
    first = Sequential(dense[0], ReLU(),
                       Residual(Sequential(LayerNorm(5), dense[1], ReLU(), dense[2])),
                       ReLU(), dense[3])
    dense2 = [Dense(4, 4, rng=rng), Dense(4, 4, rng=rng), Dense(4, 6, rng=rng),
              Dense(6, 2, rng=rng)]
    second = Sequential(Residual(Sequential(dense2[0], ReLU(), dense2[1])), dense2[2], ReLU(),
                        dense2[3])
    out = []
    for model, layers, base, n_in, n_out in ((first, dense, 3.0, 3, 1),
                                             (second, dense2, 0.4, 4, 2)):
        for k, layer in enumerate(layers):
            layer.weight.value *= base ** k
        model.forward(rng.standard_normal((8, n_in)))
        model.backward(rng.standard_normal((8, n_out)))
        out.append((model, layers))
    return out


def check_dense_gradient_norms(dense_gradient_norms: Callable[[Layer], object]) -> None:
    r"""Check ``dense_gradient_norms(model)``.

    It must return :math:`\lVert \partial L/\partial W_\ell \rVert_F` for each
    ``Dense`` layer of ``model``, in the order of the forward pass, Dense layers
    inside ``Residual`` blocks included, read from ``.grad`` (after a backward
    pass) and without changing any gradient.
    """
    for model, dense in _norms_models():
        _check_norms_case(dense_gradient_norms, model, dense)
    passed("dense_gradient_norms: every Dense layer, in order (two models).")


def _check_norms_case(dense_gradient_norms: Callable[[Layer], object], model: Sequential,
                      dense: list[Dense]) -> None:
    what = "dense_gradient_norms(model)"
    grads_before = [p.grad.copy() for p in model.parameters()]
    values_before = [p.value.copy() for p in model.parameters()]
    result = run_learner_code(dense_gradient_norms, model, what=what)
    for p, g, v in zip(model.parameters(), grads_before, values_before, strict=True):
        if not (np.array_equal(p.grad, g) and np.array_equal(p.value, v)):
            raise AssertionError(f"{what} changed the parameters' .grad or .value; only read "
                                 "them.")
    if isinstance(result, (str, bytes, dict)) or np.ndim(result) > 1:
        raise AssertionError(f"{what} must return a list or array of numbers, one per Dense "
                             f"layer, got {type(result).__name__}.")
    norms = as_array(result, what=f"{what}'s result").ravel()
    expected = np.array([np.sqrt(np.sum(d.weight.grad ** 2)) for d in dense])
    if len(norms) != len(expected):
        top = sum(isinstance(layer, Dense) for layer in model)
        named_weight = sum(name.endswith("weight") for name, _ in model.named_parameters())
        hint = ""
        if len(norms) == top:
            hint = (f" You found only the top-level Dense layers; {len(dense) - top} more sit "
                    "inside a Residual block. Walk model.modules(), which visits every layer at "
                    "any depth.")
        elif len(norms) == named_weight:
            hint = (" A LayerNorm's gain is also called 'weight': choose the layers by type, "
                    "isinstance(layer, Dense), not the parameters by name.")
        elif len(norms) == len(model.parameters()):
            hint = " Count Dense weights only, not biases or other parameters."
        raise AssertionError(f"{what} returned {len(norms)} norms, but the test model has "
                             f"{len(expected)} Dense layers.{hint}")
    if not np.allclose(norms, expected):
        weights = np.array([np.linalg.norm(d.weight.value) for d in dense])
        with_bias = np.array([np.sqrt(np.sum(d.weight.grad ** 2)
                                      + (0.0 if d.bias is None else np.sum(d.bias.grad ** 2)))
                              for d in dense])
        diagnoses = [
            (expected[::-1], "The norms are in reverse order (the order of the backward "
                             "pass): list them first layer first."),
            (expected ** 2, "These are squared norms: take the square root of the sum of "
                            "squares (np.linalg.norm)."),
            (weights, "These are norms of the weights themselves; use each layer's "
                      "weight.grad."),
            (with_bias, "These include the bias gradients; use weight.grad only."),
        ]
        diagnose(norms, diagnoses, what=what, rtol=1e-5, atol=1e-8)
        assert_close(norms, expected, what=what,
                     hint="For each Dense layer in model.modules(), compute "
                          "np.linalg.norm(layer.weight.grad).")


# -- the pre-LN residual block ------------------------------------------------------

def _n_params(layer: Layer) -> int:
    return sum(p.value.size for p in layer.parameters())


def check_pre_ln_block(pre_ln_block: Callable[..., Layer]) -> None:
    r"""Check ``pre_ln_block(dim, hidden, rng)``.

    It must build (from ``regmlp`` layers) the block
    :math:`y = x + W_2\,\mathrm{relu}(W_1\,\mathrm{LN}(x) + b_1) + b_2`, whose
    branch sees ``x`` only through its LayerNorm, with its weights drawn from
    ``rng`` alone. The checks are by behaviour: the parameter count; the branch
    output ``y - x`` does not change when a row of ``x`` is scaled or shifted
    (LayerNorm removes both); the branch is not affine; the gradients are right;
    the same ``rng`` seed gives the same block and another seed another block.
    """
    for dim, hidden in ((6, 10), (4, 3)):
        _check_pre_ln_case(pre_ln_block, dim, hidden)
    passed("pre_ln_block: x + Dense(ReLU(Dense(LayerNorm(x)))), from rng.")


def _check_pre_ln_case(pre_ln_block: Callable[..., Layer], dim: int, hidden: int) -> None:
    what = f"pre_ln_block(dim={dim}, hidden={hidden}, rng)"
    block = run_learner_code(pre_ln_block, dim, hidden, np.random.default_rng(7), what=what)
    if not isinstance(block, Layer):
        raise AssertionError(f"{what} must return a regmlp Layer (e.g. a Residual), "
                             f"got {type(block).__name__}.")
    n_expected = 2 * dim + (dim * hidden + hidden) + (hidden * dim + dim)
    n = _n_params(block)
    if n != n_expected:
        has_ln = any(isinstance(m, LayerNorm) for m in block.modules())
        hint = ("" if has_ln else " There is no LayerNorm in it: the branch starts with "
                "LayerNorm(dim).")
        raise AssertionError(
            f"{what} with dim={dim}, hidden={hidden} has {n} parameters, expected "
            f"{n_expected}: LayerNorm(dim) (2*dim), Dense(dim, hidden) and Dense(hidden, dim), "
            f"with biases.{hint}")

    rng = np.random.default_rng(8)
    x = rng.standard_normal((5, dim)) * 4.0 + rng.standard_normal((5, 1))
    y = _call(block.forward, x, what="the block's forward")
    if y.shape != x.shape:
        raise AssertionError(f"The block maps shape {x.shape} to {y.shape}; a residual block "
                             "must keep the shape of its input.")
    x2 = 3.0 * x + 2.0                   # every row scaled and shifted
    y2 = _call(block.forward, x2, what="the block's forward")
    if not np.allclose(y2 - x2, y - x, rtol=1e-5, atol=1e-6):
        if np.allclose(y2, y, rtol=1e-5, atol=1e-6):
            hint = ("The block's whole output ignores a scaling of x: the identity path "
                    "is missing. Wrap the branch in Residual(...), so y = x + f(LN(x)).")
        elif np.allclose(y.mean(axis=-1), 0, atol=1e-6) and np.allclose(y.std(axis=-1), 1,
                                                                         atol=1e-3):
            hint = ("Each output row has mean 0 and standard deviation 1: the LayerNorm "
                    "comes after the addition (post-LN, LN(x + f(x))). In a pre-LN block "
                    "it is the first layer of the branch: Residual(Sequential(LayerNorm(dim),"
                    " Dense(dim, hidden), ReLU(), Dense(hidden, dim))).")
        else:
            hint = ("The branch must see x only through LayerNorm, so it is the first layer "
                    "of the branch: Residual(Sequential(LayerNorm(dim), Dense(dim, hidden), "
                    "ReLU(), Dense(hidden, dim))).")
        raise AssertionError(f"The branch output y - x changed when each row of x was scaled "
                             f"and shifted. {hint}")
    if np.allclose(y, x):
        raise AssertionError("The block returns its input unchanged: the branch adds nothing. "
                             "Did the Dense layers get initialised to zero?")
    # a ReLU between the two Dense layers: the branch is not affine in LN(x)
    z = x.copy()
    z[:, :] = np.linspace(-1.0, 1.0, dim)
    f = [_call(block.forward, s * z, what="the block's forward") - s * z for s in (1.0, -1.0)]
    f0 = _call(block.forward, 0.0 * z + 1.0, what="the block's forward") - 1.0
    if np.allclose(f[0] + f[1], 2 * f0, rtol=1e-6, atol=1e-9):
        raise AssertionError("The branch is affine in LN(x): put a ReLU between the two Dense "
                             "layers, Dense(dim, hidden), ReLU(), Dense(hidden, dim).")
    from ..gradcheck import check_gradients
    err = run_learner_code(check_gradients, block, x, rng=9, what="check_gradients(block, x)")
    if not err <= 1e-6:
        raise AssertionError(f"The block's backward pass disagrees with finite differences "
                             f"(relative error {err:.2g}). Build it from regmlp layers "
                             "(Residual, Sequential, LayerNorm, Dense, ReLU) so that their "
                             "tested backward passes are used.")
    same = run_learner_code(pre_ln_block, dim, hidden, np.random.default_rng(7), what=what)
    other = run_learner_code(pre_ln_block, dim, hidden, np.random.default_rng(70), what=what)
    y_same = _call(same.forward, x, what="the block's forward")
    y_other = _call(other.forward, x, what="the block's forward")
    if not np.allclose(y_same, y):
        raise AssertionError(f"Two calls of {what} with generators of the same seed gave "
                             "different blocks: draw every weight from the rng argument.")
    if np.allclose(y_other, y):
        raise AssertionError(f"{what} gave the same block for different rng seeds: pass rng "
                             "to the Dense layers (Dense(dim, hidden, rng=rng)).")
    for (name, p), q in zip(same.named_parameters(), other.parameters(), strict=True):
        drawn = not np.all(p.value == p.value.flat[0])        # not a constant initialisation
        if drawn and np.array_equal(p.value, q.value):
            raise AssertionError(
                f"{what}: the parameter {name!r} is the same for different rng seeds, so it "
                "was not drawn from the rng argument (a seed of its own?). Pass the same rng "
                "to every Dense layer: Dense(dim, hidden, rng=rng), Dense(hidden, dim, rng=rng).")


def _call(fn: Callable[[np.ndarray], np.ndarray], x: np.ndarray, *, what: str) -> np.ndarray:
    return as_array(run_learner_code(fn, x.copy(), what=what), what=f"{what}'s output")


# -- the variance of a residual stream after k blocks ---------------------------------

def _stream_variance(v0: float, alpha: float, k: int, pre_ln: bool) -> float:
    """v0 (1 + alpha)**k without normalisation; v0 + k alpha with pre-LN blocks."""
    return v0 + k * alpha if pre_ln else v0 * (1.0 + alpha) ** k


def _variance_mistakes(v0: float, alpha: float, k: int,
                       pre_ln: bool) -> list[tuple[float, str]]:
    """The usual wrong predictions, each with what to change."""
    geometric = [
        (v0 * alpha ** k,
         "The identity path is missing: a block keeps x and adds f(x), so the variance is "
         "multiplied by (1 + alpha), not by alpha."),
        (v0 * (1.0 + k * alpha),
         "Without normalisation the growth is not linear: each branch adds alpha times the "
         "*current* stream's variance, which has already grown, so the k factors (1 + alpha) "
         "multiply."),
        (v0 * (1.0 + alpha) ** (k - 1),
         "Off by one: k blocks give k factors (1 + alpha), and k = 0 gives v0 itself."),
        (v0 * (1.0 + alpha) ** (k + 1),
         "Off by one: k blocks give k factors (1 + alpha), and k = 0 gives v0 itself."),
        (v0 * (1.0 + alpha ** 2) ** k,
         "alpha is already a ratio of variances (Var f / Var x): do not square it."),
        (v0 * (1.0 + alpha) ** (2 * k),
         "The variance, not the standard deviation, is what adds: one factor (1 + alpha) per "
         "block, not its square."),
    ]
    if not pre_ln:
        return geometric
    return [
        (v0 * (1.0 + alpha) ** k,
         "With pre_ln=True the branch sees LN(x), whose variance is 1 whatever the stream's, "
         "so every block adds the same alpha: the growth is linear, v0 + k * alpha."),
        (v0 + k * alpha * v0,
         "The pre-LN branch sees LN(x), with variance 1, not the stream's v0: each block adds "
         "alpha * 1."),
        (k * alpha,
         "The stream starts with variance v0 before the first block: add the k increments "
         "to v0."),
        (v0 + (k - 1) * alpha,
         "Off by one: k blocks add k increments, and k = 0 gives v0 itself."),
        (v0 + (k + 1) * alpha,
         "Off by one: k blocks add k increments, and k = 0 gives v0 itself."),
    ]


def check_stream_variance(stream_variance: Callable[..., float]) -> None:
    r"""Check ``stream_variance(v0, alpha, k, pre_ln=False)``.

    Without normalisation :math:`\operatorname{Var}(x_k) = v_0 (1 + \alpha)^k`; with
    pre-LN blocks :math:`v_0 + k\alpha`, where :math:`\alpha` is the ratio of a
    branch's output variance to its input variance. Several values of every argument
    are tried, including ``k = 0`` and ``alpha`` above 1.
    """
    what = "stream_variance(v0, alpha, k, pre_ln)"
    cases = [(v0, alpha, k) for v0 in (1.0, 0.25, 4.0) for alpha in (0.125, 1.0, 2.0)
             for k in (0, 3, 10, 1)]
    for pre_ln in (False, True):
        for v0, alpha, k in cases:
            got = run_learner_code(stream_variance, v0, alpha, k, pre_ln=pre_ln, what=what)
            try:
                got = float(got)
            except (TypeError, ValueError):
                raise AssertionError(f"{what} must return a number, got "
                                     f"{type(got).__name__}") from None
            expected = _stream_variance(v0, alpha, k, pre_ln)
            if np.isclose(got, expected, rtol=1e-9, atol=1e-12):
                continue
            call = f"stream_variance({v0}, {alpha}, {k}, pre_ln={pre_ln})"
            for candidate, hint in _variance_mistakes(v0, alpha, k, pre_ln):
                if np.isclose(got, candidate, rtol=1e-9, atol=1e-12):
                    raise AssertionError(f"{call} returned {got:.6g}, expected "
                                         f"{expected:.6g}. {hint}")
            kind = "v0 + k * alpha (pre-LN)" if pre_ln else "v0 * (1 + alpha)**k"
            raise AssertionError(f"{call} returned {got:.6g}, expected {expected:.6g}. "
                                 f"Write Var(x_k+1) = Var(x_k) + Var(f(x_k)) and use what the "
                                 f"branch sees; the answer has the form {kind}.")
    passed("stream_variance: geometric without normalisation, linear with pre-LN blocks.")
