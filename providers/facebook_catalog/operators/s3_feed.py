"""Read a snapshot of CSV feed objects from S3 through the feed rules, at any size.

Memory stays flat however many products the snapshot holds:

- each object is streamed to a temporary file, never into memory;
- each good row is encoded once, as its items_batch request (whose bytes also give its content
  hash), and appended to a spool file on disk; its id hash goes to one of 64 partition files;
- duplicates are resolved one partition at a time on the hashes (the last occurrence of an id
  wins, across files in order), confirmed on the real ids; what stays is one byte a row;
- rejected rows go straight to a CSV file; only samples stay in memory.

A file-level problem (missing column, not a CSV, corrupt gzip, ...) can surface mid-file: the
file's rows are then taken back out of the spool, so a half-read file is never half-synced.
"""

from __future__ import annotations

import os
import struct
import sys
from array import array
from bisect import bisect_left
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any

from facebook_catalog.feed import (
    FeedFileError,
    FeedItem,
    FeedOptions,
    FeedTally,
    RejectedRowsWriter,
    Rejection,
    last_occurrences,
    read_feed_file,
)
from facebook_catalog.feed.change_detection import encoded_update, id_hash

if TYPE_CHECKING:
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

#: How many rejection and warning messages go into logs and the report; the CSV has them all.
MAX_MESSAGE_SAMPLES = 20
# A spooled row: [length of the rest] then [content hash][id hash][id length][id][encoded request].
_ROW_LENGTH = struct.Struct("<I")
_ROW_HEADER = struct.Struct("<QQI")
# An entry of a hash partition: [row][id hash][the row's offset in the spool], 64 bits each so
# that a partition file loads as one array.
_PARTITION_ENTRY = struct.Struct("<QQQ")
#: De-duplication works one partition (of the id hashes' top 6 bits) at a time.
PARTITION_BITS = 6
_PARTITION_SHIFT = 64 - PARTITION_BITS


@dataclass(frozen=True)
class SpooledItem:
    """One item to send: its id, its encoded request, and the hashes change detection uses."""

    item_id: str
    request: bytes
    id_hash: int
    content_hash: int


@dataclass(frozen=True)
class _SpoolMark:
    rows: int
    spool_bytes: int
    partition_bytes: tuple[int, ...]
    file_starts: int


class FeedSpool:
    """Good rows of a snapshot on disk, with their id hashes in partition files beside them.

    Memory is one byte a row (which rows to keep, once de-duplicated), one partition's arrays
    and dict while de-duplicating, and the files' write buffers; it holds 65 open files.
    """

    def __init__(self, directory: str) -> None:
        # Buffered both ways: rows are appended one by one, then read back in order.
        self._file: IO[bytes] = open(os.path.join(directory, "items.spool"), "w+b", buffering=1 << 20)  # noqa: SIM115
        self._partitions: list[IO[bytes]] = [
            open(os.path.join(directory, f"id-hashes.{number:02d}"), "w+b", buffering=1 << 13)  # noqa: SIM115
            for number in range(1 << PARTITION_BITS)
        ]
        self._rows = 0
        self._spool_bytes = 0
        # (first row, file number) where each file's rows begin: a row's file without a column.
        self._file_starts: list[tuple[int, int]] = []
        self.keep: bytearray | None = None

    def __len__(self) -> int:
        return self._rows

    def add(self, file_number: int, fields: Mapping[str, str]) -> None:
        item_id = fields["id"]
        encoded_id = item_id.encode("utf-8")
        request, fields_hash = encoded_update(fields)
        if not self._file_starts or self._file_starts[-1][1] != file_number:
            self._file_starts.append((self._rows, file_number))
        item_hash = id_hash(item_id)
        rest = _ROW_HEADER.size + len(encoded_id) + len(request)
        self._file.write(
            _ROW_LENGTH.pack(rest)
            + _ROW_HEADER.pack(fields_hash, item_hash, len(encoded_id))
            + encoded_id
            + request
        )
        self._partitions[item_hash >> _PARTITION_SHIFT].write(
            _PARTITION_ENTRY.pack(self._rows, item_hash, self._spool_bytes)
        )
        self._rows += 1
        self._spool_bytes += _ROW_LENGTH.size + rest

    def mark(self) -> _SpoolMark:
        return _SpoolMark(
            self._rows,
            self._spool_bytes,
            tuple(partition.tell() for partition in self._partitions),
            len(self._file_starts),
        )

    def rollback(self, mark: _SpoolMark) -> None:
        """Take back every row added since ``mark`` (a file that turned out unreadable)."""
        for partition, size in zip(self._partitions, mark.partition_bytes, strict=True):
            partition.seek(size)
            partition.truncate()
        self._file.seek(mark.spool_bytes)
        self._file.truncate()
        self._rows, self._spool_bytes = mark.rows, mark.spool_bytes
        del self._file_starts[mark.file_starts :]

    def _item_id(self, offset: int) -> str:
        self._file.seek(offset + _ROW_LENGTH.size)
        *_, id_length = _ROW_HEADER.unpack(self._file.read(_ROW_HEADER.size))
        return self._file.read(id_length).decode("utf-8")

    def deduplicate(self) -> int:
        """Keep each id's last occurrence; return how many earlier occurrences were dropped."""
        self._file.flush()
        # The partition being resolved: its rows (ascending) and their offsets in the spool.
        rows, offsets = array("Q"), array("Q")

        def partitions() -> Iterator[Iterator[tuple[int, int]]]:
            nonlocal rows, offsets
            for partition in self._partitions:
                partition.flush()
                partition.seek(0)
                entries = array("Q")
                entries.frombytes(partition.read())
                if sys.byteorder == "big":  # pragma: no cover - written little-endian
                    entries.byteswap()
                rows, offsets = entries[0::3], entries[2::3]
                yield zip(rows, entries[1::3], strict=True)

        def same_item(a: int, b: int) -> bool:
            return self._item_id(offsets[bisect_left(rows, a)]) == self._item_id(
                offsets[bisect_left(rows, b)]
            )

        self.keep = last_occurrences(self._rows, partitions(), same_item)
        return self.keep.count(0)

    def duplicates_by_file(self) -> dict[int, int]:
        counts: dict[int, int] = {}
        if self.keep is None:
            return counts
        ends = [first for first, _ in self._file_starts[1:]] + [len(self)]
        for (first, number), end in zip(self._file_starts, ends, strict=True):
            dropped = (end - first) - sum(self.keep[first:end])
            if dropped:
                counts[number] = counts.get(number, 0) + dropped
        return counts

    def __iter__(self) -> Iterator[SpooledItem]:
        """The kept items in reading order (so in order of each id's last occurrence)."""
        self._file.flush()
        self._file.seek(0)
        read, keep = self._file.read, self.keep
        start = _ROW_HEADER.size
        for row in range(self._rows):
            (rest,) = _ROW_LENGTH.unpack(read(_ROW_LENGTH.size))
            data = read(rest)
            if keep is not None and not keep[row]:
                continue
            fields_hash, item_hash, id_length = _ROW_HEADER.unpack_from(data)
            end = start + id_length
            yield SpooledItem(data[start:end].decode("utf-8"), data[end:], item_hash, fields_hash)

    def close(self) -> None:
        for partition in self._partitions:
            partition.close()
        self._file.close()


@dataclass
class S3FeedRead:
    """What reading a snapshot of feed objects produced."""

    spool: FeedSpool
    files: list[dict[str, Any]]
    rejected_rows_path: str
    rejected_rows: int = 0
    rejection_samples: list[str] = field(default_factory=list)
    warning_samples: list[str] = field(default_factory=list)
    duplicates: int = 0

    @property
    def file_errors(self) -> list[dict[str, Any]]:
        return [f for f in self.files if f["error"]]

    def counts(self) -> dict[str, int]:
        return {
            "files_read": len(self.files) - len(self.file_errors),
            "files_quarantined": len(self.file_errors),
            "rows_read": sum(f["rows_read"] for f in self.files),
            "rows_rejected": sum(f["rejected_rows"] for f in self.files),
            "duplicates_dropped": self.duplicates,
        }


def read_s3_feed(
    s3_hook: S3Hook, bucket: str, keys: Sequence[str], options: FeedOptions, directory: str
) -> S3FeedRead:
    """Read every object in order into a spool under ``directory`` (a temporary directory the
    caller owns and removes)."""
    spool = FeedSpool(directory)
    rejected_rows_path = os.path.join(directory, "rejected_rows.csv")
    rejection_samples: list[str] = []
    warning_samples: list[str] = []
    files: list[dict[str, Any]] = []
    client = s3_hook.get_conn()
    with open(rejected_rows_path, "w", encoding="utf-8", newline="") as rejected_out:
        rejected = RejectedRowsWriter(rejected_out)
        for number, key in enumerate(keys):
            source = f"s3://{bucket}/{key}"
            path = os.path.join(directory, "object")
            with open(path, "wb") as handle:
                # One streamed GET in 1 MiB reads: boto3's transfer manager would hold up to
                # ten 8 MiB parts in memory at once for a large object.
                body = client.get_object(Bucket=bucket, Key=key)["Body"]
                for chunk in body.iter_chunks(chunk_size=1 << 20):
                    handle.write(chunk)
            tally = FeedTally(source)
            mark = spool.mark()
            error: str | None = None
            try:
                for event in read_feed_file(path, source=source, options=options):
                    tally.add(event)
                    if isinstance(event, FeedItem):
                        spool.add(number, event.fields)
                    elif isinstance(event, Rejection):
                        # Recorded even if the file later proves unreadable: the row is bad anyway.
                        rejected.write(event)
                        if len(rejection_samples) < MAX_MESSAGE_SAMPLES:
                            rejection_samples.append(event.message())
                    elif len(warning_samples) < MAX_MESSAGE_SAMPLES:
                        warning_samples.append(event.message())
            except FeedFileError as problem:
                error = problem.reason
                spool.rollback(mark)
            finally:
                os.unlink(path)
            summary = tally.summary(error=error)
            files.append(
                {
                    "key": key,
                    "rows_read": summary.rows_read,
                    "items": summary.items if error is None else 0,
                    "rejected_rows": summary.rejected_rows,
                    "warnings": summary.warnings,
                    "duplicates": 0,
                    "error": error,
                }
            )
    duplicates = spool.deduplicate()
    for number, count in spool.duplicates_by_file().items():
        files[number]["duplicates"] = count
    return S3FeedRead(
        spool=spool,
        files=files,
        rejected_rows_path=rejected_rows_path,
        rejected_rows=rejected.count,
        rejection_samples=rejection_samples,
        warning_samples=warning_samples,
        duplicates=duplicates,
    )
