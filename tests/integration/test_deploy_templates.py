"""The CloudFormation templates in deploy/: cfn-lint, the storage-alerting stack created in a real
moto server, and checks of the audit-runtime template that moto cannot create.

moto's CloudFormation creates the buckets (with their encryption), the SNS topic, the dashboard and
the IAM role with its managed policy, resolving every intrinsic function itself. It skips bucket
policies and alarms (warning "not supported") and ignores a bucket's versioning, public access
block, ownership and lifecycle properties. For those, :func:`apply_what_moto_ignores` sends the
template's own values, resolved against the created stack, through the same S3 and CloudWatch
APIs CloudFormation calls, so that moto validates them and the tests read them back.
"""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import boto3
import pytest

from facebook_catalog.storage.lifecycle import (
    MANAGED_RULE_IDS,
    apply_lifecycle_rules,
    desired_lifecycle_rules,
    read_lifecycle_rules,
)
from facebook_catalog.sync.metrics import DEFAULT_NAMESPACE, PUBLISHED_METRIC_NAMES
from tests.fixtures.s3 import AWS_REGION, MotoServer

pytestmark = [
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore:Tried to parse .* not supported by moto's CloudFormation"),
]

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
STORAGE_TEMPLATE = DEPLOY / "storage-alerting.yaml"
RUNTIME_TEMPLATE = DEPLOY / "audit-runtime.yaml"
ACCOUNT_ID = "123456789012"  # moto's default account
ENVIRONMENT = "test"
CATALOG_ID = "1234567890"
STACK_NAME = f"fbcatalog-{ENVIRONMENT}-storage-alerting"
LANDING = f"fbcatalog-{ENVIRONMENT}-landing-{ACCOUNT_ID}-{AWS_REGION}"
SYNCED = f"fbcatalog-{ENVIRONMENT}-synced-{ACCOUNT_ID}-{AWS_REGION}"
AIRFLOW = f"fbcatalog-{ENVIRONMENT}-airflow-{ACCOUNT_ID}-{AWS_REGION}"


def load_template(path: Path) -> dict[str, Any]:
    """The template as plain data, short-form tags (!Ref, !Sub) turned into their long form."""
    from cfnlint.decode import cfn_yaml

    return json.loads(json.dumps(cfn_yaml.load(str(path))))


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


# ------------------------------------------------------------------ cfn-lint


@pytest.mark.parametrize("template", [STORAGE_TEMPLATE, RUNTIME_TEMPLATE], ids=lambda p: p.name)
def test_the_template_passes_cfn_lint(template: Path) -> None:
    from cfnlint.api import ManualArgs, lint_file

    matches = lint_file(template, config=ManualArgs(regions=["us-east-1", "eu-west-1"], include_checks=["I"]))
    assert [str(match) for match in matches] == []


# ------------------------------------------------------ the storage stack in moto


class StackValues:
    """Resolves intrinsic functions as CloudFormation did for one created stack."""

    def __init__(
        self, parameters: dict[str, str], physical_ids: dict[str, str], resource_types: dict[str, str]
    ):
        self.refs: dict[str, str] = {
            "AWS::AccountId": ACCOUNT_ID,
            "AWS::Region": AWS_REGION,
            "AWS::Partition": "aws",
            "AWS::StackName": STACK_NAME,
            **parameters,
            **physical_ids,
        }
        self.resource_types = resource_types

    def attribute(self, logical_id: str, name: str) -> str:
        kind = self.resource_types[logical_id]
        if (kind, name) == ("AWS::S3::Bucket", "Arn"):
            return f"arn:aws:s3:::{self.refs[logical_id]}"
        raise AssertionError(f"no rule for {logical_id}.{name} ({kind})")

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self.resolve(item) for item in value]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            [(function, argument)] = value.items()
            if function == "Ref":
                return self.refs[argument]
            if function == "Fn::GetAtt":
                logical_id, name = argument if isinstance(argument, list) else argument.split(".", 1)
                return self.attribute(logical_id, name)
            if function == "Fn::Sub":
                text, variables = (argument, {}) if isinstance(argument, str) else argument
                variables = self.resolve(variables)

                def substitute(match: re.Match[str]) -> str:
                    name = match.group(1)
                    if name in variables:
                        return str(variables[name])
                    if "." in name:
                        return self.attribute(*name.split(".", 1))
                    return str(self.refs[name])

                return re.sub(r"\$\{([^}!]+)\}", substitute, text)
            if function.startswith("Fn::"):
                raise AssertionError(f"no rule for {function}")
        return {key: self.resolve(item) for key, item in value.items()}


def api_lifecycle_rule(rule: dict[str, Any]) -> dict[str, Any]:
    """A CloudFormation lifecycle rule in the form PutBucketLifecycleConfiguration takes."""
    api: dict[str, Any] = {
        "ID": rule["Id"],
        "Filter": {"Prefix": rule.get("Prefix", "")},
        "Status": rule["Status"],
    }
    expiration = {}
    if "ExpirationInDays" in rule:
        expiration["Days"] = int(rule["ExpirationInDays"])
    if "ExpiredObjectDeleteMarker" in rule:
        expiration["ExpiredObjectDeleteMarker"] = rule["ExpiredObjectDeleteMarker"]
    if expiration:
        api["Expiration"] = expiration
    for name in ("AbortIncompleteMultipartUpload", "NoncurrentVersionExpiration"):
        if name in rule:
            api[name] = rule[name]
    return api


def apply_what_moto_ignores(template: dict[str, Any], values: StackValues, clients: Clients) -> None:
    for logical_id, resource in template["Resources"].items():
        if "Condition" in resource:  # the only one is the optional e-mail subscription, off here
            continue
        properties = values.resolve(resource.get("Properties", {}))
        kind = resource["Type"]
        if kind == "AWS::S3::Bucket":
            bucket = values.refs[logical_id]
            clients.s3.put_bucket_versioning(
                Bucket=bucket, VersioningConfiguration=properties["VersioningConfiguration"]
            )
            clients.s3.put_public_access_block(
                Bucket=bucket, PublicAccessBlockConfiguration=properties["PublicAccessBlockConfiguration"]
            )
            clients.s3.put_bucket_ownership_controls(
                Bucket=bucket, OwnershipControls=properties["OwnershipControls"]
            )
            rules = [api_lifecycle_rule(rule) for rule in properties["LifecycleConfiguration"]["Rules"]]
            clients.s3.put_bucket_lifecycle_configuration(
                Bucket=bucket, LifecycleConfiguration={"Rules": rules}
            )
        elif kind == "AWS::S3::BucketPolicy":
            clients.s3.put_bucket_policy(
                Bucket=properties["Bucket"], Policy=json.dumps(properties["PolicyDocument"])
            )
        elif kind == "AWS::CloudWatch::Alarm":
            properties["Threshold"] = float(properties["Threshold"])
            clients.cloudwatch.put_metric_alarm(**properties)


@dataclass
class Clients:
    cloudformation: Any
    s3: Any
    iam: Any
    sns: Any
    cloudwatch: Any
    secretsmanager: Any


@dataclass
class StorageStack:
    template: dict[str, Any]
    outputs: dict[str, str]
    exports: dict[str, str]
    physical_ids: dict[str, str]
    clients: Clients


@pytest.fixture
def clients(aws_env: MotoServer) -> Clients:
    def make(service: str) -> Any:
        return boto3.client(service, endpoint_url=aws_env.endpoint_url, region_name=AWS_REGION)

    return Clients(*(make(s) for s in ("cloudformation", "s3", "iam", "sns", "cloudwatch", "secretsmanager")))


@pytest.fixture
def storage_stack(clients: Clients, aws_env: MotoServer) -> Iterator[StorageStack]:
    template = load_template(STORAGE_TEMPLATE)
    parameters = {"EnvironmentName": ENVIRONMENT, "CatalogId": CATALOG_ID}
    clients.cloudformation.create_stack(
        StackName=STACK_NAME,
        TemplateBody=STORAGE_TEMPLATE.read_text(),
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
        Capabilities=["CAPABILITY_IAM"],
    )
    [stack] = clients.cloudformation.describe_stacks(StackName=STACK_NAME)["Stacks"]
    assert stack["StackStatus"] == "CREATE_COMPLETE", stack.get("StackStatusReason")
    resources = clients.cloudformation.describe_stack_resources(StackName=STACK_NAME)["StackResources"]
    physical_ids = {
        r["LogicalResourceId"]: r["PhysicalResourceId"] for r in resources if "LogicalResourceId" in r
    }
    defaults = {name: str(p["Default"]) for name, p in template["Parameters"].items() if "Default" in p}
    values = StackValues(
        {**defaults, **parameters},
        physical_ids,
        {logical_id: resource["Type"] for logical_id, resource in template["Resources"].items()},
    )
    apply_what_moto_ignores(template, values, clients)
    exports = {e["Name"]: e["Value"] for e in clients.cloudformation.list_exports()["Exports"]}
    yield StorageStack(
        template=template,
        outputs={o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]},
        exports=exports,
        physical_ids=physical_ids,
        clients=clients,
    )
    # moto's DeleteStack removes the role before detaching its policy and fails: reset instead.
    aws_env.reset()


def test_the_stack_creates_the_named_buckets_topic_and_role(storage_stack: StorageStack) -> None:
    buckets = {b["Name"] for b in storage_stack.clients.s3.list_buckets()["Buckets"]}
    assert {LANDING, SYNCED, AIRFLOW} <= buckets
    assert storage_stack.outputs["LandingBucketName"] == LANDING
    assert storage_stack.outputs["SyncedBucketName"] == SYNCED
    topic_arn = storage_stack.outputs["AlertTopicArn"]
    assert topic_arn == f"arn:aws:sns:{AWS_REGION}:{ACCOUNT_ID}:fbcatalog-{ENVIRONMENT}-alerts"
    assert (
        storage_stack.clients.sns.get_topic_attributes(TopicArn=topic_arn)["Attributes"]["TopicArn"]
        == topic_arn
    )
    assert storage_stack.outputs["MetricNamespace"] == DEFAULT_NAMESPACE


def test_landing_and_run_records_expire_as_the_landing_zone_expects(
    storage_stack: StorageStack, aws_env: MotoServer
) -> None:
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    hook = S3Hook(aws_conn_id="aws_default")
    desired = desired_lifecycle_rules(LANDING, SYNCED)

    def ours(bucket: str) -> list[dict[str, Any]]:
        return [rule for rule in read_lifecycle_rules(hook, bucket) if rule["ID"] in MANAGED_RULE_IDS]

    # archive/ 30 days, quarantine/ 90, runs/ 30, abandoned multipart uploads aborted after 7.
    assert ours(LANDING) == desired[LANDING]
    assert ours(SYNCED) == desired[SYNCED]
    by_id = {rule["ID"]: rule for rule in read_lifecycle_rules(hook, LANDING)}
    assert by_id["facebook-catalog-archive-expiry"]["Expiration"] == {"Days": 30}
    assert by_id["facebook-catalog-quarantine-expiry"]["Expiration"] == {"Days": 90}
    assert by_id["facebook-catalog-landing-abort-multipart"]["AbortIncompleteMultipartUpload"] == {
        "DaysAfterInitiation": 7
    }
    assert "Expiration" not in by_id["facebook-catalog-landing-abort-multipart"]  # landing never expires
    # Versioned buckets: what expired leaves a noncurrent version, removed a week later.
    for bucket in (LANDING, SYNCED):
        [noncurrent] = [
            r for r in read_lifecycle_rules(hook, bucket) if r["ID"] == "facebook-catalog-noncurrent-versions"
        ]
        assert noncurrent["NoncurrentVersionExpiration"]["NoncurrentDays"] == 7

    # `fb-catalog setup-buckets` on these buckets finds its rules in place and keeps the others.
    before = {bucket: sorted(read_lifecycle_rules(hook, bucket), key=lambda r: r["ID"]) for bucket in desired}
    apply_lifecycle_rules(hook, LANDING, SYNCED)
    after = {bucket: sorted(read_lifecycle_rules(hook, bucket), key=lambda r: r["ID"]) for bucket in desired}
    assert after == before


@pytest.mark.parametrize("bucket", [LANDING, SYNCED, AIRFLOW])
def test_every_bucket_is_encrypted_versioned_private_and_tls_only(
    storage_stack: StorageStack, bucket: str
) -> None:
    s3 = storage_stack.clients.s3
    [rule] = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
    assert rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    assert s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "IgnorePublicAcls": True,
        "BlockPublicPolicy": True,
        "RestrictPublicBuckets": True,
    }
    policy = json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"])
    assert not allowed(
        policy, "s3:GetObject", f"arn:aws:s3:::{bucket}/any", **{"aws:SecureTransport": "true"}
    )
    [deny] = [s for s in policy["Statement"] if s["Effect"] == "Deny"]
    assert deny["Principal"] == "*"
    assert deny["Action"] == "s3:*"
    assert set(deny["Resource"]) == {f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"}
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


# ----------------------------------------------------------- the execution role


def statement_matches(statement: dict[str, Any], action: str, resource: str, context: dict[str, str]) -> bool:
    """IAM matching, enough for our policies: Action, Resource/NotResource, string and bool conditions.
    A condition on a key the request does not carry does not match (as in IAM)."""
    if not any(fnmatchcase(action.lower(), pattern.lower()) for pattern in as_list(statement["Action"])):
        return False
    if "Resource" in statement:
        if not any(fnmatchcase(resource, pattern) for pattern in as_list(statement["Resource"])):
            return False
    elif any(fnmatchcase(resource, pattern) for pattern in as_list(statement["NotResource"])):
        return False
    for operator, conditions in statement.get("Condition", {}).items():
        for key, expected in conditions.items():
            actual = context.get(key)
            if actual is None:
                return False
            if operator == "StringEquals":
                matched = actual in as_list(expected)
            elif operator == "StringLike":
                matched = any(fnmatchcase(actual, pattern) for pattern in as_list(expected))
            elif operator == "Bool":
                matched = actual.lower() == str(expected).lower()
            else:
                raise AssertionError(f"condition operator {operator} not modelled")
            if not matched:
                return False
    return True


def allowed(document: dict[str, Any], action: str, resource: str, **context: str) -> bool:
    statements = as_list(document["Statement"])
    if any(s["Effect"] == "Deny" and statement_matches(s, action, resource, context) for s in statements):
        return False
    return any(s["Effect"] == "Allow" and statement_matches(s, action, resource, context) for s in statements)


def execution_role_policy(stack: StorageStack) -> dict[str, Any]:
    iam = stack.clients.iam
    role_name = stack.physical_ids["MwaaExecutionRole"]
    [attached] = iam.list_attached_role_policies(RoleName=role_name)["AttachedPolicies"]
    policy = iam.get_policy(PolicyArn=attached["PolicyArn"])["Policy"]
    version = iam.get_policy_version(PolicyArn=attached["PolicyArn"], VersionId=policy["DefaultVersionId"])
    document = version["PolicyVersion"]["Document"]
    return json.loads(document) if isinstance(document, str) else document


def test_only_mwaa_may_assume_the_execution_role(storage_stack: StorageStack) -> None:
    role = storage_stack.clients.iam.get_role(RoleName=storage_stack.physical_ids["MwaaExecutionRole"])[
        "Role"
    ]
    [statement] = role["AssumeRolePolicyDocument"]["Statement"]
    assert set(statement["Principal"]["Service"]) == {"airflow.amazonaws.com", "airflow-env.amazonaws.com"}
    assert statement["Condition"] == {"StringEquals": {"aws:SourceAccount": ACCOUNT_ID}}
    assert storage_stack.outputs["MwaaExecutionRoleArn"] == role["Arn"]


def test_the_execution_role_reaches_its_prefixes_metrics_topic_and_secret_and_nothing_else(
    storage_stack: StorageStack,
) -> None:
    policy = execution_role_policy(storage_stack)
    topic_arn = storage_stack.outputs["AlertTopicArn"]
    secrets = storage_stack.clients.secretsmanager
    token_secret = secrets.create_secret(
        Name="airflow/connections/facebook_catalog_default", SecretString="{}"
    )
    other_secret = secrets.create_secret(Name="airflow/connections/aws_default", SecretString="{}")
    landing, synced = f"arn:aws:s3:::{LANDING}", f"arn:aws:s3:::{SYNCED}"

    may = [
        ("s3:GetObject", f"{landing}/landing/2026/11/26/products.csv", {}),
        ("s3:PutObject", f"{landing}/landing/2026/11/26/products.csv", {}),  # the ingestion DAG
        ("s3:GetObjectVersion", f"{landing}/landing/products.csv", {}),
        ("s3:PutObject", f"{landing}/archive/2026/11/26/products.csv", {}),
        ("s3:PutObject", f"{landing}/quarantine/bad.csv.error.json", {}),
        ("s3:DeleteObject", f"{landing}/landing/2026/11/26/products.csv", {}),
        # Listing the two data buckets lets a missing key answer 404 rather than 403.
        ("s3:ListBucket", landing, {}),
        ("s3:ListBucket", landing, {"s3:prefix": "landing/"}),
        ("s3:ListBucketVersions", landing, {"s3:prefix": "landing/products.csv"}),
        ("s3:PutObject", f"{synced}/runs/manual__1/report.json", {}),
        ("s3:GetObject", f"{synced}/runs/manual__1/report.json", {}),
        ("s3:ListBucket", synced, {}),
        ("s3:GetObject", f"{synced}/ledger/1234/manifest.json", {}),
        ("s3:PutObject", f"{synced}/ledger/1234/delta-x.bin", {}),
        ("s3:DeleteObject", f"{synced}/ledger/1234/open-x.jsonl", {}),
        ("s3:GetObject", f"{synced}/state/1234/item_hashes.bin", {}),
        ("s3:GetObject", f"arn:aws:s3:::{AIRFLOW}/dags/facebook_catalog_sync.py", {}),
        ("cloudwatch:PutMetricData", "*", {"cloudwatch:namespace": DEFAULT_NAMESPACE}),
        ("sns:Publish", topic_arn, {}),
        ("secretsmanager:GetSecretValue", token_secret["ARN"], {}),
        (
            "airflow:PublishMetrics",
            f"arn:aws:airflow:{AWS_REGION}:{ACCOUNT_ID}:environment/fbcatalog-{ENVIRONMENT}",
            {},
        ),
    ]
    may_not = [
        ("s3:DeleteObject", f"{landing}/archive/2026/11/26/products.csv", {}),
        ("s3:DeleteObject", f"{landing}/quarantine/bad.csv", {}),
        ("s3:DeleteObject", f"{synced}/runs/manual__1/report.json", {}),
        ("s3:GetObject", f"{landing}/elsewhere/file.csv", {}),
        ("s3:PutObject", f"{synced}/elsewhere/file.json", {}),
        ("s3:PutObject", f"{synced}/state/1234/item_hashes.bin", {}),
        ("s3:GetObject", "arn:aws:s3:::someone-elses-bucket/landing/x.csv", {}),
        ("s3:ListBucket", "arn:aws:s3:::someone-elses-bucket", {"s3:prefix": "landing/"}),
        ("s3:PutBucketPolicy", landing, {}),
        ("s3:PutLifecycleConfiguration", synced, {}),
        ("s3:PutObject", f"arn:aws:s3:::{AIRFLOW}/dags/injected.py", {}),
        ("cloudwatch:PutMetricData", "*", {"cloudwatch:namespace": "SomethingElse"}),
        ("cloudwatch:PutMetricData", "*", {}),
        ("cloudwatch:DeleteAlarms", "*", {}),
        ("sns:Publish", f"arn:aws:sns:{AWS_REGION}:{ACCOUNT_ID}:another-topic", {}),
        ("secretsmanager:GetSecretValue", other_secret["ARN"], {}),
        ("secretsmanager:PutSecretValue", token_secret["ARN"], {}),
        ("iam:PassRole", "*", {}),
    ]
    assert [(a, r) for a, r, c in may if not allowed(policy, a, r, **c)] == []
    assert [(a, r) for a, r, c in may_not if allowed(policy, a, r, **c)] == []
    assert not [s for s in policy["Statement"] if s["Effect"] == "Allow" and "*" in as_list(s["Action"])]


# --------------------------------------------------------- alarms and dashboard


def test_the_alarms_watch_published_metrics_and_notify_the_topic(storage_stack: StorageStack) -> None:
    template_alarms = [
        r["Properties"]
        for r in storage_stack.template["Resources"].values()
        if r["Type"] == "AWS::CloudWatch::Alarm"
    ]
    assert {alarm["MetricName"] for alarm in template_alarms} <= PUBLISHED_METRIC_NAMES

    alarms = {a["AlarmName"]: a for a in storage_stack.clients.cloudwatch.describe_alarms()["MetricAlarms"]}
    assert len(alarms) == len(template_alarms) == 6
    for alarm in alarms.values():
        assert alarm["Namespace"] == DEFAULT_NAMESPACE
        assert alarm["MetricName"] in PUBLISHED_METRIC_NAMES
        assert alarm["Dimensions"] == [{"Name": "CatalogId", "Value": CATALOG_ID}]
        assert alarm["AlarmActions"] == [storage_stack.outputs["AlertTopicArn"]]

    failed = alarms[f"fbcatalog-{ENVIRONMENT}-sync-failed"]
    assert (failed["MetricName"], failed["Statistic"], failed["ComparisonOperator"], failed["Threshold"]) == (
        "SyncFailed",
        "Sum",
        "GreaterThanOrEqualToThreshold",
        1.0,
    )
    rejected = alarms[f"fbcatalog-{ENVIRONMENT}-rejected-rows"]
    assert (
        rejected["MetricName"],
        rejected["Statistic"],
        rejected["ComparisonOperator"],
        rejected["Threshold"],
    ) == (
        "RejectedRowRatio",
        "Maximum",
        "GreaterThanThreshold",
        5.0,
    )
    new = alarms[f"fbcatalog-{ENVIRONMENT}-new-rejections"]
    assert (new["MetricName"], new["Statistic"], new["ComparisonOperator"], new["Threshold"]) == (
        "NewRejections",
        "Sum",
        "GreaterThanOrEqualToThreshold",
        1.0,
    )
    assert alarms[f"fbcatalog-{ENVIRONMENT}-open-rejections"]["MetricName"] == "OpenRejections"
    silent = alarms[f"fbcatalog-{ENVIRONMENT}-no-successful-sync"]
    assert silent["MetricName"] == "SyncSucceeded"
    assert silent["ComparisonOperator"] == "LessThanThreshold"
    assert silent["Period"] * silent["EvaluationPeriods"] == 2 * 3600
    assert silent["TreatMissingData"] == "breaching"  # no runs at all is an outage too
    drift = alarms[f"fbcatalog-{ENVIRONMENT}-drifted-items"]
    assert (drift["MetricName"], drift["ComparisonOperator"], drift["Threshold"]) == (
        "DriftedItems",
        "GreaterThanThreshold",
        0.0,
    )


def test_the_dashboard_charts_only_published_metrics_and_the_alarms(storage_stack: StorageStack) -> None:
    cloudwatch = storage_stack.clients.cloudwatch
    body = json.loads(
        cloudwatch.get_dashboard(DashboardName=f"fbcatalog-{ENVIRONMENT}-sync")["DashboardBody"]
    )
    charted = {
        line[1]
        for widget in body["widgets"]
        if widget["type"] == "metric"
        for line in widget["properties"]["metrics"]
    }
    assert charted == PUBLISHED_METRIC_NAMES
    for widget in body["widgets"]:
        for line in widget["properties"].get("metrics", []):
            assert line[0] == DEFAULT_NAMESPACE
            assert line[2:] == ["CatalogId", CATALOG_ID]
    # The "Security alarms" row lists audit-runtime.yaml's (tests/integration/test_audit_alarms.py).
    [alarm_widget] = [
        w for w in body["widgets"] if w["type"] == "alarm" and w["properties"]["title"] == "Alarms"
    ]
    alarm_arns = {a["AlarmArn"] for a in cloudwatch.describe_alarms()["MetricAlarms"]}
    assert set(alarm_widget["properties"]["alarms"]) == alarm_arns


# ------------------------------------------------------------ audit and runtime


def import_names(value: Any) -> list[str]:
    """The export names a template imports, with EnvironmentName filled in."""
    if isinstance(value, list):
        return [name for item in value for name in import_names(item)]
    if not isinstance(value, dict):
        return []
    if "Fn::ImportValue" in value:
        return [value["Fn::ImportValue"]["Fn::Sub"].replace("${EnvironmentName}", ENVIRONMENT)]
    return [name for item in value.values() for name in import_names(item)]


@pytest.fixture
def runtime_template() -> dict[str, Any]:
    return load_template(RUNTIME_TEMPLATE)


def resources_of(template: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [r for r in template["Resources"].values() if r["Type"] == kind]


def test_the_runtime_stack_imports_only_what_the_storage_stack_exports(
    storage_stack: StorageStack, runtime_template: dict[str, Any]
) -> None:
    imported = set(import_names(runtime_template["Resources"]))
    assert imported
    assert imported <= set(storage_stack.exports)
    assert storage_stack.exports[f"fbcatalog-{ENVIRONMENT}-LandingBucketArn"] == f"arn:aws:s3:::{LANDING}"


def test_the_trail_validates_its_logs_and_records_object_calls_on_both_buckets(
    runtime_template: dict[str, Any],
) -> None:
    [trail] = resources_of(runtime_template, "AWS::CloudTrail::Trail")
    properties = trail["Properties"]
    assert properties["EnableLogFileValidation"] is True
    assert properties["IsLogging"] is True
    assert trail["DependsOn"] == "TrailBucketPolicy"
    [selector] = properties["EventSelectors"]
    assert selector["ReadWriteType"] == "All"
    [data_resource] = selector["DataResources"]
    assert data_resource["Type"] == "AWS::S3::Object"
    # Each value is "<bucket ARN>/": every object of the bucket.
    watched = [(value["Fn::Sub"][0], import_names(value)) for value in data_resource["Values"]]
    assert watched == [
        ("${BucketArn}/", [f"fbcatalog-{ENVIRONMENT}-LandingBucketArn"]),
        ("${BucketArn}/", [f"fbcatalog-{ENVIRONMENT}-SyncedBucketArn"]),
    ]


def test_only_this_trail_may_write_to_the_trail_bucket(runtime_template: dict[str, Any]) -> None:
    [policy] = resources_of(runtime_template, "AWS::S3::BucketPolicy")
    statements = {s["Sid"]: s for s in policy["Properties"]["PolicyDocument"]["Statement"]}
    trail_name = runtime_template["Resources"]["Trail"]["Properties"]["TrailName"]["Fn::Sub"]
    trail_arn = "arn:${AWS::Partition}:cloudtrail:${AWS::Region}:${AWS::AccountId}:trail/" + trail_name
    for sid in ("CloudTrailAclCheck", "CloudTrailWrite"):
        assert statements[sid]["Principal"] == {"Service": "cloudtrail.amazonaws.com"}
        assert statements[sid]["Condition"]["StringEquals"]["aws:SourceArn"] == {"Fn::Sub": trail_arn}
    assert statements["DenyInsecureTransport"]["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    bucket = runtime_template["Resources"]["TrailBucket"]["Properties"]
    assert bucket["PublicAccessBlockConfiguration"]["RestrictPublicBuckets"] is True
    assert bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"]


def test_the_token_secret_is_created_empty_under_the_connections_prefix(
    runtime_template: dict[str, Any],
) -> None:
    [secret] = resources_of(runtime_template, "AWS::SecretsManager::Secret")
    properties = secret["Properties"]
    text, variables = properties["Name"]["Fn::Sub"]
    assert text == "${Prefix}/facebook_catalog_default"
    assert import_names(variables) == [f"fbcatalog-{ENVIRONMENT}-ConnectionsPrefix"]
    # Never a token in the template, and a stack update never overwrites the one put in later.
    assert "SecretString" not in properties
    assert "GenerateSecretString" not in properties
    assert secret["DeletionPolicy"] == "Retain"


def readme_connection_json() -> str:
    """The connection JSON deploy/README.md tells operators to store."""
    readme = (DEPLOY / "README.md").read_text()
    [block] = [b for b in re.findall(r"```json\n(.*?)```", readme, re.S) if '"conn_type"' in b]
    return block


def test_mwaa_reads_the_catalog_connection_from_that_secret_and_nothing_else(
    storage_stack: StorageStack, runtime_template: dict[str, Any], aws_env: MotoServer
) -> None:
    [environment] = resources_of(runtime_template, "AWS::MWAA::Environment")
    options = environment["Properties"]["AirflowConfigurationOptions"]
    module_name, _, class_name = options["secrets.backend"].rpartition(".")
    backend_class = getattr(importlib.import_module(module_name), class_name)
    kwargs_text, kwargs_variables = options["secrets.backend_kwargs"]["Fn::Sub"]
    prefix = storage_stack.exports[import_names(kwargs_variables)[0]]
    backend_kwargs = json.loads(kwargs_text.replace("${Prefix}", prefix))

    secrets = storage_stack.clients.secretsmanager
    token = "EAAGm0PX4ZCpsBAKZBxQ7Zx2ZCcL9pZAdZBvUuZCYtZAxPq8hT3ZA1Z"
    connection_json = (
        readme_connection_json().replace("<system-user token>", token).replace("<catalog id>", CATALOG_ID)
    )
    secrets.create_secret(Name=f"{prefix}/facebook_catalog_default", SecretString=connection_json)
    secrets.create_secret(Name=f"{prefix}/aws_default", SecretString='{"conn_type": "aws"}')

    backend = backend_class(**backend_kwargs, endpoint_url=aws_env.endpoint_url, region_name=AWS_REGION)
    connection = backend.get_connection("facebook_catalog_default")
    assert connection is not None
    assert connection.conn_type == "facebook_catalog"
    assert connection.password == token
    assert connection.host == "https://graph.facebook.com"
    assert connection.extra_dejson["catalog_id"] == CATALOG_ID
    # The role may read one secret: other connections and Variables are never looked up there.
    assert backend.get_connection("aws_default") is None
    assert backend.get_variable("facebook_catalog_sns_topic_arn") is None


def test_mwaa_runs_with_the_storage_stacks_role_bucket_and_logs(runtime_template: dict[str, Any]) -> None:
    [environment] = resources_of(runtime_template, "AWS::MWAA::Environment")
    properties = environment["Properties"]
    assert import_names(properties["ExecutionRoleArn"]) == [f"fbcatalog-{ENVIRONMENT}-MwaaExecutionRoleArn"]
    assert import_names(properties["SourceBucketArn"]) == [f"fbcatalog-{ENVIRONMENT}-AirflowBucketArn"]
    assert import_names(properties["Name"]) == [f"fbcatalog-{ENVIRONMENT}-MwaaEnvironmentName"]
    # The summary lines and failure callbacks log here; the Logs Insights query reads these groups.
    logging_configuration = properties["LoggingConfiguration"]
    assert logging_configuration["TaskLogs"] == {"Enabled": True, "LogLevel": "INFO"}
    assert logging_configuration["DagProcessingLogs"] == {"Enabled": True, "LogLevel": "INFO"}


@pytest.mark.parametrize("document", ["deploy/README.md", "docs/operations.md"])
def test_the_documented_logs_insights_query_is_the_one_the_code_defines(document: str) -> None:
    from facebook_catalog.sync.metrics import LOGS_INSIGHTS_QUERY

    assert LOGS_INSIGHTS_QUERY in (DEPLOY.parent / document).read_text()


def test_the_templates_agree_on_names(runtime_template: dict[str, Any]) -> None:
    storage = load_template(STORAGE_TEMPLATE)
    assert storage["Parameters"]["MetricNamespace"]["Default"] == DEFAULT_NAMESPACE
    assert (
        storage["Parameters"]["EnvironmentName"]["AllowedPattern"]
        == runtime_template["Parameters"]["EnvironmentName"]["AllowedPattern"]
    )
