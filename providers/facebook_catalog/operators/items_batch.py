"""Deferrable operator that upserts products into a Meta catalog through items_batch."""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator, BaseOperatorLink

from facebook_catalog.feed.batching import (
    MAX_PAYLOAD_BYTES,
    MAX_REQUESTS_PER_CALL,
    EncodedBatch,
    item_request,
    split_requests,
)
from facebook_catalog.hooks.catalog import DEFAULT_CONN_ID, FacebookCatalogHook
from facebook_catalog.hooks.graph_api import (
    FacebookCatalogError,
    GraphApiError,
    GraphApiRetryPolicy,
    PermanentGraphApiError,
)
from facebook_catalog.triggers.items_batch import (
    DEFAULT_POLL_INTERVAL,
    FacebookCatalogBatchStatusTrigger,
    batches_error_event,
    batches_success_event,
)

if TYPE_CHECKING:
    from airflow.sdk import Context
    from airflow.sdk.types import TaskInstanceKey

    from facebook_catalog.feed import FeedItem

COMMERCE_MANAGER_URL = "https://business.facebook.com/commerce/catalogs/{catalog_id}/products"
CATALOG_ID_XCOM_KEY = "facebook_catalog_id"
#: Extra time the deferral may take beyond the trigger's own deadline, so the trigger's clear
#: "deadline" event wins over Airflow's generic deferral timeout.
DEFERRAL_GRACE = timedelta(minutes=5)
DEFAULT_TIMEOUT = timedelta(hours=3)
MAX_SAMPLES_IN_MESSAGE = 5


class FacebookCatalogBatchError(FacebookCatalogError):
    """Meta processed the batches, but not well enough for the task to succeed."""


class FacebookCatalogLink(BaseOperatorLink):
    """Link to the catalog's products in Meta Commerce Manager."""

    name = "Meta Commerce Manager"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        from airflow.providers.common.compat.sdk import XCom

        catalog_id = XCom.get_value(ti_key=ti_key, key=CATALOG_ID_XCOM_KEY)
        return COMMERCE_MANAGER_URL.format(catalog_id=catalog_id) if catalog_id else ""


class FacebookCatalogItemsBatchOperator(BaseOperator):
    """Upsert products into a Meta (Facebook) catalog and wait until Meta has processed them.

    Items come from ``items`` (product dicts with Meta's field names, sent as given) and/or from
    CSV objects in S3 (``s3_bucket`` + ``s3_keys``), which are read through the feed rules
    (normalized, validated; bad rows are rejected with file, line, field, value and reason and
    the same id keeps its last occurrence). Requests are ``UPDATE`` with ``allow_upsert=true``,
    split into calls of at most 5,000 items under Meta's payload limit. After posting, the task
    defers to :class:`FacebookCatalogBatchStatusTrigger` and frees its worker slot while Meta
    processes the batches; ``deferrable=False`` polls in the worker instead, by the same rules.

    The task fails, naming handles and sample errors, when a batch ends ``error`` or
    ``canceled``, when Meta has not finished by ``timeout``, or when the share of items Meta
    rejected exceeds ``max_error_ratio``. It returns a small summary (never the items) to XCom.

    :param items: product dicts (templated).
    :param s3_bucket: bucket of the CSV objects (templated).
    :param s3_keys: keys of CSV or gzip CSV objects, read in order; later rows win (templated).
    :param aws_conn_id: Airflow AWS connection used to read S3.
    :param facebook_catalog_conn_id: Airflow connection of type ``facebook_catalog``.
    :param catalog_id: overrides the connection's ``catalog_id`` extra (templated).
    :param poll_interval: seconds between status polls.
    :param timeout: how long Meta may take to finish every batch (seconds or timedelta).
    :param max_error_ratio: share of sent items Meta may reject before the task fails (0 = none).
    :param default_currency: ISO 4217 code for CSV prices given without one.
    :param default_condition: ``condition`` for CSV rows without one.
    :param max_requests_per_call: at most 5,000 (Meta's limit).
    :param max_payload_bytes: byte limit of one call's ``requests`` field.
    :param graph_api_retry_policy: how Graph API calls retry transient errors and throttling.
    :param deferrable: defer while Meta processes (default True).
    """

    template_fields: Sequence[str] = (
        "items",
        "s3_bucket",
        "s3_keys",
        "catalog_id",
        "facebook_catalog_conn_id",
        "aws_conn_id",
    )
    template_fields_renderers = {"items": "json"}
    operator_extra_links = (FacebookCatalogLink(),)
    ui_color = "#e7f0fe"

    def __init__(
        self,
        *,
        items: list[dict[str, Any]] | None = None,
        s3_bucket: str | None = None,
        s3_keys: Sequence[str] | str | None = None,
        aws_conn_id: str | None = "aws_default",
        facebook_catalog_conn_id: str = DEFAULT_CONN_ID,
        catalog_id: str | None = None,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        timeout: float | timedelta = DEFAULT_TIMEOUT,
        max_error_ratio: float = 0.0,
        default_currency: str = "IQD",
        default_condition: str = "new",
        max_requests_per_call: int = MAX_REQUESTS_PER_CALL,
        max_payload_bytes: int = MAX_PAYLOAD_BYTES,
        graph_api_retry_policy: GraphApiRetryPolicy | None = None,
        deferrable: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not 0.0 <= max_error_ratio <= 1.0:
            raise ValueError(f"max_error_ratio must be between 0 and 1, not {max_error_ratio}")
        if poll_interval <= 0:
            raise ValueError(f"poll_interval must be positive, not {poll_interval}")
        self.items = items
        self.s3_bucket = s3_bucket
        self.s3_keys = s3_keys
        self.aws_conn_id = aws_conn_id
        self.facebook_catalog_conn_id = facebook_catalog_conn_id
        self.catalog_id = catalog_id
        self.poll_interval = poll_interval
        self.timeout = timeout if isinstance(timeout, timedelta) else timedelta(seconds=timeout)
        self.max_error_ratio = max_error_ratio
        self.default_currency = default_currency
        self.default_condition = default_condition
        self.max_requests_per_call = max_requests_per_call
        self.max_payload_bytes = max_payload_bytes
        self.graph_api_retry_policy = graph_api_retry_policy or GraphApiRetryPolicy()
        self.deferrable = deferrable

    # ------------------------------------------------------------------ execute
    def execute(self, context: Context) -> dict[str, Any]:
        hook = self._hook()
        settings = hook.settings
        context["ti"].xcom_push(key=CATALOG_ID_XCOM_KEY, value=settings.catalog_id)
        submitted = self._post_batches(hook, self._item_requests())
        if submitted["calls"] == 0:
            self.log.info("Nothing to send: no items and no CSV rows. No Graph API call was made.")
            return self._summary(submitted, batches=[])
        handles = submitted["handles"]
        if not handles:
            self.log.warning("Meta ingested none of the %d items it was sent.", submitted["items_sent"])
            return self.execute_complete(
                context, {**batches_success_event(settings.catalog_id, [], []), "submitted": submitted}
            )
        deadline = time.time() + self.timeout.total_seconds()
        if not self.deferrable:
            event = self._poll_synchronously(hook, handles, deadline)
            return self.execute_complete(context, {**event, "submitted": submitted})
        self.log.info(
            "Posted %d items in %d calls; deferring until Meta finishes handles %s (deadline in %s)",
            submitted["items_sent"],
            submitted["calls"],
            ", ".join(handles),
            self.timeout,
        )
        self.defer(
            trigger=FacebookCatalogBatchStatusTrigger(
                handles=handles,
                catalog_id=settings.catalog_id,
                deadline=deadline,
                poll_interval=self.poll_interval,
                facebook_catalog_conn_id=self.facebook_catalog_conn_id,
                retry_policy=self.graph_api_retry_policy.to_dict(),
                submitted=submitted,
            ),
            method_name="execute_complete",
            timeout=self.timeout + DEFERRAL_GRACE,
        )

    def _hook(self) -> FacebookCatalogHook:
        return FacebookCatalogHook(
            facebook_catalog_conn_id=self.facebook_catalog_conn_id,
            catalog_id=self.catalog_id,
            retry_policy=self.graph_api_retry_policy,
        )

    def _item_requests(self) -> Iterator[dict[str, Any]]:
        for item in self.items or []:
            yield item_request(item)
        if self.s3_keys:
            for feed_item in self._read_s3_items():
                yield item_request(feed_item.fields)

    def _read_s3_items(self) -> list[FeedItem]:
        """Read every CSV object through the feed rules; the same id keeps its last occurrence."""
        from facebook_catalog.feed import FeedItem, FeedOptions, FeedWarning, deduplicate, read_feed_file

        if not self.s3_bucket:
            raise ValueError("s3_keys was given without s3_bucket")
        keys = [self.s3_keys] if isinstance(self.s3_keys, str) else list(self.s3_keys or [])
        options = FeedOptions(
            default_currency=self.default_currency, default_condition=self.default_condition
        )
        items: list[FeedItem] = []
        rejected = 0
        for key, path in self._download(self.s3_bucket, keys):
            for row in read_feed_file(path, source=f"s3://{self.s3_bucket}/{key}", options=options):
                if isinstance(row, FeedItem):
                    items.append(row)
                elif isinstance(row, FeedWarning):
                    self.log.warning("%s", row.message())
                else:
                    rejected += 1
                    self.log.warning("Rejected: %s", row.message())
        result = deduplicate(items)
        self.log.info(
            "Read %d good rows from %d objects (%d rejected, %d duplicates dropped)",
            len(result.items),
            len(keys),
            rejected,
            len(result.duplicates),
        )
        return result.items

    def _download(self, bucket: str, keys: Iterable[str]) -> Iterator[tuple[str, str]]:
        """Stream each object to a temporary file (never into memory) and yield its path."""
        from airflow.providers.amazon.aws.hooks.s3 import S3Hook

        s3 = S3Hook(aws_conn_id=self.aws_conn_id)
        with tempfile.TemporaryDirectory(prefix="fb-catalog-") as tmp:
            for index, key in enumerate(keys):
                path = os.path.join(tmp, f"{index:05d}")
                with open(path, "wb") as handle:
                    s3.get_conn().download_fileobj(bucket, key, handle)
                yield key, path
                os.unlink(path)

    def _post_batches(
        self, hook: FacebookCatalogHook, requests: Iterable[Mapping[str, Any]]
    ) -> dict[str, Any]:
        calls: list[dict[str, Any]] = []
        for batch in split_requests(
            requests, max_requests=self.max_requests_per_call, max_bytes=self.max_payload_bytes
        ):
            calls.append(self._post_one(hook, batch, len(calls) + 1))
        handles = [c["handle"] for c in calls if c["handle"]]
        return {
            "catalog_id": hook.settings.catalog_id,
            "calls": len(calls),
            "items_sent": sum(c["request_count"] for c in calls),
            "items_not_ingested": sum(c["request_count"] for c in calls if not c["handle"]),
            "handles": handles,
            "validation_errors": sum(c["validation_status_count"] for c in calls),
            "validation_samples": [v for c in calls for v in c["validation_status"]][:MAX_SAMPLES_IN_MESSAGE],
            "throttled_retries": hook.throttled_retries,
            "transient_retries": hook.transient_retries,
        }

    def _post_one(self, hook: FacebookCatalogHook, batch: EncodedBatch, number: int) -> dict[str, Any]:
        try:
            response = hook.send_items_batch(batch.payload, batch.request_count)
        except PermanentGraphApiError:
            raise
        except GraphApiError as error:
            raise FacebookCatalogError(
                f"items_batch call {number} ({batch.request_count} items) failed after "
                f"{error.attempts} attempts: {error}"
            ) from error
        return response.to_dict()

    def _poll_synchronously(
        self, hook: FacebookCatalogHook, handles: list[str], deadline: float
    ) -> dict[str, Any]:
        """The trigger's loop, in the worker: the same statuses, the same events."""
        from facebook_catalog.hooks.graph_api import BatchStatus

        final: dict[str, BatchStatus] = {}
        pending = list(handles)
        while True:
            for handle in pending:
                try:
                    status = hook.get_batch_status(handle)
                except PermanentGraphApiError as error:
                    return batches_error_event(
                        hook.settings.catalog_id,
                        handles,
                        "graph_api_error",
                        str(error),
                        final,
                        pending,
                        error,
                    )
                except GraphApiError as error:
                    self.log.warning("Polling %s failed, will poll again: %s", handle, error)
                    continue
                if status.is_final:
                    final[handle] = status
            pending = [h for h in pending if h not in final]
            if not pending:
                return batches_success_event(hook.settings.catalog_id, handles, [final[h] for h in handles])
            remaining = deadline - time.time()
            if remaining <= 0:
                message = (
                    f"Meta did not finish {len(pending)} of {len(handles)} batches before the deadline; "
                    f"still pending: {', '.join(pending)}"
                )
                return batches_error_event(
                    hook.settings.catalog_id, handles, "deadline", message, final, pending, None
                )
            time.sleep(min(self.poll_interval, remaining))

    # ------------------------------------------------------------------ completion
    def execute_complete(self, context: Context, event: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        """Turn the trigger's event into the task's outcome."""
        submitted = event.get("submitted") or {}
        batches = event.get("batches") or []
        if event.get("status") != "success":
            raise FacebookCatalogBatchError(
                f"Waiting for Meta failed ({event.get('reason')}): {event.get('message')}"
                + _samples_text(batches)
            )
        failed = [b for b in batches if b["status"] in ("error", "canceled")]
        if failed:
            raise FacebookCatalogBatchError(
                f"{len(failed)} of {len(batches)} batches did not complete: "
                + ", ".join(f"{b['handle']} ended {b['status']!r}" for b in failed)
                + ". Items of these batches may not have been applied; the next run sends them again."
                + _samples_text(failed)
            )
        summary = self._summary(submitted, batches, event)
        items_sent = summary["items_sent"]
        rejected = summary["items_rejected_by_meta"]
        if items_sent and rejected / items_sent > self.max_error_ratio:
            raise FacebookCatalogBatchError(
                f"Meta rejected {rejected} of {items_sent} items ({rejected / items_sent:.2%}), more than "
                f"max_error_ratio={self.max_error_ratio:.2%}. Handles: {', '.join(summary['handles'])}."
                + _samples_text(batches)
            )
        self.log.info(
            "Meta finished %d batches: %d items sent, %d rejected, %d warnings",
            len(batches),
            items_sent,
            rejected,
            summary["warnings_total_count"],
        )
        return summary

    def resume_execution(self, next_method: str, next_kwargs: dict[str, Any] | None, context: Context) -> Any:
        try:
            return super().resume_execution(next_method, next_kwargs, context)
        except FacebookCatalogError:
            raise
        except Exception as exc:
            if next_method != "__fail__":
                raise
            raise FacebookCatalogBatchError(
                f"The wait for Meta's batches ended without an answer from the trigger ({exc}). Meta "
                "accepted the items_batch calls; nothing is archived and the next run sends them again."
            ) from exc

    def _summary(
        self, submitted: dict[str, Any], batches: list[dict[str, Any]], event: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        errors_total = sum(int(b.get("errors_total_count") or 0) for b in batches)
        return {
            "catalog_id": submitted.get("catalog_id"),
            "calls": submitted.get("calls", 0),
            "items_sent": submitted.get("items_sent", 0),
            "handles": submitted.get("handles", []),
            "statuses": {b["handle"]: b["status"] for b in batches},
            "items_rejected_by_meta": errors_total + int(submitted.get("items_not_ingested") or 0),
            "errors_total_count": errors_total,
            "warnings_total_count": sum(int(b.get("warnings_total_count") or 0) for b in batches),
            "error_samples": [e for b in batches for e in b.get("errors") or []][:MAX_SAMPLES_IN_MESSAGE],
            "invalid_item_ids": [i for b in batches for i in b.get("ids_of_invalid_requests") or []][:100],
            "throttled_retries": int(submitted.get("throttled_retries") or 0)
            + int((event or {}).get("throttled_retries") or 0),
        }


def _samples_text(batches: list[dict[str, Any]]) -> str:
    samples = [
        f"{b['handle']}: item {e.get('id', '?')} (line {e.get('line', '?')}): {e.get('message', '')}"
        for b in batches
        for e in b.get("errors") or []
    ][:MAX_SAMPLES_IN_MESSAGE]
    return (" Sample errors: " + "; ".join(samples)) if samples else ""
