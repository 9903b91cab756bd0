"""Remove outputs and execution counts from notebooks, in place.

Usage: ``python tools/strip_outputs.py chapters/*.ipynb`` (``make strip``).

Chapters are committed without outputs so that diffs stay readable; the book
build and nbval execute them. Cell ids, tags and other metadata are kept, and a
notebook that is already clean is left untouched (same bytes).
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat

# Metadata that a front end adds when a notebook runs; it is not part of the text.
VOLATILE_CELL_METADATA = ("execution", "collapsed", "scrolled")


def strip(nb: nbformat.NotebookNode) -> None:
    """Clear every code cell's outputs and execution count, in place."""
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
        for key in VOLATILE_CELL_METADATA:
            cell.metadata.pop(key, None)
    nb.metadata.pop("widgets", None)
    # The exact Python version of whoever ran it last would churn the diff.
    nb.metadata.get("language_info", {}).pop("version", None)


def main(paths: list[str]) -> int:
    changed = 0
    for name in paths:
        path = Path(name)
        if not path.exists():
            # An unmatched shell glob (no notebooks yet) is not an error.
            if "*" in name:
                continue
            print(f"no such notebook: {path}", file=sys.stderr)
            return 1
        before = path.read_text(encoding="utf-8")
        nb = nbformat.reads(before, as_version=nbformat.NO_CONVERT)
        strip(nb)
        after = nbformat.writes(nb) + "\n"
        if after != before:
            path.write_text(after, encoding="utf-8")
            changed += 1
            print(f"stripped {path}")
    print(f"{changed} notebook(s) changed, {len(paths) - changed} already clean")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
