"""Background tasks of a cleanup context: stopping them the one way."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from contextlib import suppress


async def cancel_and_wait(tasks: Iterable[asyncio.Task]) -> None:
    """Cancel every task, then wait for each to finish (their cancellation is expected)."""
    tasks = list(tasks)
    for task in tasks:
        task.cancel()
    for task in tasks:
        with suppress(asyncio.CancelledError):
            await task
