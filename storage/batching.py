"""Group commit: units of work from the event loop, several to a transaction.

The dispatcher's unit of work for one inbound message is small (a handful of
statements); on SQLite, opening and committing its transaction costs about as
much again. Under load, messages queue for the database thread anyway, so the
batcher runs everything queued at that moment in ONE transaction, each unit in
its own savepoint:

- a unit is still all-or-nothing: if it raises, its savepoint is rolled back,
  its caller gets the exception, and the other units of the batch go on;
- nobody is answered before the transaction holding their unit has committed,
  so a reply is never sent for writes that could still be lost;
- a busy or locked database retries the whole batch (see `Repository.run_batch`),
  so every unit must be safe to run again, as for `Repository.run`.

With no queue (light load) a batch is one unit, exactly like `Repository.run`.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from storage.repository import Repository, UnitOfWork

log = logging.getLogger("besafe.storage")

T = TypeVar("T")


@dataclass
class _Job:
    work: Callable[[UnitOfWork], Any]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Any]


def _settle(future: asyncio.Future[Any], ok: bool, value: Any) -> None:
    if future.cancelled():
        return
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)


class WriteBatcher:
    """Runs units of work on `workers` threads, up to `max_batch` per transaction.

    SQLite takes one writer at a time: use one worker. PostgreSQL: several
    workers, each batching what it finds queued.
    """

    def __init__(self, repository: Repository, *, workers: int = 1, max_batch: int = 32) -> None:
        if workers < 1 or max_batch < 1:
            raise ValueError("workers and max_batch must be at least 1")
        self._repository = repository
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._threads = [
            threading.Thread(target=self._serve, name=f"besafe-db-{n}", daemon=True)
            for n in range(workers)
        ]
        self._closed = False
        for thread in self._threads:
            thread.start()

    async def run(self, work: Callable[[UnitOfWork], T]) -> T:
        """Run `work` in a transaction (with others); its result once committed."""
        if self._closed:
            raise RuntimeError("the write batcher is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.put(_Job(work, loop, future))
        return await future

    def close(self) -> None:
        """Finish what is queued, then stop the threads (waits for them)."""
        if self._closed:
            return
        self._closed = True
        for _ in self._threads:
            self._queue.put(None)
        for thread in self._threads:
            thread.join()

    def _serve(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            batch = [job]
            stop = False
            while len(batch) < self._max_batch:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                    break
                batch.append(more)
            self._run(batch)
            if stop:
                return

    def _run(self, batch: list[_Job]) -> None:
        try:
            outcomes = self._repository.run_batch([job.work for job in batch])
        except BaseException as error:  # the whole batch failed (e.g. busy too long)
            outcomes = [(False, error)] * len(batch)
        for job, (ok, value) in zip(batch, outcomes, strict=True):
            try:
                job.loop.call_soon_threadsafe(_settle, job.future, ok, value)
            except RuntimeError:  # that event loop has closed: nobody is waiting
                log.warning("a unit of work finished after its event loop closed")
