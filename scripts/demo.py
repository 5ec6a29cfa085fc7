"""`make demo`: the hourly sync DAG end to end on this machine, no AWS or Meta account needed.

Starts S3 (a moto server on loopback) and the Graph API emulator, drops a realistic landing file
of 5,000 products (IQD prices, Arabic and English titles, a few dozen broken rows and
duplicates), runs `facebook_catalog_sync` through real Airflow (`dag.test()`, metadata DB in
.demo/), and prints what reached the catalog, what was rejected and why, and what was archived.
A second run with no new file shows that nothing is sent.
"""

from __future__ import annotations

import collections
import contextlib
import csv
import gzip
import io
import json
import os
import random
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
DEMO_DIR = REPO / ".demo"
AIRFLOW_HOME = DEMO_DIR / "airflow"
LANDING_BUCKET = "demo-landing"
SYNCED_BUCKET = "demo-synced-products"
CATALOG_ID = "100200300"
TOKEN = "demo-token"
PROCESSING_SECONDS = 12.0

os.environ["AIRFLOW_HOME"] = str(AIRFLOW_HOME)
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(REPO / "dags")
os.environ["AIRFLOW__LOGGING__LOGGING_LEVEL"] = "WARNING"
os.environ.setdefault("AWS_ACCESS_KEY_ID", "demo")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "demo")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
os.environ["FACEBOOK_CATALOG_SYNC_RETRIES"] = "0"

EN_PRODUCTS = ["Cotton Shirt", "Slim Jeans", "Running Shoes", "Winter Coat", "Leather Wallet", "Wool Scarf"]
AR_PRODUCTS = ["قميص قطني", "بنطال جينز", "حذاء رياضي", "معطف شتوي", "محفظة جلدية", "وشاح صوف"]
#: The product Meta refuses in the demo: it stays open in the item ledger, the run succeeds.
REFUSED_PRODUCT = "MW-00042"
#: The product Meta accepts, then rejects in its review after the batch finished (image fetch).
REVIEW_REJECTED_PRODUCT = "MW-00077"
#: Seconds after its batch finished until Meta's review of an item ends, in the demo.
REVIEW_SECONDS = 6.0
BRANDS = ["Miswag", "Babylon", "Tigris", "Zagros"]
BROKEN_ROWS = [
    # (what is wrong, the row's fields after id)
    ("price with a symbol", {"price": "$25"}),
    ("negative price", {"price": "-1500"}),
    ("relative link", {"link": "/products/1"}),
    ("image_link not a URL", {"image_link": "Cozy Sweater"}),
    ("unknown availability", {"availability": "maybe"}),
    ("title missing", {"title": ""}),
    ("javascript: link", {"link": "javascript:alert(1)"}),
    ("title over 200 characters", {"title": "x" * 250}),
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def product(i: int, rng: random.Random) -> dict[str, str]:
    arabic = rng.random() < 0.4
    name = (AR_PRODUCTS if arabic else EN_PRODUCTS)[i % 6]
    return {
        "id": f"MW-{i:05d}",
        "title": f"{name} {i}",
        "description": (
            "منتج عالي الجودة، توصيل سريع" if arabic else "Quality product, fast delivery, easy returns"
        ),
        "link": f"https://shop.example.iq/p/{i}",
        "image_link": f"https://cdn.example.iq/p/{i}.jpg",
        "availability": rng.choice(["in stock", "in_stock", "out of stock", "In Stock"]),
        "price": rng.choice([f"{rng.randrange(5, 400) * 250}", f"{rng.randrange(5, 400) * 250} IQD"]),
        "brand": rng.choice(BRANDS),
    }


def landing_file(count: int = 5000) -> tuple[bytes, int, int]:
    """A gzip CSV as Airbyte would land it, with broken rows and duplicates mixed in."""
    rng = random.Random(7)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(product(0, rng)), lineterminator="\r\n")
    writer.writeheader()
    broken = duplicates = 0
    for i in range(count):
        row = product(i, rng)
        if i % 150 == 17:
            row.update(BROKEN_ROWS[broken % len(BROKEN_ROWS)][1])
            broken += 1
        writer.writerow(row)
        if i % 200 == 3:  # the same product again, later in the hour, with a new price
            again = dict(row, price=f"{rng.randrange(5, 400) * 250} IQD")
            writer.writerow(again)
            duplicates += 1
    return gzip.compress(out.getvalue().encode("utf-8")), broken, duplicates


@contextlib.contextmanager
def output_to(path: Path) -> Iterator[None]:
    """Send Airflow's verbose task logs to a file, at the file-descriptor level."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(path, "w") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def say(text: str = "") -> None:
    print(text, flush=True)


def main() -> int:
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's per-request access log

    DEMO_DIR.mkdir(exist_ok=True)
    AIRFLOW_HOME.mkdir(exist_ok=True)
    say("Setting up: metadata DB (airflow db migrate) ...")
    subprocess.run(
        [str(Path(sys.executable).parent / "airflow"), "db", "migrate"],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    moto_port = free_port()
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=moto_port, verbose=False)
    moto.start()
    endpoint = f"http://127.0.0.1:{moto_port}"
    os.environ["AIRFLOW_CONN_AWS_DEFAULT"] = json.dumps(
        {"conn_type": "aws", "extra": {"endpoint_url": endpoint, "region_name": "us-east-1"}}
    )

    from facebook_catalog.emulator import EmulatorConfig, EmulatorServer

    emulator = EmulatorServer(
        EmulatorConfig(
            access_tokens=(TOKEN,), processing_seconds=PROCESSING_SECONDS, review_seconds=REVIEW_SECONDS
        )
    )
    emulator.start()
    try:
        return run_demo(endpoint, emulator)
    finally:
        emulator.stop()
        moto.stop()


def run_demo(endpoint: str, emulator: Any) -> int:
    os.environ["AIRFLOW_CONN_FACEBOOK_CATALOG_DEFAULT"] = json.dumps(
        {
            "conn_type": "facebook_catalog",
            "host": emulator.url,
            "password": TOKEN,
            "extra": {"catalog_id": CATALOG_ID},
        }
    )
    for name, value in {
        "landing_bucket": LANDING_BUCKET,
        "synced_bucket": SYNCED_BUCKET,
        "poll_interval": "3",
        # A new rejection fails the run (after archiving) beyond this share: one product is not.
        "max_error_ratio": "0.01",
        "review_wait_seconds": "60",
    }.items():
        os.environ[f"AIRFLOW_VAR_FACEBOOK_CATALOG_{name.upper()}"] = value

    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    from facebook_catalog.storage.lifecycle import apply_lifecycle_rules

    s3 = S3Hook(aws_conn_id="aws_default")
    client = s3.get_conn()
    for bucket in (LANDING_BUCKET, SYNCED_BUCKET):
        client.create_bucket(Bucket=bucket)
    apply_lifecycle_rules(s3, LANDING_BUCKET, SYNCED_BUCKET)
    body, broken, duplicates = landing_file()
    landing_key = "landing/2026/11/26/products-10-00.csv.gz"
    client.put_object(Bucket=LANDING_BUCKET, Key=landing_key, Body=body)
    say(
        f"S3 (moto) at {endpoint}; Graph API emulator at {emulator.url} "
        f"(processing takes {PROCESSING_SECONDS:.0f} s)"
    )
    say(
        f"Landing file s3://{LANDING_BUCKET}/{landing_key}: 5,000 products plus {duplicates} re-sent "
        f"duplicates, {broken} deliberately broken rows"
    )
    # Meta refuses one product (as it does one whose images or policy it will not list).
    emulator.set_faults(
        reject_item_ids=[REFUSED_PRODUCT],
        review_reject_item_ids=[REVIEW_REJECTED_PRODUCT],
        review_reject_after_seconds=REVIEW_SECONDS,
    )
    say(f"Meta (the emulator) will refuse product {REFUSED_PRODUCT}, on every call")
    say(
        f"and accept {REVIEW_REJECTED_PRODUCT}, then reject it in its review {REVIEW_SECONDS:.0f} s after "
        "the batch finished (its image cannot be downloaded)"
    )
    say()

    from facebook_catalog.compat import dag_bag

    dag = dag_bag(dag_folder=str(REPO / "dags" / "facebook_catalog_sync.py")).get_dag("facebook_catalog_sync")
    say("Run 1: airflow dags test facebook_catalog_sync ...")
    started = time.monotonic()
    with output_to(DEMO_DIR / "run-1.log"):
        run = dag.test()
    elapsed = time.monotonic() - started
    states = {ti.task_id: str(getattr(ti.state, "value", ti.state)) for ti in run.get_task_instances()}
    say(f"  run state: {getattr(run.state, 'value', run.state)} in {elapsed:.0f} s; tasks: {states}")
    say(f"  (Airflow's task logs: {DEMO_DIR / 'run-1.log'})")

    reports = [k for k in s3.list_keys(SYNCED_BUCKET, prefix="runs/") or [] if k.endswith("report.json")]
    if not reports:
        say("No report was written; see the log above.")
        return 1
    report = json.loads(s3.read_key(reports[0], SYNCED_BUCKET))
    (DEMO_DIR / "report.json").write_text(json.dumps(report, indent=2, ensure_ascii=False), encoding="utf-8")
    counts = report["counts"]
    say()
    say("What happened")
    say(f"  rows read            {counts['rows_read']:>6,}")
    say(f"  rejected by the feed {counts['rows_rejected']:>6,}")
    say(f"  duplicates dropped   {counts['duplicates_dropped']:>6,}  (the last occurrence of an id wins)")
    say(f"  items sent to Meta   {counts['items_sent']:>6,}  in {counts['calls']} items_batch call(s)")
    say(f"  rejected by Meta     {counts['items_rejected_by_meta']:>6,}")
    say(f"  rejected in review   {counts['items_rejected_in_review']:>6,}  (after the batch finished)")
    rejected_key = report["records"].get("rejected_rows")
    if rejected_key:
        rows = list(csv.DictReader(io.StringIO(s3.read_key(rejected_key, SYNCED_BUCKET))))
        reasons = collections.Counter(f"{r['field']}: {r['reason']}" for r in rows)
        say("  rejected rows by reason:")
        for reason, number in reasons.most_common():
            say(f"    {number:>3} x {reason[:110]}")
        say(f"  first one: line {rows[0]['line']}, field {rows[0]['field']}, value {rows[0]['value']!r}")
    say("  batches:")
    for handle, status in report["statuses"].items():
        say(f"    handle {handle}: {status}")
    timings = report["timings"]
    say(
        f"  Meta took {timings['seconds_meta_processing'] or 0:.0f} s to process; the task was deferred "
        "meanwhile (under a real scheduler and triggerer that frees the worker slot)"
    )
    review = report.get("review") or {}
    say(
        f"  Meta's review: {review.get('checked', 0):,} items read back, "
        f"{review.get('rejected', 0)} rejected; "
        + (
            "the task deferred while Meta reviewed (no worker slot held)"
            if review.get("waited_in_trigger")
            else "reviewed at the first look"
        )
    )
    catalog = emulator.items(CATALOG_ID)
    say(f"  items now in the catalog (emulator): {len(catalog):,}")
    sample = next(
        iter(v for v in catalog.values() if any("\u0600" <= ch <= "\u06ff" for ch in v["title"])), None
    )
    if sample:
        say(f"  e.g. {json.dumps(sample, ensure_ascii=False)}")
    say(
        f"  open rejections in the item ledger: {counts['rejections_open']} "
        f"(new this run: {counts['rejections_new']})"
    )
    open_key = f"ledger/{CATALOG_ID}/open_rejections.csv"
    for entry in csv.DictReader(io.StringIO(s3.read_key(open_key, SYNCED_BUCKET))):
        if entry["outcome"] == "rejected_by_meta":
            say(
                f"    {entry['id']}: {entry['reason']} (attempts {entry['attempts']}, "
                f"next retry {entry['next_retry']})"
            )
    say(
        f"  (all {counts['rejections_open']}: s3://{SYNCED_BUCKET}/{open_key}, or "
        f"fb-catalog rejections --synced-bucket {SYNCED_BUCKET} --catalog {CATALOG_ID})"
    )
    archived = s3.list_keys(LANDING_BUCKET, prefix="archive/") or []
    left = s3.list_keys(LANDING_BUCKET, prefix="landing/") or []
    say(f"  archived: {archived}; still in landing: {left}")
    say(f"  report: s3://{SYNCED_BUCKET}/{reports[0]} (copied to {DEMO_DIR / 'report.json'})")
    say(f"  payloads as sent: {len(report['records']['payloads'])} object(s) under runs/.../payloads/")

    calls_before = len(emulator.calls())
    say()
    say("Run 2: no new files in landing ...")
    with output_to(DEMO_DIR / "run-2.log"):
        second = dag.test()
    states = {ti.task_id: str(getattr(ti.state, "value", ti.state)) for ti in second.get_task_instances()}
    new_calls = len(emulator.calls()) - calls_before
    say(f"  run state: {getattr(second.state, 'value', second.state)}; tasks: {states}")
    say(f"  nothing to sync: {new_calls} Graph API calls made")
    say(
        f"  {REFUSED_PRODUCT} and {REVIEW_REJECTED_PRODUCT} are not due again yet (first retry after 1 h), "
        "so they were not re-sent"
    )
    ok = (
        str(getattr(run.state, "value", run.state)) == "success"
        and len(catalog) == counts["items_sent"] - counts["items_rejected_by_meta"]
        and REFUSED_PRODUCT not in catalog
        and counts["rejections_new"] == 2
        and counts["items_rejected_in_review"] == 1
        and not left
        and new_calls == 0
    )
    say()
    say("Demo finished." if ok else "Demo finished with unexpected results; see the logs in .demo/.")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
