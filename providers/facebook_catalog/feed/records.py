"""Typed records (JSON Lines, Airbyte's raw ``_airbyte_data``, Avro) through the feed rules.

A record is a mapping of column name to a typed value, as Airbyte's S3 destination writes them.
The rules see text, so each value of a Meta field becomes the text Airbyte's own CSV output gives
it (see feed/README.md, "Typed formats"):

- ``None`` (JSON null, a null Parquet/Avro value) is a missing value, like CSV's ``""``.
- Strings pass as they are; integers as their digits; floats as their shortest round-trip text,
  without ``.0`` when whole, so float8 ``25000.0`` is ``25000`` as in Arrow's cast; Decimals
  keep their scale (NUMERIC(p,2) ``25000.00`` stays ``25000.00``), like CSV text does.
- Booleans become ``true``/``false`` (Airbyte's CSV text); dates and timestamps ISO 8601 text.
- A list is accepted only in ``additional_image_link`` (its URLs, joined with ``,``); any other
  list, and every object, rejects the record naming the field: Meta takes one value per field.

Airbyte's columns (``_airbyte_raw_id``, ``_airbyte_extracted_at``, ``_airbyte_meta``,
``_airbyte_generation_id``) are never sent; records of one file may differ in their keys (JSON
drops absent keys), so a missing required field rejects the record, not the file.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterator, Mapping, Sequence
from decimal import Decimal
from typing import Any

from facebook_catalog.feed.fields import ColumnLayout, layout_columns
from facebook_catalog.feed.localization import Override
from facebook_catalog.feed.model import (
    FeedEvent,
    FeedItem,
    FeedOptions,
    FeedWarning,
    Rejection,
    display_value,
)
from facebook_catalog.feed.normalize import OverrideRules, RowRules, normalize_row, normalized_id

# Past this many, unknown columns are counted in one warning instead of one warning each.
MAX_NAMED_UNKNOWN_COLUMNS = 50
AIRBYTE_DATA_COLUMN = "_airbyte_data"
EXTRACTED_AT_COLUMN = "_airbyte_extracted_at"
_LIST_FIELDS = frozenset({"additional_image_link"})


class UnsupportedValue(Exception):
    """A typed value that has no text form a Meta field can take."""

    def __init__(self, reason: str, shown: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.shown = shown


def float_text(value: float) -> str:
    """``25000.0`` -> ``25000``, ``9.99`` -> ``9.99``: the text Arrow's float-to-string cast gives."""
    if value.is_integer() and abs(value) < 1e16:
        return str(int(value))
    text = repr(value)
    if "e" in text or "E" in text:
        # 1e-05: fixed-point, so the price rule reads a number, not an exponent.
        return format(Decimal(text), "f")
    return text


def _json_text(value: object) -> str:
    try:
        import orjson

        return orjson.dumps(value, default=str).decode()
    except TypeError:
        return str(value)


def value_text(value: object, field: str) -> str:
    """The text of one typed value of the Meta field ``field``; raises UnsupportedValue."""
    kind = type(value)
    if kind is str:
        return value  # type: ignore[return-value]
    if value is None:
        return ""
    if kind is bool:
        return "true" if value else "false"
    if kind is int:
        return str(value)
    if kind is float:
        return float_text(value)  # type: ignore[arg-type]
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, (list, tuple)):
        if field in _LIST_FIELDS and all(isinstance(part, str) for part in value):
            return ",".join(value)
        raise UnsupportedValue(
            "is a list; Meta takes one value here"
            + (" (additional_image_link takes a list of URL strings)" if field in _LIST_FIELDS else ""),
            display_value(_json_text(value)),
        )
    if isinstance(value, Mapping):
        raise UnsupportedValue(
            "is a JSON object; Meta takes one text or number value here (flatten it in the source query)",
            display_value(_json_text(value)),
        )
    if isinstance(value, (bytes, bytearray)):
        raise UnsupportedValue("is binary data; Meta takes text here", display_value(repr(value)))
    if isinstance(value, str):
        return str(value)
    if isinstance(value, int):
        return str(int(value))
    if isinstance(value, float):
        return float_text(float(value))
    raise UnsupportedValue(
        f"is a {kind.__name__}; Meta takes text or a number here", display_value(str(value))
    )


def unknown_column_warnings(layout: ColumnLayout, source: str, line: int) -> Iterator[FeedWarning]:
    """One warning per column that is not a Meta field (the first 50 by name, the rest counted)."""
    for index, name in layout.unknown[:MAX_NAMED_UNKNOWN_COLUMNS]:
        shown = display_value(name.strip(), 60)
        if not shown:
            yield FeedWarning(
                source, line, "", "", f"column {index + 1} has no name; its values are not sent"
            )
        else:
            yield FeedWarning(
                source, line, shown, "", "not a Meta product field: the column's values are not sent"
            )
    hidden = len(layout.unknown) - MAX_NAMED_UNKNOWN_COLUMNS
    if hidden > 0:
        yield FeedWarning(
            source,
            line,
            "",
            "",
            f"{hidden:,} more columns are not Meta product fields; their values are not sent",
        )


class _RecordLayout:
    """What each key of one key order means, looked up once for every record with that order."""

    def __init__(self, keys: Sequence[str]) -> None:
        self.layout = layout_columns(keys)
        self.rules = RowRules(self.layout.fields)
        self.overrides = OverrideRules(self.layout.overrides) if self.layout.overrides else None
        self.id_index = next((index for index, field in self.layout.fields if field == "id"), None)
        self.id_key = None if self.id_index is None else keys[self.id_index]
        self.duplicated = self.layout.duplicated


class RecordRules:
    """Meta's rules for the typed records of one file, with each key order's layout cached and
    each unknown column warned once per file."""

    def __init__(self, source: str, options: FeedOptions) -> None:
        self.source = source
        self.options = options
        self._layouts: dict[tuple[str, ...], _RecordLayout] = {}
        self._warned: set[str] = set()

    def _new_layout(self, keys: tuple[str, ...], line: int) -> tuple[_RecordLayout, list[FeedWarning]]:
        """The layout of a key order not seen before, and warnings for its unknown columns."""
        found = _RecordLayout(keys)
        if len(self._layouts) < 256:
            self._layouts[keys] = found
        warnings: list[FeedWarning] = []
        fresh = [(index, name) for index, name in found.layout.unknown if name not in self._warned]
        if fresh:
            self._warned.update(name for _, name in fresh)
            partial = ColumnLayout(0, (), (), tuple(fresh), (), ())
            warnings.extend(unknown_column_warnings(partial, self.source, line))
        return found, warnings

    def item_id(self, record: Mapping[str, Any]) -> str | None:
        """The normalized id of a record, or None when its id alone rejects it (read_feed_ids)."""
        keys = tuple(record)
        found = self._layouts.get(keys)
        if found is None:
            found = _RecordLayout(keys)
            if len(self._layouts) < 256:
                self._layouts[keys] = found
        if found.id_key is None or found.duplicated:
            return None
        value = record[found.id_key]
        try:
            text = value_text(value, "id")
        except UnsupportedValue:
            return None
        return normalized_id(text)

    def _id_text(self, layout: _RecordLayout, values: list[Any]) -> str:
        if layout.id_index is None:
            return ""
        raw_id = values[layout.id_index]
        return display_value(raw_id.strip() if isinstance(raw_id, str) else str(raw_id), 100)

    def events(
        self, line: int, record: Mapping[str, Any], extracted_at: int | None = None
    ) -> Iterator[FeedEvent]:
        """The events of one record: a FeedItem, or a Rejection per problem, plus warnings."""
        keys = tuple(record)
        layout = self._layouts.get(keys)
        if layout is None:
            layout, warnings = self._new_layout(keys, line)
            yield from warnings
        values = list(record.values())
        if layout.duplicated:
            id_text = self._id_text(layout, values)
            for field, names in layout.duplicated:
                listed = " and ".join(f"'{display_value(name, 40)}'" for name in names)
                yield Rejection(self.source, line, field, "", f"is given twice, as {listed}", id_text)
            return
        if layout.layout.bad_overrides:
            id_text = self._id_text(layout, values)
            for _, name, reason in layout.layout.bad_overrides:
                yield Rejection(self.source, line, display_value(name, 60), "", reason, id_text)
            return
        bad: list[tuple[str, UnsupportedValue]] = []
        for index, field in layout.layout.fields:
            value = values[index]
            if type(value) is not str:
                try:
                    values[index] = value_text(value, field)
                except UnsupportedValue as unsupported:
                    bad.append((field, unsupported))
        for index, column in layout.layout.overrides:
            value = values[index]
            if type(value) is not str:
                try:
                    values[index] = value_text(value, column.field)
                except UnsupportedValue as unsupported:
                    bad.append((column.label, unsupported))
        if bad:
            id_text = self._id_text(layout, values)
            for field, problem_value in bad:
                yield Rejection(self.source, line, field, problem_value.shown, problem_value.reason, id_text)
            return
        fields, problems = normalize_row(values, layout.rules, self.options)
        overrides: tuple[Override, ...] = ()
        if layout.overrides is not None:
            overrides, override_problems = layout.overrides.apply(values, self.options)
            if override_problems:
                problems = problems + override_problems
                if any(not problem.is_warning for problem in override_problems):
                    fields = None
        if problems:
            id_text = self._id_text(layout, values)
            for problem in problems:
                kind = FeedWarning if problem.is_warning else Rejection
                yield kind(self.source, line, problem.field, problem.value, problem.reason, id_text)
        if fields is not None:
            yield FeedItem(self.source, line, fields, extracted_at, overrides)


def extracted_at_ms(value: object) -> int | None:
    """``_airbyte_extracted_at`` as epoch milliseconds: Airbyte writes an integer in CSV and JSON,
    a timestamp in Parquet and Avro; older writers wrote ISO text."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=datetime.timezone.utc)
        return int(value.timestamp() * 1000)
    if isinstance(value, str):
        try:
            return int(value)  # Airbyte's CSV: bare epoch milliseconds
        except ValueError:
            pass
        text = value.strip()
        try:
            parsed = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            return None
        return extracted_at_ms(parsed)
    return None
