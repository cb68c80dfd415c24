"""Claims, leases, heartbeats and recovery on the database, without the server."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import insert

from mailcrate.datadir import DataDir
from mailcrate.jobs import store
from mailcrate.jobs.limits import Limits
from mailcrate.jobs.records import State
from mailcrate.services.workmail import organizations as workmail_organizations
from mailcrate.storage.db import utcnow
from mailcrate.storage.tables import accounts, organizations

LEASE = timedelta(seconds=30)


@pytest.fixture(params=["sqlite", "postgresql"])
def data_dir(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[DataDir]:
    """The same rules on SQLite and PostgreSQL (the scale-out database, many workers)."""
    url = None
    if request.param == "postgresql":
        url = request.getfixturevalue("postgres").migrated_database("jobs_" + uuid.uuid4().hex[:12])
    dd = DataDir.open(tmp_path / "data", create=True, database_url=url)
    with dd.db.begin() as conn:
        conn.execute(
            insert(accounts).values(
                account_id="111122223333", default_region="us-east-1", created_at=utcnow()
            )
        )
        conn.execute(
            insert(organizations).values(
                organization_id="m-" + "a" * 32,
                account_id="111122223333",
                region="us-east-1",
                alias="org",
                state="Active",
                directory_type="WorkMailDirectory",
                default_mail_domain="org.awsapps.com",
                created_at=utcnow(),
            )
        )
    yield dd
    dd.close()


def _job(data_dir: DataDir, entity: str | None = None) -> str:
    request = store.StartRequest(
        account_id="111122223333",
        region="us-east-1",
        organization_id="m-" + "a" * 32,
        entity_id=entity or uuid.uuid4().hex,
        role_arn="arn:aws:iam::111122223333:role/R",
        kms_key_arn="arn:aws:kms:us-east-1:111122223333:key/k",
        s3_bucket_name="b",
        s3_prefix="p",
        client_token=uuid.uuid4().hex,
    )
    with data_dir.db.begin() as conn:
        workmail_organizations.lock(conn, request.organization_id)
        job, created = store.create(conn, request, Limits(max_running_per_org=1000))
    assert created
    return job.job_id


def test_one_claim_per_job_under_contention(data_dir: DataDir) -> None:
    ids = {_job(data_dir) for _ in range(20)}
    won: list[tuple[str, str]] = []
    lock = threading.Lock()

    def worker(n: int) -> None:
        while True:
            job = store.claim(data_dir.db, f"w{n}", LEASE)
            if job is None:
                return
            with lock:
                won.append((job.job_id, f"w{n}"))

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(j for j, _ in won) == sorted(ids)  # each job exactly once


def test_expired_lease_is_reclaimed_and_old_worker_locked_out(data_dir: DataDir) -> None:
    job_id = _job(data_dir)
    first = store.claim(data_dir.db, "w1", timedelta(seconds=-1))  # already expired: as after kill -9
    assert first is not None and first.attempts == 1 and first.lease_owner == "w1#1"
    second = store.claim(data_dir.db, "w2", LEASE)
    assert second is not None and second.job_id == job_id and second.attempts == 2
    # The first worker wakes up: none of its writes land any more.
    assert not store.heartbeat(data_dir.db, job_id, "w1#1", LEASE, estimated_progress=50)
    assert not store.complete(data_dir.db, job_id, "w1#1")
    assert store.heartbeat(data_dir.db, job_id, "w2#2", LEASE, estimated_progress=10)
    assert store.claim(data_dir.db, "w3", LEASE) is None  # fresh lease: nobody else gets it


def test_a_stalled_attempt_of_the_same_worker_is_fenced_off(data_dir: DataDir) -> None:
    """One worker (one process and thread id) whose attempt stalled past its lease and which then
    claimed the job again: the old attempt's writes match no row, because each claim raises the
    job's fencing token and the attempt owns the job as "<worker>#<fence>"."""
    job_id = _job(data_dir)
    stale = store.claim(data_dir.db, "w", timedelta(seconds=-1))
    fresh = store.claim(data_dir.db, "w", LEASE)
    assert stale is not None and fresh is not None and (stale.fence, fresh.fence) == (1, 2)
    assert stale.lease_owner != fresh.lease_owner
    assert not store.heartbeat(data_dir.db, job_id, str(stale.lease_owner), LEASE)
    assert not store.record_commit(data_dir.db, job_id, str(stale.lease_owner), "u1", ["e"], "{}")
    assert store.record_commit(data_dir.db, job_id, str(fresh.lease_owner), "u2", ["e"], "{}")
    guard = store.guard_attempt_writes(job_id, str(stale.lease_owner))
    with data_dir.db.begin() as conn, pytest.raises(store.Superseded):
        guard(conn, "UploadPart", {"UploadId": "u1"})
    with data_dir.db.begin() as conn:
        guard(conn, "AbortMultipartUpload", {"UploadId": "u1"})  # its own upload: allowed
        with pytest.raises(store.Superseded):  # the committed one: never
            guard(conn, "AbortMultipartUpload", {"UploadId": "u2"})
        store.guard_attempt_writes(job_id, str(fresh.lease_owner))(conn, "PutObject", {})


def test_the_jobs_of_a_dead_worker_process_are_released_at_once(data_dir: DataDir) -> None:
    """serve ends the leases of a worker process that died (by its pid): another claim takes
    the job now, fenced; a job of another process keeps its lease; the dead attempt's writes
    and its abort of the upload the job records are refused; its checkpoints stay for the
    next attempt."""
    dead, alive = 4242, 4343
    dead_pool, alive_pool = store.pool_id_prefix(dead) + "aaaa", store.pool_id_prefix(alive) + "bbbb"
    job_id, other_id = _job(data_dir), _job(data_dir, "S-2")
    held = store.claim(data_dir.db, f"{dead_pool}/0", LEASE)
    kept = store.claim(data_dir.db, f"{alive_pool}/0", LEASE)
    assert held is not None and kept is not None and held.job_id == job_id and kept.job_id == other_id
    assert store.set_upload(data_dir.db, job_id, str(held.lease_owner), "up-1")
    assert store.claim(data_dir.db, "w", LEASE) is None  # both leases are live
    assert store.release_dead_process(data_dir.db, dead) == 1
    taken = store.claim(data_dir.db, "w", LEASE)
    assert taken is not None and taken.job_id == job_id and taken.fence == held.fence + 1
    assert taken.upload_id == "up-1"  # kept for the new attempt to resume
    assert store.heartbeat(data_dir.db, other_id, str(kept.lease_owner), LEASE)
    assert not store.heartbeat(data_dir.db, job_id, str(held.lease_owner), LEASE)
    with data_dir.db.begin() as conn, pytest.raises(store.Superseded):
        store.guard_attempt_writes(job_id, str(held.lease_owner))(
            conn, "AbortMultipartUpload", {"UploadId": "up-1"}
        )
    assert store.release_dead_process(data_dir.db, 99999) == 0


def test_a_commit_is_recorded_once_and_survives_reclaims(data_dir: DataDir) -> None:
    """The first attempt to record its commit decides the zip and log; a later attempt finds the
    commit (and the job stays finishing, so a cancel cannot stop it), and cannot record another."""
    org = "m-" + "a" * 32
    job_id = _job(data_dir)
    first = store.claim(data_dir.db, "w1", timedelta(seconds=-1))
    assert first is not None
    assert store.record_commit(data_dir.db, job_id, str(first.lease_owner), "up-1", ["a", "b"], '{"x": 1}')
    second = store.claim(data_dir.db, "w2", LEASE)
    assert second is not None and second.finishing
    assert store.commit_of(second) == store.Commit("up-1", ["a", "b"], '{"x": 1}')
    assert not store.record_commit(data_dir.db, job_id, str(second.lease_owner), "up-2", ["c"], "{}")
    with data_dir.db.begin() as conn:
        assert not store.cancel(conn, org, job_id, "t").changed
    assert store.complete(data_dir.db, job_id, str(second.lease_owner))
    guard = store.guard_attempt_writes(job_id, str(second.lease_owner))
    with data_dir.db.begin() as conn, pytest.raises(store.Superseded):
        guard(conn, "PutObject", {})  # COMPLETED: no attempt writes anything any more


def test_a_worker_whose_clock_runs_ahead_cannot_reclaim_a_live_job(
    data_dir: DataDir, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Leases are on the database's clock: a second machine two hours ahead (its own clock is
    all this process changes) sees the first worker's 30 s lease as live, and the first worker's
    heartbeat still lands. On the worker's clock the lease looked long expired and was taken."""
    job_id = _job(data_dir)
    assert store.claim(data_dir.db, "w1", LEASE) is not None
    ahead = datetime.now(UTC) + timedelta(hours=2)
    monkeypatch.setattr(store, "utcnow", lambda: ahead)
    assert store.claim(data_dir.db, "w2", LEASE) is None
    assert store.oldest_waiting_since(data_dir.db) is None
    assert store.heartbeat(data_dir.db, job_id, "w1#1", LEASE, estimated_progress=5)


def test_progress_never_decreases_and_100_only_when_completed(data_dir: DataDir) -> None:
    job_id = _job(data_dir)
    assert store.claim(data_dir.db, "w", LEASE)
    for value, expected in ((40, 40), (20, 40), (100, 99), (99, 99)):
        store.heartbeat(data_dir.db, job_id, "w#1", LEASE, estimated_progress=value)
        assert store.get_by_id_db(data_dir.db, job_id).estimated_progress == expected  # type: ignore[union-attr]
    assert store.complete(data_dir.db, job_id, "w#1")
    job = store.get_by_id_db(data_dir.db, job_id)
    assert job is not None and job.state is State.COMPLETED and job.estimated_progress == 100


def test_gives_up_after_max_attempts(data_dir: DataDir) -> None:
    job_id = _job(data_dir)
    for n in range(3):
        job = store.claim(data_dir.db, f"w{n}", timedelta(seconds=-1), max_attempts=3)
        assert job is not None and job.attempts == n + 1
    assert store.claim(data_dir.db, "w9", LEASE, max_attempts=3) is None
    job = store.get_by_id_db(data_dir.db, job_id)
    assert job is not None and job.state is State.FAILED and "interrupted" in (job.error_info or "")


def test_cancel_stops_the_worker_but_not_a_finishing_job(data_dir: DataDir) -> None:
    org = "m-" + "a" * 32
    a, b = _job(data_dir), _job(data_dir)
    for _ in range(2):
        assert store.claim(data_dir.db, "w", LEASE)
    with data_dir.db.begin() as conn:
        assert store.cancel(conn, org, a, "t").changed
    assert not store.heartbeat(data_dir.db, a, "w#1", LEASE)  # the worker learns at its next beat
    assert not store.record_commit(data_dir.db, a, "w#1", "u", [], "{}")
    assert store.record_commit(data_dir.db, b, "w#1", "u", [], "{}")
    with data_dir.db.begin() as conn:
        assert not store.cancel(conn, org, b, "t").changed  # finishing: it completes
    assert store.complete(data_dir.db, b, "w#1")
    with data_dir.db.begin() as conn, pytest.raises(store.JobConflict):
        store.cancel(conn, org, b, "t2")


def test_release_on_shutdown_does_not_use_an_attempt(data_dir: DataDir) -> None:
    job_id = _job(data_dir)
    assert store.claim(data_dir.db, "w", LEASE)
    store.release(data_dir.db, job_id, "w#1")
    job = store.claim(data_dir.db, "w2", LEASE)
    assert job is not None and job.attempts == 1


def test_running_limit_holds_under_concurrent_starts(data_dir: DataDir) -> None:
    """Starts serialize on the organization row: 12 concurrent Starts, limit 5 -> exactly 5."""
    limits = Limits(max_running_per_org=5)
    results: list[str] = []
    lock = threading.Lock()
    barrier = threading.Barrier(12)

    def start(n: int) -> None:
        request = store.StartRequest(
            account_id="111122223333",
            region="us-east-1",
            organization_id="m-" + "a" * 32,
            entity_id=f"user-{n}",
            role_arn="arn:aws:iam::111122223333:role/R",
            kms_key_arn="arn:aws:kms:us-east-1:111122223333:key/k",
            s3_bucket_name="b",
            s3_prefix="p",
        )
        barrier.wait()
        try:
            with data_dir.db.begin() as conn:
                workmail_organizations.lock(conn, request.organization_id)
                store.create(conn, request, limits)
            outcome = "created"
        except store.JobLimitExceeded:
            outcome = "limit"
        with lock:
            results.append(outcome)

    threads = [threading.Thread(target=start, args=(n,)) for n in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == ["created"] * 5 + ["limit"] * 7
