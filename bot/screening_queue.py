"""Stage 2 screening off the event loop: a micro-batcher in front of `SemanticStage`.

The sentence-embedding model costs a few milliseconds per message, and much less per message
when messages are embedded together. `SemanticQueue.score` may be awaited by many respondents'
handlers at once: their texts are gathered (up to `max_batch`, waiting at most `max_wait_ms`
after the first) and scored in ONE call of `score_many` on ONE dedicated thread
(`besafe-semantic`), so the event loop never runs the model and the model never runs twice at
once. If the model raises, only the callers of that batch get a `SemanticScreeningError`; the
queue carries on with the next batch.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from moderation.semantic import SemanticHit

log = logging.getLogger("besafe.screening")


class SemanticScorer(Protocol):
    def score_many(self, texts: Sequence[str]) -> list[SemanticHit | None]: ...


class SemanticScreeningError(RuntimeError):
    """Stage 2 failed for this message; the caller decides (stage 1's result still stands)."""


@dataclass
class _Job:
    text: str
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[SemanticHit | None]


def _settle(future: asyncio.Future[Any], ok: bool, value: Any) -> None:
    if future.cancelled():
        return
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)


def _failure(cause: Exception) -> SemanticScreeningError:
    failure = SemanticScreeningError(f"semantic screening failed: {cause!r}")
    failure.__cause__ = cause
    return failure


class SemanticQueue:
    """Batches concurrent `score` calls into `stage.score_many` on one thread."""

    def __init__(self, stage: SemanticScorer, max_batch: int = 32, max_wait_ms: float = 5) -> None:
        if max_batch < 1 or max_wait_ms < 0:
            raise ValueError("max_batch must be at least 1 and max_wait_ms at least 0")
        self._stage = stage
        self._max_batch = max_batch
        self._max_wait = max_wait_ms / 1000
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._closed = False
        self._thread = threading.Thread(target=self._serve, name="besafe-semantic", daemon=True)
        self._thread.start()

    async def score(self, text: str) -> SemanticHit | None:
        """Stage 2's hit for `text`, or None; `SemanticScreeningError` if the model failed."""
        if self._closed:
            raise RuntimeError("the semantic queue is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[SemanticHit | None] = loop.create_future()
        self._queue.put(_Job(text, loop, future))
        return await future

    def close(self) -> None:
        """Score everything already queued, then stop the thread (waits for it)."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(None)
        self._thread.join()

    def _serve(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            batch, stop = self._gather(job)
            self._run(batch)
            if stop:
                return

    def _gather(self, first: _Job) -> tuple[list[_Job], bool]:
        """`first` and whatever else arrives within max_wait of it, up to max_batch."""
        batch = [first]
        deadline = time.monotonic() + self._max_wait
        while len(batch) < self._max_batch:
            remaining = deadline - time.monotonic()
            try:
                if remaining > 0:
                    more = self._queue.get(timeout=remaining)
                else:
                    more = self._queue.get_nowait()
            except queue.Empty:
                break
            if more is None:
                # A stop sentinel (close()): whatever was queued before it is in the batch.
                return batch, True
            batch.append(more)
        return batch, False

    def _run(self, batch: list[_Job]) -> None:
        # A caller that gave up (its timeout passed while the queue was busy) is not scored:
        # under overload the queue sheds abandoned work instead of falling further behind.
        # (Reading another loop's future from here may be stale; then it is scored anyway.)
        batch = [job for job in batch if not job.future.cancelled()]
        if not batch:
            return
        started = time.perf_counter()
        try:
            hits = self._stage.score_many([job.text for job in batch])
            if len(hits) != len(batch):
                raise ValueError(f"score_many gave {len(hits)} results for {len(batch)} texts")
            outcomes: list[tuple[bool, Any]] = [(True, hit) for hit in hits]
        except Exception as error:
            log.exception(
                "semantic screening failed for a batch",
                extra={"event": "semantic_batch_failed", "batch": len(batch)},
            )
            outcomes = [(False, _failure(error)) for _ in batch]
        else:
            log.debug(
                "semantic batch scored",
                extra={
                    "event": "semantic_batch",
                    "batch": len(batch),
                    "ms": round((time.perf_counter() - started) * 1000, 2),
                },
            )
        for job, (ok, value) in zip(batch, outcomes, strict=True):
            try:
                job.loop.call_soon_threadsafe(_settle, job.future, ok, value)
            except RuntimeError:  # that event loop has closed: nobody is waiting
                log.warning("a semantic score finished after its event loop closed")
