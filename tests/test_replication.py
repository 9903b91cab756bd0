"""Every chapter's claims are checked over its SEEDS, and hold for other seeds too.

Each chapter notebook opens with a code cell tagged ``parameters`` (papermill's
convention) that defines ``SEEDS``. The book asserts its comparative claims
over those seeds in a way that should hold for any list of the same length;
this test re-executes a chapter with seeds it was never written with.
``make replicate`` does the same for every chapter, with seeds you choose.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "chapters").glob("0*.ipynb"))


def first_code_cell(path: Path) -> dict:
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    return next(cell for cell in cells if cell["cell_type"] == "code")


def seeds_of(cell: dict) -> list[int]:
    """The literal list assigned to SEEDS in a parameters cell."""
    tree = ast.parse("".join(cell["source"]))
    for node in tree.body:
        if isinstance(node, ast.Assign) and [getattr(t, "id", None) for t in node.targets] == [
                "SEEDS"]:
            return list(eval(compile(ast.Expression(node.value), "<SEEDS>", "eval")))
    raise AssertionError("the parameters cell does not assign SEEDS")


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_first_code_cell_is_the_parameters_cell_with_seeds(path):
    cell = first_code_cell(path)
    assert "parameters" in cell["metadata"].get("tags", []), \
        f"{path.name}: the first code cell must be tagged 'parameters'"
    seeds = seeds_of(cell)
    minimum = 10 if path.stem.startswith("06") else 5
    assert len(seeds) >= minimum, f"{path.name}: SEEDS needs at least {minimum} seeds"
    assert len(set(seeds)) == len(seeds), f"{path.name}: SEEDS must be distinct"
    assert all(isinstance(s, int) and s >= 0 for s in seeds), \
        f"{path.name}: SEEDS must be non-negative ints"
    assert "import" not in "".join(cell["source"]), \
        f"{path.name}: the parameters cell must only define parameters"


def test_seeds_of_reads_range_and_lists():
    assert seeds_of({"source": ["SEEDS = list(range(3))"]}) == [0, 1, 2]
    with pytest.raises(AssertionError, match="does not assign SEEDS"):
        seeds_of({"source": ["seeds = [1, 2]"]})


def test_a_chapter_runs_with_other_seeds(tmp_path):
    """Chapter 2 (dropout) with five seeds it was not written with: every assert holds."""
    papermill = pytest.importorskip("papermill")
    chapter = ROOT / "chapters" / "02_dropout.ipynb"
    other = [1001, 1002, 1003, 1004, 1005]
    assert not set(other) & set(seeds_of(first_code_cell(chapter)))
    out = tmp_path / chapter.name
    papermill.execute_notebook(str(chapter), str(out), parameters={"SEEDS": other},
                               cwd=str(chapter.parent), progress_bar=False,
                               kernel_name="python3")
    executed = json.loads(out.read_text(encoding="utf-8"))
    injected = [c for c in executed["cells"]
                if "injected-parameters" in c["metadata"].get("tags", [])]
    assert len(injected) == 1 and str(other) in "".join(injected[0]["source"])
