"""The ingestion query: rendering per dialect, identifier validation, value formatting, landing keys.

No database here: tests/integration/test_ingest_products.py runs the same queries on real
PostgreSQL and MariaDB.
"""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest

from facebook_catalog.ingest.query import (
    DIALECTS,
    IDS_PER_QUERY,
    IN_STOCK,
    OUT_OF_STOCK,
    ProductQueryConfig,
    ProductRowFormatter,
    QueryConfigError,
    StockJoin,
    availability_from_quantity,
    ingest_object_key,
    join_url,
    price_text,
    quote_identifier,
    render_all_products,
    render_product_query,
    render_products_by_id,
    text_value,
    to_database_time,
    validate_identifier,
)

START = datetime(2026, 3, 2, 9, 55, tzinfo=timezone.utc)
END = datetime(2026, 3, 2, 11, 0, tzinfo=timezone.utc)


def render(config: ProductQueryConfig | None = None, dialect: Any = "postgres") -> Any:
    return render_product_query(config or ProductQueryConfig(), dialect, START, END)


# --------------------------------------------------------------------------- rendering


def test_default_query_for_postgresql() -> None:
    rendered = render()
    assert rendered.sql == (
        'SELECT p."id" AS "id",\n'
        '       p."name" AS "title",\n'
        '       p."description" AS "description",\n'
        '       p."link" AS "link",\n'
        '       p."image_path" AS "image_link",\n'
        '       p."price" AS "price",\n'
        '       p."currency" AS "currency",\n'
        '       p."brand" AS "brand",\n'
        '       (SELECT SUM(s."quantity") FROM "stock" s WHERE s."product_id" = p."id") AS "quantity"\n'
        'FROM "products" p\n'
        'WHERE p."updated_at" >= %(window_start)s AND p."updated_at" < %(window_end)s\n'
        'ORDER BY p."id"'
    )
    assert rendered.parameters == {
        "window_start": datetime(2026, 3, 2, 9, 55),
        "window_end": datetime(2026, 3, 2, 11, 0),
    }
    assert rendered.session_sql == "SELECT set_config('TimeZone', %(timezone)s, false)"
    assert rendered.session_parameters == {"timezone": "UTC"}


def test_default_query_for_mysql_quotes_with_backticks() -> None:
    rendered = render(ProductQueryConfig(condition_column="condition"), "mysql")
    assert rendered.sql.startswith("SELECT p.`id` AS `id`,\n       p.`name` AS `title`,")
    # CONDITION is a reserved word in MySQL: quoting makes it usable as a column name.
    assert "p.`condition` AS `condition`" in rendered.sql
    assert (
        "FROM `products` p\nWHERE p.`updated_at` >= %(window_start)s AND p.`updated_at` < %(window_end)s"
        in (rendered.sql)
    )
    assert '"' not in rendered.sql
    assert rendered.session_sql == "SET time_zone = %(timezone)s"
    assert rendered.session_parameters == {"timezone": "+00:00"}


@pytest.mark.parametrize("dialect", DIALECTS)
def test_stock_changes_select_products_through_a_union_of_ids(dialect: Any) -> None:
    config = ProductQueryConfig(stock=StockJoin(updated_at_column="changed_at"), table="shop.products")
    sql = render(config, dialect).sql
    q = '"' if dialect == "postgres" else "`"
    assert f"FROM {q}shop{q}.{q}products{q} p\nJOIN (SELECT c.{q}id{q} AS changed_id" in sql
    assert "UNION" in sql
    assert f"WHERE s.{q}changed_at{q} >= %(window_start)s AND s.{q}changed_at{q} < %(window_end)s" in sql
    assert "\nWHERE p." not in sql
    assert sql.endswith(f"ORDER BY p.{q}id{q}")


def test_optional_columns_are_selected_only_when_mapped() -> None:
    config = ProductQueryConfig(
        description_column=None,
        currency_column=None,
        brand_column=None,
        brand_value="Tigris",
        stock=None,
        availability_column="stock_status",
        sale_price_column="promo_price",
    )
    sql = render(config).sql
    assert '"description"' not in sql
    assert '"currency"' not in sql
    assert '"brand"' not in sql
    assert "stock" not in sql.replace('"stock_status"', "")
    assert 'p."stock_status" AS "availability"' in sql
    assert 'p."promo_price" AS "sale_price"' in sql
    assert config.csv_columns == (
        "id",
        "title",
        "description",
        "link",
        "image_link",
        "availability",
        "price",
        "brand",
        "sale_price",
    )


def test_values_travel_only_as_bind_parameters() -> None:
    config = ProductQueryConfig(
        image_base_url="https://cdn.example/'; DROP TABLE products; --",
        link_base_url="https://shop.example/%(window_start)s",
        brand_value="O'Brien",
    )
    for dialect in DIALECTS:
        rendered = render(config, dialect)
        assert "cdn.example" not in rendered.sql
        assert "shop.example" not in rendered.sql
        assert "Brien" not in rendered.sql
        assert "2026" not in rendered.sql
        assert rendered.sql.count("%(") == 2
        assert set(rendered.parameters) == {"window_start", "window_end"}


def test_bounds_are_converted_to_the_database_time_zone() -> None:
    rendered = render(ProductQueryConfig(timezone="Asia/Baghdad"), "mysql")
    assert rendered.parameters == {
        "window_start": datetime(2026, 3, 2, 12, 55),
        "window_end": datetime(2026, 3, 2, 14, 0),
    }
    assert rendered.session_parameters == {"timezone": "Asia/Baghdad"}
    assert render(ProductQueryConfig(timezone="Asia/Baghdad")).session_parameters == {
        "timezone": "Asia/Baghdad"
    }
    assert to_database_time(datetime(2026, 7, 1, 12, tzinfo=timezone.utc), "Europe/Berlin") == datetime(
        2026, 7, 1, 14
    )
    with pytest.raises(ValueError, match="no time zone"):
        to_database_time(datetime(2026, 7, 1, 12), "UTC")


def test_an_empty_window_and_an_unknown_dialect_are_refused() -> None:
    with pytest.raises(ValueError, match="empty window"):
        render_product_query(ProductQueryConfig(), "postgres", END, START)
    with pytest.raises(QueryConfigError, match="unsupported SQL dialect 'sqlite'"):
        render_product_query(ProductQueryConfig(), "sqlite", START, END)  # type: ignore[arg-type]


def test_a_custom_query_is_used_as_given() -> None:
    sql = (
        "SELECT * FROM v_feed WHERE changed >= %(window_start)s AND changed < %(window_end)s AND x LIKE 'a%%'"
    )
    rendered = render(ProductQueryConfig.from_mapping({"sql": sql}), "mysql")
    assert rendered.sql == sql
    assert set(rendered.parameters) == {"window_start", "window_end"}
    with pytest.raises(QueryConfigError, match=r"must filter on %\(window_end\)s"):
        ProductQueryConfig(sql="SELECT * FROM v_feed WHERE changed >= %(window_start)s")


# --------------------------------------------------------------------------- identifiers


@pytest.mark.parametrize(
    "name",
    [
        "products; DROP TABLE products",
        'name" FROM secrets --',
        "name` FROM secrets #",
        "price/*",
        "a b",
        "1column",
        "",
        "x" * 64,
        "col\n",
        "naïve",
        "a.b",
        "%(window_start)s",
    ],
)
def test_identifiers_that_are_not_plain_names_are_refused(name: str) -> None:
    with pytest.raises(QueryConfigError, match="title_column"):
        ProductQueryConfig(title_column=name)


@pytest.mark.parametrize(
    "table", ["a.b.c", "shop..products", ".products", 'shop."products"', "shop.products;"]
)
def test_table_names_allow_one_schema_part_only(table: str) -> None:
    with pytest.raises(QueryConfigError, match="table"):
        ProductQueryConfig(table=table)


def test_valid_identifiers_are_quoted_per_dialect() -> None:
    assert validate_identifier("shop.products", "table", qualified=True) == "shop.products"
    assert quote_identifier("shop.products", "postgres") == '"shop"."products"'
    assert quote_identifier("Product_Name2", "mysql") == "`Product_Name2`"
    with pytest.raises(QueryConfigError):
        quote_identifier('x"y', "postgres")
    with pytest.raises(QueryConfigError, match="must be a string"):
        validate_identifier(7, "id_column")


def test_nested_stock_identifiers_are_validated() -> None:
    with pytest.raises(QueryConfigError, match=r"stock\.quantity_column"):
        ProductQueryConfig.from_mapping({"stock": {"quantity_column": "qty) OR 1=1 --"}})


# --------------------------------------------------------------------------- configuration


def test_the_documented_default_configuration() -> None:
    assert ProductQueryConfig.from_mapping(None) == ProductQueryConfig()
    assert ProductQueryConfig.from_mapping({}) == ProductQueryConfig()
    assert json.loads(json.dumps(ProductQueryConfig().to_dict())) == {
        "table": "products",
        "id_column": "id",
        "updated_at_column": "updated_at",
        "title_column": "name",
        "description_column": "description",
        "link_column": "link",
        "link_base_url": None,
        "image_column": "image_path",
        "image_base_url": None,
        "price_column": "price",
        "currency_column": "currency",
        "brand_column": "brand",
        "brand_value": None,
        "stock": {
            "table": "stock",
            "product_id_column": "product_id",
            "quantity_column": "quantity",
            "updated_at_column": None,
        },
        "quantity_column": None,
        "availability_column": None,
        "condition_column": None,
        "sale_price_column": None,
        "timezone": "UTC",
        "sql": None,
    }


def test_partial_settings_keep_the_other_defaults() -> None:
    config = ProductQueryConfig.from_mapping({"title_column": "title", "stock": {"table": "inventory"}})
    assert config.title_column == "title"
    assert config.stock == StockJoin(table="inventory")
    assert config.price_column == "price"


def test_another_availability_source_turns_the_default_stock_join_off() -> None:
    assert ProductQueryConfig.from_mapping({"quantity_column": "qty"}).stock is None
    assert ProductQueryConfig.from_mapping({"availability_column": "status"}).stock is None
    assert ProductQueryConfig.from_mapping({"quantity_column": "qty", "stock": None}).quantity_column == "qty"
    with pytest.raises(QueryConfigError, match="exactly one availability source"):
        ProductQueryConfig.from_mapping({"quantity_column": "qty", "stock": {}})
    with pytest.raises(QueryConfigError, match=r"set: none"):
        ProductQueryConfig.from_mapping({"stock": None})


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"titel_column": "name"}, r"unknown query setting\(s\) \['titel_column'\]"),
        ({"stock": {"qty": "x"}}, r"unknown stock setting\(s\) \['qty'\]"),
        ({"stock": "stock"}, "stock must be a mapping or null"),
        ({"timezone": "Mars/Olympus"}, "not a known IANA time zone"),
        ({"image_base_url": 5}, "image_base_url must be a string"),
        ({"sql": "  "}, "sql must be a non-empty string"),
    ],
)
def test_unusable_settings_are_refused_with_their_name(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(QueryConfigError, match=message):
        ProductQueryConfig.from_mapping(settings)


def test_the_configuration_must_be_an_object() -> None:
    with pytest.raises(QueryConfigError, match="must be a JSON object, got list"):
        ProductQueryConfig.from_mapping(["products"])  # type: ignore[arg-type]


# --------------------------------------------------------------------------- row formatting


def test_values_become_text_without_changing_their_meaning() -> None:
    assert text_value(None) == ""
    assert text_value("  as is ") == "  as is "
    assert text_value(Decimal("25000.00")) == "25000.00"
    assert text_value(Decimal("1E+3")) == "1000"
    assert text_value(12) == "12"
    assert text_value(19.99) == "19.99"
    assert text_value(True) == "true"
    assert text_value(b"caf\xc3\xa9") == "café"
    assert text_value(date(2026, 3, 2)) == "2026-03-02"


def test_prices_carry_the_currency_only_after_a_plain_number() -> None:
    assert price_text(Decimal("34.50"), "IQD") == "34.50 IQD"
    assert price_text(25000, "usd") == "25000 usd"
    assert price_text(" 7.25 ", "IQD") == "7.25 IQD"
    assert price_text(Decimal("34.50"), None) == "34.50"
    assert price_text(Decimal("34.50"), "  ") == "34.50"
    assert price_text(None, "IQD") == ""
    assert price_text("call us", "IQD") == "call us"
    assert price_text("12,50", "IQD") == "12,50"
    assert price_text("12.50 USD", "USD") == "12.50 USD"


def test_availability_comes_from_the_quantity() -> None:
    assert availability_from_quantity(Decimal("5")) == IN_STOCK
    assert availability_from_quantity(1) == IN_STOCK
    assert availability_from_quantity(0.5) == IN_STOCK
    assert availability_from_quantity(0) == OUT_OF_STOCK
    assert availability_from_quantity(-3) == OUT_OF_STOCK
    assert availability_from_quantity(None) == OUT_OF_STOCK
    assert availability_from_quantity("4") == IN_STOCK
    assert availability_from_quantity("lots") == "lots"
    assert availability_from_quantity("NaN") == "NaN"


def test_urls_are_joined_to_their_base_with_one_slash() -> None:
    assert join_url("https://cdn.example/", "/img/1.jpg") == "https://cdn.example/img/1.jpg"
    assert join_url("https://cdn.example", "img/1.jpg") == "https://cdn.example/img/1.jpg"
    assert join_url("https://cdn.example/", "HTTPS://other.example/x.jpg") == "HTTPS://other.example/x.jpg"
    assert join_url("https://cdn.example/", "img/red shoe.jpg") == "https://cdn.example/img/red shoe.jpg"
    assert join_url("https://cdn.example/", None) == ""
    assert join_url(None, "img/1.jpg") == "img/1.jpg"


def test_rows_are_formatted_by_the_result_column_names() -> None:
    config = ProductQueryConfig(
        image_base_url="https://cdn.example/", sale_price_column="sale_price", condition_column="condition"
    )
    columns = render(config).sql  # the aliases the formatter reads
    assert 'AS "sale_price"' in columns
    names = [
        "id",
        "title",
        "description",
        "link",
        "image_link",
        "price",
        "currency",
        "brand",
        "condition",
        "sale_price",
        "quantity",
    ]
    row = (
        7,
        None,
        "Two\nlines",
        "https://shop.example/p/7",
        "img/7.jpg",
        Decimal("9.90"),
        "IQD",
        "Tigris",
        "new",
        Decimal("8.00"),
        Decimal("0"),
    )
    formatter = ProductRowFormatter(config, [name.upper() for name in names])
    assert formatter.header == (*config.csv_columns,)
    assert formatter.values(row) == [
        "7",
        "",
        "Two\nlines",
        "https://shop.example/p/7",
        "https://cdn.example/img/7.jpg",
        OUT_OF_STOCK,
        "9.90 IQD",
        "Tigris",
        "new",
        "8.00 IQD",
    ]


def test_a_fixed_brand_and_an_availability_column() -> None:
    config = ProductQueryConfig(brand_column=None, brand_value="Tigris", stock=None, availability_column="st")
    formatter = ProductRowFormatter(
        config, ["id", "title", "description", "link", "image_link", "price", "currency", "availability"]
    )
    values = formatter.values(("1", "T", "D", "L", "I", "5", None, "preorder"))
    assert values == ["1", "T", "D", "L", "I", "preorder", "5", "Tigris"]


def test_a_custom_query_writes_its_own_columns() -> None:
    config = ProductQueryConfig(sql="SELECT ... %(window_start)s %(window_end)s")
    columns = ["id", "title", "description", "link", "image_link", "availability", "price", "brand", "color"]
    formatter = ProductRowFormatter(config, columns)
    assert formatter.header == tuple(columns)
    assert formatter.values((1, "T", None, "L", "I", "in stock", Decimal("2.50"), "B", "red")) == [
        "1",
        "T",
        "",
        "L",
        "I",
        "in stock",
        "2.50",
        "B",
        "red",
    ]
    with pytest.raises(QueryConfigError, match=r"returns no column\(s\) \['brand'\]"):
        ProductRowFormatter(config, columns[:7])
    with pytest.raises(QueryConfigError, match="a column name twice"):
        ProductRowFormatter(config, [*columns, "ID"])


# --------------------------------------------------------------------------- landing keys


def test_each_interval_has_its_own_key() -> None:
    start = datetime(2026, 3, 2, 10, tzinfo=timezone.utc)
    assert ingest_object_key("landing/", start, start + timedelta(hours=1)) == (
        "landing/ingest/2026-03-02/1000-1100.csv.gz"
    )
    midnight = datetime(2026, 3, 2, 23, tzinfo=timezone.utc)
    assert ingest_object_key("landing", midnight, midnight + timedelta(hours=1)) == (
        "landing/ingest/2026-03-02/2300-0000.csv.gz"
    )
    assert ingest_object_key("", start, start + timedelta(minutes=30, seconds=15)) == (
        "ingest/2026-03-02/1000-103015.csv.gz"
    )
    assert ingest_object_key("landing/", start, start + timedelta(days=2)) == (
        "landing/ingest/2026-03-02/1000-2026-03-04T1000.csv.gz"
    )
    baghdad = timezone(timedelta(hours=3))
    assert ingest_object_key(
        "landing/", start.astimezone(baghdad), start.astimezone(baghdad) + timedelta(hours=1)
    ) == ("landing/ingest/2026-03-02/1000-1100.csv.gz")
    with pytest.raises(ValueError, match="empty data interval"):
        ingest_object_key("landing/", start, start)


# --------------------------------------------------------------------------- operator and assets


def test_dialect_comes_from_the_connection_type() -> None:
    from facebook_catalog.operators.ingest import IngestConfigurationError, dialect_for_connection_type

    assert dialect_for_connection_type("postgres") == "postgres"
    assert dialect_for_connection_type("MySQL") == "mysql"
    with pytest.raises(IngestConfigurationError, match="'sqlite' is not supported"):
        dialect_for_connection_type("sqlite")


def test_the_landing_asset_and_the_sync_schedule(monkeypatch: pytest.MonkeyPatch) -> None:
    from facebook_catalog.compat import AssetOrTimeSchedule
    from facebook_catalog.dags.assets import (
        configured_landing_asset,
        configured_landing_bucket,
        landing_asset,
        sync_schedule,
    )

    asset = landing_asset("my-landing")
    assert asset.name == "s3://my-landing/landing/"
    assert landing_asset("my-landing", "/landing") == asset
    with pytest.raises(ValueError, match="bucket name is empty"):
        landing_asset("")

    monkeypatch.delenv("FACEBOOK_CATALOG_LANDING_BUCKET", raising=False)
    monkeypatch.delenv("FACEBOOK_CATALOG_SYNC_SCHEDULE", raising=False)
    assert configured_landing_bucket() == "facebook-catalog-landing"
    assert sync_schedule("@hourly") == "@hourly"
    monkeypatch.setenv("FACEBOOK_CATALOG_LANDING_BUCKET", "shop-landing")
    assert configured_landing_asset() == landing_asset("shop-landing")
    monkeypatch.setenv("FACEBOOK_CATALOG_SYNC_SCHEDULE", "Asset")
    assert sync_schedule("@hourly") == landing_asset("shop-landing")
    either = sync_schedule("0 * * * *", mode="asset_or_hourly", asset=landing_asset("b"))
    assert isinstance(either, AssetOrTimeSchedule)
    with pytest.raises(ValueError, match="expected one of hourly, asset, asset_or_hourly"):
        sync_schedule("@hourly", mode="daily")
    monkeypatch.setenv("FACEBOOK_CATALOG_LANDING_BUCKET", "bucket'} {{ x")
    with pytest.raises(ValueError, match="not a valid S3 bucket name"):
        configured_landing_bucket()


@pytest.mark.parametrize("dialect", ["postgres", "mysql"])
def test_the_ids_mode_names_each_key_as_a_bind_parameter(dialect: Any) -> None:
    ids = ["sku-1", "x'); DROP TABLE products; --", "sku-3"]
    rendered = render_products_by_id(ProductQueryConfig(), dialect, ids)
    quote = '"' if dialect == "postgres" else "`"
    assert f"WHERE p.{quote}id{quote} IN (%(id_0)s, %(id_1)s, %(id_2)s)" in rendered.sql
    assert rendered.parameters == {"id_0": "sku-1", "id_1": ids[1], "id_2": "sku-3"}
    assert "DROP" not in rendered.sql
    assert "updated_at" not in rendered.sql.split("FROM", 1)[1]  # no window
    with pytest.raises(ValueError, match="1 to 1000 ids"):
        render_products_by_id(ProductQueryConfig(), dialect, [str(n) for n in range(IDS_PER_QUERY + 1)])


def test_the_snapshot_mode_reads_every_product_and_refuses_a_custom_query() -> None:
    rendered = render_all_products(ProductQueryConfig(), "postgres")
    assert "WHERE" not in rendered.sql.split("FROM", 1)[1].replace("WHERE s.", "")
    assert rendered.parameters == {}
    assert rendered.sql.endswith('ORDER BY p."id"')
    custom = ProductQueryConfig(sql="SELECT * FROM p WHERE u >= %(window_start)s AND u < %(window_end)s")
    with pytest.raises(QueryConfigError, match="custom sql"):
        render_all_products(custom, "postgres")
