"""Triggerer footprint: 1,000 batch-status triggers in one real ``airflow triggerer`` process.

Set-up, through Airflow's own code and models:

1. a fresh PostgreSQL metadata DB (``airflow db migrate``) and ``airflow dags reserialize`` of
   benchmarks/dags/bench_trigger_fleet.py;
2. one items_batch call per simulated catalog sync to the Graph API emulator (whose batches take
   a day to process, so every handle stays pending), through the provider's sync hook;
3. one DAG run per sync (``trigger_dag``), and its ``sync_catalog`` task instance deferred the way
   the execution API defers it: a ``Trigger`` row holding the encrypted kwargs of
   ``FacebookCatalogBatchStatusTrigger`` (one handle, poll interval 10 s), the task instance in
   ``deferred`` with ``trigger_id`` and ``next_method``. Plus one canary task deferred on
   benchmarks/_loop_lag.py, which measures the event loop's lag from inside it.

Then ``airflow triggerer --capacity N+1 --skip-serve-logs`` starts; once every handle has been
polled (all triggers running), its CPU time and resident memory (the supervisor and the trigger
runner subprocess, sampled with psutil) are measured over ``--rounds`` poll intervals, with the
polls per handle counted in the emulator's call log, the canary's largest lag and the
triggerer's own "async thread was blocked" warnings.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import logging
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from benchmarks._airflow import BENCH_DAGS_DIR, airflow_deployment
from benchmarks._common import (
    REPO_ROOT,
    Headline,
    Report,
    argument_parser,
    catalog_connection,
    emit_child_result,
    emulator_config,
    fmt,
    fmt_int,
    markdown_table,
    met,
    quiet_emulator_logs,
    record,
    run_child,
    timed_emulator,
    wait_for,
)

MODULE = "benchmarks.triggerer_footprint"
FLEET_DAG, FLEET_TASK = "bench_trigger_fleet", "sync_catalog"
CANARY_DAG, CANARY_TASK = "bench_trigger_canary", "loop_lag_canary"
CATALOG_ID = "900000001"
DEFAULT_TRIGGERS = 1_000
QUICK_TRIGGERS = 200
DEFAULT_POLL_INTERVAL = 10.0
DEFAULT_ROUNDS = 5
CANARY_INTERVAL = 0.05
#: Seconds the emulator takes to process a batch: the handles stay pending for the whole run.
PROCESSING_SECONDS = 86_400.0
SAMPLE_SECONDS = 0.5
#: Targets from issue #7.
TARGET_CPU_SHARE = 0.10
TARGET_LAG_SECONDS = 0.100
COUNT_DEFERRED = "SELECT count(*) AS n FROM task_instance WHERE state = 'deferred'"
COUNT_ASSIGNED = "SELECT count(*) AS n FROM trigger WHERE triggerer_id IS NOT NULL"
BLOCKED = re.compile(r"^(\S+) .*async thread was blocked for ([0-9.]+) seconds", re.MULTILINE)
CAPACITY_LINE = "has reached the maximum capacity"


# --------------------------------------------------------------------------------------------
# Child: create the runs and defer their task instances (Airflow configured by the environment)
# --------------------------------------------------------------------------------------------
def child_fleet(args: argparse.Namespace) -> dict[str, Any]:
    from datetime import timedelta

    from airflow.api.common.trigger_dag import trigger_dag
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.trigger import Trigger
    from airflow.utils import timezone
    from airflow.utils.session import create_session
    from airflow.utils.state import TaskInstanceState
    from airflow.utils.types import DagRunTriggeredByType
    from sqlalchemy import select

    from benchmarks._loop_lag import LoopLagTrigger
    from facebook_catalog.feed.batching import encoded_update
    from facebook_catalog.hooks.catalog import FacebookCatalogHook
    from facebook_catalog.triggers.items_batch import FacebookCatalogBatchStatusTrigger

    logging.disable(logging.INFO)
    hook = FacebookCatalogHook(catalog_id=CATALOG_ID)
    deadline = time.time() + PROCESSING_SECONDS
    fleet: list[tuple[str, str, str, Any]] = []
    for number in range(args.count):
        item = {
            "id": f"FLEET-{number:05d}",
            "title": f"Fleet product {number}",
            "description": "One product per simulated catalog sync",
            "availability": "in stock",
            "condition": "new",
            "price": "25000 IQD",
            "link": f"https://shop.example.iq/p/{number}",
            "image_link": f"https://cdn.example.iq/p/{number}.jpg",
            "brand": "Zagros",
        }
        handle = hook.send_items_batch(b"[" + encoded_update(item)[0] + b"]", 1).handle
        assert handle is not None
        trigger = FacebookCatalogBatchStatusTrigger(
            handles=[handle],
            catalog_id=CATALOG_ID,
            deadline=deadline,
            poll_interval=args.poll_interval,
        )
        fleet.append((FLEET_DAG, FLEET_TASK, f"sync-{number:05d}", trigger))
    fleet.append((CANARY_DAG, CANARY_TASK, "canary", LoopLagTrigger(args.canary_path, CANARY_INTERVAL)))

    for start in range(0, len(fleet), 100):
        with create_session() as session:
            for dag_id, task_id, run_id, trigger in fleet[start : start + 100]:
                trigger_dag(
                    dag_id, triggered_by=DagRunTriggeredByType.CLI, run_id=run_id, conf={}, session=session
                )
                session.flush()
                ti = session.scalars(
                    select(TaskInstance).where(
                        TaskInstance.dag_id == dag_id,
                        TaskInstance.run_id == run_id,
                        TaskInstance.task_id == task_id,
                    )
                ).one()
                classpath, kwargs = trigger.serialize()
                row = Trigger(classpath=classpath, kwargs=kwargs)
                session.add(row)
                session.flush()
                # What the execution API writes when a task defers (ti_update_state, deferred).
                now = timezone.utcnow()
                ti.try_number = 1
                ti.start_date = now
                ti.state = TaskInstanceState.DEFERRED
                ti.trigger_id = row.id
                ti.next_method = "execute_complete"
                ti.next_kwargs = {}
                ti.trigger_timeout = now + timedelta(seconds=PROCESSING_SECONDS)
    return {"triggers": len(fleet), "handles": args.count}


# --------------------------------------------------------------------------------------------
# The parent
# --------------------------------------------------------------------------------------------
class TreeSampler(threading.Thread):
    """Samples CPU time and memory of a process and its descendants every ``interval`` seconds."""

    def __init__(self, pid: int, interval: float = SAMPLE_SECONDS) -> None:
        super().__init__(name="triggerer-sampler", daemon=True)
        self.pid = pid
        self.interval = interval
        self.samples: list[dict[str, Any]] = []
        self._stop_event = threading.Event()

    def run(self) -> None:
        import psutil

        root = psutil.Process(self.pid)
        while not self._stop_event.is_set():
            procs = [root]
            with contextlib.suppress(psutil.Error):
                procs += root.children(recursive=True)
            cpu = rss = pss = 0.0
            per_process: dict[int, float] = {}
            cpu_by_process: dict[int, float] = {}
            for proc in procs:
                with contextlib.suppress(psutil.Error):
                    times = proc.cpu_times()
                    cpu += times.user + times.system
                    cpu_by_process[proc.pid] = times.user + times.system
                    memory = proc.memory_full_info()
                    rss += memory.rss
                    pss += memory.pss
                    per_process[proc.pid] = memory.rss / 2**20
            self.samples.append(
                {
                    "at": time.time(),
                    "cpu": cpu,
                    "rss_mb": rss / 2**20,
                    "pss_mb": pss / 2**20,
                    "processes": len(procs),
                    "per_process": per_process,
                    "cpu_by_process": cpu_by_process,
                }
            )
            self._stop_event.wait(self.interval)

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=10)

    def between(self, start: float, end: float) -> list[dict[str, Any]]:
        return [s for s in list(self.samples) if start <= s["at"] <= end]


def run(args: argparse.Namespace) -> dict[str, Any]:
    count = args.size or (QUICK_TRIGGERS if args.quick else DEFAULT_TRIGGERS)
    poll_interval = args.poll_interval
    quiet_emulator_logs()
    server, timing = timed_emulator(emulator_config(processing_seconds=PROCESSING_SECONDS))
    with tempfile.TemporaryDirectory(prefix="fb-bench-triggerer-") as tmp_name, server:
        tmp = Path(tmp_name)
        canary_path = tmp / "canary.log"
        settings: dict[str, dict[str, Any]] = {
            "core": {"executor": "LocalExecutor"},
            "triggerer": {"capacity": count + 1},
            "logging": {"trigger_log_server_port": 0, "worker_log_server_port": 0},
        }
        for setting in args.set or []:
            name, _, value = setting.partition("=")
            section, _, key = name.partition(".")
            settings.setdefault(section, {})[key] = value
        extra_env = {
            **catalog_connection(server.url, CATALOG_ID),
            "PYTHONPATH": str(REPO_ROOT),  # the canary trigger lives in benchmarks/
        }
        dag_file = BENCH_DAGS_DIR / "bench_trigger_fleet.py"
        with airflow_deployment(tmp, "triggerer", [dag_file], settings, extra_env) as airflow:
            airflow.cli("dags", "reserialize")
            made = time.time()
            run_child(
                MODULE,
                [
                    "--child",
                    "fleet",
                    "--size",
                    str(count),
                    "--poll-interval",
                    str(poll_interval),
                    "--canary-path",
                    str(canary_path),
                ],
                airflow.env,
                timeout=600 + count,
            )
            print(f"[triggerer] {count:,} deferred task instances in {time.time() - made:.1f} s", flush=True)
            deferred = airflow.query("SELECT count(*) AS n FROM task_instance WHERE state = 'deferred'")[0][
                "n"
            ]
            started = time.time()
            triggerer = airflow.start(
                "triggerer", "triggerer", "--capacity", str(count + 1), "--skip-serve-logs"
            )
            sampler = TreeSampler(triggerer.pid)
            sampler.start()
            try:
                handles_polled: set[str] = set()

                def all_polling() -> bool:
                    airflow.check_alive("triggerer")
                    handles_polled.update(
                        c["handle"]
                        for c in server.calls()
                        if c["endpoint"] == "check_batch_request_status" and c["time"] >= started
                    )
                    return len(handles_polled) >= count and canary_path.exists()

                wait_for(f"{count:,} triggers to poll", all_polling, timeout=300 + count / 5, interval=1.0)
                running = time.time()
                print(
                    f"[triggerer] all {count:,} triggers polling {running - started:.1f} s after start",
                    flush=True,
                )
                window = args.rounds * poll_interval + poll_interval / 2
                profilers = _start_py_spy(args.profile, triggerer.pid, window) if args.profile else []
                time.sleep(window)
                for profiler in profilers:
                    profiler.wait(timeout=60)
                airflow.check_alive("triggerer")
                ended = time.time()
            finally:
                sampler.stop()
                airflow.processes.stop("triggerer")
            log_text = airflow.processes["triggerer"].log_path.read_text(errors="replace")
            assigned = airflow.query(COUNT_ASSIGNED)[0]["n"]
        canary = _canary_lags(canary_path, running, ended)
        polls = Counter(
            c["handle"]
            for c in server.calls()
            if c["endpoint"] == "check_batch_request_status" and running <= c["time"] <= ended
        )
        errors = [
            c
            for c in server.calls()
            if c["endpoint"] == "check_batch_request_status" and c["time"] >= started and c["status"] != 200
        ]
    window_samples = sampler.between(running, ended)
    first, last = window_samples[0], window_samples[-1]
    cpu_share = (last["cpu"] - first["cpu"]) / (last["at"] - first["at"])
    cpu_by_process = sorted(
        (
            (last["cpu_by_process"][pid] - first["cpu_by_process"].get(pid, 0.0)) / (last["at"] - first["at"])
            for pid in last["cpu_by_process"]
        ),
        reverse=True,
    )
    per_second = [
        (b["cpu"] - a["cpu"]) / (b["at"] - a["at"])
        for a, b in itertools.pairwise(window_samples)
        if b["at"] > a["at"]
    ]
    blocked = [(_epoch(m.group(1)), float(m.group(2))) for m in BLOCKED.finditer(log_text)]
    blocked_in_window = [seconds for at, seconds in blocked if running <= at <= ended]
    blocked_at_startup = [seconds for at, seconds in blocked if at < running]
    return {
        "triggers": count,
        "deferred": deferred,
        "assigned": assigned,
        "poll_interval": poll_interval,
        "startup_seconds": running - started,
        "window_seconds": ended - running,
        "cpu_share": cpu_share,
        "cpu_by_process": cpu_by_process,
        "cpu_share_peak": max(per_second) if per_second else cpu_share,
        "rss_mb_mean": statistics.fmean(s["rss_mb"] for s in window_samples),
        "rss_mb_max": max(s["rss_mb"] for s in window_samples),
        "rss_mb_startup_max": max(s["rss_mb"] for s in sampler.samples),
        "pss_mb_max": max(s["pss_mb"] for s in window_samples),
        "processes": max(s["processes"] for s in window_samples),
        "per_process_max": _per_process_max(window_samples),
        "polls_min": min(polls.values()) if polls else 0,
        "polls_median": statistics.median(polls.values()) if polls else 0,
        "handles_polled": len(polls),
        "poll_errors": len(errors),
        "canary_lag_max": canary["max"],
        "canary_lag_p99": canary["p99"],
        "canary_seconds": canary["seconds"],
        "blocked_warnings": len(blocked_in_window),
        "blocked_max": max(blocked_in_window, default=0.0),
        "blocked_startup": len(blocked_at_startup),
        "blocked_startup_max": max(blocked_at_startup, default=0.0),
        "log_lines": len(log_text.splitlines()),
        "capacity_lines": log_text.count(CAPACITY_LINE),
        "emulator_status_seconds": timing.total("check_batch_request_status"),
        "settings": list(args.set or []),
    }


def _start_py_spy(directory: Path, pid: int, seconds: float) -> list[subprocess.Popen[bytes]]:
    """py-spy on the triggerer's supervisor and its trigger runner for the measured window."""
    import psutil

    directory.mkdir(parents=True, exist_ok=True)
    pids = [pid, *(c.pid for c in psutil.Process(pid).children(recursive=True))]
    py_spy = str(Path(sys.executable).parent / "py-spy")
    return [
        subprocess.Popen(
            [
                py_spy,
                "record",
                "--pid",
                str(p),
                "--duration",
                str(int(seconds)),
                "--rate",
                "50",
                "--format",
                "raw",
                "--output",
                str(directory / f"triggerer-{n}-{p}.txt"),
                "--nonblocking",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for n, p in enumerate(pids)
    ]


def _epoch(stamp: str) -> float:
    from datetime import datetime

    try:
        return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0


def _per_process_max(samples: list[dict[str, Any]]) -> list[float]:
    peaks: dict[int, float] = {}
    for sample in samples:
        for pid, rss in sample["per_process"].items():
            peaks[pid] = max(peaks.get(pid, 0.0), rss)
    return sorted(peaks.values(), reverse=True)


def _canary_lags(path: Path, start: float, end: float) -> dict[str, float]:
    lags = []
    for line in path.read_text().splitlines():
        at, lag, _ = line.split()
        if start <= float(at) <= end + 1:
            lags.append(float(lag))
    lags.sort()
    return {
        "max": lags[-1] if lags else float("nan"),
        "p99": lags[min(len(lags) - 1, int(len(lags) * 0.99))] if lags else float("nan"),
        "seconds": len(lags),
    }


def report(r: dict[str, Any]) -> Report:
    headers = [
        "triggers",
        "Airflow settings",
        "poll interval s",
        "polls per handle (min / median)",
        "window s",
        "CPU (share of one core)",
        "CPU peak 0.5 s",
        "RSS MiB (mean / max)",
        "PSS MiB max",
        "largest loop lag ms",
        "p99 of per-second max lag ms",
        "'blocked' warnings",
        "start-up s",
    ]
    row = [
        fmt_int(r["triggers"]),
        ", ".join(f"`{s}`" for s in r["settings"]) or "defaults",
        fmt(r["poll_interval"], 0),
        f"{r['polls_min']} / {r['polls_median']:g}",
        fmt(r["window_seconds"]),
        f"{r['cpu_share']:.1%}",
        f"{r['cpu_share_peak']:.1%}",
        f"{r['rss_mb_mean']:.0f} / {r['rss_mb_max']:.0f}",
        fmt_int(r["pss_mb_max"]),
        fmt(r["canary_lag_max"] * 1000),
        fmt(r["canary_lag_p99"] * 1000),
        r["blocked_warnings"],
        fmt(r["startup_seconds"]),
    ]
    notes = [
        f"One `airflow triggerer` ({r['processes']} processes: the supervisor and its trigger-runner "
        f"subprocess; per-process peak RSS {', '.join(f'{m:.0f}' for m in r['per_process_max'])} MiB, "
        f"per-process CPU {', '.join(f'{c:.1%}' for c in r['cpu_by_process'])}), "
        f"{r['assigned']:,} triggers assigned to it ({r['triggers']:,} batch-status triggers, one handle "
        f"each, plus the canary); {r['handles_polled']:,} handles polled in the window, "
        f"{r['poll_errors']} status calls failed.",
        "CPU = (user + system CPU seconds of the process tree) / wall seconds over the window, which starts "
        "once every trigger has polled at least once; RSS is summed over the tree (PSS counts shared pages "
        "once). Start-up = from starting the process until every handle had been polled once.",
        "Loop lag = how much later than asked the canary trigger (a 50 ms sleep loop in the same event loop) "
        "woke up, largest over the window; 'blocked' warnings = the triggerer's own watchdog lines (lag over "
        f"its default 0.2 s threshold, i.e. 100 ms late) in the window: {r['blocked_warnings']} (largest "
        f"{r['blocked_max']:.2f} s); during start-up (the runner importing and starting every trigger): "
        f"{r['blocked_startup']} (largest {r['blocked_startup_max']:.2f} s).",
        f"The triggerer wrote {r['log_lines']:,} log lines in the run, {r['capacity_lines']:,} of them "
        "'has reached the maximum capacity' (one per supervisor loop while it is full).",
        f"Target: under {TARGET_CPU_SHARE:.0%} of a core → {met(r['cpu_share'] < TARGET_CPU_SHARE)} "
        f"({r['cpu_share']:.1%}); no lag over {TARGET_LAG_SECONDS * 1000:.0f} ms → "
        f"{met(r['canary_lag_max'] <= TARGET_LAG_SECONDS and not r['blocked_warnings'])}; at least five poll "
        f"rounds → {met(r['polls_min'] >= DEFAULT_ROUNDS)}.",
        f"The emulator spent {r['emulator_status_seconds']:.2f} s answering status calls during the run "
        "(its own process, not counted above).",
    ]
    headlines = [
        Headline(
            f"CPU, share of one core ({r['triggers']:,} triggers, {r['poll_interval']:g} s polls)",
            f"{r['cpu_share']:.1%}",
            f"under {TARGET_CPU_SHARE:.0%}",
            met(r["cpu_share"] < TARGET_CPU_SHARE),
        ),
        Headline(
            "largest event-loop lag in the window",
            f"{r['canary_lag_max'] * 1000:.1f} ms, {r['blocked_warnings']} 'blocked' warnings",
            f"no lag over {TARGET_LAG_SECONDS * 1000:.0f} ms",
            met(r["canary_lag_max"] <= TARGET_LAG_SECONDS and not r["blocked_warnings"]),
        ),
        Headline(
            "poll rounds measured (fewest polls of a handle)",
            str(r["polls_min"]),
            f"at least {DEFAULT_ROUNDS}",
            met(r["polls_min"] >= DEFAULT_ROUNDS),
        ),
        Headline(
            "resident memory of the process tree (max RSS / PSS)",
            f"{r['rss_mb_max']:.0f} / {r['pss_mb_max']:.0f} MiB",
            "none set (issue #7 asks for the figure)",
        ),
    ]
    return Report(
        name="triggerer_footprint",
        title="Triggerer footprint",
        headlines=headlines,
        tables=[markdown_table(headers, [row])],
        notes=notes,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argument_parser(__doc__ or "")
    parser.add_argument("--size", type=int, help=f"batch-status triggers (default {DEFAULT_TRIGGERS:,})")
    parser.add_argument(
        "--poll-interval",
        type=float,
        default=DEFAULT_POLL_INTERVAL,
        help="seconds between a trigger's polls (default: %(default)s)",
    )
    parser.add_argument(
        "--rounds", type=int, default=DEFAULT_ROUNDS, help="poll rounds measured (default: %(default)s)"
    )
    parser.add_argument(
        "--set",
        action="append",
        metavar="SECTION.KEY=VALUE",
        help="an Airflow setting for the triggerer (repeatable), e.g. logging.logging_level=WARNING",
    )
    parser.add_argument(
        "--profile", type=Path, help="record the window with py-spy (raw stacks) into this directory"
    )
    parser.add_argument("--child", choices=["fleet"], help=argparse.SUPPRESS)
    parser.add_argument("--canary-path", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        args.count = args.size
        emit_child_result(child_fleet(args))
        return 0
    record(report(run(args)), args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
