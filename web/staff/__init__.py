"""The staff app under /staff: accounts and login (`accounts`), the review queue (`review`).

`setup_staff(app)` is called by `web.app.create_app`; it installs the staff
middleware (sessions, CSRF) and registers every /staff route.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from datetime import timedelta

from aiohttp import web

from storage.staff import delete_expired_sessions
from web.keys import SCHEDULER, SETTINGS
from web.staff.accounts import setup_accounts
from web.staff.auth import STAFF_KEY, STAFF_NAV, STAFF_SERVER_SECRET, staff_middleware
from web.staff.broadcasts import setup_broadcast_progress
from web.staff.campaigns import setup_campaigns
from web.staff.reports import setup_reports
from web.staff.review import setup_review
from web.staff.surveys import setup_surveys

log = logging.getLogger("besafe.web.staff")


def setup_staff(app: web.Application) -> None:
    """Register everything under /staff. Needs SETTINGS, aiohttp_jinja2 and REPOSITORY."""
    app.middlewares.append(staff_middleware)
    app[STAFF_NAV] = []
    secret = app[SETTINGS].secret_bytes()
    app[STAFF_SERVER_SECRET] = secret
    app[STAFF_KEY] = hmac.new(secret, b"besafe staff csrf v1", hashlib.sha256).digest()
    # On the scheduler's leader; grace of one interval, coalesced (one sweep does it all).
    app[SCHEDULER].every(
        "staff-session-sweep",
        SESSION_SWEEP_SECONDS,
        lambda: _sweep_sessions(app),
        grace=int(SESSION_SWEEP_SECONDS),
        coalesce=True,
    )
    setup_accounts(app)
    setup_review(app)
    setup_reports(app)
    setup_surveys(app)
    setup_campaigns(app)
    setup_broadcast_progress(app)


SESSION_SWEEP_SECONDS = 600.0


def _sweep_sessions(app: web.Application) -> int:
    """Delete expired staff sessions (an expired one is refused anyway); how many."""
    from web.app import REPOSITORY

    idle = timedelta(minutes=app[SETTINGS].staff_session_idle_minutes)
    count = app[REPOSITORY].run(
        lambda uow: delete_expired_sessions(uow.connection, now=uow.now, idle_before=uow.now - idle)
    )
    if count:
        log.info("expired staff sessions deleted", extra={"count": count})
    return count
