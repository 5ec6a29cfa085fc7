"""Keep the last occurrence of each product id: the newest export of a product is the one to send.

:class:`LatestById` is the rule; :func:`deduplicate` and ``fb-catalog validate`` apply it in
memory. :func:`last_occurrences` is the same rule at any size, for the operator's spool: rows by
hash partition on disk, never a Python object per row.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

from facebook_catalog.feed.model import FeedItem

T = TypeVar("T")


class LatestById(Generic[T]):
    """The latest value per id, in order of each id's last occurrence."""

    def __init__(self) -> None:
        self._latest: dict[str, T] = {}

    def put(self, item_id: str, value: T) -> T | None:
        """Record ``value`` as ``item_id``'s latest; the value it replaces, if any."""
        replaced = self._latest.pop(item_id, None)
        # Popped and re-inserted, so dict order follows the last occurrence.
        self._latest[item_id] = value
        return replaced

    def get(self, item_id: str) -> T | None:
        return self._latest.get(item_id)

    def items(self) -> Iterator[tuple[str, T]]:
        return iter(self._latest.items())

    def values(self) -> list[T]:
        return list(self._latest.values())


@dataclass(frozen=True)
class DeduplicatedItems:
    """``items`` in the order of each id's last occurrence; ``duplicates`` are the occurrences
    that a later one replaced, in the order they were replaced."""

    items: list[FeedItem]
    duplicates: list[FeedItem]


def deduplicate(items: Iterable[FeedItem]) -> DeduplicatedItems:
    """Later rows win, across files too when the items of several files are chained in order:
    the newest export of a product is the one to send."""
    latest: LatestById[FeedItem] = LatestById()
    duplicates: list[FeedItem] = []
    for item in items:
        replaced = latest.put(item.fields["id"], item)
        if replaced is not None:
            duplicates.append(replaced)
    return DeduplicatedItems(latest.values(), duplicates)


def last_occurrences(
    rows: int, partitions: Iterable[Iterable[tuple[int, int]]], same_item: Callable[[int, int], bool]
) -> bytearray:
    """Flag, of ``rows`` rows, the ones to keep: the last occurrence of each item (:class:`LatestById`'s
    rule, at any size).

    Rows come as (row, 64-bit hash of the item's id) pairs, in reading order within a partition,
    and partitioned by hash so that equal hashes share a partition: each partition is resolved
    with a dict of its own, so memory is one partition's, not a Python object per row (the spool
    keeps its partitions on disk). ``same_item(i, j)`` confirms that rows i and j with equal
    hashes really are the same id, so a hash collision never drops a product.
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
                    holders[position] = row
                    break
            else:
                holders.append(row)
        for holders in latest.values():
            for row in holders:
                keep[row] = 1
    return keep
