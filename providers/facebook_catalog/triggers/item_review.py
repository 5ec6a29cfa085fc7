"""Trigger that waits for Meta's review of a run's items (image fetch, policy) after their batches
finished, reading their state back until every one is reviewed or the deadline passes."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from facebook_catalog.hooks.catalog import DEFAULT_CONN_ID, FacebookCatalogAsyncHook
from facebook_catalog.hooks.graph_api import (
    REVIEW_FIELDS,
    GraphApiError,
    GraphApiRetryPolicy,
    ItemReviewWait,
    PermanentGraphApiError,
)

__all__ = ["DEFAULT_REVIEW_POLL_INTERVAL", "FacebookCatalogItemReviewTrigger"]

DEFAULT_REVIEW_POLL_INTERVAL = 60.0


class FacebookCatalogItemReviewTrigger(BaseTrigger):
    """Read the items' ``review_status`` and ``errors`` until none is pending or the deadline passes.

    Yields exactly one event, :meth:`ItemReviewWait.event`'s: ``status`` "success" (with
    ``deadline_passed`` when items were still unreviewed) or "error" (Meta answered a read with a
    permanent error), with the rejections found (``rejected``: id -> message, code) and the counts.

    Reading is all it does, so it is safe to run twice and to re-create from its kwargs after a
    triggerer restart; the kwargs hold no secret.

    :param catalog_id: the catalog the items are in.
    :param retailer_ids: the ids still to look at (the operator's first look found the others).
    :param deadline: absolute time (epoch seconds) the wait ends at, reviewed or not.
    :param poll_interval: seconds between reading rounds.
    :param facebook_catalog_conn_id: Airflow connection of type ``facebook_catalog``.
    :param retry_policy: kwargs of :class:`GraphApiRetryPolicy` for each read (numbers).
    :param rejected: rejections the first look found (id -> {"message", "code"}), carried along.
    :param checked: how many items the check covers in all; ``missing``: how many Meta lacks.
    :param not_checked: items of the run the check leaves out (over its limit), for the report.
    :param read_calls: read calls the first look made, added to the trigger's own; the same for
        ``throttled_retries``.
    """

    def __init__(
        self,
        *,
        catalog_id: str,
        retailer_ids: list[str],
        deadline: float,
        poll_interval: float = DEFAULT_REVIEW_POLL_INTERVAL,
        facebook_catalog_conn_id: str = DEFAULT_CONN_ID,
        retry_policy: dict[str, float] | None = None,
        rejected: dict[str, dict[str, Any]] | None = None,
        checked: int | None = None,
        missing: int = 0,
        not_checked: int = 0,
        read_calls: int = 0,
        throttled_retries: int = 0,
    ) -> None:
        super().__init__()
        self.catalog_id = str(catalog_id)
        self.retailer_ids = [str(i) for i in retailer_ids]
        self.deadline = float(deadline)
        self.poll_interval = float(poll_interval)
        self.facebook_catalog_conn_id = facebook_catalog_conn_id
        self.retry_policy = dict(retry_policy or {})
        self.rejected = dict(rejected or {})
        self.checked = checked
        self.missing = int(missing)
        self.not_checked = int(not_checked)
        self.read_calls = int(read_calls)
        self.throttled_retries = int(throttled_retries)
        self._cached_hook: FacebookCatalogAsyncHook | None = None

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "catalog_id": self.catalog_id,
                "retailer_ids": list(self.retailer_ids),
                "deadline": self.deadline,
                "poll_interval": self.poll_interval,
                "facebook_catalog_conn_id": self.facebook_catalog_conn_id,
                "retry_policy": dict(self.retry_policy),
                "rejected": dict(self.rejected),
                "checked": self.checked,
                "missing": self.missing,
                "not_checked": self.not_checked,
                "read_calls": self.read_calls,
                "throttled_retries": self.throttled_retries,
            },
        )

    @property
    def hook(self) -> FacebookCatalogAsyncHook:
        if self._cached_hook is None:
            self._cached_hook = FacebookCatalogAsyncHook(
                facebook_catalog_conn_id=self.facebook_catalog_conn_id,
                catalog_id=self.catalog_id,
                retry_policy=GraphApiRetryPolicy(**self.retry_policy),  # type: ignore[arg-type]
            )
        return self._cached_hook

    async def run(self) -> AsyncIterator[TriggerEvent]:
        hook = self.hook
        wait = ItemReviewWait(
            self.catalog_id,
            self.retailer_ids,
            self.deadline,
            rejected=self.rejected,
            checked=self.checked,
            missing=self.missing,
        )
        event: dict[str, Any] | None = None
        async with hook.new_session() as session:
            while event is None:
                pause = min(self.poll_interval, wait.seconds_left())
                self.log.info(
                    "%d items still in Meta's review; reading them again in %.0f s", len(wait.pending), pause
                )
                await asyncio.sleep(pause)
                complete = True
                try:
                    async for page in hook.iter_product_pages(
                        REVIEW_FIELDS, retailer_ids=wait.pending, session=session, deadline=self.deadline
                    ):
                        wait.keep(page)
                except PermanentGraphApiError as error:
                    event = wait.failed(error)
                    break
                except GraphApiError as error:
                    # Retries for this round are spent; the next round reads again until the deadline.
                    self.log.warning("Reading the items' review failed, will read again: %s", error)
                    complete = False
                event = wait.end_round(complete=complete)
        event.update(
            read_calls=self.read_calls + hook.read_calls,
            throttled_retries=self.throttled_retries + hook.throttled_retries,
            not_checked=self.not_checked,
            waited_in_trigger=True,
        )
        self.log.log(
            logging.INFO,
            "Meta's review: %d of %d items rejected, %d not reviewed yet",
            len(event["rejected"]),
            event["checked"],
            event["unreviewed_count"],
        )
        yield TriggerEvent(event)
