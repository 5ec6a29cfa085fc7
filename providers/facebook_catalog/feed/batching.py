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
    """One items_batch call's ``requests`` field, encoded, with the retailer ids it carries."""

    payload: bytes
    item_ids: tuple[str, ...]

    @property
    def request_count(self) -> int:
        return len(self.item_ids)


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
    """Compact UTF-8 JSON without escaping non-ASCII text."""
    return orjson.dumps(value)


def encode_requests(requests: Iterable[Mapping[str, Any]]) -> bytes:
    return b"[" + b",".join(encode_json(r) for r in requests) + b"]"


def split_requests(
    requests: Iterable[Mapping[str, Any]],
    *,
    max_requests: int = MAX_REQUESTS_PER_CALL,
    max_bytes: int = MAX_PAYLOAD_BYTES,
) -> Iterator[EncodedBatch]:
    """Group requests, in order, into encoded calls within both limits. Streams: holds one call."""
    if not 1 <= max_requests <= MAX_REQUESTS_PER_CALL:
        raise ValueError(f"max_requests must be between 1 and {MAX_REQUESTS_PER_CALL}, not {max_requests}")
    if max_bytes < 64:
        raise ValueError(f"max_bytes must be at least 64, not {max_bytes}")
    parts: list[bytes] = []
    ids: list[str] = []
    size = 2  # the array's brackets
    for request in requests:
        encoded = encode_json(request)
        retailer_id = str(request["data"]["id"])
        if len(encoded) + 2 > max_bytes:
            raise RequestTooLargeError(
                f"the request for item {retailer_id!r} alone is {len(encoded):,} bytes encoded, more "
                f"than a call may carry ({max_bytes:,} bytes)"
            )
        added = len(encoded) + (1 if parts else 0)
        if parts and (len(parts) >= max_requests or size + added > max_bytes):
            yield EncodedBatch(b"[" + b",".join(parts) + b"]", tuple(ids))
            parts, ids, size = [], [], 2
            added = len(encoded)
        parts.append(encoded)
        ids.append(retailer_id)
        size += added
    if parts:
        yield EncodedBatch(b"[" + b",".join(parts) + b"]", tuple(ids))
