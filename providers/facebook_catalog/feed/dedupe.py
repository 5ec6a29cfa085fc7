"""Keep the last occurrence of each product id: the newest export of a product is the one to send.

:class:`LatestById` is the rule; :func:`deduplicate` and ``fb-catalog validate`` apply it in
memory. :func:`last_occurrences` is the same rule at any size, for the operator's spool: rows by
hash partition on disk, never a Python object per row.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

from facebook_catalog.feed.extraction import supersedes
from facebook_catalog.feed.model import FeedItem

T = TypeVar("T")


class LatestById(Generic[T]):
    """The latest value per id, in order of each id's last occurrence.

    With extraction times (Airbyte's ``_airbyte_extracted_at``), an occurrence read later but
    extracted earlier does not replace the held one: the latest extraction wins, ties by reading
    order (feed/extraction.py)."""

    def __init__(self) -> None:
        self._latest: dict[str, tuple[T, int | None]] = {}
        #: Whether the last put kept its value (False: the held one was extracted later).
        self.kept = True

    def put(self, item_id: str, value: T, extracted_at: int | None = None) -> T | None:
        """Offer ``value`` as ``item_id``'s latest; the occurrence not kept (the value it replaces,
        or ``value`` itself when ``kept`` is False), None for an id's first occurrence."""
        held = self._latest.get(item_id)
        if held is not None and not supersedes(extracted_at, held[1]):
            self.kept = False
            return value
        self.kept = True
        if held is not None:
            # Popped and re-inserted, so dict order follows the last occurrence.
            del self._latest[item_id]
        self._latest[item_id] = (value, extracted_at)
        return None if held is None else held[0]

    def get(self, item_id: str) -> T | None:
        held = self._latest.get(item_id)
        return None if held is None else held[0]

    def extracted_at(self, item_id: str) -> int | None:
        held = self._latest.get(item_id)
        return None if held is None else held[1]

    def items(self) -> Iterator[tuple[str, T]]:
        return ((item_id, held[0]) for item_id, held in self._latest.items())

    def values(self) -> list[T]:
        return [held[0] for held in self._latest.values()]


@dataclass(frozen=True)
class DeduplicatedItems:
    """``items`` in the order of each id's last occurrence; ``duplicates`` are the occurrences
    that another one replaced (a later one, or an earlier-read later extraction), in order."""

    items: list[FeedItem]
    duplicates: list[FeedItem]


def deduplicate(items: Iterable[FeedItem]) -> DeduplicatedItems:
    """Later rows win, across files too when the items of several files are chained in order:
    the newest export of a product is the one to send."""
    latest: LatestById[FeedItem] = LatestById()
    duplicates: list[FeedItem] = []
    for item in items:
        loser = latest.put(item.fields["id"], item, item.extracted_at)
        if loser is not None:
            duplicates.append(loser)
    return DeduplicatedItems(latest.values(), duplicates)


def last_occurrences(
    rows: int,
    partitions: Iterable[Iterable[tuple[int, int]]],
    same_item: Callable[[int, int], bool],
    extracted_at: Callable[[int], int | None] | None = None,
) -> bytearray:
    """Flag, of ``rows`` rows, the ones to keep: the last occurrence of each item (:class:`LatestById`'s
    rule, at any size).

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
