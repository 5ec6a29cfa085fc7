"""Localized overrides in a feed: a second language, and country prices and availability.

The base item is the row's plain columns (in the retailer's own language: Arabic for the shop
this was built for). A column named ``<field>_<code>`` carries an override of ``field`` that
goes to Meta through ``localized_items_batch`` (feed/README.md, "Localized overrides"):

* ``<field>_<ll>``: a **language** override; ``ll`` is an ISO 639-1 code in lower case
  (``title_en``, ``description_en``), sent as Meta's language value ``ll_XX`` (``en_XX``).
* ``<field>_<CC>``: a **country** override; ``CC`` is an ISO 3166-1 alpha-2 code in upper case
  (``price_AE``, ``availability_SA``).
* ``<field>_<ll>_<CC>``: a **language and country** override (``link_en_AE``), Meta's value
  ``en_XX|AE``.

Which fields each type takes is Meta's list ("Localized Catalog: Supported Fields"): price,
sale_price, availability and status only per country; title, description, brand and the other
text fields only per language; link and sale_price_effective_date both ways. A column that has
the shape of an override of a field Meta does not localize, or whose code is not an ISO code, is
refused by name (a file error for CSV, a rejection for a typed record), never silently dropped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, NamedTuple

LANGUAGE = "LANGUAGE"
COUNTRY = "COUNTRY"
LANGUAGE_AND_COUNTRY = "LANGUAGE_AND_COUNTRY"
LOCALIZATION_TYPES: tuple[str, ...] = (LANGUAGE, COUNTRY, LANGUAGE_AND_COUNTRY)

#: Fields Meta localizes only per country ("must only be provided in a country feed").
COUNTRY_ONLY_FIELDS: frozenset[str] = frozenset(
    {"price", "sale_price", "unit_price", "base_price", "status", "availability"}
)
#: Meta's localizable product fields (Localized Catalog: Supported Fields, products) that the
#: feed knows; ``image_link`` is not localizable.
LOCALIZABLE_FIELDS: tuple[str, ...] = (
    "title",
    "description",
    "availability",
    "link",
    "brand",
    "price",
    "sale_price",
    "sale_price_effective_date",
    "status",
    "color",
    "size",
    "material",
    "pattern",
    "custom_label_0",
    "custom_label_1",
    "custom_label_2",
    "custom_label_3",
    "custom_label_4",
)
COUNTRY_FIELDS: frozenset[str] = frozenset(
    {"price", "sale_price", "sale_price_effective_date", "availability", "status", "link"}
)
LANGUAGE_FIELDS: frozenset[str] = frozenset(LOCALIZABLE_FIELDS) - COUNTRY_ONLY_FIELDS
FIELDS_BY_TYPE: dict[str, frozenset[str]] = {
    LANGUAGE: LANGUAGE_FIELDS,
    COUNTRY: COUNTRY_FIELDS,
    LANGUAGE_AND_COUNTRY: LANGUAGE_FIELDS,
}

# ISO 3166-1 alpha-2 and ISO 639-1 (2026).
COUNTRY_CODES: frozenset[str] = frozenset(
    """AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR
    BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ EC
    EE EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY HK
    HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN KP KR KW KY KZ LA LB
    LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ
    NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO RS RU
    RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK TL TM TN
    TO TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA ZM ZW""".split()
)
LANGUAGE_CODES: frozenset[str] = frozenset(
    """aa ab ae af ak am an ar as av ay az ba be bg bi bm bn bo br bs ca ce ch co cr cs cu cv cy da
    de dv dz ee el en eo es et eu fa ff fi fj fo fr fy ga gd gl gn gu gv ha he hi ho hr ht hu hy hz
    ia id ie ig ii ik io is it iu ja jv ka kg ki kj kk kl km kn ko kr ks ku kv kw ky la lb lg li ln
    lo lt lu lv mg mh mi mk ml mn mr ms mt my na nb nd ne ng nl nn no nr nv ny oc oj om or os pa pi
    pl ps pt qu rm rn ro ru rw sa sc sd se sg sh si sk sl sm sn so sq sr ss st su sv sw ta te tg th
    ti tk tl tn to tr ts tt tw ty ug uk ur uz ve vi vo wa wo xh yi yo za zh zu""".split()
)
# <field>, then _<ll>, _<CC> or _<ll>_<CC> (also with '-', '.' or ' ' between).
_OVERRIDE_COLUMN = re.compile(r"(.+?)[_\-. ]([A-Za-z]{2})(?:[_\-. ]([A-Za-z]{2}))?")


@dataclass(frozen=True, order=True)
class Localization:
    """One override's ``localization`` as Meta takes it: ``type`` and ``value`` (``en_XX``,
    ``AE``, ``en_XX|AE``)."""

    type: str
    value: str

    @property
    def key(self) -> str:
        """``LANGUAGE|en_XX``: the suffix of the override's ledger key (:func:`override_key`)."""
        return f"{self.type}|{self.value}"

    def to_dict(self) -> dict[str, str]:
        return {"type": self.type, "value": self.value}

    @classmethod
    def from_dict(cls, data: Any) -> Localization:
        return cls(str(data["type"]), str(data["value"]))


class Override(NamedTuple):
    """The override values of one row for one localization (normalized, Meta's field names)."""

    localization: Localization
    fields: dict[str, str]


@dataclass(frozen=True)
class OverrideColumn:
    """A column that carries one field of one localization; ``label`` is its canonical name."""

    field: str
    localization: Localization
    label: str


class OverrideColumnError(ValueError):
    """A column shaped like an override that Meta cannot take; the message says why."""


def override_key(item_id: str, localization: Localization) -> str:
    """The override's own id in the ledger (``<id>|LANGUAGE|en_XX``), kept apart from its item's."""
    return f"{item_id}|{localization.key}"


def split_override_key(key: str) -> tuple[str, Localization]:
    """The item id and localization of an :func:`override_key` (ids may hold ``|`` themselves)."""
    parts = key.rsplit("|", 3)
    if len(parts) == 4 and parts[1] == LANGUAGE_AND_COUNTRY:  # its value holds a '|': en_XX|AE
        return parts[0], Localization(LANGUAGE_AND_COUNTRY, f"{parts[2]}|{parts[3]}")
    item_id, kind, value = key.rsplit("|", 2)
    return item_id, Localization(kind, value)


def meta_language(code: str) -> str:
    """``en`` -> ``en_XX``, Meta's value for a language in any country."""
    return f"{code}_XX"


def override_for_column(name: str, base_field: Any) -> OverrideColumn | None:
    """The override a column stands for; None when it is not shaped like one. ``base_field`` maps
    a column name to its Meta field (feed/fields.py's ``field_for_column``).

    Raises OverrideColumnError when the column names a Meta field with a code that Meta cannot
    take (not localizable, the wrong type, not an ISO code, the wrong case)."""
    found = _OVERRIDE_COLUMN.fullmatch(name.strip())
    if found is None:
        return None
    prefix, first, second = found.groups()
    field = base_field(prefix)
    if field is None:
        return None
    shown = name.strip()
    if field not in LOCALIZABLE_FIELDS:
        raise OverrideColumnError(
            f"column '{shown}' looks like an override of '{field}', which Meta does not localize; "
            f"localizable fields: {', '.join(LOCALIZABLE_FIELDS)}"
        )
    if second is not None:
        localization = _language_and_country(shown, first, second)
    elif first.isupper():
        if first not in COUNTRY_CODES:
            raise OverrideColumnError(
                f"column '{shown}': '{first}' is not an ISO 3166-1 alpha-2 country code "
                "(a country override is <field>_<CC>, such as price_AE)"
            )
        localization = Localization(COUNTRY, first)
    elif first.islower():
        if first not in LANGUAGE_CODES:
            raise OverrideColumnError(
                f"column '{shown}': '{first}' is not an ISO 639-1 language code "
                "(a language override is <field>_<ll>, such as title_en)"
            )
        localization = Localization(LANGUAGE, meta_language(first))
    else:
        raise OverrideColumnError(
            f"column '{shown}': write a language code in lower case (title_en) and a country code in "
            "upper case (price_AE)"
        )
    if field not in FIELDS_BY_TYPE[localization.type]:
        if localization.type == COUNTRY:
            allowed = "per language (e.g. title_en)"
        else:
            allowed = "per country only (e.g. price_AE)"
        raise OverrideColumnError(f"column '{shown}': Meta takes '{field}' overrides {allowed}")
    return OverrideColumn(field, localization, f"{field}_{suffix(localization)}")


def suffix(localization: Localization) -> str:
    """The column suffix of a localization: ``en``, ``AE``, ``en_AE``."""
    if localization.type == COUNTRY:
        return localization.value
    language, _, country = localization.value.partition("|")
    code = language.split("_", 1)[0] if language.endswith("_XX") else language
    return f"{code}_{country}" if country else code


def _language_and_country(shown: str, language: str, country: str) -> Localization:
    if not (language.islower() and language in LANGUAGE_CODES):
        raise OverrideColumnError(
            f"column '{shown}': '{language}' is not an ISO 639-1 language code in lower case "
            "(a language and country override is <field>_<ll>_<CC>, such as link_en_AE)"
        )
    if country == "XX":  # title_en_XX: Meta's own spelling of a language override
        return Localization(LANGUAGE, meta_language(language))
    if not (country.isupper() and country in COUNTRY_CODES):
        raise OverrideColumnError(
            f"column '{shown}': '{country}' is not an ISO 3166-1 alpha-2 country code in upper case "
            "(a language and country override is <field>_<ll>_<CC>, such as link_en_AE)"
        )
    return Localization(LANGUAGE_AND_COUNTRY, f"{meta_language(language)}|{country}")
