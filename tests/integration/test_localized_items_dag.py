# The fixtures of test_sync_dag are imported, and then named as parameters.
# ruff: noqa: F811
"""Localized overrides through the hourly DAG: real Airflow, moto S3, the Graph API emulator.

The retailer's rows are Arabic with English columns (``title_en``, ``description_en``) and a
country price (``price_AE``). The Arabic item goes through items_batch; the overrides through
localized_items_batch, once Meta has confirmed the item.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from typing import Any

import pytest

from facebook_catalog.sync import ledger
from tests.fixtures.airflow import DagRunResult
from tests.integration.test_sync_dag import (  # noqa: F401 - fixtures
    CATALOG,
    DAG_ID,
    emulator_config,
    keys,
    put,
    read,
    report_of,
    sync_env,
)

pytestmark = pytest.mark.integration

HOUR = 3600
START = 1_900_000_000
HEADER = "id,title,description,link,image_link,availability,price,brand,title_en,description_en,price_AE\n"


def row(pid: str, title_ar: str, title_en: str, price_ae: str = "95 AED") -> str:
    return (
        f'{pid},"{title_ar}","وصف {title_ar}",https://shop.example.com/{pid},'
        f"https://cdn.example.com/{pid}.jpg,in stock,25000 IQD,Acme,"
        f'"{title_en}","About {title_en}",{price_ae}\n'
    )


class Clock:
    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.now = START
        monkeypatch.setattr(ledger, "utc_now", lambda: self.now)

    def advance(self, hours: float) -> None:
        self.now += int(hours * HOUR)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    return Clock(monkeypatch)


def calls_of(emulator: Any, since: int, endpoint: str) -> list[dict[str, Any]]:
    return [c for c in emulator.calls()[since:] if c["endpoint"] == endpoint and c["status"] == 200]


def open_rejections(s3: Any) -> list[dict[str, str]]:
    body = read(s3, s3.synced, f"ledger/{CATALOG}/open_rejections.csv").decode("utf-8")
    return list(csv.DictReader(io.StringIO(body)))


def localized_requests(s3: Any, run_id: str) -> list[dict[str, Any]]:
    report = report_of(s3, run_id)
    return [
        request
        for key in report["records"].get("localized_payloads") or []
        for request in json.loads(read(s3, s3.synced, key))
    ]


def test_arabic_items_with_english_overrides_read_back_in_both_languages(
    sync_env: dict[str, Any], run_dag: Callable[..., DagRunResult], clock: Clock
) -> None:
    s3, emulator = sync_env["buckets"], sync_env["emulator"]
    put(s3, "landing/a.csv", HEADER + row("p1", "قميص قطني", "Cotton shirt") + row("p2", "حذاء", "Shoes"))
    first = run_dag(DAG_ID)
    assert first.state == "success", first.output[-3000:]
    items = emulator.items(CATALOG)
    assert items["p1"]["title"] == "قميص قطني"
    # Meta had not confirmed p1 and p2 when the run posted: their overrides wait in the ledger.
    assert all("override_details" not in item for item in items.values())
    counts = report_of(s3, first.run_id)["counts"]
    assert (counts["items_sent"], counts["overrides_sent"], counts["overrides_held"]) == (2, 0, 4)
    assert keys(s3, s3.landing, "landing/") == []  # archived: the held overrides are in the ledger
    assert open_rejections(s3) == []  # waiting is not a rejection

    clock.advance(1)
    before = len(emulator.calls())
    second = run_dag(DAG_ID)  # no landing file: the held overrides are the work
    assert second.state == "success", second.output[-3000:]
    assert calls_of(emulator, before, "items_batch") == []
    localized_calls = calls_of(emulator, before, "localized_items_batch")
    # One localization a call: the English one and the UAE one.
    assert sorted(c["record_count"] for c in localized_calls) == [2, 2]
    p1 = emulator.items(CATALOG)["p1"]
    assert p1["title"] == "قميص قطني"  # the base language stays Arabic
    assert p1["override_details"] == [
        {"type": "country", "key": "AE", "values": {"price": "95 AED"}},
        {
            "type": "language",
            "key": "en_XX",
            "values": {"title": "Cotton shirt", "description": "About Cotton shirt"},
        },
    ]
    requests = localized_requests(s3, second.run_id)
    assert {r["method"] for r in requests} == {"CREATE"}
    assert {r["localization"]["type"] for r in requests} == {"LANGUAGE", "COUNTRY"}
    counts = report_of(s3, second.run_id)["counts"]
    assert (counts["overrides_sent"], counts["overrides_held"], counts["items_sent"]) == (4, 0, 0)
    assert counts["rejections_closed"] == 0  # sending what waited closes no rejection

    # A changed English title alone: one localized request, no items_batch call.
    clock.advance(1)
    put(s3, "landing/b.csv", HEADER + row("p1", "قميص قطني", "Cotton T-shirt") + row("p2", "حذاء", "Shoes"))
    before = len(emulator.calls())
    third = run_dag(DAG_ID)
    assert third.state == "success", third.output[-3000:]
    assert calls_of(emulator, before, "items_batch") == []
    (call,) = calls_of(emulator, before, "localized_items_batch")
    assert call["record_count"] == 1
    (request,) = localized_requests(s3, third.run_id)
    assert request["method"] == "UPDATE"
    assert request["data"] == {"id": "p1", "title": "Cotton T-shirt", "description": "About Cotton T-shirt"}
    details = {d["key"]: d["values"] for d in emulator.items(CATALOG)["p1"]["override_details"]}
    assert details["en_XX"]["title"] == "Cotton T-shirt"
    counts = report_of(s3, third.run_id)["counts"]
    assert (counts["items_unchanged"], counts["overrides_unchanged"], counts["overrides_sent"]) == (2, 3, 1)


def test_an_override_meta_rejects_is_an_open_rejection_retried_on_schedule(
    sync_env: dict[str, Any],
    run_dag: Callable[..., DagRunResult],
    clock: Clock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    s3, emulator = sync_env["buckets"], sync_env["emulator"]
    monkeypatch.setenv("AIRFLOW_VAR_FACEBOOK_CATALOG_MAX_ERROR_RATIO", "1")
    put(s3, "landing/a.csv", HEADER + row("p1", "قميص", "Shirt"))
    assert run_dag(DAG_ID).state == "success"
    # The item disappears on Meta's side (deleted in Commerce Manager) after the ledger confirmed it.
    emulator.reset()
    clock.advance(1)
    rejected = run_dag(DAG_ID)
    assert rejected.state == "success", rejected.output[-3000:]
    found = {r["id"]: r for r in open_rejections(s3)}
    assert sorted(found) == ["p1|COUNTRY|AE", "p1|LANGUAGE|en_XX"]
    english = found["p1|LANGUAGE|en_XX"]
    assert english["outcome"] == "rejected_by_meta"
    assert "never creates items" in english["reason"]
    assert english["code"] == "10803"
    assert english["attempts"] == "1"
    assert report_of(s3, rejected.run_id)["counts"]["rejections_new"] == 2

    clock.advance(0.5)  # before the 1 h retry: nothing due, no call
    before = len(emulator.calls())
    assert run_dag(DAG_ID).task_states["sync_catalog"] == "skipped"
    assert calls_of(emulator, before, "localized_items_batch") == []

    clock.advance(0.5)  # the retry is due: sent again from the stored payload
    retried = run_dag(DAG_ID)
    assert retried.state == "success", retried.output[-3000:]
    assert len(localized_requests(s3, retried.run_id)) == 2
    assert {r["id"]: r["attempts"] for r in open_rejections(s3)} == {
        "p1|COUNTRY|AE": "2",
        "p1|LANGUAGE|en_XX": "2",
    }
    assert report_of(s3, retried.run_id)["counts"]["rejections_retried"] == 2


def test_an_override_of_an_item_meta_refused_waits_until_meta_confirms_the_item(
    sync_env: dict[str, Any],
    run_dag: Callable[..., DagRunResult],
    clock: Clock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    s3, emulator = sync_env["buckets"], sync_env["emulator"]
    monkeypatch.setenv("AIRFLOW_VAR_FACEBOOK_CATALOG_MAX_ERROR_RATIO", "1")
    emulator.set_faults(reject_item_ids=["p1"])
    put(s3, "landing/a.csv", HEADER + row("p1", "قميص", "Shirt"))
    first = run_dag(DAG_ID)
    assert first.state == "success", first.output[-3000:]
    assert "p1" not in emulator.items(CATALOG)
    assert [r["id"] for r in open_rejections(s3)] == ["p1"]  # the item; its overrides wait

    clock.advance(0.5)  # the item's retry is not due, and its overrides wait for it: no work
    before = len(emulator.calls())
    assert run_dag(DAG_ID).task_states["sync_catalog"] == "skipped"
    assert emulator.calls()[before:] == []

    emulator.set_faults()  # fixed on Meta's side
    fixed = run_dag(DAG_ID, {"retry_rejected": True})
    assert fixed.state == "success", fixed.output[-3000:]
    assert emulator.items(CATALOG)["p1"]["title"] == "قميص"
    assert localized_requests(s3, fixed.run_id) == []  # Meta confirmed p1 only as this run ended

    clock.advance(0.1)
    released = run_dag(DAG_ID)
    assert released.state == "success", released.output[-3000:]
    assert len(localized_requests(s3, released.run_id)) == 2
    details = {d["key"]: d["values"] for d in emulator.items(CATALOG)["p1"]["override_details"]}
    assert details == {"AE": {"price": "95 AED"}, "en_XX": {"title": "Shirt", "description": "About Shirt"}}
    assert open_rejections(s3) == []
