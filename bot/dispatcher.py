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
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bot import subscriptions
from bot.catalogue import Catalogue
from bot.messages import InboundMessage
from bot.relay import seal_handle
from moderation.detector import combine
from moderation.screen import NOT_FLAGGED, Evidence, ScreenContext, Screening, screen
from moderation.signposting import disclosure_reply, help_text, reply_text
from storage.batching import WriteBatcher
from storage.pseudonyms import pseudonym
from storage.repository import UnitOfWork
from surveys import engine
from surveys.engine import CARRY_ON, command_of
from surveys.events import (
    AnswerRecorded,
    AnswerRemoved,
    ChoiceIn,
    CommandIn,
    Effect,
    EngineContext,
    Event,
    QuickReply,
    ResponseCompleted,
    ResponseErased,
    ResponseStarted,
    ResumeIn,
    Say,
    TextIn,
)
from surveys.matching import is_choice_typed, match_answer
from surveys.model import Choice, Question
from surveys.text import clean_text

if TYPE_CHECKING:
    from bot.screening_queue import SemanticQueue
    from moderation.semantic import SemanticHit

log = logging.getLogger("besafe.dispatcher")

# Stage 2 (meaning, `bot.screening_queue`): only messages of at least this many words go to the
# model ("no", "year 9" say nothing it could catch), and a turn waits at most this long for it.
SEMANTIC_MIN_WORDS = 3
SEMANTIC_TIMEOUT_SECONDS = 2.0
# Delivery ids of recent turns, so that a redelivery skips stage 2 (the unit of work still
# decides what is a duplicate; this only saves the model's time).
_RECENT_DELIVERIES = 4096


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
    """What one handled message produced.

    `duplicate`: the channel's delivery id was seen before, nothing was done.
    `recorded`: what the channel's output recorder returned (e.g. outbox row ids).
    """

    outputs: tuple[Say, ...]
    screening: Screening
    duplicate: bool = False
    recorded: object = None


# Run inside the turn's transaction, after the outputs are known, so a channel can
# record what it is about to send (an outbox) atomically with the turn.
OutputRecorder = Callable[[UnitOfWork, int, InboundMessage, tuple[Say, ...]], object]


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
        output_recorders: Mapping[str, OutputRecorder] | None = None,
        semantic: SemanticQueue | None = None,
    ) -> None:
        self._catalogue = catalogue
        self._secret = secret
        self._writes = writes
        self._max_message_chars = max_message_chars
        self._max_answer_chars = max_answer_chars
        self._screen = screen_message
        self._recorders = dict(output_recorders or {})
        self._semantic = semantic
        self._recent_deliveries: OrderedDict[tuple[str, str], None] = OrderedDict()
        self.locks = RespondentLocks()

    def set_output_recorder(self, channel: str, recorder: OutputRecorder) -> None:
        """Let a channel record its outgoing messages inside each turn's transaction."""
        self._recorders[channel] = recorder

    async def handle(self, inbound: InboundMessage) -> tuple[Say, ...]:
        return (await self.handle_turn(inbound)).outputs

    async def handle_turn(self, inbound: InboundMessage) -> Turn:
        started = time.perf_counter()
        key = pseudonym(self._secret, inbound.channel, inbound.user_key)
        event = inbound.event
        notes: tuple[Say, ...] = ()
        if isinstance(event, TextIn):
            cleaned = clean_text(event.text, limit=self._max_message_chars)
            if cleaned.trimmed:
                notes = (
                    Say(
                        f"That message was very long, so I kept the first "
                        f"{self._max_message_chars:,} characters.",
                        kind="notice",
                    ),
                )
            event = TextIn(cleaned.text)
        async with self.locks.hold(key):
            # Stage 2 before the unit of work: no transaction waits on the model.
            hit = await self._semantic_hit(inbound, event)
            turn = await self._writes.run(self._work(key, inbound, event, notes, hit))
            self._remember_delivery(inbound)
        log.info(
            "message handled",
            extra={
                "channel": inbound.channel,
                "event": type(event).__name__,
                "respondent": key[:10],
                "flagged": turn.screening.severity,
                "duplicate": turn.duplicate,
                "ms": round((time.perf_counter() - started) * 1000, 2),
            },
        )
        return turn

    async def _semantic_hit(self, inbound: InboundMessage, event: Event) -> SemanticHit | None:
        """Stage 2's hit for a text of a few words; None when off, skipped or failing."""
        if self._semantic is None or not isinstance(event, TextIn):
            return None
        if len(event.text.split()) < SEMANTIC_MIN_WORDS:
            return None
        if (
            inbound.delivery_id is not None
            and (inbound.channel, inbound.delivery_id) in self._recent_deliveries
        ):
            return None
        try:
            return await asyncio.wait_for(
                self._semantic.score(event.text), SEMANTIC_TIMEOUT_SECONDS
            )
        except Exception as error:  # stage 1 alone still screens this message
            log.warning(
                "semantic screening failed for a message; rules only",
                extra={
                    "channel": inbound.channel,
                    "reason": "timeout" if isinstance(error, TimeoutError) else repr(error),
                },
            )
            return None

    def _remember_delivery(self, inbound: InboundMessage) -> None:
        if self._semantic is None or inbound.delivery_id is None:
            return
        self._recent_deliveries[(inbound.channel, inbound.delivery_id)] = None
        if len(self._recent_deliveries) > _RECENT_DELIVERIES:
            self._recent_deliveries.popitem(last=False)

    def _work(
        self,
        key: str,
        inbound: InboundMessage,
        event: Event,
        notes: tuple[Say, ...],
        semantic_hit: SemanticHit | None = None,
    ) -> Callable[[UnitOfWork], Turn]:
        context = EngineContext(
            offers=self._catalogue.offers(), max_text_length=self._max_answer_chars
        )
        recorder = self._recorders.get(inbound.channel)

        def work(uow: UnitOfWork) -> Turn:
            if inbound.delivery_id is not None and not uow.claim_delivery(
                inbound.channel, inbound.delivery_id
            ):
                return Turn((), NOT_FLAGGED, duplicate=True)
            opened = uow.open_turn(key, inbound.channel)
            turn_context = EngineContext(
                offers=context.offers,
                completed=opened.completed,
                max_text_length=context.max_text_length,
            )
            runner = _Turn(
                uow,
                self,
                opened.respondent_id,
                opened.state,
                turn_context,
                inbound,
                event,
                semantic_hit,
            )
            outputs, screening = runner.run()
            outputs = notes + runner.with_news(outputs)
            recorded = recorder(uow, opened.respondent_id, inbound, outputs) if recorder else None
            return Turn(outputs, screening, recorded=recorded)

        return work


# The dispatcher's own part of the saved conversation state (the engine ignores it):
# {"flag": id, "ask": "contact" | "carry_on", "contact": id of a flag the young person
# agreed to be contacted about}. Absent for nearly everyone, so most turns pay nothing.
SAFEGUARDING_KEY = "safeguarding"
CONTACT_PROMPT = "__contact__"
CARRY_ON_PROMPT = "__after_disclosure__"
_STOP_FOR_NOW = "__stop_for_now__"
_YES_NO = Question(
    id=CONTACT_PROMPT,
    type="yes_no",
    text="",
    report_label="",
    choices=(Choice("yes", "Yes"), Choice("no", "No")),
    required=True,
)
# Commands that keep working while a member of staff is talking with the young person.
_STAFF_CONVERSATION_COMMANDS = frozenset({"help"})


class _Turn:
    """One message, inside its unit of work: screening, the disclosure conversation, the engine."""

    def __init__(
        self,
        uow: UnitOfWork,
        dispatcher: Dispatcher,
        respondent_id: int,
        state: dict | None,
        context: EngineContext,
        inbound: InboundMessage,
        event: Event,
        semantic_hit: SemanticHit | None = None,
    ) -> None:
        self.uow = uow
        self.dispatcher = dispatcher
        self.respondent_id = respondent_id
        self.state = state
        self.context = context
        self.inbound = inbound
        self.event = event
        self.semantic_hit = semantic_hit
        self.sg: dict = dict((state or {}).get(SAFEGUARDING_KEY) or {})
        self.effects: tuple[Effect, ...] = ()
        self.news_note: tuple[Say, ...] = ()  # "you won't get news any more", after STOP

    def run(self) -> tuple[tuple[Say, ...], Screening]:
        uow, event = self.uow, self.event
        position = engine.position(self.state, self.context)
        screening = NOT_FLAGGED
        message_id: int | None = None
        if isinstance(event, TextIn) and event.text.strip():
            message_id = uow.record_message(
                self.respondent_id,
                "in",
                event.text,
                code=position.code,
                question_id=position.question_id,
            )
            question = (
                position.survey.question(position.question_id)
                if position.survey is not None and position.question_id is not None
                else None
            )
            # A choice typed out ("1 – Not safe at all") is the same survey answer as the
            # tap, which is never screened; anything more than the choice is screened.
            if question is None or not is_choice_typed(question, event.text):
                screening = self.dispatcher._screen(
                    event.text, ScreenContext(position.question_id, position.topic)
                )
                if self.semantic_hit is not None:
                    screening = _with_semantic(screening, self.semantic_hit, event.text)
        flag_id: int | None = None
        if screening.flagged and message_id is not None:
            flag_id = uow.record_flag(
                self.respondent_id,
                message_id,
                severity=screening.severity or "medium",
                categories=screening.categories,
                evidence=screening.evidence_dicts(),
            )
        if flag_id is None:
            news = self._news()
            if news is not None:
                return news, screening
            event = self.event  # STOP goes on as the stop command
        # A member of staff is talking with this young person, or they paused the survey
        # to wait for one: the survey waits, and what they write goes to the flag.
        if "contact" in self.sg:
            conversation = uow.staff_conversation_flag(self.respondent_id)
            talking = conversation is not None
            if not talking and "waiting" in self.sg:
                conversation = self._waiting_flag()
            if conversation is not None:
                return self._to_staff(conversation, message_id, screening, talking), screening
        if flag_id is not None:
            return self._disclosed(flag_id, screening), screening
        answer = self._pending_answer()
        if answer is not None:
            return answer, screening
        outputs = self._engine(event)
        chosen = self._flagged_choice()
        if chosen is not None:
            flag_id, screening = chosen
            return self._ask_about_contact(flag_id, screening), screening
        return outputs, screening

    # ------------------------------------------------------------ news (bot.subscriptions)

    def _news(self) -> tuple[Say, ...] | None:
        """/subscribe, /unsubscribe, a tap on the offer: the whole reply. STOP opts out
        before anything in progress is looked at, then stops the survey as it always did
        (None: the turn goes on)."""
        request = subscriptions.request_of(self.event)
        if request is None:
            return None
        if request == "stop":
            if subscriptions.opt_out(self.uow, self.respondent_id):
                self.news_note = (Say(subscriptions.UNSUBSCRIBED),)
            if self.sg.get("ask") != "carry_on":  # there, "stop" already means stop for now
                self.event = CommandIn("stop")
            return None
        inbound = self.inbound
        return subscriptions.answer(
            self.uow,
            self.respondent_id,
            inbound.channel,
            inbound.user_key,
            self.dispatcher._secret,
            request,
        )

    def with_news(self, outputs: tuple[Say, ...]) -> tuple[Say, ...]:
        """The turn's outputs with the opt-out note first, and the offer to hear about new
        surveys last when this turn completed one (not while a safeguarding question waits)."""
        if "ask" not in self.sg and any(
            isinstance(effect, ResponseCompleted) for effect in self.effects
        ):
            offer = subscriptions.offer(self.uow, self.respondent_id, self.inbound.channel)
            if offer is not None:
                outputs = (*outputs, offer)
        return self.news_note + outputs

    # ------------------------------------------------------------ the engine

    def _engine(self, event: Event) -> tuple[Say, ...]:
        step = engine.step(self.state, event, self.context)  # type: ignore[arg-type]
        apply_effects(self.uow, self.respondent_id, step.effects)
        self.state = step.state
        self.effects = step.effects
        self._save()
        return step.outputs

    def _flagged_choice(self) -> tuple[int, Screening] | None:
        """A flag for an answer whose choice the survey marks as a disclosure, if one was picked.

        Stored with a message that says what was answered, so the lead sees it like any other.
        """
        for effect in self.effects:
            if not isinstance(effect, AnswerRecorded) or effect.status != "answered":
                continue
            offer = self.context.offer(effect.code)
            question = offer.survey.question(effect.question_id) if offer else None
            if question is None:
                continue
            picked = effect.value if isinstance(effect.value, list) else [effect.value]
            for choice in question.choices:
                if choice.flag is None or choice.value not in picked:
                    continue
                text = f"Answered “{choice.label}” to “{question.text}”"
                message_id = self.uow.record_message(
                    self.respondent_id, "in", text, code=effect.code, question_id=question.id
                )
                start = text.index(choice.label)
                evidence = Evidence(
                    category=choice.flag,
                    pattern=f"choice:{question.id}={choice.value}",
                    start=start,
                    end=start + len(choice.label),
                    matched=choice.label,
                )
                screening = Screening(True, "medium", (choice.flag,), (evidence,))
                flag_id = self.uow.record_flag(
                    self.respondent_id,
                    message_id,
                    severity="medium",
                    categories=screening.categories,
                    evidence=screening.evidence_dicts(),
                )
                return flag_id, screening
        return None

    def _save(self) -> None:
        state = dict(self.state or engine.start_state())
        if self.sg:
            state[SAFEGUARDING_KEY] = self.sg
        else:
            state.pop(SAFEGUARDING_KEY, None)
        self.uow.save_state(self.respondent_id, state)

    # ------------------------------------------------------------ a disclosure

    def _disclosed(self, flag_id: int, screening: Screening) -> tuple[Say, ...]:
        """Answer a flagged message at once, then ask whether someone may reply.

        The engine still takes the message (a free-text answer is survey data
        too), but its next question waits until the young person has answered.
        """
        self._engine(self.event)
        return self._ask_about_contact(flag_id, screening)

    def _ask_about_contact(self, flag_id: int, screening: Screening) -> tuple[Say, ...]:
        if self.sg.get("ask") != "contact":
            self.sg["flag"] = flag_id
        self.sg["ask"] = "contact"
        self._save()
        return (
            Say(disclosure_reply(screening.severity, screening.categories), kind="help"),
            _contact_question(),
        )

    def _pending_answer(self) -> tuple[Say, ...] | None:
        """Handle an answer to the contact or carry-on question; None if this is not one."""
        ask, event = self.sg.get("ask"), self.event
        if ask == "contact":
            consent = _yes_or_no(event, CONTACT_PROMPT)
            if consent is None:
                if isinstance(event, TextIn | ChoiceIn):
                    return (Say(reply_text("contact_hint"), kind="hint"), _contact_question())
                self.sg.pop("ask", None)  # a command: they have moved on; consent stays unknown
                return None
            return self._consent(consent)
        if ask == "carry_on":
            choice = _carry_on_choice(event)
            self.sg.pop("ask", None)
            flag_id = self.sg.pop("flag", None)
            if choice is None:
                return None  # anything else goes to the survey as usual
            if choice or self.sg.get("contact") != flag_id:
                return self._engine(ResumeIn() if choice else CommandIn("stop"))
            # They paused and someone may reply: until then, what they write goes to the
            # flag rather than to the survey, and 'start' takes them back to it.
            self.sg["waiting"] = flag_id
            self._engine(CommandIn("stop"))
            return (Say(reply_text("waiting_for_staff")),)
        return None

    def _waiting_flag(self) -> int | None:
        """The flag they paused the survey for, while it is open; None once it is not, or
        when they send a command other than help (they chose to go back to the survey)."""
        command = command_of(self.event, "")
        if command is not None and command[0] not in _STAFF_CONVERSATION_COMMANDS:
            self.sg.pop("waiting", None)
            return None
        flag_id = self.uow.open_consented_flag(self.respondent_id, int(self.sg["waiting"]))
        if flag_id is None:
            self.sg.pop("waiting", None)
        return flag_id

    def _consent(self, consent: bool) -> tuple[Say, ...]:
        flag_id = int(self.sg["flag"])
        handle = (
            seal_handle(self.dispatcher._secret, self.inbound.channel, self.inbound.user_key)
            if consent
            else None
        )
        self.uow.set_contact_consent(flag_id, self.respondent_id, consent, handle)
        if consent:
            self.sg["contact"] = flag_id
        said = Say(reply_text("contact_said_yes" if consent else "contact_said_no"))
        if engine.position(self.state, self.context).question_id is None:
            # Not in the middle of a survey: nothing to carry on with.
            self.sg.pop("ask", None)
            self.sg.pop("flag", None)
            return (said, *self._engine(ResumeIn()))
        self.sg["ask"] = "carry_on"
        self._save()
        return (said, _carry_on_question())

    # ------------------------------------------------------------ talking with staff

    def _to_staff(
        self, flag_id: int, message_id: int | None, screening: Screening, talking: bool
    ) -> tuple[Say, ...]:
        """A message for the flag; `talking`: staff have replied (else they are waiting)."""
        event = self.event
        self.sg.pop("ask", None)
        self._save()
        command = command_of(event, "")  # typed ("help") or tapped (/help)
        if command is not None and command[0] in _STAFF_CONVERSATION_COMMANDS:
            return (Say(help_text(), kind="help"),)
        if message_id is None:
            return (Say(reply_text("staff_conversation_paused")),)
        self.uow.link_flag_message(flag_id, message_id, "young_person")
        outputs = [Say(reply_text("staff_conversation_ack" if talking else "waiting_ack"))]
        if screening.flagged:
            outputs.insert(
                0, Say(disclosure_reply(screening.severity, screening.categories), kind="help")
            )
        return tuple(outputs)


def _with_semantic(first: Screening, hit: SemanticHit, text: str) -> Screening:
    """Stage 1's screening joined with stage 2's hit; stage 1's alone if joining fails."""
    try:
        return combine(first, hit, text)
    except Exception as error:
        log.warning("semantic hit not combined; rules only", extra={"reason": repr(error)})
        return first


def _contact_question() -> Say:
    return Say(
        reply_text("contact_question"),
        choices=(
            QuickReply("yes", reply_text("contact_yes")),
            QuickReply("no", reply_text("contact_no")),
        ),
        question_id=CONTACT_PROMPT,
        kind="question",
    )


def _carry_on_question() -> Say:
    return Say(
        reply_text("carry_on_question"),
        choices=(
            QuickReply(CARRY_ON, reply_text("carry_on")),
            QuickReply(_STOP_FOR_NOW, reply_text("stop_for_now")),
        ),
        question_id=CARRY_ON_PROMPT,
        kind="question",
    )


def _yes_or_no(event: Event, prompt: str) -> bool | None:
    if isinstance(event, ChoiceIn):
        if event.question_id == prompt and event.value in ("yes", "no"):
            return event.value == "yes"
        return None
    if isinstance(event, TextIn):
        match = match_answer(_YES_NO, event.text)
        if match.ok and match.value in ("yes", "no"):
            return match.value == "yes"
    return None


def _carry_on_choice(event: Event) -> bool | None:
    """True to carry on, False to stop for now, None for anything else."""
    if isinstance(event, ChoiceIn) and event.question_id == CARRY_ON_PROMPT:
        if event.value in (CARRY_ON, _STOP_FOR_NOW):
            return event.value == CARRY_ON
        return None
    if isinstance(event, TextIn):
        words = " ".join(event.text.lower().split())
        if words in ("carry on", "continue", "go on", "keep going"):
            return True
        if words in ("stop", "stop for now", "pause", "later"):
            return False
    return None
