"""Live updates for the review queue: one background task polls the database, many listen.

Flags are made by the dispatcher (any process), so the database is the only
place that knows about them. One task per server reads three high-water marks
(newest flag, newest history entry, newest flag message) every
POLL_SECONDS, and fans out what changed to every
subscriber's queue. A slow subscriber never holds the others up: its queue is
bounded and a full one just misses that event (the next one refreshes the page
anyway).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from contextlib import contextmanager

from aiohttp import web

from storage import review as store
from storage.repository import Repository

log = logging.getLogger("besafe.web.staff.live")

POLL_SECONDS = 1.0
QUEUE_SIZE = 32

Event = tuple[str, dict] | None  # None: the stream should end


class LiveFeed:
    def __init__(self, repository: Repository, *, poll_seconds: float = POLL_SECONDS) -> None:
        self._repository = repository
        self._poll_seconds = poll_seconds
        self._subscribers: set[asyncio.Queue[Event]] = set()
        self._marks: store.Marks | None = None
        self._closed = False

    @contextmanager
    def subscribe(self) -> Iterator[asyncio.Queue[Event]]:
        queue: asyncio.Queue[Event] = asyncio.Queue(QUEUE_SIZE)
        if self._closed:
            queue.put_nowait(None)
        self._subscribers.add(queue)
        try:
            yield queue
        finally:
            self._subscribers.discard(queue)

    @property
    def listeners(self) -> int:
        return len(self._subscribers)

    def close(self) -> None:
        """End every stream (server shutdown)."""
        self._closed = True
        for queue in list(self._subscribers):
            with _full_ok():
                queue.put_nowait(None)

    def publish(self, name: str, data: dict) -> None:
        for queue in list(self._subscribers):
            with _full_ok():
                queue.put_nowait((name, data))

    async def poll_once(self) -> None:
        """Read what changed since the last poll and tell every listener."""
        if self._marks is None:
            self._marks = await asyncio.to_thread(store.read, self._repository, store.current_marks)
            return
        marks = self._marks
        new_marks, new_flags, changed = await asyncio.to_thread(
            store.read, self._repository, lambda connection: store.changes_since(connection, marks)
        )
        self._marks = new_marks
        if new_flags:
            self.publish("flag", {"ids": new_flags})
        if changed:
            self.publish("change", {"ids": sorted(changed)})

    async def run(self) -> None:
        # Polled even while nobody listens (three index lookups a second), so the marks
        # are current when a page subscribes and no flag falls between page and stream.
        while not self._closed:
            try:
                await self.poll_once()
            except Exception:
                log.exception("live feed poll failed")
            await asyncio.sleep(self._poll_seconds)


@contextmanager
def _full_ok() -> Iterator[None]:
    try:
        yield
    except asyncio.QueueFull:
        log.debug("live feed subscriber is behind; an event was dropped")


LIVE_FEED = web.AppKey("review_live_feed", LiveFeed)
