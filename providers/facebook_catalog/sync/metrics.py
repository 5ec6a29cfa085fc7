"""What a sync run tells operators in CloudWatch: metrics and one JSON summary log line.

Everything here starts from the run report (docs/report.md). Only an allow-list of it is ever
published: counts and timings are numbers, and the few free-text fields (failure reason, ids)
pass through :func:`scrub_secrets` first, so a token that leaked into a report or an exception
message does not reach CloudWatch.

The metric names below are the ones the CloudWatch alarms and dashboard in
``deploy/storage-alerting.yaml`` use; a test keeps the two in step. The CloudWatch client is
passed in (the DAG builds it through the Amazon provider's hook).
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Literal

from facebook_catalog.sync.outcome import RUN_COUNTS, RUN_STATUSES, SUMMARY_TIMINGS, RunStatus

log = logging.getLogger(__name__)

DEFAULT_NAMESPACE = "FacebookCatalogSync"
DIMENSION_NAME = "CatalogId"
SUMMARY_EVENT = "facebook_catalog_sync_summary"

# PutMetricData takes at most 1,000 data points per call.
_MAX_DATA_PER_CALL = 1000


@dataclass(frozen=True)
class RunMetric:
    """One CloudWatch metric taken from a number in the report."""

    name: str
    section: Literal["counts", "timings"]
    field: str
    unit: Literal["Count", "Seconds", "Percent"]


RUN_METRICS: tuple[RunMetric, ...] = (
    *(RunMetric(c.metric, "counts", c.name, "Count") for c in RUN_COUNTS if c.metric),
    RunMetric("MetaProcessingSeconds", "timings", "seconds_meta_processing", "Seconds"),
    RunMetric("RunDurationSeconds", "timings", "seconds_total", "Seconds"),
)

# Published for every run, 1 or 0, so alarms can count failures and notice missing successes.
SYNC_SUCCEEDED = "SyncSucceeded"
SYNC_FAILED = "SyncFailed"
# rows_rejected / rows_read in percent; only when rows were read.
REJECTED_ROW_RATIO = "RejectedRowRatio"
METRIC_UNITS: dict[str, str] = {
    **{metric.name: metric.unit for metric in RUN_METRICS},
    SYNC_SUCCEEDED: "Count",
    SYNC_FAILED: "Count",
    REJECTED_ROW_RATIO: "Percent",
}
METRIC_NAMES: frozenset[str] = frozenset(METRIC_UNITS)
# The daily reconcile's metric (facebook_catalog_reconcile): missing + stale + unknown items.
DRIFTED_ITEMS = "DriftedItems"
RECONCILE_METRIC_NAMES: frozenset[str] = frozenset({DRIFTED_ITEMS})
#: Every metric the package publishes (the sync's per run, the reconcile's per day).
PUBLISHED_METRIC_NAMES: frozenset[str] = METRIC_NAMES | RECONCILE_METRIC_NAMES


# The summary line carries these report fields, in this order (missing ones as null).
SUMMARY_COUNT_FIELDS: tuple[str, ...] = tuple(c.name for c in RUN_COUNTS if c.in_summary)
SUMMARY_TIMING_FIELDS: tuple[str, ...] = SUMMARY_TIMINGS


class ReportError(ValueError):
    """The report lacks what a metric or message needs (status, catalog id)."""


# ------------------------------------------------------------------ text


_CREDENTIAL_ASSIGNMENT = re.compile(
    r"(?i)\b(access_token|appsecret_proof|app_secret|client_secret|api_key|password|secret|token)"
    r"(\\?[\"']?\s*[:=]\s*\\?[\"']?)"
    r"[^\s\"'&,;}\\]+"
)
_BEARER = re.compile(r"(?i)\b(bearer\s+)[A-Za-z0-9._~+/=-]+")
# Meta user, page and system-user access tokens start with "EAA" and are long base62 strings.
_META_TOKEN = re.compile(r"(?<![A-Za-z0-9])EAA[A-Za-z0-9]{20,}")


REASON_LIMIT = 500


def scrub_secrets(text: str) -> str:
    """``text`` with anything Airflow masks, and anything shaped like a credential, replaced by ***."""
    # The one place sync/ reaches into Airflow: the masker is process state (the secrets the hooks
    # registered with mask_secret), not an object a caller could pass in.
    from airflow.providers.common.compat.sdk import redact

    masked = str(redact(text))
    masked = _CREDENTIAL_ASSIGNMENT.sub(r"\1\2***", masked)
    masked = _BEARER.sub(r"\1***", masked)
    return _META_TOKEN.sub("***", masked)


def clean_text(value: Any, limit: int) -> str:
    """One line, scrubbed, at most ``limit`` characters."""
    text = scrub_secrets(" ".join(str(value).split()))
    return text if len(text) <= limit else text[: limit - 3] + "..."


def optional_text(value: Any, limit: int) -> str | None:
    return None if value is None or value == "" else clean_text(value, limit)


# ------------------------------------------------------------------ metrics


def number(value: Any, where: str) -> float | None:
    """A finite, non-negative number from the report, else None (logged: the report is malformed)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        log.warning("Report field %s is not a number (%r); not published", where, type(value).__name__)
        return None
    number = float(value)
    if not math.isfinite(number) or number < 0:
        log.warning("Report field %s is %r; not published", where, value)
        return None
    return number


def section(report: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    section = report.get(name)
    return section if isinstance(section, Mapping) else {}


def report_status(report: Mapping[str, Any]) -> RunStatus:
    status = report.get("status")
    if status not in RUN_STATUSES:
        raise ReportError(f"report status must be one of {RUN_STATUSES}, not {status!r}")
    return "succeeded" if status == "succeeded" else "failed"


def report_catalog_id(report: Mapping[str, Any]) -> str:
    catalog_id = report.get("catalog_id")
    if catalog_id is None or not str(catalog_id).strip():
        raise ReportError("report has no catalog_id: metrics are published per catalog")
    # CloudWatch dimension values: 1 to 1,024 characters.
    return clean_text(catalog_id, 255)


def report_metrics(report: Mapping[str, Any], timestamp: datetime | None = None) -> list[dict[str, Any]]:
    """The report as CloudWatch ``MetricDatum`` dicts, dimension ``CatalogId``.

    Counts or timings missing from the report (a run that failed early) are left out rather than
    published as 0; SyncSucceeded and SyncFailed are always there.
    """
    status = report_status(report)
    dimensions = [{"Name": DIMENSION_NAME, "Value": report_catalog_id(report)}]
    moment = timestamp or datetime.now(timezone.utc)

    def datum(name: str, value: float) -> dict[str, Any]:
        return {
            "MetricName": name,
            "Dimensions": dimensions,
            "Timestamp": moment,
            "Value": value,
            "Unit": METRIC_UNITS[name],
        }

    data = [
        datum(SYNC_SUCCEEDED, 1.0 if status == "succeeded" else 0.0),
        datum(SYNC_FAILED, 1.0 if status == "failed" else 0.0),
    ]
    for metric in RUN_METRICS:
        value = number(section(report, metric.section).get(metric.field), f"{metric.section}.{metric.field}")
        if value is not None:
            data.append(datum(metric.name, value))
    counts = section(report, "counts")
    rows_read = number(counts.get("rows_read"), "counts.rows_read")
    rows_rejected = number(counts.get("rows_rejected"), "counts.rows_rejected")
    if rows_read and rows_rejected is not None:
        data.append(datum(REJECTED_ROW_RATIO, round(100.0 * rows_rejected / rows_read, 3)))
    return data


def _validated_namespace(namespace: str) -> str:
    if not namespace or not namespace.strip():
        raise ValueError("the CloudWatch metric namespace must not be empty")
    if namespace.startswith("AWS/"):
        raise ValueError(f"namespace {namespace!r}: names starting with AWS/ are reserved for AWS")
    return namespace


def publish_run_metrics(
    report: Mapping[str, Any], namespace: str, cloudwatch: Any, timestamp: datetime | None = None
) -> int:
    """Put the report's metrics into CloudWatch under ``namespace``; return how many were put.

    ``cloudwatch`` is a boto3 CloudWatch client; the DAG gets it from the Amazon provider's
    AwsBaseHook, so the AWS connection decides credentials, region and endpoint, as for every other
    AWS call the DAG makes.
    """
    namespace = _validated_namespace(namespace)
    data = report_metrics(report, timestamp=timestamp)
    for start in range(0, len(data), _MAX_DATA_PER_CALL):
        cloudwatch.put_metric_data(Namespace=namespace, MetricData=data[start : start + _MAX_DATA_PER_CALL])
    log.info("Published %d metrics to CloudWatch namespace %s", len(data), namespace)
    return len(data)


def publish_reconcile_metrics(
    catalog_id: str, drifted: int, namespace: str, cloudwatch: Any, timestamp: datetime | None = None
) -> int:
    """Put the reconcile's ``DriftedItems`` (dimension ``CatalogId``) into CloudWatch."""
    namespace = _validated_namespace(namespace)
    datum = {
        "MetricName": DRIFTED_ITEMS,
        "Dimensions": [{"Name": DIMENSION_NAME, "Value": catalog_id}],
        "Timestamp": timestamp or datetime.now(timezone.utc),
        "Value": float(drifted),
        "Unit": "Count",
    }
    cloudwatch.put_metric_data(Namespace=namespace, MetricData=[datum])
    log.info("Published %s=%d to CloudWatch namespace %s", DRIFTED_ITEMS, drifted, namespace)
    return 1


# ------------------------------------------------------------- summary line


def run_summary(report: Mapping[str, Any], report_uri: str | None = None) -> dict[str, Any]:
    """The summary line's fields: ids, status, every count and timing (null when unknown)."""
    counts = section(report, "counts")
    timings = section(report, "timings")
    status = report.get("status")
    summary: dict[str, Any] = {
        "event": SUMMARY_EVENT,
        "dag_id": optional_text(report.get("dag_id"), 250),
        "run_id": optional_text(report.get("run_id"), 250),
        "catalog_id": optional_text(report.get("catalog_id"), 255),
        "status": status if status in RUN_STATUSES else None,
    }
    for field in SUMMARY_COUNT_FIELDS:
        value = number(counts.get(field), f"counts.{field}")
        summary[field] = None if value is None else int(value)
    rows_read, rows_rejected = summary["rows_read"], summary["rows_rejected"]
    summary["rejected_row_percent"] = (
        round(100.0 * rows_rejected / rows_read, 3) if rows_read and rows_rejected is not None else None
    )
    for field in SUMMARY_TIMING_FIELDS:
        summary[field] = number(timings.get(field), f"timings.{field}")
    summary["report"] = optional_text(report_uri, 1024)
    # Free text last, so the Logs Insights parse patterns never match inside it.
    summary["failure"] = optional_text(report.get("failure"), REASON_LIMIT)
    return summary


def run_summary_line(report: Mapping[str, Any], report_uri: str | None = None) -> str:
    """One line of JSON for the task log, queryable with :data:`LOGS_INSIGHTS_QUERY`."""
    return json.dumps(run_summary(report, report_uri), ensure_ascii=False)


# Summary fields the Logs Insights query extracts, and the shape of their values.
_INSIGHTS_FIELDS: tuple[tuple[str, Literal["text", "word", "integer", "number"]], ...] = (
    ("dag_id", "text"),
    ("run_id", "text"),
    ("catalog_id", "text"),
    ("status", "word"),
    ("files_read", "integer"),
    ("rows_read", "integer"),
    ("rows_rejected", "integer"),
    ("duplicates_dropped", "integer"),
    ("items_unchanged", "integer"),
    ("items_sent", "integer"),
    ("items_rejected_by_meta", "integer"),
    ("throttled_retries", "integer"),
    ("seconds_total", "number"),
)
_INSIGHTS_VALUE_PATTERNS = {
    "text": r'\\?"(?<{0}>[^"\\]+)',
    "word": r'\\?"(?<{0}>[a-z_]+)',
    "integer": r"(?<{0}>\d+)",
    "number": r"(?<{0}>[0-9.]+)",
}
# ``\\?"`` matches a quote whether the line sits in the log as is or JSON-escaped inside a
# structured log record (Airflow 3 writes task logs as JSON).
LOGS_INSIGHTS_PARSE_PATTERNS: tuple[str, ...] = tuple(
    rf'{field}\\?":\s*' + _INSIGHTS_VALUE_PATTERNS[kind].format(field) for field, kind in _INSIGHTS_FIELDS
)
LOGS_INSIGHTS_QUERY = "\n".join(
    [
        "fields @timestamp, @log",
        f"| filter @message like /{SUMMARY_EVENT}/",
        *(f"| parse @message /{pattern}/" for pattern in LOGS_INSIGHTS_PARSE_PATTERNS),
        "| display @timestamp, status, catalog_id, run_id, files_read, rows_read, rows_rejected,"
        " duplicates_dropped, items_unchanged, items_sent, items_rejected_by_meta, throttled_retries,"
        " seconds_total",
        "| sort @timestamp desc",
        "| limit 200",
    ]
)


def observe_run(
    report: Mapping[str, Any],
    namespace: str | None,
    cloudwatch: Any = None,
    report_uri: str | None = None,
    logger: logging.Logger | None = None,
) -> int:
    """Log the run's summary line and publish its metrics (when ``namespace`` is set, through the
    ``cloudwatch`` client); return the number of metrics published."""
    (logger or log).info("%s", run_summary_line(report, report_uri))
    if not namespace:
        return 0
    return publish_run_metrics(report, namespace, cloudwatch)
