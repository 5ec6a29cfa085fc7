"""Reconcile read-back: items read per second, Graph API calls used and peak memory while the daily
reconcile reads back a catalog of 1,000,000 items from the emulator and compares it with the
item ledger.

Issue 14 asks that memory stay flat while reading back 1,000,000 items. The parent process holds
the emulator (its catalog filled directly, as Meta would hold it) and a moto S3 server (a
subprocess) with the catalog's item ledger in the store's format (every item confirmed with the
content hash of its fields as sent). A few items drift first: some are deleted by hand
(missing), some edited (stale), some added by another tool (unknown). The reconcile itself runs
in a fresh child process, exactly as the DAG's task does (``reconcile_catalog``: the hook's paged
read of the products edge, the spill of the read-back by id hash, the merge with the ledger
streamed from S3, the report and CSV, the repair's invalidation); its memory is the peak (VmHWM)
above Airflow's, the hook's and a warm S3 client's imports.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from array import array
from pathlib import Path
from typing import Any

from benchmarks._common import (
    Headline,
    Report,
    argument_parser,
    aws_environment,
    catalog_connection,
    clean_environment,
    emit_child_result,
    emulator_config,
    fmt,
    managed_processes,
    markdown_table,
    met,
    peak_rss_mb,
    product_row,
    quiet_emulator_logs,
    record,
    run_child,
    s3_client,
    start_moto,
    timed_emulator,
)

MODULE = "benchmarks.reconcile_readback"
BUCKET = "bench-synced-products"
CATALOG = "77000001"
SIZES = (1_000_000,)
QUICK_SIZES = (5_000,)
#: Drift made before the read-back, of each kind.
DRIFT_EACH = 10
RSS_BUDGET_MIB = 100.0
FEED_NAMES = ("id", "title", "description", "link", "image_link", "availability", "price", "brand")


def item_fields(i: int) -> dict[str, str]:
    return {**dict(zip(FEED_NAMES, product_row(i), strict=True)), "condition": "new"}


# ------------------------------------------------------------------ child
def child_reconcile(page_size: int) -> dict[str, Any]:
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    from facebook_catalog.operators.reconcile import reconcile_catalog

    S3Hook(aws_conn_id="aws_default").get_conn().head_bucket(Bucket=BUCKET)  # warm client
    base_rss = peak_rss_mb()
    started, cpu_started = time.perf_counter(), time.process_time()
    report = reconcile_catalog(
        conn_id="facebook_catalog_default",
        catalog_id=CATALOG,
        aws_conn_id="aws_default",
        synced_bucket=BUCKET,
        run_id=f"bench-{time.time_ns()}",
        repair=True,
        page_size=page_size,
    )
    seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "cpu_seconds": time.process_time() - cpu_started,
        "counts": report.counts,
        "graph_api_calls": report.graph_api_calls,
        "invalidated": report.invalidated,
        "rss_above_imports": peak_rss_mb() - base_rss,
    }


# ------------------------------------------------------------------ parent
class _ClientHook:
    """What the ledger store asks of an S3Hook (its client), for the parent, which runs no Airflow."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def get_conn(self) -> Any:
        return self.client


def build(size: int, endpoint: str) -> tuple[Any, Any, float]:
    """The emulator holding ``size`` items, the ledger confirming them, then the drift."""
    from facebook_catalog.feed.batching import encoded_update
    from facebook_catalog.feed.change_detection import id_hash
    from facebook_catalog.storage.ledger_store import LedgerStore

    started = time.perf_counter()
    server, timing = timed_emulator(emulator_config())
    pairs = []
    for i in range(size):
        fields = item_fields(i)
        server.state.put_item(CATALOG, fields["id"], fields)
        pairs.append((id_hash(fields["id"]), encoded_update(fields)[1]))
    pairs.sort()
    store = LedgerStore(_ClientHook(s3_client(endpoint)), BUCKET, CATALOG)  # type: ignore[arg-type]
    store.migrate(array("Q", (p[0] for p in pairs)), array("Q", (p[1] for p in pairs)), int(time.time()))
    del pairs
    for n in range(DRIFT_EACH):
        server.delete_item(CATALOG, item_fields(n)["id"])
        server.edit_item(CATALOG, item_fields(DRIFT_EACH + n)["id"], price="1 IQD")
        server.put_item(CATALOG, f"OTHER-{n}", **{**item_fields(n), "id": f"OTHER-{n}"})
    return server, timing, time.perf_counter() - started


def measure(sizes: list[int], page_size: int) -> dict[int, dict[str, Any]]:
    results: dict[int, dict[str, Any]] = {}
    quiet_emulator_logs()
    with (
        tempfile.TemporaryDirectory(prefix="bench-reconcile-") as tmp,
        managed_processes(Path(tmp)) as processes,
    ):
        endpoint = start_moto(processes)
        s3_client(endpoint).create_bucket(Bucket=BUCKET)
        aws = aws_environment(endpoint)
        for size in sizes:
            server, timing, build_seconds = build(size, endpoint)
            server.start()
            try:
                env = {
                    **clean_environment(),
                    **aws,
                    **catalog_connection(server.url, CATALOG),
                    "AIRFLOW_HOME": str(Path(tmp) / "airflow"),
                }
                timing.reset()
                result = run_child(MODULE, ["--child", "--page-size", str(page_size)], env, timeout=7200)
                result["build_seconds"] = build_seconds
                result["emulator_seconds"] = timing.total("products")
                result["emulator_calls"] = sum(c for p, c in timing.calls.items() if p.endswith("products"))
                results[size] = result
                print(f"[reconcile] {size:,}: {result}", flush=True)
            finally:
                server.stop()
            s3 = s3_client(endpoint)
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
                for obj in page.get("Contents", []):
                    s3.delete_object(Bucket=BUCKET, Key=obj["Key"])
    return results


def build_report(results: dict[int, dict[str, Any]], page_size: int) -> Report:
    rows = []
    for size, r in results.items():
        c = r["counts"]
        rows.append(
            [
                f"{size:,}",
                f"{c['items_read']:,}",
                fmt(c["items_read"] / r["seconds"], 0),
                r["graph_api_calls"],
                fmt(r["seconds"], 1),
                fmt(r["cpu_seconds"], 1),
                fmt(r["emulator_seconds"], 1),
                f"{c['missing']} / {c['stale']} / {c['unknown']}",
                fmt(r["rss_above_imports"]),
            ]
        )
    table = markdown_table(
        [
            "catalog items",
            "items read",
            "items read / s",
            "Graph API calls",
            "wall s",
            "task CPU s",
            "emulator s",
            "missing / stale / unknown",
            "MiB above imports",
        ],
        rows,
    )
    largest = max(results)
    big = results[largest]
    found = big["counts"]
    exact = (found["missing"], found["stale"], found["unknown"]) == (DRIFT_EACH, DRIFT_EACH, DRIFT_EACH)
    return Report(
        name="reconcile_readback",
        title="Reconcile read-back",
        tables=[table],
        notes=[
            f"The reconcile task's whole work (reconcile_catalog) in a fresh process: the products edge "
            f"read {page_size} items a page with every field the ledger hashes, spilled to 64 files by "
            "id hash, merged with the ledger streamed from moto S3 (a subprocess), report, CSV and the "
            "repair's invalidation. The emulator (in the parent) answers each page; its own seconds are "
            "shown. Memory is the peak (VmHWM) above Airflow's imports and a warm S3 client.",
            f"Before the read-back, {DRIFT_EACH} items were deleted by hand, {DRIFT_EACH} had their "
            f"price edited and {DRIFT_EACH} were added by another tool; the reconcile must find exactly "
            "those.",
        ],
        headlines=[
            Headline(
                f"items read per second at {largest:,} items",
                fmt(found["items_read"] / big["seconds"], 0),
                "none (a daily job; Meta's pages are the limit)",
            ),
            Headline(
                f"Graph API calls for {largest:,} items",
                str(big["graph_api_calls"]),
                f"about items / {page_size} (one call a page)",
                met(big["graph_api_calls"] <= largest // page_size + 2),
            ),
            Headline(
                "peak MiB above imports",
                " · ".join(f"{r['rss_above_imports']:.0f} at {s:,}" for s, r in results.items()),
                f"flat: within {RSS_BUDGET_MIB:.0f} MiB at 1,000,000 items",
                met(big["rss_above_imports"] <= RSS_BUDGET_MIB)
                if largest >= 1_000_000
                else f"{met(big['rss_above_imports'] <= RSS_BUDGET_MIB)} (at {largest:,})",
            ),
            Headline(
                "drift found (missing / stale / unknown)",
                f"{found['missing']} / {found['stale']} / {found['unknown']}",
                f"exactly {DRIFT_EACH} of each",
                met(exact),
            ),
        ],
    )


def main(argv: list[str] | None = None) -> int:
    parser = argument_parser(__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, action="append", help="catalog sizes (default: 1,000,000)")
    parser.add_argument("--page-size", type=int, default=1000, help="items per products page")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        emit_child_result(child_reconcile(args.page_size))
        return 0
    sizes = args.size or list(QUICK_SIZES if args.quick else SIZES)
    results = measure(sorted(sizes), args.page_size)
    record(build_report(results, args.page_size), args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
