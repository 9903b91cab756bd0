"""Grade a learner's notebooks: run each exercise's solution and check cells, report PASS/FAIL.

Usage::

    python -m regmlp.exercises grade [--full] [--json PATH] [--markdown PATH]
                                     [--timeout SECONDS] NOTEBOOK...

An exercise is found by the cell structure every chapter follows (CONTRIBUTING.md):
a markdown cell opening ``{exercise-start}`` with a ``:label:``, code cells tagged
``solution`` and a code cell tagged ``check`` that calls the exercise's checker.

* The default (fast) mode runs, in a fresh kernel per notebook, only the solution
  and check cells, in their order: no training runs. Solution cells hold only
  imports and functions (``tools/make_exercises.py`` enforces it), so that is
  enough unless a solution uses a name defined elsewhere in the chapter; then
  the exercise fails with a ``NameError`` and the report suggests ``--full``.
* ``--full`` executes every cell of the notebook, as the book build does.

Every cell has a time limit (``--timeout``, default 120 s in fast mode and 1800 s
with ``--full``): a cell still running then is interrupted and reported, so an
endless loop fails its exercise instead of hanging the grader. The report has
one line per exercise (chapter, label, PASS or FAIL and, for a failure, the
checker's message) and a closing line ``N passed, N failed``; ``--json`` writes
the same as JSON, ``--markdown`` appends it as a table (for a CI job summary).
The exit status is 0 only if every exercise passes.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Exercise", "Result", "find_exercises", "grade_notebook", "main"]

FAST_TIMEOUT = 120
FULL_TIMEOUT = 1800
_START = re.compile(r"\{exercise-start\}(?P<body>.*?)```", re.DOTALL)
_LABEL = re.compile(r"^:label:\s*(\S+)", re.MULTILINE)
FULL_HINT = ("This exercise uses a name that its solution cells do not define: fast mode runs "
             "only the solution and check cells. Define or import it in the solution cell, or "
             "grade with --full, which runs the whole notebook.")


@dataclass
class Exercise:
    """One exercise of a notebook: its label and the indices of its solution and check cells."""

    label: str
    solutions: list[int] = field(default_factory=list)
    check: int | None = None


@dataclass
class Result:
    """The grade of one exercise."""

    notebook: str
    chapter: str
    label: str
    passed: bool
    message: str = ""

    @property
    def status(self) -> str:
        return "PASS" if self.passed else "FAIL"


def _tags(cell: Any) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def find_exercises(nb: Any) -> list[Exercise]:
    """The exercises of a notebook that have a check cell, in order.

    A markdown cell with ``{exercise-start}`` opens an exercise (its ``:label:``
    names it); the ``solution`` cells that follow belong to it, and its
    ``check`` cell closes it.
    """
    exercises: list[Exercise] = []
    current: Exercise | None = None
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "markdown":
            for start in _START.finditer(cell.source):
                label = _LABEL.search(start.group("body"))
                current = Exercise(label.group(1) if label else f"exercise {len(exercises) + 1}")
            continue
        if cell.cell_type != "code":
            continue
        tags = _tags(cell)
        if "solution" in tags:
            if current is None:
                current = Exercise(f"exercise {len(exercises) + 1}")
            current.solutions.append(i)
        if "check" in tags:
            if current is None:
                current = Exercise(f"exercise {len(exercises) + 1}")
            current.check = i
            exercises.append(current)
            current = None
    return exercises


def _error(cell: Any) -> tuple[str, str] | None:
    """``(ename, evalue)`` of the first error output of an executed cell, if any."""
    for out in cell.get("outputs", []):
        if out.get("output_type") == "error":
            return out.get("ename", "Error"), out.get("evalue", "")
    return None


def _one_line(text: str) -> str:
    text = re.sub(r"\x1b\[[0-9;]*m", "", text)         # colour codes of a traceback
    return " ".join(text.split())


def _message(ename: str, evalue: str) -> str:
    if ename in ("AssertionError", "Timeout"):
        return _one_line(evalue)
    return _one_line(f"{ename}: {evalue}")


def _uses_undefined_name(ename: str, evalue: str) -> bool:
    return ename == "NameError" or "raised NameError" in evalue


def grade_notebook(path: str | Path, *, full: bool = False,
                   timeout: int | None = None) -> list[Result]:
    """Grade every exercise of one notebook (see the module's docstring)."""
    import nbformat

    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    exercises = find_exercises(nb)
    if not exercises:
        return []
    timeout = timeout or (FULL_TIMEOUT if full else FAST_TIMEOUT)
    if full:
        run, position = nb, {i: i for i in range(len(nb.cells))}
    else:                                   # only the solution and check cells, in order
        keep = sorted({i for ex in exercises for i in ex.solutions}
                      | {ex.check for ex in exercises})
        run = nbformat.v4.new_notebook(metadata=nb.metadata)
        run.cells = [nbformat.v4.new_code_cell(nb.cells[i].source, metadata=nb.cells[i].metadata)
                     for i in keep]
        position = {i: k for k, i in enumerate(keep)}
    timed_out = f"was still running after {timeout} s and was interrupted (an endless loop?)"
    crash = _execute(run, path.parent, timeout, timed_out)
    return [Result(str(path), path.stem, ex.label, *_verdict(
        [run.cells[position[i]] for i in ex.solutions], run.cells[position[ex.check]],
        crash=crash, timed_out=timed_out, full=full)) for ex in exercises]


def _execute(run: Any, cwd: Path, timeout: int, timed_out: str) -> str:
    """Execute ``run`` in a fresh kernel (in ``cwd``); return why it stopped early, if it did."""
    from nbclient import NotebookClient
    from nbclient.exceptions import DeadKernelError

    for cell in run.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    client = NotebookClient(
        run, timeout=timeout, kernel_name="python3", allow_errors=True, record_timing=True,
        interrupt_on_timeout=True, startup_timeout=120,
        error_on_timeout={"ename": "Timeout", "evalue": timed_out, "traceback": []},
        resources={"metadata": {"path": str(cwd.resolve())}})
    env_progress = os.environ.get("REGMLP_PROGRESS")
    os.environ["REGMLP_PROGRESS"] = "0"                # no progress bars in the kernel
    try:
        client.execute(stderr=subprocess.DEVNULL)    # no kernel start-up chatter in the report
    except DeadKernelError as exc:
        return f"the kernel died while running this notebook ({_one_line(str(exc))[:200]})"
    except Exception as exc:  # noqa: BLE001 - report, do not crash the whole grading run
        return f"the notebook could not be run: {type(exc).__name__}: {_one_line(str(exc))}"
    finally:
        if env_progress is None:
            os.environ.pop("REGMLP_PROGRESS", None)
        else:
            os.environ["REGMLP_PROGRESS"] = env_progress
    return ""


def _verdict(solutions: list[Any], check: Any, *, crash: str, timed_out: str,
             full: bool) -> tuple[bool, str]:
    """``(passed, message)`` of one exercise from its executed solution and check cells."""
    failure, undefined = "", False
    for cell in solutions:
        err = _error(cell)
        if err and err[0] in ("KeyboardInterrupt", "Timeout"):
            failure = "the solution cell " + timed_out
            break
        if err:
            failure = "the solution cell raised " + _message(*err)
            undefined = _uses_undefined_name(*err)
            break
    err = _error(check)
    if err and err[0] in ("KeyboardInterrupt", "Timeout"):
        err = ("Timeout", "the check cell " + timed_out)
    if err and not failure:
        failure = _message(*err)
        undefined = _uses_undefined_name(*err)
    elif err:
        failure += "; then the check failed: " + _message(*err)
    # nbclient records the time of the kernel's reply to each cell it finished
    ran = "shell.execute_reply" in check.get("metadata", {}).get("execution", {})
    if not ran and not err:
        failure = crash or "the check cell did not run"
    if failure and undefined and not full:
        failure += " " + FULL_HINT
    return not failure, failure


def _report_lines(results: list[Result], width_chapter: int = 22,
                  width_label: int = 24) -> list[str]:
    lines = []
    for r in results:
        line = f"{r.chapter:<{width_chapter}}  {r.label:<{width_label}}  {r.status}"
        lines.append(line + (f"  {r.message}" if r.message else ""))
    return lines


def _summary(results: list[Result]) -> str:
    n_pass = sum(r.passed for r in results)
    return f"{n_pass} passed, {len(results) - n_pass} failed"


def _markdown(results: list[Result], mode: str) -> str:
    rows = ["| chapter | exercise | result | message |", "| --- | --- | --- | --- |"]
    for r in results:
        message = r.message.replace("|", "\\|")
        mark = "PASS" if r.passed else "**FAIL**"
        rows.append(f"| {r.chapter} | `{r.label}` | {mark} | {message} |")
    return (f"## Exercises ({mode} grading)\n\n" + "\n".join(rows)
            + f"\n\n{_summary(results)}\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m regmlp.exercises grade",
        description="Run the exercises of notebooks and report PASS/FAIL for each.")
    parser.add_argument("notebooks", nargs="+", metavar="NOTEBOOK", type=Path)
    parser.add_argument("--full", action="store_true",
                        help="execute every cell of each notebook, not only the exercises'")
    parser.add_argument("--json", type=Path, metavar="PATH", help="write the report as JSON")
    parser.add_argument("--markdown", type=Path, metavar="PATH",
                        help="append the report as a Markdown table (e.g. $GITHUB_STEP_SUMMARY)")
    parser.add_argument("--timeout", type=int, default=None, metavar="SECONDS",
                        help=f"time limit per cell (default {FAST_TIMEOUT}, "
                             f"{FULL_TIMEOUT} with --full)")
    args = parser.parse_args(argv)

    missing = [str(p) for p in args.notebooks if not p.is_file()]
    if missing:
        parser.error(f"no such notebook: {', '.join(missing)}")
    mode = "full" if args.full else "fast"
    results: list[Result] = []
    width = max(len(p.stem) for p in args.notebooks)
    for path in args.notebooks:
        graded = grade_notebook(path, full=args.full, timeout=args.timeout)
        if not graded:
            print(f"{path}: no exercises with a check cell", file=sys.stderr)
        results += graded
        for line in _report_lines(graded, width):
            print(line, flush=True)
    summary = _summary(results)
    print(summary)
    if args.json:
        report = {"mode": mode, "passed": sum(r.passed for r in results),
                  "failed": sum(not r.passed for r in results),
                  "exercises": [{**asdict(r), "status": r.status} for r in results]}
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    if args.markdown:
        with open(args.markdown, "a") as fh:
            fh.write(_markdown(results, mode))
    return 0 if results and all(r.passed for r in results) else 1
