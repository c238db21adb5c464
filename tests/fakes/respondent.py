"""A simulated young person who takes a survey through the dispatcher.

Used by integration tests and by the dispatcher benchmark: it reads the bot's
last messages and answers the way a person would (tapping most answers,
typing some), so it follows whatever questions a survey asks.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field

from bot.messages import InboundMessage
from surveys.events import ChoiceIn, CommandIn, Event, Say, TextIn
from surveys.model import PREFER_NOT_TO_SAY

NON_ANSWERS = frozenset({PREFER_NOT_TO_SAY, "__skip__", "__done__"})
FREE_TEXT_ANSWER = "Nothing else, thanks. School is mostly ok."
NUMBER_ANSWER = "2"
# A secondary-school year: every shipped survey is offered to it.
SCHOOL_YEAR = "y8"


def finished(outputs: tuple[Say, ...]) -> bool:
    return any(say.kind == "thanks" for say in outputs)


def next_event(outputs: tuple[Say, ...], survey_id: str, turn: int) -> Event | None:
    """What to do next given the bot's last messages; None when the survey is over."""
    if not outputs or finished(outputs):
        return None
    last = outputs[-1]
    if last.kind == "menu":
        for choice in last.choices:
            if choice.value.startswith(f"{survey_id}-v"):
                return ChoiceIn(choice.value, last.question_id)
        return None
    answers = [choice for choice in last.choices if choice.value not in NON_ANSWERS]
    if last.question_id == "school_year" and any(c.value == SCHOOL_YEAR for c in answers):
        return ChoiceIn(SCHOOL_YEAR, last.question_id)
    if last.multi:
        return TextIn("1 and 2")  # typed multiple choice is recorded at once
    if answers:
        if turn % 3 == 1:
            return TextIn(answers[0].label)  # a third typed, the rest tapped
        return ChoiceIn(answers[0].value, last.question_id)
    if any(say.kind == "hint" for say in outputs):
        # Free text was refused, so this asks for a number ("How many hours...?").
        return TextIn(NUMBER_ANSWER)
    return TextIn(FREE_TEXT_ANSWER)


@dataclass
class SimulatedRespondent:
    handler: object  # anything with `async handle(InboundMessage) -> tuple[Say, ...]`
    user_key: str
    channel: str = "web"
    transcript: list[tuple[Event, tuple[Say, ...]]] = field(default_factory=list)
    # False for benchmarks: a server doesn't carry its clients' transcripts in its heap
    # (they would make every full garbage collection of the server slower).
    keep_transcript: bool = True
    sent: int = 0
    last: tuple[Say, ...] = ()

    async def send(self, event: Event) -> tuple[Say, ...]:
        outputs = await self.handler.handle(InboundMessage(self.channel, self.user_key, event))  # type: ignore[attr-defined]
        self.sent += 1
        self.last = outputs
        if self.keep_transcript:
            self.transcript.append((event, outputs))
        return outputs

    async def take_survey(
        self,
        survey_id: str,
        *,
        stop_after: int | None = None,
        think: tuple[float, float] | None = None,
        max_turns: int = 200,
    ) -> tuple[Say, ...]:
        """Start (or resume) and answer until the thanks message, or `stop_after` answers.

        `think` is a range of seconds to wait before each message (the first one
        too), as a person would.
        """
        if think is not None:  # people arrive at their own moment, not all at once
            await asyncio.sleep(random.uniform(*think))
        outputs = await self.send(CommandIn("start"))
        for turn in range(max_turns):
            if stop_after is not None and turn >= stop_after:
                return outputs
            event = next_event(outputs, survey_id, turn)
            if event is None:
                return outputs
            if think is not None:
                await asyncio.sleep(random.uniform(*think))
            outputs = await self.send(event)
        raise AssertionError(f"survey never finished; last message: {outputs[-1].text!r}")
