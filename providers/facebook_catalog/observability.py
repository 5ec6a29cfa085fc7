"""What a sync run tells operators: CloudWatch metrics, one JSON summary log line, failure alerts.

Everything here starts from the run report (docs/report.md). Only an allow-list of it is ever
published: counts and timings are numbers, and the few free-text fields (failure reason,
exception text, ids) pass through Airflow's secrets masker and a credential scrubber first, so a
token that leaked into a report or an exception message does not reach CloudWatch or SNS.

The metric names below are the ones the CloudWatch alarms and dashboard in
``deploy/storage-alerting.yaml`` use; a test keeps the two in step.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import quote

if TYPE_CHECKING:
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

log = logging.getLogger(__name__)

DEFAULT_NAMESPACE = "FacebookCatalogSync"
DIMENSION_NAME = "CatalogId"
DEFAULT_TOPIC_ARN_VARIABLE = "facebook_catalog_sns_topic_arn"
SUMMARY_EVENT = "facebook_catalog_sync_summary"

RunStatus = Literal["succeeded", "failed"]
RUN_STATUSES: tuple[RunStatus, ...] = ("succeeded", "failed")

# PutMetricData takes at most 1,000 data points per call.
_MAX_DATA_PER_CALL = 1000
_SNS_SUBJECT_LIMIT = 100
_REASON_LIMIT = 500


@dataclass(frozen=True)
class RunMetric:
    """One CloudWatch metric taken from a number in the report."""

    name: str
    section: Literal["counts", "timings"]
    field: str
    unit: Literal["Count", "Seconds", "Percent"]


RUN_METRICS: tuple[RunMetric, ...] = (
    RunMetric("FilesRead", "counts", "files_read", "Count"),
    RunMetric("FilesQuarantined", "counts", "files_quarantined", "Count"),
    RunMetric("RowsRead", "counts", "rows_read", "Count"),
    RunMetric("RowsRejected", "counts", "rows_rejected", "Count"),
    RunMetric("DuplicatesDropped", "counts", "duplicates_dropped", "Count"),
    RunMetric("ItemsUnchanged", "counts", "items_unchanged", "Count"),
    RunMetric("ItemsSent", "counts", "items_sent", "Count"),
    RunMetric("ItemsRejectedByMeta", "counts", "items_rejected_by_meta", "Count"),
    RunMetric("BatchHandles", "counts", "handles", "Count"),
    RunMetric("ThrottledRetries", "counts", "throttled_retries", "Count"),
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

# The summary line carries these report fields, in this order (missing ones as null).
SUMMARY_COUNT_FIELDS: tuple[str, ...] = (
    "files_read",
    "files_quarantined",
    "rows_read",
    "rows_rejected",
    "duplicates_dropped",
    "items_unchanged",
    "items_sent",
    "items_rejected_by_meta",
    "warnings_from_meta",
    "calls",
    "handles",
    "throttled_retries",
)
SUMMARY_TIMING_FIELDS: tuple[str, ...] = (
    "seconds_reading",
    "seconds_posting",
    "seconds_meta_processing",
    "seconds_total",
)


class ReportError(ValueError):
    """The report lacks what a metric or message needs (status, catalog id)."""


# ------------------------------------------------------------------ secrets


_CREDENTIAL_ASSIGNMENT = re.compile(
    r"(?i)\b(access_token|appsecret_proof|app_secret|client_secret|api_key|password|secret|token)"
    r"(\\?[\"']?\s*[:=]\s*\\?[\"']?)"
    r"[^\s\"'&,;}\\]+"
)
_BEARER = re.compile(r"(?i)\b(bearer\s+)[A-Za-z0-9._~+/=-]+")
# Meta user, page and system-user access tokens start with "EAA" and are long base62 strings.
_META_TOKEN = re.compile(r"(?<![A-Za-z0-9])EAA[A-Za-z0-9]{20,}")


def scrub_secrets(text: str) -> str:
    """``text`` with anything Airflow masks, and anything shaped like a credential, replaced by ***."""
    from airflow.providers.common.compat.sdk import redact

    masked = str(redact(text))
    masked = _CREDENTIAL_ASSIGNMENT.sub(r"\1\2***", masked)
    masked = _BEARER.sub(r"\1***", masked)
    return _META_TOKEN.sub("***", masked)


def _clean_text(value: Any, limit: int) -> str:
    """One line, scrubbed, at most ``limit`` characters."""
    text = scrub_secrets(" ".join(str(value).split()))
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _optional_text(value: Any, limit: int) -> str | None:
    return None if value is None or value == "" else _clean_text(value, limit)


# ------------------------------------------------------------------ metrics


def _number(value: Any, where: str) -> float | None:
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


def _section(report: Mapping[str, Any], name: str) -> Mapping[str, Any]:
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
    return _clean_text(catalog_id, 255)


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
        value = _number(
            _section(report, metric.section).get(metric.field), f"{metric.section}.{metric.field}"
        )
        if value is not None:
            data.append(datum(metric.name, value))
    counts = _section(report, "counts")
    rows_read = _number(counts.get("rows_read"), "counts.rows_read")
    rows_rejected = _number(counts.get("rows_rejected"), "counts.rows_rejected")
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
    report: Mapping[str, Any],
    namespace: str,
    aws_conn_id: str | None = "aws_default",
    region_name: str | None = None,
    timestamp: datetime | None = None,
) -> int:
    """Put the report's metrics into CloudWatch under ``namespace``; return how many were put.

    Goes through the Amazon provider's AwsBaseHook, so the AWS connection decides credentials,
    region and endpoint, as for every other AWS call the DAG makes.
    """
    from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook

    namespace = _validated_namespace(namespace)
    data = report_metrics(report, timestamp=timestamp)
    client = AwsBaseHook(
        aws_conn_id=aws_conn_id, client_type="cloudwatch", region_name=region_name
    ).get_conn()
    for start in range(0, len(data), _MAX_DATA_PER_CALL):
        client.put_metric_data(Namespace=namespace, MetricData=data[start : start + _MAX_DATA_PER_CALL])
    log.info("Published %d metrics to CloudWatch namespace %s", len(data), namespace)
    return len(data)


# ------------------------------------------------------------- summary line


def run_summary(report: Mapping[str, Any], report_uri: str | None = None) -> dict[str, Any]:
    """The summary line's fields: ids, status, every count and timing (null when unknown)."""
    counts = _section(report, "counts")
    timings = _section(report, "timings")
    status = report.get("status")
    summary: dict[str, Any] = {
        "event": SUMMARY_EVENT,
        "dag_id": _optional_text(report.get("dag_id"), 250),
        "run_id": _optional_text(report.get("run_id"), 250),
        "catalog_id": _optional_text(report.get("catalog_id"), 255),
        "status": status if status in RUN_STATUSES else None,
    }
    for field in SUMMARY_COUNT_FIELDS:
        value = _number(counts.get(field), f"counts.{field}")
        summary[field] = None if value is None else int(value)
    rows_read, rows_rejected = summary["rows_read"], summary["rows_rejected"]
    summary["rejected_row_percent"] = (
        round(100.0 * rows_rejected / rows_read, 3) if rows_read and rows_rejected is not None else None
    )
    for field in SUMMARY_TIMING_FIELDS:
        summary[field] = _number(timings.get(field), f"timings.{field}")
    summary["report"] = _optional_text(report_uri, 1024)
    # Free text last, so the Logs Insights parse patterns never match inside it.
    summary["failure"] = _optional_text(report.get("failure"), _REASON_LIMIT)
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


# ----------------------------------------------------------- failure alerts


@dataclass(frozen=True)
class FailedRun:
    """What Airflow knows about a failed run, apart from the report."""

    dag_id: str
    run_id: str
    task_id: str | None = None
    exception: str | None = None
    report_uri: str | None = None
    run_url: str | None = None
    catalog_id: str | None = None


_COUNT_PHRASES: tuple[tuple[str, str], ...] = (
    ("files_read", "files read"),
    ("files_quarantined", "files quarantined"),
    ("rows_read", "rows read"),
    ("rows_rejected", "rows rejected"),
    ("duplicates_dropped", "duplicates dropped"),
    ("items_unchanged", "unchanged items skipped"),
    ("items_sent", "items sent"),
    ("items_rejected_by_meta", "items Meta rejected"),
    ("handles", "batch handles"),
    ("throttled_retries", "throttled retries"),
)


def _subject(text: str) -> str:
    """SNS subjects: printable ASCII on one line, at most 100 characters."""
    ascii_text = "".join(c if " " <= c <= "~" else "?" for c in " ".join(text.split()))
    if len(ascii_text) > _SNS_SUBJECT_LIMIT:
        ascii_text = ascii_text[: _SNS_SUBJECT_LIMIT - 3] + "..."
    return ascii_text


def failure_message(report: Mapping[str, Any] | None, run: FailedRun) -> tuple[str, str]:
    """A short, human (subject, message) for a failed run; nothing in it is a secret."""
    report = report or {}
    catalog_id = _optional_text(report.get("catalog_id") or run.catalog_id, 64)
    dag_id = _clean_text(run.dag_id, 250)
    subject = _subject(f"Airflow {dag_id} failed" + (f" (catalog {catalog_id})" if catalog_id else ""))
    reason = _optional_text(report.get("failure"), _REASON_LIMIT) or _optional_text(
        run.exception, _REASON_LIMIT
    )

    lines = [f"The Airflow DAG {dag_id} failed.", "", f"Run: {_clean_text(run.run_id, 250)}"]
    if catalog_id:
        lines.append(f"Catalog: {catalog_id}")
    if run.task_id:
        lines.append(f"Failed task: {_clean_text(run.task_id, 250)}")
    lines.append(f"What failed: {reason or 'no reason was recorded; see the task logs'}")
    counts = _section(report, "counts")
    phrases = [
        f"{label} {int(value)}"
        for field, label in _COUNT_PHRASES
        if (value := _number(counts.get(field), f"counts.{field}")) is not None
    ]
    if phrases:
        lines.append("Counts: " + ", ".join(phrases))
    if run.report_uri and report:
        lines.append(f"Report: {_clean_text(run.report_uri, 1024)}")
    elif run.report_uri:
        lines.append(
            f"Report: none at {_clean_text(run.report_uri, 1024)} (the run stopped before writing it)"
        )
    if run.run_url:
        lines.append(f"Run in Airflow: {_clean_text(run.run_url, 1024)}")
    lines += [
        "",
        "Files of a failed run stay under landing/ and are picked up by the next run;",
        "files that could not be read as a feed are under quarantine/ with an .error.json beside them.",
    ]
    return subject, "\n".join(lines)


def publish_failure_alert(
    topic_arn: str | None,
    subject: str,
    message: str,
    aws_conn_id: str | None = "aws_default",
    region_name: str | None = None,
) -> str | None:
    """Publish to the SNS topic through the Amazon provider's SnsHook; the message id, or None when
    no topic is configured (alerts are off)."""
    if not topic_arn or not topic_arn.strip():
        log.info("No SNS topic configured; failure alert not sent")
        return None
    from airflow.providers.amazon.aws.hooks.sns import SnsHook

    hook = SnsHook(aws_conn_id=aws_conn_id, region_name=region_name)
    # Scrubbed again: callers may build their own message.
    response = hook.publish_to_target(
        target_arn=topic_arn.strip(), message=scrub_secrets(message), subject=_subject(scrub_secrets(subject))
    )
    message_id = str(response["MessageId"])
    log.info("Failure alert sent to %s (message %s)", topic_arn, message_id)
    return message_id


# ------------------------------------------------------------ run records


def load_run_report(
    s3_hook: S3Hook, synced_bucket: str, run_id: str, runs_prefix: str = "runs/"
) -> tuple[dict[str, Any] | None, str]:
    """The run's report.json (None when the run wrote none) and its s3:// URI.

    The location is RunRecords': ``s3://<synced bucket>/<runs prefix><sanitized run id>/report.json``.
    """
    from botocore.exceptions import ClientError

    from facebook_catalog.landing_zone import RunRecords

    records = RunRecords(s3_hook, synced_bucket, run_id, runs_prefix)
    uri = records.uri("report.json")
    try:
        response = s3_hook.get_conn().get_object(Bucket=synced_bucket, Key=records.key("report.json"))
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "NotFound"):
            return None, uri
        raise
    try:
        report = json.loads(response["Body"].read().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        log.warning("The report at %s is not JSON (%s); going on without it", uri, error)
        return None, uri
    return (report if isinstance(report, dict) else None), uri


def run_url(dag_id: str, run_id: str, base_url: str | None = None) -> str:
    """The run's page in the Airflow 3 UI (``[api] base_url``)."""
    if base_url is None:
        from airflow.providers.common.compat.sdk import conf

        base_url = str(conf.get("api", "base_url", fallback="http://localhost:8080/"))
    return f"{base_url.rstrip('/')}/dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}"


def run_status_from_task_states(task_states: Mapping[str, str | None]) -> RunStatus:
    """A run failed if any of its tasks failed or could not run because an upstream failed."""
    failed = {"failed", "upstream_failed"}
    return "failed" if any(str(state) in failed for state in task_states.values()) else "succeeded"


# ------------------------------------------------------------- callback


def _context_value(context: Mapping[str, Any], *path: str) -> Any:
    value: Any = context
    for name in path:
        if value is None:
            return None
        value = value.get(name) if isinstance(value, Mapping) else getattr(value, name, None)
    return value


_ALERT_SETTINGS = frozenset({"synced_bucket", "runs_prefix", "aws_conn_id", "catalog_id"})


class SyncFailureAlert:
    """A DAG's (or task's) ``on_failure_callback`` that sends a short summary of a failed run to SNS.

    Airflow 3 runs a DAG's failure callback in the DAG processor, with a context holding ``dag``,
    ``run_id``, ``reason`` and, when Airflow knows the last task, the task context (``ti``,
    ``dag_run``, ``params``); a task's failure callback also gets ``exception``.

    Where the report is (synced bucket, runs prefix), the AWS connection and the catalog id are the
    sync DAG's settings (facebook_catalog.sync_settings: run params, then Variables
    ``facebook_catalog_<name>``, then defaults), read when the callback runs; an argument given
    here wins. The topic is ``topic_arn`` or the Variable named ``topic_arn_variable``; with
    neither set, alerts are off. The callback never raises: failing to alert is logged and must not
    hide why the run failed.
    """

    def __init__(
        self,
        *,
        topic_arn: str | None = None,
        topic_arn_variable: str | None = DEFAULT_TOPIC_ARN_VARIABLE,
        synced_bucket: str | None = None,
        runs_prefix: str | None = None,
        aws_conn_id: str | None = None,
        catalog_id: str | None = None,
    ) -> None:
        self.topic_arn = topic_arn
        self.topic_arn_variable = topic_arn_variable
        self.overrides = {
            name: value
            for name, value in (
                ("synced_bucket", synced_bucket),
                ("runs_prefix", runs_prefix),
                ("aws_conn_id", aws_conn_id),
                ("catalog_id", catalog_id),
            )
            if value
        }

    def __repr__(self) -> str:
        return f"{type(self).__name__}(topic_arn_variable={self.topic_arn_variable!r})"

    @staticmethod
    def variable(key: str) -> str | None:
        from facebook_catalog.compat import get_variable

        return get_variable(key)

    def settings(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """The few sync settings the alert needs, looked up as the DAG looks them up. Only these: an
        unrelated bad setting (say poll_interval) must not silence the alert."""
        from facebook_catalog.sync_settings import resolve_sync_settings

        return resolve_sync_settings({**params, **self.overrides}, self.variable, names=_ALERT_SETTINGS)

    def __call__(self, context: Mapping[str, Any]) -> str | None:
        try:
            return self._alert(context)
        except Exception:
            log.exception("The facebook_catalog failure alert could not be sent")
            return None

    def _alert(self, context: Mapping[str, Any]) -> str | None:
        topic_arn = self.topic_arn or (
            self.variable(self.topic_arn_variable) if self.topic_arn_variable else None
        )
        if not topic_arn:
            log.info("Failure alerts are off: no topic_arn and no Variable %s", self.topic_arn_variable)
            return None
        params = _context_value(context, "params")
        settings = self.settings(params if isinstance(params, Mapping) else {})
        dag_id = str(
            _context_value(context, "dag", "dag_id") or _context_value(context, "dag_run", "dag_id") or ""
        )
        run_id = str(context.get("run_id") or _context_value(context, "dag_run", "run_id") or "")

        report: dict[str, Any] | None = None
        report_uri: str | None = None
        if settings["synced_bucket"] and run_id:
            try:
                from airflow.providers.amazon.aws.hooks.s3 import S3Hook

                report, report_uri = load_run_report(
                    S3Hook(aws_conn_id=settings["aws_conn_id"]),
                    settings["synced_bucket"],
                    run_id,
                    settings["runs_prefix"],
                )
            except Exception:
                # The alert matters more than its details: send it without the report.
                log.exception("Could not read the run report from s3://%s", settings["synced_bucket"])

        exception = context.get("exception")
        reason = context.get("reason")
        run = FailedRun(
            dag_id=dag_id or "unknown DAG",
            run_id=run_id or "unknown run",
            task_id=_context_value(context, "ti", "task_id"),
            exception=str(exception) if exception else (str(reason) if reason else None),
            report_uri=report_uri,
            run_url=run_url(dag_id, run_id) if dag_id and run_id else None,
            catalog_id=settings["catalog_id"] or None,
        )
        subject, message = failure_message(report, run)
        return publish_failure_alert(topic_arn, subject, message, aws_conn_id=settings["aws_conn_id"])


def make_failure_callback(
    topic_arn_variable: str | None = DEFAULT_TOPIC_ARN_VARIABLE, **kwargs: Any
) -> SyncFailureAlert:
    """``on_failure_callback=make_failure_callback()`` for the sync DAG; see :class:`SyncFailureAlert`."""
    return SyncFailureAlert(topic_arn_variable=topic_arn_variable, **kwargs)


def observe_run(
    report: Mapping[str, Any],
    namespace: str | None,
    aws_conn_id: str | None = "aws_default",
    report_uri: str | None = None,
    logger: logging.Logger | None = None,
) -> int:
    """Log the run's summary line and publish its metrics (when ``namespace`` is set); return the
    number of metrics published."""
    (logger or log).info("%s", run_summary_line(report, report_uri))
    if not namespace:
        return 0
    return publish_run_metrics(report, namespace, aws_conn_id=aws_conn_id)


def placeholder_report(
    *,
    dag_id: str,
    run_id: str,
    catalog_id: str,
    status: RunStatus,
    failure: str | None = None,
    nothing_to_sync: bool = False,
) -> dict[str, Any]:
    """A report-shaped record for a run that wrote no report.json: one that found nothing to sync
    (all counts 0) or one that failed before it read a file (counts unknown)."""
    counts = dict.fromkeys(SUMMARY_COUNT_FIELDS, 0) if nothing_to_sync else {}
    return {
        "dag_id": dag_id,
        "run_id": run_id,
        "catalog_id": catalog_id,
        "status": status,
        "failure": failure,
        "counts": counts,
        "timings": {},
    }
