"""The landing zone: snapshot the landing prefix, archive or quarantine what was processed, and
repair after a crash.

The rules this module keeps (DESIGN.md, "Rules that make it trustworthy"):

* A run works on a *snapshot*: the exact (key, ETag) pairs it listed. Files that arrive later, and
  new uploads over a snapshotted key, are never archived, quarantined or deleted by that run.
* A landing object is deleted only after its copy under ``archive/`` (or ``quarantine/``) exists
  and was verified, and only while it still holds the snapshotted content: every delete is a
  conditional ``DeleteObject`` with ``If-Match: <snapshot ETag>``, after a HEAD that checks the
  same (S3 stores that ignore ``If-Match`` on delete still get the HEAD check).
* Copies are conditional too (``CopySourceIfMatch``), so a copy can never pick up a newer upload.
  Each copy records what it was made from in its user metadata (``fbcatalog-source-etag``,
  ``fbcatalog-source-last-modified``); :meth:`LandingZone.repair` trusts nothing else.
* Everything is safe to repeat: a retried task finds its earlier copies and finishes the job.

The repair rule (the crash between "copy to archive" and "delete from landing"): a landing object
is deleted by :meth:`LandingZone.repair` only when the object at its archive key carries
``fbcatalog-source-etag`` equal to the landing object's current ETag, ``fbcatalog-source-last-modified``
equal to its current LastModified (UTC, whole seconds), has the same size, and, for single-part
uploads, has that same ETag itself. Such a copy is written only by :meth:`LandingZone.archive`,
which runs only after a successful sync, so the landing object is a leftover of a synced file. A new
upload to the same key has a new LastModified, so it is never deleted, even with identical bytes.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Literal

from botocore.exceptions import ClientError

from facebook_catalog.storage.s3 import error_code, is_not_found, is_precondition_failed, normalize_prefix

if TYPE_CHECKING:
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

log = logging.getLogger(__name__)

#: The prefix under which landing files wait for the sync (the ingestion writes there).
LANDING_PREFIX = "landing/"

# S3Hook.copy_object sends ACL=private unless told "no-acl"; buckets with ACLs disabled (the AWS
# default since 2023) reject that. Same value as airflow.providers.amazon.aws.hooks.s3.NO_ACL.
_NO_ACL = "no-acl"
# CopyObject copies at most 5 GiB in one request.
MAX_SINGLE_COPY_BYTES = 5 * 1024**3

SOURCE_ETAG_METADATA = "fbcatalog-source-etag"
SOURCE_LAST_MODIFIED_METADATA = "fbcatalog-source-last-modified"
SOURCE_VERSION_METADATA = "fbcatalog-source-version-id"
# Content headers carried over when a copy replaces the metadata.
_CONTENT_HEADERS = ("ContentType", "ContentEncoding", "ContentLanguage", "ContentDisposition", "CacheControl")


class LandingZoneError(Exception):
    """An S3 landing-zone operation could not be completed safely."""


class LandingObjectChangedError(LandingZoneError):
    """The landing object was overwritten after the snapshot; the new upload was left untouched."""


class ArchiveError(LandingZoneError):
    """Some snapshotted objects could not be accounted for; ``result`` has every outcome."""

    def __init__(self, result: ArchiveResult) -> None:
        self.result = result
        details = "; ".join(f"{o.landing_key}: {o.detail}" for o in result.errors)
        super().__init__(f"{len(result.errors)} landing object(s) could not be archived: {details}")


def normalize_etag(etag: str) -> str:
    """S3 returns ETags in quotes; store and compare them without."""
    return etag.strip().strip('"')


def _quoted(etag: str) -> str:
    return f'"{normalize_etag(etag)}"'


def _is_multipart_etag(etag: str) -> bool:
    # "<md5 of part md5s>-<part count>": not the MD5 of the content, and a copy gets a new one.
    return "-" in etag


def iso_timestamp(moment: datetime) -> str:
    """UTC ISO 8601 at whole seconds: list and HEAD report LastModified at different precisions."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).replace(microsecond=0).isoformat()


@dataclass(frozen=True)
class LandingObject:
    """One landing file as the snapshot saw it. Passes through XCom as ``to_dict()``."""

    key: str
    etag: str  # without quotes
    size: int
    last_modified: str  # ISO 8601, UTC, whole seconds

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LandingObject:
        return cls(
            key=str(data["key"]),
            etag=normalize_etag(str(data["etag"])),
            size=int(data["size"]),
            last_modified=str(data["last_modified"]),
        )


ArchiveStatus = Literal["archived", "already_archived", "superseded", "missing"]


@dataclass(frozen=True)
class ArchiveOutcome:
    """What happened to one snapshotted object.

    ``archived``: copied, verified, deleted from landing. ``already_archived``: an earlier attempt
    did it (a retried task). ``superseded``: the key was overwritten during the run; the new upload
    stays in landing for the next run (``archive_key`` is set when the snapshotted content could
    still be archived). ``missing``: gone from landing without a matching archive copy, an error.
    """

    landing_key: str
    status: ArchiveStatus
    archive_key: str | None
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ArchiveResult:
    outcomes: tuple[ArchiveOutcome, ...]

    def _keys(self, *statuses: ArchiveStatus) -> list[str]:
        return [o.landing_key for o in self.outcomes if o.status in statuses]

    @property
    def archived(self) -> list[str]:
        """Snapshot keys whose content is in the archive and no longer in landing."""
        return self._keys("archived", "already_archived")

    @property
    def left_in_landing(self) -> list[str]:
        """Keys overwritten during the run: their new upload waits in landing for the next run."""
        return self._keys("superseded")

    @property
    def errors(self) -> list[ArchiveOutcome]:
        return [o for o in self.outcomes if o.status == "missing"]

    def to_dict(self) -> dict[str, Any]:
        counts: dict[str, int] = {}
        for outcome in self.outcomes:
            counts[outcome.status] = counts.get(outcome.status, 0) + 1
        return {"counts": counts, "outcomes": [o.to_dict() for o in self.outcomes]}


@dataclass(frozen=True)
class RepairResult:
    checked: int
    deleted: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"checked": self.checked, "deleted": list(self.deleted)}


class LandingZone:
    """The landing, archive and quarantine prefixes of the landing bucket."""

    def __init__(
        self,
        s3_hook: S3Hook,
        bucket: str,
        landing_prefix: str = LANDING_PREFIX,
        archive_prefix: str = "archive/",
        quarantine_prefix: str = "quarantine/",
    ) -> None:
        self.s3_hook = s3_hook
        self.bucket = bucket
        self.landing_prefix = normalize_prefix(landing_prefix, "landing_prefix")
        self.archive_prefix = normalize_prefix(archive_prefix, "archive_prefix")
        self.quarantine_prefix = normalize_prefix(quarantine_prefix, "quarantine_prefix")
        prefixes = (self.landing_prefix, self.archive_prefix, self.quarantine_prefix)
        for first in prefixes:
            for second in prefixes:
                if first is not second and second.startswith(first):
                    raise ValueError(
                        f"prefix {second!r} lies inside {first!r}: a snapshot would pick up archived files"
                    )

    @property
    def _client(self) -> Any:
        return self.s3_hook.get_conn()

    # ----------------------------------------------------------------- keys

    def _relative_key(self, landing_key: str) -> str:
        if not landing_key.startswith(self.landing_prefix):
            raise ValueError(f"{landing_key!r} is not under the landing prefix {self.landing_prefix!r}")
        return landing_key[len(self.landing_prefix) :]

    def archive_key(self, landing_key: str) -> str:
        return self.archive_prefix + self._relative_key(landing_key)

    def quarantine_key(self, landing_key: str) -> str:
        return self.quarantine_prefix + self._relative_key(landing_key)

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    # ------------------------------------------------------------- snapshot

    def snapshot(self) -> list[LandingObject]:
        """Every object under the landing prefix, oldest first (later files win), ties by key."""
        objects: list[LandingObject] = []
        paginator = self._client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self.landing_prefix):
            for item in page.get("Contents", []):
                key = item["Key"]
                if key.endswith("/"):  # "folder" placeholders made by consoles and some tools
                    continue
                objects.append(
                    LandingObject(
                        key=key,
                        etag=normalize_etag(item["ETag"]),
                        size=int(item["Size"]),
                        last_modified=iso_timestamp(item["LastModified"]),
                    )
                )
        objects.sort(key=lambda obj: (obj.last_modified, obj.key))
        log.info("Snapshot of %s: %d object(s)", self.uri(self.landing_prefix), len(objects))
        return objects

    # -------------------------------------------------------------- archive

    def archive(self, objects: Iterable[LandingObject]) -> ArchiveResult:
        """Move exactly the snapshotted objects to the archive prefix; call only after the sync succeeded.

        Every object is handled before an error is raised, so one missing file does not leave the
        others in landing. Raises :class:`ArchiveError` naming each object that is gone from landing
        without a matching archive copy.
        """
        outcomes = tuple(self._archive_one(obj) for obj in objects)
        result = ArchiveResult(outcomes)
        for outcome in outcomes:
            if outcome.status == "superseded":
                log.warning("%s: %s", outcome.landing_key, outcome.detail)
        log.info("Archive: %s", result.to_dict()["counts"])
        if result.errors:
            raise ArchiveError(result)
        return result

    def _archive_one(self, obj: LandingObject) -> ArchiveOutcome:
        archive_key = self.archive_key(obj.key)
        landing_head = self._head(obj.key)
        copied = self._copy_matches(self._head(archive_key), obj)

        if landing_head is None:
            if copied:
                return ArchiveOutcome(obj.key, "already_archived", archive_key)
            return ArchiveOutcome(
                obj.key,
                "missing",
                None,
                f"{self.uri(obj.key)} is gone from landing and {self.uri(archive_key)} holds no copy of it",
            )

        if not self._is_snapshot_version(landing_head, obj):
            return self._superseded(obj, archive_key, copied or self._copy_snapshot_version(obj, archive_key))

        if not copied:
            try:
                self._copy_verified(obj, landing_head, archive_key)
            except LandingObjectChangedError:
                return self._superseded(obj, archive_key, self._copy_snapshot_version(obj, archive_key))

        if self._delete_if_unchanged(obj):
            return ArchiveOutcome(obj.key, "archived", archive_key)
        return ArchiveOutcome(obj.key, "superseded", archive_key, self._superseded_detail(obj, archive_key))

    def _superseded(self, obj: LandingObject, archive_key: str, copied: bool) -> ArchiveOutcome:
        """The key was overwritten during the run; ``copied``: its snapshotted content is archived."""
        kept = archive_key if copied else None
        return ArchiveOutcome(obj.key, "superseded", kept, self._superseded_detail(obj, kept))

    def _superseded_detail(self, obj: LandingObject, archive_key: str | None) -> str:
        where = (
            f"the synced version was archived at {self.uri(archive_key)}"
            if archive_key
            else "the synced version was overwritten before it could be archived (enable bucket "
            "versioning to keep it; what was sent is in the run's payloads)"
        )
        return f"overwritten after the snapshot: the new upload stays in landing for the next run; {where}"

    # ----------------------------------------------------------- quarantine

    def quarantine(self, obj: LandingObject, problems: Sequence[str] | str) -> str:
        """Move a file that cannot be synced to the quarantine prefix with ``<key>.error.json`` beside it.

        Returns the quarantine key. Safe to repeat. Raises :class:`LandingObjectChangedError` if the
        file was overwritten after the snapshot and the snapshotted content can no longer be read:
        the new upload stays in landing and will be checked by the next run.
        """
        problem_list = [problems] if isinstance(problems, str) else [str(p) for p in problems]
        quarantine_key = self.quarantine_key(obj.key)
        landing_head = self._head(obj.key)
        landing_is_snapshot = landing_head is not None and self._is_snapshot_version(landing_head, obj)
        copied = self._copy_matches(self._head(quarantine_key), obj)

        if not copied:
            if landing_head is None:
                raise LandingZoneError(
                    f"cannot quarantine {self.uri(obj.key)}: it is gone from landing and "
                    f"{self.uri(quarantine_key)} holds no copy of it"
                )
            if landing_is_snapshot:
                try:
                    self._copy_verified(obj, landing_head, quarantine_key)
                    copied = True
                except LandingObjectChangedError:
                    landing_is_snapshot = False
            if not copied and not self._copy_snapshot_version(obj, quarantine_key):
                raise LandingObjectChangedError(
                    f"cannot quarantine {self.uri(obj.key)}: it was overwritten after the snapshot and the "
                    "rejected version is no longer readable; the new upload stays in landing"
                )

        report = {
            "original_key": obj.key,
            "original_uri": self.uri(obj.key),
            "quarantine_key": quarantine_key,
            "etag": obj.etag,
            "size": obj.size,
            "last_modified": obj.last_modified,
            "quarantined_at": iso_timestamp(datetime.now(timezone.utc)),
            "problems": problem_list,
        }
        # The report is written before the landing delete: a crash in between leaves the file in
        # landing, and the next run quarantines it again, overwriting this report.
        self._client.put_object(
            Bucket=self.bucket,
            Key=f"{quarantine_key}.error.json",
            Body=json.dumps(report, indent=2, ensure_ascii=False).encode("utf-8"),
            ContentType="application/json; charset=utf-8",
        )
        if landing_is_snapshot and not self._delete_if_unchanged(obj):
            log.warning("%s was overwritten during the run; the new upload stays in landing", obj.key)
        log.warning("Quarantined %s at %s: %s", obj.key, self.uri(quarantine_key), "; ".join(problem_list))
        return quarantine_key

    # --------------------------------------------------------------- repair

    def repair(self, keys: Iterable[str] | None = None) -> RepairResult:
        """Finish archives interrupted between copy and delete; cheap enough to run at every start.

        Checks the given landing keys, or everything under the landing prefix, with one HEAD on
        the archive key each (and one HEAD on the landing key when keys are given). Deletes a
        landing object only under the rule in this module's docstring.
        """
        if keys is None:
            candidates = self.snapshot()
        else:
            candidates = []
            for key in keys:
                self._relative_key(key)  # refuse keys outside landing before touching anything
                head = self._head(key)
                if head is not None and not key.endswith("/"):
                    candidates.append(self._object_from_head(key, head))
        deleted: list[str] = []
        for obj in candidates:
            if self._copy_matches(self._head(self.archive_key(obj.key)), obj) and self._delete_if_unchanged(
                obj
            ):
                deleted.append(obj.key)
        if deleted:
            log.warning(
                "Repair: %d landing object(s) were already archived by an interrupted run and were "
                "removed from landing: %s",
                len(deleted),
                ", ".join(deleted),
            )
        return RepairResult(checked=len(candidates), deleted=tuple(deleted))

    # -------------------------------------------------------------- helpers

    def _head(self, key: str, version_id: str | None = None) -> dict[str, Any] | None:
        params: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if version_id:
            params["VersionId"] = version_id
        try:
            return dict(self._client.head_object(**params))
        except ClientError as error:
            if is_not_found(error):
                return None
            raise

    @staticmethod
    def _object_from_head(key: str, head: Mapping[str, Any]) -> LandingObject:
        return LandingObject(
            key=key,
            etag=normalize_etag(head["ETag"]),
            size=int(head["ContentLength"]),
            last_modified=iso_timestamp(head["LastModified"]),
        )

    @staticmethod
    def _is_snapshot_version(landing_head: Mapping[str, Any], obj: LandingObject) -> bool:
        return (
            normalize_etag(landing_head["ETag"]) == obj.etag
            and int(landing_head["ContentLength"]) == obj.size
        )

    @staticmethod
    def _copy_matches(copy_head: Mapping[str, Any] | None, obj: LandingObject) -> bool:
        """Whether ``copy_head`` is a verified copy of exactly ``obj`` (the repair rule)."""
        if copy_head is None:
            return False
        metadata = {k.lower(): v for k, v in (copy_head.get("Metadata") or {}).items()}
        if int(copy_head["ContentLength"]) != obj.size:
            return False
        if metadata.get(SOURCE_ETAG_METADATA) != obj.etag:
            return False
        if metadata.get(SOURCE_LAST_MODIFIED_METADATA) != obj.last_modified:
            return False
        # A single-part object's ETag is the MD5 of its bytes and survives a copy: check the content.
        return _is_multipart_etag(obj.etag) or normalize_etag(copy_head["ETag"]) == obj.etag

    def _copy_verified(
        self,
        obj: LandingObject,
        source_head: Mapping[str, Any],
        destination_key: str,
        version_id: str | None = None,
    ) -> None:
        """Copy exactly the snapshotted content of ``obj`` to ``destination_key`` and check the copy."""
        if obj.size > MAX_SINGLE_COPY_BYTES:
            raise LandingZoneError(
                f"{self.uri(obj.key)} is {obj.size} bytes, larger than the 5 GiB a single S3 copy allows; "
                "split the feed into smaller files"
            )
        metadata = dict(source_head.get("Metadata") or {})
        metadata[SOURCE_ETAG_METADATA] = obj.etag
        metadata[SOURCE_LAST_MODIFIED_METADATA] = obj.last_modified
        if version_id:
            metadata[SOURCE_VERSION_METADATA] = version_id
        content_headers = {name: source_head[name] for name in _CONTENT_HEADERS if source_head.get(name)}
        try:
            self.s3_hook.copy_object(
                source_bucket_key=obj.key,
                dest_bucket_key=destination_key,
                source_bucket_name=self.bucket,
                dest_bucket_name=self.bucket,
                source_version_id=version_id,
                acl_policy=_NO_ACL,
                meta_data_directive="REPLACE",
                Metadata=metadata,
                CopySourceIfMatch=_quoted(obj.etag),
                **content_headers,
            )
        except ClientError as error:
            if is_precondition_failed(error):
                raise LandingObjectChangedError(f"{obj.key} changed while it was being copied") from error
            if is_not_found(error):
                raise LandingObjectChangedError(f"{obj.key} disappeared while it was being copied") from error
            raise
        if not self._copy_matches(self._head(destination_key), obj):
            raise LandingZoneError(
                f"the copy of {self.uri(obj.key)} at {self.uri(destination_key)} does not match the snapshot "
                f"(ETag {obj.etag}, {obj.size} bytes); the landing file was left in place"
            )

    def _copy_snapshot_version(self, obj: LandingObject, destination_key: str) -> bool:
        """On a versioned bucket, copy the snapshotted version of an overwritten key; False if none."""
        try:
            paginator = self._client.get_paginator("list_object_versions")
            for page in paginator.paginate(Bucket=self.bucket, Prefix=obj.key):
                for version in page.get("Versions", []):
                    if (
                        version["Key"] == obj.key
                        and normalize_etag(version["ETag"]) == obj.etag
                        and int(version["Size"]) == obj.size
                        and iso_timestamp(version["LastModified"]) == obj.last_modified
                    ):
                        version_id = str(version["VersionId"])
                        head = self._head(obj.key, version_id=version_id)
                        if head is None:
                            return False
                        self._copy_verified(obj, head, destination_key, version_id=version_id)
                        return True
        except ClientError as error:
            log.warning("Cannot list versions of %s (%s)", obj.key, error_code(error))
        except LandingObjectChangedError:
            pass
        return False

    def _delete_if_unchanged(self, obj: LandingObject) -> bool:
        """Delete the landing object only if it still holds the snapshotted content."""
        head = self._head(obj.key)
        if head is None:
            return True  # already gone; its verified copy exists
        if not self._is_snapshot_version(head, obj):
            return False
        try:
            # If-Match closes the gap between the HEAD above and the delete (S3 since 2025-09).
            self._client.delete_object(Bucket=self.bucket, Key=obj.key, IfMatch=_quoted(obj.etag))
        except ClientError as error:
            if is_precondition_failed(error):
                return False
            if is_not_found(error):
                return True
            raise
        return True
