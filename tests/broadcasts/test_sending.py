"""Sending broadcasts to the fake Bot API (`bot.broadcasts.BroadcastSender`), both backends:
once per person, with a way to join; STOP mid-broadcast; blocked -> unsubscribed; 429."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timedelta

import pytest
import pytest_asyncio
from telegram import Bot

from bot.broadcasts import BroadcastSender, enqueue_due_broadcasts
from bot.dispatcher import Dispatcher
from bot.messages import InboundMessage
from bot.telegram.sender import TokenBucket
from bot.telegram.setup import build_application
from config.settings import Settings
from storage.batching import WriteBatcher
from storage.repository import Repository
from storage.tables_telegram import telegram_blocked
from surveys.broadcasting import QuietHours
from surveys.events import TextIn
from tests.bot.test_dispatcher import build_dispatcher, rows
from tests.broadcasts.helpers import add_campaign, add_subscriber, sends, settings, subscriber
from tests.telegram.fake_bot_api import BOT_USERNAME, TOKEN, FakeBotApi

START = datetime(2026, 5, 6, 10, 0)
NO_QUIET = QuietHours.parse("", "Europe/London")


class Clock:
    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


@pytest_asyncio.fixture
async def api() -> AsyncIterator[FakeBotApi]:
    fake = await FakeBotApi().start()
    yield fake
    await fake.close()


@pytest_asyncio.fixture
async def bot(api: FakeBotApi) -> AsyncIterator[Bot]:
    application = build_application(
        Settings(telegram_token=TOKEN, telegram_api_url=api.base_url)  # type: ignore[call-arg]
    )
    await application.initialize()
    yield application.bot
    await application.shutdown()


@pytest.fixture
def writes(repository: Repository) -> Iterator[WriteBatcher]:
    batcher = WriteBatcher(repository, workers=1)
    yield batcher
    batcher.close()


def sender(bot: Bot, writes: WriteBatcher, clock: Clock, **options: object) -> BroadcastSender:
    from tests.broadcasts.helpers import SECRET

    values: dict[str, object] = {
        "secret": SECRET,
        "rate": None,
        "quiet": NO_QUIET,
        "bot_username": BOT_USERNAME,
        "clock": clock,
    }
    values.update(options)
    return BroadcastSender(bot, writes, **values)  # type: ignore[arg-type]


async def drain(broadcasts: BroadcastSender) -> int:
    total = 0
    while count := await broadcasts.send_due():
        total += count
    return total


async def test_each_subscriber_gets_the_invitation_once_with_a_way_to_join(
    repository: Repository, writes: WriteBatcher, bot: Bot, api: FakeBotApi
) -> None:
    add_campaign(repository, "abw-2026", invitation="It's Anti-Bullying Week!", opens_at=START)
    chats = list(range(900001, 900031))
    for chat in chats:
        add_subscriber(repository, chat)
    enqueue_due_broadcasts(repository, START, settings())
    clock = Clock(START)
    broadcasts = sender(bot, writes, clock)
    assert await drain(broadcasts) == 30
    enqueue_due_broadcasts(repository, START + timedelta(minutes=1), settings())
    assert await drain(broadcasts) == 0  # nothing new: nobody gets it twice
    for chat in chats:
        (shown,) = api.chats[chat]
        assert shown.text.startswith("It's Anti-Bullying Week!")
        assert "/start abw-2026" in shown.text and "STOP" in shown.text
        (button,) = shown.buttons
        assert button["url"] == f"https://t.me/{BOT_USERNAME}?start=abw-2026"
    assert {row["status"] for row in sends(repository)} == {"sent"}


async def test_stop_during_a_broadcast_means_no_further_sends(
    repository: Repository, writes: WriteBatcher, bot: Bot, api: FakeBotApi
) -> None:
    dispatcher: Dispatcher = build_dispatcher(repository, writes)
    add_campaign(repository, "abw", opens_at=START, spread_minutes=30)
    first, second, third = 910001, 910002, 910003
    for chat in (first, second, third):
        await dispatcher.handle(InboundMessage("telegram", str(chat), TextIn("/subscribe")))
    enqueue_due_broadcasts(repository, START, settings())  # due at 10:00, 10:10, 10:20
    clock = Clock(START)
    broadcasts = sender(bot, writes, clock)
    assert await drain(broadcasts) == 1
    assert len(api.chats[first]) == 1
    await dispatcher.handle(InboundMessage("telegram", str(second), TextIn("Stop")))
    clock.at = START + timedelta(minutes=30)
    await drain(broadcasts)
    assert api.chats[second] == []
    assert len(api.chats[third]) == 1
    statuses = [row["status"] for row in sends(repository)]
    assert sorted(statuses) == ["cancelled", "sent", "sent"]


async def test_a_blocked_bot_unsubscribes_and_is_counted(
    repository: Repository, writes: WriteBatcher, bot: Bot, api: FakeBotApi
) -> None:
    add_campaign(repository, "abw", opens_at=START)
    rid = add_subscriber(repository, 920001)
    add_subscriber(repository, 920002)
    enqueue_due_broadcasts(repository, START, settings())
    api.fail("sendMessage", "403", times=1)
    await drain(sender(bot, writes, Clock(START)))
    statuses = {row["respondent_id"]: row["status"] for row in sends(repository)}
    assert statuses[rid] == "blocked"
    assert list(statuses.values()).count("sent") == 1
    assert subscriber(repository, rid)["unsubscribed_at"] is not None  # type: ignore[index]
    assert [row["respondent_id"] for row in rows(repository, telegram_blocked)] == [rid]
    # A later campaign never tries them again.
    add_campaign(repository, "sid", opens_at=START)
    enqueue_due_broadcasts(repository, START, settings())
    assert [row["respondent_id"] for row in sends(repository)].count(rid) == 1


async def test_telegram_asking_to_slow_down_puts_the_send_back_not_twice(
    repository: Repository, writes: WriteBatcher, bot: Bot, api: FakeBotApi
) -> None:
    add_campaign(repository, "abw", opens_at=START)
    add_subscriber(repository, 930001)
    enqueue_due_broadcasts(repository, START, settings())
    api.fail("sendMessage", "429", times=1, retry_after=30)
    clock = Clock(START)
    broadcasts = sender(bot, writes, clock)
    await drain(broadcasts)
    assert api.chats[930001] == []
    (row,) = sends(repository)
    assert row["status"] == "queued" and row["not_before"] >= START + timedelta(seconds=30)
    clock.at = START + timedelta(minutes=1)
    broadcasts._paused_until = 0.0  # the fake's 30 seconds have passed
    await drain(broadcasts)
    assert len(api.chats[930001]) == 1
    (row,) = sends(repository)
    assert row["status"] == "sent"


async def test_nothing_goes_in_quiet_hours(
    repository: Repository, writes: WriteBatcher, bot: Bot, api: FakeBotApi
) -> None:
    add_campaign(repository, "abw", opens_at=START)
    add_subscriber(repository, 940001)
    enqueue_due_broadcasts(repository, START, settings())  # queued at 10:00, no quiet hours
    night = QuietHours.parse("21:00-08:00", "Europe/London")
    clock = Clock(datetime(2026, 5, 6, 21, 30))  # 22:30 in London (BST)
    broadcasts = sender(bot, writes, clock, quiet=night)
    assert await drain(broadcasts) == 0
    assert api.chats[940001] == []
    clock.at = datetime(2026, 5, 7, 7, 0)  # 08:00 in London
    assert await drain(broadcasts) == 1


def test_broadcasts_leave_headroom_for_replies() -> None:
    now = [0.0]
    bucket = TokenBucket(30, 30, clock=lambda: now[0])
    taken = 0
    while bucket.try_take(keep=10):
        taken += 1
    assert taken == 20  # ten tokens stay for replies
    assert bucket.reserve() == 0.0  # a reply goes at once
    now[0] += 1.0
    assert bucket.try_take(keep=10)


async def test_stopping_gives_unstarted_claims_back_at_once(
    repository: Repository, writes: WriteBatcher, bot: Bot, api: FakeBotApi
) -> None:
    add_campaign(repository, "abw", opens_at=START)
    for chat in range(950001, 950011):
        add_subscriber(repository, chat)
    enqueue_due_broadcasts(repository, START, settings())
    broadcasts = sender(bot, writes, Clock(START), rate=2.0)  # claims 2 at a time, slowly
    task = asyncio.create_task(broadcasts.run())
    await api.wait_until(lambda: len(api.calls_to("sendMessage")) >= 1, what="a first send")
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    statuses = Counter(row["status"] for row in sends(repository))
    delivered = len(api.calls_to("sendMessage"))
    assert statuses == {"sent": delivered, "queued": 10 - delivered}  # none left "sending"
