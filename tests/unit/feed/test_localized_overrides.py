"""Localized override columns in a feed: title_en, price_AE, link_en_AE (feed/localization.py)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from facebook_catalog.feed import FeedFileError, FeedItem, FeedOptions, Rejection, read_feed
from facebook_catalog.feed.batching import as_localized_update
from facebook_catalog.feed.fields import field_for_column
from facebook_catalog.feed.localization import (
    Localization,
    OverrideColumnError,
    override_for_column,
    override_key,
    split_override_key,
)
from facebook_catalog.feed.spool import item_to_send, overrides_to_send
from facebook_catalog.feed.validate import validate_files

BASE = "id,title,description,link,image_link,availability,price,brand"
ARABIC = "قميص قطني,قميص من القطن,https://shop.example/p1,https://cdn.example/p1.jpg,in stock,25000 IQD,Acme"


def events(text: str, source: str = "landing/a.csv") -> list[object]:
    return list(read_feed(io.BytesIO(text.encode("utf-8")), source))


def column(name: str) -> tuple[str, str, str] | None:
    found = override_for_column(name, field_for_column)
    return None if found is None else (found.field, found.localization.key, found.label)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("title_en", ("title", "LANGUAGE|en_XX", "title_en")),
        ("Description-EN".replace("EN", "en"), ("description", "LANGUAGE|en_XX", "description_en")),
        ("title_en_XX", ("title", "LANGUAGE|en_XX", "title_en")),
        ("price_AE", ("price", "COUNTRY|AE", "price_AE")),
        ("sale_price_SA", ("sale_price", "COUNTRY|SA", "sale_price_SA")),
        ("availability_SA", ("availability", "COUNTRY|SA", "availability_SA")),
        ("link_AE", ("link", "COUNTRY|AE", "link_AE")),
        ("link_en", ("link", "LANGUAGE|en_XX", "link_en")),
        ("link_en_AE", ("link", "LANGUAGE_AND_COUNTRY|en_XX|AE", "link_en_AE")),
        ("custom_label_0_en", ("custom_label_0", "LANGUAGE|en_XX", "custom_label_0_en")),
        ("updated_at", None),  # not a Meta field before the code: an ordinary unknown column
        ("price_usd", None),  # three letters: no code
    ],
)
def test_override_columns_name_a_field_and_a_localization(name: str, expected: object) -> None:
    assert column(name) == expected


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("image_link_en", "which Meta does not localize"),
        ("title_AE", "Meta takes 'title' overrides per language"),
        ("price_en", "Meta takes 'price' overrides per country only"),
        ("price_ar", "per country only"),
        ("price_XY", "'XY' is not an ISO 3166-1 alpha-2 country code"),
        ("title_zz", "'zz' is not an ISO 639-1 language code"),
        ("title_En", "lower case"),
        ("link_en_UAE_", None),
    ],
)
def test_a_column_meta_cannot_take_is_refused_by_name(name: str, reason: str | None) -> None:
    if reason is None:
        assert column(name) is None
        return
    with pytest.raises(OverrideColumnError, match=reason):
        column(name)


def test_arabic_rows_carry_english_and_country_overrides_apart_from_the_base_item() -> None:
    header = f"{BASE},title_en,description_en,price_AE,availability_SA"
    (item,) = events(f"{header}\n1,{ARABIC},Cotton shirt,A cotton shirt,95 aed,sold out\n")
    assert isinstance(item, FeedItem)
    assert item.fields["title"] == "قميص قطني"
    assert "title_en" not in item.fields
    assert {o.localization.key: o.fields for o in item.overrides} == {
        "LANGUAGE|en_XX": {"title": "Cotton shirt", "description": "A cotton shirt"},
        "COUNTRY|AE": {"price": "95 AED"},  # the price rules apply: the code is upper-cased
        "COUNTRY|SA": {"availability": "out of stock"},
    }


def test_empty_override_cells_send_no_override() -> None:
    header = f"{BASE},title_en,price_AE"
    (item,) = events(f"{header}\n1,{ARABIC},,NULL\n")
    assert isinstance(item, FeedItem)
    assert item.overrides == ()


def test_a_bad_override_value_rejects_the_row_naming_file_line_column_and_value() -> None:
    header = f"{BASE},title_en,price_AE"
    found = events(f'{header}\n1,{ARABIC},Shirt,95 AED\n2,{ARABIC},Shirt,"95,50 AED"\n')
    assert isinstance(found[0], FeedItem)
    (rejection,) = found[1:]
    assert isinstance(rejection, Rejection)
    assert rejection.message().startswith(
        "landing/a.csv line 3: field 'price_AE' value '95,50 AED': contains ','"
    )
    assert rejection.item_id == "2"


def test_a_sale_price_override_must_be_lower_than_the_price_override() -> None:
    header = f"{BASE},price_AE,sale_price_AE"
    (rejection,) = events(f"{header}\n1,{ARABIC},95 AED,99 AED\n")
    assert isinstance(rejection, Rejection)
    assert (rejection.field, rejection.reason) == ("sale_price_AE", "must be lower than price (95 AED)")


def test_an_override_column_meta_cannot_take_is_a_file_error() -> None:
    with pytest.raises(FeedFileError, match="column 'title_AE': Meta takes 'title' overrides per language"):
        events(f"{BASE},title_AE\n1,{ARABIC},Shirt\n")


def test_two_columns_for_one_override_are_a_file_error() -> None:
    with pytest.raises(FeedFileError, match="both mean the field 'title_en'"):
        events(f"{BASE},title_en,Title-en\n1,{ARABIC},a,b\n")


def test_json_lines_records_carry_overrides_and_refuse_bad_columns_per_record() -> None:
    record = dict(zip(BASE.split(","), ["1", *ARABIC.split(",")], strict=True))
    good = json.dumps({**record, "title_en": "Shirt", "price_AE": 95})
    bad = json.dumps({**record, "id": "2", "title_AE": "Shirt"})
    found = events(f"{good}\n{bad}\n", "landing/a.jsonl")
    item, rejection = found
    assert isinstance(item, FeedItem)
    assert {o.localization.key: o.fields for o in item.overrides} == {
        "COUNTRY|AE": {"price": "95 IQD"},
        "LANGUAGE|en_XX": {"title": "Shirt"},
    }
    assert isinstance(rejection, Rejection)
    assert (rejection.line, rejection.field, rejection.item_id) == (2, "title_AE", "2")


def test_validate_prints_override_problems_like_any_other(tmp_path: Path) -> None:
    path = tmp_path / "feed.csv"
    path.write_text(f"{BASE},title_en\n1,{ARABIC},{'x' * 201}\n", encoding="utf-8")
    out = io.StringIO()
    assert validate_files([str(path)], FeedOptions(), out) == 1
    assert "field 'title_en' value 'xxxx" in out.getvalue()
    assert "Meta's limit is 200" in out.getvalue()


def test_an_override_is_keyed_apart_and_encoded_for_localized_items_batch() -> None:
    header = f"{BASE},title_en"
    (item,) = events(f"{header}\n1|a,{ARABIC},Shirt\n")
    assert isinstance(item, FeedItem)
    base = item_to_send(item.fields)
    (override,) = overrides_to_send(base, item.overrides)
    assert override.item_id == "1|a|LANGUAGE|en_XX"
    assert override.base_id_hash == base.id_hash != override.id_hash
    assert json.loads(override.request) == {
        "method": "CREATE",
        "localization": {"type": "LANGUAGE", "value": "en_XX"},
        "data": {"id": "1|a", "title": "Shirt"},
    }
    assert json.loads(as_localized_update(override.request))["method"] == "UPDATE"
    assert split_override_key(override.item_id) == ("1|a", Localization("LANGUAGE", "en_XX"))
    both = Localization("LANGUAGE_AND_COUNTRY", "en_XX|AE")
    assert split_override_key(override_key("x|y", both)) == ("x|y", both)


def test_a_parquet_file_with_override_columns_is_a_file_error_in_both_passes(tmp_path: Path) -> None:
    pytest.importorskip("pyarrow")
    from facebook_catalog.feed.reader import read_feed_file, read_feed_file_ids
    from tests.fixtures import airbyte

    path = tmp_path / "products.parquet"
    items = airbyte.records(airbyte.product(1, title_en="Shirt"))
    airbyte.write_parquet(path, items, flatten=True, columns=[*airbyte.PRODUCT_COLUMNS, "title_en"])
    for read in (read_feed_file, read_feed_file_ids):
        with pytest.raises(
            FeedFileError, match="'title_en' is a localized override; overrides are read from CSV"
        ):
            list(read(path))
