"""A one-task DAG the e2e test triggers while the sync task is deferred.

With a single worker slot (Celery concurrency 1, or LocalExecutor parallelism 1) this task can
only run to completion if the deferred task is not holding that slot.
"""

from __future__ import annotations

import os
import socket
import time
from datetime import datetime

from airflow.sdk import DAG, task

with DAG(
    dag_id="e2e_worker_slot_probe",
    schedule=None,
    start_date=datetime(2025, 1, 1),
    catchup=False,
    tags=["e2e"],
):

    @task
    def occupy_worker_slot() -> dict[str, object]:
        started = time.time()
        time.sleep(2)
        return {"host": socket.gethostname(), "pid": os.getpid(), "seconds": round(time.time() - started, 3)}

    occupy_worker_slot()
