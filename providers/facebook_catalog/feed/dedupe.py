"""Keep the last occurrence of each product id."""

from __future__ import annotations

from array import array
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

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
            duplicates.append(replaced)
        # Popped and re-inserted, so dict order follows the last occurrence.
        latest[key] = item
    return DeduplicatedItems(list(latest.values()), duplicates)


def last_occurrences(keys: Sequence[int], same_item: Callable[[int, int], bool]) -> bytearray:
    """For rows identified by 64-bit hashed ``keys`` (in reading order), flag the rows to keep:
    the last occurrence of each item. ``same_item(i, j)`` confirms that rows i and j with equal
    hashes really are the same id, so a hash collision never drops a product.

    Rows are first partitioned by the hash's top 8 bits (4 bytes a row), then each partition is
    resolved with a small dict: memory stays a few bytes a row, not a Python object per row, so
    it serves snapshots of millions of rows.
    """
    keep = bytearray(len(keys))
    partitions = [array("I") for _ in range(256)]
    for row, key in enumerate(keys):
        partitions[key >> 56].append(row)
    for index, rows in enumerate(partitions):
        latest: dict[int, list[int]] = {}  # hash -> last row of each distinct id with that hash
        for row in rows:
            key = keys[row]
            holders = latest.get(key)
            if holders is None:
                latest[key] = [row]
                continue
            for position, held in enumerate(holders):
                if same_item(held, row):
                    holders[position] = row
                    break
            else:
                holders.append(row)
        for holders in latest.values():
            for row in holders:
                keep[row] = 1
        partitions[index] = array("I")  # free the partition as soon as it is resolved
    return keep
