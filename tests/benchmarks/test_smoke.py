"""Every benchmark script runs end to end on a tiny size, so none of them rots.

Nothing here looks at a figure: a script passes when it exits 0, prints its Markdown table, writes
its block at the head of the results file and appends its section to the history file it was
given (temporary ones, never benchmarks/RESULTS.md or HISTORY.md).
The scripts run at the same time, each in a process group of its own, to keep the wall
time of the suite down; the two that start real Airflow processes need the local PostgreSQL.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = pytest.mark.benchmark_smoke

REPO_ROOT = Path(__file__).resolve().parents[2]
TITLES = {
    "feed_throughput": "Feed throughput and memory",
    "hourly_delta": "Hourly delta against the item ledger",
    "rate_limit_pacing": "Rate-limit pacing",
    "reconcile_readback": "Reconcile read-back",
    "triggerer_footprint": "Triggerer footprint",
    "worker_slot": "Worker-slot time per sync run",
}
TINY = {
    "feed_throughput": ["--size", "300"],
    "hourly_delta": ["--size", "20000"],
    "rate_limit_pacing": ["--calls", "9", "--calls", "17", "--budget", "4", "--target-seconds", "4"],
    "reconcile_readback": ["--size", "3000", "--page-size", "500"],
    "triggerer_footprint": ["--size", "20", "--poll-interval", "1", "--rounds", "5"],
    "worker_slot": ["--processing", "2", "--products", "200", "--poll-interval", "1"],
}
NEEDS_POSTGRES = {"triggerer_footprint", "worker_slot"}
TIMEOUT_SECONDS = 600


@dataclass
class SmokeRun:
    script: str
    popen: subprocess.Popen[bytes] | None
    output: Path
    results: Path
    history: Path
    skipped: str | None = None

    def finish(self) -> tuple[int, str]:
        assert self.popen is not None
        try:
            code = self.popen.wait(timeout=TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            _kill_group(self.popen)
            code = -1
        return code, self.output.read_text(errors="replace")


def _kill_group(popen: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(popen.pid, signal.SIGTERM)
    try:
        popen.wait(timeout=30)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(popen.pid, signal.SIGKILL)
        popen.wait(timeout=10)


def _postgres_problem() -> str | None:
    from benchmarks._airflow import postgres_problem

    return postgres_problem()


@pytest.fixture(scope="module")
def smoke_runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, SmokeRun]]:
    """Start every script at once; each test waits for its own."""
    folder = tmp_path_factory.mktemp("benchmark-smoke")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "_AIRFLOW", "AWS_"))}
    env["PYTHONPATH"] = str(REPO_ROOT)
    problem = _postgres_problem()
    runs: dict[str, SmokeRun] = {}
    for script, args in TINY.items():
        output = folder / f"{script}.out"
        results = folder / f"{script}-RESULTS.md"
        history = folder / f"{script}-HISTORY.md"
        if script in NEEDS_POSTGRES and problem:
            runs[script] = SmokeRun(script, None, output, results, history, skipped=problem)
            continue
        with output.open("wb") as out:
            popen = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    f"benchmarks.{script}",
                    *args,
                    "--results",
                    str(results),
                    "--history",
                    str(history),
                ],
                cwd=REPO_ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        runs[script] = SmokeRun(script, popen, output, results, history)
    try:
        yield runs
    finally:
        for run in runs.values():
            if run.popen is not None and run.popen.poll() is None:
                _kill_group(run.popen)


@pytest.mark.parametrize("script", list(TINY))
def test_benchmark_runs_on_a_tiny_size_and_prints_its_table(
    script: str, smoke_runs: dict[str, SmokeRun]
) -> None:
    run = smoke_runs[script]
    if run.skipped:
        if os.environ.get("CI"):
            pytest.fail(run.skipped)
        pytest.skip(run.skipped)
    code, output = run.finish()
    assert code == 0, f"benchmarks.{script} exited {code}:\n{output[-6000:]}"
    title = TITLES[script]
    assert f"## {title}" in output
    assert "| ---" in output or "| ---:" in output, output[-3000:]
    head = run.results.read_text()
    assert head.startswith("# Benchmark results")
    assert f"<!-- bench:{script} -->\n## {title}\n" in head
    assert "| figure | latest | target | verdict |" in head
    history = run.history.read_text()
    assert history.startswith("# Benchmark history")
    assert f"## {title} — " in history
    assert "Machine: " in history


def test_the_emulator_cost_diagnostic_runs_on_a_tiny_size() -> None:
    """benchmarks/emulator_items_batch.py prints only (it records nothing): it must still run."""
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.emulator_items_batch",
            "--size",
            "300",
            "--batch",
            "100",
            "--repeat",
            "1",
        ],
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    stages = ("| validate |", "| http |", "| http-urlencoded |")
    rows = [line for line in completed.stdout.splitlines() if line.startswith(stages)]
    assert len(rows) == 3, completed.stdout[-3000:]
