"""Random conversations: the engine never raises, its state stays plain JSON, and its
effects always make sense to a host (checked by `harness.EffectChecker` at every step)."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from surveys import engine
from surveys.events import COMMANDS, ChoiceIn, CommandIn, Event, ResumeIn, TextIn
from surveys.matching import answer_choices
from surveys.model import PREFER_NOT_TO_SAY

from .factories import CODES, SURVEYS, offer
from .harness import Conversation

ALL_OFFERS = {name: offer(name) for name in SURVEYS}
QUESTION_IDS = sorted(
    {question.id for item in ALL_OFFERS.values() for question in item.survey.questions}
)
CHOICE_VALUES = sorted(
    {
        choice.value
        for item in ALL_OFFERS.values()
        for question in item.survey.questions
        for choice in answer_choices(question)
    }
)
SPECIAL_VALUES = [
    engine.SKIP,
    engine.DONE,
    engine.KEEP,
    engine.CARRY_ON,
    engine.OTHER_SURVEYS,
    engine.CANCEL,
    engine.YES,
    engine.NO,
    PREFER_NOT_TO_SAY,
]
PROMPTS = [engine.CONSENT_PROMPT, engine.CONFIRM_PROMPT, engine.PAUSED_PROMPT, engine.FORGET_PROMPT]
ODD_TEXTS = [
    "",
    " ",
    "x" * 10_000,
    "1," * 2000,
    "🙂" * 300,
    "👩🏽\u200d💻",
    "مرحبا بك",
    "שלום",
    "\u202eevil\u202c",
    "\x00\x01\x1b[31m\x7f\x9f",
    "\ud800",
    "1,3",
    "1 and 2",
    "twelve",
    "99999999999999999999999",
    "nan",
    "-0",
    "prefer not to say",
    "done",
    "keep",
    "carry on",
    "yes",
    "no",
    "/",
    "//start",
    "/start bully24",
    "/start nothing",
    "/start@Bot tiny1",
    "help me please",
]
typed_commands = st.builds(
    lambda name, slash, tail: ("/" if slash else "") + name + tail,
    st.sampled_from([*COMMANDS, "HELP", "Stop", "dance"]),
    st.booleans(),
    st.sampled_from(["", "!", ".", "?", " ", " bully24", " x"]),
)
texts = st.one_of(
    st.text(max_size=60),
    st.sampled_from(ODD_TEXTS),
    typed_commands,
    st.integers(min_value=-5, max_value=30).map(str),
)
taps = st.builds(
    ChoiceIn,
    st.one_of(
        st.sampled_from(CHOICE_VALUES + SPECIAL_VALUES + sorted(CODES.values())),
        st.text(max_size=10),
    ),
    st.one_of(st.none(), st.sampled_from(QUESTION_IDS + PROMPTS), st.text(max_size=8)),
)
commands = st.builds(
    CommandIn,
    st.one_of(st.sampled_from(COMMANDS), st.text(max_size=8)),
    st.one_of(st.just(""), st.sampled_from(sorted(CODES.values())), st.text(max_size=12)),
)


def reply_to_last(data: st.DataObject, c: Conversation) -> Event:
    """Something a young person would plausibly do with the last message's buttons."""
    say = c.steps[-1].outputs[-1] if c.steps else None
    if say is None or not say.choices:
        return TextIn(data.draw(texts))
    index = data.draw(st.integers(min_value=0, max_value=len(say.choices) - 1))
    choice = say.choices[index]
    how = data.draw(st.sampled_from(["tap", "tap", "label", "number"]))
    if how == "tap":
        return ChoiceIn(choice.value, say.question_id)
    if how == "label":
        return TextIn(choice.label)
    return TextIn(str(index + 1))


@settings(
    max_examples=250,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    data=st.data(),
    names=st.lists(st.sampled_from(sorted(SURVEYS)), max_size=4, unique=True),
    completed=st.sets(st.sampled_from(sorted(CODES.values())), max_size=2),
    max_text_length=st.integers(min_value=1, max_value=3000),
)
def test_random_conversations(
    data: st.DataObject, names: list[str], completed: set[str], max_text_length: int
) -> None:
    c = Conversation.of(*names, completed=completed, max_text_length=max_text_length)
    for _ in range(data.draw(st.integers(min_value=1, max_value=45), label="length")):
        action = data.draw(
            st.sampled_from(
                ["reply"] * 6 + ["back", "text", "tap", "command", "resume", "close", "open"]
            ),
            label="action",
        )
        if action == "close" and c.offers:
            gone = data.draw(st.sampled_from([item.code for item in c.offers]))
            c.offers = [item for item in c.offers if item.code != gone]
            continue
        if action == "open":
            name = data.draw(st.sampled_from(sorted(SURVEYS)))
            if all(item.code != CODES[name] for item in c.offers):
                c.offers.append(ALL_OFFERS[name])
            continue
        if action == "reply":
            event: Event = reply_to_last(data, c)
        elif action == "text":
            event = TextIn(data.draw(texts))
        elif action == "tap":
            event = data.draw(taps)
        elif action == "command":
            event = data.draw(commands)
        elif action == "back":  # often enough to change earlier answers and branches
            event = CommandIn("back")
        else:
            event = ResumeIn()
        c.send(event)  # the harness checks JSON, outputs and effects after every step


@settings(max_examples=150, deadline=None)
@given(
    state=st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=12),
        lambda children: (
            st.lists(children, max_size=4)
            | st.dictionaries(
                st.sampled_from(
                    ["v", "mode", "code", "responses", "pending", "confirm", "at", "answers", "x"]
                ),
                children,
                max_size=6,
            )
        ),
        max_leaves=20,
    ),
    event=st.one_of(texts.map(TextIn), taps, commands, st.just(ResumeIn())),
)
def test_any_stored_state_is_survivable(state: object, event: Event) -> None:
    if isinstance(state, dict):
        state.setdefault("v", 1)
    step = engine.step(state, event, Conversation.of("full", "tiny").context)  # type: ignore[arg-type]
    assert step.outputs
    assert step.state["v"] == engine.STATE_VERSION


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), name=st.sampled_from(["full", "branching"]))
def test_random_answers_going_back_and_forth(data: st.DataObject, name: str) -> None:
    """Deep inside one survey: answering, going back, changing branches, skipping."""
    c = Conversation.of(name)
    c.start(name)
    for _ in range(data.draw(st.integers(min_value=1, max_value=60), label="length")):
        if c.mode != "question":
            break
        action = data.draw(st.sampled_from(["reply"] * 4 + ["back", "back", "skip", "typed"]))
        if action == "reply":
            event: Event = reply_to_last(data, c)
        elif action == "typed":
            event = TextIn(data.draw(texts))
        else:
            event = CommandIn(action)
        c.send(event)
