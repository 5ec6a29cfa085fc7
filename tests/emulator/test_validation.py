"""Meta's PRODUCT_ITEM rules as the emulator applies them (pure functions, no I/O)."""

from __future__ import annotations

from typing import Any

import pytest

from facebook_catalog.emulator.validation import (
    REQUIRED_FIELDS,
    RecordShapeError,
    check_record,
    parse_record,
    parse_records,
)
from tests.emulator.products import product


def errors_of(
    data: dict[str, Any], method: str = "UPDATE", existing: dict[str, Any] | None = None
) -> list[str]:
    return check_record(method, data, existing, allow_upsert=True).errors


def test_a_complete_item_is_valid_and_keeps_its_fields() -> None:
    verdict = check_record("CREATE", product(), None, allow_upsert=True)
    assert verdict.is_valid
    assert verdict.warnings == []
    assert verdict.retailer_id == "sku-1"
    assert verdict.fields == product()


@pytest.mark.parametrize("field", [name for name in REQUIRED_FIELDS if name != "id"])
@pytest.mark.parametrize("method", ["CREATE", "UPDATE"])
def test_a_new_item_needs_every_required_field(field: str, method: str) -> None:
    data = product()
    del data[field]
    assert errors_of(data, method) == [f'Required field "{field}" is missing or empty.']


def test_a_blank_required_field_counts_as_missing() -> None:
    assert errors_of(product(title="   ")) == ['Required field "title" is missing or empty.']


def test_a_missing_id_is_an_item_error() -> None:
    verdict = check_record("UPDATE", {"title": "x"}, None, allow_upsert=True)
    assert verdict.retailer_id == ""
    assert verdict.errors == ['Required field "id" is missing or empty.']


def test_an_integer_id_is_read_as_a_string() -> None:
    verdict = check_record("CREATE", product(retailer_id=42), None, allow_upsert=True)  # type: ignore[arg-type]
    assert verdict.is_valid
    assert verdict.retailer_id == "42"


def test_an_update_of_a_known_item_may_carry_any_subset() -> None:
    verdict = check_record("UPDATE", {"id": "sku-1", "price": "7.50 USD"}, product(), allow_upsert=True)
    assert verdict.is_valid
    assert verdict.fields == {"id": "sku-1", "price": "7.50 USD"}


def test_an_update_of_a_known_item_cannot_empty_a_required_field() -> None:
    assert errors_of({"id": "sku-1", "brand": ""}, existing=product()) == [
        'Required field "brand" cannot be set to an empty value.'
    ]


def test_create_of_a_known_item_still_needs_every_required_field() -> None:
    assert 'Required field "title" is missing or empty.' in errors_of(
        {"id": "sku-1", "price": "1 USD"}, "CREATE", existing=product()
    )


def test_update_of_an_unknown_item_without_upsert_is_an_error() -> None:
    verdict = check_record("UPDATE", product(), None, allow_upsert=False)
    assert verdict.errors == [
        'No item with retailer id "sku-1" exists in the catalog, and allow_upsert is false.'
    ]


def test_delete_needs_only_the_id() -> None:
    verdict = check_record("DELETE", {"id": "sku-1"}, None, allow_upsert=True)
    assert verdict.is_valid
    assert verdict.fields == {"id": "sku-1"}


@pytest.mark.parametrize("price", ["9.99 USD", "25000 IQD", "0 EUR", "1234.5 JPY"])
def test_prices_in_meta_format_are_accepted(price: str) -> None:
    assert errors_of(product(price=price)) == []


@pytest.mark.parametrize(
    ("price", "reason"),
    [
        ("12,99 EUR", "use a number with a period as decimal point"),
        ("$9.99", "use a number with a period as decimal point"),
        ("9.99", "use a number with a period as decimal point"),
        ("9.99USD", "use a number with a period as decimal point"),
        ("USD 9.99", "use a number with a period as decimal point"),
        ("9.99 usd", '"usd" is not an upper-case ISO 4217 currency code'),
        ("9.99 XYZ", '"XYZ" is not an upper-case ISO 4217 currency code'),
    ],
)
def test_malformed_prices_are_rejected_naming_field_and_value(price: str, reason: str) -> None:
    (message,) = errors_of(product(price=price))
    assert message.startswith(f'Invalid value "{price}" for field "price": ')
    assert reason in message


def test_a_numeric_price_is_rejected() -> None:
    (message,) = errors_of(product(price=9.99))
    assert message.startswith('Invalid value 9.99 for field "price": must be a string')


def test_sale_price_follows_the_price_format_and_must_be_lower() -> None:
    assert errors_of(product(sale_price="7.99 USD")) == []
    assert errors_of(product(sale_price="7,99 USD"))[0].startswith(
        'Invalid value "7,99 USD" for field "sale_price"'
    )
    assert errors_of(product(sale_price="9.99 USD")) == [
        'Invalid value "9.99 USD" for field "sale_price": must be lower than price "9.99 USD".'
    ]
    assert errors_of(product(sale_price="5 EUR")) == [
        'Invalid value "5 EUR" for field "sale_price": the currency must match price "9.99 USD".'
    ]


def test_sale_price_is_compared_with_the_stored_price_on_update() -> None:
    assert errors_of({"id": "sku-1", "sale_price": "12 USD"}, existing=product()) == [
        'Invalid value "12 USD" for field "sale_price": must be lower than price "9.99 USD".'
    ]


@pytest.mark.parametrize(
    "availability",
    ["in stock", "out of stock", "available for order", "discontinued", "preorder", "In Stock"],
)
def test_availability_values_meta_accepts(availability: str) -> None:
    assert errors_of(product(availability=availability)) == []


def test_unknown_availability_is_rejected() -> None:
    assert errors_of(product(availability="maybe")) == [
        'Invalid value "maybe" for field "availability": must be one of: in stock, out of stock, '
        "available for order, discontinued, preorder."
    ]


@pytest.mark.parametrize("condition", ["new", "refurbished", "used"])
def test_condition_values_meta_accepts(condition: str) -> None:
    assert errors_of(product(condition=condition)) == []


def test_unknown_condition_is_rejected() -> None:
    assert errors_of(product(condition="broken")) == [
        'Invalid value "broken" for field "condition": must be one of: new, refurbished, used.'
    ]


@pytest.mark.parametrize("field", ["link", "image_link"])
@pytest.mark.parametrize(
    "url",
    ["ftp://shop.example/a", "/relative/path", "shop.example/a", "https://", "https://shop.example/a b"],
)
def test_links_must_be_absolute_http_urls(field: str, url: str) -> None:
    assert errors_of(product(**{field: url})) == [
        f'Invalid value "{url}" for field "{field}": must be an absolute http or https URL.'
    ]


def test_http_and_https_links_are_accepted() -> None:
    assert errors_of(product(link="http://shop.example/a?b=c", image_link="HTTPS://cdn.example/x.png")) == []


@pytest.mark.parametrize(("field", "limit"), [("title", 200), ("description", 9999), ("brand", 100)])
def test_text_longer_than_meta_allows_is_an_error(field: str, limit: int) -> None:
    value = "x" * (limit + 1)
    (message,) = errors_of(product(**{field: value}))
    assert message.startswith(f'Invalid value "{"x" * 60}…" for field "{field}": ')
    assert message.endswith(f"{limit + 1} characters, the maximum is {limit}.")
    assert errors_of(product(**{field: "x" * limit})) == []


def test_an_id_longer_than_100_characters_is_an_error() -> None:
    (message,) = errors_of(product(retailer_id="s" * 101))
    assert 'for field "id": 101 characters, the maximum is 100.' in message


def test_a_title_over_100_characters_is_only_a_warning() -> None:
    verdict = check_record("CREATE", product(title="t" * 150), None, allow_upsert=True)
    assert verdict.is_valid
    assert verdict.warnings == [
        'Field "title" is 150 characters long; titles over 100 characters may be truncated.'
    ]


def test_a_non_string_title_is_an_error() -> None:
    assert errors_of(product(title=["a"])) == ['Invalid value ["a"] for field "title": must be a string.']


def test_unknown_fields_are_a_warning_and_are_not_kept() -> None:
    verdict = check_record("CREATE", product(colour_hex="#00f"), None, allow_upsert=True)
    assert verdict.is_valid
    assert verdict.warnings == ['Unknown field "colour_hex" was ignored.']
    assert "colour_hex" not in verdict.fields


def test_known_optional_fields_are_kept() -> None:
    verdict = check_record(
        "CREATE", product(gtin="0123456789012", item_group_id="g1"), None, allow_upsert=True
    )
    assert verdict.warnings == []
    assert verdict.fields["gtin"] == "0123456789012"


def test_status_must_be_active_or_archived() -> None:
    assert errors_of(product(status="archived")) == []
    assert errors_of(product(status="gone")) == [
        'Invalid value "gone" for field "status": must be one of: active, archived.'
    ]


def test_additional_image_links_are_urls_and_at_most_twenty() -> None:
    links = [f"https://cdn.example/{n}.jpg" for n in range(20)]
    assert errors_of(product(additional_image_link=links)) == []
    assert errors_of(product(additional_image_link=",".join(links))) == []
    too_many = errors_of(product(additional_image_link=[*links, "https://cdn.example/21.jpg"]))
    assert len(too_many) == 1
    assert "21 URLs, the maximum is 20" in too_many[0]
    assert errors_of(product(additional_image_link=["not a url"])) == [
        'Invalid value "not a url" for field "additional_image_link": each entry must be an absolute '
        "http or https URL."
    ]


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ("UPDATE", 'requests[3] must be an object with "method" and "data"'),
        ({"method": "UPSERT", "data": {}}, "requests[3][method] must be one of the following values"),
        ({"data": {}}, "requests[3][method] must be one of the following values"),
        ({"method": "UPDATE", "data": "sku-1"}, "requests[3][data] must be an object"),
    ],
)
def test_records_of_the_wrong_shape_fail_with_their_index(record: object, message: str) -> None:
    with pytest.raises(RecordShapeError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_record(3, record)


def test_method_names_are_read_case_insensitively() -> None:
    assert parse_record(0, {"method": "update", "data": {"id": "a"}}) == ("UPDATE", {"id": "a"})


# A whole requests array


def test_parse_records_is_parse_record_of_each() -> None:
    records: list[Any] = [
        {"method": "UPDATE", "data": {"id": "a"}},
        {"method": "CREATE", "data": {"id": "b"}, "extra": [1]},
        {"method": "DELETE", "data": {}},
    ]
    assert parse_records(records) == [parse_record(i, r) for i, r in enumerate(records)]
    lower = [{"method": "update", "data": {"id": "a"}}]
    assert parse_records(lower) == [("UPDATE", {"id": "a"})]


@pytest.mark.parametrize(
    "bad",
    [
        "UPDATE",
        None,
        {"method": "UPSERT", "data": {}},
        {"method": ["UPDATE"], "data": {}},
        {"data": {}},
        {"method": "UPDATE", "data": "sku-1"},
        {"method": "UPDATE"},
    ],
)
def test_parse_records_fails_like_parse_record_on_the_first_bad_record(bad: Any) -> None:
    records = [{"method": "UPDATE", "data": {"id": "a"}}, bad, {"method": "UPSERT", "data": {}}]
    with pytest.raises(RecordShapeError) as raised:
        parse_records(records)
    assert str(raised.value) == first_shape_error(records)
    assert "requests[1]" in str(raised.value)


def first_shape_error(records: list[Any]) -> str | None:
    for index, record in enumerate(records):
        try:
            parse_record(index, record)
        except RecordShapeError as error:
            return str(error)
    return None
