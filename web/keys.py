"""Typed application state keys (one place, so every module agrees)."""

from __future__ import annotations

from typing import Protocol

from aiohttp import web

from bot.messages import InboundMessage
from bot.relay import Relay
from config.settings import Settings
from surveys.events import Say


class MessageHandler(Protocol):
    """What the web chat needs from the dispatcher."""

    async def handle(self, inbound: InboundMessage) -> tuple[Say, ...]: ...


SETTINGS = web.AppKey("settings", Settings)
DISPATCHER = web.AppKey("dispatcher", MessageHandler)
RELAY = web.AppKey("relay", Relay)
