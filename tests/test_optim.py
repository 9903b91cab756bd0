r"""Tests of regmlp.optim: each optimizer against formulas written out here, by hand.

The reference updates below are deliberately independent of the package: they
work on one coordinate at a time with Python floats, exactly as the update
rules read in a paper.

Coupled L2 (SGD, Adam) versus decoupled decay (SGDW, AdamW)
-----------------------------------------------------------
For a parameter :math:`\theta` with gradient :math:`g`, learning rate
:math:`\eta`, momentum :math:`\mu` and decay :math:`\lambda`:

* SGD:  :math:`b_t = \mu b_{t-1} + g_t + \lambda\theta_{t-1}`,
  :math:`\theta_t = \theta_{t-1} - \eta b_t`;
* SGDW: :math:`b_t = \mu b_{t-1} + g_t`,
  :math:`\theta_t = \theta_{t-1} - \eta b_t - \eta\lambda\theta_{t-1}`.

(a) With :math:`\mu = 0` both are :math:`\theta - \eta(g + \lambda\theta)`: the
same trajectory (up to rounding), and SGD's ``weight_decay=lam`` is *exactly*
``SGD(weight_decay=0)`` plus the explicit penalty ``L2(lam)``.

(b) With :math:`\mu > 0` they differ, and by an exactly predictable amount: fed
the same gradients, SGD's buffer is SGDW's buffer plus the decay terms it has
accumulated, :math:`b^{SGD}_t - b^{SGDW}_t = \lambda\sum_{k=1}^{t}\mu^{t-k}\theta_{k-1}`
(the :math:`\theta` of SGD's own trajectory). After one step from the same
start the two agree; after two, :math:`\theta^{SGD}_2 - \theta^{SGDW}_2 =
-\eta\mu\lambda\theta_0`.

For Adam the coupled decay passes through the normalisation by
:math:`\sqrt{\hat v}`, so coordinates with large gradients are barely decayed,
while AdamW shrinks every coordinate by :math:`\eta\lambda\theta`, whatever its
gradient scale.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from regmlp.layers import Dense, LayerNorm, Parameter, Sequential
from regmlp.optim import SGD, SGDW, Adam, AdamW
from regmlp.penalties import L1, L2

THETA0 = np.array([1.5, -0.7, 0.3, 2.0])
SCALE = np.array([1.0, 3.0, 0.2, 0.05])    # gradient scale per coordinate
TARGET = np.array([0.5, 0.1, -1.0, 0.0])
STEPS = 5


def grad_fn(theta: np.ndarray) -> np.ndarray:
    """Gradient of a quadratic bowl with different curvature per coordinate."""
    return SCALE * (theta - TARGET)


def run(opt_cls, steps: int = STEPS, theta0=THETA0, grad=grad_fn, decay=True, **kwargs):
    """The package's trajectory: the parameter after each step."""
    p = Parameter(np.array(theta0, dtype=float), decay=decay)
    opt = opt_cls([p], **kwargs)
    out = []
    for t in range(steps):
        opt.zero_grad()
        p.grad += grad(p.value) if callable(grad) else grad[t]
        opt.step()
        out.append(p.value.copy())
    return np.array(out)


# ---------------------------------------------------------------------------
# hand formulas: one coordinate, Python floats
# ---------------------------------------------------------------------------


def ref_sgd(theta, j, steps, lr, momentum=0.0, wd=0.0, decoupled=False):
    theta, buf, out = float(theta), None, []
    for _ in range(steps):
        g = SCALE[j] * (theta - TARGET[j])
        if not decoupled:
            g = g + wd * theta
        if momentum:
            buf = g if buf is None else momentum * buf + g
        else:
            buf = g
        if decoupled:
            theta = theta - lr * buf - lr * wd * theta
        else:
            theta = theta - lr * buf
        out.append(theta)
    return out


def ref_adam(theta, j, steps, lr, beta1, beta2, eps, wd=0.0, decoupled=False):
    theta, m, v, out = float(theta), 0.0, 0.0, []
    for t in range(1, steps + 1):
        g = SCALE[j] * (theta - TARGET[j])
        if decoupled:
            theta = theta - lr * wd * theta
        else:
            g = g + wd * theta
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        m_hat = m / (1 - beta1 ** t)
        v_hat = v / (1 - beta2 ** t)
        theta = theta - lr * m_hat / (math.sqrt(v_hat) + eps)
        out.append(theta)
    return out


def reference(fn, **kwargs) -> np.ndarray:
    cols = [fn(THETA0[j], j, STEPS, **kwargs) for j in range(len(THETA0))]
    return np.array(cols).T


SGD_CASES = {
    "plain": dict(lr=0.1),
    "momentum": dict(lr=0.1, momentum=0.9),
    "weight_decay": dict(lr=0.1, weight_decay=0.3),
    "momentum+weight_decay": dict(lr=0.05, momentum=0.8, weight_decay=0.3),
}


@pytest.mark.parametrize("kw", SGD_CASES.values(), ids=SGD_CASES.keys())
def test_sgd_matches_hand_formula(kw):
    expected = reference(ref_sgd, lr=kw["lr"], momentum=kw.get("momentum", 0.0),
                         wd=kw.get("weight_decay", 0.0))
    np.testing.assert_allclose(run(SGD, **kw), expected, rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("kw", [dict(lr=0.05, momentum=0.8, weight_decay=0.3),
                                dict(lr=0.1, momentum=0.5, weight_decay=1.0)],
                         ids=["mu0.8", "mu0.5"])
def test_sgdw_matches_hand_formula(kw):
    expected = reference(ref_sgd, lr=kw["lr"], momentum=kw["momentum"],
                         wd=kw["weight_decay"], decoupled=True)
    np.testing.assert_allclose(run(SGDW, **kw), expected, rtol=1e-13, atol=1e-15)


def test_sgdw_buffer_never_sees_the_decay():
    p = Parameter(THETA0.copy())
    opt = SGDW([p], lr=0.1, momentum=0.9, weight_decay=0.5)
    grads = [np.full(4, 0.1 * (t + 1)) for t in range(STEPS)]
    expected_buf = np.zeros(4)
    for t, g in enumerate(grads):
        p.grad[...] = g
        opt.step()
        expected_buf = g.copy() if t == 0 else 0.9 * expected_buf + g
        np.testing.assert_allclose(opt.buffers[0], expected_buf, rtol=1e-15)


ADAM_CASES = {
    "defaults": dict(lr=0.05),
    "betas": dict(lr=0.1, betas=(0.5, 0.8), eps=1e-3),
    "weight_decay": dict(lr=0.05, weight_decay=0.4),
}


def adam_ref_kwargs(kw, default_wd):
    beta1, beta2 = kw.get("betas", (0.9, 0.999))
    return dict(lr=kw["lr"], beta1=beta1, beta2=beta2, eps=kw.get("eps", 1e-8),
                wd=kw.get("weight_decay", default_wd))


@pytest.mark.parametrize("kw", ADAM_CASES.values(), ids=ADAM_CASES.keys())
def test_adam_matches_hand_formula(kw):
    expected = reference(ref_adam, **adam_ref_kwargs(kw, 0.0), decoupled=False)
    np.testing.assert_allclose(run(Adam, **kw), expected, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("kw", ADAM_CASES.values(), ids=ADAM_CASES.keys())
def test_adamw_matches_hand_formula(kw):
    expected = reference(ref_adam, **adam_ref_kwargs(kw, 0.01), decoupled=True)
    np.testing.assert_allclose(run(AdamW, **kw), expected, rtol=1e-12, atol=1e-14)


def test_adam_first_step_is_lr_times_sign_of_gradient():
    """Bias correction: the first step is lr * g / (|g| + eps), about lr per coordinate."""
    p = Parameter(np.zeros(3))
    opt = Adam([p], lr=0.01)
    p.grad[...] = [1e-4, -3.0, 250.0]
    opt.step()
    np.testing.assert_allclose(p.value, -0.01 * np.sign([1e-4, -3.0, 250.0]), rtol=1e-3)


def test_adamw_default_weight_decay_is_0_01():
    assert AdamW([Parameter(np.ones(1))]).weight_decay == 0.01
    assert Adam([Parameter(np.ones(1))]).weight_decay == 0.0


def test_zero_grad_clears_every_gradient():
    model = Sequential(Dense(3, 2, rng=0), LayerNorm(2))
    for p in model.parameters():
        p.grad[...] = 1.0
    SGD(model.parameters(), lr=0.1).zero_grad()
    assert all(np.all(p.grad == 0) for p in model.parameters())


# ---------------------------------------------------------------------------
# the exact relation between SGD + L2 and SGDW
# ---------------------------------------------------------------------------


def max_rel_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a - b)) / np.max(np.abs(a)))


def test_without_momentum_sgd_and_sgdw_are_the_same_update():
    """(a) mu = 0: SGD(lr, weight_decay=lam) and SGDW(lr, weight_decay=lam) agree."""
    for lr, lam in [(0.1, 0.3), (0.01, 2.0), (0.5, 0.05)]:
        a = run(SGD, lr=lr, weight_decay=lam)
        b = run(SGDW, lr=lr, weight_decay=lam)
        assert max_rel_diff(a, b) <= 1e-15


@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_sgd_weight_decay_is_exactly_sgd_plus_l2_penalty(momentum):
    """(a) SGD(weight_decay=lam) == SGD(weight_decay=0) with penalties.L2(lam), bit for bit."""
    lam = 0.3
    coupled = run(SGD, lr=0.1, momentum=momentum, weight_decay=lam)
    p = Parameter(THETA0.copy())
    opt, penalty = SGD([p], lr=0.1, momentum=momentum), L2(lam)
    explicit = []
    for _ in range(STEPS):
        opt.zero_grad()
        p.grad += grad_fn(p.value)
        penalty.backward([p])
        opt.step()
        explicit.append(p.value.copy())
    np.testing.assert_array_equal(coupled, np.array(explicit))


def test_with_momentum_sgd_buffer_accumulates_the_decay_terms():
    """(b) mu > 0: b_SGD - b_SGDW = lam * sum_k mu**(t-k) * theta_SGD[k-1], given the same g."""
    lr, mu, lam = 0.1, 0.9, 0.5
    rng = np.random.default_rng(0)
    grads = rng.standard_normal((8, 4))
    p_c, p_d = Parameter(THETA0.copy()), Parameter(THETA0.copy())
    sgd = SGD([p_c], lr=lr, momentum=mu, weight_decay=lam)
    sgdw = SGDW([p_d], lr=lr, momentum=mu, weight_decay=lam)
    thetas = [p_c.value.copy()]  # theta_0, theta_1, ... of SGD
    for t, g in enumerate(grads, start=1):
        p_c.grad[...] = g
        p_d.grad[...] = g
        sgd.step()
        sgdw.step()
        predicted = lam * sum(mu ** (t - k) * thetas[k - 1] for k in range(1, t + 1))
        np.testing.assert_allclose(sgd.buffers[0] - sgdw.buffers[0], predicted,
                                   rtol=1e-12, atol=1e-14)
        thetas.append(p_c.value.copy())
        if t == 1:  # same start, same first step
            assert max_rel_diff(p_c.value, p_d.value) <= 1e-15
        if t == 2:  # then they part by exactly -lr * mu * lam * theta_0
            np.testing.assert_allclose(p_c.value - p_d.value, -lr * mu * lam * THETA0,
                                       rtol=1e-10, atol=1e-15)
    assert max_rel_diff(p_c.value, p_d.value) > 1e-2


# ---------------------------------------------------------------------------
# Adam + L2 versus AdamW
# ---------------------------------------------------------------------------

SCALES = np.array([1e-2, 1.0, 1e2])  # very different gradient scales, same theta_0


def adam_decay_effect(opt_cls, lam, steps=20, lr=1e-2):
    """(theta with decay lam) - (theta without decay), for the same gradient sequence,
    together with the decayed trajectory (before each step)."""
    noise = np.random.default_rng(1).standard_normal((steps, 1))
    grads = noise * SCALES  # g_t,j = scale_j * noise_t
    theta0 = np.ones(3)
    decayed = run(opt_cls, steps, theta0, grads, lr=lr, weight_decay=lam)
    plain = run(opt_cls, steps, theta0, grads, lr=lr, weight_decay=0.0)
    before = np.vstack([theta0, decayed[:-1]])
    return decayed - plain, before


def test_adam_l2_and_adamw_trajectories_differ():
    a = run(Adam, 20, np.ones(3), lambda th: SCALES * (th - 0.2), lr=1e-2, weight_decay=0.5)
    b = run(AdamW, 20, np.ones(3), lambda th: SCALES * (th - 0.2), lr=1e-2, weight_decay=0.5)
    assert np.max(np.abs(a - b)) > 1e-3


def test_adamw_decay_is_lr_lambda_theta_whatever_the_gradient_scale():
    """With the same gradients, AdamW's decay changes each step by exactly -lr*lam*theta."""
    lr, lam = 1e-2, 0.5
    effect, before = adam_decay_effect(AdamW, lam, lr=lr)
    per_step = np.diff(np.vstack([np.zeros(3), effect]), axis=0)
    np.testing.assert_allclose(per_step, -lr * lam * before, rtol=1e-9, atol=1e-15)


def test_adam_l2_decay_is_normalised_by_the_gradient_scale():
    """Adam's coupled decay is divided by sqrt(v): large-gradient coordinates barely decay."""
    lr, lam = 1e-2, 0.5
    effect, before = adam_decay_effect(Adam, lam, lr=lr)
    total = np.abs(effect[-1])
    # the decay reaching each coordinate falls with its gradient scale
    assert total[0] > total[1] > 10 * total[2]
    # and it is nothing like AdamW's lr * lam * theta per step
    per_step = np.diff(np.vstack([np.zeros(3), effect]), axis=0)
    ratio = per_step / (-lr * lam * before)
    assert ratio[:, 2].max() < 0.05  # scale 100: decayed less than a twentieth as much
    assert ratio[3:, 0].min() > 1.0  # scale 0.01: decayed more (the step is normalised)


# ---------------------------------------------------------------------------
# decay=False parameters are never decayed
# ---------------------------------------------------------------------------

ALL_OPTIMIZERS = {
    "SGD": (SGD, dict(lr=0.1, weight_decay=0.5)),
    "SGD-momentum": (SGD, dict(lr=0.1, momentum=0.9, weight_decay=0.5)),
    "SGDW": (SGDW, dict(lr=0.1, weight_decay=0.5)),
    "SGDW-momentum": (SGDW, dict(lr=0.1, momentum=0.9, weight_decay=0.5)),
    "Adam": (Adam, dict(lr=0.1, weight_decay=0.5)),
    "AdamW": (AdamW, dict(lr=0.1, weight_decay=0.5)),
}


def check_no_decay_on_exempt_parameters(opt_cls, **kwargs) -> None:
    """Raise AssertionError if ``opt_cls`` changes a ``decay=False`` parameter with zero gradient.

    Uses a model whose biases and LayerNorm gain/shift are exempt; its weights
    must shrink (so the optimizer does decay something).
    """
    model = Sequential(Dense(3, 4, rng=0), LayerNorm(4))
    model[1].weight.value[...] = [0.5, 1.5, -2.0, 3.0]
    model[1].bias.value[...] = [0.1, -0.2, 0.3, 1.0]
    exempt = [p for p in model.parameters() if not p.decay]
    assert len(exempt) == 3
    before = [p.value.copy() for p in model.parameters()]
    opt = opt_cls(model.parameters(), **kwargs)
    for _ in range(5):
        opt.zero_grad()
        opt.step()
    for p, b in zip(model.parameters(), before, strict=True):
        if p.decay:
            assert np.all(np.abs(p.value) < np.abs(b)), "weights should shrink under decay"
        else:
            assert np.array_equal(p.value, b), f"a decay=False parameter {p} was decayed"


@pytest.mark.parametrize("opt", ALL_OPTIMIZERS.values(), ids=ALL_OPTIMIZERS.keys())
def test_decay_false_parameters_are_never_decayed(opt):
    opt_cls, kwargs = opt
    check_no_decay_on_exempt_parameters(opt_cls, **kwargs)
    # the same for a lone decay=False parameter
    traj = run(opt_cls, decay=False, grad=np.zeros((STEPS, 4)), **kwargs)
    np.testing.assert_array_equal(traj, np.tile(THETA0, (STEPS, 1)))


@pytest.mark.parametrize("penalty", [L1(0.5), L2(0.5)], ids=["L1", "L2"])
def test_penalties_never_touch_decay_false_parameters(penalty):
    model = Sequential(Dense(3, 4, rng=0), LayerNorm(4))
    penalty.backward(model.parameters())
    for p in model.parameters():
        assert np.any(p.grad != 0) == p.decay


class DecayEverythingSGDW(SGDW):
    """Section 7 bug: weight decay applied to biases and LayerNorm gains."""

    def step(self):
        self.t += 1
        for i, p in enumerate(self.params):
            step = self.direction(i, p.grad)
            p.value *= 1.0 - self.lr * self.weight_decay
            p.value -= self.lr * step


def test_check_catches_decay_applied_to_biases_and_gains():
    with pytest.raises(AssertionError, match="decay=False"):
        check_no_decay_on_exempt_parameters(DecayEverythingSGDW, lr=0.1, weight_decay=0.5)


class AdamL2CalledAdamW(Adam):
    """Section 7 bug: an "AdamW" that is really Adam with L2 in the gradient."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2):
        super().__init__(params, lr, betas, eps, weight_decay)


def check_adamw(adamw_cls) -> None:
    """Raise AssertionError unless ``adamw_cls`` follows the decoupled AdamW formula."""
    kw = dict(lr=0.05, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.4)
    expected = reference(ref_adam, lr=0.05, beta1=0.9, beta2=0.999, eps=1e-8, wd=0.4,
                         decoupled=True)
    got = run(adamw_cls, **kw)
    err = np.max(np.abs(got - expected))
    assert err <= 1e-12, f"not decoupled AdamW: off the hand formula by {err:.3g}"


def test_adamw_checker_accepts_adamw_and_rejects_adam_with_l2():
    check_adamw(AdamW)
    with pytest.raises(AssertionError, match="not decoupled AdamW"):
        check_adamw(AdamL2CalledAdamW)


def test_lr_zero_changes_nothing():
    for opt_cls, kwargs in ALL_OPTIMIZERS.values():
        traj = run(opt_cls, **{**kwargs, "lr": 0.0})
        np.testing.assert_array_equal(traj, np.tile(THETA0, (STEPS, 1)))


# ---------------------------------------------------------------------------
# optional: against torch.optim (torch is not in the default install)
# ---------------------------------------------------------------------------

TORCH_CASES = {
    "SGD": (SGD, "SGD", dict(lr=0.1, momentum=0.9, weight_decay=0.3)),
    "SGDW-no-momentum": (SGDW, "SGD", dict(lr=0.1, weight_decay=0.3)),
    "Adam": (Adam, "Adam", dict(lr=0.05, weight_decay=0.3)),
    "AdamW": (AdamW, "AdamW", dict(lr=0.05, weight_decay=0.3)),
}


@pytest.mark.parametrize("case", TORCH_CASES.values(), ids=TORCH_CASES.keys())
def test_matches_torch_optim(case):
    torch = pytest.importorskip("torch")
    ours, theirs, kw = case
    w = torch.tensor(THETA0.copy(), dtype=torch.float64, requires_grad=True)
    opt = getattr(torch.optim, theirs)([w], **kw)
    for _ in range(STEPS):
        opt.zero_grad()
        w.grad = torch.from_numpy(grad_fn(w.detach().numpy().copy()))
        opt.step()
    np.testing.assert_allclose(run(ours, **kw)[-1], w.detach().numpy(), rtol=1e-12, atol=1e-14)
