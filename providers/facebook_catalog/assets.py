"""The landing zone as an Airflow Asset, and the Airflow Variables both DAGs read for it.

``catalog_ingest_products`` declares :func:`landing_asset` as an outlet: every run that wrote a
landing file emits an asset event. The sync DAG can be scheduled on the same Asset instead of
its own hourly schedule (see docs/ingestion.md, "Scheduling the sync on the landing Asset").
Both DAGs must build the Asset through :func:`landing_asset` so they name the same one.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import Asset, AssetOrTimeSchedule, CronTriggerTimetable

#: Airflow Variable holding the landing bucket's name; the sync DAG reads the same Variable.
LANDING_BUCKET_VARIABLE = "facebook_catalog_landing_bucket"
DEFAULT_LANDING_BUCKET = "facebook-catalog-landing"
#: The prefix under which landing files wait for the sync (LandingZone's default).
LANDING_PREFIX = "landing/"

#: Airflow Variable choosing how the sync DAG is scheduled: ``hourly`` (default), ``asset`` (on
#: each landing asset event only) or ``asset_or_hourly`` (either: files that other producers drop
#: in landing without an asset event are still picked up within the hour).
SYNC_SCHEDULE_VARIABLE = "facebook_catalog_sync_schedule"
SYNC_SCHEDULE_MODES = ("hourly", "asset", "asset_or_hourly")
DEFAULT_SYNC_SCHEDULE = "hourly"


def landing_asset(bucket: str, prefix: str = LANDING_PREFIX) -> Asset:
    """The Asset for ``s3://<bucket>/<prefix>``: what the ingestion updates and the sync can wait for."""
    if not bucket:
        raise ValueError("the landing bucket name is empty")
    prefix = prefix.strip("/")
    if not prefix:
        raise ValueError("the landing prefix is empty")
    return Asset(uri=f"s3://{bucket}/{prefix}/")


def configured_landing_bucket() -> str:
    """The landing bucket from the ``facebook_catalog_landing_bucket`` Variable, or the default.

    Read when the DAG file is parsed, because an Asset's URI is part of the DAG's structure.
    """
    from airflow.sdk import Variable

    value = Variable.get(LANDING_BUCKET_VARIABLE, default=DEFAULT_LANDING_BUCKET)
    return str(value).strip() or DEFAULT_LANDING_BUCKET


def sync_schedule(hourly: Any, bucket: str, mode: str | None = None) -> Any:
    """The ``schedule=`` for the sync DAG: ``hourly`` as given, or on the landing Asset.

    ``hourly`` is the sync DAG's own schedule (a cron string or a timetable); ``mode`` defaults
    to the ``facebook_catalog_sync_schedule`` Variable (``hourly`` when unset). For
    ``asset_or_hourly`` a cron string becomes a ``CronTriggerTimetable`` in UTC.
    """
    if mode is None:
        from airflow.sdk import Variable

        mode = str(Variable.get(SYNC_SCHEDULE_VARIABLE, default=DEFAULT_SYNC_SCHEDULE))
    mode = mode.strip().lower() or DEFAULT_SYNC_SCHEDULE
    if mode == "hourly":
        return hourly
    asset = landing_asset(bucket)
    if mode == "asset":
        return asset
    if mode == "asset_or_hourly":
        timetable = CronTriggerTimetable(hourly, timezone="UTC") if isinstance(hourly, str) else hourly
        return AssetOrTimeSchedule(timetable=timetable, assets=asset)
    expected = ", ".join(SYNC_SCHEDULE_MODES)
    raise ValueError(f"{SYNC_SCHEDULE_VARIABLE} is {mode!r}; expected one of {expected}")
