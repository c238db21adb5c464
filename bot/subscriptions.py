"""Opting in and out of news about surveys: /subscribe, /unsubscribe, STOP, the offer button.

Called by the dispatcher inside a turn's unit of work, so an opt-out is committed with
the turn that asked for it, before the reply is sent. Only opted-in young people ever
get a message they did not ask for (`bot.broadcasts`).

- STOP typed alone (any case, "/stop" too) opts out and beats anything in progress:
  it is handled before any pending question, and the survey then stops for now as it
  always did (answers kept). It is the word people already use to end text messages.
- Only channels that can reach someone later take subscriptions: Telegram. The web chat
  only ever answers what was written on the page, so there /subscribe explains that
  and points to the Telegram bot; nothing is stored.
"""

from __future__ import annotations

import re

from bot.relay import seal_handle
from storage import broadcasts as store
from storage.repository import UnitOfWork
from surveys.events import ChoiceIn, CommandIn, Event, QuickReply, Say, TextIn

# Channels that can send a message later, to someone who is not writing to us right now.
SUBSCRIBABLE_CHANNELS = frozenset({"telegram"})
NEWS_PROMPT = "__news__"

_SUBSCRIBE = re.compile(r"/?subscribe(@\w+)?", re.IGNORECASE)
_UNSUBSCRIBE = re.compile(r"/?unsubscribe(@\w+)?", re.IGNORECASE)
_STOP = re.compile(r"/?stop(@\w+)?[.!]*", re.IGNORECASE)

SUBSCRIBED = (
    "Done! I'll send you a message when there's a new survey for you, and a reminder if "
    "you start one and don't finish it. Send STOP at any time and I'll stop."
)
ALREADY_SUBSCRIBED = (
    "You're already on the list for news about new surveys. Send STOP at any time to stop."
)
UNSUBSCRIBED = (
    "Done: I won't send you any more messages about surveys. "
    "Send /subscribe if you change your mind."
)
NOT_SUBSCRIBED = (
    "You're not on the list, so I won't send you messages about surveys. "
    "Send /subscribe if you'd like them."
)
OFFER = (
    "Would you like me to send you a message when there's a new survey? "
    "You can stop them at any time by sending STOP."
)
OFFER_YES = "Yes please"
OFFER_NO = "No thanks"
DECLINED = "OK, I won't send you anything. Send /subscribe if you change your mind."
WEB_CANNOT_REACH = (
    "This web chat can't send you anything later: I only answer when you write to me "
    "here, so there's nothing to sign up to. To hear about new surveys, talk to Be-Safe "
    "on Telegram and send /subscribe there."
)
WEB_NOTHING_TO_STOP = (
    "This web chat never sends you anything unless you write to me, so there's nothing to stop."
)


def request_of(event: Event) -> str | None:
    """ "subscribe", "unsubscribe", "stop", "offer_yes", "offer_no", or None for anything else."""
    if isinstance(event, ChoiceIn) and event.question_id == NEWS_PROMPT:
        return "offer_yes" if event.value == "yes" else "offer_no"
    if isinstance(event, CommandIn):
        return "stop" if event.name == "stop" else None
    if not isinstance(event, TextIn) or len(event.text) > 40:
        return None
    text = event.text.strip()
    if _STOP.fullmatch(text):
        return "stop"
    if _SUBSCRIBE.fullmatch(text):
        return "subscribe"
    if _UNSUBSCRIBE.fullmatch(text):
        return "unsubscribe"
    return None


def opt_out(uow: UnitOfWork, respondent_id: int) -> bool:
    """STOP: opt out; True if they were opted in (then they are told so)."""
    return store.unsubscribe(uow, respondent_id)


def answer(
    uow: UnitOfWork,
    respondent_id: int,
    channel: str,
    user_key: str,
    secret: bytes,
    request: str,
) -> tuple[Say, ...]:
    """The whole reply to /subscribe, /unsubscribe or a tap on the offer."""
    if channel not in SUBSCRIBABLE_CHANNELS:
        if request == "subscribe":
            return (Say(WEB_CANNOT_REACH),)
        return (Say(WEB_NOTHING_TO_STOP),)
    if request in ("subscribe", "offer_yes"):
        address = seal_handle(secret, channel, user_key)
        new = store.subscribe(uow, respondent_id, channel, address)
        return (Say(SUBSCRIBED if new else ALREADY_SUBSCRIBED),)
    if request == "offer_no":
        return (Say(DECLINED),)
    left = store.unsubscribe(uow, respondent_id)
    return (Say(UNSUBSCRIBED if left else NOT_SUBSCRIBED),)


def offer(uow: UnitOfWork, respondent_id: int, channel: str) -> Say | None:
    """The button offered after a completed survey, unless they are already opted in."""
    if channel not in SUBSCRIBABLE_CHANNELS or store.is_subscribed(uow, respondent_id):
        return None
    return Say(
        OFFER,
        choices=(QuickReply("yes", OFFER_YES), QuickReply("no", OFFER_NO)),
        question_id=NEWS_PROMPT,
        kind="question",
    )
