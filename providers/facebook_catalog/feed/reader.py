"""Stream a CSV feed (plain or gzip) row by row into items, rejections and warnings.

The reader never holds more than one row: it reads the byte stream one physical line at a time,
decodes each line on its own (so a stray Latin-1 byte rejects only its row) and counts lines so
every message can name the line where its row starts. Decisions (see feed/README.md):

- 0 bytes is a file error ("the file is empty"); a header with no data rows is a file of 0 rows.
- Blank lines and rows whose every field is empty are skipped (they are not counted as rows).
- One row may take at most MAX_RECORD_BYTES. A longer single line is rejected and skipped; a row
  that grows past the limit over several lines (an unclosed quote swallowing the file) is a file
  error, because where the next row starts can no longer be known.
"""

from __future__ import annotations

import csv
import gzip
import io
import os
import re
import zlib
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, BinaryIO

from facebook_catalog.feed.fields import ColumnLayout, layout_columns
from facebook_catalog.feed.formats import (
    AVRO,
    AVRO_MAGIC,
    CSV,
    JSONL,
    PARQUET,
    PARQUET_MAGIC,
    format_by_content,
    format_by_name,
    mismatch_reason,
    read_avro,
    read_avro_ids,
    read_jsonl,
    read_jsonl_ids,
    unwrap_airbyte_data,
)
from facebook_catalog.feed.localization import Override
from facebook_catalog.feed.model import (
    FeedEvent,
    FeedFileError,
    FeedItem,
    FeedOptions,
    FeedWarning,
    Rejection,
    display_value,
)
from facebook_catalog.feed.normalize import (
    DEFAULT_OPTIONS,
    OverrideRules,
    RowRules,
    normalize_row,
    normalize_values,
    normalized_id,
)
from facebook_catalog.feed.records import (
    AIRBYTE_DATA_COLUMN,
    EXTRACTED_AT_COLUMN,
    RecordRules,
    extracted_at_ms,
    unknown_column_warnings,
)

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

MAX_RECORD_BYTES = 4 * 1024 * 1024
_READ_BUFFER_BYTES = 1024 * 1024
_GZIP_MAGIC = b"\x1f\x8b"
_UTF8_BOM = b"\xef\xbb\xbf"

_FOREIGN_FORMATS: tuple[tuple[bytes, str], ...] = (
    (b"\xff\xfe", "the file is UTF-16 encoded (it starts with a UTF-16 byte order mark); save it as UTF-8"),
    (b"\xfe\xff", "the file is UTF-16 encoded (it starts with a UTF-16 byte order mark); save it as UTF-8"),
    (b"PK\x03\x04", "the file is a ZIP archive or an Excel workbook, not CSV; export it as CSV (UTF-8)"),
    (b"PAR1", "the file is Parquet, not CSV; set the S3 destination's output format to CSV"),
    (b"BZh", "the file is bzip2-compressed; only gzip (.csv.gz) is supported"),
    (b"\xfd7zXZ\x00", "the file is xz-compressed; only gzip (.csv.gz) is supported"),
    (b"\x28\xb5\x2f\xfd", "the file is zstd-compressed; only gzip (.csv.gz) is supported"),
)
_DELIMITER_NAMES: dict[str, str] = {";": "';'", "\t": "a tab ('\\t')", "|": "'|'"}
_SURROGATE = re.compile("[\udc80-\udcff]")


def _raise_field_size_limit() -> None:
    # csv's limit is per process; it only ever goes up here, and our own record limit (checked
    # on bytes, before csv sees the text) is what bounds memory.
    if csv.field_size_limit() <= MAX_RECORD_BYTES:
        csv.field_size_limit(MAX_RECORD_BYTES + 1)


class _PrefixedStream(io.RawIOBase):
    """Replays the bytes already read to sniff the format, then reads on from the stream."""

    def __init__(self, prefix: bytes, stream: BinaryIO) -> None:
        self._prefix = prefix
        self._stream = stream

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        target = memoryview(buffer).cast("B")
        if self._prefix:
            count = min(len(target), len(self._prefix))
            target[:count] = self._prefix[:count]
            self._prefix = self._prefix[count:]
            return count
        data = self._stream.read(len(target))
        count = len(data)
        target[:count] = data
        return count


def _read_head(stream: BinaryIO, size: int) -> bytes:
    head = b""
    while len(head) < size:
        chunk = stream.read(size - len(head))
        if not chunk:
            break
        head += chunk
    return head


def _read_start(stream: BinaryIO, source: str, size: int) -> bytes:
    """The first ``size`` bytes of a file that has some; a file error for none or a failed read."""
    try:
        head = _read_head(stream, size)
    except OSError as exc:
        raise FeedFileError(source, f"the file cannot be read: {exc}") from None
    if not head:
        raise FeedFileError(source, "the file is empty (0 bytes)")
    return head


def _open_bytes(stream: BinaryIO, source: str) -> tuple[io.BufferedIOBase, bool]:
    """The decompressed byte stream and whether it was gzip."""
    head = _read_start(stream, source, len(_GZIP_MAGIC))
    buffered = io.BufferedReader(_PrefixedStream(head, stream), _READ_BUFFER_BYTES)
    if head == _GZIP_MAGIC:
        return gzip.GzipFile(fileobj=buffered, mode="rb"), True
    return buffered, False


def _read_failure(exc: BaseException, is_gzip: bool, line: int) -> str:
    where = f"after line {line:,}" if line else "at the start"
    if isinstance(exc, EOFError):
        return f"the gzip stream is truncated {where}: the file is incomplete"
    if is_gzip and isinstance(exc, (gzip.BadGzipFile, zlib.error)):
        return f"the gzip data is corrupt {where} ({exc})"
    return f"reading failed {where}: {exc}"


class _PhysicalLines:
    """The stream's lines, decoded one by one, with what the row reader needs to know about them.

    csv.reader pulls exactly the lines of one record per row and never reads ahead, so the
    counters below, reset by start_record(), describe the record csv.reader just returned.
    """

    def __init__(self, stream: io.BufferedIOBase, source: str, is_gzip: bool) -> None:
        self._stream = stream
        self._source = source
        self._is_gzip = is_gzip
        self.line_number = 0
        self.total_bytes = 0
        self.in_header = True
        self.record_start = 1
        self.record_bytes = 0
        # (line, kind, detail) for lines of the current record with undecodable bytes ("utf8"),
        # NUL bytes ("nul") or too many bytes ("oversize").
        self.record_flags: list[tuple[int, str, str]] = []

    def start_record(self) -> None:
        self.record_bytes = 0
        if self.record_flags:
            self.record_flags = []

    def __iter__(self) -> Iterator[str]:
        readline = self._stream.readline
        limit = MAX_RECORD_BYTES + 1
        while True:
            try:
                raw = readline(limit)
            except (OSError, EOFError, zlib.error) as exc:
                raise FeedFileError(
                    self._source, _read_failure(exc, self._is_gzip, self.line_number)
                ) from None
            if not raw:
                return
            self.line_number += 1
            self.total_bytes += len(raw)
            if self.record_bytes == 0:
                self.record_start = self.line_number
            if self.line_number == 1:
                self._sniff(raw)
                if raw.startswith(_UTF8_BOM):
                    # The byte order mark Excel writes; dropped before csv takes it for a name's start.
                    raw = raw[len(_UTF8_BOM) :]
            if len(raw) > MAX_RECORD_BYTES:
                yield self._skip_long_line(raw)
                continue
            self.record_bytes += len(raw)
            if self.record_bytes > MAX_RECORD_BYTES:
                raise FeedFileError(
                    self._source,
                    f"the row starting at line {self.record_start:,} grows past {MAX_RECORD_BYTES:,} "
                    f"bytes by line {self.line_number:,}: an unclosed double quote probably joined "
                    "the following lines into one value",
                )
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                text = self._undecodable(raw, exc)
            if "\x00" in text:
                if self.in_header:
                    raise FeedFileError(
                        self._source, "the header contains NUL bytes: this is not a CSV text file"
                    )
                text = text.replace("\x00", "")
                self.record_flags.append((self.line_number, "nul", ""))
            yield text

    def _sniff(self, raw: bytes) -> None:
        for magic, reason in _FOREIGN_FORMATS:
            if raw.startswith(magic):
                raise FeedFileError(self._source, reason)
        if b"\x00" in raw:
            raise FeedFileError(
                self._source, "the file contains NUL bytes: it is binary data, not a CSV text file"
            )
        if b"\r" in raw.rstrip(b"\r\n"):
            raise FeedFileError(
                self._source,
                "the file uses CR-only line endings (classic Mac); save it with LF or CRLF line endings",
            )

    def _skip_long_line(self, raw: bytes) -> str:
        if self.in_header or self.record_bytes:
            raise FeedFileError(
                self._source,
                f"line {self.line_number:,} is longer than {MAX_RECORD_BYTES:,} bytes; "
                + ("this is not a CSV feed header" if self.in_header else "an unclosed double quote?"),
            )
        size = len(raw)
        while not raw.endswith(b"\n"):
            try:
                raw = self._stream.readline(_READ_BUFFER_BYTES)
            except (OSError, EOFError, zlib.error) as exc:
                raise FeedFileError(
                    self._source, _read_failure(exc, self._is_gzip, self.line_number)
                ) from None
            if not raw:
                break
            size += len(raw)
        self.total_bytes += size - MAX_RECORD_BYTES - 1
        self.record_flags.append((self.line_number, "oversize", f"{size:,}"))
        # A blank line: csv.reader returns an empty row, which the row loop matches to the flag.
        return "\n"

    def _undecodable(self, raw: bytes, exc: UnicodeDecodeError) -> str:
        byte = raw[exc.start]
        if self.in_header:
            raise FeedFileError(
                self._source,
                f"the header is not valid UTF-8 (byte 0x{byte:02X} at position {exc.start + 1}); the "
                "file seems to use another encoding such as Latin-1 or Windows-1252: save it as UTF-8",
            )
        self.record_flags.append((self.line_number, "utf8", f"0x{byte:02X}"))
        # Undecodable bytes become lone surrogates, so the row can still be split into fields
        # and the message can name the field that holds them.
        return raw.decode("utf-8", "surrogateescape")


def read_feed_file(
    path: str | os.PathLike[str], source: str | None = None, options: FeedOptions = DEFAULT_OPTIONS
) -> Iterator[FeedEvent]:
    """read_feed on a local file; ``source`` (the name in messages) defaults to the path."""
    name = os.fspath(path) if source is None else source
    with _open_local(path, name) as stream:
        yield from read_feed(stream, name, options)


def read_feed_file_ids(path: str | os.PathLike[str], source: str | None = None) -> Iterator[tuple[int, str]]:
    """read_feed_ids on a local file; ``source`` (the name in messages) defaults to the path."""
    name = os.fspath(path) if source is None else source
    with _open_local(path, name) as stream:
        yield from read_feed_ids(stream, name)


def _open_local(path: str | os.PathLike[str], name: str) -> BinaryIO:
    try:
        return open(path, "rb")  # the caller's with closes it, across the yields
    except OSError as exc:
        raise FeedFileError(name, f"the file cannot be opened: {exc.strerror or exc}") from None


def read_feed(stream: BinaryIO, source: str, options: FeedOptions = DEFAULT_OPTIONS) -> Iterator[FeedEvent]:
    """Yield, in file order, a FeedItem for each good row and a Rejection for each problem of a
    bad row, plus FeedWarnings. Raises FeedFileError, possibly after some rows, when the file
    cannot be read as a feed; the caller must then treat the whole file as not synced.

    The format (CSV, JSON Lines, Parquet, Avro; see feed/formats.py) comes from ``source``'s
    extension, checked against the content."""
    kind, opened = _open_format(stream, source)
    if kind == PARQUET:
        from facebook_catalog.feed.parquet import read_parquet

        yield from read_parquet(opened, source, options)
        return
    if kind == AVRO:
        yield from read_avro(opened, source, options)
        return
    byte_stream, is_gzip = opened  # type: ignore[misc]
    if kind == JSONL:
        yield from read_jsonl(byte_stream, source, is_gzip, options)
        return
    reader, lines, layout, header_line, data_index = _open_feed(byte_stream, is_gzip, source)
    yield from unknown_column_warnings(layout, source, header_line)
    if data_index is not None:
        rules = RecordRules(source, options)
        for entry in _raw_records(reader, lines, layout, data_index, source):
            if isinstance(entry, Rejection):
                yield entry
            else:
                yield from rules.events(*entry)
        return
    yield from _read_rows(reader, lines, layout, source, options)


def read_feed_ids(stream: BinaryIO, source: str) -> Iterator[tuple[int, str]]:
    """The first pass of a two-pass read: (line, normalized id) of every row that read_feed could
    turn into an item, in file order, for about a third of read_feed's work.

    It raises the FeedFileError that read_feed raises, after the same rows, so a file that passes
    this pass is read to its end by read_feed too. Rows it yields may still be rejected by
    read_feed (a bad price, say), but every FeedItem of read_feed is one of its (line, id) pairs.
    """
    kind, opened = _open_format(stream, source)
    if kind == PARQUET:
        from facebook_catalog.feed.parquet import read_parquet_ids

        yield from read_parquet_ids(opened, source)
        return
    if kind == AVRO:
        yield from read_avro_ids(opened, source)
        return
    byte_stream, is_gzip = opened  # type: ignore[misc]
    if kind == JSONL:
        yield from read_jsonl_ids(byte_stream, source, is_gzip)
        return
    reader, lines, layout, _, data_index = _open_feed(byte_stream, is_gzip, source)
    if data_index is not None:
        rules = RecordRules(source, DEFAULT_OPTIONS)
        for entry in _raw_records(reader, lines, layout, data_index, source):
            if not isinstance(entry, Rejection):
                item_id = rules.item_id(entry[1])
                if item_id:
                    yield entry[0], item_id
        return
    width = layout.width
    id_index = layout.id_index
    for row in _records(reader, lines):
        if not isinstance(row, csv.Error) and len(row) == width and any(row):
            item_id = normalized_id(row[id_index])
            if item_id:
                yield lines.record_start, item_id


def _open_format(stream: BinaryIO, source: str) -> tuple[str, Any]:
    """The file's format and what its reader takes: the binary stream from its first byte
    (Parquet, Avro) or the decompressed byte stream and whether it was gzip (CSV, JSON Lines)."""
    named = format_by_name(source)
    head = _read_start(stream, source, len(PARQUET_MAGIC))
    if head in (PARQUET_MAGIC, AVRO_MAGIC) or named in (PARQUET, AVRO):
        found = format_by_content(head, head.lstrip())
        if named is not None and found != named:
            if named in (PARQUET, AVRO):
                raise FeedFileError(source, mismatch_reason(named, found, source))
            if named == CSV and found == PARQUET:
                raise FeedFileError(
                    source, _FOREIGN_FORMATS[3][1] + "; " + mismatch_reason(named, found, source)
                )
            raise FeedFileError(source, mismatch_reason(named, found, source))
        if stream.seekable():
            stream.seek(0)
            return found, stream
        return found, io.BufferedReader(_PrefixedStream(head, stream), _READ_BUFFER_BYTES)
    byte_stream, is_gzip = _open_bytes(io.BufferedReader(_PrefixedStream(head, stream), len(head)), source)
    try:
        start = byte_stream.peek(256)[:256]  # type: ignore[attr-defined]  # BufferedReader, GzipFile
    except (OSError, EOFError, zlib.error) as exc:
        raise FeedFileError(source, _read_failure(exc, is_gzip, 0)) from None
    if start.startswith(_UTF8_BOM):
        start = start[len(_UTF8_BOM) :]
    found = format_by_content(b"", start.lstrip())
    if named == CSV and found == JSONL:
        raise FeedFileError(
            source,
            "the file looks like JSON, not CSV: it is JSON Lines (Airbyte's JSONL output?) named as CSV; "
            "name it .jsonl, as the Airbyte S3 destination does",
        )
    if named == JSONL and found != JSONL and start.strip():
        first_line = start.split(b"\n", 1)[0].decode("utf-8", "replace").strip()
        raise FeedFileError(
            source,
            f"the file is named as JSON Lines but its first line is not a JSON object "
            f"('{display_value(first_line, 60)}'); is it CSV? name it .csv",
        )
    return (named or found), (byte_stream, is_gzip)


def _records(reader: Iterator[list[str]], lines: _PhysicalLines) -> Iterator[list[str] | csv.Error]:
    """Each CSV record, or the csv.Error it is, with ``lines`` describing it. Both read_feed and
    read_feed_ids read through here, so a file fails at the same row in both."""
    while True:
        lines.start_record()
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield exc
            continue
        yield row


def _raw_records(
    reader: Iterator[list[str]], lines: _PhysicalLines, layout: ColumnLayout, data_index: int, source: str
) -> Iterator[tuple[int, Mapping[str, Any], int | None] | Rejection]:
    """Airbyte's raw CSV ("No flattening"): each row's record, parsed from its _airbyte_data JSON,
    as (line, record, extracted_at), or the Rejection of a row that holds none."""
    width = layout.width
    extracted_index = _extracted_at_index(layout)
    for row in _records(reader, lines):
        line = lines.record_start
        if isinstance(row, csv.Error):
            yield Rejection(source, line, "", "", _malformed_reason(str(row), lines))
            continue
        if lines.record_flags and not row:
            yield from _oversize_rejections(lines, source)
            continue
        if len(row) != width:
            if any(cell.strip() for cell in row):
                yield Rejection(
                    source,
                    line,
                    "",
                    display_value(",".join(row)),
                    f"the row has {len(row):,} field{'' if len(row) == 1 else 's'} but the header has "
                    f"{width:,}{_span(lines)}",
                )
            continue
        if not any(row):
            continue
        if lines.record_flags:
            kinds = {kind for _, kind, _ in lines.record_flags}
            what = "NUL bytes" if "nul" in kinds else "bytes that are not valid UTF-8"
            yield Rejection(
                source, line, AIRBYTE_DATA_COLUMN, "", f"the row contains {what}; save the file as UTF-8"
            )
            continue
        data = unwrap_airbyte_data(row[data_index], source, line)
        if isinstance(data, Rejection):
            yield data
            continue
        yield line, data, None if extracted_index is None else extracted_at_ms(row[extracted_index])


def _extracted_at_index(layout: ColumnLayout) -> int | None:
    return next(
        (index for index, name in enumerate(layout.header) if name.strip().lower() == EXTRACTED_AT_COLUMN),
        None,
    )


def _open_feed(
    byte_stream: io.BufferedIOBase, is_gzip: bool, source: str
) -> tuple[Iterator[list[str]], _PhysicalLines, ColumnLayout, int, int | None]:
    """The CSV row reader past a checked header, its line tracker, the layout, the header's line
    and, for Airbyte's raw CSV, the index of the _airbyte_data column."""
    _raise_field_size_limit()
    lines = _PhysicalLines(byte_stream, source, is_gzip)
    reader = csv.reader(lines, strict=True)
    header = _read_header(reader, lines, source)
    header_line = lines.record_start
    names = [name.strip().lower() for name in header]
    if AIRBYTE_DATA_COLUMN in names and not layout_columns(header).fields:
        return reader, lines, layout_columns(header), header_line, names.index(AIRBYTE_DATA_COLUMN)
    return reader, lines, _check_header(header, source), header_line, None


def _read_header(reader: Iterator[list[str]], lines: _PhysicalLines, source: str) -> list[str]:
    while True:
        lines.start_record()
        try:
            row = next(reader)
        except StopIteration:
            if lines.total_bytes == 0:
                raise FeedFileError(source, "the file is empty (0 bytes of CSV)") from None
            raise FeedFileError(source, "the file has no header line (it holds only blank lines)") from None
        except csv.Error as exc:
            raise FeedFileError(source, f"the header line is not valid CSV ({exc})") from None
        if any(cell.strip() for cell in row):
            break
    lines.in_header = False
    return row


def _header_preview(header: list[str]) -> str:
    return display_value(", ".join(name.strip() for name in header), 120)


def _check_header(header: list[str], source: str) -> ColumnLayout:
    if header[0].lstrip().startswith(("{", "[")):
        raise FeedFileError(
            source,
            "the file looks like JSON, not CSV (Airbyte's JSON Lines output?); "
            "set the S3 destination's output format to CSV",
        )
    if len(header) == 1:
        for delimiter, name in _DELIMITER_NAMES.items():
            if delimiter in header[0]:
                raise FeedFileError(
                    source,
                    f"the header has one column; the file seems to use {name} as delimiter "
                    "(a feed must be comma-separated)",
                )
    layout = layout_columns(header)
    if layout.bad_overrides:
        raise FeedFileError(source, layout.bad_overrides[0][2])
    if layout.duplicated:
        field, names = layout.duplicated[0]
        listed = " and ".join(f"'{display_value(name.strip(), 40)}'" for name in names)
        raise FeedFileError(source, f"the columns {listed} both mean the field '{field}'")
    if layout.missing:
        plural = "s" if len(layout.missing) > 1 else ""
        reason = f"required column{plural} missing: {', '.join(layout.missing)}"
        if not layout.fields:
            reason += f" (the first line is '{_header_preview(header)}'; does the file start with a header?)"
        else:
            reason += f" (the header has: {_header_preview(header)})"
        raise FeedFileError(source, reason)
    return layout


def _read_rows(
    reader: Iterator[list[str]],
    lines: _PhysicalLines,
    layout: ColumnLayout,
    source: str,
    options: FeedOptions,
) -> Iterator[FeedEvent]:
    width = layout.width
    rules = RowRules(layout.fields)
    override_rules = OverrideRules(layout.overrides) if layout.overrides else None
    id_index = layout.id_index
    extracted_index = _extracted_at_index(layout)
    for row in _records(reader, lines):
        if isinstance(row, csv.Error):
            yield Rejection(source, lines.record_start, "", "", _malformed_reason(str(row), lines))
            continue
        line = lines.record_start
        if lines.record_flags and not row:
            yield from _oversize_rejections(lines, source)
            continue
        if len(row) != width:
            if any(cell.strip() for cell in row):
                yield from _wrong_width_rejections(row, layout, lines, source, options)
            continue
        if not any(row):
            continue
        if lines.record_flags:
            problems = list(_encoding_rejections(row, layout, lines, source, _item_id(row[id_index])))
            if problems:
                yield from problems
                continue
        fields, field_problems = normalize_row(row, rules, options)
        overrides: tuple[Override, ...] = ()
        if override_rules is not None:
            overrides, override_problems = override_rules.apply(row, options)
            if override_problems:
                # A bad override value rejects its row, as any bad value does: nothing half-sent.
                field_problems = field_problems + override_problems
                if any(not problem.is_warning for problem in override_problems):
                    fields = None
        if field_problems:
            item_id = _item_id(row[id_index])
        for problem in field_problems:
            if problem.is_warning:
                yield FeedWarning(source, line, problem.field, problem.value, problem.reason, item_id)
            else:
                yield Rejection(source, line, problem.field, problem.value, problem.reason, item_id)
        if fields is not None:
            extracted = None if extracted_index is None else extracted_at_ms(row[extracted_index])
            if overrides:
                yield FeedItem(source, line, fields, extracted, overrides)
            elif extracted_index is None:
                yield FeedItem(source, line, fields)
            else:
                yield FeedItem(source, line, fields, extracted)


def _item_id(cell: str) -> str:
    return display_value(cell.strip(), 100)


def _span(lines: _PhysicalLines) -> str:
    if lines.line_number > lines.record_start:
        return f" (the row spans lines {lines.record_start:,}-{lines.line_number:,})"
    return ""


def _malformed_reason(error: str, lines: _PhysicalLines) -> str:
    if "expected after" in error:
        return (
            "malformed quoting: text follows a closing double quote; a double quote inside a quoted "
            f'value must be doubled (""){_span(lines)}'
        )
    if "unexpected end of data" in error:
        return (
            f"a double quote opened in the row starting at line {lines.record_start:,} is never closed: "
            f"lines {lines.record_start:,}-{lines.line_number:,} (the end of the file) were read as "
            "one value and not as rows"
        )
    if "new-line character" in error:
        return f"a carriage return (CR) outside quotes: the file mixes line endings{_span(lines)}"
    return f"malformed CSV ({error}){_span(lines)}"


def _oversize_rejections(lines: _PhysicalLines, source: str) -> Iterator[Rejection]:
    for line, kind, detail in lines.record_flags:
        if kind == "oversize":
            yield Rejection(
                source,
                line,
                "",
                "",
                f"the line is {detail} bytes long, over the {MAX_RECORD_BYTES:,}-byte limit for one "
                "row; it was skipped",
            )


def _wrong_width_rejections(
    row: list[str], layout: ColumnLayout, lines: _PhysicalLines, source: str, options: FeedOptions
) -> Iterator[Rejection]:
    count, width = len(row), layout.width
    line = lines.record_start
    if count > width:
        hint = "a ',' inside a value splits it in two; enclose values that contain commas in double quotes"
    elif count == 1 and (delimiter := next((d for d in _DELIMITER_NAMES if d in row[0]), None)):
        hint = f"the row seems to use {_DELIMITER_NAMES[delimiter]} as delimiter instead of ','"
    else:
        hint = "values are missing, so the values after the gap sit in the wrong columns"
    id_cell = layout.id_index
    # A one-field row is the whole line, not an id.
    item_id = _item_id(row[id_cell]) if id_cell < count and count > 1 else ""
    yield Rejection(
        source,
        line,
        "",
        display_value(",".join(row)),
        f"the row has {count:,} field{'' if count == 1 else 's'} but the header has {width:,}: "
        f"{hint}{_span(lines)}",
        item_id,
    )
    if count < 2:
        return
    # The fields read by position show where the row went off the rails (e.g. a URL under price).
    values = {field: row[index] for index, field in layout.fields if index < count}
    for problem in normalize_values(values, options).problems:
        if not problem.is_warning:
            yield Rejection(source, line, problem.field, problem.value, problem.reason, item_id)


def _encoding_rejections(
    row: list[str], layout: ColumnLayout, lines: _PhysicalLines, source: str, item_id: str
) -> Iterator[Rejection]:
    # Undecodable bytes only in columns that are not sent (Airbyte's, unknown ones) spoil nothing.
    line = lines.record_start
    for flag_line, kind, _detail in lines.record_flags:
        if kind == "nul":
            yield Rejection(
                source, line, "", "", f"line {flag_line:,} contains NUL bytes (binary data)", item_id
            )
    for index, field in layout.fields:
        cell = row[index]
        found = _SURROGATE.search(cell)
        if found is None:
            continue
        byte = ord(found.group()) - 0xDC00
        as_latin = cell.encode("utf-8", "surrogateescape").decode("cp1252", "replace")
        yield Rejection(
            source,
            line,
            field,
            display_value(cell),
            f"byte 0x{byte:02X} is not valid UTF-8: the file seems to be Latin-1 or Windows-1252 "
            f"(read that way the value is '{display_value(as_latin, 60)}'); save the file as UTF-8",
            item_id,
        )
