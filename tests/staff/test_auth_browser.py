"""Staff login in headless Chromium against the real app: password, enrolment of the
second factor (QR code and typed key), login with a code, cookies, CSP, logout."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from playwright.async_api import BrowserContext

from tests.browser_fixtures import LiveApp
from tests.staff.conftest import create_staff_user
from tests.web.chat_driver import Watch
from web.staff.auth import SESSION_COOKIE
from web.staff.totp import code_at

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]


async def test_a_lead_enrols_a_second_factor_and_logs_in_with_it(
    browser_context: BrowserContext, live_app_factory: Callable[..., LiveApp]
) -> None:
    app = live_app_factory(require_2fa_for_leads=True)
    lead = create_staff_user(app.settings, "safeguarding_lead", totp=False)
    page = await browser_context.new_page()
    watch = Watch()
    watch.attach(page)

    await page.goto(app.url + "/staff/users")
    assert page.url.startswith(app.url + "/staff/login?next=")
    await page.fill("#username", lead.username)
    await page.fill("#password", lead.password)
    await page.click("button[type=submit]")
    await page.wait_for_url(app.url + "/staff/account/totp")
    # The QR code is an image the CSP lets load; the key is also there as text.
    qr = page.locator("img.qr")
    assert await qr.evaluate("img => img.complete && img.naturalWidth > 0")
    secret = (await page.locator("#totp-secret").inner_text()).replace(" ", "")
    await page.fill("#code", code_at(secret, time.time()))
    await page.click("form.stack button[type=submit]")
    await page.wait_for_url(app.url + "/staff/")
    assert lead.username in await page.locator(".who-name").inner_text()

    cookies = {c["name"]: c for c in await browser_context.cookies()}
    session = cookies[SESSION_COOKIE]
    assert session["httpOnly"] is True
    assert session["sameSite"] == "Lax"
    assert session["path"] == "/staff"

    # A lead may not manage users: a 403 page.
    response = await page.goto(app.url + "/staff/users")
    assert response is not None and response.status == 403
    assert "Not allowed" in await page.locator("h1").inner_text()

    # Log out, then in again: this time the code is asked for (the next one: each works once).
    await page.click(".who button")
    await page.wait_for_url(app.url + "/staff/login")
    await page.fill("#username", lead.username)
    await page.fill("#password", lead.password)
    await page.click("button[type=submit]")
    await page.wait_for_url(app.url + "/staff/login/totp?next=/staff/")
    await page.fill("#code", code_at(secret, time.time() + 30))
    await page.click("form.stack button[type=submit]")
    await page.wait_for_url(app.url + "/staff/")
    # Nothing went wrong on any page (no CSP violation, no script error) but the 403 we asked for.
    assert [e for e in watch.errors if "status of 403" not in e] == []
    assert len(watch.errors) == 1 and watch.dialogs == []
