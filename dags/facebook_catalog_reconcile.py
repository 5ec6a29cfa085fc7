"""The daily Airflow DAG ``facebook_catalog_reconcile``: the package's factory with its documented
settings (README, "The daily reconcile"; facebook_catalog.dags.reconcile)."""

from __future__ import annotations

from facebook_catalog.dags import catalog_reconcile_dag

dag = catalog_reconcile_dag()
