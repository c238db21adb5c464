"""A recording host for the engine: JSON round trip after every step, effect bookkeeping.

Like goflow's test runner, the state is serialised to JSON and read back after
every step, so that what the host persists is what the next step sees. Every
step is also checked for effects that a real host could not apply
(`EffectChecker`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field

from surveys import engine
from surveys.events import (
    AnswerRecorded,
    AnswerRemoved,
    ChoiceIn,
    CommandIn,
    Effect,
    EngineContext,
    Event,
    Offer,
    ResponseCompleted,
    ResponseErased,
    ResponseStarted,
    ResumeIn,
    Say,
    Step,
    TextIn,
)
from surveys.model import PREFER_NOT_TO_SAY, Survey

from .factories import offer as make_offer


def json_round_trip(state: dict) -> dict:
    """The state as the host would read it back; fails on anything that is not plain JSON."""
    encoded = json.dumps(state, allow_nan=False, ensure_ascii=False)
    decoded = json.loads(encoded)
    assert decoded == state, "state changed in a JSON round trip (tuple, set or odd key?)"
    return decoded


class EffectChecker:
    """What a database would hold, to catch effects that could not be applied."""

    def __init__(self, state: dict | None, completed: Iterable[str] = ()) -> None:
        self.in_progress: dict[str, dict[str, str]] = {}
        self.completed: set[str] = set(completed)
        for code, response in ((state or {}).get("responses") or {}).items():
            self.in_progress[code] = {
                question_id: answer["status"]
                for question_id, answer in response.get("answers", {}).items()
            }

    def apply(self, effects: Iterable[Effect], surveys: dict[str, Survey]) -> None:
        for effect in effects:
            if isinstance(effect, ResponseStarted):
                assert effect.code not in self.in_progress, f"started twice: {effect}"
                assert effect.code not in self.completed, f"started after completion: {effect}"
                survey = surveys.get(effect.code)
                assert survey is not None, f"started a campaign that is not open: {effect}"
                assert (survey.id, survey.version) == (effect.survey_id, effect.version)
                self.in_progress[effect.code] = {}
            elif isinstance(effect, AnswerRecorded):
                assert effect.code in self.in_progress, f"answer without a response: {effect}"
                self._check_answer(effect, surveys.get(effect.code))
                self.in_progress[effect.code][effect.question_id] = effect.status
            elif isinstance(effect, AnswerRemoved):
                answers = self.in_progress.get(effect.code)
                assert answers is not None and effect.question_id in answers, f"bad {effect}"
                del answers[effect.question_id]
            elif isinstance(effect, ResponseCompleted):
                assert effect.code in self.in_progress, f"completed without a start: {effect}"
                del self.in_progress[effect.code]
                self.completed.add(effect.code)
            elif isinstance(effect, ResponseErased):
                assert effect.code in self.in_progress or effect.code in self.completed, effect
                self.in_progress.pop(effect.code, None)
                self.completed.discard(effect.code)
            else:  # pragma: no cover
                raise AssertionError(f"unknown effect {effect!r}")

    @staticmethod
    def _check_answer(effect: AnswerRecorded, survey: Survey | None) -> None:
        assert survey is not None, f"answer for a closed campaign: {effect}"
        question = survey.question(effect.question_id)
        assert question is not None and question.type != "info", effect
        assert effect.status in ("answered", "skipped", "prefer_not_to_say"), effect
        if effect.status != "answered":
            assert effect.value is None, effect
            if effect.status == "skipped":
                assert not question.required, f"required question skipped: {effect}"
            else:
                assert question.prefer_not_to_say, f"prefer-not-to-say not offered: {effect}"
            return
        value = effect.value
        assert value != PREFER_NOT_TO_SAY, effect
        values = {choice.value for choice in question.choices}
        if question.type == "multiple_choice":
            assert isinstance(value, list) and value, effect
            assert not values or set(value) <= values, effect
        elif question.type == "rating":
            assert isinstance(value, int) and not isinstance(value, bool), effect
        elif question.type == "number":
            assert isinstance(value, int | float) and not isinstance(value, bool), effect
            assert question.min is None or value >= question.min, effect
            assert question.max is None or value <= question.max, effect
        elif question.type == "free_text":
            assert isinstance(value, str) and value.strip(), effect
            assert question.max_length is None or len(value) <= question.max_length, effect
        else:
            assert isinstance(value, str), effect
            assert not values or value in values, effect

    def check_state(self, state: dict) -> None:
        responses = state["responses"]
        assert set(responses) == set(self.in_progress), (set(responses), set(self.in_progress))
        for code, response in responses.items():
            assert set(response["answers"]) == set(self.in_progress[code]), code


@dataclass
class Conversation:
    """One young person talking to the engine, with a host that applies every effect."""

    offers: list[Offer]
    completed: set[str] = field(default_factory=set)
    max_text_length: int = 2000
    state: dict | None = None
    steps: list[Step] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.checker = EffectChecker(self.state, self.completed)

    @classmethod
    def of(cls, *names: str, completed: Iterable[str] = (), **kwargs: object) -> Conversation:
        return cls(offers=[make_offer(name) for name in names], completed=set(completed), **kwargs)  # type: ignore[arg-type]

    @property
    def context(self) -> EngineContext:
        return EngineContext(
            offers=tuple(self.offers),
            completed=frozenset(self.completed),
            max_text_length=self.max_text_length,
        )

    def send(self, event: Event) -> Step:
        step = engine.step(self.state, event, self.context)
        self.state = json_round_trip(step.state)
        assert step.outputs, f"no reply to {event!r}"
        for say in step.outputs:
            assert isinstance(say, Say) and say.text.strip(), say
            if say.kind == "question":
                assert say.question_id, say
        self.checker.apply(step.effects, {offer.code: offer.survey for offer in self.offers})
        self.checker.check_state(self.state)
        self.completed = set(self.checker.completed)
        self.steps.append(step)
        return step

    # -------------------------------------------------------- conveniences

    def text(self, text: str) -> Step:
        return self.send(TextIn(text))

    def command(self, name: str, arg: str = "") -> Step:
        return self.send(CommandIn(name, arg))

    def resume(self) -> Step:
        return self.send(ResumeIn())

    def tap(self, value: str, question_id: str | None = "<last>") -> Step:
        """Tap a button; by default one on the last message that had buttons."""
        if question_id == "<last>":
            question_id = self.last_with_choices.question_id
        return self.send(ChoiceIn(value, question_id))

    def tap_label(self, label: str) -> Step:
        say = self.last_with_choices
        for choice in say.choices:
            if choice.label == label:
                return self.send(ChoiceIn(choice.value, say.question_id))
        raise AssertionError(f"no button {label!r} in {say}")

    @property
    def last(self) -> Say:
        return self.steps[-1].outputs[-1]

    @property
    def last_with_choices(self) -> Say:
        for step in reversed(self.steps):
            for say in reversed(step.outputs):
                if say.choices:
                    return say
        raise AssertionError("no buttons shown yet")

    @property
    def effects(self) -> tuple[Effect, ...]:
        return self.steps[-1].effects

    @property
    def all_effects(self) -> list[Effect]:
        return [effect for step in self.steps for effect in step.effects]

    @property
    def texts(self) -> str:
        """Everything said in the last step, as one string (for `in` checks)."""
        return "\n".join(say.text for say in self.steps[-1].outputs)

    @property
    def mode(self) -> str:
        assert self.state is not None
        return self.state["mode"]

    @property
    def at(self) -> str | None:
        """The question being asked now (None unless in a survey)."""
        if self.state is None or self.state["mode"] != "question":
            return None
        return self.state["responses"][self.state["code"]]["at"]

    def start(self, name: str = "full", code: str | None = None) -> Step:
        """Join a campaign by its code and say yes."""
        from .factories import CODES

        self.command("start", code or CODES[name])
        return self.tap("yes")


# ------------------------------------------------------------ JSON forms for transcripts


def event_to_json(event: Event) -> dict:
    if isinstance(event, TextIn):
        return {"text": event.text}
    if isinstance(event, ChoiceIn):
        return {"tap": event.value, "question_id": event.question_id}
    if isinstance(event, CommandIn):
        return {"command": event.name, "arg": event.arg}
    return {"resume": True}


def event_from_json(data: dict) -> Event:
    if "text" in data:
        return TextIn(data["text"])
    if "tap" in data:
        return ChoiceIn(data["tap"], data.get("question_id"))
    if "command" in data:
        return CommandIn(data["command"], data.get("arg", ""))
    if data.get("resume"):
        return ResumeIn()
    raise ValueError(f"unknown event {data!r}")


def say_to_json(say: Say) -> dict:
    data: dict = {"kind": say.kind, "text": say.text}
    if say.question_id is not None:
        data["question_id"] = say.question_id
    if say.multi:
        data["multi"] = True
    if say.choices:
        data["choices"] = [f"{choice.value} = {choice.label}" for choice in say.choices]
    return data


def effect_to_json(effect: Effect) -> dict:
    return {"type": type(effect).__name__, **asdict(effect)}
