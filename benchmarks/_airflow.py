"""Real Airflow processes for the benchmarks, on a fresh PostgreSQL metadata database.

Built on the end-to-end harness in ``tests/e2e/conftest.py`` (its process manager, which stops
every process group it started, its PostgreSQL helpers, its config writer and its access to the
``airflow`` CLI and the metadata DB). Each deployment gets its own AIRFLOW_HOME and database,
dropped at the end.
"""

from __future__ import annotations

import contextlib
import secrets
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from tests.e2e.conftest import (
    AirflowAccess,
    ManagedProcess,
    ProcessManager,
    fresh_postgres_database,
    postgres_problem,
    write_config,
)

from benchmarks._common import AIRFLOW, BENCH_DIR, clean_environment, managed_processes

BENCH_DAGS_DIR = BENCH_DIR / "dags"


@dataclass
class AirflowDeployment(AirflowAccess):
    home: Path
    env: dict[str, str]
    db_url: str
    processes: ProcessManager
    cli_timeout: ClassVar[float] = 300

    def start(self, name: str, *args: str) -> ManagedProcess:
        return self.processes.start(name, [AIRFLOW, *args], self.env)

    def check_alive(self, *names: str) -> bool:
        for name in names or tuple(self.processes.names()):
            proc = self.processes[name]
            if not proc.alive():
                raise RuntimeError(
                    f"{name} exited with {proc.popen.returncode}:\n{self.processes.tail(name, 60)}"
                )
        return True


def _fernet_key() -> str:
    from cryptography.fernet import Fernet

    return Fernet.generate_key().decode()


@contextlib.contextmanager
def airflow_deployment(
    tmp: Path,
    name: str,
    dag_files: Sequence[Path],
    settings: dict[str, dict[str, Any]],
    extra_env: dict[str, str],
) -> Iterator[AirflowDeployment]:
    """A migrated metadata DB, a config and a DAG folder; processes are started by the caller.

    Everything started through ``deployment.start`` is stopped, and the database dropped, on exit.
    """
    problem = postgres_problem()
    if problem:
        raise RuntimeError(f"the benchmark needs {problem} (.ci/run starts it)")
    home = tmp / f"airflow-{name}"
    home.mkdir(parents=True)
    dags_folder = home / "dags"
    dags_folder.mkdir()
    for path in dag_files:
        (dags_folder / path.name).symlink_to(path)
    with contextlib.ExitStack() as stack:
        db_url = stack.enter_context(
            fresh_postgres_database(f"fbcatalog_bench_{name}_{uuid.uuid4().hex[:10]}")
        )
        processes = stack.enter_context(managed_processes(home / "process-logs"))
        merged: dict[str, dict[str, Any]] = {
            "core": {
                "dags_folder": dags_folder,
                "load_examples": "False",
                "default_task_retries": 0,
            },
            "database": {"sql_alchemy_conn": db_url},
            "logging": {"base_log_folder": home / "logs"},
        }
        for section, options in settings.items():
            merged.setdefault(section, {}).update(options)
        config_path = write_config(home, merged, "benchmarks/_airflow.py for one benchmark run")
        env = {
            **clean_environment(),
            "AIRFLOW_HOME": str(home),
            "AIRFLOW_CONFIG": str(config_path),
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
            "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
            "AIRFLOW__CORE__FERNET_KEY": _fernet_key(),
            **extra_env,
        }
        deployment = AirflowDeployment(home=home, env=env, db_url=db_url, processes=processes)
        try:
            deployment.cli("db", "migrate", timeout=600)
            yield deployment
        finally:
            deployment.dispose_engine()
