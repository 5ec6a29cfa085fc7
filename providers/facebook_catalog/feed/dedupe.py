"""Keep the last occurrence of each product id."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from facebook_catalog.feed.extraction import supersedes
from facebook_catalog.feed.model import FeedItem


@dataclass(frozen=True)
class DeduplicatedItems:
    """``items`` in the order of each id's last occurrence; ``duplicates`` are the occurrences
    that a later one replaced, in the order they were replaced."""

    items: list[FeedItem]
    duplicates: list[FeedItem]


def deduplicate(items: Iterable[FeedItem]) -> DeduplicatedItems:
    """Later rows win, across files too when the items of several files are chained in order:
    the newest export of a product is the one to send."""
    latest: dict[str, FeedItem] = {}
    duplicates: list[FeedItem] = []
    for item in items:
        key = item.fields["id"]
        replaced = latest.pop(key, None)
        if replaced is not None:
            if not supersedes(item.extracted_at, replaced.extracted_at):
                # An older extraction read later (see feed/extraction.py): the held one stays.
                duplicates.append(item)
                latest[key] = replaced
                continue
            duplicates.append(replaced)
        # Popped and re-inserted, so dict order follows the last occurrence.
        latest[key] = item
    return DeduplicatedItems(list(latest.values()), duplicates)


def last_occurrences(
    rows: int,
    partitions: Iterable[Iterable[tuple[int, int]]],
    same_item: Callable[[int, int], bool],
    extracted_at: Callable[[int], int | None] | None = None,
) -> bytearray:
    """Flag, of ``rows`` rows, the ones to keep: the last occurrence of each item.

    Rows come as (row, 64-bit hash of the item's id) pairs, in reading order within a partition,
    and partitioned by hash so that equal hashes share a partition: each partition is resolved
    with a dict of its own, so memory is one partition's, not a Python object per row (the spool
    keeps its partitions on disk). ``same_item(i, j)`` confirms that rows i and j with equal
    hashes really are the same id, so a hash collision never drops a product. With
    ``extracted_at(row)``, a later row replaces an earlier one only if it ``supersedes`` it (the
    latest Airbyte extraction wins; see feed/extraction.py).
    """
    keep = bytearray(rows)
    for partition in partitions:
        latest: dict[int, list[int]] = {}  # hash -> last row of each distinct id with that hash
        for row, key in partition:
            holders = latest.get(key)
            if holders is None:
                latest[key] = [row]
                continue
            for position, held in enumerate(holders):
                if same_item(held, row):
                    if extracted_at is None or supersedes(extracted_at(row), extracted_at(held)):
                        holders[position] = row
                    break
            else:
                holders.append(row)
        for holders in latest.values():
            for row in holders:
                keep[row] = 1
    return keep
