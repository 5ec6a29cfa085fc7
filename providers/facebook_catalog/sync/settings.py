"""Settings: the hourly sync DAG's table, read at run time, and the one way templated values
become numbers, booleans and a retry policy.

Each DAG setting is looked up, in order, in the run's params (a manual trigger's conf), then in
an Airflow Variable, then its documented default. Variables are read when a task runs, never
when the DAG file is parsed. README's settings table is this table. The resolved settings become
the operator's arguments in one place, :func:`sync_operator_arguments`.

Operator arguments may arrive as rendered template strings ("60", "true"); :func:`parse_bool`,
:func:`parse_number` and :func:`wait_settings` check them once, with the argument's name in the
message.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from facebook_catalog.hooks.graph_api import GraphApiRetryPolicy
from facebook_catalog.storage.s3 import normalize_prefix

_TRUE_WORDS = frozenset({"true", "1", "yes", "on"})
# A template that rendered None or nothing is false.
_FALSE_WORDS = frozenset({"false", "0", "no", "off", "", "none"})


def parse_bool(value: Any, what: str) -> bool:
    """A boolean, or its word in a rendered template; ``what`` names it in the error."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE_WORDS:
        return True
    if text in _FALSE_WORDS:
        return False
    raise ValueError(f"{what} must be true or false, not {value!r}")


def parse_number(value: Any, what: str) -> float:
    """A number, or its text in a rendered template; ``what`` names it in the error."""
    if isinstance(value, bool):
        raise ValueError(f"{what} must be a number, not {value!r}")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be a number, not {value!r}") from None


def is_template(*values: Any) -> bool:
    """Whether any value is still an unrendered Jinja template (checked again once rendered)."""
    return any(isinstance(v, str) and "{{" in v for v in values)


@dataclass(frozen=True)
class WaitSettings:
    """How the operator waits for Meta, and when the outcome counts as a failure."""

    poll_interval: float
    timeout: timedelta
    max_error_ratio: float


def wait_settings(poll_interval: Any, timeout: Any, max_error_ratio: Any) -> WaitSettings:
    """The operator's numeric settings, checked once, clearly."""
    poll = parse_number(poll_interval, "poll_interval")
    if poll <= 0:
        raise ValueError(f"poll_interval must be positive, not {poll_interval!r}")
    wait = timeout if isinstance(timeout, timedelta) else timedelta(seconds=parse_number(timeout, "timeout"))
    if wait.total_seconds() <= 0:
        raise ValueError(f"timeout must be positive, not {timeout!r}")
    ratio = parse_number(max_error_ratio, "max_error_ratio")
    if not 0.0 <= ratio <= 1.0:
        raise ValueError(f"max_error_ratio must be between 0 and 1, not {max_error_ratio!r}")
    return WaitSettings(poll, wait, ratio)


def retry_policy(value: GraphApiRetryPolicy | Mapping[str, Any] | str | None) -> GraphApiRetryPolicy:
    """The Graph API retry policy, given as a policy, a dict of its fields (numbers, or their
    text from a template), or nothing (the defaults)."""
    if isinstance(value, GraphApiRetryPolicy):
        return value
    if isinstance(value, Mapping):
        fields: dict[str, Any] = {k: float(v) if isinstance(v, str) else v for k, v in value.items()}
        return GraphApiRetryPolicy(**fields)
    if value:
        raise ValueError(f"graph_api_retry_policy must be a GraphApiRetryPolicy or a dict, not {value!r}")
    return GraphApiRetryPolicy()


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
    SyncSetting("max_error_ratio", 0.0, "share of sent items Meta may newly reject before the run fails"),
    SyncSetting("poll_interval", 60, "seconds between batch-status polls"),
    SyncSetting("timeout_minutes", 120.0, "minutes Meta may take to process every batch"),
    SyncSetting("retry_backoff_seconds", 2.0, "first wait before retrying a transient Graph API error"),
    SyncSetting("max_throttle_wait_seconds", 900.0, "longest wait honoured when Meta throttles"),
    SyncSetting("full_sync", False, "send every item, even those Meta already has unchanged"),
    SyncSetting("retry_rejected", False, "re-send every open rejection of the item ledger now"),
    SyncSetting(
        "retry_hours", "1,6,24", "hours after each Meta rejection before the item is re-sent; then kept open"
    ),
    SyncSetting(
        "review_wait_seconds",
        300.0,
        "seconds to wait for Meta's review of the sent items after their batches finished; 0: no check",
    ),
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
    defaults: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Params, then Variables, then ``defaults`` (a DAG factory's), then the documented defaults;
    values converted to the documented default's type.

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
        if (value is None or value == "") and defaults:
            value = defaults.get(setting.name)
        if value is None or value == "":
            value = setting.default
        resolved[setting.name] = _convert(setting, value)
    for prefix in ("landing_prefix", "archive_prefix", "quarantine_prefix", "runs_prefix"):
        if prefix in resolved:
            resolved[prefix] = normalize_prefix(resolved[prefix], f"Setting {prefix}")
    return resolved


def sync_operator_arguments(settings: Mapping[str, Any]) -> dict[str, Any]:
    """The items_batch operator's arguments from the resolved DAG settings: the one mapping
    between the two (the landing files themselves come from the run's snapshot)."""
    return {
        "s3_bucket": settings["landing_bucket"],
        "aws_conn_id": settings["aws_conn_id"],
        "facebook_catalog_conn_id": settings["conn_id"],
        "catalog_id": settings["catalog_id"],
        "poll_interval": settings["poll_interval"],
        "timeout": settings["timeout_minutes"] * 60,
        "max_error_ratio": settings["max_error_ratio"],
        "default_currency": settings["default_currency"],
        "default_condition": settings["default_condition"],
        "records_bucket": settings["synced_bucket"],
        "records_prefix": settings["runs_prefix"],
        "full_sync": settings["full_sync"],
        "retry_rejected": settings["retry_rejected"],
        "retry_hours": settings["retry_hours"],
        "review_wait_seconds": settings["review_wait_seconds"],
        "graph_api_retry_policy": {
            "backoff_base": settings["retry_backoff_seconds"],
            "max_throttle_wait": settings["max_throttle_wait_seconds"],
        },
    }


def _convert(setting: SyncSetting, value: Any) -> Any:
    kind = _KINDS[setting.name]
    if kind is bool:
        return parse_bool(value, f"Setting {setting.name} (Variable {setting.variable})")
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


#: The operator arguments :func:`sync_operator_arguments` gives, by name.
SYNC_OPERATOR_ARGUMENTS: tuple[str, ...] = tuple(
    sync_operator_arguments({s.name: s.default for s in SYNC_SETTINGS})
)
