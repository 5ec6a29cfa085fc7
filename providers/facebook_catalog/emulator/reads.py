"""Meta's read side of a catalog as the emulator answers it: the ``products`` edge's ``fields``,
``filter``, ``limit`` and cursors, and the ``diagnostics`` edge.

Liberal in what it accepts, like Meta: unknown field names are simply absent from an item, a
filter may use Meta's operators on any field and nest ``and`` / ``or``. Values come back as the
feed sent them (Meta formats some, e.g. ``price`` as "$9.99"; a client comparing should normalize).
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from facebook_catalog.emulator.errors import invalid_parameter
from facebook_catalog.emulator.state import REVIEW_REJECTIONS, ProductRow

#: Meta's default page size of the products edge.
DEFAULT_LIMIT = 25
#: The emulator's largest page (Meta caps pages too; it documents no number for this edge).
MAX_LIMIT = 5000
#: What ``fields`` defaults to, as on Meta.
DEFAULT_FIELDS = ("id",)
#: Meta's read names of feed fields: the products edge says ``name`` for the feed's ``title``.
READ_ALIASES = {"name": "title", "url": "link", "image_url": "image_link"}
FIELD_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
CURSOR_PREFIX = "emu:"

Predicate = Callable[[Mapping[str, Any]], bool]


@dataclass(frozen=True)
class ProductFilter:
    """A parsed ``filter``: the predicate, and the retailer ids it is limited to when it says so."""

    match: Predicate
    retailer_ids: frozenset[str] | None


def parse_fields(text: str | None) -> list[str]:
    """``fields=a,b{sub},c``: the names, in order, each once (sub-selections are ignored)."""
    if not text:
        return list(DEFAULT_FIELDS)
    text = re.sub(r"\{[^{}]*\}", "", text)
    names: list[str] = []
    for raw in text.split(","):
        name = raw.strip()
        if not name:
            continue
        if not FIELD_NAME.fullmatch(name):
            raise invalid_parameter(f'Param fields has an invalid field name "{name}"')
        if name not in names:
            names.append(name)
    return names or list(DEFAULT_FIELDS)


def parse_limit(text: str | None) -> int:
    if text is None or text == "":
        return DEFAULT_LIMIT
    try:
        limit = int(text)
    except ValueError:
        raise invalid_parameter(f'Param limit must be a positive integer, got "{text}"') from None
    if limit < 1:
        raise invalid_parameter(f'Param limit must be a positive integer, got "{text}"')
    return min(limit, MAX_LIMIT)


def encode_cursor(position: int) -> str:
    return base64.urlsafe_b64encode(f"{CURSOR_PREFIX}{position}".encode()).decode().rstrip("=")


def decode_cursor(name: str, text: str | None) -> int | None:
    if not text:
        return None
    try:
        decoded = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()
        if decoded.startswith(CURSOR_PREFIX):
            return int(decoded[len(CURSOR_PREFIX) :])
    except ValueError:  # also binascii.Error and UnicodeDecodeError
        pass
    raise invalid_parameter(f'Param {name} is not a valid cursor: "{text}"')


def parse_filter(text: str | None) -> ProductFilter:
    """Meta's JSON filter, e.g. ``{"retailer_id": {"is_any": ["a", "b"]}}``."""
    if not text:
        return ProductFilter(match=lambda item: True, retailer_ids=None)
    try:
        spec = json.loads(text)
    except ValueError:
        raise invalid_parameter("Param filter must be a JSON-encoded filter object") from None
    if not isinstance(spec, dict):
        raise invalid_parameter("Param filter must be a JSON-encoded filter object")
    return ProductFilter(match=_predicate(spec), retailer_ids=_retailer_ids_of(spec))


def _retailer_ids_of(spec: Mapping[str, Any]) -> frozenset[str] | None:
    """The ids a top-level retailer_id eq / is_any (alone or in an ``and``) limits the filter to."""
    found: frozenset[str] | None = None
    clauses = [spec] + [c for c in spec.get("and", []) if isinstance(c, dict)]
    for clause in clauses:
        condition = clause.get("retailer_id")
        if not isinstance(condition, dict):
            continue
        if "eq" in condition:
            ids = frozenset({str(condition["eq"])})
        elif isinstance(condition.get("is_any"), list):
            ids = frozenset(str(value) for value in condition["is_any"])
        else:
            continue
        found = ids if found is None else found & ids
    return found


def _predicate(spec: Mapping[str, Any]) -> Predicate:
    parts: list[Predicate] = []
    for name, condition in spec.items():
        if name in ("and", "or"):
            if not isinstance(condition, list) or not all(isinstance(c, dict) for c in condition):
                raise invalid_parameter(f'Filter "{name}" must be a list of filter objects')
            parts.append(_combined(all if name == "and" else any, [_predicate(c) for c in condition]))
            continue
        if not isinstance(condition, dict) or not condition:
            raise invalid_parameter(f'Filter on "{name}" must be an object of operators, e.g. {{"eq": "x"}}')
        for operator, operand in condition.items():
            parts.append(_condition(name, str(operator), operand))
    return lambda item: all(part(item) for part in parts)


def _combined(how: Callable[[Iterable[bool]], bool], subs: list[Predicate]) -> Predicate:
    return lambda item: how(sub(item) for sub in subs)


def _condition(name: str, operator: str, operand: Any) -> Predicate:
    field = "id" if name == "retailer_id" else READ_ALIASES.get(name, name)

    def value_of(item: Mapping[str, Any]) -> str | None:
        value = item.get(field)
        return None if value is None else str(value)

    if operator in ("is_any", "is_not_any"):
        if not isinstance(operand, list):
            raise invalid_parameter(f'Filter operator "{operator}" on "{name}" takes a list')
        values = frozenset(str(v) for v in operand)
        wanted = operator == "is_any"
        return lambda item: (value_of(item) in values) == wanted
    text = str(operand)
    lowered = text.lower()
    tests: dict[str, Callable[[str | None], bool]] = {
        "eq": lambda value: value == text,
        "neq": lambda value: value != text,
        "contains": lambda value: value is not None and text in value,
        "not_contains": lambda value: value is None or text not in value,
        "i_contains": lambda value: value is not None and lowered in value.lower(),
        "i_not_contains": lambda value: value is None or lowered not in value.lower(),
        "starts_with": lambda value: value is not None and value.startswith(text),
        "i_starts_with": lambda value: value is not None and value.lower().startswith(lowered),
    }
    test = tests.get(operator)
    if test is None:
        known = ", ".join(sorted([*tests, "is_any", "is_not_any"]))
        raise invalid_parameter(f'Unknown filter operator "{operator}" on "{name}"; known: {known}')
    return lambda item: test(value_of(item))


def product_view(row: ProductRow, fields: list[str], error_priority: str | None) -> dict[str, Any]:
    """One element of the products edge's ``data``: the asked fields the item has."""
    view: dict[str, Any] = {}
    for name in fields:
        if name == "id":
            view["id"] = row.product_id
        elif name == "retailer_id":
            view["retailer_id"] = row.item.get("id")
        elif name == "review_status":
            view["review_status"] = row.review_status
        elif name == "errors":
            errors = row.errors
            if error_priority:
                errors = [e for e in errors if e.get("error_priority") == error_priority]
            view["errors"] = errors
        else:
            value = row.item.get(READ_ALIASES.get(name, name))
            if value is not None:
                view[name] = value
    return view


def diagnostics_data(rejected: Mapping[str, list[str]]) -> list[dict[str, Any]]:
    """The diagnostics edge's ``data``: one group per kind of problem Meta's review found."""
    groups = []
    for reason, retailer_ids in sorted(rejected.items()):
        rejection = REVIEW_REJECTIONS[reason]
        groups.append(
            {
                "type": rejection.diagnostic_type,
                "title": rejection.title,
                "subtitle": rejection.description,
                "severity": "MUST_FIX",
                "affected_entity": "product_item",
                "affected_channels": [],
                "affected_features": [],
                "number_of_affected_items": len(retailer_ids),
                "number_of_affected_entities": len(retailer_ids),
                "diagnostics": [
                    {
                        "type": rejection.error_type,
                        "title": rejection.title,
                        "subtitle": rejection.description,
                        "number_of_affected_items": len(retailer_ids),
                        "sample_affected_items": [{"retailer_id": r} for r in sorted(retailer_ids)[:10]],
                    }
                ],
            }
        )
    return groups
