"""The DAGs whose deferred task instances the triggerer benchmark hands to one real triggerer.

``bench_trigger_fleet``: one run per simulated catalog sync, its ``sync_catalog`` task the
provider's deferrable operator, deferred on ``FacebookCatalogBatchStatusTrigger``.
``bench_trigger_canary``: one task deferred on the loop-lag canary (benchmarks/_loop_lag.py),
which measures how late the triggerer's event loop wakes it.

Nothing runs these DAGs' tasks: benchmarks/triggerer_footprint.py creates their runs and defers
their task instances through Airflow's models, as the execution API does when a task defers.
"""

from __future__ import annotations

from datetime import datetime

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG

from facebook_catalog.operators.items_batch import FacebookCatalogItemsBatchOperator

with DAG(
    dag_id="bench_trigger_fleet",
    schedule=None,
    start_date=datetime(2025, 1, 1),
    catchup=False,
    tags=["benchmark"],
):
    FacebookCatalogItemsBatchOperator(task_id="sync_catalog", items=[], poll_interval=10)

with DAG(
    dag_id="bench_trigger_canary",
    schedule=None,
    start_date=datetime(2025, 1, 1),
    catchup=False,
    tags=["benchmark"],
):
    EmptyOperator(task_id="loop_lag_canary")
