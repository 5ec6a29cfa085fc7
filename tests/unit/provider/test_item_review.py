"""Meta's review of a run's items: the wait's decisions (hooks/graph_api.py), the review trigger
over aioresponses, and the ledger rule that turns a review rejection into an open rejection."""

from __future__ import annotations

import asyncio
import json
import re
import time
from typing import Any
from urllib.parse import parse_qs

import pytest
from aioresponses import CallbackResult, aioresponses

from facebook_catalog.feed.change_detection import SentHashes, id_hash
from facebook_catalog.hooks.graph_api import (
    GraphApiRetryPolicy,
    ItemReviewWait,
    MetaItemError,
    review_rejection,
)
from facebook_catalog.sync.ledger import LedgerEntry, RunAnswer, settle_run
from facebook_catalog.triggers.item_review import FacebookCatalogItemReviewTrigger
from tests.conftest import TEST_APP_SECRET, TEST_CATALOG_ID, TEST_TOKEN

HOST = "https://graph.example.test"
PRODUCTS = re.compile(re.escape(f"{HOST}/v25.0/{TEST_CATALOG_ID}/products") + r"(\?.*)?$")
FAST = GraphApiRetryPolicy(
    max_transient_retries=1, max_throttled_retries=2, backoff_base=0.0, max_throttle_wait=0.01
)
IMAGE_ERROR = {
    "error_type": "IMAGE_FETCH_FAILED",
    "error_priority": "HIGH",
    "title": "Image couldn't be downloaded",
    "description": "Check image_link",
}
T0 = 1_800_000_000


def item(retailer_id: str, status: str = "approved", *errors: dict[str, Any]) -> dict[str, Any]:
    return {"retailer_id": retailer_id, "review_status": status, "errors": list(errors)}


# ------------------------------------------------------------------ what counts as rejected


@pytest.mark.parametrize(
    ("read", "expected"),
    [
        (item("a"), None),
        (item("a", "pending"), None),
        (
            item("a", "rejected", IMAGE_ERROR),
            MetaItemError("Image couldn't be downloaded: Check image_link", "IMAGE_FETCH_FAILED"),
        ),
        (item("a", "approved", {**IMAGE_ERROR, "error_priority": "LOW"}), None),  # advice only
        (item("a", "", {"message": "Policy"}), MetaItemError("Policy")),  # no priority: counts
        (item("a", "rejected"), MetaItemError("Meta's review rejected this item (it shows no error text)")),
    ],
)
def test_an_item_is_rejected_by_a_high_error_or_a_rejected_review(
    read: dict[str, Any], expected: Any
) -> None:
    assert review_rejection(read) == expected


# ------------------------------------------------------------------ the wait


def test_the_wait_reads_only_pending_ids_again_and_ends_when_none_is_pending() -> None:
    wait = ItemReviewWait(TEST_CATALOG_ID, ["a", "b", "c", "d"], deadline=T0 + 60)
    wait.keep([item("a"), item("b", "pending"), item("c", "rejected", IMAGE_ERROR)])  # d: not in Meta
    assert wait.end_round(now=T0) is None
    assert wait.pending == ["b"]
    wait.keep([item("b", "approved")])
    event = wait.end_round(now=T0 + 10)
    assert event is not None
    assert event["status"] == "success"
    assert (event["checked"], event["unreviewed_count"], event["missing_count"]) == (4, 0, 1)
    assert event["rejected"] == {
        "c": {"message": "Image couldn't be downloaded: Check image_link", "code": "IMAGE_FETCH_FAILED"}
    }
    assert event["deadline_passed"] is False


def test_at_the_deadline_items_still_pending_are_unreviewed_and_a_cut_round_keeps_its_ids() -> None:
    wait = ItemReviewWait(TEST_CATALOG_ID, ["a", "b"], deadline=T0 + 60)
    wait.keep([item("a", "pending")])
    assert wait.end_round(complete=False, now=T0) is None  # b was not reached: still pending, not missing
    assert wait.pending == ["a", "b"]
    wait.keep([item("a", "pending"), item("b", "pending")])
    event = wait.end_round(now=T0 + 60)
    assert event is not None
    assert event["deadline_passed"] is True
    assert (event["unreviewed_count"], event["unreviewed_samples"], event["missing_count"]) == (
        2,
        ["a", "b"],
        0,
    )


# ------------------------------------------------------------------ the trigger


@pytest.fixture(autouse=True)
def _connection(catalog_connection: Any) -> None:
    catalog_connection(host=HOST, app_secret=TEST_APP_SECRET)


def make_trigger(
    ids: list[str], deadline_in: float = 30.0, **kwargs: Any
) -> FacebookCatalogItemReviewTrigger:
    return FacebookCatalogItemReviewTrigger(
        catalog_id=TEST_CATALOG_ID,
        retailer_ids=ids,
        deadline=time.time() + deadline_in,
        poll_interval=0.01,
        retry_policy=FAST.to_dict(),
        **kwargs,
    )


def collect(trigger: FacebookCatalogItemReviewTrigger) -> list[dict[str, Any]]:
    async def go() -> list[dict[str, Any]]:
        return [event.payload async for event in trigger.run()]

    return asyncio.run(go())


def test_kwargs_are_primitives_without_secrets_and_round_trip_through_airflow() -> None:
    from airflow.models.trigger import Trigger
    from airflow.providers.common.compat.module_loading import import_string
    from airflow.serialization.serialized_objects import BaseSerialization

    trigger = make_trigger(["a"], rejected={"z": {"message": "m", "code": None}}, checked=2, read_calls=1)
    classpath, kwargs = trigger.serialize()
    assert classpath == "facebook_catalog.triggers.item_review.FacebookCatalogItemReviewTrigger"
    for text in (json.dumps(kwargs), repr(trigger)):
        assert TEST_TOKEN not in text
        assert TEST_APP_SECRET not in text
    row = Trigger.from_object(trigger)
    restored_kwargs = BaseSerialization.deserialize(BaseSerialization.serialize(row.kwargs))
    assert import_string(row.classpath)(**restored_kwargs).serialize() == (classpath, kwargs)


def test_the_trigger_reads_until_the_review_ends_and_carries_the_first_looks_findings() -> None:
    answers = iter(
        [
            {"data": [item("a", "pending"), item("b", "pending")]},
            {"data": [item("a", "approved"), item("b", "rejected", IMAGE_ERROR)]},
        ]
    )
    asked: list[list[str]] = []

    def answer(url: Any, **kwargs: Any) -> CallbackResult:
        query = parse_qs(url.query_string) if url.query_string else {}
        params = {**{k: v[0] for k, v in query.items()}, **(kwargs.get("params") or {})}
        asked.append(json.loads(params["filter"])["retailer_id"]["is_any"])
        assert params["fields"] == "retailer_id,review_status,errors"
        return CallbackResult(payload=next(answers))

    with aioresponses() as mock:
        mock.get(PRODUCTS, callback=answer, repeat=True)
        (event,) = collect(
            make_trigger(["a", "b"], rejected={"z": {"message": "earlier", "code": None}}, checked=3)
        )
    assert asked == [["a", "b"], ["a", "b"]]
    assert event["status"] == "success"
    assert set(event["rejected"]) == {"b", "z"}
    assert event["checked"] == 3
    assert event["read_calls"] == 2
    assert event["waited_in_trigger"] is True


def test_a_permanent_error_ends_the_trigger_with_what_it_found() -> None:
    bad = {"error": {"message": "(#200) no permission", "type": "OAuthException", "code": 200}}
    with aioresponses() as mock:
        mock.get(PRODUCTS, payload=bad, status=403)
        (event,) = collect(make_trigger(["a"], rejected={"z": {"message": "earlier", "code": None}}))
    assert event["status"] == "error"
    assert "no permission" in event["message"]
    assert list(event["rejected"]) == ["z"]
    assert TEST_TOKEN not in json.dumps(event)


def test_transient_failures_are_read_again_until_the_deadline() -> None:
    with aioresponses() as mock:
        mock.get(PRODUCTS, status=500, payload={"error": {"message": "down", "code": 2}}, repeat=True)
        (event,) = collect(make_trigger(["a"], deadline_in=0.3))
    assert event["status"] == "success"
    assert event["deadline_passed"] is True
    assert event["unreviewed_count"] == 1


# ------------------------------------------------------------------ the ledger rule


def test_a_review_rejection_opens_a_rejection_with_metas_message_and_type_and_confirms_the_rest() -> None:
    sent = SentHashes()
    for item_id, content in (("a", 1), ("b", 2)):
        sent.ids.append(id_hash(item_id))
        sent.hashes.append(content)
    before = {
        id_hash("b"): LedgerEntry(
            "b", "rejected_by_feed", message="bad price", first_seen=T0, last_seen=T0, attempts=1
        )
    }
    answer = RunAnswer(
        calls=[("h1", 2)],
        statuses={"h1": "finished"},
        invalid_ids={"h1": ([], True)},
        review_rejections={"b": ("Image couldn't be downloaded: Check image_link", "IMAGE_FETCH_FAILED")},
    )

    def payloads(calls: set[int], wanted: set[int]) -> dict[int, tuple[str, str]]:
        assert (calls, wanted) == ({1}, {id_hash("b")})
        return {id_hash("b"): ("b", '{"data":{"id":"b"}}')}

    update = settle_run(before, sent, answer, payloads=payloads, now=T0 + 3600)
    assert [c.id_hash for c in update.confirmed] == [id_hash("a")]
    entry = update.open_entries[id_hash("b")]
    assert (entry.outcome, entry.code, entry.attempts) == ("rejected_by_meta", "IMAGE_FETCH_FAILED", 1)
    assert entry.message.startswith("Image couldn't be downloaded")
    assert entry.payload == '{"data":{"id":"b"}}'
    assert entry.next_retry == T0 + 3600 + 3600  # the first step of the retry schedule
    assert update.new_rejections == ["b"]
    assert update.unconfirmed == [id_hash("b")]  # Meta holds the rejected content now
