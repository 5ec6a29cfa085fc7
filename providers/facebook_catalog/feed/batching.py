"""Encode item requests and group them into items_batch calls: at most 5,000 records and under
Meta's payload limit.

:func:`encoded_update` is the one request encoder: every item, a feed row's or one given to the
operator, is encoded once, as an ``UPDATE`` (with ``allow_upsert=true``, an upsert; ``DELETE`` is
never sent). A call's size is the exact sum of its encoded parts plus the array's brackets and
commas, so the limit is measured, never estimated. JSON is UTF-8 without ``\\uXXXX`` escapes:
escaping makes Arabic product text about 42% larger on the wire.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from facebook_catalog.feed.change_detection import hash64

MAX_REQUESTS_PER_CALL = 5_000
#: Meta refuses payloads of 28 MB or more; 1% is left for the call's other form fields.
META_PAYLOAD_LIMIT_BYTES = 28_000_000
MAX_PAYLOAD_BYTES = 27_720_000


class RequestTooLargeError(ValueError):
    """A single item request is larger than a whole call may be."""


@dataclass(frozen=True)
class EncodedBatch:
    """One items_batch call's ``requests`` field, encoded, and how many requests it holds."""

    payload: bytes
    request_count: int


def item_fields(item: Mapping[str, Any]) -> dict[str, Any]:
    """A product given to the operator (Meta's field names), checked to have an id."""
    retailer_id = item.get("id")
    if retailer_id is None or str(retailer_id).strip() == "":
        raise ValueError(f"item has no 'id': {dict(item)!r:.200}")
    return dict(item)


# An UPDATE request as orjson writes it with sorted keys: {"data":{...},"method":"UPDATE"}.
_UPDATE_BEFORE_DATA = b'{"data":'
_UPDATE_AFTER_DATA = b',"method":"UPDATE"}'


def encoded_update(fields: Mapping[str, Any]) -> tuple[bytes, int]:
    """One product's UPDATE request, encoded, and its content hash, from a single orjson call:
    the fields' JSON is hashed (exactly as :func:`~facebook_catalog.feed.change_detection.content_hash`
    does) and wrapped into the request.

    The join also gives the request bytes of its own size: orjson hands back its whole working
    buffer (4 KiB for a typical product), and a call's 5,000 requests wait in memory until they
    are joined into its payload.
    """
    data = orjson.dumps(fields, option=orjson.OPT_SORT_KEYS)
    return b"".join((_UPDATE_BEFORE_DATA, data, _UPDATE_AFTER_DATA)), hash64(data)


#: Meta's limit for localized_items_batch calls (its guide: "The batch size limit is 1000").
MAX_LOCALIZED_REQUESTS_PER_CALL = 1_000
# A localized request as orjson writes it with sorted keys: {"data":..,"localization":..,"method":..}.
LOCALIZED_CREATE_END = b',"method":"CREATE"}'
LOCALIZED_UPDATE_END = b',"method":"UPDATE"}'


def encoded_localized(
    item_id: str, localization: Mapping[str, str], fields: Mapping[str, Any]
) -> tuple[bytes, int]:
    """One override's localized_items_batch request (method CREATE: the override is new to
    Meta; :func:`as_localized_update` turns it into an UPDATE) and its content hash, which
    covers the localization and the values, never the method."""
    data = orjson.dumps({**fields, "id": item_id}, option=orjson.OPT_SORT_KEYS)
    place = orjson.dumps(dict(localization), option=orjson.OPT_SORT_KEYS)
    body = b"".join((_UPDATE_BEFORE_DATA, data, b',"localization":', place))
    return body + LOCALIZED_CREATE_END, hash64(body)


def as_localized_update(request: bytes) -> bytes:
    """The same localized request with method UPDATE (for an override Meta already holds)."""
    if request.endswith(LOCALIZED_CREATE_END):
        return request[: -len(LOCALIZED_CREATE_END)] + LOCALIZED_UPDATE_END
    return request


def split_encoded(
    requests: Iterable[tuple[str, bytes]],
    *,
    max_requests: int = MAX_REQUESTS_PER_CALL,
    max_bytes: int = MAX_PAYLOAD_BYTES,
) -> Iterator[EncodedBatch]:
    """Group encoded requests, given in order as (item id, JSON bytes), into calls within both
    limits. Streams: holds one call."""
    if not 1 <= max_requests <= MAX_REQUESTS_PER_CALL:
        raise ValueError(f"max_requests must be between 1 and {MAX_REQUESTS_PER_CALL}, not {max_requests}")
    if max_bytes < 64:
        raise ValueError(f"max_bytes must be at least 64, not {max_bytes}")
    return _split(requests, max_requests, max_bytes)


def _split(
    requests: Iterable[tuple[str, bytes]], max_requests: int, max_bytes: int
) -> Iterator[EncodedBatch]:
    parts: list[bytes] = []
    size = 2  # the array's brackets
    for retailer_id, encoded in requests:
        if len(encoded) + 2 > max_bytes:
            raise RequestTooLargeError(
                f"the request for item {retailer_id!r} alone is {len(encoded):,} bytes encoded, more "
                f"than a call may carry ({max_bytes:,} bytes)"
            )
        added = len(encoded) + (1 if parts else 0)
        if parts and (len(parts) >= max_requests or size + added > max_bytes):
            yield EncodedBatch(b"[" + b",".join(parts) + b"]", len(parts))
            parts, size = [], 2
            added = len(encoded)
        parts.append(encoded)
        size += added
    if parts:
        yield EncodedBatch(b"[" + b",".join(parts) + b"]", len(parts))
