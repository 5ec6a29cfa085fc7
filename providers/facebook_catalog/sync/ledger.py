"""The item ledger's rules: what Meta holds of each item, what it refused and why, what to retry.

Per catalog the ledger keeps, for every item id (by its 64-bit id hash):

* the **confirmed** part: the content hash Meta last confirmed, when the item was first
  confirmed and when last (24 bytes an item, :mod:`facebook_catalog.storage.ledger_store`);
* for every item **not confirmed** (an *open* entry, :class:`LedgerEntry`): its last outcome
  (``rejected_by_feed``, ``rejected_by_meta``, ``pending``), Meta's message and code, first and
  last seen, attempts, the next retry time and the last request payload, so that it can be sent
  again without its landing file.

The rules a run follows (:class:`LedgerRun` while sending, :func:`settle_run` once Meta answered):

* An item whose content hash equals the confirmed one is not sent (unless ``full_sync``); an
  open entry it had is closed (Meta holds what the source says).
* An item open as rejected by Meta, whose row comes again with the **same** content, is only
  sent when its retry is due; with **different** content it is sent now.
* Open rejections whose retry is due (after 1 h, 6 h, 24 h by default: ``retry_hours``), or all
  of them with ``retry_rejected``, are re-sent from their stored payload. After the last step
  an entry stays open without further retries.
* Meta confirming an item closes its entry. An item Meta rejects is a **new** rejection unless it
  was already open as rejected by Meta with the same content. An item of a finished batch that
  Meta's later review rejects (image fetch, policy: ``RunAnswer.review_rejections``) is rejected
  the same way, with Meta's message and error type as its code, and it is no longer confirmed
  (:data:`UNCONFIRMED_HASH`): Meta now holds the rejected content, not what it confirmed before.
  One still under review when the run's review wait ends counts as confirmed (the daily
  reconcile, which reads every item's errors, finds a later rejection). Items whose batch did not finish
  become ``pending``, due at once: they go again next run.
"""

from __future__ import annotations

import re
import time
from array import array
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal, NamedTuple

from facebook_catalog.feed.change_detection import SentHashes, id_hash

Outcome = Literal["confirmed", "rejected_by_feed", "rejected_by_meta", "pending"]
OUTCOMES: tuple[Outcome, ...] = ("confirmed", "rejected_by_feed", "rejected_by_meta", "pending")
OPEN_OUTCOMES: frozenset[str] = frozenset({"rejected_by_feed", "rejected_by_meta", "pending"})
DEFAULT_RETRY_HOURS: tuple[float, ...] = (1.0, 6.0, 24.0)
#: The confirmed content hash of an item Meta once confirmed and has since rejected in review:
#: no content hashes to it, so the item's next row is never "unchanged".
UNCONFIRMED_HASH = 0
_META_CODE = re.compile(r"\(#(\d+)\)")


def utc_now() -> int:
    """The ledger's clock, epoch seconds (tests move it forward an hour at a time)."""
    return int(time.time())


def meta_code(message: str) -> int | None:
    """Meta's error code when its message carries one, as ``(#10800) ...``."""
    found = _META_CODE.search(message or "")
    return int(found.group(1)) if found else None


def parse_retry_hours(value: Any) -> tuple[float, ...]:
    """The retry schedule: hours after each rejection ("1,6,24", a list, or a number)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        items: list[Any] = [value]
    elif isinstance(value, str):
        items = [v for v in value.replace(";", ",").split(",") if v.strip()]
    else:
        items = list(value or [])
    try:
        hours = tuple(float(v) for v in items)
    except (TypeError, ValueError):
        raise ValueError(
            f"retry_hours must be hours separated by commas, like '1,6,24', not {value!r}"
        ) from None
    if any(h <= 0 for h in hours):
        raise ValueError(f"retry_hours must be positive hours, not {value!r}")
    return hours


@dataclass
class LedgerEntry:
    """An item not confirmed as it is now: the last outcome, why, and how to send it again."""

    item_id: str
    outcome: Outcome
    #: Content hash of the content last attempted (or rejected by the feed: 0).
    content_hash: int = 0
    message: str = ""
    #: Meta's numeric code (batch time), or its error type (review, e.g. "IMAGE_FETCH_FAILED").
    code: int | str | None = None
    first_seen: int = 0
    last_seen: int = 0
    attempts: int = 0
    next_retry: int | None = None
    #: The last request as sent (the items_batch request's JSON text); None when there is none.
    payload: str | None = None

    @property
    def id_hash(self) -> int:
        return id_hash(self.item_id)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LedgerEntry:
        known = {f.name for f in fields(cls)}
        entry = cls(**{k: v for k, v in data.items() if k in known})
        if entry.outcome not in OPEN_OUTCOMES:
            raise ValueError(
                f"ledger entry {entry.item_id!r}: outcome {entry.outcome!r} is not an open outcome"
            )
        return entry

    def due(self, now: int) -> bool:
        return self.payload is not None and self.next_retry is not None and self.next_retry <= now


class ConfirmedItem(NamedTuple):
    id_hash: int
    content_hash: int
    first_seen: int
    last_seen: int


class ItemToSend(NamedTuple):
    """What the poster needs of an item (the feed's SpooledItem has the same fields)."""

    item_id: str
    request: bytes
    id_hash: int
    content_hash: int


@dataclass(frozen=True)
class RetrySchedule:
    hours: tuple[float, ...] = DEFAULT_RETRY_HOURS

    def next_retry(self, attempts: int, at: int) -> int | None:
        """When to try again after the ``attempts``-th rejected attempt; None: no more."""
        if attempts < 1 or attempts > len(self.hours):
            return None
        return at + int(self.hours[attempts - 1] * 3600)


@dataclass
class LedgerCounts:
    rejections_open: int = 0
    rejections_new: int = 0
    rejections_closed: int = 0
    rejections_retried: int = 0

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


class LedgerRun:
    """The sending side of a run: which items go, which open rejections are re-sent."""

    def __init__(
        self,
        confirmed: Callable[[int], int | None],
        open_entries: Mapping[int, LedgerEntry],
        *,
        full_sync: bool = False,
        retry_rejected: bool = False,
        now: int | None = None,
    ) -> None:
        self.confirmed = confirmed
        self.open = dict(open_entries)
        self.full_sync = full_sync
        self.retry_rejected = retry_rejected
        self.now = utc_now() if now is None else now
        self.sent = SentHashes()
        self.unchanged = 0
        self.held = 0
        #: Open entries the feed's rows made moot (content as Meta holds it): closed.
        self.superseded: set[int] = set()
        #: Id hashes of open entries re-sent this run (from the feed unchanged, or their payload).
        self.retried: set[int] = set()
        self._seen_open: set[int] = set()
        #: Id hashes of items the ledger had never confirmed (8 bytes each, for its item count).
        self.new_ids: array[int] = array("Q")

    def should_send(self, item_id_hash: int, item_hash: int) -> bool:
        entry = self.open.get(item_id_hash)
        if entry is not None:
            self._seen_open.add(item_id_hash)
        confirmed = self.confirmed(item_id_hash)
        if confirmed is None:
            self.new_ids.append(item_id_hash)
        if not self.full_sync and confirmed == item_hash:
            self.unchanged += 1
            if entry is not None:
                self.superseded.add(item_id_hash)
            return False
        if entry is not None and entry.outcome == "rejected_by_meta" and entry.content_hash == item_hash:
            if not (self.full_sync or self.retry_rejected or entry.due(self.now)):
                self.held += 1
                return False
            self.retried.add(item_id_hash)
        self._note_sent(item_id_hash, item_hash)
        return True

    def _note_sent(self, item_id_hash: int, item_hash: int) -> None:
        self.sent.ids.append(item_id_hash)
        self.sent.hashes.append(item_hash)

    def retries(self) -> Iterator[ItemToSend]:
        """Open entries with a payload that the feed did not bring and that are due (all with
        ``retry_rejected``): call after the feed's items were all seen."""
        for key, entry in self.open.items():
            if key in self._seen_open or entry.payload is None:
                continue
            if self.retry_rejected or entry.due(self.now):
                self.retried.add(key)
                self._note_sent(key, entry.content_hash)
                yield ItemToSend(entry.item_id, entry.payload.encode("utf-8"), key, entry.content_hash)

    def summary(self, items_known: int) -> dict[str, Any]:
        return {
            "full_sync": self.full_sync,
            "retry_rejected": self.retry_rejected,
            "items_known": items_known,
            "items_unchanged": self.unchanged,
            "rejections_held": self.held,
            "rejections_open_before": len(self.open),
        }


@dataclass
class RunAnswer:
    """What Meta said about a run's sent items, call by call."""

    #: Per call, in sending order: (handle or None, how many sent items it carried).
    calls: list[tuple[str | None, int]]
    statuses: Mapping[str, str]
    #: handle -> (invalid ids, whether the list is complete)
    invalid_ids: Mapping[str, tuple[list[str], bool]]
    #: item id -> Meta's message (from the batches' error samples and the calls' validation)
    messages: Mapping[str, str] = field(default_factory=dict)
    #: item id -> (message, error type) of items of finished batches that Meta's review rejected
    review_rejections: Mapping[str, tuple[str, str | None]] = field(default_factory=dict)


@dataclass
class LedgerUpdate:
    confirmed: list[ConfirmedItem]
    open_entries: dict[int, LedgerEntry]
    counts: LedgerCounts
    #: Items Meta rejected this run that were not open with the same content.
    new_rejections: list[str] = field(default_factory=list)
    #: Id hashes of items Meta's review rejected: what the ledger confirmed of them no longer holds.
    unconfirmed: list[int] = field(default_factory=list)


def settle_run(
    open_before: Mapping[int, LedgerEntry],
    sent: SentHashes,
    answer: RunAnswer,
    *,
    payloads: Callable[[set[int], set[int]], Mapping[int, tuple[str, str]]],
    feed_rejections: Iterable[tuple[str, str]] = (),
    superseded: Iterable[int] = (),
    retried: Iterable[int] = (),
    schedule: RetrySchedule = RetrySchedule(),
    now: int | None = None,
) -> LedgerUpdate:
    """The ledger after Meta answered a run (the rules above).

    ``payloads(calls, id_hashes)`` gives (item id, request JSON) by id hash of the named items,
    read from the run's stored payloads of those calls (numbered from 1); ``feed_rejections``
    are (item id, reason) of rows the feed rules refused.
    """
    now = utc_now() if now is None else now
    open_entries = dict(open_before)
    counts = LedgerCounts()
    confirmed: list[ConfirmedItem] = []
    rejected: list[int] = []
    pending: list[int] = []
    calls_needed: set[int] = set()
    review_refused = {id_hash(i) for i in answer.review_rejections}
    start = 0
    for number, (handle, count) in enumerate(answer.calls, start=1):
        end = start + count
        positions = range(start, end)
        start = end
        if handle is None:  # Meta ingested none of the call's items: all refused
            rejected.extend(sent.ids[k] for k in positions)
            calls_needed.add(number)
            continue
        invalid, complete = answer.invalid_ids.get(handle, ([], True))
        if answer.statuses.get(handle) != "finished" or not complete:
            pending.extend(sent.ids[k] for k in positions)
            calls_needed.add(number)
            continue
        refused = {id_hash(i) for i in invalid}
        if review_refused:
            refused |= review_refused.intersection(sent.ids[k] for k in positions)
        if refused:
            calls_needed.add(number)
        for k in positions:
            key = sent.ids[k]
            if key in refused:
                rejected.append(key)
            else:
                confirmed.append(ConfirmedItem(key, sent.hashes[k], now, now))
    hashes = dict(zip(sent.ids, sent.hashes, strict=True))
    stored = dict(payloads(calls_needed, set(rejected) | set(pending))) if calls_needed else {}
    for item in confirmed:
        if open_entries.pop(item.id_hash, None) is not None:
            counts.rejections_closed += 1
    for key in superseded:
        if open_entries.pop(key, None) is not None:
            counts.rejections_closed += 1
    new_rejections: list[str] = []
    for key in rejected:
        before = open_entries.get(key)
        item_id, payload = stored.get(key) or (
            (before.item_id, before.payload) if before else (f"#{key:016x}", None)
        )
        review = answer.review_rejections.get(item_id)
        message = (
            (review[0] if review else None)
            or answer.messages.get(item_id)
            or (before.message if before else "")
            or "rejected by Meta"
        )
        same = (
            before is not None and before.outcome == "rejected_by_meta" and before.content_hash == hashes[key]
        )
        if not same:
            new_rejections.append(item_id)
        attempts = (before.attempts if before is not None and same else 0) + 1
        open_entries[key] = LedgerEntry(
            item_id=item_id,
            outcome="rejected_by_meta",
            content_hash=hashes[key],
            message=message,
            code=(review[1] if review and review[1] else None) or meta_code(message),
            first_seen=before.first_seen if before is not None and same else now,
            last_seen=now,
            attempts=attempts,
            next_retry=schedule.next_retry(attempts, now),
            payload=payload,
        )
    for key in pending:
        before = open_entries.get(key)
        if before is not None and before.outcome == "rejected_by_meta" and before.content_hash == hashes[key]:
            before.last_seen, before.next_retry = now, now  # a retry that did not finish: due again
            continue
        item_id, payload = stored.get(key) or (
            (before.item_id, before.payload) if before else (f"#{key:016x}", None)
        )
        open_entries[key] = LedgerEntry(
            item_id=item_id,
            outcome="pending",
            content_hash=hashes[key],
            message="its batch did not finish; sent again next run",
            first_seen=before.first_seen if before else now,
            last_seen=now,
            attempts=(before.attempts if before else 0) + 1,
            next_retry=now,
            payload=payload,
        )
    for item_id, reason in feed_rejections:
        key = id_hash(item_id)
        before = open_entries.get(key)
        if before is not None and before.outcome == "rejected_by_meta":
            continue  # what Meta refused (with its payload) stays the more useful record
        open_entries[key] = LedgerEntry(
            item_id=item_id,
            outcome="rejected_by_feed",
            message=reason,
            first_seen=before.first_seen if before else now,
            last_seen=now,
            attempts=(before.attempts if before else 0) + 1,
        )
    unconfirmed = [key for key in rejected if key in review_refused]
    counts.rejections_new = len(new_rejections)
    counts.rejections_retried = len(set(retried))
    counts.rejections_open = sum(1 for e in open_entries.values() if e.outcome != "pending")
    return LedgerUpdate(confirmed, open_entries, counts, new_rejections, unconfirmed)
