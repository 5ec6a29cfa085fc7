from __future__ import annotations

import json
import tracemalloc
from collections.abc import Iterable, Iterator

import pytest

from facebook_catalog.feed.batching import (
    MAX_PAYLOAD_BYTES,
    META_PAYLOAD_LIMIT_BYTES,
    EncodedBatch,
    RequestTooLargeError,
    encoded_update,
    item_fields,
    split_encoded,
)


def product(i: int, **fields: str) -> dict[str, str]:
    return {"id": f"sku-{i}", "title": f"Product {i}", "price": "1000 IQD", **fields}


def encode_requests(items: list[dict[str, str]]) -> bytes:
    """A call's ``requests`` array, exactly as split_encoded joins it."""
    return b"[" + b",".join(encoded_update(item)[0] for item in items) + b"]"


def split_items(items: Iterable[dict[str, str]], **limits: int) -> Iterator[EncodedBatch]:
    return split_encoded(((item["id"], encoded_update(item)[0]) for item in items), **limits)


def test_every_item_is_an_upsert_and_needs_an_id() -> None:
    assert json.loads(encoded_update(product(1))[0]) == {"method": "UPDATE", "data": product(1)}
    assert item_fields(product(1)) == product(1)
    with pytest.raises(ValueError, match="no 'id'"):
        item_fields({"title": "x"})


def test_splits_by_count_in_order() -> None:
    batches = list(split_items((product(i) for i in range(12_345)), max_requests=5_000))
    assert [b.request_count for b in batches] == [5_000, 5_000, 2_345]
    decoded = [r for b in batches for r in json.loads(b.payload)]
    assert [r["data"]["id"] for r in decoded] == [f"sku-{i}" for i in range(12_345)]
    assert decoded[12_344] == {"method": "UPDATE", "data": product(12_344)}


def test_splits_by_measured_bytes() -> None:
    requests = [product(i, description="x" * 900) for i in range(100, 200)]  # same width
    one = len(encode_requests(requests[:1])) - 2
    limit = 10 * one + 11  # exactly ten requests: brackets plus nine commas fit, eleven do not
    batches = list(split_items(requests, max_bytes=limit))
    assert all(len(b.payload) <= limit for b in batches)
    assert [b.request_count for b in batches] == [10] * 10
    # The size is exact: the payload is the encoded array, byte for byte.
    assert batches[0].payload == encode_requests(requests[:10])


def test_non_ascii_is_sent_as_utf8_not_escaped() -> None:
    arabic = "قميص قطني مريح للرجال"
    payload = encode_requests([product(1, title=arabic)])
    assert arabic.encode() in payload
    assert b"\\u" not in payload
    escaped = json.dumps([{"method": "UPDATE", "data": product(1, title=arabic)}]).encode()
    assert len(payload) < len(escaped)


def test_a_single_oversized_request_is_refused_with_its_id() -> None:
    with pytest.raises(RequestTooLargeError, match="sku-7"):
        list(split_items([product(7, description="x" * 5_000)], max_bytes=1_000))


def test_default_limit_stays_under_metas() -> None:
    assert MAX_PAYLOAD_BYTES < META_PAYLOAD_LIMIT_BYTES


@pytest.mark.parametrize(("max_requests", "max_bytes"), [(0, 1000), (5_001, 1000), (10, 10)])
def test_limits_are_validated(max_requests: int, max_bytes: int) -> None:
    with pytest.raises(ValueError):
        list(split_encoded([], max_requests=max_requests, max_bytes=max_bytes))


def test_encoded_requests_hold_only_their_own_size_in_memory() -> None:
    """A call's 5,000 requests wait in memory until their payload is joined; orjson's own result
    would keep its 4 KiB working buffer each (20 MiB a call)."""
    product = {
        "id": "SKU-1",
        "title": "قميص قطني 1",
        "description": "Quality product with fast delivery to every governorate and easy 14-day returns",
        "link": "https://shop.example.iq/products/1",
        "price": "1000 IQD",
    }
    tracemalloc.start()
    try:
        kept = [encoded_update(product)[0] for _ in range(1_000)]
        traced, _peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert traced < 1_000 * (len(kept[0]) + 200)
