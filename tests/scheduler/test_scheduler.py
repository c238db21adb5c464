"""The scheduler (bot/scheduler.py): jobs in the database survive restarts, misfires follow
each job's grace and coalescing, and one scheduler leads per database. Both backends."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta

import pytest
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from sqlalchemy import Engine, inspect, text

from bot.scheduler import FileLeaderLock, JobScheduler, leader_lock_for
from storage.db import create_db_engine
from storage.tables_scheduler import JOBS_TABLE, scheduler_jobs

RETRY = 0.1  # leader retry in tests: takeovers are awaited, never timed
WAIT = 30.0  # upper bound on any wait for something that must happen


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[Engine]:
    engine = create_db_engine(database_url)
    yield engine
    engine.dispose()


def make(database_url: str, engine: Engine) -> JobScheduler:
    scheduler = JobScheduler.for_url(database_url, retry_seconds=RETRY)
    scheduler.bind(engine)
    return scheduler


async def until(condition: Callable[[], bool], what: str) -> None:
    deadline = asyncio.get_running_loop().time() + WAIT
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"never happened: {what}")
        await asyncio.sleep(0.02)


def set_next_run(scheduler: JobScheduler, job_id: str, when: datetime) -> None:
    """As if the servers had been down: the stored job's next run moved into the past."""
    job = scheduler.store.lookup_job(job_id)
    assert job is not None
    job._modify(next_run_time=when)
    scheduler.store.update_job(job)


class Calls:
    def __init__(self) -> None:
        self.args: list[tuple[object, ...]] = []

    async def __call__(self, *args: object) -> None:
        self.args.append(args)


def test_the_table_has_apschedulers_exact_shape() -> None:
    theirs = SQLAlchemyJobStore(url="sqlite://", tablename=JOBS_TABLE).jobs_t
    ours = scheduler_jobs
    assert [c.name for c in theirs.columns] == [c.name for c in ours.columns]
    for mine in ours.columns:
        other = theirs.c[mine.name]
        assert type(mine.type) is type(other.type), mine.name
        assert repr(mine.type) == repr(other.type), mine.name
        assert (mine.nullable, mine.primary_key) == (other.nullable, other.primary_key)
    assert {tuple(c.name for c in i.columns) for i in theirs.indexes} == {
        tuple(c.name for c in i.columns) for i in ours.indexes
    }


async def test_the_store_uses_the_migrated_table(database_url: str, engine: Engine) -> None:
    scheduler = make(database_url, engine)
    scheduler.handle("h", Calls())
    await scheduler.at("k", datetime.now(UTC) + timedelta(hours=1), "h", 7, grace=60)
    with engine.connect() as connection:
        assert connection.execute(text(f"SELECT id FROM {JOBS_TABLE}")).scalars().all() == ["k"]
    assert JOBS_TABLE in inspect(engine).get_table_names()


async def test_a_periodic_job_runs_at_once_and_survives_a_restart(
    database_url: str, engine: Engine
) -> None:
    calls = Calls()
    first = make(database_url, engine)
    first.every("tick", 3600, calls, grace=60, coalesce=True)
    first.start()
    await until(lambda: len(calls.args) == 1, "the first run")
    await first.stop()
    stored = first.stored_jobs()["tick"]
    assert stored is not None
    assert timedelta(minutes=59) < stored - datetime.now(UTC) <= timedelta(hours=1)

    again = make(database_url, engine)
    again.every("tick", 3600, calls, grace=60, coalesce=True)
    again.start()
    await until(lambda: again.is_leader, "leadership")
    assert again.stored_jobs()["tick"] == stored  # not reset by declaring it again
    await again.stop()
    assert len(calls.args) == 1


async def test_missed_runs_within_grace_run_once_on_start(
    database_url: str, engine: Engine
) -> None:
    calls = Calls()
    first = make(database_url, engine)
    first.every("sweep", 100, calls, grace=300, coalesce=True)
    first.start()
    await until(lambda: len(calls.args) == 1, "the first run")
    await first.stop()
    # Down for 250 s: runs due 250, 150 and 50 seconds ago were missed, all within grace.
    set_next_run(first, "sweep", datetime.now(UTC) - timedelta(seconds=250))

    again = make(database_url, engine)
    again.every("sweep", 100, calls, grace=300, coalesce=True)
    again.start()
    await until(lambda: len(calls.args) == 2, "the catch-up run")
    nxt = again.stored_jobs()["sweep"]
    assert nxt is not None and nxt > datetime.now(UTC)
    await again.stop()
    assert len(calls.args) == 2  # three missed runs, one catch-up (coalesced)


async def test_runs_missed_beyond_grace_are_skipped_and_logged(
    database_url: str, engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="besafe.scheduler")
    periodic, once = Calls(), Calls()
    first = make(database_url, engine)
    first.every("hourly", 3600, periodic, grace=60, coalesce=True)
    first.start()
    await until(lambda: len(periodic.args) == 1, "the first run")
    await first.stop()
    now = datetime.now(UTC)
    set_next_run(first, "hourly", now - timedelta(minutes=10))
    # Stored while no scheduler ran, due two minutes ago, with 30 s of grace.
    first.handle("once", once)  # stopped: it only stores the job
    await first.at("late-one", now - timedelta(minutes=2), "once", 42, grace=30)

    again = make(database_url, engine)
    again.every("hourly", 3600, periodic, grace=60, coalesce=True)
    again.handle("once", once)
    again.start()
    await until(lambda: "late-one" not in again.stored_jobs(), "the one-off handled")
    await until(
        lambda: len([r for r in caplog.records if r.msg == "scheduled job missed"]) == 2,
        "both misses logged",
    )
    nxt = again.stored_jobs()["hourly"]
    assert nxt is not None and nxt > datetime.now(UTC)
    await again.stop()
    missed = {r.job: r for r in caplog.records if r.msg == "scheduled job missed"}  # type: ignore[attr-defined]
    assert set(missed) == {"hourly", "late-one"}
    assert missed["late-one"].late_seconds >= 120  # type: ignore[attr-defined]
    assert once.args == [] and len(periodic.args) == 1


async def test_a_one_off_job_runs_once_with_its_arguments_and_is_idempotent_by_key(
    database_url: str, engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="besafe.scheduler")
    calls = Calls()
    scheduler = make(database_url, engine)
    scheduler.handle("open-campaign", calls)
    soon = datetime.now(UTC) + timedelta(seconds=1)
    await scheduler.at("campaign:7:open", soon + timedelta(hours=5), "open-campaign", 7, grace=60)
    await scheduler.at("campaign:7:open", soon, "open-campaign", 7, grace=60)  # replaces it
    assert list(scheduler.stored_jobs()) == ["campaign:7:open"]
    await scheduler.at("campaign:8:open", soon, "open-campaign", 8, grace=60)
    assert await scheduler.cancel("campaign:8:open") is True
    assert await scheduler.cancel("campaign:8:open") is False
    assert list(scheduler.stored_jobs()) == ["campaign:7:open"]
    scheduler.start()
    await until(lambda: calls.args == [(7,)], "the one-off run")
    await until(lambda: scheduler.stored_jobs() == {}, "the one-off gone")
    await scheduler.stop()
    ran = [r for r in caplog.records if r.msg == "scheduled job ran"]
    assert [r.job for r in ran] == ["campaign:7:open"]  # type: ignore[attr-defined]


async def test_a_failing_job_is_logged_and_runs_again_next_time(
    database_url: str, engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="besafe.scheduler")
    runs: list[int] = []

    def flaky() -> None:  # a plain function: run in a worker thread
        runs.append(1)
        if len(runs) == 1:
            raise ValueError("database away")

    scheduler = make(database_url, engine)
    scheduler.every("flaky", 0.2, flaky, grace=None, coalesce=True)
    scheduler.start()
    await until(lambda: len(runs) >= 2, "a second run after the failure")
    await scheduler.stop()
    failed = [r for r in caplog.records if r.msg == "scheduled job failed"]
    assert [(r.job, r.error) for r in failed] == [("flaky", "ValueError")]  # type: ignore[attr-defined]


async def test_one_leader_per_database_and_a_takeover_when_it_stops(
    database_url: str, engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="besafe.scheduler")
    calls_a, calls_b = Calls(), Calls()
    a, b = make(database_url, engine), make(database_url, engine)
    a.every("tick", 0.1, calls_a, grace=None, coalesce=True)
    b.every("tick", 0.1, calls_b, grace=None, coalesce=True)
    a.start()
    await until(lambda: a.is_leader, "a leads")
    b.start()
    await until(lambda: len(calls_a.args) >= 5, "a runs the job")
    assert not b.is_leader and calls_b.args == []
    await a.stop()
    await until(lambda: b.is_leader, "b takes over")
    await until(lambda: len(calls_b.args) >= 2, "b runs the job")
    await b.stop()
    messages = [r.msg for r in caplog.records]
    assert messages.count("scheduler leader acquired") == 2
    assert messages.count("scheduler leader released") == 2


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_a_leader_whose_connection_dies_stops_and_another_takes_over(
    database_url: str, engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="besafe.scheduler")
    calls_a, calls_b = Calls(), Calls()
    a, b = make(database_url, engine), make(database_url, engine)
    a.every("tick", 0.1, calls_a, grace=None, coalesce=True)
    b.every("tick", 0.1, calls_b, grace=None, coalesce=True)
    a.start()
    await until(lambda: a.is_leader, "a leads")
    b.start()
    await until(lambda: len(calls_a.args) >= 2, "a runs the job")
    with engine.connect() as connection:  # what a crash of a's host looks like to PostgreSQL
        killed = connection.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_locks "
                "WHERE locktype = 'advisory' AND granted AND pid <> pg_backend_pid()"
            )
        ).all()
    assert killed == [(True,)]
    await until(lambda: not a.is_leader, "a notices")
    await until(lambda: b.is_leader, "b takes over")
    await until(lambda: len(calls_b.args) >= 2, "b runs the job")
    stopped_at = len(calls_a.args)
    await until(lambda: a.is_leader or len(calls_b.args) >= 6, "b keeps running it")
    assert not a.is_leader and len(calls_a.args) == stopped_at
    await a.stop()
    await b.stop()
    assert "scheduler leader lost" in [r.msg for r in caplog.records]


def test_sqlite_leads_through_a_file_lock_beside_the_database(tmp_path) -> None:  # type: ignore[no-untyped-def]
    lock = leader_lock_for(f"sqlite:///{tmp_path / 'besafe.db'}")
    assert isinstance(lock, FileLeaderLock)
    other = leader_lock_for(f"sqlite:///{tmp_path / 'besafe.db'}")
    assert lock.try_acquire() and not other.try_acquire()
    lock.release()
    assert other.try_acquire()
    other.release()
    assert (tmp_path / "besafe.db.scheduler-lock").exists()


def test_bad_declarations_are_refused() -> None:
    scheduler = JobScheduler.for_url("sqlite://")
    with pytest.raises(ValueError, match="positive interval"):
        scheduler.every("x", 0, Calls(), grace=60, coalesce=True)
    with pytest.raises(ValueError, match="grace"):
        scheduler.every("x", 60, Calls(), grace=0, coalesce=True)
    with pytest.raises(RuntimeError, match="bind"):
        scheduler.stored_jobs()


async def test_bad_one_off_jobs_are_refused(database_url: str, engine: Engine) -> None:
    scheduler = make(database_url, engine)
    scheduler.every("sweep", 60, Calls(), grace=60, coalesce=True)
    scheduler.handle("open", Calls())
    when = datetime.now(UTC) + timedelta(hours=1)
    with pytest.raises(ValueError, match="no handler 'opne'"):
        await scheduler.at("k", when, "opne", 1, grace=60)
    with pytest.raises(ValueError, match="periodic job"):
        await scheduler.at("sweep", when, "open", 1, grace=60)
    with pytest.raises(ValueError, match="grace"):
        await scheduler.at("k", when, "open", 1, grace=-5)
    assert scheduler.stored_jobs() == {}
