from __future__ import annotations

import re
import time
from typing import Any

import pytest
import responses
from airflow.providers.common.compat.sdk import TaskDeferred

from facebook_catalog.hooks.graph_api import GraphApiRetryPolicy, PermanentGraphApiError
from facebook_catalog.operators.items_batch import (
    CATALOG_ID_XCOM_KEY,
    SUBMISSION_XCOM_KEY,
    FacebookCatalogBatchError,
    FacebookCatalogItemsBatchOperator,
)
from facebook_catalog.triggers.items_batch import FacebookCatalogBatchStatusTrigger
from tests.conftest import TEST_CATALOG_ID, TEST_TOKEN

HOST = "https://graph.example.test"
ITEMS_URL = f"{HOST}/v25.0/{TEST_CATALOG_ID}/items_batch"
STATUS = re.compile(re.escape(f"{HOST}/v25.0/{TEST_CATALOG_ID}/check_batch_request_status") + r"\?.*")
FAST = GraphApiRetryPolicy(max_transient_retries=1, backoff_base=0.0)


class RecordingTI:
    task_id = "sync"
    map_index = -1

    def __init__(self) -> None:
        self.xcom: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcom[key] = value

    def xcom_pull(self, task_ids: str, key: str, map_indexes: int) -> Any:
        assert (task_ids, map_indexes) == (self.task_id, self.map_index)
        return self.xcom.get(key)


def products(n: int) -> list[dict[str, str]]:
    return [{"id": f"p{i}", "title": f"Product {i}", "price": "1000 IQD"} for i in range(n)]


def operator(**kwargs: Any) -> FacebookCatalogItemsBatchOperator:
    kwargs.setdefault("graph_api_retry_policy", FAST)
    return FacebookCatalogItemsBatchOperator(task_id="sync", **kwargs)


@pytest.fixture(autouse=True)
def _connection(catalog_connection: Any) -> None:
    catalog_connection(host=HOST)


@pytest.fixture
def context() -> dict[str, Any]:
    return {"ti": RecordingTI()}


@pytest.fixture
def deferred_context(context: dict[str, Any]) -> dict[str, Any]:
    """The context of a task resumed after deferring: its submission is in its XCom."""
    context["ti"].xcom[SUBMISSION_XCOM_KEY] = SUBMITTED
    return context


def finished(handle: str, **extra: Any) -> dict[str, Any]:
    return {"data": [{"handle": handle, "status": "finished", "errors_total_count": 0, **extra}]}


def test_posts_in_calls_of_5000_then_defers_with_every_handle(context: dict[str, Any]) -> None:
    with responses.RequestsMock() as mock:
        for n in range(3):
            mock.add(responses.POST, ITEMS_URL, json={"handles": [f"h{n}"], "validation_status": []})
        op = operator(items=products(12_345), poll_interval=15, timeout=600)
        before = time.time()
        with pytest.raises(TaskDeferred) as deferred:
            op.execute(context)
        assert len(mock.calls) == 3
    trigger = deferred.value.trigger
    assert isinstance(trigger, FacebookCatalogBatchStatusTrigger)
    assert trigger.handles == ["h0", "h1", "h2"]
    assert trigger.catalog_id == TEST_CATALOG_ID
    assert trigger.poll_interval == 15
    assert before + 600 <= trigger.deadline <= time.time() + 600
    assert deferred.value.method_name == "execute_complete"
    submitted = context["ti"].xcom[SUBMISSION_XCOM_KEY]
    assert submitted["items_sent"] == 12_345
    assert submitted["calls"] == 3
    assert TEST_TOKEN not in str(trigger.serialize())
    assert context["ti"].xcom[CATALOG_ID_XCOM_KEY] == TEST_CATALOG_ID


def test_nothing_to_send_makes_no_call(context: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    with responses.RequestsMock() as mock:
        summary = operator(items=[]).execute(context)
        assert len(mock.calls) == 0
    assert summary["calls"] == 0
    assert summary["items_sent"] == 0
    assert "No Graph API call was made" in capsys.readouterr().out


def test_synchronous_mode_polls_in_the_worker(context: dict[str, Any]) -> None:
    with responses.RequestsMock() as mock:
        mock.add(responses.POST, ITEMS_URL, json={"handles": ["h0"], "validation_status": []})
        mock.add(responses.GET, STATUS, json={"data": [{"handle": "h0", "status": "started"}]})
        mock.add(responses.GET, STATUS, json=finished("h0", warnings_total_count=2))
        summary = operator(items=products(3), deferrable=False, poll_interval=0.01).execute(context)
    assert summary["statuses"] == {"h0": "finished"}
    assert summary["items_sent"] == 3
    assert summary["warnings_total_count"] == 2


def test_synchronous_mode_respects_the_deadline(context: dict[str, Any]) -> None:
    with responses.RequestsMock() as mock:
        mock.add(responses.POST, ITEMS_URL, json={"handles": ["h0"], "validation_status": []})
        mock.add(responses.GET, STATUS, json={"data": [{"handle": "h0", "status": "started"}]})
        op = operator(items=products(1), deferrable=False, poll_interval=0.05, timeout=0.2)
        with pytest.raises(FacebookCatalogBatchError, match=r"deadline.*h0"):
            op.execute(context)


def test_invalid_token_fails_fast_with_the_fix(context: dict[str, Any]) -> None:
    expired = {"error": {"message": "Error validating access token", "type": "OAuthException", "code": 190}}
    with responses.RequestsMock() as mock:
        mock.add(responses.POST, ITEMS_URL, json=expired, status=400)
        with pytest.raises(PermanentGraphApiError, match="invalid or expired"):
            operator(items=products(2)).execute(context)
        assert len(mock.calls) == 1


def event(*batches: dict[str, Any], status: str = "success", **extra: Any) -> dict[str, Any]:
    return {
        "status": status,
        "catalog_id": TEST_CATALOG_ID,
        "batches": list(batches),
        **extra,
    }


def batch(handle: str, status: str = "finished", errors: int = 0, **extra: Any) -> dict[str, Any]:
    return {
        "handle": handle,
        "status": status,
        "errors_total_count": errors,
        "warnings_total_count": 0,
        "errors": [{"line": 0, "id": "p1", "message": "price: invalid"}] if errors else [],
        "ids_of_invalid_requests": ["p1"] if errors else [],
        **extra,
    }


SUBMITTED = {"catalog_id": TEST_CATALOG_ID, "calls": 2, "items_sent": 100, "handles": ["h0", "h1"]}


def test_complete_returns_a_small_summary(deferred_context: dict[str, Any]) -> None:
    summary = operator(max_error_ratio=0.05).execute_complete(
        deferred_context, event(batch("h0"), batch("h1", errors=3))
    )
    assert summary["statuses"] == {"h0": "finished", "h1": "finished"}
    assert summary["items_rejected_by_meta"] == 3
    assert summary["invalid_item_ids"] == ["p1"]
    assert summary["error_samples"][0]["message"] == "price: invalid"


def test_complete_fails_when_rejections_exceed_the_ratio(deferred_context: dict[str, Any]) -> None:
    with pytest.raises(FacebookCatalogBatchError, match=r"rejected 3 of 100 items.*price: invalid"):
        operator().execute_complete(deferred_context, event(batch("h0"), batch("h1", errors=3)))


@pytest.mark.parametrize("final", ["error", "canceled"])
def test_complete_fails_on_a_failed_batch(deferred_context: dict[str, Any], final: str) -> None:
    with pytest.raises(FacebookCatalogBatchError, match=f"h1 ended '{final}'"):
        operator(max_error_ratio=1).execute_complete(deferred_context, event(batch("h0"), batch("h1", final)))


def test_complete_fails_on_an_error_event(deferred_context: dict[str, Any]) -> None:
    failure = event(status="error", reason="deadline", message="still pending: h1", pending_handles=["h1"])
    with pytest.raises(FacebookCatalogBatchError, match=r"\(deadline\): still pending: h1"):
        operator().execute_complete(deferred_context, failure)


def test_nothing_ingested_counts_as_rejected(context: dict[str, Any]) -> None:
    with responses.RequestsMock() as mock:
        mock.add(
            responses.POST, ITEMS_URL, json={"handles": [], "validation_status": [{"retailer_id": "p0"}]}
        )
        with pytest.raises(FacebookCatalogBatchError, match="rejected 2 of 2"):
            operator(items=products(2)).execute(context)


def test_a_failed_deferral_fails_clearly(context: dict[str, Any]) -> None:
    with pytest.raises(FacebookCatalogBatchError, match="ended without an answer from the trigger"):
        operator().resume_execution("__fail__", {"error": "Trigger failure"}, context)  # type: ignore[arg-type]


def test_arguments_are_validated() -> None:
    with pytest.raises(ValueError, match="max_error_ratio"):
        operator(max_error_ratio=2)
    with pytest.raises(ValueError, match="poll_interval"):
        operator(poll_interval=0)


def test_templated_fields() -> None:
    assert {"items", "s3_bucket", "s3_keys", "catalog_id"} <= set(
        FacebookCatalogItemsBatchOperator.template_fields
    )


def test_lineage_names_the_s3_objects_read_and_the_catalog() -> None:
    lineage = operator(s3_bucket="landing-bucket", s3_keys=["landing/a.csv", "landing/b.csv.gz"])
    facets = lineage.get_openlineage_facets_on_complete(None)
    assert [(d.namespace, d.name) for d in facets.inputs] == [
        ("s3://landing-bucket", "landing/a.csv"),
        ("s3://landing-bucket", "landing/b.csv.gz"),
    ]
    assert [(d.namespace, d.name) for d in facets.outputs] == [("facebook-catalog", TEST_CATALOG_ID)]
    failed = operator(items=[{"id": "p1"}], catalog_id="777").get_openlineage_facets_on_failure(None)
    assert (failed.inputs, [(d.namespace, d.name) for d in failed.outputs]) == (
        [],
        [("facebook-catalog", "777")],
    )
