"""Fresh virtual environments like the ones a reader gets on Colab or Binder.

Shared by ``tests/test_colab.py`` and ``tests/test_binder.py``. Building one
takes pip a minute or so (the wheels come from pip's cache or the package
index), so the tests that need one run only when ``REGMLP_READER_ENVS=1``
(``make colab-test`` sets it; ``.ci/run`` runs that target).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CONSTRAINTS = ROOT / "constraints.txt"
CHAPTERS = sorted((ROOT / "chapters").glob("[0-9][0-9]_*.ipynb"))

ENABLED = os.environ.get("REGMLP_READER_ENVS", "") == "1"
needs_reader_envs = pytest.mark.skipif(
    not ENABLED, reason="builds a fresh venv: run `make colab-test` (REGMLP_READER_ENVS=1)"
)

# What only the book build or the tests install: none of it may be in a
# reader's environment (the notebooks must not need it).
BOOK_TOOLCHAIN = {
    "jupyter-book", "sphinx", "myst-nb", "myst-parser", "sphinxcontrib-bibtex",
    "sphinx-exercise", "sphinx-book-theme", "jupyter-cache", "pytest", "nbval",
    "playwright", "ruff", "django-static-mathjax", "wandb",
}


def runtime_dependencies() -> list[str]:
    """The package's own runtime requirements, from pyproject.toml."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return list(project["dependencies"])


def make_venv(path: Path) -> Path:
    """Create a venv at ``path`` (pip as pinned by the Makefile); return its python."""
    subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
    python = path / "bin" / "python"
    return python


def pip_install(python: Path, *args: str, cwd: Path | None = None) -> None:
    subprocess.run([str(python), "-m", "pip", "install", "--quiet",
                    "--disable-pip-version-check", *args], check=True, cwd=cwd,
                   env=clean_env(python))


def installed(python: Path) -> dict[str, str]:
    """Distribution name (normalised) -> version, of the venv's packages."""
    out = subprocess.run([str(python), "-m", "pip", "list", "--format", "json",
                          "--disable-pip-version-check"], check=True, capture_output=True,
                         text=True, env=clean_env(python)).stdout
    return {d["name"].lower().replace("_", "-"): d["version"] for d in json.loads(out)}


def clean_env(python: Path, home: Path | None = None) -> dict[str, str]:
    """An environment with nothing of the book's venv or of pytest in it.

    No ``CI``, ``PYTEST_CURRENT_TEST`` or ``REGMLP_*`` variables: the kernel
    decides about progress bars and parallel jobs as it would on Colab.
    """
    env = {
        "PATH": f"{python.parent}:/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "HOME": str(home) if home else os.environ.get("HOME", "/root"),
        # This runs beside other tests on a 2-core machine: one BLAS thread
        # per kernel (the chapters multiply small matrices; see the Makefile).
        "OPENBLAS_NUM_THREADS": "1",
    }
    for key in ("PIP_CACHE_DIR", "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_FIND_LINKS",
                "PIP_CERT", "SSL_CERT_FILE", "TMPDIR"):
        if key in os.environ:
            env[key] = os.environ[key]
    return env


def code_cells(path: Path) -> list[dict]:
    nb = json.loads(path.read_text(encoding="utf-8"))
    return [c for c in nb["cells"] if c["cell_type"] == "code"]


def source(cell: dict) -> str:
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
