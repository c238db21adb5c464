"""The chat page's own behaviour in Chromium, against a fake dispatcher.

Things the real engine makes hard to provoke on purpose (a failing server, a
double tap racing the reply) are tested here; the full journey through a real
survey is in test_chat_browser.py.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from aiohttp import web
from playwright.async_api import BrowserContext

from bot.messages import InboundMessage
from config.settings import Settings
from surveys.events import ChoiceIn, CommandIn, QuickReply, ResumeIn, Say, TextIn
from tests.fakes.fake_dispatcher import FakeDispatcher
from tests.web.chat_app import build_app
from tests.web.chat_driver import ACTIVE_GROUP, button, open_chat, state, tap, type_message
from web.chat import SORRY_TEXT

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]

WHERE = (
    QuickReply("school", "At school"),
    QuickReply("online", "Online"),
    QuickReply("elsewhere", "Somewhere, else"),
    QuickReply("prefer_not_to_say", "Prefer not to say"),
    QuickReply("__done__", "Done"),
    QuickReply("__skip__", "Skip"),
)
FEEL = (QuickReply("good", "Good"), QuickReply("bad", "Not good"))


class FakeSurvey:
    """Just enough of the engine: a multiple-choice question, then a single one."""

    def __init__(self) -> None:
        self.picked: list[str] = []
        self.at = "where"

    def __call__(self, inbound: InboundMessage) -> tuple[Say, ...]:
        event = inbound.event
        if isinstance(event, ChoiceIn) and event.question_id == "where" and self.at == "where":
            if event.value == "__done__":
                self.at = "feel"
                return (self.ask_feel(),)
            if event.value in self.picked:
                self.picked.remove(event.value)
            else:
                self.picked.append(event.value)
            order = [c.value for c in WHERE]
            self.picked.sort(key=order.index)
            labels = ", ".join(c.label for c in WHERE if c.value in self.picked)
            text = (
                f"Picked so far: {labels}.\nTap more, or tap Done when you've finished."
                if self.picked
                else "Nothing picked yet. Tap your answers, then tap Done."
            )
            return (Say(text, WHERE, "where", multi=True, kind="question"),)
        if isinstance(event, ChoiceIn) and event.question_id == "feel":
            self.at = "end"
            return (Say("Thank you!", kind="thanks"),)
        if isinstance(event, TextIn):
            return (Say(f"You said: {event.text}"), self.current())
        if isinstance(event, CommandIn) and event.name == "help":
            return (Say("Childline 0800 1111", kind="help"), self.current())
        return (Say("Hi, I'm the Be-Safe bot 👋"), self.current())

    def ask_where(self) -> Say:
        return Say(
            "Question 1 of 2\nWhere did it happen?\n"
            "You can pick more than one. Tap Done when you've finished.",
            WHERE,
            "where",
            multi=True,
            kind="question",
        )

    def ask_feel(self) -> Say:
        return Say("Question 2 of 2\nHow do you feel?", FEEL, "feel", kind="question")

    def current(self) -> Say:
        return self.ask_where() if self.at == "where" else self.ask_feel()


@pytest.fixture
def fake() -> FakeDispatcher:
    return FakeDispatcher(answer=FakeSurvey())


@pytest.fixture
def chat_url(
    serve_app: Callable[[Callable[[], web.Application]], str],
    fake: FakeDispatcher,
    tmp_path: Path,
) -> str:
    settings = Settings(data_dir=tmp_path, quick_exit_url="https://example.org/weather")
    return serve_app(lambda: build_app(settings, fake))


async def test_multiple_choice_toggles_in_place_then_done(
    browser_context: BrowserContext, chat_url: str, fake: FakeDispatcher
) -> None:
    page, watch = await open_chat(browser_context, chat_url)
    before = await state(page)
    assert before.multi and before.question_id == "where"
    assert [c["pressed"] for c in before.choices] == ["false"] * 3 + [None] * 3

    await tap(page, "school")
    await tap(page, "elsewhere")  # a label with a comma in it
    await tap(page, "school")  # and off again
    now = await state(page)
    assert [c["pressed"] for c in now.answers] == ["false", "false", "true"]
    assert now.bot_count == before.bot_count  # updated in place, no bubble per tap
    status = page.locator(ACTIVE_GROUP).last.locator(".picked-status")
    assert await status.inner_text() == (
        "Picked so far: Somewhere, else.\nTap more, or tap Done when you've finished."
    )

    await tap(page, "__done__")
    after = await state(page)
    assert after.users == ["Somewhere, else"]
    assert after.question_id == "feel"
    assert await page.locator(".choices--multi button:disabled").count() == len(WHERE)
    assert fake.events[1:] == [
        ChoiceIn("school", "where"),
        ChoiceIn("elsewhere", "where"),
        ChoiceIn("school", "where"),
        ChoiceIn("__done__", "where"),
    ]
    watch.assert_clean()


async def test_a_double_tap_answers_once(
    browser_context: BrowserContext, chat_url: str, fake: FakeDispatcher
) -> None:
    page, watch = await open_chat(browser_context, chat_url)
    await tap(page, "__done__")
    await button(page, "good").dblclick()
    await page.locator(".msg--thanks").wait_for()
    assert fake.events[-1] == ChoiceIn("good", "feel")
    assert fake.events.count(ChoiceIn("good", "feel")) == 1
    assert (await state(page)).users[-1] == "Good"
    watch.assert_clean()


async def test_a_failure_is_explained_kindly_and_the_typed_text_is_kept(
    browser_context: BrowserContext, chat_url: str, fake: FakeDispatcher
) -> None:
    page, watch = await open_chat(browser_context, chat_url)
    fake.fail_with = RuntimeError("database is locked")
    box = page.get_by_label("Type your message")
    await type_message(page, "I don't like going to school")
    assert await box.input_value() == "I don't like going to school"
    assert await page.locator(".msg--error .msg-text").last.inner_text() == SORRY_TEXT
    assert await page.locator(".msg--failed").count() == 1

    fake.fail_with = None
    await box.press("Enter")  # the kept text goes again as it is
    await page.locator(".msg--bot .msg-text", has_text="You said: I don't").wait_for()
    assert await box.input_value() == ""
    assert fake.events[-2:] == [TextIn("I don't like going to school")] * 2
    watch.assert_clean()


async def test_enter_sends_and_shift_enter_makes_a_new_line(
    browser_context: BrowserContext, chat_url: str, fake: FakeDispatcher
) -> None:
    page, watch = await open_chat(browser_context, chat_url)
    box = page.get_by_label("Type your message")
    await box.click()
    await page.keyboard.type("line one")
    await page.keyboard.press("Shift+Enter")
    await page.keyboard.type("line two")
    await page.keyboard.press("Enter")
    await page.locator(".msg--bot .msg-text", has_text="You said: line one").wait_for()
    assert fake.events[-1] == TextIn("line one\nline two")
    user = page.locator(".msg--user .msg-text").last
    assert await user.inner_text() == "line one\nline two"
    assert await user.evaluate("p => getComputedStyle(p).whiteSpace") == "pre-wrap"
    assert await page.evaluate("document.activeElement.id") == "message-input"
    watch.assert_clean()


async def test_help_button_sends_the_help_command(
    browser_context: BrowserContext, chat_url: str, fake: FakeDispatcher
) -> None:
    page, watch = await open_chat(browser_context, chat_url)
    await page.get_by_role("button", name="Help", exact=True).click()
    await page.locator(".msg--help").wait_for()
    assert fake.events == [ResumeIn(), CommandIn("help")]
    watch.assert_clean()


async def test_escape_twice_is_a_quick_exit(browser_context: BrowserContext, chat_url: str) -> None:
    page, watch = await open_chat(browser_context, chat_url)
    await page.keyboard.press("Escape")
    await page.wait_for_timeout(100)
    assert page.url.startswith(chat_url)  # once is not enough
    await page.keyboard.press("Escape")
    await page.wait_for_url("https://example.org/weather")
    watch.assert_clean()
