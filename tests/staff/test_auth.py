"""Staff login on the real app, on SQLite and PostgreSQL.

Passwords, generic failure messages with precise logs and audit entries,
lockout per account and per address, session cookies (flags, fixation,
rotation, idle and absolute expiry, logout), CSRF, and the second factor
(enrolment, login, replay, required for leads).
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from http.cookies import SimpleCookie
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient
from markupsafe import escape
from sqlalchemy import select, update

from config.settings import Settings
from storage.audit import audit_entries
from storage.clock import utcnow
from storage.repository import Repository
from storage.tables_staff import audit_log, staff_sessions, staff_users
from tests.staff.conftest import (
    DEFAULT_PASSWORD,
    StaffCredentials,
    create_staff_user,
    csrf_from,
    login_as,
    login_with,
    page_csrf,
    totp_now,
)
from web.keys import SETTINGS
from web.staff.accounts import CODE_FAILED_TEXT, LOGIN_FAILED_TEXT
from web.staff.auth import PRELOGIN_COOKIE, SESSION_COOKIE
from web.staff.totp import code_at


def cookies_set(response: aiohttp.ClientResponse) -> SimpleCookie:
    cookie: SimpleCookie = SimpleCookie()
    for header in response.headers.getall("Set-Cookie", []):
        cookie.load(header)
    return cookie


def actions(repository: Repository) -> list[Any]:
    """Audit entries, oldest first."""
    return list(reversed(repository.run(lambda uow: audit_entries(uow.connection, limit=1000))))


def actions_named(repository: Repository, action: str) -> list[Any]:
    return [entry for entry in actions(repository) if entry.action == action]


def session_cookie(client: TestClient) -> str | None:
    for cookie in client.session.cookie_jar:
        if cookie.key == SESSION_COOKIE:
            return cookie.value
    return None


async def post_login(
    client: TestClient, username: str, password: str, **extra: str
) -> aiohttp.ClientResponse:
    token = await page_csrf(client)
    return await client.post(
        "/staff/login",
        data={"csrf_token": token, "username": username, "password": password, **extra},
        allow_redirects=False,
    )


async def logout(client: TestClient) -> None:
    response = await client.post(
        "/staff/logout", data={"csrf_token": await page_csrf(client, "/staff/")}
    )
    assert response.status == 200


def make_user(client: TestClient, role: str, **options: Any) -> StaffCredentials:
    return create_staff_user(client.app[SETTINGS], role, **options)


@pytest.fixture
async def other_browser(staff_client: TestClient) -> AsyncIterator[aiohttp.ClientSession]:
    """A second browser on the same server (own cookies)."""
    session = aiohttp.ClientSession(
        base_url=str(staff_client.make_url("/")), cookie_jar=aiohttp.CookieJar(unsafe=True)
    )
    try:
        yield session
    finally:
        await session.close()


# ---------------------------------------------------------------- password login


async def test_login_page_has_a_csrf_token_tied_to_a_prelogin_cookie(
    staff_client: TestClient,
) -> None:
    response = await staff_client.get("/staff/login")
    assert response.status == 200
    html = await response.text()
    assert csrf_from(html)
    assert 'name="csrf_token"' in html
    morsel = cookies_set(response)[PRELOGIN_COOKIE]
    assert morsel["httponly"] is True
    assert morsel["path"] == "/staff"
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]
    assert response.headers["Cache-Control"] == "no-store"


async def test_login_sets_a_hashed_server_side_session_and_audits_it(
    staff_client: TestClient, repository: Repository
) -> None:
    user = make_user(staff_client, "admin")
    response = await post_login(staff_client, user.username, user.password)
    assert response.status == 302 and response.headers["Location"] == "/staff/"
    morsel = cookies_set(response)[SESSION_COOKIE]
    assert morsel["httponly"] is True
    assert morsel["samesite"] == "Lax"
    assert morsel["path"] == "/staff"
    assert not morsel["secure"]  # development over plain HTTP
    token = morsel.value
    stored = repository.run(lambda uow: uow.connection.execute(select(staff_sessions)).all())
    assert len(stored) == 1
    assert stored[0].token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert stored[0].token_hash != token and stored[0].stage == "full"
    home = await staff_client.get("/staff/")
    assert home.status == 200
    assert user.username in await home.text()
    success = actions_named(repository, "login.success")
    assert len(success) == 1
    assert success[0].actor_id == user.user_id
    assert success[0].address == "127.0.0.1"
    assert success[0].details == {"factors": ["password"]}


@pytest.mark.parametrize(
    ("overrides", "secure"),
    [
        ({"cookie_secure": True}, True),
        ({"environment": "production"}, True),
        ({"environment": "production", "cookie_secure": False}, False),
        ({}, False),
    ],
)
async def test_session_cookie_is_secure_when_configured(
    aiohttp_client: Any, staff_settings: Settings, overrides: dict, secure: bool
) -> None:
    from web.app import create_app

    settings = staff_settings.model_copy(update=overrides)
    client = await aiohttp_client(create_app(settings))
    user = create_staff_user(settings, "facilitator")
    page = await client.get("/staff/login")
    prelogin = cookies_set(page)[PRELOGIN_COOKIE]
    assert bool(prelogin["secure"]) is secure
    # A Secure cookie is not sent back over plain HTTP by the client: send it by hand.
    response = await client.post(
        "/staff/login",
        data={
            "csrf_token": csrf_from(await page.text()),
            "username": user.username,
            "password": user.password,
        },
        headers={"Cookie": f"{PRELOGIN_COOKIE}={prelogin.value}"},
        allow_redirects=False,
    )
    assert response.status == 302
    assert bool(cookies_set(response)[SESSION_COOKIE]["secure"]) is secure


async def test_wrong_password_and_unknown_user_look_the_same_but_are_logged_precisely(
    staff_client: TestClient, repository: Repository, caplog: pytest.LogCaptureFixture
) -> None:
    user = make_user(staff_client, "facilitator")
    caplog.set_level(logging.INFO, logger="besafe")
    wrong = await post_login(staff_client, user.username, "not the password at all")
    unknown = await post_login(staff_client, "nobody-here", "not the password at all")
    assert wrong.status == unknown.status == 401
    wrong_text, unknown_text = await wrong.text(), await unknown.text()
    assert escape(LOGIN_FAILED_TEXT) in wrong_text and escape(LOGIN_FAILED_TEXT) in unknown_text
    assert SESSION_COOKIE not in cookies_set(wrong)
    failed = actions_named(repository, "login.failed")
    assert [(e.actor_id, e.details["reason"]) for e in failed] == [
        (user.user_id, "bad_password"),
        (None, "unknown_user"),
    ]
    assert all(e.address == "127.0.0.1" for e in failed)
    reasons = [getattr(r, "reason", None) for r in caplog.records if r.msg == "staff login failed"]
    assert reasons == ["bad_password", "unknown_user"]
    assert all("not the password" not in r.getMessage() + str(vars(r)) for r in caplog.records)


async def test_a_deactivated_account_cannot_log_in(
    staff_client: TestClient, repository: Repository
) -> None:
    user = make_user(staff_client, "facilitator")
    repository.run(
        lambda uow: uow.connection.execute(
            update(staff_users).where(staff_users.c.id == user.user_id).values(active=False)
        )
    )
    response = await post_login(staff_client, user.username, user.password)
    assert response.status == 401
    assert actions_named(repository, "login.failed")[-1].details["reason"] == "inactive"


@pytest.fixture
def strict_settings(staff_settings: Settings) -> Settings:
    return staff_settings.model_copy(
        update={"login_max_failures": 3, "login_max_failures_per_address": 5}
    )


@pytest.fixture
async def strict_client(aiohttp_client: Any, strict_settings: Settings) -> TestClient:
    from web.app import create_app

    return await aiohttp_client(create_app(strict_settings))


async def test_repeated_failures_lock_the_account_even_for_the_right_password(
    strict_client: TestClient, repository: Repository, caplog: pytest.LogCaptureFixture
) -> None:
    user = make_user(strict_client, "admin")
    caplog.set_level(logging.WARNING, logger="besafe")
    for _ in range(3):
        response = await post_login(strict_client, user.username, "wrong password here")
        assert response.status == 401
    lockouts = actions_named(repository, "login.lockout")
    assert len(lockouts) == 1 and lockouts[0].actor_id == user.user_id
    response = await post_login(strict_client, user.username, user.password)
    assert response.status == 401
    assert escape(LOGIN_FAILED_TEXT) in await response.text()
    assert actions_named(repository, "login.failed")[-1].details == {"reason": "locked"}
    assert any(getattr(r, "reason", None) == "lockout" for r in caplog.records)
    # When the lock has passed, the right password works again.
    repository.run(
        lambda uow: uow.connection.execute(
            update(staff_users)
            .where(staff_users.c.id == user.user_id)
            .values(locked_until=utcnow() - timedelta(seconds=1))
        )
    )
    response = await post_login(strict_client, user.username, user.password)
    assert response.status == 302


async def test_a_success_resets_the_failure_count(
    strict_client: TestClient, repository: Repository
) -> None:
    user = make_user(strict_client, "admin")
    for _ in range(2):
        await post_login(strict_client, user.username, "wrong password here")
    assert (await post_login(strict_client, user.username, user.password)).status == 302
    await strict_client.post(
        "/staff/logout", data={"csrf_token": await page_csrf(strict_client, "/staff/")}
    )
    for _ in range(2):
        await post_login(strict_client, user.username, "wrong password here")
    assert (await post_login(strict_client, user.username, user.password)).status == 302
    assert actions_named(repository, "login.lockout") == []


async def test_too_many_failures_from_one_address_refuse_that_address(
    strict_client: TestClient, repository: Repository
) -> None:
    user = make_user(strict_client, "admin")
    for i in range(5):  # spread over accounts: no single account is locked
        await post_login(strict_client, f"guess-{i}", "wrong password here")
    response = await post_login(strict_client, user.username, user.password)
    assert response.status == 401
    assert escape(LOGIN_FAILED_TEXT) in await response.text()
    throttled = actions_named(repository, "login.throttled")
    assert len(throttled) == 1 and throttled[0].address == "127.0.0.1"
    assert throttled[0].actor_id == user.user_id
    # Once the window has passed, the address may try again.
    repository.run(
        lambda uow: uow.connection.execute(
            update(audit_log).values(created_at=utcnow() - timedelta(hours=1))
        )
    )
    assert (await post_login(strict_client, user.username, user.password)).status == 302


# ---------------------------------------------------------------- sessions


async def test_a_planted_session_id_is_never_adopted(
    staff_client: TestClient, repository: Repository
) -> None:
    user = make_user(staff_client, "admin")
    planted = "A" * 43
    staff_client.session.cookie_jar.update_cookies(
        {SESSION_COOKIE: planted}, staff_client.make_url("/staff/")
    )
    response = await post_login(staff_client, user.username, user.password)
    assert response.status == 302
    issued = cookies_set(response)[SESSION_COOKIE].value
    assert issued != planted
    hashes = repository.run(
        lambda uow: uow.connection.execute(select(staff_sessions.c.token_hash)).scalars().all()
    )
    assert hashlib.sha256(planted.encode()).hexdigest() not in hashes


async def test_session_id_rotates_at_login_and_the_old_one_is_dead(
    staff_client: TestClient, other_browser: aiohttp.ClientSession
) -> None:
    """A session someone obtained before login (here: a valid one) is ended by a new login."""
    user = make_user(staff_client, "admin")
    await login_with(staff_client, user)
    first = session_cookie(staff_client)
    assert first is not None
    # Log in again in the same browser: a new id, and the old one no longer works.
    await login_with(staff_client, user)
    second = session_cookie(staff_client)
    assert second is not None and second != first
    other_browser.cookie_jar.update_cookies({SESSION_COOKIE: first})
    response = await other_browser.get("/staff/", allow_redirects=False)
    assert response.status == 302
    assert response.headers["Location"].startswith("/staff/login")


async def test_the_second_factor_step_rotates_the_session_again(
    staff_client: TestClient, other_browser: aiohttp.ClientSession
) -> None:
    lead = make_user(staff_client, "safeguarding_lead")
    assert lead.totp_secret is not None
    response = await post_login(staff_client, lead.username, lead.password)
    assert response.headers["Location"].startswith("/staff/login/totp")
    half = cookies_set(response)[SESSION_COOKIE].value
    # Half logged in is not logged in.
    other_browser.cookie_jar.update_cookies({SESSION_COOKIE: half})
    response = await other_browser.get("/staff/", allow_redirects=False)
    assert response.status == 302 and response.headers["Location"].startswith("/staff/login")
    token = await page_csrf(staff_client, "/staff/login/totp")
    response = await staff_client.post(
        "/staff/login/totp",
        data={"csrf_token": token, "code": totp_now(lead.totp_secret)},
        allow_redirects=False,
    )
    assert response.status == 302
    full = cookies_set(response)[SESSION_COOKIE].value
    assert full != half
    response = await other_browser.get("/staff/", allow_redirects=False)
    assert response.status == 302  # the half session was ended, not promoted


@pytest.mark.parametrize("limit", ["idle", "absolute"])
async def test_sessions_expire_when_idle_and_absolutely(
    staff_client: TestClient, repository: Repository, limit: str
) -> None:
    session = await login_as(staff_client, "facilitator")
    now = utcnow()
    values = (
        {"last_seen_at": now - timedelta(minutes=31)}
        if limit == "idle"
        else {"expires_at": now - timedelta(seconds=1)}
    )
    repository.run(lambda uow: uow.connection.execute(update(staff_sessions).values(**values)))
    response = await staff_client.get("/staff/account", allow_redirects=False)
    assert response.status == 302
    assert response.headers["Location"] == "/staff/login?next=/staff/account"
    expired = actions_named(repository, "session.expired")
    assert [(e.actor_id, e.details["reason"]) for e in expired] == [(session.user.id, limit)]
    assert repository.run(lambda uow: uow.connection.execute(select(staff_sessions)).all()) == []


async def test_activity_keeps_a_session_alive(
    staff_client: TestClient, repository: Repository
) -> None:
    await login_as(staff_client, "facilitator")
    # 29 minutes idle is inside the 30-minute limit; the visit moves last_seen_at on.
    repository.run(
        lambda uow: uow.connection.execute(
            update(staff_sessions).values(last_seen_at=utcnow() - timedelta(minutes=29))
        )
    )
    assert (await staff_client.get("/staff/account")).status == 200
    seen = repository.run(
        lambda uow: uow.connection.execute(select(staff_sessions.c.last_seen_at)).scalar_one()
    )
    assert utcnow() - seen < timedelta(minutes=1)


async def test_logout_ends_the_session_on_the_server(
    staff_client: TestClient, repository: Repository, other_browser: aiohttp.ClientSession
) -> None:
    session = await login_as(staff_client, "board_viewer")
    token = session_cookie(staff_client)
    response = await staff_client.post("/staff/logout", data=session.form(), allow_redirects=False)
    assert response.status == 302 and response.headers["Location"] == "/staff/login"
    assert cookies_set(response)[SESSION_COOKIE].value == ""
    other_browser.cookie_jar.update_cookies({SESSION_COOKIE: token or ""})
    response = await other_browser.get("/staff/", allow_redirects=False)
    assert response.status == 302
    logouts = actions_named(repository, "logout")
    assert [(e.actor_id, e.address) for e in logouts] == [(session.user.id, "127.0.0.1")]


async def test_anonymous_requests_are_sent_to_login_or_refused(
    staff_client: TestClient,
) -> None:
    response = await staff_client.get("/staff/users", allow_redirects=False)
    assert response.status == 302
    assert response.headers["Location"] == "/staff/login?next=/staff/users"
    # An event stream or a non-GET gets 401, not a redirect.
    response = await staff_client.get(
        "/staff/account", headers={"Accept": "text/event-stream"}, allow_redirects=False
    )
    assert response.status == 401
    token = await page_csrf(staff_client)
    response = await staff_client.post("/staff/users", data={"csrf_token": token})
    assert response.status == 401


async def test_after_login_the_user_lands_where_they_were_going(
    staff_client: TestClient,
) -> None:
    user = make_user(staff_client, "admin")
    response = await post_login(staff_client, user.username, user.password, next="/staff/users")
    assert response.headers["Location"] == "/staff/users"
    response = await post_login(
        staff_client, user.username, user.password, next="https://evil.example/"
    )
    assert response.headers["Location"] == "/staff/"


async def test_the_destination_survives_the_second_factor_step(staff_client: TestClient) -> None:
    lead = make_user(staff_client, "safeguarding_lead")
    assert lead.totp_secret is not None
    wanted = "/staff/users?a=1&b=2"
    response = await post_login(staff_client, lead.username, lead.password, next=wanted)
    location = response.headers["Location"]
    assert location.startswith("/staff/login/totp?next=")
    html = await (await staff_client.get(location)).text()
    assert 'value="/staff/users?a=1&amp;b=2"' in html
    token = csrf_from(html)
    response = await staff_client.post(
        "/staff/login/totp",
        data={"csrf_token": token, "code": totp_now(lead.totp_secret), "next": wanted},
        allow_redirects=False,
    )
    assert response.status == 302 and response.headers["Location"] == wanted


# ---------------------------------------------------------------- CSRF


async def test_login_without_a_csrf_token_is_refused_and_audited(
    staff_client: TestClient, repository: Repository
) -> None:
    user = make_user(staff_client, "admin")
    await staff_client.get("/staff/login")  # has the pre-login cookie, not the token
    for data in (
        {"username": user.username, "password": user.password},
        {"username": user.username, "password": user.password, "csrf_token": "0" * 64},
    ):
        response = await staff_client.post("/staff/login", data=data, allow_redirects=False)
        assert response.status == 403
        assert SESSION_COOKIE not in cookies_set(response)
    refused = actions_named(repository, "csrf.refused")
    assert [e.target for e in refused] == ["/staff/login", "/staff/login"]
    assert actions_named(repository, "login.success") == []


async def test_logged_in_forms_need_this_sessions_token(
    staff_client: TestClient,
    other_browser: aiohttp.ClientSession,
    repository: Repository,
) -> None:
    admin = await login_as(staff_client, "admin")
    data = {"username": "new-person", "role": "facilitator", "password": DEFAULT_PASSWORD}
    response = await staff_client.post("/staff/users", data=data)
    assert response.status == 403
    # The token of another session (another browser, same user) does not do either.
    token = await (await other_browser.get("/staff/login")).text()
    response = await other_browser.post(
        "/staff/login",
        data={
            "csrf_token": csrf_from(token),
            "username": admin.credentials.username,
            "password": admin.credentials.password,
        },
    )
    other_token = csrf_from(await (await other_browser.get("/staff/")).text())
    assert other_token != admin.csrf_token
    response = await staff_client.post("/staff/users", data={**data, "csrf_token": other_token})
    assert response.status == 403
    assert [e.actor_id for e in actions_named(repository, "csrf.refused")] == [
        admin.user.id,
        admin.user.id,
    ]
    # The header form works (for scripts), as does the field.
    response = await staff_client.post("/staff/users", data=data, headers=admin.headers)
    assert response.status == 200
    assert "new-person" in await response.text()


# ---------------------------------------------------------------- second factor


async def test_a_lead_must_enrol_a_second_factor_before_anything_else(
    staff_client: TestClient, repository: Repository
) -> None:
    lead = make_user(staff_client, "safeguarding_lead", totp=False)
    response = await post_login(staff_client, lead.username, lead.password)
    assert response.status == 302 and response.headers["Location"] == "/staff/account/totp"
    # Not logged in yet for anything else.
    response = await staff_client.get("/staff/", allow_redirects=False)
    assert response.status == 302
    page = await staff_client.get("/staff/account/totp")
    assert page.status == 200
    html = await page.text()
    uri_start = html.index("otpauth://totp/Be-Safe%3A")
    uri = html[uri_start : html.index("<", uri_start)].replace("&amp;", "&")
    secret = uri.split("secret=")[1].split("&")[0]
    assert " ".join(secret[i : i + 4] for i in range(0, len(secret), 4)) in html
    assert '<img class="qr" src="data:image/svg+xml;' in html
    # Reloading shows the same secret (not a new one each time).
    assert secret in await (await staff_client.get("/staff/account/totp")).text()
    token = csrf_from(html)
    response = await staff_client.post(
        "/staff/account/totp", data={"csrf_token": token, "code": "000000"}
    )
    assert response.status == 400
    assert escape(CODE_FAILED_TEXT) in await response.text()
    response = await staff_client.post(
        "/staff/account/totp",
        data={"csrf_token": token, "code": code_at(secret, time.time())},
        allow_redirects=False,
    )
    assert response.status == 302 and response.headers["Location"] == "/staff/"
    assert (await staff_client.get("/staff/")).status == 200
    names = [e.action for e in actions(repository)]
    assert names[-5:] == [
        "login.password_ok",
        "totp.enrolment_started",
        "totp.enrolment_failed",
        "totp.enrolled",
        "login.success",
    ]
    stored = repository.run(
        lambda uow: uow.connection.execute(
            select(staff_users.c.totp_secret).where(staff_users.c.id == lead.user_id)
        ).scalar_one()
    )
    assert secret not in stored  # sealed at rest


async def test_leads_need_no_second_factor_when_the_setting_is_off(
    aiohttp_client: Any, staff_settings: Settings
) -> None:
    from web.app import create_app

    settings = staff_settings.model_copy(update={"require_2fa_for_leads": None})
    assert settings.environment == "development" and not settings.leads_need_2fa
    assert settings.model_copy(update={"environment": "production"}).leads_need_2fa
    client = await aiohttp_client(create_app(settings))
    lead = create_staff_user(settings, "safeguarding_lead")
    assert lead.totp_secret is None
    response = await post_login(client, lead.username, lead.password)
    assert response.headers["Location"] == "/staff/"


async def test_any_role_may_turn_on_a_second_factor_and_is_then_asked_for_it(
    staff_client: TestClient, repository: Repository
) -> None:
    session = await login_as(staff_client, "board_viewer")
    html = await (await staff_client.get("/staff/account/totp")).text()
    secret = html.split("secret=")[1].split("&")[0]
    response = await staff_client.post(
        "/staff/account/totp",
        data=session.form(code=code_at(secret, time.time())),
        allow_redirects=False,
    )
    assert response.headers["Location"] == "/staff/account"
    assert "Two-step login is on" in await (await staff_client.get("/staff/account/totp")).text()
    await staff_client.post("/staff/logout", data=session.form())
    response = await post_login(
        staff_client, session.credentials.username, session.credentials.password
    )
    assert response.headers["Location"].startswith("/staff/login/totp")


async def test_a_used_code_cannot_log_in_again_and_wrong_codes_lock_the_account(
    strict_client: TestClient, repository: Repository
) -> None:
    lead = make_user(strict_client, "safeguarding_lead")
    assert lead.totp_secret is not None
    await login_with(strict_client, lead)
    used = totp_now(lead.totp_secret)
    csrf = await page_csrf(strict_client, "/staff/")
    await strict_client.post("/staff/logout", data={"csrf_token": csrf})

    async def second_step(code: str) -> aiohttp.ClientResponse:
        response = await post_login(strict_client, lead.username, lead.password)
        assert response.headers["Location"].startswith("/staff/login/totp")
        token = await page_csrf(strict_client, "/staff/login/totp")
        return await strict_client.post(
            "/staff/login/totp", data={"csrf_token": token, "code": code}, allow_redirects=False
        )

    # The code just used (same time step) is refused, even within the drift window.
    response = await second_step(used)
    assert response.status == 401
    assert escape(CODE_FAILED_TEXT) in await response.text()
    failed = actions_named(repository, "login.totp_failed")
    assert [e.details["reason"] for e in failed] == ["bad_code"]
    # The next step's code is accepted (one step of drift).
    response = await second_step(code_at(lead.totp_secret, time.time() + 30))
    assert response.status == 302
    csrf = await page_csrf(strict_client, "/staff/")
    await strict_client.post("/staff/logout", data={"csrf_token": csrf})
    # Wrong codes count towards the lockout like wrong passwords.
    for _ in range(3):
        response = await second_step("000000")
    assert response.status == 401
    assert len(actions_named(repository, "login.lockout")) == 1
    response = await post_login(strict_client, lead.username, lead.password)
    assert response.status == 401


# ---------------------------------------------------------------- own password


async def test_changing_the_password_ends_other_sessions(
    staff_client: TestClient, repository: Repository, other_browser: aiohttp.ClientSession
) -> None:
    session = await login_as(staff_client, "facilitator")
    creds = session.credentials
    html = await (await other_browser.get("/staff/login")).text()
    await other_browser.post(
        "/staff/login",
        data={
            "csrf_token": csrf_from(html),
            "username": creds.username,
            "password": creds.password,
        },
    )
    assert (await other_browser.get("/staff/account", allow_redirects=False)).status == 200
    new_password = "a brand new long password"
    response = await staff_client.post(
        "/staff/account/password",
        data=session.form(
            password="wrong current one", new_password=new_password, confirm=new_password
        ),
    )
    assert response.status == 400
    response = await staff_client.post(
        "/staff/account/password",
        data=session.form(password=creds.password, new_password="short", confirm="short"),
    )
    assert response.status == 400
    response = await staff_client.post(
        "/staff/account/password",
        data=session.form(password=creds.password, new_password=new_password, confirm=new_password),
    )
    assert response.status == 200
    assert "has been changed" in await response.text()
    assert (await staff_client.get("/staff/account")).status == 200  # this browser stays in
    assert (await other_browser.get("/staff/account", allow_redirects=False)).status == 302
    assert [e.action for e in actions(repository) if e.action.startswith("password.")] == [
        "password.change_failed",
        "password.change_failed",
        "password.changed",
    ]
    await staff_client.post(
        "/staff/logout", data={"csrf_token": await page_csrf(staff_client, "/staff/")}
    )
    assert (await post_login(staff_client, creds.username, creds.password)).status == 401
    assert (await post_login(staff_client, creds.username, new_password)).status == 302


async def test_the_sweep_deletes_only_expired_sessions(
    staff_client: TestClient, repository: Repository
) -> None:
    from storage.staff import create_session, delete_expired_sessions

    user = make_user(staff_client, "facilitator")
    now = utcnow()
    rows = {
        "fresh": (now, now + timedelta(hours=1)),
        "idle": (now - timedelta(minutes=40), now + timedelta(hours=1)),
        "over": (now, now - timedelta(seconds=1)),
    }

    def work(uow: Any) -> int:
        for name, (seen, expires) in rows.items():
            create_session(
                uow.connection,
                token_hash=name,
                user_id=user.user_id,
                stage="full",
                address=None,
                now=seen,
                expires_at=expires,
            )
        return delete_expired_sessions(
            uow.connection, now=now, idle_before=now - timedelta(minutes=30)
        )

    assert repository.run(work) == 2
    left = repository.run(
        lambda uow: uow.connection.execute(select(staff_sessions.c.token_hash)).scalars().all()
    )
    assert left == ["fresh"]
