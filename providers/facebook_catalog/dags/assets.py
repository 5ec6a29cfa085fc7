"""The landing zone as an Airflow Asset, and the parse-time settings both DAGs share for it.

``catalog_ingest_products`` declares :func:`landing_asset` as an outlet: every run that wrote a
landing file emits an asset event. The sync DAG can be scheduled on the same Asset instead of
its own hourly schedule (:func:`sync_schedule`; docs/ingestion.md, "The landing Asset").

An Asset and a schedule are part of a DAG's structure, fixed when the DAG file is parsed, while
Airflow Variables are read when tasks run (never at parse time: that would cost the DAG
processor a metadata round trip per parse). So the Asset's bucket comes from the environment
variable ``FACEBOOK_CATALOG_LANDING_BUCKET``, and both DAGs build the Asset through
:func:`configured_landing_asset`, which makes them name the same Asset by construction. The
bucket the tasks actually read and write is the ``facebook_catalog_landing_bucket`` Variable,
resolved at run time; set both to the same bucket so the Asset's URI names the real one.
"""

from __future__ import annotations

import os
import re
from typing import Any

from airflow.sdk import Asset

from facebook_catalog.compat import AssetOrTimeSchedule, CronTriggerTimetable
from facebook_catalog.storage.landing_zone import LANDING_PREFIX
from facebook_catalog.storage.s3 import normalize_prefix

__all__ = [
    "DEFAULT_LANDING_BUCKET",
    "LANDING_BUCKET_ENV",
    "LANDING_BUCKET_VARIABLE",
    "LANDING_PREFIX",
    "configured_landing_asset",
    "configured_landing_bucket",
    "landing_asset",
    "sync_schedule",
]

#: Airflow Variable with the landing bucket's name, read at run time (by both DAGs' tasks).
LANDING_BUCKET_VARIABLE = "facebook_catalog_landing_bucket"
#: Environment variable with the landing bucket's name, read at parse time (the Asset's URI).
LANDING_BUCKET_ENV = "FACEBOOK_CATALOG_LANDING_BUCKET"
DEFAULT_LANDING_BUCKET = "facebook-catalog-landing"

#: Environment variable choosing how the sync DAG is scheduled (read at parse time): ``hourly``
#: (default), ``asset`` (after each landing asset event only) or ``asset_or_hourly`` (either:
#: files that other producers drop in landing without an asset event still go within the hour).
SYNC_SCHEDULE_ENV = "FACEBOOK_CATALOG_SYNC_SCHEDULE"
SYNC_SCHEDULE_MODES = ("hourly", "asset", "asset_or_hourly")
DEFAULT_SYNC_SCHEDULE = "hourly"


def landing_asset(bucket: str, prefix: str = LANDING_PREFIX) -> Asset:
    """The Asset for ``s3://<bucket>/<prefix>/``: what the ingestion updates and the sync can wait for."""
    if not bucket:
        raise ValueError("the landing bucket name is empty")
    return Asset(uri=f"s3://{bucket}/{normalize_prefix(prefix, 'the landing prefix')}")


# S3's bucket naming rules (lower case letters, digits, dots and hyphens, 3 to 63 characters).
_BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")


def configured_landing_bucket() -> str:
    """The landing bucket named by ``FACEBOOK_CATALOG_LANDING_BUCKET``, or the default."""
    bucket = os.environ.get(LANDING_BUCKET_ENV, "").strip() or DEFAULT_LANDING_BUCKET
    if not _BUCKET_NAME.fullmatch(bucket):
        raise ValueError(f"{LANDING_BUCKET_ENV}={bucket!r} is not a valid S3 bucket name")
    return bucket


def configured_landing_asset() -> Asset:
    """The landing Asset both DAGs use (bucket from :func:`configured_landing_bucket`)."""
    return landing_asset(configured_landing_bucket())


def sync_schedule(hourly: Any, mode: str | None = None, asset: Asset | None = None) -> Any:
    """The ``schedule=`` for the sync DAG: ``hourly`` as given, or on the landing Asset.

    ``hourly`` is the sync DAG's own schedule (a cron string or a timetable); ``mode`` defaults
    to ``FACEBOOK_CATALOG_SYNC_SCHEDULE`` (``hourly`` when unset); ``asset`` defaults to
    :func:`configured_landing_asset`. For ``asset_or_hourly`` a cron string becomes a
    ``CronTriggerTimetable`` in UTC.
    """
    if mode is None:
        mode = os.environ.get(SYNC_SCHEDULE_ENV, DEFAULT_SYNC_SCHEDULE)
    mode = mode.strip().lower() or DEFAULT_SYNC_SCHEDULE
    if mode == "hourly":
        return hourly
    landing = asset if asset is not None else configured_landing_asset()
    if mode == "asset":
        return landing
    if mode == "asset_or_hourly":
        timetable = CronTriggerTimetable(hourly, timezone="UTC") if isinstance(hourly, str) else hourly
        return AssetOrTimeSchedule(timetable=timetable, assets=landing)
    expected = ", ".join(SYNC_SCHEDULE_MODES)
    raise ValueError(f"{SYNC_SCHEDULE_ENV} is {mode!r}; expected one of {expected}")
