"""Landing files in every layout Airbyte's S3 destination writes, through read_feed and read_feed_ids."""

from __future__ import annotations

import gzip
import io
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from facebook_catalog.feed import (
    FeedFileError,
    FeedItem,
    FeedOptions,
    FeedWarning,
    Rejection,
    deduplicate,
    read_feed_file,
)
from facebook_catalog.feed.reader import read_feed, read_feed_file_ids
from facebook_catalog.feed.validate import validate_files
from tests.fixtures import airbyte

ARABIC_TITLE = "قميص قطني أزرق"


def write(tmp_path: Path, layout: str, items: list[airbyte.AirbyteRecord], **kwargs: object) -> Path:
    extension = layout.rsplit("-", 1)[0]
    path = tmp_path / airbyte.landing_key("landing/", extension).replace("/", "_")
    path.write_bytes(airbyte.layout_bytes(layout, items, **kwargs))  # type: ignore[arg-type]
    return path


def events_of(path: Path, options: FeedOptions | None = None) -> list[FeedItem | Rejection | FeedWarning]:
    return list(read_feed_file(path, source=path.name, options=options or FeedOptions()))


def the_products() -> list[airbyte.AirbyteRecord]:
    return airbyte.records(
        airbyte.product(1, price=25000),  # NUMERIC(12,0)
        airbyte.product(2, price=Decimal("25000.00"), title=ARABIC_TITLE),  # NUMERIC(12,2)
        airbyte.product(3, price=25000.0, sale_price=None),  # float8; a JSON null
        airbyte.product(4, price=-5),  # rejected: negative
        airbyte.product(5, brand=None),  # rejected: a required field is null
        airbyte.product(6, price=9.99),
    )


COLUMNS = (*airbyte.PRODUCT_COLUMNS, "sale_price")


@pytest.mark.parametrize("layout", airbyte.LAYOUTS)
def test_every_layout_reads_the_same_products_prices_and_rejections(tmp_path: Path, layout: str) -> None:
    path = write(tmp_path, layout, the_products(), columns=COLUMNS)
    events = events_of(path)

    items = {event.id: event for event in events if isinstance(event, FeedItem)}
    assert sorted(items) == ["1", "2", "3", "6"]
    # Records are numbered from 1 in every format (CSV: the header is line 1).
    first_line = 2 if layout.startswith("csv") else 1
    assert [items[i].line for i in ("1", "2", "3", "6")] == [first_line + n for n in (0, 1, 2, 5)]
    # Every price is a valid Meta price in the default currency; the CSV text keeps NUMERIC's
    # scale, the typed formats carry a number.
    prices = {item_id: items[item_id].fields["price"] for item_id in items}
    assert prices["1"] == "25000 IQD"
    assert prices["2"] == ("25000.00 IQD" if layout == "csv-flat" or layout == "csv.gz-flat" else "25000 IQD")
    assert prices["3"] == ("25000.0 IQD" if layout in ("csv-flat", "csv.gz-flat") else "25000 IQD")
    assert prices["6"] == "9.99 IQD"
    assert items["2"].fields["title"] == ARABIC_TITLE
    assert "sale_price" not in items["3"].fields  # null is a missing value
    # Airbyte's columns are neither sent nor warned about.
    assert not [event for event in events if isinstance(event, FeedWarning)]
    assert all(not key.startswith("_airbyte") for item in items.values() for key in item.fields)

    rejections = [event for event in events if isinstance(event, Rejection)]
    assert [(r.line, r.field, r.item_id) for r in rejections] == [
        (first_line + 3, "price", "4"),
        (first_line + 4, "brand", "5"),
    ]
    assert "negative" in rejections[0].reason
    assert rejections[1].reason == "is empty; Meta requires a value"
    assert rejections[0].message().startswith(f"{path.name} line {first_line + 3}: field 'price' value '-5'")

    # The first pass names the same rows.
    ids = list(read_feed_file_ids(path, source=path.name))
    assert {(line, item_id) for line, item_id in ids} >= {(item.line, item.id) for item in items.values()}


@pytest.mark.parametrize("layout", ["jsonl-raw", "jsonl-flat", "parquet-flat", "csv-raw", "avro-flat"])
def test_booleans_become_text_and_nested_values_reject_their_record(tmp_path: Path, layout: str) -> None:
    columns = (*airbyte.PRODUCT_COLUMNS, "custom_label_0")
    items = airbyte.records(airbyte.product(1, custom_label_0=True), airbyte.product(2, custom_label_0=False))
    (first, second) = [
        e for e in events_of(write(tmp_path, layout, items, columns=columns)) if isinstance(e, FeedItem)
    ]
    assert (first.fields["custom_label_0"], second.fields["custom_label_0"]) == ("true", "false")


@pytest.mark.parametrize("layout", ["jsonl-raw", "jsonl-flat", "csv-raw"])
def test_an_object_or_list_in_a_field_rejects_only_its_record(tmp_path: Path, layout: str) -> None:
    items = airbyte.records(
        airbyte.product(1, price={"amount": 25000, "currency": "IQD"}),
        airbyte.product(
            2, additional_image_link=["https://cdn.example.com/2a.jpg", "https://cdn.example.com/2b.jpg"]
        ),
        airbyte.product(3, color=["red", "blue"]),
    )
    events = events_of(write(tmp_path, layout, items))
    assert [e.id for e in events if isinstance(e, FeedItem)] == ["2"]
    (item,) = [e for e in events if isinstance(e, FeedItem)]
    assert (
        item.fields["additional_image_link"]
        == "https://cdn.example.com/2a.jpg,https://cdn.example.com/2b.jpg"
    )
    rejected = [(e.item_id, e.field, e.value, e.reason) for e in events if isinstance(e, Rejection)]
    assert rejected[0][:3] == ("1", "price", '{"amount":25000,"currency":"IQD"}')
    assert "is a JSON object" in rejected[0][3]
    assert rejected[1][:3] == ("3", "color", '["red","blue"]')
    assert "is a list" in rejected[1][3]


def test_parquet_is_read_one_batch_at_a_time_across_row_groups(tmp_path: Path) -> None:
    path = tmp_path / "many.parquet"
    items = airbyte.records(*(airbyte.product(n) for n in range(1, 20_001)))
    airbyte.write_parquet(path, items, flatten=True, row_group_size=3000)
    events = events_of(path)
    assert len(events) == 20_000
    assert [e.line for e in events[:2]] == [1, 2]
    assert events[-1].line == 20_000
    assert [line for line, _ in read_feed_file_ids(path, source="many.parquet")] == list(range(1, 20_001))


def test_an_extension_that_disagrees_with_the_content_is_a_file_error(tmp_path: Path) -> None:
    jsonl = airbyte.jsonl_bytes(airbyte.records(airbyte.product(1)), flatten=True)
    parquet = airbyte.parquet_bytes(airbyte.records(airbyte.product(1)), flatten=True)
    cases = {
        "products.csv": (jsonl, "looks like JSON, not CSV"),
        "products.csv.gz": (parquet, "the file is Parquet, not CSV"),
        "products.jsonl": (b'"id","title"\r\n"1","T"\r\n', "is it CSV? name it .csv"),
        "products.parquet": (jsonl, "its content is JSON Lines"),
    }
    for name, (data, reason) in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(FeedFileError) as caught:
            events_of(tmp_path / name)
        assert reason in caught.value.reason, (name, caught.value.reason)


def test_a_name_without_a_known_extension_is_read_by_its_content(tmp_path: Path) -> None:
    for name, data in {
        "object-1": airbyte.jsonl_bytes(airbyte.records(airbyte.product(1)), flatten=False, gzipped=True),
        "object-2": airbyte.parquet_bytes(airbyte.records(airbyte.product(1)), flatten=False),
        "object-3": airbyte.csv_bytes(airbyte.records(airbyte.product(1)), flatten=False),
    }.items():
        (tmp_path / name).write_bytes(data)
        assert [e.id for e in events_of(tmp_path / name) if isinstance(e, FeedItem)] == ["1"], name


def test_parquet_from_a_pipe_is_read_too() -> None:
    data = airbyte.parquet_bytes(airbyte.records(airbyte.product(1), airbyte.product(2)), flatten=True)

    class Pipe(io.RawIOBase):
        def __init__(self) -> None:
            self._data = io.BytesIO(data)

        def readable(self) -> bool:
            return True

        def seekable(self) -> bool:
            return False

        def readinto(self, buffer: bytearray) -> int:  # type: ignore[override]
            chunk = self._data.read(len(buffer))
            buffer[: len(chunk)] = chunk
            return len(chunk)

    events = list(read_feed(Pipe(), "stdin.parquet"))  # type: ignore[arg-type]
    assert [e.id for e in events if isinstance(e, FeedItem)] == ["1", "2"]


@pytest.mark.parametrize(
    ("layout", "module", "message"),
    [
        ("parquet-flat", "pyarrow", "pip install 'airflow-provider-facebook-catalog[parquet]'"),
        ("avro-flat", "fastavro", "[avro]'), or choose CSV, JSONL or Parquet"),
    ],
)
def test_without_its_extra_a_parquet_or_avro_file_names_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, layout: str, module: str, message: str
) -> None:
    path = write(tmp_path, layout, airbyte.records(airbyte.product(1)))
    monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(FeedFileError) as caught:
        events_of(path)
    assert message in caught.value.reason


def test_a_raw_record_whose_data_is_not_an_object_is_rejected_alone(tmp_path: Path) -> None:
    good = airbyte.jsonl_bytes(airbyte.records(airbyte.product(1), airbyte.product(3)), flatten=False)
    lines = good.splitlines(keepends=True)
    data = (
        lines[0]
        + b'{"_airbyte_raw_id":"x","_airbyte_extracted_at":1,"_airbyte_data":"not json"}\n'
        + lines[1]
    )
    (tmp_path / "p.jsonl").write_bytes(data)
    events = events_of(tmp_path / "p.jsonl")
    assert [e.id for e in events if isinstance(e, FeedItem)] == ["1", "3"]
    (rejection,) = [e for e in events if isinstance(e, Rejection)]
    assert (rejection.line, rejection.field, rejection.value) == (2, "_airbyte_data", "not json")
    assert rejection.message().startswith(
        "p.jsonl line 2: field '_airbyte_data' value 'not json': is not JSON"
    )


def test_a_gzip_jsonl_whose_last_line_is_cut_without_newline_is_still_read(tmp_path: Path) -> None:
    data = airbyte.jsonl_bytes(airbyte.records(airbyte.product(1), airbyte.product(2)), flatten=True)
    (tmp_path / "p.jsonl.gz").write_bytes(gzip.compress(data.rstrip(b"\n")))
    assert [e.id for e in events_of(tmp_path / "p.jsonl.gz") if isinstance(e, FeedItem)] == ["1", "2"]


def test_validate_gives_the_same_answers_for_the_new_formats(tmp_path: Path) -> None:
    paths = []
    for layout in ("csv.gz-raw", "jsonl.gz-flat", "parquet-raw"):
        path = write(tmp_path, layout, the_products(), columns=COLUMNS)
        paths.append(str(path))
    out = io.StringIO()
    status = validate_files(paths, FeedOptions(), out)
    text = out.getvalue()
    assert status != 0
    for path in paths:
        name = Path(path).name
        line = 5 if "csv" in name else 4
        assert f"{path} line {line}: field 'price' value '-5': is negative" in text
        assert f"{path}: 6 rows read, 4 good, 2 rejected" in text


def test_the_latest_extraction_wins_across_files_and_formats_ties_by_reading_order(tmp_path: Path) -> None:
    newer = airbyte.EXTRACTED_AT_MS + 3_600_000
    files = [
        # Read first, extracted last: its p1 is the one to send.
        write(
            tmp_path,
            "jsonl.gz-raw",
            airbyte.records(airbyte.product("p1", title="Newest"), extracted_at=newer),
        ),
        # Read later but extracted earlier (a part uploaded late): its p1 is stale; p2 ties with
        # the next file's p2 and loses to it by reading order.
        write(
            tmp_path,
            "parquet-flat",
            airbyte.records(airbyte.product("p1", title="Stale"), airbyte.product("p2", title="First")),
        ),
        write(tmp_path, "csv-flat", airbyte.records(airbyte.product("p2", title="Second"))),
    ]
    items = [e for path in files for e in events_of(path) if isinstance(e, FeedItem)]
    assert [item.extracted_at for item in items] == [newer] + [airbyte.EXTRACTED_AT_MS] * 3
    result = deduplicate(items)
    assert {item.id: item.fields["title"] for item in result.items} == {"p1": "Newest", "p2": "Second"}
    assert sorted((item.id, item.fields["title"]) for item in result.duplicates) == [
        ("p1", "Stale"),
        ("p2", "First"),
    ]

    out = io.StringIO()
    validate_files([str(path) for path in files], FeedOptions(), out)
    text = out.getvalue()
    stale = f"{files[1]} line 1: duplicate id 'p1': {files[0]} line 1 has a later _airbyte_extracted_at"
    assert f"{stale} and is the one sent" in text
    assert (
        f"{files[1]} line 2: duplicate id 'p2': replaced by {files[2]} line 2, which is the one sent" in text
    )


def test_within_one_file_a_later_line_with_an_older_extraction_does_not_win(tmp_path: Path) -> None:
    path = tmp_path / "parts.jsonl"
    newer = airbyte.records(airbyte.product("p3", title="Newer"), extracted_at=airbyte.EXTRACTED_AT_MS + 5)
    older = airbyte.records(airbyte.product("p3", title="Older"))
    path.write_bytes(airbyte.jsonl_bytes([*newer, *older], flatten=True))
    result = deduplicate(e for e in events_of(path) if isinstance(e, FeedItem))
    assert [(item.line, item.fields["title"]) for item in result.items] == [(1, "Newer")]
    assert [(item.line, item.fields["title"]) for item in result.duplicates] == [(2, "Older")]
    out = io.StringIO()
    validate_files([str(path)], FeedOptions(), out)
    assert (
        f"{path} line 2: duplicate id 'p3': line 1 has a later _airbyte_extracted_at and is the one sent"
        in (out.getvalue())
    )
    assert f"{path}: 2 rows read, 2 good, 0 rejected, 1 duplicate" in out.getvalue()
