"""The hourly Airflow DAG ``catalog_ingest_products``: the package's factory with its documented
settings (docs/ingestion.md; facebook_catalog.dags.ingest)."""

from __future__ import annotations

from facebook_catalog.dags import catalog_ingest_dag

dag = catalog_ingest_dag()
