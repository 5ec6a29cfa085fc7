# The fixtures of test_sync_dag are imported, and then named as parameters.
# ruff: noqa: F811
"""Several catalogs in one run of ``facebook_catalogs_sync``: real Airflow (dag.test()), moto S3,
the Graph API emulator. Each catalog is one mapped group; one catalog's failure holds back no
other, and the run's summary lists every catalog with its status.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from tests.fixtures.airflow import DagRunResult
from tests.integration.test_sync_dag import (  # noqa: F401 - fixtures
    CATALOG,
    HEADER,
    TOKEN,
    emulator_config,
    keys,
    put,
    read,
    row,
    sync_env,
)

pytestmark = pytest.mark.integration

DAG_ID = "facebook_catalogs_sync"
REFUSED_CATALOG = "9900"
REFUSED_TOKEN = "EAArefused-token-0c4e2a9d77"


@pytest.fixture
def two_catalogs(sync_env: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Catalog 8800 on the default connection (Iraq, Arabic); catalog 9900 (Saudi Arabia,
    English) on a connection whose token the emulator refuses."""
    monkeypatch.setenv(
        "AIRFLOW_CONN_FACEBOOK_CATALOG_SA",
        json.dumps(
            {
                "conn_type": "facebook_catalog",
                "host": sync_env["emulator"].url,
                "password": REFUSED_TOKEN,
                "extra": {"catalog_id": REFUSED_CATALOG},
            }
        ),
    )
    catalogs = [
        {"catalog_id": CATALOG, "landing_prefix": "landing/iq/", "language": "ar"},
        {
            "catalog_id": REFUSED_CATALOG,
            "landing_prefix": "landing/sa",
            "conn_id": "facebook_catalog_sa",
            "language": "en",
        },
    ]
    monkeypatch.setenv("AIRFLOW_VAR_FACEBOOK_CATALOG_CATALOGS", json.dumps(catalogs))
    return sync_env


def mapped_states(result: DagRunResult) -> dict[tuple[str, int], str | None]:
    return {
        (ti.task_id, ti.map_index): (str(getattr(ti.state, "value", ti.state)) if ti.state else None)
        for ti in result.dagrun.get_task_instances()
    }


def report_at(s3: Any, catalog_id: str, run_id: str) -> dict[str, Any]:
    (key,) = [k for k in keys(s3, s3.synced, f"runs/{catalog_id}/") if k.endswith("/report.json")]
    report: dict[str, Any] = json.loads(read(s3, s3.synced, key))
    assert report["run_id"] == run_id
    return report


def test_two_catalogs_one_refused_the_other_syncs_and_archives_and_the_summary_lists_both(
    two_catalogs: dict[str, Any], run_dag: Callable[..., DagRunResult]
) -> None:
    s3, emulator = two_catalogs["buckets"], two_catalogs["emulator"]
    put(s3, "landing/iq/10-00.csv", HEADER + row("iq-1", "قميص قطني") + row("iq-2", "حذاء"))
    put(s3, "landing/sa/10-00.csv", HEADER + row("sa-1", "Cotton shirt"))

    result = run_dag(DAG_ID)

    # The refused catalog fails the run, after the other one finished.
    assert result.state == "failed", result.output[-4000:]
    states = mapped_states(result)
    assert states[("catalog.sync_catalog", 0)] == "success"
    assert states[("catalog.archive_snapshot", 0)] == "success"
    assert states[("catalog.sync_catalog", 1)] == "failed"
    assert states[("catalog.archive_snapshot", 1)] == "upstream_failed"
    assert states[("publish_catalogs_summary", -1)] == "success"

    # The good catalog: its items in Meta's catalog, its file archived under its own prefix.
    assert sorted(emulator.items(CATALOG)) == ["iq-1", "iq-2"]
    assert emulator.items(CATALOG)["iq-1"]["title"] == "قميص قطني"
    assert keys(s3, s3.landing, "landing/iq/") == []
    assert keys(s3, s3.landing, f"archive/{CATALOG}/") == [f"archive/{CATALOG}/10-00.csv"]
    # The refused one: nothing in its catalog, its file waits in landing for the next run.
    assert emulator.items(REFUSED_CATALOG) == {}
    assert keys(s3, s3.landing, "landing/sa/") == ["landing/sa/10-00.csv"]
    assert keys(s3, s3.landing, f"archive/{REFUSED_CATALOG}/") == []

    # Each catalog has its own records and ledger.
    good = report_at(s3, CATALOG, result.run_id)
    assert (good["status"], good["catalog_id"], good["counts"]["items_sent"]) == ("succeeded", CATALOG, 2)
    refused = report_at(s3, REFUSED_CATALOG, result.run_id)
    assert refused["status"] == "failed"
    assert refused["catalog_id"] == REFUSED_CATALOG
    assert "Graph API error 190" in refused["failure"], refused["failure"]
    assert keys(s3, s3.synced, f"ledger/{CATALOG}/")
    assert keys(s3, s3.synced, "runs/") == sorted(
        keys(s3, s3.synced, f"runs/{CATALOG}/") + keys(s3, s3.synced, f"runs/{REFUSED_CATALOG}/")
    )

    # The summary lists both, with their status and language.
    summary = result.xcom("publish_catalogs_summary")
    assert summary["status"] == "failed"
    assert summary["catalogs_failed"] == [REFUSED_CATALOG]
    listed = {c["catalog_id"]: c for c in summary["catalogs"]}
    assert (listed[CATALOG]["status"], listed[CATALOG]["language"], listed[CATALOG]["items_sent"]) == (
        "succeeded",
        "ar",
        2,
    )
    assert (listed[REFUSED_CATALOG]["status"], listed[REFUSED_CATALOG]["language"]) == ("failed", "en")
    assert listed[REFUSED_CATALOG]["failure"]
    assert listed[REFUSED_CATALOG]["report"].endswith(f"runs/{REFUSED_CATALOG}/" + _run_segment(refused))
    assert REFUSED_TOKEN not in result.output
    assert TOKEN not in result.output


def _run_segment(report: dict[str, Any]) -> str:
    """The part of the report's key after the catalog's runs prefix."""
    key: str = report["records"]["report"]
    return key.split(f"runs/{report['catalog_id']}/", 1)[1]


def test_a_bad_catalogs_setting_fails_the_run_naming_the_entry_and_field(
    sync_env: dict[str, Any], run_dag: Callable[..., DagRunResult], monkeypatch: pytest.MonkeyPatch
) -> None:
    s3, emulator = sync_env["buckets"], sync_env["emulator"]
    put(s3, "landing/iq/10-00.csv", HEADER + row("iq-1", "Shirt"))
    monkeypatch.setenv(
        "AIRFLOW_VAR_FACEBOOK_CATALOG_CATALOGS",
        json.dumps([{"catalog_id": CATALOG, "landing_prefix": "landing/iq/"}, {"catalog_id": "shop-sa"}]),
    )

    result = run_dag(DAG_ID)

    assert result.state == "failed"
    assert result.task_states["check_catalogs"] == "failed"
    assert result.task_states["publish_catalogs_summary"] == "success"
    summary = result.xcom("publish_catalogs_summary")
    assert summary["status"] == "failed"
    assert "Variable facebook_catalog_catalogs, entry 1 lacks landing_prefix" in summary["failure"]
    assert summary["catalogs"] == []
    assert keys(s3, s3.landing, "landing/iq/") == ["landing/iq/10-00.csv"]
    assert [c for c in emulator.calls() if c["endpoint"] == "items_batch"] == []


def test_without_catalogs_the_run_skips_and_makes_no_graph_api_call(
    sync_env: dict[str, Any], run_dag: Callable[..., DagRunResult]
) -> None:
    result = run_dag(DAG_ID)

    assert result.state == "success", result.output[-3000:]
    assert result.task_states["check_catalogs"] == "skipped"
    assert result.xcom("publish_catalogs_summary")["catalogs"] == []
    assert sync_env["emulator"].calls() == []
