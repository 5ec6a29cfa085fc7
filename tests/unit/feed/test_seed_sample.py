"""The sample rows of the design document the project grew from (shared/seed), read as a feed.

Its rows have 7 values under an 8-column header: every value after ``link`` sits one column to
the left. Each row must be rejected, with messages that make the shift plain to see.
"""

from __future__ import annotations

from pathlib import Path

from facebook_catalog.feed import FeedItem, Rejection, read_feed_file
from tests.fixtures.hostile import COMMITTED_FILES_DIR

SEED_SAMPLE = COMMITTED_FILES_DIR / "seed_sample.csv"


def test_the_fixture_is_the_seed_sample_verbatim() -> None:
    lines = SEED_SAMPLE.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "id,title,description,link,image_link,availability,price,brand"
    assert lines[1] == (
        "101,Cozy Sweater,Comfortable and warm sweater,http://example.com/101,Cozy Sweater,"
        "Comfortable and warm sweater,http://example.com/101"
    )
    assert len(lines) == 6


def test_every_seed_row_is_rejected_and_no_item_comes_out() -> None:
    events = list(read_feed_file(SEED_SAMPLE, source="seed.csv"))
    assert not any(isinstance(event, FeedItem) for event in events)
    assert {event.line for event in events} == {2, 3, 4, 5, 6}
    assert {event.item_id for event in events if isinstance(event, Rejection)} == {
        "101",
        "102",
        "103",
        "104",
        "105",
    }


def test_the_messages_show_the_shift() -> None:
    messages = [
        event.message() for event in read_feed_file(Path(SEED_SAMPLE), source="seed.csv") if event.line == 2
    ]
    row_value = (
        "101,Cozy Sweater,Comfortable and warm sweater,http://example.com/101,Cozy Sweate… (133 chars)"
    )
    url_rule = "Meta needs an absolute http(s) URL such as https://example.com/item.jpg"
    availabilities = "'in stock', 'out of stock', 'available for order', 'preorder', 'discontinued'"
    price_rule = "expected '<number> <ISO 4217 code>', e.g. '25000 IQD' or '9.99 USD'"
    assert messages == [
        f"seed.csv line 2: row '{row_value}': the row has 7 fields but the header has 8: values are missing, "
        "so the values after the gap sit in the wrong columns (id '101')",
        f"seed.csv line 2: field 'image_link' value 'Cozy Sweater': is not a URL; {url_rule} (id '101')",
        "seed.csv line 2: field 'availability' value 'Comfortable and warm sweater': is not a valid "
        f"availability; Meta accepts {availabilities} (id '101')",
        "seed.csv line 2: field 'price' value 'http://example.com/101': is not a price; "
        f"{price_rule} (id '101')",
        "seed.csv line 2: field 'brand': is missing; Meta requires it (id '101')",
    ]


def test_the_prod_links_of_the_seed_are_valid_urls_so_only_the_shifted_columns_are_blamed() -> None:
    fields = {
        (event.line, event.field) for event in read_feed_file(SEED_SAMPLE) if isinstance(event, Rejection)
    }
    assert (3, "link") not in fields
    assert (3, "image_link") in fields
