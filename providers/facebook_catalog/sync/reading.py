"""Reading a run's snapshot: its S3 objects downloaded and read in two passes (feed.spool)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from facebook_catalog.feed.spool import S3FeedRead
from facebook_catalog.storage.s3 import download_object

if TYPE_CHECKING:
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    from facebook_catalog.feed import FeedOptions


def read_s3_feed(
    s3_hook: S3Hook, bucket: str, keys: Sequence[str], options: FeedOptions, directory: str
) -> S3FeedRead:
    """Download every object under ``directory`` (a temporary directory the caller owns and
    removes) and run the first pass; the items then come from ``.items()``."""
    feed = S3FeedRead(bucket, keys, options, directory)
    feed.scan(lambda key, path: download_object(s3_hook, bucket, key, path))
    return feed
