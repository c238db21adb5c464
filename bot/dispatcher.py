"""The one place where channel, moderation, engine and storage meet.

For each inbound message, under a per-respondent lock and as ONE atomic unit of
work (its own transaction, or its own savepoint in a group commit, see
`storage.batching`): record the message, screen it, store any flag, run the
engine, persist its effects and the new state. Only after the commit are
replies returned to the channel, so a disclosure is stored before anything is
sent back.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

from bot.catalogue import Catalogue
from bot.messages import InboundMessage
from moderation.screen import ScreenContext, Screening, screen
from moderation.signposting import disclosure_reply
from storage.batching import WriteBatcher
from storage.pseudonyms import pseudonym
from storage.repository import UnitOfWork
from surveys import engine
from surveys.events import (
    AnswerRecorded,
    AnswerRemoved,
    Effect,
    EngineContext,
    ResponseCompleted,
    ResponseErased,
    ResponseStarted,
    Say,
    TextIn,
)
from surveys.text import clean_text

log = logging.getLogger("besafe.dispatcher")


class RespondentLocks:
    """One asyncio lock per respondent, dropped when nobody holds or waits for it.

    Two messages from one young person (a double tap, a retry) are handled one
    after the other; different young people never wait for each other here.
    """

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (None, 0))
        if lock is None:
            lock = asyncio.Lock()
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users <= 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)

    def __len__(self) -> int:
        return len(self._locks)


@dataclass(frozen=True)
class Turn:
    """What one handled message produced."""

    outputs: tuple[Say, ...]
    screening: Screening


def apply_effects(uow: UnitOfWork, respondent_id: int, effects: tuple[Effect, ...]) -> None:
    for effect in effects:
        if isinstance(effect, ResponseStarted):
            uow.start_response(respondent_id, effect.code, effect.survey_id, effect.version)
        elif isinstance(effect, AnswerRecorded):
            uow.record_answer(
                respondent_id, effect.code, effect.question_id, effect.status, effect.value
            )
        elif isinstance(effect, AnswerRemoved):
            uow.remove_answer(respondent_id, effect.code, effect.question_id)
        elif isinstance(effect, ResponseCompleted):
            uow.complete_response(respondent_id, effect.code)
        elif isinstance(effect, ResponseErased):
            uow.erase_response(respondent_id, effect.code)
        else:  # pragma: no cover - a new effect type must be handled here
            raise TypeError(f"unhandled engine effect {effect!r}")


class Dispatcher:
    def __init__(
        self,
        *,
        catalogue: Catalogue,
        secret: bytes,
        writes: WriteBatcher,
        max_message_chars: int = 20000,
        max_answer_chars: int = 2000,
        screen_message: Callable[[str, ScreenContext], Screening] = screen,
    ) -> None:
        self._catalogue = catalogue
        self._secret = secret
        self._writes = writes
        self._max_message_chars = max_message_chars
        self._max_answer_chars = max_answer_chars
        self._screen = screen_message
        self.locks = RespondentLocks()

    async def handle(self, inbound: InboundMessage) -> tuple[Say, ...]:
        started = time.perf_counter()
        key = pseudonym(self._secret, inbound.channel, inbound.user_key)
        event = inbound.event
        notes: list[Say] = []
        if isinstance(event, TextIn):
            cleaned = clean_text(event.text, limit=self._max_message_chars)
            if cleaned.trimmed:
                notes.append(
                    Say(
                        f"That message was very long, so I kept the first "
                        f"{self._max_message_chars:,} characters.",
                        kind="notice",
                    )
                )
            event = TextIn(cleaned.text)
        async with self.locks.hold(key):
            turn = await self._writes.run(self._work(key, inbound.channel, event))
        log.info(
            "message handled",
            extra={
                "channel": inbound.channel,
                "event": type(event).__name__,
                "respondent": key[:10],
                "flagged": turn.screening.severity,
                "ms": round((time.perf_counter() - started) * 1000, 2),
            },
        )
        return tuple(notes) + turn.outputs

    def _work(self, key: str, channel: str, event: object) -> Callable[[UnitOfWork], Turn]:
        context = EngineContext(
            offers=self._catalogue.offers(), max_text_length=self._max_answer_chars
        )

        def work(uow: UnitOfWork) -> Turn:
            opened = uow.open_turn(key, channel)
            respondent_id, state = opened.respondent_id, opened.state
            turn_context = EngineContext(
                offers=context.offers,
                completed=opened.completed,
                max_text_length=context.max_text_length,
            )
            position = engine.position(state, turn_context)
            screening = Screening(flagged=False)
            if isinstance(event, TextIn) and event.text.strip():
                message_id = uow.record_message(
                    respondent_id,
                    "in",
                    event.text,
                    code=position.code,
                    question_id=position.question_id,
                )
                screening = self._screen(
                    event.text, ScreenContext(position.question_id, position.topic)
                )
                if screening.flagged:
                    uow.record_flag(
                        respondent_id,
                        message_id,
                        severity=screening.severity or "medium",
                        categories=screening.categories,
                        evidence=screening.evidence_dicts(),
                    )
            step = engine.step(state, event, turn_context)  # type: ignore[arg-type]
            apply_effects(uow, respondent_id, step.effects)
            uow.save_state(respondent_id, step.state)
            outputs = step.outputs
            if screening.flagged:
                outputs = (Say(disclosure_reply(screening.severity), kind="help"), *outputs)
            return Turn(outputs, screening)

        return work
