"""The real app (create_app) with a Telegram token, talking to a FakeBotApi, in the test's loop.

`TelegramHarness.start(...)` serves the app through pytest-aiohttp's client; updates reach
it by long polling (the fake queues them) or by webhook (posted through the client).
`settle()` waits until everything sent in has been processed and every reply sent.
`TelegramPerson` plays a young person taking a survey by taps and typing.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient

from bot.telegram.setup import SECRET_HEADER, TELEGRAM
from config.settings import SHIPPED_SURVEYS_DIR, Settings
from surveys.definition import load_survey_dir
from surveys.model import PREFER_NOT_TO_SAY
from tests.telegram.fake_bot_api import TOKEN, FakeBotApi, FakeUser, Shown

SECRET_KEY = "telegram-test-secret-key-0123456789abcdefghij"
WEBHOOK_PATH = "/telegram/hook-3f9a"
WEBHOOK_SECRET = "hook_secret-0123456789"
NON_ANSWERS = frozenset({PREFER_NOT_TO_SAY, "__skip__", "__done__"})
FREE_TEXT_ANSWER = "Nothing else, thanks. School is mostly ok."
NUMBER_ANSWER = "2"
THANKS = {
    survey.id: (survey.thanks.strip() or "Thank you for answering our questions!")
    for survey in load_survey_dir(SHIPPED_SURVEYS_DIR)[0]
}

ClientFactory = Callable[..., Awaitable[TestClient]]


def telegram_settings(
    data_dir: Path, database_url: str, api: FakeBotApi, mode: str, **overrides: Any
) -> Settings:
    values: dict[str, Any] = {
        "data_dir": data_dir,
        "database_url": database_url,
        "secret_key": SECRET_KEY,
        "log_format": "text",
        "telegram_token": TOKEN,
        "telegram_api_url": api.base_url,
        "telegram_mode": mode,
        "telegram_webhook_url": f"https://besafe.example.org{WEBHOOK_PATH}",
        "telegram_webhook_path": WEBHOOK_PATH,
        "telegram_webhook_secret": WEBHOOK_SECRET,
        # Tests go as fast as they can; the limits are tested on the sender itself.
        "telegram_rate_per_second": 0,
        "telegram_chat_rate_per_second": 0,
    }
    values.update(overrides)
    return Settings(**values)


@dataclass
class TelegramHarness:
    api: FakeBotApi
    client: TestClient
    mode: str
    settings: Settings

    @property
    def app(self) -> web.Application:
        return self.client.server.app  # type: ignore[return-value]

    @property
    def channel(self) -> Any:
        return self.app[TELEGRAM].channel

    async def ready(self) -> None:
        await self.api.wait_until(lambda: self.channel is not None, what="the channel to start")

    def user(self, chat_id: int | None = None, **kwargs: Any) -> FakeUser:
        deliver = self.post if self.mode == "webhook" else None
        return FakeUser(self.api, chat_id, deliver=deliver, **kwargs)

    async def post(self, update: dict, *, expect: int = 200) -> int:
        response = await self.client.post(
            WEBHOOK_PATH, json=update, headers={SECRET_HEADER: WEBHOOK_SECRET}
        )
        body = await response.read()
        assert response.status == expect, (response.status, update)
        if response.status == 200:
            await self.api.webhook_reply(body, response.content_type)
        return response.status

    def idle(self) -> bool:
        channel = self.channel
        if channel is None:
            return False
        return (
            not self.api.pending_updates
            and not channel._chains
            and not channel.sender._tasks
            and not channel._background
        )

    async def settle(self, timeout: float = 15.0) -> None:
        await self.api.wait_until(self.idle, timeout=timeout, what="the bot to settle")
        await self.channel.sender.flush()


async def start_harness(
    aiohttp_client: ClientFactory,
    tmp_path: Path,
    database_url: str,
    *,
    mode: str = "polling",
    api: FakeBotApi | None = None,
    **overrides: Any,
) -> TelegramHarness:
    from web.app import create_app

    if api is None:
        api = await FakeBotApi().start()
    settings = telegram_settings(tmp_path / "data", database_url, api, mode, **overrides)
    client = await aiohttp_client(create_app(settings))
    harness = TelegramHarness(api, client, mode, settings)
    await harness.ready()
    return harness


# ---------------------------------------------------------------- a young person


def parse_button(button: dict) -> tuple[str | None, str | None]:
    """(question id, value) our callback data carries (tests may read it; Telegram shows it
    to nobody)."""
    data = str(button.get("callback_data", ""))
    body, _, _ = data.rpartition("|")
    if body.startswith("~"):
        return None, None
    question_id, _, value = body.partition("|")
    return question_id or None, value


@dataclass
class TelegramPerson:
    harness: TelegramHarness
    user: FakeUser
    turns: int = 0
    seen: list[str] = field(default_factory=list)

    async def act(self, action: Awaitable[object]) -> list[Shown]:
        before = len(self.user.shown)
        await action
        await self.harness.settle()
        return self.user.shown[before:]

    async def take_survey(
        self, survey_id: str, *, stop_after: int | None = None, max_turns: int = 120
    ) -> list[Shown]:
        new = await self.act(self.user.command("start"))
        previous_question: str | None = None
        for turn in range(max_turns):
            if any(THANKS[survey_id] in shown.text for shown in new):
                return new
            if stop_after is not None and turn >= stop_after:
                return new
            assert new, f"no reply; chat shows {self.user.texts()[-3:]}"
            last = self.user.shown[-1]
            action = self._next(survey_id, last, previous_question, turn)
            previous_question = last.text
            new = await self.act(action)
            self.turns += 1
        raise AssertionError(f"survey never finished; last message {self.user.texts()[-1]!r}")

    def _next(
        self, survey_id: str, last: Shown, previous: str | None, turn: int
    ) -> Awaitable[object]:
        buttons = [(button, *parse_button(button)) for button in last.buttons]
        if buttons:
            for button, _, value in buttons:
                if value and value.startswith(f"{survey_id}-v"):
                    return self.user.tap(data=button["callback_data"])
            answers = [(b, q, v) for b, q, v in buttons if v not in NON_ANSWERS]
            for button, question_id, value in answers:
                if question_id == "school_year" and value == "y8":
                    return self.user.tap(data=button["callback_data"])
            if any(value == "__done__" for _, _, value in buttons):
                return self.user.say("1 and 2")  # multiple choice, typed
            if answers:
                button = answers[0][0]
                if turn % 3 == 1:
                    return self.user.say(button["text"])
                return self.user.tap(data=button["callback_data"])
        if previous is not None and last.text == previous:
            return self.user.say(NUMBER_ANSWER)  # free text refused: a number question
        return self.user.say(FREE_TEXT_ANSWER)


@contextlib.asynccontextmanager
async def fake_api() -> Any:
    api = await FakeBotApi().start()
    try:
        yield api
    finally:
        await api.close()
