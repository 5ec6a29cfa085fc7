"""Turn item requests into items_batch calls: at most 5,000 records and under Meta's payload limit.

Each request is encoded once; a call's size is the exact sum of its encoded parts plus the
array's brackets and commas, so the limit is measured, never estimated. JSON is UTF-8 without
``\\uXXXX`` escapes: escaping makes Arabic product text about 42% larger on the wire.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

MAX_REQUESTS_PER_CALL = 5_000
#: Meta refuses payloads of 28 MB or more; 1% is left for the call's other form fields.
META_PAYLOAD_LIMIT_BYTES = 28_000_000
MAX_PAYLOAD_BYTES = 27_720_000

ITEM_METHODS = frozenset({"CREATE", "UPDATE", "DELETE"})


class RequestTooLargeError(ValueError):
    """A single item request is larger than a whole call may be."""


@dataclass(frozen=True)
class EncodedBatch:
    """One items_batch call's ``requests`` field, encoded, and how many requests it holds."""

    payload: bytes
    request_count: int


def item_request(item: Mapping[str, Any], method: str = "UPDATE") -> dict[str, Any]:
    """The request for one product. UPDATE with allow_upsert=true is an upsert."""
    if method not in ITEM_METHODS:
        raise ValueError(f"method must be one of {sorted(ITEM_METHODS)}, not {method!r}")
    retailer_id = item.get("id")
    if retailer_id is None or str(retailer_id).strip() == "":
        raise ValueError(f"item has no 'id': {dict(item)!r:.200}")
    data = {"id": str(retailer_id)} if method == "DELETE" else dict(item)
    return {"method": method, "data": data}


def encode_json(value: Any) -> bytes:
    """Compact UTF-8 JSON without escaping non-ASCII text, as bytes of its own size.

    orjson hands back its whole working buffer (4 KiB for a typical product) as the bytes, and a
    request waits in memory until its call's payload is joined: 5,000 of them would hold 20 MiB.
    """
    return bytes(memoryview(orjson.dumps(value)))


def encode_requests(requests: Iterable[Mapping[str, Any]]) -> bytes:
    return b"[" + b",".join(encode_json(r) for r in requests) + b"]"


def split_requests(
    requests: Iterable[Mapping[str, Any]],
    *,
    max_requests: int = MAX_REQUESTS_PER_CALL,
    max_bytes: int = MAX_PAYLOAD_BYTES,
) -> Iterator[EncodedBatch]:
    """Group requests, in order, into encoded calls within both limits. Streams: holds one call."""
    encoded = ((str(r["data"]["id"]), encode_json(r)) for r in requests)
    return split_encoded(encoded, max_requests=max_requests, max_bytes=max_bytes)


def split_encoded(
    requests: Iterable[tuple[str, bytes]],
    *,
    max_requests: int = MAX_REQUESTS_PER_CALL,
    max_bytes: int = MAX_PAYLOAD_BYTES,
) -> Iterator[EncodedBatch]:
    """Like :func:`split_requests` for requests already encoded, given as (item id, JSON bytes)."""
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
