"""Queueing and sending broadcasts inside the server: `broadcast_jobs`, a cleanup context.

Queueing due invitations and reminders is a scheduled job (`broadcasts`, every
BROADCAST_CHECK_SECONDS, on the scheduler's one leader; idempotent, no grace: it catches
up to now). Sending runs in every process where the Telegram channel runs
(`bot.broadcasts.BroadcastSender`; rows are claimed, so several processes never send the
same row).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from bot.broadcasts import BroadcastSender, enqueue_due_broadcasts, quiet_hours
from bot.telegram.setup import TELEGRAM
from config.settings import Settings
from storage.batching import WriteBatcher
from storage.clock import utcnow
from web.keys import SCHEDULER, SETTINGS, WRITES
from web.tasks import cancel_and_wait

log = logging.getLogger("besafe.broadcasts")


async def broadcast_jobs(app: web.Application) -> AsyncIterator[None]:
    """Declare the queueing job; start sending (with Telegram) after the core and the channel."""
    from web.app import CATALOGUE, REPOSITORY  # the composition root owns the keys

    settings = app[SETTINGS]
    repository = app[REPOSITORY]
    catalogue = app[CATALOGUE]

    def queue_due() -> None:
        report = enqueue_due_broadcasts(repository, utcnow(), settings)
        if report.invitations:
            # An invitation's link must work at once, not at the next catalogue refresh.
            catalogue.refresh(utcnow())

    app[SCHEDULER].every(
        "broadcasts", settings.broadcast_check_seconds, queue_due, grace=None, coalesce=True
    )
    tasks = []
    if settings.telegram_token is not None:
        tasks.append(asyncio.create_task(_send(app, settings, app[WRITES]), name="broadcasts"))
    try:
        yield
    finally:
        await cancel_and_wait(tasks)


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
