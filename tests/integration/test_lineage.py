# The fixtures of test_sync_dag are imported, and then named as parameters.
# ruff: noqa: F811
"""OpenLineage from the items batch operator, through a real run of the hourly DAG (dag.test(),
moto S3, the emulator), each in a child Python so the OpenLineage provider's plugin is loaded (or
kept out) as a deployment would: with the provider installed and a transport configured, its
listener writes the run's events, and the sync task's name the S3 objects read and the catalog;
with the provider absent, the DAG still runs and the operator reports no lineage.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.airflow import REPO_ROOT
from tests.integration.test_sync_dag import (  # noqa: F401 - fixtures
    CATALOG,
    DAG_ID,
    HEADER,
    emulator_config,
    keys,
    put,
    row,
    sync_env,
)

pytestmark = pytest.mark.integration


# Runs the hourly DAG from the DAG folder; with "absent", as if the OpenLineage provider and its
# client were not installed: Airflow's provider discovery does not see the distribution, and every
# import of them fails.
_CHILD = """
import importlib.metadata, json, os, sys
from pathlib import Path
if sys.argv[1] == "absent":
    for name in ("openlineage", "airflow.providers.openlineage"):
        sys.modules[name] = None
    import importlib_metadata
    for metadata in (importlib.metadata, importlib_metadata):
        def distributions(_installed=metadata.distributions, **kwargs):
            for dist in _installed(**kwargs):
                if (dist.metadata["Name"] or "").lower() != "apache-airflow-providers-openlineage":
                    yield dist
        metadata.distributions = distributions
from facebook_catalog.operators.items_batch import FacebookCatalogItemsBatchOperator
from tests.fixtures.airflow import load_dag, sync_dag_file_to_db
path = Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"]) / "facebook_catalog_sync.py"
dag = load_dag(path, sys.argv[2])
sync_dag_file_to_db(path)
run = dag.test()
operator = FacebookCatalogItemsBatchOperator(
    task_id="probe", s3_bucket="b", s3_keys=["k.csv"], catalog_id="1", records_bucket=None
)
print("RESULT " + json.dumps({
    "state": str(getattr(run.state, "value", run.state)),
    "lineage": repr(operator.get_openlineage_facets_on_complete(None)),
    "openlineage_loaded": any(
        m is not None and n.startswith("airflow.providers.openlineage") for n, m in sys.modules.items()
    ),
}))
"""


def run_child(mode: str, env: dict[str, str]) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, mode, DAG_ID],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert done.returncode == 0, (done.stdout[-4000:], done.stderr[-4000:])
    assert lines, done.stdout[-4000:]
    result: dict[str, Any] = json.loads(lines[-1][len("RESULT ") :])
    result["output"] = done.stdout + done.stderr
    return result


def test_the_sync_task_s_lineage_names_the_s3_objects_it_read_and_the_catalog(
    sync_env: dict[str, Any], airflow_db: Path, tmp_path: Path
) -> None:
    s3 = sync_env["buckets"]
    put(s3, "landing/a.csv", HEADER + row("p1", "Shirt"))
    put(s3, "landing/b.csv", HEADER + row("p2", "Shoes"))
    events_file = tmp_path / "openlineage.jsonl"
    env = {
        **os.environ,
        "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps(
            {"type": "file", "log_file_path": str(events_file), "append": True}
        ),
        "AIRFLOW__OPENLINEAGE__NAMESPACE": "shop-airflow",
    }

    result = run_child("installed", env)

    assert result["state"] == "success", result["output"][-4000:]
    assert result["openlineage_loaded"]
    events = [json.loads(line) for line in events_file.read_text().splitlines() if line.strip()]
    complete = [
        e for e in events if e.get("eventType") == "COMPLETE" and e["job"]["name"] == f"{DAG_ID}.sync_catalog"
    ]
    assert len(complete) == 1, [(e.get("eventType"), e.get("job", {}).get("name")) for e in events]
    (event,) = complete
    assert sorted((d["namespace"], d["name"]) for d in event["inputs"]) == [
        (f"s3://{s3.landing}", "landing/a.csv"),
        (f"s3://{s3.landing}", "landing/b.csv"),
    ]
    assert [(d["namespace"], d["name"]) for d in event["outputs"]] == [("facebook-catalog", CATALOG)]
    assert sorted(sync_env["emulator"].items(CATALOG)) == ["p1", "p2"]
    assert "EAAsync-test-token" not in events_file.read_text()


def test_without_the_openlineage_provider_the_dag_runs_and_the_operator_reports_no_lineage(
    sync_env: dict[str, Any], airflow_db: Path, tmp_path: Path
) -> None:
    s3 = sync_env["buckets"]
    put(s3, "landing/a.csv", HEADER + row("p1", "Shirt"))
    events_file = tmp_path / "openlineage.jsonl"
    env = {
        **os.environ,
        "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps(
            {"type": "file", "log_file_path": str(events_file), "append": True}
        ),
    }

    result = run_child("absent", env)

    assert result["state"] == "success", result["output"][-4000:]
    assert result["lineage"] == "None"
    assert not result["openlineage_loaded"]
    assert not events_file.exists()
    assert sorted(sync_env["emulator"].items(CATALOG)) == ["p1"]
    assert keys(s3, s3.landing, "archive/") == ["archive/a.csv"]
