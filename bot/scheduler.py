"""Scheduled jobs that survive restarts: APScheduler with its job store in our database, and
one leader per database.

- `JobScheduler.every(name, seconds, handler, grace=, coalesce=)`: a periodic, idempotent job
  (one line at the composition root). `JobScheduler.at(key, when, handler, *args, grace=)`: a
  one-off job at a UTC time, idempotent by key (a second call replaces the first).
- The job store is APScheduler's `SQLAlchemyJobStore` on the app's engine; its table is made by
  migration 0008 (storage/tables_scheduler.py), never at run time.
- A stored job is a reference to the module-level `run_job` plus a handler name and plain
  arguments (the store pickles references, never closures). Each process registers its
  handlers (closures over its own repository, settings, senders) with its `JobScheduler`;
  `run_job` finds them through a context variable that our executor sets for the task it
  starts, so two apps in one process (tests) never see each other's handlers.
- One leader: APScheduler's FAQ says a job store must not be shared by running schedulers, so
  only the process holding the leader lock runs one. PostgreSQL: a session-level
  `pg_try_advisory_lock` on a dedicated connection; it goes when the holder releases it or its
  connection closes (the process died). SQLite: an exclusive `flock` on a file beside the
  database (released by the kernel when the process dies), so two servers started on one
  SQLite file by mistake still run one scheduler; an in-memory database is always led.
  Followers try again every `retry_seconds`; the leader checks its lock as often (and then
  wakes APScheduler, so one-off jobs another process stored are seen within that time).
- Misfires are explicit per job: `grace` (seconds late a run may still start; None: however
  late) and `coalesce` (runs missed while down collapse into one). APScheduler's default grace
  of 1 second would silently skip every job missed during a restart. max_instances is 1.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import fcntl
import hashlib
import inspect
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any, Protocol

from apscheduler.events import (
    EVENT_JOB_MAX_INSTANCES,
    EVENT_JOB_MISSED,
    JobEvent,
    JobExecutionEvent,
    JobSubmissionEvent,
)
from apscheduler.executors.asyncio import AsyncIOExecutor
from apscheduler.job import Job
from apscheduler.jobstores.base import ConflictingIdError, JobLookupError
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from storage.db import normalise_url
from storage.tables_scheduler import JOBS_TABLE

log = logging.getLogger("besafe.scheduler")

Handler = Callable[..., object]  # sync (run in a thread) or async; returns are ignored
STORE = "default"
# Advisory lock key: a fixed 64-bit number derived from a name (other apps sharing the
# PostgreSQL server are unlikely to pick the same).
LEADER_LOCK_KEY = int.from_bytes(
    hashlib.sha256(b"besafe scheduler leader").digest()[:8], "big", signed=True
)
SHUTDOWN_WAIT_SECONDS = 10.0  # a running job gets this long to finish at shutdown

_OWNER: contextvars.ContextVar[JobScheduler] = contextvars.ContextVar("besafe_scheduler")
_JOB_ID: contextvars.ContextVar[str] = contextvars.ContextVar("besafe_scheduler_job")


async def run_job(handler: str, *args: object) -> None:
    """What every stored job calls: the running scheduler's handler `handler` with `args`."""
    owner = _OWNER.get(None)
    if owner is None:
        raise RuntimeError("run_job runs only inside a JobScheduler")
    await owner._run(_JOB_ID.get(handler), handler, args)


@dataclass(frozen=True)
class Periodic:
    name: str
    seconds: float
    grace: int | None
    coalesce: bool


class LeaderLock(Protocol):
    def try_acquire(self) -> bool: ...
    def still_held(self) -> bool: ...
    def release(self) -> None: ...


class PostgresLeaderLock:
    """A session-level advisory lock held on a connection of its own (not from the app's pool).

    The session keeps the lock until `release` or until the connection closes; TCP keepalives
    and a user timeout make a dead network look dead within seconds, not hours.
    """

    def __init__(self, url: str, key: int = LEADER_LOCK_KEY) -> None:
        self._key = key
        self._engine = create_engine(
            normalise_url(url),
            poolclass=NullPool,
            connect_args={
                "application_name": "besafe-scheduler",
                "connect_timeout": 5,
                "keepalives": 1,
                "keepalives_idle": 10,
                "keepalives_interval": 5,
                "keepalives_count": 3,
                "tcp_user_timeout": 15000,
            },
        )
        self._connection: Connection | None = None
        self._held = False

    def try_acquire(self) -> bool:
        # A follower keeps its connection between attempts (no reconnect every few seconds).
        if self._connection is None:
            self._connection = self._engine.connect().execution_options(
                isolation_level="AUTOCOMMIT"
            )
        try:
            self._held = bool(
                self._connection.execute(
                    text("SELECT pg_try_advisory_lock(:key)"), {"key": self._key}
                ).scalar_one()
            )
        except Exception:
            self._close()
            raise
        return self._held

    def still_held(self) -> bool:
        # A live session still holds its session-level lock: only unlock or disconnect end it.
        if self._connection is None or not self._held:
            return False
        try:
            self._connection.execute(text("SELECT 1")).scalar_one()
        except Exception:
            self._close()
            return False
        return True

    def release(self) -> None:
        if self._connection is not None and self._held:
            try:
                self._connection.execute(
                    text("SELECT pg_advisory_unlock(:key)"), {"key": self._key}
                )
            except Exception:  # closing the connection releases it anyway
                log.warning("scheduler leader lock: unlock failed; closing its connection")
        self._close()
        self._engine.dispose()

    def _close(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(Exception):  # already broken
                self._connection.close()
            self._connection = None
        self._held = False


class FileLeaderLock:
    """An exclusive `flock` on a file beside the SQLite database (per open file, so it also
    tells apart two apps in one process); the kernel drops it when the process dies."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._file: IO[bytes] | None = None

    def try_acquire(self) -> bool:
        if self._file is not None:
            return True
        self._path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self._path, "ab")  # noqa: SIM115 - held open while leader
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return False
        self._file = handle
        return True

    def still_held(self) -> bool:
        return self._file is not None

    def release(self) -> None:
        if self._file is not None:
            fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
            self._file.close()
            self._file = None


class AlwaysLeader:
    """An in-memory SQLite database belongs to one process: it always leads."""

    def try_acquire(self) -> bool:
        return True

    def still_held(self) -> bool:
        return True

    def release(self) -> None:
        return None


def leader_lock_for(url: str) -> LeaderLock:
    parsed = normalise_url(url)
    if parsed.get_backend_name() == "postgresql":
        return PostgresLeaderLock(url)
    database = make_url(parsed).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return AlwaysLeader()
    return FileLeaderLock(Path(database).with_name(Path(database).name + ".scheduler-lock"))


class _JobStore(SQLAlchemyJobStore):  # type: ignore[misc]
    """APScheduler's store on the app's engine, which the app (not the store) disposes."""

    def shutdown(self) -> None:
        return None


class _Executor(AsyncIOExecutor):  # type: ignore[misc]
    """Runs coroutine jobs on the loop, with `run_job`'s context (owner and job id) set.

    `create_task` copies the current context, so the values set around the parent's submit
    are what the job's task sees.
    """

    def __init__(self, owner: JobScheduler) -> None:
        super().__init__()
        self._owner = owner

    def _do_submit_job(self, job: Job, run_times: list[datetime]) -> None:
        owner_token = _OWNER.set(self._owner)
        job_token = _JOB_ID.set(str(job.id))
        try:
            super()._do_submit_job(job, run_times)
        finally:
            _JOB_ID.reset(job_token)
            _OWNER.reset(owner_token)

    def running(self) -> list[asyncio.Future[Any]]:
        return [f for f in getattr(self, "_pending_futures", ()) if not f.done()]


class JobScheduler:
    """The app's scheduler: jobs declared by the composition root, run by the leader only."""

    def __init__(self, lock: LeaderLock, *, retry_seconds: float = 5.0) -> None:
        self._lock = lock
        self._retry = retry_seconds
        # Never started: the store needs a scheduler to rebuild jobs it reads, and `Job`
        # needs one for its time zone, in every process, leader or not.
        self._template = AsyncIOScheduler(timezone=UTC)
        self._store: _JobStore | None = None
        self._handlers: dict[str, Handler] = {}
        self._periodic: dict[str, Periodic] = {}
        self._scheduler: AsyncIOScheduler | None = None
        self._executor: _Executor | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._lock_error_logged = False

    def bind(self, engine: Engine) -> None:
        """Use `engine` (the app's) for the job store; jobs may be declared before this."""
        store = _JobStore(engine=engine, tablename=JOBS_TABLE)
        store.start(self._template, STORE)  # the table exists (migration 0008): no DDL
        self._store = store

    @classmethod
    def for_url(cls, url: str, *, retry_seconds: float = 5.0) -> JobScheduler:
        return cls(leader_lock_for(url), retry_seconds=retry_seconds)

    @property
    def store(self) -> SQLAlchemyJobStore:
        if self._store is None:
            raise RuntimeError("JobScheduler.bind(engine) first")
        return self._store

    # ------------------------------------------------------------ declaring jobs

    def handle(self, name: str, handler: Handler) -> None:
        """Register what one-off jobs named `name` run in this process."""
        self._handlers[name] = handler

    def every(
        self,
        name: str,
        seconds: float,
        handler: Handler,
        *,
        grace: int | None,
        coalesce: bool,
    ) -> None:
        """A periodic job: `handler()` every `seconds`, on the leader, first run at once.

        `grace`: how many seconds late a run may still start (None: however late); a run later
        than that is skipped and logged. `coalesce`: runs missed while no server ran collapse
        into one. The handler must be idempotent: a run cut short by a crash is not repeated,
        and a new leader may run it again soon after.
        """
        if seconds <= 0:
            raise ValueError("a periodic job needs a positive interval")
        if grace is not None and (not isinstance(grace, int) or grace <= 0):
            raise ValueError("grace must be None or a positive whole number of seconds")
        self._handlers[name] = handler
        self._periodic[name] = Periodic(name, seconds, grace, coalesce)
        if self.is_leader:
            self._store_periodic(self._periodic[name], _now())

    async def at(
        self, key: str, when: datetime, handler: str, *args: object, grace: int | None
    ) -> None:
        """A one-off job: handler `handler(*args)` at `when` (UTC; naive means UTC), once.

        Idempotent by `key`: scheduling the same key again replaces the earlier job. Works in
        every process (it is a row in the store); the leader sees it within `retry_seconds`.
        `args` are pickled into the store: plain values only (ids, never personal data).
        """
        if grace is not None and (not isinstance(grace, int) or grace <= 0):
            raise ValueError("grace must be None or a positive whole number of seconds")
        if handler not in self._handlers:
            raise ValueError(f"no handler {handler!r}: register it with handle() first")
        if key in self._periodic:
            raise ValueError(f"{key!r} is a periodic job's name; choose another key")
        moment = when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
        job = Job(
            self._template,
            id=key,
            func=run_job,
            args=(handler, *args),
            kwargs={},
            trigger=DateTrigger(run_date=moment, timezone=UTC),
            executor=STORE,
            name=key,
            misfire_grace_time=grace,
            coalesce=True,
            max_instances=1,
            next_run_time=moment,
        )
        await asyncio.to_thread(self._put, job)
        self._wake()

    async def cancel(self, key: str) -> bool:
        """Remove a stored job; False when there was none."""

        def remove() -> bool:
            try:
                self.store.remove_job(key)
            except JobLookupError:
                return False
            return True

        return await asyncio.to_thread(remove)

    def stored_jobs(self) -> dict[str, datetime | None]:
        """Every stored job's id and next run time (UTC), from the database."""
        return {str(job.id): job.next_run_time for job in self.store.get_all_jobs()}

    # ------------------------------------------------------------ running

    @property
    def is_leader(self) -> bool:
        return self._scheduler is not None

    def start(self) -> None:
        """Begin trying for leadership (call on the running loop)."""
        self.store  # noqa: B018 - fails early when not bound
        if self._task is None:
            self._stopping.clear()
            self._task = asyncio.create_task(self._lead(), name="scheduler-leader")

    async def stop(self) -> None:
        """Stop: let running jobs finish (briefly), stop the scheduler, release the lock."""
        if self._task is not None:
            # Not cancelled mid-step: a lock taken in a worker thread after a cancel would
            # never be released.
            self._stopping.set()
            await self._task
            self._task = None
        was_leader = self.is_leader
        await self._step_down(wait=True)
        await asyncio.to_thread(self._lock.release)
        if was_leader:
            log.info("scheduler leader released")

    async def _lead(self) -> None:
        while not self._stopping.is_set():
            if self._scheduler is None:
                try:
                    acquired = await asyncio.to_thread(self._lock.try_acquire)
                    self._lock_error_logged = False
                except Exception as error:  # the database is away: try again later
                    acquired = False
                    if not self._lock_error_logged:
                        log.warning(
                            "scheduler leader lock unavailable", extra={"error": str(error)[:200]}
                        )
                        self._lock_error_logged = True
                if acquired:
                    log.info("scheduler leader acquired", extra={"pid": os.getpid()})
                    try:
                        self._take_over()
                    except Exception:
                        log.exception("scheduler failed to start; stepping down")
                        await self._step_down(wait=False)
                        await asyncio.to_thread(self._lock.release)
            elif await asyncio.to_thread(self._lock.still_held):
                self._wake()
            else:
                log.error("scheduler leader lost", extra={"pid": os.getpid()})
                await self._step_down(wait=False)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self._retry)

    def _take_over(self) -> None:
        executor = _Executor(self)
        scheduler = AsyncIOScheduler(
            timezone=UTC,
            executors={STORE: executor},
            jobstores={STORE: self.store},
            job_defaults={"max_instances": 1},
        )
        scheduler.add_listener(self._on_event, EVENT_JOB_MISSED | EVENT_JOB_MAX_INSTANCES)
        # Paused until the periodic jobs are in the store as declared; then missed runs are
        # judged (grace, coalesce) as the scheduler resumes.
        scheduler.start(paused=True)
        self._scheduler, self._executor = scheduler, executor
        now = _now()
        for periodic in self._periodic.values():
            self._store_periodic(periodic, now)
        for job in self.store.get_all_jobs():
            handler = job.args[0] if job.args else None
            if isinstance(job.trigger, IntervalTrigger) and handler not in self._periodic:
                self.store.remove_job(job.id)
                log.info("scheduled job removed: no longer declared", extra={"job": job.id})
        scheduler.resume()

    async def _step_down(self, *, wait: bool) -> None:
        scheduler, executor = self._scheduler, self._executor
        self._scheduler = self._executor = None
        if scheduler is None:
            return
        if wait and executor is not None:
            scheduler.pause()
            running = executor.running()
            if running:
                await asyncio.wait(running, timeout=SHUTDOWN_WAIT_SECONDS)
        scheduler.shutdown(wait=False)  # cancels whatever still runs: every job is idempotent

    def _wake(self) -> None:
        if self._scheduler is not None:
            self._scheduler.wakeup()

    def _store_periodic(self, periodic: Periodic, now: datetime) -> None:
        interval = timedelta(seconds=periodic.seconds)
        try:
            existing: Job | None = self.store.lookup_job(periodic.name)
        except Exception:  # a job stored by an incompatible version: declare it afresh
            log.exception("stored job unreadable; replaced", extra={"job": periodic.name})
            existing = None
        if (
            existing is not None
            and isinstance(existing.trigger, IntervalTrigger)
            and existing.trigger.interval == interval
        ):
            # Same schedule: keep its next run time (that is what survives a restart).
            if (existing.misfire_grace_time, existing.coalesce, existing.max_instances) != (
                periodic.grace,
                periodic.coalesce,
                1,
            ):
                existing._modify(
                    misfire_grace_time=periodic.grace, coalesce=periodic.coalesce, max_instances=1
                )
                self.store.update_job(existing)
            return
        job = Job(
            self._template,
            id=periodic.name,
            func=run_job,
            args=(periodic.name,),
            kwargs={},
            trigger=IntervalTrigger(seconds=periodic.seconds, start_date=now, timezone=UTC),
            executor=STORE,
            name=periodic.name,
            misfire_grace_time=periodic.grace,
            coalesce=periodic.coalesce,
            max_instances=1,
            next_run_time=now,
        )
        self._put(job)

    def _put(self, job: Job) -> None:
        try:
            self.store.add_job(job)
        except ConflictingIdError:
            self.store.update_job(job)

    async def _run(self, job_id: str, handler_name: str, args: tuple[object, ...]) -> None:
        handler = self._handlers.get(handler_name)
        if handler is None:
            log.error("scheduled job has no handler here", extra={"job": job_id})
            return
        started = time.perf_counter()
        try:
            if _is_async(handler):
                result = handler(*args)
            else:
                result = await asyncio.to_thread(handler, *args)
            if inspect.isawaitable(result):
                await result
        except Exception as error:
            # Logged here, not re-raised: APScheduler would log it again without our fields.
            log.exception(
                "scheduled job failed", extra={"job": job_id, "error": type(error).__name__}
            )
            return
        log.info(
            "scheduled job ran",
            extra={"job": job_id, "seconds": round(time.perf_counter() - started, 3)},
        )

    def _on_event(self, event: JobEvent) -> None:
        if isinstance(event, JobExecutionEvent) and event.code == EVENT_JOB_MISSED:
            late = (_now() - event.scheduled_run_time).total_seconds()
            log.warning(
                "scheduled job missed",
                extra={
                    "job": event.job_id,
                    "scheduled_for": event.scheduled_run_time.isoformat(),
                    "late_seconds": round(late, 1),
                },
            )
        elif isinstance(event, JobSubmissionEvent):
            log.warning(
                "scheduled job still running; this run skipped", extra={"job": event.job_id}
            )


def _is_async(handler: Handler) -> bool:
    while hasattr(handler, "func"):  # functools.partial
        handler = handler.func
    return inspect.iscoroutinefunction(handler) or inspect.iscoroutinefunction(
        type(handler).__call__
    )


def _now() -> datetime:
    return datetime.now(UTC)
