"""Meta's PRODUCT_ITEM rules, applied to one items_batch record at a time (GRAPH_API.md).

A record whose *shape* is wrong (not an object, unknown method, ``data`` not an object) fails the
whole call with code 100, as Graph parameter parsing does. A record whose *content* is wrong is an
item error: reported in ``validation_status`` and the batch status, and not saved.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from decimal import Decimal, InvalidOperation
from itertools import repeat
from typing import Any
from urllib.parse import urlsplit

METHOD_CREATE = "CREATE"
METHOD_UPDATE = "UPDATE"
METHOD_DELETE = "DELETE"
METHODS = (METHOD_CREATE, METHOD_UPDATE, METHOD_DELETE)

REQUIRED_FIELDS = (
    "id",
    "title",
    "description",
    "availability",
    "condition",
    "price",
    "link",
    "image_link",
    "brand",
)
AVAILABILITY_VALUES = ("in stock", "out of stock", "available for order", "discontinued", "preorder")
CONDITION_VALUES = ("new", "refurbished", "used")
STATUS_VALUES = ("active", "archived")
MAX_LENGTHS = {"id": 100, "title": 200, "description": 9999, "brand": 100}
# The items_batch table says 100 for title, the field reference 200: over 100 is a warning.
TITLE_WARNING_LENGTH = 100
MAX_ADDITIONAL_IMAGE_LINKS = 20

# Fields Meta knows on a PRODUCT_ITEM; anything else is ignored with a warning.
OPTIONAL_FIELDS = frozenset(
    {
        "additional_image_link",
        "additional_variant_attribute",
        "age_group",
        "applinks",
        "color",
        "commerce_tax_category",
        "custom_label_0",
        "custom_label_1",
        "custom_label_2",
        "custom_label_3",
        "custom_label_4",
        "custom_number_0",
        "custom_number_1",
        "custom_number_2",
        "custom_number_3",
        "custom_number_4",
        "expiration_date",
        "fb_product_category",
        "gender",
        "google_product_category",
        "gtin",
        "importer_address",
        "importer_name",
        "internal_label",
        "inventory",
        "item_group_id",
        "manufacturer_info",
        "manufacturer_part_number",
        "material",
        "mobile_link",
        "mpn",
        "origin_country",
        "pattern",
        "product_tags",
        "product_type",
        "quantity_to_sell_on_facebook",
        "retailer_product_group_id",
        "return_policy_days",
        "rich_text_description",
        "sale_price",
        "sale_price_effective_date",
        "shipping",
        "shipping_weight",
        "short_description",
        "size",
        "status",
        "video",
        "visibility",
    }
)
KNOWN_FIELDS = frozenset(REQUIRED_FIELDS) | OPTIONAL_FIELDS

# Active ISO 4217 codes.
CURRENCY_CODES = frozenset(
    """
    AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BOV BRL BSD BTN BWP
    BYN BZD CAD CDF CHE CHF CHW CLF CLP CNY COP COU CRC CUC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB
    EUR FJD FKP GBP GEL GHS GIP GMD GNF GTQ GYD HKD HNL HRK HTG HUF IDR ILS INR IQD IRR ISK JMD JOD
    JPY KES KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP MRU
    MUR MVR MWK MXN MXV MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR RON RSD
    RUB RWF SAR SBD SCR SDG SEK SGD SHP SLE SLL SOS SRD SSP STN SVC SYP SZL THB TJS TMT TND TOP TRY
    TTD TWD TZS UAH UGX USD USN UYI UYU UYW UZS VED VES VND VUV WST XAF XCD XCG XOF XPF YER ZAR ZMW
    ZWG ZWL
    """.split()
)
_PRICE_NUMBER = r"\d+(?:\.\d+)?"
_PRICE_CURRENCY = "[A-Za-z]{3}"
PRICE_PATTERN = re.compile(f"({_PRICE_NUMBER}) ({_PRICE_CURRENCY})")
PRICE_FORMAT_HINT = (
    'use a number with a period as decimal point, one space and an ISO 4217 currency code, e.g. "9.99 USD"'
)
PREVIEW_CHARACTERS = 60
WHITESPACE = re.compile(r"\s")
# Field values stored as they are: immutable, and not None (which clears a field).
PLAIN_VALUE_TYPES = frozenset({str, int, float, bool})
# http(s)://host[:port] and then, after / ? or #, printable ASCII only: urlsplit reads the netloc
# as exactly host[:port] (no user info, no brackets, ASCII), so its hostname is the non-empty host.
# Explicit letter classes: IGNORECASE would also match non-ASCII letters (U+017F for "s").
_HTTP_URL_START = r"[Hh][Tt][Tt][Pp][Ss]?://[A-Za-z0-9][A-Za-z0-9.-]*(?::[0-9]{1,5})?"
_PLAIN_HTTP_URL = re.compile(_HTTP_URL_START + r"(?:[/?#][!-~]*)?")
# The same over many URLs, one a line, once their characters are known to be [!-~]: each line's
# start up to the end of host[:port].
_PLAIN_HTTP_URL_PREFIX_LINES = re.compile("^" + _HTTP_URL_START + r"(?=[/?#]|$)", re.MULTILINE)
# The same up to and with the first [/?#]: a prefix of links that share it.
_PLAIN_HTTP_URL_HEAD = re.compile(_HTTP_URL_START + "[/?#]")
# PRICE_PATTERN over many prices, one a line: each line's currency.
_PRICE_LINES = re.compile(f"^{_PRICE_NUMBER} ({_PRICE_CURRENCY})$", re.MULTILINE)


class RecordShapeError(ValueError):
    """A record the Graph API cannot even parse; fails the whole items_batch call."""


# Fast path of a plain dataclass of these five fields (tested to behave as one): its errors and
# warnings lists are made on first use, since two empty lists an item would be most of what the
# garbage collector walks through in a call; emulator_items_batch validate 13.9 CPU µs an item as
# a dataclass, 12.3 as this (5 in-process A/B pairs, 2026-12-02).
class ItemVerdict:
    """The outcome of checking one record: its retailer id, problems, and the fields to save."""

    __slots__ = ("_errors", "_warnings", "fields", "method", "retailer_id")

    def __init__(
        self,
        retailer_id: str,
        method: str,
        errors: list[str] | None = None,
        warnings: list[str] | None = None,
        fields: dict[str, Any] | None = None,
    ) -> None:
        self.retailer_id = retailer_id
        self.method = method
        self._errors = errors
        self._warnings = warnings
        # Known fields only (unknown ones are dropped); None values clear an optional field.
        self.fields: dict[str, Any] = {} if fields is None else fields

    @property
    def errors(self) -> list[str]:
        if self._errors is None:
            self._errors = []
        return self._errors

    @property
    def warnings(self) -> list[str]:
        if self._warnings is None:
            self._warnings = []
        return self._warnings

    @property
    def is_valid(self) -> bool:
        return not self._errors

    @property
    def has_messages(self) -> bool:
        """Whether it has an error or a warning (without making its lists)."""
        return bool(self._errors or self._warnings)

    def _key(self) -> tuple[str, str, list[str], list[str], dict[str, Any]]:
        return (self.retailer_id, self.method, self._errors or [], self._warnings or [], self.fields)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ItemVerdict):
            return NotImplemented
        return self._key() == other._key()

    __hash__ = None  # type: ignore[assignment]  # compared by value and mutable: not hashable

    def __repr__(self) -> str:
        return (
            f"ItemVerdict(retailer_id={self.retailer_id!r}, method={self.method!r}, "
            f"errors={self._errors or []!r}, warnings={self._warnings or []!r}, fields={self.fields!r})"
        )


FieldCheck = Callable[[str, Any, ItemVerdict], None]


def parse_record(index: int, record: object) -> tuple[str, dict[str, Any]]:
    """Split ``{"method", "data"}`` into its parts, or raise RecordShapeError naming the index."""
    if not isinstance(record, dict):
        raise RecordShapeError(f'requests[{index}] must be an object with "method" and "data"')
    method = record.get("method")
    if not isinstance(method, str) or method.upper() not in METHODS:
        raise RecordShapeError(
            f"requests[{index}][method] must be one of the following values: {', '.join(METHODS)}; "
            f"got {_preview(method)}"
        )
    data = record.get("data")
    if not isinstance(data, dict):
        raise RecordShapeError(f"requests[{index}][data] must be an object")
    return method.upper(), data


def retailer_id_of(data: dict[str, Any]) -> str | None:
    """The record's retailer id as a string, or None when it has no usable one."""
    raw = data.get("id")
    # Liberal: an integer id is what a number-typed SKU column produces.
    if isinstance(raw, bool) or not isinstance(raw, str | int):
        return None
    text = str(raw)
    return text if text.strip() else None


def check_record(
    method: str,
    data: dict[str, Any],
    existing: dict[str, Any] | None,
    *,
    allow_upsert: bool,
    plain: bool = False,
) -> ItemVerdict:
    """Apply Meta's item rules to one record; ``existing`` is the item as the catalog will hold it.

    Messages come in this order: the id's, required fields' (in REQUIRED_FIELDS order), each
    field's own (in the record's order), then sale_price against price. ``plain=True`` says
    the record is one :func:`plain_records` found plain, so no per-field message is possible
    and those steps are skipped.
    """
    retailer_id = retailer_id_of(data)
    verdict = ItemVerdict(retailer_id or "", method)
    if retailer_id is None:
        verdict.errors.append(_missing("id"))
        return verdict
    if len(retailer_id) > MAX_LENGTHS["id"]:
        verdict.errors.append(_too_long("id", retailer_id, MAX_LENGTHS["id"]))
    if method == METHOD_DELETE:
        verdict.fields = {"id": retailer_id}
        return verdict

    if plain:
        fields = dict(data)
    else:
        fields = {}
        for name, value in data.items():
            if name in KNOWN_FIELDS:
                fields[name] = value
            else:
                verdict.warnings.append(f'Unknown field "{name}" was ignored.')
    # data["id"] exists (retailer_id is not None), so this keeps its place and normalizes its value.
    fields["id"] = retailer_id
    verdict.fields = fields

    is_new = existing is None
    if method == METHOD_UPDATE and is_new and not allow_upsert:
        verdict.errors.append(
            f'No item with retailer id "{retailer_id}" exists in the catalog, and allow_upsert is false.'
        )
        return verdict
    if not plain:
        _check_fields(fields, verdict, needs_every_required_field=method == METHOD_CREATE or is_new)

    # Prices as the item will hold them: CREATE replaces the item, UPDATE merges into it.
    kept = {} if method == METHOD_CREATE else existing or {}
    sale_price = fields["sale_price"] if "sale_price" in fields else kept.get("sale_price")
    if sale_price is not None:
        price = fields["price"] if "price" in fields else kept.get("price")
        _check_sale_price(price, sale_price, verdict)
    return verdict


def _check_fields(fields: dict[str, Any], verdict: ItemVerdict, *, needs_every_required_field: bool) -> None:
    """Required fields (CREATE and new items need all), then each field's own rule."""
    blank_required: set[str] = set()
    for name in _REQUIRED_BESIDES_ID:
        if name not in fields:
            if needs_every_required_field:
                verdict.errors.append(_missing(name))
        elif _is_blank(fields[name]):
            blank_required.add(name)
            verdict.errors.append(_missing(name) if needs_every_required_field else _emptied(name))

    for name, value in fields.items():
        check = _FIELD_CHECKS.get(name)
        if check is None or value is None or name in blank_required:
            continue  # a field with no rule of its own, a cleared one, or one reported as missing
        check(name, value, verdict)


def passes_quick_test(quick_test: tuple[str, Any], value: Any) -> bool:
    """Whether ``value`` is plainly valid: a non-blank string its field's full checker accepts
    without a message. False decides nothing; the full checker will look."""
    kind, allowed = quick_test
    if kind is _QUICK_PLAIN_VALUE:
        return type(value) in PLAIN_VALUE_TYPES
    if value.__class__ is not str:
        return False
    if kind is _QUICK_URL:
        return _PLAIN_HTTP_URL.fullmatch(value) is not None
    if kind is _QUICK_TEXT:
        # Not blank: a blank required field is reported as missing instead.
        return len(value) <= allowed and value.strip() != ""
    if kind is _QUICK_CHOICE:
        return value in allowed
    if kind is _QUICK_PRICE:
        match = PRICE_PATTERN.fullmatch(value)
        return match is not None and match[2] in CURRENCY_CODES
    return False


# Fast path of check_record's per-field steps (tested against them: a plain record gets the
# verdict they give), which run urlsplit and a regex or two per value; "plain" also spares
# check_record's unknown-field loop and item_after's type check. emulator_items_batch validate
# 31.0 CPU µs an item without, 14.2 with (4 in-process A/B pairs, 2026-12-02).
def plain_records(records: Sequence[tuple[str, dict[str, Any]]]) -> list[bool]:
    """For each ``(method, data)``, whether it is plain: not a DELETE, an exact dict of known
    fields only, with every required field, every checked value passing its quick test and every
    other value a string, number or bool (so applying it copies no container and clears nothing).

    Decided a field at a time over the whole batch at C speed (sets, ``str`` methods, maps)
    rather than a value at a time; a field whose column does not pass as a whole is then looked
    at value by value, so one odd record costs only its own per-field checks.
    """
    plain = [method != METHOD_DELETE and data.__class__ is dict for method, data in records]
    candidates = [index for index, is_candidate in enumerate(plain) if is_candidate]
    datas = [records[index][1] for index in candidates]
    if not datas:
        return plain
    names: set[str] = set().union(*datas)
    if not names <= KNOWN_FIELDS:
        for index, data in zip(candidates, datas, strict=True):
            if not data.keys() <= KNOWN_FIELDS:
                plain[index] = False
    for name in names | _REQUIRED_BESIDES_ID_SET:
        if name == "id" or name not in KNOWN_FIELDS:
            continue  # the id has rules of its own, always checked; unknown fields are not kept
        quick_test = _QUICK_TESTS.get(name, _PLAIN_VALUE_TEST)
        column = list(map(dict.get, datas, repeat(name), repeat(_ABSENT)))
        if name in _REQUIRED_BESIDES_ID_SET:
            values = column
        else:
            values = [value for value in column if value is not _ABSENT]
        if _column_passes_quick_test(quick_test, values):
            continue
        for index, value in zip(candidates, column, strict=True):
            if value is _ABSENT and name not in _REQUIRED_BESIDES_ID_SET:
                continue
            if not passes_quick_test(quick_test, value):
                plain[index] = False
    return plain


# Fast path of passes_quick_test on each value (the loop after it in plain_records; tested
# against it): one set, join or findall a column (for links, one match of the start they all
# share) costs less than a call a value; emulator_items_batch validate 14.1 CPU µs an item
# without, 12.4 with (6 in-process A/B pairs, 2026-12-02).
def _column_passes_quick_test(quick_test: tuple[str, Any], values: list[Any]) -> bool:
    """Whether every value passes :func:`passes_quick_test`; False may only mean "look closer"."""
    if not values:
        return True
    kind, allowed = quick_test
    if kind is _QUICK_PLAIN_VALUE:
        return bool(PLAIN_VALUE_TYPES.issuperset(map(type, values)))
    if set(map(type, values)) != {str}:
        return False
    if kind is _QUICK_TEXT:
        return max(map(len, values)) <= allowed and all(map(str.strip, values))
    if kind is _QUICK_URL:
        # Only [!-~] characters (so no line break either), then the part up to [/?#].
        characters = "".join(values)
        if not (characters.isascii() and characters.isprintable()) or " " in characters:
            return False
        if _PLAIN_HTTP_URL_HEAD.match(_common_prefix(min(values), max(values))):
            return True
        lines = "\n".join(values)
        return len(_PLAIN_HTTP_URL_PREFIX_LINES.findall(lines)) == len(values)
    distinct = set(values)
    if kind is _QUICK_CHOICE:
        return bool(allowed.issuperset(distinct))
    if kind is _QUICK_PRICE:
        # One price a line, so none may hold a line break.
        lines = "\n".join(distinct)
        if lines.count("\n") != len(distinct) - 1:
            return False
        currencies = _PRICE_LINES.findall(lines)
        return len(currencies) == len(distinct) and CURRENCY_CODES.issuperset(currencies)
    return False


def _common_prefix(first: str, second: str) -> str:
    """The longest start the two share (of the smallest and largest, the start all values share)."""
    for index, (mine, theirs) in enumerate(zip(first, second, strict=False)):
        if mine != theirs:
            return first[:index]
    return first if len(first) <= len(second) else second


def parse_records(records: list[Any]) -> list[tuple[str, dict[str, Any]]]:
    """:func:`parse_record` of each record in order, raising for the first bad one."""
    return [parse_record(index, record) for index, record in enumerate(records)]


def _check_text(name: str, value: Any, verdict: ItemVerdict) -> None:
    if not isinstance(value, str):
        verdict.errors.append(_invalid(name, value, "must be a string"))
        return
    limit = MAX_LENGTHS.get(name)
    if limit is not None and len(value) > limit:
        verdict.errors.append(_too_long(name, value, limit))
    elif name == "title" and len(value) > TITLE_WARNING_LENGTH:
        verdict.warnings.append(
            f'Field "title" is {len(value)} characters long; titles over {TITLE_WARNING_LENGTH} '
            "characters may be truncated."
        )


def _check_price(name: str, value: Any, verdict: ItemVerdict) -> None:
    if not isinstance(value, str):
        verdict.errors.append(_invalid(name, value, f"must be a string; {PRICE_FORMAT_HINT}"))
        return
    match = PRICE_PATTERN.fullmatch(value)
    if match is None:
        verdict.errors.append(_invalid(name, value, PRICE_FORMAT_HINT))
        return
    currency = match.group(2)
    if currency not in CURRENCY_CODES:
        verdict.errors.append(
            _invalid(name, value, f'"{currency}" is not an upper-case ISO 4217 currency code')
        )


def _check_choice(choices: tuple[str, ...]) -> FieldCheck:
    def check(name: str, value: Any, verdict: ItemVerdict) -> None:
        # Liberal about case: Meta's feed ingestion is; the provider sends lower case.
        if not isinstance(value, str) or value.strip().lower() not in choices:
            verdict.errors.append(_invalid(name, value, f"must be one of: {', '.join(choices)}"))

    return check


def _check_url(name: str, value: Any, verdict: ItemVerdict) -> None:
    if not isinstance(value, str) or not _is_http_url(value):
        verdict.errors.append(_invalid(name, value, "must be an absolute http or https URL"))


def _check_additional_image_links(name: str, value: Any, verdict: ItemVerdict) -> None:
    # Meta accepts a JSON array or a comma-separated string.
    if isinstance(value, str):
        links = [part.strip() for part in value.split(",") if part.strip()]
    elif isinstance(value, list):
        links = value
    else:
        verdict.errors.append(_invalid(name, value, "must be a list of URLs"))
        return
    if len(links) > MAX_ADDITIONAL_IMAGE_LINKS:
        verdict.errors.append(
            _invalid(name, value, f"{len(links)} URLs, the maximum is {MAX_ADDITIONAL_IMAGE_LINKS}")
        )
    for link in links:
        if not isinstance(link, str) or not _is_http_url(link):
            verdict.errors.append(_invalid(name, link, "each entry must be an absolute http or https URL"))


def _check_sale_price(price_value: Any, sale_price_value: Any, verdict: ItemVerdict) -> None:
    """sale_price against price, as the item will hold them (most items have no sale_price)."""
    sale_price = _parse_price(sale_price_value)
    if sale_price is None:
        return
    price = _parse_price(price_value)
    if price is None:
        return
    if price[1] != sale_price[1]:
        verdict.errors.append(
            _invalid(
                "sale_price",
                sale_price_value,
                f'the currency must match price "{price_value}"',
            )
        )
    elif sale_price[0] >= price[0]:
        verdict.errors.append(
            _invalid("sale_price", sale_price_value, f'must be lower than price "{price_value}"')
        )


def _parse_price(value: Any) -> tuple[Decimal, str] | None:
    if not isinstance(value, str):
        return None
    match = PRICE_PATTERN.fullmatch(value)
    if match is None:
        return None
    try:
        return Decimal(match.group(1)), match.group(2)
    except InvalidOperation:  # pragma: no cover - the pattern only lets digits through
        return None


def _is_http_url(value: str) -> bool:
    """An http or https scheme and a host, no whitespace, and urlsplit can read it."""
    if not value or WHITESPACE.search(value):
        return False
    try:
        parts = urlsplit(value)
        hostname = parts.hostname
    except ValueError:
        return False
    return parts.scheme.lower() in ("http", "https") and bool(hostname)


def _is_blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _preview(value: Any) -> str:
    """A value quoted for a message, shortened so a 10,000-character description stays readable."""
    if isinstance(value, str) and len(value) > PREVIEW_CHARACTERS:
        value = value[:PREVIEW_CHARACTERS] + "…"
    return json.dumps(value, ensure_ascii=False)


def _invalid(name: str, value: Any, reason: str) -> str:
    return f'Invalid value {_preview(value)} for field "{name}": {reason}.'


def _too_long(name: str, value: str, limit: int) -> str:
    return _invalid(name, value, f"{len(value)} characters, the maximum is {limit}")


def _missing(name: str) -> str:
    return f'Required field "{name}" is missing or empty.'


def _emptied(name: str) -> str:
    return f'Required field "{name}" cannot be set to an empty value.'


_FIELD_CHECKS: dict[str, FieldCheck] = {
    "title": _check_text,
    "description": _check_text,
    "brand": _check_text,
    "price": _check_price,
    "sale_price": _check_price,
    "availability": _check_choice(AVAILABILITY_VALUES),
    "condition": _check_choice(CONDITION_VALUES),
    "status": _check_choice(STATUS_VALUES),
    "link": _check_url,
    "image_link": _check_url,
    "mobile_link": _check_url,
    "additional_image_link": _check_additional_image_links,
}

_REQUIRED_BESIDES_ID = tuple(name for name in REQUIRED_FIELDS if name != "id")
_REQUIRED_BESIDES_ID_SET = frozenset(_REQUIRED_BESIDES_ID)

# Quick tests (plain_records'), kind and parameter. A string passing one is a value whose full
# checker adds no message (and it is not blank); a record with any other value is not plain and
# goes to the full checkers. Text: at most this many characters (title: the warning length).
# Choice: exactly one of the values, in lower case.
_QUICK_URL = "url"
_QUICK_TEXT = "text"
_QUICK_CHOICE = "choice"
_QUICK_PRICE = "price"
_FULL_CHECK_ONLY = "full check only"
# For plain_records only: a field with no rule of its own, whose value must just be plain.
_QUICK_PLAIN_VALUE = "plain value"
_PLAIN_VALUE_TEST = (_QUICK_PLAIN_VALUE, None)
_ABSENT = object()
_QUICK_TEST_OF_FIELD: dict[str, tuple[str, Any]] = {
    "title": (_QUICK_TEXT, TITLE_WARNING_LENGTH),
    "description": (_QUICK_TEXT, MAX_LENGTHS["description"]),
    "brand": (_QUICK_TEXT, MAX_LENGTHS["brand"]),
    "price": (_QUICK_PRICE, None),
    "sale_price": (_QUICK_PRICE, None),
    "availability": (_QUICK_CHOICE, frozenset(AVAILABILITY_VALUES)),
    "condition": (_QUICK_CHOICE, frozenset(CONDITION_VALUES)),
    "status": (_QUICK_CHOICE, frozenset(STATUS_VALUES)),
    "link": (_QUICK_URL, None),
    "image_link": (_QUICK_URL, None),
    "mobile_link": (_QUICK_URL, None),
}
# Exactly the checked fields (a field without an entry needs no check at all).
_QUICK_TESTS: dict[str, tuple[str, Any]] = {
    name: _QUICK_TEST_OF_FIELD.get(name, (_FULL_CHECK_ONLY, None)) for name in _FIELD_CHECKS
}
