"""The baseline people write by hand: one PythonOperator, the facebook-business SDK, time.sleep.

It reads the landing files from S3 (csv module), posts them with
``ProductCatalog(catalog_id).create_items_batch(...)`` 5,000 requests a call, then polls
``get_check_batch_request_status`` with ``time.sleep`` between polls until every handle is
final, holding its worker slot the whole time. The SDK is pointed at the connection's host (the
Graph API emulator in the benchmark) by setting ``GRAPH`` on its ``FacebookSession``.

Trigger with the same conf as ``facebook_catalog_sync``: ``landing_bucket``,
``landing_prefix``, ``conn_id``, ``catalog_id``, ``poll_interval``.
"""

from __future__ import annotations

import csv
import io
import time
from datetime import datetime
from typing import Any

from airflow.providers.standard.operators.python import PythonOperator
from airflow.sdk import DAG

FINAL = ("finished", "error", "canceled")


def sync_with_the_sdk(params: dict[str, Any]) -> dict[str, Any]:
    import warnings

    from airflow.providers.amazon.aws.hooks.s3 import S3Hook
    from airflow.sdk import BaseHook
    from facebook_business.adobjects.productcatalog import ProductCatalog
    from facebook_business.api import FacebookAdsApi
    from facebook_business.session import FacebookSession

    warnings.filterwarnings("ignore", message="value of requests might not be compatible")
    s3 = S3Hook(aws_conn_id="aws_default")
    bucket = params["landing_bucket"]
    rows: list[dict[str, str]] = []
    for key in sorted(s3.list_keys(bucket_name=bucket, prefix=params["landing_prefix"]) or []):
        rows.extend(csv.DictReader(io.StringIO(s3.read_key(key, bucket))))

    conn = BaseHook.get_connection(params["conn_id"])
    session = FacebookSession(access_token=conn.password)
    session.GRAPH = conn.host
    catalog = ProductCatalog(str(params["catalog_id"]), api=FacebookAdsApi(session, api_version="v25.0"))
    handles: list[str] = []
    for start in range(0, len(rows), 5000):
        requests = [
            {"method": "UPDATE", "data": {**row, "condition": "new"}} for row in rows[start : start + 5000]
        ]
        response = catalog.create_items_batch(
            params={"item_type": "PRODUCT_ITEM", "allow_upsert": True, "requests": requests}
        )
        handles.extend(response["handles"])

    statuses: dict[str, str] = {}
    while len(statuses) < len(handles):
        for handle in handles:
            if handle in statuses:
                continue
            for status in catalog.get_check_batch_request_status(params={"handle": handle}):
                if status["status"] in FINAL:
                    statuses[handle] = status["status"]
        if len(statuses) < len(handles):
            time.sleep(float(params["poll_interval"]))
    return {"items": len(rows), "handles": handles, "statuses": statuses}


with DAG(
    dag_id="bench_baseline_sdk_sync",
    schedule=None,
    start_date=datetime(2025, 1, 1),
    catchup=False,
    tags=["benchmark"],
    doc_md=__doc__,
):
    PythonOperator(task_id="sync_with_the_sdk", python_callable=sync_with_the_sdk)
