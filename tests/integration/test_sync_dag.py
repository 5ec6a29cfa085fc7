"""The hourly sync DAG through real Airflow, a moto S3 server and the Graph API emulator.

DESIGN.md's rules of trust are the acceptance criteria: nothing is lost, bad input is named and
kept, files arriving mid-run stay, failures leave landing untouched for the next run.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from facebook_catalog.emulator import EmulatorConfig, EmulatorServer
from facebook_catalog.storage.landing_zone import LandingZone
from facebook_catalog.sync import ledger
from tests.fixtures.airflow import DagRunResult
from tests.fixtures.hostile import load_corpus

pytestmark = pytest.mark.integration

DAG_ID = "facebook_catalog_sync"
CATALOG = "8800"
TOKEN = "EAAsync-test-token-5b7e"
APP_SECRET = "sync-app-secret-a1c3"
HEADER = "id,title,description,link,image_link,availability,price,brand\n"


def row(pid: str, title: str, price: str = "25000", availability: str = "in stock") -> str:
    return (
        f'{pid},"{title}","Description of {title}",https://shop.example.com/{pid},'
        f"https://cdn.example.com/{pid}.jpg,{availability},{price},Acme\n"
    )


@pytest.fixture
def emulator_config() -> EmulatorConfig:
    return EmulatorConfig(
        access_tokens=(TOKEN,),
        app_secret=APP_SECRET,
        processing_seconds=1.0,
        throttle_regain_minutes=0,
    )


@pytest.fixture
def sync_env(monkeypatch: pytest.MonkeyPatch, emulator: EmulatorServer, s3_buckets: Any) -> dict[str, Any]:
    """Connections and Variables as a deployment would set them, pointed at local servers."""
    monkeypatch.setenv(
        "AIRFLOW_CONN_FACEBOOK_CATALOG_DEFAULT",
        json.dumps(
            {
                "conn_type": "facebook_catalog",
                "host": emulator.url,
                "password": TOKEN,
                "extra": {"catalog_id": CATALOG, "app_secret": APP_SECRET},
            }
        ),
    )
    variables = {
        "landing_bucket": s3_buckets.landing,
        "synced_bucket": s3_buckets.synced,
        "poll_interval": "1",
        "retry_backoff_seconds": "0.05",
        "max_throttle_wait_seconds": "1",
    }
    for name, value in variables.items():
        monkeypatch.setenv(f"AIRFLOW_VAR_FACEBOOK_CATALOG_{name.upper()}", value)
    return {"buckets": s3_buckets, "emulator": emulator}


def put(s3: Any, key: str, body: str | bytes) -> None:
    data = body.encode() if isinstance(body, str) else body
    s3.hook.get_conn().put_object(Bucket=s3.landing, Key=key, Body=data)


def keys(s3: Any, bucket: str, prefix: str) -> list[str]:
    return sorted(s3.hook.list_keys(bucket_name=bucket, prefix=prefix) or [])


def read(s3: Any, bucket: str, key: str) -> bytes:
    return s3.hook.get_conn().get_object(Bucket=bucket, Key=key)["Body"].read()


def report_of(s3: Any, run_id: str | None = None) -> dict[str, Any]:
    reports = [
        json.loads(read(s3, s3.synced, k)) for k in keys(s3, s3.synced, "runs/") if k.endswith("report.json")
    ]
    if run_id is not None:
        reports = [r for r in reports if r["run_id"] == run_id]
    (report,) = reports
    return report


def items_batch_calls(emulator: EmulatorServer) -> list[dict[str, Any]]:
    return [c for c in emulator.calls() if c["endpoint"] == "items_batch"]


def test_two_files_overlapping_ids_later_values_win_and_both_are_archived(
    sync_env: dict[str, Any], run_dag: Callable[..., DagRunResult]
) -> None:
    s3, emulator = sync_env["buckets"], sync_env["emulator"]
    put(
        s3,
        "landing/2026/11/26/10-00.csv",
        HEADER + row("p1", "Blue Jeans") + row("p2", "قميص قطني") + row("p3", "Old"),
    )
    time.sleep(1.1)  # S3 LastModified has one-second resolution; the later file must sort later
    put(
        s3,
        "landing/2026/11/26/10-30.csv",
        HEADER + row("p3", "New title", "30000.50") + row("p4", "Shoes", "12 USD") + row("p5", "Bad", "$10"),
    )

    result = run_dag(DAG_ID)

    assert result.state == "success", result.output[-4000:]
    catalog = emulator.items(CATALOG)
    assert sorted(catalog) == ["p1", "p2", "p3", "p4"]
    assert catalog["p3"]["title"] == "New title"
    assert catalog["p3"]["price"] == "30000.50 IQD"
    assert catalog["p2"]["title"] == "قميص قطني"
    assert catalog["p4"]["price"] == "12 USD"
    assert catalog["p1"]["condition"] == "new"
    assert keys(s3, s3.landing, "landing/") == []
    assert keys(s3, s3.landing, "archive/") == [
        "archive/2026/11/26/10-00.csv",
        "archive/2026/11/26/10-30.csv",
    ]

    report = report_of(s3)
    assert report["status"] == "succeeded"
    assert report["counts"] == {
        "files_read": 2,
        "files_quarantined": 0,
        "rows_read": 6,
        "rows_rejected": 1,
        "duplicates_dropped": 1,
        "items_unchanged": 0,
        "items_confirmed": 4,
        "items_sent": 4,
        "items_rejected_by_meta": 0,
        "items_rejected_in_review": 0,
        "items_unreviewed": 0,
        "warnings_from_meta": 0,
        "calls": 1,
        "handles": 1,
        "throttled_retries": 0,
        "rejections_open": 1,  # p5, rejected by the feed: open in the item ledger with its reason
        "rejections_new": 0,
        "rejections_closed": 0,
        "rejections_retried": 0,
    }
    assert list(report["statuses"].values()) == ["finished"]
    # The payload is stored exactly as sent: same bytes as the emulator received.
    (payload_key,) = report["records"]["payloads"]
    stored = read(s3, s3.synced, payload_key)
    (call,) = items_batch_calls(emulator)
    assert hashlib.sha256(stored).hexdigest() == call["payload_sha256"]
    assert "قميص قطني".encode() in stored
    rejected = list(
        csv.DictReader(io.StringIO(read(s3, s3.synced, report["records"]["rejected_rows"]).decode()))
    )
    assert [(r["line"], r["field"], r["value"]) for r in rejected] == [("4", "price", "$10")]
    assert rejected[0]["source"].endswith("landing/2026/11/26/10-30.csv")
    assert '"event": "facebook_catalog_sync_summary"' in result.output
    # The teardown published the run's metrics to CloudWatch (moto), per catalog.
    from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook

    cloudwatch = AwsBaseHook(aws_conn_id="aws_default", client_type="cloudwatch").get_conn()
    metrics = cloudwatch.list_metrics(Namespace="FacebookCatalogSync")["Metrics"]
    published = {
        m["MetricName"] for m in metrics if m["Dimensions"] == [{"Name": "CatalogId", "Value": CATALOG}]
    }
    assert {
        "ItemsSent",
        "RowsRejected",
        "DuplicatesDropped",
        "SyncSucceeded",
        "MetaProcessingSeconds",
    } <= published


def test_nothing_in_landing_makes_no_call(
    sync_env: dict[str, Any], run_dag: Callable[..., DagRunResult]
) -> None:
    result = run_dag(DAG_ID)
    assert result.state == "success"
    assert result.task_states["snapshot_landing"] == "skipped"
    assert result.task_states["sync_catalog"] == "skipped"
    assert "No Graph API call was made" in result.output
    assert sync_env["emulator"].calls() == []


@pytest.mark.parametrize(
    ("faults", "expected"),
    [
        ({"throttle_next": 100}, "too many calls"),
        ({"server_error_next": 100}, "Service temporarily unavailable"),
        ({"error_handles_next": 1}, "ended 'error'"),
    ],
    ids=["throttled", "5xx", "handle-error"],
)
def test_a_failed_sync_archives_nothing_and_the_next_run_catches_up(
    sync_env: dict[str, Any], run_dag: Callable[..., DagRunResult], faults: dict[str, int], expected: str
) -> None:
    s3, emulator = sync_env["buckets"], sync_env["emulator"]
    put(s3, "landing/a.csv", HEADER + row("p1", "One") + row("p2", "Two"))
    emulator.set_faults(**faults)

    failed = run_dag(DAG_ID)

    assert failed.state == "failed"
    assert failed.task_states["sync_catalog"] == "failed"
    assert failed.task_states["archive_snapshot"] == "upstream_failed"
    assert expected.lower() in failed.output.lower()
    assert keys(s3, s3.landing, "landing/") == ["landing/a.csv"]
    assert keys(s3, s3.landing, "archive/") == []
    assert report_of(s3)["status"] == "failed"

    emulator.set_faults()
    recovered = run_dag(DAG_ID)

    assert recovered.state == "success", recovered.output[-3000:]
    assert sorted(emulator.items(CATALOG)) == ["p1", "p2"]
    assert keys(s3, s3.landing, "landing/") == []
    assert keys(s3, s3.landing, "archive/") == ["archive/a.csv"]


def test_meta_never_finishing_fails_at_the_deadline_naming_the_handle(
    sync_env: dict[str, Any], run_dag: Callable[..., DagRunResult], monkeypatch: pytest.MonkeyPatch
) -> None:
    s3, emulator = sync_env["buckets"], sync_env["emulator"]
    monkeypatch.setenv("AIRFLOW_VAR_FACEBOOK_CATALOG_TIMEOUT_MINUTES", "0.05")
    put(s3, "landing/a.csv", HEADER + row("p1", "One"))
    emulator.set_faults(stuck_handles_next=1)

    result = run_dag(DAG_ID)

    assert result.state == "failed"
    assert "before the deadline; still pending" in result.output
    report = report_of(s3)
    assert report["status"] == "failed"
    assert report["pending_handles"] == report["handles"]
    assert keys(s3, s3.landing, "landing/") == ["landing/a.csv"]


def test_a_file_arriving_during_the_run_stays_in_landing(
    sync_env: dict[str, Any], run_dag: Callable[..., DagRunResult]
) -> None:
    s3, emulator = sync_env["buckets"], sync_env["emulator"]
    put(s3, "landing/first.csv", HEADER + row("p1", "One"))

    def upload_once_meta_has_the_batch() -> None:
        deadline = time.time() + 60
        while time.time() < deadline and not items_batch_calls(emulator):
            time.sleep(0.05)
        put(s3, "landing/late.csv", HEADER + row("p9", "Late"))

    uploader = threading.Thread(target=upload_once_meta_has_the_batch)
    uploader.start()
    result = run_dag(DAG_ID)
    uploader.join()

    assert result.state == "success", result.output[-3000:]
    assert keys(s3, s3.landing, "landing/") == ["landing/late.csv"]
    assert keys(s3, s3.landing, "archive/") == ["archive/first.csv"]
    assert "p9" not in emulator.items(CATALOG)


class CrashBeforeDelete(LandingZone):
    """Dies right after copying to archive, before deleting from landing."""

    def _delete_if_unchanged(self, obj: Any) -> bool:
        raise SystemExit("simulated crash between copy and delete")


def test_a_crash_between_copy_and_delete_is_repaired_by_the_next_run(
    sync_env: dict[str, Any], run_dag: Callable[..., DagRunResult]
) -> None:
    s3, emulator = sync_env["buckets"], sync_env["emulator"]
    put(s3, "landing/a.csv", HEADER + row("p1", "One"))
    zone = CrashBeforeDelete(s3.hook, s3.landing)
    with pytest.raises(SystemExit):
        zone.archive(zone.snapshot())
    assert keys(s3, s3.landing, "") == ["archive/a.csv", "landing/a.csv"]

    result = run_dag(DAG_ID)

    assert result.state == "success"
    assert keys(s3, s3.landing, "") == ["archive/a.csv"]
    assert "Repaired a crashed run" in result.output
    assert emulator.calls() == []  # the file had been synced already: nothing is sent again


def test_hostile_corpus_good_rows_reach_the_catalog_bad_rows_are_recorded(
    sync_env: dict[str, Any], run_dag: Callable[..., DagRunResult], tmp_path: Path
) -> None:
    s3, emulator = sync_env["buckets"], sync_env["emulator"]
    cases = load_corpus(tmp_path)
    assert len(cases) >= 30
    for index, case in enumerate(cases):
        put(s3, f"landing/corpus/{index:03d}-{case.path.name}", case.path.read_bytes())
        time.sleep(0.02)

    result = run_dag(DAG_ID)

    # Files that are not a feed are quarantined and fail the run, after the rest was synced.
    assert result.task_states["sync_catalog"] == "success", result.output[-4000:]
    assert result.task_states["archive_snapshot"] == "failed"
    catalog = emulator.items(CATALOG)
    for case in cases:
        for good_id in case.good_ids:
            assert good_id in catalog, f"{case.name}: good row {good_id} did not reach the catalog"
    report = report_of(s3)
    rejected = list(
        csv.DictReader(io.StringIO(read(s3, s3.synced, report["records"]["rejected_rows"]).decode()))
    )
    for index, case in enumerate(cases):
        source = f"landing/corpus/{index:03d}-{case.path.name}"
        if case.file_error:
            assert keys(s3, s3.landing, f"quarantine/corpus/{index:03d}-") != [], case.name
            continue
        recorded = {(int(r["line"]), r["field"]) for r in rejected if r["source"].endswith(source)}
        for problem in case.rejected:
            assert (problem.line, problem.field) in recorded, f"{case.name}: {problem} not recorded"
    quarantined = keys(s3, s3.landing, "quarantine/")
    file_errors = [c for c in cases if c.file_error]
    assert len([k for k in quarantined if k.endswith(".error.json")]) == len(file_errors)
    assert keys(s3, s3.landing, "landing/") == []
    assert "could not be read as a feed and were moved to quarantine" in result.output


def test_no_token_or_secret_is_stored_anywhere(
    sync_env: dict[str, Any], run_dag: Callable[..., DagRunResult], airflow_db: Path
) -> None:
    s3 = sync_env["buckets"]
    put(s3, "landing/a.csv.gz", gzip.compress((HEADER + row("p1", "One") + row("p2", "Bad", "-5")).encode()))
    result = run_dag(DAG_ID)
    assert result.state == "success", result.output[-3000:]

    secrets = [TOKEN, APP_SECRET]
    haystacks: dict[str, str] = {"task output": result.output}
    for bucket in (s3.landing, s3.synced):
        for key in keys(s3, bucket, ""):
            haystacks[f"s3://{bucket}/{key}"] = read(s3, bucket, key).decode("utf-8", "replace")
    for path in (airflow_db / "logs").rglob("*") if (airflow_db / "logs").exists() else []:
        if path.is_file():
            haystacks[str(path)] = path.read_text("utf-8", "replace")
    from airflow.models.renderedtifields import RenderedTaskInstanceFields
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        for x in session.query(XComModel).filter_by(dag_id=DAG_ID, run_id=result.run_id):
            haystacks[f"xcom {x.task_id}/{x.key}"] = json.dumps(x.value, default=str)
        for r in session.query(RenderedTaskInstanceFields).filter_by(dag_id=DAG_ID, run_id=result.run_id):
            haystacks[f"rendered {r.task_id}"] = json.dumps(r.rendered_fields, default=str)
    assert any(k.startswith("xcom sync_catalog") for k in haystacks)
    assert any(k.startswith("rendered sync_catalog") for k in haystacks)
    assert any("report.json" in k for k in haystacks)
    for where, text in haystacks.items():
        for secret in secrets:
            assert secret not in text, f"a secret was found in {where}"


def test_change_detection_sends_only_what_changed_and_retries_what_meta_rejected(
    sync_env: dict[str, Any], run_dag: Callable[..., DagRunResult], monkeypatch: pytest.MonkeyPatch
) -> None:
    s3, emulator = sync_env["buckets"], sync_env["emulator"]
    monkeypatch.setenv("AIRFLOW_VAR_FACEBOOK_CATALOG_MAX_ERROR_RATIO", "0.5")
    hour = HEADER + row("p1", "One") + row("p2", "Two") + row("p3", "Three")
    emulator.set_faults(reject_item_ids=["p3"])  # Meta refuses p3 this hour

    put(s3, "landing/h1.csv", hour)
    first = run_dag(DAG_ID)
    assert first.state == "success", first.output[-3000:]
    assert sorted(emulator.items(CATALOG)) == ["p1", "p2"]
    report = report_of(s3, first.run_id)
    assert report["counts"]["items_sent"] == 3
    assert report["counts"]["items_confirmed"] == 2
    assert report["invalid_item_ids"] == ["p3"]

    # An hour later, the same rows again: p1 and p2 are unchanged; p3, which Meta rejected, is
    # due for its first retry (after 1 h) and sent again.
    emulator.set_faults()
    monkeypatch.setattr(ledger, "utc_now", lambda: int(time.time()) + 3600)
    put(s3, "landing/h1-again.csv", hour)
    second = run_dag(DAG_ID)
    assert second.state == "success", second.output[-3000:]
    counts = report_of(s3, second.run_id)["counts"]
    assert (counts["items_sent"], counts["items_unchanged"], counts["items_confirmed"]) == (1, 2, 1)
    assert sorted(emulator.items(CATALOG)) == ["p1", "p2", "p3"]

    # Nothing changed at all: zero items sent, no items_batch call.
    calls_before = len(items_batch_calls(emulator))
    put(s3, "landing/h2.csv", hour)
    third = run_dag(DAG_ID)
    assert third.state == "success"
    assert len(items_batch_calls(emulator)) == calls_before
    assert report_of(s3, third.run_id)["counts"]["items_unchanged"] == 3
    assert keys(s3, s3.landing, "landing/") == []

    # One price changes: exactly one item is sent.
    put(s3, "landing/h3.csv", HEADER + row("p1", "One") + row("p2", "Two", "99000") + row("p3", "Three"))
    fourth = run_dag(DAG_ID)
    assert fourth.state == "success"
    assert report_of(s3, fourth.run_id)["counts"]["items_sent"] == 1
    assert emulator.items(CATALOG)["p2"]["price"] == "99000 IQD"
    (last_call,) = items_batch_calls(emulator)[calls_before:]
    assert last_call["record_count"] == 1

    # full_sync sends everything regardless.
    put(s3, "landing/h4.csv", hour)
    fifth = run_dag(DAG_ID, {"full_sync": True})
    assert fifth.state == "success"
    assert report_of(s3, fifth.run_id)["counts"]["items_sent"] == 3
    manifest = json.loads(read(s3, s3.synced, f"ledger/{CATALOG}/manifest.json"))
    assert manifest["items"] == 3


def cron_expression(timetable: Any) -> str | None:
    """The cron a DAG's timetable runs on (None for asset-only), from its fields, not its repr."""
    time_part = getattr(timetable, "timetable", timetable)  # AssetOrTimeSchedule wraps its time part
    if hasattr(time_part, "serialize"):  # Airflow 3.0: the core timetable classes
        return time_part.serialize().get("expression")
    return getattr(time_part, "expression", None)  # 3.1+: airflow.sdk's timetables


@pytest.mark.parametrize("mode", ["hourly", "asset", "asset_or_hourly"])
def test_the_sync_can_run_hourly_or_on_the_ingestion_dags_landing_asset(
    mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow.sdk import Asset

    from tests.fixtures.airflow import REPO_ROOT, load_dag

    monkeypatch.setenv("FACEBOOK_CATALOG_SYNC_SCHEDULE", mode)
    monkeypatch.setenv("FACEBOOK_CATALOG_LANDING_BUCKET", "shop-landing")
    sync = load_dag(REPO_ROOT / "dags" / "facebook_catalog_sync.py", DAG_ID)
    ingest = load_dag(REPO_ROOT / "dags" / "catalog_ingest_products.py", "catalog_ingest_products")
    landing = Asset(uri="s3://shop-landing/landing/")
    (outlet,) = [o for task in ingest.tasks for o in task.outlets]
    assert outlet == landing
    condition = getattr(sync.timetable, "asset_condition", None)
    assert (condition == landing) == (mode != "hourly")
    expression = cron_expression(sync.timetable)
    assert (expression is not None) == (mode != "asset")
    if expression is not None:
        # What the cron means, not how this Airflow spells it (3.2 stores "0 * * * *" as "@hourly").
        from croniter import croniter

        times = croniter(expression, datetime(2025, 1, 1, 10, 30, tzinfo=timezone.utc))
        assert [times.get_next(datetime) for _ in range(2)] == [
            datetime(2025, 1, 1, 11, tzinfo=timezone.utc),
            datetime(2025, 1, 1, 12, tzinfo=timezone.utc),
        ]
