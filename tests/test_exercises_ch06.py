"""The checkers of chapter 6 accept the book's solutions and reject the typical mistakes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from regmlp.exercises import ch06_putting_it_together as ch06
from regmlp.exercises import check_choose_config, check_paired_difference, check_winners_curse

# -- the book's solutions --------------------------------------------------------------------


def choose_config(runs, simplicity):
    stats = runs.groupby("config")["valid_loss"].agg(["mean", "std", "count"])
    stats["se"] = stats["std"] / np.sqrt(stats["count"])
    best = stats["mean"].idxmin()
    threshold = stats.loc[best, "mean"] + stats.loc[best, "se"]
    return next(c for c in simplicity if stats.loc[c, "mean"] <= threshold)


def paired_difference(runs, config, baseline="baseline"):
    table = runs.pivot(index="seed", columns="config", values="valid_loss")
    diff = table[config] - table[baseline]
    return float(diff.mean()), float(diff.std(ddof=1) / np.sqrt(len(diff)))


def stub(*args, **kwargs):
    raise NotImplementedError("Exercise: replace this line with your code.")


# -- wrong versions of choose_config ---------------------------------------------------------

def _one_se(runs, simplicity, column="valid_loss", spread="se", ddof=1, order=None):
    stats = runs.groupby("config")[column].agg(["mean", "count"])
    stats["std"] = runs.groupby("config")[column].std(ddof=ddof)
    stats["se"] = stats["std"] / np.sqrt(stats["count"])
    best = stats["mean"].idxmin()
    threshold = stats.loc[best, "mean"] + stats.loc[best, spread]
    candidates = simplicity if order is None else order(runs)
    return next(c for c in candidates if stats.loc[c, "mean"] <= threshold)


def choose_best_mean(runs, simplicity):
    return runs.groupby("config")["valid_loss"].mean().idxmin()


def choose_best_single_run(runs, simplicity):
    return runs.loc[runs["valid_loss"].idxmin(), "config"]


def choose_on_test(runs, simplicity):
    return _one_se(runs, simplicity, column="test_loss")


def choose_best_test_mean(runs, simplicity):
    return runs.groupby("config")["test_loss"].mean().idxmin()


def choose_with_std(runs, simplicity):
    return _one_se(runs, simplicity, spread="std")


def choose_with_ddof0(runs, simplicity):
    return _one_se(runs, simplicity, ddof=0)


def choose_in_table_order(runs, simplicity):
    return _one_se(runs, simplicity, order=lambda r: list(dict.fromkeys(r["config"])))


def choose_in_sorted_order(runs, simplicity):
    return _one_se(runs, simplicity, order=lambda r: sorted(set(r["config"])))


def choose_returns_series(runs, simplicity):
    return runs.groupby("config")["valid_loss"].mean()


def choose_strict(runs, simplicity):
    """`<` for `<=`: differs only when a mean sits exactly on the threshold."""
    stats = runs.groupby("config")["valid_loss"].agg(["mean", "std", "count"])
    threshold = stats["mean"].min() + (stats["std"] / np.sqrt(stats["count"]))[
        stats["mean"].idxmin()]
    return next((c for c in simplicity if stats.loc[c, "mean"] < threshold),
                stats["mean"].idxmin())


def choose_adds_a_column(runs, simplicity):
    runs["mean"] = runs.groupby("config")["valid_loss"].transform("mean")
    return choose_config(runs, simplicity)


# Other correct solutions: plain Python over the rows (statistics.stdev), and a running
# (Welford) mean and variance per configuration.
def choose_plain_python(runs, simplicity):
    import statistics

    losses = {}
    for config, loss in zip(runs["config"], runs["valid_loss"], strict=True):
        losses.setdefault(config, []).append(loss)
    means = {c: statistics.fmean(v) for c, v in losses.items()}
    best = min(means, key=means.get)
    se = statistics.stdev(losses[best]) / len(losses[best]) ** 0.5
    return [c for c in simplicity if means[c] <= means[best] + se][0]


def choose_welford(runs, simplicity):
    acc = {}
    for row in runs.itertuples():
        n, mean, m2 = acc.get(row.config, (0, 0.0, 0.0))
        n += 1
        delta = row.valid_loss - mean
        mean += delta / n
        m2 += delta * (row.valid_loss - mean)
        acc[row.config] = (n, mean, m2)
    best = min(acc, key=lambda c: acc[c][1])
    n, mean, m2 = acc[best]
    threshold = mean + (m2 / (n - 1)) ** 0.5 / n ** 0.5
    for c in simplicity:
        if acc[c][1] <= threshold:
            return c


@pytest.mark.parametrize("solution", [choose_config, choose_plain_python, choose_welford])
def test_choose_config_accepts_the_solution(solution, capsys):
    check_choose_config(solution)
    assert capsys.readouterr().out.startswith("Correct:")


@pytest.mark.parametrize("wrong, message", [
    (choose_best_mean, "ignoring the spread over seeds"),
    (choose_best_single_run, "One run is luck"),
    (choose_on_test, "test leakage"),
    (choose_best_test_mean, "test leakage"),
    (choose_with_std, "uses its standard error, SE = std(ddof=1) / sqrt(n_seeds)"),
    (choose_with_ddof0, "ddof=1"),
    (choose_in_table_order, "in the table's row order"),
    (choose_in_sorted_order, "in alphabetical order"),
    (choose_returns_series, "should return the configuration's name"),
    (stub, "not written yet"),
    (choose_strict, "the rule is mean <= best mean + SE, not <"),
    (choose_adds_a_column, "changed its input runs in place"),
])
def test_choose_config_rejects(wrong, message):
    with pytest.raises(AssertionError) as info:
        check_choose_config(wrong)
    assert message in str(info.value), str(info.value)


def test_choose_cases_separate_the_mistakes():
    """The tables tell every listed mistake from the rule and from each other."""
    cases = ch06._choose_cases()
    right = [choose_config(case["runs"], case["simplicity"]) for case in cases]
    assert right == [ch06._one_se(case["valid"], case["simplicity"]) for case in cases]
    patterns = [tuple(mistake(case) for case in cases) for mistake, _ in ch06._mistakes()]
    assert tuple(right) not in patterns
    assert len(set(patterns)) == len(patterns)


def test_a_mistake_not_in_the_list_gets_the_rule():
    def always_first(runs, simplicity):
        return simplicity[0]

    with pytest.raises(AssertionError, match="The rule: average each configuration"):
        check_choose_config(always_first)


def test_an_unknown_name_is_reported():
    with pytest.raises(AssertionError, match="is not one of the configurations"):
        check_choose_config(lambda runs, simplicity: "ridge")


# -- wrong versions of paired_difference -------------------------------------------------------

def paired_reversed(runs, config, baseline="baseline"):
    mean, se = paired_difference(runs, config, baseline)
    return -mean, se


def paired_unpaired_se(runs, config, baseline="baseline"):
    stats = runs.groupby("config")["valid_loss"].agg(["mean", "std", "count"])
    se = stats["std"] / np.sqrt(stats["count"])
    mean = stats.loc[config, "mean"] - stats.loc[baseline, "mean"]
    return mean, float(np.hypot(se[config], se[baseline]))


def paired_by_row_order(runs, config, baseline="baseline"):
    a = runs.loc[runs["config"] == config, "valid_loss"].to_numpy()
    b = runs.loc[runs["config"] == baseline, "valid_loss"].to_numpy()
    diff = a - b
    return diff.mean(), diff.std(ddof=1) / np.sqrt(len(diff))


def paired_ddof0(runs, config, baseline="baseline"):
    table = runs.pivot(index="seed", columns="config", values="valid_loss")
    diff = (table[config] - table[baseline]).to_numpy()
    return diff.mean(), np.std(diff) / np.sqrt(len(diff))


def paired_std(runs, config, baseline="baseline"):
    table = runs.pivot(index="seed", columns="config", values="valid_loss")
    diff = table[config] - table[baseline]
    return diff.mean(), diff.std()


def paired_wrong_mean(runs, config, baseline="baseline"):
    mean, se = paired_difference(runs, config, baseline)
    return mean / 2, se


def paired_one_number(runs, config, baseline="baseline"):
    return paired_difference(runs, config, baseline)[0]


def paired_named_baseline(runs, config, baseline="baseline"):
    """Ignores the baseline argument and always compares with 'baseline'."""
    return paired_difference(runs, config, "baseline")


def paired_default_dropout(runs, config, baseline="dropout"):
    return paired_difference(runs, config, baseline)


def paired_test_column(runs, config, baseline="baseline"):
    table = runs.pivot(index="seed", columns="config", values="test_loss")
    diff = table[config] - table[baseline]
    return float(diff.mean()), float(diff.std(ddof=1) / np.sqrt(len(diff)))


def paired_rounds_in_place(runs, config, baseline="baseline"):
    runs["valid_loss"] = runs["valid_loss"].round(3)
    return paired_difference(runs, config, baseline)


# Other correct solutions: a merge on the seed; a dict of losses by seed and plain Python.
def paired_merge(runs, config, baseline="baseline"):
    a = runs[runs.config == config][["seed", "valid_loss"]]
    b = runs[runs.config == baseline][["seed", "valid_loss"]]
    both = a.merge(b, on="seed", suffixes=("_c", "_b"))
    diff = (both["valid_loss_c"] - both["valid_loss_b"]).to_numpy()
    return diff.mean(), diff.std(ddof=1) / len(diff) ** 0.5


def paired_plain(runs, config, baseline="baseline"):
    import statistics

    by_seed = {(r.config, r.seed): r.valid_loss for r in runs.itertuples()}
    seeds = sorted({r.seed for r in runs.itertuples() if r.config == config})
    diffs = [by_seed[(config, s)] - by_seed[(baseline, s)] for s in seeds]
    return statistics.fmean(diffs), statistics.stdev(diffs) / len(diffs) ** 0.5


@pytest.mark.parametrize("solution", [paired_difference, paired_merge, paired_plain])
def test_paired_difference_accepts_the_solution(solution, capsys):
    check_paired_difference(solution)
    assert capsys.readouterr().out.startswith("Correct:")


@pytest.mark.parametrize("wrong, message", [
    (paired_reversed, "the sign is reversed"),
    (paired_unpaired_se, "unpaired standard error"),
    (paired_by_row_order, "paired by row order"),
    (paired_ddof0, "ddof=1"),
    (paired_std, "divides it by sqrt(n_seeds)"),
    (paired_wrong_mean, "Subtract the baseline's validation loss of the same seed"),
    (paired_one_number, "must return a pair (mean, se)"),
    (stub, "not written yet"),
    (paired_named_baseline, "compared with 'baseline', not with 'weight decay'"),
    (paired_default_dropout, "compared with 'dropout', not with 'baseline'"),
    (paired_test_column, "used the 'test_loss' column"),
    (paired_rounds_in_place, "changed its input runs in place"),
])
def test_paired_difference_rejects(wrong, message):
    with pytest.raises(AssertionError) as info:
        check_paired_difference(wrong)
    assert message in str(info.value), str(info.value)


def test_checkers_are_exported():
    import regmlp.exercises as ex

    for name in ("check_choose_config", "check_paired_difference", "check_winners_curse"):
        assert name in ex.__all__ and name in ch06.__all__
    assert isinstance(ch06._runs_table({"a": [1.0]}), pd.DataFrame)


# -- the winner's curse with shared noise -----------------------------------------------------

def winners_curse(k, sigma, rho):
    """The book's solution: E[max] by simulation."""
    z = np.random.default_rng(0).standard_normal((200_000, k))
    return sigma * np.sqrt(1 - rho) * z.max(axis=1).mean()


def winners_curse_by_integration(k, sigma, rho):
    """Another correct answer: E[max] = integral of 1 - Phi^k over x > 0 minus Phi^k below."""
    from math import erf, sqrt

    x = np.linspace(-10.0, 10.0, 20_001)
    cdf = 0.5 * (1 + np.array([erf(v / sqrt(2)) for v in x]))
    inside = np.where(x > 0, 1 - cdf**k, -(cdf**k))
    return float(sigma * sqrt(1 - rho) * np.trapezoid(inside, x))


def winners_curse_other_seed(k, sigma, rho):
    """A correct answer with a smaller, differently seeded simulation (10^5 draws)."""
    draws = np.random.default_rng(12345).normal(size=(100_000, k))
    return float(sigma * (1 - rho) ** 0.5 * np.mean(np.max(draws, axis=1)))


def winners_curse_simulating_the_model(k, sigma, rho):
    """A correct answer that simulates the correlated losses themselves."""
    rng = np.random.default_rng(7)
    shared = rng.standard_normal((200_000, 1))
    private = rng.standard_normal((200_000, k))
    losses = sigma * (np.sqrt(rho) * shared + np.sqrt(1 - rho) * private)
    return float(-losses.min(axis=1).mean())


def curse_ignores_rho(k, sigma, rho):
    return winners_curse(k, sigma, 0.0)


def curse_one_minus_rho(k, sigma, rho):
    return winners_curse(k, sigma, 0.0) * (1 - rho)


def curse_shared_part(k, sigma, rho):
    return winners_curse(k, sigma, 0.0) * np.sqrt(rho)


def curse_difference_sd(k, sigma, rho):
    return winners_curse(k, sigma, rho) * np.sqrt(2)


def curse_asymptotic(k, sigma, rho):
    return sigma * np.sqrt(1 - rho) * np.sqrt(2 * np.log(k))


def curse_negative(k, sigma, rho):
    return -winners_curse(k, sigma, rho)


def curse_variance(k, sigma, rho):
    return winners_curse(k, sigma**2, rho)


def curse_expected_min(k, sigma, rho):
    """A slip not in the list: the mean of the k losses' spread instead of their maximum."""
    z = np.random.default_rng(0).standard_normal((200_000, k))
    return sigma * np.sqrt(1 - rho) * np.abs(z).mean()


def curse_array(k, sigma, rho):
    z = np.random.default_rng(0).standard_normal((1000, k))
    return sigma * np.sqrt(1 - rho) * z.max(axis=1)


def curse_nan(k, sigma, rho):
    return float("nan")


@pytest.mark.parametrize("right", [winners_curse, winners_curse_by_integration,
                                   winners_curse_other_seed,
                                   winners_curse_simulating_the_model])
def test_winners_curse_accepts_correct_answers(right, capsys):
    check_winners_curse(right)
    assert capsys.readouterr().out.startswith("Correct:")


@pytest.mark.parametrize("wrong, message", [
    (curse_ignores_rho, "ignores rho"),
    (curse_one_minus_rho, "scaled by (1 - rho)"),
    (curse_shared_part, "scaled by sqrt(rho), the shared part"),
    (curse_difference_sd, "standard deviation of the DIFFERENCE"),
    (curse_asymptotic, "sqrt(2 ln k)"),
    (curse_negative, "the sign is reversed"),
    (curse_variance, "you used sigma**2"),
    (curse_expected_min, "1/sqrt(pi) = 0.5642 for k = 2"),
    (curse_array, "should return one number"),
    (curse_nan, "expected a finite number"),
    (stub, "not written yet"),
])
def test_winners_curse_rejects(wrong, message):
    with pytest.raises(AssertionError) as info:
        check_winners_curse(wrong)
    assert message in str(info.value), str(info.value)


def test_winners_curse_reference_values():
    """The checker's E[max] matches the known values: 0 (k = 1), 1/sqrt(pi) (k = 2), and
    3/(2 sqrt(pi)) (k = 3)."""
    assert ch06._expected_max(1) == 0.0
    assert np.isclose(ch06._expected_max(2), 1 / np.sqrt(np.pi), rtol=1e-9)
    assert np.isclose(ch06._expected_max(3), 3 / (2 * np.sqrt(np.pi)), rtol=1e-9)


def test_winners_curse_slips_are_told_apart():
    """Every listed slip misses the right answers on some case by more than the tolerance,
    and no two slips give the same answers on every case."""
    cases = ch06._CURSE_CASES
    right = [ch06._curse(*case) for case in cases]
    patterns = []
    for slip, _ in ch06._curse_slips():
        values = [slip(*case) for case in cases]
        assert any(abs(v - r) > 3 * ch06._curse_tolerance(*case)
                   for v, r, case in zip(values, right, cases, strict=True))
        patterns.append(tuple(round(v, 12) for v in values))
    assert len(set(patterns)) == len(patterns)
