r"""The book's network, built one way for every chapter.

Every chapter trains the same kind of model on the house prices: ``33`` input
features, ``depth`` hidden layers of ``width`` ReLU units and one output. The
chapters switch parts on and off (dropout, LayerNorm, residual blocks, the
initialisation), and :func:`book_model` builds each variant, so that two
chapters that say "the book model" mean the same network.

Randomness comes in two independent streams made from ``rng``: one for the
initial weights and one for the dropout masks. Two models built with the same
``rng`` therefore start from the same weights whatever their dropout rate,
which makes comparisons between settings *paired*.
"""

from __future__ import annotations

import numpy as np

from ._checks import as_generator, check_flag, check_int, check_number
from .layers import Dense, Dropout, Layer, LayerNorm, ReLU, Residual, Sequential

__all__ = ["book_model", "he_init"]

_INITS = ("pytorch", "he")


def he_init(layer: Dense, rng: np.random.Generator) -> Dense:
    r"""Redraw a ``Dense`` layer's weight with He et al.'s (2015) initialisation.

    :math:`W_{ij} \sim \mathcal N(0, 2/n_{in})` and :math:`b = 0`, which keeps
    the mean square of ReLU activations constant from layer to layer (PyTorch's
    default, uniform in :math:`\pm 1/\sqrt{n_{in}}`, has variance
    :math:`1/(3 n_{in})`, six times smaller).

    Parameters
    ----------
    layer : Dense
        Changed in place (and returned).
    rng : numpy.random.Generator
        Source of the new weights.

    Examples
    --------
    >>> layer = he_init(Dense(400, 400, rng=0), np.random.default_rng(0))
    >>> round(float(layer.weight.value.var() * 400), 1)
    2.0
    """
    if not isinstance(layer, Dense):
        raise TypeError(f"layer must be a Dense layer, got {type(layer).__name__}")
    weight = layer.weight.value
    weight[...] = rng.normal(0.0, np.sqrt(2.0 / layer.n_in), weight.shape)
    if layer.bias is not None:
        layer.bias.value[...] = 0.0
    return layer


def book_model(*, width: int = 64, depth: int = 2, dropout: float = 0.0,
               layernorm: bool = False, residual: bool = False, init: str = "pytorch",
               n_in: int = 33, rng: np.random.Generator | int | None = None) -> Sequential:
    r"""The book's MLP regressor, ``n_in -> width (x depth) -> 1``, with optional parts.

    Parameters
    ----------
    width : int, default 64
        Units per hidden layer.
    depth : int, default 2
        Without ``residual``: the number of hidden ``Dense`` layers. With it:
        the number of residual blocks after the first hidden layer.
    dropout : float, default 0.0
        Drop probability of a ``Dropout`` after each hidden activation (after
        each block when ``residual``); 0 means no ``Dropout`` layer.
    layernorm : bool, default False
        Without ``residual``: a ``LayerNorm`` between each hidden ``Dense`` and
        its ReLU. With it: pre-LN blocks and a final ``LayerNorm``.
    residual : bool, default False
        Build a residual network: a first ``Dense`` layer, then ``depth`` blocks
        :math:`h \leftarrow h + W_2\,\mathrm{relu}(W_1 \mathrm{LN}(h))` (He et
        al.'s identity-mapping block, pre-LN when ``layernorm``), then a ReLU
        and the output layer.
    init : {"pytorch", "he"}, default "pytorch"
        PyTorch's default uniform initialisation, or :func:`he_init`.
    n_in : int, default 33
        Input features (the house-price data have 33).
    rng : numpy.random.Generator, int or None
        Seed of the two streams, initial weights and dropout masks.

    Returns
    -------
    Sequential

    Examples
    --------
    >>> [type(layer).__name__ for layer in book_model(rng=0)]
    ['Dense', 'ReLU', 'Dense', 'ReLU', 'Dense']
    >>> len(book_model(depth=3, dropout=0.1, rng=0))
    10
    """
    width, n_in = check_int(width, "width", low=1), check_int(n_in, "n_in", low=1)
    depth = check_int(depth, "depth")
    dropout = check_number(dropout, "dropout", low=0.0, high=1.0, high_inclusive=False)
    layernorm = check_flag(layernorm, "layernorm")
    residual = check_flag(residual, "residual")
    if init not in _INITS:
        raise ValueError(f"init must be one of {_INITS}, got {init!r}")
    weights, masks = as_generator(rng).spawn(2)

    def dense(a: int, b: int) -> Dense:
        layer = Dense(a, b, rng=weights)
        return he_init(layer, weights) if init == "he" else layer

    def drop() -> list[Layer]:
        return [Dropout(dropout, rng=masks)] if dropout > 0 else []

    def norm() -> list[Layer]:
        return [LayerNorm(width)] if layernorm else []

    if not residual:
        layers: list[Layer] = []
        widths = [n_in] + [width] * depth
        for a, b in zip(widths[:-1], widths[1:], strict=True):
            layers += [dense(a, b), *norm(), ReLU(), *drop()]
        return Sequential(*layers, dense(widths[-1], 1))
    layers = [dense(n_in, width), *drop()]
    for _ in range(depth):
        block = Sequential(*norm(), dense(width, width), ReLU(), dense(width, width))
        layers += [Residual(block), *drop()]
    return Sequential(*layers, *norm(), ReLU(), dense(width, 1))
