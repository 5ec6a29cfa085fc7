"""Keep the last occurrence of each product id."""

from __future__ import annotations

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
    """For rows identified by hashed ``keys`` (in reading order), flag the rows to keep: the last
    occurrence of each item. ``same_item(i, j)`` confirms that rows i and j with equal hashes
    really are the same id, so a hash collision never drops a product.

    Memory is one byte a row plus a transient index, not a dict of every id, so it serves
    snapshots of millions of rows.
    """
    keep = bytearray(len(keys))
    order = sorted(range(len(keys)), key=keys.__getitem__)  # stable: equal keys keep row order
    group: list[int] = []
    for position, row in enumerate(order):
        group.append(row)
        if position + 1 < len(order) and keys[order[position + 1]] == keys[row]:
            continue
        if len(group) == 1:
            keep[row] = 1
        else:
            _keep_last_per_id(group, same_item, keep)
        group = []
    return keep


def _keep_last_per_id(rows: list[int], same_item: Callable[[int, int], bool], keep: bytearray) -> None:
    """Rows sharing a hash, in row order: keep the last row of each distinct id among them."""
    remaining = rows
    while remaining:
        last = remaining[-1]
        keep[last] = 1
        remaining = [r for r in remaining[:-1] if not same_item(r, last)]
