"""Reconcile one catalog: read every item back from Meta and compare it with the item ledger.

:func:`reconcile_catalog` is what the ``facebook_catalog_reconcile`` DAG's task and
``fb-catalog reconcile`` run; :class:`FacebookCatalogReconcileOperator` wraps it for DAGs of
your own. The comparison and the report are :mod:`facebook_catalog.sync.reconcile_run`'s.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from facebook_catalog.hooks.graph_api import GraphApiRetryPolicy
from facebook_catalog.sync.reconcile import READBACK_FIELDS
from facebook_catalog.sync.reconcile_run import (
    DEFAULT_MAX_REPAIR_ITEMS,
    DEFAULT_RECONCILE_PREFIX,
    ReconcileReport,
    run_reconcile,
)
from facebook_catalog.sync.settings import parse_bool, parse_number

if TYPE_CHECKING:
    from airflow.sdk import Context

log = logging.getLogger(__name__)

#: Items per products page: Meta's pages go up to 5,000 with few fields; 1,000 keeps each answer
#: well under its size limits with every hashed field asked for.
DEFAULT_PAGE_SIZE = 1000


def reconcile_catalog(
    *,
    conn_id: str,
    catalog_id: str | None,
    aws_conn_id: str | None,
    synced_bucket: str,
    run_id: str,
    repair: bool = False,
    max_repair_items: int = DEFAULT_MAX_REPAIR_ITEMS,
    metrics_namespace: str = "",
    page_size: int = DEFAULT_PAGE_SIZE,
    reconcile_prefix: str = DEFAULT_RECONCILE_PREFIX,
    retry_policy: GraphApiRetryPolicy | None = None,
) -> ReconcileReport:
    """Read the catalog back (paged, paced under the Catalog Management budget, 80009 waited
    out by the hook), compare, report, repair when asked, publish ``DriftedItems``."""
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    from facebook_catalog.hooks.catalog import FacebookCatalogHook
    from facebook_catalog.storage.ledger_store import LedgerStore

    hook = FacebookCatalogHook(
        facebook_catalog_conn_id=conn_id, catalog_id=catalog_id or None, retry_policy=retry_policy
    )
    catalog = hook.settings.catalog_id
    s3_hook = S3Hook(aws_conn_id=aws_conn_id)
    store = LedgerStore(s3_hook, synced_bucket, catalog)
    try:
        report = run_reconcile(
            store,
            hook.iter_products(READBACK_FIELDS, page_size=page_size),
            s3_hook=s3_hook,
            bucket=synced_bucket,
            run_id=run_id,
            read_stats=lambda: (
                hook.read_calls + hook.throttled_retries + hook.transient_retries,
                hook.throttled_retries,
            ),
            prefix=reconcile_prefix,
            repair=repair,
            max_repair_items=max_repair_items,
        )
    finally:
        hook.close()
    if metrics_namespace:
        from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook

        from facebook_catalog.sync.metrics import publish_reconcile_metrics

        cloudwatch = AwsBaseHook(aws_conn_id=aws_conn_id, client_type="cloudwatch").get_conn()
        publish_reconcile_metrics(catalog, report.drifted, metrics_namespace, cloudwatch)
    return report


class FacebookCatalogReconcileOperator(BaseOperator):
    """Compare a catalog as Meta shows it with its item ledger; report (and repair) the drift.

    Writes ``reconcile/<date>/report.json`` and ``drifted_items.csv`` to ``synced_bucket``. With
    ``repair``, the missing and stale items' ledger entries are invalidated; the returned
    report's ``repair_request`` is the conf for the ingestion DAG (mode ``ids`` or ``snapshot``).

    :param facebook_catalog_conn_id: Graph API connection (templated).
    :param catalog_id: catalog; empty: the connection's ``catalog_id`` extra (templated).
    :param synced_bucket: bucket of the ledger and the reports (templated).
    :param repair: invalidate the drifted items (templated; "true"/"false" accepted).
    :param max_repair_items: beyond this many drifted items, ask for a full snapshot (templated).
    :param metrics_namespace: CloudWatch namespace of ``DriftedItems``; empty: none (templated).
    :return: the report (``ReconcileReport.to_dict()``) to XCom.
    """

    template_fields: Sequence[str] = (
        "facebook_catalog_conn_id",
        "catalog_id",
        "synced_bucket",
        "repair",
        "max_repair_items",
        "metrics_namespace",
    )
    ui_color = "#e3f2fd"

    def __init__(
        self,
        *,
        synced_bucket: str,
        facebook_catalog_conn_id: str = "facebook_catalog_default",
        catalog_id: str | None = None,
        aws_conn_id: str | None = "aws_default",
        repair: bool | str = False,
        max_repair_items: int | str = DEFAULT_MAX_REPAIR_ITEMS,
        metrics_namespace: str = "",
        page_size: int = DEFAULT_PAGE_SIZE,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.synced_bucket = synced_bucket
        self.facebook_catalog_conn_id = facebook_catalog_conn_id
        self.catalog_id = catalog_id
        self.aws_conn_id = aws_conn_id
        self.repair = repair
        self.max_repair_items = max_repair_items
        self.metrics_namespace = metrics_namespace
        self.page_size = page_size

    def execute(self, context: Context) -> dict[str, Any]:
        report = reconcile_catalog(
            conn_id=self.facebook_catalog_conn_id,
            catalog_id=self.catalog_id,
            aws_conn_id=self.aws_conn_id,
            synced_bucket=self.synced_bucket,
            run_id=str(context["run_id"]),
            repair=parse_bool(self.repair, "repair"),
            max_repair_items=int(parse_number(self.max_repair_items, "max_repair_items")),
            metrics_namespace=self.metrics_namespace or "",
            page_size=self.page_size,
        )
        return report.to_dict()
