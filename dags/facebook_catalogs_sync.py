"""The hourly Airflow DAG ``facebook_catalogs_sync``: several catalogs, one mapped group each, from
the Variable ``facebook_catalog_catalogs`` (README, "Many catalogs"; facebook_catalog.dags.sync)."""

from __future__ import annotations

from facebook_catalog.dags import catalogs_sync_dag

dag = catalogs_sync_dag()
