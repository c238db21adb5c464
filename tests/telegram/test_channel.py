"""The Telegram channel end to end: the real app and python-telegram-bot against a fake Bot API.

Every test runs on SQLite and PostgreSQL (the `database_url` fixture); the ones that
matter for both ways updates arrive run in polling and webhook mode.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, MetaData, func, select

from bot.relay import RelayError
from bot.subscriptions import OFFER
from bot.telegram.channel import GROUP_TEXT, NOT_TEXT, REFUSED_TAP, STALE_TAP
from bot.telegram.render import CHOSEN_MARK
from storage import tables
from storage.db import create_db_engine
from storage.tables_telegram import telegram_blocked, telegram_inbox, telegram_outbox
from tests.telegram.fake_bot_api import Shown, callback_update, message_update
from tests.telegram.harness import (
    NON_ANSWERS,
    SECRET_KEY,
    WEBHOOK_PATH,
    WEBHOOK_SECRET,
    TelegramPerson,
    parse_button,
)

SHIPPED = ("bullying", "online_safety", "healthy_relationships")
MODES = ("polling", "webhook")


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    made = create_db_engine(database_url)
    yield made
    made.dispose()


def rows(engine: Engine, table) -> list[dict]:
    with engine.connect() as connection:
        return [dict(row._mapping) for row in connection.execute(select(table))]


def count(engine: Engine, table) -> int:
    with engine.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(table)).scalar_one())


def answers(engine: Engine) -> list[dict]:
    return rows(engine, tables.answers)


async def start_survey(person: TelegramPerson, code: str = "bullying-v1") -> None:
    """Deep link into `code`, agree, and stop at the school-year question."""
    await person.act(person.user.command("start", code))
    await person.act(person.user.tap(data=_button(person, "yes")["callback_data"]))


def _button(person: TelegramPerson, value: str) -> dict:
    for button in person.user.last_buttons:
        if parse_button(button)[1] == value:
            return button
    raise AssertionError(f"no button for {value!r}: {person.user.last_buttons}")


# ---------------------------------------------------------------- whole surveys


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("survey_id", SHIPPED)
async def test_each_shipped_survey_completes_by_taps_and_typing(
    telegram_app, engine: Engine, mode: str, survey_id: str
) -> None:
    harness = await telegram_app(mode)
    person = TelegramPerson(harness, harness.user())
    await person.take_survey(survey_id)
    completed = [r for r in rows(engine, tables.responses) if r["status"] == "completed"]
    assert len(completed) == 1
    stored = {a["question_id"]: a for a in answers(engine)}
    assert stored["school_year"]["value_json"] == '"y8"'
    assert len(stored) >= 8
    taps = len(harness.api.calls_to("answerCallbackQuery"))
    typed = sum(1 for update in person.user.sent if "message" in update)
    assert taps >= 3 and typed >= 3  # both ways of answering were used
    # Each tapped question now shows the chosen answer, and no message still has buttons
    # except the last two sent (the menu offering another survey, and the offer to hear
    # about new surveys: bot.subscriptions).
    shown = person.user.shown
    assert any(CHOSEN_MARK in message.text for message in shown)
    assert shown[-1].text == OFFER and shown[-1].buttons
    assert [m for m in shown[:-2] if m.buttons] == []
    assert count(engine, telegram_outbox) == count(  # nothing pending, failed or uncertain
        engine, telegram_outbox.select().where(telegram_outbox.c.status == "sent").subquery()
    )
    assert count(engine, telegram_inbox) == 0


@pytest.mark.parametrize("mode", MODES)
async def test_commands_are_registered_and_the_webhook_set_or_removed(
    telegram_app, mode: str
) -> None:
    harness = await telegram_app(mode)
    names = [command["command"] for command in harness.api.commands]
    assert names == [
        "start",
        "help",
        "surveys",
        "skip",
        "back",
        "stop",
        "forget",
        "subscribe",
        "unsubscribe",
    ]
    if mode == "webhook":
        hook = harness.api.webhook
        assert hook is not None
        assert hook["url"].endswith(WEBHOOK_PATH)
        assert hook["secret_token"] == WEBHOOK_SECRET
        assert sorted(hook["allowed_updates"]) == ["callback_query", "message"]
    else:
        assert "deleteWebhook" in harness.api.methods()
        # The first poll starts just after the channel is ready (a race on a busy machine).
        await harness.api.wait_until(lambda: harness.api.calls_to("getUpdates"), what="a poll")
        polls = harness.api.calls_to("getUpdates")
        assert polls and sorted(polls[0].params["allowed_updates"]) == [
            "callback_query",
            "message",
        ]


async def test_a_deep_link_opens_its_survey(telegram_app, engine: Engine) -> None:
    harness = await telegram_app("polling")
    person = TelegramPerson(harness, harness.user())
    new = await person.act(person.user.command("start", "online_safety-v1"))
    assert new[-1].buttons
    assert {parse_button(b)[0] for b in new[-1].buttons} == {"__consent__"}
    await person.act(person.user.tap(data=_button(person, "yes")["callback_data"]))
    (response,) = rows(engine, tables.responses)
    assert response["survey_id"] == "online_safety"


# ---------------------------------------------------------------- exactly once


@pytest.mark.parametrize("mode", MODES)
async def test_a_double_tap_records_one_answer_and_asks_the_next_question_once(
    telegram_app, engine: Engine, mode: str
) -> None:
    harness = await telegram_app(mode)
    person = TelegramPerson(harness, harness.user())
    await start_survey(person)
    question = person.user.last_with_buttons
    assert question is not None
    data = _button(person, "y8")["callback_data"]
    before = len(person.user.shown)
    first = callback_update(person.user.chat_id, question, data)
    second = callback_update(person.user.chat_id, question, data)
    if mode == "webhook":
        await asyncio.gather(
            harness.post({"update_id": harness.api.next_update_id(), **first}),
            harness.post({"update_id": harness.api.next_update_id(), **second}),
        )
    else:
        harness.api.push_update(first)
        harness.api.push_update(second)
    await harness.settle()
    (answer,) = answers(engine)
    assert (answer["question_id"], answer["value_json"]) == ("school_year", '"y8"')
    new = person.user.shown[before:]
    assert len(new) == 1 and new[0].buttons  # the next question, once
    assert question.buttons == [] and question.text.endswith(f"{CHOSEN_MARK} Year 8")
    replies = [call.params.get("text") for call in harness.api.calls_to("answerCallbackQuery")]
    assert replies[-2:].count(STALE_TAP) == 1


async def test_a_tap_through_the_webhook_is_answered_in_the_webhooks_reply(
    telegram_app, engine: Engine
) -> None:
    """Telegram makes the call a webhook answer carries: the tap's answer goes there, after
    the turn has committed, instead of costing a Bot API call of its own."""
    harness = await telegram_app("webhook")
    person = TelegramPerson(harness, harness.user())
    await start_survey(person)
    await harness.settle()
    question = person.user.last_with_buttons
    assert question is not None
    update = {
        "update_id": harness.api.next_update_id(),
        **callback_update(person.user.chat_id, question, _button(person, "y8")["callback_data"]),
    }
    answered = len(harness.api.calls_to("answerCallbackQuery"))
    response = await harness.client.post(
        WEBHOOK_PATH, json=update, headers={"X-Telegram-Bot-Api-Secret-Token": WEBHOOK_SECRET}
    )
    assert response.status == 200
    reply = await response.json()
    assert reply == {
        "method": "answerCallbackQuery",
        "callback_query_id": update["callback_query"]["id"],
    }
    assert [(a["question_id"], a["value_json"]) for a in answers(engine)] == [
        ("school_year", '"y8"')
    ]  # stored before the answer was given
    await harness.settle()
    assert len(harness.api.calls_to("answerCallbackQuery")) == answered  # no call of its own
    # The same button tapped again: its answer says it is already answered.
    again = await harness.client.post(
        WEBHOOK_PATH,
        json={**update, "update_id": harness.api.next_update_id()},
        headers={"X-Telegram-Bot-Api-Secret-Token": WEBHOOK_SECRET},
    )
    assert (await again.json())["text"] == STALE_TAP


async def test_the_same_webhook_update_three_times_has_one_effect(
    telegram_app, engine: Engine
) -> None:
    harness = await telegram_app("webhook")
    person = TelegramPerson(harness, harness.user())
    await start_survey(person)
    sends = len(harness.api.calls_to("sendMessage"))
    edits = len(harness.api.calls_to("editMessageText"))
    question = person.user.last_with_buttons
    update = {
        "update_id": harness.api.next_update_id(),
        **callback_update(person.user.chat_id, question, _button(person, "y9")["callback_data"]),
    }
    for _ in range(3):
        await harness.post(update)  # acknowledged every time
    await harness.settle()
    assert [(a["question_id"], a["value_json"]) for a in answers(engine)] == [
        ("school_year", '"y9"')
    ]
    assert len(harness.api.calls_to("sendMessage")) == sends + 1
    assert len(harness.api.calls_to("editMessageText")) == edits + 1
    delivered = [r for r in rows(engine, tables.processed_deliveries) if r["channel"] == "telegram"]
    assert str(update["update_id"]) in {r["delivery_id"] for r in delivered}


@pytest.mark.parametrize("mode", MODES)
async def test_a_restart_mid_survey_resumes_at_the_same_question(
    telegram_app, engine: Engine, mode: str
) -> None:
    harness = await telegram_app(mode)
    person = TelegramPerson(harness, harness.user())
    await person.take_survey("online_safety", stop_after=5)
    asked = person.user.shown[-1]
    assert asked.buttons  # a question with buttons is open when ...
    await harness.client.close()  # ... the server stops ...
    harness = await telegram_app(mode)  # ... and starts again on the same database
    await harness.settle()
    again = person.user.shown[-1]
    # The open question is asked again (old buttons stop working at Telegram after a
    # while), and the old buttons are removed.
    assert again.text == asked.text and again.message_id != asked.message_id
    assert asked.buttons == [] and again.buttons
    person.harness = harness
    if mode == "webhook":
        person.user._deliver = harness.post
    before = len(rows(engine, tables.answers))
    await person.take_survey("online_safety")
    assert len(rows(engine, tables.answers)) > before
    (response,) = rows(engine, tables.responses)
    assert response["status"] == "completed"


async def test_a_kept_but_unprocessed_update_is_processed_after_a_restart(
    telegram_app, engine: Engine
) -> None:
    harness = await telegram_app("polling")
    user = harness.user()
    from telegram import Update

    update = Update.de_json(
        {"update_id": 777, **message_update(user.chat_id, text="/start")}, harness.channel.bot
    )
    await harness.channel.keep([update])  # received and stored, then the server died
    assert count(engine, telegram_inbox) == 1
    await harness.client.close()
    harness = await telegram_app("polling")
    await harness.settle()
    assert len(user.shown) == 2 and user.shown[-1].buttons  # greeting and menu
    assert count(engine, telegram_inbox) == 0
    assert "777" in {r["delivery_id"] for r in rows(engine, tables.processed_deliveries)}


# ---------------------------------------------------------------- sending


async def test_a_429_storm_slows_sending_but_loses_nothing(telegram_app) -> None:
    harness = await telegram_app("polling")
    calm = TelegramPerson(harness, harness.user())
    expected = [m.text for m in await calm.act(calm.user.command("start"))]
    harness.api.fail("sendMessage", "429", times=3, retry_after=1)
    stormy = TelegramPerson(harness, harness.user())
    got = [m.text for m in await stormy.act(stormy.user.command("start"))]
    assert got == expected
    refused = [c for c in harness.api.calls_to("sendMessage", stormy.user.chat_id)]
    assert len(refused) == len(expected) + 3  # three refusals, then every message once


async def test_server_errors_and_dropped_connections_are_retried(
    telegram_app, engine: Engine
) -> None:
    harness = await telegram_app("polling")
    harness.api.fail("sendMessage", "500", times=2)
    person = TelegramPerson(harness, harness.user())
    new = await person.act(person.user.command("start"))
    assert len(new) == 2
    # A dropped connection after the message went out: it may have arrived (it did),
    # so it is sent at most once more.
    harness.api.fail("sendMessage", "drop", times=1)
    new = await person.act(person.user.command("help"))
    assert (len(new) in (2, 3) and new[0].text == new[-1].text) or len(new) == 1
    pending = [r for r in rows(engine, telegram_outbox) if r["status"] == "pending"]
    assert pending == []


async def test_a_blocked_bot_marks_the_respondent_and_refuses_staff_replies(
    telegram_app, engine: Engine
) -> None:
    harness = await telegram_app("polling")
    person = TelegramPerson(harness, harness.user())
    await person.act(person.user.command("start"))
    harness.api.fail("sendMessage", "403", times=10)
    await person.act(person.user.command("help"))
    (blocked,) = rows(engine, telegram_blocked)
    (respondent,) = rows(engine, tables.respondents)
    assert blocked["respondent_id"] == respondent["id"]
    assert {r["status"] for r in rows(engine, telegram_outbox) if r["kind"] == "send"} >= {"failed"}
    with pytest.raises(RelayError):
        await harness.channel.deliver(str(person.user.chat_id), "Hello from the team")
    # Unblocking a bot in Telegram sends /start: they can be written to again.
    harness.api.clear_failures()
    await person.act(person.user.command("help"))
    assert len(rows(engine, telegram_blocked)) == 1
    await person.act(person.user.command("start"))
    assert rows(engine, telegram_blocked) == []


async def test_a_staff_reply_reaches_the_chat_through_the_relay(telegram_app) -> None:
    from bot.relay import seal_handle
    from web.keys import RELAY

    harness = await telegram_app("webhook")
    person = TelegramPerson(harness, harness.user())
    await person.act(person.user.command("start"))
    handle = seal_handle(SECRET_KEY.encode(), "telegram", str(person.user.chat_id))
    channel = await harness.app[RELAY].deliver(handle, "Hi, it's Jo from the team <b>hi</b>")
    assert channel == "telegram"
    assert person.user.texts()[-1] == "Hi, it's Jo from the team <b>hi</b>"
    call = harness.api.calls_to("sendMessage")[-1]
    assert "parse_mode" not in call.params  # shown as typed, never as markup


# ---------------------------------------------------------------- what is not a survey answer


@pytest.mark.parametrize(
    "extra",
    [
        {
            "sticker": {
                "file_id": "s1",
                "file_unique_id": "u1",
                "type": "regular",
                "width": 1,
                "height": 1,
                "is_animated": False,
                "is_video": False,
            }
        },
        {"photo": [{"file_id": "p1", "file_unique_id": "u2", "width": 1, "height": 1}]},
        {"voice": {"file_id": "v1", "file_unique_id": "u3", "duration": 2}},
        {"document": {"file_id": "d1", "file_unique_id": "u4"}},
        {"location": {"latitude": 51.501364, "longitude": -0.14189}},
        {"contact": {"phone_number": "+447700900123", "first_name": "Sam"}},
    ],
    ids=["sticker", "photo", "voice", "document", "location", "contact"],
)
async def test_anything_but_text_gets_a_short_reply_and_changes_nothing(
    telegram_app, engine: Engine, extra: dict
) -> None:
    harness = await telegram_app("polling")
    person = TelegramPerson(harness, harness.user())
    await start_survey(person)
    state_before = rows(engine, tables.conversations)
    new = await person.act(person.user.send_other(extra))
    assert [m.text for m in new] == [NOT_TEXT]
    assert rows(engine, tables.conversations) == state_before
    assert_nothing_holds(engine, ["+447700900123", "51.501364", "-0.14189", "7700900123"])


@pytest.mark.parametrize("mode", MODES)
async def test_a_group_is_told_once_and_nothing_is_stored(
    telegram_app, engine: Engine, mode: str
) -> None:
    harness = await telegram_app(mode)
    group_id = -100123456
    for text in ("/start", "hello bot", "my dad hits me"):
        update = {
            "update_id": harness.api.next_update_id(),
            **message_update(group_id, text=text, user_id=4242, chat_type="supergroup"),
        }
        if mode == "webhook":
            await harness.post(update)
        else:
            harness.api.push_update(update)
        await harness.settle()
    assert harness.api.texts(group_id) == [GROUP_TEXT]
    for table in (tables.respondents, tables.messages, tables.flags, tables.processed_deliveries):
        assert count(engine, table) == 0
    assert count(engine, telegram_outbox) == 0 and count(engine, telegram_inbox) == 0


# ---------------------------------------------------------------- forged and odd requests


async def test_forged_webhook_requests_are_refused_without_side_effects(
    telegram_app, engine: Engine
) -> None:
    harness = await telegram_app("webhook")
    client = harness.client
    update = {"update_id": 9001, **message_update(5551234, text="/start")}
    cases = [
        ({"X-Telegram-Bot-Api-Secret-Token": "wrong"}, update, 401),
        ({}, update, 401),
        ({"X-Telegram-Bot-Api-Secret-Token": WEBHOOK_SECRET[:-1]}, update, 401),
    ]
    for headers, body, status in cases:
        response = await client.post(WEBHOOK_PATH, json=body, headers=headers)
        assert response.status == status
    good = {"X-Telegram-Bot-Api-Secret-Token": WEBHOOK_SECRET}
    huge = b'{"update_id": 1, "message": {"text": "' + b"a" * 400_000 + b'"}}'
    response = await client.post(
        WEBHOOK_PATH, data=huge, headers={**good, "Content-Type": "application/json"}
    )
    assert response.status == 413
    for body in (b"{not json", b"[1, 2]", b'{"update_id": "1"}', b"\xff\xfe"):
        response = await client.post(WEBHOOK_PATH, data=body, headers=good)
        assert response.status == 400, body
    # Well-formed, but of a kind the bot never asked for: acknowledged and ignored.
    for odd in (
        {
            "update_id": 9002,
            "poll": {
                "id": "1",
                "question": "?",
                "options": [],
                "total_voter_count": 0,
                "is_closed": False,
                "is_anonymous": True,
                "type": "regular",
                "allows_multiple_answers": False,
            },
        },
        {"update_id": 9003, "some_future_update": {"x": 1}},
        {"update_id": 9004},
    ):
        response = await client.post(WEBHOOK_PATH, json=odd, headers=good)
        assert response.status == 200
    await harness.settle()
    for table in (tables.respondents, tables.messages, tables.processed_deliveries):
        assert count(engine, table) == 0
    assert harness.api.calls_to("sendMessage") == []


@pytest.mark.parametrize(
    "forge",
    [
        lambda data: data.replace("|y8|", "|y10|"),  # another value, same tag
        lambda data: "school_year|y8|AAAAAAAA",  # a made-up tag
        lambda data: "~0|AAAAAAAA",
        lambda data: "x" * 64,
    ],
    ids=["changed-value", "made-up-tag", "made-up-index", "garbage"],
)
async def test_forged_callback_data_is_refused(telegram_app, engine: Engine, forge) -> None:
    harness = await telegram_app("webhook")
    person = TelegramPerson(harness, harness.user())
    await start_survey(person)
    data = forge(_button(person, "y8")["callback_data"])
    await person.act(person.user.tap(data=data))
    assert answers(engine) == []
    assert harness.api.calls_to("answerCallbackQuery")[-1].params.get("text") == REFUSED_TAP
    # Data made for one chat does not work in another.
    other = harness.user()
    await TelegramPerson(harness, other).act(
        harness.post(
            {
                "update_id": harness.api.next_update_id(),
                **callback_update(
                    other.chat_id,
                    person.user.last_with_buttons,
                    _button(person, "y8")["callback_data"],
                ),
            }
        )
    )
    assert answers(engine) == []


# ---------------------------------------------------------------- privacy


def assert_nothing_holds(engine: Engine, needles: list[str]) -> int:
    metadata = MetaData()
    metadata.reflect(bind=engine)
    scanned = 0
    with engine.connect() as connection:
        for table in metadata.sorted_tables:
            for row in connection.execute(select(table)):
                for value in row:
                    scanned += 1
                    for needle in needles:
                        assert needle not in str(value), f"{table.name} holds {needle!r}: {value!r}"
    return scanned


@pytest.mark.parametrize("mode", MODES)
async def test_no_table_holds_the_chat_id_or_username_after_a_full_survey(
    telegram_app, engine: Engine, mode: str
) -> None:
    harness = await telegram_app(mode)
    chat_id = 5551234567
    person = TelegramPerson(harness, harness.user(chat_id, username="sam_the_tester_77"))
    await person.take_survey("bullying")
    # A disclosure with a yes to contact keeps an (encrypted) relay handle, too.
    await person.act(person.user.say("my dad hits me when he is drunk"))
    await person.act(person.user.say("yes"))
    assert count(engine, tables.flags) >= 1
    assert any(flag["relay_handle"] for flag in rows(engine, tables.flags))
    scanned = assert_nothing_holds(engine, [str(chat_id), "sam_the_tester_77", "Sam"])
    assert scanned > 100


async def test_a_multiple_choice_question_by_taps(telegram_app, engine: Engine) -> None:
    harness = await telegram_app("webhook")
    person = TelegramPerson(harness, harness.user())
    await start_survey(person)
    for _ in range(30):  # answer by the first button until a multiple-choice question
        values = [parse_button(b)[1] for b in person.user.last_buttons]
        if "__done__" in values:
            break
        await person.act(person.user.tap(data=person.user.last_buttons[0]["callback_data"]))
    else:
        raise AssertionError("no multiple-choice question reached")
    question_id = parse_button(person.user.last_buttons[0])[0]
    picks = [b for b in person.user.last_buttons if parse_button(b)[1] not in NON_ANSWERS]
    first, second = picks[0], picks[1]
    asked = person.user.last_with_buttons
    assert asked is not None
    snapshot = Shown(asked.message_id, asked.text, asked.reply_markup)
    await person.act(person.user.tap(data=first["callback_data"]))
    # The second pick tapped quickly on the same message (its buttons not yet gone).
    update = callback_update(person.user.chat_id, snapshot, second["callback_data"])
    await person.act(harness.post({"update_id": harness.api.next_update_id(), **update}))
    picked = person.user.shown[-1].text
    assert first["text"] in picked and second["text"] in picked
    await person.act(person.user.tap(data=_button(person, "__done__")["callback_data"]))
    stored = {a["question_id"]: a["value_json"] for a in answers(engine)}
    assert json.loads(stored[question_id]) == [parse_button(first)[1], parse_button(second)[1]]
    assert [m for m in person.user.shown[:-1] if m.buttons] == []


async def test_a_late_tap_on_a_question_answered_by_typing_still_counts(
    telegram_app, engine: Engine
) -> None:
    """Typed a wrong answer (the question is asked again), then tapped the first copy."""
    harness = await telegram_app("webhook")
    person = TelegramPerson(harness, harness.user())
    await start_survey(person)
    first_copy = person.user.last_with_buttons
    assert first_copy is not None
    data = _button(person, "y8")["callback_data"]
    await person.act(person.user.say("banana"))  # not a school year: asked again
    assert person.user.last_with_buttons is not first_copy
    update = {
        "update_id": harness.api.next_update_id(),
        **callback_update(person.user.chat_id, first_copy, data),
    }
    before = len(person.user.shown)
    await person.act(harness.post(update))
    assert [(a["question_id"], a["value_json"]) for a in answers(engine)] == [
        ("school_year", '"y8"')
    ]
    assert person.user.shown[before:]  # and the next question came
