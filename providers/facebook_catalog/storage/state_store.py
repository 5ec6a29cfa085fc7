"""The change-detection state of each catalog, kept in the synced-products bucket."""

from __future__ import annotations

from typing import TYPE_CHECKING

from facebook_catalog.storage.s3 import normalize_prefix, put_object, read_object_or_none

if TYPE_CHECKING:
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook


class ItemHashStore:
    """Change-detection state of one catalog: ``state/<catalog id>/item_hashes.bin`` in the
    synced-products bucket. One PUT replaces it whole, so a reader sees the old or the new state,
    never a mix; runs of the sync DAG never overlap (max_active_runs=1)."""

    def __init__(self, s3_hook: S3Hook, bucket: str, catalog_id: str, state_prefix: str = "state/") -> None:
        self.s3_hook = s3_hook
        self.bucket = bucket
        self.key = f"{normalize_prefix(state_prefix, 'state_prefix')}{catalog_id}/item_hashes.bin"

    def load(self) -> bytes | None:
        return read_object_or_none(self.s3_hook, self.bucket, self.key)

    def save(self, data: bytes) -> str:
        return put_object(self.s3_hook, self.bucket, self.key, data, "application/octet-stream")
