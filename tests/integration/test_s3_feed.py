"""``read_s3_feed`` against a real moto S3 server: the two passes, and items handed on while the
snapshot is still being read."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterable
from pathlib import Path

import pytest

from facebook_catalog.feed import FeedOptions
from facebook_catalog.feed.spool import S3FeedRead, SpooledItem
from facebook_catalog.sync.reading import read_s3_feed
from tests.fixtures.s3 import CSV_HEADER, S3Buckets, put

pytestmark = pytest.mark.integration


def row(product_id: str, price: str = "10.00 USD") -> str:
    link = f"https://shop.example/{product_id}"
    return f"{product_id},Mug,A mug,{link},{link}.jpg,in stock,{price},Acme\n"


def read(buckets: S3Buckets, keys: list[str], workdir: Path) -> S3FeedRead:
    return read_s3_feed(buckets.hook, buckets.landing, keys, FeedOptions(), str(workdir))


def prices(items: Iterable[SpooledItem]) -> dict[str, list[str]]:
    sent: dict[str, list[str]] = {}
    for item in items:
        sent.setdefault(item.item_id, []).append(json.loads(item.request)["data"]["price"])
    return sent


def test_unique_ids_come_before_the_file_is_read_and_repeated_ids_once_at_the_end(
    s3_buckets: S3Buckets, tmp_path: Path
) -> None:
    first = CSV_HEADER + "".join(row(f"p{n}") for n in range(3_000)) + row("p7", "11.00 USD")
    second = CSV_HEADER + row("p2999", "12.00 USD") + row("q1") + row("bad", "$5")
    put(s3_buckets, "landing/a.csv", first.encode())
    put(s3_buckets, "landing/b.csv", second.encode())
    feed = read(s3_buckets, ["landing/a.csv", "landing/b.csv"], tmp_path)

    items = feed.items()
    first_item = next(items)
    assert first_item.item_id == "p0"
    assert feed.files == []  # handed on while the first file is still being read
    rest = list(items)
    ids = [item.item_id for item in rest]
    # p7 and p2999 occur twice: each comes once, after every other item, as its last occurrence.
    assert ids[-2:] == ["p7", "p2999"]
    assert len(ids) == len(set(ids)) == 3_000
    sent = prices([first_item, *rest])
    assert sent["p7"] == ["11.00 USD"]
    assert sent["p2999"] == ["12.00 USD"]
    assert feed.duplicates == 2
    assert [(f["key"], f["items"], f["rejected_rows"], f["duplicates"]) for f in feed.files] == [
        ("landing/a.csv", 3_001, 0, 2),
        ("landing/b.csv", 2, 1, 0),
    ]
    assert feed.items_to_send == 3_001
    feed.close()


def test_a_file_unreadable_after_good_rows_is_known_before_any_item_and_sends_nothing(
    s3_buckets: S3Buckets, tmp_path: Path
) -> None:
    good = CSV_HEADER + row("p1") + row("p2")
    # A gzip stream cut short: its first rows decompress before the reader finds the damage.
    whole = gzip.compress((CSV_HEADER + "".join(row(f"g{n}") for n in range(20_000))).encode())
    put(s3_buckets, "landing/good.csv", good.encode())
    put(s3_buckets, "landing/cut.csv.gz", whole[: len(whole) // 2])
    feed = read(s3_buckets, ["landing/good.csv", "landing/cut.csv.gz"], tmp_path)

    assert [(f["key"], "truncated" in f["error"]) for f in feed.file_errors] == [("landing/cut.csv.gz", True)]
    assert sorted(prices(feed.items())) == ["p1", "p2"]
    cut = feed.files[1]
    assert cut["items"] == 0
    assert cut["rows_read"] > 0
    assert "truncated" in cut["error"]
    assert feed.counts()["files_quarantined"] == 1
    feed.close()
