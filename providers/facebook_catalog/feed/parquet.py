"""Read an Airbyte Parquet landing file batch by batch through the feed rules.

Airbyte's S3 destination writes Parquet through an Avro schema: ``_airbyte_raw_id`` (string),
``_airbyte_extracted_at`` (int64, timestamp-millis), ``_airbyte_meta`` (a struct),
``_airbyte_generation_id`` (int64), then either the product's columns (root-level flattening)
or one struct column ``_airbyte_data`` holding them. Strings stay strings, integers are int64,
PostgreSQL NUMERIC and float8 both arrive as double.

Decisions (see feed/README.md):

- Only the Meta-field columns are read, one record batch (at most one row group) at a time, so
  memory is one batch of those columns whatever the file's size. Each column becomes text as
  records.value_text makes it for JSON (``25000.0`` -> ``25000``, booleans -> ``true``); then
  every row goes through the same positional rules as a CSV row. Arrow's compute kernels are not
  used: their first call alone costs a process some 45 MiB.
- The schema is the file's, so a missing required column, two columns meaning one field, or a
  Meta field of a type with no text form (a struct, a map, binary; a list outside
  ``additional_image_link``) is a file error, as a bad CSV header is. A file with 0 rows is a
  file of 0 rows. A truncated or corrupt file (no footer, a bad page) is a file error.
- "Line" in messages is the record's number in the file (the first record is 1).
- pyarrow is an optional dependency (the ``parquet`` extra): without it a Parquet file is a file
  error that says what to install.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, BinaryIO

from facebook_catalog.feed.fields import ColumnLayout, layout_columns
from facebook_catalog.feed.model import (
    FeedEvent,
    FeedFileError,
    FeedItem,
    FeedOptions,
    FeedWarning,
    Rejection,
)
from facebook_catalog.feed.normalize import RowRules, normalize_row, normalized_id
from facebook_catalog.feed.records import (
    AIRBYTE_DATA_COLUMN,
    EXTRACTED_AT_COLUMN,
    extracted_at_ms,
    unknown_column_warnings,
    value_text,
)

if TYPE_CHECKING:
    import pyarrow as pa

PARQUET_EXTRA_HINT = "install the extra: pip install 'airflow-provider-facebook-catalog[parquet]'"
#: Rows per batch: small enough to keep a batch's Python strings to a few MiB.
BATCH_ROWS = 4096
_READ_BUFFER_BYTES = 1 << 20


def _pyarrow() -> Any:
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError:
        raise ImportError(f"reading Parquet needs pyarrow ({PARQUET_EXTRA_HINT})") from None
    return pyarrow


class _ParquetLayout:
    """The columns to read, how to reach each Meta field in a batch, and the header's meaning."""

    def __init__(self, schema: pa.Schema, source: str) -> None:
        pa = _pyarrow()
        names = list(schema.names)
        self.raw = False
        self.columns: list[str] = []
        data_type = schema.field(AIRBYTE_DATA_COLUMN).type if AIRBYTE_DATA_COLUMN in names else None
        if data_type is not None:
            if not pa.types.is_struct(data_type):
                raise FeedFileError(
                    source,
                    f"the column {AIRBYTE_DATA_COLUMN} has Parquet type {data_type}, not a struct holding "
                    "the record's columns",
                )
            self.raw = True
            fields = [data_type.field(index) for index in range(data_type.num_fields)]
        else:
            fields = [schema.field(name) for name in names]
        header = [field.name for field in fields]
        self.layout: ColumnLayout = _check_layout(layout_columns(header), header, source)
        self.types = {index: fields[index].type for index, _ in self.layout.fields}
        for index, meta_field in self.layout.fields:
            _check_type(pa, fields[index].name, meta_field, self.types[index], source)
        self.names = [fields[index].name for index, _ in self.layout.fields]
        self.columns = [AIRBYTE_DATA_COLUMN] if self.raw else list(self.names)
        self.extracted_at = EXTRACTED_AT_COLUMN if EXTRACTED_AT_COLUMN in names else None
        if self.extracted_at is not None:
            extracted_type = schema.field(EXTRACTED_AT_COLUMN).type
            if not (pa.types.is_timestamp(extracted_type) or pa.types.is_integer(extracted_type)):
                self.extracted_at = None
            else:
                self.columns.append(EXTRACTED_AT_COLUMN)
        # Rows hold the Meta fields only, in layout order: position i is layout.fields[i].
        self.rules = RowRules(
            tuple((position, field) for position, (_, field) in enumerate(self.layout.fields))
        )
        self.id_position = next(
            position for position, (_, field) in enumerate(self.layout.fields) if field == "id"
        )

    def extracted_at_ms(self, batch: pa.RecordBatch) -> list[int | None] | None:
        """``_airbyte_extracted_at`` of each row in epoch milliseconds (a timestamp-millis column)."""
        if self.extracted_at is None:
            return None
        pa = _pyarrow()
        array = batch.column(self.extracted_at)
        if pa.types.is_timestamp(array.type) and array.type.unit == "ms":
            values: list[int | None] = array.view(pa.int64()).to_pylist()
            return values
        return [extracted_at_ms(value) for value in array.to_pylist()]

    def text_columns(self, batch: pa.RecordBatch) -> list[list[str]]:
        """Each Meta field's values in the batch as text ("" for null), column by column.

        Strings come as they are and other types through records.value_text, in Python rather
        than Arrow's compute kernels: their first use costs a process some 45 MiB of resident
        memory, more than a batch of text."""
        pa = _pyarrow()
        if self.raw:
            data = batch.column(AIRBYTE_DATA_COLUMN)
            arrays = [data.field(name) for name in self.names]
            if data.null_count:
                # A null record: its fields are null too, whatever the children hold.
                valid = [value is not None for value in data.to_pylist()]
                arrays = [
                    pa.array([v if ok else None for v, ok in zip(a.to_pylist(), valid, strict=True)], a.type)
                    for a in arrays
                ]
        else:
            arrays = [batch.column(name) for name in self.names]
        texts = []
        for array, (_, field) in zip(arrays, self.layout.fields, strict=True):
            values = array.to_pylist()
            kind = array.type
            if pa.types.is_string(kind) or pa.types.is_large_string(kind):
                if array.null_count:
                    values = ["" if value is None else value for value in values]
            elif pa.types.is_list(kind) or pa.types.is_large_list(kind):
                values = ["" if value is None else ",".join(value) for value in values]
            else:
                values = [value_text(value, field) for value in values]
            texts.append(values)
        return texts


def _check_layout(layout: ColumnLayout, header: list[str], source: str) -> ColumnLayout:
    if layout.overrides or layout.bad_overrides:
        index = (layout.overrides or layout.bad_overrides)[0][0]
        raise FeedFileError(
            source,
            f"the column '{header[index]}' is a localized override; overrides are read from CSV, "
            'JSON Lines and Avro files, not yet from Parquet (feed/README.md, "Localized overrides")',
        )
    if layout.duplicated:
        field, names = layout.duplicated[0]
        raise FeedFileError(
            source, f"the columns {' and '.join(repr(n) for n in names)} both mean the field '{field}'"
        )
    if layout.missing:
        plural = "s" if len(layout.missing) > 1 else ""
        shown = ", ".join(header)[:120]
        raise FeedFileError(
            source,
            f"required column{plural} missing: {', '.join(layout.missing)} (the Parquet schema has: {shown})",
        )
    return layout


def _check_type(pa: Any, name: str, field: str, kind: Any, source: str) -> None:
    types = pa.types
    if (
        types.is_string(kind)
        or types.is_large_string(kind)
        or types.is_integer(kind)
        or types.is_floating(kind)
        or types.is_decimal(kind)
        or types.is_boolean(kind)
        or types.is_date(kind)
        or types.is_timestamp(kind)
        or types.is_null(kind)
    ):
        return
    if (
        field == "additional_image_link"
        and (types.is_list(kind) or types.is_large_list(kind))
        and (types.is_string(kind.value_type) or types.is_large_string(kind.value_type))
    ):
        return
    raise FeedFileError(
        source,
        f"the column '{name}' (field '{field}') has Parquet type {kind}; a Meta field must be a string, "
        "a number, a boolean or a date (cast it in the source query)",
    )


def _open(stream: BinaryIO, source: str) -> tuple[Any, _ParquetLayout]:
    try:
        pa = _pyarrow()
    except ImportError as exc:
        raise FeedFileError(source, str(exc)) from None
    if not (hasattr(stream, "seekable") and stream.seekable()):
        # Parquet's footer is at the end: a pipe (stdin) goes to a temporary file first.
        spooled = tempfile.TemporaryFile()  # noqa: SIM115 - closed with the ParquetFile's source
        shutil.copyfileobj(stream, spooled, 1 << 20)
        spooled.seek(0)
        stream = spooled  # type: ignore[assignment]
    try:
        # A buffered stream, not whole column chunks: a row group may be 128 MiB (Airbyte's default
        # block size), and reading it a page at a time keeps memory to one batch.
        parquet_file = pa.parquet.ParquetFile(stream, pre_buffer=False, buffer_size=_READ_BUFFER_BYTES)
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise FeedFileError(
            source,
            f"the Parquet file cannot be opened ({exc}); it is truncated or corrupt (an incomplete upload?)",
        ) from None
    return parquet_file, _ParquetLayout(parquet_file.schema_arrow, source)


def _batches(
    parquet_file: Any, layout: _ParquetLayout, source: str
) -> Iterator[tuple[list[list[str]], list[int | None] | None]]:
    pa = _pyarrow()
    done = 0
    batches = parquet_file.iter_batches(batch_size=BATCH_ROWS, columns=layout.columns, use_threads=False)
    while True:
        try:
            batch = next(batches)
            texts = layout.text_columns(batch)
            extracted = layout.extracted_at_ms(batch)
        except StopIteration:
            return
        except (pa.ArrowException, OSError, ValueError) as exc:
            raise FeedFileError(
                source,
                f"the Parquet data is corrupt after record {done:,} ({exc}); "
                "the file is incomplete or damaged",
            ) from None
        done += batch.num_rows
        yield texts, extracted


def read_parquet(stream: BinaryIO, source: str, options: FeedOptions) -> Iterator[FeedEvent]:
    """Yield, in record order, a FeedItem per good record and a Rejection per problem."""
    parquet_file, layout = _open(stream, source)
    yield from unknown_column_warnings(layout.layout, source, 0)
    rules = layout.rules
    id_position = layout.id_position
    number = 0
    for texts, extracted in _batches(parquet_file, layout, source):
        start = number
        for row in zip(*texts, strict=True):
            number += 1
            fields, problems = normalize_row(row, rules, options)
            if problems:
                item_id = row[id_position].strip()[:100]
                for problem in problems:
                    kind = FeedWarning if problem.is_warning else Rejection
                    yield kind(source, number, problem.field, problem.value, problem.reason, item_id)
            if fields is not None:
                yield FeedItem(
                    source, number, fields, None if extracted is None else extracted[number - start - 1]
                )


def read_parquet_ids(stream: BinaryIO, source: str) -> Iterator[tuple[int, str]]:
    """(record number, normalized id) of every record read_parquet may turn into an item; it reads
    the same columns as read_parquet, so both stop at the same corrupt page."""
    parquet_file, layout = _open(stream, source)
    id_position = layout.id_position
    number = 0
    for texts, _ in _batches(parquet_file, layout, source):
        for cell in texts[id_position]:
            number += 1
            item_id = normalized_id(cell)
            if item_id:
                yield number, item_id
