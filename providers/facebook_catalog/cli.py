"""The ``fb-catalog`` command: local tools around the provider.

Each subcommand imports its implementation lazily so ``fb-catalog --help`` stays fast and a
subcommand never pays for another's dependencies (the emulator does not import Airflow).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fb-catalog",
        description="Tools for the Meta (Facebook) product catalog Airflow provider.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    emulator = sub.add_parser(
        "emulator",
        help="run the local Graph API emulator (items_batch, check_batch_request_status)",
        description="Run a local emulator of Meta's Catalog Batch API on loopback.",
    )
    from facebook_catalog.emulator.server import add_arguments as add_emulator_arguments

    add_emulator_arguments(emulator)

    validate = sub.add_parser(
        "validate",
        help="check local feed files (CSV, JSON Lines, Parquet, Avro) without sending anything",
        description=(
            "Run the feed rules on local files and print every rejected row. Exit status: 0 when "
            "every row is good, 1 when some rows were rejected, 2 when a file could not be read "
            "as a feed at all."
        ),
    )
    from facebook_catalog.feed.validate import add_arguments as add_validate_arguments

    add_validate_arguments(validate)

    setup_buckets = sub.add_parser(
        "setup-buckets",
        help="check or create the landing and synced-products buckets and set their expiry rules",
        description=(
            "Check (with --create: create) the S3 buckets and put the lifecycle rules that expire "
            "archive/ and runs/ (30 days) and quarantine/ (90 days), keeping the buckets' other "
            "rules. Safe to run again. Exit status: 0 on success, 1 on any error."
        ),
    )
    from facebook_catalog.storage.setup_buckets import add_arguments as add_setup_buckets_arguments

    add_setup_buckets_arguments(setup_buckets)

    rejections = sub.add_parser(
        "rejections",
        help="print a catalog's open rejections from its item ledger (CSV)",
        description=(
            "Print, as CSV, every item of the catalog's item ledger that is open as rejected (by "
            "the feed or by Meta): id, outcome, reason, code, first seen, last seen, attempts and "
            "next retry. Exit status: 0 on success (even with none open), 1 on any error."
        ),
    )
    rejections.add_argument("--synced-bucket", required=True, help="bucket holding ledger/ and runs/")
    rejections.add_argument("--catalog", required=True, help="the catalog id")
    rejections.add_argument(
        "--aws-conn-id", default="aws_default", help="Airflow AWS connection id (default: %(default)s)"
    )
    reconcile = sub.add_parser(
        "reconcile",
        help="compare a catalog as Meta shows it with its item ledger: missing, stale, unknown items",
        description=(
            "Read every item back from Meta (paged, paced under the Catalog Management budget) and "
            "compare it with the catalog's item ledger. Writes reconcile/<date>/report.json and "
            "drifted_items.csv to the synced-products bucket and prints the report. With --repair, the "
            "missing and stale items' ledger entries are invalidated and the ingestion run that re-sends "
            "them is printed as an `airflow dags trigger` command. Unknown items are only reported. "
            "Exit status: 0 on success (drift or not), 1 on any error."
        ),
    )
    reconcile.add_argument("--catalog", required=True, help="the catalog id")
    reconcile.add_argument("--synced-bucket", required=True, help="bucket holding ledger/ and reconcile/")
    reconcile.add_argument(
        "--repair", action="store_true", help="invalidate the drifted items for re-sending"
    )
    reconcile.add_argument(
        "--conn-id",
        default="facebook_catalog_default",
        help="Airflow Graph API connection id (default: %(default)s)",
    )
    reconcile.add_argument(
        "--aws-conn-id", default="aws_default", help="Airflow AWS connection id (default: %(default)s)"
    )
    reconcile.add_argument(
        "--max-repair-items",
        type=int,
        default=None,
        help="beyond this many drifted items the repair asks for a full snapshot (default: 50000)",
    )
    reconcile.add_argument(
        "--metrics-namespace", default="", help="publish DriftedItems to this CloudWatch namespace"
    )
    return parser


def _reconcile(args: argparse.Namespace) -> int:
    import json
    import shlex
    from datetime import datetime, timezone

    from botocore.exceptions import BotoCoreError, ClientError

    from facebook_catalog.hooks.graph_api import GraphApiError
    from facebook_catalog.operators.reconcile import reconcile_catalog
    from facebook_catalog.sync.reconcile_run import DEFAULT_MAX_REPAIR_ITEMS

    try:
        report = reconcile_catalog(
            conn_id=args.conn_id,
            catalog_id=args.catalog,
            aws_conn_id=args.aws_conn_id,
            synced_bucket=args.synced_bucket,
            run_id=f"cli__{datetime.now(timezone.utc):%Y-%m-%dT%H:%M:%S}",
            repair=args.repair,
            max_repair_items=args.max_repair_items or DEFAULT_MAX_REPAIR_ITEMS,
            metrics_namespace=args.metrics_namespace,
        )
    except (ClientError, BotoCoreError, GraphApiError, ValueError, RuntimeError) as error:
        print(f"fb-catalog reconcile: error: {error}", file=sys.stderr)
        return 1
    print(json.dumps(report.to_dict(), indent=2, ensure_ascii=False))
    counts = report.counts
    print(
        f"{counts['missing']} missing, {counts['stale']} stale, {counts['unknown']} unknown of "
        f"{counts['items_read']} items read ({report.graph_api_calls} Graph API calls); "
        f"{report.drift_csv_uri}",
        file=sys.stderr,
    )
    if report.repair_request:
        conf = shlex.quote(json.dumps(report.repair_request))
        print(
            f"{report.invalidated} ledger entries invalidated; re-send them with:\n"
            f"  airflow dags trigger catalog_ingest_products --conf {conf}",
            file=sys.stderr,
        )
    return 0


def _print_rejections(args: argparse.Namespace) -> int:
    import csv

    from airflow.providers.amazon.aws.hooks.s3 import S3Hook
    from botocore.exceptions import BotoCoreError, ClientError

    from facebook_catalog.storage.ledger_store import OPEN_REJECTIONS_COLUMNS, LedgerStore
    from facebook_catalog.sync.changes import open_entries, open_rejection_rows

    store = LedgerStore(S3Hook(aws_conn_id=args.aws_conn_id), args.synced_bucket, args.catalog)
    try:
        state = store.load()
        rows = open_rejection_rows(open_entries(store, state).values())
    except (ClientError, BotoCoreError, ValueError) as error:
        print(f"fb-catalog rejections: error: {error}", file=sys.stderr)
        return 1
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(OPEN_REJECTIONS_COLUMNS)
    writer.writerows(rows)
    print(
        f"{len(rows)} open rejections in s3://{args.synced_bucket}/{store.prefix}"
        + ("" if state.etag else " (no item ledger yet)"),
        file=sys.stderr,
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = _build_parser()
    args = parser.parse_args(argv)
    if args.command == "emulator":
        from facebook_catalog.emulator.server import run_from_args

        return run_from_args(args)
    if args.command == "validate":
        from facebook_catalog.feed.validate import run_from_args as run_validate

        return run_validate(args)
    if args.command == "setup-buckets":
        from facebook_catalog.storage.setup_buckets import run_from_args as run_setup_buckets

        return run_setup_buckets(args)
    if args.command == "rejections":
        return _print_rejections(args)
    if args.command == "reconcile":
        return _reconcile(args)
    parser.error(f"unknown command {args.command!r}")
    return 2  # pragma: no cover - parser.error exits


if __name__ == "__main__":
    sys.exit(main())
