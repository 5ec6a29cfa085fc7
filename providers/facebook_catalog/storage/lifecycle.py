"""The S3 lifecycle rules the pipeline owns: ``archive/`` and ``runs/`` expire after 30 days,
``quarantine/`` after 90, and abandoned multipart uploads everywhere after 7. Landing files are
never expired: an unsynced file must not vanish.

Our rules carry the stable IDs in :data:`MANAGED_RULE_IDS`; the bucket owner's other rules are
kept as they are.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from facebook_catalog.storage.s3 import error_code, normalize_prefix

if TYPE_CHECKING:
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

log = logging.getLogger(__name__)

ARCHIVE_RULE_ID = "facebook-catalog-archive-expiry"
QUARANTINE_RULE_ID = "facebook-catalog-quarantine-expiry"
RUNS_RULE_ID = "facebook-catalog-runs-expiry"
LANDING_RULE_ID = "facebook-catalog-landing-abort-multipart"
MANAGED_RULE_IDS = (ARCHIVE_RULE_ID, QUARANTINE_RULE_ID, RUNS_RULE_ID, LANDING_RULE_ID)


def _expiry_rule(rule_id: str, prefix: str, days: int, abort_multipart_days: int) -> dict[str, Any]:
    return {
        "ID": rule_id,
        "Filter": {"Prefix": prefix},
        "Status": "Enabled",
        "Expiration": {"Days": days},
        "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": abort_multipart_days},
    }


def desired_lifecycle_rules(
    landing_bucket: str,
    synced_bucket: str,
    archive_prefix: str = "archive/",
    runs_prefix: str = "runs/",
    quarantine_prefix: str = "quarantine/",
    archive_days: int = 30,
    runs_days: int = 30,
    quarantine_days: int = 90,
    landing_prefix: str = "landing/",
    abort_multipart_days: int = 7,
) -> dict[str, list[dict[str, Any]]]:
    """Our rules, per bucket (one entry when both buckets are the same)."""
    for name, value in (
        ("archive_days", archive_days),
        ("runs_days", runs_days),
        ("quarantine_days", quarantine_days),
        ("abort_multipart_days", abort_multipart_days),
    ):
        if value < 1:
            raise ValueError(f"{name} must be at least 1, got {value}")
    rules: dict[str, list[dict[str, Any]]] = {landing_bucket: [], synced_bucket: []}
    rules[landing_bucket] += [
        _expiry_rule(
            ARCHIVE_RULE_ID,
            normalize_prefix(archive_prefix, "archive_prefix"),
            archive_days,
            abort_multipart_days,
        ),
        _expiry_rule(
            QUARANTINE_RULE_ID,
            normalize_prefix(quarantine_prefix, "quarantine_prefix"),
            quarantine_days,
            abort_multipart_days,
        ),
        {
            # Landing files are never expired (an unsynced file must not vanish); only abandoned
            # multipart uploads are cleaned up.
            "ID": LANDING_RULE_ID,
            "Filter": {"Prefix": normalize_prefix(landing_prefix, "landing_prefix")},
            "Status": "Enabled",
            "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": abort_multipart_days},
        },
    ]
    rules[synced_bucket].append(
        _expiry_rule(
            RUNS_RULE_ID, normalize_prefix(runs_prefix, "runs_prefix"), runs_days, abort_multipart_days
        )
    )
    return rules


def _with_filter(rule: dict[str, Any]) -> dict[str, Any]:
    """A rule in the current form: S3 refuses a configuration that mixes the deprecated top-level
    ``Prefix`` with ``Filter`` rules such as ours, and both mean the same thing."""
    if "Prefix" not in rule or "Filter" in rule:
        return rule
    converted = {name: value for name, value in rule.items() if name != "Prefix"}
    converted["Filter"] = {"Prefix": rule["Prefix"]}
    return converted


def read_lifecycle_rules(s3_hook: S3Hook, bucket: str) -> list[dict[str, Any]]:
    """The bucket's lifecycle rules; an empty list when it has none."""
    try:
        response = s3_hook.get_conn().get_bucket_lifecycle_configuration(Bucket=bucket)
    except ClientError as error:
        if error_code(error) == "NoSuchLifecycleConfiguration":
            return []
        raise
    return [dict(rule) for rule in response.get("Rules", [])]


def apply_lifecycle_rules(s3_hook: S3Hook, landing_bucket: str, synced_bucket: str, **options: Any) -> None:
    """Put our expiry rules into the buckets' lifecycle configurations; idempotent. ``options`` are
    :func:`desired_lifecycle_rules`' prefixes and days.

    Rules with other IDs (the bucket owner's) are kept as they are, in their order; ours, identified
    by the stable IDs in :data:`MANAGED_RULE_IDS`, are replaced and follow them. A bucket whose
    configuration is already right is not written.
    """
    desired = desired_lifecycle_rules(landing_bucket, synced_bucket, **options)
    client = s3_hook.get_conn()
    for bucket, ours in desired.items():
        existing = read_lifecycle_rules(s3_hook, bucket)
        kept = [_with_filter(rule) for rule in existing if rule.get("ID") not in MANAGED_RULE_IDS]
        rules = kept + ours
        if rules == existing:
            log.info("Lifecycle rules of s3://%s are already up to date", bucket)
            continue
        client.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": rules})
        log.info("Lifecycle rules of s3://%s set: %s", bucket, ", ".join(rule["ID"] for rule in ours))
