"""Trigger that follows items_batch handles until Meta has processed every one of them."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Iterable
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
        event["submitted"] = self.submitted
        yield TriggerEvent(event)


class BatchStatusWait:
    """One wait for items_batch handles: the final statuses so far, and how each round ends it.

    The trigger and the operator's ``deferrable=False`` path both decide through it; they differ
    only in how they read the statuses (aiohttp or requests) and how they sleep between rounds.
    """

    def __init__(self, catalog_id: str, handles: list[str], deadline: float) -> None:
        self.catalog_id = catalog_id
        self.handles = handles
        self.deadline = deadline
        self.final: dict[str, BatchStatus] = {}
        self.pending = list(dict.fromkeys(handles))
        self._seconds_left = deadline - time.time()

    def keep(self, statuses: Iterable[BatchStatus]) -> None:
        """Note statuses read in this round; the final ones stop being polled after it."""
        for status in statuses:
            if status.is_final:
                self.final[status.handle] = status

    def end_round(self) -> dict[str, Any] | None:
        """The event the wait ends with after this round, or None to poll again."""
        self.pending = [h for h in self.pending if h not in self.final]
        if not self.pending:
            return batches_success_event(
                self.catalog_id, self.handles, [self.final[h] for h in dict.fromkeys(self.handles)]
            )
        self._seconds_left = self.deadline - time.time()
        if self._seconds_left <= 0:
            message = (
                f"Meta did not finish {len(self.pending)} of {len(self.handles)} batches before the "
                f"deadline; still pending: {', '.join(self.pending)}"
            )
            return self._error_event("deadline", message, None)
        return None

    def next_round_in(self, poll_interval: float) -> float:
        """Seconds to sleep before the next round: the poll interval, cut short by the deadline."""
        return min(poll_interval, self._seconds_left)

    def failed(self, error: PermanentGraphApiError) -> dict[str, Any]:
        """The event when Meta answers with a permanent error: polling again cannot help."""
        return self._error_event("graph_api_error", str(error), error)

    def _error_event(self, reason: str, message: str, error: GraphApiError | None) -> dict[str, Any]:
        return batches_error_event(
            self.catalog_id, self.handles, reason, message, self.final, self.pending, error
        )


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
