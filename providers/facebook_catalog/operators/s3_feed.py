"""Read CSV feed objects from S3 through the feed rules, one file at a time.

Each object is streamed to a temporary file (never held in memory), read with
:func:`facebook_catalog.feed.read_feed_file`, and its good rows are kept only if the whole file
could be read: a file-level problem (missing column, not a CSV, corrupt gzip, ...) can surface
mid-file, and a half-read file must not be half-synced.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from facebook_catalog.feed import (
    FeedFileError,
    FeedItem,
    FeedOptions,
    FeedTally,
    FeedWarning,
    FileSummary,
    Rejection,
    deduplicate,
    read_feed_file,
)

if TYPE_CHECKING:
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

#: How many rejection and warning messages go into logs and the report; the CSV has them all.
MAX_MESSAGE_SAMPLES = 20


@dataclass
class S3FeedRead:
    """What reading a snapshot of feed objects produced."""

    items: list[FeedItem]
    files: list[dict[str, Any]]
    rejections: list[Rejection] = field(default_factory=list)
    warnings: list[FeedWarning] = field(default_factory=list)
    duplicates: int = 0

    @property
    def file_errors(self) -> list[dict[str, Any]]:
        return [f for f in self.files if f["error"]]

    def counts(self) -> dict[str, int]:
        return {
            "files_read": len(self.files) - len(self.file_errors),
            "files_quarantined": len(self.file_errors),
            "rows_read": sum(f["rows_read"] for f in self.files),
            "rows_rejected": sum(f["rejected_rows"] for f in self.files),
            "duplicates_dropped": self.duplicates,
        }

    def rejected_samples(self) -> list[str]:
        return [r.message() for r in self.rejections[:MAX_MESSAGE_SAMPLES]]


def read_s3_feed(s3_hook: S3Hook, bucket: str, keys: Sequence[str], options: FeedOptions) -> S3FeedRead:
    """Read every object in order; the same id keeps its last occurrence (later files win)."""
    items: list[FeedItem] = []
    summaries: list[FileSummary] = []
    rejections: list[Rejection] = []
    warnings: list[FeedWarning] = []
    client = s3_hook.get_conn()
    with tempfile.TemporaryDirectory(prefix="fb-catalog-feed-") as tmp:
        for index, key in enumerate(keys):
            source = f"s3://{bucket}/{key}"
            path = os.path.join(tmp, f"{index:05d}")
            with open(path, "wb") as handle:
                client.download_fileobj(bucket, key, handle)
            tally = FeedTally(source)
            file_items: list[FeedItem] = []
            file_rejections: list[Rejection] = []
            file_warnings: list[FeedWarning] = []
            try:
                for event in read_feed_file(path, source=source, options=options):
                    tally.add(event)
                    if isinstance(event, FeedItem):
                        file_items.append(event)
                    elif isinstance(event, Rejection):
                        file_rejections.append(event)
                    else:
                        file_warnings.append(event)
            except FeedFileError as error:
                summaries.append(tally.summary(error=error.reason))
                continue
            finally:
                os.unlink(path)
            items.extend(file_items)
            rejections.extend(file_rejections)
            warnings.extend(file_warnings)
            summaries.append(tally.summary())
    deduplicated = deduplicate(items)
    duplicates_by_source: dict[str, int] = {}
    for duplicate in deduplicated.duplicates:
        duplicates_by_source[duplicate.source] = duplicates_by_source.get(duplicate.source, 0) + 1
    files = [
        {
            "key": key,
            "rows_read": summary.rows_read,
            "items": summary.items,
            "rejected_rows": summary.rejected_rows,
            "warnings": summary.warnings,
            "duplicates": duplicates_by_source.get(summary.source, 0),
            "error": summary.error,
        }
        for key, summary in zip(keys, summaries, strict=True)
    ]
    return S3FeedRead(
        items=deduplicated.items,
        files=files,
        rejections=rejections,
        warnings=warnings,
        duplicates=len(deduplicated.duplicates),
    )
