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


class RejectedRowsWriter:
    """Writes the rejected-rows CSV one rejection at a time, so a run never holds them all."""

    def __init__(self, out: TextIO) -> None:
        self._writer = csv.writer(out, lineterminator="\n")
        self._writer.writerow(REJECTED_ROWS_COLUMNS)
        self.count = 0

    def write(self, rejection: Rejection) -> None:
        self._writer.writerow(
            (rejection.source, rejection.line, rejection.field, _inert(rejection.value), rejection.reason)
        )
        self.count += 1


def rejected_rows_csv(rejections: Iterable[Rejection], out: TextIO) -> int:
    """Write one CSV line per rejection (header included) to ``out``; return how many.

    Every reason of a row with several problems gets its own line. ``value`` is the value as
    shown in messages (cut to about 80 characters, its full length noted), prefixed with ``'`` when
    a spreadsheet would run it as a formula.
    """
    writer = RejectedRowsWriter(out)
    for rejection in rejections:
        writer.write(rejection)
    return writer.count
