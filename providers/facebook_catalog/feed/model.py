"""The values the feed reader produces: items, rejections, warnings, file errors, summaries."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TypeAlias

from facebook_catalog.feed.currencies import ISO_4217_CODES
from facebook_catalog.feed.fields import CONDITION_VALUES, enum_key
from facebook_catalog.feed.localization import Override

DISPLAY_LIMIT = 80

# Shown escaped so that a message stays on one line and undecodable bytes (kept as lone
# surrogates by the reader) never reach a UTF-8 encoder.
_DISPLAY_ESCAPES: dict[int, str] = {
    **{code: f"\\x{code:02x}" for code in (*range(0x20), *range(0x7F, 0xA0))},
    0x09: "\\t",
    0x0A: "\\n",
    0x0D: "\\r",
    **{0xDC00 + byte: f"\\x{byte:02x}" for byte in range(0x80, 0x100)},
}


def display_value(value: str, limit: int = DISPLAY_LIMIT) -> str:
    """A value cut to ``limit`` characters for a message, its full length noted when cut."""
    if len(value) <= limit:
        shown = value
        suffix = ""
    else:
        shown = value[:limit]
        suffix = f"… ({len(value):,} chars)"
    if not (shown.isascii() and shown.isprintable()):
        shown = shown.translate(_DISPLAY_ESCAPES)
    return shown + suffix


@dataclass(frozen=True)
class FeedOptions:
    """How values the feed leaves out are filled in."""

    default_currency: str = "IQD"
    default_condition: str = "new"

    def __post_init__(self) -> None:
        currency = self.default_currency.strip().upper()
        if currency not in ISO_4217_CODES:
            raise ValueError(f"default currency {self.default_currency!r} is not an ISO 4217 code")
        condition = CONDITION_VALUES.get(enum_key(self.default_condition))
        if condition is None:
            raise ValueError(
                f"default condition {self.default_condition!r} is not one of "
                f"{', '.join(CONDITION_VALUES.values())}"
            )
        # Frozen: normalized once here so every row compares against the canonical spelling.
        object.__setattr__(self, "default_currency", currency)
        object.__setattr__(self, "default_condition", condition)


@dataclass(frozen=True)
class FeedItem:
    """A row that passed every rule; ``fields`` holds Meta's field names and normalized values."""

    source: str
    line: int
    # Not part of the hash (a dict cannot be hashed); equality still compares it.
    fields: dict[str, str] = dataclasses.field(hash=False)
    #: ``_airbyte_extracted_at`` in epoch milliseconds when the file has it: among occurrences
    #: of one id, the latest extraction is the one to send (see feed/extraction.py).
    extracted_at: int | None = None
    #: The row's localized overrides (``title_en``, ``price_AE``: feed/localization.py), each
    #: sent through localized_items_batch once Meta holds the item.
    overrides: tuple[Override, ...] = dataclasses.field(default=(), hash=False)

    @property
    def id(self) -> str:
        return self.fields["id"]


def _describe(source: str, line: int, field: str, value: str, reason: str, item_id: str, kind: str) -> str:
    where = f"{source} line {line}: {kind}"
    if field and value:
        text = f"{where}field '{field}' value '{value}': {reason}"
    elif field:
        text = f"{where}field '{field}': {reason}"
    elif value:
        text = f"{where}row '{value}': {reason}"
    else:
        text = f"{where}{reason}"
    return f"{text} (id '{item_id}')" if item_id else text


@dataclass(frozen=True)
class Rejection:
    """One reason a row was not sent. A row with several problems has one Rejection for each.

    ``line`` is the physical line where the row starts (the header is line 1); ``field`` is the
    Meta field ("" when the problem concerns the whole row); ``value`` is already cut for display
    (see display_value); ``item_id`` is the row's id when it could be read.
    """

    source: str
    line: int
    field: str
    value: str
    reason: str
    item_id: str = ""

    def message(self) -> str:
        return _describe(self.source, self.line, self.field, self.value, self.reason, self.item_id, "")


@dataclass(frozen=True)
class FeedWarning:
    """Something worth fixing that did not stop the row (or, on line 1, the file)."""

    source: str
    line: int
    field: str
    value: str
    reason: str
    item_id: str = ""

    def message(self) -> str:
        return _describe(
            self.source, self.line, self.field, self.value, self.reason, self.item_id, "warning: "
        )


FeedEvent: TypeAlias = FeedItem | Rejection | FeedWarning


class FeedFileError(Exception):
    """The file cannot be read as a feed; none of its rows may be treated as synced."""

    def __init__(self, source: str, reason: str) -> None:
        super().__init__(f"{source}: {reason}")
        self.source = source
        self.reason = reason

    def __reduce__(self) -> tuple[type[FeedFileError], tuple[str, str]]:
        # Keeps the exception picklable (Airflow and multiprocessing pickle exceptions).
        return (FeedFileError, (self.source, self.reason))


@dataclass(frozen=True)
class FileSummary:
    """Counts for one file. ``rows_read`` excludes the header and blank lines; ``items`` counts
    rows that passed, including those later superseded as ``duplicates``; ``error`` is the
    FeedFileError reason when the file could not be read as a feed."""

    source: str
    rows_read: int = 0
    items: int = 0
    rejected_rows: int = 0
    warnings: int = 0
    duplicates: int = 0
    error: str | None = None

    def message(self) -> str:
        if self.error is not None:
            return f"{self.source}: not read as a feed: {self.error}"
        return (
            f"{self.source}: {_count(self.rows_read, 'row')} read, {self.items:,} good, "
            f"{self.rejected_rows:,} rejected, {_count(self.duplicates, 'duplicate')}, "
            f"{_count(self.warnings, 'warning')}"
        )


def _count(number: int, noun: str) -> str:
    return f"{number:,} {noun}{'' if number == 1 else 's'}"


class FeedTally:
    """Counts the events of one file as they stream past; ``summary()`` freezes the counts."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.items = 0
        self.rejected_rows = 0
        self.warnings = 0
        self._last_rejected_line = 0

    def add(self, event: FeedEvent) -> None:
        if isinstance(event, FeedItem):
            self.items += 1
        elif isinstance(event, Rejection):
            # A row's rejections arrive together, so a change of line means a new row.
            if event.line != self._last_rejected_line:
                self.rejected_rows += 1
                self._last_rejected_line = event.line
        else:
            self.warnings += 1

    def summary(self, duplicates: int = 0, error: str | None = None) -> FileSummary:
        return FileSummary(
            source=self.source,
            rows_read=self.items + self.rejected_rows,
            items=self.items,
            rejected_rows=self.rejected_rows,
            warnings=self.warnings,
            duplicates=duplicates,
            error=error,
        )
