"""The run report (``runs/<run id>/report.json``): one place that decides its shape.

The schema is documented in docs/report.md. It is built from what the operator submitted (read
and post phases) and what Meta's batches ended with; it holds counts, handles, statuses, samples
and ids, never items, tokens or secrets.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

REPORT_VERSION = 1
MAX_ERROR_SAMPLES = 20


def meta_totals(submitted: dict[str, Any], batches: list[dict[str, Any]]) -> tuple[int, int, int]:
    """Meta's error and warning totals over the batches, and the items Meta rejected: the items
    with errors plus every item of a call Meta ingested nothing from."""
    errors = sum(int(b.get("errors_total_count") or 0) for b in batches)
    warnings = sum(int(b.get("warnings_total_count") or 0) for b in batches)
    return errors, warnings, errors + int(submitted.get("items_not_ingested") or 0)


def build_report(
    *,
    dag_id: str,
    run_id: str,
    submitted: dict[str, Any],
    batches: list[dict[str, Any]],
    event: dict[str, Any],
    failure: str | None,
    finished_at: datetime,
    report_key: str,
) -> dict[str, Any]:
    read_counts = submitted.get("counts") or {}
    errors_total, warnings_total, rejected_by_meta = meta_totals(submitted, batches)
    handles = list(submitted.get("handles") or [])
    counts = {
        "files_read": int(read_counts.get("files_read") or 0),
        "files_quarantined": int(read_counts.get("files_quarantined") or 0),
        "rows_read": int(read_counts.get("rows_read") or 0),
        "rows_rejected": int(read_counts.get("rows_rejected") or 0),
        "duplicates_dropped": int(read_counts.get("duplicates_dropped") or 0),
        "items_unchanged": int(read_counts.get("items_unchanged") or 0),
        "items_confirmed": int(read_counts.get("items_confirmed") or 0),
        "items_sent": int(submitted.get("items_sent") or 0),
        "items_rejected_by_meta": rejected_by_meta,
        "warnings_from_meta": warnings_total,
        "calls": int(submitted.get("calls") or 0),
        "handles": len(handles),
        "throttled_retries": int(submitted.get("throttled_retries") or 0)
        + int(event.get("throttled_retries") or 0),
    }
    started_at = _parse(submitted.get("started_at"))
    posted_at = _parse(submitted.get("posted_at"))
    records = dict(submitted.get("records") or {})
    records["payloads"] = list(submitted.get("payloads") or [])
    records["report"] = report_key
    return {
        "report_version": REPORT_VERSION,
        "dag_id": dag_id,
        "run_id": run_id,
        "catalog_id": submitted.get("catalog_id"),
        "status": "failed" if failure else "succeeded",
        "failure": failure,
        "files": list(submitted.get("files") or []),
        "counts": counts,
        "handles": handles,
        "statuses": {b["handle"]: b["status"] for b in batches},
        "pending_handles": list(event.get("pending_handles") or []),
        "meta_errors": {
            "total": errors_total,
            "samples": [e for b in batches for e in b.get("errors") or []][:MAX_ERROR_SAMPLES],
        },
        "meta_warnings": {
            "total": warnings_total,
            "samples": [w for b in batches for w in b.get("warnings") or []][:MAX_ERROR_SAMPLES],
        },
        "validation_samples": list(submitted.get("validation_samples") or []),
        "invalid_item_ids": [i for b in batches for i in b.get("ids_of_invalid_requests") or []],
        "rejected_samples": list(submitted.get("rejected_samples") or []),
        "timings": {
            "started_at": started_at.isoformat() if started_at else None,
            "posted_at": posted_at.isoformat() if posted_at else None,
            "finished_at": finished_at.isoformat(),
            "seconds_reading": submitted.get("seconds_reading"),
            "seconds_posting": submitted.get("seconds_posting"),
            "seconds_meta_processing": round((finished_at - posted_at).total_seconds(), 3)
            if posted_at and handles
            else None,
            "seconds_total": round((finished_at - started_at).total_seconds(), 3) if started_at else None,
        },
        "change_detection": submitted.get("change_detection"),
        "records": records,
    }


def _parse(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(str(value))
    except ValueError:
        return None
