"""Layers: the building blocks of a multilayer perceptron.

Every layer follows the same small protocol (the CS231n style): ``forward(x)``
computes the output and keeps in ``self`` exactly what ``backward`` will need;
``backward(grad_out)`` receives dL/d(output), *adds* dL/d(parameter) into each
parameter's ``.grad`` and returns dL/d(input).

Names and semantics follow PyTorch (``torch.nn``), so that what a reader learns
here carries over: ``Dense`` is ``nn.Linear`` with the weight stored as
``(n_in, n_out)``, ``Dropout(p)`` drops with probability ``p``, ``LayerNorm``
normalises the last axis with a biased variance and ``eps`` inside the root.
"""

from __future__ import annotations

import os
import secrets
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ._checks import as_array, as_generator, check_float_dtype, check_number

__all__ = [
    "Parameter",
    "Layer",
    "Sequential",
    "Dense",
    "ReLU",
    "Dropout",
    "LayerNorm",
    "Residual",
]


class Parameter:
    """A trainable array together with its gradient.

    Parameters
    ----------
    value : array_like
        The initial value; it is copied (floats keep their dtype, integers
        become float64).
    decay : bool, default True
        Whether weight decay and explicit penalties apply to this parameter.
        Biases and LayerNorm's gain and shift use ``decay=False``.

    Attributes
    ----------
    value : ndarray
    grad : ndarray
        Same shape and dtype as ``value``; starts at zero and *accumulates*
        across ``backward`` calls until an optimizer's ``zero_grad``.
    decay : bool

    Examples
    --------
    >>> p = Parameter(np.ones(3), decay=False)
    >>> p.grad
    array([0., 0., 0.])
    """

    def __init__(self, value: np.ndarray, decay: bool = True) -> None:
        value = as_array(value, "value")
        if value.dtype.kind != "f":
            value = value.astype(np.float64)
        self.value = np.array(value, copy=True)
        self.grad = np.zeros_like(self.value)
        self.decay = bool(decay)

    @property
    def shape(self) -> tuple[int, ...]:
        return self.value.shape

    def zero_grad(self) -> None:
        """Set the gradient to zero, in place."""
        self.grad.fill(0.0)

    def __repr__(self) -> str:
        return f"Parameter(shape={self.value.shape}, dtype={self.value.dtype}, decay={self.decay})"


class Layer:
    """Base class of every layer.

    A subclass implements ``forward`` and ``backward``; a layer with
    parameters stores them as attributes and lists them in ``_params``
    (a tuple of attribute names); a container lists its sub-layers in
    ``_children`` (a tuple of attribute names, or overrides ``children``).
    """

    _params: tuple[str, ...] = ()

    def __init__(self) -> None:
        self.training = True

    # -- the protocol -------------------------------------------------------
    def forward(self, x: np.ndarray) -> np.ndarray:
        """Compute the output and keep in the layer what ``backward`` needs.

        Parameters
        ----------
        x : array_like
            The input, e.g. of shape ``(batch, features)``; numeric.

        Returns
        -------
        ndarray
            The output. ``layer(x)`` is ``layer.forward(x)``.
        """
        raise NotImplementedError

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        r"""Backpropagate through the last ``forward``.

        Adds :math:`\partial L/\partial\theta` into each parameter's ``grad``
        (gradients accumulate) and returns :math:`\partial L/\partial x`.

        Parameters
        ----------
        grad_out : ndarray
            :math:`\partial L/\partial y`, the gradient of the loss with
            respect to the output of the last ``forward``; same shape.

        Returns
        -------
        ndarray
            :math:`\partial L/\partial x`, of the shape of that call's input.
        """
        raise NotImplementedError

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.forward(x)

    # -- structure ----------------------------------------------------------
    def children(self) -> list[tuple[str, Layer]]:
        """The direct sub-layers, as ``(name, layer)`` pairs."""
        return []

    def modules(self) -> Iterator[Layer]:
        """This layer and all its descendants, depth first."""
        yield self
        for _, child in self.children():
            yield from child.modules()

    def named_parameters(self, prefix: str = "") -> list[tuple[str, Parameter]]:
        """All parameters with dotted names such as ``"0.weight"``.

        Parameters
        ----------
        prefix : str, default ""
            Put in front of every name (used for the children of containers).
        """
        named = [(prefix + name, getattr(self, name)) for name in self._params]
        for child_name, child in self.children():
            named += child.named_parameters(f"{prefix}{child_name}.")
        return named

    def parameters(self) -> list[Parameter]:
        """All parameters of this layer and its sub-layers."""
        return [p for _, p in self.named_parameters()]

    def zero_grad(self) -> None:
        """Set every parameter's gradient to zero."""
        for p in self.parameters():
            p.zero_grad()

    # -- modes --------------------------------------------------------------
    def train(self, mode: bool = True) -> Layer:
        """Set training mode (``mode=True``) or evaluation mode, recursively.

        Parameters
        ----------
        mode : bool, default True
            ``True`` for training (dropout drops), ``False`` for evaluation.

        Returns
        -------
        Layer
            The layer itself, so that ``model.train()`` can be chained.
        """
        for module in self.modules():
            module.training = bool(mode)
        return self

    def eval(self) -> Layer:
        """Set evaluation mode, recursively: dropout becomes the identity."""
        return self.train(False)

    # -- weights ------------------------------------------------------------
    def state_dict(self) -> dict[str, np.ndarray]:
        """Copies of all parameter values, keyed by their dotted names."""
        return {name: p.value.copy() for name, p in self.named_parameters()}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        """Copy ``state``'s arrays into the parameters, after checking keys and shapes.

        Parameters
        ----------
        state : dict of str to ndarray
            As returned by :meth:`state_dict`: exactly the same keys, arrays of
            the same shapes. Nothing is changed if a key or shape is wrong.
        """
        if not isinstance(state, dict):
            raise TypeError(f"state must be a dict of arrays, got {type(state).__name__}")
        params = dict(self.named_parameters())
        missing, unexpected = sorted(set(params) - set(state)), sorted(set(state) - set(params))
        if missing or unexpected:
            raise ValueError(f"state has the wrong keys: missing {missing}, "
                             f"unexpected {unexpected}")
        for name, p in params.items():
            value = as_array(state[name], f"state[{name!r}]")
            if value.shape != p.value.shape:
                raise ValueError(f"state[{name!r}] has shape {value.shape}, "
                                 f"expected {p.value.shape}")
        for name, p in params.items():
            p.value[...] = state[name]

    def save(self, path: str | os.PathLike[str]) -> None:
        """Save the weights to exactly ``path``, an ``.npz`` archive, atomically.

        Parameters
        ----------
        path : str or path-like
            The file to write. No suffix is added (``"model"`` writes
            ``model``, as ``torch.save`` does); its folder must exist.

        Raises
        ------
        TypeError
            If ``path`` is not a str or path-like object.
        IsADirectoryError
            If ``path`` is an existing folder.
        FileNotFoundError
            If the folder of ``path`` does not exist.

        Notes
        -----
        The archive holds one array per entry of :meth:`state_dict` and no
        pickled object. It is first written to a temporary file in the same
        folder and then renamed over ``path`` (``os.replace``, atomic on one
        file system): a save that fails halfway (full disk, interrupt) leaves
        the previous file at ``path`` intact and removes its temporary file.

        Examples
        --------
        >>> model.save("checkpoint.npz")        # doctest: +SKIP
        >>> model.load("checkpoint.npz")        # doctest: +SKIP
        """
        path = _checkpoint_path(path)
        if not path.parent.is_dir():
            raise FileNotFoundError(f"cannot save to {path}: the folder {path.parent} "
                                    "does not exist")
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            with open(tmp, "xb") as f:
                np.savez(f, **self.state_dict())
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def load(self, path: str | os.PathLike[str]) -> None:
        """Load weights saved by :meth:`save` from exactly ``path``.

        Nothing is unpickled (``allow_pickle=False``), and the model is
        changed only if the whole file is valid and fits it.

        Parameters
        ----------
        path : str or path-like
            The file written by :meth:`save` (or any ``.npz`` archive of
            numeric arrays keyed like :meth:`state_dict`).

        Raises
        ------
        TypeError
            If ``path`` is not a str or path-like object.
        FileNotFoundError, IsADirectoryError
            If ``path`` does not exist or is a folder.
        ValueError
            If the file is not a valid ``.npz`` archive (truncated, corrupt,
            a plain ``.npy`` or a pickle), holds an object array, or its keys
            or shapes do not fit the model; the message names the file (and
            the entry).
        """
        path = _checkpoint_path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no checkpoint at {path}: no such file")
        state = _read_npz(path)
        try:
            self.load_state_dict(state)
        except (TypeError, ValueError) as err:
            raise type(err)(f"{path} does not fit this model: {err}") from err

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def _checkpoint_path(path: object) -> Path:
    """``path`` as a ``Path``; a folder or a non-path is refused."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or a path-like object, got {path!r}")
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"path {path} is a folder; give a file name inside it, "
                                f"such as {path / 'model.npz'}")
    return path


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    """Every array of the ``.npz`` archive at ``path``, with errors that name file and entry."""
    try:
        data = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as err:
        raise ValueError(f"{path} is not a checkpoint written by save (an .npz "
                         f"archive): {err}") from err
    if not isinstance(data, np.lib.npyio.NpzFile):
        raise ValueError(f"{path} holds a single array (.npy), not a checkpoint of named "
                         "weights (.npz) as written by save")
    arrays = {}
    with data:
        for key in data.files:
            try:
                arrays[key] = data[key]
            except ValueError as err:  # an object array: never unpickled
                raise ValueError(f"{path}: entry {key!r} is not a numeric array and is not "
                                 f"loaded (pickled objects are refused): {err}") from err
            except (OSError, EOFError, zipfile.BadZipFile) as err:
                raise ValueError(f"{path}: entry {key!r} cannot be read (truncated or "
                                 f"corrupt file): {err}") from err
    return arrays


class Sequential(Layer):
    """Layers applied one after the other: ``y = f_k(... f_2(f_1(x)))``.

    Backward runs the layers in reverse order. Supports ``len``, indexing
    (a slice gives a new ``Sequential`` sharing the layers) and iteration.

    Parameters
    ----------
    *layers : Layer
        The layers, in order; each layer object at most once in the model.

    Examples
    --------
    >>> model = Sequential(Dense(3, 8, rng=0), ReLU(), Dense(8, 1, rng=1))
    >>> model(np.zeros((5, 3))).shape
    (5, 1)
    """

    def __init__(self, *layers: Layer) -> None:
        super().__init__()
        for i, layer in enumerate(layers):
            if not isinstance(layer, Layer):
                raise TypeError(f"layers[{i}] must be a Layer, got {type(layer).__name__}")
        self.layers = list(layers)
        _check_no_repeats(self)

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Each layer's ``forward``, first to last."""
        for layer in self.layers:
            x = layer.forward(x)
        return x

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        """Each layer's ``backward``, last to first."""
        for layer in reversed(self.layers):
            grad_out = layer.backward(grad_out)
        return grad_out

    def children(self) -> list[tuple[str, Layer]]:
        return [(str(i), layer) for i, layer in enumerate(self.layers)]

    def __len__(self) -> int:
        return len(self.layers)

    def __getitem__(self, index: int | slice) -> Layer:
        if isinstance(index, slice):
            return Sequential(*self.layers[index])
        return self.layers[index]

    def __iter__(self) -> Iterator[Layer]:
        return iter(self.layers)

    def __repr__(self) -> str:
        inner = ",\n".join(f"  ({i}): {layer!r}" for i, layer in enumerate(self.layers))
        return f"Sequential(\n{inner}\n)"


def _check_no_repeats(model: Layer) -> None:
    """Refuse a layer object used twice: its second forward would overwrite the cache
    (inputs, masks) that the first one's backward needs, a silent wrong gradient."""
    seen: set[int] = set()
    for module in model.modules():
        if id(module) in seen:
            raise ValueError(f"layers: {module!r} appears twice in the model; a layer keeps "
                             "the cache of its last forward, so create a new layer instead")
        seen.add(id(module))


class Dense(Layer):
    r"""A fully connected layer, :math:`y = x W + b`.

    Parameters
    ----------
    n_in, n_out : int
        Input and output widths.
    bias : bool, default True
        Whether to add the bias :math:`b`.
    rng : numpy.random.Generator, int or None
        Source of the initial weights.
    dtype : numpy dtype, default float64
        Dtype of the parameters; the input is used in this dtype.

    Notes
    -----
    ``weight`` has shape ``(n_in, n_out)`` and ``bias`` shape ``(n_out,)``.
    Both start uniform in :math:`\pm 1/\sqrt{n_{in}}`, PyTorch's default.
    For an upstream gradient :math:`G = \partial L/\partial y`,

    .. math::
        \frac{\partial L}{\partial W} = x^\top G,\quad
        \frac{\partial L}{\partial b} = \textstyle\sum_i G_i,\quad
        \frac{\partial L}{\partial x} = G W^\top .

    Only the weight is decayed (``bias.decay`` is False).

    Examples
    --------
    >>> layer = Dense(4, 2, rng=0)
    >>> layer(np.ones((3, 4))).shape
    (3, 2)
    """

    _params = ("weight", "bias")

    def __init__(self, n_in: int, n_out: int, *, bias: bool = True,
                 rng: np.random.Generator | int | None = None,
                 dtype: np.dtype | type = np.float64) -> None:
        super().__init__()
        for name, n in (("n_in", n_in), ("n_out", n_out)):
            if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
                raise ValueError(f"{name} must be a positive integer, got {n!r}")
        dtype = check_float_dtype(dtype)
        rng = as_generator(rng)
        self.n_in, self.n_out = int(n_in), int(n_out)
        bound = 1.0 / np.sqrt(n_in)
        self.weight = Parameter(rng.uniform(-bound, bound, (n_in, n_out)).astype(dtype))
        if bias:
            self.bias = Parameter(rng.uniform(-bound, bound, n_out).astype(dtype), decay=False)
        else:
            self.bias = None
            self._params = ("weight",)
        self._x: np.ndarray | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        """``x @ weight + bias`` for ``x`` of shape ``(batch, n_in)``; keeps ``x``.

        ``x`` is used in the parameters' dtype; the output has shape
        ``(batch, n_out)``.
        """
        x = as_array(x, "x", self.weight.value.dtype)
        if x.ndim != 2 or x.shape[1] != self.n_in:
            raise ValueError(f"{self!r} expects x of shape (batch, {self.n_in}), got {x.shape}")
        self._x = x
        out = x @ self.weight.value
        if self.bias is not None:
            out += self.bias.value
        return out

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        """Add ``x.T @ grad_out`` to the weight's grad and the column sums to the
        bias's; return ``grad_out @ weight.T``."""
        if self._x is None:
            raise RuntimeError("Dense.backward called before forward")
        self.weight.grad += self._x.T @ grad_out
        if self.bias is not None:
            self.bias.grad += grad_out.sum(axis=0)
        return grad_out @ self.weight.value.T

    def __repr__(self) -> str:
        return f"Dense({self.n_in}, {self.n_out}, bias={self.bias is not None})"


class ReLU(Layer):
    r"""The rectifier :math:`y = \max(x, 0)`; its gradient is 1 where :math:`x > 0`, else 0."""

    def __init__(self) -> None:
        super().__init__()
        self._mask: np.ndarray | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        """``max(x, 0)`` elementwise; keeps the mask ``x > 0``."""
        x = as_array(x, "x")
        out = np.maximum(x, 0)
        self._mask = out > 0
        return out

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        """``grad_out`` where the last input was positive, 0 elsewhere."""
        if self._mask is None:
            raise RuntimeError("ReLU.backward called before forward")
        return grad_out * self._mask


class Dropout(Layer):
    r"""Inverted dropout: drop each unit with probability ``p`` while training.

    Parameters
    ----------
    p : float
        Probability of **dropping** a unit, ``0 <= p < 1`` (PyTorch's meaning).
    rng : numpy.random.Generator, int or None
        Source of the masks.

    Notes
    -----
    In training, with a keep-mask :math:`m_j \sim \text{Bernoulli}(1-p)`,

    .. math:: y = \frac{m \odot x}{1 - p}, \qquad \mathbb{E}[y] = x,

    so the expected activation is the same in training and evaluation. In
    evaluation mode the layer is the identity. ``backward`` multiplies the
    upstream gradient by the same mask and scale as the last training forward.
    ``mask`` holds that boolean keep-mask.

    Examples
    --------
    >>> drop = Dropout(0.5, rng=0)
    >>> y = drop(np.ones((2, 4)))       # entries are 0 or 2
    >>> bool(np.all(drop.eval()(np.ones(3)) == 1))
    True
    """

    def __init__(self, p: float = 0.5, *, rng: np.random.Generator | int | None = None) -> None:
        super().__init__()
        self.p = check_number(p, "p", low=0.0, high=1.0, high_inclusive=False)
        self.rng = as_generator(rng)
        self.mask: np.ndarray | None = None
        self._dropped = False

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Training: ``x * mask / (1 - p)``, a new mask each call; eval: ``x``.

        A float input keeps its dtype; an integer input gives float64.
        """
        x = as_array(x, "x")
        self._dropped = self.training and self.p > 0
        if not self._dropped:
            return x
        self.mask = self.rng.random(x.shape) >= self.p  # kept with prob. 1 - p
        return x * self.mask / (1.0 - self.p)

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        """``grad_out * mask / (1 - p)``, with the mask of the last forward."""
        if not self._dropped:
            return grad_out
        return grad_out * self.mask / (1.0 - self.p)

    def __repr__(self) -> str:
        return f"Dropout(p={self.p})"


class LayerNorm(Layer):
    r"""Layer normalisation over the last axis (Ba et al., 2016).

    Parameters
    ----------
    dim : int
        Size of the last axis.
    eps : float, default 1e-5
        Added to the variance inside the square root; keeps a constant row finite.
    dtype : numpy dtype, default float64
        Dtype of the gain and shift.

    Notes
    -----
    For each row :math:`x \in \mathbb{R}^D`, with the *biased* variance,

    .. math::
        \mu = \tfrac1D \textstyle\sum_j x_j,\quad
        \sigma^2 = \tfrac1D \textstyle\sum_j (x_j-\mu)^2,\quad
        \hat x = \frac{x-\mu}{\sqrt{\sigma^2+\epsilon}},\quad
        y = \gamma \odot \hat x + \beta .

    The statistics are per sample, so training and evaluation agree and a
    sample's output does not depend on the rest of its batch. With
    :math:`g = \gamma \odot \partial L/\partial y`, the input gradient is

    .. math::
        \frac{\partial L}{\partial x} = \frac{1}{\sqrt{\sigma^2+\epsilon}}
        \Big(g - \overline{g} - \hat x\, \overline{g \odot \hat x}\Big),

    where the bars are means over the row. Gain ``weight`` (ones) and shift
    ``bias`` (zeros) are never decayed.

    Examples
    --------
    Each row is normalised on its own; a constant row becomes the shift (0):

    >>> ln = LayerNorm(3)
    >>> np.round(ln(np.array([[1.0, 2.0, 3.0], [5.0, 5.0, 5.0]])), 4)
    array([[-1.2247,  0.    ,  1.2247],
           [ 0.    ,  0.    ,  0.    ]])
    >>> ln.weight.value[...] = 2.0        # the gain scales the normalised row
    >>> np.round(ln(np.array([[1.0, 2.0, 3.0]])), 4)
    array([[-2.4495,  0.    ,  2.4495]])
    """

    _params = ("weight", "bias")

    def __init__(self, dim: int, *, eps: float = 1e-5,
                 dtype: np.dtype | type = np.float64) -> None:
        super().__init__()
        if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or dim < 1:
            raise ValueError(f"dim must be a positive integer, got {dim!r}")
        self.dim = int(dim)
        self.eps = check_number(eps, "eps", low=0.0)
        dtype = check_float_dtype(dtype)
        self.weight = Parameter(np.ones(dim, dtype=dtype), decay=False)
        self.bias = Parameter(np.zeros(dim, dtype=dtype), decay=False)
        self._xhat: np.ndarray | None = None
        self._rstd: np.ndarray | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Normalise each row of ``x`` over its last axis; scale and shift."""
        x = as_array(x, "x", self.weight.value.dtype)
        if x.ndim < 1 or x.shape[-1] != self.dim:
            raise ValueError(f"{self!r} expects x with last axis {self.dim}, "
                             f"got shape {x.shape}")
        mu = x.mean(axis=-1, keepdims=True)
        xc = x - mu
        var = np.mean(xc * xc, axis=-1, keepdims=True)
        self._rstd = 1.0 / np.sqrt(var + self.eps)
        self._xhat = xc * self._rstd
        return self._xhat * self.weight.value + self.bias.value

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        """The gradients of the gain, the shift and the input (Notes above)."""
        if self._xhat is None:
            raise RuntimeError("LayerNorm.backward called before forward")
        xhat, rstd = self._xhat, self._rstd
        lead = tuple(range(grad_out.ndim - 1))
        self.weight.grad += np.sum(grad_out * xhat, axis=lead)
        self.bias.grad += np.sum(grad_out, axis=lead)
        g = grad_out * self.weight.value
        mean_g = g.mean(axis=-1, keepdims=True)
        mean_gx = np.mean(g * xhat, axis=-1, keepdims=True)
        return rstd * (g - mean_g - xhat * mean_gx)

    def __repr__(self) -> str:
        return f"LayerNorm({self.dim}, eps={self.eps:g})"


class Residual(Layer):
    r"""A skip connection around ``block``: :math:`y = x + f(x)`.

    The backward pass adds the two paths,
    :math:`\partial L/\partial x = G + f'(x)^\top G`, so the gradient reaches
    earlier layers unchanged through the identity even when :math:`f` squashes it.
    The block's output must have the shape of its input.

    Parameters
    ----------
    block : Layer
        The function :math:`f`, e.g. a ``Sequential`` of ``Dense`` and ``ReLU``
        whose output width equals its input width.

    Examples
    --------
    >>> block = Residual(Sequential(Dense(4, 4, rng=0), ReLU()))
    >>> block(np.ones((2, 4))).shape
    (2, 4)
    """

    def __init__(self, block: Layer) -> None:
        super().__init__()
        if not isinstance(block, Layer):
            raise TypeError(f"block must be a Layer, got {type(block).__name__}")
        self.block = block
        _check_no_repeats(self)

    def children(self) -> list[tuple[str, Layer]]:
        return [("block", self.block)]

    def forward(self, x: np.ndarray) -> np.ndarray:
        """``x + block(x)``; the shapes must agree."""
        fx = self.block.forward(x)
        if fx.shape != np.shape(x):
            raise ValueError("Residual block must keep the shape of its input: "
                             f"x has shape {np.shape(x)}, "
                             f"block(x) has shape {fx.shape}")
        return x + fx

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        """The two paths added: the identity's and the block's."""
        return grad_out + self.block.backward(grad_out)

    def __repr__(self) -> str:
        return f"Residual({self.block!r})"
