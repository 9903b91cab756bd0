"""Tests of regmlp.diagnostics on small models whose numbers can be checked by hand."""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from regmlp.diagnostics import (  # noqa: E402
    activation_stats,
    dead_relu_fraction,
    gradient_norms,
    layer_stats,
    plot_losses,
    update_to_data_ratio,
    weight_histogram,
    weight_norm,
)
from regmlp.layers import Dense, Dropout, LayerNorm, ReLU, Residual, Sequential  # noqa: E402
from regmlp.losses import MSE  # noqa: E402
from regmlp.optim import SGD  # noqa: E402
from regmlp.training import History  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def dense(weight, bias):
    """A Dense layer with the given weight (n_in, n_out) and bias."""
    weight = np.asarray(weight, dtype=float)
    layer = Dense(*weight.shape, rng=0)
    layer.weight.value[...] = weight
    layer.bias.value[...] = bias
    return layer


def hand_model():
    """x -> Dense(1,2) -> ReLU -> Residual(Dense(2,2)) -> Dense(2,1), all weights set."""
    return Sequential(
        dense([[1.0, -1.0]], [0.0, 0.0]),
        ReLU(),
        Residual(Sequential(dense([[2.0, 0.0], [0.0, 2.0]], [0.0, 0.0]))),
        dense([[1.0], [1.0]], [0.5]),
    )


X = np.array([[1.0], [-2.0]])
Y = np.array([[4.0], [5.0]])
# By hand: Dense1 -> [[1, -1], [-2, 2]]; ReLU -> [[1, 0], [0, 2]];
# Residual: h + 2h -> [[3, 0], [0, 6]]; Dense3 -> [[3.5], [6.5]].


# ---------------------------------------------------------------------------
# weights
# ---------------------------------------------------------------------------


def test_weight_norm_counts_only_decayed_weights():
    model = Sequential(dense([[3.0]], [100.0]), LayerNorm(1),
                       Residual(Sequential(dense([[4.0]], [-50.0]))))
    assert weight_norm(model) == 5.0            # sqrt(3^2 + 4^2): biases and LayerNorm left out
    assert weight_norm(hand_model()) == pytest.approx(math.sqrt(1 + 1 + 4 + 4 + 1 + 1))


def test_weight_histogram_counts_the_decayed_weights():
    model = hand_model()
    ax = weight_histogram(model, bins=5)
    assert sum(p.get_height() for p in ax.patches) == 2 + 4 + 2
    assert ax.get_xlabel() == "weight value" and ax.get_ylabel() == "count" and ax.get_title()
    assert ax.get_legend().get_texts()[0].get_text() == "8 weights"
    ax2 = weight_histogram(model, decayed_only=False, label="all", bins=5)
    assert sum(p.get_height() for p in ax2.patches) == 8 + 2 + 2 + 1


def test_weight_histograms_overlay_on_one_axes():
    fig, ax = plt.subplots()
    bins = np.linspace(-3, 3, 13)
    weight_histogram(hand_model(), ax=ax, bins=bins, label="a")
    assert weight_histogram(hand_model(), ax=ax, bins=bins, label="b") is ax
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["a", "b"]


def test_weight_histogram_needs_weights():
    with pytest.raises(ValueError, match="no weights"):
        weight_histogram(Sequential(ReLU(), LayerNorm(3)))
    with pytest.raises(TypeError, match="model"):
        weight_norm([1.0, 2.0])


def test_update_to_data_ratio_by_hand():
    before = {"w": np.array([3.0, 4.0]), "b": np.array([1.0])}
    after = {"w": np.array([3.03, 4.04]), "b": np.array([1.5])}
    ratios = update_to_data_ratio(before, after)
    assert list(ratios) == ["w", "b"]
    assert ratios["w"] == pytest.approx(0.05 / 5.0) and ratios["b"] == pytest.approx(0.5)


def test_update_to_data_ratio_of_an_sgd_step_is_lr_times_gradient_over_weight():
    model = hand_model()
    loss = MSE()
    loss.forward(model.forward(X), Y)
    model.backward(loss.backward())
    grads = {name: p.grad.copy() for name, p in model.named_parameters()}
    before = model.state_dict()
    SGD(model.parameters(), lr=0.01).step()
    ratios = update_to_data_ratio(before, model.state_dict())
    assert ratios["0.bias"] == math.inf                  # a zero bias that moved
    for name, w in before.items():
        if np.linalg.norm(w) > 0:
            expected = 0.01 * np.linalg.norm(grads[name]) / np.linalg.norm(w)
            assert ratios[name] == pytest.approx(expected)


def test_update_to_data_ratio_zero_weights():
    with np.errstate(all="raise"):
        ratios = update_to_data_ratio({"a": np.zeros(2), "b": np.zeros(2)},
                                      {"a": np.ones(2), "b": np.zeros(2)})
    assert ratios["a"] == math.inf and math.isnan(ratios["b"])


def test_update_to_data_ratio_checks_keys_and_shapes():
    with pytest.raises(ValueError, match=r"only in before \['b'\]"):
        update_to_data_ratio({"a": np.ones(1), "b": np.ones(1)}, {"a": np.ones(1)})
    with pytest.raises(ValueError, match="shape"):
        update_to_data_ratio({"a": np.ones(2)}, {"a": np.ones(3)})
    with pytest.raises(TypeError, match="state dicts"):
        update_to_data_ratio([np.ones(2)], [np.ones(2)])


# ---------------------------------------------------------------------------
# activations and gradients
# ---------------------------------------------------------------------------


def test_activation_stats_by_hand():
    stds = activation_stats(hand_model(), X)
    expected = [np.std([1, -1, -2, 2]), np.std([1, 0, 0, 2]), np.std([3, 0, 0, 6]),
                np.std([3.5, 6.5])]
    np.testing.assert_allclose(stds, expected)
    assert stds.shape == (4,)


def test_activation_stats_of_a_single_layer_model():
    np.testing.assert_allclose(activation_stats(dense([[1.0, -1.0]], [0.0, 0.0]), X),
                               [np.std([1, -1, -2, 2])])


def test_gradient_norms_by_hand():
    # out - y = [[-0.5], [1.5]]; dL/dout = 2/2 * (out - y) = [[-0.5], [1.5]]
    g_out = np.array([[-0.5], [1.5]])
    r = np.array([[3.0, 0.0], [0.0, 6.0]])                      # input of the last Dense
    g_w3 = r.T @ g_out                                          # [[-1.5], [9]]
    g_r = g_out @ np.array([[1.0, 1.0]])                        # dL/d(residual output)
    h = np.array([[1.0, 0.0], [0.0, 2.0]])                      # ReLU output
    g_w2 = h.T @ g_r                                            # the block's Dense
    g_h = g_r + g_r @ (2 * np.eye(2))                           # both paths of the skip
    g_z = g_h * np.array([[1.0, 0.0], [0.0, 1.0]])              # ReLU mask
    g_w1 = X.T @ g_z
    expected = [np.linalg.norm(g) for g in (g_w1, g_w2, g_w3)]
    np.testing.assert_allclose(gradient_norms(hand_model(), X, Y, MSE()), expected)


def test_gradient_norms_leave_every_grad_as_it_was():
    model = hand_model()
    for i, p in enumerate(model.parameters()):
        p.grad[...] = i + 0.25
    before = [p.grad.copy() for p in model.parameters()]
    gradient_norms(model, X, Y, MSE())
    layer_stats(model, X, Y, MSE())
    for p, g in zip(model.parameters(), before, strict=True):
        np.testing.assert_array_equal(p.grad, g)


def test_layer_stats_table():
    model = hand_model()
    table = layer_stats(model, X, Y, MSE())
    assert list(table.index) == ["0", "1", "2", "3"]
    assert list(table.columns) == ["layer", "out_mean", "out_std", "grad_norm"]
    assert table.loc["0", "layer"] == "Dense(1, 2, bias=True)"
    assert table.loc["2", "layer"] == "Residual"
    np.testing.assert_allclose(table["out_mean"], [0.0, 0.75, 2.25, 5.0])
    np.testing.assert_allclose(table["out_std"], activation_stats(model, X))
    norms = gradient_norms(model, X, Y, MSE())
    assert table.loc["0", "grad_norm"] == pytest.approx(norms[0])
    assert math.isnan(table.loc["1", "grad_norm"])                     # ReLU: no weights
    assert table.loc["2", "grad_norm"] == pytest.approx(norms[1])      # the block's Dense
    assert table.loc["3", "grad_norm"] == pytest.approx(norms[2])


def test_layer_stats_grad_norm_combines_the_dense_layers_of_a_block():
    block = Residual(Sequential(Dense(3, 3, rng=1), ReLU(), Dense(3, 3, rng=2)))
    model = Sequential(Dense(2, 3, rng=0), block, Dense(3, 1, rng=3))
    x = np.random.default_rng(0).normal(size=(5, 2))
    y = np.ones((5, 1))
    norms = gradient_norms(model, x, y, MSE())
    assert norms.shape == (4,)
    table = layer_stats(model, x, y, MSE())
    assert table.loc["1", "grad_norm"] == pytest.approx(math.hypot(norms[1], norms[2]))


def test_layer_stats_without_targets_has_no_gradients():
    table = layer_stats(hand_model(), X)
    assert "grad_norm" not in table.columns and len(table) == 4
    with pytest.raises(ValueError, match="both y and loss"):
        layer_stats(hand_model(), X, Y)


def test_statistics_use_the_current_mode():
    model = Sequential(Dense(3, 50, rng=0), Dropout(0.5, rng=1))
    x = np.ones((4, 3))
    model.eval()
    np.testing.assert_array_equal(activation_stats(model, x), activation_stats(model, x))
    assert not model.training
    model.train()
    assert activation_stats(model, x)[1] != activation_stats(model.eval(), x)[1]


def test_bad_inputs():
    with pytest.raises(ValueError, match=r"x must have shape \(n, features\)"):
        activation_stats(hand_model(), np.ones(3))
    with pytest.raises(ValueError, match="y must have 2 rows"):
        gradient_norms(hand_model(), X, np.ones((3, 1)), MSE())
    with pytest.raises(TypeError, match="model"):
        activation_stats("model", X)


# ---------------------------------------------------------------------------
# loss curves
# ---------------------------------------------------------------------------


H1 = History(epochs=[0, 1, 2, 3], train_loss=[4.0, 3.0, 2.0, 1.0], valid_loss=[4.5, 3.0, 3.2, 3.9])
H2 = History(epochs=[0, 1, 2], train_loss=[5.0, 4.0, 3.5], valid_loss=[5.5, 4.4, 4.1])


def legend(ax):
    return [t.get_text() for t in ax.get_legend().get_texts()]


def test_plot_losses_one_history():
    ax = plot_losses(H1)
    assert legend(ax) == ["train", "validation"]
    assert ax.get_xlabel() == "epoch" and ax.get_ylabel() == "loss" and ax.get_title()
    np.testing.assert_array_equal(ax.lines[0].get_ydata(), H1.train_loss)
    assert ax.lines[0].get_linestyle() == "--" and ax.lines[1].get_linestyle() == "-"


def test_plot_losses_several_runs_and_best_marks():
    ax = plot_losses({"plain": H1, "dropout": H2}, mark_best=True)
    assert legend(ax) == ["plain train", "plain validation", "plain best (epoch 1)",
                          "dropout train", "dropout validation", "dropout best (epoch 2)"]
    marker = ax.lines[2]
    assert list(marker.get_xdata()) == [1] and list(marker.get_ydata()) == [3.0]
    assert ax.lines[0].get_color() == ax.lines[1].get_color() != ax.lines[3].get_color()


def test_plot_losses_list_with_labels_and_given_axes():
    fig, ax = plt.subplots()
    assert plot_losses([H1, H2], ax=ax, labels=["a", "b"]) is ax
    assert legend(ax) == ["a train", "a validation", "b train", "b validation"]
    assert legend(plot_losses([H1, H2]))[0] == "run 0 train"


def test_plot_losses_without_validation():
    ax = plot_losses(History(epochs=[0, 1], train_loss=[2.0, 1.0]), mark_best=True)
    assert legend(ax) == ["train"]


def test_plot_losses_bad_input():
    with pytest.raises(ValueError, match="labels has 1 entries for 2 histories"):
        plot_losses([H1, H2], labels=["a"])
    with pytest.raises(ValueError, match="not both"):
        plot_losses({"a": H1}, labels=["a"])
    with pytest.raises(TypeError, match="History"):
        plot_losses([H1, [1.0, 2.0]])


# ---------------------------------------------------------------------------
# dead ReLU units
# ---------------------------------------------------------------------------


def test_dead_relu_fraction_by_hand():
    # hand_model on X: the ReLU's input is [[1, -1], [-2, 2]]: each unit is on for one
    # sample, so none is dead, although half of the outputs are zero
    np.testing.assert_array_equal(dead_relu_fraction(hand_model(), X), [0.0])
    # only the first sample: unit 2 (input -1) is off for every row
    np.testing.assert_array_equal(dead_relu_fraction(hand_model(), X[:1]), [0.5])


def test_dead_relu_fraction_counts_units_not_zero_outputs():
    # 3 units; unit 0 always on, unit 1 on for one row of four, unit 2 never on
    layer = dense([[1.0, 1.0, -1.0]], [0.0, -3.5, 0.0])
    x = np.array([[1.0], [2.0], [3.0], [4.0]])
    got = dead_relu_fraction(Sequential(layer, ReLU()), x)
    np.testing.assert_allclose(got, [1 / 3])
    assert got[0] != pytest.approx(np.mean(np.maximum(x @ layer.weight.value + layer.bias.value,
                                                      0) == 0))      # not the zero-output share


def test_dead_relu_fraction_finds_relus_inside_blocks():
    block = Residual(Sequential(dense([[1.0, 0.0], [0.0, 1.0]], [0.0, -100.0]), ReLU(),
                                dense([[1.0, 0.0], [0.0, 1.0]], [0.0, 0.0])))
    model = Sequential(dense([[1.0, 1.0]], [0.0, 0.0]), ReLU(), block)
    got = dead_relu_fraction(model, np.array([[1.0], [2.0]]))
    np.testing.assert_array_equal(got, [0.0, 0.5])       # outer ReLU, then the block's


def test_dead_relu_fraction_bad_input():
    with pytest.raises(ValueError, match="no ReLU"):
        dead_relu_fraction(Sequential(dense([[1.0]], [0.0])), X)
    with pytest.raises(ValueError, match=r"x must have shape \(n, features\)"):
        dead_relu_fraction(hand_model(), np.ones(3))
