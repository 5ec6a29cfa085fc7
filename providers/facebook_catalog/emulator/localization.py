"""Meta's rules for localized_items_batch requests, as the emulator applies them.

From Meta's pages (Send Localized Items Batch; Localized Catalog: Supported Fields): a request is
``{"method": "CREATE" | "UPDATE" | "DELETE", "localization": {"type", "value"}, "data": {"id", ...}}``;
``type`` is LANGUAGE (value ``en_XX``, ``ar_AR``), COUNTRY (``AE``) or LANGUAGE_AND_COUNTRY
(``en_XX|AE``); price, sale_price, unit_price, base_price, status and availability only per
country; the item named by ``data.id`` must exist (the endpoint never creates items).

The emulator keeps its own statement of these rules (it depends on nothing in the package), so a
provider bug in feed/localization.py is caught here rather than mirrored.
"""

from __future__ import annotations

import re
from typing import Any

LANGUAGE = "LANGUAGE"
COUNTRY = "COUNTRY"
LANGUAGE_AND_COUNTRY = "LANGUAGE_AND_COUNTRY"
LOCALIZATION_TYPES: tuple[str, ...] = (LANGUAGE, COUNTRY, LANGUAGE_AND_COUNTRY)
METHODS: tuple[str, ...] = ("CREATE", "UPDATE", "DELETE")
MAX_REQUESTS_PER_CALL = 1000
#: Product fields Meta localizes (Localized Catalog: Supported Fields, products).
LOCALIZABLE_FIELDS: frozenset[str] = frozenset(
    {
        "title",
        "description",
        "short_description",
        "availability",
        "link",
        "brand",
        "price",
        "sale_price",
        "sale_price_effective_date",
        "unit_price",
        "base_price",
        "status",
        "color",
        "size",
        "material",
        "pattern",
        "additional_variant_attribute",
        "custom_label_0",
        "custom_label_1",
        "custom_label_2",
        "custom_label_3",
        "custom_label_4",
        "image",
        "applink",
    }
)
COUNTRY_ONLY_FIELDS: frozenset[str] = frozenset(
    {"price", "sale_price", "unit_price", "base_price", "status", "availability"}
)
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
_LANGUAGE_VALUE = re.compile(r"([a-z]{2})_([A-Z]{2})")


def allowed_fields(localization_type: str) -> frozenset[str]:
    if localization_type == COUNTRY:
        return LOCALIZABLE_FIELDS
    return LOCALIZABLE_FIELDS - COUNTRY_ONLY_FIELDS


def localization_problem(localization: Any) -> str | None:
    """Why a request's ``localization`` is not one Meta takes, or None (the emulator's rule)."""
    if not isinstance(localization, dict):
        return "localization must be an object with 'type' and 'value'"
    kind, value = localization.get("type"), localization.get("value")
    if kind not in LOCALIZATION_TYPES:
        return f"localization type {kind!r} is not one of {', '.join(LOCALIZATION_TYPES)}"
    if not isinstance(value, str) or not value:
        return "localization value is required"
    if kind == COUNTRY:
        return None if value in COUNTRY_CODES else f"'{value}' is not an ISO 3166-1 alpha-2 country code"
    if kind == LANGUAGE:
        return _language_problem(value)
    language, _, country = value.partition("|")
    problem = _language_problem(language)
    if problem is not None:
        return problem
    if country not in COUNTRY_CODES:
        return f"LANGUAGE_AND_COUNTRY value '{value}' must be '<language>|<country>', such as 'en_XX|US'"
    return None


def _language_problem(value: str) -> str | None:
    found = _LANGUAGE_VALUE.fullmatch(value)
    if found is None or found.group(1) not in LANGUAGE_CODES:
        return f"'{value}' is not a language code such as 'en_XX' or 'ar_AR'"
    if found.group(2) != "XX" and found.group(2) not in COUNTRY_CODES:
        return f"'{value}' is not a language code such as 'en_XX' or 'ar_AR'"
    return None


def disallowed_fields(localization_type: str, names: Any) -> list[str]:
    """The names of ``names`` (other than ``id``) that Meta does not take in an override of the type."""
    allowed = allowed_fields(localization_type)
    return [name for name in names if name != "id" and name not in allowed]
