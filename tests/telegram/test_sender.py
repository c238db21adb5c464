"""The sender on its own, through python-telegram-bot against the fake Bot API.

Calls here have no outbox row (`row_id` None): what is checked is what reaches
Telegram and how each call ends. Outcomes written to the outbox are tested end to
end in test_channel.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, cast

import pytest
import pytest_asyncio
from telegram import Bot
from telegram.error import BadRequest, NetworkError

from bot.telegram.request import AiohttpRequest
from bot.telegram.sender import Outgoing, Sender
from storage.batching import WriteBatcher
from tests.telegram.fake_bot_api import TOKEN, FakeBotApi


class _NoWrites:
    """Stands in for the write queue: calls without a row have nothing to record."""

    def __init__(self) -> None:
        self.units: list[Any] = []

    async def run(self, work: Any) -> None:
        self.units.append(work)


@pytest_asyncio.fixture
async def bot(api: FakeBotApi) -> AsyncIterator[Bot]:
    made = Bot(TOKEN, base_url=api.base_url, request=AiohttpRequest())
    await made.initialize()
    yield made
    await made.shutdown()


def sender(bot: Bot, **options: Any) -> Sender:
    options = {"rate": 0, "chat_rate": 0, "backoff": 0.01, **options}
    return Sender(bot, cast(WriteBatcher, _NoWrites()), **options)


def message(chat_id: int, text: str) -> Outgoing:
    item = Outgoing(None, chat_id, "send", text)
    item.done = asyncio.get_running_loop().create_future()
    return item


async def test_a_send_that_may_have_arrived_is_tried_once_more_then_given_up(
    api: FakeBotApi, bot: Bot
) -> None:
    api.fail("sendMessage", "drop", times=5)  # every answer lost; each message arrives
    out = sender(bot)
    item = message(41, "Question 3 of 8")
    out.submit([item])
    with pytest.raises(NetworkError):
        await item.done  # type: ignore[misc]
    await out.idle()
    assert api.texts(41) == ["Question 3 of 8", "Question 3 of 8"]  # at most one duplicate
    await out.close()


async def test_an_edit_whose_answer_was_lost_is_made_again_and_not_modified_is_done(
    api: FakeBotApi, bot: Bot
) -> None:
    out = sender(bot)
    first = message(42, "Pick one")
    out.submit([first])
    message_id = await first.done  # type: ignore[misc]
    api.fail("editMessageText", "drop", times=3)  # the first edit is applied, answer lost
    edit = Outgoing(None, 42, "edit", "Pick one\n✔ Yes", message_id=message_id)
    edit.done = asyncio.get_running_loop().create_future()
    out.submit([edit])
    await edit.done  # type: ignore[misc]  # finished (a give-up would raise here)
    assert len(api.calls_to("editMessageText", 42)) == 2  # again: "message is not modified"
    assert api.texts(42) == ["Pick one\n✔ Yes"]
    await out.close()


async def test_a_refused_message_is_given_up_at_once(api: FakeBotApi, bot: Bot) -> None:
    api.fail("sendMessage", "400")
    out = sender(bot)
    refused, later = message(43, "too long, say"), message(43, "next")
    out.submit([refused, later])
    with pytest.raises(BadRequest):
        await refused.done  # type: ignore[misc]
    await later.done  # type: ignore[misc]
    assert len(api.calls_to("sendMessage", 43)) == 2
    assert api.texts(43) == ["next"]
    await out.close()


async def test_no_more_than_the_cap_of_calls_at_once_and_nothing_dropped(
    api: FakeBotApi, bot: Bot
) -> None:
    api.fail("sendMessage", "hold", times=1000)
    out = sender(bot, in_flight=2)
    items = [message(chat, f"{chat}: {n}") for chat in range(50, 56) for n in range(3)]
    out.submit(items)
    await api.wait_until(lambda: len(api.calls_to("sendMessage")) >= 2, what="two calls")
    for _ in range(20):  # give any call beyond the cap every chance to be made
        await asyncio.sleep(0.01)
    assert len(api.calls_to("sendMessage")) == 2
    assert out.queued == len(items)
    api.clear_failures()
    api.release()
    await asyncio.gather(*(item.done for item in items if item.done is not None))
    for chat in range(50, 56):  # each chat's messages arrive once each, in order
        assert api.texts(chat) == [f"{chat}: {n}" for n in range(3)]
    await out.close()
