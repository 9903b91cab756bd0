"""The chapter 0 checkers accept the reference solutions and reject the usual mistakes.

The scaler fitted on all the data (test leakage) is one of the bugs of DESIGN.md
section 7; the others are mistakes a learner is likely to make. Each checker
must fail on them with an ``AssertionError`` whose message says what to fix.
"""

from __future__ import annotations

import numpy as np
import pytest

from regmlp.exercises import check_ridge_path, check_standardize

# -- standardize --------------------------------------------------------------------


def _stats(x, ddof=0):
    mean = x.mean(axis=0)
    scale = x.std(axis=0, ddof=ddof)
    return mean, np.where(scale == 0, 1.0, scale)


def standardize(x_train, x_new):
    mean, scale = _stats(x_train)
    return (x_train - mean) / scale, (x_new - mean) / scale


def standardize_leaky(x_train, x_new):
    mean, scale = _stats(np.concatenate([x_train, x_new]))
    return (x_train - mean) / scale, (x_new - mean) / scale


def standardize_each_own(x_train, x_new):
    (m1, s1), (m2, s2) = _stats(x_train), _stats(x_new)
    return (x_train - m1) / s1, (x_new - m2) / s2


def standardize_ddof1(x_train, x_new):
    mean, scale = _stats(x_train, ddof=1)
    return (x_train - mean) / scale, (x_new - mean) / scale


def standardize_zero_std(x_train, x_new):
    mean, scale = x_train.mean(axis=0), x_train.std(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return (x_train - mean) / scale, (x_new - mean) / scale


def standardize_rows(x_train, x_new):
    mean = x_train.mean(axis=1, keepdims=True)
    scale = x_train.std(axis=1, keepdims=True)
    return (x_train - mean) / scale, (x_new - mean[: len(x_new)]) / scale[: len(x_new)]


def standardize_in_place(x_train, x_new):
    mean, scale = _stats(x_train)
    x_train -= mean
    x_train /= scale
    x_new -= mean
    x_new /= scale
    return x_train, x_new


def standardize_centre_only(x_train, x_new):
    mean = x_train.mean(axis=0)
    return x_train - mean, x_new - mean


def standardize_one_output(x_train, x_new):
    mean, scale = _stats(x_train)
    return (x_new - mean) / scale


def standardize_stub(x_train, x_new):
    raise NotImplementedError


def standardize_threshold(x_train, x_new):
    """Treats a column with a small (not zero) spread as constant."""
    mean, scale = x_train.mean(axis=0), x_train.std(axis=0)
    scale = np.where(scale < 1e-2, 1.0, scale)
    return (x_train - mean) / scale, (x_new - mean) / scale


def standardize_column_3_constant(x_train, x_new):
    """Knows which column of the first case is constant, instead of testing for it."""
    mean, scale = x_train.mean(axis=0), x_train.std(axis=0)
    scale[3:4] = 1.0
    with np.errstate(divide="ignore", invalid="ignore"):
        return (x_train - mean) / scale, (x_new - mean) / scale


def standardize_words(x_train, x_new):
    return "scaled", "new"


# Other correct solutions: a loop over columns, and a multiply by the reciprocal.
def standardize_loop(x_train, x_new):
    out_train, out_new = np.empty_like(x_train), np.empty_like(x_new)
    for j in range(x_train.shape[1]):
        col = x_train[:, j]
        mean = sum(col) / len(col)
        std = (sum((v - mean) ** 2 for v in col) / len(col)) ** 0.5
        scale = std if np.ptp(col) > 0 else 1.0
        out_train[:, j] = (col - mean) / scale
        out_new[:, j] = (x_new[:, j] - mean) / scale
    return out_train, out_new


def standardize_reciprocal(x_train, x_new):
    mean = x_train.mean(axis=0, keepdims=True)
    std = x_train.std(axis=0, keepdims=True)
    inv = np.divide(1.0, std, out=np.ones_like(std), where=std > 0)
    return [(x_train - mean) * inv, ((x_new - mean) * inv).tolist()]


@pytest.mark.parametrize("solution", [standardize, standardize_loop, standardize_reciprocal])
def test_standardize_accepts_the_solution(solution, capsys):
    check_standardize(solution)
    assert capsys.readouterr().out.startswith("Correct:")


@pytest.mark.parametrize("wrong, message", [
    (standardize_leaky, "leaks the new data"),
    (standardize_each_own, "with its own mean"),
    (standardize_ddof1, "ddof=0"),
    (standardize_zero_std, "constant in training"),
    (standardize_rows, "axis=0"),
    (standardize_in_place, "in place"),
    (standardize_centre_only, "did not scale"),
    (standardize_one_output, "must return a pair"),
    (standardize_stub, "not written yet"),
    (standardize_threshold, "small, but not 0"),
    (standardize_column_3_constant, "holds NaN or inf. Column 0 of x_train is constant"),
    (standardize_words, "must be an array of numbers"),
])
def test_standardize_rejects(wrong, message):
    with pytest.raises(AssertionError, match=message):
        check_standardize(wrong)


# -- ridge path ---------------------------------------------------------------------


def ridge_path(x, y, lams):
    n = len(x)
    x_mean, y_mean = x.mean(axis=0), y.mean()
    u, s, vt = np.linalg.svd(x - x_mean, full_matrices=False)
    uty = u.T @ (y[:, 0] - y_mean)
    weights = np.array([vt.T @ (s / (s**2 + n * lam / 2) * uty) for lam in lams])
    return weights, y_mean - weights @ x_mean


def ridge_path_solve(x, y, lams):
    """The same by the normal equations, returning column vectors: also accepted."""
    n, d = x.shape
    xc, yc = x - x.mean(axis=0), y - y.mean()
    ws = [np.linalg.solve(xc.T @ xc + n * lam / 2 * np.eye(d), xc.T @ yc) for lam in lams]
    bs = [y.mean() - x.mean(axis=0) @ w for w in ws]
    return np.array(ws), np.array(bs)


def _augmented(x, y, lams, scale, penalise_intercept):
    n, d = x.shape
    a = np.hstack([x, np.ones((n, 1))])
    out = []
    for lam in lams:
        pen = np.full(d + 1, scale(n, lam))
        if not penalise_intercept:
            pen[-1] = 0.0
        out.append(np.linalg.solve(a.T @ a + np.diag(pen), a.T @ y[:, 0]))
    out = np.array(out)
    return out[:, :d], out[:, d]


def ridge_penalised_intercept(x, y, lams):
    return _augmented(x, y, lams, lambda n, lam: n * lam / 2, True)


def ridge_sum_of_squares_scaling(x, y, lams):
    return _augmented(x, y, lams, lambda n, lam: lam, False)


def ridge_missing_half(x, y, lams):
    return _augmented(x, y, lams, lambda n, lam: n * lam, False)


def ridge_forgot_n(x, y, lams):
    return _augmented(x, y, lams, lambda n, lam: lam / 2, False)


def ridge_no_intercept(x, y, lams):
    d = x.shape[1]
    ws = [np.linalg.solve(x.T @ x + len(x) * lam / 2 * np.eye(d), x.T @ y[:, 0]) for lam in lams]
    return np.array(ws), np.zeros(len(lams))


def ridge_transposed(x, y, lams):
    w, b = ridge_path(x, y, lams)
    return w.T, b


def ridge_wrong_centring(x, y, lams):
    """Centres x but not y, and takes b = mean(y): wrong already at lam = 0."""
    n, d = x.shape
    xc = x - x.mean(axis=0)
    ws = [np.linalg.solve(xc.T @ xc + n * lam / 2 * np.eye(d), x.T @ y[:, 0]) for lam in lams]
    return np.array(ws), np.full(len(lams), y.mean())


def ridge_stub(x, y, lams):
    raise NotImplementedError("write me")


def ridge_sorted_lams(x, y, lams):
    return ridge_path(x, y, sorted(lams))


def ridge_columns_for_n(x, y, lams):
    """Uses d, the number of columns, where n belongs."""
    return _augmented(x, y, lams, lambda n, lam: x.shape[1] * lam / 2, False)


def ridge_centres_in_place(x, y, lams):
    x -= x.mean(axis=0)
    return ridge_path(x, y, lams)


def ridge_dict(x, y, lams):
    w, b = ridge_path(x, y, lams)
    return {"weights": w, "intercepts": b}


def ridge_lstsq(x, y, lams):
    """Another correct solution: least squares on data augmented with sqrt(n lam / 2) I."""
    n, d = x.shape
    xc, yc = x - x.mean(axis=0), (y - y.mean())[:, 0]
    ws = []
    for lam in lams:
        a = np.vstack([xc, np.sqrt(n * lam / 2) * np.eye(d)])
        ws.append(np.linalg.lstsq(a, np.concatenate([yc, np.zeros(d)]), rcond=None)[0])
    ws = np.array(ws)
    return ws, [float(y.mean() - x.mean(axis=0) @ w) for w in ws]


@pytest.mark.parametrize("solution", [ridge_path, ridge_path_solve, ridge_lstsq])
def test_ridge_path_accepts_the_solutions(solution, capsys):
    check_ridge_path(solution)
    assert capsys.readouterr().out.startswith("Correct:")


@pytest.mark.parametrize("wrong, message", [
    (ridge_penalised_intercept, "penalised the intercept"),
    (ridge_sum_of_squares_scaling, r"\*sum\* of squares"),
    (ridge_missing_half, "off by a factor 2"),
    (ridge_forgot_n, "n lam/2 belongs"),
    (ridge_no_intercept, "every intercept is 0"),
    (ridge_transposed, r"expected \(len\(lams\), d\)"),
    (ridge_wrong_centring, "lam = 0"),
    (ridge_stub, "not written yet"),
    (ridge_sorted_lams, "in sorted order"),
    (ridge_columns_for_n, "number of columns d where the number of rows n"),
    (ridge_centres_in_place, "changed its input x in place"),
    (ridge_dict, "must return a pair"),
])
def test_ridge_path_rejects(wrong, message):
    with pytest.raises(AssertionError, match=message):
        check_ridge_path(wrong)


# -- the standard error of a validation MSE -------------------------------------------

from regmlp.exercises import check_mse_with_se  # noqa: E402


def mse_with_se(pred, y):
    squared = ((pred - y) ** 2).ravel()
    return float(squared.mean()), float(squared.std(ddof=1) / np.sqrt(len(squared)))


def mse_with_se_by_sums(pred, y):
    """Another correct way: the sample variance from sums, returned as 0-d arrays."""
    e = ((pred - y) ** 2)[:, 0]
    m = e.size
    mean = e.sum() / m
    variance = ((e - mean) ** 2).sum() / (m - 1)
    return np.array(mean), np.sqrt(variance / m)


def mse_with_se_pandas(pred, y):
    import pandas as pd

    squared = pd.Series(((pred - y) ** 2).ravel())
    return squared.mean(), squared.sem()


def mse_se_of_errors(pred, y):
    errors = (pred - y).ravel()
    return float(np.mean(errors**2)), float(errors.std(ddof=1) / np.sqrt(errors.size))


def mse_se_no_sqrt_m(pred, y):
    squared = ((pred - y) ** 2).ravel()
    return float(squared.mean()), float(squared.std(ddof=1))


def mse_se_ddof0(pred, y):
    squared = ((pred - y) ** 2).ravel()
    return float(squared.mean()), float(squared.std() / np.sqrt(squared.size))


def mse_se_over_m(pred, y):
    squared = ((pred - y) ** 2).ravel()
    return float(squared.mean()), float(squared.std(ddof=1) / squared.size)


def mse_se_variance(pred, y):
    squared = ((pred - y) ** 2).ravel()
    return float(squared.mean()), float(squared.var(ddof=1) / squared.size)


def mse_se_rmse(pred, y):
    mse, se = mse_with_se(pred, y)
    return np.sqrt(mse), se


def mse_se_swapped(pred, y):
    mse, se = mse_with_se(pred, y)
    return se, mse


def mse_se_per_house(pred, y):
    squared = (pred - y) ** 2
    return squared, float(squared.std(ddof=1) / np.sqrt(squared.size))


def mse_se_one_value(pred, y):
    return mse_with_se(pred, y)[0]


def mse_se_stub(pred, y):
    raise NotImplementedError


@pytest.mark.parametrize("right", [mse_with_se, mse_with_se_by_sums, mse_with_se_pandas])
def test_mse_with_se_accepts_correct_versions(right, capsys):
    check_mse_with_se(right)
    assert capsys.readouterr().out.startswith("Correct")


@pytest.mark.parametrize(("wrong", "message"), [
    (mse_se_of_errors, "squared"),
    (mse_se_no_sqrt_m, r"divided by sqrt\(m\)"),
    (mse_se_ddof0, "ddof=1"),
    (mse_se_over_m, "not by m"),
    (mse_se_variance, "square root"),
    (mse_se_rmse, "not its square root"),
    (mse_se_swapped, r"returned \(se, mse\)"),
    (mse_se_per_house, "one number"),
    (mse_se_one_value, "pair"),
    (mse_se_stub, "not written yet"),
])
def test_mse_with_se_rejects(wrong, message):
    with pytest.raises(AssertionError, match=message):
        check_mse_with_se(wrong)
