"""Keep the last occurrence of each product id."""

from __future__ import annotations

from collections.abc import Iterable
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
