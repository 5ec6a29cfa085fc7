"""Localized overrides: which a run sends through localized_items_batch, and what Meta's answer
records in the item ledger.

The feed carries overrides with their rows (``title_en``, ``price_AE``: feed/localization.py);
each is keyed in the ledger by the id hash of ``<id>|LANGUAGE|en_XX``, apart from its item. The
rules (README, "Localized overrides"):

* localized_items_batch never creates items, so an override is sent only once Meta has confirmed
  its item in the ledger. Until then it is **held** (an open entry with its payload) and goes
  with the first later run that finds the item confirmed.
* An override whose content hash equals the confirmed one is not sent (unless ``full_sync``),
  so a changed English title alone sends one localized request and no items_batch request.
* An override open as rejected by Meta goes again with the ledger's retry schedule (or at once
  with ``retry_rejected``), like an item; overrides the feed did not bring go from their payload.
* Each call carries one localization, so a product appears at most once a call (Meta: do not let
  batches touching one product overlap), and at most 1,000 requests (Meta's guide). An override
  Meta never confirmed is sent as CREATE, one it holds as UPDATE.

The overrides of one run are held in memory (about 400 bytes each) between reading and posting:
posting waits for the items' calls, and the ledger lookup for all of them happens at once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

import orjson

from facebook_catalog.feed.batching import (
    MAX_LOCALIZED_REQUESTS_PER_CALL,
    MAX_PAYLOAD_BYTES,
    as_localized_update,
    split_encoded,
)
from facebook_catalog.feed.change_detection import SentHashes, id_hash
from facebook_catalog.feed.localization import Localization, override_key, split_override_key
from facebook_catalog.hooks.graph_api import FacebookCatalogError, GraphApiError, PermanentGraphApiError
from facebook_catalog.sync.ledger import LedgerEntry, LedgerUpdate, RetrySchedule, RunAnswer, settle_run
from facebook_catalog.sync.outcome import MESSAGE_SAMPLES

if TYPE_CHECKING:
    from facebook_catalog.feed.spool import SpooledItem
    from facebook_catalog.hooks.catalog import FacebookCatalogHook
    from facebook_catalog.storage.run_records import RunRecords

log = logging.getLogger(__name__)

#: Confirmed content hashes of the given id hashes (sorted), as a lookup.
ConfirmedLookup = Callable[[list[int]], Callable[[int], "int | None"]]
#: The run's record of sent overrides, their held entries and notes (read after Meta answers).
SENT_OVERRIDES_RECORD = "sent_override_hashes.bin"
HELD_OVERRIDES_RECORD = "held_overrides.jsonl"


def base_id_of(key: str) -> str:
    """The item id of an override key; "" when ``key`` is not one."""
    try:
        return split_override_key(key)[0]
    except ValueError:
        return ""


def localized_payload_name(number: int) -> str:
    """Where the run's records keep localized call ``number`` (from 1) exactly as sent."""
    return f"localized_payloads/{number:05d}.json"


class LocalizedRun:
    """The sending side of a run's overrides: which go, which are held, which are unchanged."""

    def __init__(
        self,
        lookup: ConfirmedLookup,
        open_entries: Mapping[int, LedgerEntry],
        *,
        full_sync: bool = False,
        retry_rejected: bool = False,
        now: int,
    ) -> None:
        self._lookup = lookup
        self.open = {key: entry for key, entry in open_entries.items() if entry.base_id}
        self.full_sync = full_sync
        self.retry_rejected = retry_rejected
        self.now = now
        #: Per localization, in sending order: (override key, request, key hash, content hash).
        self.rounds: dict[Localization, list[tuple[str, bytes, int, int]]] = {}
        self.held: list[LedgerEntry] = []
        self.unchanged = 0
        self.rejections_held = 0
        self.superseded: set[int] = set()
        self.retried: set[int] = set()
        self.released = 0

    def decide(self, overrides: Iterable[SpooledItem]) -> None:
        """Decide every override the feed brought and every open one it did not (call once)."""
        given = list(overrides)
        seen = {item.id_hash for item in given}
        waiting = [(key, e) for key, e in self.open.items() if key not in seen and e.payload is not None]
        wanted = {item.id_hash for item in given} | {item.base_id_hash for item in given}
        wanted.update(key for key, _ in waiting)
        wanted.update(id_hash(e.base_id) for _, e in waiting)
        confirmed = self._lookup(sorted(wanted)) if wanted else (lambda key: None)
        for item in given:
            self._consider(item, confirmed)
        for key, entry in waiting:
            assert entry.payload is not None
            if confirmed(id_hash(entry.base_id)) is None:
                continue  # its item is still not confirmed: it stays as it is
            if entry.outcome == "held":
                self.released += 1
            elif self.retry_rejected or entry.due(self.now):
                self.retried.add(key)
            else:
                continue
            request = entry.payload.encode("utf-8")
            if confirmed(key) is not None:
                request = as_localized_update(request)
            self._send(entry.item_id, request, key, entry.content_hash)

    def _consider(self, item: SpooledItem, confirmed: Callable[[int], int | None]) -> None:
        key = item.id_hash
        entry = self.open.get(key)
        if confirmed(item.base_id_hash) is None:
            self.held.append(
                LedgerEntry(
                    item_id=item.item_id,
                    outcome="held",
                    content_hash=item.content_hash,
                    message=f"waits until Meta confirms item {base_id_of(item.item_id)!r}",
                    first_seen=entry.first_seen if entry is not None else self.now,
                    last_seen=self.now,
                    attempts=entry.attempts if entry is not None else 0,
                    next_retry=self.now,
                    payload=item.request.decode("utf-8"),
                    base_id=base_id_of(item.item_id),
                )
            )
            return
        held_before = confirmed(key)
        if not self.full_sync and held_before == item.content_hash:
            self.unchanged += 1
            if entry is not None:
                self.superseded.add(key)
            return
        if (
            entry is not None
            and entry.outcome == "rejected_by_meta"
            and entry.content_hash == item.content_hash
        ):
            if not (self.full_sync or self.retry_rejected or entry.due(self.now)):
                self.rejections_held += 1
                return
            self.retried.add(key)
        elif entry is not None and entry.outcome == "held":
            self.released += 1
        request = item.request if held_before is None else as_localized_update(item.request)
        self._send(item.item_id, request, key, item.content_hash)

    def _send(self, item_id: str, request: bytes, key: int, content_hash: int) -> None:
        localization = split_override_key(item_id)[1]
        self.rounds.setdefault(localization, []).append((item_id, request, key, content_hash))

    def ordered_rounds(self) -> list[tuple[Localization, list[tuple[str, bytes, int, int]]]]:
        return sorted(self.rounds.items())

    @property
    def to_send(self) -> int:
        return sum(len(requests) for requests in self.rounds.values())

    def sent(self) -> SentHashes:
        """(key hash, content hash) of every override to send, in sending order."""
        sent = SentHashes()
        for _, requests in self.ordered_rounds():
            for _, _, key, content_hash in requests:
                sent.ids.append(key)
                sent.hashes.append(content_hash)
        return sent

    def summary(self) -> dict[str, Any]:
        return {
            "overrides_unchanged": self.unchanged,
            "overrides_held": len(self.held),
            "overrides_released": self.released,
            "override_rejections_held": self.rejections_held,
        }


def post_localized(
    hook: FacebookCatalogHook,
    run: LocalizedRun,
    records: RunRecords | None,
    *,
    max_requests: int = MAX_LOCALIZED_REQUESTS_PER_CALL,
    max_bytes: int = MAX_PAYLOAD_BYTES,
) -> dict[str, Any]:
    """Send the run's overrides, one localization after another, each in calls of at most
    ``max_requests``; the localized fields of the run's Submission. On an error no further
    call starts."""
    calls: list[list[Any]] = []
    payload_keys: list[str] = []
    samples: list[Any] = []
    validation_errors = 0
    for localization, requests in run.ordered_rounds():
        batches = split_encoded(
            ((item_id, request) for item_id, request, _, _ in requests),
            max_requests=min(max_requests, MAX_LOCALIZED_REQUESTS_PER_CALL),
            max_bytes=max_bytes,
        )
        for batch in batches:
            number = len(calls) + 1
            try:
                response = hook.send_localized_items_batch(batch.payload, batch.request_count)
            except PermanentGraphApiError:
                raise
            except GraphApiError as error:
                raise FacebookCatalogError(
                    f"localized_items_batch call {number} ({batch.request_count} overrides, "
                    f"{localization.key}) failed after {error.attempts} attempts: {error}"
                ) from error
            calls.append([response.handle, batch.request_count, localization.key])
            validation_errors += len(response.validation_status)
            for status in response.validation_status:
                if len(samples) < MESSAGE_SAMPLES and status.get("retailer_id") is not None:
                    samples.append(
                        {**status, "retailer_id": override_key(str(status["retailer_id"]), localization)}
                    )
            if records is not None:
                payload_keys.append(records.put_record(localized_payload_name(number), batch.payload))
    return {
        "localized_calls": len(calls),
        "overrides_sent": sum(int(c[1]) for c in calls),
        "overrides_not_ingested": sum(int(c[1]) for c in calls if not c[0]),
        "localized_call_handles": calls,
        "localized_payloads": payload_keys,
        "localized_validation_samples": samples,
        "localized_validation_errors": validation_errors,
    }


def localized_answer(
    calls: Iterable[Any], batches: Iterable[dict[str, Any]], samples: Iterable[Any]
) -> RunAnswer:
    """Meta's answer on the run's localized calls, with every retailer id Meta names turned into
    its override key: a call holds one localization, so the id says which override it was."""
    from facebook_catalog.sync.changes import invalid_ids_by_handle, meta_messages

    localization_by_handle: dict[str, Localization] = {}
    answer_calls: list[tuple[str | None, int]] = []
    for handle, count, key in calls:
        answer_calls.append((handle, int(count)))
        if handle:
            kind, _, value = str(key).partition("|")
            localization_by_handle[handle] = Localization(kind, value)
    ours = [b for b in batches if b.get("handle") in localization_by_handle]
    invalid: dict[str, tuple[list[str], bool]] = {}
    for handle, (ids, complete) in invalid_ids_by_handle(ours).items():
        localization = localization_by_handle[handle]
        invalid[handle] = ([override_key(i, localization) for i in ids], complete)
    messages: dict[str, str] = {}
    for batch in ours:
        localization = localization_by_handle[batch["handle"]]
        for item_id, message in meta_messages([batch], ()).items():
            messages.setdefault(override_key(item_id, localization), message)
    messages.update({k: v for k, v in meta_messages([], samples).items() if k not in messages})
    return RunAnswer(
        calls=answer_calls,
        statuses={b["handle"]: b["status"] for b in ours},
        invalid_ids=invalid,
        messages=messages,
    )


def stored_localized_payloads(
    records: RunRecords,
) -> Callable[[set[int], set[int]], dict[int, tuple[str, str]]]:
    """Reads the named overrides' requests from the run's stored localized payloads."""

    def payloads(calls: set[int], wanted: set[int]) -> dict[int, tuple[str, str]]:
        found: dict[int, tuple[str, str]] = {}
        for number in sorted(calls):
            data = records.get(localized_payload_name(number))
            if data is None:
                log.warning(
                    "The run's localized payload %s is missing; its overrides keep no payload", number
                )
                continue
            for request in orjson.loads(data):
                item_id = str((request.get("data") or {}).get("id", ""))
                key = override_key(item_id, Localization.from_dict(request.get("localization") or {}))
                if id_hash(key) in wanted:
                    found[id_hash(key)] = (key, orjson.dumps(request).decode("utf-8"))
        return found

    return payloads


def settle_overrides(
    open_before: Mapping[int, LedgerEntry],
    records: RunRecords,
    localized: Mapping[str, Any],
    batches: list[dict[str, Any]],
    *,
    schedule: RetrySchedule,
    now: int,
) -> LedgerUpdate:
    """The ledger after Meta answered the run's localized calls (the rules above), with the
    run's held overrides added. ``localized`` holds the run's notes: calls, samples, superseded
    and retried key hashes."""
    sent_bytes = records.get(SENT_OVERRIDES_RECORD)
    sent = SentHashes.from_bytes(sent_bytes) if sent_bytes else SentHashes()
    answer = localized_answer(
        localized.get("calls") or [], batches, localized.get("validation_samples") or []
    )
    update = settle_run(
        open_before,
        sent,
        answer,
        payloads=stored_localized_payloads(records),
        superseded=localized.get("superseded") or [],
        retried=localized.get("retried") or [],
        schedule=schedule,
        now=now,
        base_id=base_id_of,
    )
    for entry in held_entries(records):
        update.open_entries[entry.id_hash] = entry
    return update


def held_entries(records: RunRecords) -> Iterator[LedgerEntry]:
    data = records.get(HELD_OVERRIDES_RECORD) or b""
    for line in data.splitlines():
        if line.strip():
            yield LedgerEntry.from_dict(orjson.loads(line))


def put_run_records(run: LocalizedRun, records: RunRecords) -> dict[str, str]:
    """What settling needs after Meta answers: the sent overrides' hashes and the held entries."""
    keys: dict[str, str] = {}
    sent = run.sent()
    if sent.ids:
        keys["sent_override_hashes"] = records.put_record(SENT_OVERRIDES_RECORD, sent.to_bytes())
    if run.held:
        body = b"".join(orjson.dumps(entry.to_dict()) + b"\n" for entry in run.held)
        keys["held_overrides"] = records.put_record(HELD_OVERRIDES_RECORD, body)
    return keys
