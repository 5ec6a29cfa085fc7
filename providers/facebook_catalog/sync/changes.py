"""Change tracking: which items a run skips as unchanged, and which sent items Meta confirmed.

The rules (README, "Change detection"):

* An item whose normalized fields hash to what Meta last confirmed for the catalog is not sent
  (``items_unchanged``), unless the run is a ``full_sync``.
* Only items Meta confirmed update the state: their call got a handle, the handle ``finished``,
  and the item's id is not among the handle's invalid ones. A handle whose invalid-id list may
  have been cut short confirms nothing. So a rejected item, or one whose batch did not finish,
  is sent again next run.

The state store and the run's records are passed in (:mod:`facebook_catalog.storage`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from facebook_catalog.feed.change_detection import ItemHashes, SentHashes, id_hash
from facebook_catalog.hooks.graph_api import MAX_INVALID_IDS

if TYPE_CHECKING:
    from facebook_catalog.storage.run_records import RunRecords
    from facebook_catalog.storage.state_store import ItemHashStore
    from facebook_catalog.sync.outcome import Submission

log = logging.getLogger(__name__)


class ChangeTracking:
    """Per run: the confirmed state, which items are skipped as unchanged, and what was sent."""

    def __init__(self, state: ItemHashes, full_sync: bool) -> None:
        self.state = state
        self.full_sync = full_sync
        self.sent = SentHashes()
        self.unchanged = 0

    @classmethod
    def load(cls, store: ItemHashStore, full_sync: bool) -> ChangeTracking:
        data = store.load()
        tracking = cls(ItemHashes.from_bytes(data) if data else ItemHashes(), full_sync)
        log.info(
            "Change detection: %d items confirmed so far (s3://%s/%s)%s",
            len(tracking.state),
            store.bucket,
            store.key,
            "; full_sync: every item is sent" if full_sync else "",
        )
        return tracking

    def should_send(self, item_id_hash: int, item_hash: int) -> bool:
        if not self.full_sync and self.state.get(item_id_hash) == item_hash:
            self.unchanged += 1
            return False
        self.sent.ids.append(item_id_hash)
        self.sent.hashes.append(item_hash)
        return True

    def summary(self) -> dict[str, Any]:
        return {
            "full_sync": self.full_sync,
            "items_known": len(self.state),
            "items_unchanged": self.unchanged,
        }

    def record(self, submission: Submission, records: RunRecords | None) -> None:
        """Put the tracking's figures into the submission, and what was sent into the records."""
        submission.counts["items_unchanged"] = self.unchanged
        submission.change_detection = self.summary()
        if records is not None and self.sent.ids:
            submission.records["sent_item_hashes"] = records.put_sent_hashes(self.sent.to_bytes())


def confirmed_updates(
    sent: SentHashes,
    calls: list[tuple[str | None, int]],
    final_statuses: Mapping[str, str],
    invalid_ids_by_handle: Mapping[str, tuple[list[str], bool]],
) -> list[tuple[int, int]]:
    """The sent items Meta confirmed, as (id hash, content hash) pairs (the rule above).

    ``calls`` lists, in sending order, each call's handle (None when Meta ingested nothing) and
    how many of the sent items it carried; ``invalid_ids_by_handle`` gives each handle's invalid
    ids and whether that list is complete.
    """
    updates: list[tuple[int, int]] = []
    start = 0
    for handle, count in calls:
        end = start + count
        invalid, complete = invalid_ids_by_handle.get(handle or "", ([], True))
        if handle and final_statuses.get(handle) == "finished" and complete:
            rejected = {id_hash(i) for i in invalid}
            updates.extend(
                (sent.ids[k], sent.hashes[k]) for k in range(start, end) if sent.ids[k] not in rejected
            )
        start = end
    return updates


def invalid_ids_by_handle(batches: list[dict[str, Any]]) -> dict[str, tuple[list[str], bool]]:
    """Each batch's invalid ids, and whether the list is complete: Meta lists at most
    MAX_INVALID_IDS of them, so a full list next to errors may have been cut short."""
    result: dict[str, tuple[list[str], bool]] = {}
    for batch in batches:
        invalid = list(batch.get("ids_of_invalid_requests") or [])
        complete = not batch.get("errors_total_count") or 0 < len(invalid) < MAX_INVALID_IDS
        result[batch["handle"]] = (invalid, complete)
    return result


def record_confirmed_items(
    store: ItemHashStore, records: RunRecords, submission: Submission, batches: list[dict[str, Any]]
) -> None:
    """Add what Meta confirmed to the catalog's state. On any failure the items are simply sent
    again next run, so a failure here is logged and never fails the run."""
    if not submission.change_detection or not submission.records.get("sent_item_hashes"):
        return
    try:
        sent_bytes = records.get_sent_hashes()
        if sent_bytes is None:
            log.warning("No record of the sent items: change detection state not updated")
            return
        updates = confirmed_updates(
            SentHashes.from_bytes(sent_bytes),
            [(h, int(n)) for h, n in submission.call_handles],
            {b["handle"]: b["status"] for b in batches},
            invalid_ids_by_handle(batches),
        )
        current = store.load()
        state = ItemHashes.from_bytes(current) if current else ItemHashes()
        if updates:
            store.save(state.merged(updates).to_bytes())
        submission.counts["items_confirmed"] = len(updates)
        log.info("Change detection: Meta confirmed %d items; state updated", len(updates))
    except Exception:
        log.exception("Could not update the change-detection state; those items will be sent again")
