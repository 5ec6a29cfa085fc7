"""The hourly Airflow DAG ``facebook_catalog_sync``: the package's factory with its documented
settings (README, "The hourly DAG"; facebook_catalog.dags.sync)."""

from __future__ import annotations

from facebook_catalog.dags import catalog_sync_dag

dag = catalog_sync_dag()
