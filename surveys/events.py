"""The values that go in and out of the conversation engine.

The engine is `step(state, event, context) -> Step`: it never sends, stores or
reads a clock. Channels turn what the young person did into an event; the
dispatcher persists the `effects` and hands the `outputs` to the channel.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from surveys.model import AnswerValue, Survey

# ---------------------------------------------------------------- inbound events

COMMANDS: tuple[str, ...] = (
    "start",
    "help",
    "skip",
    "back",
    "stop",
    "restart",
    "forget",
    "surveys",
)


@dataclass(frozen=True)
class TextIn:
    """Something the young person typed (already cleaned of control characters)."""

    text: str


@dataclass(frozen=True)
class ChoiceIn:
    """A tap on a quick-reply button.

    `question_id` is the question the button belonged to (None for menu
    buttons), so a tap on a stale button can be recognised and ignored kindly.
    """

    value: str
    question_id: str | None = None


@dataclass(frozen=True)
class CommandIn:
    """An explicit command (/help, a menu entry). `arg` is e.g. a join code for start."""

    name: str
    arg: str = ""


@dataclass(frozen=True)
class ResumeIn:
    """The channel was (re)opened: show the young person where they are."""


Event = TextIn | ChoiceIn | CommandIn | ResumeIn

# ---------------------------------------------------------------- context


@dataclass(frozen=True)
class Offer:
    """A survey that is open to take now, under a campaign code (also its join code)."""

    code: str
    survey: Survey
    title: str
    # Its campaign has closed: only those who already started may finish (within a grace).
    closing: bool = False


@dataclass(frozen=True)
class EngineContext:
    offers: tuple[Offer, ...]
    completed: frozenset[str] = frozenset()  # campaign codes this respondent has finished
    max_text_length: int = 2000  # free-text answers longer than this are trimmed (with a note)

    def offer(self, code: str) -> Offer | None:
        for offer in self.offers:
            if offer.code == code:
                return offer
        return None


# ---------------------------------------------------------------- outputs

OutputKind = Literal["question", "info", "hint", "menu", "help", "thanks", "notice"]


@dataclass(frozen=True)
class QuickReply:
    value: str
    label: str


@dataclass(frozen=True)
class Say:
    """One message to show. Channels render `choices` as buttons or a numbered list."""

    text: str
    choices: tuple[QuickReply, ...] = ()
    question_id: str | None = None  # set when this message asks a survey question
    multi: bool = False  # several choices may be picked; a "Done" choice finishes
    kind: OutputKind = "info"


# ---------------------------------------------------------------- effects (persisted by the host)

AnswerStatus = Literal["answered", "skipped", "prefer_not_to_say"]


@dataclass(frozen=True)
class ResponseStarted:
    code: str
    survey_id: str
    version: int


@dataclass(frozen=True)
class AnswerRecorded:
    code: str
    question_id: str
    status: AnswerStatus
    value: AnswerValue | None = None  # None unless status == "answered"


@dataclass(frozen=True)
class AnswerRemoved:
    """An answer no longer stands (its question is no longer shown after a change)."""

    code: str
    question_id: str


@dataclass(frozen=True)
class ResponseCompleted:
    code: str


@dataclass(frozen=True)
class ResponseErased:
    """The young person asked to forget their answers to this campaign's survey."""

    code: str


Effect = ResponseStarted | AnswerRecorded | AnswerRemoved | ResponseCompleted | ResponseErased


@dataclass(frozen=True)
class Step:
    state: dict  # JSON-serialisable; the engine's only memory between events
    outputs: tuple[Say, ...] = ()
    effects: tuple[Effect, ...] = field(default_factory=tuple)
