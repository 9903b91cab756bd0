"""The PDF that ``make pdf`` builds: _build/latex/book.pdf.

Run by ``make pdf`` right after the build (it sets ``REGMLP_PDF_TEST=1``;
without it these tests are skipped, since ``make test`` does not build the
PDF and an old PDF would be tested otherwise). Reads the PDF's text with
poppler's ``pdftotext``, which ``make tex`` installs with the TeX packages.
Checks: a plausible page count; no unresolved reference (``??``) in the text
and none reported by LaTeX; every chapter in the contents and as a chapter
heading with the number its title has in the HTML ("Chapter 0 Overfitting");
every number the text quotes through glue rendered as the HTML renders it;
one bibliography listing each cited work once.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LATEX = ROOT / "_build" / "latex"
PDF = LATEX / "book.pdf"
EXECUTED = ROOT / "_build" / "jupyter_execute" / "chapters"
CHAPTERS = sorted((ROOT / "chapters").glob("[0-9][0-9]_*.ipynb"))

pytestmark = pytest.mark.skipif(
    os.environ.get("REGMLP_PDF_TEST") != "1",
    reason="checks the PDF that `make pdf` just built (it runs these tests)")


def tool(name: str) -> str:
    found = shutil.which(name)
    if not found:
        pytest.fail(f"{name} is missing: `make tex` installs poppler-utils")
    return found


@pytest.fixture(scope="module")
def text() -> str:
    if not PDF.exists():
        pytest.fail("no _build/latex/book.pdf: run `make pdf`")
    out = subprocess.run([tool("pdftotext"), "-enc", "UTF-8", str(PDF), "-"],
                         check=True, capture_output=True, text=True).stdout
    return out


def flat(s: str) -> str:
    return re.sub(r"\s+", " ", s)


def chapter_titles() -> list[tuple[int, str]]:
    """(number, title without its number) of every chapter, from its first heading."""
    found = []
    for path in CHAPTERS:
        nb = json.loads(path.read_text(encoding="utf-8"))
        for cell in nb["cells"]:
            if cell["cell_type"] != "markdown":
                continue
            m = re.search(r"^# (\d+)\. (.+)$", "".join(cell["source"]), re.M)
            if m:
                found.append((int(m[1]), m[2].strip()))
                break
        else:
            pytest.fail(f"{path.name}: no '# N. Title' heading")
    return found


def test_page_count():
    pages = int(re.search(r"^Pages:\s+(\d+)", subprocess.run(
        [tool("pdfinfo"), str(PDF)], check=True, capture_output=True, text=True).stdout,
        re.M)[1])
    # Each chapter runs to well over ten pages (163 pages in all in December 2026).
    assert 10 * len(CHAPTERS) <= pages <= 400, pages


def test_no_unresolved_references(text):
    assert "??" not in text, "an unresolved reference (??) is printed"
    log = (LATEX / "book.log").read_text(encoding="utf-8", errors="replace")
    assert "There were undefined references" not in log
    assert not re.search(r"(Reference|Citation) `[^']*' on page \d+ undefined", log)


def test_every_chapter_is_there_with_its_number(text):
    body = flat(text)
    for number, title in chapter_titles():
        assert re.search(rf"\b{number} {re.escape(title)} \d+", body), (
            f"the contents do not list '{number} {title}'")
        assert f"Chapter {number} {title}" in body, (
            f"no chapter heading 'Chapter {number}' '{title}' (the HTML says '{number}. {title}')")
    assert "Chapter One" not in body and "CHAPTER ONE" not in body


GLUE_TEXT = re.compile(r"\{glue:text\}`([\w-]+)(?::([^`]+))?`")


def glued(path: Path) -> list[str]:
    """Each ``{glue:text}`` of a chapter, formatted as myst-nb formats it."""
    from myst_nb.core.variables import format_plain_text

    values = json.loads((EXECUTED / f"{path.stem}.glue.json").read_text(encoding="utf-8"))
    nb = json.loads(path.read_text(encoding="utf-8"))
    found = []
    for cell in nb["cells"]:
        if cell["cell_type"] == "markdown":
            for key, spec in GLUE_TEXT.findall("".join(cell["source"])):
                plain = values[key]["data"]["text/plain"]
                found.append(format_plain_text(plain, spec or ""))
    return found


@pytest.mark.parametrize("path", CHAPTERS, ids=[p.name for p in CHAPTERS])
def test_glued_numbers_are_rendered(text, path):
    body = flat(text).replace("\u2212", "-")
    expected = glued(path)
    assert expected, f"{path.name} quotes no glued number"
    missing = [v for v in expected if v not in body]
    assert not missing, f"{path.name}: glued values not in the PDF: {missing}"


def test_one_bibliography_each_work_once(text):
    body = flat(text)
    # The chapter "Bibliography" (its heading then the first entry), up to the next index.
    start = re.search(r"Bibliography (?=\[)", body)
    assert start, "no bibliography at the end of the book"
    end = body.find("Index", start.end())
    entries = body[start.end():end if end > 0 else None]
    labels = re.findall(r"\[([^\[\]]+?, \d{4}[a-z]?)\]", entries)
    assert labels, "no author-year labels in the bibliography"
    duplicates = sorted({x for x in labels if labels.count(x) > 1})
    assert not duplicates, f"listed more than once: {duplicates}"
    assert labels == sorted(labels, key=str.lower), "the bibliography is not sorted"
