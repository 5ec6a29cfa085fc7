"""The MWAA bundle installs offline, from the bundle alone, and its DAGs import.

An MWAA environment already runs Airflow and the providers AWS installs; it then runs
``pip install -r requirements.txt`` with ``--no-index --find-links /usr/local/airflow/plugins``.
This test does the same on this machine:

1. builds the bundle with ``scripts/build_mwaa_bundle.py`` (the script ``make mwaa-bundle``
   runs), targeting this interpreter's Python version, with this environment's versions as the
   constraints (they stand in for Airflow's constraints file, which MWAA reads from GitHub);
2. makes a fresh virtual environment and installs the "MWAA image" into it: Airflow and the
   providers the script assumes MWAA carries (``MWAA_PROVIDED``), at this environment's versions,
   with ``uv pip install --offline`` (uv's local cache only; ``make venv`` filled it). Nothing of
   this provider, the MySQL provider or orjson is in it;
3. installs ``requirements.txt`` with pip, ``--no-index`` and the unzipped ``plugins.zip`` as the
   only ``--find-links``: no index, no network. The constraints line is pointed at the local
   constraints file, as MWAA's points at its Airflow version's;
4. imports the bundle's DAG files with that environment's Python (Airflow's DagBag) and checks
   there is no import error.

Building the bundle downloads the dependency wheels MWAA lacks from PyPI (like CI's deploy job).
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from packaging.utils import canonicalize_name

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPT = REPO_ROOT / "scripts" / "build_mwaa_bundle.py"
UV = Path(sys.executable).parent / "uv"
PACKAGE = "airflow-provider-facebook-catalog"

DAGBAG_PROBE = """
import json, sys
from facebook_catalog.compat import dag_bag
bag = dag_bag(dag_folder=sys.argv[1])
errors = {path: str(error) for path, error in bag.import_errors.items()}
print(json.dumps({"dag_ids": sorted(bag.dag_ids), "import_errors": errors}))
"""


def _load_script_module() -> object:
    import importlib.util

    spec = importlib.util.spec_from_file_location("build_mwaa_bundle", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _offline_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "PIP_", "UV_", "VIRTUAL_ENV"))}
    env.update(
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__UNIT_TEST_MODE="False",
        PIP_NO_INDEX="1",
        PIP_DISABLE_PIP_VERSION_CHECK="1",
        # Nothing reachable through a proxy either.
        HTTP_PROXY="http://127.0.0.1:9",
        HTTPS_PROXY="http://127.0.0.1:9",
        NO_PROXY="",
    )
    return env


def run(command: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(command, capture_output=True, text=True, check=False, **kwargs)  # type: ignore[call-overload]
    assert result.returncode == 0, (
        f"{' '.join(map(str, command))} failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    )
    return result


def test_bundle_installs_offline_from_plugins_zip_and_the_dags_import(tmp_path: Path) -> None:
    python_version = f"{sys.version_info.major}.{sys.version_info.minor}"
    pins = {
        canonicalize_name(d.metadata["Name"]): d.version
        for d in importlib.metadata.distributions()
        if canonicalize_name(d.metadata["Name"]) != PACKAGE
    }
    constraints = tmp_path / "constraints.txt"
    constraints.write_text("".join(f"{name}=={version}\n" for name, version in sorted(pins.items())))

    # 1. The bundle, as `make mwaa-bundle` builds it (for this Python, with local constraints).
    bundle = tmp_path / "dist" / "mwaa"
    built = run(
        [
            sys.executable,
            str(SCRIPT),
            "--out",
            str(bundle),
            "--python-version",
            python_version,
            "--constraints",
            str(constraints),
        ],
        cwd=REPO_ROOT,
    )
    print(built.stdout)
    requirements = (bundle / "requirements.txt").read_text().splitlines()
    # The constraints that pinned the wheels travel in the DAGs folder, where MWAA reads them.
    assert (bundle / "dags" / "constraints.txt").read_text() == constraints.read_text()
    assert requirements[1:] == [
        '--constraint "/usr/local/airflow/dags/constraints.txt"',
        "--find-links /usr/local/airflow/plugins",
        "--no-index",
        f"{PACKAGE}=={importlib.metadata.version(PACKAGE)}",
    ]
    assert sorted(p.name for p in (bundle / "dags").glob("*.py")) == sorted(
        p.name for p in (REPO_ROOT / "dags").glob("*.py")
    )
    manifest = json.loads((bundle / "bundle-manifest.json").read_text())
    # Older MWAA images carry a common-compat older than the provider needs: it travels along.
    assert "apache-airflow-providers-common-compat" in manifest["bundled_dependencies"]
    with zipfile.ZipFile(bundle / "plugins.zip") as archive:
        names = archive.namelist()
        assert all("/" not in n for n in names), names  # at the root: /usr/local/airflow/plugins/*.whl
        assert manifest["package"]["wheel"] in names
        assert {info["wheel"] for info in manifest["bundled_dependencies"].values()} <= set(names)
        plugins = tmp_path / "plugins"
        archive.extractall(plugins)

    # 2. A fresh environment with what MWAA's image has: Airflow and MWAA's providers, from uv's cache.
    venv = tmp_path / "mwaa-venv"
    run([sys.executable, "-m", "venv", str(venv)])
    venv_python = venv / "bin" / "python"
    module = _load_script_module()
    provided = sorted(n for n in module.MWAA_PROVIDED if n in pins)  # type: ignore[attr-defined]
    run(
        [
            str(UV),
            "pip",
            "install",
            "--offline",
            "--quiet",
            "--python",
            str(venv_python),
            "--constraint",
            str(constraints),
            *[f"{name}=={pins[name]}" for name in provided],
        ]
    )
    home = tmp_path / "airflow-home"
    home.mkdir()
    env = _offline_env(home)
    before = run([str(venv_python), "-m", "pip", "list", "--format", "json"], env=env).stdout
    before_names = {canonicalize_name(p["name"]) for p in json.loads(before)}
    assert "apache-airflow" in before_names
    assert PACKAGE not in before_names
    missing_before = set(manifest["bundled_dependencies"]) - before_names
    assert missing_before, "the bundle should bring something MWAA lacks"

    # 3. pip install -r requirements.txt, no index, the bundle's wheels as the only source.
    local_requirements = tmp_path / "requirements.local.txt"
    local_requirements.write_text(
        "\n".join(
            f'--constraint "{constraints}"'
            if line.startswith("--constraint")
            else f"--find-links {plugins}"
            if line.startswith("--find-links")
            else line
            for line in requirements
        )
        + "\n"
    )
    installed = run(
        [
            str(venv_python),
            "-m",
            "pip",
            "install",
            "--no-index",
            "--no-cache-dir",
            "-r",
            str(local_requirements),
        ],
        env=env,
    )
    after = {
        canonicalize_name(p["name"])
        for p in json.loads(run([str(venv_python), "-m", "pip", "list", "--format", "json"], env=env).stdout)
    }
    assert PACKAGE in after, installed.stdout
    assert missing_before <= after
    run([str(venv_python), "-m", "pip", "check"], env=env)

    # 4. The DAG files import with that environment's Python, as MWAA's DAG processor imports them.
    probe = run([str(venv_python), "-c", DAGBAG_PROBE, str(bundle / "dags")], env=env)
    result = json.loads(probe.stdout.strip().splitlines()[-1])
    assert result["import_errors"] == {}
    assert {"facebook_catalog_sync", "catalog_ingest_products", "facebook_catalog_reconcile"} <= set(
        result["dag_ids"]
    )
