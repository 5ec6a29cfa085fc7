"""A reconcile run: read the catalog back, compare it with the item ledger, write the report, and
(with ``repair``) invalidate the drifted items' ledger entries so that they are re-sent.

What it writes, in the synced-products bucket:

* ``reconcile/<date>/report.json``: counts (items read, confirmed, matched, missing, stale,
  unknown, drifted), Graph API calls used, samples of the drifts, the repair asked for;
* ``reconcile/<date>/drifted_items.csv``: every drifted item (``kind,id,id_hash,what_differs``);
  a missing item's id is known to the ledger only by its hash, so its ``id`` is ``#<id hash>``
  unless the ledger holds it open.

The repair (:func:`invalidate`) takes the ledger's lease like a sync run, and writes one delta in
which every missing and stale item's confirmed hash is ``INVALIDATED_HASH``
(:mod:`facebook_catalog.sync.reconcile`): the next sync run that brings the item sends it,
whatever its content. Unknown items are never touched: they are reported, and stay in the catalog.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from array import array
from bisect import bisect_right
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from facebook_catalog.feed.change_detection import id_hash
from facebook_catalog.storage.ledger_store import LedgerStore, Manifest
from facebook_catalog.storage.s3 import normalize_prefix, put_object
from facebook_catalog.sync.reconcile import (
    INVALIDATED_HASH,
    DriftCollector,
    ReadBackSpool,
    ReconcileCounts,
    compare,
)

if TYPE_CHECKING:
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

log = logging.getLogger(__name__)

DEFAULT_RECONCILE_PREFIX = "reconcile/"
REPORT_NAME = "report.json"
DRIFT_CSV_NAME = "drifted_items.csv"
#: Above this many missing and stale items a repair asks the ingestion for a full snapshot.
DEFAULT_MAX_REPAIR_ITEMS = 50_000
LEASE_SECONDS = 600.0


def confirmed_items(store: LedgerStore, manifest: Manifest) -> Iterator[tuple[int, int, int]]:
    """Every confirmed item of the ledger, ``(id hash, content hash, packed times)``, in id-hash
    order: the base streamed by chunks, with the deltas (later ones winning) merged in."""
    deltas = store.delta_records(manifest)
    delta_ids = array("Q", sorted(deltas))
    taken = 0
    for values in store.base_chunks(manifest):
        ids = values[0::3]
        end = bisect_right(delta_ids, ids[-1], taken)
        pending = iter(delta_ids[taken:end])
        taken = end
        next_delta = next(pending, None)
        for k, h in enumerate(ids):
            while next_delta is not None and next_delta < h:
                yield (next_delta, *deltas[next_delta])
                next_delta = next(pending, None)
            if next_delta == h:
                yield (h, *deltas[h])
                next_delta = next(pending, None)
            else:
                yield h, values[3 * k + 1], values[3 * k + 2]
        while next_delta is not None:
            yield (next_delta, *deltas[next_delta])
            next_delta = next(pending, None)
    for h in delta_ids[taken:]:
        yield (h, *deltas[h])


@dataclass
class ReconcileReport:
    """What ``reconcile/<date>/report.json`` holds."""

    catalog_id: str
    date: str
    run_id: str
    started_at: str
    finished_at: str = ""
    counts: dict[str, int] = field(default_factory=dict)
    #: Graph API calls the read-back made (throttled and failed answers included).
    graph_api_calls: int = 0
    #: Of those, answers Meta throttled (80009) that were waited out and retried.
    throttled_retries: int = 0
    repair: bool = False
    #: The ingestion run asked for: {"mode": "ids", "ids", "id_hashes"} or {"mode": "snapshot"}; None: none.
    repair_request: dict[str, Any] | None = None
    invalidated: int = 0
    drift_samples: list[dict[str, Any]] = field(default_factory=list)
    report_uri: str = ""
    drift_csv_uri: str = ""

    @property
    def drifted(self) -> int:
        return int(self.counts.get("drifted", 0))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def reconcile_key(prefix: str, date: str, name: str) -> str:
    return f"{normalize_prefix(prefix, 'reconcile_prefix')}{date}/{name}"


def invalidate(store: LedgerStore, entries: Mapping[int, int], *, run_id: str, now: int) -> int:
    """Give the drifted items (id hash -> packed times) the invalidated hash, in one ledger commit
    under the ledger's lease; returns how many were invalidated."""
    if not entries:
        return 0
    store.acquire_lease(run_id, now, LEASE_SECONDS)
    try:
        state = store.load()
        manifest = state.manifest
        store.commit(
            state,
            {h: (INVALIDATED_HASH, times) for h, times in entries.items()},
            store.open_rows(manifest),
            new_items=0,
            rejections_open=manifest.rejections_open,
            run_id=run_id,
            now=now,
        )
    finally:
        store.release_lease(run_id)
    log.info("Ledger: invalidated %d drifted items, so that they are sent again", len(entries))
    return len(entries)


def run_reconcile(
    store: LedgerStore,
    items: Iterable[Mapping[str, Any]],
    *,
    s3_hook: S3Hook,
    bucket: str,
    run_id: str,
    read_stats: Callable[[], tuple[int, int]] = lambda: (0, 0),
    prefix: str = DEFAULT_RECONCILE_PREFIX,
    repair: bool = False,
    max_repair_items: int = DEFAULT_MAX_REPAIR_ITEMS,
    now: datetime | None = None,
    spool_directory: str | None = None,
) -> ReconcileReport:
    """Read back ``items`` (the catalog's products, as the products edge gives them), compare them
    with the ledger, write the report and the CSV, and with ``repair`` invalidate the drifted
    items (module docstring). ``read_stats()`` gives (Graph API calls, throttled retries) once
    the items are read."""
    moment = now or datetime.now(timezone.utc)
    date = moment.strftime("%Y-%m-%d")
    report = ReconcileReport(store.catalog_id, date, run_id, moment.isoformat(), repair=repair)
    with (
        ReadBackSpool(spool_directory) as spool,
        tempfile.TemporaryDirectory(prefix="facebook-catalog-drift-", dir=spool_directory) as folder,
    ):
        spool.add_all(items)
        # The ledger as it is once the read-back is done (it takes minutes on a large catalog):
        # an item a sync confirmed meanwhile is not "unknown", and a compaction meanwhile cannot
        # remove the base this compare streams (it lasts seconds).
        manifest = store.load().manifest
        open_ids = {id_hash(str(row["item_id"])): str(row["item_id"]) for row in store.open_rows(manifest)}
        report.graph_api_calls, report.throttled_retries = read_stats()
        log.info(
            "Read back %d items of catalog %s in %d Graph API calls",
            spool.items,
            store.catalog_id,
            report.graph_api_calls,
        )
        csv_path = os.path.join(folder, DRIFT_CSV_NAME)
        with open(csv_path, "w", encoding="utf-8", newline="") as csv_file:
            collector = DriftCollector(csv_file, max_repair_items=max_repair_items)
            counts: ReconcileCounts = compare(
                confirmed_items(store, manifest), spool.sorted_records(), open_ids, on_drift=collector
            )
        report.counts = counts.to_dict()
        report.drift_samples = [asdict(d) | {"id_hash": d.id_hash_hex} for d in collector.samples]
        for sample in report.drift_samples:
            sample.pop("times", None)
        csv_key = reconcile_key(prefix, date, DRIFT_CSV_NAME)
        s3_hook.get_conn().upload_file(
            csv_path, bucket, csv_key, ExtraArgs={"ContentType": "text/csv; charset=utf-8"}
        )
    report.drift_csv_uri = f"s3://{bucket}/{csv_key}"
    if repair and collector.invalidate:
        report.invalidated = invalidate(
            store, collector.invalidate, run_id=run_id, now=int(moment.timestamp())
        )
        report.repair_request = collector.repair.conf()
    report.finished_at = datetime.now(timezone.utc).isoformat()
    report_key = reconcile_key(prefix, date, REPORT_NAME)
    report.report_uri = f"s3://{bucket}/{report_key}"
    put_object(
        s3_hook,
        bucket,
        report_key,
        json.dumps(report.to_dict(), indent=2, ensure_ascii=False).encode("utf-8"),
        "application/json; charset=utf-8",
    )
    log.info(
        "Reconcile of catalog %s: %d read, %d missing, %d stale, %d unknown; report %s",
        store.catalog_id,
        counts.items_read,
        counts.missing,
        counts.stale,
        counts.unknown,
        report.report_uri,
    )
    return report


__all__ = [
    "DEFAULT_MAX_REPAIR_ITEMS",
    "ReconcileReport",
    "confirmed_items",
    "invalidate",
    "run_reconcile",
]
