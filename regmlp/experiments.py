"""Experiments that replicate: run a training function over settings and seeds.

One training run is one draw from a random experiment: the initial weights, the
dropout masks and the order of the mini-batches all come from a seed. A claim
such as "dropout lowers the validation loss" is a claim about the *distribution*
of that draw, so the book runs every comparison over a list of seeds and reports
the mean and its standard error.

:func:`sweep` runs ``run(seed, **config)`` for every configuration of a grid and
every seed and collects the metrics in a table; :func:`summarize` gives the mean,
standard error and count per configuration; :func:`paired` compares two
configurations seed by seed. With seeds shared between configurations the
comparison is *paired*: the difference :math:`d_s = m_A(s) - m_B(s)` removes
what the two runs of a seed have in common, and the standard error of its mean,
:math:`\\mathrm{sd}(d)/\\sqrt{n}`, is usually much smaller than either
configuration's own.
"""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from numbers import Real
from typing import Any

import numpy as np

from .training import _show_progress

__all__ = ["sweep", "summarize", "paired", "PairedDifference", "RunError"]


class RunError(RuntimeError):
    """One run of a :func:`sweep` raised; the message names its config and seed."""


# -- arguments ------------------------------------------------------------------

def _check_seeds(seeds: object) -> list[int]:
    """A non-empty list of distinct non-negative ints."""
    if isinstance(seeds, (str, bytes)) or not isinstance(seeds, Iterable):
        raise TypeError(f"seeds must be a list of non-negative ints, got {seeds!r}")
    seeds = list(seeds)
    if not seeds:
        raise ValueError("seeds must not be empty: give at least one seed, e.g. [0, 1, 2, 3, 4]")
    for seed in seeds:
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise TypeError(f"seeds must be non-negative ints, got {seed!r} in {seeds!r}")
    repeated = sorted({int(s) for s in seeds if seeds.count(s) > 1})
    if repeated:
        raise ValueError(f"seeds must be distinct, but {repeated} appear more than once")
    return [int(s) for s in seeds]


def _check_config(config: object, where: str) -> dict[str, Any]:
    if not isinstance(config, Mapping):
        raise TypeError(f"grid: {where} must be a dict of settings, got {config!r}")
    for key in config:
        if not isinstance(key, str) or not key.isidentifier():
            raise TypeError(f"grid: {where} has the key {key!r}; keys must be names "
                            "(they are passed to run as keyword arguments)")
        if key == "seed":
            raise ValueError("grid: 'seed' cannot be a setting; give the seeds as `seeds`")
    return dict(config)


def _expand_grid(grid: object) -> list[dict[str, Any]]:
    """The configurations of ``grid``: every combination of a dict of lists (the
    first key varying slowest), or a list of dicts as it is."""
    if isinstance(grid, Mapping):
        _check_config(grid, "the grid")
        if not grid:
            raise ValueError("grid is empty: give at least one setting, e.g. {'p': [0.0, 0.5]}")
        values = []
        for key, options in grid.items():
            if isinstance(options, (str, bytes)) or not isinstance(options, Iterable):
                raise TypeError(f"grid[{key!r}] must be a list of values, got {options!r}")
            options = list(options)
            if not options:
                raise ValueError(f"grid[{key!r}] is empty: give at least one value")
            values.append(options)
        configs = [dict(zip(grid, combo, strict=True)) for combo in itertools.product(*values)]
    elif isinstance(grid, Sequence) and not isinstance(grid, (str, bytes)):
        configs = [_check_config(c, f"entry {i}") for i, c in enumerate(grid)]
    else:
        raise TypeError(f"grid must be a dict of lists or a list of dicts, got {grid!r}")
    if not configs:
        raise ValueError("grid is empty: give at least one configuration")
    return configs


def _jobs(n_jobs: int | None) -> int:
    """``n_jobs``, or ``REGMLP_JOBS`` from the environment when it is None (default 1)."""
    if n_jobs is None:
        setting = os.environ.get("REGMLP_JOBS", "").strip()
        if not setting:
            return 1
        try:
            n_jobs = int(setting)
        except ValueError:
            raise ValueError(f"REGMLP_JOBS must be a positive integer, got {setting!r}") from None
        name = "REGMLP_JOBS"
    else:
        name = "n_jobs"
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, (int, np.integer)) or n_jobs < 1:
        raise ValueError(f"{name} must be a positive integer, got {n_jobs!r}")
    return int(n_jobs)


def _describe(config: Mapping[str, Any], seed: int) -> str:
    settings = ", ".join(f"{k}={v!r}" for k, v in config.items())
    return f"run(seed={seed}{', ' if settings else ''}{settings})"


def _check_metrics(metrics: object, config: Mapping[str, Any], seed: int) -> dict[str, float]:
    """The metrics of one run as a dict of numbers, or a clear error."""
    where = _describe(config, seed)
    if not isinstance(metrics, Mapping) or not metrics:
        raise TypeError(f"{where} must return a non-empty dict of metric names to numbers, "
                        f"got {metrics!r}")
    for key, value in metrics.items():
        if not isinstance(key, str):
            raise TypeError(f"{where} returned the metric name {key!r}; names must be strings")
        if key == "seed" or key in config:
            raise ValueError(f"{where} returned the metric {key!r}, which is also a setting "
                             "name or 'seed'; rename the metric")
        if isinstance(value, bool) or not isinstance(value, Real):
            raise TypeError(f"{where} returned {key}={value!r}; metrics must be real numbers "
                            "(use float(...) on a 0-d array)")
    return {key: float(value) for key, value in metrics.items()}


# -- running --------------------------------------------------------------------

def _one_run(run: Callable[..., Mapping[str, Real]], config: dict[str, Any],
             seed: int) -> dict[str, float]:
    """Call ``run`` once; an exception becomes a :class:`RunError` naming config and seed."""
    try:
        metrics = run(seed, **config)
    except Exception as error:
        raise RunError(f"{_describe(config, seed)} raised "
                       f"{type(error).__name__}: {error}") from error
    return _check_metrics(metrics, config, seed)


def _progress(total: int, show: bool) -> Any:
    if not show:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="runs", unit="run")


def sweep(run: Callable[..., Mapping[str, Real]], grid: Mapping[str, Sequence] | Sequence[Mapping],
          seeds: Sequence[int], *, n_jobs: int | None = None,
          progress: bool | None = None) -> Any:
    """Run ``run(seed, **config)`` for every configuration and seed; tabulate the metrics.

    Parameters
    ----------
    run : callable
        ``run(seed, **config)`` trains one model and returns a mapping of metric
        names to numbers, e.g. ``{"valid_loss": 0.21}``. It must depend on
        nothing but its arguments (make every generator from ``seed``), so that
        a run gives the same numbers in any process and any order.
    grid : dict of lists, or list of dicts
        A dict ``{"p": [0.0, 0.5], "lr": [1e-3, 1e-2]}`` means every
        combination, the first key varying slowest; a list of dicts gives the
        configurations one by one.
    seeds : list of int
        Distinct non-negative seeds; every configuration runs with each.
    n_jobs : int, optional
        The number of processes (joblib's ``loky`` backend). ``None`` reads the
        environment variable ``REGMLP_JOBS`` and means 1 when it is unset; 1
        runs everything in this process.
    progress : bool, optional
        A progress bar over the runs; ``None`` follows :func:`regmlp.training.fit`'s rule
        (a bar for a person, none in the book build or the tests).

    Returns
    -------
    pandas.DataFrame
        One row per (configuration, seed), in grid order with the seeds inner:
        the settings' columns, ``seed``, then the metrics. The values are the
        same whatever ``n_jobs`` is.

    Raises
    ------
    RunError
        When a run raises; the message names its configuration and seed.

    Examples
    --------
    >>> def run(seed, scale):
    ...     return {"value": scale * np.random.default_rng(seed).normal()}
    >>> table = sweep(run, {"scale": [1.0, 2.0]}, seeds=[0, 1], n_jobs=1)
    >>> list(table.columns)
    ['scale', 'seed', 'value']
    >>> len(table)
    4
    """
    if not callable(run):
        raise TypeError(f"run must be a function run(seed, **config), got {run!r}")
    configs = _expand_grid(grid)
    seeds = _check_seeds(seeds)
    jobs = _jobs(n_jobs)
    tasks = [(config, seed) for config in configs for seed in seeds]
    bar = _progress(len(tasks), _show_progress(progress))
    if jobs == 1 or len(tasks) == 1:
        results = (_one_run(run, config, seed) for config, seed in tasks)
    else:
        from joblib import Parallel, delayed

        parallel = Parallel(n_jobs=min(jobs, len(tasks)), return_as="generator")
        results = parallel(delayed(_one_run)(run, config, seed) for config, seed in tasks)
    rows = []
    try:
        for (config, seed), metrics in zip(tasks, results, strict=True):
            rows.append({**config, "seed": seed, **metrics})
            if bar is not None:
                bar.update()
    finally:
        if bar is not None:
            bar.close()
    return _table(rows, configs, tasks)


def _table(rows: list[dict[str, Any]], configs: list[dict[str, Any]],
           tasks: list[tuple[dict[str, Any], int]]) -> Any:
    """The rows as a DataFrame with the columns settings, seed, metrics."""
    import pandas as pd

    names = [metric for metric in rows[0] if metric not in tasks[0][0] and metric != "seed"]
    for (config, seed), row in zip(tasks, rows, strict=True):
        got = [m for m in row if m not in config and m != "seed"]
        if sorted(got) != sorted(names):
            raise ValueError(f"{_describe(config, seed)} returned the metrics {got}, but the "
                             f"first run returned {names}; every run must return the same ones")
    settings = list(dict.fromkeys(key for config in configs for key in config))
    return pd.DataFrame(rows, columns=[*settings, "seed", *names])


# -- summaries ------------------------------------------------------------------

def _settings_of(results: Any) -> list[str]:
    """The setting columns of a sweep's table: those before ``seed``."""
    columns = list(results.columns)
    if "seed" not in columns:
        raise ValueError("results must be a table from sweep (it has no 'seed' column)")
    return columns[: columns.index("seed")]


def summarize(results: Any, metrics: str | Sequence[str] | None = None) -> Any:
    """Mean, standard error of the mean and count of each metric per configuration.

    Parameters
    ----------
    results : pandas.DataFrame
        A table from :func:`sweep`.
    metrics : str or list of str, optional
        The metrics to summarise; all of them by default.

    Returns
    -------
    pandas.DataFrame
        One row per configuration (in grid order), and for each metric the
        columns ``(metric, "mean")``, ``(metric, "sem")`` and
        ``(metric, "count")``. The standard error is pandas' ``sem``: the
        sample standard deviation (``ddof=1``) over :math:`\\sqrt{n}`.

    Examples
    --------
    >>> def run(seed, scale):
    ...     return {"value": scale * np.random.default_rng(seed).normal()}
    >>> table = summarize(sweep(run, {"scale": [1.0, 2.0]}, seeds=[0, 1, 2], n_jobs=1))
    >>> list(table["value"].columns)
    ['mean', 'sem', 'count']
    """
    settings = _settings_of(results)
    metrics = _metric_names(results, metrics)
    if not settings:
        return results[metrics].agg(["mean", "sem", "count"]).unstack().to_frame().T
    grouped = results.groupby(settings, sort=False, dropna=False)[metrics]
    return grouped.agg(["mean", "sem", "count"])


def _metric_names(results: Any, metrics: str | Sequence[str] | None) -> list[str]:
    columns = list(results.columns)
    available = columns[columns.index("seed") + 1:] if "seed" in columns else []
    if metrics is None:
        return available
    metrics = [metrics] if isinstance(metrics, str) else list(metrics)
    unknown = [m for m in metrics if m not in available]
    if unknown:
        raise KeyError(f"unknown metric(s) {unknown}; the table has {available}")
    return metrics


@dataclass(frozen=True)
class PairedDifference:
    """The seed-by-seed difference of one metric between two configurations.

    Attributes
    ----------
    differences : pandas.Series
        :math:`d_s = m_A(s) - m_B(s)`, indexed by seed.
    mean : float
        :math:`\\bar d`.
    sem : float
        Its standard error, :math:`\\mathrm{sd}(d)/\\sqrt{n}` (``ddof=1``).
    n : int
        The number of seeds.
    """

    differences: Any
    mean: float
    sem: float
    n: int

    @property
    def t(self) -> float:
        """:math:`\\bar d / \\mathrm{se}(\\bar d)`, the paired t statistic."""
        if self.sem == 0:
            return math.copysign(math.inf, self.mean) if self.mean else 0.0
        return self.mean / self.sem

    def __str__(self) -> str:
        return f"{self.mean:+.4g} ± {self.sem:.2g} (n = {self.n})"


def _select(results: Any, config: Mapping[str, Any], name: str) -> Any:
    """The rows of ``results`` whose settings match ``config``, indexed by seed."""
    if not isinstance(config, Mapping) or not config:
        raise TypeError(f"{name} must be a non-empty dict of settings, got {config!r}")
    settings = _settings_of(results)
    mask = np.ones(len(results), dtype=bool)
    for key, value in config.items():
        if key not in settings:
            raise KeyError(f"{name} names the setting {key!r}; the table has {settings}")
        column = results[key]
        mask &= (column.isna() if value is None else column == value).to_numpy(bool)
    rows = results[mask]
    if rows.empty:
        raise ValueError(f"{name}={dict(config)!r} matches no row of the table")
    if rows["seed"].duplicated().any():
        raise ValueError(f"{name}={dict(config)!r} matches several configurations; "
                         f"name more settings (the table has {settings})")
    return rows.set_index("seed")


def paired(results: Any, metric: str, a: Mapping[str, Any],
           b: Mapping[str, Any]) -> PairedDifference:
    """Compare configurations ``a`` and ``b`` seed by seed on ``metric``.

    Parameters
    ----------
    results : pandas.DataFrame
        A table from :func:`sweep` in which both configurations ran with the
        same seeds.
    metric : str
        The metric to compare.
    a, b : dict
        Settings that pick one configuration each, e.g. ``{"p": 0.5}``.

    Returns
    -------
    PairedDifference
        The differences :math:`m_A(s) - m_B(s)`, their mean and its standard
        error. "A is lower than B" is a claim that survives other seeds when
        ``mean + 2 * sem < 0``.

    Examples
    --------
    >>> def run(seed, shift):
    ...     return {"value": shift + np.random.default_rng(seed).normal()}
    >>> table = sweep(run, {"shift": [0.0, 1.0]}, seeds=[0, 1, 2], n_jobs=1)
    >>> d = paired(table, "value", {"shift": 1.0}, {"shift": 0.0})
    >>> round(d.mean, 12), round(d.sem, 12)
    (1.0, 0.0)
    """
    _settings_of(results)
    (metric,) = _metric_names(results, metric)
    rows_a, rows_b = _select(results, a, "a"), _select(results, b, "b")
    if set(rows_a.index) != set(rows_b.index):
        raise ValueError(f"a and b must have run with the same seeds; a has "
                         f"{sorted(rows_a.index)}, b has {sorted(rows_b.index)}")
    diff = rows_a[metric] - rows_b[metric].loc[rows_a.index]
    diff.name = f"{metric} difference"
    sem = float(diff.sem()) if len(diff) > 1 else math.nan
    return PairedDifference(differences=diff, mean=float(diff.mean()), sem=sem, n=len(diff))
