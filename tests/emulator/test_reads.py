"""Meta's read side as the emulator speaks it: the products edge with fields, filter and cursor
paging, the diagnostics edge, the review that rejects items after their batch finished, drift by
hand and Catalog Management throttling of the reads."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from yarl import URL

from facebook_catalog.emulator import (
    STATE_KEY,
    EmulatorConfig,
    EmulatorServer,
    EmulatorState,
    FaultPlan,
    create_app,
)
from facebook_catalog.emulator.reads import DEFAULT_LIMIT, MAX_LIMIT
from facebook_catalog.hooks.graph_api import GraphApiRetryPolicy
from tests.emulator.test_protocol import CATALOG, TOKEN, VERSION, assert_graph_error, product, upsert_ok

PRODUCTS_PATH = f"/{VERSION}/{CATALOG}/products"
DIAGNOSTICS_PATH = f"/{VERSION}/{CATALOG}/diagnostics"
FAST_READS = GraphApiRetryPolicy(backoff_base=0.0, max_throttle_wait=2.0)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def client(emulator_config: EmulatorConfig, clock: FakeClock) -> AsyncIterator[TestClient]:
    app = create_app(emulator_config)
    app[STATE_KEY] = EmulatorState(emulator_config, clock=clock)
    async with TestClient(TestServer(app)) as test_client:
        yield test_client


def state_of(client: TestClient) -> EmulatorState:
    return client.app[STATE_KEY]


async def get(client: TestClient, path: str, **params: str) -> tuple[int, dict[str, Any]]:
    response = await client.get(path, params={"access_token": TOKEN, **params})
    return response.status, await response.json()


async def products(client: TestClient, **params: str) -> dict[str, Any]:
    status, body = await get(client, PRODUCTS_PATH, **params)
    assert status == 200, body
    return body


async def read_all(client: TestClient, **params: str) -> list[dict[str, Any]]:
    """Every page, following paging.next as a client would (the token in a header)."""
    body = await products(client, **params)
    items = list(body["data"])
    while "next" in body.get("paging", {}):
        next_url = URL(body["paging"]["next"])
        assert "access_token" not in next_url.query
        response = await client.get(next_url.path_qs, headers={"Authorization": f"Bearer {TOKEN}"})
        body = await response.json()
        assert response.status == 200, body
        items.extend(body["data"])
    return items


async def test_fields_name_what_comes_back_with_meta_id_and_retailer_id(client: TestClient) -> None:
    await upsert_ok(client, product("a", price="12.50 USD"))
    body = await products(
        client, fields="id,retailer_id,title,name,price,image_url,errors,review_status,nope"
    )
    (item,) = body["data"]
    assert item["retailer_id"] == "a"
    assert item["id"].isdigit()
    assert len(item["id"]) == 16
    assert item["title"] == item["name"] == "Product a"
    assert item["price"] == "12.50 USD"
    assert item["image_url"] == "https://shop.example/a.jpg"
    assert item["errors"] == []
    assert item["review_status"] == "approved"
    assert "nope" not in item
    # Without fields only Meta's id comes back.
    (bare,) = (await products(client))["data"]
    assert bare == {"id": item["id"]}


async def test_paging_follows_next_and_keeps_meta_default_page_size(client: TestClient) -> None:
    await upsert_ok(client, *(product(f"p{i:03d}") for i in range(60)))
    first = await products(client, fields="retailer_id")
    assert len(first["data"]) == DEFAULT_LIMIT
    assert set(first["paging"]["cursors"]) == {"before", "after"}
    items = await read_all(client, fields="retailer_id", limit="7")
    assert [i["retailer_id"] for i in items] == [f"p{i:03d}" for i in range(60)]
    last = await products(client, fields="retailer_id", limit="100")
    assert "next" not in last["paging"]
    assert len((await products(client, limit=str(MAX_LIMIT * 2)))["data"]) == 60


async def test_paging_never_skips_or_repeats_while_items_change(client: TestClient) -> None:
    await upsert_ok(client, *(product(f"p{i}") for i in range(10)))
    page = await products(client, fields="retailer_id", limit="4")
    assert [i["retailer_id"] for i in page["data"]] == ["p0", "p1", "p2", "p3"]
    # Between pages: an item already read and one not yet read are deleted, one is re-created,
    # one is updated, a new one is added.
    state = state_of(client)
    state.delete_item(CATALOG, "p1")
    state.delete_item(CATALOG, "p5")
    await upsert_ok(client, product("p1", title="back again"), product("p6", title="changed"), product("new"))
    rest = await products(client, fields="retailer_id", limit="100", after=page["paging"]["cursors"]["after"])
    assert [i["retailer_id"] for i in rest["data"]] == ["p4", "p6", "p7", "p8", "p9", "new"]
    previous = await products(client, fields="retailer_id", before=rest["paging"]["cursors"]["before"])
    assert [i["retailer_id"] for i in previous["data"]] == ["p0", "p1", "p2", "p3"]


@pytest.mark.parametrize(
    ("filter_", "expected"),
    [
        ({"retailer_id": {"is_any": ["b", "d", "zz"]}}, ["b", "d"]),
        ({"retailer_id": {"eq": "c"}}, ["c"]),
        ({"retailer_id": {"is_not_any": ["a", "b"]}}, ["c", "d"]),
        ({"title": {"i_contains": "PRODUCT D"}}, ["d"]),
        ({"or": [{"retailer_id": {"eq": "a"}}, {"name": {"eq": "Product c"}}]}, ["a", "c"]),
        ({"and": [{"retailer_id": {"is_any": ["a", "b"]}}, {"retailer_id": {"neq": "a"}}]}, ["b"]),
    ],
)
async def test_filter_takes_meta_operators(
    client: TestClient, filter_: dict[str, Any], expected: list[str]
) -> None:
    await upsert_ok(client, *(product(r) for r in "abcd"))
    items = await read_all(client, fields="retailer_id", filter=json.dumps(filter_), limit="1")
    assert [i["retailer_id"] for i in items] == expected


@pytest.mark.parametrize(
    ("params", "text"),
    [
        ({"filter": "not json"}, "filter"),
        ({"filter": json.dumps({"retailer_id": {"like": "a"}})}, "Unknown filter operator"),
        ({"limit": "0"}, "limit"),
        ({"after": "garbage!"}, "cursor"),
        ({"fields": "id,bad name"}, "invalid field name"),
    ],
)
async def test_bad_read_parameters_get_code_100_naming_the_parameter(
    client: TestClient, params: dict[str, str], text: str
) -> None:
    status, body = await get(client, PRODUCTS_PATH, **params)
    error = assert_graph_error(status, body, http_status=400, code=100)
    assert text in error["message"]


class TestReviewAfterTheBatch:
    @pytest.fixture
    def emulator_config(self) -> EmulatorConfig:
        return EmulatorConfig(processing_seconds=10.0, review_seconds=5.0)

    async def test_an_item_is_rejected_seconds_after_its_batch_finished(
        self, client: TestClient, clock: FakeClock
    ) -> None:
        state = state_of(client)
        state.set_faults(FaultPlan(review_reject_item_ids=("bad",), review_reject_after_seconds=30.0))
        await upsert_ok(client, product("good"), product("bad"))
        fields = "retailer_id,review_status,errors"
        assert (await products(client, fields=fields))["data"] == []  # the batch is not done
        clock.now += 10.0  # finished
        assert [
            (i["retailer_id"], i["review_status"], i["errors"]) for i in await read_all(client, fields=fields)
        ] == [
            ("good", "pending", []),
            ("bad", "pending", []),
        ]
        clock.now += 5.0
        by_id = {i["retailer_id"]: i for i in await read_all(client, fields=fields)}
        assert by_id["good"]["review_status"] == "approved"
        assert by_id["bad"]["review_status"] == "pending"
        clock.now += 25.0
        bad = {i["retailer_id"]: i for i in await read_all(client, fields=fields)}["bad"]
        assert bad["review_status"] == "rejected"
        (error,) = bad["errors"]
        assert error["error_type"] == "IMAGE_FETCH_FAILED"
        assert error["error_priority"] == "HIGH"
        assert "image_link" in error["description"]
        assert error["title"]
        # The item stays in the catalog.
        assert "bad" in state.items(CATALOG)
        # error_priority filters the errors as Meta's partner guide uses it.
        low = await products(client, fields="retailer_id,errors", error_priority="LOW")
        assert all(i["errors"] == [] for i in low["data"])

        status, diagnostics = await get(client, DIAGNOSTICS_PATH)
        assert status == 200, diagnostics
        (group,) = diagnostics["data"]
        assert group["type"] == "IMAGE_QUALITY"
        assert group["severity"] == "MUST_FIX"
        assert group["number_of_affected_items"] == 1
        assert group["diagnostics"][0]["sample_affected_items"] == [{"retailer_id": "bad"}]

    async def test_a_fixed_and_resent_item_passes_the_next_review(
        self, client: TestClient, clock: FakeClock
    ) -> None:
        state_of(client).set_faults(
            FaultPlan(review_reject_where={"title": "forbidden"}, review_reject_reason="policy")
        )
        await upsert_ok(client, product("x", title="Forbidden thing"))
        clock.now += 10.0
        (item,) = (await products(client, fields="review_status,errors"))["data"]
        assert item["review_status"] == "rejected"
        assert item["errors"][0]["error_type"] == "POLICY_VIOLATION"
        await upsert_ok(client, product("x", title="Fine thing"))
        clock.now += 15.0
        (item,) = (await products(client, fields="review_status,errors"))["data"]
        assert (item["review_status"], item["errors"]) == ("approved", [])
        assert (await get(client, DIAGNOSTICS_PATH))[1] == {"data": []}


async def test_drift_by_hand_deletes_edits_and_adds_items(client: TestClient) -> None:
    await upsert_ok(client, product("a"), product("b"))
    base = f"/_emulator/catalogs/{CATALOG}/items"
    response = await client.delete(f"{base}/a")
    assert response.status == 200
    assert (await client.delete(f"{base}/a")).status == 404
    response = await client.patch(f"{base}/b", json={"price": "1.00 USD", "brand": None})
    assert response.status == 200
    assert (await client.patch(f"{base}/zz", json={"price": "1.00 USD"})).status == 404
    assert (await client.patch(f"{base}/b", data=b"[1]")).status == 400
    response = await client.put(f"{base}/other", json={"title": "Not ours", "price": "5.00 USD"})
    assert response.status == 200
    items = await read_all(client, fields="retailer_id,price,brand")
    assert [i["retailer_id"] for i in items] == ["b", "other"]
    assert items[0]["price"] == "1.00 USD"
    assert "brand" not in items[0]


async def test_reads_can_be_throttled_with_80009_and_meta_headers(client: TestClient) -> None:
    state_of(client).set_faults(FaultPlan(throttle_reads_next=2))
    await upsert_ok(client, product("a"))  # items_batch is not a read: not throttled
    for path in (PRODUCTS_PATH, DIAGNOSTICS_PATH):
        response = await client.get(path, params={"access_token": TOKEN})
        body = await response.json()
        assert_graph_error(response.status, body, http_status=400, code=80009)
        usage = json.loads(response.headers["X-Business-Use-Case-Usage"])
        (entry,) = usage[CATALOG]
        assert entry["type"] == "catalog_management"
        assert entry["estimated_time_to_regain_access"] >= 0
    assert (await get(client, PRODUCTS_PATH))[0] == 200


class TestCatalogManagementBudget:
    @pytest.fixture
    def emulator_config(self) -> EmulatorConfig:
        return EmulatorConfig(management_calls_per_hour=2)

    async def test_reads_spend_the_catalog_management_budget(
        self, client: TestClient, clock: FakeClock
    ) -> None:
        response = await client.get(PRODUCTS_PATH, params={"access_token": TOKEN})
        assert response.status == 200
        assert json.loads(response.headers["X-Business-Use-Case-Usage"])[CATALOG][0]["call_count"] == 50
        assert (await get(client, DIAGNOSTICS_PATH))[0] == 200
        response = await client.get(PRODUCTS_PATH, params={"access_token": TOKEN})
        assert_graph_error(response.status, await response.json(), http_status=400, code=80009)
        assert float(response.headers["Retry-After"]) == pytest.approx(3600.0)
        clock.now += 3600.0
        assert (await get(client, PRODUCTS_PATH))[0] == 200


async def test_a_large_catalog_filtered_by_ids_reads_only_those(client: TestClient) -> None:
    await upsert_ok(client, *(product(f"p{i}") for i in range(3000)))
    wanted = [f"p{i}" for i in range(2999, 0, -300)]
    items = await read_all(
        client, fields="retailer_id", filter=json.dumps({"retailer_id": {"is_any": wanted}})
    )
    assert [i["retailer_id"] for i in items] == sorted(wanted, key=lambda r: int(r[1:]))


class TestHooksAgainstTheEmulator:
    """The hooks' paged reads against a real emulator over HTTP, with an app secret and throttling."""

    @pytest.fixture
    def served(self, catalog_connection: Any) -> Iterator[EmulatorServer]:
        from tests.conftest import TEST_CATALOG_ID, TEST_TOKEN

        with EmulatorServer(
            EmulatorConfig(access_tokens=(TEST_TOKEN,), app_secret="s3cret", throttle_regain_minutes=0)
        ) as server:
            catalog_connection(host=server.url, app_secret="s3cret")
            for index in range(23):
                server.put_item(TEST_CATALOG_ID, f"sku-{index:02d}", title=f"Item {index}", price="1.00 USD")
            server.set_faults(throttle_reads_next=1)
            yield server

    def test_sync_hook_reads_every_page_and_waits_out_80009(self, served: EmulatorServer) -> None:
        from facebook_catalog.hooks.catalog import FacebookCatalogHook

        hook = FacebookCatalogHook(retry_policy=FAST_READS)
        pages = list(hook.iter_product_pages(("retailer_id", "name", "price"), page_size=10))
        assert [len(p) for p in pages] == [10, 10, 3]
        assert pages[0][0] == {"retailer_id": "sku-00", "name": "Item 0", "price": "1.00 USD"}
        assert hook.throttled_retries == 1
        wanted = [f"sku-{i:02d}" for i in (22, 3, 7)] + ["absent"]
        assert sorted(
            i["retailer_id"] for i in hook.iter_products(("retailer_id",), retailer_ids=wanted)
        ) == [
            "sku-03",
            "sku-07",
            "sku-22",
        ]
        assert hook.get_diagnostics() == []
        assert all(call["status"] == 200 for call in served.calls()[1:])

    def test_async_hook_reads_the_same(self, served: EmulatorServer) -> None:
        from facebook_catalog.hooks.catalog import FacebookCatalogAsyncHook

        async def go() -> list[list[dict[str, Any]]]:
            hook = FacebookCatalogAsyncHook(retry_policy=FAST_READS)
            return [p async for p in hook.iter_product_pages(("retailer_id",), page_size=10)]

        pages = asyncio.run(go())
        assert [i["retailer_id"] for p in pages for i in p] == [f"sku-{i:02d}" for i in range(23)]
