"""Re-execute the chapters with other seeds: do their asserted claims still hold?

Every chapter's first code cell (tagged ``parameters``) defines ``SEEDS``; its
claims are asserted in a way that should hold for any list of the same length.
This script runs each chapter with papermill and a new seed list (drawn at
random unless given), prints the seeds so that a failure can be reproduced,
and exits non-zero if any chapter fails.

    python tools/replicate.py                      # random seeds, every chapter
    python tools/replicate.py --seeds 10 11 12 13 14 --chapters 02 03
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def committed_seeds(path: Path) -> list[int]:
    """The SEEDS of a chapter's parameters cell."""
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    cell = next(c for c in cells if c["cell_type"] == "code")
    for node in ast.parse("".join(cell["source"])).body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == "SEEDS":
            return list(eval(compile(ast.Expression(node.value), "<SEEDS>", "eval")))
    raise SystemExit(f"{path.name}: no SEEDS in the first code cell")


def new_seeds(n: int, avoid: list[int], rng: np.random.Generator) -> list[int]:
    """``n`` distinct seeds in [100, 10**6) that the chapter was not written with."""
    seeds: list[int] = []
    while len(seeds) < n:
        seed = int(rng.integers(100, 10**6))
        if seed not in seeds and seed not in avoid:
            seeds.append(seed)
    return seeds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+",
                        help="the seed list (padded with random seeds to each chapter's length)")
    parser.add_argument("--chapters", nargs="+", default=None,
                        help="chapter numbers, e.g. 02 03 (default: all)")
    args = parser.parse_args()

    import papermill

    rng = np.random.default_rng()
    paths = sorted((ROOT / "chapters").glob("0*.ipynb"))
    if args.chapters:
        paths = [p for p in paths if p.name[:2] in args.chapters]
    failures = []
    with tempfile.TemporaryDirectory() as out_dir:
        for path in paths:
            committed = committed_seeds(path)
            seeds = list(args.seeds or [])[: len(committed)]
            seeds += new_seeds(len(committed) - len(seeds), committed + seeds, rng)
            start = time.perf_counter()
            try:
                papermill.execute_notebook(str(path), str(Path(out_dir) / path.name),
                                           parameters={"SEEDS": seeds}, cwd=str(path.parent),
                                           progress_bar=False, kernel_name="python3")
                verdict = "PASS"
            except papermill.PapermillExecutionError as error:
                verdict = f"FAIL ({error.ename}: {error.evalue})"
                failures.append(path.name)
            seconds = time.perf_counter() - start
            print(f"{path.stem:28s} SEEDS = {seeds}  {verdict}  [{seconds:.1f} s]", flush=True)
    print(f"{len(paths) - len(failures)} passed, {len(failures)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
