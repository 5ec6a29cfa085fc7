"""Example: upsert generated products into a catalog with the deferrable items_batch operator.

Point the ``facebook_catalog_default`` connection at Meta (or at ``fb-catalog emulator``) and
trigger with ``{"product_count": 12345}``. The task posts calls of at most 5,000 items, then
defers while Meta processes them, so it holds no worker slot during the wait.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from airflow.sdk import DAG, Param, task

from facebook_catalog.operators.items_batch import FacebookCatalogItemsBatchOperator

with DAG(
    dag_id="example_facebook_catalog_items_batch",
    schedule=None,
    start_date=datetime(2025, 1, 1),
    catchup=False,
    params={
        "product_count": Param(100, type="integer", minimum=0, description="products to generate"),
        "catalog_id": Param(None, type=["null", "string"], description="overrides the connection's"),
    },
    tags=["example", "facebook_catalog"],
    doc_md=__doc__,
) as dag:

    @task
    def generate_products(params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        product_count = int((params or {}).get("product_count") or 0)
        return [
            {
                "id": f"example-{i:06d}",
                "title": f"Example product {i}",
                "description": f"Generated product number {i}",
                "availability": "in stock",
                "condition": "new",
                "price": f"{1000 + i} IQD",
                "link": f"https://shop.example.com/p/{i}",
                "image_link": f"https://cdn.example.com/p/{i}.jpg",
                "brand": "Example",
            }
            for i in range(product_count)
        ]

    FacebookCatalogItemsBatchOperator(
        task_id="upsert_products",
        items=generate_products(),  # type: ignore[arg-type]
        catalog_id="{{ params.catalog_id or '' }}",
        poll_interval=1,
        timeout=600,
    )
