"""The Airflow names that moved between the versions this provider supports (3.0.6 to 3.3.x).

The rule: what ``airflow.sdk`` has on every supported version (DAG, BaseOperator, Asset, ...) comes
from ``airflow.sdk``; a name that moved and that ``airflow.providers.common.compat.sdk`` offers
(BaseHook, TaskDeferred, mask_secret, ...) comes from there; the few it does not offer are here,
the only module of ours that picks an import by Airflow version: the timetables (public in
``airflow.sdk`` from 3.1 only), the DagBag the deployment checks parse the DAG folder with
(``airflow.dag_processing.dagbag`` from 3.1, ``airflow.models.dagbag`` before), and reading a
Variable in any process (:func:`get_variable`, for the failure callback).
"""

from __future__ import annotations

import importlib
import sys
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_1_PLUS

if TYPE_CHECKING or AIRFLOW_V_3_1_PLUS:
    from airflow.sdk import AssetOrTimeSchedule, CronDataIntervalTimetable, CronTriggerTimetable
else:  # Airflow 3.0
    from airflow.timetables.assets import AssetOrTimeSchedule
    from airflow.timetables.interval import CronDataIntervalTimetable
    from airflow.timetables.trigger import CronTriggerTimetable

__all__ = [
    "AssetOrTimeSchedule",
    "CronDataIntervalTimetable",
    "CronTriggerTimetable",
    "dag_bag",
    "get_variable",
]


def dag_bag(**kwargs: Any) -> Any:
    """A ``DagBag(**kwargs)``, imported on call (it loads the scheduler side of Airflow)."""
    module = "airflow.dag_processing.dagbag" if AIRFLOW_V_3_1_PLUS else "airflow.models.dagbag"
    return importlib.import_module(module).DagBag(**kwargs)


def get_variable(key: str) -> str | None:
    """The Variable ``key`` (None when unset), in whatever Airflow process calls it.

    A task, the DAG processor and the triggerer have a supervisor, and ``airflow.sdk.Variable``
    asks it. The process running ``dag.test()`` (``airflow dags test``) runs the DAG's failure
    callback itself, after its tasks, with no supervisor: there ``airflow.sdk.Variable.get`` sees
    only environment variables and external secrets backends, never the metadata database, and
    answers "not found" (3.1+) or raises (3.0, which then asks a supervisor that does not exist).
    The core ``airflow.models.Variable.get`` reads the database in such a process, so it is the
    fallback; where a supervisor exists the SDK is used, as Airflow's own shim does.
    """
    task_runner = sys.modules.get("airflow.sdk.execution_time.task_runner")
    if getattr(task_runner, "SUPERVISOR_COMMS", None) is not None:
        from airflow.sdk import Variable

        value = Variable.get(key, default=None)
    else:
        from airflow.models.variable import Variable as CoreVariable

        value = CoreVariable.get(key, default_var=None)
    return None if value is None else str(value)
