"""Telegram update -> what the channel does with it (pure; an update's JSON in, our values out).

Decides nothing about the conversation: a text becomes `TextIn`, a known /command
`CommandIn`, a tap on one of our buttons `ChoiceIn`; the dispatcher does the rest.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from telegram import Update

from bot.telegram import callbacks
from surveys.events import COMMANDS, ChoiceIn, CommandIn, Event, TextIn

MAX_ARG_CHARS = 200

Kind = Literal["turn", "not_text", "group", "refused_tap", "ignore"]


@dataclass(frozen=True)
class Tap:
    """A button press: what is needed to answer it and to edit its message."""

    callback_id: str
    message_id: int | None  # None when Telegram no longer shows us the message
    text: str | None  # the question message's text
    label: str | None  # the tapped button's label


@dataclass(frozen=True)
class Incoming:
    kind: Kind
    chat_id: int | None = None
    event: Event | None = None
    tap: Tap | None = None


IGNORE = Incoming("ignore")


def parse_command(text: str) -> CommandIn | None:
    """`/name[@bot] [arg]` for a known command name, else None."""
    if not text.startswith("/"):
        return None
    head, _, rest = text[1:].partition(" ")
    name = head.partition("@")[0].lower()
    if name not in COMMANDS:
        return None
    return CommandIn(name, rest.strip()[:MAX_ARG_CHARS])


def translate(update: Update, key: bytes) -> Incoming:
    """`translate_data` for an update PTB has already parsed (polling): one way to read an
    update, whichever way it arrived."""
    return translate_data(update.to_dict(), key)


# ---------------------------------------------------------------- from the JSON itself


class NotUnderstood(ValueError):
    """An update whose shape is not what the Bot API sends (ignored, like one PTB can't read)."""


def _object(value: object, what: str) -> dict:
    if not isinstance(value, dict):
        raise NotUnderstood(f"{what} is not an object")
    return value


def _chat(message: dict) -> tuple[int, str]:
    chat = _object(message.get("chat"), "chat")
    chat_id = chat.get("id")
    if type(chat_id) is not int:
        raise NotUnderstood("chat id is not a number")
    return chat_id, str(chat.get("type"))


def _text_or_none(value: object) -> str | None:
    if value is not None and not isinstance(value, str):
        raise NotUnderstood("text is not a string")
    return value


def _json_buttons(message: dict) -> list[tuple[str, str]]:
    markup = message.get("reply_markup")
    if markup is None:
        return []
    rows = _object(markup, "reply_markup").get("inline_keyboard") or []
    if not isinstance(rows, list):
        raise NotUnderstood("inline_keyboard is not a list")
    found = []
    for row in rows:
        for button in row if isinstance(row, list) else ():
            button = _object(button, "button")
            found.append((str(button.get("text", "")), str(button.get("callback_data") or "")))
    return found


def translate_data(data: dict, key: bytes) -> Incoming:
    """What the channel does with an update as Telegram sends it (JSON decoded). The webhook
    calls it on the JSON directly, because parsing into PTB objects cost more than the rest of
    handling a tap; polling calls it through `translate`. `NotUnderstood` for a shape the
    Bot API does not send."""
    query = data.get("callback_query")
    if query is not None:
        query = _object(query, "callback_query")
        maybe = query.get("message")
        message: dict | None = None
        if maybe is not None:
            maybe = _object(maybe, "message")
            chat_id, chat_type = _chat(maybe)
            if chat_type != "private":
                return Incoming("group", chat_id)
            # A message too old for Telegram to show comes with date 0 (PTB's InaccessibleMessage).
            message = maybe if maybe.get("date") != 0 else None
        else:
            user_id = _object(query.get("from"), "from").get("id")
            if type(user_id) is not int:
                raise NotUnderstood("user id is not a number")
            chat_id = user_id
        callback_id = query.get("id")
        if not isinstance(callback_id, str):
            raise NotUnderstood("callback id is not a string")
        query_data = _text_or_none(query.get("data")) or ""
        buttons = _json_buttons(message) if message is not None else []
        label = next((text for text, value in buttons if value == query_data), None)
        message_id = maybe.get("message_id") if maybe is not None else None
        if message_id is not None and type(message_id) is not int:
            raise NotUnderstood("message id is not a number")
        tap = Tap(
            callback_id,
            message_id,
            _text_or_none(message.get("text")) if message is not None else None,
            label,
        )
        chosen = callbacks.decode(key, chat_id, query_data)
        if chosen is None:
            return Incoming("refused_tap", chat_id, tap=tap)
        if chosen.index is not None:
            if chosen.index >= len(buttons):
                return Incoming("refused_tap", chat_id, tap=tap)
            label = buttons[chosen.index][0]
            return Incoming(
                "turn",
                chat_id,
                TextIn(label),
                Tap(tap.callback_id, tap.message_id, tap.text, label),
            )
        assert chosen.value is not None
        return Incoming("turn", chat_id, ChoiceIn(chosen.value, chosen.question_id), tap)
    message = data.get("message")
    if message is None:
        return IGNORE  # edited messages, channel posts, polls...: not asked for, not used
    message = _object(message, "message")
    chat_id, chat_type = _chat(message)
    if chat_type != "private":
        return Incoming("group", chat_id)
    text = _text_or_none(message.get("text"))
    if text is None:
        return Incoming("not_text", chat_id)  # sticker, photo, voice, contact, location...
    command = parse_command(text)
    return Incoming("turn", chat_id, command or TextIn(text))
