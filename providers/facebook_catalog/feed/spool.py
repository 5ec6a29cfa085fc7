"""Read a snapshot of feed objects (in S3) through the feed rules, at any size, while its items
are being sent.

The snapshot is read in two passes over local copies of the objects:

1. **ids**: every object is downloaded (by the caller's ``download``: streamed to a file, never
   into memory) and its rows' ids
   read (CSV and the id rule only). A file-level problem (missing column, not a CSV, corrupt
   gzip, ...) surfaces here, before anything is sent, so a half-read file is never half-synced.
   The id hashes go to 64 partition files on disk; resolving them one partition at a time marks
   the rows whose id occurs more than once in the snapshot (one byte per line in memory).
2. **items**: the feed rules run over every file again, and each good row is encoded once, as
   its items_batch request. A row whose id occurs once is handed on at once, so it is sent while
   the rest is still being read. A row whose id repeats goes to a spool on disk; once every file
   is read, the spool keeps each id's last occurrence (across files in order) and hands those on.

Rejected rows go straight to a CSV file; only samples stay in memory. A row's localized overrides
(``title_en``, ``price_AE``) travel right after its item as items of their own, keyed
``<id>|LANGUAGE|en_XX`` and naming their item in ``base_id_hash``; the caller sends them
through localized_items_batch (sync/localized.py).
"""

from __future__ import annotations

import os
import struct
import sys
from array import array
from bisect import bisect_left
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import IO, Any, NamedTuple

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
from facebook_catalog.feed.batching import encoded_localized, encoded_update
from facebook_catalog.feed.change_detection import id_hash
from facebook_catalog.feed.localization import Override, override_key
from facebook_catalog.feed.reader import read_feed_file_ids

#: Fetches one object of the snapshot, by key, to a local path.
Download = Callable[[str, str], None]

#: How many rejection and warning messages go into logs and the report; the CSV has them all.
MAX_MESSAGE_SAMPLES = 20
# A spooled row: [length of the rest] then [content hash][id hash][id length][base id hash][id]
# [encoded request]; the base id hash is 0 for an item, its item's for an override.
_ROW_LENGTH = struct.Struct("<I")
_ROW_HEADER = struct.Struct("<QQIQ")
#: Resolving repeated ids works one partition (of the id hashes' top 6 bits) at a time.
PARTITION_BITS = 6
_PARTITION_SHIFT = 64 - PARTITION_BITS
_UINT64 = (1 << 64) - 1
# The first pass keys a row by (file number << 40 | line): a file of 2**40 lines is not a feed.
_LINE_BITS = 40


class SpooledItem(NamedTuple):
    """One item to send: its id, its encoded request, and the hashes change detection uses.

    A NamedTuple, not a frozen dataclass: one is made per row, and a frozen dataclass's
    ``__init__`` costs three times as much."""

    item_id: str
    request: bytes
    id_hash: int
    content_hash: int
    #: 0 for an item (items_batch); for a localized override (localized_items_batch, whose
    #: ``item_id`` is its override key ``<id>|LANGUAGE|en_XX``), the id hash of its item.
    base_id_hash: int = 0


def item_to_send(fields: Mapping[str, Any]) -> SpooledItem:
    """An item's fields (a good row's, or an item given to the operator) as the item to send:
    one orjson call for the request and its content hash."""
    item_id = str(fields["id"])
    request, fields_hash = encoded_update(fields)
    return SpooledItem(item_id, request, id_hash(item_id), fields_hash)


def overrides_to_send(item: SpooledItem, overrides: Iterable[Override]) -> Iterator[SpooledItem]:
    """A row's localized overrides as things to send, keyed apart from their item."""
    for override in overrides:
        key = override_key(item.item_id, override.localization)
        request, content = encoded_localized(item.item_id, override.localization.to_dict(), override.fields)
        yield SpooledItem(key, request, id_hash(key), content, item.id_hash)


class _HashPartitions:
    """Entries of unsigned 64-bit values, filed by the top bits of their first value (a hash) in
    one of 64 files on disk, so that equal hashes meet in one partition loaded at a time."""

    def __init__(self, directory: str, name: str, values_per_entry: int) -> None:
        self.entry = struct.Struct("<" + "Q" * values_per_entry)
        self._path = os.path.join(directory, name + ".{:02d}")
        # Each opened on its first entry: a snapshot without repeated ids opens none of the spool's.
        self.files: list[IO[bytes] | None] = [None] * (1 << PARTITION_BITS)

    def add(self, key_hash: int, *values: int) -> None:
        self.file(key_hash >> _PARTITION_SHIFT).write(self.entry.pack(key_hash, *values))

    def file(self, number: int) -> IO[bytes]:
        """Partition ``number``'s file, opened with its first entry."""
        partition = self.files[number]
        if partition is None:
            partition = self.files[number] = open(self._path.format(number), "w+b", buffering=1 << 13)  # noqa: SIM115
        return partition

    def __iter__(self) -> Iterator[array[int]]:
        """Each partition's entries, flat (every entry's values in a row)."""
        for partition in self.files:
            if partition is None:
                continue
            partition.flush()
            partition.seek(0)
            entries = array("Q")
            entries.frombytes(partition.read())
            if sys.byteorder == "big":  # pragma: no cover - written little-endian
                entries.byteswap()
            yield entries

    def close(self) -> None:
        for partition in self.files:
            if partition is not None:
                partition.close()


class RepeatedIds:
    """The first pass: which rows of a snapshot hold an id that occurs more than once in it.

    Ids are hashed with Python's own ``hash`` (stable within the process, which both passes run
    in). Two different ids that share a hash are both taken as repeated: they are then spooled
    and told apart on their real ids, so a collision costs time, never a product.
    """

    def __init__(self, directory: str, files: int) -> None:
        self._partitions = _HashPartitions(directory, "ids", 2)
        self._last_line = [0] * files

    def add_file(self, file_number: int, ids: Iterable[tuple[int, str]]) -> None:
        """Every (line, id) of one file, in order, as the first pass reads them. An error raised
        by ``ids`` (an unreadable file) comes through, with the lines before it kept."""
        partitions = self._partitions
        files, pack, open_file = partitions.files, partitions.entry.pack, partitions.file
        file_key = file_number << _LINE_BITS
        line = 0
        try:
            # Everything local, in one loop: it runs for every row before the first call can go.
            for line, item_id in ids:
                key_hash = hash(item_id) & _UINT64
                number = key_hash >> _PARTITION_SHIFT
                (files[number] or open_file(number)).write(pack(key_hash, file_key | line))
        finally:
            self._last_line[file_number] = line

    def resolve(self) -> list[bytearray]:
        """Per file, a flag per line: 1 where the row starting on that line has a repeated id.

        A file that later proves unreadable still counts here: its ids only make more rows look
        repeated, and a spooled row is still sent once.
        """
        flags = [bytearray(last + 1) for last in self._last_line]
        line_mask = (1 << _LINE_BITS) - 1
        for entries in self._partitions:
            hashes, keys = entries[0::2], entries[1::2]
            repeated = {h for h, count in Counter(hashes).items() if count > 1}
            if repeated:
                for h, key in zip(hashes, keys, strict=True):
                    if h in repeated:
                        flags[key >> _LINE_BITS][key & line_mask] = 1
        self._partitions.close()
        return flags


class FeedSpool:
    """Rows of repeated ids on disk, with their id hashes in partition files beside them.

    Memory is one byte a row (which rows to keep, once de-duplicated), one partition's arrays
    and dict while de-duplicating, and the files' write buffers. It holds at most 65 open files:
    a partition's file is opened with its first row.
    """

    def __init__(self, directory: str) -> None:
        # Buffered both ways: rows are appended one by one, then read back in order.
        self._file: IO[bytes] = open(os.path.join(directory, "items.spool"), "w+b", buffering=1 << 20)  # noqa: SIM115
        # Entries: [id hash][row][the row's offset in the spool][_airbyte_extracted_at + 1, 0: none].
        self._partitions = _HashPartitions(directory, "spool-ids", 4)
        self._rows = 0
        self._spool_bytes = 0
        # (first row, file number) where each file's rows begin: a row's file without a column.
        self._file_starts: list[tuple[int, int]] = []
        #: 1 for each row that is a localized override (not counted as a duplicate item).
        self._overrides = bytearray()
        self.keep: bytearray | None = None

    def __len__(self) -> int:
        return self._rows

    def add(self, file_number: int, item: SpooledItem, extracted_at: int | None = None) -> None:
        encoded_id = item.item_id.encode("utf-8")
        if not self._file_starts or self._file_starts[-1][1] != file_number:
            self._file_starts.append((self._rows, file_number))
        rest = _ROW_HEADER.size + len(encoded_id) + len(item.request)
        self._file.write(
            _ROW_LENGTH.pack(rest)
            + _ROW_HEADER.pack(item.content_hash, item.id_hash, len(encoded_id), item.base_id_hash)
            + encoded_id
            + item.request
        )
        self._overrides.append(1 if item.base_id_hash else 0)
        self._partitions.add(
            item.id_hash, self._rows, self._spool_bytes, 0 if extracted_at is None else extracted_at + 1
        )
        self._rows += 1
        self._spool_bytes += _ROW_LENGTH.size + rest

    def _item_id(self, offset: int) -> str:
        self._file.seek(offset + _ROW_LENGTH.size)
        _, _, id_length, _ = _ROW_HEADER.unpack(self._file.read(_ROW_HEADER.size))
        return self._file.read(id_length).decode("utf-8")

    def deduplicate(self) -> int:
        """Keep each id's last occurrence (its latest extraction, when the rows carry Airbyte's);
        return how many other occurrences were dropped."""
        self._file.flush()
        # The partition being resolved: its rows (ascending), their offsets in the spool, and
        # their extraction times.
        rows, offsets, extractions = array("Q"), array("Q"), array("Q")

        def partitions() -> Iterator[Iterator[tuple[int, int]]]:
            nonlocal rows, offsets, extractions
            for entries in self._partitions:
                rows, offsets, extractions = entries[1::4], entries[2::4], entries[3::4]
                yield zip(rows, entries[0::4], strict=True)

        def extracted_at(row: int) -> int | None:
            stamp = extractions[bisect_left(rows, row)]
            return stamp - 1 if stamp else None

        def same_item(a: int, b: int) -> bool:
            return self._item_id(offsets[bisect_left(rows, a)]) == self._item_id(
                offsets[bisect_left(rows, b)]
            )

        self.keep = last_occurrences(self._rows, partitions(), same_item, extracted_at)
        return self._dropped_items(0, self._rows)

    def _dropped_items(self, first: int, end: int) -> int:
        """Items (not overrides) among rows ``first`` to ``end`` that de-duplication dropped."""
        assert self.keep is not None
        if not any(self._overrides[first:end]):
            return (end - first) - sum(self.keep[first:end])
        return sum(
            1
            for keep, override in zip(self.keep[first:end], self._overrides[first:end], strict=True)
            if not keep and not override
        )

    def duplicates_by_file(self) -> dict[int, int]:
        counts: dict[int, int] = {}
        if self.keep is None or not self._file_starts:
            return counts
        ends = [first for first, _ in self._file_starts[1:]] + [len(self)]
        for (first, number), end in zip(self._file_starts, ends, strict=True):
            dropped = self._dropped_items(first, end)
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
            fields_hash, item_hash, id_length, base_hash = _ROW_HEADER.unpack_from(data)
            end = start + id_length
            yield SpooledItem(data[start:end].decode("utf-8"), data[end:], item_hash, fields_hash, base_hash)

    def close(self) -> None:
        self._partitions.close()
        self._file.close()


class S3FeedRead:
    """A snapshot of feed objects being read: :meth:`scan` downloads it and runs the first pass;
    :meth:`items` runs the second and hands on the items to send.

    ``files``, the counts and the rejection figures are complete once :meth:`items` is exhausted;
    before that, ``file_errors`` already names every file that cannot be read as a feed.
    """

    def __init__(self, bucket: str, keys: Sequence[str], options: FeedOptions, directory: str) -> None:
        self.bucket = bucket
        self.keys = list(keys)
        self.options = options
        self.directory = directory
        self.rejected_rows_path = os.path.join(directory, "rejected_rows.csv")
        self.rejected_rows = 0
        self.rejection_samples: list[str] = []
        #: (item id, reason) of rejected rows whose id could be read, the first reason of each,
        #: unless a later good row of the same id outdates it (the item is then sent as usual).
        self.rejected_items: dict[str, str] = {}
        self.warning_samples: list[str] = []
        self.duplicates = 0
        self.files: list[dict[str, Any]] = []
        self.spool = FeedSpool(directory)
        self._paths = [os.path.join(directory, f"object.{number:05d}") for number in range(len(self.keys))]
        self._scan_errors: list[str | None] = []
        self._repeated: list[bytearray] = []

    def _source(self, number: int) -> str:
        return f"s3://{self.bucket}/{self.keys[number]}"

    def scan(self, download: Download) -> None:
        """Download every object and read its ids: the first pass."""
        repeated = RepeatedIds(self.directory, len(self.keys))
        for number, (key, path) in enumerate(zip(self.keys, self._paths, strict=True)):
            download(key, path)
            error: str | None = None
            try:
                repeated.add_file(number, read_feed_file_ids(path, source=self._source(number)))
            except FeedFileError as problem:
                error = problem.reason
            self._scan_errors.append(error)
        self._repeated = repeated.resolve()

    @property
    def file_errors(self) -> list[dict[str, Any]]:
        """The files that cannot be read as a feed, with why: known after the first pass."""
        return [
            {"key": self.keys[number], "error": error}
            for number, error in enumerate(self._scan_errors)
            if error is not None
        ]

    def items(self) -> Iterator[SpooledItem]:
        """The second pass: every item to send, once. Items whose id occurs once come as their
        file is read; those of repeated ids (each id's last occurrence) once every file is read."""
        with open(self.rejected_rows_path, "w", encoding="utf-8", newline="") as rejected_out:
            rejected = RejectedRowsWriter(rejected_out)
            for number, path in enumerate(self._paths):
                yield from self._read_items(number, path, rejected)
            self.rejected_rows = rejected.count
        self.duplicates = self.spool.deduplicate()
        for number, count in self.spool.duplicates_by_file().items():
            self.files[number]["duplicates"] = count
        yield from self.spool

    def _read_items(self, number: int, path: str, rejected: RejectedRowsWriter) -> Iterator[SpooledItem]:
        source = self._source(number)
        error = self._scan_errors[number]
        repeated = self._repeated[number]
        tally = FeedTally(source)
        try:
            for event in read_feed_file(path, source=source, options=self.options):
                tally.add(event)
                if isinstance(event, FeedItem):
                    if error is not None:
                        continue
                    item = item_to_send(event.fields)
                    if self.rejected_items:  # a later good row of an id outdates its bad row
                        self.rejected_items.pop(item.item_id, None)
                    if repeated[event.line]:
                        self.spool.add(number, item, event.extracted_at)
                        for override in overrides_to_send(item, event.overrides):
                            self.spool.add(number, override, event.extracted_at)
                    else:
                        yield item
                        if event.overrides:
                            yield from overrides_to_send(item, event.overrides)
                elif isinstance(event, Rejection):
                    # Recorded for an unreadable file too: the row is bad anyway.
                    rejected.write(event)
                    if event.item_id and error is None:
                        self.rejected_items.setdefault(event.item_id, event.message())
                    if len(self.rejection_samples) < MAX_MESSAGE_SAMPLES:
                        self.rejection_samples.append(event.message())
                elif len(self.warning_samples) < MAX_MESSAGE_SAMPLES:
                    self.warning_samples.append(event.message())
        except FeedFileError:
            # The same local copy and the same reader as the first pass: only a file the first
            # pass found unreadable stops here, at the same row.
            if error is None:
                raise
        finally:
            os.unlink(path)
        summary = tally.summary(error=error)
        self.files.append(
            {
                "key": self.keys[number],
                "rows_read": summary.rows_read,
                "items": summary.items if error is None else 0,
                "rejected_rows": summary.rejected_rows,
                "warnings": summary.warnings,
                "duplicates": 0,
                "error": error,
            }
        )

    def id_hashes(self, max_rows: int) -> list[int] | None:
        """The id hash of every row of the readable files (their ids read again from the local
        copies), or None when the snapshot has more than ``max_rows`` rows. Call between
        :meth:`scan` and :meth:`items`."""
        if sum(len(flags) for flags in self._repeated) > max_rows:
            return None
        hashes: list[int] = []
        for number, path in enumerate(self._paths):
            if self._scan_errors[number] is None:
                hashes.extend(id_hash(i) for _, i in read_feed_file_ids(path, source=self._source(number)))
        return hashes

    @property
    def items_to_send(self) -> int:
        """Good items after de-duplication (complete once :meth:`items` is exhausted)."""
        return sum(f["items"] for f in self.files) - self.duplicates

    def counts(self) -> dict[str, int]:
        quarantined = sum(1 for f in self.files if f["error"])
        return {
            "files_read": len(self.files) - quarantined,
            "files_quarantined": quarantined,
            "rows_read": sum(f["rows_read"] for f in self.files),
            "rows_rejected": sum(f["rejected_rows"] for f in self.files),
            "duplicates_dropped": self.duplicates,
        }

    def close(self) -> None:
        self.spool.close()
