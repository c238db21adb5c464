"""Queueing and sending broadcasts inside the server: `broadcast_jobs`, a cleanup context.

Until the scheduler (APScheduler, one leader per database) takes the queueing job over,
every server process queues due invitations and reminders every
BROADCAST_CHECK_SECONDS (idempotent, so several processes doing it is harmless) and,
when the Telegram channel runs, sends them (`bot.broadcasts.BroadcastSender`; rows are
claimed, so several processes never send the same row).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import suppress
from datetime import datetime

from aiohttp import web

from bot.broadcasts import BroadcastSender, enqueue_due_broadcasts, quiet_hours
from bot.telegram.setup import TELEGRAM
from config.settings import Settings
from storage.batching import WriteBatcher
from storage.clock import utcnow
from storage.repository import Repository
from web.keys import SETTINGS, WRITES

log = logging.getLogger("besafe.broadcasts")


async def broadcast_jobs(app: web.Application) -> AsyncIterator[None]:
    """Start queueing (and, with Telegram, sending) after the core and the channel."""
    from web.app import REPOSITORY  # the composition root owns the key

    settings = app[SETTINGS]
    from web.app import CATALOGUE

    catalogue = app[CATALOGUE]
    tasks = [
        asyncio.create_task(
            enqueue_loop(app[REPOSITORY], settings, catalogue.refresh), name="broadcast-queue"
        )
    ]
    if settings.telegram_token is not None:
        tasks.append(asyncio.create_task(_send(app, settings, app[WRITES]), name="broadcasts"))
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with suppress(asyncio.CancelledError):
                await task


async def enqueue_loop(
    repository: Repository, settings: Settings, refresh: Callable[[datetime], object]
) -> None:
    while True:
        try:
            report = await asyncio.to_thread(enqueue_due_broadcasts, repository, utcnow(), settings)
            if report.invitations:
                # An invitation's link must work at once, not at the next catalogue refresh.
                await asyncio.to_thread(refresh, utcnow())
        except Exception:
            log.exception("queueing broadcasts failed")
        await asyncio.sleep(settings.broadcast_check_seconds)


async def _send(app: web.Application, settings: Settings, writes: WriteBatcher) -> None:
    state = app[TELEGRAM]
    while state.channel is None:  # the channel starts once Telegram answers
        await asyncio.sleep(0.5)
    channel = state.channel
    sender = BroadcastSender(
        channel.bot,
        writes,
        secret=settings.secret_bytes(),
        rate=settings.broadcast_rate_per_second,
        quiet=quiet_hours(settings),
        budget=channel.sender.budget,
        bot_username=channel.bot.username,
    )
    log.info(
        "broadcast sender started",
        extra={"rate": settings.broadcast_rate_per_second, "claimer": sender.claimer},
    )
    await sender.run()
