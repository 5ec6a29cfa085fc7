"""
### Facebook catalog reconcile (daily)

Compares the catalog as Meta shows it with what Meta confirmed to us (the item ledger), as Meta's
partner guidance asks for at least daily.

1. **reconcile_catalog**: reads back every item's `retailer_id` and the fields the ledger hashes
   from the products edge, paged and paced under the Catalog Management budget (80009 is waited
   out), and finds the **missing** items (confirmed by us, absent in Meta), the **stale** ones
   (Meta shows other content) and the **unknown** ones (in Meta, never sent by us). Writes
   `reconcile/<date>/report.json` and `reconcile/<date>/drifted_items.csv` to the synced-products
   bucket and publishes the CloudWatch metric `DriftedItems`. With `repair` (the default), the
   missing and stale items' ledger entries are invalidated so that their next send is not skipped.
2. **repair_requested**: goes on only when there is something to re-send.
3. **request_ingestion**: triggers the ingestion DAG (`catalog_ingest_products`) in mode `ids`
   for exactly those items (by primary key, or by id hash when the ledger knows only that), or
   in mode `snapshot` beyond `max_repair_items`; they flow through landing and the sync as usual.

Unknown items are reported, never deleted. Settings shared with the sync (`conn_id`,
`catalog_id`, `aws_conn_id`, `synced_bucket`, `metrics_namespace`, the retry settings) come from
the run's params, else the sync's Airflow Variables, else the README's defaults.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any, cast

from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import DAG, Param, Variable, get_current_context, task

from facebook_catalog.dags.ingest import DAG_ID as INGEST_DAG_ID
from facebook_catalog.sync.reconcile_run import DEFAULT_MAX_REPAIR_ITEMS
from facebook_catalog.sync.settings import parse_bool, resolve_sync_settings

DAG_ID = "facebook_catalog_reconcile"
RECONCILE_TASK = "reconcile_catalog"
#: The sync settings the reconcile reads.
SHARED_SETTINGS = frozenset(
    {
        "conn_id",
        "catalog_id",
        "aws_conn_id",
        "synced_bucket",
        "metrics_namespace",
        "retry_backoff_seconds",
        "max_throttle_wait_seconds",
    }
)


def reconcile_catalog_task(defaults: dict[str, Any], params: dict[str, Any] | None = None) -> dict[str, Any]:
    """The reconcile of the run's catalog (this module's docstring); the report to XCom."""
    from facebook_catalog.hooks.graph_api import GraphApiRetryPolicy
    from facebook_catalog.operators.reconcile import reconcile_catalog

    params = params or {}
    settings = resolve_sync_settings(
        params, lambda key: Variable.get(key, default=None), names=SHARED_SETTINGS, defaults=defaults
    )
    report = reconcile_catalog(
        conn_id=settings["conn_id"],
        catalog_id=settings["catalog_id"] or None,
        aws_conn_id=settings["aws_conn_id"],
        synced_bucket=settings["synced_bucket"],
        run_id=str(get_current_context()["run_id"]),
        repair=parse_bool(params.get("repair", True), "repair"),
        max_repair_items=int(params.get("max_repair_items") or DEFAULT_MAX_REPAIR_ITEMS),
        metrics_namespace=settings["metrics_namespace"],
        retry_policy=GraphApiRetryPolicy(
            backoff_base=settings["retry_backoff_seconds"],
            max_throttle_wait=settings["max_throttle_wait_seconds"],
        ),
    )
    return report.to_dict()


def catalog_reconcile_dag(
    dag_id: str = DAG_ID,
    schedule: Any = "@daily",
    *,
    repair: bool = True,
    max_repair_items: int = DEFAULT_MAX_REPAIR_ITEMS,
    ingest_dag_id: str = INGEST_DAG_ID,
    **settings: Any,
) -> DAG:
    """The daily reconcile DAG (this module's docstring). ``repair`` and ``max_repair_items``
    are the params' defaults; ``settings`` are defaults of the shared sync settings (under their
    Variables), e.g. ``catalog_reconcile_dag(catalog_id="123")``."""
    unknown = set(settings) - SHARED_SETTINGS
    if unknown:
        raise TypeError(f"catalog_reconcile_dag() got unknown settings {sorted(unknown)}")
    with DAG(
        dag_id=dag_id,
        schedule=schedule,
        start_date=datetime(2026, 1, 1, tzinfo=timezone.utc),
        catchup=False,
        max_active_runs=1,
        dagrun_timeout=timedelta(hours=6),
        # The trigger's conf is the reconcile's repair request as a dict, not its text.
        render_template_as_native_obj=True,
        default_args={"retries": 1, "retry_delay": timedelta(minutes=10)},
        params={
            "repair": Param(repair, type="boolean", description="invalidate and re-send missing/stale items"),
            "max_repair_items": Param(
                max_repair_items,
                type="integer",
                minimum=1,
                description="beyond this many drifted items, ask the ingestion for a full snapshot",
            ),
            **{
                name: Param(None, type=["null", "string"], description=f"sync setting {name}")
                for name in ("conn_id", "catalog_id", "synced_bucket")
            },
        },
        tags=["facebook_catalog", "reconcile"],
        doc_md=__doc__,
    ) as dag:
        # One XCom, the report (a dict return would otherwise become one XCom a key).
        report = task(task_id=RECONCILE_TASK, multiple_outputs=False, execution_timeout=timedelta(hours=5))(
            reconcile_catalog_task
        )(dict(settings))

        @task.short_circuit(task_id="repair_requested")
        def repair_requested(report: dict[str, Any]) -> bool:
            return bool(report.get("repair_request"))

        trigger = TriggerDagRunOperator(
            task_id="request_ingestion",
            trigger_dag_id=ingest_dag_id,
            # Rendered natively (render_template_as_native_obj): the request's dict.
            conf=cast(
                dict[str, Any], "{{ ti.xcom_pull(task_ids='" + RECONCILE_TASK + "')['repair_request'] }}"
            ),
            # No logical date: the ingestion's ids mode reads no window, and Airflow 3.0 fails to
            # infer a cron data interval for an operator-triggered run that has one.
            logical_date=None,
            wait_for_completion=False,
        )
        repair_requested(cast(dict[str, Any], report)) >> trigger
    return dag
