"""What channels hand to the dispatcher, and what they get back."""

from __future__ import annotations

from dataclasses import dataclass

from surveys.events import Event, Say

__all__ = ["InboundMessage", "Say"]


@dataclass(frozen=True)
class InboundMessage:
    """One thing a young person did on a channel.

    `user_key` is the channel's own id for the person (a Telegram chat id, a web
    chat session token). The dispatcher turns it into a keyed pseudonym at once;
    it is never stored.
    """

    channel: str  # "web" | "telegram"
    user_key: str
    event: Event
    # The channel's id for this delivery (a Telegram update_id), when the channel can
    # deliver the same thing twice: a repeat is recognised and has no second effect.
    delivery_id: str | None = None
