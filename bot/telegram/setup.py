"""Wiring the Telegram channel into the aiohttp app: `setup_telegram(app)`.

One process, one event loop: python-telegram-bot's Application is initialised and
started inside the app's lifecycle (after the core: database, dispatcher), with no
Updater of its own. Updates arrive either by our long-polling loop or by our
webhook route, which checks the secret header, the size and the JSON before the
Application sees anything, and answers only once the update is handled.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
from collections.abc import AsyncIterator
from contextlib import suppress
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from aiohttp import web
from telegram.ext import Application

from bot.dispatcher import Dispatcher
from bot.telegram.channel import POLL_TIMEOUT, TelegramChannel, WebhookReply, webhook_secret
from bot.telegram.request import AiohttpRequest
from bot.telegram.sender import Sender
from bot.telegram.translate import NotUnderstood, translate_data
from config.settings import Settings
from storage.clock import utcnow
from web.keys import DISPATCHER, RELAY, SETTINGS, WRITES

log = logging.getLogger("besafe.telegram")

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
MAX_UPDATE_BYTES = 256 * 1024
SEND_CONNECTIONS = 32  # Bot API connections for sending (the sender keeps to this many calls)
# Old outbox rows are purged by the scheduled retention job (storage/retention.py).


@dataclass
class TelegramState:
    """What the webhook route needs; `channel` is set once the channel is ready."""

    channel: TelegramChannel | None = None
    secret_token: str = ""


TELEGRAM = web.AppKey("telegram", TelegramState)


def setup_telegram(app: web.Application) -> None:
    """Add the Telegram channel when a token is set (else say, once, that there is none)."""
    settings = app[SETTINGS]
    state = TelegramState()
    app[TELEGRAM] = state
    if settings.telegram_token is not None and settings.telegram_mode == "webhook":
        app.router.add_post(settings.telegram_webhook_path, webhook, name="telegram-webhook")
    app.cleanup_ctx.append(_lifecycle)


def build_application(settings: Settings) -> Application:
    assert settings.telegram_token is not None
    return (
        Application.builder()
        .token(settings.telegram_token.get_secret_value())
        .base_url(settings.telegram_api_url)
        .updater(None)
        .request(AiohttpRequest(connections=SEND_CONNECTIONS))
        .get_updates_request(AiohttpRequest(connections=1, read_timeout=POLL_TIMEOUT + 15))
        .build()
    )


async def _lifecycle(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    if settings.telegram_token is None:
        log.info("no Telegram token configured: web chat only")
        yield
        return
    if settings.telegram_mode == "webhook" and not settings.telegram_webhook_url:
        log.error("BESAFE_TELEGRAM_MODE=webhook needs BESAFE_TELEGRAM_WEBHOOK_URL: no Telegram")
        yield
        return
    secret = settings.secret_bytes()
    dispatcher = app[DISPATCHER]
    assert isinstance(dispatcher, Dispatcher)
    writes = app[WRITES]
    application = build_application(settings)
    sender = Sender(
        application.bot,
        writes,
        rate=settings.telegram_rate_per_second,
        chat_rate=settings.telegram_chat_rate_per_second,
        chat_burst=settings.telegram_chat_burst,
        in_flight=SEND_CONNECTIONS,
    )
    webhook = settings.telegram_mode == "webhook"
    channel = TelegramChannel(
        application=application,
        dispatcher=dispatcher,
        writes=writes,
        secret=secret,
        sender=sender,
        uses_inbox=not webhook,
    )
    state = app[TELEGRAM]
    state.secret_token = (
        settings.telegram_webhook_secret.get_secret_value()
        if settings.telegram_webhook_secret is not None
        else webhook_secret(secret)
    )
    app[RELAY].register("telegram", channel.deliver)
    runner = asyncio.create_task(_run(channel, state, settings, webhook), name="telegram")
    try:
        yield
    finally:
        runner.cancel()
        with suppress(asyncio.CancelledError):
            await runner
        state.channel = None
        await channel.close()
        if application.running:
            await application.stop()
        with suppress(Exception):
            await application.shutdown()
        log.info("telegram channel stopped")


async def _run(
    channel: TelegramChannel, state: TelegramState, settings: Settings, webhook: bool
) -> None:
    """Start the Application (retrying while Telegram is unreachable), recover, then poll."""
    started = utcnow()
    failures = 0
    while True:
        try:
            await channel.application.initialize()
            await channel.application.start()
            await channel.announce(
                webhook_url=settings.telegram_webhook_url if webhook else None,
                secret_token=state.secret_token if webhook else None,
            )
            break
        except Exception as error:
            failures += 1
            log.warning("telegram not reachable yet", extra={"error": str(error)[:200]})
            await asyncio.sleep(min(60.0, 2.0 ** min(failures, 6)))
    try:
        await channel.recover(started, timedelta(minutes=settings.telegram_resend_window_minutes))
    except Exception:  # the channel still starts: what is left stays stored for next time
        log.exception("telegram recovery failed")
    state.channel = channel
    log.info(
        "telegram channel ready",
        extra={"mode": settings.telegram_mode, "bot": channel.bot.username},
    )
    tasks = [] if webhook else [asyncio.create_task(channel.poll())]
    try:
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


# ---------------------------------------------------------------- the webhook route


async def webhook(request: web.Request) -> web.Response:
    state = request.app[TELEGRAM]
    given = request.headers.get(SECRET_HEADER, "")
    if not state.secret_token or not hmac.compare_digest(
        given.encode("utf-8", "replace"), state.secret_token.encode()
    ):
        log.warning("telegram webhook: wrong or missing secret")
        return web.Response(status=401, text="unauthorized")
    length = request.content_length
    if length is not None and length > MAX_UPDATE_BYTES:
        return web.Response(status=413, text="too large")
    body = bytearray()
    async for chunk in request.content.iter_chunked(64 * 1024):
        body += chunk
        if len(body) > MAX_UPDATE_BYTES:
            return web.Response(status=413, text="too large")
    try:
        data: Any = json.loads(body)
    except (ValueError, RecursionError):
        return web.Response(status=400, text="bad json")
    if not isinstance(data, dict) or type(data.get("update_id")) is not int:
        return web.Response(status=400, text="not an update")
    channel = state.channel
    if channel is None:
        return web.Response(status=503, text="starting", headers={"Retry-After": "5"})
    # Straight from the JSON to our values (no PTB Update, no Application.process_update):
    # that parsing was the largest part of the event loop's time per update.
    try:
        incoming = translate_data(data, channel.key)
    except NotUnderstood:  # a shape the Bot API does not send: sending it again would not help
        log.warning("telegram webhook: update not understood; ignored")
        return web.Response(status=200, text="ignored")
    reply = WebhookReply()
    if not await channel.process_data(data["update_id"], incoming, reply):
        return web.Response(status=500, text="not handled; send again")
    if reply.call is not None:  # e.g. the tap's answer: Telegram makes that call itself
        return web.json_response(reply.call)
    return web.Response(status=200, text="ok")
