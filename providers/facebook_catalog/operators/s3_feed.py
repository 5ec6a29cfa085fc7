"""Read a snapshot of CSV feed objects from S3 through the feed rules, at any size.

Memory stays flat however many products the snapshot holds:

- each object is streamed to a temporary file, never into memory;
- each good row is encoded once, as its items_batch request, and appended to a spool file on
  disk; memory keeps 28 bytes a row (spool offset, id hash, content hash, file number);
- duplicates are resolved on the hashes (the last occurrence of an id wins, across files in
  order), confirmed on the real ids, with one byte a row;
- rejected rows go straight to a CSV file; only samples stay in memory.

A file-level problem (missing column, not a CSV, corrupt gzip, ...) can surface mid-file: the
file's rows are then taken back out of the spool, so a half-read file is never half-synced.
"""

from __future__ import annotations

import os
import struct
from array import array
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
from facebook_catalog.feed.batching import encode_json, item_request
from facebook_catalog.feed.change_detection import content_hash, id_hash

if TYPE_CHECKING:
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

#: How many rejection and warning messages go into logs and the report; the CSV has them all.
MAX_MESSAGE_SAMPLES = 20
_ID_LENGTH = struct.Struct("<I")


@dataclass(frozen=True)
class SpooledItem:
    """One item to send: its id, its encoded request, and the hashes change detection uses."""

    item_id: str
    request: bytes
    id_hash: int
    content_hash: int


class FeedSpool:
    """Good rows of a snapshot, each spooled as ``[id length][id][encoded request]``."""

    def __init__(self, directory: str) -> None:
        # Buffered both ways: rows are appended one by one, then read back in order.
        self._file: IO[bytes] = open(os.path.join(directory, "items.spool"), "w+b", buffering=1 << 20)  # noqa: SIM115
        self.offsets = array("Q", [0])
        self.id_hashes = array("Q")
        self.content_hashes = array("Q")
        self.file_numbers = array("I")
        self.keep: bytearray | None = None

    def __len__(self) -> int:
        return len(self.id_hashes)

    def add(self, file_number: int, fields: Mapping[str, str]) -> None:
        item_id = str(fields["id"])
        encoded_id = item_id.encode("utf-8")
        self._file.write(_ID_LENGTH.pack(len(encoded_id)) + encoded_id + encode_json(item_request(fields)))
        self.offsets.append(self._file.tell())
        self.id_hashes.append(id_hash(item_id))
        self.content_hashes.append(content_hash(fields))
        self.file_numbers.append(file_number)

    def mark(self) -> int:
        return len(self)

    def rollback(self, mark: int) -> None:
        """Take back every row added since ``mark`` (a file that turned out unreadable)."""
        for column in (self.id_hashes, self.content_hashes, self.file_numbers):
            del column[mark:]
        del self.offsets[mark + 1 :]
        self._file.seek(self.offsets[mark])
        self._file.truncate()

    def _record(self, row: int) -> tuple[str, bytes]:
        self._file.seek(self.offsets[row])
        data = self._file.read(self.offsets[row + 1] - self.offsets[row])
        (id_length,) = _ID_LENGTH.unpack_from(data)
        end = _ID_LENGTH.size + id_length
        return data[_ID_LENGTH.size : end].decode("utf-8"), data[end:]

    def deduplicate(self) -> int:
        """Keep each id's last occurrence; return how many earlier occurrences were dropped."""
        self.keep = last_occurrences(self.id_hashes, lambda a, b: self._record(a)[0] == self._record(b)[0])
        return len(self) - sum(self.keep)

    def duplicates_by_file(self) -> dict[int, int]:
        counts: dict[int, int] = {}
        for row, kept in enumerate(self.keep or b""):
            if not kept:
                counts[self.file_numbers[row]] = counts.get(self.file_numbers[row], 0) + 1
        return counts

    def __iter__(self) -> Iterator[SpooledItem]:
        """The kept items in reading order (so in order of each id's last occurrence)."""
        self._file.flush()
        self._file.seek(0)
        for row in range(len(self)):
            data = self._file.read(self.offsets[row + 1] - self.offsets[row])
            if self.keep is not None and not self.keep[row]:
                continue
            (id_length,) = _ID_LENGTH.unpack_from(data)
            end = _ID_LENGTH.size + id_length
            yield SpooledItem(
                data[_ID_LENGTH.size : end].decode("utf-8"),
                data[end:],
                self.id_hashes[row],
                self.content_hashes[row],
            )

    def close(self) -> None:
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
