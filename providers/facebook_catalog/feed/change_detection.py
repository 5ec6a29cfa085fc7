"""Change detection: which items differ from what Meta last confirmed.

The confirmed state is, per catalog, one 64-bit content hash per item id (itself hashed to 64
bits). :class:`ItemHashes` holds it as two sorted arrays of unsigned 64-bit integers: 16 bytes an
item, so 1,000,000 products take 16 MB in memory; lookups bisect the sorted id hashes. It is what
a run holds when it reads the whole item ledger (a full sync), and the format of
``item_hashes.bin``, the single-object state the ledger replaced and migrates from.

64-bit hashes make a collision between two of a million ids a one-in-tens-of-millions event;
the weekly ``full_sync`` sends everything regardless and so bounds the cost of one.
"""

from __future__ import annotations

import hashlib
import struct
from array import array
from bisect import bisect_left
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import orjson

MAGIC = b"FBCATALOG-HASHES-v1\n"  # exactly 20 bytes: the header's 20s
_HEADER = struct.Struct("<20sQ")


class StateFormatError(ValueError):
    """The stored state is not a hash state this code wrote."""


# Copying a hasher made once is cheaper than making one per call (two a row): same digests.
_BLAKE2B_64 = hashlib.blake2b(digest_size=8)


def hash64(data: bytes | memoryview) -> int:
    hasher = _BLAKE2B_64.copy()
    hasher.update(data)
    return int.from_bytes(hasher.digest(), "little")


def id_hash(item_id: str) -> int:
    return hash64(item_id.encode("utf-8"))


def content_hash(fields: Mapping[str, str]) -> int:
    """Hash of the normalized fields as sent; key order does not matter."""
    return hash64(orjson.dumps(fields, option=orjson.OPT_SORT_KEYS))


def _uint64_array(values: Iterable[int] = ()) -> array[int]:
    result = array("Q", values)
    if result.itemsize != 8:  # pragma: no cover - 'Q' is 8 bytes on every supported platform
        raise RuntimeError("this platform's array('Q') is not 64 bits wide")
    return result


@dataclass
class ItemHashes:
    """Confirmed content hash per item id: sorted ``ids`` with ``hashes`` at the same positions."""

    ids: array[int] = field(default_factory=_uint64_array)
    hashes: array[int] = field(default_factory=_uint64_array)

    def __len__(self) -> int:
        return len(self.ids)

    def get(self, item_id_hash: int) -> int | None:
        position = bisect_left(self.ids, item_id_hash)
        if position < len(self.ids) and self.ids[position] == item_id_hash:
            return self.hashes[position]
        return None

    def merged(self, updates: Iterable[tuple[int, int]]) -> ItemHashes:
        """A new state with ``(id hash, content hash)`` pairs applied; a later pair for the same
        id wins. Merges two sorted sequences, so it is linear in the state's size."""
        latest: dict[int, int] = {}
        for item_id_hash, item_hash in updates:
            latest[item_id_hash] = item_hash
        # Ids already known change in place (the hourly common case); only new ids need a merge.
        hashes = _uint64_array(self.hashes)
        new_ids = []
        for item_id_hash in sorted(latest):
            position = bisect_left(self.ids, item_id_hash)
            if position < len(self.ids) and self.ids[position] == item_id_hash:
                hashes[position] = latest[item_id_hash]
            else:
                new_ids.append(item_id_hash)
        if not new_ids:
            return ItemHashes(_uint64_array(self.ids), hashes)
        old_ids, old_hashes = self.ids, hashes
        ids, hashes = _uint64_array(), _uint64_array()
        i = j = 0
        while i < len(old_ids) or j < len(new_ids):
            if j == len(new_ids) or (i < len(old_ids) and old_ids[i] < new_ids[j]):
                ids.append(old_ids[i])
                hashes.append(old_hashes[i])
                i += 1
            else:
                ids.append(new_ids[j])
                hashes.append(latest[new_ids[j]])
                j += 1
        return ItemHashes(ids, hashes)

    def to_bytes(self) -> bytes:
        ids, hashes = self.ids, self.hashes
        if struct.pack("=H", 1) != struct.pack("<H", 1):  # pragma: no cover - big-endian hosts
            ids, hashes = _uint64_array(ids), _uint64_array(hashes)
            ids.byteswap()
            hashes.byteswap()
        return _HEADER.pack(MAGIC, len(ids)) + ids.tobytes() + hashes.tobytes()

    @classmethod
    def from_bytes(cls, data: bytes) -> ItemHashes:
        if len(data) < _HEADER.size:
            raise StateFormatError("the state is shorter than its header")
        magic, count = _HEADER.unpack_from(data)
        if magic != MAGIC:
            raise StateFormatError("the state does not start with this format's marker")
        expected = _HEADER.size + 16 * count
        if len(data) != expected:
            raise StateFormatError(f"the state holds {len(data)} bytes, its header says {expected}")
        ids, hashes = _uint64_array(), _uint64_array()
        ids.frombytes(data[_HEADER.size : _HEADER.size + 8 * count])
        hashes.frombytes(data[_HEADER.size + 8 * count :])
        if struct.pack("=H", 1) != struct.pack("<H", 1):  # pragma: no cover - big-endian hosts
            ids.byteswap()
            hashes.byteswap()
        return cls(ids, hashes)


@dataclass
class SentHashes:
    """The (id hash, content hash) of every item sent in a run, in sending order."""

    ids: array[int] = field(default_factory=_uint64_array)
    hashes: array[int] = field(default_factory=_uint64_array)

    def to_bytes(self) -> bytes:
        return ItemHashes(self.ids, self.hashes).to_bytes()

    @classmethod
    def from_bytes(cls, data: bytes) -> SentHashes:
        parsed = ItemHashes.from_bytes(data)
        return cls(parsed.ids, parsed.hashes)
