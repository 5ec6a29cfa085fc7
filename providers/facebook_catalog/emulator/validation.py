"""Meta's PRODUCT_ITEM rules, applied to one items_batch record at a time (GRAPH_API.md).

A record whose *shape* is wrong (not an object, unknown method, ``data`` not an object) fails the
whole call with code 100, as Graph parameter parsing does. A record whose *content* is wrong is an
item error: reported in ``validation_status`` and the batch status, and not saved.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
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
PRICE_PATTERN = re.compile(r"(\d+(?:\.\d+)?) ([A-Za-z]{3})")
PRICE_FORMAT_HINT = (
    'use a number with a period as decimal point, one space and an ISO 4217 currency code, e.g. "9.99 USD"'
)
PREVIEW_CHARACTERS = 60
WHITESPACE = re.compile(r"\s")


class RecordShapeError(ValueError):
    """A record the Graph API cannot even parse; fails the whole items_batch call."""


@dataclass
class ItemVerdict:
    """The outcome of checking one record: its retailer id, problems, and the fields to save."""

    retailer_id: str
    method: str
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    # Known fields only (unknown ones are dropped); None values clear an optional field.
    fields: dict[str, Any] = field(default_factory=dict)

    @property
    def is_valid(self) -> bool:
        return not self.errors


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
) -> ItemVerdict:
    """Apply Meta's item rules to one record; ``existing`` is the item as the catalog will hold it."""
    retailer_id = retailer_id_of(data)
    verdict = ItemVerdict(retailer_id=retailer_id or "", method=method)
    if retailer_id is None:
        verdict.errors.append(_missing("id"))
        return verdict
    if len(retailer_id) > MAX_LENGTHS["id"]:
        verdict.errors.append(_too_long("id", retailer_id, MAX_LENGTHS["id"]))
    if method == METHOD_DELETE:
        verdict.fields = {"id": retailer_id}
        return verdict

    for name, value in data.items():
        if name in KNOWN_FIELDS:
            verdict.fields[name] = value
        else:
            verdict.warnings.append(f'Unknown field "{name}" was ignored.')
    verdict.fields["id"] = retailer_id

    is_new = existing is None
    if method == METHOD_UPDATE and is_new and not allow_upsert:
        verdict.errors.append(
            f'No item with retailer id "{retailer_id}" exists in the catalog, and allow_upsert is false.'
        )
        return verdict
    # CREATE replaces the whole item; UPDATE of an unknown id (upsert) creates it.
    needs_every_required_field = method == METHOD_CREATE or is_new
    for name in REQUIRED_FIELDS:
        if name == "id":
            continue
        if name not in verdict.fields:
            if needs_every_required_field:
                verdict.errors.append(_missing(name))
        elif _is_blank(verdict.fields[name]):
            verdict.errors.append(_missing(name) if needs_every_required_field else _emptied(name))

    for name, value in verdict.fields.items():
        if name == "id" or value is None or (name in REQUIRED_FIELDS and _is_blank(value)):
            continue
        checker = _FIELD_CHECKS.get(name)
        if checker is not None:
            checker(name, value, verdict)

    merged = dict(verdict.fields) if method == METHOD_CREATE else {**(existing or {}), **verdict.fields}
    _check_sale_price(merged, verdict)
    return verdict


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


def _check_sale_price(item: dict[str, Any], verdict: ItemVerdict) -> None:
    price = _parse_price(item.get("price"))
    sale_price = _parse_price(item.get("sale_price"))
    if price is None or sale_price is None:
        return
    if price[1] != sale_price[1]:
        verdict.errors.append(
            _invalid(
                "sale_price",
                item["sale_price"],
                f'the currency must match price "{item["price"]}"',
            )
        )
    elif sale_price[0] >= price[0]:
        verdict.errors.append(
            _invalid("sale_price", item["sale_price"], f'must be lower than price "{item["price"]}"')
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
