"""The chapters run on Colab: a fresh Python with numpy, pandas, matplotlib and a kernel.

Colab gives a reader a Python with the usual scientific packages but neither
regmlp nor the book's toolchain. Each chapter therefore starts with a hidden
cell (tag ``remove-cell``) that installs regmlp from the book's repository
when it is missing, and imports ``glue`` from ``regmlp.notebook`` (a no-op
without myst-nb) instead of from myst-nb.

The fast tests check those two cells and the repository URL on every run.
``test_every_chapter_runs_in_a_colab_like_venv`` does it for real: it builds
a venv with only what Colab has (numpy, pandas, matplotlib, ipykernel) plus
regmlp's own runtime dependencies, builds the regmlp wheel from this checkout
and executes every chapter, copied to a folder outside the repository, in a
kernel of that venv. The first chapter starts without regmlp and its install
cell installs the wheel (the cell's URL is pointed at the wheel; the network
install itself cannot run offline); the others find it installed. It takes a
few minutes, so it runs under ``make colab-test`` (``REGMLP_READER_ENVS=1``).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from reader_envs import (
    CHAPTERS,
    CONSTRAINTS,
    ROOT,
    clean_env,
    code_cells,
    installed,
    make_venv,
    needs_reader_envs,
    pip_install,
    runtime_dependencies,
    source,
)

# What Colab's runtime has that the chapters use (besides regmlp's own runtime
# dependencies, also preinstalled there): nothing from the book's toolchain.
COLAB_PACKAGES = ["numpy", "pandas", "matplotlib", "ipykernel"]
INSTALL = re.compile(r'%pip install --quiet "regmlp @ git\+(?P<url>[^"]+)"')


def package_version() -> str:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"][
        "version"]


def repository_url() -> str:
    config = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))
    return config["repository"]["url"]


def install_cell(path: Path) -> dict:
    """The hidden install cell: the second code cell, after the ``parameters`` cell."""
    cells = code_cells(path)
    assert "parameters" in cells[0].get("metadata", {}).get("tags", []), (
        f"{path.name}: the first code cell must be the one tagged 'parameters'")
    return cells[1]


@pytest.mark.parametrize("path", CHAPTERS, ids=[p.name for p in CHAPTERS])
def test_install_cell_is_hidden_guarded_and_points_at_the_repository(path):
    cell = install_cell(path)
    text = source(cell)
    assert "remove-cell" in cell.get("metadata", {}).get("tags", []), (
        f"{path.name}: the install cell must be tagged remove-cell (hidden in the book)")
    assert 'importlib.util.find_spec("regmlp") is None' in text, (
        f"{path.name}: the install cell must install only when regmlp is missing")
    match = INSTALL.search(text)
    assert match, f"{path.name}: no `%pip install \"regmlp @ git+URL\"` in the install cell"
    assert match["url"] == repository_url(), (
        f"{path.name}: installs from {match['url']}, but _config.yml's repository is "
        f"{repository_url()}")


def test_repository_url_is_the_books_github_repository():
    url = repository_url()
    assert re.fullmatch(r"https://github\.com/[\w.-]+/[\w.-]+", url), url


IMPORTS_MYST_NB = re.compile(r"^\s*(from\s+myst_nb\b|import\s+myst_nb\b)", re.M)


@pytest.mark.parametrize("path", CHAPTERS, ids=[p.name for p in CHAPTERS])
def test_no_chapter_imports_the_book_toolchain(path):
    for cell in code_cells(path):
        text = source(cell)
        assert not IMPORTS_MYST_NB.search(text), (
            f"{path.name}: imports myst_nb, which Colab does not have; "
            "use `from regmlp.notebook import glue`")
        for name in ("sphinx", "jupyter_book", "nbval", "pytest"):
            assert not re.search(rf"^\s*(from|import)\s+{name}\b", text, re.M), (
                f"{path.name}: imports {name}, which only the book build has")


def test_the_myst_nb_check_catches_a_direct_import():
    # The check above must fail on the import it exists for.
    assert IMPORTS_MYST_NB.search("import numpy as np\nfrom myst_nb import glue\n")
    assert IMPORTS_MYST_NB.search("import myst_nb")
    assert not IMPORTS_MYST_NB.search("from regmlp.notebook import glue")


# --- the real run --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def colab_venv(tmp_path_factory) -> tuple[Path, Path]:
    """A Colab-like venv without regmlp, and the regmlp wheel built from this checkout."""
    base = tmp_path_factory.mktemp("colab")
    python = make_venv(base / "venv")
    pip_install(python, "-c", str(CONSTRAINTS), *COLAB_PACKAGES, *runtime_dependencies())
    wheels = base / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "--quiet", "-w", str(wheels), str(ROOT)], check=True)
    (wheel,) = wheels.glob("regmlp-*.whl")
    return python, wheel


def kernelspec(python: Path, where: Path) -> Path:
    """A kernelspec named ``colab`` that starts ``python``'s ipykernel; return its folder."""
    spec = where / "kernels" / "colab"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Colab-like", "language": "python"}))
    return where


@needs_reader_envs
def test_every_chapter_runs_in_a_colab_like_venv(colab_venv, tmp_path, monkeypatch):
    nbclient = pytest.importorskip("nbclient")
    nbformat = pytest.importorskip("nbformat")
    python, wheel = colab_venv
    have = installed(python)
    assert "regmlp" not in have, "the venv must start without regmlp"
    assert not (have.keys() & {"myst-nb", "jupyter-book", "sphinx"}), sorted(have)

    monkeypatch.setenv("JUPYTER_PATH", str(kernelspec(python, tmp_path / "jupyter")))
    outside = tmp_path / "reader"  # a folder outside the repository
    outside.mkdir()
    assert ROOT not in outside.resolve().parents
    env = clean_env(python)

    for i, path in enumerate(CHAPTERS):
        nb = nbformat.read(path, as_version=4)
        if i == 0:
            # The first chapter installs regmlp through its own install cell,
            # from the wheel instead of the repository (no network here).
            cell = next(c for c in nb.cells if INSTALL.search(c.source))
            cell.source, n = INSTALL.subn(
                f'%pip install --quiet "regmlp @ {wheel.as_uri()}"', cell.source)
            assert n == 1
        copy = outside / path.name
        nbformat.write(nb, copy)
        client = nbclient.NotebookClient(
            nb, kernel_name="colab", timeout=900,
            resources={"metadata": {"path": str(outside)}})
        try:
            client.execute(env=env)
        except nbclient.exceptions.CellExecutionError as exc:
            pytest.fail(f"{path.name} fails in a Colab-like environment:\n{exc}")
        errors = [o for c in nb.cells if c.cell_type == "code"
                  for o in c.get("outputs", []) if o.get("output_type") == "error"]
        assert not errors, f"{path.name}: {errors[0]}"
        if i == 0:
            have = installed(python)
            assert have.get("regmlp") == package_version(), (
                "the install cell did not install regmlp")

    # regmlp came from the wheel, not from this checkout.
    where = subprocess.run([str(python), "-c", "import regmlp; print(regmlp.__file__)"],
                           cwd=outside, env=env, check=True, capture_output=True,
                           text=True).stdout.strip()
    assert str(python.parents[1]) in where and str(ROOT) not in where, where
    shutil.rmtree(outside / "wandb", ignore_errors=True)
