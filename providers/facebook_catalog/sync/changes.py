"""Change tracking over the item ledger: which items a run sends, and what Meta's answer records.

The rules are :mod:`facebook_catalog.sync.ledger`'s (README, "Change detection and the item
ledger"):

* An item whose normalized fields hash to what Meta last confirmed is not sent
  (``items_unchanged``), unless the run is a ``full_sync``.
* Open rejections are re-sent on their backoff schedule, or all at once with ``retry_rejected``.
* Only items Meta confirmed update the confirmed state: their call got a handle, the handle
  ``finished``, the item's id is not among the handle's invalid ones, and Meta's review (when
  the run waited for it) did not reject it. A handle whose
  invalid-id list may have been cut short confirms nothing (its items become pending).
* Writing the ledger is part of accounting for the snapshot: if it fails, the run fails and
  its files stay in landing.

The ledger store and the run's records are passed in (:mod:`facebook_catalog.storage`).
"""

from __future__ import annotations

import logging
from array import array
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import orjson

from facebook_catalog.feed.change_detection import ItemHashes, SentHashes, id_hash
from facebook_catalog.hooks.graph_api import MAX_INVALID_IDS
from facebook_catalog.storage.ledger_store import LedgerState, pack_times
from facebook_catalog.sync import ledger
from facebook_catalog.sync.ledger import (
    ItemToSend,
    LedgerCounts,
    LedgerEntry,
    LedgerRun,
    RetrySchedule,
    RunAnswer,
    settle_run,
)

if TYPE_CHECKING:
    from facebook_catalog.storage.ledger_store import LedgerStore
    from facebook_catalog.storage.run_records import RunRecords
    from facebook_catalog.sync.outcome import Submission

log = logging.getLogger(__name__)

#: The run's notes for the ledger, kept in its records between posting and Meta's answer.
LEDGER_RUN_RECORD = "ledger_run.json"
#: The id hashes (uint64, native order) of the sent items the ledger had never confirmed.
NEW_ITEMS_RECORD = "new_item_hashes.bin"


def open_ledger(store: LedgerStore, now: int) -> LedgerState:
    """The catalog's ledger; on the first run, the old ``item_hashes.bin`` migrated into it."""
    state = store.load()
    if state.etag is None:
        legacy = store.legacy_state()
        if legacy is not None:
            old = ItemHashes.from_bytes(legacy)
            state = store.migrate(old.ids, old.hashes, now)
    return state


def open_entries(store: LedgerStore, state: LedgerState) -> dict[int, LedgerEntry]:
    entries = (LedgerEntry.from_dict(row) for row in store.open_rows(state.manifest))
    return {e.id_hash: e for e in entries}


def retries_waiting(store: LedgerStore, *, retry_rejected: bool, now: int | None = None) -> int:
    """How many open entries a run would re-send from their payload now (all of them with
    ``retry_rejected``): with any, a run has work even when landing is empty."""
    now = ledger.utc_now() if now is None else now
    state = store.load()
    if state.etag is None:
        return 0
    return sum(
        1
        for e in open_entries(store, state).values()
        if e.payload is not None and (retry_rejected or e.due(now))
    )


class ChangeTracking:
    """Per run: the ledger's view of the items it may send, and what it sent."""

    def __init__(self, run: LedgerRun, items_known: int, mode: str) -> None:
        self.run = run
        self.items_known = items_known
        self.mode = mode

    @property
    def full_sync(self) -> bool:
        return self.run.full_sync

    @property
    def sent(self) -> SentHashes:
        return self.run.sent

    @property
    def unchanged(self) -> int:
        return self.run.unchanged

    @classmethod
    def load(
        cls,
        store: LedgerStore,
        *,
        full_sync: bool,
        retry_rejected: bool = False,
        id_hashes: Iterable[int] | None = None,
        now: int | None = None,
    ) -> ChangeTracking:
        """The ledger as the run needs it. ``id_hashes`` are the ids it may send; with them only
        the base's blocks they fall in are read, else (None) the whole base is streamed."""
        now = ledger.utc_now() if now is None else now
        state = open_ledger(store, now)
        manifest = state.manifest
        deltas = store.delta_records(manifest)
        wanted = None if id_hashes is None else sorted(set(id_hashes))
        found = store.lookup(manifest, wanted) if wanted is not None else None
        if found is None:
            hashes = ItemHashes()
            for values in store.base_chunks(manifest):
                hashes.ids.extend(values[0::3])
                hashes.hashes.extend(values[1::3])
            if deltas:
                hashes = hashes.merged((h, record[0]) for h, record in deltas.items())
            confirmed: Callable[[int], int | None] = hashes.get
            mode = "full"
        else:
            assert wanted is not None
            found.update({h: deltas[h] for h in wanted if h in deltas})
            confirmed_hashes = {h: record[0] for h, record in found.items()}
            confirmed, mode = confirmed_hashes.get, "sparse"
        run = LedgerRun(
            confirmed, open_entries(store, state), full_sync=full_sync, retry_rejected=retry_rejected, now=now
        )
        log.info(
            "Item ledger: %d items confirmed so far, %d open (s3://%s/%s; %s read)%s",
            manifest.items,
            len(run.open),
            store.bucket,
            store.prefix,
            mode,
            "; full_sync: every item is sent" if full_sync else "",
        )
        return cls(run, manifest.items, mode)

    def should_send(self, item_id_hash: int, item_hash: int) -> bool:
        return self.run.should_send(item_id_hash, item_hash)

    def retries(self) -> Iterator[ItemToSend]:
        return self.run.retries()

    def summary(self) -> dict[str, Any]:
        return {**self.run.summary(self.items_known), "ledger_read": self.mode}

    def record(
        self,
        submission: Submission,
        records: RunRecords | None,
        feed_rejections: Iterable[tuple[str, str]] = (),
    ) -> None:
        """Put the tracking's figures into the submission, and what the ledger needs after
        Meta's answer into the run's records."""
        submission.counts["items_unchanged"] = self.unchanged
        submission.change_detection = self.summary()
        if records is None:
            return
        if self.sent.ids:
            submission.records["sent_item_hashes"] = records.put_sent_hashes(self.sent.to_bytes())
        notes = {
            "superseded": sorted(self.run.superseded),
            "retried": sorted(self.run.retried),
            "feed_rejections": list(feed_rejections),
        }
        submission.records["ledger_run"] = records.put_record(LEDGER_RUN_RECORD, orjson.dumps(notes))
        submission.records["new_item_hashes"] = records.put_record(
            NEW_ITEMS_RECORD, self.run.new_ids.tobytes()
        )


def invalid_ids_by_handle(batches: list[dict[str, Any]]) -> dict[str, tuple[list[str], bool]]:
    """Each batch's invalid ids, and whether the list is complete: Meta lists at most
    MAX_INVALID_IDS of them, so a full list next to errors may have been cut short."""
    result: dict[str, tuple[list[str], bool]] = {}
    for batch in batches:
        invalid = list(batch.get("ids_of_invalid_requests") or [])
        complete = not batch.get("errors_total_count") or 0 < len(invalid) < MAX_INVALID_IDS
        result[batch["handle"]] = (invalid, complete)
    return result


def meta_messages(batches: list[dict[str, Any]], validation_samples: Iterable[Any]) -> dict[str, str]:
    """Item id -> Meta's first message about it, from the batches' error samples and the
    calls' validation statuses."""
    messages: dict[str, str] = {}
    for batch in batches:
        for error in batch.get("errors") or []:
            if error.get("id") is not None:
                messages.setdefault(str(error["id"]), str(error.get("message") or ""))
    for sample in validation_samples:
        if isinstance(sample, Mapping) and sample.get("retailer_id") is not None:
            errors = sample.get("errors") or []
            text = "; ".join(str(e.get("message", e)) if isinstance(e, Mapping) else str(e) for e in errors)
            messages.setdefault(str(sample["retailer_id"]), text)
    return messages


def stored_payloads(records: RunRecords) -> Any:
    """Reads the requests of the named items from the run's stored payloads (one per call)."""

    def payloads(calls: set[int], wanted: set[int]) -> dict[int, tuple[str, str]]:
        found: dict[int, tuple[str, str]] = {}
        for number in sorted(calls):
            data = records.get(records.payload_name(number))
            if data is None:
                log.warning("The run's payload %s is missing; its rejected items keep no payload", number)
                continue
            for request in orjson.loads(data):
                item_id = str((request.get("data") or {}).get("id", ""))
                key = id_hash(item_id)
                if key in wanted:
                    found[key] = (item_id, orjson.dumps(request).decode("utf-8"))
        return found

    return payloads


def reviewable_item_ids(
    records: RunRecords, submission: Submission, batches: list[dict[str, Any]], *, limit: int
) -> tuple[list[str], int]:
    """The ids of the items Meta's batches accepted (the ones the ledger would confirm), read from
    the run's stored payloads, at most ``limit`` of them; and how many were left out."""
    statuses = {b["handle"]: b["status"] for b in batches}
    invalid = invalid_ids_by_handle(batches)
    found: list[str] = []
    left_out = 0
    for number, (handle, count) in enumerate(submission.call_handles, start=1):
        refused, complete = invalid.get(handle, ([], True)) if handle else ([], False)
        if handle is None or statuses.get(handle) != "finished" or not complete:
            continue  # nothing of the call is confirmed: nothing to look at
        if len(found) >= limit:
            left_out += int(count) - len(refused)
            continue
        data = records.get(records.payload_name(number))
        if data is None:
            log.warning(
                "The run's payload %s is missing; its items are not checked for Meta's review", number
            )
            continue
        skip = set(refused)
        ids = [str((r.get("data") or {}).get("id", "")) for r in orjson.loads(data)]
        ids = [i for i in ids if i and i not in skip]
        room = limit - len(found)
        found.extend(ids[:room])
        left_out += max(0, len(ids) - room)
    return found, left_out


def record_outcomes(
    store: LedgerStore,
    records: RunRecords,
    submission: Submission,
    batches: list[dict[str, Any]],
    *,
    review_rejections: Mapping[str, tuple[str, str | None]] | None = None,
    schedule: RetrySchedule,
    run_id: str,
    now: int | None = None,
) -> LedgerCounts | None:
    """Write what Meta answered into the ledger (the rules above) and ``open_rejections.csv``;
    the run's ledger counts. Raises when the ledger cannot be written: the run's files then stay
    in landing and its items are sent again."""
    if not submission.change_detection:
        return None
    now = ledger.utc_now() if now is None else now
    sent_bytes = records.get_sent_hashes() if submission.records.get("sent_item_hashes") else None
    sent = SentHashes.from_bytes(sent_bytes) if sent_bytes else SentHashes()
    notes_bytes = records.get(LEDGER_RUN_RECORD)
    notes = orjson.loads(notes_bytes) if notes_bytes else {}
    state = open_ledger(store, now)
    before = open_entries(store, state)
    answer = RunAnswer(
        calls=[(h, int(n)) for h, n in submission.call_handles],
        statuses={b["handle"]: b["status"] for b in batches},
        invalid_ids=invalid_ids_by_handle(batches),
        messages=meta_messages(batches, submission.validation_samples),
        review_rejections=dict(review_rejections or {}),
    )
    update = settle_run(
        before,
        sent,
        answer,
        payloads=stored_payloads(records),
        feed_rejections=[tuple(r) for r in notes.get("feed_rejections") or []],
        superseded=notes.get("superseded") or [],
        retried=notes.get("retried") or [],
        schedule=schedule,
        now=now,
    )
    confirmed = {c.id_hash: (c.content_hash, pack_times(c.first_seen, c.last_seen)) for c in update.confirmed}
    new_ids = array("Q")
    new_ids.frombytes(records.get(NEW_ITEMS_RECORD) or b"")
    new_items = len(set(new_ids) & set(confirmed))
    confirmed.update(_unconfirmed_records(store, state, update.unconfirmed, now))
    state = store.commit(
        state,
        confirmed,
        (e.to_dict() for e in update.open_entries.values()),
        new_items=new_items,
        rejections_open=update.counts.rejections_open,
        run_id=run_id,
        now=now,
    )
    submission.counts["items_confirmed"] = len(update.confirmed)
    submission.counts.update(update.counts.to_dict())
    submission.records["new_rejections"] = ",".join(update.new_rejections[:20])
    try:
        submission.records["open_rejections"] = store.put_open_rejections(
            open_rejection_rows(update.open_entries.values())
        )
    except Exception:
        log.exception("Could not write open_rejections.csv; the ledger itself was written")
    if store.needs_compaction(state.manifest):
        try:
            store.compact(state, run_id=run_id, now=now)
        except Exception:
            log.exception("Compacting the ledger failed; the deltas stay and the next run tries again")
    log.info(
        "Item ledger: Meta confirmed %d items; open rejections %d (new %d, closed %d, retried %d)",
        len(update.confirmed),
        update.counts.rejections_open,
        update.counts.rejections_new,
        update.counts.rejections_closed,
        update.counts.rejections_retried,
    )
    return update.counts


def _unconfirmed_records(
    store: LedgerStore, state: LedgerState, keys: list[int], now: int
) -> dict[int, tuple[int, int]]:
    """Delta records that take back what the ledger confirmed of items Meta's review rejected;
    only for items it had confirmed (found in its base or deltas), unless too many to look up."""
    if not keys:
        return {}
    wanted = sorted(set(keys))
    found = store.lookup(state.manifest, wanted)
    if found is None:
        had = set(wanted)
    else:
        deltas = store.delta_records(state.manifest)
        had = set(found) | {h for h in wanted if h in deltas}
    return {h: (ledger.UNCONFIRMED_HASH, pack_times(now, now)) for h in had}


def _iso(epoch: int | None) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).isoformat() if epoch else ""


def open_rejection_rows(entries: Iterable[LedgerEntry]) -> list[tuple[Any, ...]]:
    """The rows of ``open_rejections.csv``: every open entry but pending ones, oldest first."""
    return [
        (
            e.item_id,
            e.outcome,
            e.message,
            e.code or "",
            _iso(e.first_seen),
            _iso(e.last_seen),
            e.attempts,
            _iso(e.next_retry),
        )
        for e in sorted(entries, key=lambda e: (e.first_seen, e.item_id))
        if e.outcome != "pending"
    ]
