"""Meta's product fields and how column names in a feed map onto them."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from facebook_catalog.feed.localization import OverrideColumn, OverrideColumnError, override_for_column

# The columns every feed must have; ``condition`` is required by Meta too but is filled from
# FeedOptions.default_condition when the feed has no such column.
REQUIRED_COLUMNS: tuple[str, ...] = (
    "id",
    "title",
    "description",
    "link",
    "image_link",
    "availability",
    "price",
    "brand",
)
REQUIRED_FIELDS: tuple[str, ...] = (*REQUIRED_COLUMNS, "condition")

# Optional PRODUCT_ITEM fields a feed may carry; they are passed on to Meta. A column that is
# neither required nor listed here is reported once per file and its values are not sent.
OPTIONAL_FIELDS: tuple[str, ...] = (
    "condition",
    "sale_price",
    "sale_price_effective_date",
    "item_group_id",
    "status",
    "google_product_category",
    "fb_product_category",
    "gtin",
    "mpn",
    "color",
    "size",
    "gender",
    "age_group",
    "material",
    "pattern",
    "additional_image_link",
    "product_type",
    "rich_text_description",
    "mobile_link",
    "quantity_to_sell_on_facebook",
    "inventory",
    "shipping",
    "shipping_weight",
    "origin_country",
    "importer_name",
    "manufacturer_info",
    "expiration_date",
    "return_policy_info",
    "internal_label",
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
)
META_FIELDS: frozenset[str] = frozenset(REQUIRED_COLUMNS) | frozenset(OPTIONAL_FIELDS)

# Columns the Airbyte S3 destination (and the Airbyte file source) add for their own bookkeeping.
AIRBYTE_COLUMN_PREFIXES: tuple[str, ...] = ("_airbyte_", "_ab_")

# Meta's enumerated values, keyed by the value with case, spaces, "_" and "-" removed so that
# "In-Stock", "in_stock" and "InStock" all find "in stock".
AVAILABILITY_VALUES: dict[str, str] = {
    "instock": "in stock",
    "outofstock": "out of stock",
    "availablefororder": "available for order",
    "preorder": "preorder",
    "discontinued": "discontinued",
    # Spellings other feed formats (Google Merchant, shop exports) use for the same states.
    "available": "in stock",
    "soldout": "out of stock",
    "backorder": "available for order",
}
CONDITION_VALUES: dict[str, str] = {"new": "new", "refurbished": "refurbished", "used": "used"}
STATUS_VALUES: dict[str, str] = {"active": "active", "archived": "archived"}
GENDER_VALUES: dict[str, str] = {"female": "female", "male": "male", "unisex": "unisex"}
AGE_GROUP_VALUES: dict[str, str] = {
    "adult": "adult",
    "allages": "all ages",
    "teen": "teen",
    "kids": "kids",
    "toddler": "toddler",
    "infant": "infant",
    "newborn": "newborn",
}

_VALUE_SEPARATORS = re.compile(r"[\s_\-]+")


def enum_key(value: str) -> str:
    return _VALUE_SEPARATORS.sub("", value.lower())


_SEPARATORS = re.compile(r"[\s_\-.]+")


def _column_key(name: str) -> str:
    # "Image Link", "image-link", "IMAGE_LINK" and "ImageLink" all become "imagelink".
    return _SEPARATORS.sub("", name.strip().lower())


_FIELD_BY_KEY: dict[str, str] = {_column_key(field): field for field in META_FIELDS}


def is_airbyte_column(name: str) -> bool:
    return name.strip().lower().startswith(AIRBYTE_COLUMN_PREFIXES)


@lru_cache(maxsize=4096)
def field_for_column(name: str) -> str | None:
    """The Meta field a column name stands for, or None when it is not a Meta field."""
    if is_airbyte_column(name):
        return None
    return _FIELD_BY_KEY.get(_column_key(name))


@dataclass(frozen=True)
class ColumnLayout:
    """What each column of a header means.

    ``fields`` pairs a column index with the Meta field it feeds; ``unknown`` pairs an index with
    the column's name as written; ``missing`` lists the required columns the header lacks and
    ``duplicated`` the fields more than one column maps onto (as ``(field, names)``).
    ``overrides`` pairs an index with the localized override it carries (feed/localization.py)
    and ``bad_overrides`` holds ``(index, name, reason)`` of columns shaped like an override that
    Meta cannot take.
    """

    width: int
    fields: tuple[tuple[int, str], ...]
    airbyte: tuple[str, ...]
    unknown: tuple[tuple[int, str], ...]
    missing: tuple[str, ...]
    duplicated: tuple[tuple[str, tuple[str, ...]], ...]
    header: tuple[str, ...] = ()
    overrides: tuple[tuple[int, OverrideColumn], ...] = ()
    bad_overrides: tuple[tuple[int, str, str], ...] = ()

    @property
    def id_index(self) -> int:
        """The id column's index (a checked header always has one)."""
        return next(index for index, field in self.fields if field == "id")


def layout_columns(header: Sequence[str]) -> ColumnLayout:
    fields: list[tuple[int, str]] = []
    airbyte: list[str] = []
    unknown: list[tuple[int, str]] = []
    overrides: list[tuple[int, OverrideColumn]] = []
    bad_overrides: list[tuple[int, str, str]] = []
    names_by_field: dict[str, list[str]] = {}
    for index, name in enumerate(header):
        if is_airbyte_column(name):
            airbyte.append(name)
            continue
        field = field_for_column(name)
        if field is None:
            try:
                override = override_for_column(name, field_for_column)
            except OverrideColumnError as problem:
                bad_overrides.append((index, name, str(problem)))
                continue
            if override is None:
                unknown.append((index, name))
            else:
                overrides.append((index, override))
                names_by_field.setdefault(override.label, []).append(name)
            continue
        names_by_field.setdefault(field, []).append(name)
        fields.append((index, field))
    return ColumnLayout(
        width=len(header),
        fields=tuple(fields),
        airbyte=tuple(airbyte),
        unknown=tuple(unknown),
        missing=tuple(field for field in REQUIRED_COLUMNS if field not in names_by_field),
        duplicated=tuple((field, tuple(names)) for field, names in names_by_field.items() if len(names) > 1),
        header=tuple(header),
        overrides=tuple(overrides),
        bad_overrides=tuple(bad_overrides),
    )
