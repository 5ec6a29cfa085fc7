"""The item ledger's store on a moto S3 server: migration, ranged lookups, commits, compaction,
the lease, and what a crash mid-write leaves."""

from __future__ import annotations

import random
from typing import Any

import pytest

from facebook_catalog.feed.change_detection import ItemHashes, id_hash
from facebook_catalog.storage import ledger_store
from facebook_catalog.storage.ledger_store import (
    BLOCK_RECORDS,
    LedgerBusyError,
    LedgerConflictError,
    LedgerStore,
    pack_times,
)
from facebook_catalog.sync.changes import ChangeTracking, open_ledger

pytestmark = pytest.mark.integration

CATALOG = "4242"
T0 = 1_800_000_000


def legacy_state(count: int, seed: int = 7) -> ItemHashes:
    rng = random.Random(seed)
    pairs = sorted({rng.getrandbits(64): rng.getrandbits(64) for _ in range(count)}.items())
    state = ItemHashes()
    state.ids.extend(p[0] for p in pairs)
    state.hashes.extend(p[1] for p in pairs)
    return state


def store_of(s3_buckets: Any) -> LedgerStore:
    return LedgerStore(s3_buckets.hook, s3_buckets.synced, CATALOG)


def test_the_old_state_migrates_and_lookups_read_only_their_blocks(s3_buckets: Any) -> None:
    old = legacy_state(50_000)
    s3_buckets.hook.get_conn().put_object(
        Bucket=s3_buckets.synced, Key=f"state/{CATALOG}/item_hashes.bin", Body=old.to_bytes()
    )
    store = store_of(s3_buckets)
    state = open_ledger(store, T0)
    assert state.manifest.items == 50_000
    assert state.manifest.migrated_from == f"state/{CATALOG}/item_hashes.bin"

    sample = [old.ids[i] for i in range(0, 50_000, 997)] + [12345]  # 12345: not in the ledger
    reader = store_of(s3_buckets)
    found = reader.lookup(reader.load().manifest, sorted(sample))
    assert found is not None
    assert {h: v[0] for h, v in found.items()} == {h: old.get(h) for h in sample if h != 12345}
    # 51 ids in 51 blocks of 4,080 bytes, plus the index: a fraction of the 1.2 MB base.
    assert reader.bytes_read < 51 * 4080 * 2 + 50_000 // BLOCK_RECORDS * 8 + 10_000


def test_commits_stack_deltas_and_compaction_merges_them_in_one_pass(
    s3_buckets: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ledger_store, "CHUNK_BLOCKS", 3)  # several chunks even for a small base
    monkeypatch.setattr(ledger_store, "PART_BYTES", 5 << 20)
    old = legacy_state(3_000)
    store = store_of(s3_buckets)
    state = store.migrate(old.ids, old.hashes, T0)
    expected = dict(zip(old.ids, old.hashes, strict=True))
    rng = random.Random(3)
    for run in range(5):
        changed = {old.ids[rng.randrange(3_000)]: rng.getrandbits(64) for _ in range(40)}
        changed.update({rng.getrandbits(64): rng.getrandbits(64) for _ in range(10)})  # new ids
        expected.update(changed)
        delta = {h: (c, pack_times(T0 + run, T0 + run)) for h, c in changed.items()}
        state = store.commit(state, delta, [], new_items=10, run_id=f"run-{run}", now=T0 + run)
    assert len(state.manifest.deltas) == 5

    for wanted, mode in ((list(expected), "sparse"), (None, "full")):  # blocks by range / all of it
        tracking = ChangeTracking.load(store_of(s3_buckets), full_sync=False, id_hashes=wanted)
        assert tracking.mode == mode
        assert all(tracking.run.confirmed(h) == c for h, c in expected.items())

    compacted = store.compact(state, run_id="compaction", now=T0 + 9)
    assert compacted.manifest.deltas == []
    assert compacted.manifest.items == len(expected)
    reader = store_of(s3_buckets)
    manifest = reader.load().manifest
    merged = [v for chunk in reader.base_chunks(manifest) for v in chunk[0::3]]
    assert merged == sorted(expected)
    found = reader.lookup(manifest, sorted(expected)[:50])
    assert found is not None
    assert all(found[h][0] == expected[h] for h in sorted(expected)[:50])
    # Items confirmed before keep their first-seen time through the merge.
    first_id = next(h for h in old.ids if h not in set(list(expected)[3_000:]))
    assert reader.lookup(manifest, [first_id])[first_id][1] & 0xFFFFFFFF == T0  # type: ignore[index]


def test_a_commit_against_a_changed_manifest_fails_and_a_crash_before_it_changes_nothing(
    s3_buckets: Any,
) -> None:
    store = store_of(s3_buckets)
    state = open_ledger(store, T0)
    first = store.commit(state, {1: (11, 0)}, [], new_items=1, run_id="a", now=T0)
    # A second writer that read the ledger before the first committed must not overwrite it.
    with pytest.raises(LedgerConflictError, match="changed while this run held it"):
        store.commit(state, {2: (22, 0)}, [], new_items=1, run_id="b", now=T0)
    # Objects written before the manifest (as a crash mid-commit leaves them) are not the ledger.
    store._put(store.key("delta-orphan.bin"), b"\x00" * 24)
    reader = store_of(s3_buckets)
    assert reader.load().manifest == first.manifest
    assert reader.delta_records(reader.load().manifest) == {1: (11, 0)}


def test_the_lease_lets_one_run_at_a_time_and_expires(s3_buckets: Any) -> None:
    store = store_of(s3_buckets)
    store.acquire_lease("run-1", T0, 3600)
    store.acquire_lease("run-1", T0 + 5, 3600)  # the same run again (a retry): fine
    with pytest.raises(LedgerBusyError, match="held by run 'run-1'"):
        store_of(s3_buckets).acquire_lease("run-2", T0 + 10, 3600)
    store_of(s3_buckets).acquire_lease("run-2", T0 + 3606, 3600)  # run-1 crashed: its lease expired
    store.release_lease("run-1")  # not its lease any more: left alone
    with pytest.raises(LedgerBusyError):
        store_of(s3_buckets).acquire_lease("run-3", T0 + 3607, 3600)
    store.release_lease("run-2")
    store_of(s3_buckets).acquire_lease("run-3", T0 + 3608, 3600)
    assert id_hash("x")  # the module's hash is the ledger's key


def test_a_runs_teardown_frees_only_its_own_lease(s3_buckets: Any) -> None:
    """A sync task killed mid-run cannot release its lease; the run's summary teardown does, so
    the next hour's run need not wait for the lease to expire."""
    from facebook_catalog.dags.sync import _release_ledger_lease

    settings = {"synced_bucket": s3_buckets.synced, "catalog_id": CATALOG}
    store = store_of(s3_buckets)
    store.acquire_lease("scheduled__killed-run", T0, 3600)
    _release_ledger_lease(s3_buckets.hook, settings, "scheduled__another-run")
    with pytest.raises(LedgerBusyError, match="scheduled__killed-run"):
        store.acquire_lease("scheduled__next-run", T0 + 60, 3600)

    _release_ledger_lease(s3_buckets.hook, settings, "scheduled__killed-run")
    store.acquire_lease("scheduled__next-run", T0 + 60, 3600)  # free again
