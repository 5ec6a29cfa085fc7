"""``fb-catalog setup-buckets``: check (or create) the two buckets and set their expiry rules.

Airflow and boto are imported only when the command runs, so ``fb-catalog --help`` stays fast.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

COMMAND = "fb-catalog setup-buckets"


class SetupError(Exception):
    """A problem the user can fix; reported as one line, without a traceback."""


def _positive_days(text: str) -> int:
    try:
        days = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number of days, got {text!r}") from None
    if days < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1 day, got {days}")
    return days


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--landing-bucket", required=True, help="bucket holding landing/, archive/, quarantine/"
    )
    parser.add_argument(
        "--synced-bucket", required=True, help="bucket holding runs/ (may equal the landing bucket)"
    )
    parser.add_argument(
        "--aws-conn-id", default="aws_default", help="Airflow AWS connection id (default: %(default)s)"
    )
    parser.add_argument("--create", action="store_true", help="create buckets that do not exist yet")
    parser.add_argument(
        "--archive-days", type=_positive_days, default=30, help="expire archive/ after N days"
    )
    parser.add_argument("--runs-days", type=_positive_days, default=30, help="expire runs/ after N days")
    parser.add_argument(
        "--quarantine-days", type=_positive_days, default=90, help="expire quarantine/ after N days"
    )
    parser.add_argument("--landing-prefix", default="landing/", help=argparse.SUPPRESS)
    parser.add_argument("--archive-prefix", default="archive/", help=argparse.SUPPRESS)
    parser.add_argument("--quarantine-prefix", default="quarantine/", help=argparse.SUPPRESS)
    parser.add_argument("--runs-prefix", default="runs/", help=argparse.SUPPRESS)


def run_from_args(args: argparse.Namespace) -> int:
    from airflow.exceptions import AirflowException
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        _setup(args)
    except SetupError as error:
        print(f"{COMMAND}: error: {error}", file=sys.stderr)
        return 1
    except ClientError as error:
        details = error.response.get("Error", {})
        code = details.get("Code", "error")
        message = details.get("Message") or str(error)
        print(f"{COMMAND}: error: S3 refused the request ({code}): {message}", file=sys.stderr)
        return 1
    except (BotoCoreError, AirflowException, ValueError) as error:
        print(f"{COMMAND}: error: {error}", file=sys.stderr)
        return 1
    return 0


def _setup(args: argparse.Namespace) -> None:
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    from facebook_catalog.storage.lifecycle import (
        MANAGED_RULE_IDS,
        apply_lifecycle_rules,
        desired_lifecycle_rules,
        read_lifecycle_rules,
    )

    hook = S3Hook(aws_conn_id=args.aws_conn_id)
    buckets = list(dict.fromkeys([args.landing_bucket, args.synced_bucket]))
    for bucket in buckets:
        _ensure_bucket(hook, bucket, create=args.create, conn_id=args.aws_conn_id)

    rule_options: dict[str, Any] = {
        "archive_prefix": args.archive_prefix,
        "runs_prefix": args.runs_prefix,
        "quarantine_prefix": args.quarantine_prefix,
        "archive_days": args.archive_days,
        "runs_days": args.runs_days,
        "quarantine_days": args.quarantine_days,
        "landing_prefix": args.landing_prefix,
    }
    desired = desired_lifecycle_rules(args.landing_bucket, args.synced_bucket, **rule_options)
    before = {bucket: read_lifecycle_rules(hook, bucket) for bucket in buckets}
    apply_lifecycle_rules(hook, args.landing_bucket, args.synced_bucket, **rule_options)

    for bucket in buckets:
        after = read_lifecycle_rules(hook, bucket)
        print(f"s3://{bucket}: lifecycle rules {'unchanged' if after == before[bucket] else 'updated'}")
        # Read back from S3 rather than echo what we sent: this is what will actually run.
        applied = {rule["ID"]: rule for rule in after if rule.get("ID")}
        for wanted in desired[bucket]:
            found = applied.get(wanted["ID"])
            if found is None or _describe(found) != _describe(wanted):
                raise SetupError(f"rule {wanted['ID']} on s3://{bucket} did not read back as it was written")
            print(f"s3://{bucket}: {_describe(found)}")
        others = [rule_id for rule_id in applied if rule_id not in MANAGED_RULE_IDS]
        if others:
            print(f"s3://{bucket}: kept {len(others)} other rule(s): {', '.join(others)}")


def _ensure_bucket(hook: S3Hook, bucket: str, *, create: bool, conn_id: str) -> None:
    from botocore.exceptions import ClientError

    from facebook_catalog.storage.s3 import error_code, http_status, is_not_found

    try:
        hook.get_conn().head_bucket(Bucket=bucket)
        print(f"s3://{bucket}: exists")
        return
    except ClientError as error:
        if http_status(error) == 403 or error_code(error) in ("403", "AccessDenied", "Forbidden"):
            raise SetupError(
                f"access denied to bucket {bucket!r} with connection {conn_id!r} "
                "(needs s3:ListBucket, s3:GetLifecycleConfiguration, s3:PutLifecycleConfiguration)"
            ) from None
        if not (is_not_found(error) or error_code(error) == "NoSuchBucket"):
            raise
    if not create:
        raise SetupError(f"bucket {bucket!r} does not exist (pass --create to create it)")
    hook.create_bucket(bucket_name=bucket)
    print(f"s3://{bucket}: created")


def _describe(rule: dict[str, Any]) -> str:
    prefix = (rule.get("Filter") or {}).get("Prefix", rule.get("Prefix", ""))
    parts = [f"{rule.get('ID')} [{rule.get('Status')}] prefix {prefix or '(whole bucket)'}"]
    if "Expiration" in rule and "Days" in rule["Expiration"]:
        parts.append(f"expire after {rule['Expiration']['Days']} days")
    abort = rule.get("AbortIncompleteMultipartUpload")
    if abort:
        parts.append(f"abort incomplete multipart uploads after {abort['DaysAfterInitiation']} days")
    return ", ".join(parts)
