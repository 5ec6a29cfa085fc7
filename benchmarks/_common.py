"""What every benchmark shares: options, result tables and recording, test data, servers, children.

Recording (:func:`record`): a run appends its full dated section to HISTORY.md and rewrites its
own block at the head of RESULTS.md (between ``<!-- bench:<script> -->`` and ``<!-- /bench -->``),
so RESULTS.md always shows each benchmark's latest figures and the history keeps every run.

Servers come from the project's own code: the Graph API emulator (``EmulatorServer``, here with a
middleware that adds up the seconds the emulator itself spends on each call), a moto S3 server
as a subprocess, and, for the benchmarks that run real Airflow processes, the process manager
and PostgreSQL helpers of the end-to-end harness in ``tests/e2e/conftest.py``.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import importlib.metadata
import json
import os
import platform
import re
import resource
import shlex
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aiohttp import web
    from tests.e2e.conftest import ProcessManager

    from facebook_catalog.emulator import EmulatorConfig, EmulatorServer

REPO_ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = REPO_ROOT / "benchmarks"
RESULTS_PATH = BENCH_DIR / "RESULTS.md"
HISTORY_NAME = "HISTORY.md"
PYTHON = sys.executable
AIRFLOW = str(Path(sys.executable).parent / "airflow")
RESULT_MARKER = "BENCH-RESULT "

AWS_REGION = "us-east-1"
AWS_ACCESS_KEY_ID = "bench-access-key-id"
AWS_SECRET_ACCESS_KEY = "bench-secret-access-key"
# The token the benchmarks' emulators accept; never a real credential.
EMULATOR_TOKEN = "EAAbench-system-user-token-0c7e"
DEFAULT_CONN_ID = "facebook_catalog_default"


# --------------------------------------------------------------------------------------------
# Options, tables, RESULTS.md and HISTORY.md
# --------------------------------------------------------------------------------------------
def argument_parser(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--quick", action="store_true", help="smaller sizes and shorter waits (for a first look)"
    )
    parser.add_argument(
        "--results",
        type=Path,
        default=RESULTS_PATH,
        help="Markdown file whose table for this benchmark the run rewrites (default: %(default)s)",
    )
    parser.add_argument(
        "--history",
        type=Path,
        help=f"Markdown file the run's full dated section is appended to (default: {HISTORY_NAME} "
        "beside --results)",
    )
    parser.add_argument("--no-record", action="store_true", help="print the result only")
    return parser


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub Markdown table; columns whose cells are all numbers are right-aligned."""
    cells = [[str(c) for c in row] for row in rows]

    def numeric(column: int) -> bool:
        values = [row[column] for row in cells if row[column] not in ("", "-", "n/a")]
        return bool(values) and all(_looks_numeric(v) for v in values)

    aligns = ["---:" if numeric(i) else "---" for i in range(len(headers))]
    lines = [
        "| " + " | ".join(headers) + " |",
        "| " + " | ".join(aligns) + " |",
        *("| " + " | ".join(row) + " |" for row in cells),
    ]
    return "\n".join(lines)


def _looks_numeric(text: str) -> bool:
    cleaned = text.replace(",", "").replace("x", "").replace("%", "").replace("≈", "").strip()
    try:
        float(cleaned)
    except ValueError:
        return False
    return True


def versions(extra: Sequence[str] = ()) -> dict[str, str]:
    found = {"Python": platform.python_version()}
    for name, dist in (("Airflow", "apache-airflow"), ("aiohttp", "aiohttp"), *((d, d) for d in extra)):
        try:
            found[name] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def cpu_reference_us() -> float:
    """Microseconds this machine takes for a fixed pure-Python loop (the median of 21 tries).

    A virtual machine's speed drifts (on this project's 2-CPU machine the same loop took nearly
    twice as long late in a day as early), so absolute figures of two runs compare through this.
    """
    tries = []
    for _ in range(21):
        started = time.perf_counter()
        sum(range(1000))
        tries.append(time.perf_counter() - started)
    return statistics.median(tries) * 1e6


def environment_line(extra_packages: Sequence[str] = ()) -> str:
    parts = [f"{name} {version}" for name, version in versions(extra_packages).items()]
    total_memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (
        f"`{platform.machine()}` ({platform.uname().machine}), {os.cpu_count()} CPUs ({cpu_model()}), "
        f"{total_memory:.0f} GiB RAM, {platform.system()} {platform.release()} · "
        f"CPU reference {cpu_reference_us():.1f} µs (`sum(range(1000))`; lower is faster) · "
        + " · ".join(parts)
    )


@dataclass(frozen=True)
class Headline:
    """One row of a benchmark's table at the head of RESULTS.md: a figure, its target, the verdict."""

    figure: str
    latest: str
    target: str
    verdict: str = "-"


@dataclass
class Report:
    """One benchmark's result: what ran, its tables, and what they mean.

    ``name`` (the script's module name) names its block at the head of RESULTS.md;
    ``headlines`` are that block's rows, the figures a reader looks for first.
    """

    name: str
    title: str
    tables: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    headlines: list[Headline] = field(default_factory=list)
    extra_packages: Sequence[str] = ()
    started: datetime = field(default_factory=lambda: datetime.now(timezone.utc))

    @property
    def heading(self) -> str:
        return f"{self.title} — {self.started.strftime('%Y-%m-%d %H:%M UTC')}"

    def render(self) -> str:
        """The full dated section, as HISTORY.md keeps it."""
        command = shlex.join([Path(sys.executable).name, "-m", *_module_argv()])
        lines = [
            f"## {self.heading}",
            "",
            f"Machine: {environment_line(self.extra_packages)}  ",
            f"Code: {code_version()} · Command: `{command}`",
            "",
        ]
        for table in self.tables:
            lines.extend([table, ""])
        lines.extend(f"- {note}" for note in self.notes)
        return "\n".join(lines).rstrip() + "\n"

    def head_block(self, history_link: str) -> str:
        """This benchmark's block at the head of RESULTS.md, markers included."""
        rows = [(h.figure, h.latest, h.target, h.verdict) for h in self.headlines]
        return "\n".join(
            [
                head_marker(self.name),
                f"## {self.title}",
                "",
                markdown_table(["figure", "latest", "target", "verdict"], rows),
                "",
                f"Measured {self.started.strftime('%Y-%m-%d %H:%M UTC')} · {code_version()} · "
                f"{os.cpu_count()} CPUs ({cpu_model()}) · "
                f"[full section]({history_link}#{github_anchor(self.heading)})",
                HEAD_END,
            ]
        )


def code_version() -> str:
    """The commit measured, and whether the provider or DAGs had uncommitted changes (read only)."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "diff", "--name-only", "HEAD", "--", "providers", "dags"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    return f"commit `{commit}`" + (" with uncommitted changes in providers/ or dags/" if dirty else "")


def _module_argv() -> list[str]:
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    name = spec.name if spec is not None else Path(sys.argv[0]).stem
    return [name, *sys.argv[1:]]


def record(report: Report, args: argparse.Namespace) -> str:
    """Print the report; unless --no-record, append its full section to the history file and
    put its headline table in its own block at the head of the results file."""
    text = report.render()
    print("\n" + text, flush=True)
    if not args.no_record:
        results = Path(args.results)
        history = Path(args.history) if args.history else results.with_name(HISTORY_NAME)
        _append_section(history, text)
        link = Path(os.path.relpath(history, results.parent)).as_posix()
        _replace_head_block(results, report.name, report.head_block(link))
        print(f"(appended to {history}; {results} now shows this run's table)", flush=True)
    return text


def head_marker(name: str) -> str:
    return f"<!-- bench:{name} -->"


HEAD_END = "<!-- /bench -->"


def github_anchor(heading: str) -> str:
    """The id GitHub gives a Markdown heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")


def _append_section(path: Path, section: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    new = not path.exists() or path.stat().st_size == 0
    with path.open("a", encoding="utf-8") as out:
        out.write((HISTORY_HEADER if new else "") + "\n" + section)


def _replace_head_block(path: Path, name: str, block: str) -> None:
    """Put ``block`` in place of this benchmark's block (or after the last one, the first time);
    every other line of the file stays as it was."""
    text = path.read_text(encoding="utf-8") if path.exists() else RESULTS_HEADER
    start = head_marker(name)
    if start in text:
        before, rest = text.split(start, 1)
        if HEAD_END not in rest:
            raise ValueError(f"{path}: the block {start} has no closing {HEAD_END}")
        after = rest.split(HEAD_END, 1)[1]
        text = before + block + after
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text, encoding="utf-8")
    partial.replace(path)


RESULTS_HEADER = """# Benchmark results

The latest figures of each benchmark in `benchmarks/` against its target. Each script rewrites its
own table when it runs (`make bench`) and appends its full dated section (machine, versions,
command, every table and note) to [HISTORY.md](HISTORY.md); benchmarks/README.md explains how each
figure is measured and how to read it.
"""

HISTORY_HEADER = """# Benchmark history

Every recorded benchmark run, oldest first: each script appends its full dated section at the end \
(sections marked "by hand" analyse the runs above them); [RESULTS.md](RESULTS.md) gives the latest figures.
"""


def fmt_int(value: float) -> str:
    return f"{round(value):,}"


def fmt(value: float, digits: int = 1) -> str:
    return f"{value:,.{digits}f}"


def met(condition: bool) -> str:
    return "met" if condition else "**missed**"


# --------------------------------------------------------------------------------------------
# Processes
# --------------------------------------------------------------------------------------------
def current_rss_mb() -> float:
    """Resident memory of this process now, in MiB."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mb() -> float:
    """Peak resident memory of this process's own address space so far, in MiB.

    Read from ``VmHWM``, not ``ru_maxrss``: Linux carries the larger of the old and the new
    address space's peak across ``exec``, so a child started by ``subprocess`` from a large
    parent (this benchmark, holding the emulator's catalog) reports the parent's size as its
    ``ru_maxrss``.
    """
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # pragma: no cover - not Linux


def clean_environment() -> dict[str, str]:
    """This process's environment without Airflow, AWS or provider settings."""
    drop = ("AIRFLOW", "_AIRFLOW", "AWS_", "FACEBOOK_CATALOG")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def emit_child_result(result: dict[str, Any]) -> None:
    """A child process's answer: one marked JSON line on stdout."""
    print(RESULT_MARKER + json.dumps(result), flush=True)


def run_child(module: str, args: Sequence[str], env: dict[str, str], timeout: float) -> dict[str, Any]:
    """Run ``python -m module args`` and return the JSON it emitted with :func:`emit_child_result`."""
    completed = subprocess.run(
        [PYTHON, "-m", module, *args],
        env=env,
        cwd=str(REPO_ROOT),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    for line in reversed(completed.stdout.splitlines()):
        if line.startswith(RESULT_MARKER):
            return dict(json.loads(line[len(RESULT_MARKER) :]))
    raise RuntimeError(
        f"{module} {' '.join(args)} exited {completed.returncode} without a result:\n"
        f"{completed.stdout[-3000:]}\n{completed.stderr[-5000:]}"
    )


@contextlib.contextmanager
def managed_processes(log_dir: Path) -> Iterator[ProcessManager]:
    """The e2e harness's process manager: each process in its own group, all stopped at the end."""
    from tests.e2e.conftest import ProcessManager

    processes = ProcessManager(log_dir)
    try:
        yield processes
    finally:
        processes.stop_all(grace=15)


def free_port() -> int:
    from tests.e2e.conftest import free_port as e2e_free_port

    return e2e_free_port()


def wait_for(what: str, probe: Callable[[], Any], timeout: float, interval: float = 0.25) -> Any:
    from tests.e2e.conftest import wait_for as e2e_wait_for

    return e2e_wait_for(what, probe, timeout, interval)


def http_ok(url: str) -> bool:
    from tests.e2e.conftest import http_ok as e2e_http_ok

    return e2e_http_ok(url)


# --------------------------------------------------------------------------------------------
# S3 (moto) and connections
# --------------------------------------------------------------------------------------------
def start_moto(processes: ProcessManager) -> str:
    """A moto S3 server as a subprocess (its CPU is not this process's); returns its endpoint."""
    port = free_port()
    processes.start(
        "moto", [PYTHON, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], clean_environment()
    )
    endpoint = f"http://127.0.0.1:{port}"
    wait_for("the moto S3 server", lambda: http_ok(f"{endpoint}/moto-api/"), 60)
    return endpoint


def aws_environment(endpoint: str) -> dict[str, str]:
    """Fake credentials and an ``aws_default`` Airflow connection that reach the moto server."""
    return {
        "AWS_ACCESS_KEY_ID": AWS_ACCESS_KEY_ID,
        "AWS_SECRET_ACCESS_KEY": AWS_SECRET_ACCESS_KEY,
        "AWS_DEFAULT_REGION": AWS_REGION,
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
        "AIRFLOW_CONN_AWS_DEFAULT": json.dumps(
            {
                "conn_type": "aws",
                "login": AWS_ACCESS_KEY_ID,
                "password": AWS_SECRET_ACCESS_KEY,
                "extra": {"endpoint_url": endpoint, "region_name": AWS_REGION},
            }
        ),
    }


def s3_client(endpoint: str) -> Any:
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=AWS_REGION,
        aws_access_key_id=AWS_ACCESS_KEY_ID,
        aws_secret_access_key=AWS_SECRET_ACCESS_KEY,
    )


def catalog_connection(
    url: str, catalog_id: str, conn_id: str = DEFAULT_CONN_ID, token: str = EMULATOR_TOKEN
) -> dict[str, str]:
    """The ``facebook_catalog`` connection, as an AIRFLOW_CONN_ environment variable."""
    return {
        f"AIRFLOW_CONN_{conn_id.upper()}": json.dumps(
            {
                "conn_type": "facebook_catalog",
                "host": url,
                "password": token,
                "extra": {"catalog_id": catalog_id},
            }
        )
    }


# --------------------------------------------------------------------------------------------
# The Graph API emulator, timed
# --------------------------------------------------------------------------------------------
class ServerTime:
    """Seconds the emulator spent answering Graph calls (body read, parse, validate, answer)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.seconds: dict[str, float] = {}
        self.calls: dict[str, int] = {}

    def reset(self) -> None:
        with self._lock:
            self.seconds.clear()
            self.calls.clear()

    def total(self, endpoint_suffix: str = "") -> float:
        with self._lock:
            return sum(s for path, s in self.seconds.items() if path.endswith(endpoint_suffix))

    def add(self, endpoint: str, seconds: float) -> None:
        with self._lock:
            self.seconds[endpoint] = self.seconds.get(endpoint, 0.0) + seconds
            self.calls[endpoint] = self.calls.get(endpoint, 0) + 1

    def middleware(self) -> Callable[..., Awaitable[web.StreamResponse]]:
        from aiohttp import web

        @web.middleware
        async def timed(
            request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
        ) -> web.StreamResponse:
            if request.path.startswith("/_emulator"):
                return await handler(request)
            started = time.perf_counter()
            try:
                return await handler(request)
            finally:
                self.add(request.path.rsplit("/", 1)[-1], time.perf_counter() - started)

        return timed


def timed_emulator(config: EmulatorConfig) -> tuple[EmulatorServer, ServerTime]:
    """An emulator (own thread and event loop) that also adds up its own time per endpoint."""
    from facebook_catalog.emulator import EmulatorServer

    server = EmulatorServer(config)
    timing = ServerTime()
    server.app.middlewares.append(timing.middleware())
    return server, timing


def emulator_config(**kwargs: Any) -> EmulatorConfig:
    from facebook_catalog.emulator import EmulatorConfig

    return EmulatorConfig(access_tokens=(EMULATOR_TOKEN,), **kwargs)


def quiet_emulator_logs() -> None:
    import logging

    logging.getLogger("facebook_catalog.emulator").setLevel(logging.WARNING)


# --------------------------------------------------------------------------------------------
# Test data: a landing file as the operational DB's export writes it
# --------------------------------------------------------------------------------------------
FEED_COLUMNS = ("id", "title", "description", "link", "image_link", "availability", "price", "brand")
_EN = ("Cotton Shirt", "Slim Jeans", "Running Shoes", "Winter Coat", "Leather Wallet", "Wool Scarf")
_AR = ("قميص قطني", "بنطال جينز", "حذاء رياضي", "معطف شتوي", "محفظة جلدية", "وشاح صوف")
_BRANDS = ("Miswag", "Babylon", "Tigris", "Zagros")


def product_row(i: int) -> list[str]:
    """One product: 40% Arabic titles and descriptions, IQD prices, every field valid."""
    arabic = i % 5 < 2
    name = (_AR if arabic else _EN)[i % 6]
    description = (
        f"{name}، منتج عالي الجودة مع توصيل سريع إلى جميع المحافظات وإرجاع سهل خلال ١٤ يوماً"
        if arabic
        else f"{name}: quality product with fast delivery to every governorate and easy 14-day returns"
    )
    return [
        f"SKU-{i:08d}",
        f"{name} {i % 997}",
        description,
        f"https://shop.example.iq/products/{i}",
        f"https://cdn.example.iq/images/{i % 100_000:06d}.jpg",
        "in stock" if i % 11 else "out of stock",
        f"{(i * 7919) % 400 * 250 + 1000} IQD",
        _BRANDS[i % 4],
    ]


@dataclass(frozen=True)
class FeedFile:
    path: Path
    rows: int
    products: int
    broken_rows: int
    duplicate_rows: int
    bytes: int


def write_feed_csv(
    path: Path, products: int, *, broken_every: int = 1000, duplicate_every: int = 1000
) -> FeedFile:
    """A CSV landing file of ``products`` products, plus one broken row (a price with a currency
    symbol) per ``broken_every`` and one re-sent product (new price, later in the file) per
    ``duplicate_every``, as an hourly export carries them."""
    broken = duplicates = rows = 0
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(FEED_COLUMNS)
        for i in range(products):
            row = product_row(i)
            if broken_every and i % broken_every == broken_every // 2:
                row[6] = f"${(i % 90) + 10}"
                broken += 1
            writer.writerow(row)
            rows += 1
            if duplicate_every and i % duplicate_every == 3:
                again = list(row)
                again[6] = f"{(i * 31) % 400 * 250 + 1000} IQD"
                writer.writerow(again)
                rows += 1
                duplicates += 1
    return FeedFile(path, rows, products, broken, duplicates, path.stat().st_size)
