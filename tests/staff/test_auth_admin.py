"""User admin pages (admins only): add accounts, change role, deactivate, unlock,
reset the second factor, set a password; every change audited."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient
from markupsafe import escape
from sqlalchemy import select, update

from storage.audit import audit_entries
from storage.clock import utcnow
from storage.repository import Repository
from storage.tables_staff import staff_users
from tests.staff.conftest import (
    DEFAULT_PASSWORD,
    StaffSession,
    create_staff_user,
    csrf_from,
    login_as,
    login_with,
)
from web.keys import SETTINGS


def last_audit(repository: Repository) -> Any:
    return repository.run(lambda uow: audit_entries(uow.connection, limit=1))[0]


def user_row(repository: Repository, user_id: int) -> Any:
    return repository.run(
        lambda uow: uow.connection.execute(
            select(staff_users).where(staff_users.c.id == user_id)
        ).one()
    )


async def change(
    client: TestClient, admin: StaffSession, user_id: int, **fields: str
) -> aiohttp.ClientResponse:
    return await client.post(f"/staff/users/{user_id}", data=admin.form(**fields))


@pytest.fixture
async def admin(staff_client: TestClient) -> StaffSession:
    return await login_as(staff_client, "admin")


async def test_an_admin_adds_an_account_who_can_then_log_in(
    staff_client: TestClient, admin: StaffSession, repository: Repository
) -> None:
    response = await staff_client.post(
        "/staff/users",
        data=admin.form(username="New.Person", role="facilitator", password=DEFAULT_PASSWORD),
    )
    assert response.status == 200
    html = await response.text()
    assert "Account new.person created." in html
    entry = last_audit(repository)
    assert entry.action == "user.created" and entry.actor_id == admin.user.id
    assert entry.details == {"username": "new.person", "role": "facilitator"}
    # Refusals: taken name, bad name, unknown role, weak password.
    for fields, message in (
        ({"username": "new.person", "role": "facilitator"}, "That username is taken."),
        ({"username": "a b", "role": "facilitator"}, "Use only letters"),
        ({"username": "other", "role": "superuser"}, "Choose a role."),
        ({"username": "other", "role": "facilitator", "password": "short"}, "at least 12"),
    ):
        data = admin.form(**{"password": DEFAULT_PASSWORD, **fields})
        response = await staff_client.post("/staff/users", data=data)
        assert response.status == 400
        assert str(escape(message)) in await response.text()


async def test_usernames_are_shown_escaped(staff_client: TestClient, admin: StaffSession) -> None:
    create_staff_user(staff_client.app[SETTINGS], "facilitator", username="x<b>y")
    html = await (await staff_client.get("/staff/users")).text()
    assert "x<b>y" not in html and "x&lt;b&gt;y" in html


async def test_role_change_and_deactivation_end_that_users_sessions(
    staff_client: TestClient,
    admin: StaffSession,
    repository: Repository,
    aiohttp_client: Any,
) -> None:
    other = create_staff_user(staff_client.app[SETTINGS], "facilitator")
    browser = aiohttp.ClientSession(
        base_url=str(staff_client.make_url("/")), cookie_jar=aiohttp.CookieJar(unsafe=True)
    )
    try:
        html = await (await browser.get("/staff/login")).text()
        await browser.post(
            "/staff/login",
            data={
                "csrf_token": csrf_from(html),
                "username": other.username,
                "password": other.password,
            },
        )
        assert (await browser.get("/staff/", allow_redirects=False)).status == 200
        response = await change(staff_client, admin, other.user_id, action="role", role="admin")
        assert response.status == 200
        assert user_row(repository, other.user_id).role == "admin"
        assert last_audit(repository).details == {
            "username": other.username,
            "from": "facilitator",
            "to": "admin",
        }
        assert (await browser.get("/staff/", allow_redirects=False)).status == 302
        response = await change(staff_client, admin, other.user_id, action="deactivate")
        assert response.status == 200
        assert user_row(repository, other.user_id).active is False
        assert last_audit(repository).action == "user.deactivate"
        html = await (await browser.get("/staff/login")).text()
        response = await browser.post(
            "/staff/login",
            data={
                "csrf_token": csrf_from(html),
                "username": other.username,
                "password": other.password,
            },
            allow_redirects=False,
        )
        assert response.status == 401
        await change(staff_client, admin, other.user_id, action="activate")
        assert user_row(repository, other.user_id).active is True
    finally:
        await browser.close()


async def test_the_last_admin_cannot_be_removed(
    staff_client: TestClient, admin: StaffSession, repository: Repository
) -> None:
    response = await change(staff_client, admin, admin.user.id, action="deactivate")
    assert response.status == 400
    assert "your own administrator access" in await response.text()
    response = await change(staff_client, admin, admin.user.id, action="role", role="facilitator")
    assert response.status == 400
    assert user_row(repository, admin.user.id).role == "admin"
    assert user_row(repository, admin.user.id).active is True


async def test_unlock_reset_second_factor_and_set_password(
    staff_client: TestClient, admin: StaffSession, repository: Repository
) -> None:
    settings = staff_client.app[SETTINGS]
    lead = create_staff_user(settings, "safeguarding_lead")
    assert lead.totp_secret is not None
    repository.run(
        lambda uow: uow.connection.execute(
            update(staff_users)
            .where(staff_users.c.id == lead.user_id)
            .values(locked_until=utcnow() + timedelta(minutes=10), failed_logins=2)
        )
    )
    html = await (await staff_client.get("/staff/users")).text()
    assert "Locked until" in html
    await change(staff_client, admin, lead.user_id, action="unlock")
    row = user_row(repository, lead.user_id)
    assert row.locked_until is None and row.failed_logins == 0
    await change(staff_client, admin, lead.user_id, action="reset_2fa")
    row = user_row(repository, lead.user_id)
    assert row.totp_secret is None and row.totp_confirmed_at is None
    response = await change(staff_client, admin, lead.user_id, action="password", password="short")
    assert response.status == 400
    await change(
        staff_client, admin, lead.user_id, action="password", password="a new temporary one"
    )
    actions = [e.action for e in repository.run(lambda uow: audit_entries(uow.connection, limit=3))]
    assert actions == ["user.password", "user.reset_2fa", "user.unlock"]
    # The lead logs in with the new password and must enrol a second factor again.
    other = aiohttp.ClientSession(
        base_url=str(staff_client.make_url("/")), cookie_jar=aiohttp.CookieJar(unsafe=True)
    )
    try:
        html = await (await other.get("/staff/login")).text()
        response = await other.post(
            "/staff/login",
            data={
                "csrf_token": csrf_from(html),
                "username": lead.username,
                "password": "a new temporary one",
            },
            allow_redirects=False,
        )
        assert response.headers["Location"] == "/staff/account/totp"
    finally:
        await other.close()


async def test_unknown_user_ids_and_actions(staff_client: TestClient, admin: StaffSession) -> None:
    assert (await change(staff_client, admin, 987654, action="unlock")).status == 404
    assert (await change(staff_client, admin, admin.user.id, action="explode")).status == 400


async def test_the_audit_page_lists_entries_escaped(
    staff_client: TestClient, admin: StaffSession
) -> None:
    settings = staff_client.app[SETTINGS]
    weird = create_staff_user(settings, "facilitator", username="a<i>b")
    await login_with(staff_client, weird)  # a new session in this client
    await login_with(staff_client, create_staff_user(settings, "admin"))
    html = await (await staff_client.get("/staff/audit")).text()
    assert "login.success" in html and "user.created" in html
    assert "a<i>b" not in html
