"""The rules for localized overrides (sync/localized.py): held, unchanged, sent, retried; no I/O."""

from __future__ import annotations

import json

from facebook_catalog.feed.change_detection import id_hash
from facebook_catalog.feed.localization import Localization, Override
from facebook_catalog.feed.spool import SpooledItem, item_to_send, overrides_to_send
from facebook_catalog.sync.ledger import LedgerEntry, LedgerRun, RetrySchedule
from facebook_catalog.sync.localized import LocalizedRun, base_id_of, localized_answer

T0 = 1_800_000_000
HOUR = 3600
ENGLISH = Localization("LANGUAGE", "en_XX")
UAE = Localization("COUNTRY", "AE")


def item_and_overrides(item_id: str, title_en: str = "Shirt", price_ae: str = "95 AED") -> list[SpooledItem]:
    base = item_to_send({"id": item_id, "title": "قميص", "price": "25000 IQD"})
    overrides = [Override(ENGLISH, {"title": title_en}), Override(UAE, {"price": price_ae})]
    return [base, *overrides_to_send(base, overrides)]


def lookup_of(confirmed: dict[int, int]) -> object:
    asked: list[list[int]] = []

    def lookup(wanted: list[int]) -> object:
        asked.append(wanted)
        return confirmed.get

    lookup.asked = asked  # type: ignore[attr-defined]
    return lookup


def run_of(
    confirmed: dict[int, int], entries: dict[int, LedgerEntry] | None = None, **kwargs: object
) -> LocalizedRun:
    return LocalizedRun(lookup_of(confirmed), entries or {}, now=T0, **kwargs)  # type: ignore[arg-type]


def sent_keys(run: LocalizedRun) -> list[str]:
    return [key for _, requests in run.ordered_rounds() for key, *_ in requests]


def test_overrides_of_an_item_meta_has_not_confirmed_are_held_with_their_payload() -> None:
    _, english, uae = item_and_overrides("p1")
    run = run_of({})
    run.decide([english, uae])
    assert sent_keys(run) == []
    assert [(e.item_id, e.outcome, e.base_id) for e in run.held] == [
        ("p1|LANGUAGE|en_XX", "held", "p1"),
        ("p1|COUNTRY|AE", "held", "p1"),
    ]
    assert json.loads(run.held[0].payload or "")["data"] == {"id": "p1", "title": "Shirt"}
    assert run.held[0].due(T0)  # the next run looks again


def test_once_the_item_is_confirmed_each_localization_goes_in_its_own_round() -> None:
    base, english, uae = item_and_overrides("p1")
    other_base, other_english, _ = item_and_overrides("p2")
    run = run_of({base.id_hash: base.content_hash, other_base.id_hash: 1})
    run.decide([english, uae, other_english])
    rounds = run.ordered_rounds()
    assert [(loc, [key for key, *_ in requests]) for loc, requests in rounds] == [
        (UAE, ["p1|COUNTRY|AE"]),
        (ENGLISH, ["p1|LANGUAGE|en_XX", "p2|LANGUAGE|en_XX"]),
    ]
    # New to Meta: CREATE; the sent hashes follow the sending order.
    assert {json.loads(r)["method"] for _, requests in rounds for _, r, *_ in requests} == {"CREATE"}
    assert list(run.sent().ids) == [uae.id_hash, english.id_hash, other_english.id_hash]


def test_an_unchanged_override_is_not_sent_and_a_changed_one_goes_as_update() -> None:
    base, english, uae = item_and_overrides("p1")
    _, changed_english, _ = item_and_overrides("p1", title_en="T-shirt")
    confirmed = {
        base.id_hash: base.content_hash,
        english.id_hash: english.content_hash,
        uae.id_hash: uae.content_hash,
    }
    run = run_of(confirmed)
    run.decide([changed_english, uae])
    assert sent_keys(run) == ["p1|LANGUAGE|en_XX"]
    (request,) = [r for _, requests in run.ordered_rounds() for _, r, *_ in requests]
    assert json.loads(request)["method"] == "UPDATE"
    assert run.unchanged == 1
    full = run_of(confirmed, full_sync=True)
    full.decide([english, uae])
    assert len(sent_keys(full)) == 2


def test_one_ledger_lookup_covers_the_overrides_and_their_items() -> None:
    base, english, uae = item_and_overrides("p1")
    lookup = lookup_of({})
    LocalizedRun(lookup, {}, now=T0).decide([english, uae])  # type: ignore[arg-type]
    (asked,) = lookup.asked  # type: ignore[attr-defined]
    assert asked == sorted({base.id_hash, english.id_hash, uae.id_hash})


def test_held_and_due_overrides_from_the_ledger_go_without_the_feed() -> None:
    base, english, uae = item_and_overrides("p1")
    held = LedgerEntry(
        english.item_id,
        "held",
        english.content_hash,
        next_retry=T0,
        payload=english.request.decode(),
        base_id="p1",
    )
    rejected = LedgerEntry(
        uae.item_id,
        "rejected_by_meta",
        uae.content_hash,
        attempts=1,
        next_retry=RetrySchedule().next_retry(1, T0 - 2 * HOUR),
        payload=uae.request.decode(),
        base_id="p1",
    )
    entries = {english.id_hash: held, uae.id_hash: rejected}
    still_waiting = run_of({}, entries)
    still_waiting.decide([])
    assert sent_keys(still_waiting) == []  # the item is still not confirmed
    run = run_of({base.id_hash: base.content_hash}, entries)
    run.decide([])
    assert sorted(sent_keys(run)) == ["p1|COUNTRY|AE", "p1|LANGUAGE|en_XX"]
    assert (run.released, run.retried) == (1, {uae.id_hash})


def test_a_rejected_override_with_the_same_content_waits_for_its_retry() -> None:
    base, english, _ = item_and_overrides("p1")
    entry = LedgerEntry(
        english.item_id,
        "rejected_by_meta",
        english.content_hash,
        attempts=1,
        next_retry=T0 + HOUR,
        payload=english.request.decode(),
        base_id="p1",
    )
    run = run_of({base.id_hash: base.content_hash}, {english.id_hash: entry})
    run.decide([english])
    assert sent_keys(run) == []
    assert run.rejections_held == 1
    now = run_of({base.id_hash: base.content_hash}, {english.id_hash: entry}, retry_rejected=True)
    now.decide([english])
    assert sent_keys(now) == ["p1|LANGUAGE|en_XX"]


def test_the_items_side_never_re_sends_an_override_through_items_batch() -> None:
    _, english, _ = item_and_overrides("p1")
    entry = LedgerEntry(english.item_id, "held", 1, next_retry=T0, payload="{}", base_id="p1")
    run = LedgerRun(lambda key: None, {english.id_hash: entry}, now=T0)
    assert list(run.retries()) == []


def test_metas_answer_on_a_localized_call_names_the_override_by_its_key() -> None:
    batches = [
        {
            "handle": "h1",
            "status": "finished",
            "errors": [{"line": 0, "id": "p1", "message": "(#10803) No item"}],
            "errors_total_count": 1,
            "ids_of_invalid_requests": ["p1"],
        },
        {"handle": "items", "status": "finished"},
    ]
    answer = localized_answer([["h1", 2, "LANGUAGE|en_XX"]], batches, [])
    assert answer.calls == [("h1", 2)]
    assert answer.invalid_ids == {"h1": (["p1|LANGUAGE|en_XX"], True)}
    assert answer.messages == {"p1|LANGUAGE|en_XX": "(#10803) No item"}
    assert answer.statuses == {"h1": "finished"}
    assert base_id_of("a|b|COUNTRY|AE") == "a|b"
    assert base_id_of("plain") == ""
    assert id_hash("p1|LANGUAGE|en_XX") != id_hash("p1")


def test_a_held_override_meta_then_confirms_closes_without_counting_as_a_rejection() -> None:
    from facebook_catalog.feed.change_detection import SentHashes
    from facebook_catalog.sync.ledger import RunAnswer, settle_run

    _, english, _ = item_and_overrides("p1")
    held = LedgerEntry(
        english.item_id, "held", english.content_hash, next_retry=T0, payload="{}", base_id="p1"
    )
    sent = SentHashes()
    sent.ids.append(english.id_hash)
    sent.hashes.append(english.content_hash)
    answer = RunAnswer(calls=[("h1", 1)], statuses={"h1": "finished"}, invalid_ids={})
    update = settle_run({english.id_hash: held}, sent, answer, payloads=lambda calls, wanted: {}, now=T0)
    assert update.open_entries == {}
    assert (len(update.confirmed), update.counts.rejections_closed) == (1, 0)
