"""The code the book shows fits the text column; the package code it shows exists.

The chapters show regmlp's real source with ``literalinclude`` and ``:pyobject:``
(DESIGN.md §4.3), so the book and the package cannot drift. This test finds every
such include, locates the object the way Sphinx does, and checks that it exists,
is public or plainly named (no leading underscore), and that every line is at most
80 characters wide: the width of the book's code boxes, where a longer line is
cut off or scrolls. The chapters' own code cells (all but the ``remove-cell``
ones, which the book does not show) keep to the same width.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from sphinx.pycode import ModuleAnalyzer

ROOT = Path(__file__).resolve().parents[1]
WIDTH = 80
INCLUDE = re.compile(r"```\{literalinclude\}\s+(\S+)\n((?::[^\n]*\n)*)")


def shown_objects() -> list[tuple[str, Path, str]]:
    """Every (chapter, source file, object) that a chapter includes with :pyobject:."""
    found = []
    for notebook in sorted((ROOT / "chapters").glob("*.ipynb")):
        cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
        text = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
        for path, options in INCLUDE.findall(text + "\n"):
            obj = re.search(r":pyobject:\s*(\S+)", options)
            if obj:
                found.append((notebook.name, (notebook.parent / path).resolve(), obj.group(1)))
    return found


def object_lines(source: Path, name: str) -> list[str]:
    """The lines Sphinx's literalinclude shows for ``:pyobject: name``."""
    tags = ModuleAnalyzer.for_file(str(source), "").find_tags()
    if name not in tags:
        raise LookupError(f"{source.name} has no object {name}")
    _, start, end = tags[name]
    return source.read_text(encoding="utf-8").splitlines()[start - 1:end]


def too_wide(lines: list[str], width: int = WIDTH) -> list[str]:
    return [f"{len(line)} chars: {line.strip()[:60]}" for line in lines if len(line) > width]


SHOWN = shown_objects()


def test_the_chapters_show_package_code():
    assert len(SHOWN) >= 15, SHOWN


@pytest.mark.parametrize("chapter, source, name", SHOWN,
                         ids=[f"{c}:{n}" for c, _, n in SHOWN])
def test_shown_code_exists_is_public_and_fits_the_column(chapter, source, name):
    assert source.is_file(), f"{chapter} includes {source}, which does not exist"
    assert not any(part.startswith("_") for part in name.split(".")), (
        f"{chapter} shows {name}: a reader should be shown public or plainly named code")
    lines = object_lines(source, name)
    assert lines, f"{chapter}: {name} is empty"
    assert not too_wide(lines), f"{chapter} shows {name} with lines wider than {WIDTH}: " \
        + "; ".join(too_wide(lines))


def test_the_width_check_catches_a_long_line(tmp_path):
    source = tmp_path / "mod.py"
    source.write_text("def f():\n    return " + "1 + " * 20 + "1\n\n\ndef g():\n    pass\n")
    lines = object_lines(source, "f")
    assert len(lines) == 2 and lines[0] == "def f():"
    assert too_wide(lines) and not too_wide(object_lines(source, "g"))
    with pytest.raises(LookupError):
        object_lines(source, "h")


def chapter_code_lines() -> list[tuple[str, int, str]]:
    """(chapter, cell index, line) of every code cell the book shows."""
    found = []
    for notebook in sorted((ROOT / "chapters").glob("*.ipynb")):
        cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
        for index, cell in enumerate(cells):
            if (cell["cell_type"] == "code"
                    and "remove-cell" not in cell["metadata"].get("tags", [])):
                found += [(notebook.name, index, line)
                          for line in "".join(cell["source"]).splitlines()]
    return found


def test_the_chapters_code_cells_fit_the_column():
    lines = chapter_code_lines()
    assert len(lines) > 1000, "the chapters' code cells were not found"
    wide = [f"{chapter} cell {index}: {line.strip()[:60]} ({len(line)} chars)"
            for chapter, index, line in lines if len(line) > WIDTH]
    assert not wide, f"code lines wider than {WIDTH}:\n" + "\n".join(wide)
