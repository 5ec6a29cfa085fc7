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
defaults given to the factory (`catalog_sync_dag(**settings)`), else those listed in the README.
Set `FACEBOOK_CATALOG_SYNC_SCHEDULE=asset` (or `asset_or_hourly`) in the environment to run on
the ingestion DAG's landing Asset instead of hourly; the Asset's bucket is
`FACEBOOK_CATALOG_LANDING_BUCKET` (docs/ingestion.md).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, cast

from airflow.providers.common.compat.sdk import AirflowFailException, AirflowSkipException
from airflow.sdk import DAG, Param, Variable, get_current_context, task, task_group, teardown

from facebook_catalog.dags.assets import sync_schedule
from facebook_catalog.dags.callbacks import make_failure_callback
from facebook_catalog.operators.items_batch import FacebookCatalogItemsBatchOperator
from facebook_catalog.sync.settings import SYNC_OPERATOR_ARGUMENTS, SYNC_SETTINGS, resolve_sync_settings

log = logging.getLogger(__name__)

DAG_ID = "facebook_catalog_sync"
SNAPSHOT_TASK = "snapshot_landing"
SYNC_TASK = "sync_catalog"
SUMMARY_TASK = "publish_run_summary"  # the teardown task, by its function name
_SETTING_NAMES = frozenset(s.name for s in SYNC_SETTINGS)


def _snapshot_xcom(snapshot_task: str = SNAPSHOT_TASK, mapped: bool = False) -> str:
    """The snapshot task's XCom in a template; in a mapped catalog group, the same catalog's
    (Airflow versions differ in which map indexes a pull without ``map_indexes`` returns)."""
    return (
        "ti.xcom_pull(task_ids='"
        + snapshot_task
        + "'"
        + (", map_indexes=ti.map_index" if mapped else "")
        + ")"
    )


def _from_snapshot(argument: str, snapshot_task: str = SNAPSHOT_TASK, mapped: bool = False) -> str:
    """A template that reads one of the operator's arguments, resolved once by the snapshot task."""
    return "{{ " + _snapshot_xcom(snapshot_task, mapped) + "['operator_arguments']['" + argument + "'] }}"


def _catalog_id(settings: Mapping[str, Any]) -> str:
    """The run's catalog: the setting, else the connection's ``catalog_id`` extra."""
    if settings["catalog_id"]:
        return str(settings["catalog_id"])
    from facebook_catalog.hooks.catalog import FacebookCatalogHook

    try:
        return FacebookCatalogHook(facebook_catalog_conn_id=settings["conn_id"]).settings.catalog_id
    except Exception:
        return "unknown"


def _landing_zone(settings: Mapping[str, Any]) -> Any:
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    from facebook_catalog.storage.landing_zone import LandingZone

    return LandingZone(
        S3Hook(aws_conn_id=settings["aws_conn_id"]),
        settings["landing_bucket"],
        landing_prefix=settings["landing_prefix"],
        archive_prefix=settings["archive_prefix"],
        quarantine_prefix=settings["quarantine_prefix"],
    )


def _resolved(params: Mapping[str, Any] | None, defaults: Mapping[str, Any]) -> dict[str, Any]:
    return resolve_sync_settings(params or {}, lambda key: Variable.get(key, default=None), defaults=defaults)


def snapshot_landing(
    defaults: dict[str, Any], params: dict[str, Any] | None = None, catalog: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The run's settings and snapshot of landing; with nothing there, the run skips the rest.
    ``catalog``: one entry of the many-catalog DAG (facebook_catalog.sync.catalogs), whose own
    settings replace the DAG's."""
    from facebook_catalog.sync.landing import take_snapshot

    settings = _resolved(params, defaults)
    if catalog is not None:
        from facebook_catalog.sync.catalogs import CatalogEntry, catalog_settings

        settings = catalog_settings(settings, CatalogEntry.from_dict(catalog))
    snapshot = take_snapshot(_landing_zone(settings), settings)
    if not snapshot.objects:
        where = f"s3://{settings['landing_bucket']}/{settings['landing_prefix']}"
        waiting = _retries_waiting(settings)
        if not waiting:
            raise AirflowSkipException(
                f"Nothing to sync: no files under {where}. No Graph API call was made."
            )
        log.info("No files under %s, but %d open rejections are due to be re-sent", where, waiting)
    return snapshot.to_dict()


def _ledger_store(settings: Mapping[str, Any]) -> Any:
    """The catalog's item ledger, or None when the catalog is unknown."""
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    from facebook_catalog.storage.ledger_store import LedgerStore

    catalog_id = _catalog_id(settings)
    if catalog_id == "unknown":
        return None
    return LedgerStore(S3Hook(aws_conn_id=settings["aws_conn_id"]), settings["synced_bucket"], catalog_id)


def _open_rejections(settings: Mapping[str, Any]) -> int:
    store = _ledger_store(settings)
    try:
        return int(store.load().manifest.rejections_open) if store is not None else 0
    except Exception:
        log.warning("Could not read the item ledger's open rejections", exc_info=True)
        return 0


def _retries_waiting(settings: Mapping[str, Any]) -> int:
    """Open rejections of the catalog's item ledger due to be re-sent now."""
    from facebook_catalog.sync.changes import retries_waiting

    store = _ledger_store(settings)
    return retries_waiting(store, retry_rejected=bool(settings["retry_rejected"])) if store is not None else 0


def archive_snapshot(snapshot: dict[str, Any], summary: dict[str, Any]) -> dict[str, Any]:
    """Quarantine the snapshot's unreadable files, archive the rest; fail if any was quarantined."""
    from facebook_catalog.sync.landing import LandingSnapshot
    from facebook_catalog.sync.landing import archive_snapshot as archive

    taken = LandingSnapshot.from_dict(snapshot)
    result = archive(_landing_zone(taken.settings), taken, summary.get("files") or [])
    # Every row is accounted for (confirmed, or open in the item ledger with its reason): the
    # files are archived, and then the run fails so someone looks.
    failures = [f for f in (result.quarantine_message(), summary.get("rejection_failure")) if f]
    if failures:
        raise AirflowFailException(
            "\n".join(failures)
            + (
                ""
                if not summary.get("rejection_failure")
                else "\nThe snapshot's files were archived; the rejected items are open in the item ledger "
                "(open_rejections.csv) and are retried on their schedule."
            )
        )
    return result.to_dict()


def publish_run_summary(defaults: dict[str, Any], params: dict[str, Any] | None = None) -> dict[str, Any]:
    """Log one JSON summary line (CloudWatch Logs Insights) and publish the run's CloudWatch
    metrics (docs/operations.md).

    A teardown: it runs whatever happened upstream, and its own success never hides a failed
    sync in the run's state. The status comes from the run's task states, so a failure after
    the report was written (archiving, quarantine) is still reported as a failure.
    """
    context = get_current_context()
    ti, run_id = context["ti"], context["run_id"]
    snapshot = ti.xcom_pull(task_ids=SNAPSHOT_TASK)
    settings = snapshot["settings"] if snapshot else _resolved(params, defaults)
    states = ti.get_task_states(dag_id=ti.dag_id, run_ids=[run_id]).get(run_id, {})
    states.pop(SUMMARY_TASK, None)
    return _observe_catalog_run(
        settings, states, dag_id=ti.dag_id, run_id=run_id, snapshot_taken=bool(snapshot)
    )


def _observe_catalog_run(
    settings: Mapping[str, Any],
    states: Mapping[str, str | None],
    *,
    dag_id: str,
    run_id: str,
    snapshot_taken: bool,
) -> dict[str, Any]:
    """One catalog's part of a run: its final report, logged as the summary line and published
    as metrics (dimension CatalogId); its ledger freed if the run still holds it."""
    from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    from facebook_catalog.storage.run_records import RunRecords
    from facebook_catalog.sync.metrics import observe_run, run_summary
    from facebook_catalog.sync.outcome import final_report

    records = RunRecords(
        S3Hook(aws_conn_id=settings["aws_conn_id"]),
        settings["synced_bucket"],
        run_id,
        settings["runs_prefix"],
    )
    report = final_report(
        records.load_report(),
        states,
        dag_id=dag_id,
        run_id=run_id,
        catalog_id=_catalog_id(settings),
        snapshot_taken=snapshot_taken,
    )
    if not snapshot_taken and "rejections_open" in report.get("counts", {}):
        # A run with nothing to sync read no ledger: its open rejections are the last run's,
        # not 0 (the OpenRejections alarm would otherwise clear in quiet hours).
        report["counts"]["rejections_open"] = _open_rejections(settings)
    if snapshot_taken:
        _release_ledger_lease(records.s3_hook, settings, run_id)
    namespace = settings["metrics_namespace"] or None
    cloudwatch = (
        AwsBaseHook(aws_conn_id=settings["aws_conn_id"], client_type="cloudwatch").get_conn()
        if namespace
        else None
    )
    uri = records.uri("report.json")
    observe_run(report, namespace, cloudwatch, report_uri=uri)
    return run_summary(report, uri)


def _release_ledger_lease(s3_hook: Any, settings: Mapping[str, Any], run_id: str) -> None:
    """Free the catalog's ledger if this run still holds it: a sync task killed mid-run (its
    retries spent) cannot release its own lease, and the next hour's run must not wait for it
    to expire. Only this run's lease is released; a failure here is logged, never raised."""
    from facebook_catalog.storage.ledger_store import LedgerStore

    try:
        LedgerStore(s3_hook, settings["synced_bucket"], _catalog_id(settings)).release_lease(run_id)
    except Exception:
        log.exception("Could not release the ledger lease of run %s; it expires by itself", run_id)


def _setting_params() -> dict[str, Param]:
    """The settings table as the DAG's params (a manual trigger's conf)."""
    return {
        setting.name: Param(
            None, type=["null", "string", "number", "boolean"], description=setting.description
        )
        for setting in SYNC_SETTINGS
    }


def _sync_dag_arguments(schedule: Any, settings: Mapping[str, Any]) -> dict[str, Any]:
    """What the sync DAGs share: schedule, retries, templating and the failure alert."""
    return {
        "schedule": schedule if schedule is not None else sync_schedule("@hourly"),
        "start_date": datetime(2025, 1, 1),
        "catchup": False,
        "max_active_runs": 1,
        "render_template_as_native_obj": True,
        "default_args": {
            "retries": int(os.environ.get("FACEBOOK_CATALOG_SYNC_RETRIES", "2")),
            "retry_delay": timedelta(minutes=5),
            "retry_exponential_backoff": True,
            "max_retry_delay": timedelta(minutes=20),
        },
        "tags": ["facebook_catalog"],
        # The callback returns the alert's message id (for tests); Airflow ignores it.
        "on_failure_callback": cast(Any, make_failure_callback(defaults=settings)),
    }


def catalog_sync_dag(dag_id: str = DAG_ID, schedule: Any = None, **settings: Any) -> DAG:
    """The hourly sync DAG (this module's docstring). ``schedule`` defaults to hourly, or the
    landing Asset (``FACEBOOK_CATALOG_SYNC_SCHEDULE``); ``settings`` replace the documented
    defaults of the settings they name (README's settings table), below params and Variables."""
    unknown = sorted(set(settings) - _SETTING_NAMES)
    if unknown:
        raise TypeError(f"catalog_sync_dag() got unknown settings {unknown}; known: {sorted(_SETTING_NAMES)}")
    with DAG(
        dag_id=dag_id,
        params=_setting_params(),
        doc_md=__doc__,
        **_sync_dag_arguments(schedule, settings),
    ) as dag:
        snapshot = task(task_id=SNAPSHOT_TASK)(snapshot_landing)(defaults=settings)
        sync = FacebookCatalogItemsBatchOperator(
            task_id=SYNC_TASK,
            s3_keys="{{ ti.xcom_pull(task_ids='" + SNAPSHOT_TASK + "')['keys'] }}",
            **{argument: _from_snapshot(argument) for argument in SYNC_OPERATOR_ARGUMENTS},  # type: ignore[arg-type]
            # Too many new rejections fail the run in archive_snapshot, after the files moved.
            rejections_fail_task=False,
        )
        archived = task(archive_snapshot)(snapshot, sync.output)  # type: ignore[arg-type]
        # One XCom, not one a key: Airflow 3.0 refuses the summary's None values as XComs of their own.
        summary = teardown(task(task_id=SUMMARY_TASK, multiple_outputs=False)(publish_run_summary))(
            defaults=settings
        )
        snapshot >> sync >> archived >> summary
    return dag


# ------------------------------------------------------------------ many catalogs

CATALOGS_DAG_ID = "facebook_catalogs_sync"
LIST_TASK = "list_catalogs"
CHECK_TASK = "check_catalogs"
CATALOGS_PROBLEM_XCOM_KEY = "catalogs_problem"
CATALOG_GROUP = "catalog"  # the mapped task group: one instance per catalog
CATALOGS_SUMMARY_TASK = "publish_catalogs_summary"
CATALOGS_SUMMARY_EVENT = "facebook_catalogs_sync_summary"
#: The tasks of one catalog's group, by their task ids inside it.
_CATALOG_TASKS = (SNAPSHOT_TASK, SYNC_TASK, "archive_snapshot")


def list_catalogs(
    defaults: dict[str, Any], catalogs: Any = None, params: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    """The run's catalogs: the ``catalogs`` param, else the Variable, else the factory's argument;
    each checked, with its own settings (facebook_catalog.sync.catalogs).

    It always succeeds, with no catalogs when the setting is bad (the reason goes to XCom for
    ``check_catalogs``, which fails the run with it): Airflow 3.0 cannot start a task downstream
    of a mapped group whose expansion never happened (NotFullyPopulated), so the summary would
    not run."""
    from facebook_catalog.sync.catalogs import (
        CATALOGS_SETTING,
        CatalogsSettingError,
        catalog_settings,
        parse_catalogs,
    )

    candidates = (
        ((params or {}).get(CATALOGS_SETTING.name), f"Param {CATALOGS_SETTING.name}"),
        (Variable.get(CATALOGS_SETTING.variable, default=None), f"Variable {CATALOGS_SETTING.variable}"),
        (catalogs, "catalogs_sync_dag(catalogs=...)"),
    )
    value, source = next(((v, where) for v, where in candidates if v not in (None, "", [])), (None, ""))
    try:
        entries = parse_catalogs(value, source)
        settings = _resolved(params, defaults)
        for entry in entries:  # the prefixes of each catalog's landing zone stay apart
            try:
                _landing_zone(catalog_settings(settings, entry))
            except ValueError as error:
                raise CatalogsSettingError(f"{source}, catalog {entry.catalog_id}: {error}") from None
    except (CatalogsSettingError, ValueError) as error:
        log.error("%s", error)
        get_current_context()["ti"].xcom_push(key=CATALOGS_PROBLEM_XCOM_KEY, value=str(error))
        return []
    log.info("Syncing %d catalogs: %s", len(entries), ", ".join(e.catalog_id for e in entries))
    return [entry.to_dict() for entry in entries]


def check_catalogs(entries: list[dict[str, Any]]) -> int:
    """Fail the run with the reason ``list_catalogs`` found the setting bad; skip when no catalog
    is set."""
    from facebook_catalog.sync.catalogs import CATALOGS_SETTING

    problem = get_current_context()["ti"].xcom_pull(task_ids=LIST_TASK, key=CATALOGS_PROBLEM_XCOM_KEY)
    if problem:
        raise AirflowFailException(f"No catalog was synced: {problem}")
    if not entries:
        raise AirflowSkipException(
            f"No catalogs to sync: set the Variable {CATALOGS_SETTING.variable} (or the run's param "
            f"{CATALOGS_SETTING.name}) to a JSON list of catalogs. No Graph API call was made."
        )
    return len(entries)


def publish_catalogs_summary(
    defaults: dict[str, Any], params: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Each catalog's summary line and metrics (as the one-catalog DAG's teardown publishes
    them, dimension CatalogId), then one line listing every catalog with its status.

    A teardown: it runs whatever happened upstream. A catalog's status comes from its own
    tasks' states, so one catalog's failure never marks another as failed."""
    import json

    from facebook_catalog.sync.catalogs import CatalogEntry, catalog_settings

    context = get_current_context()
    ti, run_id = context["ti"], context["run_id"]
    entries = ti.xcom_pull(task_ids=LIST_TASK) or []
    states = ti.get_task_states(dag_id=ti.dag_id, run_ids=[run_id]).get(run_id, {})
    catalogs: list[dict[str, Any]] = []
    for index, raw in enumerate(entries):
        entry = CatalogEntry.from_dict(raw)
        snapshot = ti.xcom_pull(task_ids=f"{CATALOG_GROUP}.{SNAPSHOT_TASK}", map_indexes=index)
        settings = snapshot["settings"] if snapshot else catalog_settings(_resolved(params, defaults), entry)
        # Mapped task instances' states come keyed "<task id>_<map index>".
        own_states = {name: states.get(f"{CATALOG_GROUP}.{name}_{index}") for name in _CATALOG_TASKS}
        try:
            summary = _observe_catalog_run(
                settings, own_states, dag_id=ti.dag_id, run_id=run_id, snapshot_taken=bool(snapshot)
            )
        except Exception as error:  # one catalog's records must not hide the others' summaries
            log.exception("Could not summarize catalog %s", entry.catalog_id)
            summary = {"catalog_id": entry.catalog_id, "status": "failed", "failure": f"no summary: {error}"}
        catalogs.append({**summary, "language": entry.language or None})
    problem = ti.xcom_pull(task_ids=LIST_TASK, key=CATALOGS_PROBLEM_XCOM_KEY)
    listing_failed = any(str(states.get(t)) in ("failed", "upstream_failed") for t in (LIST_TASK, CHECK_TASK))
    failed = [c["catalog_id"] for c in catalogs if c.get("status") != "succeeded"]
    result = {
        "event": CATALOGS_SUMMARY_EVENT,
        "dag_id": ti.dag_id,
        "run_id": run_id,
        "status": "failed" if failed or problem or listing_failed else "succeeded",
        "failure": problem or None,
        "catalogs_failed": failed,
        "catalogs": [
            {
                name: c.get(name)
                for name in ("catalog_id", "language", "status", "items_sent", "report", "failure")
            }
            for c in catalogs
        ],
    }
    log.info("%s", json.dumps(result, ensure_ascii=False))
    return result


def catalogs_sync_dag(
    dag_id: str = CATALOGS_DAG_ID, schedule: Any = None, catalogs: Any = None, **settings: Any
) -> DAG:
    """The hourly sync of several catalogs (README, "Many catalogs"): ``list_catalogs`` reads the
    ``catalogs`` setting (param, Variable ``facebook_catalog_catalogs``, else ``catalogs`` given
    here: a JSON list or the list itself; ``check_catalogs`` fails the run when it is bad, and
    skips when it is empty), then one mapped group per catalog runs the one-catalog
    DAG's tasks (snapshot, sync, archive) with that catalog's connection, landing prefix, ledger,
    run records (``runs/<catalog id>/<run id>/``) and pacing, independently of the others; the
    teardown summarizes every catalog. The run fails if any catalog failed, after all finished.
    ``settings`` are the shared settings, as for :func:`catalog_sync_dag`."""
    from facebook_catalog.sync.catalogs import CATALOGS_SETTING, parse_catalogs

    unknown = sorted(set(settings) - _SETTING_NAMES)
    if unknown:
        raise TypeError(
            f"catalogs_sync_dag() got unknown settings {unknown}; known: {sorted(_SETTING_NAMES)}"
        )
    parse_catalogs(catalogs, "catalogs_sync_dag(catalogs=...)")  # a bad literal fails the DAG file's import
    snapshot_task = f"{CATALOG_GROUP}.{SNAPSHOT_TASK}"
    with DAG(
        dag_id=dag_id,
        params={
            **_setting_params(),
            CATALOGS_SETTING.name: Param(
                None, type=["null", "string", "array"], description=CATALOGS_SETTING.description
            ),
        },
        doc_md=catalogs_sync_dag.__doc__,
        **_sync_dag_arguments(schedule, settings),
    ) as dag:
        listed = task(task_id=LIST_TASK)(list_catalogs)(defaults=settings, catalogs=catalogs)

        @task_group(group_id=CATALOG_GROUP)
        def sync_one_catalog(catalog: dict[str, Any]) -> None:
            snapshot = task(task_id=SNAPSHOT_TASK)(snapshot_landing)(defaults=settings, catalog=catalog)
            sync = FacebookCatalogItemsBatchOperator(
                task_id=SYNC_TASK,
                s3_keys="{{ " + _snapshot_xcom(snapshot_task, mapped=True) + "['keys'] }}",
                **{
                    argument: _from_snapshot(argument, snapshot_task, mapped=True)
                    for argument in SYNC_OPERATOR_ARGUMENTS
                },  # type: ignore[arg-type]
                rejections_fail_task=False,
            )
            archived = task(archive_snapshot)(snapshot, sync.output)  # type: ignore[arg-type]
            snapshot >> sync >> archived

        groups = sync_one_catalog.expand(catalog=listed)
        checked = task(task_id=CHECK_TASK)(check_catalogs)(listed)  # type: ignore[arg-type]
        summary = teardown(
            task(task_id=CATALOGS_SUMMARY_TASK, multiple_outputs=False)(publish_catalogs_summary)
        )(defaults=settings)
        [groups, checked] >> summary
    return dag
