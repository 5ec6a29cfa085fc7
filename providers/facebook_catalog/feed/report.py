"""The rejected-rows CSV that records, for people, what was not sent and why."""

from __future__ import annotations

import csv
from collections.abc import Iterable
from typing import TextIO

from facebook_catalog.feed.model import Rejection

REJECTED_ROWS_COLUMNS: tuple[str, ...] = ("source", "line", "field", "value", "reason")

# A cell starting with one of these is a formula to Excel and LibreOffice; the report is opened
# there by people, and its values come from untrusted feeds (OWASP "CSV injection").
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _inert(value: str) -> str:
    return "'" + value if value.startswith(_FORMULA_STARTS) else value


def rejected_rows_csv(rejections: Iterable[Rejection], out: TextIO) -> int:
    """Write one CSV line per rejection (header included) to ``out``; return how many.

    Every reason of a row with several problems gets its own line. ``value`` is the value as
    shown in messages (cut to about 80 characters, its full length noted), prefixed with ``'`` when
    a spreadsheet would run it as a formula.
    """
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(REJECTED_ROWS_COLUMNS)
    count = 0
    for rejection in rejections:
        writer.writerow(
            (
                rejection.source,
                rejection.line,
                rejection.field,
                _inert(rejection.value),
                rejection.reason,
            )
        )
        count += 1
    return count
