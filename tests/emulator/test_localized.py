"""localized_items_batch as the emulator speaks it: Meta's rules for overrides of existing items."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from facebook_catalog.emulator import STATE_KEY, EmulatorConfig, EmulatorState, create_app
from tests.emulator.test_protocol import (
    CATALOG,
    TOKEN,
    VERSION,
    assert_graph_error,
    batch_status,
    multipart,
    product,
    upsert_ok,
)

LOCALIZED_PATH = f"/{VERSION}/{CATALOG}/localized_items_batch"


@pytest.fixture
async def client(emulator_config: EmulatorConfig) -> AsyncIterator[TestClient]:
    async with TestClient(TestServer(create_app(emulator_config))) as test_client:
        yield test_client


def state_of(client: TestClient) -> EmulatorState:
    return client.app[STATE_KEY]


def override(
    retailer_id: str, kind: str, value: str, method: str = "CREATE", **fields: Any
) -> dict[str, Any]:
    return {
        "method": method,
        "localization": {"type": kind, "value": value},
        "data": {"id": retailer_id, **fields},
    }


async def post_localized(client: TestClient, requests: list[Any], **extra: str) -> tuple[int, dict[str, Any]]:
    fields: dict[str, str | bytes] = {
        "item_type": "PRODUCT_ITEM",
        "requests": json.dumps(requests, ensure_ascii=False),
        "access_token": TOKEN,
        **extra,
    }
    response = await client.post(LOCALIZED_PATH, data=multipart(fields))
    return response.status, await response.json()


async def test_overrides_of_existing_items_apply_and_read_back_in_metas_shape(client: TestClient) -> None:
    await upsert_ok(client, product("a", title="قميص"))
    status, body = await post_localized(
        client,
        [
            override("a", "LANGUAGE", "en_XX", title="Shirt", description="A shirt"),
            override("a", "COUNTRY", "AE", price="95 AED", availability="in stock"),
            override("a", "LANGUAGE_AND_COUNTRY", "en_XX|AE", link="https://shop.example/ae/en/a"),
        ],
    )
    assert status == 200, body
    (handle,) = body["handles"]
    assert body["validation_status"] == []
    answer = await batch_status(client, handle, load_ids=True)
    assert (answer["status"], answer["errors_total_count"]) == ("finished", 0)

    item = state_of(client).items(CATALOG)["a"]
    assert item["title"] == "قميص"  # the base item is untouched
    assert item["override_details"] == [
        {"type": "country", "key": "AE", "values": {"price": "95 AED", "availability": "in stock"}},
        {"type": "language", "key": "en_XX", "values": {"title": "Shirt", "description": "A shirt"}},
        {
            "type": "language_and_country",
            "key": "en_XX|AE",
            "values": {"link": "https://shop.example/ae/en/a"},
        },
    ]
    # The products read shows them when asked for.
    response = await client.get(
        f"/{VERSION}/{CATALOG}/products",
        params={"fields": "retailer_id,name,override_details", "access_token": TOKEN},
    )
    (read,) = (await response.json())["data"]
    assert read["name"] == "قميص"
    assert read["override_details"] == item["override_details"]


async def test_update_merges_into_an_override_and_delete_removes_it(client: TestClient) -> None:
    await upsert_ok(client, product("a"))
    await post_localized(client, [override("a", "LANGUAGE", "en_XX", title="Shirt", description="A shirt")])
    await post_localized(client, [override("a", "LANGUAGE", "en_XX", "UPDATE", title="T-shirt")])
    (details,) = state_of(client).items(CATALOG)["a"]["override_details"]
    assert details["values"] == {"title": "T-shirt", "description": "A shirt"}
    await post_localized(client, [override("a", "LANGUAGE", "en_XX", "DELETE")])
    assert "override_details" not in state_of(client).items(CATALOG)["a"]


async def test_an_unknown_item_is_an_error_on_that_request_only(client: TestClient) -> None:
    await upsert_ok(client, product("a"))
    status, body = await post_localized(
        client,
        [
            override("ghost", "LANGUAGE", "en_XX", title="Ghost"),
            override("a", "LANGUAGE", "en_XX", title="Shirt"),
        ],
    )
    assert status == 200, body
    (handle,) = body["handles"]
    (refused,) = body["validation_status"]
    assert refused["retailer_id"] == "ghost"
    assert "never creates items" in refused["errors"][0]["message"]
    answer = await batch_status(client, handle, load_ids=True)
    assert answer["ids_of_invalid_requests"] == ["ghost"]
    assert answer["errors"][0]["line"] == 0
    assert sorted(state_of(client).items(CATALOG)) == ["a"]  # never created
    assert state_of(client).items(CATALOG)["a"]["override_details"][0]["values"] == {"title": "Shirt"}


async def test_a_call_of_only_unknown_items_ingests_nothing(client: TestClient) -> None:
    status, body = await post_localized(client, [override("ghost", "COUNTRY", "AE", price="9 AED")])
    assert status == 200, body
    assert body["handles"] == []
    assert body["validation_status"][0]["retailer_id"] == "ghost"


@pytest.mark.parametrize(
    ("kind", "value", "fields", "expected"),
    [
        ("LANGUAGE", "en_XX", {"price": "9 USD"}, "price cannot be overridden in a LANGUAGE override"),
        ("LANGUAGE", "en_XX", {"availability": "in stock"}, "availability cannot be"),
        ("COUNTRY", "AE", {"image_link": "https://x.example/a.jpg"}, "image_link cannot be"),
        ("LANGUAGE_AND_COUNTRY", "en_XX|AE", {"status": "active"}, "status cannot be"),
    ],
)
async def test_a_field_meta_does_not_localize_for_the_type_is_an_error(
    client: TestClient, kind: str, value: str, fields: dict[str, str], expected: str
) -> None:
    await upsert_ok(client, product("a"))
    status, body = await post_localized(client, [override("a", kind, value, **fields)])
    assert status == 200, body
    assert body["handles"] == []
    assert expected in body["validation_status"][0]["errors"][0]["message"]
    assert "override_details" not in state_of(client).items(CATALOG)["a"]


@pytest.mark.parametrize(
    ("localization", "expected"),
    [
        ({"type": "LANGUAGE", "value": "english"}, "not a language code"),
        ({"type": "LANGUAGE", "value": "zz_XX"}, "not a language code"),
        ({"type": "COUNTRY", "value": "UAE"}, "not an ISO 3166-1 alpha-2 country code"),
        ({"type": "COUNTRY", "value": "ae"}, "not an ISO 3166-1 alpha-2 country code"),
        ({"type": "LANGUAGE_AND_COUNTRY", "value": "en_XX"}, "'<language>|<country>'"),
        ({"type": "REGION", "value": "EU"}, "is not one of LANGUAGE, COUNTRY, LANGUAGE_AND_COUNTRY"),
        (None, "must be an object"),
    ],
)
async def test_a_bad_localization_value_is_an_error(
    client: TestClient, localization: Any, expected: str
) -> None:
    await upsert_ok(client, product("a"))
    request = {"method": "CREATE", "localization": localization, "data": {"id": "a", "title": "Shirt"}}
    status, body = await post_localized(client, [request])
    assert status == 200, body
    assert body["handles"] == []
    assert expected in body["validation_status"][0]["errors"][0]["message"]


async def test_more_than_1000_requests_is_refused(client: TestClient) -> None:
    status, body = await post_localized(
        client, [override(f"p{i}", "LANGUAGE", "en_XX", title="x") for i in range(1001)]
    )
    assert_graph_error(status, body, http_status=400, code=100)
    assert "at most 1000" in body["error"]["message"]


async def test_it_counts_against_the_catalog_batch_budget_like_items_batch() -> None:
    config = EmulatorConfig(batch_calls_per_minute=1)
    async with TestClient(TestServer(create_app(config))) as client:
        await upsert_ok(client, product("a"))
        status, body = await post_localized(client, [override("a", "LANGUAGE", "en_XX", title="Shirt")])
        assert_graph_error(status, body, http_status=400, code=80014)
