"""Typed application state keys (one place, so every module agrees)."""

from __future__ import annotations

from typing import Protocol

from aiohttp import web

from bot.messages import InboundMessage
from bot.relay import Relay
from bot.scheduler import JobScheduler
from config.settings import Settings
from storage.batching import WriteBatcher
from surveys.events import Say


class MessageHandler(Protocol):
    """What the web chat needs from the dispatcher."""

    async def handle(self, inbound: InboundMessage) -> tuple[Say, ...]: ...


SETTINGS = web.AppKey("settings", Settings)
DISPATCHER = web.AppKey("dispatcher", MessageHandler)
RELAY = web.AppKey("relay", Relay)
# The group-commit write queue (storage.batching), for channels that write outside a turn.
WRITES = web.AppKey("writes", WriteBatcher)


class StaffReplies(Protocol):
    """What the web chat needs to show staff replies: (message id, text) after `after`."""

    async def staff_replies(self, user_key: str, after: int) -> list[tuple[int, str]]: ...


# Set by the review queue at start-up (web/staff/review_relay.py); absent: no staff replies.
CHAT_UPDATES = web.AppKey("chat_updates", StaffReplies)

# Scheduled jobs (bot/scheduler.py): made by create_app, so any setup may declare a job.
SCHEDULER = web.AppKey("scheduler", JobScheduler)
