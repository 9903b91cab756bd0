"""Style and hygiene: ruff is clean, and the package never uses NumPy's global random state."""

from __future__ import annotations

import ast
import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from regmlp.layers import Dense, Dropout

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "regmlp"

# the parts of numpy.random that do not touch the global RandomState
ALLOWED = {"default_rng", "Generator", "BitGenerator", "SeedSequence",
           "PCG64", "PCG64DXSM", "Philox", "SFC64", "MT19937"}


@pytest.mark.skipif(importlib.util.find_spec("ruff") is None, reason="ruff is not installed")
def test_ruff_is_clean():
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "."],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def global_random_uses(source: str) -> list[str]:
    """Every use of NumPy's legacy/global random API in ``source``, as ``"line: name"``."""
    tree = ast.parse(source)
    numpy_names, random_names, found = {"numpy"}, set(), []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name == "numpy":
                    numpy_names.add(a.asname or "numpy")
                elif a.name == "numpy.random":
                    if a.asname:
                        random_names.add(a.asname)
                    else:
                        numpy_names.add("numpy")
        elif isinstance(node, ast.ImportFrom) and node.module in ("numpy", "numpy.random"):
            for a in node.names:
                if node.module == "numpy" and a.name == "random":
                    random_names.add(a.asname or "random")
                elif node.module == "numpy.random" and a.name not in ALLOWED:
                    found.append(f"{node.lineno}: from numpy.random import {a.name}")
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute) or node.attr in ALLOWED:
            continue
        base = node.value
        is_np_random = (isinstance(base, ast.Attribute) and base.attr == "random"
                        and isinstance(base.value, ast.Name) and base.value.id in numpy_names)
        is_random_alias = isinstance(base, ast.Name) and base.id in random_names
        if is_np_random or is_random_alias:
            found.append(f"{node.lineno}: numpy.random.{node.attr}")
    return sorted(found)


def test_package_never_uses_the_global_random_state():
    files = sorted(PACKAGE.rglob("*.py"))
    assert any(f.name == "layers.py" for f in files)
    offenders = {str(f.relative_to(ROOT)): uses for f in files
                 if (uses := global_random_uses(f.read_text(encoding="utf-8")))}
    assert offenders == {}, f"legacy np.random use (pass an rng instead): {offenders}"


@pytest.mark.parametrize("source, expected", [
    ("import numpy as np\nnp.random.seed(0)\n", ["2: numpy.random.seed"]),
    ("import numpy\nx = numpy.random.rand(3)\n", ["2: numpy.random.rand"]),
    ("from numpy import random as npr\nnpr.shuffle(a)\n", ["2: numpy.random.shuffle"]),
    ("import numpy.random as r\nr.normal()\n", ["2: numpy.random.normal"]),
    ("from numpy.random import randn\n", ["1: from numpy.random import randn"]),
    ("import numpy as np\ng = np.random.default_rng(0)\ng.normal()\n", []),
    ("import numpy as np\ndef f(rng: np.random.Generator): return rng.random()\n", []),
], ids=["seed", "numpy-rand", "from-numpy-import-random", "import-as", "from-import",
        "default_rng-ok", "Generator-ok"])
def test_the_scanner_itself(source, expected):
    assert global_random_uses(source) == expected


# ---------------------------------------------------------------------------
# Section 7: "global np.random.seed inside a layer's constructor"
# ---------------------------------------------------------------------------


class SeedingDense(Dense):
    """The shipped bug: a layer that seeds NumPy's global generator when it is made."""

    def __init__(self, n_in, n_out, *, seed=0, **kwargs):
        np.random.seed(seed)  # noqa: NPY002  (the bug, on purpose)
        super().__init__(n_in, n_out, **kwargs)


def leaves_global_state_alone(make) -> bool:
    """Whether calling ``make()`` leaves ``np.random``'s global state as it was."""
    saved = np.random.get_state()  # noqa: NPY002
    try:
        np.random.seed(20240601)  # noqa: NPY002  (a known state that no layer would set)
        before = np.random.get_state()  # noqa: NPY002
        make()
        after = np.random.get_state()  # noqa: NPY002
        return (before[0] == after[0] and np.array_equal(before[1], after[1])
                and tuple(before[2:]) == tuple(after[2:]))
    finally:
        np.random.set_state(saved)  # noqa: NPY002


def test_real_layers_leave_the_global_state_alone():
    assert leaves_global_state_alone(lambda: Dense(4, 3))
    assert leaves_global_state_alone(lambda: Dense(4, 3, rng=0))
    assert leaves_global_state_alone(lambda: Dropout(0.5)(np.ones((3, 3))))


def test_check_catches_a_constructor_that_seeds_the_global_generator():
    assert not leaves_global_state_alone(lambda: SeedingDense(4, 3))


def test_scanner_catches_the_seeding_constructor():
    source = ("import numpy as np\n"
              "class SeedingDense(Dense):\n"
              "    def __init__(self, n_in, n_out):\n"
              "        np.random.seed(0)\n"
              "        super().__init__(n_in, n_out)\n")
    assert global_random_uses(source) == ["4: numpy.random.seed"]


def modules_imported_by(statement: str) -> set[str]:
    """The top-level modules a fresh interpreter has loaded after ``statement``."""
    code = f"import sys; {statement}; print(' '.join({{m.split('.')[0] for m in sys.modules}}))"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                            text=True, timeout=120, check=True)
    return set(result.stdout.split())


def test_import_regmlp_does_not_import_pandas_or_matplotlib():
    """pandas and matplotlib are imported where they are used (a CSV read, a plot)."""
    loaded = modules_imported_by("import regmlp, regmlp.models, regmlp.notebook")
    assert "regmlp" in loaded and "numpy" in loaded
    assert not loaded & {"pandas", "matplotlib"}, sorted(loaded & {"pandas", "matplotlib"})


def test_the_import_check_sees_pandas_when_it_is_imported():
    assert "pandas" in modules_imported_by("import regmlp; regmlp.load_house_prices()")
