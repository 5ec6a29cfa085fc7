# The fixtures of test_sync_dag are imported, and then named as parameters.
# ruff: noqa: F811
"""Meta's review after the batches finished, through the hourly DAG: real Airflow, moto S3 and the
Graph API emulator reviewing items a few seconds after their batch finished.

An item Meta rejects in review ends in ``open_rejections.csv`` with Meta's message like a
batch-time rejection; the wait holds no worker slot (the task defers to the review trigger);
80009 on the reads is waited out; items still under review at the deadline count as confirmed.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from typing import Any

import pytest

from facebook_catalog.emulator import EmulatorConfig
from tests.fixtures.airflow import DagRunResult
from tests.integration.test_sync_dag import (  # noqa: F401 - fixtures
    APP_SECRET,
    CATALOG,
    DAG_ID,
    HEADER,
    TOKEN,
    keys,
    put,
    read,
    report_of,
    row,
    sync_env,
)
from tests.unit.provider.test_operator import RecordingTI

pytestmark = pytest.mark.integration


@pytest.fixture
def emulator_config() -> EmulatorConfig:
    # Every item's review ends 8 s after its batch finished: the first look finds them pending.
    return EmulatorConfig(
        access_tokens=(TOKEN,),
        app_secret=APP_SECRET,
        processing_seconds=1.0,
        review_seconds=8.0,
        throttle_regain_minutes=0,
    )


@pytest.fixture
def review_env(sync_env: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    monkeypatch.setenv("AIRFLOW_VAR_FACEBOOK_CATALOG_REVIEW_WAIT_SECONDS", "30")
    # One new rejection in three items: the run succeeds and says so (0 would fail it, after archiving).
    monkeypatch.setenv("AIRFLOW_VAR_FACEBOOK_CATALOG_MAX_ERROR_RATIO", "0.5")
    return sync_env


def open_rejections(s3: Any) -> list[dict[str, str]]:
    body = read(s3, s3.synced, f"ledger/{CATALOG}/open_rejections.csv").decode("utf-8")
    return list(csv.DictReader(io.StringIO(body)))


def reads(emulator: Any) -> list[dict[str, Any]]:
    return [c for c in emulator.calls() if c["endpoint"] == "products"]


def test_an_item_meta_rejects_after_its_batch_finished_becomes_an_open_rejection(
    review_env: dict[str, Any], run_dag: Callable[..., DagRunResult]
) -> None:
    s3, emulator = review_env["buckets"], review_env["emulator"]
    # p2's image cannot be fetched: Meta stores it, its batch finishes cleanly, and 9 s later its
    # review rejects it. The first read of the items' review is throttled (80009).
    emulator.set_faults(review_reject_item_ids=["p2"], review_reject_after_seconds=9.0, throttle_reads_next=1)
    put(
        s3,
        "landing/2026/12/02/10-00.csv",
        HEADER + row("p1", "Shirt") + row("p2", "Hat") + row("p3", "Socks"),
    )

    result = run_dag(DAG_ID)

    assert result.state == "success", result.output[-4000:]
    assert keys(s3, s3.landing, "landing/") == []  # every row accounted for: archived
    assert sorted(emulator.items(CATALOG)) == ["p1", "p2", "p3"]  # Meta keeps the item, with errors
    (rejection,) = open_rejections(s3)
    assert rejection["id"] == "p2"
    assert rejection["outcome"] == "rejected_by_meta"
    assert rejection["reason"].startswith("Image couldn't be downloaded: We couldn't download the image")
    assert rejection["code"] == "IMAGE_FETCH_FAILED"
    assert rejection["next_retry"]  # on the retry schedule like any rejection

    report = report_of(s3)
    counts = report["counts"]
    assert counts["items_sent"] == 3
    assert counts["items_rejected_by_meta"] == 0  # the batch itself had no error
    assert counts["items_rejected_in_review"] == 1
    assert counts["rejections_new"] == 1
    assert counts["rejections_open"] == 1
    assert counts["items_confirmed"] == 2
    assert counts["throttled_retries"] >= 1
    review = report["review"]
    assert review["status"] == "success"
    assert (review["checked"], review["rejected"], review["unreviewed"]) == (3, 1, 0)
    assert review["samples"][0]["id"] == "p2"
    # The first look (in the worker) found every item pending: the task deferred, and the trigger
    # read until Meta's review ended, holding no worker slot meanwhile.
    assert review["waited_in_trigger"] is True
    assert "still in Meta's review; deferring" in result.output
    assert result.xcom("sync_catalog", key="facebook_catalog_batch_event")["status"] == "success"
    # 80009 on a read was waited out and the read retried.
    assert reads(emulator)[0]["error_code"] == 80009
    assert reads(emulator)[-1]["status"] == 200
    # The metrics and the summary line carry the count.
    assert result.xcom("publish_run_summary")["items_rejected_in_review"] == 1
    assert "rejected in review" in result.output


def test_items_still_under_review_at_the_deadline_count_as_confirmed(
    review_env: dict[str, Any], run_dag: Callable[..., DagRunResult], monkeypatch: pytest.MonkeyPatch
) -> None:
    s3, emulator = review_env["buckets"], review_env["emulator"]
    monkeypatch.setenv("AIRFLOW_VAR_FACEBOOK_CATALOG_REVIEW_WAIT_SECONDS", "1.5")
    # Meta's review of p1 would reject it, but only long after the run's review wait.
    emulator.set_faults(review_reject_item_ids=["p1"], review_reject_after_seconds=600.0)
    put(s3, "landing/2026/12/02/11-00.csv", HEADER + row("p1", "Shirt") + row("p2", "Hat"))

    result = run_dag(DAG_ID)

    assert result.state == "success", result.output[-4000:]
    report = report_of(s3)
    assert report["counts"]["items_confirmed"] == 2
    # Neither review ended within the wait (8 s, p1's rejection much later): both count as confirmed.
    assert report["counts"]["items_unreviewed"] == 2
    assert report["counts"]["items_rejected_in_review"] == 0
    assert report["review"]["deadline_passed"] is True
    assert sorted(report["review"]["unreviewed_samples"]) == ["p1", "p2"]
    assert open_rejections(s3) == []


def test_a_review_wait_of_zero_reads_nothing_back(
    review_env: dict[str, Any], run_dag: Callable[..., DagRunResult], monkeypatch: pytest.MonkeyPatch
) -> None:
    s3, emulator = review_env["buckets"], review_env["emulator"]
    monkeypatch.setenv("AIRFLOW_VAR_FACEBOOK_CATALOG_REVIEW_WAIT_SECONDS", "0")
    put(s3, "landing/2026/12/02/12-00.csv", HEADER + row("p1", "Shirt"))

    result = run_dag(DAG_ID)

    assert result.state == "success", result.output[-4000:]
    assert reads(emulator) == []
    assert report_of(s3)["review"] is None


class _TaskInstance(RecordingTI):
    """What the operator uses of its task instance when it runs without deferring."""

    dag_id = "review_in_the_worker"


def test_without_deferring_the_worker_waits_for_the_review_by_the_same_rules(
    review_env: dict[str, Any],
) -> None:
    from facebook_catalog.hooks.graph_api import GraphApiRetryPolicy
    from facebook_catalog.operators.items_batch import FacebookCatalogItemsBatchOperator

    s3, emulator = review_env["buckets"], review_env["emulator"]
    emulator.set_faults(review_reject_where={"title": "forbidden"}, review_reject_reason="policy")
    operator = FacebookCatalogItemsBatchOperator(
        task_id="sync",
        items=[
            {
                "id": "w1",
                "title": "Fine shirt",
                "price": "1000 IQD",
                "link": "https://s.example/w1",
                "image_link": "https://s.example/w1.jpg",
                "availability": "in stock",
                "description": "d",
                "brand": "b",
                "condition": "new",
            },
            {
                "id": "w2",
                "title": "Forbidden thing",
                "price": "1000 IQD",
                "link": "https://s.example/w2",
                "image_link": "https://s.example/w2.jpg",
                "availability": "in stock",
                "description": "d",
                "brand": "b",
                "condition": "new",
            },
        ],
        records_bucket=s3.synced,
        deferrable=False,
        poll_interval=0.5,
        review_wait_seconds=30,
        max_error_ratio=0.5,
        graph_api_retry_policy=GraphApiRetryPolicy(backoff_base=0.0, max_throttle_wait=1.0),
    )
    context: dict[str, Any] = {"ti": _TaskInstance(), "run_id": "manual__review-in-the-worker"}

    summary = operator.execute(context)  # type: ignore[arg-type]

    assert summary["items_rejected_in_review"] == 1
    (rejection,) = open_rejections(s3)
    assert (rejection["id"], rejection["code"]) == ("w2", "POLICY_VIOLATION")
    assert "Commerce Policies" in rejection["reason"]
    review = report_of(s3)["review"]
    assert review["waited_in_trigger"] is False
    assert review["checked"] == 2
    assert len(reads(emulator)) >= 2  # read again until Meta's review (8 s) had ended


class TestAConfirmedItemMetaLaterRejects:
    @pytest.fixture
    def emulator_config(self) -> EmulatorConfig:
        # Reviews end as the batch finishes: the first look sees them, nothing defers.
        return EmulatorConfig(
            access_tokens=(TOKEN,), app_secret=APP_SECRET, processing_seconds=1.0, throttle_regain_minutes=0
        )

    def test_is_no_longer_confirmed_so_its_old_content_is_sent_again(
        self,
        review_env: dict[str, Any],
        run_dag: Callable[..., DagRunResult],
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        s3, emulator = review_env["buckets"], review_env["emulator"]
        monkeypatch.setenv("AIRFLOW_VAR_FACEBOOK_CATALOG_MAX_ERROR_RATIO", "1")  # one item, one rejection
        emulator.set_faults(review_reject_where={"title": "forbidden"}, review_reject_reason="policy")
        put(s3, "landing/2026/12/02/13-00.csv", HEADER + row("p1", "Shirt"))
        assert run_dag(DAG_ID).state == "success"
        put(s3, "landing/2026/12/02/14-00.csv", HEADER + row("p1", "Forbidden shirt"))
        second = run_dag(DAG_ID)
        assert second.state == "success", second.output[-4000:]
        assert report_of(s3, second.run_id)["counts"]["items_rejected_in_review"] == 1
        assert [r["id"] for r in open_rejections(s3)] == ["p1"]
        # The source goes back to what Meta confirmed in the first run: Meta holds the rejected
        # content now, so the row is sent again (not skipped as unchanged) and closes the rejection.
        put(s3, "landing/2026/12/02/15-00.csv", HEADER + row("p1", "Shirt"))
        third = run_dag(DAG_ID)
        assert third.state == "success", third.output[-4000:]
        counts = report_of(s3, third.run_id)["counts"]
        assert (counts["items_sent"], counts["items_unchanged"], counts["rejections_closed"]) == (1, 0, 1)
        assert open_rejections(s3) == []
        assert emulator.items(CATALOG)["p1"]["title"] == "Shirt"
