"""Shared fixtures. Server fixtures live in tests/fixtures/ and are registered here.

Airflow reads its configuration at import time, so the test environment is set before any test
module imports it: a private AIRFLOW_HOME under .airflow-test/, no example DAGs, this repo's dags/.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
AIRFLOW_HOME = REPO_ROOT / ".airflow-test" / f"home-{os.getpid()}"
AIRFLOW_HOME.mkdir(parents=True, exist_ok=True)
os.environ["AIRFLOW_HOME"] = str(AIRFLOW_HOME)
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
# The DAG folder the tests' Airflow sees: this repo's DAGs plus the example DAG, linked.
DAGS_FOLDER = AIRFLOW_HOME / "dags"
DAGS_FOLDER.mkdir(exist_ok=True)
for _dag_file in [
    *sorted((REPO_ROOT / "dags").glob("*.py")),
    REPO_ROOT / "providers" / "facebook_catalog" / "example_dags" / "example_items_batch.py",
]:
    _link = DAGS_FOLDER / _dag_file.name
    if not _link.exists():
        _link.symlink_to(_dag_file)
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(DAGS_FOLDER)
os.environ.setdefault("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", f"sqlite:///{AIRFLOW_HOME / 'airflow.db'}")
os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "False")
# A failed sync task fails the run at once in tests; production DAGs keep their retries.
os.environ["FACEBOOK_CATALOG_SYNC_RETRIES"] = "0"

pytest_plugins = [
    "tests.fixtures.aiohttp_compat",
    "tests.fixtures.emulator",
    "tests.fixtures.s3",
    "tests.fixtures.airflow",
    "tests.fixtures.databases",
]

TEST_TOKEN = "EAAtest-token-4f1d9c0b7e2a"
TEST_APP_SECRET = "app-secret-93b1c7d5"
TEST_CATALOG_ID = "1234567890"


@pytest.fixture
def catalog_connection(monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """Define the ``facebook_catalog_default`` connection through the environment."""

    def define(
        host: str = "https://graph.example.test",
        token: str = TEST_TOKEN,
        app_secret: str | None = None,
        catalog_id: str = TEST_CATALOG_ID,
        conn_id: str = "facebook_catalog_default",
        api_version: str = "v25.0",
    ) -> None:
        extra = {"catalog_id": catalog_id, "api_version": api_version}
        if app_secret:
            extra["app_secret"] = app_secret
        monkeypatch.setenv(
            f"AIRFLOW_CONN_{conn_id.upper()}",
            json.dumps({"conn_type": "facebook_catalog", "host": host, "password": token, "extra": extra}),
        )

    return define


@pytest.fixture(autouse=True, scope="session")
def one_in_process_execution_api() -> Iterator[None]:
    """dag.test() runs each task against an in-process Execution API, and Airflow builds that whole
    FastAPI app (every API version's routes and pydantic schemas) again for every task: seconds a
    task, which made a DAG run of a dozen tasks take minutes on Python 3.12 (Airflow 3.0.6, 3.2.1).
    The tests share one app; each task still gets its own client."""
    try:
        from airflow.sdk.execution_time import supervisor
    except ImportError:
        yield
        return
    build = supervisor.in_process_api_server
    shared = functools.cache(build)
    supervisor.in_process_api_server = shared
    try:
        yield
    finally:
        supervisor.in_process_api_server = build
