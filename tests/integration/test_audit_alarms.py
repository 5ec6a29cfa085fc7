"""The audit trail that tells someone: deploy/audit-runtime.yaml's CloudWatch Logs delivery, metric
filters and alarms, created in a real moto server after the storage stack, and every filter pattern
evaluated on CloudTrail records shaped as AWS documents them.

moto's CloudFormation creates the KMS key, the log group and the trail's IAM role. It skips the
trail, the metric filters and the alarms ("not supported"), and cannot create a stack whose
outputs read an attribute of a type it lacks (the trail's and MWAA's), so the stack is created
without those outputs, and :func:`apply_what_moto_ignores` (with the deploy-template tests' own,
for buckets, bucket policies and alarms) sends the template's own properties,
resolved as CloudFormation resolves them (Fn::Sub with the storage stack's exports: the execution
role's real ARN, the buckets' real names), through the CloudTrail, Logs and CloudWatch APIs.
The patterns read back from moto are then matched by tests/fixtures/log_filter_pattern.py, because
moto's own evaluator matches every JSON pattern.
"""

from __future__ import annotations

import ast
import copy
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.fixtures.log_filter_pattern import matches, parse
from tests.fixtures.s3 import AWS_REGION, MotoServer
from tests.integration import test_deploy_templates as deploy_templates
from tests.integration.test_deploy_templates import (
    ACCOUNT_ID,
    ENVIRONMENT,
    LANDING,
    RUNTIME_TEMPLATE,
    SYNCED,
    StackValues,
    StorageStack,
    allowed,
    load_template,
)

pytestmark = [
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore:Tried to parse .* not supported by moto's CloudFormation"),
]

# The storage stack and its clients, as the deploy-template tests create them.
clients = deploy_templates.clients
storage_stack = deploy_templates.storage_stack

RUNTIME_STACK_NAME = f"fbcatalog-{ENVIRONMENT}-audit-runtime"
LOG_GROUP = f"/aws/cloudtrail/fbcatalog-{ENVIRONMENT}"
TRAIL_NAME = f"fbcatalog-{ENVIRONMENT}"
AUDIT_NAMESPACE = f"FacebookCatalogAudit/{ENVIRONMENT}"
OPERATIONS = Path(__file__).resolve().parents[2] / "docs" / "operations.md"
# Types moto's CloudFormation lacks; an output reading their attributes fails its validation.
MOTO_LACKS = {"AWS::CloudTrail::Trail", "AWS::MWAA::Environment"}
# What test_deploy_templates.apply_what_moto_ignores already sends through the APIs.
SHARED_TYPES = {"AWS::S3::Bucket", "AWS::S3::BucketPolicy", "AWS::CloudWatch::Alarm"}
# CloudWatch's limits on what the template sets.
MAX_FILTER_PATTERN = 1024
MAX_ALARM_DESCRIPTION = 1024


class RuntimeValues(StackValues):
    """Resolves the runtime template against its created stack and the storage stack's exports."""

    def __init__(self, *args: Any, exports: dict[str, str], attributes: dict[tuple[str, str], str]):
        super().__init__(*args)
        self.refs["AWS::StackName"] = RUNTIME_STACK_NAME
        self.exports = exports
        self.attributes = attributes

    def attribute(self, logical_id: str, name: str) -> str:
        if (logical_id, name) in self.attributes:
            return self.attributes[logical_id, name]
        return super().attribute(logical_id, name)

    def resolve(self, value: Any) -> Any:
        if isinstance(value, dict) and list(value) == ["Fn::ImportValue"]:
            return self.exports[self.resolve(value["Fn::ImportValue"])]
        return super().resolve(value)


def creatable_by_moto(template: dict[str, Any]) -> dict[str, Any]:
    """The template without the outputs that read attributes of types moto lacks."""
    trimmed = copy.deepcopy(template)
    lacking = {name for name, r in template["Resources"].items() if r["Type"] in MOTO_LACKS}
    trimmed["Outputs"] = {
        name: output
        for name, output in template["Outputs"].items()
        if not (isinstance(output["Value"], dict) and output["Value"].get("Fn::GetAtt", [""])[0] in lacking)
    }
    assert len(trimmed["Outputs"]) < len(template["Outputs"])  # the rule still has work to do
    return trimmed


@dataclass
class AuditClients:
    logs: Any
    cloudtrail: Any
    kms: Any


@dataclass
class RuntimeStack:
    template: dict[str, Any]
    values: RuntimeValues
    physical_ids: dict[str, str]
    outputs: dict[str, str]
    storage: StorageStack
    audit: AuditClients

    def filters(self) -> dict[str, dict[str, Any]]:
        found = self.audit.logs.describe_metric_filters(logGroupName=LOG_GROUP)["metricFilters"]
        return {f["filterName"]: f for f in found}

    def alarms(self) -> dict[str, dict[str, Any]]:
        found = self.storage.clients.cloudwatch.describe_alarms(
            AlarmNamePrefix=f"fbcatalog-{ENVIRONMENT}-audit-"
        )
        return {a["AlarmName"]: a for a in found["MetricAlarms"]}


def apply_what_moto_ignores(
    template: dict[str, Any], values: RuntimeValues, stack: StorageStack, audit: AuditClients
) -> None:
    # The trail bucket's settings, its policy and the alarms, as the storage stack's are applied.
    deploy_templates.apply_what_moto_ignores(
        {"Resources": {k: r for k, r in template["Resources"].items() if r["Type"] in SHARED_TYPES}},
        values,
        stack.clients,
    )
    # The log group first (the metric filters go into it). moto's CloudFormation reads its
    # retention but not its KMS key, and moto has no AssociateKmsKey: create it again through the
    # calls CloudFormation makes, CreateLogGroup with the key and PutRetentionPolicy.
    for resource in template["Resources"].values():
        if resource["Type"] == "AWS::Logs::LogGroup":
            properties = values.resolve(resource["Properties"])
            name = properties["LogGroupName"]
            audit.logs.delete_log_group(logGroupName=name)
            audit.logs.create_log_group(logGroupName=name, kmsKeyId=properties["KmsKeyId"])
            audit.logs.put_retention_policy(
                logGroupName=name, retentionInDays=int(properties["RetentionInDays"])
            )
    for resource in template["Resources"].values():
        kind = resource["Type"]
        if kind == "AWS::Logs::MetricFilter":
            properties = values.resolve(resource["Properties"])
            audit.logs.put_metric_filter(
                logGroupName=properties["LogGroupName"],
                filterName=properties["FilterName"],
                filterPattern=properties["FilterPattern"],
                metricTransformations=[
                    {
                        "metricName": t["MetricName"],
                        "metricNamespace": t["MetricNamespace"],
                        "metricValue": t["MetricValue"],
                    }
                    for t in properties["MetricTransformations"]
                ],
            )
        elif kind == "AWS::CloudTrail::Trail":
            properties = values.resolve(resource["Properties"])
            audit.cloudtrail.create_trail(
                Name=properties["TrailName"],
                S3BucketName=properties["S3BucketName"],
                IncludeGlobalServiceEvents=properties["IncludeGlobalServiceEvents"],
                IsMultiRegionTrail=properties["IsMultiRegionTrail"],
                EnableLogFileValidation=properties["EnableLogFileValidation"],
                CloudWatchLogsLogGroupArn=properties["CloudWatchLogsLogGroupArn"],
                CloudWatchLogsRoleArn=properties["CloudWatchLogsRoleArn"],
            )
            audit.cloudtrail.put_event_selectors(
                TrailName=properties["TrailName"], EventSelectors=properties["EventSelectors"]
            )
            if properties["IsLogging"]:
                audit.cloudtrail.start_logging(Name=properties["TrailName"])


@pytest.fixture
def runtime_stack(storage_stack: StorageStack, aws_env: MotoServer) -> RuntimeStack:
    def make(service: str) -> Any:
        return boto3.client(service, endpoint_url=aws_env.endpoint_url, region_name=AWS_REGION)

    audit = AuditClients(logs=make("logs"), cloudtrail=make("cloudtrail"), kms=make("kms"))
    cloudformation = storage_stack.clients.cloudformation
    template = load_template(RUNTIME_TEMPLATE)
    parameters = {
        "EnvironmentName": ENVIRONMENT,
        "SubnetIds": "subnet-0aaa,subnet-0bbb",
        "SecurityGroupIds": "sg-0ccc",
    }
    cloudformation.create_stack(
        StackName=RUNTIME_STACK_NAME,
        TemplateBody=json.dumps(creatable_by_moto(template)),
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
        Capabilities=["CAPABILITY_IAM"],
    )
    [stack] = cloudformation.describe_stacks(StackName=RUNTIME_STACK_NAME)["Stacks"]
    assert stack["StackStatus"] == "CREATE_COMPLETE", stack.get("StackStatusReason")
    resources = cloudformation.describe_stack_resources(StackName=RUNTIME_STACK_NAME)["StackResources"]
    physical_ids = {
        r["LogicalResourceId"]: r["PhysicalResourceId"] for r in resources if "LogicalResourceId" in r
    }
    defaults = {name: str(p["Default"]) for name, p in template["Parameters"].items() if "Default" in p}
    attributes: dict[tuple[str, str], str] = {}
    values = RuntimeValues(
        {**defaults, **parameters},
        physical_ids,
        {logical_id: resource["Type"] for logical_id, resource in template["Resources"].items()},
        exports=storage_stack.exports,
        attributes=attributes,
    )
    # moto's CloudFormation keeps the key policy as the object it was given, which its KMS then
    # cannot read: put it in as the JSON text KMS's API takes.
    key_id = physical_ids["TrailLogGroupKey"]
    key_policy = values.resolve(template["Resources"]["TrailLogGroupKey"]["Properties"]["KeyPolicy"])
    audit.kms.put_key_policy(KeyId=key_id, PolicyName="default", Policy=json.dumps(key_policy))
    [log_group] = audit.logs.describe_log_groups(logGroupNamePrefix=physical_ids["TrailLogGroup"])[
        "logGroups"
    ]
    attributes[("TrailLogGroup", "Arn")] = log_group["arn"]
    attributes[("TrailLogGroupKey", "Arn")] = audit.kms.describe_key(KeyId=key_id)["KeyMetadata"]["Arn"]
    attributes[("TrailToLogsRole", "Arn")] = storage_stack.clients.iam.get_role(
        RoleName=physical_ids["TrailToLogsRole"]
    )["Role"]["Arn"]
    apply_what_moto_ignores(template, values, storage_stack, audit)
    # The storage stack's fixture resets the moto server afterwards, this stack included.
    return RuntimeStack(
        template=template,
        values=values,
        physical_ids=physical_ids,
        outputs={o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])},
        storage=storage_stack,
        audit=audit,
    )


# ------------------------------------------------------- delivery to CloudWatch Logs


def test_the_trail_delivers_to_an_encrypted_log_group_kept_for_the_retention_set(
    runtime_stack: RuntimeStack,
) -> None:
    audit = runtime_stack.audit
    [log_group] = audit.logs.describe_log_groups(logGroupNamePrefix=LOG_GROUP)["logGroups"]
    assert log_group["logGroupName"] == LOG_GROUP == runtime_stack.outputs["TrailLogGroupName"]
    assert log_group["retentionInDays"] == 90
    key_arn = runtime_stack.outputs["TrailLogGroupKeyArn"]
    assert log_group["kmsKeyId"] == key_arn
    assert audit.kms.get_key_rotation_status(KeyId=key_arn)["KeyRotationEnabled"] is True

    [trail] = audit.cloudtrail.describe_trails(trailNameList=[TRAIL_NAME])["trailList"]
    assert trail["CloudWatchLogsLogGroupArn"] == log_group["arn"]
    assert trail["CloudWatchLogsRoleArn"] == runtime_stack.values.attribute("TrailToLogsRole", "Arn")
    # All regions: IAM and sign-in events are recorded in us-east-1 whatever the stack's region.
    assert trail["IsMultiRegionTrail"] is True
    assert trail["IncludeGlobalServiceEvents"] is True
    assert audit.cloudtrail.get_trail_status(Name=TRAIL_NAME)["IsLogging"] is True


def test_only_cloudwatch_logs_for_the_trail_log_group_may_use_its_key(runtime_stack: RuntimeStack) -> None:
    key_arn = runtime_stack.outputs["TrailLogGroupKeyArn"]
    policy = json.loads(runtime_stack.audit.kms.get_key_policy(KeyId=key_arn, PolicyName="default")["Policy"])
    [logs_statement] = [
        s for s in policy["Statement"] if s["Principal"] == {"Service": f"logs.{AWS_REGION}.amazonaws.com"}
    ]
    log_group_arn = f"arn:aws:logs:{AWS_REGION}:{ACCOUNT_ID}:log-group:{LOG_GROUP}"
    assert logs_statement["Condition"] == {"ArnEquals": {"kms:EncryptionContext:aws:logs:arn": log_group_arn}}
    assert "kms:GenerateDataKey*" in logs_statement["Action"]
    assert "kms:*" not in logs_statement["Action"]


def test_cloudtrail_may_write_to_its_log_streams_and_nowhere_else(runtime_stack: RuntimeStack) -> None:
    iam = runtime_stack.storage.clients.iam
    role_name = runtime_stack.physical_ids["TrailToLogsRole"]
    [statement] = iam.get_role(RoleName=role_name)["Role"]["AssumeRolePolicyDocument"]["Statement"]
    assert statement["Principal"] == {"Service": "cloudtrail.amazonaws.com"}
    [policy_name] = iam.list_role_policies(RoleName=role_name)["PolicyNames"]
    document = iam.get_role_policy(RoleName=role_name, PolicyName=policy_name)["PolicyDocument"]
    if isinstance(document, str):  # moto answers with Python's repr of a CloudFormation role's policy
        document = json.loads(document) if document.startswith('{"') else ast.literal_eval(document)
    group = f"arn:aws:logs:{AWS_REGION}:{ACCOUNT_ID}:log-group:{LOG_GROUP}"
    for region in (AWS_REGION, "eu-west-1"):  # one stream per region of the multi-region trail
        stream = f"{group}:log-stream:{ACCOUNT_ID}_CloudTrail_{region}"
        assert allowed(document, "logs:PutLogEvents", stream)
        assert allowed(document, "logs:CreateLogStream", stream)
    other_group = f"arn:aws:logs:{AWS_REGION}:{ACCOUNT_ID}:log-group:airflow-fbcatalog-{ENVIRONMENT}-Task"
    assert not allowed(
        document, "logs:PutLogEvents", f"{other_group}:log-stream:{ACCOUNT_ID}_CloudTrail_{AWS_REGION}"
    )
    assert not allowed(document, "logs:DeleteLogGroup", group)


def test_object_deletes_and_token_reads_are_recorded_on_both_data_buckets(
    runtime_stack: RuntimeStack,
) -> None:
    """DeleteObject is a data event: without the S3 object selector the delete alarm could never fire.
    GetSecretValue and the configuration calls are management events."""
    [selector] = runtime_stack.audit.cloudtrail.get_event_selectors(TrailName=TRAIL_NAME)["EventSelectors"]
    assert selector["ReadWriteType"] == "All"  # includes the write events DeleteObject(s)
    assert selector["IncludeManagementEvents"] is True
    [data_resource] = selector["DataResources"]
    assert data_resource["Type"] == "AWS::S3::Object"
    assert sorted(data_resource["Values"]) == [f"arn:aws:s3:::{LANDING}/", f"arn:aws:s3:::{SYNCED}/"]


# ------------------------------------------------------------ filters and alarms


def test_every_metric_filter_feeds_one_alarm_on_the_alert_topic(runtime_stack: RuntimeStack) -> None:
    filters = runtime_stack.filters()
    alarms = runtime_stack.alarms()
    template_filters = [
        r for r in runtime_stack.template["Resources"].values() if r["Type"] == "AWS::Logs::MetricFilter"
    ]
    assert len(filters) == len(template_filters) == len(alarms) == 8
    produced = {
        (t["metricNamespace"], t["metricName"]) for f in filters.values() for t in f["metricTransformations"]
    }
    assert {(a["Namespace"], a["MetricName"]) for a in alarms.values()} == produced
    topic = runtime_stack.storage.outputs["AlertTopicArn"]
    for alarm in alarms.values():
        assert alarm["Namespace"] == AUDIT_NAMESPACE
        assert alarm["AlarmActions"] == [topic]
        assert alarm["Statistic"] == "Sum"
    for name, alarm in alarms.items():
        if name.endswith("-trail-silent"):
            # No event at all for three hours: the trail is stopped, deleted or cannot deliver.
            assert (alarm["ComparisonOperator"], alarm["Threshold"], alarm["TreatMissingData"]) == (
                "LessThanThreshold",
                1.0,
                "breaching",
            )
            assert alarm["Period"] * alarm["EvaluationPeriods"] == 3 * 3600
        elif name.endswith("-access-denied"):
            assert (alarm["ComparisonOperator"], alarm["Threshold"], alarm["Period"]) == (
                "GreaterThanOrEqualToThreshold",
                5.0,
                300,
            )
        else:  # one event is enough
            assert (alarm["ComparisonOperator"], alarm["Threshold"], alarm["TreatMissingData"]) == (
                "GreaterThanOrEqualToThreshold",
                1.0,
                "notBreaching",
            )


def event_names_in(pattern: str) -> set[str]:
    return set(re.findall(r'\$\.eventName = "([A-Za-z]+)"', pattern))


def alarm_for(stack: RuntimeStack, metric_filter: dict[str, Any]) -> dict[str, Any]:
    [transformation] = metric_filter["metricTransformations"]
    [alarm] = [a for a in stack.alarms().values() if a["MetricName"] == transformation["metricName"]]
    return alarm


def test_each_alarm_says_what_happened_who_and_where_to_look(runtime_stack: RuntimeStack) -> None:
    operations = OPERATIONS.read_text()
    role_arn = runtime_stack.storage.outputs["MwaaExecutionRoleArn"]
    for metric_filter in runtime_stack.filters().values():
        alarm = alarm_for(runtime_stack, metric_filter)
        description = alarm["AlarmDescription"]
        # Within CloudWatch's limit, for the longest environment name CloudFormation accepts too.
        longest = len(description.replace(ENVIRONMENT, "e" * 15))
        assert longest <= MAX_ALARM_DESCRIPTION, (alarm["AlarmName"], longest)
        assert re.match(r"WHAT: .+ WHO: .+ NEXT: docs/operations\.md, Security alarms, ", description), (
            description
        )
        # The CloudTrail event names it counts, by name, and where to find the principal.
        assert event_names_in(metric_filter["filterPattern"]) <= set(
            re.findall(r"[A-Z][A-Za-z]+", description)
        )
        assert LOG_GROUP in description or "Event history" in description
        if "sessionIssuer.arn !=" in metric_filter["filterPattern"]:
            assert role_arn in description  # the query already leaves the execution role out
        # docs/operations.md has a section for it.
        short_name = alarm["AlarmName"].removeprefix(f"fbcatalog-{ENVIRONMENT}-")
        assert f"### {short_name}" in operations, short_name


def test_the_docs_cover_exactly_these_alarms_and_deploy_with_the_iam_capability(
    runtime_stack: RuntimeStack,
) -> None:
    documented = set(re.findall(r"^### (audit-[a-z-]+)$", OPERATIONS.read_text(), re.M))
    alarms = {name.removeprefix(f"fbcatalog-{ENVIRONMENT}-") for name in runtime_stack.alarms()}
    assert documented == alarms
    # The stack creates CloudTrail's IAM role: a deploy without CAPABILITY_IAM is refused.
    assert [r for r in runtime_stack.template["Resources"].values() if r["Type"] == "AWS::IAM::Role"]
    for document in (OPERATIONS, RUNTIME_TEMPLATE.parent / "README.md"):
        [command] = re.findall(r"--template-file deploy/audit-runtime\.yaml[^\n]*", document.read_text())
        assert "--capabilities CAPABILITY_IAM" in command, document


def test_the_dashboard_has_a_row_with_every_security_alarm(runtime_stack: RuntimeStack) -> None:
    cloudwatch = runtime_stack.storage.clients.cloudwatch
    body = json.loads(
        cloudwatch.get_dashboard(DashboardName=f"fbcatalog-{ENVIRONMENT}-sync")["DashboardBody"]
    )
    [row] = [
        w for w in body["widgets"] if w["type"] == "alarm" and w["properties"]["title"].startswith("Security")
    ]
    assert (row["x"], row["width"]) == (0, 24)  # a row of its own
    assert set(row["properties"]["alarms"]) == {a["AlarmArn"] for a in runtime_stack.alarms().values()}


# ------------------------------------------- filter patterns on real CloudTrail records


@dataclass(frozen=True)
class Principals:
    account: str
    execution_role_arn: str

    def execution_role(self) -> dict[str, Any]:
        """The MWAA execution role as CloudTrail names it in a worker's calls (an assumed role)."""
        return self.assumed_role(self.execution_role_arn, session="AmazonMWAA-airflow")

    def assumed_role(self, role_arn: str, session: str) -> dict[str, Any]:
        role_name = role_arn.rsplit("/", 1)[1]
        return {
            "type": "AssumedRole",
            "principalId": f"AROA4EXAMPLEROLEID:{session}",
            "arn": f"arn:aws:sts::{self.account}:assumed-role/{role_name}/{session}",
            "accountId": self.account,
            "accessKeyId": "ASIA4EXAMPLEKEYID",
            "sessionContext": {
                "sessionIssuer": {
                    "type": "Role",
                    "principalId": "AROA4EXAMPLEROLEID",
                    "arn": role_arn,
                    "accountId": self.account,
                    "userName": role_name,
                },
                "webIdFederationData": {},
                "attributes": {"creationDate": "2026-12-02T05:00:00Z", "mfaAuthenticated": "false"},
            },
        }

    def administrator(self) -> dict[str, Any]:
        """A person through IAM Identity Center: also an assumed role, of another role."""
        return self.assumed_role(
            f"arn:aws:iam::{self.account}:role/aws-reserved/sso.amazonaws.com/AWSReservedSSO_AdministratorAccess_0123456789abcdef",
            session="ops@example.com",
        )

    def iam_user(self, name: str = "mallory") -> dict[str, Any]:
        return {
            "type": "IAMUser",
            "principalId": "AIDA4EXAMPLEUSERID",
            "arn": f"arn:aws:iam::{self.account}:user/{name}",
            "accountId": self.account,
            "accessKeyId": "AKIA4EXAMPLEKEYID",
            "userName": name,
        }

    def aws_service(self, service: str) -> dict[str, Any]:
        return {"type": "AWSService", "invokedBy": service}


def api_call(
    identity: dict[str, Any],
    source: str,
    name: str,
    request: dict[str, Any] | None,
    *,
    error: str | None = None,
    read_only: bool = False,
    data_event: bool = False,
    resources: list[dict[str, Any]] | None = None,
    response: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One CloudTrail record (eventVersion 1.09) as delivered to CloudWatch Logs."""
    record: dict[str, Any] = {
        "eventVersion": "1.09",
        "userIdentity": identity,
        "eventTime": "2026-12-02T06:00:00Z",
        "eventSource": source,
        "eventName": name,
        "awsRegion": AWS_REGION,
        "sourceIPAddress": identity.get("invokedBy", "203.0.113.7"),
        "userAgent": identity.get("invokedBy", "aws-cli/2.22.0 md/Botocore#1.35.0 ua/2.0 os/linux"),
        "requestParameters": request,
        "responseElements": response,
        "requestID": "8d1c1a2b3c4d5e6f",
        "eventID": "0f3a6a8e-2b7e-4a34-9d34-6e0d4b6b0c11",
        "readOnly": read_only,
        "eventType": "AwsApiCall",
        "managementEvent": not data_event,
        "recipientAccountId": ACCOUNT_ID,
        "eventCategory": "Data" if data_event else "Management",
    }
    if resources is not None:
        record["resources"] = resources
    if error is not None:
        record["errorCode"] = error
        record["errorMessage"] = "User is not authorized to perform this operation"
    return record


def s3_object_call(
    identity: dict[str, Any], name: str, bucket: str, key: str, **kwargs: Any
) -> dict[str, Any]:
    """An S3 data event (DeleteObject, GetObject ...): the key in requestParameters, the object and
    the bucket in resources."""
    record = api_call(
        identity,
        "s3.amazonaws.com",
        name,
        {"bucketName": bucket, "Host": f"{bucket}.s3.{AWS_REGION}.amazonaws.com", "key": key},
        data_event=True,
        read_only=name.startswith(("Get", "Head", "List")),
        resources=[
            {"type": "AWS::S3::Object", "ARN": f"arn:aws:s3:::{bucket}/{key}"},
            {"accountId": ACCOUNT_ID, "type": "AWS::S3::Bucket", "ARN": f"arn:aws:s3:::{bucket}"},
        ],
        **kwargs,
    )
    record["additionalEventData"] = {
        "SignatureVersion": "SigV4",
        "CipherSuite": "TLS_AES_128_GCM_SHA256",
        "bytesTransferredIn": 0,
        "AuthenticationMethod": "AuthHeader",
        "x-amz-id-2": "EXAMPLEid2",
        "bytesTransferredOut": 0,
    }
    return record


def s3_batch_delete(identity: dict[str, Any], bucket: str) -> dict[str, Any]:
    """DeleteObjects: CloudTrail records the request, not the keys it deleted."""
    return api_call(
        identity,
        "s3.amazonaws.com",
        "DeleteObjects",
        {"bucketName": bucket, "Host": f"{bucket}.s3.{AWS_REGION}.amazonaws.com", "delete": ""},
        data_event=True,
        resources=[{"accountId": ACCOUNT_ID, "type": "AWS::S3::Bucket", "ARN": f"arn:aws:s3:::{bucket}"}],
    )


def s3_bucket_call(identity: dict[str, Any], name: str, bucket: str, **kwargs: Any) -> dict[str, Any]:
    request: dict[str, Any] = {"bucketName": bucket, "Host": f"{bucket}.s3.{AWS_REGION}.amazonaws.com"}
    request[
        {"PutBucketPolicy": "bucketPolicy", "PutBucketLifecycle": "LifecycleConfiguration"}.get(name, name)
    ] = ""
    return api_call(
        identity,
        "s3.amazonaws.com",
        name,
        request,
        read_only=name.startswith("Get"),
        resources=[{"accountId": ACCOUNT_ID, "type": "AWS::S3::Bucket", "ARN": f"arn:aws:s3:::{bucket}"}],
        **kwargs,
    )


def secret_read(identity: dict[str, Any], secret_id: str, **kwargs: Any) -> dict[str, Any]:
    return api_call(
        identity,
        "secretsmanager.amazonaws.com",
        "GetSecretValue",
        {"secretId": secret_id},
        read_only=True,
        **kwargs,
    )


def iam_call(identity: dict[str, Any], name: str, **request: str) -> dict[str, Any]:
    return api_call(
        identity, "iam.amazonaws.com", name, dict(request), read_only=name.startswith(("Get", "List"))
    )


def trail_call(identity: dict[str, Any], event: str, **request: Any) -> dict[str, Any]:
    return api_call(
        identity,
        "cloudtrail.amazonaws.com",
        event,
        dict(request),
        read_only=event.startswith(("Get", "Describe")),
    )


def console_login(identity: dict[str, Any], *, mfa: str, result: str = "Success") -> dict[str, Any]:
    """A sign-in record as AWS's "AWS console sign-in events" page shows it."""
    record = api_call(
        identity, "signin.amazonaws.com", "ConsoleLogin", None, response={"ConsoleLogin": result}
    )
    record.update(
        eventType="AwsConsoleSignIn",
        additionalEventData={
            "LoginTo": "https://console.aws.amazon.com/console/home",
            "MobileVersion": "No",
            "MFAUsed": mfa,
        },
    )
    if result != "Success":
        record["errorMessage"] = "Failed authentication"
    return record


@dataclass(frozen=True)
class Case:
    filter_name: str
    what: str
    record: dict[str, Any]
    counted: bool


def cases(stack: RuntimeStack) -> list[Case]:
    role_arn = stack.storage.outputs["MwaaExecutionRoleArn"]
    who = Principals(ACCOUNT_ID, role_arn)
    token = "airflow/connections/facebook_catalog_default"
    token_arn = f"arn:aws:secretsmanager:{AWS_REGION}:{ACCOUNT_ID}:secret:{token}-Ab12Cd"
    role_name = stack.storage.exports[f"fbcatalog-{ENVIRONMENT}-MwaaExecutionRoleName"]
    policy_arn = stack.storage.exports[f"fbcatalog-{ENVIRONMENT}-MwaaExecutionPolicyArn"]
    trail_arn = f"arn:aws:cloudtrail:{AWS_REGION}:{ACCOUNT_ID}:trail/{TRAIL_NAME}"
    denied = "AccessDenied"
    return [
        # --- the Meta token read by anyone but the execution role
        Case(
            "token-read-by-another-principal",
            "an IAM user reads it by name",
            secret_read(who.iam_user(), token),
            True,
        ),
        Case(
            "token-read-by-another-principal",
            "a person's SSO role reads it by ARN",
            secret_read(who.administrator(), token_arn),
            True,
        ),
        Case(
            "token-read-by-another-principal",
            "an attempt that was refused",
            secret_read(who.iam_user(), token, error=denied),
            True,
        ),
        Case(
            "token-read-by-another-principal",
            "the execution role reads its own secret",
            secret_read(who.execution_role(), token),
            False,
        ),
        Case(
            "token-read-by-another-principal",
            "the execution role, by ARN",
            secret_read(who.execution_role(), token_arn),
            False,
        ),
        Case(
            "token-read-by-another-principal",
            "another secret",
            secret_read(who.iam_user(), "airflow/connections/aws_default"),
            False,
        ),
        Case(
            "token-read-by-another-principal",
            "describing the secret is no read",
            api_call(
                who.iam_user(),
                "secretsmanager.amazonaws.com",
                "DescribeSecret",
                {"secretId": token},
                read_only=True,
            ),
            False,
        ),
        # --- the data buckets' configuration
        Case(
            "data-bucket-configuration-changed",
            "a new landing bucket policy",
            s3_bucket_call(who.administrator(), "PutBucketPolicy", LANDING),
            True,
        ),
        Case(
            "data-bucket-configuration-changed",
            "synced lifecycle rules replaced",
            s3_bucket_call(who.iam_user(), "PutBucketLifecycle", SYNCED),
            True,
        ),
        Case(
            "data-bucket-configuration-changed",
            "landing lifecycle removed",
            s3_bucket_call(who.iam_user(), "DeleteBucketLifecycle", LANDING),
            True,
        ),
        Case(
            "data-bucket-configuration-changed",
            "default encryption removed",
            s3_bucket_call(who.iam_user(), "DeleteBucketEncryption", SYNCED),
            True,
        ),
        Case(
            "data-bucket-configuration-changed",
            "public access block removed",
            s3_bucket_call(who.iam_user(), "DeleteBucketPublicAccessBlock", LANDING),
            True,
        ),
        Case(
            "data-bucket-configuration-changed",
            "versioning suspended",
            s3_bucket_call(who.iam_user(), "PutBucketVersioning", LANDING),
            True,
        ),
        Case(
            "data-bucket-configuration-changed",
            "reading the policy",
            s3_bucket_call(who.iam_user(), "GetBucketPolicy", LANDING),
            False,
        ),
        Case(
            "data-bucket-configuration-changed",
            "another bucket's policy",
            s3_bucket_call(who.iam_user(), "PutBucketPolicy", "someone-elses-bucket"),
            False,
        ),
        Case(
            "data-bucket-configuration-changed",
            "a refused change (the access-denied alarm counts it)",
            s3_bucket_call(who.execution_role(), "PutBucketPolicy", LANDING, error=denied),
            False,
        ),
        # --- objects deleted under landing/, archive/, runs/
        Case(
            "pipeline-objects-deleted",
            "a user deletes a landing file",
            s3_object_call(who.iam_user(), "DeleteObject", LANDING, "landing/2026/12/02/products.csv"),
            True,
        ),
        Case(
            "pipeline-objects-deleted",
            "a person deletes an archived file",
            s3_object_call(who.administrator(), "DeleteObject", LANDING, "archive/2026/12/02/products.csv"),
            True,
        ),
        Case(
            "pipeline-objects-deleted",
            "a run record deleted",
            s3_object_call(
                who.iam_user(),
                "DeleteObject",
                SYNCED,
                "runs/scheduled__2026-12-02T05:00:00+00:00/report.json",
            ),
            True,
        ),
        Case(
            "pipeline-objects-deleted",
            "a batch delete (the console) on synced",
            s3_batch_delete(who.administrator(), SYNCED),
            True,
        ),
        Case(
            "pipeline-objects-deleted",
            "a batch delete on landing",
            s3_batch_delete(who.iam_user(), LANDING),
            True,
        ),
        Case(
            "pipeline-objects-deleted",
            "the execution role removes a synced landing file",
            s3_object_call(who.execution_role(), "DeleteObject", LANDING, "landing/2026/12/02/products.csv"),
            False,
        ),
        Case(
            "pipeline-objects-deleted",
            "the replay procedure deletes a quarantined copy",
            s3_object_call(who.iam_user(), "DeleteObject", LANDING, "quarantine/2026/12/02/products.csv"),
            False,
        ),
        # Lifecycle expiry is not in CloudTrail at all; an AWS service's own delete is not counted.
        Case(
            "pipeline-objects-deleted",
            "an AWS service principal deletes",
            s3_object_call(
                who.aws_service("s3.amazonaws.com"),
                "DeleteObject",
                LANDING,
                "archive/2026/10/01/products.csv",
            ),
            False,
        ),
        Case(
            "pipeline-objects-deleted",
            "a read",
            s3_object_call(who.iam_user(), "GetObject", LANDING, "landing/products.csv", response=None),
            False,
        ),
        Case(
            "pipeline-objects-deleted",
            "another bucket",
            s3_object_call(who.iam_user(), "DeleteObject", "someone-elses-bucket", "landing/x.csv"),
            False,
        ),
        Case(
            "pipeline-objects-deleted",
            "a refused delete (nothing was deleted)",
            s3_object_call(who.iam_user(), "DeleteObject", LANDING, "archive/x.csv", error=denied),
            False,
        ),
        # --- the execution role and its policy
        Case(
            "execution-role-changed",
            "administrator access attached",
            iam_call(
                who.iam_user(),
                "AttachRolePolicy",
                roleName=role_name,
                policyArn="arn:aws:iam::aws:policy/AdministratorAccess",
            ),
            True,
        ),
        Case(
            "execution-role-changed",
            "trust policy replaced",
            iam_call(who.administrator(), "UpdateAssumeRolePolicy", roleName=role_name, policyDocument="{}"),
            True,
        ),
        Case(
            "execution-role-changed",
            "an inline policy added",
            iam_call(
                who.iam_user(), "PutRolePolicy", roleName=role_name, policyName="x", policyDocument="{}"
            ),
            True,
        ),
        Case(
            "execution-role-changed",
            "a new default version of its policy",
            iam_call(
                who.iam_user(),
                "CreatePolicyVersion",
                policyArn=policy_arn,
                policyDocument="{}",
                setAsDefault="true",
            ),
            True,
        ),
        Case(
            "execution-role-changed",
            "reading the role",
            iam_call(who.iam_user(), "GetRole", roleName=role_name),
            False,
        ),
        Case(
            "execution-role-changed",
            "another role changed",
            iam_call(
                who.iam_user(),
                "AttachRolePolicy",
                roleName="some-other-role",
                policyArn="arn:aws:iam::aws:policy/ReadOnlyAccess",
            ),
            False,
        ),
        Case(
            "execution-role-changed",
            "a refused change",
            {
                **iam_call(who.iam_user(), "PutRolePolicy", roleName=role_name, policyName="x"),
                "errorCode": denied,
            },
            False,
        ),
        # --- the trail itself
        Case(
            "trail-stopped-deleted-or-changed",
            "logging stopped, by ARN",
            trail_call(who.iam_user(), "StopLogging", name=trail_arn),
            True,
        ),
        Case(
            "trail-stopped-deleted-or-changed",
            "the trail deleted, by name",
            trail_call(who.administrator(), "DeleteTrail", name=TRAIL_NAME),
            True,
        ),
        Case(
            "trail-stopped-deleted-or-changed",
            "data events switched off",
            trail_call(who.iam_user(), "PutEventSelectors", trailName=TRAIL_NAME, eventSelectors=[]),
            True,
        ),
        Case(
            "trail-stopped-deleted-or-changed",
            "an attempt to stop it",
            {**trail_call(who.iam_user(), "StopLogging", name=TRAIL_NAME), "errorCode": denied},
            True,
        ),
        Case(
            "trail-stopped-deleted-or-changed",
            "another trail stopped",
            trail_call(who.iam_user(), "StopLogging", name="organization-trail"),
            False,
        ),
        Case(
            "trail-stopped-deleted-or-changed",
            "another environment's trail",
            trail_call(
                who.iam_user(),
                "StopLogging",
                name=f"arn:aws:cloudtrail:{AWS_REGION}:{ACCOUNT_ID}:trail/{TRAIL_NAME}-eu",
            ),
            False,
        ),
        Case(
            "trail-stopped-deleted-or-changed",
            "its status read",
            trail_call(who.iam_user(), "GetTrailStatus", name=TRAIL_NAME),
            False,
        ),
        # --- the trail's heartbeat
        Case("every-trail-event", "any CloudTrail record", secret_read(who.execution_role(), token), True),
        Case("every-trail-event", "a sign-in record", console_login(who.iam_user(), mfa="Yes"), True),
        Case("every-trail-event", "a line that is no CloudTrail record", {"message": "hello"}, False),
        # --- console sign-in without MFA
        Case(
            "console-sign-in-without-mfa",
            "an IAM user without MFA",
            console_login(who.iam_user("anaya"), mfa="No"),
            True,
        ),
        Case(
            "console-sign-in-without-mfa",
            "the root user without MFA",
            console_login(
                {
                    "type": "Root",
                    "principalId": ACCOUNT_ID,
                    "arn": f"arn:aws:iam::{ACCOUNT_ID}:root",
                    "accountId": ACCOUNT_ID,
                    "accessKeyId": "",
                },
                mfa="No",
            ),
            True,
        ),
        Case(
            "console-sign-in-without-mfa",
            "an IAM user with MFA",
            console_login(who.iam_user("anaya"), mfa="Yes"),
            False,
        ),
        Case(
            "console-sign-in-without-mfa",
            "a failed sign-in",
            console_login(who.iam_user("anaya"), mfa="No", result="Failure"),
            False,
        ),
        Case(
            "console-sign-in-without-mfa",
            "SSO (MFA at the identity provider)",
            console_login(who.administrator(), mfa="No"),
            False,
        ),
        # --- bursts of refused calls on the pipeline's resources
        Case(
            "access-denied-on-pipeline-resources",
            "a refused read of a landing file",
            s3_object_call(who.iam_user(), "GetObject", LANDING, "landing/p.csv", error=denied),
            True,
        ),
        Case(
            "access-denied-on-pipeline-resources",
            "a refused token read",
            secret_read(who.iam_user(), token_arn, error=denied),
            True,
        ),
        Case(
            "access-denied-on-pipeline-resources",
            "the execution role refused elsewhere",
            api_call(
                who.execution_role(),
                "sns.amazonaws.com",
                "Publish",
                {"topicArn": "arn:aws:sns:us-east-1:123456789012:x"},
                error="AccessDenied",
            ),
            True,
        ),
        Case(
            "access-denied-on-pipeline-resources",
            "refused on a bucket of someone else's",
            s3_object_call(who.iam_user(), "GetObject", "someone-elses-bucket", "a.csv", error=denied),
            False,
        ),
        Case(
            "access-denied-on-pipeline-resources",
            "an allowed read",
            s3_object_call(who.iam_user(), "GetObject", LANDING, "landing/p.csv"),
            False,
        ),
    ]


def test_every_filter_pattern_counts_what_it_should_and_nothing_else(runtime_stack: RuntimeStack) -> None:
    filters = runtime_stack.filters()
    all_cases = cases(runtime_stack)
    # Every filter has a record it must count and one it must not.
    assert {(c.filter_name, c.counted) for c in all_cases} == {
        (name, flag) for name in filters for flag in (True, False)
    }
    wrong = [
        (case.filter_name, case.what, "counted" if case.counted else "not counted")
        for case in all_cases
        if matches(filters[case.filter_name]["filterPattern"], json.dumps(case.record)) is not case.counted
    ]
    assert wrong == []


def test_the_patterns_are_rendered_with_the_real_names_and_fit_cloudwatchs_limit(
    runtime_stack: RuntimeStack,
) -> None:
    role_arn = runtime_stack.storage.outputs["MwaaExecutionRoleArn"]
    for name, metric_filter in runtime_stack.filters().items():
        pattern = metric_filter["filterPattern"]
        parse(pattern)
        assert "${" not in pattern, name  # every Fn::Sub variable was filled in
        assert len(pattern) <= MAX_FILTER_PATTERN, (name, len(pattern))
        if "sessionIssuer.arn" in pattern:
            assert f'"{role_arn}"' in pattern
    # The longest environment name CloudFormation accepts still fits.
    longest = {
        name: len(f["filterPattern"].replace(ENVIRONMENT, "e" * 15))
        for name, f in runtime_stack.filters().items()
    }
    assert max(longest.values()) <= MAX_FILTER_PATTERN, longest
