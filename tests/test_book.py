"""Book consistency: the chapter files, the table of contents and the bibliography agree.

These are fast checks on the sources; executing the chapters is the book build's job
(`make book`, which `make test` runs first).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = ROOT / "chapters"
NOTEBOOKS = sorted(CHAPTERS.glob("*.ipynb"))
PAGES = sorted(p for p in CHAPTERS.iterdir() if p.suffix in {".ipynb", ".md"})
BIB = CHAPTERS / "references.bib"

# The works DESIGN.md §4.7 requires in the bibliography.
REQUIRED_KEYS = {
    "krogh1992simple", "loshchilov2019decoupled", "srivastava2014dropout",
    "prechelt1998early", "ba2016layer", "he2016deep", "goodfellow2016deep",
    "decock2011ames", "kingma2015adam", "gal2016dropout", "xiong2020layer",
    "bishop1995training", "tibshirani1996regression", "zhang2023dive",
}


def rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def toc_files() -> list[str]:
    """Every document of _toc.yml (root included), without suffix, in order."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text(encoding="utf-8"))
    assert toc.get("format") == "jb-book", "_toc.yml must use format: jb-book"
    files = [toc["root"]]

    def walk(items):
        for item in items or []:
            if "file" in item:
                files.append(item["file"])
            walk(item.get("sections"))
            walk(item.get("chapters"))

    for part in toc.get("parts") or []:
        walk(part.get("chapters"))
    walk(toc.get("chapters"))
    return [re.sub(r"\.(ipynb|md)$", "", f) for f in files]


def read_notebook(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def test_toc_lists_exactly_the_chapter_files():
    listed = toc_files()
    duplicates = sorted({f for f in listed if listed.count(f) > 1})
    assert not duplicates, f"_toc.yml lists these more than once: {duplicates}"
    on_disk = {rel(p.with_suffix("")) for p in PAGES}
    stems = [rel(p.with_suffix("")) for p in PAGES]
    clashing = sorted({s for s in stems if stems.count(s) > 1})
    assert not clashing, f"both a .md and an .ipynb exist for {clashing}"
    missing_files = sorted(set(listed) - on_disk)
    not_listed = sorted(on_disk - set(listed))
    assert not missing_files, f"_toc.yml lists files that do not exist: {missing_files}"
    assert not not_listed, f"chapters/ has pages that _toc.yml does not list: {not_listed}"
    assert listed[0] == "chapters/intro", "the book's root page is chapters/intro"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_is_committed_without_outputs(path):
    nb = read_notebook(path)
    dirty = [
        i for i, cell in enumerate(nb["cells"])
        if cell["cell_type"] == "code"
        and (cell.get("outputs") or cell.get("execution_count") is not None)
    ]
    assert not dirty, (
        f"{path.name}: code cells {dirty} have outputs or an execution count; "
        "run `make strip` before committing"
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_kernel_is_python3(path):
    nb = read_notebook(path)
    kernelspec = nb.get("metadata", {}).get("kernelspec", {})
    assert kernelspec.get("name") == "python3", (
        f"{path.name}: kernelspec name is {kernelspec.get('name')!r}, expected 'python3'"
    )
    assert kernelspec.get("language", "python") == "python"


def bib_keys() -> list[str]:
    return re.findall(r"^@\w+\{([^,\s]+),", BIB.read_text(encoding="utf-8"), flags=re.M)


def test_bibliography_has_the_required_entries_once():
    keys = bib_keys()
    duplicates = sorted({k for k in keys if keys.count(k) > 1})
    assert not duplicates, f"references.bib defines these keys twice: {duplicates}"
    assert REQUIRED_KEYS <= set(keys), f"missing: {sorted(REQUIRED_KEYS - set(keys))}"


def test_bibliography_parses():
    pybtex_database = pytest.importorskip("pybtex.database")
    data = pybtex_database.parse_file(str(BIB), bib_format="bibtex")
    for key, entry in data.entries.items():
        assert entry.persons.get("author"), f"{key} has no author"
        assert "title" in entry.fields and "year" in entry.fields, f"{key} lacks title or year"


def page_text(path: Path) -> str:
    if path.suffix == ".md":
        return path.read_text(encoding="utf-8")
    nb = read_notebook(path)
    return "\n".join(
        "".join(c["source"]) if isinstance(c["source"], list) else c["source"]
        for c in nb["cells"] if c["cell_type"] == "markdown"
    )


@pytest.mark.parametrize("path", PAGES, ids=[p.name for p in PAGES])
def test_citations_resolve_on_their_own_page(path):
    text = page_text(path)
    cited = {
        re.sub(r"\{[^}]*\}", "", key).strip()  # drop {pre}/{post} text
        for group in re.findall(r"\{cite(?::\w+)?\}`([^`]+)`", text)
        for key in group.split(",")
    }
    unknown = sorted(cited - set(bib_keys()))
    assert not unknown, f"{path.name} cites keys not in references.bib: {unknown}"
    if cited:
        assert "{bibliography}" in text, f"{path.name} cites works but has no {{bibliography}}"
        assert ":filter: docname in docnames" in text, (
            f"{path.name}: its {{bibliography}} needs ':filter: docname in docnames'"
        )


GLUED = re.compile(r'\bglue\(\s*"([^"{}]+)"')  # a literal key; f-string keys vary
SHOWN = re.compile(r"\{glue(?::\w+)?\}`([^`:]+)")


def unused_glue_keys(notebook: dict) -> list[str]:
    """Keys a code cell glues under a literal name that no markdown cell shows."""
    code, text = ("\n".join("".join(c["source"]) for c in notebook["cells"]
                            if c["cell_type"] == kind) for kind in ("code", "markdown"))
    return sorted(set(GLUED.findall(code)) - set(SHOWN.findall(text)))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=rel)
def test_every_glued_number_is_shown(path):
    # A glued value nobody reads is dead code, or prose that lost its number.
    assert unused_glue_keys(read_notebook(path)) == []


def test_unused_glue_check_catches_a_forgotten_key():
    code = 'glue("a_mean", 1.0, display=False)\nglue("a_max", 2.0, display=False)'
    text = "The mean is {glue:text}`a_mean:.2f`."
    notebook = {"cells": [{"cell_type": "code", "source": [code]},
                          {"cell_type": "markdown", "source": [text]}]}
    assert unused_glue_keys(notebook) == ["a_max"]
