"""The Airflow names that moved between the versions this provider supports (3.0.6 to 3.3.x).

The rule: a name ``airflow.providers.common.compat.sdk`` offers (BaseHook, BaseOperator,
TaskDeferred, Variable, mask_secret, ...) is imported from there, everywhere. The few it does not
offer are here, and this is the only module of ours that picks an import by Airflow version:
the timetables (public in ``airflow.sdk`` from 3.1 only) and the DagBag the deployment checks
parse the DAG folder with (``airflow.dag_processing.dagbag`` from 3.1, ``airflow.models.dagbag``
before).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_1_PLUS

if TYPE_CHECKING or AIRFLOW_V_3_1_PLUS:
    from airflow.sdk import AssetOrTimeSchedule, CronDataIntervalTimetable, CronTriggerTimetable
else:  # Airflow 3.0
    from airflow.timetables.assets import AssetOrTimeSchedule
    from airflow.timetables.interval import CronDataIntervalTimetable
    from airflow.timetables.trigger import CronTriggerTimetable

__all__ = ["AssetOrTimeSchedule", "CronDataIntervalTimetable", "CronTriggerTimetable", "dag_bag"]


def dag_bag(**kwargs: Any) -> Any:
    """A ``DagBag(**kwargs)``, imported on call (it loads the scheduler side of Airflow)."""
    if AIRFLOW_V_3_1_PLUS:
        from airflow.dag_processing.dagbag import DagBag
    else:  # Airflow 3.0
        from airflow.models.dagbag import DagBag
    return DagBag(**kwargs)
