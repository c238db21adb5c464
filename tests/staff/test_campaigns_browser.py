"""End to end in headless Chromium against the REAL app (create_app, SQLite):

a facilitator logs in, creates a campaign and opens it, sees its links and QR codes;
a young person joins through the campaign's web chat link and starts the survey; the
campaign's progress shows one started.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from playwright.async_api import Browser, BrowserContext, expect

from tests.browser_fixtures import LiveApp
from tests.staff.conftest import create_staff_user
from tests.web.chat_driver import Watch, wait_idle

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]

WAIT = 15_000  # ms
TITLE = "Safer Internet Day <b>2031</b>"


async def test_facilitator_launches_a_campaign_and_a_young_person_joins(
    browser: Browser,
    browser_context: BrowserContext,
    live_app_factory: Callable[..., LiveApp],
) -> None:
    live = live_app_factory(telegram_bot_username="BeSafeTestBot")
    credentials = await asyncio.to_thread(create_staff_user, live.settings, "facilitator")
    staff_context = await browser.new_context(locale="en-GB")
    try:
        staff = await staff_context.new_page()
        staff_watch = Watch()
        staff_watch.attach(staff)
        await staff.goto(live.url + "/staff/campaigns")
        await staff.wait_for_url("**/staff/login**", timeout=WAIT)
        await staff.fill("#username", credentials.username)
        await staff.fill("#password", credentials.password)
        await staff.get_by_role("button", name="Log in").click()
        await staff.wait_for_url("**/staff/campaigns", timeout=WAIT)

        await staff.click("#new-campaign")
        await staff.fill("#title", TITLE)
        await staff.fill("#code", "sid-2031")
        await staff.select_option("#survey", "online_safety:1")
        await staff.fill("#closes", "2031-02-20 16:00")
        await staff.fill("#invitation_text", "Tell us about life online.")
        await staff.fill("#target_responses", "40")
        await staff.click("#save-campaign")
        await staff.wait_for_url("**/staff/campaigns/sid-2031", timeout=WAIT)
        await expect(staff.locator("h1")).to_have_text(TITLE)  # shown as text, not markup
        await expect(staff.locator("#campaign-state")).to_have_text("Draft")
        await staff.click("#action-open")
        await expect(staff.locator("#campaign-state")).to_have_text("Open", timeout=WAIT)

        web_link = await staff.locator("#web-link").get_attribute("href")
        assert web_link is not None and web_link.endswith("/?c=sid-2031")
        await expect(staff.locator("#telegram-link")).to_have_text(
            "https://t.me/BeSafeTestBot?start=sid-2031"
        )
        for image in await staff.locator("#links img").all():
            assert await image.evaluate("img => img.complete && img.naturalWidth > 0")
        await expect(staff.locator("#progress-started")).to_have_text("0")

        # A young person scans the poster's code: the chat opens on this campaign.
        chat = await browser_context.new_page()
        chat_watch = Watch()
        chat_watch.attach(chat)
        await chat.goto(live.url + "/?c=sid-2031")
        await wait_idle(chat)
        await expect(chat.locator("#transcript")).to_contain_text(TITLE, timeout=WAIT)
        assert "?c=" not in chat.url  # a reload resumes rather than starting again
        await chat.locator("button[data-value='yes']").last.click()
        await wait_idle(chat)

        await staff.reload()
        await expect(staff.locator("#progress-started")).to_have_text("1", timeout=WAIT)
        await expect(staff.locator("#progress-target")).to_contain_text("of 40")
        assert not staff_watch.errors, staff_watch.errors
        assert not chat_watch.errors, chat_watch.errors
    finally:
        await staff_context.close()
