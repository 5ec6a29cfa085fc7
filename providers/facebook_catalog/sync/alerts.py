"""Failure alerts: a short, human summary of a failed run, published to SNS.

Built from the run report (docs/report.md) and what Airflow knows about the failed run; every
free-text field passes through :func:`~facebook_catalog.sync.metrics.scrub_secrets`, so nothing in
an alert is a secret. The SNS hook is passed in; the DAG's failure callback
(:mod:`facebook_catalog.dags.callbacks`) builds it and finds the report.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from facebook_catalog.sync.metrics import (
    REASON_LIMIT,
    clean_text,
    number,
    optional_text,
    scrub_secrets,
    section,
)
from facebook_catalog.sync.outcome import RUN_COUNTS

if TYPE_CHECKING:
    from airflow.providers.amazon.aws.hooks.sns import SnsHook

log = logging.getLogger(__name__)

_SNS_SUBJECT_LIMIT = 100

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


def _subject(text: str) -> str:
    """SNS subjects: printable ASCII on one line, at most 100 characters."""
    ascii_text = "".join(c if " " <= c <= "~" else "?" for c in " ".join(text.split()))
    if len(ascii_text) > _SNS_SUBJECT_LIMIT:
        ascii_text = ascii_text[: _SNS_SUBJECT_LIMIT - 3] + "..."
    return ascii_text


def failure_message(report: Mapping[str, Any] | None, run: FailedRun) -> tuple[str, str]:
    """A short, human (subject, message) for a failed run; nothing in it is a secret."""
    report = report or {}
    catalog_id = optional_text(report.get("catalog_id") or run.catalog_id, 64)
    dag_id = clean_text(run.dag_id, 250)
    subject = _subject(f"Airflow {dag_id} failed" + (f" (catalog {catalog_id})" if catalog_id else ""))
    reason = optional_text(report.get("failure"), REASON_LIMIT) or optional_text(run.exception, REASON_LIMIT)

    lines = [f"The Airflow DAG {dag_id} failed.", "", f"Run: {clean_text(run.run_id, 250)}"]
    if catalog_id:
        lines.append(f"Catalog: {catalog_id}")
    if run.task_id:
        lines.append(f"Failed task: {clean_text(run.task_id, 250)}")
    lines.append(f"What failed: {reason or 'no reason was recorded; see the task logs'}")
    counts = section(report, "counts")
    phrases = [
        f"{count.phrase} {int(value)}"
        for count in RUN_COUNTS
        if count.phrase and (value := number(counts.get(count.name), f"counts.{count.name}")) is not None
    ]
    if phrases:
        lines.append("Counts: " + ", ".join(phrases))
    if run.report_uri and report:
        lines.append(f"Report: {clean_text(run.report_uri, 1024)}")
    elif run.report_uri:
        lines.append(
            f"Report: none at {clean_text(run.report_uri, 1024)} (the run stopped before writing it)"
        )
    if run.run_url:
        lines.append(f"Run in Airflow: {clean_text(run.run_url, 1024)}")
    lines += [
        "",
        "Files of a failed run stay under landing/ and are picked up by the next run;",
        "files that could not be read as a feed are under quarantine/ with an .error.json beside them.",
    ]
    return subject, "\n".join(lines)


def publish_failure_alert(sns: SnsHook, topic_arn: str | None, subject: str, message: str) -> str | None:
    """Publish to the SNS topic through the Amazon provider's SnsHook; the message id, or None when
    no topic is configured (alerts are off)."""
    if not topic_arn or not topic_arn.strip():
        log.info("No SNS topic configured; failure alert not sent")
        return None
    # Scrubbed again: callers may build their own message.
    response = sns.publish_to_target(
        target_arn=topic_arn.strip(), message=scrub_secrets(message), subject=_subject(scrub_secrets(subject))
    )
    message_id = str(response["MessageId"])
    log.info("Failure alert sent to %s (message %s)", topic_arn, message_id)
    return message_id


def run_url(dag_id: str, run_id: str, base_url: str) -> str:
    """The run's page in the Airflow 3 UI (``[api] base_url``)."""
    return f"{base_url.rstrip('/')}/dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}"
