"""The helpers every checker shares (regmlp/exercises/_common.py), each on its own case."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from regmlp.exercises._common import (
    as_array,
    as_number,
    assert_close,
    call_pure,
    diagnose,
    expect_tuple,
    passed,
    run_learner_code,
    unchanged,
)


def test_run_learner_code_turns_errors_into_feedback():
    def stub():
        raise NotImplementedError("write me")

    with pytest.raises(AssertionError, match=r"f\(\) is not written yet.*write me"):
        run_learner_code(stub, what="f()")
    with pytest.raises(AssertionError, match=r"f\(\) raised ZeroDivisionError"):
        run_learner_code(lambda: 1 / 0, what="f()")
    with pytest.raises(AssertionError, match="expected a function, got int"):
        run_learner_code(3, what="f()")
    assert run_learner_code(lambda a, b=1: a + b, 1, b=2, what="f()") == 3


@pytest.mark.parametrize("change, name", [
    (lambda x, frame, items, table: x.__setitem__(0, 9.0), "x"),
    (lambda x, frame, items, table: frame.__setitem__("new", 1), "frame"),
    (lambda x, frame, items, table: frame.loc.__setitem__((0, "a"), 5.0), "frame"),
    (lambda x, frame, items, table: items.append(4), "items"),
    (lambda x, frame, items, table: table["w"].__imul__(2), "table"),
    (lambda x, frame, items, table: table.pop("w"), "table"),
])
def test_call_pure_names_the_argument_changed_in_place(change, name):
    def f(x, frame, items, table):
        change(x, frame, items, table)
        return 0

    args = (np.zeros(3), pd.DataFrame({"a": [1.0, 2.0]}), [1, 2, 3], {"w": np.ones(2)})
    with pytest.raises(AssertionError, match=rf"f changed its input {name} in place"):
        call_pure(f, *args, what="f", names=("x", "frame", "items", "table"))


def test_call_pure_accepts_a_function_that_only_reads_and_skips_unnamed_arguments():
    x = np.arange(3.0)
    model = object()
    assert call_pure(lambda a, b: float(a.sum()), x, model, what="f", names=("x", None)) == 3.0
    # a NaN that stays a NaN is no change
    y = np.array([np.nan, 1.0])
    assert call_pure(lambda a: 1, y, what="f", names=("y",)) == 1
    assert unchanged(3, 3) and not unchanged(3, 4) and unchanged(float("nan"), float("nan"))


def test_expect_tuple_says_what_came_back():
    assert expect_tuple([1, 2], 2, what="f", names="(a, b)") == (1, 2)
    with pytest.raises(AssertionError, match=r"f must return a pair \(a, b\), got int\."):
        expect_tuple(3, 2, what="f", names="(a, b)")
    with pytest.raises(AssertionError, match=r"must return a triple \(a, b, c\), got tuple of "
                                             r"length 2"):
        expect_tuple((1, 2), 3, what="f", names="(a, b, c)")
    with pytest.raises(AssertionError, match=r"must return 4 values"):
        expect_tuple((1, 2), 4, what="f", names="(a, b, c, d)")


def test_as_array_and_as_number():
    assert as_array([[1, 2]], what="w", shape=(1, 2)).dtype == np.float64
    with pytest.raises(AssertionError, match=r"w has shape \(2,\), expected \(1, 2\): rows"):
        as_array([1, 2], what="w", shape=(1, 2), hint="rows.")
    with pytest.raises(AssertionError, match="w must be an array of numbers, got str"):
        as_array("large", what="w")
    assert as_number(np.float32(1.5), what="v") == 1.5
    with pytest.raises(AssertionError, match="v must be one number, got ndarray"):
        as_number(np.ones(2), what="v")
    with pytest.raises(AssertionError, match="v must be one number, got bool"):
        as_number(True, what="v")
    with pytest.raises(AssertionError, match="v must be a number, got str"):
        as_number("1.5x", what="v")


def test_diagnose_raises_the_first_matching_hint_lazily():
    calls = []

    def expensive():
        calls.append(1)
        return np.ones(2)

    mistakes = [(np.zeros(2), "zeros"), (np.ones(2), "ones"), (expensive, "never reached")]
    with pytest.raises(AssertionError, match=r"^f is wrong\. ones$"):
        diagnose(np.ones(2), mistakes, what="f")
    assert calls == []
    diagnose(np.full(2, 3.0), [(np.ones(2), "ones"), (np.ones(3), "shape differs")], what="f")
    with pytest.raises(AssertionError, match=r"^value 3: too big$"):
        diagnose(3, [(3, "too big")], what="value 3:", match=lambda a, b: a == b,
                 template="{what} {hint}")


def test_assert_close_reports_the_largest_difference_or_nan():
    assert_close([1.0, 2.0], np.array([1.0, 2.0]), what="v", hint="h")
    with pytest.raises(AssertionError, match=r"v is wrong \(largest difference 0\.5\)\. h"):
        assert_close([1.0, 2.5], np.array([1.0, 2.0]), what="v", hint="h")
    with pytest.raises(AssertionError, match=r"v holds NaN or inf\. h"):
        assert_close([1.0, np.nan], np.array([1.0, 2.0]), what="v", hint="h")
    with pytest.raises(AssertionError, match=r"v has shape \(3,\), expected \(2,\)"):
        assert_close([1.0, 2.0, 3.0], np.array([1.0, 2.0]), what="v", hint="h")


def test_passed_keeps_its_lines_within_the_books_code_width(capsys):
    message = "input_dropout_l2: lam_j = 2p/(1-p) * mean_i x_ij^2, chapter 1's L2 per weight."
    passed(message)
    out = capsys.readouterr().out
    assert out.startswith("Correct: input_dropout_l2")
    assert len(out.splitlines()) == 2 and max(map(len, out.splitlines())) <= 79
    assert " ".join(out.split()) == f"Correct: {message}"   # nothing lost or broken
    passed("short")
    assert capsys.readouterr().out == "Correct: short\n"
