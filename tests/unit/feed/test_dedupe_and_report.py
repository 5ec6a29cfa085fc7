from __future__ import annotations

import csv
import io
from itertools import chain

from facebook_catalog.feed import (
    REJECTED_ROWS_COLUMNS,
    FeedItem,
    FeedTally,
    FeedWarning,
    FileSummary,
    Rejection,
    deduplicate,
    display_value,
    read_feed,
    rejected_rows_csv,
)

HEADER = "id,title,description,link,image_link,availability,price,brand"


def item(source: str, line: int, item_id: str, title: str = "T") -> FeedItem:
    return FeedItem(source, line, {"id": item_id, "title": title})


def test_deduplicate_keeps_the_last_occurrence_in_order_of_last_occurrence() -> None:
    result = deduplicate(
        [item("a", 2, "1", "first"), item("a", 3, "2"), item("a", 4, "1", "second"), item("a", 5, "3")]
    )
    assert [(i.id, i.line) for i in result.items] == [("2", 3), ("1", 4), ("3", 5)]
    assert result.items[1].fields["title"] == "second"
    assert [(i.source, i.line) for i in result.duplicates] == [("a", 2)]


def test_deduplicate_across_files_later_files_win() -> None:
    def events(source: str, *rows: str) -> list[FeedItem]:
        data = "\n".join((HEADER, *rows)).encode()
        return [e for e in read_feed(io.BytesIO(data), source) if isinstance(e, FeedItem)]

    def product(item_id: str, price: str) -> str:
        return f"{item_id},T,D,https://e.example/{item_id},https://e.example/{item_id}.jpg,in stock,{price},B"

    first = events("hour-10.csv", product("101", "100"), product("102", "100"))
    second = events("hour-11.csv", product("101", "200"), product("103", "100"), product("101", "300"))
    result = deduplicate(chain(first, second))
    assert [(i.id, i.source, i.line, i.fields["price"]) for i in result.items] == [
        ("102", "hour-10.csv", 3, "100 IQD"),
        ("103", "hour-11.csv", 3, "100 IQD"),
        ("101", "hour-11.csv", 4, "300 IQD"),
    ]
    assert [(i.source, i.line) for i in result.duplicates] == [("hour-10.csv", 2), ("hour-11.csv", 2)]


def test_rejected_rows_csv_writes_every_reason() -> None:
    rejections = [
        Rejection("a.csv", 3, "price", "$10", "currency symbols such as '$' are not accepted", "7"),
        Rejection("a.csv", 3, "link", "/p/7", "is a relative URL", "7"),
        Rejection("b.csv", 9, "", "", "the row has 9 fields but the header has 8"),
        Rejection("b.csv", 10, "title", 'قميص, "quoted"\nx', "is empty"),
    ]
    out = io.StringIO()
    assert rejected_rows_csv(rejections, out) == 4
    rows = list(csv.reader(io.StringIO(out.getvalue())))
    assert tuple(rows[0]) == REJECTED_ROWS_COLUMNS == ("source", "line", "field", "value", "reason")
    assert rows[1:] == [
        ["a.csv", "3", "price", "$10", "currency symbols such as '$' are not accepted"],
        ["a.csv", "3", "link", "/p/7", "is a relative URL"],
        ["b.csv", "9", "", "", "the row has 9 fields but the header has 8"],
        ["b.csv", "10", "title", 'قميص, "quoted"\nx', "is empty"],
    ]


def test_rejected_rows_csv_defuses_spreadsheet_formulas() -> None:
    out = io.StringIO()
    rejected_rows_csv([Rejection("a.csv", 2, "price", '=HYPERLINK("http://x")', "is not a price")], out)
    assert list(csv.reader(io.StringIO(out.getvalue())))[1][3] == '\'=HYPERLINK("http://x")'


def test_rejected_rows_csv_with_no_rejections_writes_the_header() -> None:
    out = io.StringIO()
    assert rejected_rows_csv([], out) == 0
    assert out.getvalue() == "source,line,field,value,reason\n"


def test_messages() -> None:
    assert (
        Rejection("a.csv", 3, "price", "$10", "bad").message()
        == "a.csv line 3: field 'price' value '$10': bad"
    )
    assert Rejection("a.csv", 3, "brand", "", "is empty", "7").message() == (
        "a.csv line 3: field 'brand': is empty (id '7')"
    )
    assert Rejection("a.csv", 4, "", "x;y", "one field").message() == "a.csv line 4: row 'x;y': one field"
    assert Rejection("a.csv", 5, "", "", "NUL").message() == "a.csv line 5: NUL"
    assert (
        FeedWarning("a.csv", 1, "cost", "", "not sent").message()
        == "a.csv line 1: warning: field 'cost': not sent"
    )


def test_display_value_cuts_and_escapes() -> None:
    assert display_value("abc") == "abc"
    assert display_value("a\nb\tc\x07") == "a\\nb\\tc\\x07"
    assert display_value("x" * 81) == "x" * 80 + "… (81 chars)"
    assert display_value("Caf\udce9") == "Caf\\xe9"
    assert display_value("قميص 👕") == "قميص 👕"


def test_tally_counts_rows_not_problems() -> None:
    tally = FeedTally("a.csv")
    for event in [
        FeedWarning("a.csv", 1, "cost", "", "x"),
        item("a.csv", 2, "1"),
        Rejection("a.csv", 3, "price", "", "x"),
        Rejection("a.csv", 3, "link", "", "x"),
        Rejection("a.csv", 4, "price", "", "x"),
        FeedWarning("a.csv", 5, "title", "", "x"),
        item("a.csv", 5, "2"),
    ]:
        tally.add(event)
    summary = tally.summary(duplicates=1)
    assert summary == FileSummary("a.csv", rows_read=4, items=2, rejected_rows=2, warnings=2, duplicates=1)
    assert summary.message() == "a.csv: 4 rows read, 2 good, 2 rejected, 1 duplicate, 2 warnings"
    assert (
        FileSummary("b.csv", error="the file is empty").message()
        == "b.csv: not read as a feed: the file is empty"
    )
