"""``python -m regmlp.exercises grade ...``: grade exercise notebooks (see :mod:`.grade`)."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: python -m regmlp.exercises grade [--full] [--json PATH] "
              "[--markdown PATH] [--timeout SECONDS] NOTEBOOK...\n\n"
              "Commands:\n  grade    run the exercises of notebooks and report PASS/FAIL")
        return 0 if argv else 2
    if argv[0] != "grade":
        print(f"unknown command {argv[0]!r}; the command is 'grade'", file=sys.stderr)
        return 2
    from .grade import main as grade_main

    return grade_main(argv[1:])


if __name__ == "__main__":
    sys.exit(main())
