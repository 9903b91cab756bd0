"""The grader: ``python -m regmlp.exercises grade [--full] [--json PATH] NOTEBOOK...``.

On the book's own chapters every exercise passes; on fresh learner notebooks every
exercise fails with its checker's "not written yet" message; on a notebook where a
learner solved some exercises and not others, each gets its own verdict. Small
hand-made notebooks test the rest: the closing line and exit status, the JSON and
Markdown reports, the NameError hint of the fast mode (and that ``--full`` then
passes), an endless loop stopped by the time limit, a solution cell that does not
compile, and the offline validation of the learner workflow.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from regmlp.exercises import grade

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "chapters").glob("*.ipynb"))

spec = importlib.util.spec_from_file_location("make_exercises", ROOT / "tools/make_exercises.py")
make_exercises = importlib.util.module_from_spec(spec)
sys.modules.setdefault("make_exercises", make_exercises)
spec.loader.exec_module(make_exercises)

os.environ.setdefault("REGMLP_PROGRESS", "0")


def _md(text):
    return nbformat.v4.new_markdown_cell(text)


def _code(text, *tags):
    return nbformat.v4.new_code_cell(text, metadata={"tags": list(tags)} if tags else {})


def _exercise(label, solution, check):
    return [_md(f"```{{exercise-start}}\n:label: {label}\n```\n\nWrite it.\n\n"
                "```{exercise-end}\n```"),
            _md(f"```{{solution-start}} {label}\n:class: dropdown\n```"),
            _code(solution, "solution"), _md("```{solution-end}\n```"), _code(check, "check")]


def _write(tmp_path, name, cells):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nb.cells = cells
    path = tmp_path / name
    nbformat.write(nb, path)
    return path


DOUBLE = "def double(x):\n    return 2 * x\n"
CHECK_DOUBLE = 'assert double(3) == 6, "double(3) should be 6"\nprint("Correct: double")'


# -- finding exercises --------------------------------------------------------------

def test_find_exercises_reads_labels_solutions_and_checks():
    nb = nbformat.v4.new_notebook()
    nb.cells = ([_code("import numpy as np"), _md("Some prose.")]
                + _exercise("ex-a", DOUBLE, CHECK_DOUBLE)
                + [_md("Text, then an exercise opened in the same cell:\n\n"
                       "```{exercise-start}\n:label: ex-b\n```\n\nTask.\n\n```{exercise-end}\n```"),
                   _code("def f():\n    return 1\n", "solution"),
                   _code("def g():\n    return 2\n", "solution"), _code("check(f, g)", "check")]
                + [_md("```{exercise-start}\n:label: ex-no-check\n```")])
    found = grade.find_exercises(nb)
    assert [(e.label, e.solutions, e.check) for e in found] == [
        ("ex-a", [4], 6), ("ex-b", [8, 9], 10)]


def test_every_chapter_exercise_is_found():
    for path in CHAPTERS:
        nb = nbformat.read(path, as_version=4)
        n_checks = sum(c.cell_type == "code" and "check" in c.metadata.get("tags", [])
                       for c in nb.cells)
        found = grade.find_exercises(nb)
        assert len(found) == n_checks, path.name
        assert all(e.label.startswith("ex-") and e.solutions for e in found), path.name


# -- the book's chapters and fresh learner notebooks ----------------------------------

def test_the_book_passes_every_exercise(tmp_path, capsys):
    report = tmp_path / "report.json"
    status = grade.main([str(p) for p in CHAPTERS] + ["--json", str(report)])
    out = capsys.readouterr().out.splitlines()
    data = json.loads(report.read_text())
    n = sum(len(grade.find_exercises(nbformat.read(p, as_version=4))) for p in CHAPTERS)
    assert status == 0, "\n".join(out)
    assert data["mode"] == "fast" and data["passed"] == n and data["failed"] == 0
    assert out[-1] == f"{n} passed, 0 failed"
    assert all(" PASS" in line for line in out[:-1]) and len(out) == n + 1


def test_fresh_learner_notebooks_fail_with_not_written_yet(tmp_path, capsys):
    out_dir = tmp_path / "exercises"
    assert make_exercises.main(["make_exercises", str(ROOT / "chapters"), str(out_dir)]) == 0
    capsys.readouterr()
    notebooks = sorted(out_dir.glob("*.ipynb"))
    status = grade.main([str(p) for p in notebooks])
    lines = capsys.readouterr().out.splitlines()
    assert status == 1
    assert len(lines) > len(notebooks) and lines[-1] == f"0 passed, {len(lines) - 1} failed"
    for line in lines[:-1]:
        assert " FAIL " in line and "is not written yet" in line, line


def test_some_solved_some_not(tmp_path):
    """Exercise 1 solved (the book's code), 2 solved wrongly, 3 left as a stub."""
    book = nbformat.read(ROOT / "chapters/02_dropout.ipynb", as_version=4)
    learner = make_exercises.learner_notebook(book, "02_dropout.ipynb")
    book_solutions = [c.source for c in book.cells if "solution" in c.metadata.get("tags", [])]
    cells = [c for c in learner.cells if "solution" in c.metadata.get("tags", [])]
    cells[0].source = book_solutions[0]
    cells[1].source = ("def mc_dropout_predict(model, x, n_samples):\n"
                       "    raise ValueError('my mistake')\n")
    path = tmp_path / "02_dropout.ipynb"
    nbformat.write(learner, path)
    results = grade.grade_notebook(path)
    assert [r.status for r in results] == ["PASS", "FAIL", "FAIL"]
    assert results[0].label == "ex-dropout-forward"
    assert "raised ValueError: my mistake" in results[1].message
    assert "not written yet" in results[2].message
    assert all(r.chapter == "02_dropout" for r in results)


# -- the report, the exit status and the modes, on small notebooks -----------------

def test_report_json_markdown_and_exit_status(tmp_path, capsys):
    path = _write(tmp_path, "mixed.ipynb",
                  _exercise("ex-good", DOUBLE, CHECK_DOUBLE)
                  + _exercise("ex-bad", "def triple(x):\n    return 2 * x\n",
                              'assert triple(2) == 6, "triple(2) should be 6, it is "'
                              ' + str(triple(2))'))
    report, summary = tmp_path / "r.json", tmp_path / "summary.md"
    summary.write_text("# before\n")
    status = grade.main([str(path), "--json", str(report), "--markdown", str(summary)])
    out = capsys.readouterr().out.splitlines()
    assert status == 1
    assert out[0].split() == ["mixed", "ex-good", "PASS"]
    assert out[1].split()[:3] == ["mixed", "ex-bad", "FAIL"]
    assert out[1].endswith("triple(2) should be 6, it is 4")
    assert out[2] == "1 passed, 1 failed"
    data = json.loads(report.read_text())
    assert (data["passed"], data["failed"], data["mode"]) == (1, 1, "fast")
    assert [(e["label"], e["status"], e["message"]) for e in data["exercises"]] == [
        ("ex-good", "PASS", ""), ("ex-bad", "FAIL", "triple(2) should be 6, it is 4")]
    assert data["exercises"][0]["chapter"] == "mixed"
    text = summary.read_text()
    assert text.startswith("# before\n") and "| mixed | `ex-bad` | **FAIL** |" in text
    assert text.rstrip().endswith("1 passed, 1 failed")

    good = _write(tmp_path, "good.ipynb", _exercise("ex-good", DOUBLE, CHECK_DOUBLE))
    assert grade.main([str(good)]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "1 passed, 0 failed"


def test_the_command_line(tmp_path):
    good = _write(tmp_path, "good.ipynb", _exercise("ex-good", DOUBLE, CHECK_DOUBLE))
    run = subprocess.run([sys.executable, "-m", "regmlp.exercises", "grade", str(good)],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.splitlines()[-1] == "1 passed, 0 failed"
    missing = subprocess.run([sys.executable, "-m", "regmlp.exercises", "grade",
                              str(tmp_path / "nope.ipynb")], capture_output=True, text=True)
    assert missing.returncode == 2 and "no such notebook" in missing.stderr
    usage = subprocess.run([sys.executable, "-m", "regmlp.exercises", "mark"],
                           capture_output=True, text=True)
    assert usage.returncode == 2 and "'grade'" in usage.stderr


def test_fast_mode_name_error_suggests_full(tmp_path):
    """A solution using a name from a chapter cell fails fast with a hint, passes with --full."""
    cells = ([_code("FACTOR = 2")]
             + _exercise("ex-uses-global", "def double(x):\n    return FACTOR * x\n",
                         CHECK_DOUBLE)
             + _exercise("ex-check-fails-on-name", DOUBLE,
                         "from regmlp.exercises import run_learner_code\n"
                         "run_learner_code(lambda: UNDEFINED, what='f()')"))
    path = _write(tmp_path, "names.ipynb", cells)
    fast = grade.grade_notebook(path)
    assert [r.status for r in fast] == ["FAIL", "FAIL"]
    assert "NameError" in fast[0].message and "--full" in fast[0].message
    assert "raised NameError" in fast[1].message and "--full" in fast[1].message
    full = grade.grade_notebook(path, full=True)
    assert full[0].passed and not full[1].passed and "--full" not in full[1].message


def test_an_endless_loop_is_stopped_and_the_rest_graded(tmp_path):
    cells = (_exercise("ex-loops", "def double(x):\n    while True:\n        pass\n",
                       CHECK_DOUBLE)
             + _exercise("ex-after", DOUBLE, CHECK_DOUBLE))
    path = _write(tmp_path, "loop.ipynb", cells)
    results = grade.grade_notebook(path, timeout=5)
    assert [r.status for r in results] == ["FAIL", "PASS"]
    assert results[0].message == ("the check cell was still running after 5 s and was "
                                  "interrupted (an endless loop?)")


def test_a_kernel_that_dies_fails_its_exercises_without_hanging(tmp_path):
    cells = (_exercise("ex-good", DOUBLE, CHECK_DOUBLE)
             + _exercise("ex-exits", "import os\n\n\ndef double(x):\n    os._exit(3)\n",
                         CHECK_DOUBLE)
             + _exercise("ex-after", DOUBLE, CHECK_DOUBLE))
    path = _write(tmp_path, "dies.ipynb", cells)
    results = grade.grade_notebook(path, timeout=60)
    assert [r.status for r in results] == ["PASS", "FAIL", "FAIL"]
    assert all("the kernel died" in r.message for r in results[1:])


def test_a_solution_that_does_not_compile(tmp_path):
    path = _write(tmp_path, "syntax.ipynb",
                  _exercise("ex-syntax", "def double(x)\n    return 2 * x\n", CHECK_DOUBLE))
    (result,) = grade.grade_notebook(path)
    assert not result.passed
    assert result.message.startswith("the solution cell raised SyntaxError")


def test_make_exercises_keeps_a_learners_work(tmp_path, capsys):
    out = tmp_path / "ex"
    src = tmp_path / "chapters"
    src.mkdir()
    shutil.copy(ROOT / "chapters/04_layernorm.ipynb", src)
    make_exercises.main(["make_exercises", str(src), str(out)])
    nb = nbformat.read(out / "04_layernorm.ipynb", as_version=4)
    solution = next(c for c in nb.cells if "solution" in c.metadata.get("tags", []))
    solution.source += "\n# my work\n"
    nbformat.write(nb, out / "04_layernorm.ipynb")
    make_exercises.main(["make_exercises", str(src), str(out)])
    assert "kept, it holds your solutions" in capsys.readouterr().out
    assert "# my work" in (out / "04_layernorm.ipynb").read_text()
    make_exercises.main(["make_exercises", "--force", str(src), str(out)])
    assert "# my work" not in (out / "04_layernorm.ipynb").read_text()


# -- the learner workflow -----------------------------------------------------------

WORKFLOW = ROOT / ".github/workflows/learner.yml"


def test_learner_workflow_is_valid_against_githubs_schema():
    exe = shutil.which("check-jsonschema", path=str(Path(sys.executable).parent))
    if exe is None:
        pytest.fail("check-jsonschema is not installed: it is in the [test] extra")
    run = subprocess.run([exe, "--builtin-schema", "vendor.github-workflows", str(WORKFLOW)],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr


def test_learner_workflow_runs_only_on_forks_with_least_permissions():
    import yaml

    flow = yaml.safe_load(WORKFLOW.read_text())
    upstream = "regularization-from-scratch/book"
    assert upstream in (ROOT / "_config.yml").read_text()
    assert flow["permissions"] == {"contents": "read"}
    (job,) = flow["jobs"].values()
    assert job["if"].replace(" ", "") == f"github.repository!='{upstream}'"
    uses = [step["uses"] for step in job["steps"] if "uses" in step]
    assert uses == ["actions/checkout@3d3c42e5aac5ba805825da76410c181273ba90b1"]  # v7.0.1
    assert job["container"] == "python:3.11-bookworm"
    runs = " ".join(step.get("run", "") for step in job["steps"])
    assert "regmlp.exercises grade" in runs and "GITHUB_STEP_SUMMARY" in runs
    triggers = flow["on"] if "on" in flow else flow[True]    # YAML 1.1 reads `on` as True
    assert "push" in triggers
