"""
### Ingest changed products into the landing zone

Every hour, the products whose `updated_at` lies in
`[data_interval_start - lookback, data_interval_end)` are read from the operational database
(PostgreSQL or MySQL/MariaDB) and written to
`s3://<landing bucket>/landing/ingest/<YYYY-MM-DD>/<HHMM>-<HHMM>.csv.gz` as the landing CSV the
catalog sync reads (`id,title,description,link,image_link,availability,price,brand`, plus
`condition` and `sale_price` when mapped).

* No changed product: no file, and the task is skipped (no asset event).
* Re-running an interval overwrites its own file; backfills over past intervals work
  (`airflow backfill create --dag-id catalog_ingest_products --from-date ... --to-date ...`).
* The lookback (default 5 minutes) catches rows whose `updated_at` was stamped before a long
  transaction committed; the duplicates it causes are skipped by the sync's change detection.
* The task's outlet is the landing Asset `s3://$FACEBOOK_CATALOG_LANDING_BUCKET/landing/` (an
  environment variable, read at parse time), which the sync DAG can be scheduled on.

Settings (Airflow Variables; a run's params override them):

| Variable | Default |
| --- | --- |
| `facebook_catalog_landing_bucket` | `facebook-catalog-landing` (the sync reads the same Variable) |
| `facebook_catalog_ingest_conn_id` | `products_db` (type `postgres` or `mysql`) |
| `facebook_catalog_ingest_lookback_minutes` | `5` |
| `facebook_catalog_ingest_query` | JSON column mapping; see docs/ingestion.md |

Params: `conn_id`, `lookback_minutes`, `query` (replaces the Variable's mapping), `fetch_size`,
and `mode`: `changed` (the hourly window, the default), `ids` (exactly the products whose primary
key is in `ids`, plus those whose id hash is in `id_hashes`: what the reconcile's repair asks
for) or `snapshot` (every product). The last two ignore the window and write
`landing/ingest/<mode>/<run id>.csv.gz`; the sync's change detection sends only what differs
from what Meta confirmed.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from airflow.sdk import DAG, Param

from facebook_catalog.compat import CronDataIntervalTimetable
from facebook_catalog.dags.assets import (
    DEFAULT_LANDING_BUCKET,
    LANDING_BUCKET_VARIABLE,
    LANDING_PREFIX,
    configured_landing_asset,
)
from facebook_catalog.operators.ingest import (
    DEFAULT_FETCH_SIZE,
    DEFAULT_LOOKBACK_MINUTES,
    INGEST_MODES,
    SqlProductsToLandingOperator,
)

CONN_ID_VARIABLE = "facebook_catalog_ingest_conn_id"
DEFAULT_CONN_ID = "products_db"
LOOKBACK_MINUTES_VARIABLE = "facebook_catalog_ingest_lookback_minutes"
QUERY_VARIABLE = "facebook_catalog_ingest_query"


# A run's param wins over the Variable, the Variable over the default.
def conn_id_template(default: str = DEFAULT_CONN_ID) -> str:
    return "{{ params.conn_id or var.value.get('" + CONN_ID_VARIABLE + "', '" + default + "') }}"


def lookback_minutes_template(default: float = DEFAULT_LOOKBACK_MINUTES) -> str:
    return (
        "{{ params.lookback_minutes if params.lookback_minutes is not none else var.value.get('"
        + LOOKBACK_MINUTES_VARIABLE
        + "', "
        + str(default)
        + ") }}"
    )


CONN_ID_TEMPLATE = conn_id_template()
LOOKBACK_MINUTES_TEMPLATE = lookback_minutes_template()
# tojson: the operator receives the mapping as JSON text (null: the documented defaults).
QUERY_TEMPLATE = (
    "{{ (params.query if params.query is not none else var.json.get('"
    + QUERY_VARIABLE
    + "', none)) | tojson }}"
)

# The bucket written to is the Variable with the sync's own default, read when the task runs,
# exactly as the sync reads it: the two can never disagree. The Asset is part of the DAG's
# structure, so it comes from the environment at parse time (configured_landing_asset).
BUCKET_TEMPLATE = "{{ var.value.get('" + LANDING_BUCKET_VARIABLE + "', '" + DEFAULT_LANDING_BUCKET + "') }}"


DAG_ID = "catalog_ingest_products"


def catalog_ingest_dag(
    dag_id: str = DAG_ID,
    schedule: Any = None,
    *,
    conn_id: str = DEFAULT_CONN_ID,
    lookback_minutes: float = DEFAULT_LOOKBACK_MINUTES,
    fetch_size: int = DEFAULT_FETCH_SIZE,
) -> DAG:
    """The hourly ingestion DAG (this module's docstring). ``schedule`` defaults to an hourly
    data-interval timetable; ``conn_id`` and ``lookback_minutes`` are the defaults under the
    Variables, ``fetch_size`` the param's default."""
    with DAG(
        dag_id=dag_id,
        # A data-interval timetable: each run covers the hour before it (a plain "@hourly" in
        # Airflow 3 gives runs whose interval is empty).
        schedule=schedule if schedule is not None else CronDataIntervalTimetable("0 * * * *", timezone="UTC"),
        start_date=datetime(2026, 1, 1, tzinfo=timezone.utc),
        catchup=False,
        max_active_runs=1,
        dagrun_timeout=timedelta(minutes=55),
        default_args={
            "retries": 3,
            "retry_delay": timedelta(minutes=1),
            "retry_exponential_backoff": True,
            "max_retry_delay": timedelta(minutes=10),
        },
        params={
            "conn_id": Param(
                None,
                type=["null", "string"],
                description=(
                    f"Airflow connection of the products database (default: Variable {CONN_ID_VARIABLE})"
                ),
            ),
            "lookback_minutes": Param(
                None,
                type=["null", "number"],
                minimum=0,
                maximum=1440,
                description=(
                    f"minutes the window starts before the interval (default: {LOOKBACK_MINUTES_VARIABLE})"
                ),
            ),
            "query": Param(
                None,
                type=["null", "object"],
                description=f"column mapping, replacing the Variable {QUERY_VARIABLE}",
            ),
            "fetch_size": Param(fetch_size, type="integer", minimum=1, description="rows per fetch"),
            "mode": Param(
                "changed",
                type="string",
                enum=list(INGEST_MODES),
                description="changed: the hour's rows; ids: those in ids and id_hashes; snapshot: all",
            ),
            "ids": Param([], type=["null", "array"], description="primary keys for mode ids"),
            "id_hashes": Param(
                [],
                type=["null", "array"],
                description="id hashes (hex) for mode ids",
            ),
        },
        tags=["facebook_catalog", "ingestion"],
        doc_md=__doc__,
    ) as dag:
        SqlProductsToLandingOperator(
            task_id="write_changed_products",
            sql_conn_id=conn_id_template(conn_id),
            bucket=BUCKET_TEMPLATE,
            prefix=LANDING_PREFIX,
            lookback_minutes=lookback_minutes_template(lookback_minutes),
            query_config=QUERY_TEMPLATE,
            fetch_size="{{ params.fetch_size }}",
            mode="{{ params.mode or 'changed' }}",
            ids="{{ (params.ids or []) | tojson }}",
            id_hashes="{{ (params.id_hashes or []) | tojson }}",
            outlets=[configured_landing_asset()],
            execution_timeout=timedelta(minutes=45),
        )
    return dag
