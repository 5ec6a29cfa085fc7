"""Meta's product field rules: turn one raw row into the values Meta accepts, or say why not.

Decisions where Meta leaves room (documented in feed/README.md as well):

- Text is trimmed and NFC-normalized; tabs become spaces; other control characters are removed
  (with a warning). Line breaks are kept in ``description`` and ``rich_text_description``
  (as ``\\n``) and become a space in every other field.
- A value that is only ``NULL``, ``None``, ``\\N``, ``NaN`` or ``undefined`` (any case) is what a
  database export writes for a missing value, so it counts as empty.
- Prices are ``<number> <ISO 4217 code>``; the number keeps the decimals it was given
  ("25000.00 iqd" -> "25000.00 IQD"). ``.`` is the only decimal point. A comma is always rejected:
  "25,000" may mean 25000 or 25.000 depending on the writer's locale, and guessing wrong
  misprices a product by a factor of 1,000. Arabic-Indic digits are read as digits.
- ``additional_image_link`` is a comma-separated list of at most 20 URLs and is sent the same way.
"""

from __future__ import annotations

import dataclasses
import re
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from functools import lru_cache
from typing import NamedTuple
from urllib.parse import urlsplit

from facebook_catalog.feed.currencies import ISO_4217_CODES
from facebook_catalog.feed.fields import (
    AGE_GROUP_VALUES,
    AVAILABILITY_VALUES,
    CONDITION_VALUES,
    GENDER_VALUES,
    META_FIELDS,
    REQUIRED_COLUMNS,
    STATUS_VALUES,
    enum_key,
    field_for_column,
)
from facebook_catalog.feed.localization import Localization, Override, OverrideColumn
from facebook_catalog.feed.model import FeedOptions, display_value


@dataclass(frozen=True)
class FieldProblem:
    """A problem with one field of a row. Errors reject the row; warnings do not."""

    field: str
    value: str
    reason: str
    is_warning: bool = False


class NormalizedFields(NamedTuple):
    """``fields`` is None exactly when some problem is an error."""

    fields: dict[str, str] | None
    problems: list[FieldProblem]


class _Invalid(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


DEFAULT_OPTIONS = FeedOptions()

MAX_LENGTH: dict[str, int] = {"id": 100, "title": 200, "description": 9999, "brand": 100}
# Meta's items_batch table gives lower limits than the product reference; beyond these Meta may
# cut the text, so they are warnings.
WARN_LENGTH: dict[str, int] = {"title": 100, "description": 5000}
# No field Meta documents takes more than description's 9,999 characters.
DEFAULT_MAX_LENGTH = 9999
MAX_ADDITIONAL_IMAGES = 20
MAX_PRICE_DIGITS = 15

_MULTILINE_FIELDS = frozenset({"description", "rich_text_description"})
_NULL_LIKE = frozenset({"null", "none", "\\n", "nan", "undefined"})
_NULL_LIKE_MAX_LENGTH = max(len(word) for word in _NULL_LIKE)

_CONTROL_CHARS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_LINE_BREAK = re.compile(r"[ \t]*\n\s*")
_SURROGATES = re.compile("[\ud800-\udfff]")


def _clean_text(value: str, multiline: bool) -> tuple[str, int]:
    """The trimmed, NFC-normalized text and the number of control characters removed."""
    if value.isprintable():
        # No control character, line break or lone surrogate (none is printable): only NFC is left.
        if value.isascii() or unicodedata.is_normalized("NFC", value):
            return value.strip(), 0
        return unicodedata.normalize("NFC", value).strip(), 0
    text = value
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    if "\t" in text:
        text = text.replace("\t", " ")
    text, removed = _CONTROL_CHARS.subn("", text)
    if not multiline and "\n" in text:
        text = _LINE_BREAK.sub(" ", text)
    if not text.isascii():
        if _SURROGATES.search(text):
            raise _Invalid(
                "contains bytes that are not valid UTF-8; the file seems to be in another encoding "
                "(e.g. Latin-1 or Windows-1252): save it as UTF-8"
            )
        if not unicodedata.is_normalized("NFC", text):
            text = unicodedata.normalize("NFC", text)
    return text.strip(), removed


# --- prices -----------------------------------------------------------------------------------

_ARABIC_INDIC = str.maketrans(
    {
        **{chr(0x0660 + digit): str(digit) for digit in range(10)},
        **{chr(0x06F0 + digit): str(digit) for digit in range(10)},
        "\u066b": ".",  # Arabic decimal separator
        "\u066c": ",",  # Arabic thousands separator
    }
)
_PRICE = re.compile(r"([A-Za-z]{3})? ?([0-9]+(?:\.[0-9]+)?) ?([A-Za-z]{3})?")
_NUMBER = re.compile(r"[0-9]+(?:\.[0-9]+)?")
_THOUSANDS_LOOKALIKE = re.compile(r"[0-9]{1,3}\.[0-9]{3}")
_GROUPED_DIGITS = re.compile(r"[0-9] [0-9]{3}(?![0-9])")
_NEGATIVE = re.compile(r"(?:^|[^0-9A-Za-z])-\s*[0-9]|\([0-9.]+\)")
_SYMBOL_CODES: dict[str, str] = {
    "$": "USD",
    "€": "EUR",
    "£": "GBP",
    "¥": "JPY",
    "₹": "INR",
    "₺": "TRY",
    "₽": "RUB",
    "₩": "KRW",
    "₪": "ILS",
    "₫": "VND",
    "₦": "NGN",
    "﷼": "SAR",
}
# Currency abbreviations written in Arabic script, as shops in the region print them.
_ARABIC_CURRENCY_CODES: dict[str, str] = {
    "د.ع": "IQD",
    "ع.د": "IQD",
    "دينار": "IQD",
    "د.إ": "AED",
    "ر.س": "SAR",
    "د.ك": "KWD",
    "ج.م": "EGP",
    "د.أ": "JOD",
}
_PRICE_FORMAT = "'<number> <ISO 4217 code>', e.g. '25000 IQD' or '9.99 USD'"


class Price(NamedTuple):
    amount: Decimal
    currency: str
    text: str


def parse_price(value: str, default_currency: str) -> Price:
    """Parse ``value`` as a Meta price; raises ValueError with a human reason."""
    try:
        return _parse_price(value, default_currency)
    except _Invalid as exc:
        raise ValueError(exc.reason) from None


def _parse_price(value: str, default_currency: str) -> Price:
    text = " ".join(value.split())
    if not text.isascii():
        text = text.translate(_ARABIC_INDIC)
    match = _PRICE.fullmatch(text)
    if match is None:
        raise _Invalid(_explain_bad_price(text))
    code_before, number, code_after = match.groups()
    if code_before and code_after:
        raise _Invalid(f"has two currency codes; expected {_PRICE_FORMAT}")
    code = (code_before or code_after or default_currency).upper()
    if code not in ISO_4217_CODES:
        raise _Invalid(f"unknown currency code '{code}' (not an ISO 4217 code); expected {_PRICE_FORMAT}")
    if len(number.replace(".", "")) > MAX_PRICE_DIGITS:
        raise _Invalid(f"has more than {MAX_PRICE_DIGITS} digits; this is not a plausible price")
    amount = Decimal(number)
    if amount == 0:
        raise _Invalid("is zero; a price must be greater than zero")
    return Price(amount, code, f"{number} {code}")


def _example(text: str, code: str) -> str:
    number = _NUMBER.search(text.replace(",", ""))
    return f"'{number.group() if number else '25000'} {code}'"


def _explain_bad_price(text: str) -> str:
    for symbol, code in _SYMBOL_CODES.items():
        if symbol in text:
            return (
                f"currency symbols such as '{symbol}' are not accepted; write the ISO 4217 code "
                f"instead, e.g. {_example(text, code)}"
            )
    for word, code in _ARABIC_CURRENCY_CODES.items():
        if word in text:
            return f"the currency '{word}' must be written as its ISO 4217 code, e.g. {_example(text, code)}"
    if any(unicodedata.category(char) == "Sc" for char in text):
        return f"currency symbols are not accepted; expected {_PRICE_FORMAT}"
    if _NEGATIVE.search(text):
        return "is negative; a price must be greater than zero"
    if "," in text and any(char.isdigit() for char in text):
        return (
            "contains ',': thousands separators and decimal commas are ambiguous ('25,000' may mean "
            "25000 or 25.000), so write the plain number with '.' as decimal point, e.g. "
            f"{_example(text, 'IQD')}"
        )
    if _GROUPED_DIGITS.search(text):
        return (
            "has digits grouped with spaces; write the plain number without separators, e.g. "
            f"{_example(text.replace(' ', ''), 'IQD')}"
        )
    if text.count(".") > 1 and any(char.isdigit() for char in text):
        return f"has more than one '.'; thousands separators are not accepted; expected {_PRICE_FORMAT}"
    return f"is not a price; expected {_PRICE_FORMAT}"


_PRICE_COMMON = re.compile(r"([0-9]{1,15})(\.[0-9]+)? ([A-Z]{3})")


def _price_rule(text: str, options: FeedOptions, warnings: list[str]) -> str:
    common = _PRICE_COMMON.fullmatch(text)
    if common is not None:
        # The shape nearly every row has ("25000 IQD", "9.99 USD"): no reformatting needed.
        whole, fraction, code = common.groups()
        digits = len(whole) + (len(fraction) - 1 if fraction else 0)
        looks_grouped = fraction is not None and len(fraction) == 4 and len(whole) <= 3
        if code in ISO_4217_CODES and whole.strip("0") and digits <= MAX_PRICE_DIGITS and not looks_grouped:
            return text
    price = _parse_price(text, options.default_currency)
    number = price.text.split(" ", 1)[0]
    if _THOUSANDS_LOOKALIKE.fullmatch(number):
        warnings.append(
            f"'.' is the decimal point, so this is {price.amount.normalize():f} {price.currency}; "
            f"if a thousands separator was meant, write {number.replace('.', '')}"
        )
    return price.text


# --- URLs -------------------------------------------------------------------------------------

_URL_EXAMPLE = "an absolute http(s) URL such as https://example.com/item.jpg"
_WHITESPACE = re.compile(r"\s")


def _url_problem(text: str) -> str | None:
    """Why ``text`` is not an absolute http(s) URL, or None when it is one."""
    try:
        parts = urlsplit(text)
    except ValueError as exc:
        return f"is not a valid URL ({exc})"
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        if not scheme:
            if text.startswith("//"):
                return f"is protocol-relative (no 'https:'); Meta needs {_URL_EXAMPLE}"
            if text.startswith(("/", "./", "../")):
                return f"is a relative URL; Meta needs {_URL_EXAMPLE}"
            first = text.split("/", 1)[0]
            if "." in first and not _WHITESPACE.search(first):
                return f"has no scheme; write it as https://{display_value(text, 60)}"
            return f"is not a URL; Meta needs {_URL_EXAMPLE}"
        if scheme == "javascript":
            return f"is a javascript: URL, which is never accepted; Meta needs {_URL_EXAMPLE}"
        if len(scheme) == 1:
            return f"looks like a local file path; Meta needs {_URL_EXAMPLE}"
        return f"has the scheme '{scheme}:'; Meta needs {_URL_EXAMPLE}"
    space = _WHITESPACE.search(text)
    if space is not None:
        return (
            f"contains a space (at character {space.start() + 1}); URLs cannot contain spaces, "
            "encode them as %20"
        )
    if not parts.hostname:
        return f"has no host; Meta needs {_URL_EXAMPLE}"
    try:
        parts.port  # noqa: B018 - property access validates the port
    except ValueError:
        return "has an invalid port number"
    return None


# An http(s) URL with a plain host name, no port and no whitespace: nearly every row's links.
_PLAIN_URL = re.compile(r"[Hh][Tt][Tt][Pp][Ss]?://[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*(?:[/?#]\S*)?")


def _url_rule(text: str, options: FeedOptions, warnings: list[str]) -> str:
    if _PLAIN_URL.fullmatch(text) is not None:
        return text
    problem = _url_problem(text)
    if problem is not None:
        raise _Invalid(problem)
    return text


def _url_list_rule(text: str, options: FeedOptions, warnings: list[str]) -> str:
    urls = [url.strip() for url in text.split(",") if url.strip()]
    if len(urls) > MAX_ADDITIONAL_IMAGES:
        raise _Invalid(f"has {len(urls)} URLs; Meta accepts at most {MAX_ADDITIONAL_IMAGES}")
    for position, url in enumerate(urls, start=1):
        problem = _url_problem(url)
        if problem is not None:
            raise _Invalid(f"URL {position} '{display_value(url, 60)}' {problem}")
    return ",".join(urls)


# --- enumerations, counts, dates --------------------------------------------------------------


def _enum_rule(values: dict[str, str], noun: str) -> Callable[[str, FeedOptions, list[str]], str]:
    accepted = ", ".join(f"'{value}'" for value in dict.fromkeys(values.values()))

    # Spellings seen before, so "In-Stock" is worked out once per process, not once per row.
    known: dict[str, str] = dict(zip(values.values(), values.values(), strict=True))

    def rule(text: str, options: FeedOptions, warnings: list[str]) -> str:
        found = known.get(text)
        if found is not None:
            return found
        found = values.get(enum_key(text))
        if found is None:
            raise _Invalid(f"is not a valid {noun}; Meta accepts {accepted}")
        if len(known) < 1000:
            known[text] = found
        return found

    return rule


_COUNT = re.compile(r"([0-9]+)(?:\.0+)?")


def _count_rule(text: str, options: FeedOptions, warnings: list[str]) -> str:
    match = _COUNT.fullmatch(text)
    if match is None:
        raise _Invalid("must be a whole number of 0 or more")
    return str(int(match.group(1)))


_DATE_TIME = re.compile(r"([0-9]{4}-[0-9]{2}-[0-9]{2})(?:T[0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]+)?)?)?")
_TIME_ZONE = re.compile(r"(?:Z|[+-][0-9]{2}:?[0-9]{2})?")


def _date_range_rule(text: str, options: FeedOptions, warnings: list[str]) -> str:
    expected = "an ISO 8601 interval such as '2025-01-01T00:00+03:00/2025-01-31T23:59+03:00'"
    parts = text.split("/")
    if len(parts) != 2:
        raise _Invalid(f"must be {expected}")
    days: list[date] = []
    for part in parts:
        match = _DATE_TIME.match(part)
        if match is None or not _TIME_ZONE.fullmatch(part[match.end() :]):
            raise _Invalid(f"must be {expected}")
        try:
            days.append(date.fromisoformat(match.group(1)))
        except ValueError:
            raise _Invalid(f"has an impossible date '{match.group(1)}'") from None
    if days[1] < days[0]:
        raise _Invalid("ends before it starts")
    return text


def _text_rule(text: str, options: FeedOptions, warnings: list[str]) -> str:
    return text


_Rule = Callable[[str, FeedOptions, list[str]], str]

_RULES: dict[str, _Rule] = {
    "price": _price_rule,
    "sale_price": _price_rule,
    "link": _url_rule,
    "image_link": _url_rule,
    "mobile_link": _url_rule,
    "additional_image_link": _url_list_rule,
    "availability": _enum_rule(AVAILABILITY_VALUES, "availability"),
    "condition": _enum_rule(CONDITION_VALUES, "condition"),
    "status": _enum_rule(STATUS_VALUES, "status"),
    "gender": _enum_rule(GENDER_VALUES, "gender"),
    "age_group": _enum_rule(AGE_GROUP_VALUES, "age group"),
    "quantity_to_sell_on_facebook": _count_rule,
    "inventory": _count_rule,
    "sale_price_effective_date": _date_range_rule,
}


# --- the row ----------------------------------------------------------------------------------


def normalize_fields(raw: Mapping[str, object], options: FeedOptions = DEFAULT_OPTIONS) -> NormalizedFields:
    """Apply Meta's rules to one row given as a mapping of column name to value.

    Column names are matched like CSV headers (case, spaces, '-' and '_' do not matter); keys that
    are not Meta fields (a database's ``updated_at``, Airbyte's ``_airbyte_*``) are ignored.
    ``None`` counts as missing; other non-string values (numbers, Decimals) are read as text.
    """
    values: dict[str, str] = {}
    names: dict[str, str] = {}
    problems: list[FieldProblem] = []
    for key, value in raw.items():
        field = field_for_column(key)
        if field is None:
            continue
        if field in values:
            problems.append(FieldProblem(field, "", f"is given twice, as '{names[field]}' and '{key}'"))
            continue
        names[field] = key
        values[field] = "" if value is None else value if isinstance(value, str) else str(value)
    result = normalize_values(values, options)
    if problems:
        return NormalizedFields(None, problems + result.problems)
    return result


class _FieldRule(NamedTuple):
    required: bool
    multiline: bool
    max_length: int
    warn_length: int  # 0: no soft limit
    check: _Rule | None


_TEXT_FIELD = _FieldRule(False, False, DEFAULT_MAX_LENGTH, 0, None)
_FIELD_RULES: dict[str, _FieldRule] = {
    field: _FieldRule(
        required=field in REQUIRED_COLUMNS,
        multiline=field in _MULTILINE_FIELDS,
        max_length=MAX_LENGTH.get(field, DEFAULT_MAX_LENGTH),
        warn_length=WARN_LENGTH.get(field, 0),
        check=_RULES.get(field),
    )
    for field in META_FIELDS
}
_NULL_LIKE_FIRST = frozenset(word[0] for word in _NULL_LIKE) | frozenset(
    word[0].upper() for word in _NULL_LIKE
)


def normalized_id(raw: str) -> str | None:
    """The id normalize_values gives a row whose id cell is ``raw``, or None when that cell alone
    rejects the row. The same cleaning as normalize_row's (which inlines it for speed); the id
    has no rule of its own, and the length and NULL checks only reject."""
    if raw.isascii() and raw.isprintable():
        return raw.strip() or None
    try:
        return _clean_text(raw, multiline=False)[0] or None
    except _Invalid:
        return None


# (row index, field, then the field's _FieldRule): one tuple to unpack per value.
_ColumnRule = tuple[int, str, bool, bool, int, int, _Rule | None]


class RowRules:
    """Meta's rules for the fields of one row layout, looked up once so that each row is then
    checked by position: ``columns`` pairs a row's index with the Meta field it holds.

    The CSV reader builds one per file; :func:`normalize_values` one per distinct key order.
    """

    def __init__(self, columns: Sequence[tuple[int, str]], *, optional: bool = False) -> None:
        self.columns: tuple[_ColumnRule, ...] = tuple(
            (index, field, *_FIELD_RULES.get(field, _TEXT_FIELD)) for index, field in columns
        )
        if optional:  # an override's fields: each may be empty, none is filled in
            self.columns = tuple((c[0], c[1], False, *c[3:]) for c in self.columns)
        given = {field: index for index, field in columns}
        self.missing = () if optional else tuple(field for field in REQUIRED_COLUMNS if field not in given)
        self.fill_condition = not optional
        self.sale_price_index = given.get("sale_price")


@lru_cache(maxsize=64)
def _rules_for(fields: tuple[str, ...]) -> RowRules:
    return RowRules(tuple(enumerate(fields)))


def normalize_values(values: Mapping[str, str], options: FeedOptions = DEFAULT_OPTIONS) -> NormalizedFields:
    """Apply Meta's rules to values already keyed by Meta field name."""
    return normalize_row(tuple(values.values()), _rules_for(tuple(values)), options)


def normalize_row(
    row: Sequence[str], rules: RowRules, options: FeedOptions = DEFAULT_OPTIONS
) -> NormalizedFields:
    """Apply Meta's rules to one row of values laid out as ``rules`` says (the CSV reader's path)."""
    fields: dict[str, str] = {}
    problems: list[FieldProblem] = []
    failed: set[str] = set()
    notes: list[str] = []
    for index, field, required, multiline, max_length, warn_length, check in rules.columns:
        raw = row[index]
        try:
            # Most values are plain printable ASCII: no cleaning beyond the trim. normalized_id
            # repeats these two steps for the id: keep them alike.
            if raw.isascii() and raw.isprintable():
                text = raw.strip()
            else:
                text, removed = _clean_text(raw, multiline)
                if removed:
                    problems.append(
                        FieldProblem(
                            field,
                            display_value(raw),
                            f"{removed} control character{'s' if removed > 1 else ''} removed",
                            is_warning=True,
                        )
                    )
            if not text:
                if required:
                    raise _Invalid("is empty; Meta requires a value")
                continue
            length = len(text)
            if length <= _NULL_LIKE_MAX_LENGTH and text[0] in _NULL_LIKE_FIRST and text.lower() in _NULL_LIKE:
                if required:
                    raise _Invalid(f"is '{text}', which reads as a database NULL; Meta requires a value")
                continue
            if length > max_length:
                raise _Invalid(f"is {length:,} characters long; Meta's limit is {max_length:,}")
            if warn_length and length > warn_length:
                problems.append(
                    FieldProblem(
                        field,
                        display_value(text),
                        f"is {length:,} characters long; Meta accepts up to {max_length:,} but may "
                        f"cut it to {warn_length:,} in some places",
                        is_warning=True,
                    )
                )
            if check is not None:
                text = check(text, options, notes)
                if notes:
                    problems.extend(
                        FieldProblem(field, display_value(raw), note, is_warning=True) for note in notes
                    )
                    notes.clear()
            fields[field] = text
        except _Invalid as exc:
            failed.add(field)
            problems.append(FieldProblem(field, display_value(raw), exc.reason))

    for field in rules.missing:
        failed.add(field)
        problems.append(FieldProblem(field, "", "is missing; Meta requires it"))
    if rules.fill_condition and "condition" not in fields and "condition" not in failed:
        fields["condition"] = options.default_condition
    if "sale_price" in fields and "price" in fields:
        reason = _sale_price_problem(fields["sale_price"], fields["price"])
        if reason is not None:
            failed.add("sale_price")
            raw_sale_price = "" if rules.sale_price_index is None else row[rules.sale_price_index]
            problems.append(FieldProblem("sale_price", display_value(raw_sale_price), reason))
    return NormalizedFields(None if failed else fields, problems)


class OverrideRules:
    """Meta's rules for the override columns of one layout (feed/localization.py), grouped by
    localization: the values of each are checked like the base fields, all optional."""

    def __init__(self, overrides: Sequence[tuple[int, OverrideColumn]]) -> None:
        grouped: dict[Localization, list[tuple[int, OverrideColumn]]] = {}
        for index, column in overrides:
            grouped.setdefault(column.localization, []).append((index, column))
        self.groups = tuple(
            (
                localization,
                RowRules([(index, column.field) for index, column in columns], optional=True),
                {column.field: column.label for _, column in columns},
            )
            for localization, columns in sorted(grouped.items())
        )
        #: Row indexes of the override columns (for typed records, whose values become text).
        self.indexes = tuple(index for index, _ in overrides)

    def apply(
        self, row: Sequence[str], options: FeedOptions = DEFAULT_OPTIONS
    ) -> tuple[tuple[Override, ...], list[FieldProblem]]:
        """The row's overrides (a localization whose cells are all empty has none) and the
        problems, each named by its column's label (``title_en``)."""
        found: list[Override] = []
        problems: list[FieldProblem] = []
        for localization, rules, labels in self.groups:
            fields, group_problems = normalize_row(row, rules, options)
            problems.extend(
                dataclasses.replace(problem, field=labels[problem.field]) for problem in group_problems
            )
            if fields:
                found.append(Override(localization, fields))
        return tuple(found), problems


def _sale_price_problem(sale_text: str, price_text: str) -> str | None:
    sale_amount, sale_currency = sale_text.split(" ")
    amount, currency = price_text.split(" ")
    if sale_currency != currency:
        return f"is in {sale_currency} but price is in {currency}; both must use the same currency"
    if Decimal(sale_amount) >= Decimal(amount):
        return f"must be lower than price ({price_text})"
    return None
