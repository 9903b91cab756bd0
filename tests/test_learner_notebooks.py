"""The learner version of each chapter: stubs in place of solutions, checks that fail on them.

``tools/make_exercises.py`` turns every chapter into a learner notebook. Here we
make those notebooks, execute them for real and require that every check cell
fails with the checker's own "not written yet" message, while the book's
version of the same cell (executed by the book build) passes.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "chapters").glob("*.ipynb"))

spec = importlib.util.spec_from_file_location("make_exercises", ROOT / "tools/make_exercises.py")
make_exercises = importlib.util.module_from_spec(spec)
sys.modules["make_exercises"] = make_exercises
spec.loader.exec_module(make_exercises)


def tags(cell) -> list[str]:
    return cell.get("metadata", {}).get("tags", [])


def test_stub_keeps_signature_docstring_and_imports():
    source = (
        "import numpy as np\n\n\n"
        "def dropout(x, p, rng):\n"
        '    """Inverted dropout."""\n'
        "    mask = rng.random(x.shape) >= p\n"
        "    return x * mask / (1 - p)\n"
    )
    stub = make_exercises.stub_source(source, "test")
    assert "import numpy as np" in stub
    expected = 'def dropout(x, p, rng):\n    """Inverted dropout."""\n    raise NotImplementedError'
    assert expected in stub
    assert "mask" not in stub
    namespace: dict = {}
    exec(stub, namespace)
    with pytest.raises(NotImplementedError):
        namespace["dropout"](None, 0.5, None)


def test_stub_without_docstring_and_with_decorator():
    source = "@staticmethod\ndef f(x):\n    return 2 * x\n"
    stub = make_exercises.stub_source(source, "test")
    assert stub.startswith("@staticmethod\ndef f(x):\n    raise NotImplementedError")


def test_solution_cell_with_other_statements_is_refused():
    with pytest.raises(ValueError, match="only imports and functions"):
        make_exercises.stub_source("answer = 42\n", "chapter X, cell 3")


def test_solution_markdown_is_dropped_and_gating_removed():
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell("```{solution-start} ex-a\n:class: dropdown\n```"),
        nbformat.v4.new_markdown_cell("The trick is to divide by 1 - p."),
        nbformat.v4.new_code_cell("def f(x):\n    return x\n", metadata={"tags": ["solution"]}),
        nbformat.v4.new_markdown_cell("```{solution-end}\n```"),
        nbformat.v4.new_code_cell("check(f)", metadata={"tags": ["check"]}),
    ]
    learner = make_exercises.learner_notebook(nb, "test")
    text = "\n".join(c.source for c in learner.cells)
    assert "solution-start" not in text and "solution-end" not in text
    assert "divide by 1 - p" not in text
    assert "raise NotImplementedError" in text and "check(f)" in text


@pytest.mark.parametrize("path", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_learner_checks_fail_on_stubs(path: Path, tmp_path: Path, monkeypatch):
    book = nbformat.read(path, as_version=4)
    n_checks = sum(c.cell_type == "code" and "check" in tags(c) for c in book.cells)
    n_solutions = sum(c.cell_type == "code" and "solution" in tags(c) for c in book.cells)
    assert n_checks >= 2, f"{path.name} needs at least two exercises with check cells"
    assert n_solutions >= 1, f"{path.name} has check cells but no solution cells"

    learner = make_exercises.learner_notebook(book, path.name)
    client = NotebookClient(learner, timeout=120, kernel_name="python3", allow_errors=True,
                            resources={"metadata": {"path": str(path.parent)}})
    monkeypatch.setenv("REGMLP_PROGRESS", os.environ.get("REGMLP_PROGRESS", "0"))
    client.execute()

    for i, cell in enumerate(learner.cells):
        if cell.cell_type != "code" or "check" not in tags(cell):
            continue
        errors = [o for o in cell.outputs if o.output_type == "error"]
        assert errors, f"{path.name}, check cell {i} passed on a stub:\n{cell.source}"
        assert errors[0].ename == "AssertionError", (
            f"{path.name}, check cell {i} failed with {errors[0].ename}, not the checker's "
            f"AssertionError: {errors[0].evalue}")
        assert "not written yet" in errors[0].evalue, errors[0].evalue
