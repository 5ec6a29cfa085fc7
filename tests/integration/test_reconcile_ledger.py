"""The reconcile's side of the item ledger on a moto S3 server: every confirmed item streamed in
id-hash order (base and deltas merged), and the repair's invalidation of drifted items."""

from __future__ import annotations

import random
from typing import Any

import pytest

from facebook_catalog.storage.ledger_store import LedgerStore, pack_times
from facebook_catalog.sync.reconcile import INVALIDATED_HASH
from facebook_catalog.sync.reconcile_run import confirmed_items, invalidate
from tests.integration.test_ledger_store import CATALOG, T0, legacy_state

pytestmark = pytest.mark.integration


def test_confirmed_items_merge_base_and_deltas_in_id_hash_order_and_repair_invalidates(
    s3_buckets: Any,
) -> None:
    store = LedgerStore(s3_buckets.hook, s3_buckets.synced, CATALOG)
    old = legacy_state(20_000)
    state = store.migrate(old.ids, old.hashes, T0)
    rng = random.Random(3)
    changed = {old.ids[i]: (rng.getrandbits(63) + 1, pack_times(T0, T0 + 60)) for i in range(0, 20_000, 501)}
    added = {rng.getrandbits(64): (rng.getrandbits(63) + 1, pack_times(T0 + 60, T0 + 60)) for _ in range(300)}
    state = store.commit(state, {**changed, **added}, [], new_items=300, run_id="r1", now=T0 + 60)

    expected = {h: (c, pack_times(T0, T0)) for h, c in zip(old.ids, old.hashes, strict=True)}
    expected |= changed | added
    streamed = list(confirmed_items(store, store.load().manifest))
    assert [h for h, _, _ in streamed] == sorted(expected)
    assert {h: (c, t) for h, c, t in streamed} == expected

    drifted = {h: expected[h][1] for h in list(changed)[:5] + list(added)[:5]}
    assert invalidate(store, drifted, run_id="reconcile-1", now=T0 + 120) == 10
    after = {h: (c, t) for h, c, t in confirmed_items(store, store.load().manifest)}
    assert len(after) == len(expected)
    assert all(after[h] == (INVALIDATED_HASH, drifted[h]) for h in drifted)  # times kept
    assert all(after[h] == expected[h] for h in expected if h not in drifted)
    assert store.load().manifest.items == 20_300  # invalidating adds no item
    assert store._get(store.lease_key) is None  # the repair's lease is freed
