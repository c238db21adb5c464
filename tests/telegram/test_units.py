"""The pure parts of the Telegram channel: callback data, rendering, translation, limits."""

from __future__ import annotations

import aiohttp
import httpx
import pytest
from telegram import Bot, Update
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TimedOut

from bot.telegram import callbacks, render
from bot.telegram.sender import TokenBucket, classify, retry_after_seconds
from bot.telegram.translate import NotUnderstood, parse_command, translate, translate_data
from config.settings import Settings
from surveys.events import ChoiceIn, CommandIn, QuickReply, Say, TextIn
from tests.telegram.fake_bot_api import TOKEN, Shown, callback_update, message_update

KEY = callbacks.callback_key(b"unit-test-secret-0123456789abcdef")
BOT = Bot(TOKEN)


def update(data: dict) -> Update:
    made = Update.de_json({"update_id": 1, **data}, BOT)
    assert made is not None
    return made


# ---------------------------------------------------------------- callback data


def test_callback_data_round_trips_and_fits() -> None:
    data = callbacks.encode(KEY, 42, "school_year", "y8", 3)
    assert len(data.encode()) <= 64
    assert callbacks.decode(KEY, 42, data) == callbacks.Chosen("school_year", "y8")
    menu = callbacks.encode(KEY, 42, None, "bullying-v1", 0)
    assert callbacks.decode(KEY, 42, menu) == callbacks.Chosen(None, "bullying-v1")


def test_long_or_awkward_values_fall_back_to_the_button_index() -> None:
    for question_id, value in (("q" * 40, "v" * 30), ("a|b", "x"), ("q", "é" * 40)):
        data = callbacks.encode(KEY, 7, question_id, value, 12)
        assert len(data.encode()) <= 64
        assert callbacks.decode(KEY, 7, data) == callbacks.Chosen(None, None, 12)


@pytest.mark.parametrize(
    "data",
    ["", "x" * 65, "school_year|y8", "school_year|y8|AAAAAAAA", "|||", "~1|AAAAAAAA", "~x|ab"],
)
def test_forged_callback_data_is_refused(data: str) -> None:
    assert callbacks.decode(KEY, 42, data) is None


def test_callback_data_is_bound_to_its_chat_and_key() -> None:
    data = callbacks.encode(KEY, 42, "school_year", "y8", 0)
    assert callbacks.decode(KEY, 43, data) is None
    assert callbacks.decode(callbacks.callback_key(b"another secret"), 42, data) is None
    assert callbacks.decode(KEY, 42, data.replace("y8", "y9")) is None


# ---------------------------------------------------------------- rendering


def test_choices_become_buttons_on_the_last_piece_of_a_long_text() -> None:
    say = Say(
        "word " * 2000,
        choices=(QuickReply("a", "Apples"), QuickReply("b", "Bananas")),
        question_id="fruit",
    )
    messages = render.render(KEY, 1, say)
    assert len(messages) == 3 and all(len(m.text) <= render.MAX_TEXT for m in messages)
    assert [m.markup is not None for m in messages] == [False, False, True]
    rows = messages[-1].markup["inline_keyboard"]  # type: ignore[index]
    assert [[b["text"] for b in row] for row in rows] == [["Apples"], ["Bananas"]]


def test_short_labels_share_a_row() -> None:
    say = Say("Rate it", choices=tuple(QuickReply(str(n), str(n)) for n in range(1, 8)))
    rows = render.keyboard(KEY, 1, say)["inline_keyboard"]  # type: ignore[index]
    assert [len(row) for row in rows] == [5, 2]


# ---------------------------------------------------------------- translation


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("/start", CommandIn("start", "")),
        ("/start abw2026", CommandIn("start", "abw2026")),
        ("/START@besafe_test_bot  bullying-v1 ", CommandIn("start", "bullying-v1")),
        ("/skip", CommandIn("skip", "")),
        ("/frobnicate", None),
        ("start", None),
    ],
)
def test_commands(text: str, expected: CommandIn | None) -> None:
    assert parse_command(text) == expected


def test_text_commands_and_taps_become_events() -> None:
    assert translate(update(message_update(5, text="hello")), KEY).event == TextIn("hello")
    assert translate(update(message_update(5, text="/frobnicate")), KEY).event == TextIn(
        "/frobnicate"
    )
    data = callbacks.encode(KEY, 5, "school_year", "y8", 0)
    shown = Shown(
        9, "What year?", {"inline_keyboard": [[{"text": "Year 8", "callback_data": data}]]}
    )
    incoming = translate(update(callback_update(5, shown, data)), KEY)
    assert incoming.kind == "turn" and incoming.event == ChoiceIn("y8", "school_year")
    assert incoming.tap is not None and incoming.tap.label == "Year 8"
    assert incoming.tap.message_id == 9


def test_the_index_form_passes_the_label_on_as_typed_text() -> None:
    data = callbacks.encode(KEY, 5, "q" * 60, "v", 1)
    markup = {
        "inline_keyboard": [
            [{"text": "First", "callback_data": "x"}],
            [{"text": "Second", "callback_data": data}],
        ]
    }
    incoming = translate(update(callback_update(5, Shown(3, "Q", markup), data)), KEY)
    assert incoming.event == TextIn("Second")


def test_groups_non_text_and_other_updates() -> None:
    group = message_update(-100, text="hi", user_id=5, chat_type="group")
    assert translate(update(group), KEY).kind == "group"
    sticker = message_update(5, extra={"location": {"latitude": 1.0, "longitude": 2.0}})
    assert translate(update(sticker), KEY).kind == "not_text"
    assert translate(
        update({"edited_message": message_update(5, text="x")["message"]}), KEY
    ).kind == ("ignore")


def _tap_updates() -> list[dict]:
    data = callbacks.encode(KEY, 5, "school_year", "y8", 0)
    index = callbacks.encode(KEY, 5, "q" * 60, "v", 1)
    markup = {
        "inline_keyboard": [
            [{"text": "Year 8", "callback_data": data}],
            [{"text": "Second", "callback_data": index}],
        ]
    }
    shown = Shown(9, "What year?", markup)
    old = callback_update(5, shown, data)
    old["callback_query"]["message"]["date"] = 0  # too old: Telegram sends no text or buttons
    old["callback_query"]["message"].pop("text")
    old["callback_query"]["message"].pop("reply_markup")
    group_tap = callback_update(5, shown, data)
    group_tap["callback_query"]["message"]["chat"] = {"id": -100, "type": "group", "title": "G"}
    return [
        callback_update(5, shown, data),
        callback_update(5, shown, index),
        callback_update(5, shown, callbacks.encode(KEY, 5, None, "~9", 9)),
        callback_update(5, shown, callbacks.encode(KEY, 6, "school_year", "y8", 0)),
        callback_update(5, Shown(9, "Q", None), data),
        callback_update(5, None, data),
        callback_update(5, shown, "forged|AAAAAAAA"),
        old,
        group_tap,
    ]


@pytest.mark.parametrize(
    "data",
    [
        message_update(5, text="hello"),
        message_update(5, text="/start abw2026"),
        message_update(5, text="/frobnicate"),
        message_update(5, text=""),
        message_update(-100, text="hi", user_id=5, chat_type="group"),
        message_update(-100, text="hi", user_id=5, chat_type="supergroup"),
        message_update(5, extra={"location": {"latitude": 1.0, "longitude": 2.0}}),
        message_update(
            5,
            extra={
                "sticker": {
                    "file_id": "x",
                    "file_unique_id": "u",
                    "width": 512,
                    "height": 512,
                    "is_animated": False,
                    "is_video": False,
                    "type": "regular",
                }
            },
        ),
        {"edited_message": message_update(5, text="x")["message"]},
        {"some_future_update": {"id": "1"}},
        {},
        *_tap_updates(),
    ],
)
def test_the_webhook_translation_from_json_matches_the_ptb_one(data: dict) -> None:
    """The webhook reads updates straight from their JSON: same result as through PTB."""
    assert translate_data({"update_id": 1, **data}, KEY) == translate(update(data), KEY)


@pytest.mark.parametrize(
    "data",
    [
        {"message": "not an object"},
        {"message": {"message_id": 1, "date": 1, "chat": {"id": "5", "type": "private"}}},
        {"message": {"message_id": 1, "date": 1, "chat": {"id": 5, "type": "private"}, "text": 3}},
        {"callback_query": {"id": "c", "from": {"id": 5}, "data": "x", "message": []}},
        {"callback_query": {"id": 7, "from": {"id": 5}, "data": "x"}},
        {"callback_query": {"id": "c", "from": "me", "data": "x"}},
    ],
)
def test_updates_the_bot_api_does_not_send_are_not_understood(data: dict) -> None:
    with pytest.raises(NotUnderstood):
        translate_data({"update_id": 1, **data}, KEY)


# ---------------------------------------------------------------- limits and errors


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_chat_gets_a_burst_then_one_a_second() -> None:
    clock = Clock()
    bucket = TokenBucket(1.0, 3, clock)
    assert [bucket.reserve() for _ in range(5)] == [0.0, 0.0, 0.0, 1.0, 2.0]
    clock.now = 10.0
    assert bucket.idle
    assert bucket.reserve() == 0.0


def test_the_overall_limit_spaces_messages_at_its_rate() -> None:
    clock = Clock()
    bucket = TokenBucket(30.0, 30, clock)
    waits = [bucket.reserve() for _ in range(60)]
    assert waits[:30] == [0.0] * 30
    assert waits[30:] == pytest.approx([n / 30 for n in range(1, 31)])


def test_no_limit_never_waits() -> None:
    bucket = TokenBucket(0, 1, Clock())
    assert [bucket.reserve() for _ in range(100)] == [0.0] * 100


def _caused(error: Exception, cause: BaseException) -> Exception:
    error.__cause__ = cause
    return error


@pytest.mark.parametrize(
    ("error", "outcome"),
    [
        (RetryAfter(3), "retry_after"),
        (Forbidden("Forbidden: bot was blocked by the user"), "blocked"),
        (BadRequest("Bad Request: chat not found"), "refused"),
        (BadRequest("Bad Request: message is not modified"), "gone"),
        (NetworkError("Internal Server Error"), "retry"),
        (_caused(NetworkError("x"), httpx.ConnectError("refused")), "retry"),
        (_caused(NetworkError("x"), httpx.RemoteProtocolError("dropped")), "uncertain"),
        (_caused(TimedOut(), httpx.ReadTimeout("slow")), "uncertain"),
        (_caused(TimedOut(), httpx.ConnectTimeout("slow")), "retry"),
        # what bot.telegram.request (aiohttp) raises
        (_caused(NetworkError("x"), aiohttp.ServerDisconnectedError()), "uncertain"),
        (
            _caused(NetworkError("x"), aiohttp.ClientConnectorError(None, OSError(111, "no"))),  # type: ignore[arg-type]
            "retry",
        ),
        (
            _caused(
                TimedOut("Connect timed out: the request was *not* sent"),
                aiohttp.ConnectionTimeoutError(),
            ),
            "retry",
        ),
        (_caused(TimedOut(), aiohttp.SocketTimeoutError()), "uncertain"),
    ],
)
def test_errors_are_classified(error: Exception, outcome: str) -> None:
    assert classify(error) == outcome


def test_retry_after_in_seconds() -> None:
    assert retry_after_seconds(RetryAfter(7)) == 7.0


@pytest.mark.parametrize(
    "setting",
    [
        {"telegram_webhook_secret": "has space"},
        {"telegram_webhook_secret": "x" * 257},
        {"telegram_webhook_secret": "ünïcode"},
        {"telegram_webhook_path": "telegram/hook"},
        {"telegram_webhook_path": "/telegram/{hook}"},
    ],
)
def test_webhook_settings_telegram_would_refuse_stop_start_up(setting: dict) -> None:
    with pytest.raises(ValueError, match="telegram_webhook"):
        Settings(**setting)


def test_webhook_settings_telegram_accepts() -> None:
    settings = Settings(telegram_webhook_secret="Ab_9-" * 50, telegram_webhook_path="/tg/x-1")
    assert settings.telegram_webhook_path == "/tg/x-1"
