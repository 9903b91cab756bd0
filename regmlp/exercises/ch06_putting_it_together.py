"""Checkers for the exercises of chapter 6, *Putting it together*.

* :func:`check_choose_config`: the one-standard-error rule over seeds, from a
  table of runs (one row per configuration and seed);
* :func:`check_paired_difference`: the per-seed (paired) difference between a
  configuration and the baseline, with its standard error;
* :func:`check_winners_curse`: the expected optimism of the best of ``k``
  equally good configurations whose measured losses are correlated.

Each checker runs the learner's function on small, fixed tables or arrays,
compares the answer with one computed here independently, and, when it is
wrong, says which mistake the answer matches (test leakage, a single lucky
seed, a forgotten square root, ...).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from ._common import as_number, call_pure, diagnose, expect_tuple, passed, run_learner_code

__all__ = ["check_choose_config", "check_paired_difference"]


# -- shared helpers ----------------------------------------------------------------------

def _runs_table(valid: dict[str, Sequence[float]], test: dict[str, Sequence[float]] | None = None,
                *, order_seed: int = 0) -> pd.DataFrame:
    """A long table (config, seed, valid_loss, test_loss), its rows in a shuffled order."""
    rows = []
    for config, losses in valid.items():
        for seed, loss in enumerate(losses):
            test_loss = np.nan if test is None else test[config][seed]
            rows.append({"config": config, "seed": 10 + seed, "valid_loss": float(loss),
                         "test_loss": float(test_loss)})
    table = pd.DataFrame(rows)
    order = np.random.default_rng(order_seed).permutation(len(table))
    return table.iloc[order].reset_index(drop=True)


def _mean_se(values: Sequence[float], ddof: int = 1) -> tuple[float, float]:
    """Mean and standard error ``std(ddof) / sqrt(n)``, written out in plain Python."""
    n = len(values)
    mean = sum(values) / n
    var = sum((v - mean) ** 2 for v in values) / (n - ddof)
    return mean, (var ** 0.5) / n ** 0.5


def _one_se(valid: dict[str, Sequence[float]], simplicity: Sequence[str], *,
            spread: str = "se", ddof: int = 1, strict: bool = False) -> str:
    """The one-standard-error choice (the reference), or a variant of it for the traps."""
    stats = {c: _mean_se(v, ddof) for c, v in valid.items()}
    best = min(stats, key=lambda c: stats[c][0])
    mean, se = stats[best]
    width = se * len(valid[best]) ** 0.5 if spread == "std" else se
    if strict:
        return next((c for c in simplicity if stats[c][0] < mean + width), best)
    return next(c for c in simplicity if stats[c][0] <= mean + width)


# -- exercise: choose a configuration by the one-standard-error rule ------------------------

_RULE = ("The rule: average each configuration's validation loss over its seeds, find the "
         "best mean, and take the FIRST configuration in `simplicity` whose mean is <= best "
         "mean + SE(best), with SE = std(ddof=1) / sqrt(n_seeds).")


def _choose_cases() -> list[dict[str, Any]]:
    """Fixed tables (validation and test losses per seed) and the order of simplicity.

    Each table is built so that one typical mistake changes the answer; every
    table also has a ``test_loss`` column that points elsewhere.
    """
    cases = [
        # A simpler configuration lies within one SE of the best mean.
        dict(name="a simpler configuration within one standard error of the best",
             valid={"baseline": [0.260, 0.250, 0.270, 0.255],
                    "early stopping": [0.222, 0.214, 0.226, 0.218],
                    "combined": [0.206, 0.226, 0.200, 0.232]},
             simplicity=["baseline", "early stopping", "combined"]),
        # One lucky seed: 'dropout' has the single best run but a poor mean.
        dict(name="one lucky seed",
             valid={"baseline": [0.250, 0.262, 0.244],
                    "weight decay": [0.214, 0.219, 0.212],
                    "dropout": [0.190, 0.262, 0.258]},
             simplicity=["baseline", "weight decay", "dropout"]),
        # The test losses point to another configuration than the validation losses.
        dict(name="a table that also logged test losses",
             valid={"baseline": [0.250, 0.254, 0.246],
                    "weight decay": [0.231, 0.236, 0.229],
                    "dropout": [0.214, 0.216, 0.212]},
             test={"baseline": [0.249, 0.251, 0.247],
                   "weight decay": [0.198, 0.200, 0.196],
                   "dropout": [0.240, 0.238, 0.242]},
             simplicity=["baseline", "weight decay", "dropout"]),
        # Within one standard deviation of the best, but not within one standard error.
        dict(name="standard deviation versus standard error",
             valid={"baseline": [0.250, 0.262, 0.244, 0.256],
                    "weight decay": [0.2255, 0.2275, 0.2235, 0.2265],
                    "combined": [0.210, 0.230, 0.212, 0.228]},
             simplicity=["baseline", "weight decay", "combined"]),
        # Within one SE with ddof=1, not with ddof=0.
        dict(name="sample standard deviation (ddof=1)",
             valid={"baseline": [0.250, 0.262, 0.244],
                    "weight decay": [0.2200, 0.2210, 0.2205],
                    "combined": [0.205, 0.225, 0.215]},
             simplicity=["baseline", "weight decay", "combined"]),
        # The order of `simplicity` differs from the table's order and from sorted order.
        dict(name="the order given by `simplicity`",
             valid={"wd+dropout": [0.204, 0.218, 0.208],
                    "all three": [0.211, 0.215, 0.212],
                    "plain": [0.260, 0.250, 0.270],
                    "wd": [0.212, 0.216, 0.213]},
             simplicity=["plain", "wd", "wd+dropout", "all three"]),
        # A tie at the threshold: 'weight decay' has a mean of exactly best + SE. Every loss
        # is a multiple of 3/256, so every mean and SE (computed in any order, even by a
        # running update) is exact in binary: the tie is a true tie.
        dict(name="a mean exactly at the threshold",
             valid={"baseline": [78 / 256, 84 / 256, 81 / 256, 81 / 256],
                    "weight decay": [78 / 256, 60 / 256, 72 / 256, 66 / 256],
                    "combined": [75 / 256, 63 / 256, 63 / 256, 63 / 256]},
             simplicity=["baseline", "weight decay", "combined"]),
    ]
    for case in cases:
        if "test" not in case:  # test losses that favour another configuration
            names = list(case["valid"])
            case["test"] = {c: case["valid"][names[i - 1]] for i, c in enumerate(names)}
        case["runs"] = _runs_table(case["valid"], case["test"])
    return cases


def _mistakes() -> list[tuple[Callable[[dict[str, Any]], str], str]]:
    """Typical wrong versions of the rule, as functions of a case, with what to tell the learner."""
    leakage = ("your choice follows the 'test_loss' column. Choosing with the test set is test "
               "leakage: the test loss of the chosen model is then an optimistic, biased "
               "estimate. Use only 'valid_loss' to choose; the test set is opened once, after "
               "the choice.")

    def by_order(order: Callable[[dict[str, Any]], list[str]]) -> Callable[..., str]:
        return lambda case: _one_se(case["valid"], order(case))

    return [
        (lambda case: min(case["valid"], key=lambda c: _mean_se(case["valid"][c])[0]),
         "you return the configuration with the lowest mean validation loss, ignoring the "
         "spread over seeds: a simpler configuration whose mean is within one standard error "
         "of the best is not distinguishable from it and should be preferred. " + _RULE),
        (lambda case: min(case["valid"], key=lambda c: min(case["valid"][c])),
         "you choose by the single lowest run. One run is luck, not evidence: average each "
         "configuration's validation loss over its seeds first (group the rows by 'config'). "
         + _RULE),
        (lambda case: _one_se(case["test"], case["simplicity"]), leakage),
        (lambda case: min(case["test"], key=lambda c: _mean_se(case["test"][c])[0]), leakage),
        (lambda case: _one_se(case["valid"], case["simplicity"], spread="std"),
         "you use the standard deviation of the best configuration as the margin. The rule "
         "uses its standard error, SE = std(ddof=1) / sqrt(n_seeds): the uncertainty of a "
         "MEAN over n seeds, smaller than that of a single run."),
        (lambda case: _one_se(case["valid"], case["simplicity"], ddof=0),
         "your margin is a little too small: use the sample standard deviation (ddof=1, "
         "pandas' default; np.std uses ddof=0 unless told) in SE = std / sqrt(n_seeds)."),
        (by_order(lambda case: list(dict.fromkeys(case["runs"]["config"]))),
         "you take the first configuration under the threshold in the table's row order; "
         "take the first in the order of `simplicity` (simplest first)."),
        (by_order(lambda case: sorted(case["valid"])),
         "you take the first configuration under the threshold in alphabetical order; "
         "take the first in the order of `simplicity` (simplest first)."),
        (lambda case: _one_se(case["valid"], case["simplicity"], strict=True),
         "a configuration whose mean is exactly the best mean + SE is within the threshold: "
         "the rule is mean <= best mean + SE, not <."),
    ]


def check_choose_config(choose_config: Callable[..., Any]) -> None:
    """Check ``choose_config(runs, simplicity) -> str`` (the one-standard-error rule).

    ``runs`` is a DataFrame with one row per run and the columns ``config``,
    ``seed``, ``valid_loss`` and ``test_loss``; the right answer is the first
    configuration in ``simplicity`` whose mean validation loss over its seeds
    is at most the best mean plus the standard error of the best
    configuration, ``std(ddof=1) / sqrt(n)``.
    """
    cases = _choose_cases()
    answers = []
    for case in cases:
        got = call_pure(choose_config, case["runs"].copy(), list(case["simplicity"]),
                        what="choose_config(runs, simplicity)", names=("runs", "simplicity"),
                        hint="group or sort a copy (runs.groupby(...) makes a new table).")
        if not isinstance(got, str):
            raise AssertionError(f"choose_config should return the configuration's name (a str), "
                                 f"got {type(got).__name__} {got!r}")
        answers.append(got)
    expected = [_one_se(case["valid"], case["simplicity"]) for case in cases]
    if answers == expected:
        passed("choose_config applies the one-standard-error rule.")
        return
    i = next(i for i, (a, e) in enumerate(zip(answers, expected, strict=True)) if a != e)
    where = (f"On the table '{cases[i]['name']}' you chose {answers[i]!r}, expected "
             f"{expected[i]!r}: ")
    diagnose(answers, [(lambda m=mistake: [m(case) for case in cases], message)
                       for mistake, message in _mistakes()],
             what=where, match=lambda a, b: a == b, template="{what}{hint}")
    if answers[i] not in cases[i]["valid"]:
        raise AssertionError(where + f"{answers[i]!r} is not one of the configurations "
                             f"{sorted(cases[i]['valid'])}.")
    raise AssertionError(where + _RULE)


# -- exercise: the paired difference over seeds ------------------------------------------------

def _paired_table() -> pd.DataFrame:
    """Runs where pairing by seed matters: a shared per-seed offset and shuffled rows."""
    offsets = [0.020, -0.015, 0.000, 0.030, -0.010]
    base = [0.240 + o for o in offsets]
    wd = [0.222 + o + e for o, e in zip(offsets, [0.002, -0.001, 0.003, 0.000, -0.004],
                                        strict=True)]
    drop = [0.233 + o + e for o, e in zip(offsets, [-0.003, 0.004, 0.001, -0.002, 0.000],
                                          strict=True)]
    # test losses of their own (a test_loss column read by mistake must give other numbers)
    test = {name: [v + 0.013 * (j + 1) + 0.002 * k * (j - 1) for k, v in enumerate(losses)]
            for j, (name, losses) in enumerate((("baseline", base), ("weight decay", wd),
                                                 ("dropout", drop)))}
    return _runs_table({"baseline": base, "weight decay": wd, "dropout": drop}, test,
                       order_seed=3)


def _diffs(runs: pd.DataFrame, config: str, baseline: str) -> list[float]:
    """The per-seed differences config - baseline, matched explicitly by seed."""
    base = {int(r.seed): r.valid_loss for r in runs.itertuples() if r.config == baseline}
    return [r.valid_loss - base[int(r.seed)] for r in runs.itertuples() if r.config == config]


def check_paired_difference(paired_difference: Callable[..., Any]) -> None:
    """Check ``paired_difference(runs, config, baseline) -> (mean, se)``.

    The per-seed differences ``valid_loss(config, s) - valid_loss(baseline, s)``
    are matched **by seed** (not by row order); the answer is their mean and
    their standard error ``std(ddof=1) / sqrt(n)``.
    """
    runs = _paired_table()
    # (config, baseline, whether to pass baseline): the default, then other names
    calls = [("weight decay", "baseline", False), ("dropout", "baseline", True),
             ("dropout", "weight decay", True)]
    for config, baseline, pass_baseline in calls:
        mean, se = _mean_se(_diffs(runs, config, baseline))
        shown = f"{config!r}, {baseline!r}" if pass_baseline else f"{config!r}"
        call = f"paired_difference(runs, {shown})"
        got = call_pure(paired_difference, runs.copy(), config,
                        *((baseline,) if pass_baseline else ()), what=call, names=("runs",))
        got_mean, got_se = (as_number(v, what=f"{call}'s {name}") for v, name in zip(
            expect_tuple(got, 2, what=call, names="(mean, se)"), ("mean", "se"), strict=True))
        if not np.isclose(got_mean, mean, rtol=1e-9, atol=1e-12):
            _wrong_columns_or_names(runs, call, config, baseline, got_mean)
        what = f"For {config!r} against {baseline!r} "
        if np.isclose(got_mean, -mean, rtol=1e-9, atol=1e-12) and mean != 0:
            raise AssertionError(what + f"your mean difference is {got_mean:.6f}, expected "
                                 f"{mean:.6f}: the sign is reversed. Compute config minus "
                                 "baseline, so that a negative value means an improvement.")
        if not np.isclose(got_mean, mean, rtol=1e-9, atol=1e-12):
            raise AssertionError(what + f"your mean difference is {got_mean:.6f}, expected "
                                 f"{mean:.6f}. Subtract the baseline's validation loss of the "
                                 "same seed from each run of the configuration, then average.")
        if np.isclose(got_se, se, rtol=1e-9, atol=1e-12):
            continue
        _, se_config = _mean_se(runs.loc[runs.config == config, "valid_loss"].tolist())
        _, se_base = _mean_se(runs.loc[runs.config == baseline, "valid_loss"].tolist())
        unpaired = (se_config ** 2 + se_base ** 2) ** 0.5
        by_rows = np.subtract(runs.loc[runs.config == config, "valid_loss"].to_numpy(),
                              runs.loc[runs.config == baseline, "valid_loss"].to_numpy())
        _, se_rows = _mean_se(list(by_rows))
        diffs = _diffs(runs, config, baseline)
        _, se_ddof0 = _mean_se(diffs, ddof=0)
        std = se * len(diffs) ** 0.5
        hints = [
            (unpaired, "that is the unpaired standard error sqrt(SE_a**2 + SE_b**2), which "
                       "ignores that the two configurations share each seed's luck. Take the "
                       "standard error of the per-seed differences instead."),
            (se_rows, "the differences were paired by row order, but the rows are not sorted "
                      "by seed: match the runs by their 'seed' value (e.g. pivot the table to "
                      "one column per configuration, indexed by seed)."),
            (se_ddof0, "use the sample standard deviation of the differences (ddof=1, pandas' "
                       "default; np.std uses ddof=0 unless told)."),
            (std, "that is the standard deviation of the differences; the standard error of "
                  "their mean divides it by sqrt(n_seeds)."),
        ]
        diagnose(got_se, hints, what=what + f"your standard error is {got_se:.6f}, expected "
                 f"{se:.6f}:", rtol=1e-9, atol=1e-12, template="{what} {hint}")
        raise AssertionError(what + f"your standard error is {got_se:.6f}, expected {se:.6f}: "
                             "it is std(ddof=1) / sqrt(n) of the per-seed differences.")
    passed("paired_difference pairs the runs by seed, against any baseline.")


def _wrong_columns_or_names(runs: pd.DataFrame, call: str, config: str, baseline: str,
                            got_mean: float) -> None:
    """A wrong mean that another baseline, or the test losses, would give."""
    others = [c for c in ("baseline", "weight decay", "dropout") if c not in (config, baseline)]
    for other in others:
        if np.isclose(got_mean, _mean_se(_diffs(runs, config, other))[0], rtol=1e-9,
                      atol=1e-12):
            raise AssertionError(f"{call} compared with {other!r}, not with {baseline!r}: use "
                                 "the baseline argument (its default is 'baseline'), not a "
                                 "name of your own.")
    with_test = runs.assign(valid_loss=runs["test_loss"])
    if np.isclose(got_mean, _mean_se(_diffs(with_test, config, baseline))[0], rtol=1e-9,
                  atol=1e-12):
        raise AssertionError(f"{call} used the 'test_loss' column: compare the validation "
                             "losses, 'valid_loss'.")


# -- exercise: the winner's curse with shared noise -------------------------------------------

__all__ += ["check_winners_curse"]

#: (k, sigma, rho) for which the learner's function is run; each slip below changes at least
#: one answer by far more than the tolerance.
_CURSE_CASES = ((2, 1.0, 0.0), (6, 0.02, 0.0), (6, 0.02, 0.5), (10, 0.01, 0.9),
                (4, 2.0, 0.25), (3, 0.5, 1.0), (1, 0.3, 0.2))


def _expected_max(k: int) -> float:
    r"""E[max of k independent standard normals], by quadrature.

    :math:`\mathbb E[\max_c Z_c] = \int x\, k\, \varphi(x)\, \Phi(x)^{k-1}\, dx`, with
    :math:`\varphi` and :math:`\Phi` the standard normal density and distribution function.
    """
    if k == 1:
        return 0.0
    x = np.linspace(-12.0, 12.0, 48_001)
    density = np.exp(-0.5 * x**2) / np.sqrt(2 * np.pi)
    steps = 0.5 * (density[1:] + density[:-1]) * np.diff(x)   # the cdf, by trapezoids
    cdf = np.concatenate([[0.0], np.cumsum(steps)])
    return float(np.trapezoid(x * k * density * cdf ** (k - 1), x))


def _curse(k: int, sigma: float, rho: float) -> float:
    """The optimism sigma * sqrt(1 - rho) * E[max of k standard normals]."""
    return float(sigma * np.sqrt(1.0 - rho) * _expected_max(k))


def _curse_tolerance(k: int, sigma: float, rho: float) -> float:
    """2% of ``sigma * max(E[max], 1)``: room for a simulation with 10^5 draws or more,
    including one that simulates the shared term as well (its error does not vanish as
    ``rho`` -> 1)."""
    return float(0.02 * sigma * max(_expected_max(k), 1.0))


def _curse_slips() -> list[tuple[Callable[[int, float, float], float], str]]:
    """Plausible wrong answers, as functions of (k, sigma, rho), with what to tell the learner."""
    e = _expected_max
    return [
        (lambda k, s, r: s * e(k),
         "your answer ignores rho. The part of the noise that all configurations share moves "
         "them together and cannot change which one wins; only the private part, with "
         "standard deviation sigma * sqrt(1 - rho), feeds the curse."),
        (lambda k, s, r: s * (1 - r) * e(k),
         "you scaled by (1 - rho). That is the private part's VARIANCE share; its standard "
         "deviation is sigma * sqrt(1 - rho)."),
        (lambda k, s, r: s * np.sqrt(r) * e(k),
         "you scaled by sqrt(rho), the shared part. The shared term sigma*sqrt(rho)*W is the "
         "same for every configuration and has mean zero; it is the private part, "
         "sigma*sqrt(1 - rho)*V_c, whose minimum is biased."),
        (lambda k, s, r: s * np.sqrt(2 * (1 - r)) * e(k),
         "you used sigma * sqrt(2 * (1 - rho)), the standard deviation of the DIFFERENCE of "
         "two losses. The optimism of the minimum is sigma * sqrt(1 - rho) * E[max of k "
         "standard normals]."),
        (lambda k, s, r: s * np.sqrt((1 - r) * 2 * np.log(k)),
         "you used sqrt(2 ln k) for E[max of k standard normals]. That is only how it grows "
         "for very large k; for k = 6 it is about 1.27, not 1.89. Compute it by simulation "
         "(the mean of the row maxima of a large standard normal sample) or by integration."),
        (lambda k, s, r: -s * np.sqrt(1 - r) * e(k),
         "the sign is reversed. Return the optimism L - E[min], which is >= 0: the winner "
         "looks better (lower) than it is."),
        (lambda k, s, r: s**2 * np.sqrt(1 - r) * e(k),
         "you used sigma**2. sigma is the standard deviation of each measured loss, and the "
         "optimism is in the loss's own units: sigma * sqrt(1 - rho) * E[max]."),
    ]


def check_winners_curse(winners_curse: Callable[..., Any]) -> None:
    """Check ``winners_curse(k, sigma, rho) -> float``, the winner's expected optimism.

    For ``k`` equally good configurations whose measured losses have standard
    deviation ``sigma`` and pairwise correlation ``rho``, the answer is
    ``sigma * sqrt(1 - rho) * E[max of k independent standard normals]``,
    accepted within ``0.02 * sigma * max(E[max], 1)`` (a simulation with 10^5
    draws or more is precise enough).
    """
    answers = []
    for k, sigma, rho in _CURSE_CASES:
        what = f"winners_curse({k}, {sigma}, {rho})"
        got = run_learner_code(winners_curse, k, sigma, rho, what=what)
        if np.ndim(got) != 0:
            raise AssertionError(f"{what} should return one number, got an array of shape "
                                 f"{np.shape(got)}")
        try:
            got = float(got)
        except (TypeError, ValueError):
            raise AssertionError(f"{what} should return a number, got {got!r}") from None
        if not np.isfinite(got):
            raise AssertionError(f"{what} returned {got}; expected a finite number.")
        answers.append(got)

    def matches(values: Sequence[float]) -> bool:
        return all(abs(a - v) <= _curse_tolerance(*case)
                   for a, v, case in zip(answers, values, _CURSE_CASES, strict=True))

    expected = [_curse(*case) for case in _CURSE_CASES]
    if matches(expected):
        passed("winners_curse gives sigma * sqrt(1 - rho) * E[max of k standard normals].")
        return
    i = next(i for i, (a, v, case) in enumerate(zip(answers, expected, _CURSE_CASES,
                                                    strict=True))
             if abs(a - v) > _curse_tolerance(*case))
    k, sigma, rho = _CURSE_CASES[i]
    where = (f"winners_curse({k}, {sigma}, {rho}) returned {answers[i]:.6g}, expected "
             f"{expected[i]:.6g}: ")
    for slip, message in _curse_slips():
        if matches([slip(*case) for case in _CURSE_CASES]):
            raise AssertionError(where + message)
    raise AssertionError(where + "the optimism is sigma * sqrt(1 - rho) * E[max of k "
                         "independent standard normals]; E[max] is 0 for k = 1 and "
                         "1/sqrt(pi) = 0.5642 for k = 2. Compute it to within 1%.")
