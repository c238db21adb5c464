"""Who is asking, and may they: staff sessions, roles, CSRF, and the pieces every page uses.

The contract other staff modules code against:

- `StaffUser`, `ROLES`;
- `@require_role(*roles)` on every `/staff` handler (or `@public` for the login
  pages): anonymous -> redirect to /staff/login (401 for non-GET and event
  streams); a wrong role -> 403 page, a warning log line and an audit entry.
  The allowed roles are kept on the handler as `__staff_roles__`;
- `current_user(request)`, `client_address(request)`, `csrf_token(request)`,
  `render(request, template, context)`, `run_db(request, work)`;
- `register_nav(app, label, href, roles)`: a link in the staff layout's menu.

`staff_middleware` (installed by `setup_staff`) runs for every `/staff` path:
it loads the session (one read; idle and absolute expiry), refuses any
non-GET request without a valid CSRF token (form field `csrf_token` or header
`X-CSRF-Token`), and sets or clears cookies afterwards.

Sessions live server-side (`staff_sessions`), keyed by the SHA-256 of the
cookie's random token. The cookie is HttpOnly, SameSite=Lax, path /staff, and
Secure when the settings say so or the request came over HTTPS. A login always
makes a new token (nothing a browser brought with it is ever promoted), so a
planted session id is useless (session fixation).

CSRF tokens are HMAC(server key, cookie token): tied to the session (or, before
login, to a random pre-login cookie), so they need no storage and change with
every login.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import hmac
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar
from urllib.parse import quote

import aiohttp_jinja2
from aiohttp import web

from config.settings import Settings
from storage.audit import append_audit
from storage.repository import Repository, UnitOfWork
from storage.staff import (
    StaffSessionRecord,
    StaffUserRecord,
    create_session,
    delete_session,
    session_and_user,
    touch_session,
)
from storage.tables_staff import STAFF_ROLES
from web.keys import SETTINGS

log = logging.getLogger("besafe.web.staff")

T = TypeVar("T")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

ROLES: tuple[str, ...] = STAFF_ROLES
ROLE_LABELS: dict[str, str] = {
    "admin": "Administrator",
    "safeguarding_lead": "Safeguarding lead",
    "facilitator": "Facilitator",
    "board_viewer": "Board viewer",
}

SESSION_COOKIE = "besafe_staff"
PRELOGIN_COOKIE = "besafe_staff_pre"
COOKIE_PATH = "/staff"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
LOGIN_PATH = "/staff/login"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# last_seen_at is written at most this often (idle expiry is measured in minutes).
TOUCH_EVERY = timedelta(seconds=60)
_TOKEN_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")

STAFF_KEY = web.AppKey("staff_key", bytes)  # HMAC key for CSRF tokens
STAFF_SERVER_SECRET = web.AppKey("staff_server_secret", bytes)  # seals TOTP secrets


@dataclass(frozen=True)
class StaffUser:
    id: int
    username: str
    role: str


@dataclass(frozen=True)
class NavItem:
    label: str
    href: str
    roles: frozenset[str]


STAFF_NAV = web.AppKey("staff_nav", list)


@dataclass
class StaffContext:
    """What the middleware found out about this request's staff session."""

    token: str | None = None
    session: StaffSessionRecord | None = None
    record: StaffUserRecord | None = None
    set_prelogin: str | None = None  # a new pre-login token to send as a cookie
    set_session: str | None = None  # a new session token to send as a cookie
    clear_session: bool = False
    # Set by require_role(..., stages=) for a half-logged-in user it lets in (2FA enrolment).
    granted: StaffUser | None = None

    @property
    def user(self) -> StaffUser | None:
        """The logged-in user, only once every factor is done (or as granted)."""
        if self.granted is not None:
            return self.granted
        return self.user_at(("full",))

    def user_at(self, stages: tuple[str, ...]) -> StaffUser | None:
        """The user when the session is at one of `stages`."""
        if self.session is None or self.record is None or self.session.stage not in stages:
            return None
        return StaffUser(self.record.id, self.record.username, self.record.role)


# aiohttp >= 3.13 has typed request keys; a plain string before that.
_CONTEXT: Any = (
    web.RequestKey("besafe_staff_context", StaffContext)  # type: ignore[attr-defined]
    if hasattr(web, "RequestKey")
    else "besafe_staff_context"
)


# ---------------------------------------------------------------- small helpers


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return secrets.token_urlsafe(32)


def _looks_like_token(value: str | None) -> bool:
    return value is not None and 32 <= len(value) <= 64 and set(value) <= _TOKEN_CHARS


def staff_context(request: web.Request) -> StaffContext:
    context = request.get(_CONTEXT)
    if context is None:
        context = StaffContext()
        request[_CONTEXT] = context
    assert isinstance(context, StaffContext)
    return context


def current_user(request: web.Request) -> StaffUser:
    """The logged-in user (inside a `require_role` handler)."""
    user = staff_context(request).user
    if user is None:
        raise RuntimeError("current_user() outside a require_role handler")
    return user


def client_address(request: web.Request) -> str:
    """Where the request came from, for the audit log and the per-address login limit."""
    return (request.remote or "unknown")[:64]


def settings_of(request: web.Request) -> Settings:
    return request.app[SETTINGS]


def repository_of(request: web.Request) -> Repository:
    from web.app import REPOSITORY  # the composition root owns the key

    return request.app[REPOSITORY]


async def run_db(request: web.Request, work: Callable[[UnitOfWork], T]) -> T:
    """`Repository.run(work)` (one transaction) off the event loop."""
    return await asyncio.to_thread(repository_of(request).run, work)


def secure_cookie(request: web.Request) -> bool:
    return settings_of(request).secure_cookies or request.secure


def csrf_for(request: web.Request, token: str) -> str:
    return hmac.new(request.app[STAFF_KEY], b"csrf\0" + token.encode(), "sha256").hexdigest()


def csrf_token(request: web.Request) -> str:
    """The CSRF token for forms on this page (made with a pre-login cookie when needed)."""
    context = staff_context(request)
    if context.set_session is not None:
        return csrf_for(request, context.set_session)
    if context.token is not None and context.session is not None:
        return csrf_for(request, context.token)
    if context.set_prelogin is None:
        existing = request.cookies.get(PRELOGIN_COOKIE)
        if _looks_like_token(existing):
            assert existing is not None
            return csrf_for(request, existing)
        context.set_prelogin = new_token()
    return csrf_for(request, context.set_prelogin)


def _csrf_valid(request: web.Request, given: str) -> bool:
    if not given:
        return False
    candidates = [request.cookies.get(SESSION_COOKIE), request.cookies.get(PRELOGIN_COOKIE)]
    return any(
        _looks_like_token(token) and hmac.compare_digest(csrf_for(request, token or ""), given)
        for token in candidates
    )


def safe_next(value: str | None) -> str:
    """A same-site /staff path to go to after login, never somewhere else."""
    if (
        value
        and (value == "/staff" or value.startswith("/staff/"))
        and not value.startswith("//")
        and "\\" not in value
        and value != LOGIN_PATH
        and len(value) <= 2000
        and all("!" <= char <= "~" for char in value)  # printable ASCII: no CR/LF, no spaces
    ):
        return value
    return "/staff/"


def wants_event_stream(request: web.Request) -> bool:
    return "text/event-stream" in request.headers.get("Accept", "")


# ---------------------------------------------------------------- sessions


def start_session(
    request: web.Request, uow: UnitOfWork, *, user_id: int, stage: str, now: datetime
) -> str:
    """Make a NEW session for `user_id` (inside a transaction) and send its cookie.

    The session the browser came with, if any, is ended: ids are never reused
    across a change of privilege.
    """
    settings = settings_of(request)
    context = staff_context(request)
    if context.token is not None:
        delete_session(uow.connection, hash_token(context.token))
    token = new_token()
    create_session(
        uow.connection,
        token_hash=hash_token(token),
        user_id=user_id,
        stage=stage,
        address=client_address(request),
        now=now,
        expires_at=now + timedelta(hours=settings.staff_session_absolute_hours),
    )
    context.set_session = token
    context.clear_session = False
    return token


def end_session(request: web.Request, uow: UnitOfWork) -> None:
    context = staff_context(request)
    if context.token is not None:
        delete_session(uow.connection, hash_token(context.token))
    context.clear_session = True
    context.set_session = None


def _expired(session: StaffSessionRecord, settings: Settings, now: datetime) -> str | None:
    if session.expires_at <= now:
        return "absolute"
    if session.last_seen_at + timedelta(minutes=settings.staff_session_idle_minutes) <= now:
        return "idle"
    return None


async def _load_session(request: web.Request, context: StaffContext) -> None:
    token = request.cookies.get(SESSION_COOKIE)
    if not _looks_like_token(token):
        if token is not None:
            context.clear_session = True
        return
    assert token is not None
    token_hash = hash_token(token)
    settings = settings_of(request)
    address = client_address(request)

    def work(uow: UnitOfWork) -> tuple[StaffSessionRecord, StaffUserRecord] | str:
        found = session_and_user(uow.connection, token_hash)
        if found is None:
            return "unknown"
        session, record = found
        reason = _expired(session, settings, uow.now)
        if reason is None and not record.active:
            reason = "deactivated"
        if reason is not None:
            delete_session(uow.connection, token_hash)
            append_audit(
                uow.connection,
                actor_id=record.id,
                action="session.expired",
                target=f"staff_user:{record.id}",
                address=address,
                details={"reason": reason},
            )
            return reason
        if uow.now - session.last_seen_at >= TOUCH_EVERY:
            touch_session(uow.connection, token_hash, uow.now)
        return session, record

    result = await run_db(request, work)
    if isinstance(result, str):
        context.clear_session = True
        if result != "unknown":
            log.info("staff session ended", extra={"reason": result})
        return
    context.token = token
    context.session, context.record = result


# ---------------------------------------------------------------- the middleware


@web.middleware
async def staff_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not (request.path == "/staff" or request.path.startswith("/staff/")):
        return await handler(request)
    context = staff_context(request)
    await _load_session(request, context)
    if request.method not in SAFE_METHODS:
        given = request.headers.get(CSRF_HEADER, "")
        if not given and request.content_type in (
            "application/x-www-form-urlencoded",
            "multipart/form-data",
        ):
            form = await request.post()
            value = form.get(CSRF_FIELD)
            given = value if isinstance(value, str) else ""
        if not _csrf_valid(request, given):
            return await _refuse_csrf(request, context)
    try:
        response = await handler(request)
    except web.HTTPException as error:
        _apply_cookies(request, context, error)
        raise
    if not response.prepared:
        _apply_cookies(request, context, response)
    return response


def _apply_cookies(
    request: web.Request, context: StaffContext, response: web.StreamResponse
) -> None:
    secure = secure_cookie(request)
    if context.set_session is not None:
        response.set_cookie(
            SESSION_COOKIE,
            context.set_session,
            path=COOKIE_PATH,
            httponly=True,
            samesite="Lax",
            secure=secure,
        )
        response.del_cookie(PRELOGIN_COOKIE, path=COOKIE_PATH)
    elif context.clear_session:
        response.del_cookie(SESSION_COOKIE, path=COOKIE_PATH)
    if context.set_prelogin is not None and context.set_session is None:
        response.set_cookie(
            PRELOGIN_COOKIE,
            context.set_prelogin,
            path=COOKIE_PATH,
            httponly=True,
            samesite="Strict",
            secure=secure,
        )


async def _refuse_csrf(request: web.Request, context: StaffContext) -> web.StreamResponse:
    record = context.record
    address = client_address(request)
    log.warning(
        "staff request refused: missing or wrong CSRF token",
        extra={
            "path": request.path,
            "method": request.method,
            "address": address,
            "staff_user_id": record.id if record else None,
        },
    )
    await run_db(
        request,
        lambda uow: append_audit(
            uow.connection,
            actor_id=record.id if record else None,
            action="csrf.refused",
            target=request.path[:200],
            address=address,
            details={"method": request.method},
        ),
    )
    if request.method != "GET" and "text/html" not in request.headers.get("Accept", ""):
        response: web.StreamResponse = web.json_response(
            {"error": "csrf", "message": "The form has expired. Reload the page and try again."},
            status=403,
        )
    else:
        response = _page(
            request,
            "staff/error.html",
            {
                "heading": "This form has expired",
                "message": "Reload the page and try again.",
            },
            status=403,
        )
    _apply_cookies(request, context, response)
    return response


# ---------------------------------------------------------------- roles


def public(handler: Handler) -> Handler:
    """Mark a /staff handler that anyone may reach (login pages); checked by the route test."""
    handler.__staff_roles__ = frozenset()  # type: ignore[attr-defined]
    handler.__staff_public__ = True  # type: ignore[attr-defined]
    return handler


def require_role(*roles: str, stages: tuple[str, ...] = ("full",)) -> Callable[[Handler], Handler]:
    """Let only logged-in users with one of `roles` in; see the module docstring.

    `stages` is for the second-factor enrolment page only: it also lets in a
    user whose session waits for enrolment ("enrol").
    """
    unknown = set(roles) - set(ROLES)
    if unknown or not roles:
        raise ValueError(f"unknown or no roles: {sorted(unknown)}")
    allowed = frozenset(roles)

    def decorate(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def guarded(request: web.Request) -> web.StreamResponse:
            context = staff_context(request)
            user = context.user_at(stages)
            if user is None:
                return _anonymous(request)
            if user.role not in allowed:
                return await forbidden(request, user)
            context.granted = user
            return await handler(request)

        guarded.__staff_roles__ = allowed  # type: ignore[attr-defined]
        guarded.__staff_public__ = False  # type: ignore[attr-defined]
        return guarded

    return decorate


def _anonymous(request: web.Request) -> web.StreamResponse:
    if request.method in ("GET", "HEAD") and not wants_event_stream(request):
        target = request.path_qs
        raise web.HTTPFound(f"{LOGIN_PATH}?next={quote(target, safe='/')}")
    return web.json_response(
        {"error": "login_required", "message": "Log in again to carry on."}, status=401
    )


async def forbidden(request: web.Request, user: StaffUser) -> web.StreamResponse:
    """A 403 page for a logged-in user without the role; logged and audited."""
    address = client_address(request)
    log.warning(
        "staff access refused: wrong role",
        extra={
            "staff_user_id": user.id,
            "role": user.role,
            "path": request.path,
            "method": request.method,
            "address": address,
        },
    )
    await run_db(
        request,
        lambda uow: append_audit(
            uow.connection,
            actor_id=user.id,
            action="access.denied",
            target=request.path[:200],
            address=address,
            details={"method": request.method, "role": user.role},
        ),
    )
    if request.method != "GET" or wants_event_stream(request):
        return web.json_response(
            {"error": "forbidden", "message": "Your role does not allow this."}, status=403
        )
    return render(
        request,
        "staff/error.html",
        {
            "heading": "Not allowed",
            "message": "Your role does not allow this page. The attempt has been recorded.",
        },
        status=403,
    )


# ---------------------------------------------------------------- pages


def register_nav(app: web.Application, label: str, href: str, roles: tuple[str, ...]) -> None:
    """Add a link to the staff menu, shown only to `roles`."""
    app.setdefault(STAFF_NAV, [])
    app[STAFF_NAV].append(NavItem(label, href, frozenset(roles)))


def nav_for(request: web.Request, user: StaffUser | None) -> list[NavItem]:
    if user is None:
        return []
    return [item for item in request.app.get(STAFF_NAV, []) if user.role in item.roles]


def _page(
    request: web.Request, template: str, context: dict[str, Any], *, status: int = 200
) -> web.Response:
    user = staff_context(request).user
    full = {
        "user": user,
        "role_label": ROLE_LABELS.get(user.role, user.role) if user else None,
        "csrf_token": csrf_token(request),
        "nav": nav_for(request, user),
        "current_path": request.path,
        **context,
    }
    return aiohttp_jinja2.render_template(template, request, full, status=status)


def render(
    request: web.Request, template: str, context: dict[str, Any] | None = None, *, status: int = 200
) -> web.Response:
    """Render a staff template with `user`, `csrf_token` and the menu in its context."""
    return _page(request, template, context or {}, status=status)
