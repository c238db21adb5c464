"""Group commit (storage.batching.WriteBatcher) on both backends."""

from __future__ import annotations

import asyncio
import threading

import pytest
from sqlalchemy import func, select

from storage.batching import WriteBatcher
from storage.repository import Repository, UnitOfWork
from storage.tables import respondents


def count_respondents(repository: Repository) -> int:
    with repository.engine.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(respondents)).scalar_one())


def make_respondent(name: str):
    def work(uow: UnitOfWork) -> int:
        return uow.respondent(f"{name}-".ljust(64, "0"), "web")

    return work


async def test_queued_units_share_a_transaction_but_keep_their_own_results(
    repository: Repository,
) -> None:
    batches: list[int] = []
    original = repository.run_batch

    def recording_run_batch(works):
        batches.append(len(works))
        return original(works)

    repository.run_batch = recording_run_batch  # type: ignore[method-assign]
    gate = threading.Event()
    batcher = WriteBatcher(repository, workers=1, max_batch=50)
    try:
        blocker = asyncio.ensure_future(batcher.run(lambda uow: gate.wait(5)))
        await asyncio.sleep(0.05)  # the worker is now inside the blocker's batch
        waiting = [asyncio.ensure_future(batcher.run(make_respondent(f"p{n}"))) for n in range(20)]
        await asyncio.sleep(0.05)
        gate.set()
        ids = await asyncio.gather(*waiting)
        assert await blocker is True
    finally:
        batcher.close()
    assert len(set(ids)) == 20  # twenty respondents, each told its own id
    assert count_respondents(repository) == 20
    assert batches[0] == 1 and batches[1] == 20  # the queued twenty: one transaction


async def test_a_failing_unit_is_rolled_back_alone(repository: Repository) -> None:
    gate = threading.Event()
    batcher = WriteBatcher(repository, workers=1)

    def half_done_then_fails(uow: UnitOfWork) -> None:
        uow.respondent("f".ljust(64, "0"), "web")
        raise ValueError("bug in this unit")

    try:
        blocker = asyncio.ensure_future(batcher.run(lambda uow: gate.wait(5)))
        await asyncio.sleep(0.05)
        before = asyncio.ensure_future(batcher.run(make_respondent("a")))
        failing = asyncio.ensure_future(batcher.run(half_done_then_fails))
        after = asyncio.ensure_future(batcher.run(make_respondent("b")))
        await asyncio.sleep(0.05)
        gate.set()
        await blocker
        assert isinstance(await before, int)
        with pytest.raises(ValueError, match="bug in this unit"):
            await failing
        assert isinstance(await after, int)
    finally:
        batcher.close()
    assert count_respondents(repository) == 2  # the failed unit left nothing behind


async def test_close_finishes_what_is_queued_and_then_refuses(repository: Repository) -> None:
    batcher = WriteBatcher(repository, workers=2)
    pending = [asyncio.ensure_future(batcher.run(make_respondent(f"c{n}"))) for n in range(10)]
    await asyncio.sleep(0)  # queued
    await asyncio.to_thread(batcher.close)
    assert len(set(await asyncio.gather(*pending))) == 10
    with pytest.raises(RuntimeError, match="closed"):
        await batcher.run(make_respondent("late"))


def test_bad_sizes_are_refused(repository: Repository) -> None:
    with pytest.raises(ValueError):
        WriteBatcher(repository, workers=0)
    with pytest.raises(ValueError):
        WriteBatcher(repository, max_batch=0)
