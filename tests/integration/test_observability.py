"""Metrics, failure alerts and the failure callback against a real moto server over HTTP, through
the Amazon provider's hooks and the ``aws_default`` connection the fixtures define."""

from __future__ import annotations

import json
import logging
import os
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import boto3
import pytest
from airflow.providers.amazon.aws.hooks.sns import SnsHook

from facebook_catalog.dags.callbacks import make_failure_callback
from facebook_catalog.storage.run_records import RunRecords
from facebook_catalog.sync.alerts import publish_failure_alert
from facebook_catalog.sync.metrics import (
    DEFAULT_NAMESPACE,
    DIMENSION_NAME,
    METRIC_NAMES,
    SUMMARY_EVENT,
    observe_run,
    publish_run_metrics,
)
from tests.fixtures.airflow import load_dag
from tests.fixtures.s3 import AWS_REGION, MotoServer, S3Buckets
from tests.unit.test_observability import FAKE_META_TOKEN, planted_report, sample_report

pytestmark = pytest.mark.integration

CATALOG_ID = "1234567890"


def client(aws_env: MotoServer, service: str) -> Any:
    return boto3.client(service, endpoint_url=aws_env.endpoint_url, region_name=AWS_REGION)


@dataclass
class AlertInbox:
    """An SNS topic with an SQS queue subscribed: what a subscriber of the topic would receive."""

    topic_arn: str
    queue_url: str
    sqs: Any

    def receive(self) -> list[dict[str, Any]]:
        # moto delivers to subscribed queues during Publish: no need to wait.
        response = self.sqs.receive_message(
            QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0
        )
        return [json.loads(message["Body"]) for message in response.get("Messages", [])]


@pytest.fixture
def alert_inbox(aws_env: MotoServer) -> AlertInbox:
    sns, sqs = client(aws_env, "sns"), client(aws_env, "sqs")
    topic_arn = sns.create_topic(Name="fbcatalog-test-alerts")["TopicArn"]
    queue_url = sqs.create_queue(QueueName="alert-inbox")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn)
    return AlertInbox(topic_arn=topic_arn, queue_url=queue_url, sqs=sqs)


@pytest.fixture
def sync_variables(monkeypatch: pytest.MonkeyPatch, s3_buckets: S3Buckets, alert_inbox: AlertInbox) -> None:
    """The sync DAG's settings as a deployment gives them: Airflow Variables."""
    monkeypatch.setenv("AIRFLOW_VAR_FACEBOOK_CATALOG_SNS_TOPIC_ARN", alert_inbox.topic_arn)
    monkeypatch.setenv("AIRFLOW_VAR_FACEBOOK_CATALOG_SYNCED_BUCKET", s3_buckets.synced)
    monkeypatch.setenv("AIRFLOW_VAR_FACEBOOK_CATALOG_CATALOG_ID", CATALOG_ID)


def cloudwatch_hook_client() -> Any:
    """CloudWatch through the Amazon provider's hook, as the sync DAG reaches it."""
    from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook

    return AwsBaseHook(aws_conn_id="aws_default", client_type="cloudwatch").get_conn()


# ------------------------------------------------------------------ metrics


def test_run_metrics_reach_cloudwatch_per_catalog(aws_env: MotoServer) -> None:
    now = datetime.now(timezone.utc)
    cloudwatch = cloudwatch_hook_client()
    published = publish_run_metrics(sample_report(), DEFAULT_NAMESPACE, cloudwatch)

    listed = cloudwatch.list_metrics(
        Namespace=DEFAULT_NAMESPACE, Dimensions=[{"Name": DIMENSION_NAME, "Value": CATALOG_ID}]
    )["Metrics"]
    assert published == len(METRIC_NAMES)
    assert {m["MetricName"] for m in listed} == METRIC_NAMES

    def statistic(name: str, stat: str = "Sum") -> float:
        points = cloudwatch.get_metric_statistics(
            Namespace=DEFAULT_NAMESPACE,
            MetricName=name,
            Dimensions=[{"Name": DIMENSION_NAME, "Value": CATALOG_ID}],
            StartTime=now - timedelta(minutes=5),
            EndTime=now + timedelta(minutes=5),
            Period=600,
            Statistics=[stat],
        )["Datapoints"]
        assert len(points) == 1, f"{name}: {points}"
        return float(points[0][stat])

    assert statistic("ItemsSent") == 4960
    assert statistic("RowsRejected") == 30
    assert statistic("SyncSucceeded") == 1
    assert statistic("SyncFailed") == 0
    assert statistic("RejectedRowRatio", "Maximum") == pytest.approx(0.6)
    assert statistic("MetaProcessingSeconds", "Maximum") == 95


def test_a_failed_run_publishes_a_failure_in_its_own_namespace(aws_env: MotoServer) -> None:
    cloudwatch = cloudwatch_hook_client()
    publish_run_metrics(
        sample_report(status="failed", catalog_id="777"), "FacebookCatalogSync/staging", cloudwatch
    )
    listed = cloudwatch.list_metrics(Namespace="FacebookCatalogSync/staging", MetricName="SyncFailed")[
        "Metrics"
    ]
    assert [m["Dimensions"] for m in listed] == [[{"Name": DIMENSION_NAME, "Value": "777"}]]
    assert cloudwatch.list_metrics(Namespace=DEFAULT_NAMESPACE)["Metrics"] == []


def test_observe_run_logs_one_summary_line_and_publishes(
    aws_env: MotoServer, caplog: pytest.LogCaptureFixture
) -> None:
    logger = logging.getLogger("test.observe_run")
    with caplog.at_level(logging.INFO, logger="test.observe_run"):
        count = observe_run(
            sample_report(),
            DEFAULT_NAMESPACE,
            cloudwatch_hook_client(),
            report_uri="s3://synced/runs/x/report.json",
            logger=logger,
        )
    lines = [r.getMessage() for r in caplog.records if r.name == "test.observe_run"]
    assert len(lines) == 1
    summary = json.loads(lines[0])
    assert summary["event"] == SUMMARY_EVENT
    assert summary["items_sent"] == 4960
    assert count == len(METRIC_NAMES)


# ------------------------------------------------------------------ alerts


def test_a_failure_alert_reaches_the_topics_subscribers(alert_inbox: AlertInbox) -> None:
    message_id = publish_failure_alert(
        SnsHook(aws_conn_id="aws_default"),
        alert_inbox.topic_arn,
        "Airflow facebook_catalog_sync failed",
        "The run failed.\nReport: s3://x",
    )
    [received] = alert_inbox.receive()
    assert received["MessageId"] == message_id
    assert received["Subject"] == "Airflow facebook_catalog_sync failed"
    assert received["Message"] == "The run failed.\nReport: s3://x"


@pytest.mark.parametrize("topic_arn", [None, "", "  "])
def test_alerts_are_off_without_a_topic(alert_inbox: AlertInbox, topic_arn: str | None) -> None:
    assert publish_failure_alert(SnsHook(aws_conn_id="aws_default"), topic_arn, "subject", "message") is None
    assert alert_inbox.receive() == []


def test_the_failure_callback_summarises_the_report_it_finds(
    s3_buckets: S3Buckets, alert_inbox: AlertInbox, sync_variables: None
) -> None:
    from airflow.sdk import DAG

    run_id = "scheduled__2026-11-26T10:00:00+00:00"
    records = RunRecords(s3_buckets.hook, s3_buckets.synced, run_id)
    records.put_report(
        sample_report(run_id=run_id, status="failed", failure="Meta rejected 2 of 4960 items (max 0)")
    )
    # The context Airflow 3 gives a DAG's failure callback when it knows no task (DAG processor).
    context = {
        "dag": DAG(dag_id="facebook_catalog_sync", schedule=None),
        "run_id": run_id,
        "reason": "task_failure",
    }

    message_id = make_failure_callback()(context)

    [received] = alert_inbox.receive()
    assert received["MessageId"] == message_id
    assert received["Subject"] == "Airflow facebook_catalog_sync failed (catalog 1234567890)"
    message = received["Message"]
    assert "What failed: Meta rejected 2 of 4960 items (max 0)" in message
    assert "rows read 5000, rows rejected 30" in message
    assert f"Report: {records.uri('report.json')}" in message
    assert "/dags/facebook_catalog_sync/runs/scheduled__2026-11-26T10%3A00%3A00%2B00%3A00" in message


def test_the_failure_callback_never_forwards_a_token(
    s3_buckets: S3Buckets, alert_inbox: AlertInbox, sync_variables: None
) -> None:
    from airflow.sdk import DAG

    run_id = "manual__2026-11-26T10:00:00+00:00"
    RunRecords(s3_buckets.hook, s3_buckets.synced, run_id).put_report(planted_report())
    context = {
        "dag": DAG(dag_id="facebook_catalog_sync", schedule=None),
        "run_id": run_id,
        "exception": RuntimeError(f"GET /v25.0/me?access_token={FAKE_META_TOKEN} returned 400"),
    }
    make_failure_callback()(context)

    [received] = alert_inbox.receive()
    assert FAKE_META_TOKEN not in json.dumps(received)
    assert "access_token=***" in received["Message"]


def test_the_failure_callback_alerts_without_a_report_and_never_raises(
    s3_buckets: S3Buckets, alert_inbox: AlertInbox, sync_variables: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow.sdk import DAG

    # A broken setting the alert does not need must not silence it.
    monkeypatch.setenv("AIRFLOW_VAR_FACEBOOK_CATALOG_POLL_INTERVAL", "soon")
    context = {"dag": DAG(dag_id="facebook_catalog_sync", schedule=None), "run_id": "manual__1"}
    make_failure_callback()(context)
    [received] = alert_inbox.receive()
    assert "Report: none at s3://synced-products/runs/manual__1/report.json" in received["Message"]
    assert "Catalog: 1234567890" in received["Message"]

    # A topic that does not exist: the alert fails, the callback logs it and returns.
    monkeypatch.setenv(
        "AIRFLOW_VAR_FACEBOOK_CATALOG_SNS_TOPIC_ARN", "arn:aws:sns:us-east-1:123456789012:gone"
    )
    assert make_failure_callback()(context) is None


def test_the_run_report_is_read_where_run_records_put_it(s3_buckets: S3Buckets) -> None:
    run_id = "scheduled__2026-11-26T10:00:00+00:00"
    records = RunRecords(s3_buckets.hook, s3_buckets.synced, run_id, runs_prefix="records/")
    records.put_report(sample_report(run_id=run_id))
    report = RunRecords(s3_buckets.hook, s3_buckets.synced, run_id, runs_prefix="records/").load_report()
    assert report is not None
    assert report["run_id"] == run_id
    assert RunRecords(s3_buckets.hook, s3_buckets.synced, "other-run").load_report() is None


# ----------------------------------------------------- through real Airflow

FAILING_DAG = textwrap.dedent(
    '''
    """A run that writes its report and fails, like facebook_catalog_sync on a bad day."""
    from __future__ import annotations

    from datetime import datetime

    from airflow.sdk import DAG, get_current_context, task

    from facebook_catalog.dags.callbacks import make_failure_callback

    with DAG(
        dag_id="observability_failure_probe",
        schedule=None,
        start_date=datetime(2025, 1, 1),
        catchup=False,
        on_failure_callback=make_failure_callback(),
    ) as dag:

        @task(retries=0)
        def sync_catalog() -> None:
            from airflow.providers.amazon.aws.hooks.s3 import S3Hook
            from airflow.sdk import Variable

            from facebook_catalog.storage.run_records import RunRecords

            run_id = get_current_context()["run_id"]
            bucket = Variable.get("facebook_catalog_synced_bucket")
            report = {
                "dag_id": "observability_failure_probe", "run_id": run_id, "catalog_id": "1234567890",
                "status": "failed", "failure": "Meta kept answering 500",
                "counts": {"files_read": 2, "rows_read": 120, "rows_rejected": 1, "items_sent": 0},
            }
            RunRecords(S3Hook(aws_conn_id="aws_default"), bucket, run_id).put_report(report)
            raise RuntimeError("Meta kept answering 500")

        sync_catalog()
    '''
)


@pytest.fixture
def failing_dag_file() -> Iterator[Path]:
    """The probe DAG, for the length of one test, in the DAG folder ``dag.test()`` serialises from."""
    path = Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"]) / "observability_failure_probe.py"
    path.write_text(FAILING_DAG)
    try:
        yield path
    finally:
        path.unlink(missing_ok=True)


@pytest.fixture
def sync_variables_in_the_database(
    airflow_db: Path, s3_buckets: S3Buckets, alert_inbox: AlertInbox
) -> Iterator[None]:
    """The same settings where a deployment (MWAA included) usually keeps them: the metadata DB.
    Unlike environment variables, only a supervisor or the database can answer for these."""
    from airflow.models.variable import Variable

    values = {
        "facebook_catalog_sns_topic_arn": alert_inbox.topic_arn,
        "facebook_catalog_synced_bucket": s3_buckets.synced,
        "facebook_catalog_catalog_id": CATALOG_ID,
    }
    for key, value in values.items():
        Variable.set(key, value)
    try:
        yield
    finally:
        for key in values:
            Variable.delete(key)


@pytest.mark.parametrize("variables", ["sync_variables", "sync_variables_in_the_database"])
def test_a_failed_dag_run_sends_the_alert_through_airflows_callback(
    airflow_db: Path,
    failing_dag_file: Path,
    s3_buckets: S3Buckets,
    alert_inbox: AlertInbox,
    variables: str,
    request: pytest.FixtureRequest,
) -> None:
    request.getfixturevalue(variables)
    dag = load_dag(failing_dag_file, "observability_failure_probe")
    dagrun = dag.test()
    assert str(getattr(dagrun.state, "value", dagrun.state)) == "failed"

    [received] = alert_inbox.receive()
    assert received["Subject"] == "Airflow observability_failure_probe failed (catalog 1234567890)"
    message = received["Message"]
    assert "Failed task: sync_catalog" in message
    assert "What failed: Meta kept answering 500" in message
    assert "files read 2, rows read 120, rows rejected 1" in message
    report_uri = RunRecords(s3_buckets.hook, s3_buckets.synced, dagrun.run_id).uri("report.json")
    assert f"Report: {report_uri}" in message
