"""A run's outcome: what the operator submitted, what Meta's batches ended with, and everything
derived from the two, in one place.

:class:`Submission` is what the operator's read-and-post phase produced (counts, handles,
samples, record keys: never items, tokens or secrets). :class:`Outcome` joins it with the wait's
event and derives, once each, Meta's totals, the pass/fail decision, the XCom summary and
``report.json`` (schema: docs/report.md). :data:`RUN_COUNTS` is the one list of the run's count
names; the report, the summary log line, the CloudWatch metrics and the failure alert all read it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime
from typing import Any, Literal

from facebook_catalog.hooks.graph_api import MAX_SAMPLES

REPORT_VERSION = 1

RunStatus = Literal["succeeded", "failed"]
RUN_STATUSES: tuple[RunStatus, ...] = ("succeeded", "failed")

#: Error samples in a task's failure message and its XCom summary; the report keeps as many of
#: Meta's samples as the hook reads (MAX_SAMPLES).
MESSAGE_SAMPLES = 5
REPORT_SAMPLES = MAX_SAMPLES
#: Invalid item ids in the XCom summary (the report has them all).
SUMMARY_INVALID_IDS = 100


@dataclass(frozen=True)
class RunCount:
    """One count of the report's ``counts``, and where else it appears."""

    name: str
    #: How the failure alert says it; None: the alert leaves it out.
    phrase: str | None
    #: Its CloudWatch metric; None: not published.
    metric: str | None
    #: Whether the one-line JSON summary carries it.
    in_summary: bool = True


#: The report's counts, in the report's order.
RUN_COUNTS: tuple[RunCount, ...] = (
    RunCount("files_read", "files read", "FilesRead"),
    RunCount("files_quarantined", "files quarantined", "FilesQuarantined"),
    RunCount("rows_read", "rows read", "RowsRead"),
    RunCount("rows_rejected", "rows rejected", "RowsRejected"),
    RunCount("duplicates_dropped", "duplicates dropped", "DuplicatesDropped"),
    RunCount("items_unchanged", "unchanged items skipped", "ItemsUnchanged"),
    RunCount("items_confirmed", None, None, in_summary=False),
    RunCount("items_sent", "items sent", "ItemsSent"),
    RunCount("items_rejected_by_meta", "items Meta rejected", "ItemsRejectedByMeta"),
    # Meta's review after the batches finished (image fetch, policy): README, "Meta's review".
    RunCount("items_rejected_in_review", "items Meta rejected in review", "ItemsRejectedInReview"),
    RunCount("items_unreviewed", None, None, in_summary=False),
    RunCount("warnings_from_meta", None, None),
    RunCount("calls", None, None),
    RunCount("handles", "batch handles", "BatchHandles"),
    RunCount("throttled_retries", "throttled retries", "ThrottledRetries"),
    # The item ledger (README, "Change detection and the item ledger"): after the run.
    RunCount("rejections_open", "open rejections", "OpenRejections"),
    RunCount("rejections_new", "new rejections", "NewRejections"),
    RunCount("rejections_closed", "rejections closed", "ClosedRejections"),
    RunCount("rejections_retried", "rejections retried", "RetriedRejections"),
)
#: The counts that reading the feed produces (the rest come from posting and from Meta).
READ_COUNTS: tuple[str, ...] = (
    "files_read",
    "files_quarantined",
    "rows_read",
    "rows_rejected",
    "duplicates_dropped",
)
#: The report's timings that the summary line carries.
SUMMARY_TIMINGS: tuple[str, ...] = (
    "seconds_reading",
    "seconds_posting",
    "seconds_meta_processing",
    "seconds_total",
)


@dataclass
class Submission:
    """What the operator read and posted before it waited for Meta. Passes through XCom as
    :meth:`to_dict` (primitives only), so the resumed task needs no state of its own."""

    catalog_id: str | None = None
    started_at: str | None = None
    posted_at: str | None = None
    seconds_reading: float | None = None
    seconds_posting: float | None = None
    calls: int = 0
    items_sent: int = 0
    #: Items of calls Meta ingested nothing from (no handle): all rejected.
    items_not_ingested: int = 0
    handles: list[str] = field(default_factory=list)
    #: Per call, in sending order: [handle or None, how many of the sent items it carried].
    call_handles: list[list[Any]] = field(default_factory=list)
    validation_errors: int = 0
    validation_samples: list[Any] = field(default_factory=list)
    throttled_retries: int = 0
    transient_retries: int = 0
    payloads: list[str] = field(default_factory=list)
    #: One entry per landing file (key, rows_read, items, rejected_rows, warnings, duplicates, error).
    files: list[dict[str, Any]] = field(default_factory=list)
    #: READ_COUNTS, then items_unchanged and items_confirmed as change detection adds them.
    counts: dict[str, int] = field(default_factory=dict)
    rejected_samples: list[str] = field(default_factory=list)
    #: Record keys in the synced-products bucket (rejected_rows, sent_item_hashes).
    records: dict[str, str] = field(default_factory=dict)
    change_detection: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> Submission:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in (data or {}).items() if k in known})


@dataclass(frozen=True)
class MetaTotals:
    """Meta's error and warning totals over the batches, and the items Meta rejected: the items
    with errors plus every item of a call Meta ingested nothing from."""

    errors: int
    warnings: int
    rejected_items: int


@dataclass
class Outcome:
    """A run's submission, the event its wait ended with (``status``, ``batches``, ...) and,
    when the run read Meta's review back, the review wait's event."""

    submission: Submission
    event: Mapping[str, Any] = field(default_factory=dict)
    review: Mapping[str, Any] | None = None

    @property
    def review_rejections(self) -> dict[str, tuple[str, str | None]]:
        """Item id -> (message, error type) of the items Meta's review rejected."""
        rejected = (self.review or {}).get("rejected") or {}
        return {
            str(item_id): (str(found.get("message") or "rejected in Meta's review"), found.get("code"))
            for item_id, found in rejected.items()
            if isinstance(found, Mapping)
        }

    @property
    def batches(self) -> list[dict[str, Any]]:
        return list(self.event.get("batches") or [])

    @property
    def totals(self) -> MetaTotals:
        batches = self.batches
        errors = sum(int(b.get("errors_total_count") or 0) for b in batches)
        warnings = sum(int(b.get("warnings_total_count") or 0) for b in batches)
        return MetaTotals(errors, warnings, errors + int(self.submission.items_not_ingested or 0))

    @property
    def throttled_retries(self) -> int:
        """Throttled retries of the posting, of the wait and of the review's reads."""
        return (
            int(self.submission.throttled_retries or 0)
            + int(self.event.get("throttled_retries") or 0)
            + int((self.review or {}).get("throttled_retries") or 0)
        )

    def review_section(self) -> dict[str, Any] | None:
        """The report's ``review``: what reading Meta's review back found (docs/report.md)."""
        if self.review is None:
            return None
        review = self.review
        return {
            "status": review.get("status"),
            "message": review.get("message"),
            "checked": int(review.get("checked") or 0),
            "rejected": len(self.review_rejections),
            "unreviewed": int(review.get("unreviewed_count") or 0),
            "missing": int(review.get("missing_count") or 0),
            "not_checked": int(review.get("not_checked") or 0),
            "deadline_passed": bool(review.get("deadline_passed")),
            "read_calls": int(review.get("read_calls") or 0),
            "waited_in_trigger": bool(review.get("waited_in_trigger")),
            "samples": [
                {"id": item_id, "message": message, "code": code}
                for item_id, (message, code) in list(self.review_rejections.items())[:REPORT_SAMPLES]
            ],
            "unreviewed_samples": list(review.get("unreviewed_samples") or []),
        }

    @property
    def statuses(self) -> dict[str, str]:
        return {b["handle"]: b["status"] for b in self.batches}

    def failure(self, max_error_ratio: float) -> str | None:
        """Why the run fails, or None: a systemic failure (:meth:`systemic_failure`), or too many
        rejections (:meth:`rejection_failure`)."""
        return self.systemic_failure() or self.rejection_failure(max_error_ratio)

    def systemic_failure(self) -> str | None:
        """The wait failed, or a batch ended ``error`` or ``canceled``: the snapshot's items are
        not accounted for, so its files stay in landing."""
        batches = self.batches
        if self.event.get("status") != "success":
            reason, message = self.event.get("reason"), self.event.get("message")
            return f"Waiting for Meta failed ({reason}): {message}" + _samples_text(batches)
        failed = [b for b in batches if b["status"] in ("error", "canceled")]
        if failed:
            return (
                f"{len(failed)} of {len(batches)} batches did not complete: "
                + ", ".join(f"{b['handle']} ended {b['status']!r}" for b in failed)
                + ". Items of these batches may not have been applied; the next run sends them again."
                + _samples_text(failed)
            )
        return None

    def rejection_failure(self, max_error_ratio: float) -> str | None:
        """Meta rejected more than ``max_error_ratio`` of the items sent. With the item ledger,
        only new rejections count: an item already open as rejected, re-sent and rejected again
        with the same content, is not new (README, "Change detection and the item ledger")."""
        items_sent = self.submission.items_sent
        counts = self.submission.counts or {}
        with_ledger = "rejections_new" in counts
        rejected = int(counts["rejections_new"]) if with_ledger else self.totals.rejected_items
        if items_sent and rejected / items_sent > max_error_ratio:
            what = "new rejections: Meta rejected" if with_ledger else "Meta rejected"
            return (
                f"{what} {rejected} of {items_sent} items ({rejected / items_sent:.2%}), more than "
                f"max_error_ratio={max_error_ratio:.2%}. Handles: {', '.join(self.submission.handles)}."
                + _samples_text(self.batches)
            )
        return None

    def summary(self) -> dict[str, Any]:
        """The task's XCom return value: counts, handles, statuses, samples and ids, never items."""
        submission, totals, batches = self.submission, self.totals, self.batches
        return {
            "catalog_id": submission.catalog_id,
            "calls": submission.calls,
            "items_sent": submission.items_sent,
            "handles": submission.handles,
            "statuses": self.statuses,
            "items_rejected_by_meta": totals.rejected_items,
            "items_rejected_in_review": len(self.review_rejections),
            "errors_total_count": totals.errors,
            "warnings_total_count": totals.warnings,
            "error_samples": [e for b in batches for e in b.get("errors") or []][:MESSAGE_SAMPLES],
            "invalid_item_ids": _invalid_ids(batches)[:SUMMARY_INVALID_IDS],
            "throttled_retries": self.throttled_retries,
            "files": submission.files,
            "counts": submission.counts,
        }

    def report(
        self, *, dag_id: str, run_id: str, failure: str | None, finished_at: datetime, report_key: str
    ) -> dict[str, Any]:
        """``report.json`` (docs/report.md)."""
        submission, totals, batches = self.submission, self.totals, self.batches
        read_counts = submission.counts or {}
        derived = {
            "items_sent": int(submission.items_sent or 0),
            "items_rejected_by_meta": totals.rejected_items,
            "items_rejected_in_review": len(self.review_rejections),
            "items_unreviewed": int((self.review or {}).get("unreviewed_count") or 0),
            "warnings_from_meta": totals.warnings,
            "calls": int(submission.calls or 0),
            "handles": len(submission.handles),
            "throttled_retries": self.throttled_retries,
        }
        counts = {c.name: derived.get(c.name, int(read_counts.get(c.name) or 0)) for c in RUN_COUNTS}
        started_at = _parse(submission.started_at)
        posted_at = _parse(submission.posted_at)
        records: dict[str, Any] = dict(submission.records or {})
        records["payloads"] = list(submission.payloads)
        records["report"] = report_key
        return {
            "report_version": REPORT_VERSION,
            "dag_id": dag_id,
            "run_id": run_id,
            "catalog_id": submission.catalog_id,
            "status": "failed" if failure else "succeeded",
            "failure": failure,
            "files": list(submission.files),
            "counts": counts,
            "handles": list(submission.handles),
            "statuses": self.statuses,
            "pending_handles": list(self.event.get("pending_handles") or []),
            "meta_errors": {
                "total": totals.errors,
                "samples": [e for b in batches for e in b.get("errors") or []][:REPORT_SAMPLES],
            },
            "meta_warnings": {
                "total": totals.warnings,
                "samples": [w for b in batches for w in b.get("warnings") or []][:REPORT_SAMPLES],
            },
            "validation_samples": list(submission.validation_samples),
            "invalid_item_ids": _invalid_ids(batches),
            "rejected_samples": list(submission.rejected_samples),
            "review": self.review_section(),
            "timings": {
                "started_at": started_at.isoformat() if started_at else None,
                "posted_at": posted_at.isoformat() if posted_at else None,
                "finished_at": finished_at.isoformat(),
                "seconds_reading": submission.seconds_reading,
                "seconds_posting": submission.seconds_posting,
                "seconds_meta_processing": round((finished_at - posted_at).total_seconds(), 3)
                if posted_at and submission.handles
                else None,
                "seconds_total": round((finished_at - started_at).total_seconds(), 3) if started_at else None,
            },
            "change_detection": submission.change_detection,
            "records": records,
        }


def run_status_from_task_states(task_states: Mapping[str, str | None]) -> RunStatus:
    """A run failed if any of its tasks failed or could not run because an upstream failed."""
    failed = {"failed", "upstream_failed"}
    return "failed" if any(str(state) in failed for state in task_states.values()) else "succeeded"


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
    counts = {c.name: 0 for c in RUN_COUNTS if c.in_summary} if nothing_to_sync else {}
    return {
        "dag_id": dag_id,
        "run_id": run_id,
        "catalog_id": catalog_id,
        "status": status,
        "failure": failure,
        "counts": counts,
        "timings": {},
    }


def final_report(
    report: dict[str, Any] | None,
    task_states: Mapping[str, str | None],
    *,
    dag_id: str,
    run_id: str,
    catalog_id: str,
    snapshot_taken: bool,
) -> dict[str, Any]:
    """The report as the run ended: the status comes from the run's task states, so a failure
    after the report was written (archiving, quarantine) is still reported as a failure."""
    status = run_status_from_task_states(task_states)
    if report is None:
        return placeholder_report(
            dag_id=dag_id,
            run_id=run_id,
            catalog_id=catalog_id,
            status=status,
            failure=None if status == "succeeded" else f"task states: {dict(task_states)}",
            nothing_to_sync=not snapshot_taken and status == "succeeded",
        )
    if status == "failed" and report.get("status") != "failed":
        failed_tasks = sorted(t for t, state in task_states.items() if state in ("failed", "upstream_failed"))
        return {**report, "status": "failed", "failure": f"failed after the sync: {', '.join(failed_tasks)}"}
    return report


def _invalid_ids(batches: list[dict[str, Any]]) -> list[str]:
    return [i for b in batches for i in b.get("ids_of_invalid_requests") or []]


def _samples_text(batches: list[dict[str, Any]]) -> str:
    samples = [
        f"{b['handle']}: item {e.get('id', '?')} (line {e.get('line', '?')}): {e.get('message', '')}"
        for b in batches
        for e in b.get("errors") or []
    ][:MESSAGE_SAMPLES]
    return (" Sample errors: " + "; ".join(samples)) if samples else ""


def _parse(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(str(value))
    except ValueError:
        return None
