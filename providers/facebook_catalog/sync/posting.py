"""Posting: the items_batch calls of a run, one after another, and the synchronous wait.

Calls go out in order, each only once the one before succeeded: on an error no further call
starts. While a call is in flight (and Meta reads it), the caller's thread reads the next call's
items (running the feed rules on the snapshot's second pass) and joins its payload, then stores
the previous payload in the run's records: the worker's own work overlaps Meta's instead of
adding to it.

The hook and the records store are passed in.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from facebook_catalog.feed.batching import (
    MAX_PAYLOAD_BYTES,
    MAX_REQUESTS_PER_CALL,
    EncodedBatch,
    split_encoded,
)
from facebook_catalog.hooks.graph_api import (
    REVIEW_FIELDS,
    BatchStatusWait,
    FacebookCatalogError,
    GraphApiError,
    ItemReviewWait,
    PermanentGraphApiError,
)
from facebook_catalog.sync.outcome import MESSAGE_SAMPLES

if TYPE_CHECKING:
    from facebook_catalog.hooks.catalog import FacebookCatalogHook
    from facebook_catalog.storage.run_records import RunRecords

log = logging.getLogger(__name__)


def post_batches(
    hook: FacebookCatalogHook,
    requests: Iterable[tuple[str, bytes]],
    records: RunRecords | None,
    *,
    max_requests: int = MAX_REQUESTS_PER_CALL,
    max_bytes: int = MAX_PAYLOAD_BYTES,
) -> dict[str, Any]:
    """Send ``requests`` ((item id, encoded request) pairs) as items_batch calls; the posting's
    fields of the run's :class:`~facebook_catalog.sync.outcome.Submission`."""
    calls: list[dict[str, Any]] = []
    payload_keys: list[str] = []
    batches = split_encoded(requests, max_requests=max_requests, max_bytes=max_bytes)
    poster = ThreadPoolExecutor(max_workers=1, thread_name_prefix="items-batch-post")
    try:
        in_flight: tuple[Future[dict[str, Any]], EncodedBatch] | None = None
        # None after the last batch: the last call is then waited for and stored like the others.
        for batch in itertools.chain(batches, [None]):
            sent = in_flight
            if sent is not None:
                calls.append(sent[0].result())
            in_flight = (
                None if batch is None else (poster.submit(_post_one, hook, batch, len(calls) + 1), batch)
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
        "validation_samples": [v for c in calls for v in c["validation_status"]][:MESSAGE_SAMPLES],
        "throttled_retries": hook.throttled_retries,
        "transient_retries": hook.transient_retries,
        "payloads": payload_keys,
        "call_handles": [[c["handle"], c["request_count"]] for c in calls],
    }


def _post_one(hook: FacebookCatalogHook, batch: EncodedBatch, number: int) -> dict[str, Any]:
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


def poll_until_final(
    hook: FacebookCatalogHook, handles: list[str], deadline: float, poll_interval: float
) -> dict[str, Any]:
    """The trigger's wait, in the worker (``deferrable=False``): the same decisions, the same events."""
    wait = BatchStatusWait(hook.settings.catalog_id, handles, deadline)
    while True:
        for handle in wait.pending:
            try:
                status = hook.get_batch_status(handle)
            except PermanentGraphApiError as error:
                return wait.failed(error)
            except GraphApiError as error:
                log.warning("Polling %s failed, will poll again: %s", handle, error)
                continue
            wait.keep([status])
        event = wait.end_round()
        if event is not None:
            return event
        time.sleep(wait.next_round_in(poll_interval))


def read_review_round(hook: FacebookCatalogHook, wait: ItemReviewWait) -> dict[str, Any] | None:
    """One round of the review wait in the worker (the operator's first look, and every round
    with ``deferrable=False``): the same decisions as the trigger's rounds."""
    complete = True
    try:
        for page in hook.iter_product_pages(REVIEW_FIELDS, retailer_ids=wait.pending):
            wait.keep(page)
    except PermanentGraphApiError as error:
        return wait.failed(error)
    except GraphApiError as error:
        log.warning("Reading the items' review failed, will read again: %s", error)
        complete = False
    return wait.end_round(complete=complete)
