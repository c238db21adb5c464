"""Fixtures for the staff app (used by every tests/staff module, REVIEW's too).

- `staff_settings`: Settings on the `database_url` backend (SQLite and PostgreSQL),
  with second factors required for safeguarding leads.
- `staff_client`: an aiohttp test client of the REAL app (`create_app(staff_settings)`).
- `login_as(client, role, **options) -> StaffSession`: makes a user of `role`, logs in
  through the real pages (password, then the TOTP code when the user has one;
  leads always do when `require_2fa_for_leads` is on) and returns the csrf token
  and user. `login_as` is also a plain importable coroutine.
- `create_staff_user(settings, role, ...) -> StaffCredentials` (plain function, sync):
  an account with a known password and, optionally, a known TOTP secret, e.g. for
  a browser test against `live_app_factory(...).settings`.
- `totp_now(secret)`: the current code for a secret.
"""

from __future__ import annotations

import itertools
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from config.settings import Settings
from storage.clock import utcnow
from storage.db import create_db_engine
from storage.repository import Repository
from storage.staff import add_user, update_user
from web.app import create_app
from web.keys import SETTINGS
from web.staff.auth import StaffUser
from web.staff.passwords import hash_password
from web.staff.totp import code_at, new_secret, seal_secret

TEST_SECRET_KEY = "staff-tests-secret-key-0123456789abcdefghijklmnop"
DEFAULT_PASSWORD = "correct horse battery staple"
_names = itertools.count(1)
_META_CSRF = re.compile(r'<meta name="csrf-token" content="([^"]*)">')

ClientMaker = Callable[..., Awaitable[TestClient]]


@dataclass(frozen=True)
class StaffCredentials:
    user_id: int
    username: str
    role: str
    password: str
    totp_secret: str | None


@dataclass(frozen=True)
class StaffSession:
    user: StaffUser
    csrf_token: str
    credentials: StaffCredentials

    @property
    def headers(self) -> dict[str, str]:
        """Headers for a fetch-style POST (the CSRF header)."""
        return {"X-CSRF-Token": self.csrf_token}

    def form(self, **fields: Any) -> dict[str, Any]:
        """Form fields with the CSRF token added."""
        return {"csrf_token": self.csrf_token, **fields}


def totp_now(secret: str) -> str:
    return code_at(secret, time.time())


def create_staff_user(
    settings: Settings,
    role: str,
    *,
    username: str | None = None,
    password: str = DEFAULT_PASSWORD,
    totp: bool | None = None,
    totp_secret: str | None = None,
) -> StaffCredentials:
    """An active account with a known password (and TOTP secret when `totp` or given).

    `totp=None` means: a second factor for safeguarding leads when the settings
    require one, none otherwise.
    """
    if totp is None:
        totp = totp_secret is not None or (role == "safeguarding_lead" and settings.leads_need_2fa)
    secret = (totp_secret or new_secret()) if totp else None
    name = username or f"{role.replace('_', '-')}-{next(_names)}"
    password_hash = hash_password(password)
    sealed = seal_secret(settings.secret_bytes(), secret) if secret else None
    engine = create_db_engine(settings.effective_database_url)
    try:

        def work(uow: Any) -> int:
            user_id = add_user(
                uow.connection,
                username=name,
                role=role,
                password_hash=password_hash,
                actor_id=None,
                address="tests",
                now=uow.now,
            )
            if sealed is not None:
                update_user(uow.connection, user_id, totp_secret=sealed, totp_confirmed_at=utcnow())
            return user_id

        user_id = Repository(engine).run(work)
    finally:
        engine.dispose()
    return StaffCredentials(user_id, name, role, password, secret)


def csrf_from(html: str) -> str:
    found = _META_CSRF.search(html)
    assert found is not None, "no csrf-token meta tag on the page"
    return found.group(1)


async def page_csrf(client: TestClient, path: str = "/staff/login") -> str:
    response = await client.get(path)
    return csrf_from(await response.text())


async def login_with(client: TestClient, credentials: StaffCredentials) -> StaffSession:
    """Log in through the real pages; fails the test when login does not succeed."""
    token = await page_csrf(client)
    response = await client.post(
        "/staff/login",
        data={
            "csrf_token": token,
            "username": credentials.username,
            "password": credentials.password,
        },
        allow_redirects=False,
    )
    assert response.status == 302, await response.text()
    location = response.headers["Location"]
    if location.startswith("/staff/login/totp"):
        assert credentials.totp_secret is not None
        token = await page_csrf(client, location)
        response = await client.post(
            "/staff/login/totp",
            data={"csrf_token": token, "code": totp_now(credentials.totp_secret)},
            allow_redirects=False,
        )
        assert response.status == 302, await response.text()
        location = response.headers["Location"]
    assert location.startswith("/staff/") and not location.startswith("/staff/login"), location
    assert location != "/staff/account/totp", "the user still has to enrol a second factor"
    home = await client.get("/staff/")
    assert home.status == 200
    return StaffSession(
        user=StaffUser(credentials.user_id, credentials.username, credentials.role),
        csrf_token=csrf_from(await home.text()),
        credentials=credentials,
    )


async def login_as(client: TestClient, role: str, **options: Any) -> StaffSession:
    """Create a user of `role` (options as for `create_staff_user`) and log in as them."""
    import asyncio

    settings = client.app[SETTINGS]
    credentials = await asyncio.to_thread(create_staff_user, settings, role, **options)
    return await login_with(client, credentials)


@pytest.fixture
def staff_settings(tmp_path: Path, database_url: str) -> Settings:
    return Settings(
        data_dir=tmp_path,
        database_url=database_url,
        secret_key=TEST_SECRET_KEY,  # type: ignore[arg-type]
        quick_exit_url="https://example.org/weather",
        require_2fa_for_leads=True,
        log_format="text",
    )


@pytest.fixture
async def staff_client(aiohttp_client: ClientMaker, staff_settings: Settings) -> TestClient:
    return await aiohttp_client(create_app(staff_settings))


@pytest.fixture(name="login_as")
def login_as_fixture() -> Callable[..., Awaitable[StaffSession]]:
    return login_as
