"""The ingestion DAG ``catalog_ingest_products`` end to end: real PostgreSQL and MariaDB, a real moto
S3 server, real Airflow (``dag.test()``).

Each test builds a shop schema and data set in a fresh database (both dialects), stamps
``updated_at`` explicitly at known moments, runs the DAG for consecutive hourly intervals and
reads the gzip CSV it wrote back from S3, comparing exact rows and values.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from facebook_catalog.dags.assets import landing_asset
from facebook_catalog.ingest.query import ProductQueryConfig, render_product_query
from facebook_catalog.operators.ingest import open_streaming_cursor
from tests.fixtures.airflow import DagRunResult
from tests.fixtures.databases import SqlDatabase
from tests.fixtures.s3 import S3Buckets

pytestmark = pytest.mark.integration

DAG_ID = "catalog_ingest_products"
TASK_ID = "write_changed_products"
HEADER = ["id", "title", "description", "link", "image_link", "availability", "price", "brand"]
FULL_HEADER = [*HEADER, "condition", "sale_price"]
CDN = "https://cdn.shop.example/"
# The Variable's mapping in these tests: the default, plus a CDN for image paths and the two
# optional columns (``condition`` is a reserved word in MySQL: the quoting is exercised too).
QUERY_VARIABLE = {"image_base_url": CDN, "condition_column": "condition", "sale_price_column": "sale_price"}

RunInterval = Callable[..., DagRunResult]


# --------------------------------------------------------------------------- the shop schema

PRODUCT_COLUMNS = (
    "id",
    "name",
    "description",
    "link",
    "image_path",
    "price",
    "currency",
    "brand",
    "condition",
    "sale_price",
    "internal_note",
    "updated_at",
)


def create_shop_schema(db: SqlDatabase, *, text_prices: bool = False) -> None:
    """``products`` and ``stock`` as a typical shop has them; ``text_prices``: a legacy text price."""
    q = db.quote
    if db.dialect == "postgres":
        price_type = "varchar(32)" if text_prices else "numeric(12,2)"
        statements = [
            f"""CREATE TABLE products (
                id varchar(64) PRIMARY KEY,
                name varchar(300),
                description text,
                link varchar(2000),
                image_path varchar(500),
                price {price_type},
                currency char(3),
                brand varchar(100),
                {q("condition")} varchar(20),
                sale_price {price_type},
                internal_note text,
                updated_at timestamptz NOT NULL
            )""",
            "CREATE INDEX products_updated_at ON products (updated_at)",
            """CREATE TABLE stock (
                product_id varchar(64) NOT NULL REFERENCES products (id),
                warehouse varchar(20) NOT NULL,
                quantity integer NOT NULL,
                updated_at timestamptz NOT NULL,
                PRIMARY KEY (product_id, warehouse)
            )""",
            "CREATE INDEX stock_updated_at ON stock (updated_at)",
        ]
    else:
        price_type = "VARCHAR(32)" if text_prices else "DECIMAL(12,2)"
        statements = [
            f"""CREATE TABLE products (
                id VARCHAR(64) PRIMARY KEY,
                name VARCHAR(300),
                description TEXT,
                link VARCHAR(2000),
                image_path VARCHAR(500),
                price {price_type},
                currency CHAR(3),
                brand VARCHAR(100),
                {q("condition")} VARCHAR(20),
                sale_price {price_type},
                internal_note TEXT,
                updated_at DATETIME(6) NOT NULL,
                KEY products_updated_at (updated_at)
            ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
            """CREATE TABLE stock (
                product_id VARCHAR(64) NOT NULL,
                warehouse VARCHAR(20) NOT NULL,
                quantity INT NOT NULL,
                updated_at DATETIME(6) NOT NULL,
                PRIMARY KEY (product_id, warehouse),
                KEY stock_updated_at (updated_at),
                FOREIGN KEY (product_id) REFERENCES products (id)
            ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
        ]
    db.execute_many([(statement, None) for statement in statements])


def stamp(db: SqlDatabase, moment: datetime) -> datetime:
    """A moment as the column stores it: timestamptz takes it aware, DATETIME as naive UTC."""
    return moment if db.dialect == "postgres" else moment.astimezone(timezone.utc).replace(tzinfo=None)


def insert_product_sql(db: SqlDatabase) -> str:
    columns = ", ".join(db.quote(column) for column in PRODUCT_COLUMNS)
    return f"INSERT INTO products ({columns}) VALUES ({', '.join(['%s'] * len(PRODUCT_COLUMNS))})"


def product_row(db: SqlDatabase, product: dict[str, Any], at: datetime) -> list[Any]:
    values = {"internal_note": None, "condition": None, "sale_price": None, **product}
    return [stamp(db, at) if column == "updated_at" else values.get(column) for column in PRODUCT_COLUMNS]


def insert_products(db: SqlDatabase, products: Sequence[dict[str, Any]], at: datetime) -> None:
    db.execute_many([(insert_product_sql(db), product_row(db, product, at)) for product in products])


def update_product_sql(db: SqlDatabase, changes: Sequence[str]) -> str:
    assignments = ", ".join(f"{db.quote(column)} = %s" for column in (*changes, "updated_at"))
    return f"UPDATE products SET {assignments} WHERE id = %s"


def update_product(db: SqlDatabase, product_id: str, at: datetime, **changes: Any) -> None:
    db.execute(update_product_sql(db, list(changes)), [*changes.values(), stamp(db, at), product_id])


def set_stock(db: SqlDatabase, product_id: str, warehouse: str, quantity: int, at: datetime) -> None:
    db.execute("DELETE FROM stock WHERE product_id = %s AND warehouse = %s", [product_id, warehouse])
    db.execute(
        "INSERT INTO stock (product_id, warehouse, quantity, updated_at) VALUES (%s, %s, %s, %s)",
        [product_id, warehouse, quantity, stamp(db, at)],
    )


def catalog_product(number: int, **overrides: Any) -> dict[str, Any]:
    product = {
        "id": f"sku-{number:04d}",
        "name": f"Product {number}",
        "description": f"Description of product {number}",
        "link": f"https://shop.example/p/{number}",
        "image_path": f"img/{number}.jpg",
        "price": f"{number}.50",
        "currency": "IQD",
        "brand": "Tigris",
        "condition": "new",
    }
    product.update(overrides)
    return product


# --------------------------------------------------------------------------- helpers


def utc(day: int, hour: int, minute: int = 0, second: int = 0) -> datetime:
    return datetime(2026, 3, day, hour, minute, second, tzinfo=timezone.utc)


def object_key(start: datetime) -> str:
    end = start + timedelta(hours=1)
    return f"landing/ingest/{start:%Y-%m-%d}/{start:%H%M}-{end:%H%M}.csv.gz"


def read_csv(buckets: S3Buckets, key: str) -> list[list[str]]:
    body = buckets.hook.get_conn().get_object(Bucket=buckets.landing, Key=key)["Body"].read()
    text = gzip.decompress(body).decode("utf-8")
    return list(csv.reader(io.StringIO(text, newline="")))


def landing_keys(buckets: S3Buckets) -> list[str]:
    return sorted(buckets.hook.list_keys(bucket_name=buckets.landing, prefix="landing/") or [])


def asset_events(run: DagRunResult) -> list[dict[str, Any]]:
    from airflow.models.asset import AssetEvent
    from airflow.utils.session import create_session

    with create_session() as session:
        events = (
            session.query(AssetEvent)
            .filter_by(source_dag_id=DAG_ID, source_run_id=run.run_id, source_task_id=TASK_ID)
            .all()
        )
        return [{"uri": event.asset.uri, "extra": dict(event.extra or {})} for event in events]


@pytest.fixture
def run_interval(
    run_dag: Callable[..., DagRunResult],
    sql_database: SqlDatabase,
    s3_buckets: S3Buckets,
    monkeypatch: pytest.MonkeyPatch,
) -> RunInterval:
    """Run the DAG for the hour starting at ``start`` (its logical date is the hour's end)."""
    # As a deployment sets it: the Variable for the tasks, the environment for the Asset.
    monkeypatch.setenv("AIRFLOW_VAR_FACEBOOK_CATALOG_LANDING_BUCKET", s3_buckets.landing)
    monkeypatch.setenv("FACEBOOK_CATALOG_LANDING_BUCKET", s3_buckets.landing)
    monkeypatch.setenv("AIRFLOW_VAR_FACEBOOK_CATALOG_INGEST_QUERY", json.dumps(QUERY_VARIABLE))

    def run(start: datetime, conf: dict[str, Any] | None = None, expect: str = "success") -> DagRunResult:
        result = run_dag(DAG_ID, conf=conf, logical_date=start + timedelta(hours=1))
        assert result.state == expect, result.output[-5000:]
        return result

    return run


# --------------------------------------------------------------------------- tests


def test_each_interval_holds_exactly_what_changed_in_it(
    sql_database: SqlDatabase, s3_buckets: S3Buckets, run_interval: RunInterval
) -> None:
    db = sql_database
    day = 2 if db.dialect == "postgres" else 3
    first, second, third = utc(day, 10), utc(day, 11), utc(day, 12)
    create_shop_schema(db)
    # The catalog as it stood before the first interval (and before its lookback).
    insert_products(
        db,
        [
            catalog_product(1, name="Linen shirt", price="34.50"),
            catalog_product(2, name="Wool scarf"),
            catalog_product(3, name="Leather belt"),
            catalog_product(4, name="Canvas bag"),
            catalog_product(5, name="Cotton socks"),
            catalog_product(6, name="Silk tie"),
        ],
        at=utc(day, 8),
    )
    for number in range(1, 7):
        set_stock(db, f"sku-{number:04d}", "baghdad", 10, at=utc(day, 8))

    # Interval 1 [10:00, 11:00) with its 5-minute lookback from 09:55.
    update_product(db, "sku-0004", utc(day, 9, 57), price="19.99")  # inside the lookback
    insert_products(
        db,
        [
            catalog_product(
                7,
                name="كنزة صوفية",  # Arabic: "wool sweater"
                description='Warm, "chunky" knit\nHand wash only',
                price="25000",
                sale_price="21000.00",
            )
        ],
        at=utc(day, 10, 10),
    )
    set_stock(db, "sku-0007", "baghdad", 3, at=utc(day, 10, 10))
    set_stock(db, "sku-0007", "basra", 2, at=utc(day, 10, 10))
    update_product(db, "sku-0001", utc(day, 10, 30), price="29.00", sale_price="25.00")
    # A change the catalog does not show: still a changed row for the ingestion.
    update_product(db, "sku-0002", utc(day, 10, 40), internal_note="reorder in May")
    # Sold out: no stock left, product row stamped by the shop's application.
    set_stock(db, "sku-0003", "baghdad", 0, at=utc(day, 10, 20))
    update_product(db, "sku-0003", utc(day, 10, 20))
    # Inside the next interval's lookback too: written in both files (harmless duplicate).
    insert_products(db, [catalog_product(8, name="Straw hat", currency=None)], at=utc(day, 10, 57))

    # A long transaction: updated_at stamped at 10:58 when it began, committed after the run.
    late_writer = db.connect()
    try:
        cursor = late_writer.cursor()
        cursor.execute(
            update_product_sql(db, ["name", "price"]),
            ["Cotton socks (3 pairs)", "12.00", stamp(db, utc(day, 10, 58)), "sku-0005"],
        )
        first_run = run_interval(first)
        late_writer.commit()
    finally:
        late_writer.close()

    assert first_run.task_states == {TASK_ID: "success"}
    summary = first_run.xcom(TASK_ID)
    assert summary["key"] == object_key(first)
    assert summary["rows"] == 6
    assert summary["window_start"] == utc(day, 9, 55).isoformat()
    assert summary["window_end"] == second.isoformat()
    assert read_csv(s3_buckets, object_key(first)) == [
        FULL_HEADER,
        [
            "sku-0001",
            "Linen shirt",
            "Description of product 1",
            "https://shop.example/p/1",
            f"{CDN}img/1.jpg",
            "in stock",
            "29.00 IQD",
            "Tigris",
            "new",
            "25.00 IQD",
        ],
        [
            "sku-0002",
            "Wool scarf",
            "Description of product 2",
            "https://shop.example/p/2",
            f"{CDN}img/2.jpg",
            "in stock",
            "2.50 IQD",
            "Tigris",
            "new",
            "",
        ],
        [
            "sku-0003",
            "Leather belt",
            "Description of product 3",
            "https://shop.example/p/3",
            f"{CDN}img/3.jpg",
            "out of stock",
            "3.50 IQD",
            "Tigris",
            "new",
            "",
        ],
        [
            "sku-0004",
            "Canvas bag",
            "Description of product 4",
            "https://shop.example/p/4",
            f"{CDN}img/4.jpg",
            "in stock",
            "19.99 IQD",
            "Tigris",
            "new",
            "",
        ],
        [
            "sku-0007",
            "كنزة صوفية",
            'Warm, "chunky" knit\nHand wash only',
            "https://shop.example/p/7",
            f"{CDN}img/7.jpg",
            "in stock",
            "25000.00 IQD",
            "Tigris",
            "new",
            "21000.00 IQD",
        ],
        [
            "sku-0008",
            "Straw hat",
            "Description of product 8",
            "https://shop.example/p/8",
            f"{CDN}img/8.jpg",
            "out of stock",
            "8.50",
            "Tigris",
            "new",
            "",
        ],
    ]
    assert asset_events(first_run) == [
        {
            "uri": landing_asset(s3_buckets.landing).uri,
            "extra": {"bucket": s3_buckets.landing, "key": object_key(first), "rows": 6},
        }
    ]

    # Interval 2 [11:00, 12:00), window from 10:55: the late commit, the overlap, a new change.
    update_product(db, "sku-0006", utc(day, 11, 30), description="Pure silk, hand rolled edges")
    second_run = run_interval(second)
    assert second_run.xcom(TASK_ID)["rows"] == 3
    assert read_csv(s3_buckets, object_key(second)) == [
        FULL_HEADER,
        [
            "sku-0005",
            "Cotton socks (3 pairs)",
            "Description of product 5",
            "https://shop.example/p/5",
            f"{CDN}img/5.jpg",
            "in stock",
            "12.00 IQD",
            "Tigris",
            "new",
            "",
        ],
        [
            "sku-0006",
            "Silk tie",
            "Pure silk, hand rolled edges",
            "https://shop.example/p/6",
            f"{CDN}img/6.jpg",
            "in stock",
            "6.50 IQD",
            "Tigris",
            "new",
            "",
        ],
        [
            "sku-0008",
            "Straw hat",
            "Description of product 8",
            "https://shop.example/p/8",
            f"{CDN}img/8.jpg",
            "out of stock",
            "8.50",
            "Tigris",
            "new",
            "",
        ],
    ]

    # Interval 3: nothing changed. No file, the task is skipped, no asset event.
    third_run = run_interval(third)
    assert third_run.task_states == {TASK_ID: "skipped"}
    assert asset_events(third_run) == []
    assert landing_keys(s3_buckets) == [object_key(first), object_key(second)]


def test_rerunning_an_interval_overwrites_its_own_object(
    sql_database: SqlDatabase, s3_buckets: S3Buckets, run_interval: RunInterval
) -> None:
    db = sql_database
    day = 4 if db.dialect == "postgres" else 5
    hour = utc(day, 14)
    create_shop_schema(db)
    insert_products(db, [catalog_product(1), catalog_product(2)], at=utc(day, 14, 5))
    set_stock(db, "sku-0001", "baghdad", 4, at=utc(day, 14, 5))

    run_interval(hour)
    key = object_key(hour)
    first_body = s3_buckets.hook.get_conn().get_object(Bucket=s3_buckets.landing, Key=key)["Body"].read()

    # The same interval again, nothing changed: the same key, byte for byte the same file.
    run_interval(hour)
    assert landing_keys(s3_buckets) == [key]
    again = s3_buckets.hook.get_conn().get_object(Bucket=s3_buckets.landing, Key=key)["Body"].read()
    assert again == first_body

    # A backfill after more changes landed in that past hour: the object is replaced, not added to.
    update_product(db, "sku-0002", utc(day, 14, 50), price="99.00")
    insert_products(db, [catalog_product(3)], at=utc(day, 14, 55))
    run_interval(hour)
    assert landing_keys(s3_buckets) == [key]
    rows = read_csv(s3_buckets, key)
    assert [row[0] for row in rows[1:]] == ["sku-0001", "sku-0002", "sku-0003"]
    assert rows[2][6] == "99.00 IQD"
    assert [row[5] for row in rows[1:]] == ["in stock", "out of stock", "out of stock"]


def test_bad_values_from_the_database_reach_the_csv_as_they_are(
    sql_database: SqlDatabase, s3_buckets: S3Buckets, run_interval: RunInterval
) -> None:
    """The ingestion copies; judging is the sync's job (it rejects these rows with their reasons)."""
    db = sql_database
    day = 6 if db.dialect == "postgres" else 7
    hour = utc(day, 9)
    create_shop_schema(db, text_prices=True)
    insert_products(
        db,
        [
            catalog_product(1, name=None),
            catalog_product(2, price="call us"),
            catalog_product(3, price="12,50"),
            catalog_product(
                4,
                link="https://shop.example/p/red shoe",
                image_path="img/red shoe.jpg",
            ),
            catalog_product(5, description=None, brand=None, image_path=None, price=None),
            catalog_product(6, price="  7.25 ", image_path="https://images.example/already/absolute.jpg"),
        ],
        at=utc(day, 9, 30),
    )
    run_interval(hour)
    rows = read_csv(s3_buckets, object_key(hour))
    assert rows[0] == FULL_HEADER
    by_id = {row[0]: dict(zip(FULL_HEADER, row, strict=True)) for row in rows[1:]}
    assert by_id["sku-0001"]["title"] == ""
    assert by_id["sku-0002"]["price"] == "call us"
    assert by_id["sku-0003"]["price"] == "12,50"
    assert by_id["sku-0004"]["link"] == "https://shop.example/p/red shoe"
    assert by_id["sku-0004"]["image_link"] == f"{CDN}img/red shoe.jpg"
    assert {k: by_id["sku-0005"][k] for k in ("description", "brand", "image_link", "price")} == {
        "description": "",
        "brand": "",
        "image_link": "",
        "price": "",
    }
    assert by_id["sku-0006"]["price"] == "7.25 IQD"
    assert by_id["sku-0006"]["image_link"] == "https://images.example/already/absolute.jpg"


def test_rows_are_streamed_in_batches(
    sql_database: SqlDatabase, s3_buckets: S3Buckets, run_interval: RunInterval
) -> None:
    db = sql_database
    day = 8 if db.dialect == "postgres" else 9
    hour = utc(day, 16)
    create_shop_schema(db)
    insert_products(db, [catalog_product(n) for n in range(1, 24)], at=utc(day, 16, 20))

    run = run_interval(hour, conf={"fetch_size": 5})
    summary = run.xcom(TASK_ID)
    assert (summary["rows"], summary["batches"]) == (23, 5)
    assert "Fetched batch 5: 3 row(s), 23 so far" in run.output
    rows = read_csv(s3_buckets, object_key(hour))
    assert [row[0] for row in rows[1:]] == [f"sku-{n:04d}" for n in range(1, 24)]

    # The cursor is a server-side one: rows stay on the server until fetched.
    from airflow.providers.common.compat.sdk import BaseHook

    hook = BaseHook.get_connection(db.conn_id).get_hook()
    connection = hook.get_conn()
    try:
        rendered = render_product_query(ProductQueryConfig(), db.dialect, hour, hour + timedelta(hours=1))
        cursor = open_streaming_cursor(connection, db.dialect)
        cursor.execute(rendered.sql, rendered.parameters)
        assert len(cursor.fetchmany(5)) == 5
        if db.dialect == "postgres":
            probe = connection.cursor()
            probe.execute("SELECT name FROM pg_cursors")
            assert [row[0] for row in probe.fetchall()] == [cursor.name]
            probe.close()
        else:
            from MySQLdb.cursors import SSCursor

            assert isinstance(cursor, SSCursor)
        assert len(cursor.fetchall()) == 18
        cursor.close()
    finally:
        connection.rollback()
        connection.close()


def test_run_params_override_the_variables_and_stock_changes_select_products(
    sql_database: SqlDatabase, s3_buckets: S3Buckets, run_interval: RunInterval
) -> None:
    db = sql_database
    day = 10 if db.dialect == "postgres" else 11
    hour = utc(day, 20)
    create_shop_schema(db)
    insert_products(db, [catalog_product(n) for n in range(1, 4)], at=utc(day, 1))
    for number in range(1, 4):
        set_stock(db, f"sku-{number:04d}", "baghdad", 5, at=utc(day, 1))
    # Only the stock rows change: with stock.updated_at_column mapped, those products are selected.
    set_stock(db, "sku-0002", "baghdad", 0, at=utc(day, 20, 15))
    set_stock(db, "sku-0003", "erbil", 1, at=utc(day, 19, 58))  # in the default lookback only
    update_product(db, "sku-0001", utc(day, 20, 40), name="Renamed")

    query = {
        "link_column": "image_path",  # any mapping: shows that the param, not the Variable, is used
        "link_base_url": "https://shop.example/",
        "currency_column": None,
        "stock": {"updated_at_column": "updated_at"},
    }
    run = run_interval(hour, conf={"query": query, "lookback_minutes": 0})
    assert run.xcom(TASK_ID)["window_start"] == hour.isoformat()
    assert read_csv(s3_buckets, object_key(hour)) == [
        HEADER,
        [
            "sku-0001",
            "Renamed",
            "Description of product 1",
            "https://shop.example/img/1.jpg",
            "img/1.jpg",
            "in stock",
            "1.50",
            "Tigris",
        ],
        [
            "sku-0002",
            "Product 2",
            "Description of product 2",
            "https://shop.example/img/2.jpg",
            "img/2.jpg",
            "out of stock",
            "2.50",
            "Tigris",
        ],
    ]


def test_mysql_connector_python_client_streams_the_same_rows(
    mariadb_database: SqlDatabase,
    s3_buckets: S3Buckets,
    run_dag: Callable[..., DagRunResult],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The MySQL provider's pure-Python client (connection extra ``client``) works as well as mysqlclient."""
    db = mariadb_database
    monkeypatch.setenv(
        "AIRFLOW_CONN_PRODUCTS_DB",
        json.dumps(
            {
                "conn_type": "mysql",
                "host": "127.0.0.1",
                "port": 3306,
                "login": "root",
                "schema": db.name,
                "extra": {"client": "mysql-connector-python"},
            }
        ),
    )
    # Only the Variable: it alone decides where the file goes (the Asset keeps the default name).
    monkeypatch.setenv("AIRFLOW_VAR_FACEBOOK_CATALOG_LANDING_BUCKET", s3_buckets.landing)
    monkeypatch.delenv("FACEBOOK_CATALOG_LANDING_BUCKET", raising=False)
    hour = utc(12, 7)
    create_shop_schema(db)
    insert_products(db, [catalog_product(n, name=f"منتج {n}") for n in range(1, 8)], at=utc(12, 7, 30))
    set_stock(db, "sku-0002", "baghdad", 9, at=utc(12, 7, 30))

    run = run_dag(DAG_ID, conf={"fetch_size": 3}, logical_date=hour + timedelta(hours=1))
    assert run.state == "success", run.output[-5000:]
    assert (run.xcom(TASK_ID)["rows"], run.xcom(TASK_ID)["batches"]) == (7, 3)
    rows = read_csv(s3_buckets, object_key(hour))
    assert rows[0] == HEADER
    assert rows[2] == [
        "sku-0002",
        "منتج 2",
        "Description of product 2",
        "https://shop.example/p/2",
        "img/2.jpg",
        "in stock",
        "2.50 IQD",
        "Tigris",
    ]
    assert [row[0] for row in rows[1:]] == [f"sku-{n:04d}" for n in range(1, 8)]
