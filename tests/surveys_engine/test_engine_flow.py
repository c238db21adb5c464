"""The engine's main flow: menu, welcome, questions of every type, the end."""

from __future__ import annotations

from surveys import engine
from surveys.events import (
    AnswerRecorded,
    ChoiceIn,
    EngineContext,
    ResponseCompleted,
    ResponseErased,
    ResponseStarted,
    ResumeIn,
    TextIn,
)
from surveys.model import PREFER_NOT_TO_SAY

from .factories import CODES, context, offer
from .harness import Conversation

BULLY = CODES["full"]


def values(say) -> list[str]:
    return [choice.value for choice in say.choices]


def labels(say) -> list[str]:
    return [choice.label for choice in say.choices]


def answer_to_told(c: Conversation) -> None:
    """Start the full survey and answer up to "told" (Year 7, bullied yes, at school)."""
    c.start("full")
    c.tap("y7")
    c.tap("yes")
    c.text("1")
    assert c.at == "told"


# ------------------------------------------------------------ first contact and the menu


def test_first_contact_greets_and_lists_surveys() -> None:
    c = Conversation.of("full", "tiny")
    step = c.text("hi")
    assert "Be-Safe" in step.outputs[0].text
    assert "never ask your name" in step.outputs[0].text
    menu = step.outputs[-1]
    assert menu.kind == "menu"
    assert values(menu) == ["bully24", "tiny1"]
    assert labels(menu) == ["Bullying 2024", "Quick check"]
    assert step.effects == ()


def test_every_opening_shows_the_menu() -> None:
    for event in (ResumeIn(), TextIn(""), TextIn("/start"), ChoiceIn("x", "old")):
        step = engine.step(None, event, context(["full"]))
        assert step.outputs[-1].kind == "menu"
        assert step.state["greeted"]


def test_later_visits_get_a_short_greeting() -> None:
    c = Conversation.of("full")
    c.resume()
    step = c.resume()
    assert step.outputs[0].text == "Hi again! 👋"
    assert c.command("surveys").outputs[-1].kind == "menu"


def test_no_surveys_open() -> None:
    c = Conversation.of()
    menu = c.resume().outputs[-1]
    assert menu.kind == "menu"
    assert menu.choices == ()
    assert "no surveys open" in menu.text


def test_completed_surveys_are_left_out_and_mentioned() -> None:
    c = Conversation.of("full", "tiny", completed={"tiny1"})
    menu = c.resume().outputs[-1]
    assert values(menu) == ["bully24"]
    assert "already done \u201cQuick check\u201d" in menu.text


def test_all_done() -> None:
    c = Conversation.of("tiny", completed={"tiny1"})
    menu = c.resume().outputs[-1]
    assert menu.choices == ()
    assert "no other surveys" in menu.text


def test_menu_by_tap_number_title_or_code() -> None:
    for how in (
        lambda c: c.tap("tiny1", None),
        lambda c: c.text("2"),
        lambda c: c.text("quick check"),
        lambda c: c.text("Quik check"),
        lambda c: c.text("TINY1"),
    ):
        c = Conversation.of("full", "tiny")
        c.resume()
        step = how(c)
        assert c.mode == "welcome", step
        assert step.outputs[-1].question_id == engine.CONSENT_PROMPT


def test_menu_text_that_matches_nothing() -> None:
    c = Conversation.of("full", "tiny")
    c.resume()
    step = c.text("what is this")
    assert step.outputs[-1].kind == "menu"
    assert "type its number" in step.outputs[-1].text


def test_tap_on_a_closed_campaign_in_the_menu() -> None:
    c = Conversation.of("full")
    c.resume()
    step = c.tap("gone", None)
    assert "isn't open any more" in step.outputs[0].text
    assert step.outputs[-1].kind == "menu"


def test_join_code_goes_straight_to_welcome() -> None:
    c = Conversation.of("full", "tiny")
    step = c.command("start", "tiny1")
    assert c.mode == "welcome"
    assert len(step.outputs) == 1
    assert "Quick check" in step.outputs[0].text


def test_join_code_typed_as_a_deep_link() -> None:
    c = Conversation.of("full", "tiny")
    c.text("/start@BeSafeBot tiny1")
    assert c.mode == "welcome"
    assert c.state["code"] == "tiny1"


def test_unknown_join_code() -> None:
    c = Conversation.of("full")
    step = c.command("start", "nope-123")
    assert "couldn't find that survey" in step.outputs[0].text
    assert step.outputs[-1].kind == "menu"
    assert c.mode == "idle"


# ------------------------------------------------------------ welcome and consent


def test_welcome_explains_everything() -> None:
    c = Conversation.of("full")
    say = c.command("start", BULLY).outputs[-1]
    assert say.question_id == engine.CONSENT_PROMPT
    assert say.kind == "question"
    for words in (
        "Bullying 2024",
        "so that schools can do more",
        "anonymous",
        "never ask your name",
        "stop at any time",
        "skip questions",
        "'help'",
        "about 5 minutes",
    ):
        assert words in say.text
    assert labels(say) == ["Yes, let's start", "No thanks"]


def test_consent_yes_starts_the_response() -> None:
    c = Conversation.of("full")
    c.command("start", BULLY)
    step = c.tap("yes")
    assert step.effects == (ResponseStarted(BULLY, "bullying", 1),)
    assert step.outputs[-1].question_id == "school_year"
    assert c.mode == "question"


def test_consent_typed() -> None:
    for text in ("yes", "Yes, let's start", "yep!", "start", "ok"):
        c = Conversation.of("full")
        c.command("start", BULLY)
        assert isinstance(c.text(text).effects[0], ResponseStarted), text


def test_consent_no() -> None:
    for how in (lambda c: c.tap("no"), lambda c: c.text("no thanks"), lambda c: c.text("nah")):
        c = Conversation.of("full", "tiny")
        c.command("start", BULLY)
        step = how(c)
        assert step.effects == ()
        assert "That's OK" in step.outputs[0].text
        assert step.outputs[-1].kind == "menu"
        assert c.mode == "idle"


def test_consent_unclear() -> None:
    c = Conversation.of("full")
    c.command("start", BULLY)
    step = c.text("what?")
    assert step.outputs[0].kind == "hint"
    assert step.outputs[-1].question_id == engine.CONSENT_PROMPT
    assert step.effects == ()


# ------------------------------------------------------------ questions


def test_question_message_shape() -> None:
    c = Conversation.of("full")
    c.start("full")
    say = c.last
    assert say.kind == "question"
    assert say.question_id == "school_year"
    assert say.text.startswith("Question 1 of 8\n")
    assert values(say)[-2:] == [PREFER_NOT_TO_SAY, engine.SKIP]
    assert labels(say)[-2:] == ["Prefer not to say", "Skip"]
    assert not say.multi


def test_info_step_is_shown_and_the_flow_goes_on() -> None:
    c = Conversation.of("full")
    c.start("full")
    step = c.tap("y7")
    assert [say.kind for say in step.outputs] == ["info", "question"]
    assert step.outputs[0].text == "These questions are about bullying."
    assert step.outputs[0].question_id is None


def test_required_question_offers_no_skip() -> None:
    c = Conversation.of("full")
    c.start("full")
    say = c.tap("y7").outputs[-1]
    assert say.question_id == "bullied"
    assert values(say) == ["yes", "no"]


def test_answers_are_recorded_with_their_status() -> None:
    c = Conversation.of("full")
    c.start("full")
    assert c.tap(PREFER_NOT_TO_SAY).effects == (
        AnswerRecorded(BULLY, "school_year", "prefer_not_to_say", None),
    )
    assert c.text("yes").effects == (AnswerRecorded(BULLY, "bullied", "answered", "yes"),)
    assert c.tap(engine.SKIP).effects == (AnswerRecorded(BULLY, "where", "skipped", None),)


def test_show_if_skips_questions() -> None:
    c = Conversation.of("full")
    c.start("full")
    c.tap("y7")
    step = c.tap("no")
    assert step.outputs[-1].question_id == "deal"
    assert step.outputs[-1].text.startswith("Question 5 of 8")


def test_multiple_choice_tapped() -> None:
    c = Conversation.of("full")
    c.start("full")
    c.tap("y7")
    say = c.tap("yes").outputs[-1]
    assert say.multi
    assert values(say)[-3:] == [PREFER_NOT_TO_SAY, engine.DONE, engine.SKIP]
    step = c.tap("online")
    assert step.effects == ()
    assert step.outputs[-1].text.startswith("Picked so far: Online.")
    assert step.outputs[-1].multi and step.outputs[-1].question_id == "where"
    c.tap("school")
    step = c.tap("online")  # tapping again un-picks
    assert "Picked so far: At school." in step.outputs[-1].text
    c.tap("elsewhere")
    step = c.tap(engine.DONE)
    assert step.effects == (AnswerRecorded(BULLY, "where", "answered", ["school", "elsewhere"]),)
    assert c.at == "told"


def test_multiple_choice_untapped_everything() -> None:
    c = Conversation.of("full")
    c.start("full")
    c.tap("y7")
    c.tap("yes")
    c.tap("online")
    step = c.tap("online")
    assert "Nothing picked yet" in step.outputs[-1].text
    step = c.tap(engine.DONE)
    assert step.effects == (AnswerRecorded(BULLY, "where", "skipped", None),)


def test_multiple_choice_typed_records_at_once() -> None:
    c = Conversation.of("full")
    c.start("full")
    c.tap("y7")
    c.tap("yes")
    step = c.text("1,3")
    assert step.effects == (AnswerRecorded(BULLY, "where", "answered", ["school", "online"]),)


def test_multiple_choice_typed_done_keeps_the_taps() -> None:
    c = Conversation.of("full")
    c.start("full")
    c.tap("y7")
    c.tap("yes")
    c.tap("journey")
    step = c.text("that's all")
    assert step.effects == (AnswerRecorded(BULLY, "where", "answered", ["journey"]),)


def test_required_multiple_choice_needs_a_pick() -> None:
    c = Conversation.of("branching")
    c.start("branching")
    c.tap("yes")
    say = c.last
    assert say.question_id == "apps"
    assert engine.SKIP not in values(say)
    step = c.tap(engine.DONE)
    assert step.effects == ()
    assert "pick at least one" in step.outputs[0].text
    assert c.text("done").effects == ()
    assert c.text("skip").effects == ()


def test_rating_tapped_and_typed() -> None:
    c = Conversation.of("full")
    c.start("full")
    c.tap("y7")
    c.tap("no")
    c.tap("quite_well")
    say = c.last
    assert say.question_id == "safe"
    assert labels(say)[0] == "1 – Not safe at all"
    assert c.tap("4").effects == (AnswerRecorded(BULLY, "safe", "answered", 4),)
    c.command("back")
    assert c.text("very safe").effects == (AnswerRecorded(BULLY, "safe", "answered", 5),)


def test_number_with_bounds() -> None:
    c = Conversation.of("full")
    c.start("full")
    c.tap("y7")
    c.tap("no")
    c.tap("quite_well")
    c.tap("4")
    assert c.at == "hours"
    step = c.text("30")
    assert step.effects == ()
    assert step.outputs[0].kind == "hint"
    assert step.outputs[0].text == "Please type a number from 0 to 24."
    assert step.outputs[-1].question_id == "hours"
    step = c.text("three")
    assert step.effects == (AnswerRecorded(BULLY, "hours", "answered", 3),)


def test_unmatched_answer_gives_the_hint_and_the_question_again() -> None:
    c = Conversation.of("full")
    c.start("full")
    c.tap("y7")
    for text in ("maybe", "", "🙂", "x" * 10_000, "\u202e\u0000"):
        step = c.text(text)
        assert step.effects == ()
        assert step.outputs[0].kind == "hint"
        assert step.outputs[-1].question_id == "bullied"


def test_typo_answer() -> None:
    c = Conversation.of("full")
    c.start("full")
    c.tap("y7")
    c.tap("no")
    step = c.text("not vry well")
    assert step.effects == (AnswerRecorded(BULLY, "deal", "answered", "not_very_well"),)


def test_long_free_text_is_trimmed_with_a_note() -> None:
    c = Conversation.of("tiny", max_text_length=50)
    c.start("tiny")
    c.tap("good")
    step = c.text("a" * 80)
    assert step.outputs[0].kind == "notice"
    assert "first 50 characters" in step.outputs[0].text
    recorded = step.effects[0]
    assert isinstance(recorded, AnswerRecorded)
    assert recorded.value == "a" * 50


def test_free_text_trimmed_to_the_question_limit() -> None:
    c = Conversation.of("full")
    c.start("full")
    c.tap("y7")
    c.tap("no")
    c.tap("quite_well")
    c.tap("4")
    c.text("2")
    step = c.text("b" * 600)
    recorded = step.effects[0]
    assert isinstance(recorded, AnswerRecorded) and recorded.value == "b" * 500


def test_free_text_with_a_command_word_inside_is_an_answer() -> None:
    c = Conversation.of("tiny")
    c.start("tiny")
    c.tap("bad")
    step = c.text("help me please, they are mean")
    assert step.effects[0] == AnswerRecorded(
        "tiny1", "why", "answered", "help me please, they are mean"
    )


def test_stale_button() -> None:
    c = Conversation.of("full")
    answer_to_told(c)
    step = c.tap("yes", "bullied")
    assert step.effects == ()
    assert "earlier message" in step.outputs[0].text
    assert step.outputs[-1].question_id == "told"
    step = c.tap("yes", engine.CONSENT_PROMPT)
    assert step.effects == ()
    assert step.outputs[-1].question_id == "told"


def test_unknown_value_on_the_current_question() -> None:
    c = Conversation.of("full")
    answer_to_told(c)
    step = c.tap("purple", "told")
    assert step.effects == ()
    assert step.outputs[-1].question_id == "told"
    step = c.tap(PREFER_NOT_TO_SAY, "told")  # not offered on this question
    assert step.effects == ()


# ------------------------------------------------------------ the end


def finish_full(c: Conversation) -> None:
    c.start("full")
    c.tap("y7")
    c.tap("no")
    c.tap("quite_well")
    c.tap("4")
    c.text("2")


def test_completion() -> None:
    c = Conversation.of("full", "tiny")
    finish_full(c)
    step = c.text("No, that's all")
    assert step.effects == (
        AnswerRecorded(BULLY, "anything", "answered", "No, that's all"),
        ResponseCompleted(BULLY),
    )
    thanks = step.outputs[0]
    assert thanks.kind == "thanks"
    assert "Your answers will help make schools safer." in thanks.text
    assert "0800 1111" in thanks.text
    assert step.outputs[-1].kind == "menu"
    assert values(step.outputs[-1]) == ["tiny1"]
    assert c.mode == "idle"
    assert c.state["responses"] == {}


def test_completion_without_other_surveys_ends_on_thanks() -> None:
    c = Conversation.of("full")
    finish_full(c)
    step = c.tap(engine.SKIP)
    assert step.outputs[-1].kind == "thanks"


def test_closing_info_step_comes_before_thanks() -> None:
    c = Conversation.of("branching")
    c.start("branching")
    c.tap("no")
    step = c.text("13")
    assert [say.kind for say in step.outputs] == ["info", "thanks"]
    assert step.outputs[0].text == "That was the last question."


def test_one_response_per_campaign() -> None:
    c = Conversation.of("full", "tiny")
    finish_full(c)
    c.tap(engine.SKIP)
    for event in (lambda: c.command("start", BULLY), lambda: c.tap(BULLY, None)):
        step = event()
        assert "already done" in step.outputs[0].text
        assert step.outputs[-1].kind == "menu"
        assert step.effects == ()
        assert c.mode == "idle"


def test_completed_elsewhere_drops_the_saved_progress() -> None:
    c = Conversation.of("tiny")
    c.start("tiny")
    state = c.state
    step = engine.step(state, TextIn("good"), context(["tiny"], completed={"tiny1"}))
    assert step.effects == ()
    assert step.state["responses"] == {}
    assert step.outputs[-1].kind == "menu"


# ------------------------------------------------------------ audience


def test_school_year_outside_the_audience_ends_politely() -> None:
    c = Conversation.of("full", "older")
    c.start("full")
    step = c.tap("y12")
    assert step.effects == (ResponseErased(BULLY),)
    assert "Years 5 to 11" in step.outputs[0].text
    assert "isn't the right one for you" in step.outputs[0].text
    assert step.outputs[-1].kind == "menu"
    assert values(step.outputs[-1]) == ["rel24"]
    assert c.state["school_year"] == 12
    assert c.state["responses"] == {}


def test_known_school_year_filters_the_menu_and_join_codes() -> None:
    c = Conversation.of("full", "older")
    c.start("full")
    c.text("7")
    assert c.state["school_year"] == 7
    menu = c.command("surveys").outputs[-1]
    assert values(menu) == ["bully24"]
    step = c.command("start", "rel24")
    assert "Years 10 to 13" in step.outputs[-2].text
    assert c.mode == "idle"


def test_prefer_not_to_say_school_year_keeps_going() -> None:
    c = Conversation.of("older")
    c.start("older")
    c.tap(PREFER_NOT_TO_SAY)
    assert c.at == "partner"
    assert c.state["school_year"] is None


# ------------------------------------------------------------ closed campaigns


def test_campaign_closes_mid_survey() -> None:
    c = Conversation.of("full", "tiny")
    answer_to_told(c)
    c.offers = [offer("tiny")]
    step = c.text("yes")
    assert step.effects == ()
    assert "has closed now" in step.outputs[0].text
    assert "Bullying 2024" in step.outputs[0].text
    assert step.outputs[-1].kind == "menu"
    assert values(step.outputs[-1]) == ["tiny1"]
    assert c.mode == "idle"
    # if it opens again, the saved answers are still there to carry on from
    c.offers = [offer("full"), offer("tiny")]
    menu = c.resume().outputs[-1]
    assert "Bullying 2024 (carry on)" in labels(menu)
    step = c.tap(BULLY, None)
    assert step.effects == ()
    assert step.outputs[-1].question_id == "told"


def test_campaign_closes_during_welcome() -> None:
    c = Conversation.of("full")
    c.command("start", BULLY)
    c.offers = []
    step = c.tap("yes")
    assert step.effects == ()
    assert "can't be started" in step.outputs[0].text
    assert c.mode == "idle"


def test_help_still_works_when_the_campaign_has_closed() -> None:
    c = Conversation.of("full")
    answer_to_told(c)
    c.offers = []
    step = c.text("help")
    assert step.outputs[0].kind == "help"
    assert "has closed now" in step.outputs[1].text


def test_deep_link_to_another_campaign_after_closure() -> None:
    c = Conversation.of("full", "tiny")
    answer_to_told(c)
    c.offers = [offer("tiny")]
    step = c.command("start", "tiny1")
    assert "has closed now" in step.outputs[0].text
    assert c.mode == "welcome" and c.state["code"] == "tiny1"


# ------------------------------------------------------------ several surveys


def test_switching_surveys_keeps_progress() -> None:
    c = Conversation.of("full", "tiny")
    answer_to_told(c)
    step = c.tap("tiny1", None)
    assert "answers to \u201cBullying 2024\u201d are saved" in step.outputs[0].text
    c.tap("yes")
    c.tap("good")
    c.tap(engine.SKIP)
    assert "tiny1" in c.completed
    menu = c.last
    assert labels(menu) == ["Bullying 2024 (carry on)"]
    step = c.tap(BULLY, None)
    assert "Welcome back" in step.outputs[0].text
    assert step.outputs[-1].question_id == "told"


# ------------------------------------------------------------ position and robustness


def test_position() -> None:
    assert engine.position(None) == engine.Position()
    c = Conversation.of("full")
    answer_to_told(c)
    where = engine.position(c.state)
    assert (where.code, where.question_id, where.topic) == (BULLY, "told", "bullying")
    assert where.survey is None
    assert engine.position(c.state, c.context).survey == offer("full").survey
    c.command("stop")
    paused = engine.position(c.state, c.context)
    assert (paused.code, paused.question_id) == (BULLY, None)
    c2 = Conversation.of("full")
    c2.command("start", BULLY)
    assert engine.position(c2.state).topic == "bullying"


def test_unreadable_states_are_recovered() -> None:
    ctx = context(["full"])
    for state in (
        {},
        {"v": 99},
        {"v": 1, "mode": "question", "code": "bully24"},
        {"v": 1, "mode": "question", "code": "bully24", "responses": {"bully24": "x"}},
        {"v": 1, "mode": "confirm", "code": 3, "responses": [], "school_year": "7"},
        {
            "v": 1,
            "mode": "question",
            "code": "bully24",
            "responses": {
                "bully24": {
                    "survey_id": "bullying",
                    "version": 1,
                    "answers": {"bullied": {"status": "weird"}, "x": 3},
                    "at": "no_such_question",
                    "seen": "x",
                    "picked": [1, "a"],
                }
            },
        },
    ):
        step = engine.step(state, TextIn("yes"), ctx)  # type: ignore[arg-type]
        assert step.outputs


def test_state_is_not_mutated() -> None:
    c = Conversation.of("full")
    answer_to_told(c)
    before = c.state
    snapshot = repr(before)
    engine.step(before, TextIn("yes"), c.context)
    assert repr(before) == snapshot


def test_start_state() -> None:
    state = engine.start_state()
    step = engine.step(state, ResumeIn(), EngineContext(offers=()))
    assert step.state["greeted"] is True
    assert state["greeted"] is False
