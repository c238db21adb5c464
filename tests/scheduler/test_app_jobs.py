"""The real app declares its cluster-wide jobs on the scheduler, and its leader runs them."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import select

from config.settings import Settings
from storage.clock import utcnow
from storage.db import create_db_engine
from storage.repository import Repository
from storage.staff import create_session
from storage.tables_staff import staff_sessions
from tests.staff.conftest import create_staff_user
from web.app import create_app
from web.keys import SCHEDULER

WAIT = 30.0


async def until(condition: Callable[[], bool], what: str) -> None:
    deadline = asyncio.get_running_loop().time() + WAIT
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"never happened: {what}")
        await asyncio.sleep(0.05)


async def test_the_app_declares_its_jobs_and_the_leader_runs_them(
    aiohttp_client: Callable[..., Awaitable[TestClient]], tmp_path: Path, database_url: str
) -> None:
    settings = Settings(
        data_dir=tmp_path,
        database_url=database_url,
        secret_key="scheduler-app-tests-secret-0123456789abcdef",  # type: ignore[arg-type]
        alert_check_seconds=45,
        scheduler_leader_retry_seconds=0.1,
        log_format="text",
    )
    user = create_staff_user(settings, "facilitator")
    engine = create_db_engine(database_url)
    repository = Repository(engine)
    now = utcnow()

    def expired_session(uow: Any) -> None:
        create_session(
            uow.connection,
            token_hash="expired",
            user_id=user.user_id,
            stage="full",
            address=None,
            now=now - timedelta(hours=13),
            expires_at=now - timedelta(hours=1),
        )

    def sessions() -> list[str]:
        return repository.run(
            lambda uow: uow.connection.execute(select(staff_sessions.c.token_hash)).scalars().all()
        )

    try:
        repository.run(expired_session)
        client = await aiohttp_client(create_app(settings))
        scheduler = client.app[SCHEDULER]
        await until(lambda: scheduler.is_leader, "leadership")
        jobs = {job.id: job for job in scheduler.store.get_all_jobs()}
        declared = {
            job_id: (
                job.trigger.interval.total_seconds(),
                job.misfire_grace_time,
                job.coalesce,
                job.max_instances,
            )
            for job_id, job in jobs.items()
            if isinstance(job.trigger, IntervalTrigger)
        }
        assert declared == {
            "staff-alerts": (45.0, None, True, 1),  # never skipped, however late
            "expiry-sweep": (600.0, 600, True, 1),
            "staff-session-sweep": (600.0, 600, True, 1),
            "retention": (3600.0, 3600, True, 1),
            "campaign-transitions": (30.0, None, True, 1),  # catches up to now
            "broadcasts": (30.0, None, True, 1),  # queues what is due by now
        }
        # The first run of a newly declared job is at once: the expired session goes.
        await until(lambda: sessions() == [], "the session sweep")
    finally:
        engine.dispose()
