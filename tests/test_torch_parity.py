"""regmlp against PyTorch, where PyTorch has the same thing.

PyTorch is not part of the default install (it is in the ``bench`` extra), so
these tests skip without it; ``make bench`` installs ``torch==2.13.0`` and runs
them before the benchmark. Each compares values and gradients in float64.
"""

from __future__ import annotations

import numpy as np
import pytest

from regmlp import MSE, Dense, Dropout, LayerNorm, ReLU, Residual, Sequential

torch = pytest.importorskip("torch")


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def test_dense_matches_linear():
    layer = Dense(5, 3, rng=1)
    lin = torch.nn.Linear(5, 3).double()
    with torch.no_grad():  # torch stores the weight as (out, in)
        lin.weight.copy_(torch.from_numpy(layer.weight.value.T.copy()))
        lin.bias.copy_(torch.from_numpy(layer.bias.value))
    x = _rng().standard_normal((7, 5))
    g = _rng(2).standard_normal((7, 3))
    xt = torch.tensor(x, requires_grad=True)
    lin(xt).backward(torch.from_numpy(g))
    out = layer(x)
    gx = layer.backward(g)
    np.testing.assert_allclose(out, lin(xt).detach().numpy(), rtol=1e-13)
    np.testing.assert_allclose(gx, xt.grad.numpy(), rtol=1e-13)
    np.testing.assert_allclose(layer.weight.grad, lin.weight.grad.numpy().T, rtol=1e-13)
    np.testing.assert_allclose(layer.bias.grad, lin.bias.grad.numpy(), rtol=1e-13)


def test_dense_initialisation_has_torch_bounds():
    n_in = 50
    ours = Dense(n_in, 400, rng=0).weight.value
    theirs = torch.nn.Linear(n_in, 400).weight.detach().numpy()
    bound = 1 / np.sqrt(n_in)
    for w in (ours, theirs):
        assert np.abs(w).max() <= bound
        assert np.abs(w).max() > 0.99 * bound     # uniform up to the bound
        assert abs(w.std() - bound / np.sqrt(3)) < 0.02 * bound


def test_layernorm_matches_torch():
    ln = LayerNorm(6)
    ln.weight.value[:] = _rng(3).standard_normal(6)
    ln.bias.value[:] = _rng(4).standard_normal(6)
    tln = torch.nn.LayerNorm(6, eps=1e-5).double()
    with torch.no_grad():
        tln.weight.copy_(torch.from_numpy(ln.weight.value))
        tln.bias.copy_(torch.from_numpy(ln.bias.value))
    x = _rng().standard_normal((4, 6)) * 3 + 1
    x[0] = 2.5                                   # a constant row
    g = _rng(5).standard_normal((4, 6))
    xt = torch.tensor(x, requires_grad=True)
    tln(xt).backward(torch.from_numpy(g))
    np.testing.assert_allclose(ln(x), tln(xt).detach().numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(ln.backward(g), xt.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(ln.weight.grad, tln.weight.grad.numpy(), rtol=1e-12)
    np.testing.assert_allclose(ln.bias.grad, tln.bias.grad.numpy(), rtol=1e-12)


def test_mse_matches_torch():
    pred, target = _rng().standard_normal((9, 1)), _rng(1).standard_normal((9, 1))
    loss = MSE()
    pt = torch.tensor(pred, requires_grad=True)
    value = torch.nn.functional.mse_loss(pt, torch.from_numpy(target))
    value.backward()
    assert loss.forward(pred, target) == pytest.approx(value.item(), rel=1e-14)
    np.testing.assert_allclose(loss.backward(), pt.grad.numpy(), rtol=1e-14)


def test_dropout_has_torch_semantics():
    x = np.ones((200, 500))
    ours = Dropout(0.3, rng=0)
    theirs = torch.nn.Dropout(0.3)
    torch.manual_seed(0)
    for y in (ours(x), theirs(torch.from_numpy(x)).numpy()):
        kept = y[y != 0]
        np.testing.assert_allclose(kept, 1 / 0.7)          # survivors scaled by 1/(1-p)
        assert abs((y == 0).mean() - 0.3) < 0.01            # p is the drop probability
    ours.eval()
    theirs.eval()
    np.testing.assert_array_equal(ours(x), theirs(torch.from_numpy(x)).numpy())  # identity


def test_residual_network_gradients_match_torch():
    model = Sequential(Dense(4, 8, rng=0), ReLU(),
                       Residual(Sequential(LayerNorm(8), Dense(8, 8, rng=1), ReLU())),
                       Dense(8, 1, rng=2))
    d0, _, res, d3 = model
    ln, d1 = res.block[0], res.block[1]

    def linear(d):
        lin = torch.nn.Linear(d.n_in, d.n_out).double()
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(d.weight.value.T.copy()))
            lin.bias.copy_(torch.from_numpy(d.bias.value))
        return lin

    t0, t1, t3, tln = linear(d0), linear(d1), linear(d3), torch.nn.LayerNorm(8).double()

    def torch_forward(x):
        h = torch.relu(t0(x))
        h = h + torch.relu(t1(tln(h)))
        return t3(h)

    x, y = _rng(7).standard_normal((10, 4)), _rng(8).standard_normal((10, 1))
    loss = MSE()
    loss.forward(model(x), y)
    model.backward(loss.backward())
    torch.nn.functional.mse_loss(torch_forward(torch.from_numpy(x)), torch.from_numpy(y)).backward()
    for ours, theirs in [(d0, t0), (d1, t1), (d3, t3)]:
        np.testing.assert_allclose(ours.weight.grad, theirs.weight.grad.numpy().T, rtol=1e-10)
        np.testing.assert_allclose(ours.bias.grad, theirs.bias.grad.numpy(), rtol=1e-10)
    np.testing.assert_allclose(ln.weight.grad, tln.weight.grad.numpy(), rtol=1e-10)
