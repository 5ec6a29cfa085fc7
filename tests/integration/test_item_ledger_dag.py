# The fixtures of test_sync_dag are imported, and then named as parameters.
# ruff: noqa: F811
"""The item ledger through the hourly DAG: real Airflow, moto S3, the Graph API emulator.

A product Meta rejects never stalls the sync: landing drains every hour, the product is retried
on its schedule (or at once, on request, or when its row changes), and it stays visible in
``open_rejections.csv`` until Meta accepts it.
"""

from __future__ import annotations

import csv
import io
import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from facebook_catalog.feed import read_feed_file
from facebook_catalog.feed.change_detection import ItemHashes
from facebook_catalog.feed.model import FeedItem
from facebook_catalog.feed.spool import item_to_send
from facebook_catalog.storage.ledger_store import LedgerStore
from facebook_catalog.sync import ledger
from tests.fixtures.airflow import DagRunResult
from tests.integration.test_sync_dag import (  # noqa: F401 - fixtures
    CATALOG,
    DAG_ID,
    HEADER,
    emulator_config,
    keys,
    put,
    read,
    report_of,
    row,
    sync_env,
)

pytestmark = pytest.mark.integration

HOUR = 3600
START = 1_900_000_000  # the ledger's clock: the runs below are an hour apart on it


class Clock:
    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.now = START
        monkeypatch.setattr(ledger, "utc_now", lambda: self.now)

    def advance(self, hours: float) -> None:
        self.now += int(hours * HOUR)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    return Clock(monkeypatch)


def open_rejections(s3: Any) -> list[dict[str, str]]:
    body = read(s3, s3.synced, f"ledger/{CATALOG}/open_rejections.csv").decode("utf-8")
    return list(csv.DictReader(io.StringIO(body)))


def posted_ids(s3: Any, run_id: str) -> list[str]:
    """The item ids of every payload the run stored as sent."""
    report = report_of(s3, run_id)
    return [
        request["data"]["id"]
        for key in report["records"]["payloads"]
        for request in json.loads(read(s3, s3.synced, key))
    ]


def test_four_hours_with_a_product_meta_rejects_drain_landing_and_retry_on_schedule(
    sync_env: dict[str, Any], run_dag: Callable[..., DagRunResult], clock: Clock
) -> None:
    s3, emulator = sync_env["buckets"], sync_env["emulator"]
    emulator.set_faults(reject_item_ids=["bad-1"])  # Meta refuses this product on every call
    posts_of_bad = 0
    results = []
    for hour in range(4):
        put(s3, f"landing/h{hour}.csv", HEADER + row("bad-1", "Refused") + row(f"p{hour}", f"Product {hour}"))
        result = run_dag(DAG_ID)
        results.append(result)
        # Landing drains every hour, whatever Meta thinks of bad-1.
        assert keys(s3, s3.landing, "landing/") == [], result.output[-3000:]
        assert f"archive/h{hour}.csv" in keys(s3, s3.landing, "archive/")
        posts_of_bad += posted_ids(s3, result.run_id).count("bad-1")
        clock.advance(1)

    # Hour 0: a new rejection, over max_error_ratio=0: the run fails (and alerts), after archiving.
    assert results[0].state == "failed"
    assert results[0].task_states["sync_catalog"] == "success"
    assert results[0].task_states["archive_snapshot"] == "failed"
    assert "new rejections: Meta rejected 1 of 2 items" in results[0].output
    # Later hours: bad-1 is no new rejection, so the runs succeed around it.
    assert [r.state for r in results[1:]] == ["success"] * 3, results[1].output[-3000:]
    assert posts_of_bad == 2  # hour 0, then its 1 h retry; the next one is 6 h later
    assert sorted(emulator.items(CATALOG)) == ["p0", "p1", "p2", "p3"]
    (rejection,) = open_rejections(s3)
    assert rejection["id"] == "bad-1"
    assert rejection["outcome"] == "rejected_by_meta"
    assert "rejected by Meta's review" in rejection["reason"]
    assert rejection["code"] == "10800"
    assert rejection["attempts"] == "2"
    second_attempt = datetime.fromtimestamp(START + HOUR, timezone.utc)
    assert rejection["next_retry"] == (second_attempt + timedelta(hours=6)).isoformat()
    counts = report_of(s3, results[1].run_id)["counts"]
    assert (counts["rejections_open"], counts["rejections_new"], counts["rejections_retried"]) == (1, 0, 1)
    assert report_of(s3, results[0].run_id)["counts"]["rejections_new"] == 1


def test_a_rejected_product_fixed_in_the_source_is_sent_and_its_rejection_closes(
    sync_env: dict[str, Any],
    run_dag: Callable[..., DagRunResult],
    clock: Clock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    s3, emulator = sync_env["buckets"], sync_env["emulator"]
    monkeypatch.setenv("AIRFLOW_VAR_FACEBOOK_CATALOG_MAX_ERROR_RATIO", "0.5")
    emulator.set_faults(reject_items_where={"title": "forbidden"})
    put(s3, "landing/a.csv", HEADER + row("p1", "Fine") + row("knife", "Forbidden knife"))
    first = run_dag(DAG_ID)
    assert first.state == "success", first.output[-3000:]
    assert [r["id"] for r in open_rejections(s3)] == ["knife"]

    clock.advance(0.1)  # long before its retry: a changed row goes at once
    put(s3, "landing/b.csv", HEADER + row("knife", "Kitchen knife"))
    second = run_dag(DAG_ID)
    assert second.state == "success", second.output[-3000:]
    assert posted_ids(s3, second.run_id) == ["knife"]
    assert emulator.items(CATALOG)["knife"]["title"] == "Kitchen knife"
    assert open_rejections(s3) == []
    counts = report_of(s3, second.run_id)["counts"]
    assert (counts["rejections_closed"], counts["rejections_open"]) == (1, 0)


def test_retry_rejected_re_sends_every_open_rejection_now_without_a_landing_file(
    sync_env: dict[str, Any],
    run_dag: Callable[..., DagRunResult],
    clock: Clock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    s3, emulator = sync_env["buckets"], sync_env["emulator"]
    monkeypatch.setenv("AIRFLOW_VAR_FACEBOOK_CATALOG_MAX_ERROR_RATIO", "1")
    emulator.set_faults(reject_item_ids=["r1", "r2"])
    put(s3, "landing/a.csv", HEADER + row("r1", "One") + row("r2", "Two") + row("ok", "Fine"))
    assert run_dag(DAG_ID).state == "success"
    assert sorted(r["id"] for r in open_rejections(s3)) == ["r1", "r2"]

    emulator.set_faults()  # fixed on Meta's side
    clock.advance(0.1)
    quiet = run_dag(DAG_ID)  # nothing in landing, nothing due: no call
    assert quiet.task_states["sync_catalog"] == "skipped"
    # Its summary (and OpenRejections metric) still carries the ledger's open rejections.
    assert '"rejections_open": 2' in quiet.output
    retried = run_dag(DAG_ID, {"retry_rejected": True})
    assert retried.state == "success", retried.output[-3000:]
    assert sorted(posted_ids(s3, retried.run_id)) == ["r1", "r2"]
    assert sorted(emulator.items(CATALOG)) == ["ok", "r1", "r2"]
    assert open_rejections(s3) == []
    assert report_of(s3, retried.run_id)["counts"]["rejections_retried"] == 2


def test_the_old_change_detection_state_migrates_on_the_first_run(
    sync_env: dict[str, Any], run_dag: Callable[..., DagRunResult], tmp_path: Path
) -> None:
    s3, emulator = sync_env["buckets"], sync_env["emulator"]
    rows = HEADER + row("p1", "One") + row("p2", "Two")
    local = tmp_path / "rows.csv"
    local.write_text(rows, encoding="utf-8")
    items = [item_to_send(e.fields) for e in read_feed_file(str(local)) if isinstance(e, FeedItem)]
    old = ItemHashes().merged((i.id_hash, i.content_hash) for i in items)  # as Meta confirmed them
    s3.hook.get_conn().put_object(
        Bucket=s3.synced, Key=f"state/{CATALOG}/item_hashes.bin", Body=old.to_bytes()
    )

    put(s3, "landing/a.csv", rows + row("p3", "Three"))
    result = run_dag(DAG_ID)

    assert result.state == "success", result.output[-3000:]
    assert posted_ids(s3, result.run_id) == ["p3"]  # p1 and p2 were already confirmed
    assert report_of(s3, result.run_id)["counts"]["items_unchanged"] == 2
    manifest = json.loads(read(s3, s3.synced, f"ledger/{CATALOG}/manifest.json"))
    assert manifest["migrated_from"] == f"state/{CATALOG}/item_hashes.bin"
    assert manifest["items"] == 3
    assert "p1" not in emulator.items(CATALOG)


class LedgerWriteCrash(Exception):
    pass


def test_a_crash_between_batch_finish_and_ledger_write_re_sends_only_that_runs_items(
    sync_env: dict[str, Any], run_dag: Callable[..., DagRunResult], monkeypatch: pytest.MonkeyPatch
) -> None:
    s3 = sync_env["buckets"]
    put(s3, "landing/a.csv", HEADER + row("p1", "One") + row("p2", "Two"))
    assert run_dag(DAG_ID).state == "success"

    def crash(*args: Any, **kwargs: Any) -> Any:
        raise LedgerWriteCrash("the worker died writing the ledger")

    with monkeypatch.context() as patch:
        patch.setattr(LedgerStore, "commit", crash)
        put(s3, "landing/b.csv", HEADER + row("p1", "One") + row("p3", "Three") + row("p4", "Four"))
        crashed = run_dag(DAG_ID)
    assert crashed.state == "failed"
    assert crashed.task_states["archive_snapshot"] == "upstream_failed"
    assert "Could not write the item ledger" in crashed.output
    assert keys(s3, s3.landing, "landing/") == ["landing/b.csv"]  # not accounted for: it stays

    recovered = run_dag(DAG_ID)
    assert recovered.state == "success", recovered.output[-3000:]
    # The crashed run never recorded what Meta made of its calls: every item of the snapshot goes
    # again, p1 too (confirmed before, but the crashed run might have changed it at Meta).
    assert sorted(posted_ids(s3, recovered.run_id)) == ["p1", "p3", "p4"]
    assert keys(s3, s3.landing, "landing/") == []
    assert "never recorded Meta's answer" in recovered.output


# The sync task of one run, alone in a process the test kills (what SIGKILL does to a worker).
_SYNC_TASK_ALONE = """
import sys
from facebook_catalog.operators.items_batch import FacebookCatalogItemsBatchOperator

class TaskInstance:
    dag_id, task_id, map_index = "facebook_catalog_sync", "sync_catalog", -1
    def xcom_push(self, key, value):
        pass

operator = FacebookCatalogItemsBatchOperator(
    task_id="sync_catalog", s3_bucket=sys.argv[1], s3_keys=sys.argv[3:], records_bucket=sys.argv[2],
    poll_interval=1, timeout=600, deferrable=False,
)
operator.execute({"ti": TaskInstance(), "run_id": "killed_mid_post"})
"""


def test_a_run_killed_after_posting_leaves_no_item_stale_when_it_changes_back(
    sync_env: dict[str, Any], run_dag: Callable[..., DagRunResult], clock: Clock
) -> None:
    """Soak defect (seed 19, hours 14-15): the sync task was SIGKILLed after Meta had its batch
    (p1's new price) and before the ledger recorded it; the next hour p1's price went back to
    the one the ledger had confirmed, so the run skipped p1 as unchanged and Meta kept the
    price of the killed run for good."""
    s3, emulator = sync_env["buckets"], sync_env["emulator"]
    put(s3, "landing/a.csv", HEADER + row("p1", "Lamp", price="100"))
    assert run_dag(DAG_ID).state == "success"

    put(s3, "landing/b.csv", HEADER + row("p1", "Lamp", price="200"))
    calls = len(emulator.calls())
    child = subprocess.Popen(
        [sys.executable, "-c", _SYNC_TASK_ALONE, s3.landing, s3.synced, "landing/b.csv"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while not any(c["endpoint"] == "items_batch" for c in emulator.calls()[calls:]):
            assert child.poll() is None, "the sync task ended before it posted"
            assert time.monotonic() < deadline, "the sync task never posted"
            time.sleep(0.02)
    finally:
        child.send_signal(signal.SIGKILL)  # Meta has the batch; the ledger never hears of it
        child.wait()
    time.sleep(1.5)  # Meta finishes the killed run's batch
    assert emulator.items(CATALOG)["p1"]["price"] == "200 IQD"

    # The next hour the shop has put the old price back: b.csv (still in landing) and c.csv.
    put(s3, "landing/c.csv", HEADER + row("p1", "Lamp", price="100"))
    clock.advance(1)  # the killed run's lease has expired
    result = run_dag(DAG_ID)
    assert result.state == "success", result.output[-3000:]
    assert keys(s3, s3.landing, "landing/") == []
    assert emulator.items(CATALOG)["p1"]["price"] == "100 IQD"
    assert "Run killed_mid_post posted items and never recorded Meta's answer" in result.output


def test_a_second_run_on_the_same_catalog_fails_clearly_while_the_first_holds_the_ledger(
    sync_env: dict[str, Any], run_dag: Callable[..., DagRunResult], monkeypatch: pytest.MonkeyPatch
) -> None:
    s3, emulator = sync_env["buckets"], sync_env["emulator"]
    monkeypatch.setenv("FACEBOOK_CATALOG_SYNC_RETRIES", "0")
    put(s3, "landing/a.csv", HEADER + row("p1", "One"))
    # The first run is mid-sync (it took the lease: posting, or waiting for Meta).
    store = LedgerStore(s3.hook, s3.synced, CATALOG)
    store.acquire_lease("scheduled__first-run", ledger.utc_now(), 3600)

    second = run_dag(DAG_ID)

    assert second.state == "failed"
    # In the run's report, not only its log (log capture differs between Airflow versions).
    assert "is held by run 'scheduled__first-run'" in report_of(s3, second.run_id)["failure"]
    assert emulator.calls() == []  # it sent nothing
    assert keys(s3, s3.landing, "landing/") == ["landing/a.csv"]

    store.release_lease("scheduled__first-run")  # the first run ended
    third = run_dag(DAG_ID)
    assert third.state == "success", third.output[-3000:]
    assert keys(s3, s3.landing, "lease") == []
    assert not keys(s3, s3.synced, f"ledger/{CATALOG}/lease.json")


def test_fb_catalog_rejections_prints_the_open_ones(
    sync_env: dict[str, Any],
    run_dag: Callable[..., DagRunResult],
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    from facebook_catalog.cli import main

    s3, emulator = sync_env["buckets"], sync_env["emulator"]
    monkeypatch.setenv("AIRFLOW_VAR_FACEBOOK_CATALOG_MAX_ERROR_RATIO", "1")
    emulator.set_faults(reject_item_ids=["sku-7"])
    put(s3, "landing/a.csv", HEADER + row("sku-7", "Seven") + row("sku-8", "Eight", "$5"))
    assert run_dag(DAG_ID).state == "success"
    capfd.readouterr()

    assert main(["rejections", "--synced-bucket", s3.synced, "--catalog", CATALOG]) == 0
    out, err = capfd.readouterr()
    table = out[out.index("id,outcome,reason,code,") :]  # after any log line of the S3 hook's
    printed = {r["id"]: r for r in csv.DictReader(io.StringIO(table)) if r.get("outcome")}
    assert printed["sku-7"]["outcome"] == "rejected_by_meta"
    assert "(#10800)" in printed["sku-7"]["reason"]
    assert printed["sku-8"]["outcome"] == "rejected_by_feed"
    assert "price" in printed["sku-8"]["reason"]
    assert "2 open rejections" in err
