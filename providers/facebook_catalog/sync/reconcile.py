"""Reconciliation: what Meta shows of a catalog against what the item ledger says Meta confirmed.

Every item is one of:

* **missing**: confirmed by us (in the ledger's confirmed part), absent from Meta's read-back;
* **stale**: in both, but what Meta shows is not the content Meta last confirmed to us;
* **unknown**: in Meta, never sent by us (neither confirmed nor open in the ledger);
* matched, or *open* (in Meta, and open in the ledger: rejected or pending; its retries handle it).

How "different content" is decided (the canonical rule). The ledger keeps, per item, only the
64-bit hash of the fields as they were sent (:func:`~facebook_catalog.feed.change_detection.content_hash`
of the normalized feed fields). The read-back item is mapped back to those fields and hashed by
the same rule:

* Meta's names become the feed's: ``name`` -> ``title``, ``url`` -> ``link``, ``image_url`` ->
  ``image_link``, ``retailer_product_group_id`` -> ``item_group_id``, ``manufacturer_part_number``
  -> ``mpn``, ``additional_image_urls`` -> ``additional_image_link`` (a field the products edge
  gives under the feed's name is taken as is); a list becomes its values joined by commas;
  ``retailer_id`` becomes ``id``; empty values are left out (the feed leaves them out too);
* a price (``price``, ``sale_price``) shown as ``"12.00 USD"``, ``"USD 12.00"`` or ``"$12.00"``
  (with the item's ``currency``, else the symbol's code) is one amount and currency; since the
  feed keeps the number as the source wrote it (``"12 USD"``, ``"12.5 USD"``, ``"12.50 USD"``),
  every way of writing that amount with 0 to 2 more decimals than it needs is tried: the item
  matches when one of these hashes is the confirmed one.

So the emulator, which shows the fields as they were sent, and Meta, which shows prices with
their currency's decimals or symbol, both match an unchanged item. Not covered: the few feed
fields a ProductItem does not read back (:data:`UNREAD_FIELDS`), and a field Meta shows with a
default the item was not sent with; such an item shows as stale every day (run without repair).
An item whose confirmed hash was invalidated by an earlier repair (:data:`INVALIDATED_HASH`)
stays stale until it is re-sent.

Memory stays flat whatever the catalog's size: the read-back is spilled to :data:`PARTITIONS`
files by the top bits of its id hash (:class:`ReadBackSpool`), and each partition, sorted by id
hash, is merged with the ledger's confirmed items, which the ledger streams in id-hash order.
"""

from __future__ import annotations

import csv
import os
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from decimal import Decimal, InvalidOperation
from itertools import product
from typing import IO, Any, Literal

import orjson

from facebook_catalog.feed.change_detection import content_hash, id_hash
from facebook_catalog.feed.currencies import ISO_4217_CODES
from facebook_catalog.feed.fields import OPTIONAL_FIELDS, REQUIRED_FIELDS
from facebook_catalog.hooks.graph_api import READ_NAMES_OF_FEED_FIELDS

DriftKind = Literal["missing", "stale", "unknown"]
DRIFT_KINDS: tuple[DriftKind, ...] = ("missing", "stale", "unknown")
#: The content hash a repair writes over a drifted item's confirmed one: no content hashes to it
#: in practice, so the next send of the item is never skipped as unchanged.
INVALIDATED_HASH = 0
PRICE_FIELDS: tuple[str, ...] = ("price", "sale_price")
#: Meta's read names of the feed fields whose names differ (ProductItem's fields, as the
#: facebook-business SDK lists them): the hooks' three, and three more.
FEED_TO_META: dict[str, str] = {
    **READ_NAMES_OF_FEED_FIELDS,
    "item_group_id": "retailer_product_group_id",
    "mpn": "manufacturer_part_number",
    "additional_image_link": "additional_image_urls",
}
META_TO_FEED: dict[str, str] = {meta: feed for feed, meta in FEED_TO_META.items()}
#: Feed fields a ProductItem does not give back under any name: asking for them fails the whole
#: read on Meta ("(#100) Tried accessing nonexisting field"), so they are not asked for, and an
#: item sent with one of them cannot match its confirmed hash (it shows as stale).
UNREAD_FIELDS: frozenset[str] = frozenset(
    {
        "sale_price_effective_date",
        "status",
        "google_product_category",
        "rich_text_description",
        "shipping",
        "shipping_weight",
        "return_policy_info",
        "internal_label",
    }
)
#: The fields a reconcile reads back: retailer_id and every field the ledger hashes that Meta
#: reads back, by Meta's names (``currency`` too, for prices shown with a symbol).
READBACK_FIELDS: tuple[str, ...] = (
    "retailer_id",
    *dict.fromkeys(
        FEED_TO_META.get(f, f)
        for f in (*REQUIRED_FIELDS, *OPTIONAL_FIELDS)
        if f != "id" and f not in UNREAD_FIELDS
    ),
    "currency",
)
#: Fields a drift row shows of what Meta holds (the CSV's ``meta_shows``).
SHOWN_FIELDS: tuple[str, ...] = ("title", "price", "sale_price", "availability")
PARTITION_BITS = 6
PARTITIONS = 1 << PARTITION_BITS
_SHIFT = 64 - PARTITION_BITS
_SYMBOL_CODES: dict[str, str] = {"$": "USD", "€": "EUR", "£": "GBP", "¥": "JPY", "₹": "INR"}
#: The most amount spellings tried per price field (keeps the candidates of one item small).
_MAX_EXTRA_DECIMALS = 2


def _parse_shown_price(text: str, currency: str | None) -> tuple[Decimal, str] | None:
    """A price as Meta shows it: ``"12.00 USD"``, ``"USD 12.00"``, ``"$12.00"``, ``"$1,234.50"``."""
    value = " ".join(str(text).split())
    code = (currency or "").strip().upper() or None
    for symbol, symbol_code in _SYMBOL_CODES.items():
        if symbol in value:
            value = value.replace(symbol, " ")
            code = code or symbol_code
    parts = value.replace(",", "").split()
    number = None
    for part in parts:
        if part.upper() in ISO_4217_CODES:
            code = part.upper()
        else:
            number = part
    if number is None or code is None:
        return None
    try:
        amount = Decimal(number)
    except InvalidOperation:
        return None
    return (amount, code) if amount.is_finite() else None


def price_spellings(text: str, currency: str | None = None) -> list[str]:
    """Every ``"<number> <CODE>"`` the feed may have sent for a price Meta shows as ``text``:
    the amount with its fewest decimals up to :data:`_MAX_EXTRA_DECIMALS` more (and at least the
    decimals shown). A price that cannot be read stays as shown."""
    parsed = _parse_shown_price(text, currency)
    if parsed is None:
        return [str(text)]
    amount, code = parsed
    least = max(-amount.normalize().as_tuple().exponent, 0)  # type: ignore[operator]
    shown = max(-amount.as_tuple().exponent, 0)  # type: ignore[operator]
    places = sorted({*range(least, least + _MAX_EXTRA_DECIMALS + 1), shown})
    return list(dict.fromkeys(f"{amount:.{p}f} {code}" for p in places))


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return str(value)


def feed_fields(item: Mapping[str, Any]) -> dict[str, str]:
    """A read-back item as the feed's fields (module docstring), prices as shown."""
    result: dict[str, str] = {}
    for name, value in item.items():
        if name in ("id", "retailer_id", "currency") or value is None or value == "":
            continue
        target = META_TO_FEED.get(name, name)
        if target in META_TO_FEED.values() and name == target and target in result:
            continue  # both spellings given: Meta's name wins
        result[target] = _text(value)
    result["id"] = str(item["retailer_id"])
    return result


def readback_hashes(item: Mapping[str, Any]) -> list[int]:
    """The content hashes an unchanged item may have been confirmed with (module docstring)."""
    fields = feed_fields(item)
    currency = item.get("currency")
    priced = [name for name in PRICE_FIELDS if name in fields]
    choices = [price_spellings(fields[name], currency) for name in priced]
    hashes: list[int] = []
    for spelling in product(*choices):
        fields.update(zip(priced, spelling, strict=True))
        hashes.append(content_hash(fields))
    return hashes


def shown(item: Mapping[str, Any]) -> str:
    """A short account of what Meta shows of an item, for people."""
    fields = feed_fields(item)
    return "; ".join(f"{name}={fields[name]!r}" for name in SHOWN_FIELDS if name in fields)


@dataclass
class Drift:
    """One drifted item: its kind, id (or ``#<id hash>`` when only the hash is known) and why."""

    kind: DriftKind
    item_id: str
    id_hash: int
    detail: str
    #: The ledger's packed first/last confirmed times (0 for unknown items).
    times: int = 0

    @property
    def id_hash_hex(self) -> str:
        return f"{self.id_hash:016x}"

    def row(self) -> list[str]:
        return [self.kind, self.item_id, self.id_hash_hex, self.detail]


DRIFT_COLUMNS: tuple[str, ...] = ("kind", "id", "id_hash", "what_differs")
#: Drifts the report shows; the CSV has them all.
DRIFT_SAMPLES = 20


@dataclass
class ReconcileCounts:
    items_read: int = 0
    items_confirmed: int = 0
    matched: int = 0
    open: int = 0
    missing: int = 0
    stale: int = 0
    unknown: int = 0
    duplicates_read: int = 0

    @property
    def drifted(self) -> int:
        """Every drifted item: missing, stale and unknown (the metric ``DriftedItems``)."""
        return self.missing + self.stale + self.unknown

    @property
    def repairable(self) -> int:
        """What a repair re-sends: missing and stale (unknown items are only reported)."""
        return self.missing + self.stale

    def to_dict(self) -> dict[str, int]:
        return {**asdict(self), "drifted": self.drifted, "repairable": self.repairable}


@dataclass
class _ReadRecord:
    id_hash: int
    item_id: str
    hashes: list[int]
    shown: str


class ReadBackSpool:
    """The read-back, spilled to disk by the top :data:`PARTITION_BITS` of each id hash.

    ``add`` keeps nothing of an item in memory but the open file handles; ``sorted_records``
    reads back one partition at a time (1/64 of the catalog), sorted by id hash, so the whole
    read-back comes out in id-hash order.
    """

    def __init__(self, directory: str | None = None) -> None:
        self._folder = tempfile.TemporaryDirectory(prefix="facebook-catalog-reconcile-", dir=directory)
        self._files: list[IO[bytes]] = [
            open(os.path.join(self._folder.name, f"part-{n:02d}.jsonl"), "w+b")  # noqa: SIM115 - closed in close()
            for n in range(PARTITIONS)
        ]
        self.items = 0

    def add(self, item: Mapping[str, Any]) -> None:
        retailer_id = item.get("retailer_id")
        if retailer_id is None or retailer_id == "":
            raise ValueError(f"a read-back item has no retailer_id: {dict(item)!r}")
        key = id_hash(str(retailer_id))
        line = orjson.dumps([key, str(retailer_id), readback_hashes(item), shown(item)])
        self._files[key >> _SHIFT].write(line + b"\n")
        self.items += 1

    def add_all(self, items: Iterable[Mapping[str, Any]]) -> None:
        for item in items:
            self.add(item)

    def sorted_records(self) -> Iterator[_ReadRecord]:
        for handle in self._files:
            handle.flush()
            handle.seek(0)
            records = [_ReadRecord(*orjson.loads(line)) for line in handle]
            records.sort(key=lambda r: r.id_hash)
            yield from records
            del records

    def close(self) -> None:
        for handle in self._files:
            handle.close()
        self._folder.cleanup()

    def __enter__(self) -> ReadBackSpool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def compare(
    confirmed: Iterable[tuple[int, int, int]],
    read_back: Iterable[_ReadRecord],
    open_ids: Mapping[int, str],
    *,
    on_drift: Any = None,
) -> ReconcileCounts:
    """Merge the ledger's confirmed items ``(id hash, content hash, packed times)`` and the read-back records,
    both in id-hash order, and classify every item (module docstring). ``open_ids`` maps id hashes
    of the ledger's open entries to their item ids; ``on_drift(drift)`` is called for each drift,
    in id-hash order. Holds one item of each side at a time."""
    counts = ReconcileCounts()
    emit = on_drift or (lambda drift: None)
    ledger = iter(confirmed)
    reads = iter(read_back)
    mine = next(ledger, None)
    theirs = next(reads, None)
    last_read: int | None = None
    while mine is not None or theirs is not None:
        if theirs is not None and theirs.id_hash == last_read:
            counts.duplicates_read += 1  # the same item on two pages: counted once
            theirs = next(reads, None)
            continue
        if theirs is None or (mine is not None and mine[0] < theirs.id_hash):
            assert mine is not None
            counts.items_confirmed += 1
            counts.missing += 1
            item_id = open_ids.get(mine[0], f"#{mine[0]:016x}")
            emit(
                Drift(
                    "missing", item_id, mine[0], "confirmed by Meta earlier; Meta no longer shows it", mine[2]
                )
            )
            mine = next(ledger, None)
            continue
        counts.items_read += 1
        last_read = theirs.id_hash
        if mine is None or theirs.id_hash < mine[0]:
            if theirs.id_hash in open_ids:
                counts.open += 1
            else:
                counts.unknown += 1
                emit(
                    Drift(
                        "unknown",
                        theirs.item_id,
                        theirs.id_hash,
                        f"never sent by us; Meta shows {theirs.shown}",
                    )
                )
            theirs = next(reads, None)
            continue
        counts.items_confirmed += 1
        if mine[1] != INVALIDATED_HASH and mine[1] in theirs.hashes:
            counts.matched += 1
        else:
            counts.stale += 1
            why = (
                "not re-sent yet since the last repair" if mine[1] == INVALIDATED_HASH else "content differs"
            )
            emit(
                Drift(
                    "stale",
                    theirs.item_id,
                    theirs.id_hash,
                    f"{why} from what Meta confirmed; Meta shows {theirs.shown}",
                    mine[2],
                )
            )
        mine = next(ledger, None)
        theirs = next(reads, None)
    return counts


@dataclass
class RepairRequest:
    """What the ingestion DAG is asked for: items by source id, items known only by id hash,
    or (too many to name) a full snapshot."""

    ids: list[str] = field(default_factory=list)
    id_hashes: list[str] = field(default_factory=list)
    snapshot: bool = False

    def __bool__(self) -> bool:
        return bool(self.ids or self.id_hashes or self.snapshot)

    def conf(self) -> dict[str, Any]:
        """The ingestion run's conf (its params ``mode``, ``ids``, ``id_hashes``)."""
        if self.snapshot:
            return {"mode": "snapshot"}
        return {"mode": "ids", "ids": self.ids, "id_hashes": self.id_hashes}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class DriftCollector:
    """Takes the drifts as :func:`compare` finds them: every one as a CSV row (to ``csv_file``),
    the first :data:`DRIFT_SAMPLES` for the report, the missing and stale items' ledger times
    (what a repair invalidates) and the repair request (their ids; beyond ``max_repair_items``
    a full snapshot, since the sync's change detection skips everything not invalidated).

    Memory grows with the drift (16 bytes a drifted item and its id), never with the catalog."""

    def __init__(self, csv_file: IO[str], *, max_repair_items: int) -> None:
        self.writer = csv.writer(csv_file, lineterminator="\n")
        self.writer.writerow(DRIFT_COLUMNS)
        self.samples: list[Drift] = []
        self.invalidate: dict[int, int] = {}
        self.repair = RepairRequest()
        self.max_repair_items = max_repair_items

    def __call__(self, drift: Drift) -> None:
        self.writer.writerow(drift.row())
        if len(self.samples) < DRIFT_SAMPLES:
            self.samples.append(drift)
        if drift.kind == "unknown":
            return
        self.invalidate[drift.id_hash] = drift.times
        if self.repair.snapshot:
            return
        if len(self.invalidate) > self.max_repair_items:
            self.repair = RepairRequest(snapshot=True)
        elif drift.item_id.startswith("#"):
            self.repair.id_hashes.append(drift.id_hash_hex)
        else:
            self.repair.ids.append(drift.item_id)
