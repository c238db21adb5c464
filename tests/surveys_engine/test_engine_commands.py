"""Every command in every state where it means something."""

from __future__ import annotations

import pytest

from moderation.signposting import help_text
from surveys import engine
from surveys.events import (
    AnswerRecorded,
    AnswerRemoved,
    ResponseErased,
    ResponseStarted,
)

from .factories import CODES
from .harness import Conversation

BULLY = CODES["full"]


def in_question(name: str = "full") -> Conversation:
    c = Conversation.of("full", "tiny", "branching")
    c.start(name)
    return c


def at_told() -> Conversation:
    c = in_question()
    c.tap("y7")
    c.tap("yes")
    c.text("1")
    assert c.at == "told"
    return c


def in_welcome() -> Conversation:
    c = Conversation.of("full", "tiny")
    c.command("start", BULLY)
    assert c.mode == "welcome"
    return c


def idle() -> Conversation:
    c = Conversation.of("full", "tiny")
    c.resume()
    return c


def paused() -> Conversation:
    c = at_told()
    c.command("stop")
    assert c.mode == "paused"
    return c


def confirming(action: str) -> Conversation:
    c = at_told()
    c.command(action)
    assert c.mode == "confirm"
    return c


STATES = {
    "idle": idle,
    "welcome": in_welcome,
    "question": at_told,
    "paused": paused,
    "confirm": lambda: confirming("forget"),
}

# ------------------------------------------------------------ command words


@pytest.mark.parametrize(
    "typed", ["help", "Help!", "/help", "/HELP", "  help  ", "HELP?", "/help@BeSafeBot"]
)
def test_help_spellings(typed: str) -> None:
    c = at_told()
    step = c.text(typed)
    assert step.outputs[0].kind == "help"
    assert step.outputs[0].text == help_text()


@pytest.mark.parametrize("state", sorted(STATES))
def test_help_in_every_state_then_where_they_were(state: str) -> None:
    c = STATES[state]()
    before = c.state
    step = c.command("help")
    assert step.outputs[0].kind == "help"
    assert step.effects == ()
    assert c.state == before
    expected = {
        "idle": None,
        "welcome": engine.CONSENT_PROMPT,
        "question": "told",
        "paused": engine.PAUSED_PROMPT,
        "confirm": engine.CONFIRM_PROMPT,
    }[state]
    if expected is None:
        assert len(step.outputs) == 1
    else:
        assert step.outputs[-1].question_id == expected


def test_unknown_command_lists_the_commands() -> None:
    c = at_told()
    step = c.text("/dance")
    assert "help, skip, back, stop, restart, forget or surveys" in step.outputs[0].text
    assert step.outputs[-1].question_id == "told"
    assert step.effects == ()
    assert c.command("dance").outputs[-1].question_id == "told"


def test_only_exact_command_words_are_commands() -> None:
    c = in_question("tiny")
    c.tap("good")
    step = c.text("stop it")
    assert step.effects[0] == AnswerRecorded("tiny1", "why", "answered", "stop it")


# ------------------------------------------------------------ skip


def test_skip_optional() -> None:
    c = at_told()
    for how in ("skip", "/skip", "Skip."):
        c2 = at_told()
        step = c2.text(how)
        assert step.effects == (AnswerRecorded(BULLY, "told", "skipped", None),)
        assert step.outputs[-1].question_id == "deal"
    step = c.command("skip")
    assert step.effects == (AnswerRecorded(BULLY, "told", "skipped", None),)


def test_skip_required() -> None:
    c = in_question()
    c.tap("y7")
    step = c.command("skip")
    assert step.effects == ()
    assert "needs an answer" in step.outputs[0].text
    assert step.outputs[-1].question_id == "bullied"


def test_skip_required_with_prefer_not_to_say_mentions_it() -> None:
    c = in_question("branching")
    c.tap("no")
    assert c.at == "age"
    # age is optional; make a required one by branching: apps is required but no PNTS
    c2 = in_question("branching")
    c2.tap("yes")
    step = c2.command("skip")
    assert "needs an answer" in step.outputs[0].text
    assert "Prefer not to say" not in step.outputs[0].text


def test_skip_elsewhere() -> None:
    step = idle().command("skip")
    assert "no question" in step.outputs[-1].text
    step = in_welcome().command("skip")
    assert "haven't started yet" in step.outputs[-1].text
    c = paused()
    step = c.command("skip")
    assert step.effects == (AnswerRecorded(BULLY, "told", "skipped", None),)
    assert c.mode == "question"


# ------------------------------------------------------------ back


def test_back_at_the_first_question() -> None:
    c = in_question()
    step = c.command("back")
    assert "first question" in step.outputs[0].text
    assert step.outputs[-1].question_id == "school_year"


def test_back_shows_the_answer_and_keep() -> None:
    c = at_told()
    step = c.command("back")
    say = step.outputs[-1]
    assert say.question_id == "where"
    assert "Your answer was: At school." in say.text
    c.command("back")
    say = c.last
    assert say.question_id == "bullied"
    assert "Your answer was: Yes." in say.text
    assert (engine.KEEP, "Keep my answer") in [(r.value, r.label) for r in say.choices]
    step = c.tap(engine.KEEP)
    assert step.effects == ()
    # keeping goes on to the first question without an answer
    assert step.outputs[-1].question_id == "told"


def test_back_keep_typed() -> None:
    c = at_told()
    c.command("back")
    c.command("back")
    step = c.text("keep")
    assert step.effects == ()
    assert c.at == "told"


def test_back_and_change_replaces_the_answer() -> None:
    c = at_told()
    c.command("back")
    step = c.text("3")
    assert step.effects == (AnswerRecorded(BULLY, "where", "answered", ["online"]),)
    assert c.at == "told"


def test_back_changing_a_branch_removes_answers() -> None:
    c = at_told()
    c.tap("no")  # told
    c.command("back")
    c.command("back")
    c.command("back")
    assert c.at == "bullied"
    step = c.tap("no")
    assert step.effects == (
        AnswerRecorded(BULLY, "bullied", "answered", "no"),
        AnswerRemoved(BULLY, "where"),
        AnswerRemoved(BULLY, "told"),
    )
    assert c.at == "deal"
    assert set(c.state["responses"][BULLY]["answers"]) == {"school_year", "bullied"}


def test_back_opening_a_branch_asks_the_new_question() -> None:
    c = in_question("branching")
    c.tap("no")
    assert c.at == "age"
    c.command("back")
    step = c.tap("yes")
    assert step.outputs[-1].question_id == "apps"
    c.text("1")
    assert c.at == "strangers"


def test_back_on_multiple_choice_starts_from_the_answer() -> None:
    c = at_told()
    c.command("back")
    step = c.tap("online")
    assert "Picked so far: At school, Online." in step.outputs[-1].text
    step = c.tap(engine.DONE)
    assert step.effects == (AnswerRecorded(BULLY, "where", "answered", ["school", "online"]),)


def test_back_skips_info_steps_and_hidden_questions() -> None:
    c = in_question()
    c.tap("y7")
    c.tap("no")
    assert c.at == "deal"
    step = c.command("back")
    assert step.outputs[-1].question_id == "bullied"
    step = c.command("back")
    assert step.outputs[-1].question_id == "school_year"


def test_back_elsewhere() -> None:
    assert "no question" in idle().command("back").outputs[-1].text
    assert "haven't started" in in_welcome().command("back").outputs[-1].text
    c = paused()
    step = c.command("back")
    assert step.outputs[-1].question_id == "where"
    assert c.mode == "question"


# ------------------------------------------------------------ stop and carry on


def test_stop_pauses() -> None:
    c = at_told()
    step = c.text("stop")
    assert step.effects == ()
    assert "answers so far are saved" in step.outputs[-1].text
    assert step.outputs[-1].question_id == engine.PAUSED_PROMPT
    assert c.mode == "paused"


@pytest.mark.parametrize("how", ["text", "resume", "start"])
def test_after_stop_the_next_message_offers_to_carry_on(how: str) -> None:
    c = paused()
    step = {
        "text": lambda: c.text("hello"),
        "resume": c.resume,
        "start": lambda: c.command("start"),
    }[how]()
    say = step.outputs[-1]
    assert say.question_id == engine.PAUSED_PROMPT
    assert [r.label for r in say.choices] == ["Carry on", "Other surveys"]
    assert "Bullying 2024" in say.text
    assert c.mode == "paused"


@pytest.mark.parametrize("how", ["tap", "typed", "menu", "join code"])
def test_carry_on(how: str) -> None:
    c = paused()
    c.resume()
    step = {
        "tap": lambda: c.tap(engine.CARRY_ON),
        "typed": lambda: c.text("carry on"),
        "menu": lambda: c.tap(BULLY, None),
        "join code": lambda: c.command("start", BULLY),
    }[how]()
    assert step.effects == ()
    assert step.outputs[-1].question_id == "told"
    assert c.mode == "question"


def test_other_surveys_from_pause() -> None:
    c = paused()
    c.resume()
    step = c.tap(engine.OTHER_SURVEYS)
    menu = step.outputs[-1]
    assert menu.kind == "menu"
    assert "Bullying 2024 (carry on)" in [r.label for r in menu.choices]
    assert c.mode == "idle"
    step = c.text("1")
    assert step.outputs[-1].question_id == "told"


def test_answer_tap_on_the_stopped_question_carries_on() -> None:
    c = paused()
    step = c.tap("no", "told")
    assert step.effects == (AnswerRecorded(BULLY, "told", "answered", "no"),)
    assert c.at == "deal"


def test_stop_elsewhere() -> None:
    c = in_welcome()
    step = c.command("stop")
    assert step.effects == ()
    assert c.mode == "idle"
    assert "change your mind" in step.outputs[-1].text
    step = idle().command("stop")
    assert "'surveys'" in step.outputs[-1].text
    c = paused()
    assert c.command("stop").outputs[-1].question_id == engine.PAUSED_PROMPT


def test_resume_mid_question() -> None:
    c = at_told()
    step = c.resume()
    assert "Welcome back" in step.outputs[0].text
    assert step.outputs[-1].question_id == "told"


# ------------------------------------------------------------ restart


def test_restart_asks_first() -> None:
    c = at_told()
    step = c.text("restart")
    say = step.outputs[-1]
    assert say.question_id == engine.CONFIRM_PROMPT
    assert "from the beginning" in say.text
    assert [r.label for r in say.choices] == ["Yes, start again", "No, carry on"]
    assert step.effects == ()


def test_restart_yes() -> None:
    c = at_told()
    c.command("restart")
    step = c.tap("yes")
    assert step.effects == (ResponseErased(BULLY), ResponseStarted(BULLY, "bullying", 1))
    assert step.outputs[-1].question_id == "school_year"
    assert c.state["responses"][BULLY]["answers"] == {}
    # the opening info step is shown again on the way through
    assert c.tap("y7").outputs[0].text == "These questions are about bullying."


def test_restart_no() -> None:
    c = at_told()
    c.command("restart")
    step = c.text("no")
    assert step.effects == ()
    assert step.outputs[-1].question_id == "told"
    assert c.mode == "question"


def test_restart_from_pause() -> None:
    c = paused()
    c.command("restart")
    step = c.tap("no")
    assert step.outputs[-1].question_id == engine.PAUSED_PROMPT
    c.command("restart")
    step = c.text("yes")
    assert step.effects == (ResponseErased(BULLY), ResponseStarted(BULLY, "bullying", 1))


def test_restart_elsewhere() -> None:
    assert "not in the middle" in idle().command("restart").outputs[-1].text
    step = in_welcome().command("restart")
    assert step.outputs[-1].question_id == engine.CONSENT_PROMPT


def test_confirmation_unclear_answer() -> None:
    c = confirming("restart")
    step = c.text("hmm")
    assert step.outputs[0].kind == "hint"
    assert step.outputs[-1].question_id == engine.CONFIRM_PROMPT


def test_another_command_cancels_a_confirmation() -> None:
    c = confirming("restart")
    step = c.command("skip")
    assert step.effects == (AnswerRecorded(BULLY, "told", "skipped", None),)
    c = confirming("forget")
    step = c.command("stop")
    assert c.mode == "paused"
    assert step.effects == ()


def test_stale_confirmation_button() -> None:
    c = at_told()
    c.command("restart")
    c.tap("no")
    step = c.tap("yes", engine.CONFIRM_PROMPT)
    assert step.effects == ()
    assert step.outputs[-1].question_id == "told"


# ------------------------------------------------------------ forget


def test_forget_asks_with_clear_buttons() -> None:
    c = at_told()
    say = c.text("forget").outputs[-1]
    assert say.question_id == engine.CONFIRM_PROMPT
    assert "delete all your answers" in say.text
    assert [r.label for r in say.choices] == ["Yes, delete my answers", "No, keep them"]


def test_forget_yes() -> None:
    c = at_told()
    c.command("forget")
    step = c.tap("yes")
    assert step.effects == (ResponseErased(BULLY),)
    assert "have been deleted" in step.outputs[0].text
    assert step.outputs[-1].kind == "menu"
    assert c.state["responses"] == {}
    assert c.mode == "idle"
    # they can take part again from the start
    c.start("full")
    assert c.at == "school_year"


def test_forget_no_carries_on() -> None:
    c = at_told()
    c.command("forget")
    step = c.tap("no")
    assert step.effects == ()
    assert "haven't deleted anything" in step.outputs[0].text
    assert step.outputs[-1].question_id == "told"


def test_forget_from_pause() -> None:
    c = paused()
    c.command("forget")
    step = c.text("yes")
    assert step.effects == (ResponseErased(BULLY),)


def test_forget_a_completed_survey_from_the_menu() -> None:
    c = Conversation.of("tiny", "full")
    c.start("tiny")
    c.tap("good")
    c.tap(engine.SKIP)
    assert "tiny1" in c.completed
    step = c.command("forget")
    assert step.outputs[-1].question_id == engine.CONFIRM_PROMPT
    assert "Quick check" in step.outputs[-1].text
    step = c.tap("yes")
    assert step.effects == (ResponseErased("tiny1"),)
    assert "tiny1" not in c.completed
    assert "Quick check" in [r.label for r in step.outputs[-1].choices]


def test_forget_chooses_between_surveys() -> None:
    c = Conversation.of("tiny", "full")
    c.start("tiny")
    c.tap("good")
    c.tap(engine.SKIP)
    c.start("full")
    c.command("surveys")
    step = c.command("forget")
    say = step.outputs[-1]
    assert say.question_id == engine.FORGET_PROMPT
    assert [r.label for r in say.choices] == [
        "Quick check",
        "Bullying 2024",
        "Don't delete anything",
    ]
    step = c.text("2")
    assert step.outputs[-1].question_id == engine.CONFIRM_PROMPT
    step = c.tap("yes")
    assert step.effects == (ResponseErased(BULLY),)


def test_forget_chooser_cancel() -> None:
    c = Conversation.of("tiny", "full")
    c.start("tiny")
    c.tap("good")
    c.tap(engine.SKIP)
    c.start("full")
    c.command("forget")
    c.tap("no")
    c.command("surveys")
    c.command("forget")
    step = c.tap(engine.CANCEL)
    assert step.effects == ()
    assert "haven't deleted anything" in step.outputs[0].text


def test_forget_with_nothing_saved() -> None:
    step = idle().command("forget")
    assert "don't have any answers saved" in step.outputs[0].text
    step = in_welcome().command("forget")
    assert "don't have any answers saved" in step.outputs[0].text


# ------------------------------------------------------------ surveys


def test_surveys_mid_survey() -> None:
    c = at_told()
    step = c.text("surveys")
    assert "are saved" in step.outputs[0].text
    assert "carry on with it from the list" in step.outputs[0].text
    assert step.outputs[-1].kind == "menu"
    assert c.mode == "idle"
    assert step.effects == ()


def test_surveys_in_idle_and_welcome() -> None:
    assert idle().command("surveys").outputs[-1].kind == "menu"
    c = in_welcome()
    step = c.command("surveys")
    assert len(step.outputs) == 1 and step.outputs[0].kind == "menu"
    assert c.mode == "idle"


def test_start_mid_survey_shows_where_they_are() -> None:
    c = at_told()
    step = c.text("/start")
    assert step.outputs[-1].question_id == "told"
    c = in_welcome()
    assert c.command("start").outputs[-1].question_id == engine.CONSENT_PROMPT
