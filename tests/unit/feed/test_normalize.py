from __future__ import annotations

import pytest

from facebook_catalog.feed import (
    FeedOptions,
    RowRules,
    normalize_fields,
    normalize_row,
    normalize_values,
    parse_price,
)
from facebook_catalog.feed.normalize import normalized_id

GOOD_ROW: dict[str, str | None] = {
    "id": "sku-1",
    "title": "Cozy Sweater",
    "description": "Comfortable and warm sweater",
    "link": "https://shop.example.com/p/sku-1",
    "image_link": "https://cdn.example.com/sku-1.jpg",
    "availability": "in stock",
    "price": "25000 IQD",
    "brand": "Miswag",
}


def normalized(**changes: str | None) -> dict[str, str]:
    fields, problems = normalize_fields({**GOOD_ROW, **changes})
    assert fields is not None, [p.reason for p in problems]
    return fields


def errors(**changes: str | None) -> dict[str, str]:
    fields, problems = normalize_fields({**GOOD_ROW, **changes})
    assert fields is None
    return {p.field: p.reason for p in problems if not p.is_warning}


def warnings(**changes: str | None) -> dict[str, str]:
    _fields, problems = normalize_fields({**GOOD_ROW, **changes})
    return {p.field: p.reason for p in problems if p.is_warning}


def test_good_row_gets_default_condition_and_keeps_values() -> None:
    fields = normalized()
    assert fields == {**GOOD_ROW, "condition": "new"}


def test_options_fill_in_currency_and_condition() -> None:
    fields, _ = normalize_fields(
        {**GOOD_ROW, "price": "9.99"}, FeedOptions(default_currency="usd", default_condition="Used")
    )
    assert fields is not None
    assert fields["price"] == "9.99 USD"
    assert fields["condition"] == "used"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"default_currency": "XYZ"}, "ISO 4217"),
        ({"default_condition": "broken"}, "new, refurbished, used"),
    ],
)
def test_bad_options_are_refused(options: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        FeedOptions(**options)


# --- price -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("25000", "25000 IQD"),
        ("25000 IQD", "25000 IQD"),
        ("IQD 25000", "25000 IQD"),
        ("25000.00 iqd", "25000.00 IQD"),
        ("9.99 USD", "9.99 USD"),
        ("usd 9.99", "9.99 USD"),
        ("25000IQD", "25000 IQD"),
        ("  25000\u00a0 IQD ", "25000 IQD"),
        ("٢٥٠٠٠ IQD", "25000 IQD"),
        ("\u0669\u066b\u0669\u0669 USD", "9.99 USD"),  # Arabic-Indic digits, Arabic decimal separator
        ("0.50 USD", "0.50 USD"),
        ("007 EUR", "007 EUR"),
    ],
)
def test_prices_normalize_to_number_space_code(raw: str, expected: str) -> None:
    assert normalized(price=raw)["price"] == expected


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (
            "$10",
            "currency symbols such as '$' are not accepted; write the ISO 4217 code instead, e.g. '10 USD'",
        ),
        ("10€", "'€'"),
        ("25000 د.ع", "'25000 IQD'"),
        ("¢5", "currency symbols are not accepted"),
        ("-10 USD", "is negative"),
        ("USD -10", "is negative"),
        ("0", "is zero"),
        ("0.00 USD", "is zero"),
        ("abc", "is not a price"),
        ("http://example.com/101", "is not a price"),
        ("25,000 IQD", "thousands separators and decimal commas are ambiguous"),
        ("9,99 EUR", "ambiguous"),
        ("1.000.000 IQD", "more than one '.'"),
        ("25 000 IQD", "digits grouped with spaces"),
        ("25000 XYZ", "unknown currency code 'XYZ'"),
        ("25000 DOLLARS", "is not a price"),
        ("USD 10 EUR", "two currency codes"),
        ("1e5 USD", "is not a price"),
        ("1" * 16 + " USD", "more than 15 digits"),
        (".5 USD", "is not a price"),
    ],
)
def test_bad_prices_are_rejected_with_a_reason(raw: str, reason: str) -> None:
    assert reason in errors(price=raw)["price"]


def test_a_price_that_looks_like_a_thousands_group_is_read_with_a_warning() -> None:
    assert normalized(price="25.000 IQD")["price"] == "25.000 IQD"
    assert "this is 25 IQD" in warnings(price="25.000 IQD")["price"]
    assert warnings(price="9.99 USD") == {}


def test_parse_price_is_usable_on_its_own() -> None:
    price = parse_price("9.99 usd", "IQD")
    assert (str(price.amount), price.currency, price.text) == ("9.99", "USD", "9.99 USD")
    with pytest.raises(ValueError, match="is negative"):
        parse_price("-1", "IQD")


@pytest.mark.parametrize(
    ("sale_price", "reason"),
    [
        ("30000 IQD", "must be lower than price (25000 IQD)"),
        ("25000", "must be lower than price"),
        ("10 USD", "is in USD but price is in IQD"),
        ("$5", "'$'"),
        ("0", "is zero"),
    ],
)
def test_sale_price_must_be_a_lower_price_in_the_same_currency(sale_price: str, reason: str) -> None:
    assert reason in errors(sale_price=sale_price)["sale_price"]


def test_good_and_absent_sale_prices() -> None:
    assert normalized(sale_price="20000")["sale_price"] == "20000 IQD"
    assert "sale_price" not in normalized(sale_price="")
    assert "sale_price" not in normalized(sale_price="NULL")
    assert "sale_price" not in normalized(sale_price=None)


def test_sale_price_is_not_compared_when_price_is_bad() -> None:
    assert set(errors(price="abc", sale_price="20000 IQD")) == {"price"}


# --- enumerations ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("in stock", "in stock"),
        ("in_stock", "in stock"),
        ("In-Stock", "in stock"),
        ("instock", "in stock"),
        ("IN STOCK", "in stock"),
        ("InStock", "in stock"),
        ("out_of_stock", "out of stock"),
        ("Out Of Stock", "out of stock"),
        ("available_for_order", "available for order"),
        ("preorder", "preorder"),
        ("pre-order", "preorder"),
        ("Discontinued", "discontinued"),
        ("sold out", "out of stock"),
    ],
)
def test_availability_spellings_map_to_metas_values(raw: str, expected: str) -> None:
    assert normalized(availability=raw)["availability"] == expected


def test_unknown_availability_lists_the_accepted_values() -> None:
    reason = errors(availability="maybe")["availability"]
    assert "'in stock', 'out of stock', 'available for order', 'preorder', 'discontinued'" in reason


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("New", "new"), ("USED", "used"), (" refurbished ", "refurbished"), ("", "new"), (None, "new")],
)
def test_condition_is_case_insensitive_and_defaults(raw: str | None, expected: str) -> None:
    assert normalized(condition=raw)["condition"] == expected


def test_bad_condition_is_rejected_not_defaulted() -> None:
    assert "not a valid condition" in errors(condition="broken")["condition"]


@pytest.mark.parametrize(
    ("field", "raw", "expected"),
    [
        ("status", "ARCHIVED", "archived"),
        ("gender", "Unisex", "unisex"),
        ("age_group", "all_ages", "all ages"),
        ("quantity_to_sell_on_facebook", "12", "12"),
        ("quantity_to_sell_on_facebook", "3.0", "3"),
        ("sale_price_effective_date", "2025-01-01/2025-01-31", "2025-01-01/2025-01-31"),
        ("sale_price_effective_date", "2025-01-01T00:00Z/2025-01-31T23:59:59+0300", None),
    ],
)
def test_optional_fields_with_rules(field: str, raw: str, expected: str | None) -> None:
    assert normalized(**{field: raw})[field] == (expected if expected is not None else raw)


@pytest.mark.parametrize(
    ("field", "raw", "reason"),
    [
        ("status", "deleted", "not a valid status"),
        ("gender", "robot", "not a valid gender"),
        ("age_group", "elderly", "not a valid age group"),
        ("inventory", "-1", "whole number"),
        ("sale_price_effective_date", "2025-01-31/2025-01-01", "ends before it starts"),
        ("sale_price_effective_date", "2025-13-01/2025-12-01", "impossible date"),
        ("sale_price_effective_date", "tomorrow", "ISO 8601 interval"),
    ],
)
def test_optional_fields_with_bad_values(field: str, raw: str, reason: str) -> None:
    assert reason in errors(**{field: raw})[field]


# --- URLs ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com/101",
        "HTTPS://EXAMPLE.COM/x?a=1&b=2#top",
        "https://shop.example.com:8443/p/1",
        "https://xn--mgbh0fb.xn--kgbechtv/p/1",
        "https://متجر.عراق/منتج/1",
        "https://cdn.example.com/a%20b.jpg",
        "https://127.0.0.1/p/1",
        "https://[::1]:8080/p/1",
    ],
)
def test_absolute_http_urls_pass(url: str) -> None:
    assert normalized(link=url)["link"] == url


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("javascript:alert(1)", "javascript: URL"),
        (" JAVASCRIPT:alert(1)", "javascript: URL"),
        ("/p/1", "relative URL"),
        ("../p/1", "relative URL"),
        ("p/1.jpg", "is not a URL"),
        ("Cozy Sweater", "is not a URL"),
        ("example.com/p/1", "has no scheme; write it as https://example.com/p/1"),
        ("//example.com/p/1", "protocol-relative"),
        ("ftp://example.com/p/1", "scheme 'ftp:'"),
        ("mailto:shop@example.com", "scheme 'mailto:'"),
        ("C:\\images\\1.jpg", "local file path"),
        ("https://example.com/my product", "contains a space (at character 23)"),
        ("https://", "has no host"),
        ("http:/example.com", "has no host"),
        ("https://example.com:99999/", "invalid port"),
        ("https://[::1/p", "is not a valid URL"),
    ],
)
def test_bad_urls_are_rejected(url: str, reason: str) -> None:
    assert reason in errors(image_link=url)["image_link"]


def test_additional_image_links_are_a_checked_comma_separated_list() -> None:
    assert (
        normalized(additional_image_link=" https://a.example/1.jpg ,https://a.example/2.jpg,")[
            "additional_image_link"
        ]
        == "https://a.example/1.jpg,https://a.example/2.jpg"
    )
    many = ",".join(f"https://a.example/{n}.jpg" for n in range(21))
    assert "at most 20" in errors(additional_image_link=many)["additional_image_link"]
    assert (
        "URL 2 'ftp://a.example/2.jpg'"
        in errors(additional_image_link="https://a.example/1.jpg,ftp://a.example/2.jpg")[
            "additional_image_link"
        ]
    )


# --- text ------------------------------------------------------------------------------------


def test_text_is_trimmed_and_tabs_become_spaces() -> None:
    fields = normalized(title="  Cozy\tSweater  ", brand="\tMiswag ")
    assert (fields["title"], fields["brand"]) == ("Cozy Sweater", "Miswag")


def test_line_breaks_are_kept_in_description_only() -> None:
    fields = normalized(title="Cozy\r\nSweater", description="Line one\r\nLine two\rLine three")
    assert fields["title"] == "Cozy Sweater"
    assert fields["description"] == "Line one\nLine two\nLine three"


def test_control_characters_are_removed_with_a_warning() -> None:
    fields = normalized(title="Bell\x07 and \x1b[0m escape", description="a\x00b\x85c")
    assert fields["title"] == "Bell and [0m escape"
    assert fields["description"] == "abc"
    found = warnings(title="Bell\x07 and \x1b[0m escape")
    assert found == {"title": "2 control characters removed"}


def test_non_latin_text_passes_intact_and_nfc_normalized() -> None:
    fields = normalized(
        title="قميص قطني 👕",
        description="Family 👨\u200d👩\u200d👧 \u200fمرحبا",  # noqa: RUF001
        brand="Cafe\u0301",
    )
    assert fields["title"] == "قميص قطني 👕"
    assert fields["description"] == "Family 👨\u200d👩\u200d👧 \u200fمرحبا"  # noqa: RUF001
    assert fields["brand"] == "Caf\u00e9"


@pytest.mark.parametrize(
    ("field", "length", "outcome"),
    [
        ("title", 100, "ok"),
        ("title", 101, "warning"),
        ("title", 200, "warning"),
        ("title", 201, "error"),
        ("description", 5000, "ok"),
        ("description", 5001, "warning"),
        ("description", 9999, "warning"),
        ("description", 10000, "error"),
        ("id", 100, "ok"),
        ("id", 101, "error"),
        ("brand", 100, "ok"),
        ("brand", 101, "error"),
        ("color", 10000, "error"),
    ],
)
def test_length_limits(field: str, length: int, outcome: str) -> None:
    fields, problems = normalize_fields({**GOOD_ROW, field: "x" * length})
    kinds = {("warning" if p.is_warning else "error") for p in problems if p.field == field}
    assert kinds == (set() if outcome == "ok" else {outcome})
    assert (fields is None) == (outcome == "error")


def test_length_is_counted_in_characters_not_bytes() -> None:
    assert normalized(title="ع" * 100)["title"] == "ع" * 100


def test_long_values_are_cut_for_display_with_their_length() -> None:
    _fields, problems = normalize_fields({**GOOD_ROW, "description": "d" * 1_048_576})
    (problem,) = problems
    assert problem.value == "d" * 80 + "… (1,048,576 chars)"
    assert problem.reason == "is 1,048,576 characters long; Meta's limit is 9,999"


# --- missing, empty, NULL --------------------------------------------------------------------


@pytest.mark.parametrize(
    "field", ["id", "title", "description", "link", "image_link", "availability", "price", "brand"]
)
def test_every_required_field_must_be_present_and_non_empty(field: str) -> None:
    assert errors(**{field: ""})[field] == "is empty; Meta requires a value"
    assert errors(**{field: "   "})[field] == "is empty; Meta requires a value"
    assert errors(**{field: None})[field] == "is empty; Meta requires a value"
    row = {key: value for key, value in GOOD_ROW.items() if key != field}
    fields, problems = normalize_fields(row)
    assert fields is None
    assert [(p.field, p.reason) for p in problems] == [(field, "is missing; Meta requires it")]


@pytest.mark.parametrize("null", ["NULL", "null", "\\N", "None", "NaN", "undefined"])
def test_null_like_values_count_as_missing(null: str) -> None:
    assert "reads as a database NULL" in errors(brand=null)["brand"]
    assert "color" not in normalized(color=null)


def test_every_problem_of_a_row_is_reported() -> None:
    found = errors(price="$10", link="/p/1", availability="maybe", brand="")
    assert set(found) == {"price", "link", "availability", "brand"}


# --- database rows ---------------------------------------------------------------------------


def test_database_rows_with_other_column_names_and_types() -> None:
    from decimal import Decimal

    row = {
        "ID": 101,
        "Title": "Cozy Sweater",
        "description": "Warm",
        "Link": "https://shop.example.com/p/101",
        "image-link": "https://cdn.example.com/101.jpg",
        "availability": "in_stock",
        "price": Decimal("25000.00"),
        "brand": "Miswag",
        "sale_price": None,
        "updated_at": "2025-01-01 10:00:00",
        "_airbyte_raw_id": "abc",
    }
    fields, problems = normalize_fields(row)
    assert problems == []
    assert fields == {
        "id": "101",
        "title": "Cozy Sweater",
        "description": "Warm",
        "link": "https://shop.example.com/p/101",
        "image_link": "https://cdn.example.com/101.jpg",
        "availability": "in stock",
        "price": "25000.00 IQD",
        "brand": "Miswag",
        "condition": "new",
    }


def test_a_field_given_twice_is_an_error() -> None:
    fields, problems = normalize_fields({**GOOD_ROW, "Price": "30000 IQD"})
    assert fields is None
    assert [(p.field, p.reason) for p in problems] == [("price", "is given twice, as 'price' and 'Price'")]


def test_undecodable_bytes_in_a_value_are_an_error() -> None:
    assert "not valid UTF-8" in errors(title="Caf\udce9")["title"]


@pytest.mark.parametrize(
    "raw",
    [
        "sku-1",
        "  sku-1\t",
        "SKU 1",
        "قميص-١٤",
        " cafe\u0301 ",  # NFC turns e + combining accent into é
        "sku\x07-1",  # a control character, removed with a warning
        "sku\u00a0-1",  # a no-break space inside
        "sku\n1",  # a line break in a single-line field becomes a space
        "\udce9sku",  # an undecodable byte: the row is rejected
        "",
        "   ",
        "NULL",
        "x" * 101,
    ],
)
def test_normalized_id_is_the_id_normalize_values_gives(raw: str) -> None:
    """The operator's ids pass relies on this to tell which ids repeat before the rules run."""
    fields, _problems = normalize_values({**GOOD_ROW, "id": raw})  # type: ignore[dict-item]
    if fields is not None:
        assert normalized_id(raw) == fields["id"]
    else:
        # A row that the id alone rejects may still look like an id; it only counts as one more
        # occurrence, which is harmless.
        assert normalized_id(raw) in (None, raw.strip())


# A CSV row as the reader sees it: Meta fields in another order than GOOD_ROW's, with columns that
# are not sent (an export's updated_at, a warehouse code) between them.
_ROW_COLUMNS = ("price", "updated_at", "sale_price", "id", "title", "warehouse", "description")
_ROW_LAYOUT = ((0, "price"), (2, "sale_price"), (3, "id"), (4, "title"), (6, "description"))


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"price": "25,000 IQD"},  # rejected
        {"sale_price": "30000 IQD"},  # not lower than price: the message quotes the sale_price cell
        {"sale_price": "20000 USD"},  # another currency
        {"title": "  Sweater\x07 "},  # a warning, and a trimmed value
        {"id": "NULL", "title": ""},  # two required fields rejected
        {"sale_price": ""},  # an empty optional field is left out
    ],
)
def test_a_row_by_position_gets_the_same_verdict_as_the_same_values_by_name(changes: dict[str, str]) -> None:
    """normalize_row reads cells by the layout's indices, skipping the columns between them."""
    values = {**GOOD_ROW, "sale_price": "20000 IQD", **changes}
    row = [values.get(name) or "" if name in values else f"<{name}>" for name in _ROW_COLUMNS]
    by_name = normalize_values({field: row[index] for index, field in _ROW_LAYOUT})
    by_position = normalize_row(row, RowRules(_ROW_LAYOUT))
    assert by_position == by_name
    if changes.get("sale_price"):
        reasons = {p.field: p.value for p in by_position.problems}
        assert reasons.get("sale_price", changes["sale_price"]) == changes["sale_price"]


def test_row_rules_name_the_required_fields_the_layout_lacks() -> None:
    """A layout without price or link (a mapping without them) rejects every row, naming each."""
    fields, problems = normalize_row(["sku-1", "Sweater"], RowRules(((0, "id"), (1, "title"))))
    assert fields is None
    missing = [p.field for p in problems if p.reason == "is missing; Meta requires it"]
    assert missing == ["description", "link", "image_link", "availability", "price", "brand"]
