"""Tests of regmlp.layers: gradient checks and the semantics of DESIGN.md §3.2.

The gradient checks use different seeds for the input ``x`` and for
``check_gradients``' random functional ``R``: with the same seed, ``R`` equals
``x``, and for LayerNorm the input gradient of ``sum(x * LN(x))`` is then close
to zero, which would make the relative error meaningless.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import randn, randomise_layernorm

from regmlp.gradcheck import check_gradients
from regmlp.layers import Dense, Dropout, Layer, LayerNorm, Parameter, ReLU, Residual, Sequential

TOL = 1e-7
X_SEED, R_SEED = 0, 12345


def global_state_equal(a: tuple, b: tuple) -> bool:
    """Whether two ``np.random.get_state()`` tuples are the same state."""
    return a[0] == b[0] and np.array_equal(a[1], b[1]) and tuple(a[2:]) == tuple(b[2:])


def away_from_zero(shape: tuple[int, ...], seed: int = X_SEED) -> np.ndarray:
    """Random values with ``0.2 <= |x| <= 1.2`` (ReLU's kink is far from every entry)."""
    rng = np.random.default_rng(seed)
    return rng.choice([-1.0, 1.0], size=shape) * rng.uniform(0.2, 1.2, size=shape)


# ---------------------------------------------------------------------------
# gradient checks, one layer at a time and one network
# ---------------------------------------------------------------------------


def test_gradcheck_dense_with_bias():
    assert check_gradients(Dense(5, 3, rng=1), randn(4, 5), rng=R_SEED) <= TOL


def test_gradcheck_dense_without_bias():
    layer = Dense(5, 3, bias=False, rng=1)
    assert layer.bias is None and len(layer.parameters()) == 1
    assert check_gradients(layer, randn(4, 5), rng=R_SEED) <= TOL


def test_gradcheck_relu_away_from_kink():
    assert check_gradients(ReLU(), away_from_zero((6, 7)), rng=R_SEED) <= TOL


def test_gradcheck_dropout_train_mode_fixed_mask():
    drop = Dropout(0.4, rng=3)
    assert drop.training
    assert check_gradients(drop, randn(6, 7), rng=R_SEED) <= TOL
    # the mask really drops something, so the check is not of the identity
    assert 0 < np.count_nonzero(~drop.mask) < drop.mask.size


def test_gradcheck_dropout_eval_mode():
    drop = Dropout(0.4, rng=3).eval()
    assert check_gradients(drop, randn(6, 7), rng=R_SEED) <= TOL


def test_gradcheck_layernorm_random_gain_and_shift():
    ln = randomise_layernorm(LayerNorm(6), seed=7)
    assert check_gradients(ln, 3.0 * randn(5, 6) + 1.0, rng=R_SEED) <= TOL


def test_gradcheck_layernorm_3d_input():
    ln = randomise_layernorm(LayerNorm(4), seed=8)
    assert check_gradients(ln, randn(2, 3, 4), rng=R_SEED) <= TOL


def test_gradcheck_residual():
    block = Residual(Sequential(Dense(5, 5, rng=2), ReLU(), Dense(5, 5, rng=3)))
    assert check_gradients(block, randn(4, 5), rng=R_SEED) <= TOL


def make_network(seed: int = 0) -> Sequential:
    rng = np.random.default_rng(seed)
    return Sequential(
        Dense(4, 8, rng=rng),
        ReLU(),
        Dropout(0.25, rng=rng),
        Residual(Sequential(randomise_layernorm(LayerNorm(8), seed + 1),
                            Dense(8, 8, rng=rng), ReLU(), Dropout(0.1, rng=rng))),
        randomise_layernorm(LayerNorm(8), seed + 2),
        Dense(8, 1, rng=rng),
    )


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_gradcheck_network(mode):
    model = make_network()
    model.train(mode == "train")
    assert check_gradients(model, randn(6, 4), rng=R_SEED) <= TOL


# ---------------------------------------------------------------------------
# Parameter and gradient accumulation
# ---------------------------------------------------------------------------


def test_parameter_grad_starts_at_zero_with_same_shape():
    p = Parameter(np.arange(6.0).reshape(2, 3))
    assert p.grad.shape == p.value.shape == (2, 3)
    assert p.grad.dtype == p.value.dtype
    assert np.all(p.grad == 0)
    assert p.decay is True
    for layer in (Dense(3, 4, rng=0), LayerNorm(4)):
        for q in layer.parameters():
            assert q.grad.shape == q.value.shape and np.all(q.grad == 0)


def test_parameter_copies_its_value_and_ints_become_float():
    v = np.ones(3)
    p = Parameter(v)
    v[0] = 5.0
    assert p.value[0] == 1.0
    assert Parameter(np.arange(3)).value.dtype == np.float64
    assert Parameter(np.ones(2, dtype=np.float32)).value.dtype == np.float32


@pytest.mark.parametrize("make", [lambda: Dense(3, 2, rng=0),
                                  lambda: randomise_layernorm(LayerNorm(3), 1)],
                         ids=["Dense", "LayerNorm"])
def test_backward_accumulates_into_grad(make):
    layer = make()
    x, g = randn(4, 3), randn(4, layer(randn(4, 3)).shape[1], seed=5)
    layer.forward(x)
    layer.backward(g)
    once = [p.grad.copy() for p in layer.parameters()]
    assert any(np.any(o != 0) for o in once)
    layer.backward(g)
    for p, o in zip(layer.parameters(), once, strict=True):
        np.testing.assert_allclose(p.grad, 2 * o, rtol=1e-15, atol=0)
    layer.zero_grad()
    assert all(np.all(p.grad == 0) for p in layer.parameters())


# ---------------------------------------------------------------------------
# Dense
# ---------------------------------------------------------------------------


def test_dense_shapes_and_init_bounds():
    n_in, n_out = 16, 300
    layer = Dense(n_in, n_out, rng=0)
    bound = 1 / np.sqrt(n_in)
    assert layer.weight.value.shape == (n_in, n_out)
    assert layer.bias.value.shape == (n_out,)
    for p in (layer.weight, layer.bias):
        assert np.all(np.abs(p.value) <= bound)
        # uniform over the whole range, not a narrower one
        assert p.value.max() > 0.9 * bound and p.value.min() < -0.9 * bound
    assert layer.weight.decay and not layer.bias.decay
    assert layer(np.zeros((7, n_in))).shape == (7, n_out)


def test_dense_computes_x_at_w_plus_b():
    layer = Dense(3, 2, rng=0)
    x = randn(4, 3)
    np.testing.assert_allclose(layer(x), x @ layer.weight.value + layer.bias.value)


@pytest.mark.parametrize("x", [np.ones((2, 3)), np.ones((2, 3), dtype=int),
                               np.ones((2, 3), dtype=np.float32)],
                         ids=["float64", "int", "float32"])
def test_dense_keeps_parameter_dtype(x):
    layer = Dense(3, 2, rng=0, dtype=np.float32)
    assert layer.weight.value.dtype == layer.bias.value.dtype == np.float32
    y = layer(x)
    assert y.dtype == np.float32
    assert layer.backward(np.ones_like(y)).dtype == np.float32
    assert layer.weight.grad.dtype == np.float32


# ---------------------------------------------------------------------------
# Dropout
# ---------------------------------------------------------------------------


def test_dropout_inverted_scaling():
    p = 0.3
    drop = Dropout(p, rng=0)
    x = randn(50, 40) + 3.0
    y = drop(x)
    assert drop.mask.dtype == bool and drop.mask.shape == x.shape
    np.testing.assert_allclose(y[drop.mask], x[drop.mask] / (1 - p), rtol=1e-15)
    assert np.all(y[~drop.mask] == 0)


@pytest.mark.parametrize("dtype, out", [(np.int64, np.float64), (np.int32, np.float64),
                                        (np.float16, np.float16), (np.float32, np.float32)],
                         ids=["int64", "int32", "float16", "float32"])
def test_dropout_trains_on_integer_and_float16_input(dtype, out):
    """Integers become float64 (x / (1 - p) is not an integer); floats keep their dtype."""
    drop = Dropout(0.5, rng=0)
    x = np.arange(1, 13).reshape(3, 4).astype(dtype)
    y = drop(x)
    assert y.dtype == out and drop.mask.any() and not drop.mask.all()
    np.testing.assert_array_equal(y, np.where(drop.mask, x.astype(out) * 2, 0))
    grad = drop.backward(np.ones_like(y))
    assert grad.dtype == out
    np.testing.assert_array_equal(grad, np.where(drop.mask, 2, 0).astype(out))


def test_dropout_expectation_is_the_input():
    """The mean over N draws is within 5 standard errors of x.

    Each draw of ``y_j`` is ``x_j / (1-p)`` with probability ``1-p`` and 0
    otherwise, so ``Var(y_j) = x_j**2 * p / (1-p)`` and the standard error of a
    mean over ``N`` independent draws is ``|x_j| * sqrt(p / ((1-p) N))``.
    """
    p, n_draws = 0.5, 20_000
    x = np.linspace(-2.0, 3.0, 12)
    y = Dropout(p, rng=1)(np.tile(x, (n_draws, 1)))
    se = np.abs(x) * np.sqrt(p / ((1 - p) * n_draws))
    assert np.all(np.abs(y.mean(axis=0) - x) <= 5 * se)


def test_dropout_drop_fraction_is_p():
    p, shape = 0.2, (400, 250)
    drop = Dropout(p, rng=2)
    drop(np.ones(shape))
    n = np.prod(shape)
    frac = np.count_nonzero(~drop.mask) / n
    assert abs(frac - p) <= 5 * np.sqrt(p * (1 - p) / n)


def test_dropout_is_identity_in_eval():
    drop = Dropout(0.5, rng=0).eval()
    x = randn(3, 4)
    y = drop(x)
    assert y is x
    g = randn(3, 4, seed=1)
    np.testing.assert_array_equal(drop.backward(g), g)


def test_dropout_backward_uses_the_same_mask():
    p = 0.4
    drop = Dropout(p, rng=5)
    x = randn(20, 10)
    drop(x)
    mask = drop.mask.copy()
    g = randn(20, 10, seed=6)
    gx = drop.backward(g)
    assert np.all(gx[~mask] == 0)
    np.testing.assert_allclose(gx[mask], g[mask] / (1 - p), rtol=1e-15)


def test_dropout_p_zero_is_identity_in_training():
    drop = Dropout(0.0, rng=0)
    assert drop.training
    x = randn(3, 4)
    np.testing.assert_array_equal(drop(x), x)
    np.testing.assert_array_equal(drop.backward(x), x)


def test_dropout_mask_is_boolean_keep_mask():
    drop = Dropout(0.5, rng=0)
    x = np.ones((8, 8))
    y = drop(x)
    assert drop.mask.dtype == np.bool_
    np.testing.assert_array_equal(drop.mask, y != 0)  # True means kept


def test_dropout_new_mask_each_forward():
    drop = Dropout(0.5, rng=0)
    drop(np.ones((10, 10)))
    first = drop.mask.copy()
    drop(np.ones((10, 10)))
    assert not np.array_equal(first, drop.mask)


# ---------------------------------------------------------------------------
# LayerNorm
# ---------------------------------------------------------------------------


def layernorm_reference(x, gain, shift, eps, ddof=0):
    mu = x.mean(axis=-1, keepdims=True)
    var = np.var(x, axis=-1, ddof=ddof, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * gain + shift


def test_layernorm_constant_rows_are_finite_and_equal_the_shift():
    ln = randomise_layernorm(LayerNorm(5), seed=3)
    x = np.full((3, 5), 7.0)
    y = ln(x)
    assert np.all(np.isfinite(y))
    np.testing.assert_allclose(y, np.broadcast_to(ln.bias.value, y.shape), atol=1e-12)
    assert np.all(np.isfinite(ln.backward(np.ones_like(y))))


def test_layernorm_without_eps_is_nan_on_a_constant_row():
    """DESIGN.md §7: "LayerNorm without eps (NaN on a constant row)" -- what eps prevents."""
    with np.errstate(divide="ignore", invalid="ignore"):
        y = LayerNorm(5, eps=0.0)(np.full((1, 5), 7.0))
    assert np.all(np.isnan(y))


def test_layernorm_uses_biased_variance():
    ln = randomise_layernorm(LayerNorm(4), seed=4)
    x = 2.0 * randn(6, 4) + 1.0
    args = (ln.weight.value, ln.bias.value, ln.eps)
    y = ln(x)
    np.testing.assert_allclose(y, layernorm_reference(x, *args, ddof=0), rtol=1e-12, atol=1e-12)
    # the unbiased variant (a section 7 bug) is measurably different
    unbiased = layernorm_reference(x, *args, ddof=1)
    assert np.max(np.abs(y - unbiased)) > 1e-2


def test_layernorm_eps_inside_the_square_root():
    eps = 1e-2
    ln = LayerNorm(2, eps=eps)
    x = np.array([[0.0, 0.1], [1.0, -1.0]])
    y = ln(x)
    xc = x - x.mean(axis=-1, keepdims=True)
    var = np.var(x, axis=-1, keepdims=True)
    np.testing.assert_allclose(y, xc / np.sqrt(var + eps), rtol=1e-14)
    eps_outside = xc / (np.sqrt(var) + eps)
    assert np.max(np.abs(y - eps_outside)) > 1e-2


def test_layernorm_same_in_train_and_eval():
    ln = randomise_layernorm(LayerNorm(5), seed=5)
    x = randn(4, 5)
    y_train = ln.train()(x)
    y_eval = ln.eval()(x)
    np.testing.assert_array_equal(y_train, y_eval)


def test_layernorm_is_per_sample():
    ln = randomise_layernorm(LayerNorm(5), seed=6)
    row = randn(1, 5)
    a = ln(np.vstack([row, randn(3, 5, seed=1)]))[0]
    b = ln(np.vstack([row, 100.0 * randn(7, 5, seed=2) - 50.0]))[0]
    c = ln(row)[0]
    np.testing.assert_allclose(a, c, rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(b, c, rtol=1e-14, atol=1e-15)


def test_layernorm_parameters_are_ones_and_zeros_and_not_decayed():
    ln = LayerNorm(3)
    np.testing.assert_array_equal(ln.weight.value, np.ones(3))
    np.testing.assert_array_equal(ln.bias.value, np.zeros(3))
    assert not ln.weight.decay and not ln.bias.decay


# ---------------------------------------------------------------------------
# Residual
# ---------------------------------------------------------------------------


def test_residual_adds_the_identity():
    block = Sequential(Dense(3, 3, rng=0), ReLU())
    x = randn(4, 3)
    np.testing.assert_allclose(Residual(block)(x), x + block(x))


# ---------------------------------------------------------------------------
# Sequential: container protocol and weights
# ---------------------------------------------------------------------------


def test_sequential_len_index_slice_iter():
    layers = [Dense(3, 4, rng=0), ReLU(), Dense(4, 2, rng=1)]
    model = Sequential(*layers)
    assert len(model) == 3
    assert model[0] is layers[0] and model[-1] is layers[2]
    head = model[:2]
    assert isinstance(head, Sequential) and len(head) == 2
    assert head[0] is layers[0] and head[1] is layers[1]
    assert list(model) == layers
    x = randn(5, 3)
    np.testing.assert_array_equal(model(x), model[2](model[:2](x)))


def test_state_dict_returns_copies():
    model = Sequential(Dense(3, 4, rng=0), ReLU(), Dense(4, 2, rng=1))
    state = model.state_dict()
    assert set(state) == {"0.weight", "0.bias", "2.weight", "2.bias"}
    before = model[0].weight.value.copy()
    state["0.weight"][...] = 99.0
    np.testing.assert_array_equal(model[0].weight.value, before)
    assert state["0.weight"] is not model[0].weight.value


def test_state_dict_names_nested_parameters():
    model = Sequential(Dense(3, 3, rng=0), Residual(Sequential(LayerNorm(3), Dense(3, 3, rng=1))))
    assert set(model.state_dict()) == {
        "0.weight", "0.bias", "1.block.0.weight", "1.block.0.bias",
        "1.block.1.weight", "1.block.1.bias"}


def test_load_state_dict_round_trip_into_existing_arrays():
    model = make_network(seed=0)
    other = make_network(seed=1)
    arrays = [p.value for p in other.parameters()]
    state = model.state_dict()
    other.load_state_dict(state)
    for p, arr in zip(other.parameters(), arrays, strict=True):
        assert p.value is arr  # copied into, not replaced
    for name, value in other.state_dict().items():
        np.testing.assert_array_equal(value, state[name])
    # the loaded values are copies: changing the dict later does not leak in
    state["0.weight"][...] = 0.0
    assert np.any(other[0].weight.value != 0)
    x = randn(3, 4)
    np.testing.assert_array_equal(model.eval()(x), other.eval()(x))


def test_save_and_load_npz_round_trip(tmp_path):
    model = make_network(seed=0)
    other = make_network(seed=1)
    path = tmp_path / "weights.npz"
    model.save(path)
    with np.load(path, allow_pickle=False) as data:
        assert set(data.files) == set(model.state_dict())
    other.load(path)
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(other.state_dict()[name], value)


def test_train_and_eval_are_recursive():
    inner = Dropout(0.5, rng=0)
    model = Sequential(Dense(3, 3, rng=0), Residual(Sequential(inner, ReLU())), Dropout(0.5))
    model.eval()
    assert all(not m.training for m in model.modules())
    assert len(list(model.modules())) == 7
    x = randn(2, 3)
    np.testing.assert_array_equal(inner(x), x)
    model.train()
    assert all(m.training for m in model.modules())
    model.train(False)
    assert not inner.training


# ---------------------------------------------------------------------------
# randomness: no global state, seeds reproduce
# ---------------------------------------------------------------------------


def test_no_global_random_state_is_used():
    before = np.random.get_state()  # noqa: NPY002
    for rng in (None, 0, np.random.default_rng(1)):
        model = Sequential(Dense(3, 4, rng=rng), Dropout(0.5, rng=rng), LayerNorm(4))
        model(np.ones((5, 3)))
        model.backward(np.ones((5, 4)))
        check_gradients(model, randn(5, 3), rng=rng)
    assert global_state_equal(before, np.random.get_state())  # noqa: NPY002


def test_same_seed_same_init_and_masks():
    a, b = Dense(4, 3, rng=7), Dense(4, 3, rng=7)
    np.testing.assert_array_equal(a.weight.value, b.weight.value)
    np.testing.assert_array_equal(a.bias.value, b.bias.value)
    assert not np.array_equal(a.weight.value, Dense(4, 3, rng=8).weight.value)
    da, db = Dropout(0.5, rng=3), Dropout(0.5, rng=3)
    for _ in range(3):
        da(np.ones((6, 6)))
        db(np.ones((6, 6)))
        np.testing.assert_array_equal(da.mask, db.mask)


def test_layer_base_class_is_abstract():
    with pytest.raises(NotImplementedError):
        Layer().forward(np.ones(2))


def test_a_layer_object_used_twice_is_refused():
    # The second call would overwrite the first call's cache (a Dropout's mask,
    # a Dense's input), so backward would silently be wrong.
    drop = Dropout(0.5, rng=0)
    with pytest.raises(ValueError, match="appears twice"):
        Sequential(Dense(4, 4, rng=0), drop, Dense(4, 4, rng=1), drop)
    dense = Dense(4, 4, rng=0)
    with pytest.raises(ValueError, match="appears twice"):
        Sequential(dense, Residual(Sequential(dense)))
    block = Sequential(Dense(4, 4, rng=2), ReLU())
    with pytest.raises(ValueError, match="appears twice"):
        Sequential(Residual(block), Residual(block))
