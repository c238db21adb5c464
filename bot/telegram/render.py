"""Say -> Telegram messages (pure): text, and choices as an inline keyboard.

Text goes out without a parse mode, so whatever a young person wrote (echoed back
by the engine) is shown as typed and can never become markup or a link.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.telegram import callbacks
from surveys.events import Say

MAX_TEXT = 4096  # Telegram's limit on one message's text
CHOSEN_MARK = "\u2714\ufe0f"  # the heavy check mark shown under a tapped question
# Short labels (e.g. 1-5 ratings) share a row; anything longer gets a row of its own.
_SHORT_LABEL = 4
_ROW_OF_SHORT = 5


@dataclass(frozen=True)
class OutMessage:
    text: str
    markup: dict | None = None  # {"inline_keyboard": [[{"text", "callback_data"}]]}
    question_id: str | None = None


def keyboard(key: bytes, chat_id: int, say: Say) -> dict | None:
    if not say.choices:
        return None
    buttons = [
        {
            "text": choice.label[:100] or choice.value,
            "callback_data": callbacks.encode(key, chat_id, say.question_id, choice.value, index),
        }
        for index, choice in enumerate(say.choices)
    ]
    if all(len(choice.label) <= _SHORT_LABEL for choice in say.choices):
        rows = [buttons[i : i + _ROW_OF_SHORT] for i in range(0, len(buttons), _ROW_OF_SHORT)]
    else:
        rows = [[button] for button in buttons]
    return {"inline_keyboard": rows}


def split_text(text: str, limit: int = MAX_TEXT) -> list[str]:
    """Pieces of at most `limit` characters, cut at a line break or space where possible."""
    text = text if text.strip() else "\u2026"
    pieces: list[str] = []
    while len(text) > limit:
        cut = text.rfind("\n", 0, limit)
        if cut < limit // 2:
            cut = text.rfind(" ", 0, limit)
        if cut < limit // 2:
            cut = limit
        pieces.append(text[:cut])
        text = text[cut:].lstrip("\n ")
    pieces.append(text)
    return pieces


def render(key: bytes, chat_id: int, say: Say) -> list[OutMessage]:
    """One Say as one or more messages; the buttons go on the last piece."""
    pieces = split_text(say.text)
    markup = keyboard(key, chat_id, say)
    return [
        OutMessage(piece, markup if last else None, say.question_id if last else None)
        for last, piece in ((i == len(pieces) - 1, piece) for i, piece in enumerate(pieces))
    ]


def answered_text(question_text: str, label: str) -> str:
    """The question message once tapped: its text, then the chosen answer, no buttons."""
    return split_text(f"{question_text}\n\n{CHOSEN_MARK} {label}")[0]
