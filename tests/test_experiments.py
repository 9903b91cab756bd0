"""regmlp.experiments: sweep over settings and seeds, summaries, paired comparisons."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from regmlp import MSE, Adam, fit, load_house_prices
from regmlp.experiments import PairedDifference, RunError, paired, summarize, sweep
from regmlp.models import book_model


def noisy(seed, shift=0.0, scale=1.0):
    """A run whose metric is a known function of the seed and the settings."""
    z = np.random.default_rng(seed).normal()
    return {"value": shift + scale * z, "z": z}


def train_tiny(seed, p):
    """A real (short) training run, as the chapters write them."""
    data = load_house_prices()
    model = book_model(width=8, dropout=p, rng=seed)
    history = fit(model, data.train, data.valid, loss=MSE(),
                  optimizer=Adam(model.parameters(), lr=1e-2),
                  epochs=2, batch_size=256, rng=seed, progress=False)
    return {"valid_loss": history.valid_loss[-1], "train_loss": history.train_loss[-1]}


# -- the table ----------------------------------------------------------------

def test_dict_grid_is_every_combination_first_key_slowest_seeds_inner():
    table = sweep(noisy, {"shift": [0.0, 1.0], "scale": [1.0, 2.0, 3.0]}, [5, 3], n_jobs=1)
    assert list(table.columns) == ["shift", "scale", "seed", "value", "z"]
    assert len(table) == 2 * 3 * 2
    assert table["shift"].tolist() == [0.0] * 6 + [1.0] * 6
    assert table["scale"].tolist() == [1.0, 1.0, 2.0, 2.0, 3.0, 3.0] * 2
    assert table["seed"].tolist() == [5, 3] * 6


def test_rows_hold_what_run_returned_for_that_config_and_seed():
    table = sweep(noisy, {"shift": [0.0, 10.0], "scale": [2.0]}, [0, 1, 2], n_jobs=1)
    for row in table.itertuples():
        expected = noisy(row.seed, row.shift, row.scale)
        assert row.value == expected["value"] and row.z == expected["z"]


def test_list_grid_keeps_order_and_fills_missing_settings_with_nan():
    grid = [{"shift": 1.0}, {"scale": 3.0}, {"shift": 2.0, "scale": 2.0}]
    table = sweep(noisy, grid, [0, 1], n_jobs=1)
    assert list(table.columns) == ["shift", "scale", "seed", "value", "z"]
    assert table["shift"].tolist()[:2] == [1.0, 1.0]
    assert table["scale"].isna().tolist() == [True, True, False, False, False, False]
    assert table["value"].iloc[2] == noisy(0, scale=3.0)["value"]


def test_same_values_with_one_and_two_processes():
    grid = {"p": [0.0, 0.3]}
    one = sweep(train_tiny, grid, [0, 1], n_jobs=1)
    two = sweep(train_tiny, grid, [0, 1], n_jobs=2)
    pd.testing.assert_frame_equal(one, two, check_exact=True)


def test_n_jobs_none_reads_regmlp_jobs(monkeypatch):
    calls = []

    class FakeParallel:  # records how many processes sweep asked joblib for
        def __init__(self, n_jobs, **kwargs):
            calls.append(n_jobs)

        def __call__(self, tasks):
            return (fn(*args, **kwargs) for fn, args, kwargs in tasks)

    import joblib
    monkeypatch.setattr(joblib, "Parallel", FakeParallel)
    monkeypatch.setenv("REGMLP_JOBS", "2")
    sweep(noisy, {"shift": [0.0]}, [0, 1, 2], n_jobs=None)
    assert calls == [2]
    monkeypatch.delenv("REGMLP_JOBS")
    sweep(noisy, {"shift": [0.0]}, [0, 1, 2], n_jobs=None)  # unset: in this process
    assert calls == [2]
    monkeypatch.setenv("REGMLP_JOBS", "many")
    with pytest.raises(ValueError, match="REGMLP_JOBS must be a positive integer"):
        sweep(noisy, {"shift": [0.0]}, [0], n_jobs=None)


def test_a_function_defined_in_a_test_module_runs_in_processes():
    def local(seed, k):  # a closure: joblib (cloudpickle) carries it to the workers
        return {"v": seed * k}

    table = sweep(local, {"k": [2, 3]}, [1, 4], n_jobs=2)
    assert table["v"].tolist() == [2, 8, 3, 12]


# -- failures and bad arguments -------------------------------------------------

def failing(seed, p):
    if seed == 2 and p == 0.5:
        raise FloatingPointError("loss became NaN")
    return {"loss": float(seed)}


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_a_failing_run_names_its_config_and_seed(n_jobs):
    with pytest.raises(RunError, match=r"run\(seed=2, p=0\.5\) raised FloatingPointError: "
                                       r"loss became NaN"):
        sweep(failing, {"p": [0.1, 0.5]}, [1, 2], n_jobs=n_jobs)


@pytest.mark.parametrize("grid, seeds, error, message", [
    ({}, [0], ValueError, "grid is empty"),
    ([], [0], ValueError, "grid is empty"),
    ({"p": []}, [0], ValueError, r"grid\['p'\] is empty"),
    ({"p": 0.5}, [0], TypeError, r"grid\['p'\] must be a list"),
    ({"p": "abc"}, [0], TypeError, r"grid\['p'\] must be a list"),
    ({"seed": [1, 2]}, [0], ValueError, "'seed' cannot be a setting"),
    ([{"p": 1}, 3], [0], TypeError, "entry 1 must be a dict"),
    ([{"not a name": 1}], [0], TypeError, "keys must be names"),
    ("p", [0], TypeError, "grid must be a dict of lists or a list of dicts"),
    ({"p": [0.1]}, [], ValueError, "seeds must not be empty"),
    ({"p": [0.1]}, [0, 1, 0], ValueError, r"seeds must be distinct, but \[0\]"),
    ({"p": [0.1]}, [0, -1], TypeError, "non-negative ints"),
    ({"p": [0.1]}, [0, 1.5], TypeError, "non-negative ints"),
    ({"p": [0.1]}, [True], TypeError, "non-negative ints"),
    ({"p": [0.1]}, 5, TypeError, "seeds must be a list"),
])
def test_bad_grid_or_seeds(grid, seeds, error, message):
    with pytest.raises(error, match=message):
        sweep(lambda seed, **c: {"x": 1.0}, grid, seeds, n_jobs=1)


@pytest.mark.parametrize("returned, error, message", [
    (0.3, TypeError, "must return a non-empty dict"),
    ({}, TypeError, "must return a non-empty dict"),
    ({"loss": "low"}, TypeError, "metrics must be real numbers"),
    ({"loss": np.array([0.1, 0.2])}, TypeError, "metrics must be real numbers"),
    ({"loss": True}, TypeError, "metrics must be real numbers"),
    ({1: 0.3}, TypeError, "names must be strings"),
    ({"p": 0.3}, ValueError, "'p', which is also a setting"),
    ({"seed": 0.3}, ValueError, "'seed', which is also a setting"),
])
def test_run_returning_something_else_than_a_mapping_of_numbers(returned, error, message):
    with pytest.raises(error, match=message):
        sweep(lambda seed, p: returned, {"p": [0.1]}, [0], n_jobs=1)


def test_runs_returning_different_metrics_are_refused():
    def run(seed):
        return {"a": 1.0} if seed == 0 else {"b": 1.0}

    with pytest.raises(ValueError, match=r"run\(seed=1\) returned the metrics \['b'\]"):
        sweep(run, [{}], [0, 1], n_jobs=1)


@pytest.mark.parametrize("n_jobs", [0, -1, 1.5, True])
def test_bad_n_jobs(n_jobs):
    with pytest.raises(ValueError, match="n_jobs must be a positive integer"):
        sweep(noisy, {"shift": [0.0]}, [0], n_jobs=n_jobs)


def test_run_must_be_callable():
    with pytest.raises(TypeError, match=r"run must be a function run\(seed, \*\*config\)"):
        sweep("train", {"p": [0.1]}, [0])


def test_numpy_scalars_and_ints_are_accepted_as_metrics_and_seeds():
    table = sweep(lambda seed: {"a": np.float32(0.5), "b": np.int64(3)}, [{}],
                  np.arange(3), n_jobs=1)
    assert table["seed"].tolist() == [0, 1, 2] and table["a"].tolist() == [0.5] * 3


# -- progress ---------------------------------------------------------------------

def test_progress_bar_counts_runs(capsys):
    sweep(noisy, {"shift": [0.0, 1.0]}, [0, 1], n_jobs=1, progress=True)
    assert "4/4" in capsys.readouterr().err


def test_no_progress_bar_under_the_tests_by_default(capsys):
    sweep(noisy, {"shift": [0.0]}, [0], n_jobs=1)
    assert capsys.readouterr().err == ""


# -- summaries ----------------------------------------------------------------------

def test_summarize_matches_pandas_mean_sem_count_in_grid_order():
    table = sweep(noisy, {"shift": [2.0, 0.0], "scale": [1.0, 3.0]}, [0, 1, 2, 3], n_jobs=1)
    summary = summarize(table, "value")
    assert list(summary.index) == [(2.0, 1.0), (2.0, 3.0), (0.0, 1.0), (0.0, 3.0)]
    rows = table[(table["shift"] == 0.0) & (table["scale"] == 3.0)]["value"]
    got = summary.loc[(0.0, 3.0), "value"]
    assert got["mean"] == pytest.approx(rows.mean())
    assert got["sem"] == pytest.approx(rows.std(ddof=1) / 2.0)
    assert got["count"] == 4


def test_summarize_keeps_missing_settings_as_their_own_group():
    table = sweep(noisy, [{"shift": 1.0}, {"scale": 2.0}], [0, 1], n_jobs=1)
    assert len(summarize(table)) == 2
    assert set(summarize(table).columns.get_level_values(0)) == {"value", "z"}


def test_summarize_unknown_metric():
    table = sweep(noisy, {"shift": [1.0]}, [0, 1], n_jobs=1)
    with pytest.raises(KeyError, match=r"unknown metric\(s\) \['loss'\]"):
        summarize(table, "loss")


# -- paired comparisons --------------------------------------------------------------

def test_paired_difference_is_seed_by_seed():
    table = sweep(noisy, {"shift": [0.0, 0.5], "scale": [1.0, 2.0]}, [0, 1, 2, 3, 4], n_jobs=1)
    d = paired(table, "value", {"shift": 0.5, "scale": 2.0}, {"shift": 0.0, "scale": 1.0})
    z = np.array([noisy(s)["z"] for s in range(5)])
    expected = 0.5 + 2.0 * z - z
    np.testing.assert_allclose(d.differences.to_numpy(), expected)
    assert d.mean == pytest.approx(expected.mean())
    assert d.sem == pytest.approx(expected.std(ddof=1) / math.sqrt(5))
    assert d.n == 5 and d.t == pytest.approx(d.mean / d.sem)


def test_paired_is_not_the_unpaired_difference():
    # A shared seed effect cancels in the pairs: the paired sem is zero.
    table = sweep(noisy, {"shift": [0.0, 1.0]}, [0, 1, 2, 3], n_jobs=1)
    d = paired(table, "value", {"shift": 1.0}, {"shift": 0.0})
    assert d.mean == pytest.approx(1.0) and d.sem == pytest.approx(0.0, abs=1e-12)
    assert d.t == math.inf
    unpaired = summarize(table, "value")["value"]["sem"]
    assert (unpaired > 0.1).all()


def test_paired_pairs_by_seed_not_by_row_order():
    rows = [{"k": "a", "seed": 1, "m": 1.0}, {"k": "a", "seed": 2, "m": 5.0},
            {"k": "b", "seed": 2, "m": 4.0}, {"k": "b", "seed": 1, "m": 0.0}]
    d = paired(pd.DataFrame(rows), "m", {"k": "a"}, {"k": "b"})
    assert d.differences.to_dict() == {1: 1.0, 2: 1.0}


def test_paired_errors():
    table = sweep(noisy, {"shift": [0.0, 1.0], "scale": [1.0, 2.0]}, [0, 1], n_jobs=1)
    with pytest.raises(ValueError, match="matches several configurations"):
        paired(table, "value", {"shift": 0.0}, {"shift": 1.0, "scale": 1.0})
    with pytest.raises(ValueError, match="matches no row"):
        paired(table, "value", {"shift": 5.0, "scale": 1.0}, {"shift": 1.0, "scale": 1.0})
    with pytest.raises(KeyError, match="names the setting 'lr'"):
        paired(table, "value", {"lr": 5.0}, {"shift": 1.0, "scale": 1.0})
    with pytest.raises(KeyError, match="unknown metric"):
        paired(table, "loss", {"shift": 0.0, "scale": 1.0}, {"shift": 1.0, "scale": 1.0})
    other = table[~((table["shift"] == 1.0) & (table["seed"] == 1))]
    with pytest.raises(ValueError, match="same seeds"):
        paired(other, "value", {"shift": 0.0, "scale": 1.0}, {"shift": 1.0, "scale": 1.0})
    with pytest.raises(ValueError, match="no 'seed' column"):
        paired(table.drop(columns="seed"), "value", {"shift": 0.0}, {"shift": 1.0})


def test_paired_difference_str_and_one_seed():
    d = PairedDifference(differences=pd.Series([0.25]), mean=0.25, sem=math.nan, n=1)
    assert str(d).startswith("+0.25 ± nan (n = 1)")
