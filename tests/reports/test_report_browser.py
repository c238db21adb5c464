"""In headless Chromium against the real app: a board viewer reads a report and downloads it
(and sees the one quote a safeguarding lead approved, as text)."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Callable
from pathlib import Path

import pytest
from openpyxl import load_workbook
from playwright.async_api import Browser, expect

from config.settings import Settings
from storage.db import create_db_engine
from storage.quotes import approve_quote, quote_page
from storage.repository import Repository
from storage.review import read
from tests.browser_fixtures import LiveApp
from tests.reports.test_report_pages import CODE, seed
from tests.staff.conftest import create_staff_user

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]
WAIT = 15_000  # ms
SCREENSHOT = "/tmp/besafe-board-report.png"
QUOTE = "<script>alert(5)</script> Sam"  # p5's answer in the seed; p3's is flagged


def approve_one(settings: Settings, lead_id: int) -> None:
    engine = create_db_engine(settings.effective_database_url)
    try:
        repository = Repository(engine)
        page = read(repository, lambda connection: quote_page(connection, CODE))
        chosen = next(c for c in page.candidates if c.text == QUOTE)
        repository.run(
            lambda uow: approve_quote(
                uow.connection,
                CODE,
                chosen.answer_id,
                chosen.text_sha256,
                actor_id=lead_id,
                now=uow.now,
            )
        )
    finally:
        engine.dispose()


async def test_board_viewer_sees_a_chart_and_a_suppressed_cell_and_downloads_xlsx(
    browser: Browser, live_app_factory: Callable[..., LiveApp], tmp_path: Path
) -> None:
    live = live_app_factory(secret_key="report-browser-secret-0123456789abcdefghij")
    credentials = await asyncio.to_thread(create_staff_user, live.settings, "board_viewer")
    await asyncio.to_thread(seed, live.settings)
    lead = await asyncio.to_thread(create_staff_user, live.settings, "safeguarding_lead")
    await asyncio.to_thread(approve_one, live.settings, lead.user_id)
    context = await browser.new_context(locale="en-GB", accept_downloads=True)
    try:
        page = await context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.on(
            "console",
            lambda message: errors.append(message.text) if message.type == "error" else None,
        )
        page.on("dialog", lambda dialog: errors.append(f"dialog: {dialog.message}"))
        await page.goto(live.url + "/staff/reports")
        await page.wait_for_url("**/staff/login**", timeout=WAIT)
        await page.fill("#username", credentials.username)
        await page.fill("#password", credentials.password)
        await page.get_by_role("button", name="Log in").click()
        await page.wait_for_url("**/staff/reports", timeout=WAIT)

        await page.locator(f"a[href='/staff/reports/{CODE}']").click()
        await page.wait_for_url(f"**/staff/reports/{CODE}", timeout=WAIT)
        chart = page.locator("#q-bullied_year svg.chart")
        await expect(chart).to_be_visible()
        await expect(chart.locator("rect")).to_have_count(2)  # yes and no bars
        table = page.locator("#t-bullied_year")
        await expect(table).to_contain_text("27%")
        suppressed = page.locator("td.suppressed").first
        await expect(suppressed).to_be_visible()
        await expect(suppressed).to_contain_text("*")
        # the approved quote, as text (its markup escaped, never run); no other answer
        quotes = page.locator(".report-quotes blockquote")
        await expect(quotes).to_have_count(1)
        await expect(quotes).to_have_text(QUOTE)
        await expect(page.locator("body")).not_to_contain_text("alert(4)")
        await page.screenshot(path=SCREENSHOT, full_page=True)

        async with page.expect_download() as waiting:
            await page.locator("#download-xlsx").click()
        download = await waiting.value
        target = tmp_path / download.suggested_filename
        await download.save_as(target)
        book = load_workbook(io.BytesIO(target.read_bytes()))
        assert book.sheetnames[0] == "Summary" and "Flags" in book.sheetnames

        assert errors == []
        # a board viewer cannot open the review queue or any flag
        response = await page.goto(live.url + "/staff/queue")
        assert response is not None and response.status == 403
        response = await page.goto(live.url + "/staff/flags/1")
        assert response is not None and response.status == 403
    finally:
        await context.close()
