"""The web chat in headless Chromium against the REAL app (create_app, shipped surveys, SQLite).

The driver answers whatever question appears, so these tests follow the
shipped bullying survey as it is written, not a copy of it.
"""

from __future__ import annotations

import pytest
from playwright.async_api import BrowserContext

from tests.browser_fixtures import TEST_QUICK_EXIT_URL
from tests.web.chat_driver import SurveyDriver, Watch, open_chat, state, wait_idle

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]

SCREENSHOT = "/tmp/besafe-chat.png"
XSS = "<img src=x onerror=alert(1)>"


async def test_complete_the_bullying_survey_by_tapping_and_typing(
    browser_context: BrowserContext, live_app: str
) -> None:
    page, watch = await open_chat(browser_context, live_app)
    assert (await state(page)).question_id == ""  # the menu of open surveys
    driver = SurveyDriver(page)
    await driver.until(lambda s: driver.turns >= 6)
    await page.mouse.move(0, 0)  # no hover highlight in the picture
    await page.screenshot(path=SCREENSHOT, animations="disabled")  # 375x740, mid-survey
    final = await driver.until()

    assert final.thanks
    thanks = page.locator(".msg--thanks .msg-text").last
    assert "Thank you for your answers" in await thanks.inner_text()
    assert "0800 1111" in await thanks.inner_text()
    assert driver.typed_digit and driver.typed_label, driver.typed
    assert len([t for t in driver.typed if t[0] != "free"]) >= 2
    # What was typed or tapped is shown as the young person's own bubbles.
    for _, text in driver.typed:
        assert text in final.users
    assert len(final.users) >= len(driver.typed) + len(driver.tapped)
    # Every earlier set of buttons is closed; only the latest (a menu, if any) is open.
    assert await page.locator(".choices:not(.choices--closed)").count() <= 1
    watch.assert_clean()


async def test_reload_mid_survey_shows_the_current_question_again(
    browser_context: BrowserContext, live_app: str
) -> None:
    page, watch = await open_chat(browser_context, live_app)
    driver = SurveyDriver(page)
    before = await driver.until(lambda s: driver.turns >= 4 and not s.multi)
    assert before.question_id and not before.question_id.startswith("__")

    await page.reload()
    await wait_idle(page)
    after = await state(page)
    assert after.question_id == before.question_id
    assert after.question_text == before.question_text
    assert any("Welcome back" in text for text in await page.locator(".msg--bot").all_inner_texts())
    # Earlier bubbles come back from this tab's sessionStorage, with their buttons closed.
    assert after.users[: len(before.users)] == before.users
    assert after.bot_count > before.bot_count
    assert await page.locator(".choices:not(.choices--closed)").count() == 1

    final = await driver.until()
    assert final.thanks
    watch.assert_clean()


async def test_quick_exit_goes_to_the_neutral_page_and_back_does_not_return(
    browser_context: BrowserContext, live_app: str
) -> None:
    page = await browser_context.new_page()
    watch = Watch()
    watch.attach(page)
    await page.goto("https://example.org/start")  # a page visited before the chat
    await page.goto(live_app + "/")
    await wait_idle(page)
    driver = SurveyDriver(page)
    await driver.until(lambda s: driver.turns >= 3)
    assert (await state(page)).users

    exit_button = page.get_by_role("link", name="Quick Exit")
    box = await exit_button.bounding_box()
    assert box is not None and box["height"] >= 44 and box["width"] >= 44
    assert box["x"] + box["width"] > 375 - 40 and box["y"] < 40  # top right
    await exit_button.click()
    await page.wait_for_url(TEST_QUICK_EXIT_URL)
    assert "Weather forecast" in await page.content()

    await page.go_back()
    assert page.url == "https://example.org/start"  # the chat is not in the history
    assert "Be-Safe" not in await page.content()

    # Back on the chat in the same tab: nothing is restored from sessionStorage.
    await page.goto(live_app + "/")
    await wait_idle(page)
    assert (await state(page)).users == []
    watch.assert_clean()


async def test_keyboard_only(browser_context: BrowserContext, live_app: str) -> None:
    page, watch = await open_chat(browser_context, live_app)
    exit_link = page.locator("#quick-exit")

    async def tab_to(prefix: str) -> str:
        """Focus Quick Exit, then Tab until a quick reply whose value starts with `prefix`."""
        await exit_link.focus()
        for _ in range(25):
            await page.keyboard.press("Tab")
            value = await page.evaluate("document.activeElement.dataset.value || ''")
            if value.startswith(prefix):
                return value
        raise AssertionError(f"could not Tab to a quick reply starting {prefix!r}")

    # The first Tab after Quick Exit lands on the newest quick replies.
    await exit_link.focus()
    await page.keyboard.press("Tab")
    assert await page.evaluate("document.activeElement.matches('.choices button')")
    ring = await page.evaluate(
        "(() => { const s = getComputedStyle(document.activeElement);"
        " return [s.outlineStyle, s.outlineWidth]; })()"
    )
    assert ring == ["solid", "3px"]

    await tab_to("bullying")
    await page.keyboard.press("Enter")
    await wait_idle(page)
    assert (await state(page)).question_id == "__consent__"

    await tab_to("yes")
    await page.keyboard.press(" ")
    await wait_idle(page)
    now = await state(page)
    assert now.question_id not in ("", "__consent__")
    first_answer = now.answers[0]
    await tab_to(first_answer["value"])
    await page.keyboard.press("Enter")
    await wait_idle(page)
    after = await state(page)
    assert after.question_id != now.question_id
    assert after.users[-1] == first_answer["label"]
    assert len(after.users) == 3  # menu, consent and the answer: one bubble each
    assert await page.evaluate("document.activeElement.id") == "message-input"
    watch.assert_clean()


async def test_html_typed_as_an_answer_is_shown_as_text(
    browser_context: BrowserContext, live_app: str
) -> None:
    page, watch = await open_chat(browser_context, live_app)
    driver = SurveyDriver(page, free_text=XSS)
    final = await driver.until(lambda s: ("free", XSS) in driver.typed)
    assert XSS in final.users
    await page.wait_for_timeout(300)  # time for an onerror to fire, if it could
    assert await page.locator("#transcript img").count() == 0
    shown = page.locator(".msg--user .msg-text", has_text="onerror").last
    assert await shown.inner_text() == XSS
    assert watch.dialogs == []
    watch.assert_clean()
