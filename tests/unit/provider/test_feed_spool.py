from __future__ import annotations

import json
from pathlib import Path

from facebook_catalog.feed import last_occurrences
from facebook_catalog.feed.change_detection import content_hash, id_hash
from facebook_catalog.operators.s3_feed import FeedSpool


def fields(pid: str, title: str) -> dict[str, str]:
    return {"id": pid, "title": title, "price": "1 IQD"}


def test_last_occurrence_of_each_id_is_kept_in_reading_order() -> None:
    ids = ["a", "b", "a", "c", "b"]
    keep = last_occurrences([id_hash(i) for i in ids], lambda x, y: ids[x] == ids[y])
    assert list(keep) == [0, 0, 1, 1, 1]


def test_a_hash_collision_never_drops_a_product() -> None:
    ids = ["a", "b", "a"]
    colliding_keys = [7, 7, 7]  # every row hashes alike; only the real ids tell them apart
    keep = last_occurrences(colliding_keys, lambda x, y: ids[x] == ids[y])
    assert list(keep) == [0, 1, 1]


def test_spool_round_trip_dedupe_and_rollback(tmp_path: Path) -> None:
    spool = FeedSpool(str(tmp_path))
    spool.add(0, fields("p1", "old"))
    spool.add(0, fields("p2", "قميص"))
    mark = spool.mark()
    spool.add(1, fields("p9", "from a file that turned out unreadable"))
    spool.rollback(mark)
    spool.add(2, fields("p1", "new"))
    assert spool.deduplicate() == 1
    assert spool.duplicates_by_file() == {0: 1}
    items = list(spool)
    assert [i.item_id for i in items] == ["p2", "p1"]
    assert json.loads(items[1].request) == {"method": "UPDATE", "data": fields("p1", "new")}
    assert "قميص".encode() in items[0].request
    assert items[1].id_hash == id_hash("p1")
    assert items[1].content_hash == content_hash(fields("p1", "new"))
    spool.close()
