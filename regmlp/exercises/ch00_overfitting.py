"""Checkers for the exercises of chapter 0, *Overfitting*.

* :func:`check_standardize` -- standardise features with **training** statistics
  only (the scaler fitted on all the data is the test-leakage bug of DESIGN §7);
* :func:`check_ridge_path` -- closed-form ridge regression for many penalties at
  once, with an unpenalised intercept and the book's scaling of lambda.

Each checker runs the learner's function on small, fixed inputs, compares the
result with an answer computed here independently, and raises ``AssertionError``
with the most likely cause when they differ.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ._common import (
    as_array,
    assert_close,
    call_pure,
    diagnose,
    expect_tuple,
    passed,
    run_learner_code,
)

__all__ = ["check_standardize", "check_ridge_path"]


# --------------------------------------------------------------------------
# Exercise: standardise with training statistics
# --------------------------------------------------------------------------

def _scaler(x: np.ndarray, ddof: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Column means and standard deviations; a constant column gets scale 1."""
    constant = (x == x[0]).all(axis=0)
    mean = np.where(constant, x[0], x.mean(axis=0))
    scale = np.where(constant, 1.0, x.std(axis=0, ddof=ddof))
    return mean, scale


def _standardize_cases() -> list[tuple[np.ndarray, np.ndarray, int]]:
    """Training sets and shifted, wider 'new' sets, each with one constant training column.

    The second case has another shape, its constant column elsewhere and a column
    whose spread is small but not zero (it must be scaled, not treated as constant).
    Returns ``(x_train, x_new, index of the constant column)`` per case.
    """
    rng = np.random.default_rng(20110301)
    x_train = rng.normal([10.0, -5.0, 0.5, 0.0], [2.0, 0.1, 30.0, 1.0], size=(24, 4))
    x_train[:, 3] = 7.0
    x_new = rng.normal([13.0, -4.0, 10.0, 9.0], [6.0, 0.3, 60.0, 2.0], size=(9, 4))
    x_train2 = rng.normal([-2.0, 0.0, 3.0], [1.0, 1e-3, 5.0], size=(11, 3))
    x_train2[:, 0] = -0.25
    x_new2 = rng.normal([1.0, 0.01, -3.0], [2.0, 0.01, 8.0], size=(5, 3))
    return [(x_train, x_new, 3), (x_train2, x_new2, 0)]


def _standardize_diagnoses(x_train: np.ndarray, x_new: np.ndarray) -> list[tuple[tuple, str]]:
    """The usual wrong answers for one case, with what to tell the learner."""
    mean, scale = _scaler(x_train)
    both = np.concatenate([x_train, x_new])
    mean_all, scale_all = _scaler(both)
    mean_new, scale_new = _scaler(x_new)
    mean_1, scale_1 = _scaler(x_train, ddof=1)
    return [
        (((x_train - mean_all) / scale_all, (x_new - mean_all) / scale_all),
         "You computed the mean and standard deviation on all the data (x_train and x_new "
         "together). That leaks the new data into the preprocessing (test leakage): fit the "
         "statistics on x_train only and apply those same numbers to x_new."),
        (((x_train - mean) / scale, (x_new - mean_new) / scale_new),
         "x_train is right, but x_new was standardised with its own mean and standard "
         "deviation. New data must be transformed with the *training* statistics, exactly "
         "as a model in production would see a single new house."),
        (((x_train - mean_1) / scale_1, (x_new - mean_1) / scale_1),
         "You used the sample standard deviation (ddof=1). Use the population standard "
         "deviation, x_train.std(axis=0) with the default ddof=0, as StandardScaler does."),
        ((x_train - mean, x_new - mean),
         "You centred the columns but did not scale them: divide by each column's training "
         "standard deviation too, so that every feature has unit variance in training."),
    ]


def check_standardize(standardize: Callable[[np.ndarray, np.ndarray], tuple]) -> None:
    """Check ``standardize(x_train, x_new) -> (x_train_scaled, x_new_scaled)``.

    Both sets must be transformed with the mean and the population standard
    deviation (``ddof=0``) of each column of ``x_train`` only; a column that is
    constant in ``x_train`` is only centred (scale 1). The inputs must not be
    changed. Two cases of different shapes are tried.
    """
    what = "standardize(x_train, x_new)"
    hint = ("For each column j: subtract the mean of x_train[:, j] and divide by its "
            "population standard deviation (reduce over axis=0, the rows), using scale 1 "
            "only for a column that is constant in training.")
    for x_train, x_new, constant in _standardize_cases():
        result = call_pure(standardize, x_train.copy(), x_new.copy(), what=what,
                           names=("x_train", "x_new"),
                           hint="(x - mean) / scale, not x -= mean.")
        got = expect_tuple(result, 2, what=what, names="(x_train_scaled, x_new_scaled)")
        got_train, got_new = (
            as_array(g, what=name, shape=ref.shape,
                     hint="scale every column (feature) of every row; reduce over axis=0.")
            for g, name, ref in zip(got, ("x_train_scaled", "x_new_scaled"), (x_train, x_new),
                                    strict=True))
        for name, arr in (("x_train_scaled", got_train), ("x_new_scaled", got_new)):
            if not np.isfinite(arr).all():
                raise AssertionError(
                    f"{name} holds NaN or inf. Column {constant} of x_train is constant, so its "
                    "standard deviation is 0 and dividing by it blows up: use a scale of 1 for "
                    "a column that is constant in training (only centre it), as scikit-learn "
                    "does.")
        mean, scale = _scaler(x_train)
        want = ((x_train - mean) / scale, (x_new - mean) / scale)
        if np.allclose(got_train, want[0]) and np.allclose(got_new, want[1]):
            continue
        diagnose((got_train, got_new), _standardize_diagnoses(x_train, x_new), what=what,
                 match=lambda a, b: all(np.allclose(u, v) for u, v in zip(a, b, strict=True)))
        small = [j for j in range(x_train.shape[1])
                 if j != constant and 0 < x_train[:, j].std() < 1e-2]
        if small and not np.allclose(got_train[:, small], want[0][:, small]):
            raise AssertionError(
                f"{what} is wrong for column {small[0]}, whose training standard deviation is "
                f"{x_train[:, small[0]].std():.2g}: small, but not 0. Only a column that is "
                "exactly constant gets scale 1 (test scale == 0, not scale < some threshold).")
        assert_close(got_train, want[0], what="x_train_scaled", hint=hint)
        assert_close(got_new, want[1], what="x_new_scaled",
                     hint="x_new must be transformed with the training mean and scale. " + hint)
    passed("both sets standardised with training statistics only.")


# --------------------------------------------------------------------------
# Exercise: the ridge path in closed form
# --------------------------------------------------------------------------

def _ridge_cases() -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Inputs far from zero mean (so the intercept matters), targets with an offset.

    The second case has another shape and its ``lams`` out of order, with 0 in the
    middle, so that sorting ``lams`` or assuming ``lams[0] == 0`` shows.
    """
    rng = np.random.default_rng(1996)
    n, d = 30, 4
    x = rng.normal(size=(n, d)) * [1.0, 2.0, 0.5, 3.0] + [2.0, -1.0, 4.0, 0.5]
    x[:, 3] += 0.9 * x[:, 0]                       # correlated columns: shrinkage shows
    y = x @ np.array([[1.5], [-2.0], [0.7], [0.3]]) + 3.0 + 0.5 * rng.normal(size=(n, 1))
    lams = np.array([0.0, 0.05, 0.5, 2.0, 20.0])
    x2 = rng.normal(size=(17, 3)) * [0.5, 1.5, 1.0] + [-3.0, 1.0, 2.0]
    y2 = x2 @ np.array([[-1.0], [0.5], [2.0]]) - 4.0 + 0.3 * rng.normal(size=(17, 1))
    lams2 = np.array([1.0, 0.0, 0.25])
    return [(x, y, lams), (x2, y2, lams2)]


def _ridge_solve(x: np.ndarray, y: np.ndarray, alpha: float,
                 penalise_intercept: bool = False) -> tuple[np.ndarray, float]:
    """Minimise ||[x 1][w; b] - y||^2 + alpha * (||w||^2 [+ b^2]) by the normal equations."""
    n, d = x.shape
    a = np.hstack([x, np.ones((n, 1))])
    penalty = np.full(d + 1, alpha)
    if not penalise_intercept:
        penalty[-1] = 0.0
    coef = np.linalg.solve(a.T @ a + np.diag(penalty), a.T @ y[:, 0])
    return coef[:d], float(coef[d])


def _path(x: np.ndarray, y: np.ndarray, alphas: np.ndarray,
          penalise_intercept: bool = False) -> tuple[np.ndarray, np.ndarray]:
    fits = [_ridge_solve(x, y, float(a), penalise_intercept) for a in alphas]
    return np.array([w for w, _ in fits]), np.array([b for _, b in fits])


def check_ridge_path(ridge_path: Callable[[np.ndarray, np.ndarray, np.ndarray], tuple]) -> None:
    r"""Check ``ridge_path(x, y, lams) -> (weights, intercepts)``.

    For each ``lam`` in ``lams``, the minimiser of
    :math:`\frac1n\sum_i (x_i^\top w + b - y_i)^2 + \frac{\lambda}{2}\lVert w\rVert^2`
    (the intercept :math:`b` is not penalised): ``weights`` of shape
    ``(len(lams), d)`` and ``intercepts`` of shape ``(len(lams),)``. Two cases of
    different shapes are tried, the second with ``lams`` out of order.
    """
    what = "ridge_path(x, y, lams)"
    for x, y, lams in _ridge_cases():
        n, d = x.shape
        result = call_pure(ridge_path, x.copy(), y.copy(), lams.copy(), what=what,
                           names=("x", "y", "lams"), hint="centre with xc = x - x.mean(0).")
        weights, intercepts = (as_array(r, what=name) for r, name in zip(
            expect_tuple(result, 2, what=what, names="(weights, intercepts)"),
            ("weights", "intercepts"), strict=True))
        if weights.shape == (len(lams), d, 1):
            weights = weights[..., 0]
        if intercepts.shape == (len(lams), 1):
            intercepts = intercepts[:, 0]
        if weights.shape != (len(lams), d):
            raise AssertionError(f"weights has shape {weights.shape}, expected "
                                 f"(len(lams), d) = {(len(lams), d)}: one row of d weights per "
                                 "lambda, in the order of lams.")
        if intercepts.shape != (len(lams),):
            raise AssertionError(f"intercepts has shape {intercepts.shape}, expected "
                                 f"(len(lams),) = {(len(lams),)}: one intercept per lambda.")

        want_w, want_b = _path(x, y, n * lams / 2)
        if np.allclose(weights, want_w) and np.allclose(intercepts, want_b):
            continue
        if list(lams) != sorted(lams):
            order = np.argsort(lams)
            w_sorted, b_sorted = _path(x, y, n * lams[order] / 2)
            if np.allclose(weights, w_sorted) and np.allclose(intercepts, b_sorted):
                raise AssertionError(
                    f"{what} is wrong for lams = {list(lams)}: your rows are in sorted order. "
                    "Return one row per lam in the order of lams, as given.")
        zero = int(np.flatnonzero(lams == 0)[0])
        if not (np.allclose(weights[zero], want_w[zero])
                and np.allclose(intercepts[zero], want_b[zero])):
            if np.allclose(intercepts, 0.0):
                raise AssertionError(
                    f"{what} is wrong even for lam = 0 (plain least squares), and every "
                    "intercept is 0: the model has an intercept b. Centre x and y with their "
                    "means, solve for w on the centred data, then b = mean(y) - mean(x) @ w.")
            assert_close(weights[zero], want_w[zero], what="w for lam = 0",
                         hint="With lam = 0 this is ordinary least squares on centred data: "
                              "w = (Xc^T Xc)^{-1} Xc^T yc, with Xc = x - x.mean(0), "
                              "yc = y - y.mean(). Check the centring and the shapes.")
            assert_close(intercepts[zero], want_b[zero], what="b for lam = 0",
                         hint="The intercept is b = mean(y) - mean(x) @ w.")

        diagnose((weights, intercepts), [
            (_path(x, y, n * lams / 2, penalise_intercept=True),
             "You penalised the intercept too. Only w is penalised: an intercept penalty pulls "
             "every prediction toward 0 and makes the fit depend on where y's origin is. "
             "Centre x and y, solve for w on the centred data, then b = mean(y) - mean(x) @ w."),
            (_path(x, y, lams),
             "The strength of the penalty is scaled wrongly: you solved "
             "(Xc^T Xc + lam I) w = Xc^T yc, which minimises the *sum* of squares plus "
             "lam ||w||^2 (scikit-learn's Ridge(alpha=lam)). Here the objective is the *mean* "
             "squared error plus (lam/2) ||w||^2; setting its gradient to zero gives "
             "(Xc^T Xc + (n lam / 2) I) w = Xc^T yc."),
            (_path(x, y, n * lams),
             "The strength of the penalty is off by a factor 2: you solved "
             "(Xc^T Xc + n lam I) w = Xc^T yc, the minimiser of MSE + lam ||w||^2. The penalty "
             "here is (lam/2) ||w||^2, whose gradient lam w gives (Xc^T Xc + (n lam / 2) I) w "
             "= Xc^T yc."),
            (_path(x, y, lams / 2),
             "The strength of the penalty is scaled wrongly: you used lam/2 where n lam/2 "
             "belongs. Setting the gradient of (1/n)||Xc w - yc||^2 + (lam/2)||w||^2 to zero "
             "gives (Xc^T Xc + (n lam / 2) I) w = Xc^T yc."),
            (_path(x, y, d * lams / 2),
             "You used the number of columns d where the number of rows n belongs: n = "
             "len(x), the number of examples the mean squared error averages over."),
        ], what=f"{what} for lam > 0", match=lambda a, b: (np.allclose(a[0], b[0])
                                                         and np.allclose(a[1], b[1])))
        hint = ("For each lam solve (Xc^T Xc + (n lam / 2) I) w = Xc^T yc on the centred data "
                "(or use one SVD Xc = U S V^T: w = V diag(s / (s^2 + n lam / 2)) U^T yc), "
                "then b = mean(y) - mean(x) @ w.")
        assert_close(weights, want_w, what="weights", hint=hint)
        assert_close(intercepts, want_b, what="intercepts", hint=hint)
    passed("the ridge path matches the normal equations (two cases, 8 lambdas).")


# --------------------------------------------------------------------------
# Exercise: the standard error of a validation MSE
# --------------------------------------------------------------------------

__all__ += ["check_mse_with_se"]


def _mse_se_cases() -> list[tuple[np.ndarray, np.ndarray]]:
    """Two small validation sets: one with an outlier (as the cheapest house), one plain."""
    rng = np.random.default_rng(2930)
    y1 = rng.normal(size=(7, 1))
    pred1 = y1 + 0.3 * rng.normal(size=(7, 1))
    pred1[4] = y1[4] + 2.5                        # one house the model gets badly wrong
    y2 = rng.normal(size=(12, 1))
    pred2 = y2 + rng.normal(size=(12, 1)) * np.linspace(0.1, 1.0, 12)[:, None]
    return [(pred1, y1), (pred2, y2)]


def _as_number(value: object, name: str, what: str) -> float:
    array = np.asarray(value, dtype=float) if not isinstance(value, str) else None
    if array is None or array.size != 1:
        raise AssertionError(f"{what}: {name} must be one number, got {value!r}. Reduce over "
                             "all m houses (a mean, not an array of per-house values).")
    return float(array.reshape(()))


def check_mse_with_se(mse_with_se: Callable[[np.ndarray, np.ndarray], tuple]) -> None:
    r"""Check ``mse_with_se(pred, y) -> (mse, se)``.

    With the squared errors :math:`e_i = (\hat y_i - y_i)^2`, :math:`i = 1..m`,
    ``mse`` is their mean and ``se`` its standard error,
    :math:`s_e / \sqrt m` with :math:`s_e` the sample standard deviation
    (``ddof=1``) of the :math:`e_i`.
    """
    what = "mse_with_se(pred, y)"
    for pred, y in _mse_se_cases():
        m = len(y)
        result = run_learner_code(mse_with_se, pred.copy(), y.copy(), what=what)
        if not isinstance(result, (tuple, list)) or len(result) != 2:
            raise AssertionError(f"{what} must return a pair (mse, se), "
                                 f"got {type(result).__name__}.")
        mse, se = (_as_number(v, n, what) for v, n in zip(result, ("mse", "se"), strict=True))
        errors = (pred - y).ravel()
        squared = errors**2
        want_mse = float(squared.mean())
        want_se = float(squared.std(ddof=1) / np.sqrt(m))
        if np.isclose(mse, want_mse) and np.isclose(se, want_se):
            continue
        if np.isclose(mse, want_se) and np.isclose(se, want_mse):
            raise AssertionError(f"{what} returned (se, mse): return the MSE first, then its "
                                 "standard error.")
        if not np.isclose(mse, want_mse):
            hint = ("the mean of the squared errors, np.mean((pred - y) ** 2); ")
            if np.isclose(mse, np.sqrt(want_mse)):
                hint = "the mean squared error, not its square root (that is the RMSE); "
            raise AssertionError(f"{what}: mse is {mse:.6g}, expected {want_mse:.6g} ({m} "
                                 f"houses). Return {hint}pred and y both have shape (m, 1).")
        diagnoses = [
            (errors.std(ddof=1) / np.sqrt(m),
             "se was computed from the errors pred - y. The MSE is the mean of the *squared* "
             "errors, so its standard error comes from the spread of the squared errors."),
            (squared.std(ddof=1),
             "se is the standard deviation of the squared errors, the spread of one house's "
             "squared error. The standard error of their mean is that divided by sqrt(m)."),
            (squared.std(ddof=0) / np.sqrt(m),
             "se used the population standard deviation (ddof=0). Use the sample standard "
             "deviation, np.std(..., ddof=1), as pandas' sem does: with few houses the "
             "difference matters."),
            (squared.std(ddof=1) / m,
             "se was divided by m. The standard error of a mean of m numbers is their "
             "standard deviation divided by sqrt(m), not by m."),
            (squared.var(ddof=1) / m,
             "se is the variance of the mean, s**2 / m. The standard error is its square "
             "root, s / sqrt(m)."),
        ]
        for value, message in diagnoses:
            if np.isclose(se, value):
                raise AssertionError(f"{what} is wrong: {message}")
        raise AssertionError(f"{what}: se is {se:.6g}, expected {want_se:.6g} ({m} houses). "
                             "Take the squared errors e = (pred - y) ** 2, then "
                             "e.std(ddof=1) / sqrt(m).")
    passed("the MSE and its standard error are right, outlier included.")
