"""The hourly sync as a distributed Airflow runs it: separate api-server, scheduler, dag-processor,
triggerer and worker processes on PostgreSQL, with the triggerer killed (SIGKILL) while it polls.

What it proves, read from the metadata DB, the processes, the emulator and S3:

* ``sync_catalog`` defers, and while it is deferred its worker slot is free: with one slot
  (Celery ``--concurrency 1``, or LocalExecutor ``parallelism = 1``) another DAG's task runs to
  completion inside the deferred window;
* a triggerer killed mid-poll and started again picks the trigger up from its serialized kwargs
  and the run succeeds: every product is in the catalog, each items_batch payload reached Meta
  exactly once (nothing re-posted after the crash), the landing files are archived;
* it prints how long the task held a worker slot versus how long it was deferred.
"""

from __future__ import annotations

import json
import signal
import time
from typing import Any

import pytest

from tests.e2e.conftest import (
    CATALOG_ID,
    LANDING_BUCKET,
    PROCESSING_SECONDS,
    SYNCED_BUCKET,
    Abort,
    AirflowCluster,
    Transition,
    wait_for,
)

pytestmark = pytest.mark.e2e

SYNC_DAG_ID = "facebook_catalog_sync"
SYNC_TASK_ID = "sync_catalog"  # the deferrable task; no other task name of the DAG is relied on
PROBE_DAG_ID = "e2e_worker_slot_probe"
PROBE_TASK_ID = "occupy_worker_slot"
PROBE_RUN_ID = "probe-while-sync-is-deferred"
HEADER = "id,title,description,link,image_link,availability,price,brand\n"
# Two landing files, 7,500 products: two items_batch calls (5,000 + 2,500).
LANDING_FILES = {
    "landing/2026/11/26/10-00.csv": range(0, 5_200),
    "landing/2026/11/26/10-30.csv": range(5_200, 7_500),
}
PRODUCT_COUNT = 7_500
FAILED_STATES = {"failed", "upstream_failed"}
# At least this long without a triggerer: a few poll intervals (the DAG polls every 2 s here).
TRIGGERER_DOWN_SECONDS = 6.0


def product_row(i: int) -> str:
    return (
        f'e2e-{i:06d},"Product {i}","Description of product {i}",https://shop.example.com/p/{i},'
        f"https://cdn.example.com/p/{i}.jpg,in stock,{1000 + i} IQD,Acme\n"
    )


def land_products(cluster: AirflowCluster) -> None:
    s3 = cluster.s3()
    for key, ids in LANDING_FILES.items():
        body = HEADER + "".join(product_row(i) for i in ids)
        s3.put_object(Bucket=LANDING_BUCKET, Key=key, Body=body.encode())
        time.sleep(1.1)  # S3 LastModified has one-second resolution: keep the files in order


def calls_since(cluster: AirflowCluster, endpoint: str, since: float) -> list[dict[str, Any]]:
    return [c for c in cluster.emulator_calls() if c["endpoint"] == endpoint and c["time"] >= since]


def intervals(transitions: list[Transition], state: str, until: float) -> list[tuple[float, float]]:
    """[start, end) of each stretch the task instance spent in ``state``, by the recorder's clock."""
    spans = []
    for i, transition in enumerate(transitions):
        if transition.state == state:
            end = transitions[i + 1].at if i + 1 < len(transitions) else until
            spans.append((transition.at, end))
    return spans


def sync_state(cluster: AirflowCluster, run_id: str, *, triggerer_down: bool = False) -> str | None:
    cluster.check_alive(except_=("triggerer",) if triggerer_down else ())
    tis = cluster.task_instances(SYNC_DAG_ID, run_id)
    failed = {task: ti["state"] for task, ti in tis.items() if ti["state"] in FAILED_STATES}
    if failed:
        raise Abort(f"the sync run failed: {failed}")
    ti = tis.get(SYNC_TASK_ID)
    return ti["state"] if ti else None


def probe_state(cluster: AirflowCluster) -> str | None:
    cluster.check_alive(except_=("triggerer",))
    state = cluster.ti_state(PROBE_DAG_ID, PROBE_RUN_ID, PROBE_TASK_ID)
    if state in FAILED_STATES:
        raise Abort(f"the probe task ended {state}")
    return state


@pytest.mark.parametrize("airflow_cluster", ["celery", "local"], indirect=True)
def test_sync_defers_frees_the_worker_slot_and_survives_a_triggerer_crash(
    airflow_cluster: AirflowCluster,
    capsys: pytest.CaptureFixture[str],
    record_property: Any,
) -> None:
    cluster = airflow_cluster
    began = time.time()
    land_products(cluster)
    wait_for(
        "the DAG processor to parse the DAGs",
        lambda: cluster.check_alive() and {SYNC_DAG_ID, PROBE_DAG_ID} <= cluster.dag_ids(),
        180,
    )

    # Unpausing the hourly DAG makes the scheduler start its latest interval's run.
    cluster.cli("dags", "unpause", PROBE_DAG_ID)
    cluster.cli("dags", "unpause", SYNC_DAG_ID)
    run_id: str = wait_for(
        "the scheduler to create a sync run",
        lambda: cluster.check_alive() and next((r["run_id"] for r in cluster.dag_runs(SYNC_DAG_ID)), None),
        120,
    )

    # 1. The sync task posts items_batch and defers.
    wait_for("sync_catalog to defer", lambda: sync_state(cluster, run_id) == "deferred", 300, 0.25)
    deferred_seen = time.time()
    posts_before_crash = calls_since(cluster, "items_batch", 0)
    assert [c["record_count"] for c in posts_before_crash] == [5_000, 2_500]

    # 2. With its one slot free, the worker runs another DAG's task while sync_catalog waits.
    cluster.cli("dags", "trigger", PROBE_DAG_ID, "--run-id", PROBE_RUN_ID)

    # 3. The triggerer polls Meta for the batch status ... and is killed mid-poll.
    wait_for(
        "the triggerer to poll check_batch_request_status",
        lambda: calls_since(cluster, "check_batch_request_status", deferred_seen - 5),
        60,
        0.25,
    )
    sync_trigger_id = cluster.task_instances(SYNC_DAG_ID, run_id)[SYNC_TASK_ID]["trigger_id"]
    old_triggerer_job = cluster.latest_triggerer_job()
    killed_triggerer = cluster.processes["triggerer"]
    cluster.processes.kill("triggerer", signal.SIGKILL)
    killed_at = time.time()
    assert not killed_triggerer.alive()
    assert killed_triggerer.popen.returncode == -signal.SIGKILL
    assert sync_state(cluster, run_id, triggerer_down=True) == "deferred"

    wait_for(
        "the probe task to finish on the free worker slot",
        lambda: probe_state(cluster) == "success",
        150,
    )
    # With no triggerer alive, nothing polls Meta and the task stays deferred (watched for a few polls).
    time.sleep(max(0.0, killed_at + TRIGGERER_DOWN_SECONDS - time.time()))
    assert calls_since(cluster, "check_batch_request_status", killed_at + 1) == []
    assert sync_state(cluster, run_id, triggerer_down=True) == "deferred"

    # 4. A new triggerer takes the trigger over (re-created from its serialized kwargs).
    restarted_at = time.time()
    cluster.start_triggerer()
    wait_for(
        "the new triggerer to heartbeat", lambda: cluster.triggerer_job_alive(after=restarted_at - 1), 120
    )
    new_triggerer_job = cluster.latest_triggerer_job()
    assert new_triggerer_job != old_triggerer_job
    final_state = wait_for(
        "the sync run to finish",
        lambda: next(
            (r["state"] for r in cluster.dag_runs(SYNC_DAG_ID) if r["state"] in ("success", "failed")),
            None,
        ),
        300,
    )
    finished = time.time()
    tis = cluster.task_instances(SYNC_DAG_ID, run_id)
    assert final_state == "success", {t: ti["state"] for t, ti in tis.items()}
    assert {t: ti["state"] for t, ti in tis.items()} == dict.fromkeys(tis, "success")

    # The processes: everything but the killed triggerer kept running; the new one did the polling.
    for name in ("api-server", "scheduler", "dag-processor", "triggerer", "emulator", "moto"):
        assert cluster.processes[name].alive(), f"{name} exited:\n{cluster.processes.tail(name)}"
    if cluster.executor == "celery":
        assert cluster.processes["celery-worker"].alive()
    assert calls_since(cluster, "check_batch_request_status", restarted_at), "the new triggerer never polled"

    # The metadata DB: the trigger ran on the killed triggerer, then was handed to the new one.
    assert cluster.recorder is not None
    owners = [job for _, trigger, job in cluster.recorder.trigger_assignments if trigger == sync_trigger_id]
    assert old_triggerer_job in owners, owners
    assert owners[-1] == new_triggerer_job, owners
    assert owners.index(new_triggerer_job) > owners.index(old_triggerer_job), owners

    # The metadata DB: one try, deferred once, resumed after the new triggerer started.
    timeline = cluster.recorder.of(SYNC_DAG_ID, SYNC_TASK_ID)
    states = [t.state for t in timeline]
    assert "deferred" in states, states
    assert states[-1] == "success", states
    assert {t.try_number for t in timeline if t.state} == {tis[SYNC_TASK_ID]["try_number"]}, timeline
    assert not cluster.query(
        "SELECT 1 FROM task_instance_history WHERE dag_id = :d AND task_id = :t",
        d=SYNC_DAG_ID,
        t=SYNC_TASK_ID,
    ), "sync_catalog was retried"
    ((deferred_from, deferred_until),) = intervals(timeline, "deferred", finished)
    assert deferred_until > restarted_at
    running = intervals(timeline, "running", finished)
    assert len(running) == 2, timeline  # before the deferral and after the resume

    # The probe ran start to finish on the slot while sync_catalog was deferred.
    probe = cluster.task_instances(PROBE_DAG_ID, PROBE_RUN_ID)[PROBE_TASK_ID]
    assert (
        deferred_from - 1
        <= probe["start_date"].timestamp()
        <= probe["end_date"].timestamp()
        <= deferred_until
    )

    # The emulator: every product, each payload exactly once, nothing posted after the crash.
    items = cluster.emulator_items()
    assert len(items) == PRODUCT_COUNT
    for i in (0, 5_199, 5_200, 7_499):
        item = items[f"e2e-{i:06d}"]
        assert (item["title"], item["price"]) == (f"Product {i}", f"{1000 + i} IQD")
    posts = calls_since(cluster, "items_batch", 0)
    assert [c["status"] for c in posts] == [200, 200]
    assert posts == posts_before_crash
    assert len({c["payload_sha256"] for c in posts}) == len(posts)
    assert all(c["time"] < killed_at for c in posts)

    # S3: the landing files are archived, the run's records are kept, and match what Meta got.
    assert cluster.s3_keys(LANDING_BUCKET, "landing/") == []
    assert cluster.s3_keys(LANDING_BUCKET, "archive/") == sorted(
        "archive/" + key.removeprefix("landing/") for key in LANDING_FILES
    )
    (report_key,) = [k for k in cluster.s3_keys(SYNCED_BUCKET, "runs/") if k.endswith("report.json")]
    report = json.loads(cluster.s3().get_object(Bucket=SYNCED_BUCKET, Key=report_key)["Body"].read())
    assert report["status"] == "succeeded"
    assert report["catalog_id"] == CATALOG_ID
    assert report["counts"]["items_sent"] == PRODUCT_COUNT
    assert sorted(report["statuses"].values()) == ["finished", "finished"]
    assert sorted(report["statuses"]) == sorted(c["handle"] for c in posts)

    slot_held = sum(end - start for start, end in running)
    deferred_for = deferred_until - deferred_from
    record_property("worker_slot_held_seconds", round(slot_held, 1))
    record_property("deferred_seconds", round(deferred_for, 1))
    with capsys.disabled():  # shown in `make test` output too, not only with -s
        print(
            f"\n[e2e] {cluster.executor}: sync_catalog held a worker slot {slot_held:.1f} s "
            f"({' + '.join(f'{end - start:.1f}' for start, end in running)} s running) and was deferred "
            f"{deferred_for:.1f} s (Meta processing {PROCESSING_SECONDS:.0f} s; triggerer down "
            f"{restarted_at - killed_at:.1f} s); probe task ran "
            f"{(probe['end_date'] - probe['start_date']).total_seconds():.1f} s inside the deferral; "
            f"scenario {finished - began:.1f} s"
        )
