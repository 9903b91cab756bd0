"""The book build fails on a notebook cell that raises (DESIGN.md §6).

``make test`` executes the chapters once, through ``make book``, instead of a
second time under nbval. That is only as strong as nbval if the build fails
whenever a cell raises -- a failed assert about a result included. This test
builds a two-page book with the repository's own ``execute`` settings and the
Makefile's flags (``-W -n --keep-going``) and a cell whose assert fails, and
checks that the build fails *because of that cell* (its message is in the log).
The passing case is the real book, which ``make test`` builds first.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
JUPYTER_BOOK = Path(sys.executable).parent / "jupyter-book"

pytestmark = pytest.mark.skipif(not JUPYTER_BOOK.exists() and not shutil.which("jupyter-book"),
                                reason="jupyter-book is not installed")


def build_tiny_book(folder: Path, cell: str) -> subprocess.CompletedProcess:
    """Build a book whose one notebook holds ``cell``, as ``make book`` builds the real one."""
    settings = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))
    execute = {**settings["execute"], "cache": str(folder / "_build" / ".jupyter_cache")}
    config = {"title": "guard", "only_build_toc_files": True, "execute": execute,
              "exclude_patterns": ["_build"]}
    (folder / "_config.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
    (folder / "_toc.yml").write_text("format: jb-book\nroot: index\nchapters:\n- file: claim\n",
                                     encoding="utf-8")
    (folder / "index.md").write_text("# Guard\n\nA book of one notebook.\n", encoding="utf-8")
    book = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# Claim"),
                                           nbformat.v4.new_code_cell(cell)])
    book.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                   "language": "python"}
    nbformat.write(book, folder / "claim.ipynb")
    command = str(JUPYTER_BOOK) if JUPYTER_BOOK.exists() else "jupyter-book"
    bin_dir = str(Path(sys.executable).parent)
    return subprocess.run([command, "build", str(folder), "-W", "-n", "--keep-going"],
                          capture_output=True, text=True, timeout=300,
                          env={"PATH": bin_dir + ":/usr/bin:/bin", "HOME": str(folder),
                               "JUPYTER_PLATFORM_DIRS": "1", "PYDEVD_DISABLE_FILE_VALIDATION": "1"})


def test_a_cell_that_raises_fails_the_build(tmp_path):
    result = build_tiny_book(tmp_path, 'assert 1 + 1 == 3, "the claim does not hold"')
    output = result.stdout + result.stderr
    assert result.returncode != 0, output[-3000:]
    assert "the claim does not hold" in output or "AssertionError" in output, output[-3000:]


def code_stamp(tmp_path: Path) -> str:
    """Run ``make code-stamp`` on a cache and a package of tmp_path; its output."""
    done = subprocess.run(
        ["make", "-s", "-C", str(ROOT), "code-stamp",
         f"EXEC_CACHE={tmp_path / 'cache'} {tmp_path / 'doctrees'}",
         f"CODE_STAMP={tmp_path / 'stamp'}", f"STAMPED={tmp_path / 'pkg'}"],
        capture_output=True, text=True, check=True)
    return done.stdout


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_a_package_change_clears_the_executed_notebooks(tmp_path):
    # jupyter-cache keys a chapter on its own code; a stale copy would show,
    # and assert against, the package as it was.
    (tmp_path / "pkg").mkdir()
    module = tmp_path / "pkg" / "layers.py"
    module.write_text("def forward(x):\n    return x\n")
    cache, doctrees = tmp_path / "cache", tmp_path / "doctrees"
    cache.mkdir()
    doctrees.mkdir()
    assert "afresh" in code_stamp(tmp_path) and not cache.exists()   # no stamp yet
    assert not doctrees.exists()      # Sphinx must re-read the chapters too
    cache.mkdir()
    assert code_stamp(tmp_path) == "" and cache.exists()             # unchanged: kept
    module.write_text("def forward(x):\n    return 2 * x\n")
    assert "afresh" in code_stamp(tmp_path) and not cache.exists()   # changed: cleared
    cache.mkdir()
    (tmp_path / "pkg" / "new.py").write_text("")
    assert "afresh" in code_stamp(tmp_path) and not cache.exists()   # a new file too
