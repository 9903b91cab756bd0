"""Tests of regmlp.models: the book's network and He initialisation.

``book_model`` builds every variant the chapters train; these tests pin down the
layer sequence of each option, the paired-initialisation property that makes
comparisons between settings paired (the same ``rng`` gives the same ``Dense``
weights whatever the dropout), and the statistics of ``he_init``. Its bad
arguments are rows of the table in ``tests/test_bad_input.py``.
"""

from __future__ import annotations

import inspect

import numpy as np
import pytest
from test_bad_input import CASES

from regmlp.layers import Dense, Dropout, LayerNorm, ReLU, Residual, Sequential
from regmlp.models import book_model, he_init


def layout(layer) -> list:
    """The model as nested type names, with the widths of each ``Dense``."""
    if isinstance(layer, Sequential):
        return [layout(child) for child in layer]
    if isinstance(layer, Residual):
        return ["Residual", layout(layer.block)]
    if isinstance(layer, Dense):
        return f"Dense({layer.n_in},{layer.n_out})"
    if isinstance(layer, Dropout):
        return f"Dropout({layer.p})"
    if isinstance(layer, LayerNorm):
        return f"LayerNorm({layer.dim})"
    return type(layer).__name__


LAYOUTS = [
    ({}, ["Dense(33,64)", "ReLU", "Dense(64,64)", "ReLU", "Dense(64,1)"]),
    ({"width": 8, "depth": 1, "n_in": 5}, ["Dense(5,8)", "ReLU", "Dense(8,1)"]),
    ({"depth": 0}, ["Dense(33,1)"]),
    ({"width": 4, "depth": 3, "dropout": 0.2},
     ["Dense(33,4)", "ReLU", "Dropout(0.2)", "Dense(4,4)", "ReLU", "Dropout(0.2)",
      "Dense(4,4)", "ReLU", "Dropout(0.2)", "Dense(4,1)"]),
    ({"width": 4, "layernorm": True},
     ["Dense(33,4)", "LayerNorm(4)", "ReLU", "Dense(4,4)", "LayerNorm(4)", "ReLU", "Dense(4,1)"]),
    ({"width": 4, "depth": 2, "residual": True},
     ["Dense(33,4)",
      ["Residual", ["Dense(4,4)", "ReLU", "Dense(4,4)"]],
      ["Residual", ["Dense(4,4)", "ReLU", "Dense(4,4)"]],
      "ReLU", "Dense(4,1)"]),
    ({"width": 4, "depth": 1, "residual": True, "layernorm": True, "dropout": 0.1},
     ["Dense(33,4)", "Dropout(0.1)",
      ["Residual", ["LayerNorm(4)", "Dense(4,4)", "ReLU", "Dense(4,4)"]], "Dropout(0.1)",
      "LayerNorm(4)", "ReLU", "Dense(4,1)"]),
]


@pytest.mark.parametrize("kwargs, expected", LAYOUTS, ids=[str(k) for k, _ in LAYOUTS])
def test_the_layers_of_each_option(kwargs, expected):
    model = book_model(rng=0, **kwargs)
    assert layout(model) == expected
    x = np.ones((3, kwargs.get("n_in", 33)))
    assert model(x).shape == (3, 1) and model.eval()(x).shape == (3, 1)


def dense_weights(model) -> list[np.ndarray]:
    return [m.weight.value for m in model.modules() if isinstance(m, Dense)] + \
        [m.bias.value for m in model.modules() if isinstance(m, Dense)]


def check_paired(build) -> None:
    """Raise unless models built with the same rng share their Dense weights for every
    dropout rate and LayerNorm choice (and a different rng gives different weights)."""
    for options in ({}, {"residual": True}):
        reference = dense_weights(build(rng=7, dropout=0.0, **options))
        for dropout in (0.1, 0.5):
            for layernorm in (False, True):
                got = dense_weights(build(rng=7, dropout=dropout, layernorm=layernorm,
                                          **options))
                if not all(np.array_equal(a, b) for a, b in zip(reference, got, strict=True)):
                    raise AssertionError(f"dropout={dropout}, layernorm={layernorm}, "
                                         f"{options}: the Dense weights differ")
        other = dense_weights(build(rng=8, **options))
        assert not np.array_equal(reference[0], other[0])


def test_the_same_rng_gives_the_same_weights_whatever_the_dropout():
    check_paired(book_model)


def test_the_paired_check_catches_dropout_seeds_drawn_from_the_weight_stream():
    """A plausible builder: each Dropout seeded from the stream of the weights."""
    def interleaved(*, rng, dropout=0.0, layernorm=False, residual=False):
        stream = np.random.default_rng(rng)
        layers = []
        for a, b in ((33, 64), (64, 64)):
            layers += [Dense(a, b, rng=stream), *([LayerNorm(b)] if layernorm else []), ReLU()]
            if dropout:
                layers.append(Dropout(dropout, rng=int(stream.integers(2**31))))
        return Sequential(*layers, Dense(64, 1, rng=stream))

    with pytest.raises(AssertionError, match="the Dense weights differ"):
        check_paired(interleaved)


def test_the_masks_do_not_depend_on_the_initialisation():
    """Weights and masks are separate streams: He init draws more numbers, masks stay."""
    x = np.ones((4, 33))
    masks = []
    for init in ("pytorch", "he"):
        model = book_model(rng=3, dropout=0.5, init=init)
        model(x)
        masks.append([m.mask.copy() for m in model.modules() if isinstance(m, Dropout)])
    assert all(np.array_equal(a, b) for a, b in zip(*masks, strict=True))


def test_a_generator_is_used_as_the_seed_of_both_streams():
    a = book_model(rng=np.random.default_rng(5), dropout=0.1)
    b = book_model(rng=np.random.default_rng(5), dropout=0.1)
    assert all(np.array_equal(u, v) for u, v in zip(dense_weights(a), dense_weights(b),
                                                    strict=True))


# --- He initialisation ----------------------------------------------------------------


def test_he_init_has_variance_two_over_n_in_and_zero_bias():
    layer = he_init(Dense(400, 300, rng=0), np.random.default_rng(1))
    w = layer.weight.value
    # 120,000 draws: the relative standard error of the variance is sqrt(2/n) = 0.4 %
    assert abs(w.var() * 400 / 2 - 1) < 0.02
    assert abs(w.mean()) < 5 * np.sqrt(2 / 400 / w.size)
    np.testing.assert_array_equal(layer.bias.value, 0.0)


def test_pytorch_default_has_variance_one_third_over_n_in():
    w = Dense(400, 300, rng=0).weight.value
    assert abs(w.var() * 400 * 3 - 1) < 0.02
    assert np.abs(w).max() <= 1 / np.sqrt(400)


def test_book_model_he_option_uses_he_init_in_every_dense():
    model = book_model(width=256, depth=2, init="he", rng=0)
    for layer in (m for m in model.modules() if isinstance(m, Dense)):
        n = layer.weight.value.size
        tolerance = 5 * np.sqrt(2 / n)    # five standard errors of the sample variance
        assert abs(layer.weight.value.var() * layer.n_in / 2 - 1) < tolerance
        np.testing.assert_array_equal(layer.bias.value, 0.0)


def test_he_init_keeps_relu_activations_at_the_same_scale():
    """Why He init: the mean square of the activations stays put through 10 ReLU layers."""
    x = np.random.default_rng(0).standard_normal((500, 256))
    for init, low, high in (("he", 0.5, 2.0), ("pytorch", 0.0, 1e-3)):
        model = book_model(width=256, depth=10, n_in=256, init=init, rng=1)
        h = model[:-1](x)                          # the last hidden activations
        ratio = float(np.mean(h**2) / np.mean(x**2))
        assert low < ratio < high, (init, ratio)


# --- bad arguments --------------------------------------------------------------------


def test_every_argument_of_book_model_has_a_bad_call_in_the_table():
    ids = [case[0] for case in CASES]
    for name in inspect.signature(book_model).parameters:
        name = "negative-seed" if name == "rng" else name
        assert any(i.startswith(f"book_model-{name}") for i in ids), name
    assert "he_init-not-dense" in ids
