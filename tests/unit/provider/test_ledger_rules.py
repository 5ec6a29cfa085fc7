"""The item ledger's rules (sync/ledger.py): what is sent, retried, new, closed; no I/O."""

from __future__ import annotations

import pytest

from facebook_catalog.feed.change_detection import SentHashes, id_hash
from facebook_catalog.sync.ledger import (
    LedgerEntry,
    LedgerRun,
    RetrySchedule,
    RunAnswer,
    meta_code,
    parse_retry_hours,
    settle_run,
)

HOUR = 3600
T0 = 1_800_000_000


def rejected(
    item_id: str, content: int, *, attempts: int = 1, at: int = T0, payload: str = "{}"
) -> LedgerEntry:
    return LedgerEntry(
        item_id=item_id,
        outcome="rejected_by_meta",
        content_hash=content,
        message="(#10800) refused",
        code=10800,
        first_seen=at,
        last_seen=at,
        attempts=attempts,
        next_retry=RetrySchedule().next_retry(attempts, at),
        payload=payload,
    )


def sent(*items: tuple[str, int]) -> SentHashes:
    result = SentHashes()
    for item_id, content in items:
        result.ids.append(id_hash(item_id))
        result.hashes.append(content)
    return result


def no_payloads(calls: set[int], wanted: set[int]) -> dict[int, tuple[str, str]]:
    return {}


def test_the_retry_schedule_is_bounded_and_configurable() -> None:
    schedule = RetrySchedule(parse_retry_hours("1, 6,24"))
    assert schedule.next_retry(1, T0) == T0 + HOUR
    assert schedule.next_retry(2, T0) == T0 + 6 * HOUR
    assert schedule.next_retry(3, T0) == T0 + 24 * HOUR
    assert schedule.next_retry(4, T0) is None
    assert parse_retry_hours(2) == (2.0,)
    with pytest.raises(ValueError, match="retry_hours"):
        parse_retry_hours("1,soon")
    assert meta_code("(#10800) This product was rejected") == 10800
    assert meta_code("no code") is None


def test_an_open_rejection_with_the_same_content_waits_for_its_retry() -> None:
    entry = rejected("p3", 77)
    run = LedgerRun(lambda h: None, {entry.id_hash: entry}, now=T0 + 30 * 60)
    assert not run.should_send(entry.id_hash, 77)  # same content, not due yet
    assert run.held == 1
    assert list(run.retries()) == []  # seen in the feed: not re-sent from its payload either

    due = LedgerRun(lambda h: None, {entry.id_hash: entry}, now=T0 + HOUR)
    assert due.should_send(entry.id_hash, 77)
    assert due.retried == {entry.id_hash}

    changed = LedgerRun(lambda h: None, {entry.id_hash: entry}, now=T0 + 60)
    assert changed.should_send(entry.id_hash, 78)  # a changed row goes at once
    assert changed.retried == set()


def test_due_rejections_not_in_the_feed_are_re_sent_from_their_payload() -> None:
    due = rejected("p1", 1, payload='{"method":"UPDATE","data":{"id":"p1"}}')
    later = rejected("p2", 2, at=T0 + HOUR)
    run = LedgerRun(lambda h: None, {due.id_hash: due, later.id_hash: later}, now=T0 + HOUR)
    assert [(i.item_id, i.request) for i in run.retries()] == [
        ("p1", b'{"method":"UPDATE","data":{"id":"p1"}}')
    ]
    forced = LedgerRun(lambda h: None, {due.id_hash: due, later.id_hash: later}, retry_rejected=True, now=T0)
    assert sorted(i.item_id for i in forced.retries()) == ["p1", "p2"]
    done = rejected("p4", 4, attempts=4)
    assert done.next_retry is None
    assert list(LedgerRun(lambda h: None, {done.id_hash: done}, now=T0 + 999 * HOUR).retries()) == []


def test_a_repeated_rejection_is_not_new_and_an_accepted_send_closes_it() -> None:
    open_before = {e.id_hash: e for e in (rejected("p1", 11), rejected("p2", 22))}
    answer = RunAnswer(
        calls=[("h1", 3)],
        statuses={"h1": "finished"},
        invalid_ids={"h1": (["p1", "p3"], True)},
        messages={"p3": "(#1234) bad image"},
    )

    def payloads(calls: set[int], wanted: set[int]) -> dict[int, tuple[str, str]]:
        assert calls == {1}
        return {id_hash("p3"): ("p3", '{"data":{"id":"p3"}}')}

    update = settle_run(
        open_before, sent(("p1", 11), ("p2", 23), ("p3", 33)), answer, payloads=payloads, now=T0 + HOUR
    )

    assert [c.id_hash for c in update.confirmed] == [id_hash("p2")]
    assert update.new_rejections == ["p3"]
    p1, p3 = update.open_entries[id_hash("p1")], update.open_entries[id_hash("p3")]
    assert (p1.attempts, p1.first_seen, p1.next_retry) == (2, T0, T0 + HOUR + 6 * HOUR)
    assert (p3.attempts, p3.code, p3.payload) == (1, 1234, '{"data":{"id":"p3"}}')
    assert id_hash("p2") not in update.open_entries
    counts = update.counts
    assert (counts.rejections_open, counts.rejections_new, counts.rejections_closed) == (2, 1, 1)


def test_items_of_an_unfinished_batch_become_pending_and_confirm_nothing() -> None:
    answer = RunAnswer(
        calls=[("h1", 1), ("h2", 1)], statuses={"h1": "finished", "h2": "error"}, invalid_ids={}
    )
    update = settle_run({}, sent(("a", 1), ("b", 2)), answer, payloads=no_payloads, now=T0)
    assert [c.id_hash for c in update.confirmed] == [id_hash("a")]
    pending = update.open_entries[id_hash("b")]
    assert (pending.outcome, pending.next_retry) == ("pending", T0)
    assert update.counts.rejections_open == 0


def test_rows_the_feed_rejected_are_open_until_confirmed() -> None:
    answer = RunAnswer(calls=[], statuses={}, invalid_ids={})
    update = settle_run(
        {}, sent(), answer, payloads=no_payloads, feed_rejections=[("p9", "bad price")], now=T0
    )
    entry = update.open_entries[id_hash("p9")]
    assert (entry.outcome, entry.message, entry.payload) == ("rejected_by_feed", "bad price", None)
    assert LedgerEntry.from_dict(entry.to_dict()) == entry
