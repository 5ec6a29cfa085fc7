"""The ingestion query: which products changed in a time window, and how a row becomes a landing CSV row.

Pure Python (no Airflow import), so it is unit-tested without a database.

A :class:`ProductQueryConfig` maps an operational schema onto the landing CSV columns
(``id,title,description,link,image_link,availability,price,brand``, plus ``condition`` and
``sale_price`` when mapped). :func:`render_product_query` turns it into ONE parameterised
``SELECT`` per dialect:

* identifiers (tables, columns) come only from the configuration, must match
  :data:`IDENTIFIER_PATTERN` and are quoted for the dialect (``"name"`` on PostgreSQL,
  ```name``` on MySQL/MariaDB), so a configuration value can never become SQL syntax;
* values (the window bounds) are only ever bind parameters (``%(window_start)s``): both
  psycopg and MySQLdb / mysql-connector-python use the ``pyformat`` parameter style.

Values are not transformed in SQL but in :class:`ProductRowFormatter` (the same code for both
dialects): price and currency joined as ``"<amount> <CURRENCY>"``, availability from the stock
quantity, image and product URLs built from a base URL and a path. Nothing is validated or
repaired here: a NULL title, a non-numeric price or a URL with spaces reaches the CSV as the
database holds it, and the sync DAG rejects that row with its reason like any landing row.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from datetime import date, datetime, time, timezone
from decimal import Decimal, InvalidOperation
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from facebook_catalog.feed.fields import REQUIRED_COLUMNS

Dialect = Literal["postgres", "mysql"]
DIALECTS: tuple[Dialect, ...] = ("postgres", "mysql")

#: A plain SQL identifier: letters, digits and underscores, not starting with a digit, at most
#: 63 characters (PostgreSQL's limit). Anything else (quotes, spaces, dots, semicolons,
#: comment markers) is refused, so quoting never has to escape anything.
IDENTIFIER_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")

#: The bind parameters a query receives; a custom ``sql`` must use both.
WINDOW_START_PARAMETER = "window_start"
WINDOW_END_PARAMETER = "window_end"

#: CSV columns that come from optional mappings, in the order they follow the required ones.
OPTIONAL_CSV_COLUMNS: tuple[str, ...] = ("condition", "sale_price")

IN_STOCK = "in stock"
OUT_OF_STOCK = "out of stock"


class QueryConfigError(ValueError):
    """The ingestion query configuration is unusable; the message names the setting."""


def validate_identifier(value: object, setting: str, *, qualified: bool = False) -> str:
    """Return ``value`` if it is a plain identifier (``schema.table`` too when ``qualified``)."""
    if not isinstance(value, str):
        raise QueryConfigError(f"{setting} must be a string, got {type(value).__name__}")
    parts = value.split(".") if qualified else [value]
    if len(parts) > 2 or not all(IDENTIFIER_PATTERN.fullmatch(part) for part in parts):
        shape = "a name or schema.name" if qualified else "a name"
        raise QueryConfigError(
            f"{setting} {value!r} is not {shape} of letters, digits and underscores "
            "(not starting with a digit, at most 63 characters)"
        )
    return value


def quote_identifier(name: str, dialect: Dialect) -> str:
    """Quote a validated identifier (``schema.table`` part by part) for ``dialect``."""
    quote = '"' if dialect == "postgres" else "`"
    parts = name.split(".")
    for part in parts:
        # Defence in depth: quoting is only safe for names the pattern accepted.
        if not IDENTIFIER_PATTERN.fullmatch(part):
            raise QueryConfigError(f"refusing to quote {name!r}: not a plain identifier")
    return ".".join(f"{quote}{part}{quote}" for part in parts)


@dataclass(frozen=True)
class StockJoin:
    """Availability from a stock table: the sum of ``quantity_column`` over the product's rows.

    ``updated_at_column``, when set, makes a stock change select the product too (an
    availability change with no change to the product row itself).
    """

    table: str = "stock"
    product_id_column: str = "product_id"
    quantity_column: str = "quantity"
    updated_at_column: str | None = None

    def __post_init__(self) -> None:
        validate_identifier(self.table, "stock.table", qualified=True)
        validate_identifier(self.product_id_column, "stock.product_id_column")
        validate_identifier(self.quantity_column, "stock.quantity_column")
        if self.updated_at_column is not None:
            validate_identifier(self.updated_at_column, "stock.updated_at_column")


@dataclass(frozen=True)
class ProductQueryConfig:
    """How the operational database's products map onto the landing CSV.

    The defaults fit ``products(id, name, description, link, image_path, price, currency, brand,
    updated_at)`` with ``stock(product_id, quantity)``. Column settings that may be ``None``
    leave that CSV value empty (or take ``brand_value``). See docs/ingestion.md.
    """

    table: str = "products"
    id_column: str = "id"
    updated_at_column: str = "updated_at"
    title_column: str = "name"
    description_column: str | None = "description"
    #: Full product URL, or a path/slug joined to ``link_base_url``.
    link_column: str = "link"
    link_base_url: str | None = None
    #: Image path joined to ``image_base_url`` (a value that already is an http(s) URL is kept).
    image_column: str = "image_path"
    image_base_url: str | None = None
    price_column: str = "price"
    #: ISO 4217 code per row; ``None``: bare amounts (the sync adds its default currency).
    currency_column: str | None = "currency"
    brand_column: str | None = "brand"
    #: The brand of every row when the table has no brand column.
    brand_value: str | None = None
    #: Exactly one availability source: a stock table (default), a quantity column on the
    #: products table, or a column holding availability text that is passed through.
    stock: StockJoin | None = field(default_factory=StockJoin)
    quantity_column: str | None = None
    availability_column: str | None = None
    condition_column: str | None = None
    sale_price_column: str | None = None
    #: The zone of the database's timestamps: window bounds are converted to it and the
    #: session time zone is set to it (naive ``timestamp``/``DATETIME`` columns hold local time).
    timezone: str = "UTC"
    #: A complete custom query instead of the mapping: it must return the CSV columns by name
    #: and filter on ``%(window_start)s`` and ``%(window_end)s`` (write a literal ``%`` as ``%%``).
    sql: str | None = None

    def __post_init__(self) -> None:
        validate_identifier(self.table, "table", qualified=True)
        for name in (
            "id_column",
            "updated_at_column",
            "title_column",
            "link_column",
            "image_column",
            "price_column",
        ):
            validate_identifier(getattr(self, name), name)
        for name in (
            "description_column",
            "currency_column",
            "brand_column",
            "quantity_column",
            "availability_column",
            "condition_column",
            "sale_price_column",
        ):
            value = getattr(self, name)
            if value is not None:
                validate_identifier(value, name)
        for name in ("link_base_url", "image_base_url", "brand_value"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise QueryConfigError(f"{name} must be a string or null")
        if self.stock is not None and not isinstance(self.stock, StockJoin):
            raise QueryConfigError("stock must be a mapping or null")
        sources = [
            name
            for name, value in (
                ("stock", self.stock),
                ("quantity_column", self.quantity_column),
                ("availability_column", self.availability_column),
            )
            if value is not None
        ]
        if self.sql is None and len(sources) != 1:
            raise QueryConfigError(
                "set exactly one availability source: stock, quantity_column or availability_column "
                f"(set: {', '.join(sources) or 'none'})"
            )
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError, TypeError) as error:
            raise QueryConfigError(f"timezone {self.timezone!r} is not a known IANA time zone") from error
        if self.sql is not None:
            if not isinstance(self.sql, str) or not self.sql.strip():
                raise QueryConfigError("sql must be a non-empty string or null")
            for parameter in (WINDOW_START_PARAMETER, WINDOW_END_PARAMETER):
                if f"%({parameter})s" not in self.sql:
                    raise QueryConfigError(
                        f"sql must filter on %({parameter})s: without both window bounds it would "
                        "read every product every hour"
                    )

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any] | None) -> ProductQueryConfig:
        """Build from JSON-like settings; what is not given keeps its default.

        ``stock`` may be a mapping (merged onto the default stock join) or null. Giving
        ``quantity_column`` or ``availability_column`` without ``stock`` turns the default stock
        join off. Unknown keys are refused, so a misspelt setting is not silently ignored.
        """
        if data is None:
            return cls()
        if not isinstance(data, Mapping):
            kind = type(data).__name__
            raise QueryConfigError(f"the query configuration must be a JSON object, got {kind}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise QueryConfigError(f"unknown query setting(s) {unknown}; known: {sorted(known)}")
        values = dict(data)
        stock = values.pop("stock", _MISSING)
        if stock is _MISSING:
            other_source = values.get("quantity_column") or values.get("availability_column")
            stock_join: StockJoin | None = None if other_source else StockJoin()
        elif stock is None or stock is False:
            stock_join = None
        elif isinstance(stock, Mapping):
            stock_known = {f.name for f in fields(StockJoin)}
            stock_unknown = sorted(set(stock) - stock_known)
            if stock_unknown:
                raise QueryConfigError(
                    f"unknown stock setting(s) {stock_unknown}; known: {sorted(stock_known)}"
                )
            stock_join = replace(StockJoin(), **dict(stock))
        else:
            raise QueryConfigError("stock must be a mapping or null")
        return cls(stock=stock_join, **values)

    def to_dict(self) -> dict[str, Any]:
        """The settings as JSON-ready values (what docs/ingestion.md shows as the default)."""
        result: dict[str, Any] = {}
        for item in fields(self):
            value = getattr(self, item.name)
            if isinstance(value, StockJoin):
                value = {f.name: getattr(value, f.name) for f in fields(StockJoin)}
            result[item.name] = value
        return result

    @property
    def csv_columns(self) -> tuple[str, ...]:
        """The header of the landing CSV this configuration writes (custom ``sql``: its columns)."""
        optional = (("condition",) if self.condition_column else ()) + (
            ("sale_price",) if self.sale_price_column else ()
        )
        return (*REQUIRED_COLUMNS, *optional)


_MISSING: Any = object()


@dataclass(frozen=True)
class RenderedQuery:
    """One statement and its bind parameters, plus the statement that sets the session time zone."""

    dialect: Dialect
    sql: str
    parameters: dict[str, Any]
    session_sql: str
    session_parameters: dict[str, Any]


def to_database_time(moment: datetime, zone: str) -> datetime:
    """An aware moment as the naive wall-clock time of ``zone``, as the database compares it.

    Naive bounds compare directly with naive ``timestamp``/``DATETIME`` columns (so an index on
    ``updated_at`` is used), and are read in the session time zone (set to ``zone``) when the
    column is ``timestamptz``/``TIMESTAMP``.
    """
    if moment.tzinfo is None:
        raise ValueError(f"window bound {moment!r} has no time zone; give an aware datetime")
    return moment.astimezone(ZoneInfo(zone)).replace(tzinfo=None)


def _session_statement(config: ProductQueryConfig, dialect: Dialect) -> tuple[str, dict[str, Any]]:
    if dialect == "postgres":
        # set_config takes bind parameters; SET TIME ZONE does not.
        return "SELECT set_config('TimeZone', %(timezone)s, false)", {"timezone": config.timezone}
    # MySQL accepts named zones only with its time zone tables loaded; UTC needs no table.
    zone = "+00:00" if config.timezone in ("UTC", "Etc/UTC") else config.timezone
    return "SET time_zone = %(timezone)s", {"timezone": zone}


def _select_list(config: ProductQueryConfig, dialect: Dialect) -> str:
    """The mapping's columns, aliased to the CSV's names (and the stock sum when joined)."""

    def q(name: str) -> str:
        return quote_identifier(name, dialect)

    def column(name: str | None, alias: str) -> str | None:
        return None if name is None else f"p.{q(name)} AS {q(alias)}"

    product_id = f"p.{q(config.id_column)}"
    selected = [
        column(config.id_column, "id"),
        column(config.title_column, "title"),
        column(config.description_column, "description"),
        column(config.link_column, "link"),
        column(config.image_column, "image_link"),
        column(config.price_column, "price"),
        column(config.currency_column, "currency"),
        column(config.brand_column, "brand"),
        column(config.availability_column, "availability"),
        column(config.quantity_column, "quantity"),
        column(config.condition_column, "condition"),
        column(config.sale_price_column, "sale_price"),
    ]
    stock = config.stock
    if stock is not None:
        # A correlated sum: evaluated only for the changed products (through an index on the
        # stock table's product id), and 0..n stock rows per product (warehouses) add up.
        selected.append(
            f"(SELECT SUM(s.{q(stock.quantity_column)}) FROM {q(stock.table)} s "
            f"WHERE s.{q(stock.product_id_column)} = {product_id}) AS {q('quantity')}"
        )
    return ",\n       ".join(item for item in selected if item is not None)


def render_product_query(
    config: ProductQueryConfig, dialect: Dialect, window_start: datetime, window_end: datetime
) -> RenderedQuery:
    """The products whose ``updated_at`` lies in ``[window_start, window_end)``, ordered by id.

    ``window_start``/``window_end`` are aware datetimes; they travel only as bind parameters.
    """
    if dialect not in DIALECTS:
        raise QueryConfigError(f"unsupported SQL dialect {dialect!r}; supported: {', '.join(DIALECTS)}")
    if window_start >= window_end:
        raise ValueError(f"empty window: {window_start.isoformat()} is not before {window_end.isoformat()}")
    parameters = {
        WINDOW_START_PARAMETER: to_database_time(window_start, config.timezone),
        WINDOW_END_PARAMETER: to_database_time(window_end, config.timezone),
    }
    session_sql, session_parameters = _session_statement(config, dialect)
    if config.sql is not None:
        return RenderedQuery(dialect, config.sql, parameters, session_sql, session_parameters)

    def q(name: str) -> str:
        return quote_identifier(name, dialect)

    start = f"%({WINDOW_START_PARAMETER})s"
    end = f"%({WINDOW_END_PARAMETER})s"
    product_id = f"p.{q(config.id_column)}"
    select_list = _select_list(config, dialect)
    stock = config.stock
    updated_at = q(config.updated_at_column)
    if stock is not None and stock.updated_at_column is not None:
        # The ids changed in either table, de-duplicated by UNION, then joined by primary key:
        # each side can use its own updated_at index, which an OR across tables would not.
        stock_updated_at = q(stock.updated_at_column)
        source = (
            f"{q(config.table)} p\n"
            f"JOIN (SELECT c.{q(config.id_column)} AS changed_id FROM {q(config.table)} c\n"
            f"      WHERE c.{updated_at} >= {start} AND c.{updated_at} < {end}\n"
            f"      UNION\n"
            f"      SELECT s.{q(stock.product_id_column)} FROM {q(stock.table)} s\n"
            f"      WHERE s.{stock_updated_at} >= {start} AND s.{stock_updated_at} < {end}) changed\n"
            f"  ON {product_id} = changed.changed_id"
        )
        condition = ""
    else:
        source = f"{q(config.table)} p"
        condition = f"\nWHERE p.{updated_at} >= {start} AND p.{updated_at} < {end}"
    sql = f"SELECT {select_list}\nFROM {source}{condition}\nORDER BY {product_id}"
    return RenderedQuery(dialect, sql, parameters, session_sql, session_parameters)


#: Primary keys per ``IN (...)`` query of the ids mode (one bind parameter each).
IDS_PER_QUERY = 1000


def render_products_by_id(config: ProductQueryConfig, dialect: Dialect, ids: Sequence[str]) -> RenderedQuery:
    """The products whose primary key is one of ``ids`` (at most :data:`IDS_PER_QUERY`; each a
    bind parameter), ordered by id: the ingestion's ``ids`` mode, which a repair asks for."""
    return _render_whole(config, dialect, ids)


def render_all_products(config: ProductQueryConfig, dialect: Dialect) -> RenderedQuery:
    """Every product, ordered by id: the ingestion's ``snapshot`` mode."""
    return _render_whole(config, dialect, None)


def _render_whole(config: ProductQueryConfig, dialect: Dialect, ids: Sequence[str] | None) -> RenderedQuery:
    if dialect not in DIALECTS:
        raise QueryConfigError(f"unsupported SQL dialect {dialect!r}; supported: {', '.join(DIALECTS)}")
    if config.sql is not None:
        raise QueryConfigError(
            "the ids and snapshot modes build their query from the column mapping; a custom sql "
            "(which filters on the window) cannot be used for them"
        )
    session_sql, session_parameters = _session_statement(config, dialect)
    product_id = f"p.{quote_identifier(config.id_column, dialect)}"
    condition = ""
    parameters: dict[str, Any] = {}
    if ids is not None:
        if not ids or len(ids) > IDS_PER_QUERY:
            raise ValueError(f"give 1 to {IDS_PER_QUERY} ids per query, not {len(ids)}")
        parameters = {f"id_{n}": value for n, value in enumerate(ids)}
        condition = f"\nWHERE {product_id} IN ({', '.join(f'%({name})s' for name in parameters)})"
    source = f"{quote_identifier(config.table, dialect)} p"
    sql = f"SELECT {_select_list(config, dialect)}\nFROM {source}{condition}\nORDER BY {product_id}"
    return RenderedQuery(dialect, sql, parameters, session_sql, session_parameters)


# ----------------------------------------------------------------------------- row formatting


def text_value(value: object) -> str:
    """A database value as CSV text, unchanged in meaning: NULL is empty, decimals keep their scale."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        # "f": never scientific notation (Decimal("1E+3") is "1000"), and the column's scale stays.
        return format(value, "f")
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("utf-8", errors="replace")
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, (date, time)):
        return value.isoformat()
    return str(value)


def join_url(base_url: str | None, value: object) -> str:
    """``base_url`` + path with one ``/`` between; values that are already http(s) URLs are kept."""
    text = text_value(value)
    if not base_url or not text or re.match(r"(?i)https?://", text):
        return text
    return f"{base_url.rstrip('/')}/{text.lstrip('/')}"


_PLAIN_AMOUNT = re.compile(r"[+-]?[0-9]+(?:\.[0-9]+)?")


def price_text(amount: object, currency: object) -> str:
    """``"<amount> <currency>"``; the amount alone when the row has no currency.

    The currency is added only to a plain number: a text price column holding ``"call us"`` or
    ``"12.50 USD"`` reaches the CSV exactly as stored (the sync accepts or rejects it on its own).
    """
    amount_text = text_value(amount)
    currency_text = text_value(currency).strip()
    if not currency_text or not _PLAIN_AMOUNT.fullmatch(amount_text.strip()):
        return amount_text
    return f"{amount_text.strip()} {currency_text}"


def availability_from_quantity(quantity: object) -> str:
    """More than zero in stock is ``in stock``; zero, negative or no stock row is ``out of stock``.

    A quantity that is not a number is passed through, so the sync rejects it with its reason.
    """
    if quantity is None:
        return OUT_OF_STOCK
    if isinstance(quantity, bool):
        return IN_STOCK if quantity else OUT_OF_STOCK
    if isinstance(quantity, (int, float, Decimal)):
        number: Decimal | int | float = quantity
    else:
        try:
            number = Decimal(text_value(quantity).strip())
        except InvalidOperation:
            return text_value(quantity)
        if not number.is_finite():
            return text_value(quantity)
    return IN_STOCK if number > 0 else OUT_OF_STOCK


class ProductRowFormatter:
    """Turns result rows into landing CSV rows, given the names of the result's columns."""

    def __init__(self, config: ProductQueryConfig, result_columns: Sequence[str]) -> None:
        self.config = config
        names = [name.lower() for name in result_columns]
        self._index = {name: position for position, name in enumerate(names)}
        if config.sql is not None:
            missing = [name for name in REQUIRED_COLUMNS if name not in self._index]
            if missing:
                raise QueryConfigError(
                    f"the custom sql returns no column(s) {missing}; it must return {list(REQUIRED_COLUMNS)} "
                    f"by name (it returned {names})"
                )
            if len(set(names)) != len(names):
                raise QueryConfigError(f"the custom sql returns a column name twice: {names}")
            self.header: tuple[str, ...] = tuple(names)
        else:
            self.header = config.csv_columns

    def _get(self, row: Sequence[Any], alias: str) -> Any:
        position = self._index.get(alias)
        return None if position is None else row[position]

    def values(self, row: Sequence[Any]) -> list[str]:
        if self.config.sql is not None:
            return [text_value(value) for value in row]
        config = self.config
        get = self._get
        if config.availability_column is not None:
            availability = text_value(get(row, "availability"))
        else:
            availability = availability_from_quantity(get(row, "quantity"))
        brand = text_value(get(row, "brand")) if config.brand_column else (config.brand_value or "")
        currency = get(row, "currency")
        result = [
            text_value(get(row, "id")),
            text_value(get(row, "title")),
            text_value(get(row, "description")),
            join_url(config.link_base_url, get(row, "link")),
            join_url(config.image_base_url, get(row, "image_link")),
            availability,
            price_text(get(row, "price"), currency),
            brand,
        ]
        if config.condition_column:
            result.append(text_value(get(row, "condition")))
        if config.sale_price_column:
            result.append(price_text(get(row, "sale_price"), currency))
        return result


# ----------------------------------------------------------------------------- landing keys


def _clock(moment: datetime) -> str:
    return moment.strftime("%H%M%S" if moment.second or moment.microsecond else "%H%M")


def ingest_object_key(prefix: str, interval_start: datetime, interval_end: datetime) -> str:
    """``<prefix>ingest/<YYYY-MM-DD>/<HHMM>-<HHMM>.csv.gz`` for a data interval, in UTC.

    The same interval always gives the same key (a re-run overwrites its own file). Times get
    seconds only when they have any; an interval longer than a day names its end date too, so
    two different intervals never share a key.
    """
    start = interval_start.astimezone(timezone.utc)
    end = interval_end.astimezone(timezone.utc)
    if end <= start:
        raise ValueError(f"empty data interval: {start.isoformat()} to {end.isoformat()}")
    prefix = prefix.lstrip("/")
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    end_text = _clock(end)
    if (end - start).total_seconds() > 24 * 3600:
        end_text = f"{end:%Y-%m-%d}T{end_text}"
    return f"{prefix}ingest/{start:%Y-%m-%d}/{_clock(start)}-{end_text}.csv.gz"
