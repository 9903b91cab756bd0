"""The checkers of chapter 6 accept the book's solutions and reject the typical mistakes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from regmlp.exercises import ch06_putting_it_together as ch06
from regmlp.exercises import check_choose_config, check_median_ape, check_paired_difference

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


def median_ape(pred, y, target_mean, target_std):
    price_pred = np.exp(pred * target_std + target_mean)
    price = np.exp(y * target_std + target_mean)
    return float(100 * np.median(np.abs(price_pred - price) / price))


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


def test_choose_config_accepts_the_solution(capsys):
    check_choose_config(choose_config)
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


def test_paired_difference_accepts_the_solution(capsys):
    check_paired_difference(paired_difference)
    assert capsys.readouterr().out.startswith("Correct:")


@pytest.mark.parametrize("wrong, message", [
    (paired_reversed, "the sign is reversed"),
    (paired_unpaired_se, "unpaired standard error"),
    (paired_by_row_order, "paired by row order"),
    (paired_ddof0, "ddof=1"),
    (paired_std, "divides it by sqrt(n_seeds)"),
    (paired_wrong_mean, "Subtract the baseline's validation loss of the same seed"),
    (paired_one_number, "should return two numbers"),
    (stub, "not written yet"),
])
def test_paired_difference_rejects(wrong, message):
    with pytest.raises(AssertionError) as info:
        check_paired_difference(wrong)
    assert message in str(info.value), str(info.value)


# -- wrong versions of median_ape --------------------------------------------------------------

def mdape_no_exp(pred, y, target_mean, target_std):
    a, b = pred * target_std + target_mean, y * target_std + target_mean
    return 100 * np.median(np.abs(a - b) / b)


def mdape_standardised(pred, y, target_mean, target_std):
    return 100 * np.median(np.abs(pred - y) / np.abs(y))


def mdape_no_unscaling(pred, y, target_mean, target_std):
    a, b = np.exp(pred), np.exp(y)
    return 100 * np.median(np.abs(a - b) / b)


def mdape_own_statistics(pred, y, target_mean, target_std):
    mean, std = y.mean(), y.std()
    return median_ape(pred, y, mean, std)


def mdape_mean(pred, y, target_mean, target_std):
    a, b = np.exp(pred * target_std + target_mean), np.exp(y * target_std + target_mean)
    return 100 * np.mean(np.abs(a - b) / b)


def mdape_over_prediction(pred, y, target_mean, target_std):
    a, b = np.exp(pred * target_std + target_mean), np.exp(y * target_std + target_mean)
    return 100 * np.median(np.abs(a - b) / a)


def mdape_fraction(pred, y, target_mean, target_std):
    return median_ape(pred, y, target_mean, target_std) / 100


def mdape_array(pred, y, target_mean, target_std):
    a, b = np.exp(pred * target_std + target_mean), np.exp(y * target_std + target_mean)
    return 100 * np.abs(a - b) / b


def mdape_lower_median(pred, y, target_mean, target_std):
    a, b = np.exp(pred * target_std + target_mean), np.exp(y * target_std + target_mean)
    errors = np.sort((100 * np.abs(a - b) / b).ravel())
    return float(errors[(len(errors) - 1) // 2])


def test_median_ape_accepts_the_solution(capsys):
    check_median_ape(median_ape)
    assert capsys.readouterr().out.startswith("Correct:")


@pytest.mark.parametrize("wrong, message", [
    (mdape_no_exp, "the errors were taken on log prices"),
    (mdape_standardised, "on the standardised log scale itself"),
    (mdape_no_unscaling, "without undoing the standardisation"),
    (mdape_own_statistics, "not the training statistics"),
    (mdape_mean, "MEAN absolute percentage error"),
    (mdape_over_prediction, "divided by the predicted price"),
    (mdape_fraction, "that is a fraction"),
    (mdape_array, "should return one number"),
    (mdape_lower_median, "the mean of the two middle values"),
    (stub, "not written yet"),
])
def test_median_ape_rejects(wrong, message):
    with pytest.raises(AssertionError) as info:
        check_median_ape(wrong)
    assert message in str(info.value), str(info.value)


def test_median_ape_traps_are_distinct():
    """On the check's data each mistake gives a different number from the right one."""
    pred, y, mu, sigma = ch06._price_case()
    right = median_ape(pred, y, mu, sigma)
    wrongs = [mdape_no_exp, mdape_standardised, mdape_no_unscaling, mdape_own_statistics,
              mdape_mean, mdape_over_prediction, mdape_fraction]
    values = [float(w(pred, y, mu, sigma)) for w in wrongs]
    assert all(not np.isclose(v, right, rtol=1e-6) for v in values)
    assert len({round(v, 6) for v in values}) == len(values)


def test_checkers_are_exported():
    import regmlp.exercises as ex

    for name in ("check_choose_config", "check_paired_difference", "check_median_ape"):
        assert name in ex.__all__ and name in ch06.__all__
    assert isinstance(ch06._runs_table({"a": [1.0]}), pd.DataFrame)
