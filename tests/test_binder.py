"""Binder installs regmlp editable, with what the notebooks need and nothing more.

Binder (repo2docker) runs ``pip install -r binder/requirements.txt`` from the
repository root into the kernel's environment (which has Jupyter and
ipykernel already). The fast tests read the file; the slow one (under
``make colab-test``, ``REGMLP_READER_ENVS=1``) runs that same command in a
fresh venv and checks that regmlp is the checkout's (so a reader's edits to
``regmlp/`` take effect), that no book tool came along, and that every import
of every chapter works there.
"""

from __future__ import annotations

import re
import subprocess
import tomllib

from reader_envs import (
    BOOK_TOOLCHAIN,
    CHAPTERS,
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

BINDER = ROOT / "binder"


def requirement_lines() -> list[str]:
    lines = (BINDER / "requirements.txt").read_text(encoding="utf-8").splitlines()
    return [ln.strip() for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]


def test_requirements_install_the_checkout_editable_and_nothing_else():
    lines = requirement_lines()
    assert "-e ." in lines, "binder/requirements.txt must install regmlp editable (-e .)"
    others = [ln for ln in lines if ln not in {"-e .", "-c ../constraints.txt"}]
    assert not others, f"binder/requirements.txt installs more than regmlp: {others}"
    assert (BINDER / "../constraints.txt").resolve().is_file()


def test_runtime_matches_the_package():
    runtime = (BINDER / "runtime.txt").read_text(encoding="utf-8").strip()
    assert re.fullmatch(r"python-3\.\d+", runtime), runtime
    minor = int(runtime.split(".")[1])
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    assert requires == ">=3.11" and minor >= 11, (runtime, requires)


def chapter_imports() -> list[str]:
    """Every top-level import statement of every chapter (the first line of each)."""
    found = set()
    for path in CHAPTERS:
        for cell in code_cells(path):
            text = source(cell)
            for m in re.finditer(r"^(?:from\s+([\w.]+)\s+import|import\s+([\w.]+))", text, re.M):
                found.add(m[1] or m[2])
    return sorted(found)


def test_chapter_imports_are_found():
    # The slow test below imports these; make sure it has something to import.
    names = chapter_imports()
    assert {"numpy", "matplotlib.pyplot", "regmlp"} <= set(names), names


@needs_reader_envs
def test_binder_install_is_editable_and_runs_the_chapters_imports(tmp_path):
    python = make_venv(tmp_path / "venv")
    # Binder's kernel environment already has ipykernel (and IPython).
    pip_install(python, "-c", str(ROOT / "constraints.txt"), "ipykernel")
    pip_install(python, "-r", "binder/requirements.txt", cwd=ROOT)
    have = installed(python)
    assert "regmlp" in have
    came_along = sorted(have.keys() & BOOK_TOOLCHAIN)
    assert not came_along, f"Binder installs the book's toolchain: {came_along}"
    for requirement in runtime_dependencies():
        name = re.match(r"[\w.-]+", requirement)[0].lower()
        assert name in have, f"{name} (a runtime dependency) is missing"

    env = clean_env(python)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    where = subprocess.run([str(python), "-c", "import regmlp; print(regmlp.__file__)"],
                           cwd=outside, env=env, check=True, capture_output=True,
                           text=True).stdout.strip()
    assert where == str(ROOT / "regmlp" / "__init__.py"), (
        f"regmlp is not the checkout's (not editable): {where}")

    # Every module a chapter imports, imported in that environment, and the
    # data found through the editable install.
    script = "\n".join(f"import {name}" for name in chapter_imports())
    script += ("\nfrom regmlp import load_house_prices\n"
               "assert load_house_prices().train.x.shape[1] == 33\n")
    subprocess.run([str(python), "-c", script], cwd=outside, env=env, check=True)
    subprocess.run([str(python), "-m", "pip", "check"], env=env, check=True)
