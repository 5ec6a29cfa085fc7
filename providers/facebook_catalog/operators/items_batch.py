"""Deferrable operator that upserts products into a Meta catalog through items_batch.

The operator is Airflow's side of a sync: it coerces its templated arguments, builds the hooks
and stores, and hands them to the sync core (:mod:`facebook_catalog.sync`), which reads, posts,
tracks changes and decides the outcome. Waiting for Meta is the trigger's job
(:class:`~facebook_catalog.triggers.items_batch.FacebookCatalogBatchStatusTrigger`).

After the batches finished, Meta's review of the sent items (image fetch, policy) is read back
when ``review_wait_seconds`` > 0 and the item ledger is on: a first look in the worker (a few
paged reads), then, only if items are still under review, a deferral to
:class:`~facebook_catalog.triggers.item_review.FacebookCatalogItemReviewTrigger`, which holds no
worker slot. Items Meta shows rejecting errors for become open rejections (``rejected_by_meta``
with Meta's message and error type), exactly like batch-time rejections. When the deadline
passes, items still under review count as confirmed now; the daily reconcile, which reads every
item's errors, finds a later rejection (and a later run that sends them looks at them again).
"""

from __future__ import annotations

import itertools
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from facebook_catalog.feed.batching import MAX_PAYLOAD_BYTES, MAX_REQUESTS_PER_CALL, item_fields
from facebook_catalog.hooks.catalog import DEFAULT_CONN_ID, FacebookCatalogHook
from facebook_catalog.hooks.graph_api import (
    FacebookCatalogError,
    GraphApiRetryPolicy,
    ItemReviewWait,
    batches_success_event,
)
from facebook_catalog.links.commerce_manager import CATALOG_ID_XCOM_KEY, FacebookCatalogLink
from facebook_catalog.sync.outcome import Outcome, Submission
from facebook_catalog.sync.posting import poll_until_final, post_batches, read_review_round
from facebook_catalog.sync.settings import (
    WaitSettings,
    is_template,
    parse_bool,
    parse_number,
    retry_policy,
    wait_settings,
)
from facebook_catalog.triggers.item_review import FacebookCatalogItemReviewTrigger
from facebook_catalog.triggers.items_batch import DEFAULT_POLL_INTERVAL, FacebookCatalogBatchStatusTrigger

if TYPE_CHECKING:
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook
    from airflow.sdk import Context

    from facebook_catalog.feed.spool import S3FeedRead, SpooledItem
    from facebook_catalog.storage.ledger_store import LedgerStore
    from facebook_catalog.storage.run_records import RunRecords
    from facebook_catalog.sync.changes import ChangeTracking

#: Extra time the deferral may take beyond the trigger's own deadline, so the trigger's clear
#: "deadline" event wins over Airflow's generic deferral timeout.
DEFERRAL_GRACE = timedelta(minutes=5)
DEFAULT_TIMEOUT = timedelta(hours=3)
#: What the operator submitted before it deferred (a Submission), kept for execute_complete.
SUBMISSION_XCOM_KEY = "facebook_catalog_submission"
#: The batches' final event, kept for execute_review_complete while Meta's review is waited for.
BATCH_EVENT_XCOM_KEY = "facebook_catalog_batch_event"
#: The review check reads back at most this many of a run's items (the trigger's kwargs hold the
#: ids still under review); the rest count as confirmed unchecked and are left to the reconcile.
REVIEW_MAX_ITEMS = 50_000
#: Up to this many rows, a run reads only the ledger blocks its ids fall in; beyond, all of it.
SPARSE_LEDGER_ROWS = 200_000
#: OpenLineage namespace of the catalogs the operator writes to; the dataset's name is the catalog id.
LINEAGE_NAMESPACE = "facebook-catalog"
#: The ledger's lease outlives the wait's deadline by this much, so a crashed run frees it.
LEASE_GRACE = timedelta(minutes=10)

__all__ = [
    "CATALOG_ID_XCOM_KEY",
    "FacebookCatalogBatchError",
    "FacebookCatalogItemsBatchOperator",
    "FacebookCatalogLink",
]


class FacebookCatalogBatchError(FacebookCatalogError):
    """Meta processed the batches, but not well enough for the task to succeed."""


class FacebookCatalogItemsBatchOperator(BaseOperator):
    """Upsert products into a Meta (Facebook) catalog and wait until Meta has processed them.

    Items come from ``items`` (product dicts with Meta's field names, sent as given) and/or from
    CSV objects in S3 (``s3_bucket`` + ``s3_keys``), which are read through the feed rules
    (normalized, validated; bad rows are rejected with file, line, field, value and reason and
    the same id keeps its last occurrence; a file that cannot be read as a feed is skipped and
    reported). Requests are ``UPDATE`` with ``allow_upsert=true``, split into calls of at most
    5,000 items under Meta's payload limit. A row's localized overrides (``title_en``,
    ``price_AE``: docs/localized.md) go after the items through localized_items_batch, only for
    items the item ledger says Meta has confirmed (the others wait in the ledger for a later
    run); their handles are waited for with the items'. After posting, the task defers to
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
    :param retry_rejected: re-send every open rejection of the item ledger now (templated).
    :param retry_hours: hours after each rejection by Meta before the item is re-sent from its
        stored payload, e.g. "1,6,24"; after the last, it stays open without retries (templated).
    :param review_wait_seconds: after the batches finished, how long to wait for Meta's review of
        the sent items (image fetch, policy) and record the items it rejects; 0 reads nothing
        (templated). Needs the item ledger (``records_bucket`` with ``detect_changes``).
    :param rejections_fail_task: whether too many new rejections (over ``max_error_ratio``)
        fail this task. The sync DAG passes False: it archives the accounted files first, then
        fails the run.
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
        "retry_rejected",
        "retry_hours",
        "review_wait_seconds",
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
        retry_rejected: bool | str = False,
        retry_hours: str | Sequence[float] = "1,6,24",
        review_wait_seconds: float | str = 0.0,
        rejections_fail_task: bool = True,
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
        self.retry_rejected = retry_rejected
        self.retry_hours = retry_hours
        self.review_wait_seconds = review_wait_seconds
        self.rejections_fail_task = rejections_fail_task
        self.max_requests_per_call = max_requests_per_call
        self.max_payload_bytes = max_payload_bytes
        self.graph_api_retry_policy = graph_api_retry_policy
        self.deferrable = deferrable
        #: A run that posted and never recorded (found at the start): this run sends everything.
        self._unsettled_run: str | None = None
        if not is_template(poll_interval, timeout, max_error_ratio):
            self._wait_settings()
        if not is_template(review_wait_seconds):
            self._review_wait()

    def _wait_settings(self) -> WaitSettings:
        return wait_settings(self.poll_interval, self.timeout, self.max_error_ratio)

    def _review_wait(self) -> timedelta:
        seconds = parse_number(self.review_wait_seconds, "review_wait_seconds")
        if seconds < 0:
            raise ValueError(f"review_wait_seconds must not be negative, not {self.review_wait_seconds!r}")
        return timedelta(seconds=seconds)

    @cached_property
    def hook(self) -> FacebookCatalogHook:
        return FacebookCatalogHook(
            facebook_catalog_conn_id=self.facebook_catalog_conn_id,
            catalog_id=self.catalog_id or None,
            retry_policy=retry_policy(self.graph_api_retry_policy),
        )

    @cached_property
    def s3_hook(self) -> S3Hook:
        from airflow.providers.amazon.aws.hooks.s3 import S3Hook

        return S3Hook(aws_conn_id=self.aws_conn_id)

    # ------------------------------------------------------------------ execute
    def execute(self, context: Context) -> dict[str, Any]:
        wait = self._wait_settings()
        started = _now()
        catalog_id = self.hook.settings.catalog_id
        context["ti"].xcom_push(key=CATALOG_ID_XCOM_KEY, value=catalog_id)
        records = self._records(context)
        submission = Submission(catalog_id=catalog_id, started_at=started.isoformat())
        store = self._ledger_store(catalog_id)
        try:
            if store is not None:
                from facebook_catalog.sync import ledger

                # Held until the outcome is recorded; a second run on the catalog fails clearly
                # (and its report says why). Releasing below frees only this run's own lease.
                store.acquire_lease(
                    context["run_id"],
                    ledger.utc_now(),
                    (wait.timeout + self._review_wait() + 2 * DEFERRAL_GRACE + LEASE_GRACE).total_seconds(),
                )
                self._unsettled_run = store.mark_unsettled(context["run_id"], ledger.utc_now())
                if self._unsettled_run:
                    self.log.warning(
                        "Run %s posted items and never recorded Meta's answer: this run sends every "
                        "item of its snapshot, changed or not.",
                        self._unsettled_run,
                    )
            self._submit(submission, records, started)
        except Exception as error:
            self._write_report(context, Outcome(submission), failure=str(error))
            if store is not None:
                store.release_lease(context["run_id"])
            raise
        if submission.calls == 0 and submission.localized_calls == 0:
            self.log.info("Nothing to send: no items and no CSV rows. No Graph API call was made.")
            return self._complete(context, submission, batches_success_event(catalog_id, [], []))
        handles = submission.handles
        if not handles:
            self.log.warning(
                "Meta ingested none of the %d items and %d overrides it was sent.",
                submission.items_sent,
                submission.overrides_sent,
            )
            return self._complete(context, submission, batches_success_event(catalog_id, [], []))
        deadline = time.time() + wait.timeout.total_seconds()
        if not self.deferrable:
            event = poll_until_final(self.hook, handles, deadline, wait.poll_interval)
            return self._review_then_complete(context, submission, event)
        context["ti"].xcom_push(key=SUBMISSION_XCOM_KEY, value=submission.to_dict())
        self.log.info(
            "Posted %d items in %d calls and %d overrides in %d localized calls; deferring until Meta "
            "finishes handles %s (deadline in %s)",
            submission.items_sent,
            submission.calls,
            submission.overrides_sent,
            submission.localized_calls,
            ", ".join(handles),
            wait.timeout,
        )
        self.defer(
            trigger=FacebookCatalogBatchStatusTrigger(
                handles=handles,
                catalog_id=catalog_id,
                deadline=deadline,
                poll_interval=wait.poll_interval,
                facebook_catalog_conn_id=self.facebook_catalog_conn_id,
                retry_policy=self.hook.retry_policy.to_dict(),
            ),
            method_name="execute_complete",
            timeout=wait.timeout + DEFERRAL_GRACE,
        )

    def _submit(self, submission: Submission, records: RunRecords | None, started: datetime) -> None:
        """Read the snapshot and post its items (and the given ones), filling in ``submission``."""
        with tempfile.TemporaryDirectory(prefix="fb-catalog-") as workdir:
            feed = self._read_feed(workdir)
            changes = self._change_tracking(str(submission.catalog_id), feed)
            # Download and the ids pass; the feed rules then run while calls are in flight.
            submission.seconds_reading = round((_now() - started).total_seconds(), 3)
            posting_started = _now()
            overrides: list[SpooledItem] = []
            try:
                posted = post_batches(
                    self.hook,
                    self._item_requests(feed, changes, overrides),
                    records,
                    max_requests=self.max_requests_per_call,
                    max_bytes=self.max_payload_bytes,
                )
                for name, value in posted.items():
                    setattr(submission, name, value)
                self._post_overrides(submission, overrides, changes, records)
            except BaseException:
                if feed is not None:  # what was read before sending stopped, for the report
                    submission.files, submission.counts = feed.files, feed.counts()
                raise
            finally:
                if feed is not None:
                    feed.close()
            self._record_feed(submission, feed, records)
        if changes is not None:
            changes.record(submission, records, feed.rejected_items.items() if feed is not None else ())
        submission.posted_at = _now().isoformat()
        submission.seconds_posting = round((_now() - posting_started).total_seconds(), 3)

    def _records(self, context: Context) -> RunRecords | None:
        if not self.records_bucket:
            return None
        from facebook_catalog.storage.run_records import RunRecords

        return RunRecords(self.s3_hook, self.records_bucket, context["run_id"], self.records_prefix)

    def _read_feed(self, workdir: str) -> S3FeedRead | None:
        """Download the snapshot and read its ids; the feed rules run as its items are sent."""
        keys = [self.s3_keys] if isinstance(self.s3_keys, str) else list(self.s3_keys or [])
        if not keys:
            return None
        if not self.s3_bucket:
            raise ValueError("s3_keys was given without s3_bucket")
        from facebook_catalog.feed import FeedOptions
        from facebook_catalog.feed.spool import S3FeedRead
        from facebook_catalog.storage.s3 import download_object

        options = FeedOptions(
            default_currency=self.default_currency, default_condition=self.default_condition
        )
        bucket = self.s3_bucket
        feed = S3FeedRead(bucket, keys, options, workdir)
        feed.scan(lambda key, path: download_object(self.s3_hook, bucket, key, path))
        for failed in feed.file_errors:
            self.log.error("Not read as a feed: s3://%s/%s: %s", bucket, failed["key"], failed["error"])
        return feed

    def _record_feed(
        self, submission: Submission, feed: S3FeedRead | None, records: RunRecords | None
    ) -> None:
        """What reading the feed found, logged and stored: complete once its items were all sent."""
        if feed is None:
            return
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
        submission.files, submission.counts = feed.files, counts
        submission.rejected_samples = feed.rejection_samples
        if records is not None and feed.rejected_rows:
            submission.records["rejected_rows"] = records.put_rejected_rows_file(feed.rejected_rows_path)

    def _ledger_store(self, catalog_id: str) -> LedgerStore | None:
        if not (self.records_bucket and self.detect_changes):
            return None
        from facebook_catalog.storage.ledger_store import LedgerStore

        return LedgerStore(self.s3_hook, str(self.records_bucket), catalog_id)

    def _retry_schedule(self) -> Any:
        from facebook_catalog.sync.ledger import RetrySchedule, parse_retry_hours

        return RetrySchedule(parse_retry_hours(self.retry_hours))

    def _change_tracking(self, catalog_id: str, feed: S3FeedRead | None) -> ChangeTracking | None:
        store = self._ledger_store(catalog_id)
        if store is None:
            return None
        from facebook_catalog.feed.change_detection import id_hash
        from facebook_catalog.sync.changes import ChangeTracking

        given = [id_hash(str(item_fields(fields)["id"])) for fields in self.items or [] if fields.get("id")]
        from_feed = feed.id_hashes(SPARSE_LEDGER_ROWS) if feed is not None else []
        id_hashes = None if from_feed is None or len(given) > SPARSE_LEDGER_ROWS else given + from_feed
        return ChangeTracking.load(
            store,
            full_sync=parse_bool(self.full_sync, "full_sync") or bool(self._unsettled_run),
            retry_rejected=parse_bool(self.retry_rejected, "retry_rejected"),
            id_hashes=id_hashes,
        )

    def _item_requests(
        self, feed: S3FeedRead | None, changes: ChangeTracking | None, overrides: list[SpooledItem]
    ) -> Iterator[tuple[str, bytes]]:
        """(item id, encoded request) for every item to send, unchanged ones left out; the
        feed's localized overrides go into ``overrides`` (sent after the items)."""
        from facebook_catalog.feed.spool import item_to_send

        # Each given item is checked (an id, at least), then encoded like a row.
        given = (item_to_send(item_fields(fields)) for fields in self.items or [])
        from_feed: Iterable[SpooledItem] = feed.items() if feed else ()
        for item in itertools.chain(given, from_feed):
            if item.base_id_hash:
                overrides.append(item)
                continue
            if changes is None or changes.should_send(item.id_hash, item.content_hash):
                yield item.item_id, item.request
        if changes is not None:  # open rejections due again, from their stored payloads
            for retry in changes.retries():
                yield retry.item_id, retry.request

    def _post_overrides(
        self,
        submission: Submission,
        overrides: list[SpooledItem],
        changes: ChangeTracking | None,
        records: RunRecords | None,
    ) -> None:
        """Send the localized overrides whose items Meta holds (sync/localized.py); without the
        item ledger every override is sent, and Meta refuses those of items it lacks."""
        from facebook_catalog.sync.localized import LocalizedRun, post_localized

        if changes is not None:
            run = changes.localized
        else:
            run = LocalizedRun(lambda wanted: lambda key: 0, {}, full_sync=True, now=0)
        run.decide(overrides)
        if not run.to_send:
            return
        posted = post_localized(self.hook, run, records, max_bytes=self.max_payload_bytes)
        for name, value in posted.items():
            setattr(submission, name, value)
        submission.handles = [*submission.handles, *(c[0] for c in submission.localized_call_handles if c[0])]

    # ------------------------------------------------------------------ completion
    def execute_complete(self, context: Context, event: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        """Turn the trigger's event into the task's outcome, and record it."""
        return self._review_then_complete(context, self._pushed_submission(context), event)

    def execute_review_complete(
        self, context: Context, event: dict[str, Any], **kwargs: Any
    ) -> dict[str, Any]:
        """The review trigger's event: complete the run with the batches' event kept before."""
        ti = context["ti"]
        batch_event = ti.xcom_pull(task_ids=ti.task_id, key=BATCH_EVENT_XCOM_KEY, map_indexes=ti.map_index)
        return self._complete(context, self._pushed_submission(context), batch_event or {}, review=event)

    def _pushed_submission(self, context: Context) -> Submission:
        ti = context["ti"]
        submitted = ti.xcom_pull(task_ids=ti.task_id, key=SUBMISSION_XCOM_KEY, map_indexes=ti.map_index)
        return Submission.from_dict(submitted)

    def _review_then_complete(
        self, context: Context, submission: Submission, event: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Read Meta's review of the items its batches accepted, then complete (module docstring)."""
        review_wait = self._review_wait()
        records = self._records(context)
        store = self._ledger_store(submission.catalog_id) if submission.catalog_id else None
        if not review_wait or records is None or store is None or event.get("status") != "success":
            return self._complete(context, submission, event)
        from facebook_catalog.sync.changes import reviewable_item_ids

        retailer_ids, unchecked = reviewable_item_ids(
            records, submission, list(event.get("batches") or []), limit=REVIEW_MAX_ITEMS
        )
        if not retailer_ids:
            return self._complete(context, submission, event)
        wait = ItemReviewWait(
            str(submission.catalog_id), retailer_ids, time.time() + review_wait.total_seconds()
        )
        poll_interval = self._wait_settings().poll_interval
        # The hook also posted when the task did not defer: count only the review's reads.
        calls_before, throttled_before = self.hook.read_calls, self.hook.throttled_retries
        review = read_review_round(self.hook, wait)
        while review is None and not self.deferrable:
            time.sleep(min(poll_interval, wait.seconds_left()))
            review = read_review_round(self.hook, wait)
        if review is not None:
            review.update(
                read_calls=self.hook.read_calls - calls_before,
                throttled_retries=self.hook.throttled_retries - throttled_before,
                not_checked=unchecked,
            )
            return self._complete(context, submission, event, review=review)
        context["ti"].xcom_push(key=BATCH_EVENT_XCOM_KEY, value=dict(event))
        self.log.info(
            "%d of %d items are still in Meta's review; deferring until it ends (at most %s)",
            len(wait.pending),
            wait.checked,
            review_wait,
        )
        self.defer(
            trigger=FacebookCatalogItemReviewTrigger(
                catalog_id=str(submission.catalog_id),
                retailer_ids=wait.pending,
                deadline=wait.deadline,
                poll_interval=poll_interval,
                facebook_catalog_conn_id=self.facebook_catalog_conn_id,
                retry_policy=self.hook.retry_policy.to_dict(),
                rejected=wait.rejected,
                checked=wait.checked,
                missing=wait.missing,
                not_checked=unchecked,
                read_calls=self.hook.read_calls - calls_before,
                throttled_retries=self.hook.throttled_retries - throttled_before,
            ),
            method_name="execute_review_complete",
            timeout=review_wait + DEFERRAL_GRACE,
        )

    def _complete(
        self,
        context: Context,
        submission: Submission,
        event: Mapping[str, Any],
        review: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        max_error_ratio = self._wait_settings().max_error_ratio
        outcome = Outcome(submission, event, review)
        store = self._ledger_store(submission.catalog_id) if submission.catalog_id else None
        try:
            ledger_failure = self._record_ledger(context, store, submission, outcome)
        finally:
            if store is not None:
                store.release_lease(context["run_id"])
        summary = outcome.summary()
        failure = ledger_failure or outcome.failure(max_error_ratio)
        report_key = self._write_report(context, outcome, failure=failure)
        if report_key:
            summary["report"] = f"s3://{self.records_bucket}/{report_key}"
        if failure and (ledger_failure or outcome.systemic_failure() or self.rejections_fail_task):
            raise FacebookCatalogBatchError(failure)
        # Too many new rejections, but every item accounted for: the DAG archives, then fails.
        summary["rejection_failure"] = failure
        self.log.info(
            "Meta finished %d batches: %d items sent, %d rejected, %d rejected in review, %d warnings",
            len(outcome.batches),
            summary["items_sent"],
            summary["items_rejected_by_meta"],
            summary["items_rejected_in_review"],
            summary["warnings_total_count"],
        )
        return summary

    def _record_ledger(
        self, context: Context, store: LedgerStore | None, submission: Submission, outcome: Outcome
    ) -> str | None:
        """Record Meta's answer in the item ledger; why the run fails when it cannot be."""
        records = self._records(context)
        if store is None or records is None:
            return None
        from facebook_catalog.sync.changes import record_outcomes

        try:
            record_outcomes(
                store,
                records,
                submission,
                outcome.batches,
                review_rejections=outcome.review_rejections,
                schedule=self._retry_schedule(),
                run_id=context["run_id"],
            )
        except Exception as error:
            self.log.exception("Could not write the item ledger")
            return (
                f"Could not write the item ledger of catalog {submission.catalog_id} ({error}). "
                "The snapshot's files stay in landing and the next run sends their items again."
            )
        store.settle(context["run_id"])
        return None

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
            self._write_report(context, Outcome(Submission()), failure=failure)
            catalog_id = self.hook.settings.catalog_id
            store = self._ledger_store(catalog_id) if catalog_id else None
            if store is not None:
                store.release_lease(context["run_id"])
            raise FacebookCatalogBatchError(failure) from exc

    # ------------------------------------------------------------------ lineage
    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """OpenLineage's view of the run (called by the OpenLineage provider's listener): the S3
        objects read, ``s3://<bucket>`` / key, into the dataset ``facebook-catalog`` / catalog id.

        The provider is imported here, never at module level, so the operator works without it;
        without it this returns None (and nothing calls it)."""
        try:
            from airflow.providers.common.compat.openlineage.facet import Dataset
            from airflow.providers.openlineage.extractors import OperatorLineage
        except ImportError:
            return None
        keys = [self.s3_keys] if isinstance(self.s3_keys, str) else list(self.s3_keys or [])
        inputs = [
            Dataset(namespace=f"s3://{self.s3_bucket}", name=str(key)) for key in keys if self.s3_bucket
        ]
        catalog_id = self._lineage_catalog_id()
        outputs = [Dataset(namespace=LINEAGE_NAMESPACE, name=catalog_id)] if catalog_id else []
        return OperatorLineage(inputs=inputs, outputs=outputs)

    def get_openlineage_facets_on_failure(self, task_instance: Any) -> Any:
        """The same datasets when the run failed: it read them and may have changed the catalog."""
        return self.get_openlineage_facets_on_complete(task_instance)

    def _lineage_catalog_id(self) -> str | None:
        if self.catalog_id and not is_template(self.catalog_id):
            return str(self.catalog_id)
        try:
            return self.hook.settings.catalog_id or None
        except Exception:  # lineage never fails the task; the connection is checked where it is used
            self.log.warning("No catalog id for OpenLineage: the connection has none", exc_info=True)
            return None

    def _write_report(self, context: Context, outcome: Outcome, *, failure: str | None) -> str | None:
        """Record the run's outcome; a failure to record is logged, never hides the outcome."""
        records = self._records(context)
        if records is None:
            return None
        report = outcome.report(
            dag_id=context["ti"].dag_id,
            run_id=context["run_id"],
            failure=failure,
            finished_at=_now(),
            report_key=records.key("report.json"),
        )
        try:
            return records.put_report(report)
        except Exception:
            self.log.exception("Could not write the run report to s3://%s", self.records_bucket)
            return None


def _now() -> datetime:
    return datetime.now(timezone.utc)
