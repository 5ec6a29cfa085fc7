"""``fb-catalog validate``: run the feed rules on local files and say what would be rejected.

Nothing is sent anywhere. Exit status: 0 when every row is good, 1 when some rows were rejected,
2 when a file could not be read as a feed at all (2 wins over 1).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator, Sequence
from typing import TextIO

from facebook_catalog.feed.currencies import ISO_4217_CODES
from facebook_catalog.feed.dedupe import LatestById
from facebook_catalog.feed.fields import CONDITION_VALUES, enum_key
from facebook_catalog.feed.model import (
    FeedEvent,
    FeedFileError,
    FeedItem,
    FeedOptions,
    FeedTally,
    FileSummary,
)
from facebook_catalog.feed.reader import read_feed, read_feed_file

EXIT_OK = 0
EXIT_REJECTED_ROWS = 1
EXIT_UNREADABLE_FILE = 2
STDIN_NAME = "-"
STDIN_SOURCE = "<stdin>"


def _currency(value: str) -> str:
    code = value.strip().upper()
    if code not in ISO_4217_CODES:
        raise argparse.ArgumentTypeError(f"{value!r} is not an ISO 4217 currency code (e.g. IQD, USD)")
    return code


def _condition(value: str) -> str:
    condition = CONDITION_VALUES.get(enum_key(value))
    if condition is None:
        raise argparse.ArgumentTypeError(f"{value!r} is not one of {', '.join(CONDITION_VALUES)}")
    return condition


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "files",
        nargs="+",
        metavar="FILE",
        help="feed files (CSV, JSON Lines, Parquet, Avro; gzip or not), in the order they would be synced "
        "(later files win for a repeated id); '-' reads standard input",
    )
    parser.add_argument(
        "--currency",
        default="IQD",
        type=_currency,
        help="ISO 4217 code for prices written without one (default: IQD)",
    )
    parser.add_argument(
        "--condition",
        default="new",
        type=_condition,
        help="condition of products whose row has none: new, refurbished or used (default: new)",
    )


def run_from_args(args: argparse.Namespace) -> int:
    options = FeedOptions(default_currency=args.currency, default_condition=args.condition)
    return validate_files(args.files, options, sys.stdout)


def _print(out: TextIO, text: str) -> None:
    try:
        out.write(text + "\n")
    except UnicodeEncodeError:
        # A terminal that cannot show Arabic or emoji still gets every message, escaped.
        encoding = getattr(out, "encoding", None) or "ascii"
        out.write(text.encode(encoding, "backslashreplace").decode(encoding) + "\n")


def _source_name(path: str) -> str:
    return STDIN_SOURCE if path == STDIN_NAME else path


def _events(path: str, options: FeedOptions) -> Iterator[FeedEvent]:
    if path == STDIN_NAME:
        return read_feed(sys.stdin.buffer, STDIN_SOURCE, options)
    return read_feed_file(path, options=options)


def validate_files(paths: Sequence[str], options: FeedOptions, out: TextIO) -> int:
    """Print every problem of every file, then one count line per file; return the exit status."""
    # id -> (index of the file, line) of the occurrence that would be sent so far.
    latest: LatestById[tuple[int, int]] = LatestById()
    tallies: list[FeedTally] = []
    duplicates = [0] * len(paths)
    errors: list[str | None] = []
    sources = [_source_name(path) for path in paths]
    for index, path in enumerate(paths):
        source = sources[index]
        tally = FeedTally(source)
        tallies.append(tally)
        in_file: LatestById[int] = LatestById()
        error: str | None = None
        try:
            for event in _events(path, options):
                tally.add(event)
                if isinstance(event, FeedItem):
                    earlier = in_file.put(event.id, event.line, event.extracted_at)
                    if earlier is not None:
                        duplicates[index] += 1
                        if not in_file.kept:
                            _print(
                                out,
                                f"{source} line {event.line}: duplicate id '{event.id}': line "
                                f"{in_file.get(event.id)} has a later _airbyte_extracted_at and is the "
                                "one sent",
                            )
                            continue
                        _print(
                            out,
                            f"{source} line {earlier}: duplicate id '{event.id}': replaced by line "
                            f"{event.line}, which is the one sent",
                        )
                else:
                    _print(out, event.message())
        except FeedFileError as exc:
            error = exc.reason
            _print(out, f"{source}: not read as a feed: {exc.reason}")
        except Exception as exc:  # a bug must still end in a message, not a traceback
            error = f"unexpected error: {type(exc).__name__}: {exc}"
            _print(out, f"{source}: {error}")
        errors.append(error)
        if error is not None:
            # A file that cannot be read is not synced at all, so it replaces nothing.
            continue
        for item_id, line in in_file.items():
            earlier_place = latest.put(item_id, (index, line), in_file.extracted_at(item_id))
            if earlier_place is not None:
                if not latest.kept:
                    held_index, held_line = latest.get(item_id) or (index, line)
                    duplicates[index] += 1
                    _print(
                        out,
                        f"{source} line {line}: duplicate id '{item_id}': {sources[held_index]} line "
                        f"{held_line} has a later _airbyte_extracted_at and is the one sent",
                    )
                    continue
                earlier_index, earlier_line = earlier_place
                duplicates[earlier_index] += 1
                _print(
                    out,
                    f"{sources[earlier_index]} line {earlier_line}: duplicate id '{item_id}': replaced by "
                    f"{source} line {line}, which is the one sent",
                )

    summaries = [
        tally.summary(duplicates=duplicate_count, error=error)
        for tally, duplicate_count, error in zip(tallies, duplicates, errors, strict=True)
    ]
    for summary in summaries:
        _print(out, summary.message())
    if len(summaries) > 1:
        _print(out, _total_line(summaries))
    if any(error is not None for error in errors):
        return EXIT_UNREADABLE_FILE
    if any(tally.rejected_rows for tally in tallies):
        return EXIT_REJECTED_ROWS
    return EXIT_OK


def _total_line(summaries: Sequence[FileSummary]) -> str:
    unread = sum(1 for summary in summaries if summary.error is not None)
    total = FileSummary(
        source=f"all {len(summaries)} files",
        rows_read=sum(summary.rows_read for summary in summaries if summary.error is None),
        items=sum(summary.items for summary in summaries if summary.error is None),
        rejected_rows=sum(summary.rejected_rows for summary in summaries if summary.error is None),
        warnings=sum(summary.warnings for summary in summaries if summary.error is None),
        duplicates=sum(summary.duplicates for summary in summaries if summary.error is None),
    ).message()
    return f"{total}; {unread} not read as a feed" if unread else total
