"""Harness for the multi-process end-to-end test: real Airflow 3 processes on this machine.

``airflow_cluster`` (parametrize it indirectly with ``"celery"`` or ``"local"``) gives a running
deployment, every process a subprocess in its own process group with its log in a file:

* a fresh PostgreSQL database as the metadata DB (dropped at the end), ``airflow db migrate``;
* ``airflow api-server`` (the UI/REST API and the execution API the workers and the triggerer
  talk to), ``airflow scheduler``, ``airflow dag-processor``, ``airflow triggerer``;
* CeleryExecutor: ``airflow celery worker --concurrency 1`` on a queue of its own, the local
  Redis as broker and ``db+postgresql`` as result backend; LocalExecutor: parallelism 1;
* a moto S3 server (``python -m moto.server``) and the Graph API emulator
  (``python -m facebook_catalog.emulator --processing-seconds 30``), also as subprocesses.

Every process is stopped at teardown, also when the test fails or the run is interrupted:
SIGTERM to its process group, then SIGKILL to the group and to every descendant seen, so nothing
that a process spawned in a session of its own outlives the test either.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, ClassVar, TypeVar

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
BIN_DIR = Path(sys.executable).parent
AIRFLOW = str(BIN_DIR / "airflow")
PROBE_DAGS_DIR = Path(__file__).resolve().parent / "dags"

PG_HOST = os.environ.get("FB_CATALOG_E2E_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("FB_CATALOG_E2E_PG_PORT", "5432"))
PG_USER = os.environ.get("FB_CATALOG_E2E_PG_USER", "postgres")
REDIS_HOST = os.environ.get("FB_CATALOG_E2E_REDIS_HOST", "127.0.0.1")
REDIS_PORT = int(os.environ.get("FB_CATALOG_E2E_REDIS_PORT", "6379"))
# Redis database the Celery broker uses; its keys are namespaced by a queue of our own anyway.
REDIS_DB = int(os.environ.get("FB_CATALOG_E2E_REDIS_DB", "13"))

EMULATOR_TOKEN = "EAAe2e-system-user-token-7c41"
EMULATOR_APP_SECRET = "e2e-app-secret-52d9"
CATALOG_ID = "880011"
PROCESSING_SECONDS = 30.0
AWS_REGION = "us-east-1"
LANDING_BUCKET = "e2e-catalog-landing"
SYNCED_BUCKET = "e2e-catalog-synced-products"

T = TypeVar("T")


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port() -> int:
    """A free loopback port below the kernel's ephemeral range. Ports in that range are what
    bind(0) and every outgoing connection take, so one picked there can be taken by any
    connection before its server binds it (seen: the api-server, started minutes after its port
    was picked, behind the DB migration, exited with "address already in use")."""
    high = _ephemeral_low()
    low = max(10_000, high - 20_000)
    rng = secrets.SystemRandom()
    for _ in range(100):
        port = rng.randrange(low, high)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Abort(Exception):
    """Raised by a ``wait_for`` probe when waiting longer cannot help (the run already failed)."""


def wait_for(what: str, probe: Callable[[], T | None], timeout: float, interval: float = 0.5) -> T:
    """Call ``probe`` until it returns something other than None/False; fail after ``timeout``.

    Errors from the probe count as "not yet" (a server that is still starting refuses
    connections), except :class:`Abort` and assertion errors, which end the wait at once.
    """
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        try:
            value = probe()
        except (Abort, AssertionError):
            raise
        except Exception as exc:
            last_error = exc
            value = None
        if value is not None and value is not False:
            return value
        if time.monotonic() > deadline:
            detail = f" (last error: {last_error!r})" if last_error else ""
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}{detail}")
        time.sleep(interval)


def http_json(url: str, timeout: float = 5.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.loads(response.read())


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return 200 <= response.status < 300
    except (OSError, urllib.error.URLError):
        return False


# Processes


@dataclass
class ManagedProcess:
    name: str
    cmd: list[str]
    popen: subprocess.Popen[bytes]
    log_path: Path
    log_file: IO[bytes]
    started_at: float
    # Every descendant pid seen while it ran: killed too at the end, whatever session it is in.
    descendants: set[int] = field(default_factory=set)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None


class ProcessManager:
    """Starts subprocesses, each in its own process group (a new session), and ends every one."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self._procs: dict[str, ManagedProcess] = {}
        self._finished: list[ManagedProcess] = []
        self._lock = threading.Lock()

    def start(
        self, name: str, cmd: list[str], env: dict[str, str], cwd: Path | None = None
    ) -> ManagedProcess:
        with self._lock:
            if name in self._procs and self._procs[name].alive():
                raise RuntimeError(f"{name} is already running (pid {self._procs[name].pid})")
            log_path = self.log_dir / f"{name}.log"
            log_file = log_path.open("ab")
            log_file.write(f"\n===== {time.strftime('%H:%M:%S')} starting: {' '.join(cmd)}\n".encode())
            log_file.flush()
            popen = subprocess.Popen(
                cmd,
                env=env,
                cwd=str(cwd) if cwd else None,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own session and process group: killpg reaches its children
            )
            if name in self._procs:
                self._finished.append(self._procs[name])
            proc = ManagedProcess(name, cmd, popen, log_path, log_file, time.time())
            self._procs[name] = proc
            return proc

    def names(self) -> list[str]:
        return list(self._procs)

    def __getitem__(self, name: str) -> ManagedProcess:
        return self._procs[name]

    def remember_descendants(self) -> None:
        """Note every process's current descendants (called often, so short-lived ones are seen too)."""
        import psutil

        with self._lock:
            procs = list(self._procs.values())
        for proc in procs:
            if not proc.alive():
                continue
            with contextlib.suppress(psutil.Error):
                proc.descendants.update(c.pid for c in psutil.Process(proc.pid).children(recursive=True))

    def kill(self, name: str, sig: signal.Signals = signal.SIGKILL) -> None:
        """Send ``sig`` to the whole process group of ``name`` (SIGKILL: a crash, no cleanup)."""
        proc = self._procs[name]
        self.remember_descendants()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        if sig == signal.SIGKILL:
            self._kill_descendants(proc)
            proc.popen.wait(timeout=30)

    def stop(self, name: str, grace: float = 20.0) -> None:
        self._stop(self._procs[name], grace)

    def stop_all(self, grace: float = 20.0) -> list[str]:
        """Stop everything, newest first; returns the names of processes that needed SIGKILL."""
        self.remember_descendants()
        forced: list[str] = []
        for proc in reversed([*self._finished, *self._procs.values()]):
            if self._stop(proc, grace):
                forced.append(proc.name)
        return forced

    def _stop(self, proc: ManagedProcess, grace: float) -> bool:
        import psutil

        forced = False
        with contextlib.suppress(psutil.Error):
            if proc.alive():
                proc.descendants.update(c.pid for c in psutil.Process(proc.pid).children(recursive=True))
        if proc.alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.popen.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                forced = True
        # The group leader may be gone while children it left in the group are not.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.popen.wait(timeout=10)
        self._kill_descendants(proc)
        with contextlib.suppress(OSError):
            proc.log_file.close()
        return forced

    @staticmethod
    def _kill_descendants(proc: ManagedProcess) -> None:
        import psutil

        for pid in proc.descendants:
            with contextlib.suppress(psutil.Error):
                child = psutil.Process(pid)
                # pids are reused: only kill what is still one of ours (same session/group or a child)
                if child.create_time() >= proc.started_at - 1:
                    child.kill()

    def survivors(self) -> list[int]:
        """Pids of managed processes or their recorded descendants that still exist."""
        import psutil

        alive = []
        for proc in [*self._finished, *self._procs.values()]:
            for pid in {proc.pid, *proc.descendants}:
                with contextlib.suppress(psutil.Error):
                    p = psutil.Process(pid)
                    if p.status() != psutil.STATUS_ZOMBIE and p.create_time() >= proc.started_at - 1:
                        alive.append(pid)
        return alive

    def tail(self, name: str, lines: int = 60) -> str:
        path = self.log_dir / f"{name}.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def logs(self) -> list[Path]:
        return sorted(self.log_dir.glob("*.log"))


# The metadata DB and the broker


def _pg_admin_connect() -> Any:
    import psycopg2

    conn = psycopg2.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname="postgres", connect_timeout=5)
    conn.autocommit = True
    return conn


def postgres_problem() -> str | None:
    """Why the local PostgreSQL cannot be used (None when it can)."""
    try:
        _pg_admin_connect().close()
    except Exception as exc:
        return f"PostgreSQL at {PG_HOST}:{PG_PORT} ({exc})"
    return None


def _services_missing() -> list[str]:
    missing = []
    problem = postgres_problem()
    if problem:
        missing.append(problem)
    try:
        import redis

        redis.Redis(host=REDIS_HOST, port=REDIS_PORT, socket_connect_timeout=3).ping()
    except Exception as exc:
        missing.append(f"Redis at {REDIS_HOST}:{REDIS_PORT} ({exc})")
    return missing


@contextlib.contextmanager
def fresh_postgres_database(name: str) -> Iterator[str]:
    """CREATE DATABASE for one test; DROP ... WITH (FORCE) at the end. Yields the SQLAlchemy URL."""
    conn = _pg_admin_connect()
    try:
        with conn.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{name}"')
    finally:
        conn.close()
    try:
        yield f"postgresql+psycopg2://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"
    finally:
        conn = _pg_admin_connect()
        try:
            with conn.cursor() as cur:
                cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            conn.close()


def _delete_redis_keys(queue: str) -> None:
    import redis

    client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=REDIS_DB, socket_connect_timeout=3)
    # The queue itself, its priority variants and the unacked bookkeeping kombu keeps for it.
    names = list(client.scan_iter(match=f"*{queue}*"))
    if names:
        client.delete(*names)


# Observing the metadata DB


@dataclass(frozen=True)
class Transition:
    at: float  # time.time() of the poll that first saw the state
    dag_id: str
    run_id: str
    task_id: str
    try_number: int
    state: str | None


class StateRecorder(threading.Thread):
    """Polls every task instance's state from the metadata DB and keeps each change with its time."""

    def __init__(self, db_url: str, processes: ProcessManager, interval: float = 0.25) -> None:
        super().__init__(name="e2e-state-recorder", daemon=True)
        self.db_url = db_url
        self.processes = processes
        self.interval = interval
        self.transitions: list[Transition] = []
        # (time, trigger id, triggerer job id) each time a trigger appears or changes triggerer.
        self.trigger_assignments: list[tuple[float, int, int | None]] = []
        self._last: dict[tuple[str, str, str], tuple[int, str | None]] = {}
        self._last_assignment: dict[int, int | None] = {}
        self._stop_event = threading.Event()
        self.errors = 0

    def run(self) -> None:
        from sqlalchemy import create_engine, text
        from sqlalchemy.pool import NullPool

        engine = create_engine(self.db_url, poolclass=NullPool)
        query = text("SELECT dag_id, run_id, task_id, try_number, state FROM task_instance")
        triggers = text("SELECT id, triggerer_id FROM trigger")
        try:
            while not self._stop_event.is_set():
                try:
                    with engine.connect() as conn:
                        rows = conn.execute(query).all()
                        assignments = conn.execute(triggers).all()
                except Exception:
                    self.errors += 1
                    rows, assignments = [], []
                now = time.time()
                for trigger_id, triggerer_id in assignments:
                    if (
                        trigger_id not in self._last_assignment
                        or self._last_assignment[trigger_id] != triggerer_id
                    ):
                        self._last_assignment[trigger_id] = triggerer_id
                        self.trigger_assignments.append((now, trigger_id, triggerer_id))
                for dag_id, run_id, task_id, try_number, state in rows:
                    key = (dag_id, run_id, task_id)
                    value = (int(try_number or 0), state)
                    if self._last.get(key) != value:
                        self._last[key] = value
                        self.transitions.append(Transition(now, dag_id, run_id, task_id, *value))
                self.processes.remember_descendants()
                self._stop_event.wait(self.interval)
        finally:
            engine.dispose()

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=10)

    def of(self, dag_id: str, task_id: str) -> list[Transition]:
        return [t for t in list(self.transitions) if t.dag_id == dag_id and t.task_id == task_id]


# The cluster


class AirflowAccess:
    """The ``airflow`` CLI and the metadata DB of one deployment, from its ``env`` and ``db_url``.

    Shared by :class:`AirflowCluster` and the benchmarks' ``AirflowDeployment`` (benchmarks/).
    """

    env: dict[str, str]
    db_url: str
    #: Seconds an ``airflow`` command may take when the call does not say.
    cli_timeout: ClassVar[float] = 180
    _engine: Any = None

    def cli(self, *args: str, timeout: float | None = None) -> str:
        """Run an ``airflow`` CLI command with the deployment's configuration; return its output."""
        result = subprocess.run(
            [AIRFLOW, *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=self.cli_timeout if timeout is None else timeout,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"airflow {' '.join(args)} exited {result.returncode}:\n{result.stdout[-3000:]}\n"
                f"{result.stderr[-3000:]}"
            )
        return result.stdout

    @property
    def engine(self) -> Any:
        if self._engine is None:
            from sqlalchemy import create_engine
            from sqlalchemy.pool import NullPool

            self._engine = create_engine(self.db_url, poolclass=NullPool)
        return self._engine

    def query(self, sql: str, **params: Any) -> list[dict[str, Any]]:
        from sqlalchemy import text

        with self.engine.connect() as conn:
            return [dict(row._mapping) for row in conn.execute(text(sql), params)]

    def dispose_engine(self) -> None:
        """Close the metadata DB connections, if any were opened (before the database is dropped)."""
        if self._engine is not None:
            self._engine.dispose()


@dataclass
class AirflowCluster(AirflowAccess):
    executor: str
    home: Path
    env: dict[str, str]
    db_url: str
    api_url: str
    emulator_url: str
    s3_endpoint: str
    queue: str
    processes: ProcessManager
    recorder: StateRecorder | None = None

    # Running things

    def check_alive(self, *, except_: tuple[str, ...] = ()) -> bool:
        """Abort the test at once, with the log's tail, when a process it relies on has exited."""
        for name in self.processes.names():
            if name in except_:
                continue
            proc = self.processes[name]
            if not proc.alive():
                raise Abort(f"{name} exited with {proc.popen.returncode}:\n{self.processes.tail(name, 80)}")
        return True

    def start_triggerer(self) -> ManagedProcess:
        return self.processes.start("triggerer", [AIRFLOW, "triggerer"], self.env)

    def latest_triggerer_job(self) -> int | None:
        rows = self.query("SELECT id FROM job WHERE job_type = 'TriggererJob' ORDER BY id DESC LIMIT 1")
        return int(rows[0]["id"]) if rows else None

    def triggerer_job_alive(self, after: float) -> bool:
        """A TriggererJob started after ``after`` (epoch seconds) is running and heartbeating."""
        rows = self.query(
            "SELECT state, latest_heartbeat, start_date FROM job WHERE job_type = 'TriggererJob' "
            "ORDER BY id DESC LIMIT 1"
        )
        return bool(rows) and rows[0]["state"] == "running" and rows[0]["start_date"].timestamp() >= after

    # Reading the metadata DB

    def dag_ids(self) -> set[str]:
        return {r["dag_id"] for r in self.query("SELECT dag_id FROM dag WHERE is_stale IS NOT TRUE")}

    def dag_runs(self, dag_id: str) -> list[dict[str, Any]]:
        return self.query(
            "SELECT run_id, state, run_type, start_date, end_date FROM dag_run WHERE dag_id = :d ORDER BY id",
            d=dag_id,
        )

    def task_instances(self, dag_id: str, run_id: str) -> dict[str, dict[str, Any]]:
        rows = self.query(
            "SELECT task_id, state, try_number, start_date, end_date, queued_dttm, hostname, "
            "next_method, trigger_id FROM task_instance WHERE dag_id = :d AND run_id = :r",
            d=dag_id,
            r=run_id,
        )
        return {r["task_id"]: r for r in rows}

    def ti_state(self, dag_id: str, run_id: str, task_id: str) -> str | None:
        ti = self.task_instances(dag_id, run_id).get(task_id)
        return ti["state"] if ti else None

    # The servers around Airflow

    def emulator_calls(self) -> list[dict[str, Any]]:
        return list(http_json(f"{self.emulator_url}/_emulator/calls")["calls"])

    def emulator_items(self, catalog_id: str = CATALOG_ID) -> dict[str, dict[str, Any]]:
        return dict(http_json(f"{self.emulator_url}/_emulator/catalogs/{catalog_id}/items")["items"])

    def s3(self) -> Any:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.s3_endpoint,
            region_name=AWS_REGION,
            aws_access_key_id="e2e-access-key-id",
            aws_secret_access_key="e2e-secret-access-key",
        )

    def s3_keys(self, bucket: str, prefix: str = "") -> list[str]:
        paginator = self.s3().get_paginator("list_objects_v2")
        pages = paginator.paginate(Bucket=bucket, Prefix=prefix)
        return sorted(obj["Key"] for page in pages for obj in page.get("Contents", []))


def _base_env() -> dict[str, str]:
    """This process's environment without any Airflow or AWS setting the test session made."""
    drop_prefixes = ("AIRFLOW", "_AIRFLOW", "AWS_", "FACEBOOK_CATALOG")
    return {k: v for k, v in os.environ.items() if not k.startswith(drop_prefixes)}


def write_config(home: Path, settings: dict[str, dict[str, Any]], written_by: str) -> Path:
    """``airflow.cfg`` in ``home`` from ``{section: {option: value}}``, headed by who wrote it."""
    lines = [f"# Written by {written_by}."]
    for section, options in settings.items():
        lines.append(f"\n[{section}]")
        lines.extend(f"{key} = {value}" for key, value in options.items())
    path = home / "airflow.cfg"
    path.write_text("\n".join(lines) + "\n")
    return path


def _link_dags(dags_folder: Path) -> None:
    dags_folder.mkdir(parents=True, exist_ok=True)
    files = [
        *sorted((REPO_ROOT / "dags").glob("*.py")),
        REPO_ROOT / "providers" / "facebook_catalog" / "example_dags" / "example_items_batch.py",
        *sorted(PROBE_DAGS_DIR.glob("*.py")),
    ]
    for path in files:
        (dags_folder / path.name).symlink_to(path)


def _install_sigterm_handler() -> Callable[[], None]:
    """Turn SIGTERM into SystemExit while the cluster runs, so ``finally`` still stops it."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def handler(signum: int, frame: Any) -> None:
        raise SystemExit(f"received signal {signum}; stopping the e2e cluster")

    previous = signal.signal(signal.SIGTERM, handler)
    return lambda: signal.signal(signal.SIGTERM, previous)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Keep each phase's report on the test item, so the fixture knows whether the test failed."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    setattr(item, f"e2e_report_{report.when}", report)


@pytest.fixture
def airflow_cluster(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AirflowCluster]:
    executor = str(getattr(request, "param", "celery"))
    if executor not in ("celery", "local"):
        raise ValueError(f"executor must be 'celery' or 'local', not {executor!r}")
    missing = _services_missing()
    if missing:
        message = "the e2e test needs " + " and ".join(missing) + " (.ci/run starts them)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)

    run_token = uuid.uuid4().hex[:10]
    home = tmp_path_factory.mktemp(f"airflow-e2e-{executor}")
    processes = ProcessManager(home / "process-logs")
    queue = f"fbcatalog-e2e-{run_token}"
    started_at = time.monotonic()
    cluster: AirflowCluster | None = None
    restore_signal = _install_sigterm_handler()
    try:
        # Undone in reverse order: processes stop, then the DB is dropped, then the broker cleaned.
        with contextlib.ExitStack() as cleanup:
            cleanup.callback(_delete_redis_keys, queue)
            db_url = cleanup.enter_context(fresh_postgres_database(f"fbcatalog_e2e_{executor}_{run_token}"))
            cleanup.callback(_stop_everything, processes, executor)
            cluster = _start_cluster(executor, home, db_url, queue, processes)
            cleanup.callback(_stop_recorder, cluster)
            print(
                f"\n[e2e] {executor}: cluster up in {time.monotonic() - started_at:.1f} s "
                f"(AIRFLOW_HOME {home}, metadata DB {db_url.rsplit('/', 1)[-1]})"
            )
            yield cluster
    finally:
        restore_signal()
        failed = any(
            getattr(getattr(request.node, f"e2e_report_{when}", None), "failed", False)
            for when in ("setup", "call")
        )
        if failed or cluster is None:
            sys.stdout.write("\n" + _diagnostics(processes))
            print(f"[e2e] {executor}: logs kept in {home}")
        elif not os.environ.get("FB_CATALOG_E2E_KEEP_HOME"):
            shutil.rmtree(home, ignore_errors=True)
        print(f"[e2e] {executor}: total time with setup and teardown {time.monotonic() - started_at:.1f} s")
    leftovers = processes.survivors()
    assert not leftovers, f"processes survived the e2e teardown: {leftovers}"


def _stop_recorder(cluster: AirflowCluster) -> None:
    if cluster.recorder is not None:
        cluster.recorder.stop()
    cluster.dispose_engine()


def _stop_everything(processes: ProcessManager, executor: str) -> None:
    forced = processes.stop_all()
    print(f"[e2e] {executor}: stopped every process; needed SIGKILL after SIGTERM: {forced or 'none'}")


def _diagnostics(processes: ProcessManager, lines: int = 40) -> str:
    parts = []
    for path in processes.logs():
        parts.append(f"----- {path.name} (last {lines} lines) -----\n{processes.tail(path.stem, lines)}")
    return "\n".join(parts) + "\n"


def _start_cluster(
    executor: str, home: Path, db_url: str, queue: str, processes: ProcessManager
) -> AirflowCluster:
    # Servers the DAG talks to: moto S3 and the Graph API emulator.
    base_env = _base_env()
    s3_port, emulator_port, api_port = free_port(), free_port(), free_port()
    moto_cmd = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(s3_port)]
    processes.start("moto", moto_cmd, base_env)
    processes.start(
        "emulator",
        [
            sys.executable,
            "-m",
            "facebook_catalog.emulator",
            "--port",
            str(emulator_port),
            "--processing-seconds",
            str(PROCESSING_SECONDS),
            "--token",
            EMULATOR_TOKEN,
            "--app-secret",
            EMULATOR_APP_SECRET,
        ],
        base_env,
    )
    s3_endpoint = f"http://127.0.0.1:{s3_port}"
    emulator_url = f"http://127.0.0.1:{emulator_port}"
    api_url = f"http://127.0.0.1:{api_port}"

    dags_folder = home / "dags"
    _link_dags(dags_folder)
    settings: dict[str, dict[str, Any]] = {
        "core": {
            "dags_folder": dags_folder,
            "executor": "CeleryExecutor" if executor == "celery" else "LocalExecutor",
            # LocalExecutor: one task process at a time. Celery: the worker's one slot is the limit.
            "parallelism": 1 if executor == "local" else 8,
            "load_examples": "False",
            "dags_are_paused_at_creation": "True",
            "execution_api_server_url": f"{api_url}/execution/",
            "default_task_retries": 0,
        },
        "database": {"sql_alchemy_conn": db_url},
        "api": {"host": "127.0.0.1", "port": api_port, "base_url": api_url, "workers": 1},
        "logging": {
            "base_log_folder": home / "logs",
            "worker_log_server_port": free_port(),
            "trigger_log_server_port": free_port(),
        },
        "scheduler": {"scheduler_idle_sleep_time": 0.5},
        "dag_processor": {"refresh_interval": 5, "min_file_process_interval": 30},
        # A killed triggerer's triggers go to the next triggerer once its heartbeat is this old.
        "triggerer": {"job_heartbeat_sec": 1, "triggerer_health_check_threshold": 8},
        "celery": {
            "broker_url": f"redis://{REDIS_HOST}:{REDIS_PORT}/{REDIS_DB}",
            "result_backend": "db+" + db_url.replace("+psycopg2", ""),
            "worker_concurrency": 1,
        },
        "operators": {"default_queue": queue},
    }
    config_path = write_config(home, settings, "tests/e2e/conftest.py for one end-to-end test run")
    env = {
        **base_env,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW_CONFIG": str(config_path),
        "PYTHONUNBUFFERED": "1",
        # Secrets every component must share, passed as a deployment passes them: in the environment.
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
        "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
        "AIRFLOW__CORE__FERNET_KEY": _fernet_key(),
        # Connections and Variables the sync DAG reads.
        "AIRFLOW_CONN_FACEBOOK_CATALOG_DEFAULT": json.dumps(
            {
                "conn_type": "facebook_catalog",
                "host": emulator_url,
                "password": EMULATOR_TOKEN,
                "extra": {"catalog_id": CATALOG_ID, "app_secret": EMULATOR_APP_SECRET},
            }
        ),
        "AIRFLOW_CONN_AWS_DEFAULT": json.dumps(
            {
                "conn_type": "aws",
                "login": "e2e-access-key-id",
                "password": "e2e-secret-access-key",
                "extra": {"endpoint_url": s3_endpoint, "region_name": AWS_REGION},
            }
        ),
        "AIRFLOW_VAR_FACEBOOK_CATALOG_LANDING_BUCKET": LANDING_BUCKET,
        "AIRFLOW_VAR_FACEBOOK_CATALOG_SYNCED_BUCKET": SYNCED_BUCKET,
        "AIRFLOW_VAR_FACEBOOK_CATALOG_POLL_INTERVAL": "2",
        "FACEBOOK_CATALOG_SYNC_RETRIES": "0",
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
        "AWS_DEFAULT_REGION": AWS_REGION,
    }
    cluster = AirflowCluster(
        executor=executor,
        home=home,
        env=env,
        db_url=db_url,
        api_url=api_url,
        emulator_url=emulator_url,
        s3_endpoint=s3_endpoint,
        queue=queue,
        processes=processes,
    )
    cluster.cli("db", "migrate", timeout=400)

    processes.start("api-server", [AIRFLOW, "api-server", "--port", str(api_port)], env)
    processes.start("scheduler", [AIRFLOW, "scheduler"], env)
    processes.start("dag-processor", [AIRFLOW, "dag-processor"], env)
    cluster.start_triggerer()
    if executor == "celery":
        processes.start(
            "celery-worker",
            [
                AIRFLOW,
                "celery",
                "worker",
                "--concurrency",
                "1",
                "--queues",
                queue,
                "--celery-hostname",
                f"{queue}@%h",
                "--without-gossip",
                "--without-mingle",
            ],
            env,
        )

    wait_for("the moto S3 server", lambda: http_ok(f"{s3_endpoint}/moto-api/"), 60)
    wait_for("the Graph API emulator", lambda: http_ok(f"{emulator_url}/_emulator/health"), 60)
    wait_for(
        "the api-server",
        lambda: cluster.check_alive() and http_ok(f"{api_url}/api/v2/monitor/health"),
        120,
    )
    s3 = cluster.s3()
    for bucket in (LANDING_BUCKET, SYNCED_BUCKET):
        s3.create_bucket(Bucket=bucket)
    cluster.recorder = StateRecorder(db_url, processes)
    cluster.recorder.start()
    return cluster


def _fernet_key() -> str:
    from cryptography.fernet import Fernet

    return Fernet.generate_key().decode()
