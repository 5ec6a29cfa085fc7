"""Put a sample CSV into the landing zone so the first hourly run has something to sync.

Used by docker/airflow-init.sh in the docker compose stack: ``seed_landing.py FILE BUCKET``.
Goes through the ``aws_default`` connection, as the DAG does, and uploads only when the landing
prefix is empty (a restart does not pile up copies).
"""

from __future__ import annotations

import sys
from datetime import datetime, timezone
from pathlib import Path


def main(argv: list[str]) -> int:
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    source, bucket = Path(argv[1]), argv[2]
    hook = S3Hook(aws_conn_id="aws_default")
    if hook.list_keys(bucket_name=bucket, prefix="landing/"):
        print(f"s3://{bucket}/landing/ already has files; no sample added")
        return 0
    key = datetime.now(timezone.utc).strftime("landing/sample/%Y/%m/%d/%H-%M-products.csv")
    hook.load_file(str(source), key=key, bucket_name=bucket, replace=False)
    print(f"uploaded {source.name} to s3://{bucket}/{key}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
