from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from facebook_catalog.feed import FeedFileError, last_occurrences
from facebook_catalog.feed.batching import encoded_update
from facebook_catalog.feed.change_detection import content_hash, id_hash
from facebook_catalog.feed.spool import FeedSpool, RepeatedIds, item_to_send


def fields(pid: str, title: str) -> dict[str, str]:
    return {"id": pid, "title": title, "price": "1 IQD"}


def test_last_occurrence_of_each_id_is_kept_in_reading_order() -> None:
    ids = ["a", "b", "a", "c", "b"]
    keep = last_occurrences(len(ids), [enumerate(id_hash(i) for i in ids)], lambda x, y: ids[x] == ids[y])
    assert list(keep) == [0, 0, 1, 1, 1]


def test_a_hash_collision_never_drops_a_product() -> None:
    ids = ["a", "b", "a"]
    colliding_keys = [7, 7, 7]  # every row hashes alike; only the real ids tell them apart
    keep = last_occurrences(len(ids), [enumerate(colliding_keys)], lambda x, y: ids[x] == ids[y])
    assert list(keep) == [0, 1, 1]


def test_spool_round_trip_and_dedupe(tmp_path: Path) -> None:
    spool = FeedSpool(str(tmp_path))
    spool.add(0, item_to_send(fields("p1", "old")))
    spool.add(0, item_to_send(fields("p2", "قميص")))
    spool.add(2, item_to_send(fields("p1", "new")))
    assert spool.deduplicate() == 1
    assert spool.duplicates_by_file() == {0: 1}
    items = list(spool)
    assert [i.item_id for i in items] == ["p2", "p1"]
    assert json.loads(items[1].request) == {"method": "UPDATE", "data": fields("p1", "new")}
    assert "قميص".encode() in items[0].request
    assert items[1].id_hash == id_hash("p1")
    assert items[1].content_hash == content_hash(fields("p1", "new"))
    spool.close()


def test_an_encoded_update_is_the_items_request_and_hashes_as_its_fields() -> None:
    tricky = {
        "id": "p1",
        "title": 'قميص "method":"UPDATE"}',
        "description": "line one\nline two, with \\ and \u2028",
        "price": "1500 IQD",
    }
    request, fields_hash = encoded_update(tricky)
    assert json.loads(request) == {"method": "UPDATE", "data": tricky}
    assert "قميص".encode() in request  # UTF-8, not \u escapes
    assert fields_hash == content_hash(tricky)
    assert fields_hash == content_hash(dict(reversed(tricky.items())))


def test_spool_keeps_the_last_occurrence_across_every_hash_partition(tmp_path: Path) -> None:
    spool = FeedSpool(str(tmp_path))
    for round_number in range(3):  # every id three times; only the third survives
        for number in range(2_000):
            spool.add(round_number, item_to_send(fields(f"p{number}", f"round {round_number}")))
    assert spool.deduplicate() == 4_000
    assert spool.duplicates_by_file() == {0: 2_000, 1: 2_000}
    items = list(spool)
    assert [i.item_id for i in items] == [f"p{n}" for n in range(2_000)]
    assert all(json.loads(i.request)["data"]["title"] == "round 2" for i in items)
    spool.close()


def test_repeated_ids_flag_every_occurrence_across_files_and_only_those(tmp_path: Path) -> None:
    repeated = RepeatedIds(str(tmp_path), files=2)
    first, second = 0, 1
    ids = [(line, f"p{line - 2}") for line in range(2, 3_002)]  # ids p0..p2999 on lines 2..3001
    ids.append((3_005, "p7"))  # again in the same file, on a row spanning lines
    repeated.add_file(first, ids)
    repeated.add_file(second, [(2, "p2999"), (3, "q1")])  # p2999 again in the next file
    flags = repeated.resolve()
    assert [line for line, flag in enumerate(flags[first]) if flag] == [9, 3_001, 3_005]
    assert [line for line, flag in enumerate(flags[second]) if flag] == [2]


def test_a_file_that_fails_midway_keeps_the_ids_read_before_the_error(tmp_path: Path) -> None:
    """An unreadable file's error comes through add_file; its rows so far still count."""
    repeated = RepeatedIds(str(tmp_path), files=2)
    first, second = 0, 1

    def ids_then_error() -> Iterator[tuple[int, str]]:
        yield 2, "p1"
        yield 3, "p2"
        raise FeedFileError("s3://landing/a.csv", "the gzip stream ends early")

    with pytest.raises(FeedFileError, match="ends early"):
        repeated.add_file(first, ids_then_error())
    repeated.add_file(second, [(2, "p2")])
    flags = repeated.resolve()
    assert [line for line, flag in enumerate(flags[first]) if flag] == [3]
    assert [line for line, flag in enumerate(flags[second]) if flag] == [2]


def test_an_empty_file_resolves_to_no_flags(tmp_path: Path) -> None:
    repeated = RepeatedIds(str(tmp_path), files=1)
    assert repeated.resolve()[0] == bytearray(1)


def test_a_partition_file_exists_only_once_a_row_needs_it(tmp_path: Path) -> None:
    """Most snapshots repeat few ids: the spool then opens one file, not 65."""
    spool = FeedSpool(str(tmp_path))
    assert sorted(path.name for path in tmp_path.iterdir()) == ["items.spool"]
    spool.add(0, item_to_send(fields("p1", "a")))
    spool.add(0, item_to_send(fields("p1", "b")))
    partition = id_hash("p1") >> 58
    assert sorted(path.name for path in tmp_path.iterdir()) == ["items.spool", f"spool-ids.{partition:02d}"]
    assert spool.deduplicate() == 1
    assert [json.loads(i.request)["data"]["title"] for i in spool] == ["b"]
    spool.close()


def test_the_hashes_kept_in_a_catalogs_state_do_not_change() -> None:
    """States written by earlier releases hold these values: a new hash function would make every
    item look changed (one full send) and must come with a new state format."""
    assert id_hash("SKU-00000001") == 3_379_829_771_812_452_014
    assert (
        content_hash({"id": "SKU-00000001", "title": "قميص", "price": "25000 IQD"})
        == 2_751_751_187_275_176_966
    )
    _request, fields_hash = encoded_update({"price": "25000 IQD", "title": "قميص", "id": "SKU-00000001"})
    assert fields_hash == 2_751_751_187_275_176_966


def test_overrides_of_a_repeated_id_are_spooled_and_counted_apart_from_duplicate_items(
    tmp_path: Path,
) -> None:
    from facebook_catalog.feed.localization import Localization, Override
    from facebook_catalog.feed.spool import overrides_to_send

    spool = FeedSpool(str(tmp_path))
    english = Localization("LANGUAGE", "en_XX")
    first = item_to_send(fields("p1", "قديم"))
    spool.add(0, first)
    for override in overrides_to_send(first, [Override(english, {"title": "Old"})]):
        spool.add(0, override)
    later = item_to_send(fields("p1", "جديد"))
    spool.add(1, later)
    for override in overrides_to_send(later, [Override(english, {"title": "New"})]):
        spool.add(1, override)
    assert spool.deduplicate() == 1  # one item replaced; the override it carried is no item
    assert spool.duplicates_by_file() == {0: 1}
    kept = list(spool)
    assert [(i.item_id, i.base_id_hash) for i in kept] == [("p1", 0), ("p1|LANGUAGE|en_XX", id_hash("p1"))]
    assert json.loads(kept[1].request)["data"] == {"id": "p1", "title": "New"}
    spool.close()


def test_a_bad_row_outdated_by_a_later_good_row_of_its_id_is_no_open_rejection(tmp_path: Path) -> None:
    """Soak defect (seed 1, hour 2): a product's bad row in one file and its corrected row in a
    later file of the same snapshot: the corrected row was sent, yet the bad row's rejection
    went into the item ledger's open set and stayed in open_rejections.csv."""
    import shutil

    from facebook_catalog.feed import FeedOptions
    from facebook_catalog.feed.spool import S3FeedRead

    header = "id,title,description,link,image_link,availability,price,brand\n"

    def row(pid: str, price: str) -> str:
        links = f"https://s.example.com/{pid},https://c.example.com/{pid}.jpg"
        return f"{pid},T {pid},D {pid},{links},in stock,{price},B\n"

    (tmp_path / "a.csv").write_text(header + row("fixed", "$10") + row("broken", "100"))
    (tmp_path / "b.csv").write_text(header + row("fixed", "100") + row("broken", "$10"))
    work = tmp_path / "work"
    work.mkdir()
    feed = S3FeedRead("bucket", ["a.csv", "b.csv"], FeedOptions(), str(work))
    feed.scan(lambda key, path: shutil.copyfile(tmp_path / key, path))
    sent = {item.item_id: json.loads(item.request)["data"]["price"] for item in feed.items()}
    feed.close()

    assert sent == {"fixed": "100 IQD", "broken": "100 IQD"}
    # Both bad rows are reported; only the one that is its id's latest row stays open.
    assert feed.counts()["rows_rejected"] == 2
    assert list(feed.rejected_items) == ["broken"]
    assert "'$10'" in feed.rejected_items["broken"]
