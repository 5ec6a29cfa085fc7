"""The sync DAG's landing-zone steps: take the run's snapshot, then archive or quarantine it.

The rules are :mod:`facebook_catalog.storage.landing_zone`'s; these steps decide what a run does
with them. The landing zone is passed in.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from facebook_catalog.storage.landing_zone import LandingObject, LandingZone
from facebook_catalog.sync.settings import sync_operator_arguments

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LandingSnapshot:
    """A run's snapshot and its resolved settings; passes from the first task through XCom."""

    settings: dict[str, Any]
    objects: list[LandingObject] = field(default_factory=list)

    @property
    def keys(self) -> list[str]:
        return [o.key for o in self.objects]

    def to_dict(self) -> dict[str, Any]:
        return {
            "settings": self.settings,
            "objects": [o.to_dict() for o in self.objects],
            "keys": self.keys,
            "operator_arguments": sync_operator_arguments(self.settings),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LandingSnapshot:
        return cls(dict(data["settings"]), [LandingObject.from_dict(o) for o in data["objects"]])


def take_snapshot(zone: LandingZone, settings: dict[str, Any]) -> LandingSnapshot:
    """Repair what a crashed run left half-archived, then list what is waiting in landing."""
    repaired = zone.repair()
    if repaired.deleted:
        log.warning(
            "Repaired a crashed run: removed already-archived files from landing: %s", repaired.deleted
        )
    snapshot = LandingSnapshot(settings, zone.snapshot())
    if snapshot.objects:
        log.info(
            "Snapshot of %s: %d files: %s",
            zone.uri(zone.landing_prefix),
            len(snapshot.objects),
            snapshot.keys,
        )
    return snapshot


@dataclass(frozen=True)
class ArchivedSnapshot:
    archived: list[str]
    left_in_landing: list[str]
    #: landing key -> (quarantine key, why it is not a readable feed)
    quarantined: dict[str, tuple[str, str]]

    def to_dict(self) -> dict[str, Any]:
        return {"archived": self.archived, "left_in_landing": self.left_in_landing}

    def quarantine_message(self) -> str | None:
        """Why the run fails although the other files were synced, or None."""
        if not self.quarantined:
            return None
        lines = [f"{key} -> {target}: {error}" for key, (target, error) in self.quarantined.items()]
        return (
            f"{len(self.quarantined)} files could not be read as a feed and were moved to quarantine "
            "(the other files were synced and archived):\n" + "\n".join(lines)
        )


def archive_snapshot(
    zone: LandingZone, snapshot: LandingSnapshot, files: list[dict[str, Any]]
) -> ArchivedSnapshot:
    """After a successful sync: quarantine the snapshot's unreadable files (``files`` are the
    sync's per-file results) and archive the rest."""
    errors = {f["key"]: f["error"] for f in files if f.get("error")}
    quarantined = {
        o.key: (zone.quarantine(o, errors[o.key]), errors[o.key]) for o in snapshot.objects if o.key in errors
    }
    result = zone.archive([o for o in snapshot.objects if o.key not in errors])
    log.info("Archived %d files: %s", len(result.archived), result.archived)
    if result.left_in_landing:
        log.info("Left in landing for the next run (changed during this run): %s", result.left_in_landing)
    return ArchivedSnapshot(result.archived, result.left_in_landing, quarantined)
