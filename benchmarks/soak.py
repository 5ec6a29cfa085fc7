"""A fault soak: many simulated hours of the hourly sync under random faults, checked every hour.

The rule it proves is DESIGN.md's: nothing is lost. A shop's product table of ``--products``
products lives (new products, price and stock changes, corrections of bad rows, hostile rows,
the same id in two files of one hour) and lands every hour in S3 as the ingestion DAG writes it
(gzip CSV under ``landing/ingest/``) and in Airbyte's layouts (JSONL and Parquet under
``landing/public/products/``). Every hour draws several faults at once: 80014 / 80009 throttling
with their headers, 5xx bursts, dropped connections, slow answers, a batch handle ending
``error``, a handle that never finishes, products Meta rejects (permanently, or once), the sync
task killed with SIGKILL mid-post (a real process), a crash between the archive copy and the
landing delete, a file arriving mid-run, a hostile file.

Most hours drive the sync core directly: the snapshot and archive steps of
:mod:`facebook_catalog.sync.landing` and the sync task's operator itself (``deferrable=False``,
so it polls in-process by the trigger's rules), with the item ledger's clock
(``facebook_catalog.sync.ledger.utc_now``) moved an hour each hour. Every ``--dag-every``-th
hour, and every hour with a process kill, runs the real ``facebook_catalog_sync`` DAG through
``dag.test()`` in a child Python process (which the kill hours SIGKILL once Meta has its first
batch).

Checked after every hour (each check counted): no landing file archived before each of its rows
was accounted for (confirmed in the item ledger, or open there with its reason); no item the
ledger calls confirmed missing from the emulator's catalog or different there; no payload posted
twice unless its earlier batch failed (the emulator's call log); the ledger's lease free after a
run that ended; no token or app secret in any S3 object or task log. At the end, a few
fault-free hours (the shop corrects every bad row, open rejections are retried on request):
the emulator's catalog must equal the source minus the open rejections, each with its reason,
and landing must be drained.

``python -m benchmarks.soak --hours 200 --seed 1`` (``make soak``) records its table in
RESULTS.md; tests/soak/test_soak.py runs 24 hours inside ``make test``.
"""

from __future__ import annotations

import contextlib
import csv
import functools
import gzip
import io
import json
import logging
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
SYNC_DAG_FILE = REPO_ROOT / "dags" / "facebook_catalog_sync.py"
DAG_ID = "facebook_catalog_sync"

TOKEN = "EAAsoak-token-7c1e9d42"
APP_SECRET = "soak-app-secret-3f8a51"
CATALOG = "7700"
LANDING_BUCKET = "soak-landing"
SYNCED_BUCKET = "soak-synced"
#: The item ledger's clock at hour 0; every hour moves it one hour on.
LEDGER_START = 1_900_000_000
HOUR = 3600
#: The simulated wall date of hour 0 (landing keys, Airbyte's extraction times, DAG run dates).
START_DATE = datetime.fromtimestamp(LEDGER_START, timezone.utc).replace(minute=0, second=0)
#: The sync settings every hour uses (Airflow Variables for the DAG hours, the same for the core).
SYNC_VARIABLES = {
    "landing_bucket": LANDING_BUCKET,
    "synced_bucket": SYNCED_BUCKET,
    "poll_interval": "1",
    # A handle that never finishes ends the run at this deadline (12 s).
    "timeout_minutes": "0.2",
    "retry_backoff_seconds": "0.05",
    "max_throttle_wait_seconds": "0.5",
    # The check of Meta's review after the batches finished waits at most this long.
    "review_wait_seconds": "5",
}
PROCESSING_SECONDS = 0.3
#: Meta's review of an item ends this long after its batch finished (time-scaled).
REVIEW_SECONDS = 0.5
CHILD_RESULT = "SOAK-DAG-RESULT "

log = logging.getLogger("soak")


# ------------------------------------------------------------------ the source
def meta_fields(row: Mapping[str, Any]) -> dict[str, str]:
    """What Meta should show for a good source row (the feed's normalization, stated plainly)."""
    return {
        "id": str(row["id"]),
        "title": str(row["title"]),
        "description": str(row["description"]),
        "link": str(row["link"]),
        "image_link": str(row["image_link"]),
        "availability": str(row["availability"]),
        "price": f"{row['price']} IQD",
        "brand": str(row["brand"]),
        "condition": "new",
    }


HOSTILE_CHANGES: tuple[tuple[str, Any], ...] = (
    ("price", "$10"),
    ("link", "not a url"),
    ("availability", "maybe later"),
    ("image_link", "ftp://cdn.example.com/x.jpg"),
    ("title", ""),
)
TITLES = ("Blue Jeans", "قميص قطني", "Chaussures de sport", "Wasserkocher 1,7 l", 'Mug "Daily"', "Lamp, desk")


@dataclass
class LandingFile:
    key: str
    layout: str  # ingest (gzip CSV) | an Airbyte layout (tests/fixtures/airbyte.py) | hostile
    rows: list[dict[str, Any]]
    #: ids of the rows that are good (the feed sends them), by position
    good: list[bool]


class Source:
    """The shop's product table and what Meta should end up showing for it."""

    def __init__(self, rng: random.Random, products: int) -> None:
        self.rng = rng
        self.next_number = 0
        self.rows: dict[str, dict[str, Any]] = {}
        #: the last good row of each id that was landed (what Meta should show)
        self.good: dict[str, dict[str, Any]] = {}
        #: ids whose latest landed row is bad
        self.bad: set[str] = set()
        self.initial = products

    def _new_id(self) -> str:
        self.next_number += 1
        return f"sku-{self.next_number:06d}"

    def _new_row(self, pid: str) -> dict[str, Any]:
        title = f"{self.rng.choice(TITLES)} {pid[-4:]}"
        return {
            "id": pid,
            "title": title,
            "description": f"Description of {title}, version 1",
            "link": f"https://shop.example.com/p/{pid}",
            "image_link": f"https://cdn.example.com/{pid}.jpg",
            "availability": "in stock",
            "price": self.rng.randrange(1000, 500_000, 250),
            "brand": self.rng.choice(("Acme", "Miswag", "Nordwind")),
        }

    def changed_rows(self, hour: int, changes: int) -> list[dict[str, Any]]:
        """The rows the ingestion picks up this hour (every product in hour 0)."""
        if hour == 0:
            for _ in range(self.initial):
                pid = self._new_id()
                self.rows[pid] = self._new_row(pid)
            return [dict(r) for r in self.rows.values()]
        rng, out = self.rng, {}
        ids = list(self.rows)
        for pid in rng.sample(sorted(self.bad), min(len(self.bad), max(1, len(self.bad) // 2))):
            out[pid] = dict(self.rows[pid])  # the shop corrects a bad row
        for _ in range(changes):
            kind = rng.random()
            if kind < 0.08:
                pid = self._new_id()
                self.rows[pid] = self._new_row(pid)
            else:
                pid = rng.choice(ids)
                row = self.rows[pid]
                if kind < 0.5:
                    row["price"] = rng.randrange(1000, 500_000, 250)
                elif kind < 0.85:
                    row["availability"] = "out of stock" if row["availability"] == "in stock" else "in stock"
                else:
                    version = (
                        int(row["description"].rsplit(" ", 1)[1]) + 1
                        if row["description"][-1].isdigit()
                        else 1
                    )
                    row["description"] = f"Description of {row['title']}, version {version}"
            out[pid] = dict(self.rows[pid])
        for pid in rng.sample(sorted(out), min(len(out), rng.randrange(0, 6))):
            name, value = rng.choice(HOSTILE_CHANGES)
            out[pid] = {**out[pid], name: value}  # a hostile row: the feed must reject it
        return list(out.values())

    def corrections(self, refused: set[str]) -> list[dict[str, Any]]:
        """Every bad row corrected (the shop fixes them all), and a new description of each
        product Meta refuses for good (so each is sent, and refused, once more), for the final hours."""
        for pid in refused:
            row = self.rows[pid]
            row["description"] = f"Description of {row['title']}, final"
        return [dict(self.rows[pid]) for pid in sorted(self.bad | refused)]

    @staticmethod
    def is_good(row: Mapping[str, Any]) -> bool:
        return all(row.get(name) != value for name, value in HOSTILE_CHANGES)

    def landed(self, row: Mapping[str, Any]) -> None:
        """A row reached landing (and will be read in landing order)."""
        pid = str(row["id"])
        if self.is_good(row):
            self.good[pid] = dict(row)
            self.bad.discard(pid)
        else:
            self.bad.add(pid)


def _ingest_bytes(rows: list[dict[str, Any]]) -> bytes:
    """A gzip CSV exactly as catalog_ingest_products writes one (header, ``\\n``, mtime 0)."""
    from tests.fixtures.airbyte import PRODUCT_COLUMNS

    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(PRODUCT_COLUMNS)
    writer.writerows([[row[c] for c in PRODUCT_COLUMNS] for row in rows])
    buffer = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buffer, mtime=0) as compressed:
        compressed.write(text.getvalue().encode("utf-8"))
    return buffer.getvalue()


def landing_bytes(file: LandingFile, extracted_at_ms: int) -> bytes:
    if file.layout == "ingest":
        return _ingest_bytes(file.rows)
    if file.layout == "hostile":
        return b"\x1f\x8b not gzip at all \x00\xff" * 10
    from tests.fixtures.airbyte import layout_bytes, records

    rows = file.rows
    if any(not isinstance(r["price"], int) for r in rows):  # one column type (a text column)
        rows = [{**r, "price": str(r["price"])} for r in rows]
    return layout_bytes(file.layout, records(*rows, extracted_at=extracted_at_ms))


AIRBYTE_LAYOUTS = ("jsonl.gz-raw", "parquet-flat", "csv-flat")


# ------------------------------------------------------------------ faults
@dataclass
class HourFaults:
    """What this hour injects; the emulator's part goes to its FaultPlan."""

    throttle: int = 0
    #: throttled status polls (80009), set once the hour's first items_batch call is in
    poll_throttle: int = 0
    server_errors: int = 0
    drops: int = 0
    latency: float = 0.0
    error_handle: bool = False
    stuck_handle: bool = False
    reject_once: list[str] = field(default_factory=list)
    reject_forever: list[str] = field(default_factory=list)
    #: rejected by Meta's review after their batch finished (once), the image or a policy
    review_reject: list[str] = field(default_factory=list)
    review_reason: str = "image"
    #: throttled reads of the review check (80009)
    read_throttle: int = 0
    #: drift by hand at Meta (Commerce Manager): items edited, items deleted, an item another tool wrote
    hand_edits: list[str] = field(default_factory=list)
    hand_deletes: list[str] = field(default_factory=list)
    foreign_item: bool = False
    kill: bool = False
    archive_crash: bool = False
    mid_run_file: bool = False
    hostile_file: bool = False
    same_id_two_files: int = 0

    def kinds(self) -> list[str]:
        named = {
            "throttle": self.throttle,
            "throttled_polls": self.poll_throttle,
            "server_error_burst": self.server_errors,
            "dropped_connection": self.drops,
            "slow_answers": self.latency > 0,
            "handle_error": self.error_handle,
            "handle_never_finishes": self.stuck_handle,
            "rejected_once": len(self.reject_once),
            "rejected_permanently": len(self.reject_forever),
            "rejected_after_ingestion": len(self.review_reject),
            "throttled_reads": self.read_throttle,
            "edited_by_hand": len(self.hand_edits),
            "deleted_by_hand": len(self.hand_deletes),
            "written_by_another_tool": self.foreign_item,
            "sigkill_mid_post": self.kill,
            "crash_between_copy_and_delete": self.archive_crash,
            "file_arriving_mid_run": self.mid_run_file,
            "hostile_file": self.hostile_file,
        }
        return [k for k, v in named.items() if v]


def draw_faults(rng: random.Random, hour: int, source: Source, *, dag_hour: bool, final: bool) -> HourFaults:
    if final:
        return HourFaults()
    faults = HourFaults()
    ids = sorted(source.rows)
    faults.throttle = rng.choice((0, 0, 1, 2, 3))
    faults.server_errors = rng.choice((0, 0, 0, 1, 2, 3))
    faults.drops = rng.choice((0, 0, 0, 1, 2))
    faults.latency = rng.choice((0.0, 0.0, 0.0, 0.15))
    faults.error_handle = rng.random() < 0.06
    faults.stuck_handle = not faults.error_handle and rng.random() < 0.04
    faults.reject_once = rng.sample(ids, min(len(ids), rng.choice((0, 0, 1, 3))))
    faults.reject_forever = rng.sample(ids, 1) if ids and rng.random() < 0.08 else []
    faults.review_reject = rng.sample(ids, min(len(ids), rng.choice((0, 0, 1, 2))))
    faults.review_reason = rng.choice(("image", "policy"))
    faults.read_throttle = rng.choice((0, 0, 0, 1))
    confirmed = sorted(source.good)
    faults.hand_edits = rng.sample(confirmed, min(len(confirmed), rng.choice((0, 0, 0, 1, 2))))
    faults.hand_deletes = rng.sample(confirmed, min(len(confirmed), rng.choice((0, 0, 0, 0, 1))))
    faults.foreign_item = rng.random() < 0.03
    faults.poll_throttle = rng.choice((0, 0, 1, 2))
    # A kill every 20 hours at least (hour 11, 31, ...), more at random: the hour runs the DAG.
    faults.kill = hour > 0 and (hour % 20 == 11 or rng.random() < 0.04)
    faults.archive_crash = not dag_hour and rng.random() < 0.08
    faults.mid_run_file = rng.random() < 0.15
    faults.hostile_file = rng.random() < 0.05
    faults.same_id_two_files = rng.choice((0, 5, 20))
    return faults


class _MidRun(threading.Thread):
    """Acts once the hour's first items_batch call is in: throttles the status polls (80009),
    lands a file mid-run, and tells a kill hour when to kill."""

    def __init__(self, soak: Soak, hour: int, faults: HourFaults) -> None:
        super().__init__(name=f"soak-mid-run-{hour}", daemon=True)
        self.soak, self.hour, self.faults = soak, hour, faults
        self.calls_before = len(soak.emulator.calls())
        self.posted = threading.Event()
        self.stopped = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        state = self.soak.emulator.state
        while not self.stopped.is_set():
            if any(c["endpoint"] == "items_batch" for c in state.calls()[self.calls_before :]):
                break
            self.stopped.wait(0.02)
        else:
            return
        try:
            if self.faults.poll_throttle:
                plan = state.faults()
                plan.throttle_next += self.faults.poll_throttle
                state.set_faults(plan)
            self.posted.set()
            if self.faults.mid_run_file:
                self.soak.mid_run_file(self.hour)
        except BaseException as error:  # reported by stop()
            self.error = error

    def stop(self) -> None:
        self.stopped.set()
        self.join()
        if self.error is not None:
            raise self.error


class SimulatedCrash(BaseException):
    """The sync process dying between the archive copy and the landing delete."""


def crashing_landing_zone() -> type:
    """A landing zone whose first landing delete dies (the storage layer, not product code)."""
    from facebook_catalog.storage.landing_zone import LandingZone

    class CrashingLandingZone(LandingZone):
        def _delete_if_unchanged(self, obj: Any) -> bool:
            raise SimulatedCrash(f"killed between the archive copy and the delete of {obj.key}")

    return CrashingLandingZone


# ------------------------------------------------------------------ results
@dataclass
class HourResult:
    hour: int
    how: str  # core | dag | dag-killed | idle
    outcome: str  # success | failed | rejections | killed | crashed | skipped
    recorded: bool  # the run recorded Meta's answer in the ledger
    detail: str = ""
    seconds: float = 0.0


@dataclass
class Tally:
    hours: int = 0
    dag_hours: int = 0
    core_hours: int = 0
    checks: int = 0
    violations: list[str] = field(default_factory=list)
    faults: Counter[str] = field(default_factory=Counter)
    outcomes: Counter[str] = field(default_factory=Counter)
    repeats_after_failure: int = 0
    duplicate_payloads: int = 0
    lost: int = 0
    final_differences: int = 0
    open_rejections: int = 0
    drift_left: int = 0
    #: the final reconcile's counts (missing, stale, unknown, ...) and how many it invalidated
    reconcile: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    def check(self, ok: bool, message: str) -> None:
        self.checks += 1
        if not ok:
            self.violations.append(message)
            say(f"VIOLATION {message}")


def say(message: str) -> None:
    """Progress on stderr (Airflow's logging setup may hide this module's log records)."""
    print(f"[soak] {message}", file=sys.stderr, flush=True)


class _TaskInstance:
    """What the sync operator reads of its task instance when the soak drives it directly."""

    dag_id = DAG_ID
    task_id = "sync_catalog"
    map_index = -1

    def __init__(self) -> None:
        self.xcom: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcom[key] = value


# ------------------------------------------------------------------ the soak
class Soak:
    """One soak: the servers are given (moto's endpoint, an emulator); the environment is set by
    the caller from :meth:`environment`."""

    def __init__(
        self,
        *,
        seed: int,
        hours: int,
        emulator: Any,
        moto_endpoint: str,
        workdir: Path,
        products: int = 5000,
        changes: int = 300,
        dag_every: int = 10,
        final_hours: int = 3,
    ) -> None:
        self.seed, self.hours = seed, hours
        self.rng = random.Random(seed)
        self.emulator = emulator
        self.moto_endpoint = moto_endpoint
        self.workdir = workdir
        self.dag_every = dag_every
        self.final_hours = final_hours
        self.changes = changes
        self.source = Source(random.Random(seed * 7919 + 1), products)
        self.tally = Tally()
        self.now = LEDGER_START
        self.reject_forever: set[str] = set()
        self.calls_seen = 0
        #: payload sha -> [(hour, handle)] of accepted items_batch calls
        self.posted: dict[str, list[tuple[int, str | None]]] = {}
        self.hour_results: dict[int, HourResult] = {}
        self.files: dict[str, LandingFile] = {}
        self.scanned: set[tuple[str, str, str]] = set()
        self.archived_seen: set[str] = set()
        self.last_write = 0.0
        self.id_of: dict[int, str] = {}
        #: items changed or deleted at Meta by hand and not yet sent again (or repaired)
        self.drifted: set[str] = set()
        #: items another tool wrote to the catalog: the sync must leave them alone
        self.foreign: set[str] = set()
        self.reconciles: list[dict[str, Any]] = []
        self.reconciled = False
        #: every row of each id landed: (hour, key, good, content hash), to explain a violation
        self.history: dict[str, list[tuple[int, str, bool, int]]] = {}
        self.hour = 0

    # -------------------------------------------------------------- environment
    def environment(self) -> dict[str, str]:
        from tests.fixtures.s3 import AWS_REGION, FAKE_ACCESS_KEY_ID, FAKE_SECRET_ACCESS_KEY

        env = {
            "AWS_ACCESS_KEY_ID": FAKE_ACCESS_KEY_ID,
            "AWS_SECRET_ACCESS_KEY": FAKE_SECRET_ACCESS_KEY,
            "AWS_DEFAULT_REGION": AWS_REGION,
            "AWS_CONFIG_FILE": "/dev/null",
            "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
            "AIRFLOW_CONN_AWS_DEFAULT": json.dumps(
                {
                    "conn_type": "aws",
                    "login": FAKE_ACCESS_KEY_ID,
                    "password": FAKE_SECRET_ACCESS_KEY,
                    "extra": {"endpoint_url": self.moto_endpoint, "region_name": AWS_REGION},
                }
            ),
            "AIRFLOW_CONN_FACEBOOK_CATALOG_DEFAULT": json.dumps(
                {
                    "conn_type": "facebook_catalog",
                    "host": self.emulator.url,
                    "password": TOKEN,
                    "extra": {"catalog_id": CATALOG, "app_secret": APP_SECRET},
                }
            ),
            "FACEBOOK_CATALOG_SYNC_RETRIES": "0",
        }
        for name, value in SYNC_VARIABLES.items():
            env[f"AIRFLOW_VAR_FACEBOOK_CATALOG_{name.upper()}"] = value
        return env

    @functools.cached_property
    def s3(self) -> Any:
        from airflow.providers.amazon.aws.hooks.s3 import S3Hook

        return S3Hook(aws_conn_id="aws_default")

    def _client(self) -> Any:
        return self.s3.get_conn()

    def _keys(self, bucket: str, prefix: str) -> list[str]:
        return sorted(self.s3.list_keys(bucket_name=bucket, prefix=prefix) or [])

    def _store(self) -> Any:
        from facebook_catalog.storage.ledger_store import LedgerStore

        return LedgerStore(self.s3, SYNCED_BUCKET, CATALOG)

    # -------------------------------------------------------------- run
    def run(self) -> Tally:
        started = time.perf_counter()
        for bucket in (LANDING_BUCKET, SYNCED_BUCKET):
            with contextlib.suppress(Exception):
                self.s3.create_bucket(bucket_name=bucket)
        total = self.hours + self.final_hours
        for hour in range(total):
            final = hour >= self.hours
            dag_hour = not final and (hour % self.dag_every == self.dag_every - 1)
            faults = draw_faults(self.rng, hour, self.source, dag_hour=dag_hour, final=final)
            dag_hour = dag_hour or faults.kill
            self._hour(hour, faults, dag_hour=dag_hour, final=final)
        self._final_comparison()
        self.tally.seconds = time.perf_counter() - started
        return self.tally

    def _hour(self, hour: int, faults: HourFaults, *, dag_hour: bool, final: bool) -> None:
        t0 = time.perf_counter()
        self.hour = hour
        for kind in faults.kinds():
            self.tally.faults[kind] += 1
        self.reject_forever.update(faults.reject_forever)
        self._drift_by_hand(hour, faults)
        self._land(hour, faults, final)
        self.emulator.set_faults(
            throttle_next=faults.throttle,
            server_error_next=faults.server_errors,
            drop_next=faults.drops,
            latency_seconds=faults.latency,
            error_handles_next=int(faults.error_handle),
            stuck_handles_next=int(faults.stuck_handle),
            reject_item_ids=sorted(self.reject_forever | set(faults.reject_once)),
            review_reject_item_ids=faults.review_reject,
            review_reject_after_seconds=REVIEW_SECONDS,
            review_reject_reason=faults.review_reason,
            throttle_reads_next=faults.read_throttle,
            seed=self.seed * 100_003 + hour,
        )
        if final and hour == self.hours + 1:
            self._reconcile(hour)  # the daily reconcile, with repair, after the corrections hour
        params = {"retry_rejected": True} if final and hour == self.hours + self.final_hours - 1 else {}
        watcher = _MidRun(self, hour, faults)
        watcher.start()
        try:
            if dag_hour:
                result = self._dag_hour(hour, faults, params, watcher)
                self.tally.dag_hours += 1
            else:
                result = self._core_hour(hour, faults, params)
                self.tally.core_hours += 1
        finally:
            watcher.stop()
        self.emulator.set_faults()
        result.seconds = time.perf_counter() - t0
        self.hour_results[hour] = result
        self.tally.outcomes[result.outcome] += 1
        self.tally.hours += 1
        self._check_hour(hour, result)
        say(
            f"hour {hour:3d} {result.how:10} {result.outcome:10} {result.seconds:5.1f}s "
            f"faults={','.join(faults.kinds()) or '-'} {result.detail[:200]!r}"
        )
        self.now += HOUR

    def _reconcile(self, hour: int) -> None:
        """The daily reconcile with repair, as its DAG's task runs it (``reconcile_catalog``); the
        repair's ingestion run (ids or snapshot mode) is the source landing those products."""
        try:
            from facebook_catalog.operators.reconcile import reconcile_catalog
        except ImportError:  # before issue 14's reconcile: drift by hand is left, and counted
            return
        from facebook_catalog.hooks.graph_api import GraphApiRetryPolicy

        report = reconcile_catalog(
            conn_id="facebook_catalog_default",
            catalog_id=CATALOG,
            aws_conn_id="aws_default",
            synced_bucket=SYNCED_BUCKET,
            run_id=f"soak_reconcile__{hour:04d}",
            repair=True,
            retry_policy=GraphApiRetryPolicy(backoff_base=0.05, max_throttle_wait=0.5),
        )
        self.reconciled = True
        summary = report.to_dict()
        self.reconciles.append(summary)
        self.tally.reconcile = {
            **summary.get("counts", {}),
            "invalidated": int(summary.get("invalidated") or 0),
        }
        request = summary.get("repair_request") or {}
        say(f"reconcile: {summary.get('counts')} repair {request}")
        if request.get("mode") == "snapshot":
            wanted = set(self.source.rows)
        else:
            by_hash = {f"{_id_hash(pid):016x}": pid for pid in self.source.rows}
            hashes = {str(h).lstrip("#").removeprefix("0x").zfill(16) for h in request.get("id_hashes") or []}
            wanted = {str(i) for i in request.get("ids") or []} | {by_hash[h] for h in hashes if h in by_hash}
        rows = [dict(self.source.rows[pid]) for pid in sorted(wanted) if pid in self.source.rows]
        if rows:
            at = START_DATE + timedelta(hours=hour)
            self._spaced()
            self._write(
                LandingFile(f"landing/ingest/repair-{at:%Y-%m-%dT%H%M}.csv.gz", "ingest", rows, []),
                int(at.timestamp() * 1000),
            )

    def _drift_by_hand(self, hour: int, faults: HourFaults) -> None:
        """Someone edits and deletes items in Commerce Manager; another tool writes one."""
        for pid in faults.hand_edits:
            if self.emulator.edit_item(CATALOG, pid, price="1 IQD", title="Edited by hand") is not None:
                self.drifted.add(pid)
        for pid in faults.hand_deletes:
            if self.emulator.delete_item(CATALOG, pid):
                self.drifted.add(pid)
        if faults.foreign_item:
            pid = f"other-tool-{hour:04d}"
            self.emulator.put_item(
                CATALOG, pid, **{**meta_fields(self.source._new_row(pid)), "brand": "Other tool"}
            )
            self.foreign.add(pid)

    # -------------------------------------------------------------- landing
    def _put(self, key: str, data: bytes) -> None:
        self._client().put_object(Bucket=LANDING_BUCKET, Key=key, Body=data)
        self.last_write = time.time()

    def _spaced(self) -> None:
        """A new hour's files sort after what an earlier hour left (S3 times have 1 s steps)."""
        wait = self.last_write + 1.05 - time.time()
        if wait > 0:
            time.sleep(wait)

    def _land(self, hour: int, faults: HourFaults, final: bool) -> None:
        rng = self.rng
        if final:
            rows = self.source.corrections(self.reject_forever) if hour == self.hours else []
        else:
            rows = self.source.changed_rows(hour, rng.randrange(self.changes // 2, self.changes * 3 // 2))
        if not rows:
            return
        at = START_DATE + timedelta(hours=hour)
        # Split: the ingestion DAG's two half-hour files, then an Airbyte file.
        rng.shuffle(rows)
        cut1, cut2 = len(rows) * 2 // 5, len(rows) * 4 // 5
        parts = [rows[:cut1], rows[cut1:cut2], rows[cut2:]]
        if faults.same_id_two_files and len(rows) > 10:
            # The same id in two files of one hour: an earlier version first, the latest later.
            for row in rng.sample(parts[2], min(faults.same_id_two_files, len(parts[2]))):
                parts[0].append({**row, "title": row["title"] + " (earlier)"})
        from facebook_catalog.ingest.query import ingest_object_key

        layout = AIRBYTE_LAYOUTS[hour % len(AIRBYTE_LAYOUTS)]
        extension = layout.split("-")[0]
        epoch_ms = int((at + timedelta(minutes=59)).timestamp() * 1000)
        files = [
            LandingFile(
                ingest_object_key("landing/", at, at + timedelta(minutes=30)), "ingest", parts[0], []
            ),
            LandingFile(
                ingest_object_key("landing/", at + timedelta(minutes=30), at + timedelta(hours=1)),
                "ingest",
                parts[1],
                [],
            ),
            LandingFile(
                f"landing/public/products/{at:%Y_%m_%d}_{epoch_ms}_0.{extension}", layout, parts[2], []
            ),
        ]
        if faults.hostile_file:
            files.append(LandingFile(f"landing/ingest/hostile-{hour:04d}.csv.gz", "hostile", [], []))
        self._spaced()
        for file in files:
            if not file.rows and file.layout != "hostile":
                continue
            self._write(file, epoch_ms)

    def _write(self, file: LandingFile, epoch_ms: int) -> None:
        file.good = [Source.is_good(r) for r in file.rows]
        self._put(file.key, landing_bytes(file, epoch_ms))
        self.files[file.key] = file
        for row, good in zip(file.rows, file.good, strict=True):
            self.source.landed(row)
            content = _content_hash(meta_fields(row)) if good else 0
            self.history.setdefault(str(row["id"]), []).append((self.hour, file.key, good, content))
            self.id_of.setdefault(_id_hash(str(row["id"])), str(row["id"]))

    def mid_run_file(self, hour: int) -> None:
        """A file the ingestion writes while the sync runs: the run must leave it alone."""
        rows = self.source.changed_rows(max(hour, 1), 5)
        at = START_DATE + timedelta(hours=hour, minutes=59)
        self._write(
            LandingFile(f"landing/ingest/late-{at:%Y-%m-%dT%H%M}.csv.gz", "ingest", rows, []),
            int(at.timestamp() * 1000),
        )

    # -------------------------------------------------------------- one hour, the sync core
    def _core_hour(self, hour: int, faults: HourFaults, params: dict[str, Any]) -> HourResult:
        from facebook_catalog.dags.sync import SNAPSHOT_TASK, SYNC_TASK  # noqa: F401 - the DAG's names
        from facebook_catalog.operators.items_batch import FacebookCatalogItemsBatchOperator
        from facebook_catalog.storage.landing_zone import LandingZone
        from facebook_catalog.sync import ledger
        from facebook_catalog.sync.changes import retries_waiting
        from facebook_catalog.sync.landing import archive_snapshot, take_snapshot
        from facebook_catalog.sync.settings import resolve_sync_settings

        run_id = f"soak__{hour:04d}"
        settings = resolve_sync_settings(
            params, lambda key: os.environ.get("AIRFLOW_VAR_" + key.upper()), defaults={}
        )
        places = {
            "landing_prefix": settings["landing_prefix"],
            "archive_prefix": settings["archive_prefix"],
            "quarantine_prefix": settings["quarantine_prefix"],
        }
        zone = LandingZone(self.s3, settings["landing_bucket"], **places)
        # The archive step's zone dies at its first landing delete (the snapshot's repair does not).
        archive_zone = (
            crashing_landing_zone()(self.s3, settings["landing_bucket"], **places)
            if faults.archive_crash
            else zone
        )
        original_clock = ledger.utc_now
        ledger.utc_now = lambda: self.now
        logs = _LogCapture()
        try:
            with logs:
                snapshot = take_snapshot(zone, settings)
                store = self._store()
                if not snapshot.objects and not retries_waiting(
                    store, retry_rejected=bool(settings["retry_rejected"])
                ):
                    return HourResult(hour, "core", "skipped", False)
                arguments = snapshot.to_dict()["operator_arguments"]
                operator = FacebookCatalogItemsBatchOperator(
                    task_id=SYNC_TASK,
                    s3_keys=snapshot.keys,
                    rejections_fail_task=False,
                    deferrable=False,
                    **arguments,
                )
                context: Any = {"ti": _TaskInstance(), "run_id": run_id}
                try:
                    summary = operator.execute(context)
                except Exception as error:
                    return HourResult(hour, "core", "failed", False, str(error))
                finally:
                    store.release_lease(run_id)  # as the DAG's summary teardown does
                try:
                    archived = archive_snapshot(archive_zone, snapshot, summary.get("files") or [])
                except SimulatedCrash as crash:
                    return HourResult(hour, "core", "crashed", True, str(crash))
                failures = [f for f in (archived.quarantine_message(), summary.get("rejection_failure")) if f]
                return HourResult(
                    hour, "core", "rejections" if failures else "success", True, "\n".join(failures)
                )
        finally:
            ledger.utc_now = original_clock
            self._scan_text(logs.text(), f"hour {hour} task log")

    # -------------------------------------------------------------- one hour, the real DAG
    def _dag_hour(
        self, hour: int, faults: HourFaults, params: dict[str, Any], watcher: _MidRun
    ) -> HourResult:
        logical = START_DATE + timedelta(hours=hour)
        log_path = self.workdir / f"dag-hour-{hour:04d}.log"
        env = {
            **os.environ,
            "SOAK_LEDGER_NOW": str(self.now),
            "SOAK_LOGICAL_DATE": logical.isoformat(),
            "SOAK_RUN_CONF": json.dumps(params),
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
        }
        with log_path.open("wb") as out:
            child = subprocess.Popen(
                [sys.executable, "-m", "benchmarks.soak", "--dag-child"],
                cwd=REPO_ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            killed = False
            deadline = time.monotonic() + 600
            while child.poll() is None and time.monotonic() < deadline:
                if faults.kill and watcher.posted.is_set():
                    os.killpg(child.pid, signal.SIGKILL)  # the task process, mid-post
                    killed = True
                    break
                time.sleep(0.02)
            if child.poll() is None and not killed:
                os.killpg(child.pid, signal.SIGKILL)
                child.wait()
                return HourResult(hour, "dag", "failed", False, "the DAG run took over 600 s")
            child.wait()
        output = log_path.read_text(encoding="utf-8", errors="replace")
        self._scan_text(output, f"hour {hour} DAG task log")
        if killed:
            return HourResult(hour, "dag-killed", "killed", False, "SIGKILL after the first items_batch call")
        lines = [line for line in output.splitlines() if line.startswith(CHILD_RESULT)]
        if not lines:
            return HourResult(
                hour, "dag", "failed", False, "the DAG child ended without a result:\n" + output[-3000:]
            )
        result = json.loads(lines[-1][len(CHILD_RESULT) :])
        states = result["task_states"]
        recorded = states.get("sync_catalog") == "success"
        if result["state"] == "success":
            outcome = "success"
        elif states.get("snapshot_landing") == "skipped":
            outcome = "skipped"
        elif recorded:
            outcome = "rejections"
        else:
            outcome = "failed"
        return HourResult(hour, "dag", outcome, recorded, json.dumps(states))

    # -------------------------------------------------------------- checks
    def _ledger(self) -> tuple[dict[int, int], dict[str, dict[str, Any]], Any]:
        store = self._store()
        state = store.load()
        manifest = state.manifest
        confirmed: dict[int, int] = {}
        for chunk in store.base_chunks(manifest):
            confirmed.update(zip(chunk[0::3], chunk[1::3], strict=True))
        confirmed.update({h: v[0] for h, v in store.delta_records(manifest).items()})
        open_rows = {str(r["item_id"]): r for r in store.open_rows(manifest)}
        return confirmed, open_rows, store

    def _check_hour(self, hour: int, result: HourResult) -> None:
        from facebook_catalog.feed.batching import encoded_update

        tally = self.tally
        confirmed, open_rows, store = self._ledger()
        catalog = self.emulator.items(CATALOG)
        open_hashes = {_id_hash(i) for i in open_rows}
        # 1. Archived files: each of their rows accounted for (confirmed, or open with a reason).
        archived = [k for k in self._keys(LANDING_BUCKET, "archive/") if k not in self.archived_seen]
        for key in archived:
            self.archived_seen.add(key)
            file = self.files.get("landing/" + key.removeprefix("archive/"))
            if file is None:
                tally.check(False, f"hour {hour}: {key} archived, but the soak never landed it")
                continue
            for row, good in zip(file.rows, file.good, strict=True):
                pid = str(row["id"])
                h = _id_hash(pid)
                if pid in open_rows:
                    tally.check(
                        bool(open_rows[pid].get("message")), f"hour {hour}: {pid} open without a reason"
                    )
                elif good:
                    tally.check(
                        h in confirmed, f"hour {hour}: {key} archived, but its row {pid} is not accounted for"
                    )
                else:
                    tally.check(
                        h in confirmed,
                        f"hour {hour}: {key} archived, but its bad row {pid} is not accounted for",
                    )
        # 2. Confirmed by the ledger: in the catalog, as confirmed.
        for h, content in confirmed.items():
            if h in open_hashes or content == 0:
                continue  # open, or taken back (rejected in review, invalidated by a repair)
            known = self.id_of.get(h)
            if known is None:
                tally.check(False, f"hour {hour}: the ledger confirms an id hash {h} the source never had")
                continue
            pid = known
            item = catalog.get(pid)
            if pid in self.drifted:
                # Changed at Meta by hand: drift until it is sent again or repaired by the reconcile.
                if item is not None and encoded_update(item)[1] == content:
                    self.drifted.discard(pid)
                continue
            tally.check(
                item is not None, f"hour {hour}: {pid} confirmed by the ledger, missing from the catalog"
            )
            if item is not None:
                tally.check(
                    encoded_update(item)[1] == content,
                    f"hour {hour}: {pid} confirmed by the ledger as {content}, different in the catalog: "
                    f"{encoded_update(item)[1]} {item}; landed: {self.history.get(pid)}",
                )
        # 3. Open rejections by Meta: not saved as rejected.
        for pid, row in open_rows.items():
            if row.get("outcome") == "rejected_by_meta" and pid in catalog and row.get("content_hash"):
                held = (
                    encoded_update(catalog[pid])[1] == row["content_hash"] and _id_hash(pid) not in confirmed
                )
                tally.check(
                    not held or self._review_status(pid) == "rejected",
                    f"hour {hour}: {pid} open as rejected by Meta, yet the catalog shows that content",
                )
        # 4. A run that ended frees the ledger's lease.
        if result.outcome != "killed":
            lease = _get(self._client(), SYNCED_BUCKET, store.lease_key)
            tally.check(
                lease is None, f"hour {hour}: the ledger lease is still held after the run: {lease!r}"
            )
        # 5. Payloads posted twice only after the earlier batch failed.
        self._check_calls(hour)
        # 6. No token or app secret in S3.
        for bucket in (LANDING_BUCKET, SYNCED_BUCKET):
            for item in _list(self._client(), bucket):
                ident = (bucket, item["Key"], item["ETag"])
                if ident in self.scanned:
                    continue
                self.scanned.add(ident)
                data = self._client().get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
                if data[:2] == b"\x1f\x8b":
                    with contextlib.suppress(Exception):
                        data = gzip.decompress(data)
                self._scan_bytes(data, f"s3://{bucket}/{item['Key']}")

    def _review_status(self, pid: str) -> str:
        """What Meta's products edge shows as the item's review (the emulator's own read)."""
        read = self.emulator.state.read_products(
            CATALOG, match=lambda item: True, retailer_ids=[pid], after=None, before=None, limit=1
        )
        rows = getattr(read, "rows", None) or []
        return str(rows[0].review_status) if rows else "absent"

    def _check_calls(self, hour: int) -> None:
        calls = self.emulator.calls()
        new, self.calls_seen = calls[self.calls_seen :], len(calls)
        for call in new:
            code, status = call.get("error_code"), call.get("status")
            if code in (80014, 80009):
                self.tally.faults[f"answered_{code}"] += 1
            elif status is None:
                self.tally.faults["answered_dropped"] += 1
            elif status >= 500:
                self.tally.faults["answered_5xx"] += 1
            if call["endpoint"] != "items_batch" or status != 200 or not call.get("payload_sha256"):
                continue
            sha = call["payload_sha256"]
            earlier = self.posted.setdefault(sha, [])
            if earlier:
                failed = [self._batch_failed(h, handle) for h, handle in earlier]
                if any(failed):
                    self.tally.repeats_after_failure += 1
                else:
                    self.tally.duplicate_payloads += 1
                self.tally.check(
                    any(failed),
                    f"hour {hour}: payload {sha[:12]} posted again, its earlier batch {earlier} did not fail",
                )
            earlier.append((hour, call.get("handle")))

    def _batch_failed(self, hour: int, handle: str | None) -> bool:
        """Whether an earlier post of a payload failed: its run never recorded Meta's answer, or
        its batch did not finish cleanly."""
        result = self.hour_results.get(hour)
        if result is None or not result.recorded:
            return True
        if handle is None:
            return True
        status = self.emulator.state.batch_status(CATALOG, handle, load_ids_of_invalid_requests=False)
        return status is None or status["status"] != "finished" or status["errors_total_count"] > 0

    def _scan_bytes(self, data: bytes, where: str) -> None:
        for secret in (TOKEN, APP_SECRET):
            self.tally.check(secret.encode() not in data, f"a credential in {where}")

    def _scan_text(self, text: str, where: str) -> None:
        self._scan_bytes(text.encode("utf-8", "replace"), where)

    # -------------------------------------------------------------- the end
    def _final_comparison(self) -> None:
        tally = self.tally
        _, open_rows, _ = self._ledger()
        catalog = self.emulator.items(CATALOG)
        left = self._keys(LANDING_BUCKET, "landing/")
        tally.check(not left, f"landing not drained at the end: {left}")
        differences: list[str] = []
        lost = 0
        for pid, row in self.source.good.items():
            if pid in open_rows:
                continue
            if pid in self.drifted and not self.reconciled:
                tally.drift_left += 1  # changed at Meta by hand; the daily reconcile repairs it
                continue
            want = meta_fields(row)
            have = catalog.get(pid)
            if have is None:
                lost += 1
                differences.append(f"{pid}: missing from the catalog")
            elif {k: have.get(k) for k in want} != want:
                lost += 1
                differences.append(f"{pid}: {have} != {want}")
        for pid, row in open_rows.items():
            if not row.get("message"):
                differences.append(f"{pid}: open without a reason")
            if pid not in self.reject_forever and pid not in self.source.bad:
                differences.append(f"{pid}: still open at the end ({row}); landed: {self.history.get(pid)}")
        for pid in self.reject_forever:
            if pid not in open_rows:
                differences.append(f"{pid}: Meta refuses it, yet it is not an open rejection")
        for pid in sorted(self.foreign):
            if pid not in catalog:
                differences.append(f"{pid}: written by another tool, yet gone from the catalog")
        extra = sorted(set(catalog) - set(self.source.good) - self.foreign)
        differences.extend(f"{pid}: in the catalog, never a good row of the source" for pid in extra)
        for message in differences:
            tally.check(False, f"final: {message}")
        tally.checks += len(self.source.good)
        tally.lost = lost
        tally.final_differences = len(differences)
        tally.open_rejections = len(open_rows)


def _id_hash(item_id: str) -> int:
    from facebook_catalog.feed.change_detection import id_hash

    return id_hash(item_id)


def _content_hash(fields: Mapping[str, Any]) -> int:
    from facebook_catalog.feed.batching import encoded_update

    return encoded_update(fields)[1]


def _list(client: Any, bucket: str) -> Iterator[dict[str, Any]]:
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        yield from page.get("Contents", [])


def _get(client: Any, bucket: str, key: str) -> bytes | None:
    try:
        return client.get_object(Bucket=bucket, Key=key)["Body"].read()
    except client.exceptions.NoSuchKey:
        return None


class _LogCapture:
    """Every log record of an in-process hour, formatted, to scan for credentials."""

    def __init__(self) -> None:
        self.stream = io.StringIO()
        self.handler = logging.StreamHandler(self.stream)
        self.handler.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))

    def __enter__(self) -> _LogCapture:
        logging.getLogger().addHandler(self.handler)
        return self

    def __exit__(self, *exc: object) -> None:
        logging.getLogger().removeHandler(self.handler)

    def text(self) -> str:
        return self.stream.getvalue()


# ------------------------------------------------------------------ the DAG child
def dag_child() -> int:
    """Run one hour of the sync DAG through dag.test() (the parent may SIGKILL this process)."""
    from facebook_catalog.sync import ledger

    now = int(os.environ["SOAK_LEDGER_NOW"])
    ledger.utc_now = lambda: now
    with contextlib.suppress(ImportError):
        from airflow.sdk.execution_time import supervisor

        supervisor.in_process_api_server = functools.cache(supervisor.in_process_api_server)
    from tests.fixtures.airflow import load_dag, sync_dag_file_to_db

    path = Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"]) / SYNC_DAG_FILE.name
    dag = load_dag(path, DAG_ID)
    sync_dag_file_to_db(path)
    dagrun = dag.test(
        logical_date=datetime.fromisoformat(os.environ["SOAK_LOGICAL_DATE"]),
        run_conf=json.loads(os.environ.get("SOAK_RUN_CONF") or "{}"),
    )
    states = {
        ti.task_id: (str(getattr(ti.state, "value", ti.state)) if ti.state else None)
        for ti in dagrun.get_task_instances()
    }
    state = str(getattr(dagrun.state, "value", dagrun.state))
    print(
        CHILD_RESULT + json.dumps({"state": state, "task_states": states, "run_id": dagrun.run_id}),
        flush=True,
    )
    logging.shutdown()
    # The run is over and recorded; Airflow's leftover threads would keep the process ~10 s more.
    os._exit(0)


# ------------------------------------------------------------------ report
def report_tables(tally: Tally, seed: int) -> tuple[str, list[Any]]:
    from benchmarks._common import Headline, markdown_table

    fault_text = ", ".join(f"{kind} {count}" for kind, count in sorted(tally.faults.items()))
    rows = [
        ("seed", seed),
        ("hours (fault hours + fault-free final hours)", tally.hours),
        ("hours through the real DAG / the sync core", f"{tally.dag_hours} / {tally.core_hours}"),
        ("run outcomes", ", ".join(f"{k} {v}" for k, v in sorted(tally.outcomes.items()))),
        ("faults injected, by kind (hours; answered_*: calls)", fault_text),
        ("invariant checks made", f"{tally.checks:,}"),
        ("violations", len(tally.violations)),
        ("products lost", tally.lost),
        ("duplicate payloads (earlier batch had not failed)", tally.duplicate_payloads),
        ("payloads re-posted after their batch failed", tally.repeats_after_failure),
        ("open rejections at the end (each with its reason)", tally.open_rejections),
        ("items edited or deleted by hand and left for a reconcile", tally.drift_left),
        (
            "final reconcile: missing / stale / unknown found, repaired",
            " / ".join(
                str(tally.reconcile.get(k, "-")) for k in ("missing", "stale", "unknown", "invalidated")
            ),
        ),
        ("final differences (catalog vs source minus open rejections)", tally.final_differences),
        ("wall time", f"{tally.seconds / 60:.1f} min"),
    ]
    table = markdown_table(["soak", "value"], rows)
    headlines = [
        Headline(
            "hours simulated (DAG hours)",
            f"{tally.hours} ({tally.dag_hours})",
            "≥ 200",
            "met" if tally.hours >= 200 else "not met",
        ),
        Headline(
            "violations / products lost",
            f"{len(tally.violations)} / {tally.lost}",
            "0 / 0",
            "met" if not tally.violations and not tally.lost else "not met",
        ),
        Headline("invariant checks made", f"{tally.checks:,}", "-", "-"),
        Headline(
            "duplicate payloads",
            str(tally.duplicate_payloads),
            "0",
            "met" if not tally.duplicate_payloads else "not met",
        ),
        Headline(
            "final differences",
            str(tally.final_differences),
            "0",
            "met" if not tally.final_differences else "not met",
        ),
        Headline(
            "wall time",
            f"{tally.seconds / 60:.1f} min",
            "≤ 60 min",
            "met" if tally.seconds <= 3600 else "not met",
        ),
    ]
    return table, headlines


# ------------------------------------------------------------------ main
@contextlib.contextmanager
def soak_servers(workdir: Path) -> Iterator[tuple[Any, str]]:
    """An emulator (time-scaled: batches finish in PROCESSING_SECONDS) and a moto S3 server."""
    from moto.server import ThreadedMotoServer

    from facebook_catalog.emulator import EmulatorConfig, EmulatorServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    host, port = moto.get_host_and_port()
    config = EmulatorConfig(
        access_tokens=(TOKEN,),
        app_secret=APP_SECRET,
        processing_seconds=PROCESSING_SECONDS,
        review_seconds=REVIEW_SECONDS,
        throttle_regain_minutes=0,
    )
    try:
        with EmulatorServer(config) as emulator:
            yield emulator, f"http://{host}:{port}"
    finally:
        moto.stop()


def airflow_home(workdir: Path) -> dict[str, str]:
    """A private AIRFLOW_HOME (SQLite) with the sync DAG alone in its DAG folder, migrated."""
    home = workdir / "airflow"
    dags = home / "dags"
    dags.mkdir(parents=True, exist_ok=True)
    (dags / SYNC_DAG_FILE.name).symlink_to(SYNC_DAG_FILE)
    env = {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
    }
    subprocess.run(
        [str(Path(sys.executable).parent / "airflow"), "db", "migrate"],
        check=True,
        capture_output=True,
        env={**os.environ, **env},
        timeout=600,
    )
    return env


def main(argv: list[str] | None = None) -> int:
    from benchmarks._common import Report, argument_parser, record

    parser = argument_parser(__doc__.split("\n", 1)[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--hours", type=int, default=200)
    parser.add_argument("--products", type=int, default=5000)
    parser.add_argument("--dag-every", type=int, default=10)
    parser.add_argument("--dag-child", action="store_true", help=argparse_hidden())
    args = parser.parse_args(argv)
    if args.dag_child:
        return dag_child()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    log.setLevel(logging.INFO)
    workdir = Path(tempfile.mkdtemp(prefix="fb-soak-"))
    try:
        os.environ.update(airflow_home(workdir))
        with soak_servers(workdir) as (emulator, endpoint):
            soak = Soak(
                seed=args.seed,
                hours=args.hours,
                emulator=emulator,
                moto_endpoint=endpoint,
                workdir=workdir,
                products=args.products,
                dag_every=args.dag_every,
            )
            os.environ.update(soak.environment())
            tally = soak.run()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    table, headlines = report_tables(tally, args.seed)
    report = Report(
        name="soak",
        title="Fault soak",
        tables=[table],
        notes=[*(f"violation: {v}" for v in tally.violations[:20])],
        headlines=headlines,
    )
    record(report, args)
    return 1 if tally.violations or tally.lost else 0


def argparse_hidden() -> str:
    import argparse

    return argparse.SUPPRESS


if __name__ == "__main__":
    sys.exit(main())
