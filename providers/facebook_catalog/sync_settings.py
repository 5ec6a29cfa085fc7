"""Settings of the hourly sync DAG: one table, read at run time.

Each setting is looked up, in order, in the run's params (a manual trigger's conf), then in an
Airflow Variable, then its documented default. Variables are read when a task runs, never when
the DAG file is parsed. README's settings table is this table.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class SyncSetting:
    name: str
    default: Any
    description: str

    @property
    def variable(self) -> str:
        return f"facebook_catalog_{self.name}"


SYNC_SETTINGS: tuple[SyncSetting, ...] = (
    SyncSetting("landing_bucket", "facebook-catalog-landing", "bucket of the landing zone"),
    SyncSetting("landing_prefix", "landing/", "prefix of files waiting to be synced"),
    SyncSetting("archive_prefix", "archive/", "where synced files move (same relative key)"),
    SyncSetting("quarantine_prefix", "quarantine/", "where files that are not a readable feed move"),
    SyncSetting("synced_bucket", "facebook-catalog-synced-products", "bucket of the run records"),
    SyncSetting("runs_prefix", "runs/", "prefix of the run records in the synced bucket"),
    SyncSetting("conn_id", "facebook_catalog_default", "Airflow connection to the Graph API"),
    SyncSetting("aws_conn_id", "aws_default", "Airflow connection to AWS"),
    SyncSetting("catalog_id", "", "catalog id; empty uses the connection's catalog_id extra"),
    SyncSetting("default_currency", "IQD", "ISO 4217 code for prices given without one"),
    SyncSetting("default_condition", "new", "condition for rows without one"),
    SyncSetting("max_error_ratio", 0.0, "share of sent items Meta may reject before the run fails"),
    SyncSetting("poll_interval", 60, "seconds between batch-status polls"),
    SyncSetting("timeout_minutes", 120.0, "minutes Meta may take to process every batch"),
    SyncSetting("retry_backoff_seconds", 2.0, "first wait before retrying a transient Graph API error"),
    SyncSetting("max_throttle_wait_seconds", 900.0, "longest wait honoured when Meta throttles"),
    SyncSetting("full_sync", False, "send every item, even those Meta already has unchanged"),
    SyncSetting(
        "metrics_namespace", "FacebookCatalogSync", "CloudWatch namespace of the run metrics; empty: none"
    ),
    SyncSetting("sns_topic_arn", "", "SNS topic for failure alerts; empty: no alerts"),
)

_KINDS: dict[str, type] = {s.name: type(s.default) for s in SYNC_SETTINGS}


def resolve_sync_settings(
    params: Mapping[str, Any],
    get_variable: Callable[[str], str | None],
    names: Collection[str] | None = None,
) -> dict[str, Any]:
    """Params, then Variables, then defaults; values converted to the default's type.

    ``names`` limits the lookup to those settings, so that a bad value of another one (say
    poll_interval) cannot fail a caller that does not use it.
    """
    resolved: dict[str, Any] = {}
    for setting in SYNC_SETTINGS:
        if names is not None and setting.name not in names:
            continue
        value = params.get(setting.name)
        if value is None or value == "":
            value = get_variable(setting.variable)
        if value is None or value == "":
            value = setting.default
        resolved[setting.name] = _convert(setting, value)
    for prefix in ("landing_prefix", "archive_prefix", "quarantine_prefix", "runs_prefix"):
        if prefix in resolved:
            resolved[prefix] = resolved[prefix].strip("/") + "/"
    return resolved


def _convert(setting: SyncSetting, value: Any) -> Any:
    kind = _KINDS[setting.name]
    if kind is bool and not isinstance(value, bool):
        text = str(value).strip().lower()
        if text not in ("true", "false", "1", "0", "yes", "no"):
            raise ValueError(f"Setting {setting.name} (Variable {setting.variable}) must be true or false")
        return text in ("true", "1", "yes")
    try:
        converted = kind(value)
    except (TypeError, ValueError):
        raise ValueError(
            f"Setting {setting.name} (Variable {setting.variable}) must be a {kind.__name__}, not {value!r}"
        ) from None
    if kind in (int, float) and converted < 0:
        raise ValueError(f"Setting {setting.name} (Variable {setting.variable}) must not be negative")
    return converted


def settings_table_markdown() -> str:
    """The README's table of settings."""
    rows = ["| Param / Variable | Default | Meaning |", "|---|---|---|"]
    for s in SYNC_SETTINGS:
        rows.append(f"| `{s.name}` / `{s.variable}` | `{s.default!r}` | {s.description} |")
    return "\n".join(rows)
