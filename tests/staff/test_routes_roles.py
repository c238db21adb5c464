"""Every /staff route, for every role and for an anonymous visitor (table-driven).

The routes are read from the app's router, so a route added later (the review
queue's too) is checked without touching this file. Each handler must declare
who may use it (`require_role(...)` or `public`); then:

- anonymous: GET -> redirect to the login page (401 for an event stream), other
  methods -> 401;
- a role not allowed -> 403 (logged and audited);
- an allowed role -> neither 401 nor 403, and never a server error.

Path parameters are filled with an id that does not exist, and forms carry only
a valid CSRF token, so nothing is changed by walking the table.
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from storage.audit import audit_entries
from storage.repository import Repository
from tests.staff.conftest import StaffSession, login_as, page_csrf
from web.staff.auth import ROLES

ANONYMOUS = "anonymous"
MISSING_ID = "987654"
# Logging out ends the session the walk uses; it is checked on its own below.
WALK_LAST = {("POST", "/staff/logout")}
_PARAM = re.compile(r"\{([^}:]+)(?::[^}]*)?\}")


@dataclass(frozen=True)
class StaffRoute:
    method: str
    path: str  # with parameters filled in
    pattern: str
    handler: object

    @property
    def roles(self) -> frozenset[str] | None:
        return getattr(self.handler, "__staff_roles__", None)

    @property
    def public(self) -> bool:
        return bool(getattr(self.handler, "__staff_public__", False))


def staff_routes(app: web.Application) -> list[StaffRoute]:
    found = []
    for route in app.router.routes():
        if route.method == "HEAD" or route.resource is None:
            continue
        pattern = route.resource.canonical
        if not (pattern == "/staff" or pattern.startswith("/staff/")):
            continue
        path = _PARAM.sub(MISSING_ID, pattern)
        found.append(StaffRoute(route.method, path, pattern, route.handler))
    return sorted(found, key=lambda r: ((r.method, r.pattern) in WALK_LAST, r.pattern, r.method))


async def request(client: TestClient, route: StaffRoute, csrf: str, *, stream: bool = False) -> int:
    headers = {"Accept": "text/event-stream"} if stream else {}
    if route.method == "GET":
        call = client.get(route.path, allow_redirects=False, headers=headers)
    else:
        call = client.request(
            route.method, route.path, data={"csrf_token": csrf}, allow_redirects=False
        )
    response = await asyncio.wait_for(call, timeout=30)
    try:
        if response.status == 302:
            assert response.headers["Location"].startswith(("/staff/login?next=", "/staff/")), (
                response.headers["Location"]
            )
        return response.status
    finally:
        response.close()


def test_every_staff_route_declares_who_may_use_it(staff_client: TestClient) -> None:
    routes = staff_routes(staff_client.app)
    patterns = {r.pattern for r in routes}
    assert {"/staff/", "/staff/login", "/staff/users", "/staff/account"} <= patterns
    undeclared = [f"{r.method} {r.pattern}" for r in routes if r.roles is None]
    assert undeclared == []
    for route in routes:
        assert route.public or route.roles, f"{route.method} {route.pattern} allows nobody"
        assert set(route.roles or ()) <= set(ROLES)


async def test_every_route_for_every_role(staff_client: TestClient, repository: Repository) -> None:
    routes = staff_routes(staff_client.app)
    outcomes: dict[tuple[str, str, str], int] = {}
    anonymous_csrf = await page_csrf(staff_client)
    for route in routes:
        key = (ANONYMOUS, route.method, route.pattern)
        outcomes[key] = await request(staff_client, route, anonymous_csrf)
    for role in ROLES:
        session: StaffSession = await login_as(staff_client, role)
        for route in routes:
            outcomes[(role, route.method, route.pattern)] = await request(
                staff_client, route, session.csrf_token
            )
        # Walking may have ended the session (logout is walked last): start clean.
        staff_client.session.cookie_jar.clear()

    problems = []
    for (who, method, pattern), status in sorted(outcomes.items()):
        route = next(r for r in routes if r.method == method and r.pattern == pattern)
        if status >= 500:
            problems.append(f"{who} {method} {pattern}: server error {status}")
        elif route.public:
            # Login pages: an empty login form fails (401), which is not a role check.
            if status == 403:
                problems.append(f"{who} {method} {pattern}: public page gave {status}")
        elif who == ANONYMOUS:
            expected = 302 if method == "GET" else 401
            if status != expected:
                problems.append(f"{who} {method} {pattern}: {status}, expected {expected}")
        elif who not in (route.roles or ()):
            if status != 403:
                problems.append(f"{who} {method} {pattern}: {status}, expected 403")
        elif status in (401, 403):
            problems.append(f"{who} {method} {pattern}: {status} for an allowed role")
    assert problems == []

    # Every 403 was audited, with who, what and from where.
    denied = [
        e
        for e in repository.run(lambda uow: audit_entries(uow.connection, limit=10000))
        if e.action == "access.denied"
    ]
    expected_denials = sum(
        1 for (who, _m, _p), status in outcomes.items() if who != ANONYMOUS and status == 403
    )
    assert len(denied) == expected_denials > 0
    assert all(e.actor_id is not None and e.address == "127.0.0.1" for e in denied)


async def test_an_anonymous_event_stream_gets_401_not_a_redirect(
    staff_client: TestClient,
) -> None:
    for route in staff_routes(staff_client.app):
        if route.method == "GET" and not route.public:
            assert await request(staff_client, route, "", stream=True) == 401, route.pattern


@pytest.mark.parametrize("role", ["facilitator", "board_viewer", "safeguarding_lead"])
async def test_a_wrong_role_gets_a_403_page_that_is_logged_and_audited(
    staff_client: TestClient,
    repository: Repository,
    caplog: pytest.LogCaptureFixture,
    role: str,
) -> None:
    session = await login_as(staff_client, role)
    caplog.set_level(logging.WARNING, logger="besafe")
    response = await staff_client.get("/staff/users")
    assert response.status == 403
    assert "Not allowed" in await response.text()
    entry = repository.run(lambda uow: audit_entries(uow.connection, limit=1))[0]
    assert entry.action == "access.denied"
    assert entry.actor_id == session.user.id
    assert entry.target == "/staff/users"
    assert entry.address == "127.0.0.1"
    assert entry.details == {"method": "GET", "role": role}
    records = [r for r in caplog.records if r.getMessage() == "staff access refused: wrong role"]
    assert len(records) == 1
    assert records[0].__dict__["staff_user_id"] == session.user.id
    assert records[0].__dict__["path"] == "/staff/users"
