"""Trigger that follows items_batch handles until Meta has processed every one of them."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from facebook_catalog.hooks.catalog import DEFAULT_CONN_ID, FacebookCatalogAsyncHook
from facebook_catalog.hooks.graph_api import (
    BatchStatus,
    GraphApiError,
    GraphApiRetryPolicy,
    PermanentGraphApiError,
)

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
    :param retry_policy: kwargs of :class:`GraphApiRetryPolicy` for each status call.
    :param submitted: the operator's summary of its items_batch calls (counts, handles, samples;
        never items or secrets), returned in the event so the resumed task needs no state of its
        own. Airflow's ``dag.test()`` drops ``defer(kwargs=...)``, so the event carries it.
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
        submitted: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.handles = [str(h) for h in handles]
        self.catalog_id = str(catalog_id)
        self.deadline = float(deadline)
        self.poll_interval = float(poll_interval)
        self.facebook_catalog_conn_id = facebook_catalog_conn_id
        self.retry_policy = dict(retry_policy or {})
        self.submitted = dict(submitted or {})

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
                "submitted": dict(self.submitted),
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
        final: dict[str, BatchStatus] = {}
        pending = list(dict.fromkeys(self.handles))
        rounds = 0
        reported = 0
        async with hook.new_session() as session:
            while pending:
                rounds += 1
                try:
                    statuses = await hook.get_batch_statuses(pending, session=session, deadline=self.deadline)
                except PermanentGraphApiError as error:
                    yield TriggerEvent(
                        self._error_event("graph_api_error", str(error), final, pending, error)
                    )
                    return
                except GraphApiError as error:
                    # Retries for this round are spent; the next round tries again until the deadline.
                    self.log.warning("Polling round %d failed, will poll again: %s", rounds, error)
                    statuses = []
                for status in statuses:
                    if status.is_final:
                        final[status.handle] = status
                pending = [h for h in pending if h not in final]
                if not pending:
                    break
                remaining = self.deadline - time.time()
                if remaining <= 0:
                    message = (
                        f"Meta did not finish {len(pending)} of {len(self.handles)} batches before the "
                        f"deadline; still pending: {', '.join(pending)}"
                    )
                    yield TriggerEvent(self._error_event("deadline", message, final, pending, None))
                    return
                # INFO only on progress: each trigger log line wakes the triggerer's supervisor, and
                # a line per poll from 1,000 triggers cost it a third of a core (benchmarks/).
                self.log.log(
                    logging.INFO if len(final) != reported or rounds == 1 else logging.DEBUG,
                    "%d of %d batches final; polling again in %.0f s",
                    len(final),
                    len(self.handles),
                    min(self.poll_interval, remaining),
                )
                reported = len(final)
                await asyncio.sleep(min(self.poll_interval, remaining))
        event = batches_success_event(
            self.catalog_id, self.handles, [final[h] for h in dict.fromkeys(self.handles)]
        )
        event.update(
            polling_rounds=rounds, throttled_retries=hook.throttled_retries, submitted=self.submitted
        )
        yield TriggerEvent(event)

    def _error_event(
        self,
        reason: str,
        message: str,
        final: dict[str, BatchStatus],
        pending: list[str],
        error: GraphApiError | None,
    ) -> dict[str, Any]:
        event = batches_error_event(self.catalog_id, self.handles, reason, message, final, pending, error)
        event["submitted"] = self.submitted
        return event


def batches_success_event(catalog_id: str, handles: list[str], statuses: list[BatchStatus]) -> dict[str, Any]:
    """Every handle reached a final status (which may be ``error`` or ``canceled``)."""
    return {
        "status": "success",
        "catalog_id": catalog_id,
        "handles": list(handles),
        "batches": [s.to_dict() for s in statuses],
    }


def batches_error_event(
    catalog_id: str,
    handles: list[str],
    reason: str,
    message: str,
    final: dict[str, BatchStatus],
    pending: list[str],
    error: GraphApiError | None,
) -> dict[str, Any]:
    """The wait failed: the deadline passed or Meta answered with a permanent error."""
    return {
        "status": "error",
        "reason": reason,
        "message": message,
        "catalog_id": catalog_id,
        "handles": list(handles),
        "pending_handles": list(pending),
        "batches": [s.to_dict() for s in final.values()],
        "error": error.to_dict() if error else None,
    }
