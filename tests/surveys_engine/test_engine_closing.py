"""A campaign that has closed (a `closing` offer, within the finish grace): those who
started may finish; nobody new may start, and it is not in the menu."""

from __future__ import annotations

from dataclasses import replace

from surveys.events import ResponseStarted

from .factories import CODES
from .harness import Conversation

BULLY = CODES["full"]


def close(c: Conversation) -> None:
    c.offers = [replace(o, closing=True) if o.code == BULLY else o for o in c.offers]


def test_someone_mid_survey_may_finish_after_it_closes() -> None:
    c = Conversation.of("full", "tiny")
    c.start("full")
    c.tap("y7")
    at = c.at
    close(c)
    c.resume()
    assert c.mode == "question" and c.at == at
    c.tap("yes")
    assert c.at != at  # the answer was taken


def test_nobody_new_may_start_a_closed_campaign() -> None:
    c = Conversation.of("full", "tiny")
    close(c)
    c.command("start", BULLY)
    assert "has closed" in c.texts
    assert not any(isinstance(e, ResponseStarted) for e in c.all_effects)
    c.command("surveys")
    menu = c.last_with_choices
    assert BULLY not in {choice.value for choice in menu.choices}


def test_closing_while_reading_the_welcome_does_not_start_it() -> None:
    c = Conversation.of("full", "tiny")
    c.command("start", BULLY)
    assert c.mode == "welcome"
    close(c)
    c.tap("yes")
    assert "has just closed" in c.texts
    assert not any(isinstance(e, ResponseStarted) for e in c.all_effects)
