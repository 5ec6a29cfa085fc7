"""Trigger that follows items_batch handles until Meta has processed every one of them."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from facebook_catalog.hooks.catalog import DEFAULT_CONN_ID, FacebookCatalogAsyncHook
from facebook_catalog.hooks.graph_api import (
    BatchStatusWait,
    GraphApiError,
    GraphApiRetryPolicy,
    PermanentGraphApiError,
    batches_error_event,
    batches_success_event,
)

__all__ = [
    "DEFAULT_POLL_INTERVAL",
    "BatchStatusWait",
    "FacebookCatalogBatchStatusTrigger",
    "batches_error_event",
    "batches_success_event",
]

DEFAULT_POLL_INTERVAL = 30.0


class FacebookCatalogBatchStatusTrigger(BaseTrigger):
    """Poll ``check_batch_request_status`` for every handle until all are final or the deadline passes.

    Yields exactly one event:

    - ``{"status": "success", "batches": [...]}`` once every handle is finished, canceled or in
      error (the operator decides what a canceled or errored batch means for the task);
    - ``{"status": "error", "reason": "deadline" | "graph_api_error", ...}`` when the deadline
      passes (naming the handles still pending) or Meta answers with a permanent error.

    Polling only reads, so the trigger is safe to run twice and to be re-created from its kwargs
    after a triggerer restart. Its kwargs hold no secret: the token is read from the connection.

    :param handles: the handles items_batch returned.
    :param catalog_id: the catalog the handles belong to.
    :param deadline: absolute time (epoch seconds) after which the wait fails.
    :param poll_interval: seconds between polling rounds.
    :param facebook_catalog_conn_id: Airflow connection of type ``facebook_catalog``.
    :param retry_policy: kwargs of :class:`GraphApiRetryPolicy` for each status call (numbers).

    The kwargs are exactly these, all primitives. What the operator submitted before deferring
    does not travel through the trigger: the operator keeps it in its own XCom.
    """

    def __init__(
        self,
        *,
        handles: list[str],
        catalog_id: str,
        deadline: float,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        facebook_catalog_conn_id: str = DEFAULT_CONN_ID,
        retry_policy: dict[str, float] | None = None,
    ) -> None:
        super().__init__()
        self.handles = [str(h) for h in handles]
        self.catalog_id = str(catalog_id)
        self.deadline = float(deadline)
        self.poll_interval = float(poll_interval)
        self.facebook_catalog_conn_id = facebook_catalog_conn_id
        self.retry_policy = dict(retry_policy or {})

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "handles": list(self.handles),
                "catalog_id": self.catalog_id,
                "deadline": self.deadline,
                "poll_interval": self.poll_interval,
                "facebook_catalog_conn_id": self.facebook_catalog_conn_id,
                "retry_policy": dict(self.retry_policy),
            },
        )

    def _hook(self) -> FacebookCatalogAsyncHook:
        return FacebookCatalogAsyncHook(
            facebook_catalog_conn_id=self.facebook_catalog_conn_id,
            catalog_id=self.catalog_id,
            retry_policy=GraphApiRetryPolicy(**self.retry_policy),  # type: ignore[arg-type]
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        hook = self._hook()
        wait = BatchStatusWait(self.catalog_id, self.handles, self.deadline)
        rounds = 0
        reported = 0
        event: dict[str, Any] | None
        async with hook.new_session() as session:
            while True:
                rounds += 1
                try:
                    statuses = await hook.get_batch_statuses(
                        wait.pending, session=session, deadline=self.deadline
                    )
                except PermanentGraphApiError as error:
                    event = wait.failed(error)
                    break
                except GraphApiError as error:
                    # Retries for this round are spent; the next round tries again until the deadline.
                    self.log.warning("Polling round %d failed, will poll again: %s", rounds, error)
                    statuses = []
                wait.keep(statuses)
                event = wait.end_round()
                if event is not None:
                    break
                pause = wait.next_round_in(self.poll_interval)
                # INFO only on progress: each trigger log line wakes the triggerer's supervisor, and
                # a line per poll from 1,000 triggers cost it a third of a core (benchmarks/).
                self.log.log(
                    logging.INFO if len(wait.final) != reported or rounds == 1 else logging.DEBUG,
                    "%d of %d batches final; polling again in %.0f s",
                    len(wait.final),
                    len(self.handles),
                    pause,
                )
                reported = len(wait.final)
                await asyncio.sleep(pause)
        if event["status"] == "success":
            event.update(polling_rounds=rounds, throttled_retries=hook.throttled_retries)
        yield TriggerEvent(event)
