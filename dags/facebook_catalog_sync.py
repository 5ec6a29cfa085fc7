"""
### Facebook catalog sync (hourly)

Keeps the Meta (Facebook) product catalog in sync with the products that changed in the last
hour, as delivered to the S3 landing zone (`landing/`) as CSV or gzip CSV files.

1. **snapshot_landing**: repairs what a crashed run left half-archived, then takes the list of
   files under `landing/` (oldest first, so later files win). No files: the run stops here and
   makes no Graph API call.
2. **sync_catalog**: reads exactly those files through the feed rules (bad rows are rejected with
   file, line, field, value and reason; duplicates keep the last occurrence), upserts the good
   rows with `items_batch` (≤ 5,000 per call), then *defers*: the worker slot is free while Meta
   processes the batches and the triggerer polls `check_batch_request_status`. Everything sent,
   every rejected row and a `report.json` go to `runs/<run id>/` in the synced-products bucket.
3. **archive_snapshot**: only after the sync succeeded, moves exactly the snapshot's files to
   `archive/` (copy, verify, delete). Files that arrived during the run stay for the next run.
   Files that could not be read as a feed move to `quarantine/` with an error report beside
   them, and the run then fails so someone looks.
4. **publish_run_summary** (a teardown): always runs; logs one JSON summary line of the report
   and publishes the run's CloudWatch metrics (namespace `metrics_namespace`).

A failed run also sends a short summary to the SNS topic in the Variable
`facebook_catalog_sns_topic_arn`, when it is set.

Settings come from the run's params, else Airflow Variables `facebook_catalog_<name>`, else the
defaults listed in the README. Set `FACEBOOK_CATALOG_SYNC_SCHEDULE=asset` (or `asset_or_hourly`)
in the environment to run on the ingestion DAG's landing Asset instead of hourly; the Asset's
bucket is `FACEBOOK_CATALOG_LANDING_BUCKET` (docs/ingestion.md).
"""

from __future__ import annotations

import logging
import os
from datetime import datetime, timedelta
from typing import Any

from airflow.providers.common.compat.sdk import AirflowFailException, AirflowSkipException
from airflow.sdk import DAG, Param, Variable, get_current_context, task, teardown

from facebook_catalog.assets import sync_schedule
from facebook_catalog.observability import make_failure_callback
from facebook_catalog.operators.items_batch import FacebookCatalogItemsBatchOperator
from facebook_catalog.sync_settings import SYNC_SETTINGS, resolve_sync_settings

log = logging.getLogger(__name__)

DAG_ID = "facebook_catalog_sync"
SNAPSHOT_TASK = "snapshot_landing"
SYNC_TASK = "sync_catalog"


def _setting(name: str) -> str:
    """A template that reads a resolved setting from the snapshot task's XCom."""
    return "{{ ti.xcom_pull(task_ids='" + SNAPSHOT_TASK + "')['settings']['" + name + "'] }}"


def _catalog_id(settings: dict[str, Any]) -> str:
    """The run's catalog: the setting, else the connection's ``catalog_id`` extra."""
    if settings["catalog_id"]:
        return str(settings["catalog_id"])
    from facebook_catalog.hooks.catalog import FacebookCatalogHook

    try:
        return FacebookCatalogHook(facebook_catalog_conn_id=settings["conn_id"]).settings.catalog_id
    except Exception:
        return "unknown"


def _landing_zone(settings: dict[str, Any]) -> Any:
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    from facebook_catalog.landing_zone import LandingZone

    return LandingZone(
        S3Hook(aws_conn_id=settings["aws_conn_id"]),
        settings["landing_bucket"],
        landing_prefix=settings["landing_prefix"],
        archive_prefix=settings["archive_prefix"],
        quarantine_prefix=settings["quarantine_prefix"],
    )


with DAG(
    dag_id=DAG_ID,
    schedule=sync_schedule("@hourly"),
    start_date=datetime(2025, 1, 1),
    catchup=False,
    max_active_runs=1,
    render_template_as_native_obj=True,
    default_args={
        "retries": int(os.environ.get("FACEBOOK_CATALOG_SYNC_RETRIES", "2")),
        "retry_delay": timedelta(minutes=5),
        "retry_exponential_backoff": True,
        "max_retry_delay": timedelta(minutes=20),
    },
    params={
        setting.name: Param(
            None, type=["null", "string", "number", "boolean"], description=setting.description
        )
        for setting in SYNC_SETTINGS
    },
    doc_md=__doc__,
    tags=["facebook_catalog"],
    on_failure_callback=make_failure_callback(topic_arn_variable="facebook_catalog_sns_topic_arn"),
) as dag:

    @task(task_id=SNAPSHOT_TASK)
    def snapshot_landing(params: dict[str, Any] | None = None) -> dict[str, Any]:
        settings = resolve_sync_settings(params or {}, lambda key: Variable.get(key, default=None))
        zone = _landing_zone(settings)
        repaired = zone.repair()
        if repaired.deleted:
            log.warning(
                "Repaired a crashed run: removed already-archived files from landing: %s", repaired.deleted
            )
        objects = zone.snapshot()
        where = f"s3://{settings['landing_bucket']}/{settings['landing_prefix']}"
        if not objects:
            raise AirflowSkipException(
                f"Nothing to sync: no files under {where}. No Graph API call was made."
            )
        log.info("Snapshot of %s: %d files: %s", where, len(objects), [o.key for o in objects])
        return {
            "settings": settings,
            "objects": [o.to_dict() for o in objects],
            "keys": [o.key for o in objects],
        }

    snapshot = snapshot_landing()

    sync = FacebookCatalogItemsBatchOperator(
        task_id=SYNC_TASK,
        s3_bucket=_setting("landing_bucket"),
        s3_keys="{{ ti.xcom_pull(task_ids='" + SNAPSHOT_TASK + "')['keys'] }}",
        aws_conn_id=_setting("aws_conn_id"),
        facebook_catalog_conn_id=_setting("conn_id"),
        catalog_id=_setting("catalog_id"),
        poll_interval=_setting("poll_interval"),
        timeout="{{ ti.xcom_pull(task_ids='" + SNAPSHOT_TASK + "')['settings']['timeout_minutes'] * 60 }}",
        max_error_ratio=_setting("max_error_ratio"),
        default_currency=_setting("default_currency"),
        default_condition=_setting("default_condition"),
        records_bucket=_setting("synced_bucket"),
        records_prefix=_setting("runs_prefix"),
        full_sync=_setting("full_sync"),
        graph_api_retry_policy=(
            "{{ {'backoff_base': ti.xcom_pull(task_ids='"
            + SNAPSHOT_TASK
            + "')['settings']['retry_backoff_seconds'],"
            " 'max_throttle_wait': ti.xcom_pull(task_ids='" + SNAPSHOT_TASK + "')['settings']"
            "['max_throttle_wait_seconds']} }}"
        ),
    )

    @task
    def archive_snapshot(snapshot: dict[str, Any], summary: dict[str, Any]) -> dict[str, Any]:
        from facebook_catalog.landing_zone import LandingObject

        settings = snapshot["settings"]
        zone = _landing_zone(settings)
        errors = {f["key"]: f["error"] for f in summary.get("files") or [] if f.get("error")}
        objects = [LandingObject.from_dict(o) for o in snapshot["objects"]]
        quarantined = {o.key: zone.quarantine(o, errors[o.key]) for o in objects if o.key in errors}
        result = zone.archive([o for o in objects if o.key not in errors])
        log.info("Archived %d files: %s", len(result.archived), result.archived)
        if result.left_in_landing:
            log.info("Left in landing for the next run (changed during this run): %s", result.left_in_landing)
        if quarantined:
            lines = [f"{key} -> {target}: {errors[key]}" for key, target in quarantined.items()]
            raise AirflowFailException(
                f"{len(quarantined)} files could not be read as a feed and were moved to quarantine "
                "(the other files were synced and archived):\n" + "\n".join(lines)
            )
        return {"archived": result.archived, "left_in_landing": result.left_in_landing}

    @teardown
    def publish_run_summary(params: dict[str, Any] | None = None) -> dict[str, Any]:
        """Log one JSON summary line (CloudWatch Logs Insights) and publish the run's CloudWatch
        metrics (docs/operations.md).

        A teardown: it runs whatever happened upstream, and its own success never hides a failed
        sync in the run's state. The status comes from the run's task states, so a failure after
        the report was written (archiving, quarantine) is still reported as a failure.
        """
        from airflow.providers.amazon.aws.hooks.s3 import S3Hook

        from facebook_catalog.observability import (
            load_run_report,
            observe_run,
            placeholder_report,
            run_status_from_task_states,
            run_summary,
        )

        context = get_current_context()
        ti, run_id = context["ti"], context["run_id"]
        snapshot = ti.xcom_pull(task_ids=SNAPSHOT_TASK)
        settings = (
            snapshot["settings"]
            if snapshot
            else resolve_sync_settings(params or {}, lambda key: Variable.get(key, default=None))
        )
        states = ti.get_task_states(dag_id=DAG_ID, run_ids=[run_id]).get(run_id, {})
        states.pop("publish_run_summary", None)
        status = run_status_from_task_states(states)
        report, uri = load_run_report(
            S3Hook(aws_conn_id=settings["aws_conn_id"]),
            settings["synced_bucket"],
            run_id,
            settings["runs_prefix"],
        )
        if report is None:
            report = placeholder_report(
                dag_id=DAG_ID,
                run_id=run_id,
                catalog_id=_catalog_id(settings),
                status=status,
                failure=None if status == "succeeded" else f"task states: {states}",
                nothing_to_sync=not snapshot and status == "succeeded",
            )
        elif status == "failed" and report.get("status") != "failed":
            failed_tasks = sorted(t for t, state in states.items() if state in ("failed", "upstream_failed"))
            report = {
                **report,
                "status": "failed",
                "failure": f"failed after the sync: {', '.join(failed_tasks)}",
            }
        observe_run(
            report, settings["metrics_namespace"] or None, aws_conn_id=settings["aws_conn_id"], report_uri=uri
        )
        return run_summary(report, uri)

    archived = archive_snapshot(snapshot, sync.output)  # type: ignore[arg-type]
    snapshot >> sync >> archived >> publish_run_summary()
