"""Telegram update -> what the channel does with it (pure; PTB objects in, our values out).

Decides nothing about the conversation: a text becomes `TextIn`, a known /command
`CommandIn`, a tap on one of our buttons `ChoiceIn`; the dispatcher does the rest.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from telegram import Message, Update

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


def _buttons(message: Message | None) -> list[tuple[str, str]]:
    markup = message.reply_markup if message is not None else None
    if markup is None:
        return []
    return [
        (button.text, str(button.callback_data or ""))
        for row in markup.inline_keyboard
        for button in row
    ]


def translate(update: Update, key: bytes) -> Incoming:
    query = update.callback_query
    if query is not None:
        maybe = query.message
        message = maybe if isinstance(maybe, Message) else None
        if maybe is not None and maybe.chat.type != "private":
            return Incoming("group", maybe.chat.id)
        chat_id = maybe.chat.id if maybe is not None else query.from_user.id
        buttons = _buttons(message)
        label = next((text for text, data in buttons if data == query.data), None)
        tap = Tap(
            query.id,
            maybe.message_id if maybe is not None else None,
            message.text if message is not None else None,
            label,
        )
        chosen = callbacks.decode(key, chat_id, query.data or "")
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
    message = update.message
    if message is None:
        return IGNORE  # edited messages, channel posts, polls...: not asked for, not used
    chat = message.chat
    if chat.type != "private":
        return Incoming("group", chat.id)
    if message.text is None:
        return Incoming("not_text", chat.id)  # sticker, photo, voice, contact, location...
    command = parse_command(message.text)
    return Incoming("turn", chat.id, command or TextIn(message.text))
