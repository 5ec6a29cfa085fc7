"""Meta's Catalog Batch protocol as the emulator speaks it, driven through aiohttp's test client."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer
from multidict import CIMultiDictProxy

from facebook_catalog.emulator import STATE_KEY, EmulatorConfig, EmulatorState, FaultPlan, create_app

TOKEN = "emulator-token"
CATALOG = "1234567890"
VERSION = "v25.0"
BATCH_PATH = f"/{VERSION}/{CATALOG}/items_batch"
STATUS_PATH = f"/{VERSION}/{CATALOG}/check_batch_request_status"


def product(retailer_id: str, **overrides: Any) -> dict[str, Any]:
    item: dict[str, Any] = {
        "id": retailer_id,
        "title": f"Product {retailer_id}",
        "description": "A fine product.",
        "availability": "in stock",
        "condition": "new",
        "price": "9.99 USD",
        "link": f"https://shop.example/{retailer_id}",
        "image_link": f"https://shop.example/{retailer_id}.jpg",
        "brand": "Acme",
    }
    item.update(overrides)
    return item


def upsert(*items: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"method": "UPDATE", "data": item} for item in items]


def multipart(fields: Mapping[str, str | bytes]) -> aiohttp.MultipartWriter:
    writer = aiohttp.MultipartWriter("form-data")
    for name, value in fields.items():
        part = writer.append(value if isinstance(value, bytes) else value.encode("utf-8"))
        part.set_content_disposition("form-data", name=name)
    return writer


@pytest.fixture
async def client(emulator_config: EmulatorConfig) -> AsyncIterator[TestClient]:
    async with TestClient(TestServer(create_app(emulator_config))) as test_client:
        yield test_client


def state_of(client: TestClient) -> EmulatorState:
    return client.app[STATE_KEY]


async def post_batch(
    client: TestClient,
    requests: list[dict[str, Any]] | str,
    *,
    catalog: str = CATALOG,
    token: str | None = TOKEN,
    encoding: str = "multipart",
    **extra: str,
) -> tuple[int, dict[str, Any], CIMultiDictProxy[str]]:
    fields: dict[str, str | bytes] = {
        "item_type": "PRODUCT_ITEM",
        "requests": requests if isinstance(requests, str) else json.dumps(requests, ensure_ascii=False),
        **extra,
    }
    if token is not None:
        fields["access_token"] = token
    path = f"/{VERSION}/{catalog}/items_batch"
    if encoding == "multipart":
        response = await client.post(path, data=multipart(fields))
    else:
        response = await client.post(
            path, data=urlencode(fields), headers={"Content-Type": "application/x-www-form-urlencoded"}
        )
    return response.status, await response.json(), response.headers


async def batch_status(
    client: TestClient, handle: str, *, catalog: str = CATALOG, load_ids: bool = False, **extra: str
) -> dict[str, Any]:
    params = {"handle": handle, "access_token": TOKEN, **extra}
    if load_ids:
        params["load_ids_of_invalid_requests"] = "true"
    response = await client.get(f"/{VERSION}/{catalog}/check_batch_request_status", params=params)
    body = await response.json()
    assert response.status == 200, body
    (status,) = body["data"]
    return status


async def upsert_ok(client: TestClient, *items: dict[str, Any]) -> str:
    status, body, _ = await post_batch(client, upsert(*items))
    assert status == 200, body
    (handle,) = body["handles"]
    return handle


def assert_graph_error(status: int, body: dict[str, Any], *, http_status: int, code: int) -> dict[str, Any]:
    assert status == http_status, body
    error = body["error"]
    assert error["code"] == code
    assert isinstance(error["message"], str)
    assert error["message"]
    assert isinstance(error["type"], str)
    assert isinstance(error["fbtrace_id"], str)
    assert len(error["fbtrace_id"]) >= 11
    return error


# items_batch: applying items


async def test_upsert_creates_new_items_and_merges_into_existing_ones(client: TestClient) -> None:
    await upsert_ok(client, product("a"), product("b", gtin="0012345678905"))
    await upsert_ok(client, {"id": "a", "price": "7.50 USD"}, {"id": "b", "gtin": None})

    items = state_of(client).items(CATALOG)
    assert items["a"] == product("a", price="7.50 USD")
    # A null clears an optional field on UPDATE.
    assert items["b"] == product("b")


async def test_create_replaces_and_delete_removes(client: TestClient) -> None:
    await upsert_ok(client, product("a", color="blue"), product("b"))
    status, body, _ = await post_batch(
        client,
        [
            {"method": "CREATE", "data": product("a", title="Replaced")},
            {"method": "DELETE", "data": {"id": "b"}},
        ],
    )
    assert status == 200, body
    assert state_of(client).items(CATALOG) == {"a": product("a", title="Replaced")}


async def test_records_apply_in_posting_order(client: TestClient) -> None:
    await upsert_ok(
        client,
        product("a", title="first"),
        {"id": "a", "title": "second"},
    )
    status, body, _ = await post_batch(
        client, [{"method": "DELETE", "data": {"id": "a"}}, {"method": "UPDATE", "data": product("a")}]
    )
    assert status == 200, body
    assert state_of(client).items(CATALOG)["a"]["title"] == "Product a"


async def test_catalogs_are_separate(client: TestClient) -> None:
    await upsert_ok(client, product("a"))
    assert state_of(client).items("999") == {}
    status, _, _ = await post_batch(client, upsert(product("z")), catalog="999")
    assert status == 200
    assert set(state_of(client).items("999")) == {"z"}
    assert set(state_of(client).items(CATALOG)) == {"a"}


async def test_allow_upsert_false_rejects_updates_of_unknown_items(client: TestClient) -> None:
    await upsert_ok(client, product("known"))
    status, body, _ = await post_batch(
        client, upsert({"id": "known", "price": "1 USD"}, product("new")), allow_upsert="false"
    )
    assert status == 200
    upsert_refused = 'No item with retailer id "new" exists in the catalog, and allow_upsert is false.'
    assert body["validation_status"] == [
        {"retailer_id": "new", "errors": [{"message": upsert_refused}], "warnings": []}
    ]
    items = state_of(client).items(CATALOG)
    assert set(items) == {"known"}
    assert items["known"]["price"] == "1 USD"


# items_batch: validation


async def test_validation_status_lists_only_items_with_problems_and_invalid_items_are_not_saved(
    client: TestClient,
) -> None:
    status, body, _ = await post_batch(
        client,
        upsert(
            product("good"),
            product("bad-price", price="12,99 EUR"),
            product("warned", flavour="mint"),
            {"id": "incomplete", "title": "No rest"},
        ),
    )
    assert status == 200
    assert len(body["handles"]) == 1
    by_id = {entry["retailer_id"]: entry for entry in body["validation_status"]}
    assert set(by_id) == {"bad-price", "warned", "incomplete"}
    assert [error["message"] for error in by_id["bad-price"]["errors"]] == [
        'Invalid value "12,99 EUR" for field "price": use a number with a period as decimal point, '
        'one space and an ISO 4217 currency code, e.g. "9.99 USD".'
    ]
    assert by_id["warned"]["errors"] == []
    assert by_id["warned"]["warnings"] == [{"message": 'Unknown field "flavour" was ignored.'}]
    assert len(by_id["incomplete"]["errors"]) == 7
    assert {"message": 'Required field "brand" is missing or empty.'} in by_id["incomplete"]["errors"]

    assert set(state_of(client).items(CATALOG)) == {"good", "warned"}
    assert "flavour" not in state_of(client).items(CATALOG)["warned"]


async def test_no_handle_when_nothing_in_the_call_was_valid(client: TestClient) -> None:
    status, body, _ = await post_batch(client, upsert(product("a", condition="broken")))
    assert status == 200
    assert body["handles"] == []
    assert body["validation_status"][0]["retailer_id"] == "a"
    assert state_of(client).items(CATALOG) == {}


async def test_batch_status_reports_errors_with_line_and_id(client: TestClient) -> None:
    handle = await upsert_ok(
        client,
        product("ok"),
        product("bad-link", link="ftp://shop.example/x"),
        product("ok-2", title="t" * 150),
    )
    status = await batch_status(client, handle)
    assert status["handle"] == handle
    assert status["status"] == "finished"
    assert status["errors"] == [
        {
            "line": 1,
            "id": "bad-link",
            "message": 'Invalid value "ftp://shop.example/x" for field "link": must be an absolute http or '
            "https URL.",
        }
    ]
    assert status["errors_total_count"] == 1
    assert status["warnings"] == [
        {
            "line": 2,
            "id": "ok-2",
            "message": 'Field "title" is 150 characters long; titles over 100 characters may be truncated.',
        }
    ]
    assert status["warnings_total_count"] == 1


async def test_ids_of_invalid_requests_only_with_the_flag(client: TestClient) -> None:
    handle = await upsert_ok(client, product("ok"), product("bad", price="free"), product("worse", brand=""))
    assert (await batch_status(client, handle))["ids_of_invalid_requests"] == []
    loaded = await batch_status(client, handle, load_ids=True)
    assert loaded["ids_of_invalid_requests"] == ["bad", "worse"]


async def test_error_lists_are_samples_but_totals_are_exact(client: TestClient) -> None:
    records = upsert(product("ok"), *(product(f"bad-{n}", price="n/a") for n in range(150)))
    status, body, _ = await post_batch(client, records)
    assert status == 200
    assert len(body["validation_status"]) == 150
    report = await batch_status(client, body["handles"][0], load_ids=True)
    assert len(report["errors"]) == 100
    assert report["errors_total_count"] == 150
    assert report["errors"][0]["line"] == 1
    assert len(report["ids_of_invalid_requests"]) == 150


async def test_wrong_record_shape_fails_the_whole_call(client: TestClient) -> None:
    status, body, _ = await post_batch(client, [*upsert(product("a")), {"method": "UPSERT", "data": {}}])
    error = assert_graph_error(status, body, http_status=400, code=100)
    assert "requests[1][method]" in error["message"]
    assert state_of(client).items(CATALOG) == {}


@pytest.mark.parametrize(
    ("requests", "fragment"),
    [
        ("not json", "must be a JSON-encoded array"),
        ('{"method": "UPDATE"}', "must be a JSON-encoded array"),
        ("[]", "at least one request"),
    ],
)
async def test_requests_must_be_a_non_empty_json_array(
    client: TestClient, requests: str, fragment: str
) -> None:
    status, body, _ = await post_batch(client, requests)
    assert fragment in assert_graph_error(status, body, http_status=400, code=100)["message"]


async def test_requests_with_surrounding_whitespace_are_accepted(client: TestClient) -> None:
    status, body, _ = await post_batch(client, "\n  " + json.dumps(upsert(product("a")), indent=2) + "\n")
    assert status == 200, body
    assert len(body["handles"]) == 1


async def test_item_type_is_required_and_must_be_product_item(client: TestClient) -> None:
    fields = {"access_token": TOKEN, "requests": json.dumps(upsert(product("a")))}
    response = await client.post(BATCH_PATH, data=multipart(fields))
    error = assert_graph_error(response.status, await response.json(), http_status=400, code=100)
    assert "item_type is required" in error["message"]

    status, body, _ = await post_batch(client, upsert(product("a")), item_type="HOTEL")
    assert "PRODUCT_ITEM" in assert_graph_error(status, body, http_status=400, code=100)["message"]


async def test_more_than_5000_records_is_refused(client: TestClient) -> None:
    deletes = [{"method": "DELETE", "data": {"id": f"sku-{n}"}} for n in range(5001)]
    status, body, _ = await post_batch(client, deletes)
    error = assert_graph_error(status, body, http_status=400, code=100)
    assert "at most 5000" in error["message"]
    assert "5001" in error["message"]

    status, body, _ = await post_batch(client, deletes[:5000])
    assert status == 200, body
    assert len(body["handles"]) == 1


async def test_a_payload_over_28_mb_gets_meta_error_code_1(client: TestClient) -> None:
    description = "x" * 28_000_000
    status, body, _ = await post_batch(client, upsert(product("huge", description=description)))
    error = assert_graph_error(status, body, http_status=500, code=1)
    assert error["message"].startswith("Please reduce the amount of data you're asking for")
    assert state_of(client).items(CATALOG) == {}


async def test_the_28_mb_limit_is_on_the_body_size(client: TestClient) -> None:
    requests = json.dumps([{"method": "DELETE", "data": {"id": "a"}}])
    head = f"access_token={TOKEN}&item_type=PRODUCT_ITEM&requests={quote(requests)}&padding=".encode()
    for size, expected_status in ((28_000_000, 200), (28_000_001, 500)):
        body = head + b"x" * (size - len(head))
        assert len(body) == size
        response = await client.post(
            BATCH_PATH, data=body, headers={"Content-Type": "application/x-www-form-urlencoded"}
        )
        assert response.status == expected_status, (size, await response.text())


# Encodings and credentials


async def test_multipart_and_urlencoded_bodies_are_equivalent(client: TestClient) -> None:
    requests = json.dumps(upsert(product("a", title="Tasse à café ☕")), ensure_ascii=False)
    for encoding in ("multipart", "urlencoded"):
        status, body, _ = await post_batch(client, requests, encoding=encoding)
        assert status == 200, (encoding, body)
    calls = state_of(client).calls()
    expected_digest = hashlib.sha256(requests.encode("utf-8")).hexdigest()
    assert [call["payload_sha256"] for call in calls] == [expected_digest, expected_digest]
    assert [call["payload_bytes"] for call in calls] == [len(requests.encode("utf-8"))] * 2
    assert state_of(client).items(CATALOG)["a"]["title"] == "Tasse à café ☕"


async def test_a_hand_built_multipart_body_keeps_raw_utf8_bytes(client: TestClient) -> None:
    requests = json.dumps(upsert(product("ü", title="Größe")), ensure_ascii=False).encode("utf-8")
    boundary = "----emulator-test-boundary"
    parts = [("access_token", TOKEN.encode()), ("item_type", b"PRODUCT_ITEM"), ("requests", requests)]
    body = b"".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode() + value + b"\r\n"
        for name, value in parts
    )
    body += f"--{boundary}--\r\n".encode()
    response = await client.post(
        BATCH_PATH, data=body, headers={"Content-Type": f"multipart/form-data; boundary={boundary}"}
    )
    assert response.status == 200, await response.text()
    assert state_of(client).calls()[0]["payload_sha256"] == hashlib.sha256(requests).hexdigest()
    assert state_of(client).items(CATALOG)["ü"]["title"] == "Größe"


@pytest.mark.parametrize("scheme", ["Bearer", "OAuth", "bearer"])
async def test_the_token_may_come_in_the_authorization_header(client: TestClient, scheme: str) -> None:
    fields = {"item_type": "PRODUCT_ITEM", "requests": json.dumps(upsert(product("a")))}
    response = await client.post(
        BATCH_PATH, data=multipart(fields), headers={"Authorization": f"{scheme} {TOKEN}"}
    )
    assert response.status == 200, await response.text()
    response = await client.get(f"/{VERSION}/{CATALOG}", headers={"Authorization": f"{scheme} {TOKEN}"})
    assert (await response.json())["product_count"] == 1


async def test_the_token_may_come_in_the_query(client: TestClient) -> None:
    response = await client.post(
        f"{BATCH_PATH}?access_token={TOKEN}",
        data=multipart({"item_type": "PRODUCT_ITEM", "requests": json.dumps(upsert(product("a")))}),
    )
    assert response.status == 200, await response.text()


async def test_a_missing_or_unknown_token_is_error_190(client: TestClient) -> None:
    status, body, _ = await post_batch(client, upsert(product("a")), token=None)
    error = assert_graph_error(status, body, http_status=400, code=190)
    assert error["type"] == "OAuthException"
    assert error["message"].startswith("Error validating access token:")

    status, body, _ = await post_batch(client, upsert(product("a")), token="stolen-token-123")
    error = assert_graph_error(status, body, http_status=400, code=190)
    assert error["error_subcode"] == 463
    assert "stolen-token-123" not in json.dumps(body)

    response = await client.get(STATUS_PATH, params={"handle": "x"}, headers={"Authorization": "Bearer nope"})
    assert_graph_error(response.status, await response.json(), http_status=400, code=190)
    assert state_of(client).items(CATALOG) == {}


async def test_every_error_has_a_fresh_fbtrace_id(client: TestClient) -> None:
    traces = set()
    for _ in range(3):
        _, body, _ = await post_batch(client, upsert(product("a")), token="wrong")
        traces.add(body["error"]["fbtrace_id"])
    assert len(traces) == 3


class TestAnyToken:
    @pytest.fixture
    def emulator_config(self) -> EmulatorConfig:
        return EmulatorConfig(access_tokens=())

    async def test_an_empty_token_list_accepts_any_non_empty_token(self, client: TestClient) -> None:
        status, body, _ = await post_batch(client, upsert(product("a")), token="whatever")
        assert status == 200, body
        status, body, _ = await post_batch(client, upsert(product("a")), token=None)
        assert_graph_error(status, body, http_status=400, code=190)


class TestAppSecretProof:
    SECRET = "app-secret-value"

    @pytest.fixture
    def emulator_config(self) -> EmulatorConfig:
        return EmulatorConfig(app_secret=self.SECRET)

    def proof(self, secret: str) -> str:
        return hmac.new(secret.encode(), TOKEN.encode(), hashlib.sha256).hexdigest()

    async def test_a_correct_proof_is_accepted_on_every_endpoint(self, client: TestClient) -> None:
        status, body, _ = await post_batch(
            client, upsert(product("a")), appsecret_proof=self.proof(self.SECRET)
        )
        assert status == 200, body
        response = await client.get(
            STATUS_PATH,
            params={
                "handle": body["handles"][0],
                "access_token": TOKEN,
                "appsecret_proof": self.proof(self.SECRET),
            },
        )
        assert response.status == 200

    async def test_a_wrong_proof_is_error_100(self, client: TestClient) -> None:
        status, body, _ = await post_batch(client, upsert(product("a")), appsecret_proof=self.proof("other"))
        error = assert_graph_error(status, body, http_status=400, code=100)
        assert error["message"] == "Invalid appsecret_proof provided in the API argument"
        assert self.SECRET not in json.dumps(body)
        assert state_of(client).items(CATALOG) == {}

    async def test_a_missing_proof_is_error_100(self, client: TestClient) -> None:
        status, body, _ = await post_batch(client, upsert(product("a")))
        error = assert_graph_error(status, body, http_status=400, code=100)
        assert "appsecret_proof" in error["message"]
        response = await client.get(STATUS_PATH, params={"handle": "x", "access_token": TOKEN})
        assert_graph_error(response.status, await response.json(), http_status=400, code=100)


# Processing lifecycle


class TestProcessing:
    PROCESSING = 0.6

    @pytest.fixture
    def emulator_config(self) -> EmulatorConfig:
        return EmulatorConfig(processing_seconds=self.PROCESSING)

    async def test_a_handle_goes_dispatched_started_finished_and_applies_at_the_end(
        self, client: TestClient
    ) -> None:
        posted = time.monotonic()
        handle = await upsert_ok(client, product("a"))
        seen: list[str] = []
        while time.monotonic() - posted < 3:
            status = (await batch_status(client, handle))["status"]
            if not seen or seen[-1] != status:
                seen.append(status)
                # Items appear only once the handle is finished.
                assert ("a" in state_of(client).items(CATALOG)) == (status == "finished")
            if status == "finished":
                break
            await asyncio.sleep(0.05)
        assert seen == ["dispatched", "started", "finished"]
        assert time.monotonic() - posted >= self.PROCESSING

    async def test_an_update_may_follow_a_pending_create(self, client: TestClient) -> None:
        await upsert_ok(client, product("a"))
        # "a" exists once the first batch finishes, so a partial update is an update, not a create.
        status, body, _ = await post_batch(client, upsert({"id": "a", "price": "5 USD"}))
        assert status == 200
        assert body["validation_status"] == []
        await asyncio.sleep(self.PROCESSING + 0.05)
        assert state_of(client).items(CATALOG)["a"]["price"] == "5 USD"


async def test_with_no_processing_time_a_handle_is_finished_at_first_look(client: TestClient) -> None:
    handle = await upsert_ok(client, product("a"))
    assert (await batch_status(client, handle))["status"] == "finished"


async def test_handles_are_unique_and_opaque(client: TestClient) -> None:
    handles = [await upsert_ok(client, product(f"p{n}")) for n in range(20)]
    assert len(set(handles)) == 20
    assert all(len(handle) >= 20 for handle in handles)
    assert all(handle.replace("-", "").replace("_", "").isalnum() for handle in handles)


async def test_batch_status_needs_a_known_handle_of_that_catalog(client: TestClient) -> None:
    handle = await upsert_ok(client, product("a"))
    response = await client.get(STATUS_PATH, params={"access_token": TOKEN})
    assert (
        "handle is required"
        in assert_graph_error(response.status, await response.json(), http_status=400, code=100)["message"]
    )
    for catalog, unknown in ((CATALOG, "AcNotAHandle"), ("other-catalog", handle)):
        response = await client.get(
            f"/{VERSION}/{catalog}/check_batch_request_status",
            params={"access_token": TOKEN, "handle": unknown},
        )
        assert_graph_error(response.status, await response.json(), http_status=400, code=100)


async def test_error_priority_is_accepted(client: TestClient) -> None:
    handle = await upsert_ok(client, product("a"))
    assert (await batch_status(client, handle, error_priority="HIGH"))["status"] == "finished"


async def test_the_catalog_endpoint_counts_products(client: TestClient) -> None:
    await upsert_ok(client, product("a"), product("b"))
    response = await client.get(f"/{VERSION}/{CATALOG}", params={"access_token": TOKEN, "fields": "id,name"})
    body = await response.json()
    assert response.status == 200
    assert body["id"] == CATALOG
    assert body["product_count"] == 2
    assert body["name"]


async def test_unknown_paths_and_wrong_methods_are_error_100(client: TestClient) -> None:
    response = await client.get(f"/{VERSION}/{CATALOG}/product_feeds", params={"access_token": TOKEN})
    error = assert_graph_error(response.status, await response.json(), http_status=400, code=100)
    assert error["message"].startswith("Unknown path components")
    response = await client.get(BATCH_PATH, params={"access_token": TOKEN})
    error = assert_graph_error(response.status, await response.json(), http_status=400, code=100)
    assert error["message"].startswith("Unsupported get request")
    assert [call["endpoint"] for call in state_of(client).calls()] == ["unknown", "items_batch"]


# Budget


class TestBudget:
    # Two calls per 0.5 s window.
    @pytest.fixture
    def emulator_config(self) -> EmulatorConfig:
        return EmulatorConfig(batch_calls_per_minute=2, time_scale=120, throttle_regain_minutes=3)

    async def test_over_budget_calls_get_80014_with_usage_and_retry_after(self, client: TestClient) -> None:
        first = time.monotonic()
        status, _, headers = await post_batch(client, upsert(product("a")))
        assert status == 200
        usage = json.loads(headers["X-Business-Use-Case-Usage"])
        assert usage[CATALOG][0]["type"] == "catalog_batch"
        assert usage[CATALOG][0]["call_count"] == 50
        status, _, _ = await post_batch(client, upsert(product("b")))
        assert status == 200

        status, body, headers = await post_batch(client, upsert(product("c")))
        error = assert_graph_error(status, body, http_status=400, code=80014)
        assert error["type"] == "OAuthException"
        assert "too many calls to this Catalog" in error["message"]
        usage = json.loads(headers["X-Business-Use-Case-Usage"])
        assert usage == {
            CATALOG: [
                {
                    "type": "catalog_batch",
                    "call_count": 100,
                    "total_cputime": usage[CATALOG][0]["total_cputime"],
                    "total_time": usage[CATALOG][0]["total_time"],
                    "estimated_time_to_regain_access": 3,
                }
            ]
        }
        retry_after = float(headers["Retry-After"])
        elapsed = time.monotonic() - first
        # The window frees the first call 0.5 s after the server saw it, which was after `first`.
        assert 0.5 - elapsed <= retry_after <= 0.501
        # Another catalog has its own budget.
        status, _, _ = await post_batch(client, upsert(product("x")), catalog="other")
        assert status == 200

        await asyncio.sleep(retry_after)
        status, body, _ = await post_batch(client, upsert(product("c")))
        assert status == 200, body
        assert "c" in state_of(client).items(CATALOG)


class TestRefusedCallsAreFree:
    # One call per 0.4 s window.
    @pytest.fixture
    def emulator_config(self) -> EmulatorConfig:
        return EmulatorConfig(batch_calls_per_minute=1, time_scale=150)

    async def test_a_refused_call_does_not_consume_budget(self, client: TestClient) -> None:
        assert (await post_batch(client, upsert(product("a"))))[0] == 200
        retry_after = 0.0
        for _ in range(3):
            status, body, headers = await post_batch(client, upsert(product("b")))
            assert_graph_error(status, body, http_status=400, code=80014)
            retry_after = float(headers["Retry-After"])
        await asyncio.sleep(retry_after)
        # Had the refused calls counted, the window would still be full.
        assert (await post_batch(client, upsert(product("b"))))[0] == 200
        calls = state_of(client).calls()
        assert [call["error_code"] for call in calls] == [None, 80014, 80014, 80014, None]


# Faults


async def test_throttle_faults_answer_80014_and_80009(client: TestClient) -> None:
    handle = await upsert_ok(client, product("a"))
    state_of(client).set_faults(FaultPlan(throttle_next=2))
    status, body, headers = await post_batch(client, upsert(product("b")))
    assert_graph_error(status, body, http_status=400, code=80014)
    assert headers["Retry-After"] == "1"
    assert json.loads(headers["X-Business-Use-Case-Usage"])[CATALOG][0]["type"] == "catalog_batch"

    response = await client.get(STATUS_PATH, params={"handle": handle, "access_token": TOKEN})
    assert_graph_error(response.status, await response.json(), http_status=400, code=80009)
    assert response.headers["Retry-After"] == "1"
    usage = json.loads(response.headers["X-Business-Use-Case-Usage"])
    assert usage[CATALOG][0]["type"] == "catalog_management"

    assert (await batch_status(client, handle))["status"] == "finished"
    assert set(state_of(client).items(CATALOG)) == {"a"}


async def test_server_error_fault_answers_500_code_2(client: TestClient) -> None:
    state_of(client).set_faults(FaultPlan(server_error_next=2))
    for _ in range(2):
        status, body, _ = await post_batch(client, upsert(product("a")))
        error = assert_graph_error(status, body, http_status=500, code=2)
        assert error["message"] == "Service temporarily unavailable"
        assert error["is_transient"] is True
    assert (await post_batch(client, upsert(product("a"))))[0] == 200


async def test_server_error_ratio_is_random_but_reproducible_with_a_seed(client: TestClient) -> None:
    async def pattern() -> list[int]:
        state_of(client).set_faults(FaultPlan(server_error_ratio=0.5, seed=7))
        statuses = []
        for _ in range(30):
            response = await client.get(f"/{VERSION}/{CATALOG}", params={"access_token": TOKEN})
            statuses.append(response.status)
        return statuses

    first = await pattern()
    assert first == await pattern()
    assert set(first) == {200, 500}

    state_of(client).set_faults(FaultPlan(server_error_ratio=1.0))
    response = await client.get(f"/{VERSION}/{CATALOG}", params={"access_token": TOKEN})
    assert response.status == 500


async def test_latency_fault_delays_answers(client: TestClient) -> None:
    state_of(client).set_faults(FaultPlan(latency_seconds=0.3))
    started = time.monotonic()
    status, _, _ = await post_batch(client, upsert(product("a")))
    assert status == 200
    assert time.monotonic() - started >= 0.3


async def test_drop_fault_closes_the_connection_without_an_answer(client: TestClient) -> None:
    state_of(client).set_faults(FaultPlan(drop_next=1))
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await post_batch(client, upsert(product("a")))
    assert state_of(client).items(CATALOG) == {}
    assert (await post_batch(client, upsert(product("a"))))[0] == 200
    assert [call["status"] for call in state_of(client).calls()] == [None, 200]


async def test_error_handles_end_in_error_and_apply_nothing(client: TestClient) -> None:
    state_of(client).set_faults(FaultPlan(error_handles_next=1))
    failed = await upsert_ok(client, product("a"))
    fine = await upsert_ok(client, product("b"))
    assert (await batch_status(client, failed))["status"] == "error"
    assert (await batch_status(client, fine))["status"] == "finished"
    assert set(state_of(client).items(CATALOG)) == {"b"}


async def test_stuck_handles_stay_started(client: TestClient) -> None:
    state_of(client).set_faults(FaultPlan(stuck_handles_next=1))
    stuck = await upsert_ok(client, product("a"))
    fine = await upsert_ok(client, product("b"))
    await asyncio.sleep(0.05)
    assert (await batch_status(client, stuck))["status"] == "started"
    assert (await batch_status(client, fine))["status"] == "finished"
    assert set(state_of(client).items(CATALOG)) == {"b"}


async def test_control_endpoints_are_never_faulted_or_logged(client: TestClient) -> None:
    state_of(client).set_faults(FaultPlan(throttle_next=1, server_error_ratio=0.0))
    for path in ("/_emulator/health", "/_emulator/calls", f"/_emulator/catalogs/{CATALOG}/items"):
        assert (await client.get(path)).status == 200
    assert state_of(client).calls() == []
    status, body, _ = await post_batch(client, upsert(product("a")))
    assert_graph_error(status, body, http_status=400, code=80014)


async def test_unknown_fault_options_are_rejected() -> None:
    with pytest.raises(ValueError, match="throttle_nxt"):
        FaultPlan.from_mapping({"throttle_nxt": 1})
    with pytest.raises(ValueError, match="server_error_ratio"):
        FaultPlan(server_error_ratio=1.5)
    with pytest.raises(ValueError, match="drop_next"):
        FaultPlan(drop_next=-1)


# Call log and secrets


async def test_the_call_log_describes_each_graph_call(client: TestClient) -> None:
    requests = json.dumps(upsert(product("a"), product("b")))
    before = time.time()
    _, body, _ = await post_batch(client, requests)
    handle = body["handles"][0]
    await batch_status(client, handle)
    await post_batch(client, requests, token="bad")

    batch_call, status_call, refused_call = state_of(client).calls()
    assert batch_call == {
        "time": batch_call["time"],
        "method": "POST",
        "endpoint": "items_batch",
        "catalog_id": CATALOG,
        "status": 200,
        "error_code": None,
        "handle": handle,
        "record_count": 2,
        "payload_sha256": hashlib.sha256(requests.encode()).hexdigest(),
        "payload_bytes": len(requests),
    }
    assert before <= batch_call["time"] <= time.time()
    assert status_call["endpoint"] == "check_batch_request_status"
    assert status_call["method"] == "GET"
    assert status_call["handle"] == handle
    assert status_call["payload_sha256"] is None
    assert refused_call["status"] == 400
    assert refused_call["error_code"] == 190


class TestSecretsStayOut:
    TOKEN_VALUE = "very-secret-token-value"
    SECRET = "very-secret-app-secret"

    @pytest.fixture
    def emulator_config(self) -> EmulatorConfig:
        return EmulatorConfig(access_tokens=(self.TOKEN_VALUE,), app_secret=self.SECRET)

    async def test_no_token_or_secret_in_call_log_answers_or_logs(
        self, client: TestClient, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.DEBUG)
        proof = hmac.new(self.SECRET.encode(), self.TOKEN_VALUE.encode(), hashlib.sha256).hexdigest()
        status, body, _ = await post_batch(
            client, upsert(product("a")), token=self.TOKEN_VALUE, appsecret_proof=proof
        )
        assert status == 200, body
        query = f"handle={quote(body['handles'][0])}&access_token={self.TOKEN_VALUE}&appsecret_proof={proof}"
        response = await client.get(f"{STATUS_PATH}?{query}")
        answers = [json.dumps(body), await response.text()]
        response = await client.get(
            f"/{VERSION}/{CATALOG}?access_token={self.TOKEN_VALUE}&appsecret_proof=bad"
        )
        answers.append(await response.text())
        assert response.status == 400

        everything = "\n".join([json.dumps(state_of(client).calls()), *answers, caplog.text])
        assert self.TOKEN_VALUE not in everything
        assert self.SECRET not in everything
        assert proof not in everything
        assert self.SECRET not in repr(state_of(client).config)
        # The access log still records the calls, with credentials masked.
        assert "access_token=REDACTED" in caplog.text
