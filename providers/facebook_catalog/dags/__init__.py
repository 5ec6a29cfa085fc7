"""The DAGs as factories, so the wheel carries them: ``catalog_sync_dag()``, ``catalog_ingest_dag()``
and ``catalog_reconcile_dag()``."""

from __future__ import annotations

from facebook_catalog.dags.ingest import catalog_ingest_dag
from facebook_catalog.dags.reconcile import catalog_reconcile_dag
from facebook_catalog.dags.sync import catalog_sync_dag

__all__ = ["catalog_ingest_dag", "catalog_reconcile_dag", "catalog_sync_dag"]
