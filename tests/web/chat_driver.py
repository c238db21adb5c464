"""Helpers that drive the chat page in Playwright the way a young person would."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from playwright.async_api import BrowserContext, ConsoleMessage, Dialog, Locator, Page

ACTIVE_GROUP = ".choices:not(.choices--closed)"
# Quick replies that are not answers to the question itself.
NON_ANSWERS = frozenset({"prefer_not_to_say", "__skip__", "__done__", "__keep__"})

_STATE_JS = """() => {
  const groups = [...document.querySelectorAll('.choices:not(.choices--closed)')];
  const group = groups.length ? groups[groups.length - 1] : null;
  const bots = [...document.querySelectorAll('.msg--bot .msg-text')];
  const users = [...document.querySelectorAll('.msg--user .msg-text')];
  const asked = group && group.previousElementSibling
    ? group.previousElementSibling.querySelector('.msg-text') : null;
  return {
    thanks: !!document.querySelector('.msg--thanks'),
    lastBot: bots.length ? bots[bots.length - 1].textContent : '',
    botCount: bots.length,
    users: users.map((p) => p.textContent),
    hasGroup: !!group,
    questionId: group ? group.dataset.questionId : null,
    questionText: asked ? asked.textContent : '',
    multi: group ? group.classList.contains('choices--multi') : false,
    choices: group ? [...group.querySelectorAll('button')].map((b) => ({
      value: b.dataset.value, label: b.textContent, pressed: b.getAttribute('aria-pressed'),
    })) : [],
  };
}"""


@dataclass
class ChatState:
    thanks: bool
    last_bot: str
    bot_count: int
    users: list[str]
    has_group: bool
    question_id: str | None
    question_text: str
    multi: bool
    choices: list[dict[str, Any]]

    @property
    def answers(self) -> list[dict[str, Any]]:
        return [choice for choice in self.choices if choice["value"] not in NON_ANSWERS]


@dataclass
class Watch:
    """What went wrong on a page: JS errors, console errors (CSP violations), dialogs."""

    errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)

    def attach(self, page: Page) -> None:
        page.on("pageerror", lambda error: self.errors.append(f"pageerror: {error}"))
        page.on("console", self._console)
        page.on("dialog", self._dialog)

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.errors.append(f"console: {message.text}")

    async def _dialog(self, dialog: Dialog) -> None:
        self.dialogs.append(dialog.message)
        await dialog.dismiss()

    def assert_clean(self) -> None:
        assert self.dialogs == [], self.dialogs
        # A failed request the test provoked on purpose (503) is logged by Chromium.
        real = [e for e in self.errors if "status of 503" not in e]
        assert real == [], real


async def open_chat(context: BrowserContext, url: str) -> tuple[Page, Watch]:
    page = await context.new_page()
    watch = Watch()
    watch.attach(page)
    await page.goto(url + "/")
    await wait_idle(page)
    return page, watch


async def wait_idle(page: Page, timeout: float = 15_000) -> None:
    """Until no request is in flight (the page shows "Sending…" while one is)."""
    await page.wait_for_function(
        """() => {
          const form = document.getElementById('composer');
          return form && form.getAttribute('aria-busy') === 'false';
        }""",
        timeout=timeout,
    )


async def state(page: Page) -> ChatState:
    raw = await page.evaluate(_STATE_JS)
    return ChatState(
        thanks=raw["thanks"],
        last_bot=raw["lastBot"],
        bot_count=raw["botCount"],
        users=raw["users"],
        has_group=raw["hasGroup"],
        question_id=raw["questionId"],
        question_text=raw["questionText"],
        multi=raw["multi"],
        choices=raw["choices"],
    )


def button(page: Page, value: str) -> Locator:
    return page.locator(ACTIVE_GROUP).last.locator(f"button[data-value={json.dumps(value)}]")


async def tap(page: Page, value: str) -> None:
    await button(page, value).click()
    await wait_idle(page)


async def type_message(page: Page, text: str) -> None:
    box = page.get_by_label("Type your message")
    await box.fill(text)
    await box.press("Enter")
    await wait_idle(page)


FREE_TEXT_ANSWER = "School is mostly ok."
PREFERRED_YEAR = "Year 8"  # in every shipped survey's audience


@dataclass
class SurveyDriver:
    """Answers whatever question is on screen, as a young person would.

    Taps the first real answer (not "Prefer not to say" or "Skip"), types into
    free-text and number questions, and, to prove typing works for choice
    questions too, types "2" for the first rating question (or, failing that,
    a later choice question) and the label of the first answer for the first
    ordinary choice question, instead of tapping.
    """

    page: Page
    survey_prefix: str = "bullying"
    free_text: str = FREE_TEXT_ANSWER
    typed: list[tuple[str, str]] = field(default_factory=list)  # (question id, what was typed)
    tapped: list[tuple[str, str]] = field(default_factory=list)  # (question id, value)
    turns: int = 0

    @property
    def typed_digit(self) -> bool:
        return any(text == "2" for _, text in self.typed)

    @property
    def typed_label(self) -> bool:
        return any(text != "2" and qid != "free" for qid, text in self.typed)

    async def step(self) -> ChatState:
        """Answer the question on screen once; the state afterwards."""
        now = await state(self.page)
        assert not now.thanks, "the survey is already over"
        self.turns += 1
        qid = now.question_id
        if now.has_group and qid == "":  # the menu of surveys
            menu = [c for c in now.choices if c["value"].startswith(self.survey_prefix)]
            assert menu, f"no {self.survey_prefix} survey in the menu: {now.choices}"
            await tap(self.page, menu[0]["value"])
        elif qid == "__consent__":
            await tap(self.page, "yes")
        elif now.multi:
            await tap(self.page, now.answers[0]["value"])
            await tap(self.page, "__done__")
        elif now.answers and qid is not None:
            await self._choose(now, qid)
        else:  # free text or number: typing is the only way
            text = "3" if "Type a number" in (now.question_text or now.last_bot) else self.free_text
            await type_message(self.page, text)
            self.typed.append(("free", text))
        return await state(self.page)

    async def _choose(self, now: ChatState, qid: str) -> None:
        answers = now.answers
        pick = next((c for c in answers if c["label"] == PREFERRED_YEAR), answers[0])
        rating = all(c["value"].isdigit() for c in answers)
        plain = qid not in ("school_year", "__paused__", "__confirm__") and not qid.startswith("__")
        if not self.typed_digit and plain and (rating or self.turns > 12) and len(answers) >= 2:
            await self._type(qid, "2")
        elif not self.typed_label and plain and not rating:
            await self._type(qid, pick["label"])
        else:
            await tap(self.page, pick["value"])
            self.tapped.append((qid, pick["value"]))

    async def _type(self, qid: str, text: str) -> None:
        await type_message(self.page, text)
        after = await state(self.page)
        assert after.thanks or after.question_id != qid, (
            f"typing {text!r} did not answer {qid}: {after.last_bot!r}"
        )
        self.typed.append((qid, text))

    async def until(
        self, done: Callable[[ChatState], bool] | None = None, max_turns: int = 80
    ) -> ChatState:
        """Answer until `done(state)` (default: the thanks message) is true."""
        done = done or (lambda s: s.thanks)
        now = await state(self.page)
        for _ in range(max_turns):
            if done(now):
                return now
            now = await self.step()
        raise AssertionError(f"never finished; last message: {now.last_bot!r}")
