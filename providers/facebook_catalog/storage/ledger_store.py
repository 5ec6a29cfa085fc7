"""The item ledger of each catalog in the synced-products bucket: a small log-structured store on S3.

Under ``ledger/<catalog id>/``:

* ``manifest.json``: what the ledger is made of now. It is replaced with one conditional PUT
  (``If-Match`` its ETag), which is the commit point of every change: a crash before it leaves
  the previous ledger whole (the new objects are then unreferenced and removed later), never a mix.
* ``base-<n>.bin``: every confirmed item, sorted by id hash, fixed 24-byte records
  (:data:`~facebook_catalog.sync.ledger.CONFIRMED_RECORD`), in blocks of :data:`BLOCK_RECORDS`;
  ``base-<n>.idx`` holds each block's first id hash (8 bytes a block). A run reads the index and,
  by byte ranges (nearby blocks coalesced into one GET), only the blocks its items fall in: at
  10,000,000 items the index is 470 KB and 300 items read about 1.2 MB of blocks.
* ``delta-<stamp>.bin``: what one run confirmed, the same records; read whole (they are small).
* ``open-<stamp>.jsonl``: every item not confirmed (rejected by the feed or by Meta, pending;
  localized overrides too, held until their item is confirmed: sync/localized.py),
  one :class:`~facebook_catalog.sync.ledger.LedgerEntry` a line, with its last payload; rewritten
  by each run. It grows with the open rejections (and, for one run, with the overrides of
  items Meta has yet to confirm), never with the catalog.
* ``lease.json``: held by the run that syncs the catalog, created with ``If-None-Match: *``; a
  second run at once fails clearly, naming the holder, until it is released or expires.
* ``unsettled.json``: the run that may have posted items and not yet recorded Meta's answer;
  removed when it records. A run that finds another run's note sends every item of its snapshot
  (as ``full_sync``): the run that left it may have changed items at Meta unrecorded, and an
  item changed back to its confirmed content would otherwise never be sent again.
* ``open_rejections.csv``: the open rejections for people (id, reason, first seen, last seen,
  attempts, next retry).

Once deltas pile up (:data:`COMPACT_AFTER_DELTAS`, or more delta records than a tenth of the
base), :meth:`LedgerStore.compact` merges them into a new base in one streaming pass: the base is
read in chunks by byte ranges and written as a multipart upload, so memory holds one chunk, one
part and the deltas. An existing ``state/<catalog id>/item_hashes.bin`` (the state before the
ledger) becomes the first base when no manifest exists.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import secrets
import sys
import time
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import orjson
from botocore.exceptions import ClientError

from facebook_catalog.storage.s3 import is_not_found, is_precondition_failed, normalize_prefix

if TYPE_CHECKING:
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

log = logging.getLogger(__name__)

RECORD_BYTES = 24
BLOCK_RECORDS = 170
BLOCK_BYTES = RECORD_BYTES * BLOCK_RECORDS  # 4,080
#: Blocks within this many of each other are fetched in one ranged GET.
COALESCE_GAP_BLOCKS = 2
#: Ranged GETs in flight at once.
FETCH_THREADS = 8
#: Beyond this share of the base's blocks, a run streams the whole base instead.
SPARSE_MAX_SHARE = 0.125
COMPACT_AFTER_DELTAS = 24
#: Compaction reads the base in chunks of this many blocks (about 2 MiB) and writes parts of
#: 5 MiB (S3's smallest but the last): memory holds about one part and a chunk, whatever the size.
CHUNK_BLOCKS = 512
PART_BYTES = 5 << 20
OPEN_REJECTIONS_COLUMNS = (
    "id",
    "outcome",
    "reason",
    "code",
    "first_seen",
    "last_seen",
    "attempts",
    "next_retry",
)
MANIFEST_FORMAT = 1


class LedgerFormatError(ValueError):
    """What is stored is not a ledger this code wrote."""


def pack_times(first: int, last: int) -> int:
    """A record's third value: first confirmed (low 32 bits), last confirmed (high), epoch s."""
    return (int(last) & 0xFFFFFFFF) << 32 | (int(first) & 0xFFFFFFFF)


def unpack_times(times: int) -> tuple[int, int]:
    return times & 0xFFFFFFFF, times >> 32


class LedgerBusyError(RuntimeError):
    """Another run holds the catalog's ledger."""


class LedgerConflictError(RuntimeError):
    """The ledger changed under this run (its manifest is not the one it read)."""


def _records(data: bytes) -> array[int]:
    values = array("Q")
    values.frombytes(data)
    if sys.byteorder == "big":  # pragma: no cover - written little-endian
        values.byteswap()
    return values


def _bytes(values: array[int]) -> bytes:
    if sys.byteorder == "big":  # pragma: no cover
        values = array("Q", values)
        values.byteswap()
    return values.tobytes()


def _iso(epoch: int | None) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).isoformat() if epoch else ""


@dataclass
class Manifest:
    base: dict[str, Any] | None = None  # {"key", "index_key", "records"}
    deltas: list[dict[str, Any]] = field(default_factory=list)  # [{"key", "records"}]
    open: dict[str, Any] | None = None  # {"key", "entries"}
    items: int = 0
    #: Open rejections (by the feed or by Meta) after the last run, for runs that read no ledger.
    rejections_open: int = 0
    generation: int = 0
    updated_at: str = ""
    updated_by: str = ""
    migrated_from: str | None = None
    format: int = MANIFEST_FORMAT

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Manifest:
        if data.get("format") != MANIFEST_FORMAT:
            raise LedgerFormatError(f"ledger manifest format {data.get('format')!r} is not {MANIFEST_FORMAT}")
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


@dataclass
class LedgerState:
    """A manifest as read, with the ETag its commit must match (None: no manifest yet)."""

    manifest: Manifest
    etag: str | None


class LedgerStore:
    """One catalog's ledger (module docstring). Counts the bytes it reads and writes."""

    def __init__(
        self,
        s3_hook: S3Hook,
        bucket: str,
        catalog_id: str,
        prefix: str = "ledger/",
        legacy_state_prefix: str = "state/",
    ) -> None:
        self.s3_hook = s3_hook
        self.bucket = bucket
        self.catalog_id = catalog_id
        self.prefix = f"{normalize_prefix(prefix, 'ledger_prefix')}{catalog_id}/"
        self.legacy_key = (
            f"{normalize_prefix(legacy_state_prefix, 'state_prefix')}{catalog_id}/item_hashes.bin"
        )
        self.bytes_read = 0
        self.bytes_written = 0
        self.requests = 0

    # ------------------------------------------------------------------ S3
    def key(self, name: str) -> str:
        return self.prefix + name

    @property
    def manifest_key(self) -> str:
        return self.key("manifest.json")

    @property
    def open_rejections_key(self) -> str:
        return self.key("open_rejections.csv")

    def _client(self) -> Any:
        return self.s3_hook.get_conn()

    def _get(self, key: str, byte_range: tuple[int, int] | None = None) -> tuple[bytes, str] | None:
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if byte_range is not None:
            kwargs["Range"] = f"bytes={byte_range[0]}-{byte_range[1] - 1}"
        try:
            response = self._client().get_object(**kwargs)
        except ClientError as error:
            if is_not_found(error):
                return None
            raise
        body: bytes = response["Body"].read()
        self.bytes_read += len(body)
        self.requests += 1
        return body, str(response.get("ETag", ""))

    def _read(self, key: str, byte_range: tuple[int, int] | None = None) -> bytes:
        found = self._get(key, byte_range)
        if found is None:
            raise LedgerFormatError(f"s3://{self.bucket}/{key}, named by the ledger's manifest, is missing")
        return found[0]

    def _put(
        self, key: str, body: bytes, content_type: str = "application/octet-stream", **conditions: str
    ) -> str:
        response = self._client().put_object(
            Bucket=self.bucket, Key=key, Body=body, ContentType=content_type, **conditions
        )
        self.bytes_written += len(body)
        self.requests += 1
        return str(response.get("ETag", ""))

    def _delete(self, keys: Iterable[str | None]) -> None:
        for key in keys:
            if key:
                try:
                    self._client().delete_object(Bucket=self.bucket, Key=key)
                except ClientError:
                    log.warning(
                        "Could not remove s3://%s/%s (no longer part of the ledger)", self.bucket, key
                    )

    @staticmethod
    def _stamp() -> str:
        return time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + "-" + secrets.token_hex(4)

    # ------------------------------------------------------------------ reading
    def load(self) -> LedgerState:
        """The manifest as it is now (an empty ledger, etag None, when there is none yet)."""
        found = self._get(self.manifest_key)
        if found is None:
            return LedgerState(Manifest(), None)
        return LedgerState(Manifest.from_dict(json.loads(found[0])), found[1])

    def legacy_state(self) -> bytes | None:
        """``state/<catalog id>/item_hashes.bin``, the state before the ledger, if any."""
        found = self._get(self.legacy_key)
        return found[0] if found else None

    def migrate(self, ids: array[int], hashes: array[int], now: int) -> LedgerState:
        """The first ledger, from the sorted id hashes and content hashes of the old state."""
        times = pack_times(now, now)
        records = array("Q", bytes(RECORD_BYTES * len(ids)))
        records[0::3] = ids
        records[1::3] = hashes
        records[2::3] = array("Q", [times]) * len(ids)
        manifest = Manifest(items=len(ids), migrated_from=self.legacy_key, updated_by="migration")
        manifest.base = self._write_base(_bytes(records), ids[::BLOCK_RECORDS], len(ids))
        manifest.updated_at = _iso(now)
        etag = self._commit_manifest(manifest, None)
        log.info(
            "Ledger: migrated %d confirmed items from s3://%s/%s to s3://%s/%s",
            len(ids),
            self.bucket,
            self.legacy_key,
            self.bucket,
            self.prefix,
        )
        return LedgerState(manifest, etag)

    def index(self, manifest: Manifest) -> array[int]:
        if not manifest.base:
            return array("Q")
        return _records(self._read(manifest.base["index_key"]))

    def delta_records(self, manifest: Manifest) -> dict[int, tuple[int, int]]:
        """id hash -> (content hash, packed times) over every delta, later deltas winning."""
        merged: dict[int, tuple[int, int]] = {}
        for delta in manifest.deltas:
            values = _records(self._read(delta["key"]))
            merged.update(zip(values[0::3], zip(values[1::3], values[2::3], strict=True), strict=True))
        return merged

    def open_rows(self, manifest: Manifest) -> list[dict[str, Any]]:
        """The open set: one dict a line, as the sync core wrote it."""
        if not manifest.open:
            return []
        return [orjson.loads(line) for line in self._read(manifest.open["key"]).splitlines() if line.strip()]

    def lookup(self, manifest: Manifest, wanted: list[int]) -> dict[int, tuple[int, int]] | None:
        """(content hash, packed times) of each of ``wanted`` (sorted id hashes) found in the
        base, by ranged reads of their blocks; None when they fall in so many blocks that
        streaming the whole base (:meth:`base_chunks`) is cheaper."""
        index = self.index(manifest)
        if not len(index) or not wanted:
            return {}
        blocks = sorted({max(bisect_right(index, h) - 1, 0) for h in wanted})
        if len(blocks) > max(SPARSE_MAX_SHARE * len(index), 64):
            return None
        found: dict[int, tuple[int, int]] = {}
        for values in self._fetch_blocks(manifest, blocks):
            ids = values[0::3]
            low, high = bisect_left(wanted, ids[0]), bisect_right(wanted, ids[-1])
            for h in wanted[low:high]:
                position = bisect_left(ids, h)
                if position < len(ids) and ids[position] == h:
                    found[h] = (values[3 * position + 1], values[3 * position + 2])
        return found

    def _fetch_blocks(self, manifest: Manifest, blocks: list[int]) -> Iterator[array[int]]:
        """The given blocks of the base, nearby ones coalesced into one ranged GET each."""
        assert manifest.base is not None
        size = manifest.base["records"] * RECORD_BYTES
        ranges: list[list[int]] = []
        for block in blocks:
            if ranges and block - ranges[-1][1] <= COALESCE_GAP_BLOCKS:
                ranges[-1][1] = block
            else:
                ranges.append([block, block])
        key = manifest.base["key"]

        def fetch(span: list[int]) -> array[int]:
            start, end = span[0] * BLOCK_BYTES, min((span[1] + 1) * BLOCK_BYTES, size)
            return _records(self._read(key, (start, end)))

        with ThreadPoolExecutor(max_workers=FETCH_THREADS, thread_name_prefix="ledger-fetch") as pool:
            yield from pool.map(fetch, ranges)

    def base_chunks(self, manifest: Manifest) -> Iterator[array[int]]:
        """The whole base, streamed in chunks of CHUNK_BLOCKS blocks (ranged GETs), as flat
        records (id hash, content hash, times, ...)."""
        if not manifest.base:
            return
        size = manifest.base["records"] * RECORD_BYTES
        step = CHUNK_BLOCKS * BLOCK_BYTES
        for start in range(0, size, step):
            yield _records(self._read(manifest.base["key"], (start, min(start + step, size))))

    # ------------------------------------------------------------------ writing
    def commit(
        self,
        state: LedgerState,
        confirmed: Mapping[int, tuple[int, int]],
        open_rows: Iterable[Mapping[str, Any]],
        *,
        new_items: int,
        rejections_open: int = 0,
        run_id: str,
        now: int,
    ) -> LedgerState:
        """Write the run's delta (id hash -> (content hash, packed times)) and the new open set,
        then the manifest (the commit point)."""
        old = state.manifest
        manifest = Manifest(**{**old.to_dict(), "deltas": list(old.deltas)})
        stamp = self._stamp()
        if confirmed:
            values = array("Q")
            for h in sorted(confirmed):
                values.extend((h, *confirmed[h]))
            key = self.key(f"delta-{stamp}.bin")
            self._put(key, _bytes(values))
            manifest.deltas.append({"key": key, "records": len(confirmed)})
        rows = [orjson.dumps(dict(row)) + b"\n" for row in open_rows]
        open_key = self.key(f"open-{stamp}.jsonl")
        self._put(open_key, b"".join(rows), "application/x-ndjson")
        manifest.open = {"key": open_key, "entries": len(rows)}
        manifest.items = old.items + new_items
        manifest.rejections_open = rejections_open
        manifest.generation = old.generation + 1
        manifest.updated_at, manifest.updated_by = _iso(now), run_id
        etag = self._commit_manifest(manifest, state.etag)
        self._delete([old.open["key"] if old.open else None])
        return LedgerState(manifest, etag)

    def _commit_manifest(self, manifest: Manifest, etag: str | None) -> str:
        condition = {"IfMatch": etag} if etag else {"IfNoneMatch": "*"}
        try:
            return self._put(
                self.manifest_key,
                json.dumps(manifest.to_dict(), indent=1).encode(),
                "application/json",
                **condition,
            )
        except ClientError as error:
            if is_precondition_failed(error):
                raise LedgerConflictError(
                    f"The ledger s3://{self.bucket}/{self.manifest_key} changed while this run held it: "
                    "another run wrote it. Nothing of this run was recorded; its items are sent again."
                ) from error
            raise

    def needs_compaction(self, manifest: Manifest) -> bool:
        base_records = manifest.base["records"] if manifest.base else 0
        delta_records = sum(d["records"] for d in manifest.deltas)
        return len(manifest.deltas) >= COMPACT_AFTER_DELTAS or delta_records > max(base_records // 10, 50_000)

    def compact(self, state: LedgerState, *, run_id: str, now: int) -> LedgerState:
        """Merge the deltas into a new base in one streaming pass (module docstring)."""
        old = state.manifest
        deltas = self.delta_records(old)
        delta_ids = array("Q", sorted(deltas))
        writer = _MultipartWriter(self, self.key(f"base-{self._stamp()}.bin"))
        index = array("Q")
        written = 0
        taken = 0  # delta ids merged so far

        def emit(values: array[int]) -> None:
            nonlocal written
            count = len(values) // 3
            first = (-written) % BLOCK_RECORDS
            index.extend(values[0::3][first::BLOCK_RECORDS])
            writer.write(_bytes(values))
            written += count

        try:
            for values in self.base_chunks(old):
                ids = values[0::3]
                last = ids[-1]
                end = bisect_right(delta_ids, last, taken)
                if end == taken:
                    emit(values)
                    continue
                emit(_merge(values, ids, delta_ids[taken:end], deltas))
                taken = end
            if taken < len(delta_ids):
                rest = array("Q")
                for h in delta_ids[taken:]:
                    rest.extend((h, *deltas[h]))
                emit(rest)
            base_key = writer.close()
        except BaseException:
            writer.abort()
            raise
        manifest = Manifest(**{**old.to_dict(), "deltas": []})
        manifest.base = {
            "key": base_key,
            "index_key": self.key(f"index-{self._stamp()}.idx"),
            "records": written,
        }
        self._put(manifest.base["index_key"], _bytes(index))
        manifest.items = written
        manifest.generation = old.generation + 1
        manifest.updated_at, manifest.updated_by = _iso(now), f"compaction by {run_id}"
        etag = self._commit_manifest(manifest, state.etag)
        self._delete(
            [old.base["key"] if old.base else None, old.base["index_key"] if old.base else None]
            + [d["key"] for d in old.deltas]
        )
        log.info("Ledger: compacted %d deltas into a base of %d items", len(old.deltas), written)
        return LedgerState(manifest, etag)

    def _write_base(self, data: bytes, index: array[int], records: int) -> dict[str, Any]:
        stamp = self._stamp()
        key, index_key = self.key(f"base-{stamp}.bin"), self.key(f"index-{stamp}.idx")
        self._put(key, data)
        self._put(index_key, _bytes(array("Q", index)))
        return {"key": key, "index_key": index_key, "records": records}

    # ------------------------------------------------------------------ people
    def put_open_rejections(self, rows: Iterable[Iterable[Any]]) -> str:
        """``open_rejections.csv`` (OPEN_REJECTIONS_COLUMNS), the rows as given."""
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(OPEN_REJECTIONS_COLUMNS)
        writer.writerows(rows)
        self._put(self.open_rejections_key, out.getvalue().encode("utf-8"), "text/csv; charset=utf-8")
        return self.open_rejections_key

    def get_open_rejections(self) -> bytes | None:
        found = self._get(self.open_rejections_key)
        return found[0] if found else None

    # ------------------------------------------------------------------ lease
    @property
    def lease_key(self) -> str:
        return self.key("lease.json")

    def acquire_lease(self, run_id: str, now: int, seconds: float) -> None:
        """Hold the ledger for ``run_id`` until released or ``seconds`` from now; the same run may
        take its own lease again (a retry, a resumed task). Raises LedgerBusyError otherwise."""
        body = json.dumps(
            {"run_id": run_id, "acquired_at": _iso(now), "expires_at": now + int(seconds)}
        ).encode()
        try:
            self._put(self.lease_key, body, "application/json", IfNoneMatch="*")
            return
        except ClientError as error:
            if not is_precondition_failed(error) and "ConditionalRequestConflict" not in str(error):
                raise
        found = self._get(self.lease_key)
        if found is None:
            return self.acquire_lease(run_id, now, seconds)
        holder = json.loads(found[0])
        if holder.get("run_id") != run_id and int(holder.get("expires_at") or 0) > now:
            raise LedgerBusyError(
                f"The ledger of catalog {self.catalog_id} is held by run {holder.get('run_id')!r} since "
                f"{holder.get('acquired_at')} (until {_iso(int(holder['expires_at']))}): two runs must not "
                "sync one catalog at once. This run sent nothing; it can run again once that one ends."
            )
        try:
            self._put(self.lease_key, body, "application/json", IfMatch=found[1])
        except ClientError as error:
            if is_precondition_failed(error):
                raise LedgerBusyError(
                    f"The ledger of catalog {self.catalog_id} was just taken by another run"
                ) from error
            raise

    def release_lease(self, run_id: str) -> None:
        found = self._get(self.lease_key)
        if found is not None and json.loads(found[0]).get("run_id") == run_id:
            self._delete([self.lease_key])

    # ------------------------------------------------------------------ unsettled runs
    @property
    def unsettled_key(self) -> str:
        return self.key("unsettled.json")

    def mark_unsettled(self, run_id: str, now: int) -> str | None:
        """Note that ``run_id`` may post items before it records Meta's answer (held by the
        lease's holder); returns the run an earlier note named, if another run left one: that run
        posted and never recorded (killed, or failed mid-post), so Meta may hold content the
        ledger does not know."""
        found = self._get(self.unsettled_key)
        earlier = json.loads(found[0]).get("run_id") if found is not None else None
        body = json.dumps({"run_id": run_id, "since": _iso(now)}).encode()
        self._put(self.unsettled_key, body, "application/json")
        return earlier if earlier != run_id else None

    def settle(self, run_id: str) -> None:
        """``run_id`` recorded Meta's answer: its note goes."""
        found = self._get(self.unsettled_key)
        if found is not None and json.loads(found[0]).get("run_id") == run_id:
            self._delete([self.unsettled_key])


def _merge(
    values: array[int], ids: array[int], delta_ids: array[int], deltas: Mapping[int, tuple[int, int]]
) -> array[int]:
    """One chunk of the base with the delta ids that fall in it applied (kept sorted); a delta's
    first-seen time yields to the base's."""
    result = array("Q")
    start = 0
    for h in delta_ids:
        position = bisect_left(ids, h, start)
        result.extend(values[3 * start : 3 * position])
        content, times = deltas[h]
        if position < len(ids) and ids[position] == h:
            base_first = values[3 * position + 2] & 0xFFFFFFFF
            times = (times & ~0xFFFFFFFF) | base_first if base_first else times
            position += 1
        result.extend((h, content, times))
        start = position
    result.extend(values[3 * start :])
    return result


class _MultipartWriter:
    """Streams an object to S3 in parts of PART_BYTES; a small object goes as one PUT."""

    def __init__(self, store: LedgerStore, key: str) -> None:
        self.store, self.key = store, key
        self.buffer = bytearray()
        self.upload_id: str | None = None
        self.parts: list[dict[str, Any]] = []

    def write(self, data: bytes) -> None:
        self.buffer += data
        if len(self.buffer) >= PART_BYTES:
            self._flush()

    def _flush(self) -> None:
        client = self.store._client()
        if self.upload_id is None:
            self.upload_id = client.create_multipart_upload(Bucket=self.store.bucket, Key=self.key)[
                "UploadId"
            ]
        number = len(self.parts) + 1
        body, self.buffer = bytes(self.buffer), bytearray()
        response = client.upload_part(
            Bucket=self.store.bucket, Key=self.key, UploadId=self.upload_id, PartNumber=number, Body=body
        )
        self.store.bytes_written += len(body)
        self.store.requests += 1
        self.parts.append({"PartNumber": number, "ETag": response["ETag"]})

    def close(self) -> str:
        if self.upload_id is None:
            self.store._put(self.key, bytes(self.buffer))
            return self.key
        if self.buffer:
            self._flush()
        self.store._client().complete_multipart_upload(
            Bucket=self.store.bucket,
            Key=self.key,
            UploadId=self.upload_id,
            MultipartUpload={"Parts": self.parts},
        )
        return self.key

    def abort(self) -> None:
        if self.upload_id is not None:
            self.store._client().abort_multipart_upload(
                Bucket=self.store.bucket, Key=self.key, UploadId=self.upload_id
            )
