"""The reconcile's comparison (sync/reconcile.py): missing, stale and unknown items, found by
merging the ledger's confirmed items and the read-back in id-hash order, with Meta's price display
matching the price as the feed sent it."""

from __future__ import annotations

import io
from collections.abc import Iterable, Mapping
from typing import Any

import pytest

from facebook_catalog.feed.batching import encoded_update
from facebook_catalog.feed.change_detection import id_hash
from facebook_catalog.sync.reconcile import (
    INVALIDATED_HASH,
    READBACK_FIELDS,
    DriftCollector,
    ReadBackSpool,
    compare,
    price_spellings,
    readback_hashes,
)


def sent(item_id: str, **changes: str) -> dict[str, str]:
    """An item's fields as the feed sends them."""
    fields = {
        "id": item_id,
        "title": f"Product {item_id}",
        "description": "A thing",
        "link": f"https://shop.example/{item_id}",
        "image_link": f"https://cdn.example/{item_id}.jpg",
        "availability": "in stock",
        "price": "12 USD",
        "brand": "Acme",
        "condition": "new",
    }
    return {**fields, **changes}


def as_meta_shows(fields: Mapping[str, str], **changes: Any) -> dict[str, Any]:
    """The item as Meta's products edge shows it (Meta's names, the price with its decimals)."""
    shown: dict[str, Any] = {
        "retailer_id": fields["id"],
        "name": fields["title"],
        "url": fields["link"],
        "image_url": fields["image_link"],
        **{k: v for k, v in fields.items() if k not in ("id", "title", "link", "image_link")},
        "id": "7000000000000001",  # Meta's own id, not ours
    }
    return {**shown, **changes}


def confirmed_hash(fields: Mapping[str, str]) -> int:
    return encoded_update(fields)[1]


def ledger_of(items: Iterable[Mapping[str, str]]) -> list[tuple[int, int, int]]:
    return sorted((id_hash(f["id"]), confirmed_hash(f), 7) for f in items)


def run(
    confirmed: list[tuple[int, int, int]],
    shown: Iterable[Mapping[str, Any]],
    open_ids: Mapping[int, str] = {},
) -> tuple[Any, DriftCollector, str]:
    out = io.StringIO()
    collector = DriftCollector(out, max_repair_items=100)
    with ReadBackSpool() as spool:
        spool.add_all(shown)
        counts = compare(confirmed, spool.sorted_records(), open_ids or {}, on_drift=collector)
    return counts, collector, out.getvalue()


@pytest.mark.parametrize(
    ("as_sent", "as_shown"),
    [
        ("12 USD", "12.00 USD"),
        ("12 USD", "$12.00"),
        ("12.5 USD", "12.50 USD"),
        ("12.50 USD", "USD 12.50"),
        ("25000 IQD", "25000 IQD"),
        ("1234.5 USD", "$1,234.50"),
    ],
)
def test_a_price_as_meta_shows_it_matches_the_price_as_sent(as_sent: str, as_shown: str) -> None:
    fields = sent("a", price=as_sent)
    assert confirmed_hash(fields) in readback_hashes(as_meta_shows(fields, price=as_shown))


def test_a_different_price_does_not_match() -> None:
    fields = sent("a", price="12 USD")
    assert confirmed_hash(fields) not in readback_hashes(as_meta_shows(fields, price="13.00 USD"))
    assert confirmed_hash(fields) not in readback_hashes(as_meta_shows(fields, price="12.00 EUR"))


def test_the_symbol_takes_the_items_currency_when_given() -> None:
    assert "12.00 CAD" in price_spellings("$12.00", "CAD")
    assert price_spellings("not a price") == ["not a price"]


def test_the_emulator_shape_with_the_feeds_names_matches_too() -> None:
    fields = sent("a")
    shown = {"retailer_id": "a", **{k: v for k, v in fields.items() if k != "id"}}
    assert confirmed_hash(fields) in readback_hashes(shown)


def test_missing_stale_unknown_and_matched_are_told_apart() -> None:
    kept, deleted, edited = sent("kept"), sent("deleted"), sent("edited")
    confirmed = ledger_of([kept, deleted, edited])
    shown = [
        as_meta_shows(kept, price="12.00 USD"),
        as_meta_shows(edited, price="9.00 USD"),
        as_meta_shows(sent("stranger")),
    ]
    counts, collector, csv_text = run(confirmed, shown)
    assert (counts.matched, counts.missing, counts.stale, counts.unknown) == (1, 1, 1, 1)
    assert counts.items_read == 3
    assert counts.items_confirmed == 3
    assert counts.drifted == 3
    kinds = {d.kind: d for d in collector.samples}
    assert kinds["missing"].item_id == f"#{id_hash('deleted'):016x}"  # the ledger knows only its hash
    assert kinds["stale"].item_id == "edited"
    assert "9.00 USD" in kinds["stale"].detail
    assert kinds["unknown"].item_id == "stranger"
    assert csv_text.splitlines()[0] == "kind,id,id_hash,what_differs"
    assert len(csv_text.splitlines()) == 4
    # The repair re-sends the missing and the stale item, never the unknown one.
    assert set(collector.invalidate) == {id_hash("deleted"), id_hash("edited")}
    assert collector.repair.conf() == {
        "mode": "ids",
        "ids": ["edited"],
        "id_hashes": [f"{id_hash('deleted'):016x}"],
    }


def test_an_item_open_in_the_ledger_is_neither_unknown_nor_missing() -> None:
    pending = sent("pending")
    counts, collector, _ = run([], [as_meta_shows(pending)], {id_hash("pending"): "pending"})
    assert counts.open == 1
    assert counts.drifted == 0
    assert not collector.repair


def test_an_invalidated_item_stays_stale_until_sent_again() -> None:
    fields = sent("a")
    counts, _, _ = run([(id_hash("a"), INVALIDATED_HASH, 0)], [as_meta_shows(fields)])
    assert counts.stale == 1


def test_an_item_read_twice_counts_once() -> None:
    fields = sent("a")
    counts, _, _ = run(ledger_of([fields]), [as_meta_shows(fields), as_meta_shows(fields)])
    assert (counts.items_read, counts.matched, counts.duplicates_read) == (1, 1, 1)


def test_too_many_drifted_items_ask_for_a_snapshot() -> None:
    out = io.StringIO()
    collector = DriftCollector(out, max_repair_items=2)
    items = [sent(str(n)) for n in range(5)]
    with ReadBackSpool() as spool:
        compare(ledger_of(items), spool.sorted_records(), {}, on_drift=collector)
    assert collector.repair.conf() == {"mode": "snapshot"}
    assert len(collector.invalidate) == 5  # every missing item is still invalidated


def test_the_spool_gives_the_read_back_in_id_hash_order() -> None:
    with ReadBackSpool() as spool:
        spool.add_all(as_meta_shows(sent(str(n))) for n in range(500))
        hashes = [r.id_hash for r in spool.sorted_records()]
    assert hashes == sorted(id_hash(str(n)) for n in range(500))


def test_an_item_without_retailer_id_is_refused_clearly() -> None:
    with ReadBackSpool() as spool, pytest.raises(ValueError, match="no retailer_id"):
        spool.add({"name": "x"})


def test_the_read_back_asks_for_meta_names_of_every_hashed_field() -> None:
    assert READBACK_FIELDS[0] == "retailer_id"
    assert {"name", "url", "image_url", "price", "availability", "brand", "condition"} <= set(READBACK_FIELDS)
    assert "title" not in READBACK_FIELDS
    assert "id" not in READBACK_FIELDS


def test_meta_names_of_optional_fields_map_back_to_the_feeds() -> None:
    fields = sent(
        "a",
        item_group_id="shirt-1",
        mpn="M-77",
        additional_image_link="https://cdn.example/a2.jpg,https://cdn.example/a3.jpg",
    )
    shown = as_meta_shows(
        {k: v for k, v in fields.items() if k not in ("item_group_id", "mpn", "additional_image_link")},
        retailer_product_group_id="shirt-1",
        manufacturer_part_number="M-77",
        additional_image_urls=["https://cdn.example/a2.jpg", "https://cdn.example/a3.jpg"],
    )
    assert confirmed_hash(fields) in readback_hashes(shown)
    assert {"retailer_product_group_id", "manufacturer_part_number", "additional_image_urls"} <= set(
        READBACK_FIELDS
    )
    assert "status" not in READBACK_FIELDS  # not a field a ProductItem reads back
