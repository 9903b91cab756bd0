"""The GitHub workflows are valid and follow the publishing conventions.

Every file in ``.github/workflows/`` is validated offline against the GitHub
workflow JSON schema that ``check-jsonschema`` ships (``--builtin-schema
vendor.github-workflows``). The test and deploy workflows are then checked for
what the schema cannot see: pinned actions, least permissions, the Pages
deployment and the executed-notebook cache key.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.y*ml"))
PINNED = re.compile(r"^[\w.-]+/[\w.-]+(/[\w./-]+)?@[0-9a-f]{40}$")


def check_jsonschema() -> list[str]:
    exe = Path(sys.executable).with_name("check-jsonschema")
    if exe.exists():
        return [str(exe)]
    found = shutil.which("check-jsonschema")
    if not found:
        pytest.fail("check-jsonschema is missing: it is in the [test] extra (make venv)")
    return [found]


def load(path: Path) -> dict:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    # YAML 1.1 reads the key `on` as True.
    if True in data:
        data["on"] = data.pop(True)
    return data


def steps(workflow: dict):
    for job in workflow["jobs"].values():
        yield from job.get("steps", [])


def test_there_are_workflows():
    names = {p.name for p in WORKFLOWS}
    assert {"test.yml", "deploy.yml"} <= names, names


@pytest.mark.parametrize("path", WORKFLOWS, ids=[p.name for p in WORKFLOWS])
def test_workflow_matches_the_github_schema(path):
    result = subprocess.run(
        [*check_jsonschema(), "--builtin-schema", "vendor.github-workflows", str(path)],
        capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_schema_check_rejects_a_broken_workflow(tmp_path):
    # `runs-on` missing and a step with both `uses` and `run`: the schema must say no.
    bad = tmp_path / "bad.yml"
    bad.write_text("on: push\njobs:\n  x:\n    steps:\n      - uses: a/b@v1\n        run: ls\n")
    result = subprocess.run(
        [*check_jsonschema(), "--builtin-schema", "vendor.github-workflows", str(bad)],
        capture_output=True, text=True)
    assert result.returncode != 0


@pytest.mark.parametrize("path", WORKFLOWS, ids=[p.name for p in WORKFLOWS])
def test_actions_are_pinned_to_a_commit(path):
    for step in steps(load(path)):
        if "uses" in step:
            assert PINNED.match(step["uses"]), (
                f"{path.name}: {step['uses']} is not pinned to a full commit SHA")


@pytest.mark.parametrize("path", WORKFLOWS, ids=[p.name for p in WORKFLOWS])
def test_least_permissions(path):
    workflow = load(path)
    assert workflow.get("permissions") == {"contents": "read"}, (
        f"{path.name}: the workflow's default permissions must be `contents: read`")
    for name, job in workflow["jobs"].items():
        granted = job.get("permissions", {})
        writes = {k for k, v in granted.items() if v == "write"}
        assert writes <= {"pages", "id-token"}, f"{path.name}/{name} may write {writes}"
        if writes:
            assert not any("run" in s for s in job.get("steps", [])), (
                f"{path.name}/{name}: a job that may write runs no commands of its own")


def cache_step(workflow: dict) -> dict:
    found = [s for s in steps(workflow) if s.get("uses", "").startswith("actions/cache@")]
    assert len(found) == 1, "one actions/cache step for the executed notebooks"
    return found[0]


@pytest.mark.parametrize("name", ["test.yml", "deploy.yml"])
def test_notebook_cache_is_keyed_on_what_the_outputs_depend_on(name):
    step = cache_step(load(ROOT / ".github" / "workflows" / name))
    config = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))
    assert step["with"]["path"] == config["execute"]["cache"] == "_build/.jupyter_cache"
    key = step["with"]["key"]
    for part in ("chapters/**", "regmlp/**", "constraints.txt"):
        assert f"'{part}'" in key, f"{name}: the cache key does not hash {part}"
    assert "restore-keys" not in step["with"], (
        f"{name}: restore-keys would reuse notebooks executed with another regmlp")


def test_pull_requests_run_make_test_and_keep_the_html():
    workflow = load(ROOT / ".github" / "workflows" / "test.yml")
    assert "pull_request" in workflow["on"]
    runs = [s.get("run", "") for s in steps(workflow)]
    assert any(r.strip() == "make test" for r in runs), runs
    uploads = [s for s in steps(workflow) if s.get("uses", "").startswith(
        "actions/upload-artifact@")]
    assert uploads and uploads[0]["with"]["path"] == "_build/html"


def test_main_is_built_and_deployed_to_pages():
    workflow = load(ROOT / ".github" / "workflows" / "deploy.yml")
    assert workflow["on"]["push"]["branches"] == ["main"]
    assert workflow["concurrency"]["group"] == "pages"
    uses = [s.get("uses", "").split("@")[0] for s in steps(workflow)]
    assert "actions/upload-pages-artifact" in uses and "actions/deploy-pages" in uses
    runs = " ".join(s.get("run", "") for s in steps(workflow))
    assert "make book" in runs and "make pdf" in runs
    deploy = workflow["jobs"]["deploy"]
    assert deploy["permissions"] == {"pages": "write", "id-token": "write"}
    assert deploy["environment"]["name"] == "github-pages"
    assert deploy["needs"] == "build"
