"""Which of Airbyte's S3 output formats a landing file is in, and the JSON Lines and Avro readers.

The format is chosen by the file's name (``.csv``, ``.jsonl``, ``.parquet``, ``.avro``, each
optionally ``.gz``; the S3 destination names files this way) and checked against the content:
a file whose bytes are another format than its name says is a file error naming both, because
a renamed file is a mistake somewhere upstream, not something to guess around. A name without a
known extension is read by its content (Parquet and Avro by their magic bytes, JSON Lines by a
first line starting with ``{``, anything else as CSV).

JSON Lines: one JSON object per line, plain or gzip, with the record either flattened (the
product's columns beside ``_airbyte_*``) or raw (the product as an object in ``_airbyte_data``).
Line numbers are physical lines (the first record is line 1). A line that is not JSON, not an
object, or longer than MAX_RECORD_BYTES is rejected alone; a truncated gzip stream is a file error.
"""

from __future__ import annotations

import io
import os
import zlib
from collections.abc import Iterator, Mapping
from typing import Any, BinaryIO

import orjson

from facebook_catalog.feed.model import FeedEvent, FeedFileError, FeedOptions, Rejection, display_value
from facebook_catalog.feed.records import (
    AIRBYTE_DATA_COLUMN,
    EXTRACTED_AT_COLUMN,
    RecordRules,
    extracted_at_ms,
)

CSV, JSONL, PARQUET, AVRO = "csv", "jsonl", "parquet", "avro"
_EXTENSIONS: dict[str, str] = {
    ".csv": CSV,
    ".tsv": CSV,  # the CSV reader explains the delimiter
    ".txt": CSV,
    ".jsonl": JSONL,
    ".ndjson": JSONL,
    ".json": JSONL,
    ".parquet": PARQUET,
    ".avro": AVRO,
}
_COMPRESSION_SUFFIXES = (".gz", ".gzip")
PARQUET_MAGIC = b"PAR1"
AVRO_MAGIC = b"Obj\x01"
_UTF8_BOM = b"\xef\xbb\xbf"
_NAMES = {CSV: "CSV", JSONL: "JSON Lines", PARQUET: "Parquet", AVRO: "Avro"}


def format_by_name(source: str) -> str | None:
    """The format a file's name gives (``products.jsonl.gz`` -> jsonl), or None for no known one."""
    name = source.rsplit("/", 1)[-1].lower()
    for suffix in _COMPRESSION_SUFFIXES:
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    _, extension = os.path.splitext(name)
    return _EXTENSIONS.get(extension)


def format_by_content(head: bytes, text_start: bytes) -> str:
    """The format the first bytes show: ``head`` as stored, ``text_start`` the first bytes after
    gzip (if any) and a BOM, with leading whitespace removed."""
    if head.startswith(PARQUET_MAGIC):
        return PARQUET
    if head.startswith(AVRO_MAGIC):
        return AVRO
    if text_start.startswith(b"{"):
        return JSONL
    return CSV


def mismatch_reason(named: str, found: str, source: str) -> str:
    name = source.rsplit("/", 1)[-1]
    return (
        f"the file is named '{display_value(name, 80)}' ({_NAMES[named]}) but its content is "
        f"{_NAMES[found]}; give it the extension of its format (the Airbyte S3 destination does)"
    )


# --- JSON Lines ---------------------------------------------------------------------------------


def _json_kind(value: object) -> str:
    return {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number"
    )


def _line_preview(raw: bytes) -> str:
    return display_value(raw.decode("utf-8", "replace").strip())


class _JsonLines:
    """Each record of a JSON Lines stream as (line, product record), or the Rejection of a line."""

    def __init__(self, stream: io.BufferedIOBase, source: str, is_gzip: bool) -> None:
        self._stream = stream
        self._source = source
        self._is_gzip = is_gzip
        self.line = 0

    def _fail(self, exc: BaseException) -> FeedFileError:
        from facebook_catalog.feed.reader import _read_failure

        return FeedFileError(self._source, _read_failure(exc, self._is_gzip, self.line))

    def _skip_rest(self, raw: bytes) -> int:
        size = len(raw)
        while not raw.endswith(b"\n"):
            try:
                raw = self._stream.readline(1 << 20)
            except (OSError, EOFError, zlib.error) as exc:
                raise self._fail(exc) from None
            if not raw:
                break
            size += len(raw)
        return size

    def __iter__(self) -> Iterator[tuple[int, Mapping[str, Any], int | None] | Rejection]:
        from facebook_catalog.feed.reader import MAX_RECORD_BYTES

        readline = self._stream.readline
        limit = MAX_RECORD_BYTES + 1
        source = self._source
        seen_bytes = 0
        while True:
            try:
                raw = readline(limit)
            except (OSError, EOFError, zlib.error) as exc:
                raise self._fail(exc) from None
            if not raw:
                if seen_bytes == 0:
                    raise FeedFileError(source, "the file is empty (0 bytes of JSON Lines)")
                return
            self.line += 1
            line = self.line
            seen_bytes += len(raw)
            if line == 1 and raw.startswith(_UTF8_BOM):
                raw = raw[len(_UTF8_BOM) :]
            if len(raw) > MAX_RECORD_BYTES:
                size = self._skip_rest(raw)
                yield Rejection(
                    source,
                    line,
                    "",
                    "",
                    f"the line is {size:,} bytes long, over the {MAX_RECORD_BYTES:,}-byte limit for one "
                    "record; it was skipped",
                )
                continue
            try:
                record = orjson.loads(raw)
            except orjson.JSONDecodeError as exc:
                if not raw.strip():
                    continue
                yield Rejection(
                    source,
                    line,
                    "",
                    _line_preview(raw),
                    f"the line is not JSON ({exc}); each line of a JSON Lines file must be one JSON object",
                )
                continue
            if type(record) is not dict:
                yield Rejection(
                    source,
                    line,
                    "",
                    _line_preview(raw),
                    f"the line is {_json_kind(record)}, not a JSON object; each line must be one record",
                )
                continue
            yield product_record(record, source, line)


def product_record(
    record: Mapping[str, Any], source: str, line: int
) -> tuple[int, Mapping[str, Any], int | None] | Rejection:
    """(line, the product, its _airbyte_extracted_at) of one Airbyte record, raw or flattened."""
    extracted_at = extracted_at_ms(record.get(EXTRACTED_AT_COLUMN))
    if AIRBYTE_DATA_COLUMN not in record:
        return line, record, extracted_at
    data = unwrap_airbyte_data(record[AIRBYTE_DATA_COLUMN], source, line)
    if isinstance(data, Rejection):
        return data
    return line, data, extracted_at


def unwrap_airbyte_data(data: object, source: str, line: int) -> Mapping[str, Any] | Rejection:
    """The product of a raw Airbyte record: ``_airbyte_data`` as an object (JSON Lines, Parquet,
    Avro) or as JSON text (CSV); a Rejection naming the column when it is neither."""
    if isinstance(data, str):
        text = data
        try:
            data = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            return Rejection(
                source,
                line,
                AIRBYTE_DATA_COLUMN,
                display_value(text),
                f"is not JSON ({exc}); Airbyte's raw format holds the record as a JSON object here",
            )
    if not isinstance(data, dict):
        return Rejection(
            source,
            line,
            AIRBYTE_DATA_COLUMN,
            display_value(orjson.dumps(data).decode() if data is not None else "null"),
            f"is {_json_kind(data)}, not a JSON object holding the record",
        )
    return data


def read_jsonl(
    stream: io.BufferedIOBase, source: str, is_gzip: bool, options: FeedOptions
) -> Iterator[FeedEvent]:
    rules = RecordRules(source, options)
    for entry in _JsonLines(stream, source, is_gzip):
        if isinstance(entry, Rejection):
            yield entry
        else:
            yield from rules.events(*entry)


def read_jsonl_ids(stream: io.BufferedIOBase, source: str, is_gzip: bool) -> Iterator[tuple[int, str]]:
    rules = RecordRules(source, FeedOptions())
    for entry in _JsonLines(stream, source, is_gzip):
        if not isinstance(entry, Rejection):
            item_id = rules.item_id(entry[1])
            if item_id:
                yield entry[0], item_id


# --- Avro ---------------------------------------------------------------------------------------

AVRO_EXTRA_HINT = "install the extra: pip install 'airflow-provider-facebook-catalog[avro]'"


def _avro_records(
    stream: BinaryIO, source: str
) -> Iterator[tuple[int, Mapping[str, Any], int | None] | Rejection]:
    try:
        import fastavro
    except ImportError:
        raise FeedFileError(
            source,
            f"reading Avro needs the fastavro package ({AVRO_EXTRA_HINT}), or choose CSV, JSONL or Parquet",
        ) from None
    try:
        reader = fastavro.reader(stream)
    except (ValueError, EOFError, OSError) as exc:
        raise FeedFileError(
            source, f"the Avro file cannot be read ({exc}); it is corrupt or incomplete"
        ) from None
    number = 0
    iterator = iter(reader)
    while True:
        try:
            record = next(iterator)
        except StopIteration:
            return
        except (ValueError, EOFError, OSError, zlib.error) as exc:
            raise FeedFileError(
                source,
                f"the Avro file is corrupt or truncated after record {number:,} "
                f"({exc or type(exc).__name__})",
            ) from None
        number += 1
        if not isinstance(record, dict):
            yield Rejection(source, number, "", "", "the Avro record is not a record (object)")
            continue
        yield product_record(record, source, number)


def read_avro(stream: BinaryIO, source: str, options: FeedOptions) -> Iterator[FeedEvent]:
    rules = RecordRules(source, options)
    for entry in _avro_records(stream, source):
        if isinstance(entry, Rejection):
            yield entry
        else:
            yield from rules.events(*entry)


def read_avro_ids(stream: BinaryIO, source: str) -> Iterator[tuple[int, str]]:
    rules = RecordRules(source, FeedOptions())
    for entry in _avro_records(stream, source):
        if not isinstance(entry, Rejection):
            item_id = rules.item_id(entry[1])
            if item_id:
                yield entry[0], item_id
