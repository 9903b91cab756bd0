"""Write the learner version of every chapter: the solutions become stubs.

Usage: ``python tools/make_exercises.py [--force] [CHAPTERS_DIR] [OUT_DIR]``
(defaults: ``chapters`` and ``_build/exercises``).

A learner notebook already in ``OUT_DIR`` whose solution cells are no longer the
stubs (the learner has worked in it) is kept, not overwritten, unless ``--force``
is given; ``python -m regmlp.exercises grade`` grades those notebooks.

In a chapter, an exercise's solution is spread over cells (CONTRIBUTING.md):
a markdown cell opening ``{solution-start}``, code cells tagged ``solution``
and a markdown cell closing ``{solution-end}``. In the learner version

* each ``solution`` code cell keeps its imports and, for every function, its
  signature and docstring; the body becomes ``raise NotImplementedError``;
* the markdown inside the solution (which would give the answer away) is
  dropped, and the opening cell becomes a short "your turn" note;
* all outputs are cleared.

The ``check`` cells stay as they are, so they fail until the learner's code
is right.
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import nbformat

STUB = 'raise NotImplementedError("Exercise: replace this line with your code.")'
YOUR_TURN = ("**Your turn.** Write the code below (the signature and docstring are given), "
             "then run the check cell that follows it.")
START = re.compile(r"```\{solution-start\}.*?```", re.DOTALL)
END = re.compile(r"```\{solution-end\}\s*```", re.DOTALL)


def stub_source(source: str, where: str) -> str:
    """Return ``source`` with every function body replaced by a stub.

    Only imports and function definitions may appear at the top level of a
    solution cell; anything else is an authoring error, reported with
    ``where`` so that it can be fixed.
    """
    tree = ast.parse(source)
    lines = source.splitlines()
    pieces = []
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            pieces.append(ast.get_source_segment(source, node))
        elif isinstance(node, ast.FunctionDef):
            pieces.append(_stub_function(node, lines))
        else:
            raise ValueError(f"{where}: a solution cell may hold only imports and functions, "
                             f"found {type(node).__name__} on line {node.lineno}")
    return "\n\n\n".join(pieces) + "\n"


def _stub_function(node: ast.FunctionDef, lines: list[str]) -> str:
    """The function's decorators, signature and docstring, and a stub body."""
    first = min([node.lineno] + [d.lineno for d in node.decorator_list])
    body = node.body
    has_doc = (isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
               and isinstance(body[0].value.value, str))
    last = body[0].end_lineno if has_doc else body[0].lineno - 1
    head = lines[first - 1:last]
    indent = " " * body[0].col_offset
    return "\n".join(head + [indent + STUB])


def learner_notebook(nb: nbformat.NotebookNode, name: str) -> nbformat.NotebookNode:
    """The learner version of one chapter notebook (a new notebook)."""
    out = nbformat.v4.new_notebook(metadata=nb.metadata)
    inside = False
    for i, cell in enumerate(nb.cells):
        tags = cell.get("metadata", {}).get("tags", [])
        if cell.cell_type == "markdown" and START.search(cell.source):
            before = cell.source[:START.search(cell.source).start()].strip()
            inside = not END.search(cell.source)
            text = (before + "\n\n" if before else "") + YOUR_TURN
            out.cells.append(nbformat.v4.new_markdown_cell(text))
            continue
        if cell.cell_type == "markdown" and END.search(cell.source):
            inside = False
            after = cell.source[END.search(cell.source).end():].strip()
            if after:
                out.cells.append(nbformat.v4.new_markdown_cell(after))
            continue
        if cell.cell_type == "code" and "solution" in tags:
            source = stub_source(cell.source, f"{name}, cell {i}")
            out.cells.append(nbformat.v4.new_code_cell(source, metadata=cell.metadata))
            continue
        if inside:
            continue  # explanation inside the solution: it would give the answer away
        if cell.cell_type == "code":
            out.cells.append(nbformat.v4.new_code_cell(cell.source, metadata=cell.metadata))
        else:
            out.cells.append(nbformat.v4.new_markdown_cell(cell.source, metadata=cell.metadata))
    return out


def has_learner_work(path: Path, fresh: nbformat.NotebookNode) -> bool:
    """Whether the notebook at ``path`` has solution cells that differ from ``fresh``'s stubs."""
    if not path.exists():
        return False
    old = nbformat.read(path, as_version=4)

    def solutions(nb: nbformat.NotebookNode) -> list[str]:
        return [c.source for c in nb.cells
                if c.cell_type == "code" and "solution" in c.get("metadata", {}).get("tags", [])]

    return solutions(old) != solutions(fresh)


def main(argv: list[str]) -> int:
    force = "--force" in argv
    argv = [a for a in argv if a != "--force"]
    chapters = Path(argv[1] if len(argv) > 1 else "chapters")
    target = Path(argv[2] if len(argv) > 2 else "_build/exercises")
    target.mkdir(parents=True, exist_ok=True)
    notebooks = sorted(chapters.glob("*.ipynb"))
    if not notebooks:
        print(f"no notebooks found in {chapters}", file=sys.stderr)
        return 1
    for path in notebooks:
        nb = nbformat.read(path, as_version=4)
        learner = learner_notebook(nb, path.name)
        n_stubs = sum("solution" in c.get("metadata", {}).get("tags", []) for c in nb.cells)
        if not force and has_learner_work(target / path.name, learner):
            print(f"{target / path.name}: kept, it holds your solutions "
                  "(--force overwrites it with fresh stubs)")
            continue
        nbformat.write(learner, target / path.name)
        print(f"{target / path.name}: {n_stubs} solution cell(s) replaced by stubs")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
