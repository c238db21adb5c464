"""End to end in headless Chromium against the REAL app (create_app, SQLite):

a young person discloses in the web chat and agrees to be contacted; a lead logs
in with a second factor, sees the flag arrive live, opens it, replies; the young
person sees the reply in their chat and answers; the lead sees the answer,
records a referral and closes the flag; `main.py audit verify` passes.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.async_api import Browser, BrowserContext, Page, expect
from sqlalchemy import select

from storage import tables
from storage.db import create_db_engine
from tests.browser_fixtures import LiveApp
from tests.staff.conftest import StaffCredentials, create_staff_user, totp_now
from tests.web.chat_driver import Watch, open_chat, type_message, wait_idle

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]

ROOT = Path(__file__).resolve().parents[2]
XSS = "<img src=x onerror=alert(1)>"
DISCLOSURE = f"my dad hits me when he is angry {XSS}"
REPLY = "Hi, I'm Sam from the Be-Safe team. Are you safe right now?"
ANSWER = "yes I'm at my nan's, it happened again yesterday"
SCREENSHOT = "/tmp/besafe-review-flag.png"
WAIT = 15_000  # ms


async def log_in(page: Page, url: str, credentials: StaffCredentials) -> None:
    await page.goto(url + "/staff/queue")
    await page.wait_for_url("**/staff/login**", timeout=WAIT)
    await page.fill("#username", credentials.username)
    await page.fill("#password", credentials.password)
    await page.get_by_role("button", name="Log in").click()
    await page.wait_for_selector("#code", timeout=WAIT)
    assert credentials.totp_secret is not None
    await page.fill("#code", totp_now(credentials.totp_secret))
    await page.get_by_role("button", name="Continue").click()
    await page.wait_for_url("**/staff/queue", timeout=WAIT)


async def test_disclosure_to_reply_to_referral_and_close(
    browser: Browser,
    browser_context: BrowserContext,
    live_app_factory: Callable[..., LiveApp],
) -> None:
    live = live_app_factory(
        require_2fa_for_leads=True, secret_key="review-browser-secret-0123456789abcdefghij"
    )
    credentials = await asyncio.to_thread(
        create_staff_user, live.settings, "safeguarding_lead", totp=True
    )

    # The lead logs in (password, then the TOTP code) and watches the queue.
    lead_context = await browser.new_context(locale="en-GB")
    try:
        lead = await lead_context.new_page()
        lead_watch = Watch()
        lead_watch.attach(lead)
        await log_in(lead, live.url, credentials)
        await expect(lead.locator("#live-status")).to_contain_text("Live", timeout=WAIT)
        await expect(lead.locator("tr.flag-row")).to_have_count(0)

        # The young person discloses and agrees to be contacted.
        chat, chat_watch = await open_chat(browser_context, live.url)
        await type_message(chat, DISCLOSURE)
        consent = chat.locator("button[data-value='yes']").last
        await expect(consent).to_be_visible(timeout=WAIT)
        await consent.click()
        await wait_idle(chat)

        # The flag arrives in the lead's queue without a reload.
        row = lead.locator("tr.flag-row")
        await expect(row).to_have_count(1, timeout=WAIT)
        await expect(row.locator(".severity")).to_have_text("high")
        await row.locator("a").click()
        await lead.wait_for_url("**/staff/flags/*", timeout=WAIT)
        flagged = lead.locator("#flagged-message")
        await expect(flagged).to_contain_text(DISCLOSURE)  # the payload is text
        await expect(flagged.locator("mark.evidence")).to_contain_text("hits")
        await expect(lead.locator("#consent")).to_contain_text("Yes")

        # The lead replies; the young person sees it in the chat and answers.
        await lead.fill("#reply-text", REPLY)
        await lead.get_by_role("button", name="Send reply").click()
        await lead.wait_for_load_state()
        await expect(lead.locator("#conversation")).to_contain_text(REPLY, timeout=WAIT)
        staff_bubble = chat.locator(".msg--staff")
        await expect(staff_bubble).to_contain_text(REPLY, timeout=WAIT)
        await expect(staff_bubble).to_contain_text("From the Be-Safe team")
        await type_message(chat, ANSWER)

        # The answer appears on the lead's open flag page by itself.
        await expect(lead.locator("#conversation")).to_contain_text(ANSWER, timeout=WAIT)
        await lead.screenshot(path=SCREENSHOT, full_page=True)

        # Referral, then close with an outcome.
        await lead.select_option("#referral-destination", "front_door_mash")
        await lead.fill("#referral-reference", "MASH-2026-0042")
        await lead.get_by_role("button", name="Record referral").click()
        await expect(lead.locator("#flag-status")).to_have_text("Referred", timeout=WAIT)
        await expect(lead.locator("#referrals")).to_contain_text("MASH-2026-0042")
        await lead.fill("#close-outcome", "Referred to MASH; school DSL informed.")
        await lead.get_by_role("button", name="Close flag").click()
        await expect(lead.locator("#flag-status")).to_have_text("Closed", timeout=WAIT)
        await expect(lead.locator("#history")).to_contain_text("Referral recorded")
        await expect(lead.locator("#history")).to_contain_text("Closed by")

        lead_watch.assert_clean()
        chat_watch.assert_clean()
    finally:
        await lead_context.close()

    flags = await asyncio.to_thread(_flags, live.settings.effective_database_url)
    assert [(f.status, f.contact_consent) for f in flags] == [("closed", True)]
    result = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, str(ROOT / "main.py"), "audit", "verify"],
        cwd=ROOT,
        env={
            **{k: v for k, v in os.environ.items() if not k.startswith("BESAFE_")},
            "BESAFE_DATA_DIR": str(live.settings.data_dir),
            "BESAFE_SECRET_KEY": "review-browser-secret-0123456789abcdefghij",
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "audit log intact" in result.stdout


def _flags(url: str) -> list:
    engine = create_db_engine(url)
    try:
        with engine.connect() as connection:
            return list(connection.execute(select(tables.flags)))
    finally:
        engine.dispose()
