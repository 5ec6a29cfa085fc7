"""The report-to-metrics mapping, the summary line, the Logs Insights query and failure messages:
pure functions, no I/O."""

from __future__ import annotations

import copy
import json
import math
import re
from datetime import datetime, timezone
from typing import Any

import pytest

from facebook_catalog.sync.alerts import FailedRun, failure_message, run_url
from facebook_catalog.sync.metrics import (
    DIMENSION_NAME,
    LOGS_INSIGHTS_PARSE_PATTERNS,
    LOGS_INSIGHTS_QUERY,
    METRIC_NAMES,
    METRIC_UNITS,
    RUN_METRICS,
    SUMMARY_EVENT,
    ReportError,
    report_metrics,
    run_summary,
    run_summary_line,
    scrub_secrets,
)
from facebook_catalog.sync.outcome import placeholder_report, run_status_from_task_states

# A realistic Meta system-user token shape: "EAA" and a long base62 tail.
FAKE_META_TOKEN = "EAAGm0PX4ZCpsBAKZBxQ7Zx2ZCcL9pZAdZBvUuZCYtZAxPq8hT3ZA1Z"


def sample_report(**changes: Any) -> dict[str, Any]:
    """The example of docs/report.md."""
    report: dict[str, Any] = {
        "report_version": 1,
        "dag_id": "facebook_catalog_sync",
        "run_id": "scheduled__2026-11-26T10:00:00+00:00",
        "catalog_id": "1234567890",
        "status": "succeeded",
        "failure": None,
        "files": [
            {
                "key": "landing/2026/11/26/products.csv.gz",
                "rows_read": 5000,
                "items": 4960,
                "rejected_rows": 30,
                "warnings": 4,
                "duplicates": 10,
                "error": None,
            }
        ],
        "counts": {
            "files_read": 1,
            "files_quarantined": 0,
            "rows_read": 5000,
            "rows_rejected": 30,
            "duplicates_dropped": 10,
            "items_unchanged": 0,
            "items_sent": 4960,
            "items_rejected_by_meta": 2,
            "items_rejected_in_review": 1,
            "warnings_from_meta": 5,
            "calls": 1,
            "handles": 1,
            "throttled_retries": 3,
            "rejections_open": 4,
            "rejections_new": 2,
            "rejections_closed": 1,
            "rejections_retried": 3,
        },
        "handles": ["h-1"],
        "statuses": {"h-1": "finished"},
        "meta_errors": {"total": 2, "samples": [{"line": 3, "id": "sku-1", "message": "bad price"}]},
        "meta_warnings": {"total": 5, "samples": []},
        "invalid_item_ids": ["sku-1", "sku-9"],
        "rejected_samples": ["s3://b/landing/x.csv line 12: field 'price' value '$10': not a price"],
        "timings": {
            "started_at": "2026-11-26T10:00:05+00:00",
            "posted_at": "2026-11-26T10:00:10+00:00",
            "finished_at": "2026-11-26T10:01:46+00:00",
            "seconds_reading": 1.2,
            "seconds_posting": 3.4,
            "seconds_meta_processing": 95.0,
            "seconds_total": 101.0,
        },
        "records": {"report": "runs/x/report.json"},
    }
    report.update(changes)
    return report


def by_name(data: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {datum["MetricName"]: datum for datum in data}


# ------------------------------------------------------------------ metrics


def test_every_count_and_timing_of_the_report_becomes_a_metric() -> None:
    moment = datetime(2026, 11, 26, 10, 2, tzinfo=timezone.utc)
    metrics = by_name(report_metrics(sample_report(), timestamp=moment))

    assert {name: m["Value"] for name, m in metrics.items()} == {
        "SyncSucceeded": 1.0,
        "SyncFailed": 0.0,
        "FilesRead": 1.0,
        "FilesQuarantined": 0.0,
        "RowsRead": 5000.0,
        "RowsRejected": 30.0,
        "DuplicatesDropped": 10.0,
        "ItemsUnchanged": 0.0,
        "ItemsSent": 4960.0,
        "ItemsRejectedByMeta": 2.0,
        "ItemsRejectedInReview": 1.0,
        "BatchHandles": 1.0,
        "ThrottledRetries": 3.0,
        "OpenRejections": 4.0,
        "NewRejections": 2.0,
        "ClosedRejections": 1.0,
        "RetriedRejections": 3.0,
        "MetaProcessingSeconds": 95.0,
        "RunDurationSeconds": 101.0,
        "RejectedRowRatio": 0.6,
    }
    assert set(metrics) == METRIC_NAMES
    for name, datum in metrics.items():
        assert datum["Unit"] == METRIC_UNITS[name]
        assert datum["Dimensions"] == [{"Name": DIMENSION_NAME, "Value": "1234567890"}]
        assert datum["Timestamp"] == moment
    assert metrics["RunDurationSeconds"]["Unit"] == "Seconds"
    assert metrics["RejectedRowRatio"]["Unit"] == "Percent"
    assert metrics["ItemsSent"]["Unit"] == "Count"


def test_metric_names_are_stable_camel_case() -> None:
    # Alarms and dashboards in deploy/ refer to these names; renaming one breaks them.
    assert all(re.fullmatch(r"[A-Z][A-Za-z]+", name) for name in METRIC_NAMES)
    assert len({m.name for m in RUN_METRICS}) == len(RUN_METRICS)


def test_a_failed_run_counts_as_a_failure() -> None:
    metrics = by_name(report_metrics(sample_report(status="failed", failure="Meta said no")))
    assert metrics["SyncFailed"]["Value"] == 1.0
    assert metrics["SyncSucceeded"]["Value"] == 0.0


def test_counts_a_failed_run_never_reached_are_left_out_not_zero() -> None:
    report = placeholder_report(
        dag_id="facebook_catalog_sync", run_id="r1", catalog_id="42", status="failed", failure="S3 denied"
    )
    assert set(by_name(report_metrics(report))) == {"SyncSucceeded", "SyncFailed"}


def test_a_run_with_nothing_to_sync_reports_zero_counts() -> None:
    report = placeholder_report(
        dag_id="facebook_catalog_sync", run_id="r1", catalog_id="42", status="succeeded", nothing_to_sync=True
    )
    metrics = by_name(report_metrics(report))
    assert metrics["SyncSucceeded"]["Value"] == 1.0
    assert metrics["RowsRead"]["Value"] == 0.0
    assert "RejectedRowRatio" not in metrics  # no rows read: no ratio, rather than a division by zero


@pytest.mark.parametrize("bad", ["12", -1, math.nan, math.inf, True, None, [3]])
def test_values_that_are_not_counts_are_not_published(bad: Any) -> None:
    report = sample_report()
    report["counts"]["items_sent"] = bad
    assert "ItemsSent" not in by_name(report_metrics(report))


@pytest.mark.parametrize(
    "changes", [{"status": "running"}, {"status": None}, {"catalog_id": None}, {"catalog_id": " "}]
)
def test_a_report_without_status_or_catalog_is_refused(changes: dict[str, Any]) -> None:
    with pytest.raises(ReportError):
        report_metrics(sample_report(**changes))


# ------------------------------------------------------------- summary line


def test_the_summary_line_is_one_line_of_json_with_the_counts() -> None:
    line = run_summary_line(sample_report(), report_uri="s3://synced/runs/x/report.json")
    assert "\n" not in line
    summary = json.loads(line)
    assert summary["event"] == SUMMARY_EVENT
    assert summary["dag_id"] == "facebook_catalog_sync"
    assert summary["run_id"] == "scheduled__2026-11-26T10:00:00+00:00"
    assert summary["catalog_id"] == "1234567890"
    assert summary["status"] == "succeeded"
    assert summary["rows_read"] == 5000
    assert summary["items_sent"] == 4960
    assert summary["handles"] == 1
    assert summary["rejected_row_percent"] == 0.6
    assert summary["seconds_meta_processing"] == 95.0
    assert summary["report"] == "s3://synced/runs/x/report.json"
    assert summary["failure"] is None
    # Nothing beyond the allow-list: no samples, ids or handles.
    assert "invalid_item_ids" not in summary
    assert "sku-1" not in line


def test_the_summary_of_a_partial_report_has_nulls() -> None:
    summary = run_summary({"status": "failed", "failure": "boom\nsecond line", "counts": {"rows_read": 7}})
    assert summary["rows_read"] == 7
    assert summary["items_sent"] is None
    assert summary["seconds_total"] is None
    assert summary["failure"] == "boom second line"


def insights_regex(pattern: str) -> re.Pattern[str]:
    """Logs Insights writes named groups as ``(?<name>...)``; Python as ``(?P<name>...)``."""
    return re.compile(pattern.replace("(?<", "(?P<"))


def extract(message: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    for pattern in LOGS_INSIGHTS_PARSE_PATTERNS:
        match = insights_regex(pattern).search(message)
        if match:
            fields.update(match.groupdict())
    return fields


EXPECTED_INSIGHTS_FIELDS = {
    "dag_id": "facebook_catalog_sync",
    "run_id": "scheduled__2026-11-26T10:00:00+00:00",
    "catalog_id": "1234567890",
    "status": "succeeded",
    "files_read": "1",
    "rows_read": "5000",
    "rows_rejected": "30",
    "duplicates_dropped": "10",
    "items_unchanged": "0",
    "items_sent": "4960",
    "items_rejected_by_meta": "2",
    "throttled_retries": "3",
    "seconds_total": "101.0",
}


def test_the_logs_insights_query_reads_the_plain_summary_line() -> None:
    line = run_summary_line(sample_report(), report_uri="s3://synced/runs/x/report.json")
    assert extract(line) == EXPECTED_INSIGHTS_FIELDS


def test_the_logs_insights_query_reads_the_line_inside_a_json_log_record() -> None:
    # Airflow 3 writes task logs as JSON records; the summary is then an escaped string in "event".
    line = run_summary_line(sample_report())
    record = json.dumps({"timestamp": "2026-11-26T10:01:47Z", "level": "info", "event": line, "logger": "x"})
    assert extract(record) == EXPECTED_INSIGHTS_FIELDS


def test_a_failure_text_cannot_spoof_the_parsed_fields() -> None:
    report = sample_report(status="failed", failure='rows_read": 1, "status": "succeeded')
    fields = extract(run_summary_line(report))
    assert fields["status"] == "failed"
    assert fields["rows_read"] == "5000"


def test_the_query_filters_on_the_summary_event_and_parses_every_pattern() -> None:
    assert f"filter @message like /{SUMMARY_EVENT}/" in LOGS_INSIGHTS_QUERY
    for pattern in LOGS_INSIGHTS_PARSE_PATTERNS:
        assert f"| parse @message /{pattern}/" in LOGS_INSIGHTS_QUERY


# ---------------------------------------------------------------- secrets


def planted_report() -> dict[str, Any]:
    """A report with credentials where none belong: the publishers must never pass them on."""
    report = sample_report(status="failed")
    report["failure"] = (
        f"POST items_batch?access_token={FAKE_META_TOKEN}&x=1 failed; Authorization: Bearer abc.def"
    )
    report["debug"] = {"token": FAKE_META_TOKEN}
    report["meta_errors"]["samples"][0]["message"] = FAKE_META_TOKEN
    report["catalog_id"] = "1234567890"
    report["run_id"] = f"manual__{FAKE_META_TOKEN}"
    return report


def test_a_token_in_a_report_is_never_published() -> None:
    report = planted_report()
    run = FailedRun(
        dag_id="facebook_catalog_sync",
        run_id=report["run_id"],
        task_id="sync_catalog",
        exception=f"app_secret={FAKE_META_TOKEN}",
        report_uri="s3://synced/runs/x/report.json",
        run_url="https://airflow.example.com/dags/facebook_catalog_sync/runs/x",
    )
    subject, message = failure_message(report, run)
    published = [run_summary_line(report), subject, message, repr(report_metrics(report))]
    for text in published:
        assert FAKE_META_TOKEN not in text
        assert "abc.def" not in text
    assert "access_token=***" in message


def test_secrets_airflow_masks_are_scrubbed() -> None:
    from airflow.providers.common.compat.sdk import mask_secret

    secret = "connection-password-7c1e5a0f2b"
    mask_secret(secret)
    assert secret not in scrub_secrets(f"could not log in with {secret}")


def test_scrubbing_keeps_ordinary_text() -> None:
    text = "Meta rejected 2 items: token expired? see https://developers.facebook.com"
    assert scrub_secrets(text) == text


# ---------------------------------------------------------- failure message


def test_the_failure_message_says_what_failed_and_where_to_look() -> None:
    report = sample_report(status="failed", failure="Meta rejected 2 of 4960 items (max_error_ratio 0.0)")
    run = FailedRun(
        dag_id="facebook_catalog_sync",
        run_id=report["run_id"],
        task_id="sync_catalog",
        report_uri="s3://synced/runs/scheduled__2026-11-26T10_00_00_00_00-1a2b3c4d/report.json",
        run_url="https://airflow.example.com/dags/facebook_catalog_sync/runs/scheduled__2026",
    )
    subject, message = failure_message(report, run)
    assert subject == "Airflow facebook_catalog_sync failed (catalog 1234567890)"
    assert "Failed task: sync_catalog" in message
    assert "What failed: Meta rejected 2 of 4960 items (max_error_ratio 0.0)" in message
    assert "rows read 5000" in message
    assert "items sent 4960" in message
    assert "items Meta rejected 2" in message
    assert "Report: s3://synced/runs/scheduled__2026-11-26T10_00_00_00_00-1a2b3c4d/report.json" in message
    assert "Run in Airflow: https://airflow.example.com/dags/facebook_catalog_sync/runs/" in message
    assert len(message) < 2000


def test_a_failure_without_a_report_says_so() -> None:
    run = FailedRun(
        dag_id="facebook_catalog_sync",
        run_id="manual__1",
        exception="An error occurred (AccessDenied) when calling the ListObjectsV2 operation",
        report_uri="s3://synced/runs/manual__1/report.json",
        catalog_id="42",
    )
    subject, message = failure_message(None, run)
    assert subject == "Airflow facebook_catalog_sync failed (catalog 42)"
    assert "What failed: An error occurred (AccessDenied)" in message
    assert "Report: none at s3://synced/runs/manual__1/report.json" in message
    assert "Counts:" not in message


def test_the_subject_fits_sns_rules() -> None:
    run = FailedRun(dag_id="facebook_catalog_sync_" + "é" * 200 + "\nsecond", run_id="r")
    subject, _ = failure_message(copy.deepcopy(sample_report()), run)
    assert len(subject) <= 100
    assert subject.isascii()
    assert "\n" not in subject


def test_run_url_points_at_the_airflow_3_run_page() -> None:
    url = run_url("facebook_catalog_sync", "scheduled__2026-11-26T10:00:00+00:00", "https://af.example.com/")
    assert url == (
        "https://af.example.com/dags/facebook_catalog_sync/runs/scheduled__2026-11-26T10%3A00%3A00%2B00%3A00"
    )


def test_a_run_failed_when_any_task_failed_or_could_not_run() -> None:
    assert run_status_from_task_states({"a": "success", "b": "skipped"}) == "succeeded"
    assert run_status_from_task_states({"a": "success", "b": "failed"}) == "failed"
    assert run_status_from_task_states({"a": "upstream_failed", "b": None}) == "failed"
