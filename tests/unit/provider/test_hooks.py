"""Both hooks against the same scripted answers: same results, same exceptions, same retries."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest
import responses
from aioresponses import aioresponses

from facebook_catalog.feed.batching import encoded_update
from facebook_catalog.hooks.catalog import FacebookCatalogAsyncHook, FacebookCatalogHook
from facebook_catalog.hooks.graph_api import (
    GraphApiRetryPolicy,
    PermanentGraphApiError,
    ThrottledGraphApiError,
    TransientGraphApiError,
    appsecret_proof,
)
from tests.conftest import TEST_APP_SECRET, TEST_CATALOG_ID, TEST_TOKEN

HOST = "https://graph.example.test"
ITEMS_URL = f"{HOST}/v25.0/{TEST_CATALOG_ID}/items_batch"
STATUS_URL = f"{HOST}/v25.0/{TEST_CATALOG_ID}/check_batch_request_status"
FAST = GraphApiRetryPolicy(
    max_transient_retries=2, max_throttled_retries=2, backoff_base=0.0, max_throttle_wait=0.01
)
PAYLOAD = (
    b"[" + b",".join(encoded_update(item)[0] for item in ({"id": "a", "title": "قميص"}, {"id": "b"})) + b"]"
)


def error_body(code: int, message: str = "failure") -> dict[str, Any]:
    return {"error": {"message": message, "type": "OAuthException", "code": code, "fbtrace_id": "TRACE1"}}


OK_BATCH = (200, {"handles": ["h-1"], "validation_status": []}, {})
THROTTLED = (400, error_body(80014, "too many calls to this catalog"), {"Retry-After": "0.001"})
SERVER_ERROR = (500, error_body(2, "Service temporarily unavailable"), {})
BAD_TOKEN = (400, error_body(190, "Error validating access token"), {})


def status_answer(status: str) -> tuple[int, dict[str, Any], dict[str, str]]:
    return (200, {"data": [{"handle": "h-1", "status": status, "errors_total_count": 0}]}, {})


# Each scenario: scripted answers, then what the call must produce.
SCENARIOS: dict[str, tuple[list[tuple[int, dict[str, Any], dict[str, str]]], Any]] = {
    "ok": ([OK_BATCH], "h-1"),
    "5xx then ok": ([SERVER_ERROR, SERVER_ERROR, OK_BATCH], "h-1"),
    "throttled then ok": ([THROTTLED, OK_BATCH], "h-1"),
    "5xx until retries run out": ([SERVER_ERROR] * 3, TransientGraphApiError),
    "throttled until retries run out": ([THROTTLED] * 3, ThrottledGraphApiError),
    "bad token fails at once": ([BAD_TOKEN, OK_BATCH], PermanentGraphApiError),
    "nothing ingested": ([(200, {"handles": [], "validation_status": [{"retailer_id": "a"}]}, {})], None),
}


def run_sync(answers: list[tuple[int, dict[str, Any], dict[str, str]]]) -> tuple[Any, list[Any]]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        for status, body, headers in answers:
            mock.add(responses.POST, ITEMS_URL, json=body, status=status, headers=headers)
        hook = FacebookCatalogHook(retry_policy=FAST)
        try:
            result: Any = hook.send_items_batch(PAYLOAD, 2).handle
        except Exception as exc:
            result = exc
        return result, list(mock.calls)


def run_async(answers: list[tuple[int, dict[str, Any], dict[str, str]]]) -> tuple[Any, list[Any]]:
    async def go() -> Any:
        hook = FacebookCatalogAsyncHook(retry_policy=FAST)
        try:
            return (await hook.send_items_batch(PAYLOAD, 2)).handle
        except Exception as exc:
            return exc

    with aioresponses() as mock:
        for status, body, headers in answers:
            mock.post(ITEMS_URL, payload=body, status=status, headers=headers)
        result = asyncio.run(go())
        calls = [c for key, cs in mock.requests.items() for c in cs]
    return result, calls


@pytest.mark.parametrize("scenario", list(SCENARIOS))
@pytest.mark.parametrize("runner", [run_sync, run_async], ids=["sync", "async"])
def test_both_hooks_behave_the_same(
    scenario: str, runner: Callable[..., Any], catalog_connection: Any
) -> None:
    catalog_connection(host=HOST)
    answers, expected = SCENARIOS[scenario]
    result, calls = runner(answers)
    if isinstance(expected, type):
        assert isinstance(result, expected), result
        expected_calls = 1 if expected is PermanentGraphApiError else 3
        assert len(calls) == expected_calls
        assert TEST_TOKEN not in str(result)
    else:
        assert result == expected
        assert len(calls) == len(answers)


def test_sync_hook_sends_multipart_with_token_in_header(catalog_connection: Any) -> None:
    catalog_connection(host=HOST, app_secret=TEST_APP_SECRET)
    with responses.RequestsMock() as mock:
        mock.add(responses.POST, ITEMS_URL, json=OK_BATCH[1])
        FacebookCatalogHook().send_items_batch(PAYLOAD, 2)
        request = mock.calls[0].request
    assert request.headers["Authorization"] == f"Bearer {TEST_TOKEN}"
    assert request.headers["Content-Type"].startswith("multipart/form-data")
    body: bytes = request.body  # type: ignore[assignment]
    assert PAYLOAD in body  # raw UTF-8, not percent-encoded
    assert b'name="item_type"\r\n\r\nPRODUCT_ITEM' in body
    assert b'name="allow_upsert"\r\n\r\ntrue' in body
    assert appsecret_proof(TEST_TOKEN, TEST_APP_SECRET).encode() in body
    assert TEST_TOKEN not in request.url
    assert b"filename" not in body


def test_async_hook_sends_multipart_text_fields(catalog_connection: Any) -> None:
    catalog_connection(host=HOST, app_secret=TEST_APP_SECRET)

    async def go() -> None:
        await FacebookCatalogAsyncHook().send_items_batch(PAYLOAD, 2)

    with aioresponses() as mock:
        mock.post(ITEMS_URL, payload=OK_BATCH[1])
        asyncio.run(go())
        (call,) = next(iter(mock.requests.values()))
    assert call.kwargs["headers"]["Authorization"] == f"Bearer {TEST_TOKEN}"
    form = call.kwargs["data"]
    fields = {f[0]["name"]: f[2] for f in form._fields}
    assert fields["requests"] == PAYLOAD.decode()
    assert fields["appsecret_proof"] == appsecret_proof(TEST_TOKEN, TEST_APP_SECRET)
    assert form.is_multipart


@pytest.mark.parametrize("runner", ["sync", "async"])
def test_status_read_asks_for_invalid_ids(runner: str, catalog_connection: Any) -> None:
    catalog_connection(host=HOST)
    body = {
        "data": [
            {
                "handle": "h-1",
                "status": "finished",
                "errors": [{"line": 1, "id": "b", "message": "price is invalid"}],
                "errors_total_count": 1,
                "warnings_total_count": 0,
                "ids_of_invalid_requests": ["b"],
            }
        ]
    }
    pattern = re.compile(re.escape(STATUS_URL) + r"\?.*")
    if runner == "sync":
        with responses.RequestsMock() as mock:
            mock.add(responses.GET, pattern, json=body)
            status = FacebookCatalogHook().get_batch_status("h-1")
            url = mock.calls[0].request.url
    else:
        with aioresponses() as mock:
            mock.get(pattern, payload=body)
            status = asyncio.run(FacebookCatalogAsyncHook().get_batch_status("h-1"))
            (key,) = mock.requests
            url = str(key[1])
    assert "load_ids_of_invalid_requests=true" in url
    assert "handle=h-1" in url
    assert TEST_TOKEN not in url
    assert status.status == "finished"
    assert status.ids_of_invalid_requests == ["b"]
    assert status.errors[0]["message"] == "price is invalid"


def test_throttle_wait_follows_metas_estimate(
    catalog_connection: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    catalog_connection(host=HOST)
    slept: list[float] = []
    monkeypatch.setattr("facebook_catalog.hooks.catalog.time.sleep", slept.append)
    usage = {TEST_CATALOG_ID: [{"type": "catalog_batch", "estimated_time_to_regain_access": 2}]}
    with responses.RequestsMock() as mock:
        mock.add(
            responses.POST,
            ITEMS_URL,
            json=THROTTLED[1],
            status=400,
            headers={"X-Business-Use-Case-Usage": json.dumps(usage)},
        )
        mock.add(responses.POST, ITEMS_URL, json=OK_BATCH[1])
        hook = FacebookCatalogHook(retry_policy=GraphApiRetryPolicy(max_throttle_wait=600))
        assert hook.send_items_batch(PAYLOAD, 2).handle == "h-1"
    assert slept == [120.0]
    assert hook.throttled_retries == 1


def test_throttle_wait_is_capped(catalog_connection: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    catalog_connection(host=HOST)
    slept: list[float] = []
    monkeypatch.setattr("facebook_catalog.hooks.catalog.time.sleep", slept.append)
    with responses.RequestsMock() as mock:
        mock.add(responses.POST, ITEMS_URL, json=THROTTLED[1], status=400, headers={"Retry-After": "3600"})
        mock.add(responses.POST, ITEMS_URL, json=OK_BATCH[1])
        FacebookCatalogHook(retry_policy=GraphApiRetryPolicy(max_throttle_wait=45)).send_items_batch(
            PAYLOAD, 2
        )
    assert slept == [45]


def test_connection_resets_are_transient_and_retried(catalog_connection: Any) -> None:
    catalog_connection(host=HOST)
    import requests

    with responses.RequestsMock() as mock:
        mock.add(responses.POST, ITEMS_URL, body=requests.ConnectionError("Connection reset by peer"))
        mock.add(responses.POST, ITEMS_URL, json=OK_BATCH[1])
        assert FacebookCatalogHook(retry_policy=FAST).send_items_batch(PAYLOAD, 2).handle == "h-1"

    async def go() -> str | None:
        return (await FacebookCatalogAsyncHook(retry_policy=FAST).send_items_batch(PAYLOAD, 2)).handle

    with aioresponses() as amock:
        amock.post(ITEMS_URL, exception=asyncio.TimeoutError())
        amock.post(ITEMS_URL, payload=OK_BATCH[1])
        assert asyncio.run(go()) == "h-1"


def test_token_and_secret_never_reach_logs_or_errors(
    catalog_connection: Any, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    catalog_connection(host=HOST, app_secret=TEST_APP_SECRET)
    caplog.set_level(logging.DEBUG)
    echo = error_body(100, f"Invalid parameter access_token={TEST_TOKEN}")
    with responses.RequestsMock() as mock:
        mock.add(responses.POST, ITEMS_URL, json=SERVER_ERROR[1], status=500)
        mock.add(responses.POST, ITEMS_URL, json=echo, status=400)
        hook = FacebookCatalogHook(retry_policy=FAST)
        with pytest.raises(PermanentGraphApiError) as raised:
            hook.send_items_batch(PAYLOAD, 2)
    captured = capsys.readouterr()
    logs = caplog.text + captured.out + captured.err
    assert "retrying in" in logs  # the retry was logged, so the check below reads real log output
    for text in (str(raised.value), repr(raised.value), logs, repr(hook.settings)):
        assert TEST_TOKEN not in text
        assert TEST_APP_SECRET not in text


def test_test_connection_reports_catalog_or_reason(catalog_connection: Any) -> None:
    catalog_connection(host=HOST)
    url = re.compile(re.escape(f"{HOST}/v25.0/{TEST_CATALOG_ID}") + r"\?.*")
    with responses.RequestsMock() as mock:
        mock.add(responses.GET, url, json={"id": TEST_CATALOG_ID, "name": "Shop"})
        assert FacebookCatalogHook().test_connection() == (True, f"Reached catalog {TEST_CATALOG_ID} (Shop).")
    with responses.RequestsMock() as mock:
        mock.add(responses.GET, url, json=BAD_TOKEN[1], status=400)
        ok, message = FacebookCatalogHook().test_connection()
        assert not ok
        assert "invalid or expired" in message
        assert len(mock.calls) == 1


def test_test_connection_without_a_catalog_id_names_the_connections_field(catalog_connection: Any) -> None:
    # The API server tests the form under a random transient conn id; the fix is on the connection.
    catalog_connection(host=HOST, catalog_id="", conn_id="tmpxyz")
    ok, message = FacebookCatalogHook(facebook_catalog_conn_id="tmpxyz").test_connection()
    assert not ok
    assert "set the Catalog ID field (extra 'catalog_id') on this connection" in message
    assert "tmpxyz" not in message
    assert "operator" not in message


def test_catalog_id_argument_overrides_connection(catalog_connection: Any) -> None:
    catalog_connection(host=HOST)
    assert FacebookCatalogHook(catalog_id="555").settings.catalog_id == "555"
    assert asyncio.run(FacebookCatalogAsyncHook(catalog_id="556").get_settings()).catalog_id == "556"


def test_the_operators_synchronous_path_does_not_load_aiohttp() -> None:
    """aiohttp is the triggers' client; a task process that only posts does not carry it (4-7 MiB)."""
    script = (
        "import sys\n"
        "from airflow.providers.amazon.aws.hooks.s3 import S3Hook\n"
        # Airflow's own share: on 3.0 an operator's __init__ loads the core, whose API app loads aiohttp.
        "from airflow.providers.common.compat.sdk import BaseOperator\n"
        "BaseOperator(task_id='baseline')\n"
        "print('aiohttp' in sys.modules)\n"
        "from facebook_catalog.operators.items_batch import FacebookCatalogItemsBatchOperator\n"
        "from facebook_catalog.feed.spool import S3FeedRead\n"
        "FacebookCatalogItemsBatchOperator(task_id='t', catalog_id='1').hook\n"
        "print('aiohttp' in sys.modules)\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    loaded_by_airflow, loaded_after_ours = completed.stdout.split()
    if loaded_by_airflow == "True":
        pytest.skip("Airflow or the Amazon provider already loads aiohttp here")
    assert loaded_after_ours == "False"


def test_sync_hook_sends_localized_items_batch_without_allow_upsert_and_paces_it(
    catalog_connection: Any,
) -> None:
    catalog_connection(host=HOST, app_secret=TEST_APP_SECRET)
    localized_url = f"{HOST}/v25.0/{TEST_CATALOG_ID}/localized_items_batch"
    payload = json.dumps(
        [{"method": "CREATE", "localization": {"type": "LANGUAGE", "value": "en_XX"}, "data": {"id": "a"}}]
    ).encode()
    with responses.RequestsMock() as mock:
        mock.add(responses.POST, ITEMS_URL, json=OK_BATCH[1])
        mock.add(responses.POST, localized_url, json=THROTTLED[1], status=THROTTLED[0], headers=THROTTLED[2])
        mock.add(responses.POST, localized_url, json=OK_BATCH[1])
        hook = FacebookCatalogHook(retry_policy=FAST)
        hook.send_items_batch(PAYLOAD, 2)
        assert hook.send_localized_items_batch(payload, 1).handle == "h-1"
        request = mock.calls[2].request
    body: bytes = request.body  # type: ignore[assignment]
    assert payload in body
    assert b'name="item_type"\r\n\r\nPRODUCT_ITEM' in body
    assert b"allow_upsert" not in body  # localized_items_batch never creates items
    assert appsecret_proof(TEST_TOKEN, TEST_APP_SECRET).encode() in body
    assert TEST_TOKEN not in request.url
    # The 80014 it met is the Catalog Batch budget's, shared with items_batch: the pacer learned it.
    assert hook.throttled_retries == 1
    assert hook.items_batch_pacer.budget == 1  # one call in the window when Meta refused
