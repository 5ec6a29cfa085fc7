"""The daily reconcile, end to end: drift made "by hand" in the emulator is found, reported and
repaired through the real DAGs (reconcile -> ingestion in ids mode -> sync), on PostgreSQL and
MariaDB, a moto S3 server and the Graph API emulator."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable
from typing import Any

import pytest

from facebook_catalog.emulator import EmulatorServer
from facebook_catalog.feed.change_detection import id_hash
from tests.fixtures.airflow import DagRunResult
from tests.fixtures.databases import SqlDatabase
from tests.fixtures.s3 import S3Buckets
from tests.integration.test_ingest_products import (
    QUERY_VARIABLE,
    catalog_product,
    create_shop_schema,
    insert_products,
    set_stock,
    update_product,
    utc,
)
from tests.integration.test_ingest_to_sync import expected_catalog
from tests.integration.test_sync_dag import (  # fixtures: the emulator and the sync's settings
    CATALOG,
    HEADER,
    emulator_config,  # noqa: F401
    keys,
    put,
    read,
    row,
    sync_env,  # noqa: F401
)

pytestmark = pytest.mark.integration

INGEST = "catalog_ingest_products"
SYNC = "facebook_catalog_sync"
RECONCILE = "facebook_catalog_reconcile"


@pytest.fixture
def shop(
    run_dag: Callable[..., DagRunResult],
    sql_database: SqlDatabase,
    sync_env: dict[str, Any],  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> dict[str, Any]:
    """Six products ingested and synced: the emulator's catalog holds what the database holds."""
    buckets: S3Buckets = sync_env["buckets"]
    monkeypatch.setenv("FACEBOOK_CATALOG_LANDING_BUCKET", buckets.landing)
    monkeypatch.setenv("AIRFLOW_VAR_FACEBOOK_CATALOG_INGEST_QUERY", json.dumps(QUERY_VARIABLE))
    db = sql_database
    create_shop_schema(db)
    insert_products(db, [catalog_product(n) for n in range(1, 7)], at=utc(20, 9, 10))
    for n in range(1, 7):
        set_stock(db, f"sku-{n:04d}", "baghdad", 3, at=utc(20, 9, 10))
    assert run_dag(INGEST, logical_date=utc(20, 10)).state == "success"
    assert run_dag(SYNC).state == "success"
    emulator: EmulatorServer = sync_env["emulator"]
    assert emulator.items(CATALOG) == expected_catalog(db)
    return {"db": db, "emulator": emulator, "buckets": buckets}


def reconcile_report(buckets: S3Buckets) -> tuple[dict[str, Any], list[dict[str, str]]]:
    (report_key,) = [k for k in keys(buckets, buckets.synced, "reconcile/") if k.endswith("report.json")]
    report = json.loads(read(buckets, buckets.synced, report_key))
    csv_key = report_key.replace("report.json", "drifted_items.csv")
    rows = list(csv.DictReader(io.StringIO(read(buckets, buckets.synced, csv_key).decode("utf-8"))))
    return report, rows


def printed_report(out: str) -> dict[str, Any]:
    """The report the CLI printed (Airflow's own log lines may share the stream)."""
    found = re.search(r"^\{\n.*?^\}$", out, re.S | re.M)
    assert found, out
    report: dict[str, Any] = json.loads(found.group())
    return report


def triggered_ingestion_conf(result: DagRunResult) -> dict[str, Any]:
    """The conf of the ingestion run the reconcile's trigger task created."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        runs = session.query(DagRun).filter(DagRun.dag_id == INGEST, DagRun.run_id.like("manual__%")).all()
        confs = [r.conf for r in runs if r.conf and r.conf.get("mode") in ("ids", "snapshot")]
    assert confs, "the reconcile triggered no ingestion run"
    return dict(confs[-1])


def test_hand_made_drift_is_found_and_repaired_and_unknown_items_are_left_alone(
    shop: dict[str, Any], run_dag: Callable[..., DagRunResult]
) -> None:
    db, emulator, buckets = shop["db"], shop["emulator"], shop["buckets"]
    # Someone in Commerce Manager deletes one product, edits another's price; another tool adds one.
    assert emulator.delete_item(CATALOG, "sku-0002")
    emulator.edit_item(CATALOG, "sku-0003", price="1.00 IQD")
    emulator.put_item(CATALOG, "other-tool-1", **{**expected_catalog(db)["sku-0001"], "title": "Not ours"})
    # And Meta throttles the first read calls (80009): the reconcile waits them out.
    emulator.set_faults(throttle_reads_next=2)

    result = run_dag(RECONCILE)
    assert result.state == "success", result.output[-4000:]
    assert result.task_states["request_ingestion"] == "success"
    report, rows = reconcile_report(buckets)
    counts = report["counts"]
    assert (counts["missing"], counts["stale"], counts["unknown"], counts["matched"]) == (1, 1, 1, 4)
    assert counts["items_read"] == 6
    assert report["invalidated"] == 2
    by_kind = {r["kind"]: r for r in rows}
    assert by_kind["missing"]["id_hash"] == f"{id_hash('sku-0002'):016x}"
    assert by_kind["stale"]["id"] == "sku-0003"
    assert "1.00 IQD" in by_kind["stale"]["what_differs"]
    assert by_kind["unknown"]["id"] == "other-tool-1"
    reads = [c for c in emulator.calls() if c["endpoint"] == "products"]
    assert [c["error_code"] for c in reads[:2]] == [80009, 80009], reads
    assert reads[-1]["status"] == 200
    assert (report["graph_api_calls"], report["throttled_retries"]) == (3, 2)  # 2 waited out, 1 page
    assert "EAA" not in json.dumps(report)

    # The reconcile asked the ingestion for exactly the drifted items.
    conf = triggered_ingestion_conf(result)
    assert conf == {"mode": "ids", "ids": ["sku-0003"], "id_hashes": [f"{id_hash('sku-0002'):016x}"]}
    ingest = run_dag(INGEST, conf)
    assert ingest.state == "success", ingest.output[-4000:]
    assert ingest.xcom("write_changed_products")["rows"] == 2
    sync = run_dag(SYNC)
    assert sync.state == "success", sync.output[-4000:]

    catalog = emulator.items(CATALOG)
    expected = expected_catalog(db)
    assert catalog["sku-0002"] == expected["sku-0002"]  # back in the catalog
    assert catalog["sku-0003"]["price"] == expected["sku-0003"]["price"]  # the stale price repaired
    assert catalog["other-tool-1"]["title"] == "Not ours"  # reported, never deleted
    assert {k: v for k, v in catalog.items() if k != "other-tool-1"} == expected


def test_without_repair_the_ledger_is_untouched_and_nothing_is_triggered(
    shop: dict[str, Any], run_dag: Callable[..., DagRunResult]
) -> None:
    db, emulator, buckets = shop["db"], shop["emulator"], shop["buckets"]
    emulator.delete_item(CATALOG, "sku-0005")
    result = run_dag(RECONCILE, {"repair": False})
    assert result.state == "success", result.output[-4000:]
    assert result.task_states["request_ingestion"] == "skipped"
    report, _ = reconcile_report(buckets)
    assert report["counts"]["missing"] == 1
    assert report["invalidated"] == 0
    assert report["repair_request"] is None
    # A later change of another product syncs as usual; the missing one stays missing (no repair).
    update_product(db, "sku-0006", utc(20, 11, 5), price="77.00")
    assert run_dag(INGEST, logical_date=utc(20, 12)).state == "success"
    assert run_dag(SYNC).state == "success"
    assert "sku-0005" not in emulator.items(CATALOG)
    assert emulator.items(CATALOG)["sku-0006"]["price"] == "77.00 IQD"
    # Even a full snapshot does not bring it back: without the repair's invalidation the ledger
    # says Meta holds it unchanged, so the sync skips it.
    snapshot = run_dag(INGEST, {"mode": "snapshot"})
    assert snapshot.state == "success", snapshot.output[-4000:]
    written = snapshot.xcom("write_changed_products")
    assert written["rows"] == 6
    assert (
        written["key"]
        == f"landing/ingest/snapshot/{snapshot.run_id.replace(':', '_').replace('+', '_')}.csv.gz"
    )
    sync = run_dag(SYNC)
    assert sync.state == "success"
    assert "sku-0005" not in emulator.items(CATALOG)


def test_the_cli_reports_drift_and_with_repair_prints_the_ingestion_to_trigger(
    sync_env: dict[str, Any],  # noqa: F811
    run_dag: Callable[..., DagRunResult],
    capfd: pytest.CaptureFixture[str],
) -> None:
    from facebook_catalog.cli import main

    buckets: S3Buckets = sync_env["buckets"]
    emulator: EmulatorServer = sync_env["emulator"]
    put(buckets, "landing/cli.csv", HEADER + row("p1", "One") + row("p2", "Two"))
    assert run_dag(SYNC).state == "success"
    emulator.edit_item(CATALOG, "p2", price="1 IQD")
    capfd.readouterr()

    args = ["reconcile", "--catalog", CATALOG, "--synced-bucket", buckets.synced]
    assert main(args) == 0
    out, err = capfd.readouterr()
    assert printed_report(out)["counts"]["stale"] == 1
    assert "1 stale" in err
    assert "airflow dags trigger" not in err  # no repair asked for
    assert main([*args, "--repair"]) == 0
    out, err = capfd.readouterr()
    assert printed_report(out)["repair_request"] == {"mode": "ids", "ids": ["p2"], "id_hashes": []}
    assert "airflow dags trigger catalog_ingest_products --conf" in err
    assert "EAA" not in out + err
