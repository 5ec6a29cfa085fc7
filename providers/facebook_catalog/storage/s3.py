"""The few S3 rules every store here shares: what "not found" is, how a prefix is written, and how
an object is read or downloaded.

Stores take the Amazon provider's ``S3Hook`` (or anything with its ``get_conn()``) as an
argument; this package never builds a hook or reads a connection itself.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

if TYPE_CHECKING:
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

# HEAD answers a bare 404 ("404" / "NotFound"); GET, COPY and DELETE answer "NoSuchKey".
_NOT_FOUND_CODES = frozenset({"404", "NoSuchKey", "NotFound"})
_PRECONDITION_FAILED = "PreconditionFailed"
#: Downloads stream in reads of this size: boto3's transfer manager would hold up to ten 8 MiB
#: parts in memory at once for a large object.
DOWNLOAD_CHUNK_BYTES = 1 << 20


def error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def http_status(error: ClientError) -> int:
    return int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))


def is_not_found(error: ClientError) -> bool:
    """The key (or version) does not exist, whichever way the call said so."""
    return http_status(error) == 404 or error_code(error) in _NOT_FOUND_CODES


def is_precondition_failed(error: ClientError) -> bool:
    """An ``If-Match`` / ``CopySourceIfMatch`` condition did not hold: the object changed."""
    return http_status(error) == 412 or error_code(error) == _PRECONDITION_FAILED


def normalize_prefix(prefix: str, what: str) -> str:
    """``prefix`` as every store writes it: no leading slash, exactly one trailing slash, never empty."""
    prefix = prefix.strip("/")
    if not prefix:
        raise ValueError(f"{what} must not be empty: the prefixes keep landing, archive and quarantine apart")
    return f"{prefix}/"


def read_object_or_none(s3_hook: S3Hook, bucket: str, key: str) -> bytes | None:
    """An object's bytes, or None when there is no such key (any other error is raised)."""
    try:
        body: bytes = s3_hook.get_conn().get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError as error:
        if is_not_found(error):
            return None
        raise
    return body


def put_object(s3_hook: S3Hook, bucket: str, key: str, body: bytes, content_type: str) -> str:
    """Store ``body`` at ``key`` (one PUT: a reader sees the old object or the new one); the key."""
    s3_hook.get_conn().put_object(Bucket=bucket, Key=key, Body=body, ContentType=content_type)
    return key


def download_object(s3_hook: S3Hook, bucket: str, key: str, path: str) -> None:
    """Stream one object to a local file, never holding it in memory."""
    body = s3_hook.get_conn().get_object(Bucket=bucket, Key=key)["Body"]
    with open(path, "wb") as handle:
        for chunk in body.iter_chunks(chunk_size=DOWNLOAD_CHUNK_BYTES):
            handle.write(chunk)
