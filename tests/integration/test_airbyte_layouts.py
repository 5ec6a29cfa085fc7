"""Files landed in S3 as Airbyte's S3 destination writes each layout, synced by the sync DAG to the
emulator's catalog: every layout's products arrive, priced as Meta takes them, and its bad
records are recorded with their file and record number."""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from facebook_catalog.feed import FeedOptions
from facebook_catalog.sync.reading import read_s3_feed
from tests.fixtures import airbyte
from tests.fixtures.airflow import DagRunResult
from tests.fixtures.s3 import S3Buckets
from tests.fixtures.s3 import put as put_object
from tests.integration.test_sync_dag import (  # noqa: F401 - fixtures
    CATALOG,
    DAG_ID,
    emulator_config,
    keys,
    put,
    read,
    report_of,
    sync_env,
)

pytestmark = pytest.mark.integration


def test_every_airbyte_layout_lands_in_the_catalog(
    sync_env: dict[str, Any],  # noqa: F811
    run_dag: Callable[..., DagRunResult],
) -> None:
    s3, emulator = sync_env["buckets"], sync_env["emulator"]
    landed: dict[str, str] = {}
    for number, layout in enumerate(airbyte.LAYOUTS):
        extension = layout.rsplit("-", 1)[0]
        pid = f"{layout}-"
        items = airbyte.records(
            airbyte.product(pid + "a", price=Decimal("25000.00")),  # NUMERIC(12,2)
            airbyte.product(pid + "b", price=18000.0, title="حقيبة ظهر"),  # float8
            airbyte.product(pid + "bad", price=-1),
            extracted_at=airbyte.EXTRACTED_AT_MS + number,
        )
        key = airbyte.landing_key("landing/", extension, epoch_ms=airbyte.EXTRACTED_AT_MS + number)
        put(s3, key, airbyte.layout_bytes(layout, items))
        landed[layout] = key
        time.sleep(0.02)

    result = run_dag(DAG_ID)

    assert result.state == "success", result.output[-4000:]
    catalog = emulator.items(CATALOG)
    for layout in airbyte.LAYOUTS:
        assert catalog[f"{layout}-a"]["price"] in ("25000.00 IQD", "25000 IQD"), layout
        assert catalog[f"{layout}-b"]["price"] in ("18000.0 IQD", "18000 IQD"), layout
        assert catalog[f"{layout}-b"]["title"] == "حقيبة ظهر"
        assert f"{layout}-bad" not in catalog
    assert len(catalog) == 2 * len(airbyte.LAYOUTS)
    assert keys(s3, s3.landing, "landing/") == []
    assert len(keys(s3, s3.landing, "archive/")) == len(airbyte.LAYOUTS)

    report = report_of(s3)
    assert report["counts"]["files_quarantined"] == 0
    assert report["counts"]["rows_read"] == 3 * len(airbyte.LAYOUTS)
    rejected = list(
        csv.DictReader(io.StringIO(read(s3, s3.synced, report["records"]["rejected_rows"]).decode()))
    )
    assert len(rejected) == len(airbyte.LAYOUTS)
    for layout, key in landed.items():
        (row,) = [r for r in rejected if r["source"].endswith(key)]
        assert (row["line"], row["field"], row["value"]) == (
            "4" if layout.startswith("csv") else "3",
            "price",
            "'-1",  # the report's leading ' keeps a spreadsheet from reading a formula
        )


def test_the_snapshot_sends_each_ids_latest_extraction_across_parts_and_formats(
    s3_buckets: S3Buckets, tmp_path: Path
) -> None:
    newer = airbyte.EXTRACTED_AT_MS + 60_000
    first = airbyte.landing_key("landing/", "jsonl.gz", part=0)
    second = airbyte.landing_key("landing/", "parquet", part=1)
    # The snapshot reads part 0 first; part 1, read later, holds an older extraction of p1.
    put_object(
        s3_buckets,
        first,
        airbyte.jsonl_bytes(
            airbyte.records(airbyte.product("p1", title="Newest"), extracted_at=newer), flatten=False
        ),
    )
    put_object(
        s3_buckets,
        second,
        airbyte.parquet_bytes(
            airbyte.records(airbyte.product("p1", title="Stale"), airbyte.product("p2", title="Only")),
            flatten=True,
        ),
    )
    feed = read_s3_feed(s3_buckets.hook, s3_buckets.landing, [first, second], FeedOptions(), str(tmp_path))
    sent = {item.item_id: json.loads(item.request)["data"]["title"] for item in feed.items()}
    feed.close()
    assert sent == {"p1": "Newest", "p2": "Only"}
    assert feed.duplicates == 1
    assert [(f["key"], f["items"], f["duplicates"]) for f in feed.files] == [(first, 1, 0), (second, 2, 1)]
