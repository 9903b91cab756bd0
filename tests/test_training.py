"""Tests of regmlp.training: batches, fit, evaluate, predict, History, progress bars."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

import regmlp.training as training  # noqa: E402
from regmlp.callbacks import Callback  # noqa: E402
from regmlp.data import Split  # noqa: E402
from regmlp.layers import Dense, Dropout, Layer, LayerNorm, ReLU, Residual, Sequential  # noqa: E402
from regmlp.losses import MSE  # noqa: E402
from regmlp.optim import SGD, Adam  # noqa: E402
from regmlp.penalties import L2  # noqa: E402
from regmlp.training import History, batches, evaluate, fit, predict  # noqa: E402


def make_data(n=50, features=4, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, features))
    y = x @ rng.normal(size=(features, 1)) + 0.3 * rng.normal(size=(n, 1))
    return x, y


def make_model(features=4, p=0.0, seed=0):
    layers = [Dense(features, 16, rng=seed), ReLU()]
    if p:
        layers.append(Dropout(p, rng=seed + 100))
    layers += [Residual(Sequential(Dense(16, 16, rng=seed + 1), ReLU())), LayerNorm(16),
               Dense(16, 1, rng=seed + 2)]
    return Sequential(*layers)


def flags(model):
    return [m.training for m in model.modules()]


# ---------------------------------------------------------------------------
# batches
# ---------------------------------------------------------------------------


def test_batches_sizes_and_last_batch_smaller():
    x, y = np.zeros((100, 3)), np.zeros((100, 1))
    assert [len(xb) for xb, _ in batches(x, y, batch_size=32, rng=0)] == [32, 32, 32, 4]
    assert [len(xb) for xb, _ in batches(x, y, batch_size=25, rng=0)] == [25] * 4
    assert [len(xb) for xb, _ in batches(x, y, batch_size=500, rng=0)] == [100]


def test_batches_cover_every_row_once_and_keep_pairs_aligned():
    n = 37
    x = np.arange(n * 2, dtype=float).reshape(n, 2)
    y = np.arange(n, dtype=float).reshape(n, 1)
    xs, ys = zip(*batches(x, y, batch_size=5, rng=3), strict=True)
    rows = np.concatenate(ys).ravel()
    assert sorted(rows.tolist()) == list(range(n))
    assert not np.array_equal(rows, np.arange(n))                  # shuffled
    np.testing.assert_array_equal(np.concatenate(xs), x[rows.astype(int)])


def test_batches_shuffle_follows_the_seed():
    x, y = np.arange(20.0).reshape(20, 1), np.arange(20.0).reshape(20, 1)
    order = [np.concatenate([yb for _, yb in batches(x, y, 4, rng=seed)]).ravel()
             for seed in (1, 1, 2)]
    np.testing.assert_array_equal(order[0], order[1])
    assert not np.array_equal(order[0], order[2])
    gen = np.random.default_rng(5)
    first = np.concatenate([yb for _, yb in batches(x, y, 4, rng=gen)]).ravel()
    second = np.concatenate([yb for _, yb in batches(x, y, 4, rng=gen)]).ravel()
    assert not np.array_equal(first, second)                       # a shared stream moves on


def test_batches_without_shuffle_are_views_in_order():
    x, y = np.arange(10.0).reshape(5, 2), np.arange(5.0).reshape(5, 1)
    out = list(batches(x, y, batch_size=2, shuffle=False))
    np.testing.assert_array_equal(np.concatenate([yb for _, yb in out]).ravel(), np.arange(5))
    assert all(np.shares_memory(xb, x) for xb, _ in out)


@pytest.mark.parametrize(("args", "kwargs", "error", "match"), [
    ((np.zeros((5, 2)), np.zeros((4, 1))), {}, ValueError, "same number of rows"),
    ((np.zeros((5, 2)), np.zeros((5, 1)), 0), {}, ValueError, "batch_size"),
    ((np.zeros((5, 2)), np.zeros((5, 1)), 2.0), {}, TypeError, "batch_size"),
    ((np.zeros((5, 2)), np.zeros((5, 1))), {"rng": "seed"}, TypeError, "rng"),
    ((np.array(["a", "b"]), np.zeros((2, 1))), {}, TypeError, "x"),
])
def test_batches_checks_arguments_when_called(args, kwargs, error, match):
    with pytest.raises(error, match=match):
        batches(*args, **kwargs)                   # no iteration needed: checked eagerly


# ---------------------------------------------------------------------------
# what fit computes
# ---------------------------------------------------------------------------


def manual_training(model, optimizer, x, y, *, epochs, batch_size, seed, penalty=None):
    """The loop of DESIGN.md §3.4, written out; returns per-epoch (weighted, unweighted)."""
    rng = np.random.default_rng(seed)
    loss = MSE()
    results = []
    for _ in range(epochs):
        model.train()
        order = rng.permutation(len(x))
        losses, sizes = [], []
        for start in range(0, len(x), batch_size):
            rows = order[start:start + batch_size]
            optimizer.zero_grad()
            losses.append(loss.forward(model.forward(x[rows]), y[rows]))
            sizes.append(len(rows))
            model.backward(loss.backward())
            if penalty is not None:
                penalty.backward(model.parameters())
            optimizer.step()
        results.append((float(np.dot(losses, sizes) / np.sum(sizes)), float(np.mean(losses))))
    return results


def test_train_loss_is_the_size_weighted_mean_of_batch_losses():
    x, y = make_data(n=50)
    model, twin = make_model(), make_model()
    history = fit(model, (x, y), loss=MSE(), optimizer=SGD(model.parameters(), lr=0.05),
                  epochs=3, batch_size=16, rng=7)
    expected = manual_training(twin, SGD(twin.parameters(), lr=0.05), x, y,
                               epochs=3, batch_size=16, seed=7)
    np.testing.assert_allclose(history.train_loss, [w for w, _ in expected], rtol=1e-12)
    # 50 = 16 + 16 + 16 + 2: the plain mean of the batch losses would differ
    assert all(abs(w - u) > 1e-6 for w, u in expected)
    for name, value in model.state_dict().items():
        np.testing.assert_allclose(value, twin.state_dict()[name], rtol=1e-12)


def test_penalty_shapes_the_update_but_not_the_reported_loss():
    x, y = make_data(n=40)
    model, twin, plain = make_model(), make_model(), make_model()
    history = fit(model, (x, y), loss=MSE(), optimizer=SGD(model.parameters(), lr=0.05),
                  epochs=2, batch_size=8, penalty=L2(0.5), rng=1)
    expected = manual_training(twin, SGD(twin.parameters(), lr=0.05), x, y, epochs=2,
                               batch_size=8, seed=1, penalty=L2(0.5))
    np.testing.assert_allclose(history.train_loss, [w for w, _ in expected], rtol=1e-12)
    fit(plain, (x, y), loss=MSE(), optimizer=SGD(plain.parameters(), lr=0.05), epochs=2,
        batch_size=8, rng=1)
    w_pen, w_plain = model[0].weight.value, plain[0].weight.value
    assert np.linalg.norm(w_pen) < np.linalg.norm(w_plain)          # the penalty did act


def test_valid_loss_is_evaluate_in_eval_mode():
    x, y = make_data(n=60)
    model = make_model(p=0.5)
    seen = []

    class Check(Callback):
        def on_epoch_end(self, epoch, logs, state):
            seen.append((logs["valid_loss"], evaluate(state.model, x[40:], y[40:], MSE())))

    history = fit(model, (x[:40], y[:40]), (x[40:], y[40:]), loss=MSE(),
                  optimizer=Adam(model.parameters(), lr=1e-2), epochs=4, callbacks=[Check()],
                  rng=0)
    assert [a for a, _ in seen] == history.valid_loss
    assert all(a == b for a, b in seen)              # deterministic: dropout is off
    model.train()
    train_mode = MSE().forward(model.forward(x[40:]), y[40:])
    assert train_mode != history.valid_loss[-1]


class ModeProbe(Layer):
    """The identity, recording the training flag and batch size of every forward."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def forward(self, x):
        self.calls.append((self.training, len(x)))
        return x

    def backward(self, grad_out):
        return grad_out


def test_train_mode_for_the_epoch_and_eval_mode_for_validation():
    x, y = make_data(n=30)
    probe = ModeProbe()
    model = Sequential(Dense(4, 8, rng=0), probe, Dense(8, 1, rng=1))
    model.eval()
    fit(model, (x[:20], y[:20]), (x[20:], y[20:]), loss=MSE(),
        optimizer=SGD(model.parameters(), lr=0.01), epochs=2, batch_size=8, rng=0)
    assert probe.calls == [(True, 8), (True, 8), (True, 4), (False, 10)] * 2


@pytest.mark.parametrize("setup", ["train", "eval", "mixed"])
def test_every_training_flag_is_restored(setup):
    x, y = make_data()
    model = make_model(p=0.2)
    if setup == "eval":
        model.eval()
    elif setup == "mixed":
        model.train()
        model[2].eval()                        # the dropout
        model[3].block.eval()                  # inside the residual block
        model.training = False
    before = flags(model)
    fit(model, (x, y), (x, y), loss=MSE(), optimizer=SGD(model.parameters(), lr=0.01), epochs=2)
    assert flags(model) == before
    evaluate(model, x, y, MSE())
    predict(model, x)
    assert flags(model) == before


def test_flags_are_restored_when_a_callback_raises():
    x, y = make_data()
    model = make_model(p=0.2).eval()
    model[0].train()
    before = flags(model)

    class Boom(Callback):
        def on_epoch_end(self, epoch, logs, state):
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        fit(model, (x, y), loss=MSE(), optimizer=SGD(model.parameters(), lr=0.01), epochs=2,
            callbacks=[Boom()])
    assert flags(model) == before


def test_same_seeds_give_bit_identical_histories():
    x, y = make_data(n=64)

    def run(rng):
        model = make_model(p=0.3, seed=4)
        return fit(model, (x[:48], y[:48]), (x[48:], y[48:]), loss=MSE(),
                   optimizer=Adam(model.parameters(), lr=1e-2), epochs=5, batch_size=10,
                   rng=rng)

    first, second, other = run(11), run(11), run(12)
    assert first == second                      # dataclass equality: every float equal
    assert first.train_loss != other.train_loss
    gen_a, gen_b = np.random.default_rng(3), np.random.default_rng(3)
    assert run(gen_a) == run(gen_b)


def test_fit_never_touches_numpys_global_random_state(monkeypatch):
    x, y = make_data()
    state = np.random.get_state()  # noqa: NPY002  (the global state, on purpose)
    model = make_model(p=0.3)

    def forbidden(*args, **kwargs):
        raise AssertionError("fit used NumPy's global random state")

    for name in ("seed", "rand", "randn", "random", "random_sample", "permutation", "shuffle",
                 "normal", "uniform", "randint", "choice", "binomial"):
        monkeypatch.setattr(np.random, name, forbidden)
    fit(model, (x, y), (x, y), loss=MSE(), optimizer=Adam(model.parameters()), epochs=3)
    monkeypatch.undo()
    after = np.random.get_state()  # noqa: NPY002
    assert after[0] == state[0] and np.array_equal(after[1], state[1]) and after[2:] == state[2:]


def test_learning_lowers_the_loss():
    x, y = make_data(n=200)
    model = make_model()
    history = fit(model, (x, y), loss=MSE(), optimizer=Adam(model.parameters(), lr=1e-2),
                  epochs=20, rng=0)
    assert history.train_loss[-1] < 0.2 * history.train_loss[0]


def test_split_named_tuples_and_int_inputs_are_accepted():
    x, y = make_data(n=20)
    model = make_model()
    history = fit(model, Split(x, y), Split(np.round(x).astype(int), y), loss=MSE(),
                  optimizer=SGD(model.parameters(), lr=0.01), epochs=2)
    assert history.epochs == [0, 1] and len(history.valid_loss) == 2


# ---------------------------------------------------------------------------
# callbacks and stopping
# ---------------------------------------------------------------------------


class Log(Callback):
    def __init__(self, name, journal):
        self.name, self.journal = name, journal

    def on_train_begin(self, state):
        self.journal.append((self.name, "begin", state.epoch))

    def on_epoch_end(self, epoch, logs, state):
        self.journal.append((self.name, "epoch", epoch, sorted(logs), state.epoch,
                             len(state.history)))

    def on_train_end(self, state):
        self.journal.append((self.name, "end", state.epoch))


def test_callbacks_run_in_order_with_logs_and_state():
    x, y = make_data()
    journal = []
    model = make_model()
    opt = SGD(model.parameters(), lr=0.01)

    class Peek(Callback):
        def on_train_begin(self, state):
            assert state.model is model and state.optimizer is opt and not state.stop

    fit(model, (x, y), (x, y), loss=MSE(), optimizer=opt, epochs=2,
        callbacks=[Peek(), Log("a", journal), Log("b", journal)])
    keys = ["train_loss", "valid_loss"]
    assert journal == [("a", "begin", 0), ("b", "begin", 0),
                       ("a", "epoch", 0, keys, 0, 1), ("b", "epoch", 0, keys, 0, 1),
                       ("a", "epoch", 1, keys, 1, 2), ("b", "epoch", 1, keys, 1, 2),
                       ("a", "end", 1), ("b", "end", 1)]


def test_state_stop_ends_training_after_that_epoch():
    x, y = make_data()
    journal = []

    class StopAt(Callback):
        def on_epoch_end(self, epoch, logs, state):
            state.stop = epoch == 2

    model = make_model()
    history = fit(model, (x, y), loss=MSE(), optimizer=SGD(model.parameters(), lr=0.01),
                  epochs=10, callbacks=[StopAt(), Log("after", journal)])
    assert history.epochs == [0, 1, 2]
    assert [entry[1] for entry in journal] == ["begin", "epoch", "epoch", "epoch", "end"]


def test_logs_without_validation_have_only_train_loss():
    x, y = make_data()
    journal = []
    model = make_model()
    history = fit(model, (x, y), loss=MSE(), optimizer=SGD(model.parameters(), lr=0.01),
                  epochs=1, callbacks=[Log("a", journal)])
    assert journal[1][3] == ["train_loss"] and history.valid_loss == []


# ---------------------------------------------------------------------------
# bad input, checked once before training
# ---------------------------------------------------------------------------


def fit_kwargs(model):
    return {"loss": MSE(), "optimizer": SGD(model.parameters(), lr=0.01), "epochs": 2}


def with_bad(a, index, value):
    a = a.copy()
    a[index] = value
    return a


X, Y = make_data(n=10)


@pytest.mark.parametrize(("train", "valid", "error", "match"), [
    ((with_bad(X, (1, 2), np.nan), Y), None, ValueError, "train x must be finite"),
    ((X, with_bad(Y, (3, 0), np.inf)), None, ValueError, "train y must be finite"),
    ((X, Y), (with_bad(X, (0, 0), -np.inf), Y), ValueError, "valid x must be finite"),
    ((X, Y), (X, with_bad(Y, (0, 0), np.nan)), ValueError, "valid y must be finite"),
    ((X, Y.ravel()), None, ValueError, r"train y must have shape \(n, 1\)"),
    ((X, Y[:5]), None, ValueError, "train y must have shape"),
    ((X[:, 0], Y), None, ValueError, r"train x must have shape \(n, features\)"),
    ((X[:0], Y[:0]), None, ValueError, "n >= 1"),
    ((X.astype(str), Y), None, TypeError, "train x must be a numeric"),
    ((X > 0, Y), None, TypeError, "train x must be a numeric"),
    ((X, Y), (X[:, :3], Y), ValueError, "valid x has 3 features but train x has 4"),
    (X, None, TypeError, r"train must be an \(x, y\) pair"),
    ((X, Y, Y), None, TypeError, r"train must be an \(x, y\) pair"),
    ((X, Y), "valid", TypeError, r"valid must be an \(x, y\) pair"),
])
def test_bad_data(train, valid, error, match):
    model = make_model()
    before = model.state_dict()
    with pytest.raises(error, match=match):
        fit(model, train, valid, **fit_kwargs(model))
    assert all(np.array_equal(v, before[k]) for k, v in model.state_dict().items())


@pytest.mark.parametrize(("change", "error", "match"), [
    ({"epochs": 0}, ValueError, "epochs must be a positive integer"),
    ({"epochs": 2.0}, TypeError, "epochs"),
    ({"epochs": True}, TypeError, "epochs"),
    ({"batch_size": "32"}, TypeError, "batch_size"),
    ({"loss": lambda p, t: 0.0}, TypeError, "loss must have forward and backward"),
    ({"optimizer": "sgd"}, TypeError, "optimizer must have zero_grad and step"),
    ({"penalty": 0.1}, TypeError, "penalty must have loss and backward"),
    ({"callbacks": Callback()}, TypeError, r"callbacks=\[\.\.\.\]"),
    ({"callbacks": [object()]}, TypeError, r"callbacks\[0\] must be a Callback"),
    ({"callbacks": 3}, TypeError, "callbacks must be a list"),
    ({"rng": 1.5}, TypeError, "rng"),
    ({"progress": "yes"}, TypeError, "progress"),
])
def test_bad_arguments(change, error, match):
    model = make_model()
    kwargs = {**fit_kwargs(model), **change}
    with pytest.raises(error, match=match):
        fit(model, (X, Y), **kwargs)


def test_model_must_be_a_layer():
    with pytest.raises(TypeError, match="model must be a regmlp Layer"):
        fit(lambda x: x, (X, Y), loss=MSE(), optimizer=SGD([Dense(1, 1).weight], lr=0.1),
            epochs=1)


def test_data_is_checked_once_not_per_batch(monkeypatch):
    calls = []
    real = training.check_finite_array

    def counting(x, name):
        calls.append(name)
        return real(x, name)

    monkeypatch.setattr(training, "check_finite_array", counting)
    model = make_model()
    fit(model, (X, Y), (X, Y), **{**fit_kwargs(model), "epochs": 5}, batch_size=2)
    assert calls == ["train x", "train y", "valid x", "valid y"]


# ---------------------------------------------------------------------------
# evaluate and predict
# ---------------------------------------------------------------------------


def test_evaluate_and_predict_use_eval_mode_and_agree():
    x, y = make_data()
    model = make_model(p=0.5)
    pred = predict(model, x)
    np.testing.assert_array_equal(pred, predict(model, x))          # dropout off
    assert evaluate(model, x, y, MSE()) == MSE().forward(pred, y)
    assert all(flags(model))                                        # back in train mode
    model.eval()
    np.testing.assert_array_equal(model.forward(x), pred)


class FailsInEval(Layer):
    def forward(self, x):
        if not self.training:
            raise RuntimeError("eval forward failed")
        return x


@pytest.mark.parametrize("call", [lambda m, x, y: predict(m, x),
                                  lambda m, x, y: evaluate(m, x, y, MSE())])
def test_evaluate_and_predict_restore_flags_on_error(call):
    x, y = make_data()
    model = Sequential(Dense(4, 1, rng=0), FailsInEval())
    model[0].eval()
    before = flags(model)
    with pytest.raises(RuntimeError, match="eval forward failed"):
        call(model, x, y)
    assert flags(model) == before


def test_evaluate_and_predict_check_their_input():
    model = make_model()
    with pytest.raises(ValueError, match="x must be finite"):
        predict(model, with_bad(X, (0, 0), np.nan))
    with pytest.raises(ValueError, match=r"x must have shape \(n, features\)"):
        predict(model, X[0])
    with pytest.raises(ValueError, match=r"y must have shape \(n, 1\)"):
        evaluate(model, X, Y.ravel(), MSE())
    with pytest.raises(TypeError, match="loss"):
        evaluate(model, X, Y, "mse")


# ---------------------------------------------------------------------------
# History
# ---------------------------------------------------------------------------


def test_history_to_frame():
    h = History(epochs=[0, 1, 2], train_loss=[3.0, 2.0, 1.0], valid_loss=[3.5, 2.5, 2.6])
    frame = h.to_frame()
    assert isinstance(frame, pd.DataFrame) and frame.index.name == "epoch"
    assert list(frame.columns) == ["train_loss", "valid_loss"]
    assert frame.loc[2, "valid_loss"] == 2.6 and len(h) == 3
    only_train = History(epochs=[0], train_loss=[1.0]).to_frame()
    assert list(only_train.columns) == ["train_loss"]


def test_history_plot_labels_everything():
    x, y = make_data()
    model = make_model()
    history = fit(model, (x[:40], y[:40]), (x[40:], y[40:]), loss=MSE(),
                  optimizer=SGD(model.parameters(), lr=0.01), epochs=3)
    ax = history.plot()
    assert ax.get_xlabel() == "epoch" and ax.get_ylabel() == "loss" and ax.get_title()
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["train", "validation"]
    np.testing.assert_array_equal(ax.lines[1].get_ydata(), history.valid_loss)
    fig, given = plt.subplots()
    assert history.plot(ax=given) is given


# ---------------------------------------------------------------------------
# the progress bar
# ---------------------------------------------------------------------------


def run_fit(progress=None, epochs=3):
    x, y = make_data(n=20)
    model = make_model()
    return fit(model, (x, y), (x, y), loss=MSE(), optimizer=SGD(model.parameters(), lr=0.01),
               epochs=epochs, progress=progress)


def test_no_progress_bar_under_the_tests(capfd):
    assert training._show_progress(None) is False
    run_fit()
    captured = capfd.readouterr()
    assert captured.err == "" and captured.out == ""


def test_progress_true_shows_a_bar_with_the_losses(capfd):
    run_fit(progress=True, epochs=4)
    err = capfd.readouterr().err
    assert "epochs" in err and "4/4" in err and "train_loss" in err and "valid_loss" in err


def test_progress_false_shows_nothing(capfd, monkeypatch):
    monkeypatch.setenv("REGMLP_PROGRESS", "1")
    run_fit(progress=False)
    assert capfd.readouterr().err == ""


class FakeTTY(io.StringIO):
    def isatty(self):
        return True


@pytest.mark.parametrize(("env", "tty", "shown"), [
    ({"REGMLP_PROGRESS": "0"}, True, False),
    ({"REGMLP_PROGRESS": "off"}, True, False),
    ({"REGMLP_PROGRESS": "1"}, False, True),
    ({"REGMLP_PROGRESS": "TRUE", "PYTEST_CURRENT_TEST": "x", "CI": "true"}, False, True),
    ({"PYTEST_CURRENT_TEST": "t.py::test (call)"}, True, False),
    ({"CI": "true"}, True, False),
    ({"CI": "0"}, True, True),
    ({}, True, True),
    ({}, False, False),
    ({"REGMLP_PROGRESS": "maybe"}, True, True),
])
def test_progress_rule(monkeypatch, env, tty, shown):
    for var in ("REGMLP_PROGRESS", "PYTEST_CURRENT_TEST", "CI"):
        monkeypatch.delenv(var, raising=False)
    for var, value in env.items():
        monkeypatch.setenv(var, value)
    monkeypatch.setattr("sys.stderr", FakeTTY() if tty else io.StringIO())
    assert training._show_progress(None) is shown
    assert training._show_progress(True) is True and training._show_progress(False) is False


def test_progress_shown_in_a_jupyter_kernel(monkeypatch):
    for var in ("REGMLP_PROGRESS", "PYTEST_CURRENT_TEST", "CI"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr("sys.stderr", io.StringIO())
    monkeypatch.setattr(training, "_in_notebook", lambda: True)
    assert training._show_progress(None) is True
    monkeypatch.setenv("REGMLP_PROGRESS", "0")
    assert training._show_progress(None) is False


def test_in_notebook_is_false_here():
    assert training._in_notebook() is False


def test_a_float32_model_trains_in_float32_on_float64_data():
    """The data is converted to the parameters' dtype once: no float64 loss or backward."""
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((40, 3)), rng.standard_normal((40, 1))   # float64
    model = Sequential(Dense(3, 4, rng=0, dtype=np.float32), ReLU(),
                       Dense(4, 1, rng=1, dtype=np.float32))
    seen = []

    class Spy(MSE):
        def backward(self):
            grad = super().backward()
            seen.append(grad.dtype)
            return grad

    fit(model, (x, y), (x, y), loss=Spy(), optimizer=SGD(model.parameters(), lr=0.1),
        epochs=2, batch_size=16, rng=0, progress=False)
    assert set(seen) == {np.dtype(np.float32)}
    assert all(p.value.dtype == p.grad.dtype == np.float32 for p in model.parameters())
    # evaluate uses the same dtype, so it agrees with fit's validation loss
    history = fit(model, (x, y), (x, y), loss=MSE(), optimizer=SGD(model.parameters(), lr=0.0),
                  epochs=1, rng=0, progress=False)
    assert history.valid_loss[-1] == evaluate(model, x, y, MSE())


# ---------------------------------------------------------------------------
# train_epoch: one epoch of fit, public
# ---------------------------------------------------------------------------


def test_train_epoch_is_one_epoch_of_the_manual_loop_with_penalty():
    x, y = make_data(n=50)
    model, twin = make_model(p=0.2), make_model(p=0.2)
    loss = training.train_epoch(model.eval(), batches(x, y, 16, rng=np.random.default_rng(3)),
                                loss=MSE(), optimizer=SGD(model.parameters(), lr=0.05),
                                penalty=L2(0.1))
    (expected, _), = manual_training(twin, SGD(twin.parameters(), lr=0.05), x, y, epochs=1,
                                     batch_size=16, seed=3, penalty=L2(0.1))
    assert loss == pytest.approx(expected, rel=1e-12)
    assert all(flags(model))                     # left in training mode (dropout on)
    for (name, a), b in zip(model.state_dict().items(), twin.state_dict().values(),
                            strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, err_msg=name)


def test_fit_runs_train_epoch_every_epoch(monkeypatch):
    calls = []
    real = training.train_epoch

    def spy(*args, **kwargs):
        calls.append(kwargs["loss"])
        return real(*args, **kwargs)

    monkeypatch.setattr(training, "train_epoch", spy)
    x, y = make_data(n=20)
    model, loss = make_model(), MSE()
    fit(model, (x, y), loss=loss, optimizer=SGD(model.parameters(), lr=0.01), epochs=4, rng=0)
    assert len(calls) == 4 and all(c is loss for c in calls)
