"""Paged reads of the catalog (products, diagnostics): both hooks follow Meta's paging the same way,
retry and wait out 80009 by the shared policy, and chunk retailer_id filters."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
import responses
from aioresponses import aioresponses

from facebook_catalog.hooks.catalog import FacebookCatalogAsyncHook, FacebookCatalogHook
from facebook_catalog.hooks.graph_api import (
    RETAILER_ID_FILTER_MAX_IDS,
    GraphApiRetryPolicy,
    MetaItemError,
    PermanentGraphApiError,
    item_errors,
    retailer_id_filters,
)
from tests.conftest import TEST_CATALOG_ID, TEST_TOKEN

HOST = "https://graph.example.test"
PRODUCTS_URL = f"{HOST}/v25.0/{TEST_CATALOG_ID}/products"
DIAGNOSTICS_URL = f"{HOST}/v25.0/{TEST_CATALOG_ID}/diagnostics"
PRODUCTS_PATTERN = re.compile(rf"^{re.escape(PRODUCTS_URL)}(\?.*)?$")
FAST = GraphApiRetryPolicy(
    max_transient_retries=2, max_throttled_retries=2, backoff_base=0.0, max_throttle_wait=0.01
)
Answer = tuple[int, dict[str, Any], dict[str, str]]


def page(ids: list[str], after: str | None, next_url: str | None) -> Answer:
    body: dict[str, Any] = {
        "data": [{"retailer_id": i, "review_status": "approved", "errors": []} for i in ids]
    }
    if after:
        body["paging"] = {"cursors": {"before": "B", "after": after}}
        if next_url:
            body["paging"]["next"] = next_url
    return 200, body, {}


THROTTLED_READ: Answer = (
    400,
    {
        "error": {
            "message": "(#80009) too many Catalog Management calls",
            "type": "OAuthException",
            "code": 80009,
        }
    },
    {
        "X-Business-Use-Case-Usage": json.dumps(
            {TEST_CATALOG_ID: [{"type": "catalog_management", "estimated_time_to_regain_access": 0}]}
        ),
        "Retry-After": "0.001",
    },
)
NEXT_SAME_HOST = f"{PRODUCTS_URL}?fields=retailer_id&limit=2&after=C1"
TWO_PAGES = [page(["a", "b"], "C1", NEXT_SAME_HOST), page(["c"], "C2", None)]


def read_sync(
    answers: list[Answer], **kwargs: Any
) -> tuple[list[list[str]], list[tuple[str, dict[str, str]]]]:
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        for status, body, headers in answers:
            mock.add(responses.GET, PRODUCTS_URL, json=body, status=status, headers=headers)
        hook = FacebookCatalogHook(retry_policy=FAST)
        pages = [
            [item["retailer_id"] for item in p] for p in hook.iter_product_pages(("retailer_id",), **kwargs)
        ]
        sent = []
        for call in mock.calls:
            assert call.request.headers["Authorization"] == f"Bearer {TEST_TOKEN}"
            parts = urlsplit(call.request.url)
            sent.append((f"{parts.scheme}://{parts.netloc}{parts.path}", dict(parse_qsl(parts.query))))
    return pages, sent


def read_async(
    answers: list[Answer], **kwargs: Any
) -> tuple[list[list[str]], list[tuple[str, dict[str, str]]]]:
    async def go() -> list[list[str]]:
        hook = FacebookCatalogAsyncHook(retry_policy=FAST)
        return [
            [item["retailer_id"] for item in p]
            async for p in hook.iter_product_pages(("retailer_id",), **kwargs)
        ]

    with aioresponses() as mock:
        for status, body, headers in answers:
            mock.get(PRODUCTS_PATTERN, payload=body, status=status, headers=headers)
        pages = asyncio.run(go())
        sent = []
        for (_, url), calls in mock.requests.items():
            for call in calls:
                assert call.kwargs["headers"]["Authorization"] == f"Bearer {TEST_TOKEN}"
                query = dict(parse_qsl(url.query_string))
                query.update(call.kwargs.get("params") or {})
                sent.append((str(url.with_query(None)), query))
    return pages, sent


READERS = pytest.mark.parametrize("read", [read_sync, read_async], ids=["sync", "async"])


@READERS
def test_pages_follow_paging_next_one_page_at_a_time(read: Any, catalog_connection: Any) -> None:
    catalog_connection(host=HOST)
    pages, sent = read(TWO_PAGES, page_size=2)
    assert pages == [["a", "b"], ["c"]]
    assert len(sent) == 2
    assert sent[0][1] == {"fields": "retailer_id", "limit": "2"}
    assert sent[1][0] == PRODUCTS_URL
    assert sent[1][1]["after"] == "C1"
    assert all("access_token" not in query for _, query in sent)


@READERS
def test_a_next_url_on_another_host_is_not_called_the_cursor_is_used(
    read: Any, catalog_connection: Any
) -> None:
    catalog_connection(host=HOST)
    answers = [page(["a"], "C1", "https://elsewhere.example/steal?after=C1"), page(["b"], "C2", None)]
    pages, sent = read(answers)
    assert pages == [["a"], ["b"]]
    assert {url for url, _ in sent} == {PRODUCTS_URL}
    assert sent[1][1]["after"] == "C1"


@READERS
def test_80009_on_a_read_is_waited_out_and_retried(read: Any, catalog_connection: Any) -> None:
    catalog_connection(host=HOST)
    pages, sent = read([THROTTLED_READ, *TWO_PAGES])
    assert pages == [["a", "b"], ["c"]]
    assert len(sent) == 3


@READERS
def test_a_permanent_error_ends_the_read(read: Any, catalog_connection: Any) -> None:
    catalog_connection(host=HOST)
    bad: Answer = (
        400,
        {"error": {"message": "(#100) bad filter", "type": "OAuthException", "code": 100}},
        {},
    )
    with pytest.raises(PermanentGraphApiError, match="bad filter"):
        read([bad])


@READERS
def test_retailer_ids_are_read_in_chunked_filters(read: Any, catalog_connection: Any) -> None:
    catalog_connection(host=HOST)
    ids = [f"sku-{i}" for i in range(RETAILER_ID_FILTER_MAX_IDS + 5)]
    answers = [page(ids[:2], None, None), page(ids[-1:], None, None)]
    pages, sent = read(answers, retailer_ids=ids)
    assert pages == [ids[:2], ids[-1:]]
    filters = [json.loads(query["filter"]) for _, query in sent]
    assert [len(f["retailer_id"]["is_any"]) for f in filters] == [RETAILER_ID_FILTER_MAX_IDS, 5]
    assert [i for f in filters for i in f["retailer_id"]["is_any"]] == ids


def test_retailer_id_filters_bound_count_and_length_and_name_each_id_once() -> None:
    ids = ["x" * 100 + str(i) for i in range(100)] + ["x" * 100 + "0"]
    filters = [json.loads(f)["retailer_id"]["is_any"] for f in retailer_id_filters(ids, max_chars=1000)]
    assert all(len(json.dumps(chunk)) <= 1100 for chunk in filters)
    assert [i for chunk in filters for i in chunk] == ids[:100]
    assert list(retailer_id_filters([])) == []


def test_diagnostics_are_read_with_the_shared_policy(catalog_connection: Any) -> None:
    catalog_connection(host=HOST)
    groups = {"data": [{"type": "IMAGE_QUALITY", "severity": "MUST_FIX", "number_of_affected_items": 3}]}
    with responses.RequestsMock() as mock:
        mock.add(
            responses.GET, DIAGNOSTICS_URL, json=THROTTLED_READ[1], status=400, headers=THROTTLED_READ[2]
        )
        mock.add(responses.GET, DIAGNOSTICS_URL, json=groups)
        hook = FacebookCatalogHook(retry_policy=FAST)
        assert hook.get_diagnostics() == groups["data"]
    assert hook.throttled_retries == 1
    assert hook.read_calls == 1


def test_item_errors_read_metas_shapes_liberally() -> None:
    item = {
        "errors": [
            {"title": "Image couldn't be downloaded", "description": "Check image_link", "error_type": "IMG"},
            {"message": "Policy", "code": 10800},
            "plain text",
            42,
        ]
    }
    assert item_errors(item) == [
        MetaItemError("Image couldn't be downloaded: Check image_link", "IMG"),
        MetaItemError("Policy", "10800"),
        MetaItemError("plain text"),
    ]
    assert item_errors({"retailer_id": "a"}) == []
