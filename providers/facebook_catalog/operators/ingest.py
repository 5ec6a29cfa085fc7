"""Copy products from an operational SQL database to the landing zone: those changed in a data
interval (mode ``changed``, the hourly default), those named by primary key or by id hash (mode
``ids``, what a reconcile's repair asks for), or all of them (mode ``snapshot``)."""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
import re
import tempfile
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import AirflowSkipException, BaseHook
from airflow.sdk import BaseOperator

from facebook_catalog.feed.change_detection import id_hash
from facebook_catalog.ingest.query import (
    IDS_PER_QUERY,
    Dialect,
    ProductQueryConfig,
    ProductRowFormatter,
    RenderedQuery,
    ingest_object_key,
    render_all_products,
    render_product_query,
    render_products_by_id,
)
from facebook_catalog.storage.landing_zone import LANDING_PREFIX

if TYPE_CHECKING:
    from airflow.providers.common.sql.hooks.sql import DbApiHook
    from airflow.sdk import Context

DEFAULT_LOOKBACK_MINUTES = 5
DEFAULT_FETCH_SIZE = 5000
INGEST_MODES: tuple[str, ...] = ("changed", "ids", "snapshot")
#: Keeps a row (given as its CSV values) or drops it; None keeps every row.
RowFilter = Callable[[Sequence[str]], bool] | None
_UNSAFE_KEY = re.compile(r"[^A-Za-z0-9._-]+")
_HEX64 = re.compile(r"[0-9a-fA-F]{1,16}")

#: Airflow connection types and the SQL dialect they speak.
CONNECTION_DIALECTS: dict[str, Dialect] = {
    "postgres": "postgres",
    "postgresql": "postgres",
    "mysql": "mysql",
}


class IngestConfigurationError(ValueError):
    """The operator's settings are unusable; the message names the setting."""


def dialect_for_connection_type(conn_type: str | None) -> Dialect:
    dialect = CONNECTION_DIALECTS.get((conn_type or "").lower())
    if dialect is None:
        raise IngestConfigurationError(
            f"connection type {conn_type!r} is not supported for ingestion; use one of "
            f"{', '.join(sorted(CONNECTION_DIALECTS))}"
        )
    return dialect


def open_streaming_cursor(connection: Any, dialect: Dialect) -> Any:
    """A cursor that fetches rows from the server as they are read, never the whole result.

    PostgreSQL: a named (server-side) cursor, psycopg 3 and psycopg2 alike. MySQL/MariaDB:
    ``SSCursor`` with mysqlclient (its default cursor buffers the whole result in the client);
    mysql-connector-python's plain cursor is unbuffered already.
    """
    if dialect == "postgres":
        return connection.cursor(name=f"facebook_catalog_ingest_{uuid.uuid4().hex}")
    module = type(connection).__module__
    if module.startswith("MySQLdb"):
        from MySQLdb.cursors import SSCursor

        return connection.cursor(SSCursor)
    if module.startswith("mysql.connector"):
        return connection.cursor(buffered=False)
    return connection.cursor()


def iter_row_batches(cursor: Any, fetch_size: int) -> Iterator[list[Any]]:
    """``fetchmany`` until the result is exhausted."""
    while True:
        rows = cursor.fetchmany(fetch_size)
        if not rows:
            return
        yield list(rows)


def _column_names(cursor: Any) -> list[str]:
    description = cursor.description
    if not description:
        raise RuntimeError("the products query returned no result columns")
    return [str(column[0]) for column in description]


def _as_datetime(value: datetime | str, setting: str) -> datetime:
    if isinstance(value, datetime):
        moment = value
    else:
        try:
            moment = datetime.fromisoformat(str(value).strip())
        except ValueError as error:
            raise IngestConfigurationError(f"{setting} {value!r} is not an ISO 8601 date-time") from error
    if moment.tzinfo is None:
        raise IngestConfigurationError(f"{setting} {value!r} has no time zone")
    return moment


def _as_query_config(value: ProductQueryConfig | Mapping[str, Any] | str | None) -> ProductQueryConfig:
    if isinstance(value, ProductQueryConfig):
        return value
    if isinstance(value, str):
        text = value.strip()
        try:
            value = json.loads(text) if text else None
        except json.JSONDecodeError as error:
            raise IngestConfigurationError(f"the query configuration is not valid JSON: {error}") from error
    return ProductQueryConfig.from_mapping(value)


def _as_list(value: Sequence[str] | str | None, setting: str) -> list[str]:
    """A list of strings, given as a list or as its JSON text (a rendered template)."""
    if value is None:
        return []
    if isinstance(value, str):
        text = value.strip()
        if not text or text in ("None", "null"):
            return []
        try:
            value = json.loads(text)
        except json.JSONDecodeError as error:
            raise IngestConfigurationError(f"{setting} is not a JSON list: {error}") from error
    if not isinstance(value, (list, tuple)):
        raise IngestConfigurationError(f"{setting} must be a list of strings, got {type(value).__name__}")
    return [str(item) for item in value]


class SqlProductsToLandingOperator(BaseOperator):
    """Write the products changed in the data interval to the landing zone as one gzip CSV.

    The window is ``[interval_start - lookback, interval_end)`` on the products' ``updated_at``
    (the lookback catches rows stamped before a long transaction committed; the sync's change
    detection makes the duplicates harmless). The query comes from ``query_config`` (see
    :class:`facebook_catalog.ingest.query.ProductQueryConfig`), rendered for the connection's
    dialect (PostgreSQL or MySQL/MariaDB, from the connection type) with the window as bind
    parameters. Rows are streamed with a server-side cursor and ``fetchmany(fetch_size)`` into a
    gzip file on local disk, which is uploaded to ``s3://<bucket>/<key>`` (replacing the object a
    previous run of the same interval wrote). No changed rows: no object, and the task is
    skipped, so no asset event is emitted for its outlets.

    :param sql_conn_id: Airflow connection of type ``postgres`` or ``mysql`` (templated).
    :param bucket: landing bucket (templated).
    :param prefix: landing prefix; the default key lies under it (templated).
    :param key: object key; default ``<prefix>ingest/<YYYY-MM-DD>/<HHMM>-<HHMM>.csv.gz`` from the
        data interval in UTC (templated).
    :param interval_start: start of the interval (ISO 8601 or datetime; templated). Default: the
        run's ``data_interval_start``.
    :param interval_end: end of the interval, excluded. Default: the run's ``data_interval_end``.
    :param lookback_minutes: how far before ``interval_start`` the window begins (templated).
    :param query_config: mapping, JSON string or ProductQueryConfig; ``None``: the defaults (templated).
    :param fetch_size: rows per ``fetchmany`` (templated).
    :param mode: ``changed`` (the window above), ``ids`` (the products whose primary key is in
        ``ids``, in ``IN (...)`` queries of up to 1,000 keys, plus those whose id hash is in
        ``id_hashes``, by one scan of the table) or ``snapshot`` (every product). The last two
        ignore the window and write ``<prefix>ingest/<mode>/<run id>.csv.gz`` (templated).
    :param ids: primary keys for mode ``ids``: a list or its JSON text (templated).
    :param id_hashes: 64-bit id hashes (16 hex digits, as a reconcile reports items it knows only
        by hash) for mode ``ids`` (templated).
    :param aws_conn_id: Airflow AWS connection used to write S3.
    :return: ``{"bucket", "key", "rows", "batches", "window_start", "window_end", "dialect"}`` to XCom.
    """

    template_fields: Sequence[str] = (
        "sql_conn_id",
        "bucket",
        "prefix",
        "key",
        "interval_start",
        "interval_end",
        "lookback_minutes",
        "query_config",
        "fetch_size",
        "mode",
        "ids",
        "id_hashes",
    )
    template_fields_renderers = {"query_config": "json"}
    ui_color = "#e8f5e9"

    def __init__(
        self,
        *,
        sql_conn_id: str,
        bucket: str,
        prefix: str = LANDING_PREFIX,
        key: str | None = None,
        interval_start: datetime | str | None = None,
        interval_end: datetime | str | None = None,
        lookback_minutes: int | float | str = DEFAULT_LOOKBACK_MINUTES,
        query_config: ProductQueryConfig | Mapping[str, Any] | str | None = None,
        fetch_size: int | str = DEFAULT_FETCH_SIZE,
        mode: str = "changed",
        ids: Sequence[str] | str | None = None,
        id_hashes: Sequence[str] | str | None = None,
        aws_conn_id: str | None = "aws_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.sql_conn_id = sql_conn_id
        self.bucket = bucket
        self.prefix = prefix
        self.key = key
        self.interval_start = interval_start
        self.interval_end = interval_end
        self.lookback_minutes = lookback_minutes
        self.query_config = query_config
        self.fetch_size = fetch_size
        self.mode = mode
        self.ids = ids
        self.id_hashes = id_hashes
        self.aws_conn_id = aws_conn_id

    # ----------------------------------------------------------------- settings

    def _interval(self, context: Context) -> tuple[datetime, datetime]:
        start = self.interval_start if self.interval_start else context.get("data_interval_start")
        end = self.interval_end if self.interval_end else context.get("data_interval_end")
        if start is None or end is None:
            raise IngestConfigurationError(
                "the run has no data interval: give interval_start and interval_end, or schedule the DAG "
                "with a data-interval timetable"
            )
        start_moment = _as_datetime(start, "interval_start")
        end_moment = _as_datetime(end, "interval_end")
        if end_moment <= start_moment:
            raise IngestConfigurationError(
                f"the data interval is empty: {start_moment.isoformat()} to {end_moment.isoformat()}"
            )
        return start_moment, end_moment

    def _lookback(self) -> timedelta:
        try:
            minutes = float(str(self.lookback_minutes).strip())
        except ValueError as error:
            raise IngestConfigurationError(
                f"lookback_minutes {self.lookback_minutes!r} is not a number"
            ) from error
        if not 0 <= minutes <= 24 * 60:
            raise IngestConfigurationError(f"lookback_minutes {minutes:g} is outside 0..1440")
        return timedelta(minutes=minutes)

    def _fetch_size(self) -> int:
        try:
            size = int(str(self.fetch_size).strip())
        except ValueError as error:
            raise IngestConfigurationError(f"fetch_size {self.fetch_size!r} is not an integer") from error
        if size < 1:
            raise IngestConfigurationError(f"fetch_size must be at least 1, got {size}")
        return size

    def _sql_hook(self) -> tuple[DbApiHook, Dialect]:
        from airflow.providers.common.sql.hooks.sql import DbApiHook

        connection = BaseHook.get_connection(self.sql_conn_id)
        dialect = dialect_for_connection_type(connection.conn_type)
        hook = connection.get_hook()
        if not isinstance(hook, DbApiHook):
            raise IngestConfigurationError(
                f"connection {self.sql_conn_id!r} gives a {type(hook).__name__}, not a SQL (DbApiHook) hook"
            )
        return hook, dialect

    # ---------------------------------------------------------------- execution

    def _mode(self) -> str:
        mode = str(self.mode or "changed").strip().lower()
        if mode not in INGEST_MODES:
            raise IngestConfigurationError(f"mode {self.mode!r} is not one of {', '.join(INGEST_MODES)}")
        return mode

    def _id_hashes(self) -> set[int]:
        values = _as_list(self.id_hashes, "id_hashes")
        bad = [v for v in values if not _HEX64.fullmatch(v.strip())]
        if bad:
            raise IngestConfigurationError(f"id_hashes must be hexadecimal 64-bit hashes, not {bad[:3]}")
        return {int(v, 16) for v in values}

    def _whole_queries(
        self, mode: str, config: ProductQueryConfig, dialect: Dialect
    ) -> list[tuple[RenderedQuery, RowFilter]]:
        """The queries of modes ``ids`` and ``snapshot``, each with the filter its rows pass."""
        if mode == "snapshot":
            return [(render_all_products(config, dialect), None)]
        ids = list(dict.fromkeys(_as_list(self.ids, "ids")))
        hashes = self._id_hashes()
        queries: list[tuple[RenderedQuery, RowFilter]] = [
            (render_products_by_id(config, dialect, ids[start : start + IDS_PER_QUERY]), None)
            for start in range(0, len(ids), IDS_PER_QUERY)
        ]
        if hashes:
            named = set(ids)
            # Items known only by their id hash: one scan of the table, keeping the rows whose id
            # hashes to one of them (and that the ids above did not already bring).
            queries.append(
                (
                    render_all_products(config, dialect),
                    lambda values: values[0] not in named and id_hash(values[0]) in hashes,
                )
            )
        return queries

    def execute(self, context: Context) -> dict[str, Any]:
        config = _as_query_config(self.query_config)
        mode = self._mode()
        fetch_size = self._fetch_size()
        hook, dialect = self._sql_hook()
        summary: dict[str, Any] = {"bucket": self.bucket, "mode": mode, "dialect": dialect}
        if mode == "changed":
            interval_start, interval_end = self._interval(context)
            window_start = interval_start - self._lookback()
            key = self.key or ingest_object_key(self.prefix, interval_start, interval_end)
            queries: list[tuple[RenderedQuery, RowFilter]] = [
                (render_product_query(config, dialect, window_start, interval_end), None)
            ]
            summary |= {"window_start": window_start.isoformat(), "window_end": interval_end.isoformat()}
            self.log.info(
                "Reading products changed in [%s, %s) from %s (%s) in batches of %d",
                window_start.isoformat(),
                interval_end.isoformat(),
                self.sql_conn_id,
                dialect,
                fetch_size,
            )
        else:
            run = _UNSAFE_KEY.sub("_", str(context.get("run_id") or uuid.uuid4().hex)).strip("._")
            key = self.key or f"{self.prefix}ingest/{mode}/{run}.csv.gz"
            queries = self._whole_queries(mode, config, dialect)
            self.log.info(
                "Reading products in mode %s from %s (%s): %d query(ies), batches of %d",
                mode,
                self.sql_conn_id,
                dialect,
                len(queries),
                fetch_size,
            )
        with tempfile.TemporaryDirectory(prefix="facebook-catalog-ingest-") as folder:
            path = os.path.join(folder, "products.csv.gz")
            rows, batches = self._write_csv(hook, queries, config, fetch_size, path) if queries else (0, 0)
            summary |= {"key": key if rows else None, "rows": rows, "batches": batches}
            if not rows:
                self.log.info("No product to write: no landing file is written")
                # A skipped task emits no asset event, so nothing downstream runs for nothing.
                # The summary still reaches XCom for whoever looks.
                context["ti"].xcom_push(key="return_value", value=summary)
                raise AirflowSkipException("no product to write")
            self._upload(path, key)
        self.log.info("Wrote %d product(s) to s3://%s/%s", rows, self.bucket, key)
        self._describe_asset_events(context, summary)
        return summary

    def _write_csv(
        self,
        hook: DbApiHook,
        queries: Sequence[tuple[RenderedQuery, RowFilter]],
        config: ProductQueryConfig,
        fetch_size: int,
        path: str,
    ) -> tuple[int, int]:
        """Stream the queries' rows (those their filter keeps) into one gzip CSV at ``path``;
        return (rows, batches)."""
        rendered = queries[0][0]
        connection = hook.get_conn()
        rows = batches = 0
        try:
            session = connection.cursor()
            try:
                session.execute(rendered.session_sql, rendered.session_parameters)
                if session.description:
                    session.fetchall()
            finally:
                session.close()
            # mtime=0: the same rows give the same bytes, so a re-run rewrites an identical object.
            with (
                open(path, "wb") as raw,
                gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as compressed,
                io.TextIOWrapper(compressed, encoding="utf-8", newline="") as text,
            ):
                writer = csv.writer(text, lineterminator="\n")
                formatter: ProductRowFormatter | None = None
                for query, keep in queries:
                    cursor = open_streaming_cursor(connection, query.dialect)
                    try:
                        cursor.execute(query.sql, query.parameters)
                        for batch in iter_row_batches(cursor, fetch_size):
                            if formatter is None:
                                # A server-side cursor describes its columns once rows have been fetched.
                                formatter = ProductRowFormatter(config, _column_names(cursor))
                                writer.writerow(formatter.header)
                            values = [formatter.values(row) for row in batch]
                            if keep is not None:
                                values = [v for v in values if keep(v)]
                            writer.writerows(values)
                            rows += len(values)
                            batches += 1
                            self.log.info(
                                "Fetched batch %d: %d row(s), %d so far", batches, len(values), rows
                            )
                    finally:
                        cursor.close()
        finally:
            # Read-only work: end the transaction (and the server-side cursor) without a commit.
            try:
                connection.rollback()
            finally:
                connection.close()
        return rows, batches

    def _upload(self, path: str, key: str) -> None:
        from airflow.providers.amazon.aws.hooks.s3 import S3Hook

        S3Hook(aws_conn_id=self.aws_conn_id).load_file(
            filename=path, key=key, bucket_name=self.bucket, replace=True
        )

    def _describe_asset_events(self, context: Context, summary: Mapping[str, Any]) -> None:
        """Tell consumers of the outlet Assets which object this run wrote."""
        from airflow.sdk import Asset

        outlet_events = context.get("outlet_events")
        if outlet_events is None:
            return
        extra = {"bucket": summary["bucket"], "key": summary["key"], "rows": summary["rows"]}
        for outlet in self.outlets or ():
            if isinstance(outlet, Asset):
                outlet_events[outlet].extra.update(extra)
