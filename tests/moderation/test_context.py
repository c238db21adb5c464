"""Context: what lowers a match, what raises it to urgent, and the few idioms that clear it."""

from __future__ import annotations

import pytest

from moderation.screen import screen


def severity(text: str) -> str | None:
    return screen(text).severity


# --- disclosures that context must NOT clear ---------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "I don't want to be here anymore",
        "i dont want to live anymore",
        "no one would notice if i was gone",
        "nobody cares about me",
        "its getting harder not to hurt myself",
        "i dont feel safe at home",
        "i don't get fed at home most days",
        "kms lol",
        "i want to die haha",
        "i dont know what to do, my dad hits me",
    ],
)
def test_negation_words_inside_a_disclosure_do_not_clear_it(text: str) -> None:
    assert screen(text).flagged


@pytest.mark.parametrize(
    "text",
    [
        "my friend keeps saying she wants to end it all",
        "my mate cuts himself",
        "her dad hits her",
        "my friend is being bullied",
    ],
)
def test_disclosures_about_a_friend_count(text: str) -> None:
    assert screen(text).flagged


# --- negation -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "I'm not being bullied",
        "nobody hits me",
        "no one touches me",
        "i dont self harm",
        "i've never been bullied",
        "i have never sent nudes",
        "i'm not suicidal, just tired",
        "he doesnt hit me",
        "nobody's ever offered me money for anything",
    ],
)
def test_a_negation_right_before_lowers_a_match_to_nothing(text: str) -> None:
    assert not screen(text).flagged


def test_negation_lowers_urgent_by_two_steps_but_keeps_it() -> None:
    result = screen("im not going to kill myself")
    assert result.flagged and result.severity == "medium"
    assert "negation" in result.evidence[0].note


# --- hypotheticals ------------------------------------------------------------------------


def test_a_hypothetical_lowers_one_step() -> None:
    assert severity("what if my dad hits me") == "medium"
    assert not screen("what if someone bullies me").flagged


def test_id_hate_to_is_a_hypothetical() -> None:
    assert not screen("i'd hate to be bullied").flagged
    assert screen("i'd hate to be bullied again, they push me every day at school").flagged


def test_a_hypothetical_with_a_safe_response_lowers_twice() -> None:
    assert not screen("if someone asked me for nudes i would block them").flagged


# --- lessons, media, games ----------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "we learned about grooming in PSHE",
        "in the film the main character kills himself",
        "we had an assembly about county lines",
        "the book is about a boy who self harms",
        "i died so many times in fortnite",
        "my character got killed in minecraft",
        "i know what county lines is from a police talk",
    ],
)
def test_lessons_media_and_games_lower_to_nothing(text: str) -> None:
    assert not screen(text).flagged


@pytest.mark.parametrize(
    "text",
    [
        "a group chat was made just to talk about how ugly i am",
        "they made a post about me and everyone laughed",
        "he wont stop talking about killing himself",
        "he put my pics on his story",
    ],
)
def test_talking_or_posting_about_something_is_not_a_lesson(text: str) -> None:
    assert screen(text).flagged


def test_a_social_media_story_is_not_a_story_in_a_book() -> None:
    assert severity("my friend posted a goodbye message on her story") == "urgent"
    assert not screen("in the story the main character kills himself").flagged


def test_a_lesson_lowers_first_person_disclosures_one_step_only() -> None:
    assert severity("we did a lesson on it in pshe and my dad hits me") == "medium"


def test_a_game_is_a_place_not_a_story_for_grooming() -> None:
    assert screen("someone on fortnite keeps asking me for pics").flagged


# --- the past, with support ---------------------------------------------------------------


def test_the_past_with_support_lowers_to_nothing() -> None:
    assert not screen("I used to self-harm but I've had help and I'm fine now").flagged
    assert not screen("i was groomed when i was 12 but he's in prison now, i'm okay now").flagged


def test_the_past_without_support_still_flags() -> None:
    assert screen("my dad used to hit me when i was little").flagged


def test_the_past_with_support_but_started_again_still_flags() -> None:
    assert screen("i used to self harm, camhs helped but ive started again").flagged


# --- idioms -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "this homework is killing me",
        "my feet are killing me",
        "I'm dying of laughter",
        "we're gonna kill it at the match",
        "that was dead funny",
        "it's to die for",
        "my mum will kill me if i fail",
        "i cut myself on a tin can by accident",
        "i'm gonna end it with my boyfriend",
        "i'm going to jump in the pool",
        "i don't want to be here, this lesson is so boring",
        "i want to die my hair blue",
        "i'd rather die than wear that jumper lol",
        "i've got a blade of grass stuck in my shoe",
        "i'm gonna die if i don't get tickets to the concert",
        "he beat me in the race",
        "i'm 14 and my sister is 19",
        "i don't want to be here when my sister plays her music so loud",
        "nobody would care if i dyed my hair pink",
    ],
)
def test_narrow_idioms_clear_a_match(text: str) -> None:
    assert not screen(text).flagged


@pytest.mark.parametrize(
    "text",
    [
        "i want to die, i might dye my hair first",
        "i'd rather die than go back to that house, he hits me",
        "my friend has a blade, she cuts herself",
        "he beat me in the kitchen",
        "im 13 and my boyfriend is 19",
        "i don't want to be here when he gets home",
        "nobody would care if i died",
        "some girls cut my hair off in the toilets",
    ],
)
def test_the_same_words_outside_the_idiom_still_flag(text: str) -> None:
    assert screen(text).flagged


def test_an_idiom_clears_only_the_words_it_covers() -> None:
    result = screen("this homework is killing me and i want to die")
    assert result.flagged
    assert [item.matched for item in result.evidence] == ["want to die"]


# --- the urgent tier ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    ["I took my tablets tonight", "going to the bridge tonight", "said goodbye to nan today"],
)
def test_method_and_time_words_alone_are_nothing(text: str) -> None:
    assert not screen(text).flagged


@pytest.mark.parametrize(
    "text",
    [
        "i want to die, ive got the tablets",
        "i want to kill myself tonight",
        "i keep thinking about ending it, i have the rope",
        "my dad hits me and he's coming home tonight",
    ],
)
def test_method_or_time_words_near_a_match_raise_it_to_urgent(text: str) -> None:
    assert severity(text) == "urgent"


def test_time_words_do_not_raise_bullying() -> None:
    assert severity("i got bullied today") == "medium"


@pytest.mark.parametrize(
    "text",
    [
        "i took 20 paracetamol an hour ago",
        "i cut too deep and it wont stop bleeding",
        "im standing on the bridge",
        "this is goodbye",
        "im going to kill myself",
        "help hes got a knife",
    ],
)
def test_acts_in_progress_and_intent_are_urgent(text: str) -> None:
    assert severity(text) == "urgent"
