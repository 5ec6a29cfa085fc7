"""The sync DAG's failure callback: the Airflow side of a failure alert.

It reads what the alert needs the way the DAG reads its settings (run params, then Variables,
then defaults), finds the run's report in the synced-products bucket, and hands both to
:mod:`facebook_catalog.sync.alerts`, which words the alert and publishes it to SNS.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from facebook_catalog.storage.run_records import RunRecords
from facebook_catalog.sync.alerts import FailedRun, failure_message, publish_failure_alert, run_url
from facebook_catalog.sync.settings import resolve_sync_settings

log = logging.getLogger(__name__)

DEFAULT_TOPIC_ARN_VARIABLE = "facebook_catalog_sns_topic_arn"


def _airflow_base_url() -> str:
    from airflow.providers.common.compat.sdk import conf

    return str(conf.get("api", "base_url", fallback="http://localhost:8080/"))


def _context_value(context: Mapping[str, Any], *path: str) -> Any:
    value: Any = context
    for name in path:
        if value is None:
            return None
        value = value.get(name) if isinstance(value, Mapping) else getattr(value, name, None)
    return value


_ALERT_SETTINGS = frozenset({"synced_bucket", "runs_prefix", "aws_conn_id", "catalog_id"})


class SyncFailureAlert:
    """A DAG's (or task's) ``on_failure_callback`` that sends a short summary of a failed run to SNS.

    Airflow 3 runs a DAG's failure callback in the DAG processor, with a context holding ``dag``,
    ``run_id``, ``reason`` and, when Airflow knows the last task, the task context (``ti``,
    ``dag_run``, ``params``); a task's failure callback also gets ``exception``.

    Where the report is (synced bucket, runs prefix), the AWS connection and the catalog id are the
    sync DAG's settings (facebook_catalog.sync.settings: run params, then Variables
    ``facebook_catalog_<name>``, then defaults), read when the callback runs; an argument given
    here wins. The topic is ``topic_arn`` or the Variable named ``topic_arn_variable``; with
    neither set, alerts are off. The callback never raises: failing to alert is logged and must not
    hide why the run failed.
    """

    def __init__(
        self,
        *,
        topic_arn: str | None = None,
        topic_arn_variable: str | None = DEFAULT_TOPIC_ARN_VARIABLE,
        synced_bucket: str | None = None,
        runs_prefix: str | None = None,
        aws_conn_id: str | None = None,
        catalog_id: str | None = None,
        defaults: Mapping[str, Any] | None = None,
    ) -> None:
        self.topic_arn = topic_arn
        #: A DAG factory's settings: below params and Variables, as the DAG resolves them.
        self.defaults = dict(defaults or {})
        self.topic_arn_variable = topic_arn_variable
        self.overrides = {
            name: value
            for name, value in (
                ("synced_bucket", synced_bucket),
                ("runs_prefix", runs_prefix),
                ("aws_conn_id", aws_conn_id),
                ("catalog_id", catalog_id),
            )
            if value
        }

    def __repr__(self) -> str:
        return f"{type(self).__name__}(topic_arn_variable={self.topic_arn_variable!r})"

    @staticmethod
    def variable(key: str) -> str | None:
        from facebook_catalog.compat import get_variable

        return get_variable(key)

    def settings(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """The few sync settings the alert needs, looked up as the DAG looks them up. Only these: an
        unrelated bad setting (say poll_interval) must not silence the alert."""
        return resolve_sync_settings(
            {**params, **self.overrides}, self.variable, names=_ALERT_SETTINGS, defaults=self.defaults
        )

    def __call__(self, context: Mapping[str, Any]) -> str | None:
        try:
            return self._alert(context)
        except Exception:
            log.exception("The facebook_catalog failure alert could not be sent")
            return None

    def _alert(self, context: Mapping[str, Any]) -> str | None:
        from airflow.providers.amazon.aws.hooks.s3 import S3Hook
        from airflow.providers.amazon.aws.hooks.sns import SnsHook

        topic_arn = self.topic_arn or (
            self.variable(self.topic_arn_variable) if self.topic_arn_variable else None
        )
        if not topic_arn:
            log.info("Failure alerts are off: no topic_arn and no Variable %s", self.topic_arn_variable)
            return None
        params = _context_value(context, "params")
        settings = self.settings(params if isinstance(params, Mapping) else {})
        dag_id = str(
            _context_value(context, "dag", "dag_id") or _context_value(context, "dag_run", "dag_id") or ""
        )
        run_id = str(context.get("run_id") or _context_value(context, "dag_run", "run_id") or "")

        report: dict[str, Any] | None = None
        report_uri: str | None = None
        if settings["synced_bucket"] and run_id:
            try:
                records = RunRecords(
                    S3Hook(aws_conn_id=settings["aws_conn_id"]),
                    settings["synced_bucket"],
                    run_id,
                    settings["runs_prefix"],
                )
                report_uri = records.uri("report.json")
                report = records.load_report()
            except Exception:
                # The alert matters more than its details: send it without the report.
                log.exception("Could not read the run report from s3://%s", settings["synced_bucket"])

        exception = context.get("exception")
        reason = context.get("reason")
        run = FailedRun(
            dag_id=dag_id or "unknown DAG",
            run_id=run_id or "unknown run",
            task_id=_context_value(context, "ti", "task_id"),
            exception=str(exception) if exception else (str(reason) if reason else None),
            report_uri=report_uri,
            run_url=run_url(dag_id, run_id, _airflow_base_url()) if dag_id and run_id else None,
            catalog_id=settings["catalog_id"] or None,
        )
        subject, message = failure_message(report, run)
        return publish_failure_alert(
            SnsHook(aws_conn_id=settings["aws_conn_id"]), topic_arn, subject, message
        )


def make_failure_callback(
    topic_arn_variable: str | None = DEFAULT_TOPIC_ARN_VARIABLE, **kwargs: Any
) -> SyncFailureAlert:
    """``on_failure_callback=make_failure_callback()`` for the sync DAG; see :class:`SyncFailureAlert`."""
    return SyncFailureAlert(topic_arn_variable=topic_arn_variable, **kwargs)
