from __future__ import annotations

import csv
import gzip
import io
import pickle
from collections.abc import Iterator
from pathlib import Path

import pytest

from facebook_catalog.feed import (
    MAX_RECORD_BYTES,
    FeedFileError,
    FeedItem,
    FeedOptions,
    FeedWarning,
    Rejection,
    read_feed,
    read_feed_file,
)

HEADER = "id,title,description,link,image_link,availability,price,brand"


def row(item_id: object, price: str = "25000 IQD", title: str | None = None) -> str:
    return (
        f"{item_id},{title or f'Title {item_id}'},Description {item_id},https://shop.example.com/p/{item_id},"
        f"https://cdn.example.com/{item_id}.jpg,in stock,{price},Miswag"
    )


def feed(*rows: str, header: str = HEADER) -> bytes:
    return "".join(f"{line}\n" for line in (header, *rows)).encode()


def read(data: bytes, options: FeedOptions | None = None) -> list[FeedItem | Rejection | FeedWarning]:
    return list(read_feed(io.BytesIO(data), "feed.csv", options or FeedOptions()))


def items(events: list[FeedItem | Rejection | FeedWarning]) -> list[FeedItem]:
    return [event for event in events if isinstance(event, FeedItem)]


def rejections(events: list[FeedItem | Rejection | FeedWarning]) -> list[Rejection]:
    return [event for event in events if isinstance(event, Rejection)]


def file_error(data: bytes) -> FeedFileError:
    with pytest.raises(FeedFileError) as caught:
        read(data)
    return caught.value


def test_good_rows_become_items_with_source_line_and_normalized_fields() -> None:
    (item,) = read(feed(row(1, price="25000")))
    assert isinstance(item, FeedItem)
    assert (item.source, item.line, item.id) == ("feed.csv", 2, "1")
    assert item.fields["price"] == "25000 IQD"
    assert item.fields["condition"] == "new"


def test_options_apply_to_every_row() -> None:
    (item,) = read(feed(row(1, price="9.99")), FeedOptions(default_currency="USD", default_condition="used"))
    assert isinstance(item, FeedItem)
    assert (item.fields["price"], item.fields["condition"]) == ("9.99 USD", "used")


def test_a_bad_row_rejects_only_itself() -> None:
    events = read(feed(row(1), row(2, price="$10"), row(3)))
    assert [item.id for item in items(events)] == ["1", "3"]
    (rejection,) = rejections(events)
    assert (rejection.line, rejection.field, rejection.value, rejection.item_id) == (3, "price", "$10", "2")
    assert rejection.message().startswith("feed.csv line 3: field 'price' value '$10': currency symbols")


def test_line_numbers_are_physical_lines_across_quoted_newlines_and_blank_lines() -> None:
    data = (
        HEADER + "\n"
        '1,T,"a\nb\nc",https://e.example/1,https://e.example/1.jpg,in stock,1 IQD,B\n'
        "\n"
        + row(2, price="bad")
        + "\r\n"
        + '3,"multi\r\nline",D,https://e.example/3,https://e.example/3.jpg,in stock,1 IQD,B\r\n'
        + row(4, price="bad")
        + "\n"
    ).encode()
    events = read(data)
    assert [(item.id, item.line) for item in items(events)] == [("1", 2), ("3", 7)]
    assert [rejection.line for rejection in rejections(events)] == [6, 9]


def test_header_names_match_whatever_the_case_spacing_or_separator() -> None:
    header = '" ID ",TITLE,Description,LINK," Image Link ",Availability,price ,Brand,Sale-Price,ITEM_GROUP_ID'
    (item,) = read(feed(row(1) + ",20000 IQD,g1", header=header))
    assert isinstance(item, FeedItem)
    assert item.fields["sale_price"] == "20000 IQD"
    assert item.fields["item_group_id"] == "g1"


def test_columns_may_come_in_any_order() -> None:
    header = "price,brand,id,availability,title,link,description,image_link"
    (item,) = read(feed("10 USD,B,7,in stock,T,https://e.example/7,D,https://e.example/7.jpg", header=header))
    assert isinstance(item, FeedItem)
    assert (item.id, item.fields["price"]) == ("7", "10 USD")


def test_airbyte_columns_are_ignored_silently_and_unknown_ones_warned_once() -> None:
    header = f"_airbyte_raw_id,_AB_source_file_url,{HEADER},cost,color"
    events = read(feed(*(f"x,y,{row(n)},10,red" for n in (1, 2, 3)), header=header))
    warnings = [event for event in events if isinstance(event, FeedWarning)]
    assert [(w.line, w.field) for w in warnings] == [(1, "cost")]
    assert warnings[0].message() == (
        "feed.csv line 1: warning: field 'cost': not a Meta product field: the column's values are not sent"
    )
    assert all(item.fields["color"] == "red" and "cost" not in item.fields for item in items(events))


def test_condition_column_is_optional() -> None:
    (item,) = read(feed(row(1) + ",refurbished", header=HEADER + ",condition"))
    assert isinstance(item, FeedItem)
    assert item.fields["condition"] == "refurbished"


def test_bom_is_stripped_from_the_first_column_name() -> None:
    assert [item.id for item in items(read(b"\xef\xbb\xbf" + feed(row(1))))] == ["1"]
    assert [item.id for item in items(read(b'\xef\xbb\xbf"id"' + feed(row(1))[2:]))] == ["1"]


# --- file-level errors --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "the file is empty (0 bytes)"),
        (gzip.compress(b""), "the file is empty"),
        (b"\n\n  \n", "no header line"),
        (
            feed(header="id,title,description,link,availability,price,brand"),
            "required column missing: image_link",
        ),
        (feed(header="id;title;description;link;image_link;availability;price;brand"), "seems to use ';'"),
        (feed(header="id\ttitle\tdescription"), "seems to use a tab ('\\t') as delimiter"),
        (feed(header="id|title|description"), "seems to use '|'"),
        (feed(header=HEADER + ",Brand"), "the columns 'brand' and 'Brand' both mean the field 'brand'"),
        (b"id,title\xe9,description\n", "the header is not valid UTF-8 (byte 0xE9 at position 9)"),
        (b"id,ti\x00tle\n1,2\n", "NUL bytes"),
        (b"\x00\x01\x02\x03", "NUL bytes"),
        ("id,title\n".encode("utf-16"), "UTF-16"),
        (b"PK\x03\x04rest", "ZIP archive"),
        (b"PAR1rest", "Parquet"),
        (b"BZh91AY", "bzip2"),
        (b"\x1f\x8bnot really gzip", "the gzip data is corrupt at the start"),
        (HEADER.replace(",", "\r").encode() + b"\r1\r", "CR-only line endings"),
        (b'{"id": 1}\n', "looks like JSON"),
        (b'"unclosed header\n', "the header line is not valid CSV"),
    ],
)
def test_file_level_problems(data: bytes, reason: str) -> None:
    error = file_error(data)
    assert reason in error.reason
    assert error.source == "feed.csv"
    assert str(error) == f"feed.csv: {error.reason}"


def test_header_only_is_a_file_of_zero_rows() -> None:
    assert read(feed()) == []
    assert read(HEADER.encode()) == []


def test_file_error_is_picklable() -> None:
    error = pickle.loads(pickle.dumps(FeedFileError("a.csv", "the file is empty")))
    assert (error.source, error.reason, str(error)) == (
        "a.csv",
        "the file is empty",
        "a.csv: the file is empty",
    )


def test_truncated_gzip_fails_mid_iteration_after_rows_came_out() -> None:
    whole = gzip.compress(feed(*(row(n) for n in range(1, 20_001))))
    stream = read_feed(io.BytesIO(whole[: len(whole) // 2]), "cut.csv.gz")
    seen = []
    error: FeedFileError | None = None
    try:
        for event in stream:
            seen.append(event)
    except FeedFileError as exc:
        error = exc
    assert error is not None
    assert "the gzip stream is truncated after line" in error.reason
    assert len(seen) > 1000


def test_gzip_is_found_by_magic_bytes_whatever_the_name(tmp_path: Path) -> None:
    path = tmp_path / "products.csv"
    path.write_bytes(gzip.compress(feed(row(1), row(2))))
    assert [event.id for event in read_feed_file(path) if isinstance(event, FeedItem)] == ["1", "2"]


def test_read_feed_file_names_the_path_unless_told_otherwise(tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    path.write_bytes(feed(row(1)))
    (item,) = read_feed_file(path)
    assert isinstance(item, FeedItem)
    assert item.source == str(path)
    (item,) = read_feed_file(str(path), source="s3://landing/p.csv")
    assert isinstance(item, FeedItem)
    assert item.source == "s3://landing/p.csv"


def test_read_feed_file_turns_a_missing_file_into_a_file_error(tmp_path: Path) -> None:
    with pytest.raises(FeedFileError, match="cannot be opened: No such file or directory"):
        list(read_feed_file(tmp_path / "nope.csv"))


# --- row-level problems -------------------------------------------------------------------------


def test_wrong_field_counts_are_rejected_and_say_so() -> None:
    events = read(feed(row(1) + ",extra", "2,only,three", row(3)))
    assert [item.id for item in items(events)] == ["3"]
    found = rejections(events)
    assert found[0].line == 2
    assert found[0].field == ""
    assert "the row has 9 fields but the header has 8" in found[0].reason
    assert "the row has 3 fields but the header has 8" in found[1].reason
    assert found[1].message().startswith("feed.csv line 3: row '2,only,three': the row has 3 fields")


def test_invalid_utf8_rejects_its_row_naming_byte_field_and_encoding() -> None:
    data = feed(row(1)) + row(2, title="Caf\xe9").encode("latin-1") + b"\n" + row(3).encode() + b"\n"
    events = read(data)
    assert [item.id for item in items(events)] == ["1", "3"]
    (rejection,) = rejections(events)
    assert (rejection.line, rejection.field, rejection.value) == (3, "title", "Caf\\xe9")
    assert "byte 0xE9 is not valid UTF-8" in rejection.reason
    assert "Latin-1 or Windows-1252" in rejection.reason
    assert "'Café'" in rejection.reason
    rejection.message().encode("utf-8")  # nothing undecodable leaks into messages


def test_invalid_utf8_in_a_column_that_is_not_sent_does_not_reject() -> None:
    data = (HEADER + ",notes\n" + row(1) + ",").encode() + "été".encode("latin-1") + b"\n"
    events = read(data)
    assert [item.id for item in items(events)] == ["1"]


def test_a_nul_byte_in_a_row_rejects_the_row() -> None:
    events = read(feed(row(1), row(2, title="a\x00b"), row(3)))
    assert [item.id for item in items(events)] == ["1", "3"]
    (rejection,) = rejections(events)
    assert (rejection.line, rejection.reason) == (3, "line 3 contains NUL bytes (binary data)")


def test_quoting_errors_reject_the_row_and_reading_goes_on() -> None:
    events = read(
        feed(row(1), '2,"T" x,D,https://e.example/2,https://e.example/2.jpg,in stock,1 IQD,B', row(3))
    )
    assert [item.id for item in items(events)] == ["1", "3"]
    assert "malformed quoting" in rejections(events)[0].reason


def test_unclosed_quote_at_the_end_names_the_swallowed_lines() -> None:
    events = read(feed(row(1), row(2, title='"open'), row(3), row(4)))
    assert [item.id for item in items(events)] == ["1"]
    (rejection,) = rejections(events)
    assert rejection.line == 3
    assert "is never closed: lines 3-5" in rejection.reason


def test_a_one_megabyte_field_is_read_and_rejected_cleanly() -> None:
    events = read(feed(row(1), row(2, title="t" * 1_048_576), row(3)))
    assert [item.id for item in items(events)] == ["1", "3"]
    (rejection,) = rejections(events)
    assert rejection.reason == "is 1,048,576 characters long; Meta's limit is 200"
    assert len(rejection.value) < 120


def test_a_line_over_the_row_limit_is_skipped_and_reading_goes_on() -> None:
    events = read(feed(row(1), row(2, title="t" * (MAX_RECORD_BYTES + 10)), row(3)))
    assert [item.id for item in items(events)] == ["1", "3"]
    (rejection,) = rejections(events)
    assert rejection.line == 3
    assert "over the 4,194,304-byte limit for one row" in rejection.reason


def test_a_row_growing_past_the_limit_over_many_lines_is_a_file_error() -> None:
    lines = [row(1), '2,"never closed'] + ["x" * 1000] * (MAX_RECORD_BYTES // 1000 + 5)
    with pytest.raises(FeedFileError, match="the row starting at line 3 grows past"):
        read(feed(*lines))


def test_the_csv_field_size_limit_is_only_ever_raised() -> None:
    read(feed(row(1)))
    assert csv.field_size_limit() > MAX_RECORD_BYTES


# --- streaming ---------------------------------------------------------------------------------


class EndlessFeed(io.RawIOBase):
    """A feed that never ends: reading it whole would never return."""

    def __init__(self) -> None:
        self.pending = feed()
        self.rows = 0
        self.bytes_read = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        while len(self.pending) < max(size, 1):
            self.rows += 1
            self.pending += (row(self.rows) + "\n").encode()
        chunk, self.pending = self.pending[:size], self.pending[size:]
        self.bytes_read += len(chunk)
        return chunk


def test_the_reader_streams_rows_without_reading_the_whole_file() -> None:
    stream = EndlessFeed()
    events: Iterator[FeedItem | Rejection | FeedWarning] = read_feed(stream, "endless.csv")  # type: ignore[arg-type]
    first = [next(events) for _ in range(1000)]
    assert [event.line for event in first] == list(range(2, 1002))
    assert stream.bytes_read < 3 * 1024 * 1024


def test_a_non_seekable_stream_is_read_from_its_first_byte() -> None:
    class Pipe(io.RawIOBase):
        def __init__(self, data: bytes) -> None:
            self.data = data

        def readable(self) -> bool:
            return True

        def seekable(self) -> bool:
            return False

        def read(self, size: int = -1) -> bytes:
            # One byte at a time, the worst a socket can do.
            chunk, self.data = self.data[:1], self.data[1:]
            return chunk

    events = list(read_feed(Pipe(gzip.compress(feed(row(1), row(2)))), "pipe"))  # type: ignore[arg-type]
    assert [event.id for event in events if isinstance(event, FeedItem)] == ["1", "2"]
