"""The feed: read product feeds (CSV, JSON Lines, Parquet, Avro, as Airbyte writes them) and apply
Meta's product field rules.

Pure Python with no Airflow import, so it runs in the operator, in the ingestion DAG and in the
``fb-catalog validate`` command alike.
"""

from __future__ import annotations

from facebook_catalog.feed.currencies import ISO_4217_CODES
from facebook_catalog.feed.dedupe import DeduplicatedItems, deduplicate, last_occurrences
from facebook_catalog.feed.fields import (
    META_FIELDS,
    OPTIONAL_FIELDS,
    REQUIRED_COLUMNS,
    REQUIRED_FIELDS,
    ColumnLayout,
    field_for_column,
    is_airbyte_column,
    layout_columns,
)
from facebook_catalog.feed.model import (
    FeedEvent,
    FeedFileError,
    FeedItem,
    FeedOptions,
    FeedTally,
    FeedWarning,
    FileSummary,
    Rejection,
    display_value,
)
from facebook_catalog.feed.normalize import (
    FieldProblem,
    NormalizedFields,
    Price,
    RowRules,
    normalize_fields,
    normalize_row,
    normalize_values,
    parse_price,
)
from facebook_catalog.feed.reader import MAX_RECORD_BYTES, read_feed, read_feed_file
from facebook_catalog.feed.report import REJECTED_ROWS_COLUMNS, RejectedRowsWriter, rejected_rows_csv

__all__ = [
    "ISO_4217_CODES",
    "MAX_RECORD_BYTES",
    "META_FIELDS",
    "OPTIONAL_FIELDS",
    "REJECTED_ROWS_COLUMNS",
    "REQUIRED_COLUMNS",
    "REQUIRED_FIELDS",
    "ColumnLayout",
    "DeduplicatedItems",
    "FeedEvent",
    "FeedFileError",
    "FeedItem",
    "FeedOptions",
    "FeedTally",
    "FeedWarning",
    "FieldProblem",
    "FileSummary",
    "NormalizedFields",
    "Price",
    "RejectedRowsWriter",
    "Rejection",
    "RowRules",
    "deduplicate",
    "display_value",
    "field_for_column",
    "is_airbyte_column",
    "last_occurrences",
    "layout_columns",
    "normalize_fields",
    "normalize_row",
    "normalize_values",
    "parse_price",
    "read_feed",
    "read_feed_file",
    "rejected_rows_csv",
]
