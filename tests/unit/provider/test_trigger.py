from __future__ import annotations

import asyncio
import re
import time
from typing import Any

import pytest
from aioresponses import aioresponses

from facebook_catalog.hooks.graph_api import BatchStatus, GraphApiRetryPolicy, PermanentGraphApiError
from facebook_catalog.triggers.items_batch import BatchStatusWait, FacebookCatalogBatchStatusTrigger
from tests.conftest import TEST_APP_SECRET, TEST_CATALOG_ID, TEST_TOKEN

HOST = "https://graph.example.test"
STATUS = re.compile(re.escape(f"{HOST}/v25.0/{TEST_CATALOG_ID}/check_batch_request_status") + r"\?.*")
FAST = GraphApiRetryPolicy(
    max_transient_retries=1, max_throttled_retries=2, backoff_base=0.0, max_throttle_wait=0.01
)


def make_trigger(
    handles: list[str], deadline_in: float = 30.0, poll: float = 0.01
) -> FacebookCatalogBatchStatusTrigger:
    return FacebookCatalogBatchStatusTrigger(
        handles=handles,
        catalog_id=TEST_CATALOG_ID,
        deadline=time.time() + deadline_in,
        poll_interval=poll,
        retry_policy=FAST.to_dict(),
    )


def status(handle: str, value: str, **extra: Any) -> dict[str, Any]:
    return {"data": [{"handle": handle, "status": value, "errors_total_count": 0, **extra}]}


def collect(trigger: FacebookCatalogBatchStatusTrigger) -> list[dict[str, Any]]:
    async def go() -> list[dict[str, Any]]:
        return [event.payload async for event in trigger.run()]

    return asyncio.run(go())


@pytest.fixture(autouse=True)
def _connection(catalog_connection: Any) -> None:
    catalog_connection(host=HOST, app_secret=TEST_APP_SECRET)


def test_kwargs_are_json_primitives_without_secrets_and_round_trip_through_airflow() -> None:
    from airflow.models.trigger import Trigger
    from airflow.providers.common.compat.module_loading import import_string
    from airflow.serialization.serialized_objects import BaseSerialization

    trigger = make_trigger(["h1", "h2"])
    classpath, kwargs = trigger.serialize()
    assert classpath == "facebook_catalog.triggers.items_batch.FacebookCatalogBatchStatusTrigger"
    assert set(kwargs) == {
        "handles",
        "catalog_id",
        "deadline",
        "poll_interval",
        "facebook_catalog_conn_id",
        "retry_policy",
    }
    for text in (str(kwargs), repr(trigger)):
        assert TEST_TOKEN not in text
        assert TEST_APP_SECRET not in text
    # The same path the scheduler and triggerer take: the Trigger row's encrypted kwargs, then
    # Airflow's serializer, then a new instance from the class path.
    row = Trigger.from_object(trigger)
    assert row.classpath == classpath
    restored_kwargs = BaseSerialization.deserialize(BaseSerialization.serialize(row.kwargs))
    restored = import_string(row.classpath)(**restored_kwargs)
    assert restored.serialize() == (classpath, kwargs)


def test_all_handles_finished() -> None:
    with aioresponses() as mock:
        mock.get(STATUS, payload=status("h1", "started"))
        mock.get(STATUS, payload=status("h2", "finished", warnings_total_count=3))
        mock.get(
            STATUS, payload=status("h1", "finished", errors_total_count=1, ids_of_invalid_requests=["x"])
        )
        events = collect(make_trigger(["h1", "h2"]))
    assert len(events) == 1
    (event,) = events
    assert event["status"] == "success"
    by_handle = {b["handle"]: b for b in event["batches"]}
    assert [b["handle"] for b in event["batches"]] == ["h1", "h2"]
    assert by_handle["h1"]["ids_of_invalid_requests"] == ["x"]
    assert by_handle["h2"]["warnings_total_count"] == 3


@pytest.mark.parametrize("final", ["error", "canceled", "FINISHED"])
def test_any_final_status_ends_the_wait(final: str) -> None:
    with aioresponses() as mock:
        mock.get(STATUS, payload=status("h1", "dispatched"))
        mock.get(STATUS, payload=status("h1", final))
        (event,) = collect(make_trigger(["h1"]))
    assert event["status"] == "success"
    assert event["batches"][0]["status"] == final.lower()


def test_deadline_names_the_pending_handles() -> None:
    with aioresponses() as mock:
        mock.get(STATUS, payload=status("h1", "finished"), repeat=True)
        trigger = make_trigger(["h1", "h2"], deadline_in=0.3, poll=0.05)
        mock.get(STATUS, payload=status("h2", "started"), repeat=True)
        started = time.monotonic()
        (event,) = collect(trigger)
    assert time.monotonic() - started < 5
    assert event["status"] == "error"
    assert event["reason"] == "deadline"
    assert "h2" in event["message"]
    assert event["pending_handles"] in (["h2"], ["h1", "h2"])


def test_throttled_then_finished() -> None:
    throttled = {"error": {"message": "Too many calls", "type": "OAuthException", "code": 80009}}
    with aioresponses() as mock:
        mock.get(STATUS, status=400, payload=throttled, headers={"Retry-After": "0.001"})
        mock.get(STATUS, payload=status("h1", "finished"))
        trigger = make_trigger(["h1"])
        (event,) = collect(trigger)
    assert event["status"] == "success"
    assert event["throttled_retries"] == 1


def test_transient_failures_past_retries_keep_polling_until_finished() -> None:
    down = {"error": {"message": "Service unavailable", "code": 2}}
    with aioresponses() as mock:
        for _ in range(4):
            mock.get(STATUS, status=503, payload=down)
        mock.get(STATUS, payload=status("h1", "finished"))
        (event,) = collect(make_trigger(["h1"]))
    assert event["status"] == "success"


def test_permanent_error_ends_with_an_error_event() -> None:
    expired = {"error": {"message": "Error validating access token", "type": "OAuthException", "code": 190}}
    with aioresponses() as mock:
        mock.get(STATUS, status=400, payload=expired, repeat=True)
        (event,) = collect(make_trigger(["h1"]))
    assert event["status"] == "error"
    assert event["reason"] == "graph_api_error"
    assert event["error"]["code"] == 190
    assert "invalid or expired" in event["message"]
    assert TEST_TOKEN not in str(event)


def test_running_twice_gives_the_same_event() -> None:
    with aioresponses() as mock:
        mock.get(STATUS, payload=status("h1", "finished"), repeat=True)
        trigger = make_trigger(["h1"])
        first = collect(trigger)
        again = collect(FacebookCatalogBatchStatusTrigger(**trigger.serialize()[1]))
    assert [e["batches"] for e in first] == [e["batches"] for e in again]


def test_the_wait_decides_each_round_for_trigger_and_worker_alike() -> None:
    wait = BatchStatusWait(TEST_CATALOG_ID, ["h1", "h2"], deadline=time.time() + 60)
    wait.keep([BatchStatus("h1", "started"), BatchStatus("h2", "finished")])
    assert wait.end_round() is None
    assert wait.pending == ["h1"]
    assert 0 < wait.next_round_in(5.0) <= 5.0
    wait.keep([BatchStatus("h1", "error")])
    event = wait.end_round()
    assert event is not None
    assert event["status"] == "success"
    assert [b["handle"] for b in event["batches"]] == ["h1", "h2"]


def test_the_wait_ends_at_the_deadline_or_on_a_permanent_error() -> None:
    late = BatchStatusWait(TEST_CATALOG_ID, ["h1", "h2"], deadline=time.time() - 1)
    late.keep([BatchStatus("h2", "finished")])
    event = late.end_round()
    assert event is not None
    assert (event["status"], event["reason"], event["pending_handles"]) == ("error", "deadline", ["h1"])
    assert event["message"].endswith("still pending: h1")
    assert [b["handle"] for b in event["batches"]] == ["h2"]

    error = PermanentGraphApiError("token expired", code=190)
    failed = BatchStatusWait(TEST_CATALOG_ID, ["h1"], deadline=time.time() + 60).failed(error)
    assert (failed["status"], failed["reason"], failed["message"]) == ("error", "graph_api_error", str(error))
    assert (failed["pending_handles"], failed["error"]["code"]) == (["h1"], 190)
