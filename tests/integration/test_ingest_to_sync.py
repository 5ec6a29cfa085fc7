"""Operational database → landing zone → Meta catalog, end to end, on PostgreSQL and MariaDB.

``catalog_ingest_products`` writes each hour's changed products to the landing zone; then
``facebook_catalog_sync`` sends only what really changed to the emulator. Real databases, a real
moto S3 server, real Airflow (``dag.test()``), the Graph API emulator.
"""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest

from facebook_catalog.emulator import EmulatorServer
from facebook_catalog.sync import ledger
from tests.fixtures.airflow import DagRunResult
from tests.fixtures.databases import SqlDatabase
from tests.fixtures.s3 import S3Buckets
from tests.integration.test_ingest_products import (
    CDN,
    QUERY_VARIABLE,
    catalog_product,
    create_shop_schema,
    insert_products,
    set_stock,
    update_product,
    utc,
)
from tests.integration.test_sync_dag import (  # fixtures: the emulator and the sync's settings
    CATALOG,
    emulator_config,  # noqa: F401
    items_batch_calls,
    keys,
    read,
    report_of,
    sync_env,  # noqa: F401
)

pytestmark = pytest.mark.integration

INGEST = "catalog_ingest_products"
SYNC = "facebook_catalog_sync"


@pytest.fixture
def pipeline(
    run_dag: Callable[..., DagRunResult],
    sql_database: SqlDatabase,
    sync_env: dict[str, Any],  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> Callable[..., tuple[DagRunResult, DagRunResult]]:
    """Ingest the hour starting at ``start``, then sync; both runs must end as expected."""
    buckets: S3Buckets = sync_env["buckets"]
    monkeypatch.setenv("FACEBOOK_CATALOG_LANDING_BUCKET", buckets.landing)
    monkeypatch.setenv("AIRFLOW_VAR_FACEBOOK_CATALOG_INGEST_QUERY", json.dumps(QUERY_VARIABLE))
    monkeypatch.setenv("AIRFLOW_VAR_FACEBOOK_CATALOG_MAX_ERROR_RATIO", "0.5")

    def run(start: datetime, sync_conf: dict[str, Any] | None = None) -> tuple[DagRunResult, DagRunResult]:
        ingest = run_dag(INGEST, logical_date=start + timedelta(hours=1))
        assert ingest.state == "success", ingest.output[-4000:]
        sync = run_dag(SYNC, sync_conf or {})
        assert sync.state == "success", sync.output[-4000:]
        return ingest, sync

    return run


def expected_catalog(db: SqlDatabase) -> dict[str, dict[str, str]]:
    """What the catalog must hold, computed from the database itself."""
    q = db.quote
    rows = db.query(
        f"SELECT p.id, p.name, p.description, p.link, p.image_path, p.price, p.currency, p.brand, "
        f"p.{q('condition')}, COALESCE(SUM(s.quantity), 0) FROM products p "
        f"LEFT JOIN stock s ON s.product_id = p.id GROUP BY p.id, p.name, p.description, p.link, "
        f"p.image_path, p.price, p.currency, p.brand, p.{q('condition')}"
    )
    catalog = {}
    for pid, name, description, link, image, price, currency, brand, condition, quantity in rows:
        catalog[pid] = {
            "id": pid,
            "title": name,
            "description": description,
            "link": link,
            "image_link": f"{CDN}{image}",
            "availability": "in stock" if int(quantity) > 0 else "out of stock",
            "price": f"{price} {currency}",
            "brand": brand,
            "condition": condition,
        }
    return catalog


def test_only_products_that_really_changed_reach_meta(
    sql_database: SqlDatabase,
    sync_env: dict[str, Any],  # noqa: F811
    pipeline: Callable[..., tuple[DagRunResult, DagRunResult]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    db = sql_database
    emulator: EmulatorServer = sync_env["emulator"]
    buckets: S3Buckets = sync_env["buckets"]
    day = 10 if db.dialect == "postgres" else 11
    create_shop_schema(db)
    insert_products(
        db,
        [catalog_product(n, name=f"منتج {n}" if n % 3 == 0 else f"Product {n}") for n in range(1, 21)],
        at=utc(day, 9, 20),
    )
    for n in range(1, 21):
        set_stock(db, f"sku-{n:04d}", "baghdad", n % 4, at=utc(day, 9, 20))

    # Hour 1: every product is new. Meta refuses sku-0007 this time.
    emulator.set_faults(reject_item_ids=["sku-0007"])
    _, first = pipeline(utc(day, 9))
    expected = expected_catalog(db)
    catalog = emulator.items(CATALOG)
    assert set(catalog) == set(expected) - {"sku-0007"}
    for pid, fields in catalog.items():
        assert fields == expected[pid], pid
    counts = report_of(buckets, first.run_id)["counts"]
    assert (counts["items_sent"], counts["items_confirmed"]) == (20, 19)
    assert keys(buckets, buckets.landing, "landing/") == []

    # The same hour again (a re-run) an hour later: nothing changed; the item Meta rejected is due
    # for its first retry from the item ledger (after 1 h) and sent again.
    emulator.set_faults()
    monkeypatch.setattr(ledger, "utc_now", lambda: int(time.time()) + 3600)
    _, again = pipeline(utc(day, 9))
    counts = report_of(buckets, again.run_id)["counts"]
    assert (counts["items_sent"], counts["items_unchanged"]) == (1, 19)
    assert emulator.items(CATALOG) == expected_catalog(db)

    # And once more: zero items, no items_batch call at all.
    calls = len(items_batch_calls(emulator))
    _, idle = pipeline(utc(day, 9))
    assert report_of(buckets, idle.run_id)["counts"]["items_sent"] == 0
    assert len(items_batch_calls(emulator)) == calls

    # Hour 2: one price changes, one row is touched without any catalog change.
    update_product(db, "sku-0004", utc(day, 10, 15), price="99.00")
    update_product(db, "sku-0005", utc(day, 10, 20), internal_note="restock next week")
    _, changed = pipeline(utc(day, 10))
    counts = report_of(buckets, changed.run_id)["counts"]
    assert (counts["rows_read"], counts["items_sent"], counts["items_unchanged"]) == (2, 1, 1)
    assert emulator.items(CATALOG)["sku-0004"]["price"] == "99.00 IQD"
    assert emulator.items(CATALOG) == expected_catalog(db)

    # full_sync: the hour's products are sent regardless of the state.
    _, full = pipeline(utc(day, 10), {"full_sync": True})
    assert report_of(buckets, full.run_id)["counts"]["items_sent"] == 2


def test_bad_values_from_the_database_are_rejected_by_the_sync_with_their_reasons(
    sql_database: SqlDatabase,
    sync_env: dict[str, Any],  # noqa: F811
    pipeline: Callable[..., tuple[DagRunResult, DagRunResult]],
) -> None:
    db, emulator = sql_database, sync_env["emulator"]
    buckets: S3Buckets = sync_env["buckets"]
    day = 12 if db.dialect == "postgres" else 13
    create_shop_schema(db, text_prices=True)
    insert_products(
        db,
        [
            catalog_product(1, name=None),
            catalog_product(2, price="call us"),
            catalog_product(3, link="https://shop.example/p/red shoe"),
            catalog_product(4),
        ],
        at=utc(day, 9, 30),
    )
    for n in range(1, 5):
        set_stock(db, f"sku-{n:04d}", "baghdad", 5, at=utc(day, 9, 30))

    _, sync = pipeline(utc(day, 9))

    assert sorted(emulator.items(CATALOG)) == ["sku-0004"]
    report = report_of(buckets, sync.run_id)
    rejected = list(
        csv.DictReader(
            io.StringIO(read(buckets, buckets.synced, report["records"]["rejected_rows"]).decode())
        )
    )
    reasons = {(r["field"], r["value"]): r["reason"] for r in rejected}
    assert "is empty" in reasons[("title", "")]
    assert "price" in {field for field, _ in reasons}
    assert any(field == "link" and "red shoe" in value for field, value in reasons)
    assert all(r["source"].endswith(".csv.gz") and int(r["line"]) > 1 for r in rejected)
    assert report["counts"]["rows_rejected"] == 3
    assert json.dumps(report).count("EAA") == 0
