"""Deferrable operator that upserts products into a Meta catalog through items_batch."""

from __future__ import annotations

import itertools
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator, BaseOperatorLink

from facebook_catalog.feed.batching import (
    MAX_PAYLOAD_BYTES,
    MAX_REQUESTS_PER_CALL,
    EncodedBatch,
    item_request,
    split_encoded,
)
from facebook_catalog.hooks.catalog import DEFAULT_CONN_ID, FacebookCatalogHook
from facebook_catalog.hooks.graph_api import (
    FacebookCatalogError,
    GraphApiError,
    GraphApiRetryPolicy,
    PermanentGraphApiError,
)
from facebook_catalog.run_report import build_report, meta_totals
from facebook_catalog.triggers.items_batch import (
    DEFAULT_POLL_INTERVAL,
    BatchStatusWait,
    FacebookCatalogBatchStatusTrigger,
    batches_success_event,
)

if TYPE_CHECKING:
    from airflow.sdk import Context
    from airflow.sdk.types import TaskInstanceKey

    from facebook_catalog.feed.change_detection import ItemHashes
    from facebook_catalog.landing_zone import RunRecords
    from facebook_catalog.operators.s3_feed import S3FeedRead

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
    the same id keeps its last occurrence; a file that cannot be read as a feed is skipped and
    reported). Requests are ``UPDATE`` with ``allow_upsert=true``, split into calls of at most
    5,000 items under Meta's payload limit. After posting, the task defers to
    :class:`FacebookCatalogBatchStatusTrigger` and frees its worker slot while Meta processes the
    batches; ``deferrable=False`` polls in the worker instead, by the same rules.

    The task fails, naming handles and sample errors, when a batch ends ``error`` or
    ``canceled``, when Meta has not finished by ``timeout``, or when the share of items Meta
    rejected exceeds ``max_error_ratio``. It returns a small summary (never the items) to XCom.

    With ``records_bucket`` set, the run is recorded under ``runs/<run id>/`` there: every
    payload exactly as sent, the rejected rows (CSV) and ``report.json`` (see docs/report.md),
    written on success and on failure.

    :param items: product dicts (templated).
    :param s3_bucket: bucket of the CSV objects (templated).
    :param s3_keys: keys of CSV or gzip CSV objects, read in order; later rows win (templated).
    :param aws_conn_id: Airflow AWS connection used for S3.
    :param facebook_catalog_conn_id: Airflow connection of type ``facebook_catalog``.
    :param catalog_id: overrides the connection's ``catalog_id`` extra (templated).
    :param poll_interval: seconds between status polls (templated).
    :param timeout: how long Meta may take to finish every batch: seconds or a timedelta (templated).
    :param max_error_ratio: share of sent items Meta may reject before the task fails; 0 means
        any rejected item fails the task (templated).
    :param default_currency: ISO 4217 code for CSV prices given without one (templated).
    :param default_condition: ``condition`` for CSV rows without one (templated).
    :param records_bucket: bucket for the run's records; None records nothing (templated).
    :param records_prefix: prefix of the run folders in ``records_bucket``.
    :param detect_changes: with ``records_bucket`` set, skip items whose fields hash to what Meta
        last confirmed for the catalog (state under ``state/<catalog id>/`` there), and record
        what Meta confirms this time. Items Meta rejected, or whose batch did not finish, are
        sent again next run.
    :param full_sync: send every item regardless of the state, e.g. for a weekly reconciliation
        (templated).
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
        "poll_interval",
        "timeout",
        "max_error_ratio",
        "default_currency",
        "default_condition",
        "records_bucket",
        "records_prefix",
        "graph_api_retry_policy",
        "full_sync",
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
        poll_interval: float | str = DEFAULT_POLL_INTERVAL,
        timeout: float | str | timedelta = DEFAULT_TIMEOUT,
        max_error_ratio: float | str = 0.0,
        default_currency: str = "IQD",
        default_condition: str = "new",
        records_bucket: str | None = None,
        records_prefix: str = "runs/",
        detect_changes: bool = True,
        full_sync: bool | str = False,
        max_requests_per_call: int = MAX_REQUESTS_PER_CALL,
        max_payload_bytes: int = MAX_PAYLOAD_BYTES,
        graph_api_retry_policy: GraphApiRetryPolicy | Mapping[str, Any] | str | None = None,
        deferrable: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.items = items
        self.s3_bucket = s3_bucket
        self.s3_keys = s3_keys
        self.aws_conn_id = aws_conn_id
        self.facebook_catalog_conn_id = facebook_catalog_conn_id
        self.catalog_id = catalog_id
        self.poll_interval = poll_interval
        self.timeout = timeout
        self.max_error_ratio = max_error_ratio
        self.default_currency = default_currency
        self.default_condition = default_condition
        self.records_bucket = records_bucket
        self.records_prefix = records_prefix
        self.detect_changes = detect_changes
        self.full_sync = full_sync
        self.max_requests_per_call = max_requests_per_call
        self.max_payload_bytes = max_payload_bytes
        self.graph_api_retry_policy = graph_api_retry_policy
        self.deferrable = deferrable
        if not _is_template(poll_interval, timeout, max_error_ratio):
            self._validated_settings()

    # ------------------------------------------------------------------ settings
    @property
    def retry_policy_for_calls(self) -> GraphApiRetryPolicy:
        """The Graph API retry policy, given as a policy, a dict of its fields, or nothing."""
        policy = self.graph_api_retry_policy
        if isinstance(policy, GraphApiRetryPolicy):
            return policy
        if isinstance(policy, Mapping):
            fields: dict[str, Any] = {k: float(v) if isinstance(v, str) else v for k, v in policy.items()}
            return GraphApiRetryPolicy(**fields)
        if policy:
            raise ValueError(
                f"graph_api_retry_policy must be a GraphApiRetryPolicy or a dict, not {policy!r}"
            )
        return GraphApiRetryPolicy()

    def _validated_settings(self) -> tuple[float, timedelta, float]:
        """Numeric settings may arrive as rendered template strings; check them once, clearly."""
        poll_interval = _as_number(self.poll_interval, "poll_interval")
        if poll_interval <= 0:
            raise ValueError(f"poll_interval must be positive, not {self.poll_interval!r}")
        timeout = (
            self.timeout
            if isinstance(self.timeout, timedelta)
            else timedelta(seconds=_as_number(self.timeout, "timeout"))
        )
        if timeout.total_seconds() <= 0:
            raise ValueError(f"timeout must be positive, not {self.timeout!r}")
        max_error_ratio = _as_number(self.max_error_ratio, "max_error_ratio")
        if not 0.0 <= max_error_ratio <= 1.0:
            raise ValueError(f"max_error_ratio must be between 0 and 1, not {self.max_error_ratio!r}")
        return poll_interval, timeout, max_error_ratio

    # ------------------------------------------------------------------ execute
    def execute(self, context: Context) -> dict[str, Any]:
        poll_interval, timeout, _ = self._validated_settings()
        started = _now()
        hook = self._hook()
        settings = hook.settings
        context["ti"].xcom_push(key=CATALOG_ID_XCOM_KEY, value=settings.catalog_id)
        records = self._records(context)
        submitted: dict[str, Any] = {"catalog_id": settings.catalog_id, "started_at": started.isoformat()}
        try:
            with tempfile.TemporaryDirectory(prefix="fb-catalog-") as workdir:
                feed = self._read_feed(workdir)
                changes = self._change_tracking(settings.catalog_id)
                # Download and the ids pass; the feed rules then run while calls are in flight.
                submitted["seconds_reading"] = round((_now() - started).total_seconds(), 3)
                posting_started = _now()
                try:
                    submitted.update(self._post_batches(hook, self._item_requests(feed, changes), records))
                except BaseException:
                    if feed is not None:  # what was read before sending stopped, for the report
                        submitted.update(files=feed.files, counts=feed.counts())
                    raise
                finally:
                    if feed is not None:
                        feed.close()
                submitted.update(self._feed_summary(feed, records))
            if changes is not None:
                submitted["counts"]["items_unchanged"] = changes.unchanged
                submitted["change_detection"] = changes.summary()
                if records is not None and changes.sent.ids:
                    submitted["records"]["sent_item_hashes"] = records.put_sent_hashes(
                        changes.sent.to_bytes()
                    )
            submitted["posted_at"] = _now().isoformat()
            submitted["seconds_posting"] = round((_now() - posting_started).total_seconds(), 3)
        except Exception as error:
            self._write_report(context, submitted, [], failure=str(error))
            raise
        if submitted["calls"] == 0:
            self.log.info("Nothing to send: no items and no CSV rows. No Graph API call was made.")
            return self.execute_complete(
                context, {**batches_success_event(settings.catalog_id, [], []), "submitted": submitted}
            )
        handles = submitted["handles"]
        if not handles:
            self.log.warning("Meta ingested none of the %d items it was sent.", submitted["items_sent"])
            return self.execute_complete(
                context, {**batches_success_event(settings.catalog_id, [], []), "submitted": submitted}
            )
        deadline = time.time() + timeout.total_seconds()
        if not self.deferrable:
            event = self._poll_synchronously(hook, handles, deadline, poll_interval)
            return self.execute_complete(context, {**event, "submitted": submitted})
        self.log.info(
            "Posted %d items in %d calls; deferring until Meta finishes handles %s (deadline in %s)",
            submitted["items_sent"],
            submitted["calls"],
            ", ".join(handles),
            timeout,
        )
        self.defer(
            trigger=FacebookCatalogBatchStatusTrigger(
                handles=handles,
                catalog_id=settings.catalog_id,
                deadline=deadline,
                poll_interval=poll_interval,
                facebook_catalog_conn_id=self.facebook_catalog_conn_id,
                retry_policy=self.retry_policy_for_calls.to_dict(),
                submitted=submitted,
            ),
            method_name="execute_complete",
            timeout=timeout + DEFERRAL_GRACE,
        )

    def _hook(self) -> FacebookCatalogHook:
        return FacebookCatalogHook(
            facebook_catalog_conn_id=self.facebook_catalog_conn_id,
            catalog_id=self.catalog_id or None,
            retry_policy=self.retry_policy_for_calls,
        )

    def _s3_hook(self) -> Any:
        from airflow.providers.amazon.aws.hooks.s3 import S3Hook

        return S3Hook(aws_conn_id=self.aws_conn_id)

    def _records(self, context: Context) -> RunRecords | None:
        if not self.records_bucket:
            return None
        from facebook_catalog.landing_zone import RunRecords

        return RunRecords(self._s3_hook(), self.records_bucket, context["run_id"], self.records_prefix)

    def _read_feed(self, workdir: str) -> S3FeedRead | None:
        """Download the snapshot and read its ids; the feed rules run as its items are sent."""
        keys = [self.s3_keys] if isinstance(self.s3_keys, str) else list(self.s3_keys or [])
        if not keys:
            return None
        if not self.s3_bucket:
            raise ValueError("s3_keys was given without s3_bucket")
        from facebook_catalog.feed import FeedOptions
        from facebook_catalog.operators.s3_feed import read_s3_feed

        options = FeedOptions(
            default_currency=self.default_currency, default_condition=self.default_condition
        )
        feed = read_s3_feed(self._s3_hook(), self.s3_bucket, keys, options, workdir)
        for failed in feed.file_errors:
            self.log.error(
                "Not read as a feed: s3://%s/%s: %s", self.s3_bucket, failed["key"], failed["error"]
            )
        return feed

    def _feed_summary(self, feed: S3FeedRead | None, records: RunRecords | None) -> dict[str, Any]:
        """What reading the feed found, logged and stored: complete once its items were all sent,
        partial when sending stopped early."""
        if feed is None:
            return {"files": [], "counts": {}, "rejected_samples": [], "records": {}}
        for message in feed.rejection_samples:
            self.log.warning("Rejected: %s", message)
        for message in feed.warning_samples:
            self.log.warning("%s", message)
        counts = feed.counts()
        self.log.info(
            "Read %d rows from %d objects: %d good items, %d rows rejected, %d duplicates dropped, "
            "%d files not readable as a feed",
            counts["rows_read"],
            len(feed.keys),
            feed.items_to_send,
            counts["rows_rejected"],
            counts["duplicates_dropped"],
            counts["files_quarantined"],
        )
        recorded: dict[str, Any] = {}
        if records is not None and feed.rejected_rows:
            recorded["rejected_rows"] = records.put_rejected_rows_file(feed.rejected_rows_path)
        return {
            "files": feed.files,
            "counts": counts,
            "rejected_samples": feed.rejection_samples,
            "records": recorded,
        }

    def _change_tracking(self, catalog_id: str) -> ChangeTracking | None:
        if not (self.records_bucket and self.detect_changes):
            return None
        from facebook_catalog.feed.change_detection import ItemHashes

        store = self._item_hash_store(catalog_id)
        data = store.load()
        state = ItemHashes.from_bytes(data) if data else ItemHashes()
        full_sync = _as_bool(self.full_sync, "full_sync")
        self.log.info(
            "Change detection: %d items confirmed so far (s3://%s/%s)%s",
            len(state),
            self.records_bucket,
            store.key,
            "; full_sync: every item is sent" if full_sync else "",
        )
        return ChangeTracking(state, full_sync)

    def _item_hash_store(self, catalog_id: str) -> Any:
        from facebook_catalog.landing_zone import ItemHashStore

        return ItemHashStore(self._s3_hook(), str(self.records_bucket), catalog_id)

    def _item_requests(
        self, feed: S3FeedRead | None, changes: ChangeTracking | None
    ) -> Iterator[tuple[str, bytes]]:
        """(item id, encoded request) for every item to send, unchanged ones left out."""
        from facebook_catalog.operators.s3_feed import SpooledItem, item_to_send

        # item_request checks each given item (an id, at least) before it is encoded like a row.
        given = (item_to_send(item_request(fields)["data"]) for fields in self.items or [])
        from_feed: Iterable[SpooledItem] = feed.items() if feed else ()
        for item in itertools.chain(given, from_feed):
            if changes is None or changes.should_send(item.id_hash, item.content_hash):
                yield item.item_id, item.request

    def _post_batches(
        self, hook: FacebookCatalogHook, requests: Iterable[tuple[str, bytes]], records: RunRecords | None
    ) -> dict[str, Any]:
        """Send the calls one after another, in order, each only once the one before succeeded.

        While a call is in flight (and Meta reads it), this thread reads the next call's items
        (running the feed rules on the snapshot's second pass) and joins its payload, then stores
        the previous payload in the run records: the worker's own work overlaps Meta's instead of
        adding to it.
        """
        calls: list[dict[str, Any]] = []
        payload_keys: list[str] = []
        batches = split_encoded(
            requests, max_requests=self.max_requests_per_call, max_bytes=self.max_payload_bytes
        )
        poster = ThreadPoolExecutor(max_workers=1, thread_name_prefix="items-batch-post")
        try:
            in_flight: tuple[Future[dict[str, Any]], EncodedBatch] | None = None
            # None after the last batch: the last call is then waited for and stored like the others.
            for batch in itertools.chain(batches, [None]):
                sent = in_flight
                if sent is not None:
                    calls.append(sent[0].result())
                in_flight = (
                    None
                    if batch is None
                    else (poster.submit(self._post_one, hook, batch, len(calls) + 1), batch)
                )
                if sent is not None and records is not None:
                    payload_keys.append(records.put_payload(len(calls), sent[1].payload))
        finally:
            # On an error here (a timeout, a failed call) no further call starts.
            poster.shutdown(wait=False, cancel_futures=True)
        return {
            "calls": len(calls),
            "items_sent": sum(c["request_count"] for c in calls),
            "items_not_ingested": sum(c["request_count"] for c in calls if not c["handle"]),
            "handles": [c["handle"] for c in calls if c["handle"]],
            "validation_errors": sum(c["validation_status_count"] for c in calls),
            "validation_samples": [v for c in calls for v in c["validation_status"]][:MAX_SAMPLES_IN_MESSAGE],
            "throttled_retries": hook.throttled_retries,
            "transient_retries": hook.transient_retries,
            "payloads": payload_keys,
            "call_handles": [[c["handle"], c["request_count"]] for c in calls],
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
        self, hook: FacebookCatalogHook, handles: list[str], deadline: float, poll_interval: float
    ) -> dict[str, Any]:
        """The trigger's wait, in the worker: the same decisions, the same events."""
        wait = BatchStatusWait(hook.settings.catalog_id, handles, deadline)
        while True:
            for handle in wait.pending:
                try:
                    status = hook.get_batch_status(handle)
                except PermanentGraphApiError as error:
                    return wait.failed(error)
                except GraphApiError as error:
                    self.log.warning("Polling %s failed, will poll again: %s", handle, error)
                    continue
                wait.keep([status])
            event = wait.end_round()
            if event is not None:
                return event
            time.sleep(wait.next_round_in(poll_interval))

    # ------------------------------------------------------------------ completion
    def execute_complete(self, context: Context, event: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        """Turn the trigger's event into the task's outcome, and record it."""
        _, _, max_error_ratio = self._validated_settings()
        submitted = event.get("submitted") or {}
        batches = event.get("batches") or []
        self._record_confirmed_items(context, submitted, batches)
        summary = self._summary(submitted, batches, event)
        failure = self._failure(event, batches, summary, max_error_ratio)
        report_key = self._write_report(context, submitted, batches, failure=failure, event=event)
        if report_key:
            summary["report"] = f"s3://{self.records_bucket}/{report_key}"
        if failure:
            raise FacebookCatalogBatchError(failure)
        self.log.info(
            "Meta finished %d batches: %d items sent, %d rejected, %d warnings",
            len(batches),
            summary["items_sent"],
            summary["items_rejected_by_meta"],
            summary["warnings_total_count"],
        )
        return summary

    def _failure(
        self,
        event: dict[str, Any],
        batches: list[dict[str, Any]],
        summary: dict[str, Any],
        max_error_ratio: float,
    ) -> str | None:
        if event.get("status") != "success":
            return f"Waiting for Meta failed ({event.get('reason')}): {event.get('message')}" + _samples_text(
                batches
            )
        failed = [b for b in batches if b["status"] in ("error", "canceled")]
        if failed:
            return (
                f"{len(failed)} of {len(batches)} batches did not complete: "
                + ", ".join(f"{b['handle']} ended {b['status']!r}" for b in failed)
                + ". Items of these batches may not have been applied; the next run sends them again."
                + _samples_text(failed)
            )
        items_sent = summary["items_sent"]
        rejected = summary["items_rejected_by_meta"]
        if items_sent and rejected / items_sent > max_error_ratio:
            return (
                f"Meta rejected {rejected} of {items_sent} items ({rejected / items_sent:.2%}), more than "
                f"max_error_ratio={max_error_ratio:.2%}. Handles: {', '.join(summary['handles'])}."
                + _samples_text(batches)
            )
        return None

    def _record_confirmed_items(
        self, context: Context, submitted: dict[str, Any], batches: list[dict[str, Any]]
    ) -> None:
        """Add what Meta confirmed to the change-detection state; on any failure to do so, the
        items are simply sent again next run."""
        detection = submitted.get("change_detection")
        sent_key = (submitted.get("records") or {}).get("sent_item_hashes")
        if not detection or not sent_key:
            return
        from facebook_catalog.feed.change_detection import ItemHashes, SentHashes, confirmed_updates
        from facebook_catalog.hooks.graph_api import MAX_INVALID_IDS

        try:
            records = self._records(context)
            sent_bytes = records.get("sent_item_hashes.bin") if records else None
            if sent_bytes is None:
                self.log.warning("No record of the sent items: change detection state not updated")
                return
            invalid = {
                b["handle"]: (
                    list(b.get("ids_of_invalid_requests") or []),
                    not b.get("errors_total_count")
                    or 0 < len(b.get("ids_of_invalid_requests") or []) < MAX_INVALID_IDS,
                )
                for b in batches
            }
            updates = confirmed_updates(
                SentHashes.from_bytes(sent_bytes),
                [(h, int(n)) for h, n in submitted.get("call_handles") or []],
                {b["handle"]: b["status"] for b in batches},
                invalid,
            )
            store = self._item_hash_store(str(submitted["catalog_id"]))
            current = store.load()
            state = ItemHashes.from_bytes(current) if current else ItemHashes()
            if updates:
                store.save(state.merged(updates).to_bytes())
            submitted.setdefault("counts", {})["items_confirmed"] = len(updates)
            self.log.info("Change detection: Meta confirmed %d items; state updated", len(updates))
        except Exception:
            self.log.exception("Could not update the change-detection state; those items will be sent again")

    def resume_execution(self, next_method: str, next_kwargs: dict[str, Any] | None, context: Context) -> Any:
        try:
            return super().resume_execution(next_method, next_kwargs, context)
        except FacebookCatalogError:
            raise
        except Exception as exc:
            if next_method != "__fail__":
                raise
            failure = (
                f"The wait for Meta's batches ended without an answer from the trigger ({exc}). Meta "
                "accepted the items_batch calls; nothing is archived and the next run sends them again."
            )
            self._write_report(context, {}, [], failure=failure)
            raise FacebookCatalogBatchError(failure) from exc

    def _summary(
        self, submitted: dict[str, Any], batches: list[dict[str, Any]], event: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        errors_total, warnings_total, rejected_by_meta = meta_totals(submitted, batches)
        return {
            "catalog_id": submitted.get("catalog_id"),
            "calls": submitted.get("calls", 0),
            "items_sent": submitted.get("items_sent", 0),
            "handles": submitted.get("handles", []),
            "statuses": {b["handle"]: b["status"] for b in batches},
            "items_rejected_by_meta": rejected_by_meta,
            "errors_total_count": errors_total,
            "warnings_total_count": warnings_total,
            "error_samples": [e for b in batches for e in b.get("errors") or []][:MAX_SAMPLES_IN_MESSAGE],
            "invalid_item_ids": [i for b in batches for i in b.get("ids_of_invalid_requests") or []][:100],
            "throttled_retries": int(submitted.get("throttled_retries") or 0)
            + int((event or {}).get("throttled_retries") or 0),
            "files": submitted.get("files", []),
            "counts": submitted.get("counts", {}),
        }

    def _write_report(
        self,
        context: Context,
        submitted: dict[str, Any],
        batches: list[dict[str, Any]],
        *,
        failure: str | None,
        event: dict[str, Any] | None = None,
    ) -> str | None:
        """Record the run's outcome; a failure to record is logged, never hides the outcome."""
        records = self._records(context)
        if records is None:
            return None
        report = build_report(
            dag_id=context["ti"].dag_id,
            run_id=context["run_id"],
            submitted=submitted,
            batches=batches,
            event=event or {},
            failure=failure,
            finished_at=_now(),
            report_key=records.key("report.json"),
        )
        try:
            return records.put_report(report)
        except Exception:
            self.log.exception("Could not write the run report to s3://%s", self.records_bucket)
            return None


class ChangeTracking:
    """Per run: the confirmed state, which items are skipped as unchanged, and what was sent."""

    def __init__(self, state: ItemHashes, full_sync: bool) -> None:
        from facebook_catalog.feed.change_detection import SentHashes

        self.state = state
        self.full_sync = full_sync
        self.sent = SentHashes()
        self.unchanged = 0

    def should_send(self, item_id_hash: int, item_hash: int) -> bool:
        if not self.full_sync and self.state.get(item_id_hash) == item_hash:
            self.unchanged += 1
            return False
        self.sent.ids.append(item_id_hash)
        self.sent.hashes.append(item_hash)
        return True

    def summary(self) -> dict[str, Any]:
        return {
            "full_sync": self.full_sync,
            "items_known": len(self.state),
            "items_unchanged": self.unchanged,
        }


def _samples_text(batches: list[dict[str, Any]]) -> str:
    samples = [
        f"{b['handle']}: item {e.get('id', '?')} (line {e.get('line', '?')}): {e.get('message', '')}"
        for b in batches
        for e in b.get("errors") or []
    ][:MAX_SAMPLES_IN_MESSAGE]
    return (" Sample errors: " + "; ".join(samples)) if samples else ""


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _as_bool(value: Any, name: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes", "on"):
        return True
    if text in ("false", "0", "no", "off", "", "none"):
        return False
    raise ValueError(f"{name} must be true or false, not {value!r}")


def _is_template(*values: Any) -> bool:
    return any(isinstance(v, str) and "{{" in v for v in values)


def _as_number(value: Any, name: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, not {value!r}") from None
