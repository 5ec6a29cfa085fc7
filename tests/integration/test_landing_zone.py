"""The landing zone, run records, lifecycle rules and ``fb-catalog setup-buckets`` against a real
moto S3 server reached over HTTP through ``S3Hook(aws_conn_id="aws_default")``."""

from __future__ import annotations

import json
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from facebook_catalog.storage.landing_zone import ArchiveError, LandingObject, LandingZone
from facebook_catalog.storage.lifecycle import (
    ARCHIVE_RULE_ID,
    LANDING_RULE_ID,
    QUARANTINE_RULE_ID,
    RUNS_RULE_ID,
    apply_lifecycle_rules,
    read_lifecycle_rules,
)
from facebook_catalog.storage.run_records import RunRecords, sanitize_run_id
from tests.fixtures.s3 import CSV_HEADER, S3Buckets, put

pytestmark = pytest.mark.integration


def read(buckets: S3Buckets, key: str, bucket: str | None = None) -> bytes:
    return buckets.hook.get_conn().get_object(Bucket=bucket or buckets.landing, Key=key)["Body"].read()


def keys(buckets: S3Buckets, prefix: str = "", bucket: str | None = None) -> list[str]:
    return sorted(buckets.hook.list_keys(bucket_name=bucket or buckets.landing, prefix=prefix))


def feed(product_id: str, price: str = "10.00 USD") -> str:
    link = f"https://shop.example/{product_id}"
    return f"{CSV_HEADER}{product_id},Mug,A mug,{link},{link}.jpg,in stock,{price},Acme\n"


def wait_for_next_second() -> None:
    """S3 LastModified has whole-second precision: make the next upload visibly later."""
    time.sleep(1.05 - (time.time() % 1.0))


@pytest.fixture
def zone(s3_buckets: S3Buckets) -> LandingZone:
    return LandingZone(s3_buckets.hook, s3_buckets.landing)


# ------------------------------------------------------------------ fixtures reach moto


def test_sync_s3_hook_reaches_the_moto_server(s3_buckets: S3Buckets) -> None:
    s3_buckets.hook.load_string(
        "hello", key="probe.txt", bucket_name=s3_buckets.landing, acl_policy="public-read"
    )
    # Read it back without any AWS client or signature: straight from the moto server over HTTP.
    with urllib.request.urlopen(f"{s3_buckets.endpoint_url}/{s3_buckets.landing}/probe.txt") as response:
        assert response.read() == b"hello"
    assert s3_buckets.hook.conn_config.endpoint_url == s3_buckets.endpoint_url


async def test_async_aiobotocore_client_reaches_the_moto_server(s3_buckets: S3Buckets) -> None:
    put(s3_buckets, "landing/async.csv", "from the sync side")
    async with await s3_buckets.hook.get_async_conn() as client:
        response = await client.get_object(Bucket=s3_buckets.landing, Key="landing/async.csv")
        async with response["Body"] as body:
            assert await body.read() == b"from the sync side"
        await client.put_object(Bucket=s3_buckets.landing, Key="landing/from-async.csv", Body=b"async")
    assert read(s3_buckets, "landing/from-async.csv") == b"async"


# ------------------------------------------------------------------------- snapshot


def test_snapshot_orders_by_last_modified_then_key_and_skips_placeholders(
    s3_buckets: S3Buckets, zone: LandingZone
) -> None:
    put(s3_buckets, "landing/", b"")
    put(s3_buckets, "landing/2025/", b"")
    put(s3_buckets, "landing/z-early.csv", feed("1"))
    put(s3_buckets, "landing/b-early.csv", feed("2"))
    put(s3_buckets, "archive/old.csv", feed("3"))  # outside landing
    wait_for_next_second()
    put(s3_buckets, "landing/2025/a-late.csv", feed("4"))

    snapshot = zone.snapshot()

    assert [o.key for o in snapshot] == [
        "landing/b-early.csv",
        "landing/z-early.csv",
        "landing/2025/a-late.csv",
    ]
    assert snapshot[0].size == len(feed("2").encode())
    assert snapshot[0].last_modified < snapshot[2].last_modified
    # The snapshot travels through XCom as JSON.
    restored = [LandingObject.from_dict(json.loads(json.dumps(o.to_dict()))) for o in snapshot]
    assert restored == snapshot


def test_snapshot_reads_every_page_beyond_1000_objects(s3_buckets: S3Buckets, zone: LandingZone) -> None:
    client = s3_buckets.hook.get_conn()
    count = 1_050
    with ThreadPoolExecutor(max_workers=16) as pool:
        list(
            pool.map(
                lambda i: client.put_object(
                    Bucket=s3_buckets.landing, Key=f"landing/part-{i:05d}.csv", Body=b"x"
                ),
                range(count),
            )
        )

    snapshot = zone.snapshot()

    assert len(snapshot) == count
    assert len({o.key for o in snapshot}) == count
    assert snapshot == sorted(snapshot, key=lambda o: (o.last_modified, o.key))


# -------------------------------------------------------------------------- archive


def test_archive_moves_exactly_the_snapshot(s3_buckets: S3Buckets, zone: LandingZone) -> None:
    put(s3_buckets, "landing/a.csv", feed("1"))
    put(s3_buckets, "landing/b.csv", feed("2", price="10.00 USD"))
    snapshot = zone.snapshot()
    # During the run: a new file arrives and b.csv is replaced by a new upload.
    put(s3_buckets, "landing/c.csv", feed("3"))
    put(s3_buckets, "landing/b.csv", feed("2", price="12.00 USD"))

    result = zone.archive(snapshot)

    assert result.archived == ["landing/a.csv"]
    assert result.left_in_landing == ["landing/b.csv"]
    assert keys(s3_buckets, "landing/") == ["landing/b.csv", "landing/c.csv"]
    assert read(s3_buckets, "landing/b.csv") == feed("2", price="12.00 USD").encode()
    # Without versioning the replaced content is gone from S3: nothing may be archived under b's
    # key, least of all the unsynced new upload (repair would then delete it from landing).
    assert keys(s3_buckets, "archive/") == ["archive/a.csv"]
    assert read(s3_buckets, "archive/a.csv") == feed("1").encode()
    superseded = next(o for o in result.outcomes if o.landing_key == "landing/b.csv")
    assert superseded.archive_key is None
    assert "stays in landing" in superseded.detail


class UploadDuringArchive(LandingZone):
    """A landing zone whose files get overwritten right after their archive copy is made: the
    narrowest window there is, between "copy to archive" and "delete from landing"."""

    def __init__(self, buckets: S3Buckets, new_content: str) -> None:
        super().__init__(buckets.hook, buckets.landing)
        self.buckets = buckets
        self.new_content = new_content

    def _copy_verified(self, obj: LandingObject, *args: Any, **kwargs: Any) -> None:
        super()._copy_verified(obj, *args, **kwargs)
        put(self.buckets, obj.key, self.new_content)


def test_an_upload_between_copy_and_delete_stays_in_landing(s3_buckets: S3Buckets) -> None:
    zone = UploadDuringArchive(s3_buckets, feed("1", price="15.00 USD"))
    put(s3_buckets, "landing/a.csv", feed("1"))

    result = zone.archive(zone.snapshot())

    assert result.left_in_landing == ["landing/a.csv"]
    assert result.outcomes[0].archive_key == "archive/a.csv"
    assert read(s3_buckets, "archive/a.csv") == feed("1").encode()
    assert read(s3_buckets, "landing/a.csv") == feed("1", price="15.00 USD").encode()
    # The next run's repair must not mistake the new upload for the archived file.
    assert LandingZone(s3_buckets.hook, s3_buckets.landing).repair().deleted == ()


def test_archive_keeps_the_synced_version_of_an_overwritten_file_on_a_versioned_bucket(
    s3_buckets: S3Buckets, zone: LandingZone
) -> None:
    s3_buckets.hook.get_conn().put_bucket_versioning(
        Bucket=s3_buckets.landing, VersioningConfiguration={"Status": "Enabled"}
    )
    put(s3_buckets, "landing/2025/b.csv", feed("2", price="10.00 USD"))
    snapshot = zone.snapshot()
    put(s3_buckets, "landing/2025/b.csv", feed("2", price="12.00 USD"))

    result = zone.archive(snapshot)

    assert result.left_in_landing == ["landing/2025/b.csv"]
    assert result.outcomes[0].archive_key == "archive/2025/b.csv"
    assert read(s3_buckets, "archive/2025/b.csv") == feed("2", price="10.00 USD").encode()
    assert read(s3_buckets, "landing/2025/b.csv") == feed("2", price="12.00 USD").encode()
    # The next run archives the new upload over the old copy; the landing key is then empty.
    second = zone.archive(zone.snapshot())
    assert second.archived == ["landing/2025/b.csv"]
    assert read(s3_buckets, "archive/2025/b.csv") == feed("2", price="12.00 USD").encode()
    assert keys(s3_buckets, "landing/") == []


def test_archive_is_idempotent_when_the_task_is_retried(s3_buckets: S3Buckets, zone: LandingZone) -> None:
    put(s3_buckets, "landing/a.csv", feed("1"))
    put(s3_buckets, "landing/b.csv", feed("2"))
    snapshot = zone.snapshot()

    first = zone.archive(snapshot)
    retried = zone.archive(snapshot)

    assert first.archived == ["landing/a.csv", "landing/b.csv"]
    assert [o.status for o in retried.outcomes] == ["already_archived", "already_archived"]
    assert retried.errors == []
    assert keys(s3_buckets, "landing/") == []
    assert keys(s3_buckets, "archive/") == ["archive/a.csv", "archive/b.csv"]
    assert read(s3_buckets, "archive/b.csv") == feed("2").encode()


def test_archive_names_a_snapshotted_file_that_vanished_without_a_copy(
    s3_buckets: S3Buckets, zone: LandingZone
) -> None:
    put(s3_buckets, "landing/a.csv", feed("1"))
    put(s3_buckets, "landing/gone.csv", feed("2"))
    snapshot = zone.snapshot()
    s3_buckets.hook.delete_objects(s3_buckets.landing, "landing/gone.csv")

    with pytest.raises(ArchiveError, match=r"landing/gone\.csv") as raised:
        zone.archive(snapshot)

    # The other file was still archived before the error was raised.
    assert raised.value.result.archived == ["landing/a.csv"]
    assert keys(s3_buckets, "archive/") == ["archive/a.csv"]


# --------------------------------------------------------------------------- repair


def test_repair_finishes_an_interrupted_archive_and_never_deletes_a_new_upload(
    s3_buckets: S3Buckets, zone: LandingZone
) -> None:
    for name in ("crashed", "replaced", "same-bytes", "never-archived", "hand-copied"):
        put(s3_buckets, f"landing/{name}.csv", feed(name))
    snapshot = {o.key: o for o in zone.snapshot()}
    # The crash: a run copied these to archive (as archive() does) and died before deleting.
    for name in ("crashed", "replaced", "same-bytes"):
        obj = snapshot[f"landing/{name}.csv"]
        head = s3_buckets.hook.head_object(obj.key, s3_buckets.landing)
        assert head is not None
        zone._copy_verified(obj, head, zone.archive_key(obj.key))
    # After the crash, new uploads arrive under two of those keys: one with new content, one with
    # the very same bytes (a deliberate re-send, e.g. a price change being reverted).
    wait_for_next_second()
    put(s3_buckets, "landing/replaced.csv", feed("replaced", price="99.00 USD"))
    put(s3_buckets, "landing/same-bytes.csv", feed("same-bytes"))
    # Someone copied a file into archive/ by hand: no record of what it was copied from.
    s3_buckets.hook.copy_object(
        "landing/hand-copied.csv",
        "archive/hand-copied.csv",
        source_bucket_name=s3_buckets.landing,
        dest_bucket_name=s3_buckets.landing,
    )

    result = zone.repair()

    assert result.deleted == ("landing/crashed.csv",)
    assert result.checked == 5
    assert keys(s3_buckets, "landing/") == [
        "landing/hand-copied.csv",
        "landing/never-archived.csv",
        "landing/replaced.csv",
        "landing/same-bytes.csv",
    ]
    assert read(s3_buckets, "landing/replaced.csv") == feed("replaced", price="99.00 USD").encode()
    # Repeating it, or naming keys, changes nothing more.
    assert zone.repair().deleted == ()
    assert zone.repair(["landing/replaced.csv", "landing/same-bytes.csv"]).deleted == ()


def test_repair_of_named_keys_checks_only_those_keys(s3_buckets: S3Buckets, zone: LandingZone) -> None:
    put(s3_buckets, "landing/one.csv", feed("1"))
    put(s3_buckets, "landing/two.csv", feed("2"))
    for obj in zone.snapshot():
        head = s3_buckets.hook.head_object(obj.key, s3_buckets.landing)
        assert head is not None
        zone._copy_verified(obj, head, zone.archive_key(obj.key))

    result = zone.repair(["landing/two.csv", "landing/not-there.csv"])

    assert result.deleted == ("landing/two.csv",)
    assert keys(s3_buckets, "landing/") == ["landing/one.csv"]
    with pytest.raises(ValueError, match="not under the landing prefix"):
        zone.repair(["archive/one.csv"])


# ----------------------------------------------------------------------- quarantine


def test_quarantine_moves_the_file_and_writes_the_error_report(
    s3_buckets: S3Buckets, zone: LandingZone
) -> None:
    bad = "id,title\n1,Mug\n"
    put(s3_buckets, "landing/2025/bad.csv", bad)
    put(s3_buckets, "landing/2025/good.csv", feed("1"))
    obj = next(o for o in zone.snapshot() if o.key.endswith("bad.csv"))
    problems = ["bad.csv line 1: missing columns: description, link", "السعر: قيمة غير صالحة"]

    quarantine_key = zone.quarantine(obj, problems)

    assert quarantine_key == "quarantine/2025/bad.csv"
    assert keys(s3_buckets, "landing/") == ["landing/2025/good.csv"]
    assert read(s3_buckets, quarantine_key) == bad.encode()
    raw_report = read(s3_buckets, "quarantine/2025/bad.csv.error.json")
    assert "السعر".encode() in raw_report
    report = json.loads(raw_report)
    assert report["problems"] == problems
    assert report["original_key"] == "landing/2025/bad.csv"
    assert report["quarantined_at"].endswith("+00:00")
    # Repeating it (a retried task) still succeeds; a single problem may be a string.
    assert zone.quarantine(obj, "header is wrong") == quarantine_key
    assert json.loads(read(s3_buckets, "quarantine/2025/bad.csv.error.json"))["problems"] == [
        "header is wrong"
    ]


# ---------------------------------------------------------------------- run records


def test_run_records_store_exactly_what_they_are_given(s3_buckets: S3Buckets, tmp_path: Path) -> None:
    run_id = "scheduled__2025-06-01T10:00:00+00:00"
    records = RunRecords(s3_buckets.hook, s3_buckets.synced, run_id)
    payload = json.dumps({"requests": [{"method": "UPDATE", "data": {"id": "1"}}]}).encode()
    report = {"run_id": run_id, "counts": {"sent": 1}, "samples": ["منتج: السعر مفقود"]}

    payload_key = records.put_payload(1, payload)
    rejected_csv = tmp_path / "rejected_rows.csv"
    rejected_csv.write_text("line,reason\n3,السعر مفقود\n", encoding="utf-8")
    rejected_key = records.put_rejected_rows_file(str(rejected_csv))
    report_key = records.put_report(report)

    prefix = f"runs/{sanitize_run_id(run_id)}/"
    assert prefix.startswith("runs/scheduled__2025-06-01T10_00_00_00_00-")
    assert (payload_key, rejected_key, report_key) == (
        f"{prefix}payloads/00001.json",
        f"{prefix}rejected_rows.csv",
        f"{prefix}report.json",
    )
    assert keys(s3_buckets, "runs/", bucket=s3_buckets.synced) == sorted(
        [payload_key, rejected_key, report_key]
    )
    assert read(s3_buckets, payload_key, bucket=s3_buckets.synced) == payload
    assert (
        read(s3_buckets, rejected_key, bucket=s3_buckets.synced).decode("utf-8")
        == "line,reason\n3,السعر مفقود\n"
    )
    raw_report = read(s3_buckets, report_key, bucket=s3_buckets.synced)
    assert raw_report == json.dumps(report, indent=2, ensure_ascii=False).encode("utf-8")
    assert "منتج".encode() in raw_report  # UTF-8, not \\u escapes
    head = s3_buckets.hook.head_object(report_key, s3_buckets.synced)
    assert head is not None
    assert head["ContentType"].startswith("application/json")
    assert records.uri("report.json") == f"s3://{s3_buckets.synced}/{report_key}"
    # Distinct run ids never share a folder, even when they sanitize alike.
    assert sanitize_run_id("manual__a:b") != sanitize_run_id("manual__a+b")
    assert sanitize_run_id("manual__2025-06-01") == "manual__2025-06-01"


# ------------------------------------------------------------------- lifecycle rules


def rules_by_id(buckets: S3Buckets, bucket: str) -> dict[str, dict]:
    return {rule["ID"]: rule for rule in read_lifecycle_rules(buckets.hook, bucket)}


def test_lifecycle_rules_are_applied_idempotently_and_keep_other_rules(s3_buckets: S3Buckets) -> None:
    users_rule = {
        "ID": "users-own-tmp-expiry",
        "Filter": {"Prefix": "tmp/"},
        "Status": "Enabled",
        "Expiration": {"Days": 3},
    }
    users_legacy_rule = {
        "ID": "users-legacy-logs",
        "Prefix": "logs/",
        "Status": "Enabled",
        "Expiration": {"Days": 5},
    }
    s3_buckets.hook.get_conn().put_bucket_lifecycle_configuration(
        Bucket=s3_buckets.landing, LifecycleConfiguration={"Rules": [users_rule, users_legacy_rule]}
    )

    apply_lifecycle_rules(s3_buckets.hook, s3_buckets.landing, s3_buckets.synced)
    landing_after_first = read_lifecycle_rules(s3_buckets.hook, s3_buckets.landing)
    synced_after_first = read_lifecycle_rules(s3_buckets.hook, s3_buckets.synced)
    apply_lifecycle_rules(s3_buckets.hook, s3_buckets.landing, s3_buckets.synced)

    assert read_lifecycle_rules(s3_buckets.hook, s3_buckets.landing) == landing_after_first
    assert read_lifecycle_rules(s3_buckets.hook, s3_buckets.synced) == synced_after_first
    landing = rules_by_id(s3_buckets, s3_buckets.landing)
    assert set(landing) == {
        "users-own-tmp-expiry",
        "users-legacy-logs",
        ARCHIVE_RULE_ID,
        QUARANTINE_RULE_ID,
        LANDING_RULE_ID,
    }
    assert landing["users-own-tmp-expiry"] == users_rule
    # The deprecated top-level Prefix is rewritten as the equivalent Filter (S3 refuses a mix).
    assert landing["users-legacy-logs"]["Expiration"] == {"Days": 5}
    assert landing["users-legacy-logs"]["Filter"] == {"Prefix": "logs/"}
    assert landing[ARCHIVE_RULE_ID]["Filter"]["Prefix"] == "archive/"
    assert landing[ARCHIVE_RULE_ID]["Expiration"]["Days"] == 30
    assert landing[QUARANTINE_RULE_ID]["Expiration"]["Days"] == 90
    assert landing[LANDING_RULE_ID]["Filter"]["Prefix"] == "landing/"
    assert "Expiration" not in landing[LANDING_RULE_ID]  # unsynced files never expire
    assert landing[LANDING_RULE_ID]["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 7}
    synced = rules_by_id(s3_buckets, s3_buckets.synced)
    assert set(synced) == {RUNS_RULE_ID}
    assert synced[RUNS_RULE_ID]["Filter"]["Prefix"] == "runs/"
    assert synced[RUNS_RULE_ID]["Expiration"]["Days"] == 30

    # New retention replaces our rules in place; the user's rule is still there.
    apply_lifecycle_rules(s3_buckets.hook, s3_buckets.landing, s3_buckets.synced, archive_days=45)
    landing = rules_by_id(s3_buckets, s3_buckets.landing)
    assert landing[ARCHIVE_RULE_ID]["Expiration"]["Days"] == 45
    assert len(landing) == 5


def test_lifecycle_rules_for_one_shared_bucket(s3_buckets: S3Buckets) -> None:
    apply_lifecycle_rules(s3_buckets.hook, s3_buckets.landing, s3_buckets.landing)
    apply_lifecycle_rules(s3_buckets.hook, s3_buckets.landing, s3_buckets.landing)

    assert set(rules_by_id(s3_buckets, s3_buckets.landing)) == {
        ARCHIVE_RULE_ID,
        QUARANTINE_RULE_ID,
        LANDING_RULE_ID,
        RUNS_RULE_ID,
    }


# -------------------------------------------------------------------- setup-buckets


def test_setup_buckets_command_end_to_end(s3_buckets: S3Buckets, capsys: pytest.CaptureFixture[str]) -> None:
    from facebook_catalog.cli import main

    missing = main(["setup-buckets", "--landing-bucket", "shop-landing", "--synced-bucket", "shop-synced"])
    captured = capsys.readouterr()
    assert missing == 1
    assert captured.err.strip().count("\n") == 0
    assert "'shop-landing' does not exist (pass --create" in captured.err
    assert "Traceback" not in captured.err

    argv = [
        "setup-buckets",
        "--landing-bucket",
        "shop-landing",
        "--synced-bucket",
        "shop-synced",
        "--create",
        "--quarantine-days",
        "60",
    ]
    assert main(argv) == 0
    first_output = capsys.readouterr().out
    assert "s3://shop-landing: created" in first_output
    assert "s3://shop-landing: lifecycle rules updated" in first_output
    assert f"{ARCHIVE_RULE_ID} [Enabled] prefix archive/, expire after 30 days" in first_output
    assert f"{QUARANTINE_RULE_ID} [Enabled] prefix quarantine/, expire after 60 days" in first_output
    assert f"s3://shop-synced: {RUNS_RULE_ID} [Enabled] prefix runs/, expire after 30 days" in first_output
    assert rules_by_id(s3_buckets, "shop-landing")[QUARANTINE_RULE_ID]["Expiration"]["Days"] == 60

    # Running it again changes nothing and still succeeds.
    assert main(argv) == 0
    second_output = capsys.readouterr().out
    assert "s3://shop-landing: exists" in second_output
    assert "s3://shop-landing: lifecycle rules unchanged" in second_output
    assert "s3://shop-synced: lifecycle rules unchanged" in second_output

    with pytest.raises(SystemExit) as usage_error:
        main([*argv, "--archive-days", "0"])
    assert usage_error.value.code == 2
