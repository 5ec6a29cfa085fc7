"""A run's records: what one sync run sent and decided, under ``runs/<run id>/`` in the
synced-products bucket (README, "S3 layout"; the report's schema is docs/report.md).

Records are written exactly as given, nothing more: payloads as sent, rejected rows, the hashes
of the items sent, and the report.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from facebook_catalog.storage.s3 import normalize_prefix, put_object, read_object_or_none

if TYPE_CHECKING:
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

log = logging.getLogger(__name__)

SENT_HASHES_NAME = "sent_item_hashes.bin"
_UNSAFE_KEY_CHARACTERS = re.compile(r"[^A-Za-z0-9._-]+")


def sanitize_run_id(run_id: str) -> str:
    """A run id as one S3 key segment: safe characters only, and never two run ids on one segment.

    Airflow run ids hold ``:`` and ``+`` (``scheduled__2025-01-01T00:00:00+00:00``); those become
    ``_`` and, because that could make two ids equal, a short hash of the original id is appended
    whenever anything was replaced.
    """
    if not run_id:
        raise ValueError("run_id must not be empty")
    safe = _UNSAFE_KEY_CHARACTERS.sub("_", run_id).strip(".")[:200]
    if safe == run_id:
        return safe
    digest = hashlib.sha256(run_id.encode("utf-8")).hexdigest()[:8]
    return f"{safe}-{digest}" if safe else digest


class RunRecords:
    """What one run sent and decided, under ``runs/<run id>/`` in the synced-products bucket.

    Writes exactly the bytes and values it is given, nothing more.
    """

    def __init__(self, s3_hook: S3Hook, bucket: str, run_id: str, runs_prefix: str = "runs/") -> None:
        self.s3_hook = s3_hook
        self.bucket = bucket
        self.run_id = run_id
        self.prefix = f"{normalize_prefix(runs_prefix, 'runs_prefix')}{sanitize_run_id(run_id)}/"

    def key(self, name: str) -> str:
        return self.prefix + name.lstrip("/")

    def uri(self, name: str) -> str:
        return f"s3://{self.bucket}/{self.key(name)}"

    @staticmethod
    def payload_name(call_index: int) -> str:
        return f"payloads/{call_index:05d}.json"

    def put_payload(self, call_index: int, payload: bytes) -> str:
        """Store one items_batch request body exactly as sent."""
        if call_index < 0:
            raise ValueError(f"call_index must not be negative, got {call_index}")
        return self._put(self.payload_name(call_index), payload, "application/json")

    def put_rejected_rows_file(self, path: str) -> str:
        """Upload a rejected-rows CSV from disk, streamed (it can be large)."""
        key = self.key("rejected_rows.csv")
        self.s3_hook.get_conn().upload_file(
            path, self.bucket, key, ExtraArgs={"ContentType": "text/csv; charset=utf-8"}
        )
        return key

    def put_report(self, report: Mapping[str, Any]) -> str:
        body = json.dumps(report, indent=2, ensure_ascii=False).encode("utf-8")
        return self._put("report.json", body, "application/json; charset=utf-8")

    def put_sent_hashes(self, data: bytes) -> str:
        """The (id hash, content hash) of every item sent, for change detection after Meta answers."""
        return self._put(SENT_HASHES_NAME, data, "application/octet-stream")

    def get_sent_hashes(self) -> bytes | None:
        return self.get(SENT_HASHES_NAME)

    def load_report(self) -> dict[str, Any] | None:
        """The run's report.json: None when the run wrote none, or when what is there is not a
        JSON object (logged: the run is then reported without it)."""
        data = self.get("report.json")
        if data is None:
            return None
        try:
            report = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            log.warning(
                "The report at %s is not JSON (%s); going on without it", self.uri("report.json"), error
            )
            return None
        return report if isinstance(report, dict) else None

    def get(self, name: str) -> bytes | None:
        """A record of this run, or None when it was never written."""
        return read_object_or_none(self.s3_hook, self.bucket, self.key(name))

    def _put(self, name: str, body: bytes, content_type: str) -> str:
        return put_object(self.s3_hook, self.bucket, self.key(name), body, content_type)
