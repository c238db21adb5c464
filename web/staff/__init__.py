"""The staff app under /staff: accounts and login (`accounts`), the review queue (`review`).

`setup_staff(app)` is called by `web.app.create_app`; it installs the staff
middleware (sessions, CSRF) and registers every /staff route.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
from collections.abc import AsyncIterator
from contextlib import suppress
from datetime import timedelta

from aiohttp import web

from storage.staff import delete_expired_sessions
from web.keys import SETTINGS
from web.staff.accounts import setup_accounts
from web.staff.auth import STAFF_KEY, STAFF_NAV, STAFF_SERVER_SECRET, staff_middleware
from web.staff.broadcasts import setup_broadcast_progress
from web.staff.reports import setup_reports
from web.staff.review import setup_review

log = logging.getLogger("besafe.web.staff")


def setup_staff(app: web.Application) -> None:
    """Register everything under /staff. Needs SETTINGS, aiohttp_jinja2 and REPOSITORY."""
    app.middlewares.append(staff_middleware)
    app[STAFF_NAV] = []
    secret = app[SETTINGS].secret_bytes()
    app[STAFF_SERVER_SECRET] = secret
    app[STAFF_KEY] = hmac.new(secret, b"besafe staff csrf v1", hashlib.sha256).digest()
    app.cleanup_ctx.append(_session_sweeper)
    setup_accounts(app)
    setup_review(app)
    setup_reports(app)
    setup_broadcast_progress(app)


SESSION_SWEEP_SECONDS = 600.0


async def _session_sweeper(app: web.Application) -> AsyncIterator[None]:
    """Delete expired staff sessions now and then (an expired one is refused anyway)."""
    task = asyncio.create_task(_sweep_sessions(app))
    try:
        yield
    finally:
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task


async def _sweep_sessions(app: web.Application) -> None:
    from web.app import REPOSITORY

    settings = app[SETTINGS]
    idle = timedelta(minutes=settings.staff_session_idle_minutes)
    while True:
        try:
            count = await asyncio.to_thread(
                app[REPOSITORY].run,
                lambda uow: delete_expired_sessions(
                    uow.connection, now=uow.now, idle_before=uow.now - idle
                ),
            )
            if count:
                log.info("expired staff sessions deleted", extra={"count": count})
        except Exception:
            log.exception("staff session sweep failed")
        await asyncio.sleep(SESSION_SWEEP_SECONDS)
