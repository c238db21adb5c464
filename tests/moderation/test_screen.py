"""The first screening rules: what fires, what is lowered, and that nothing crashes."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from moderation.screen import ScreenContext, normalise, screen
from moderation.signposting import disclosure_reply, help_text


@pytest.mark.parametrize(
    ("text", "category", "severity"),
    [
        ("I want to die", "suicide_self_harm", "high"),
        ("i want to kill myself tonight", "suicide_self_harm", "urgent"),
        ("KMS", "suicide_self_harm", "high"),
        ("I don't want to be here anymore", "suicide_self_harm", "high"),
        ("my dad hits me when he's drunk", "physical_abuse", "high"),
        ("they bully me every day", "bullying", "medium"),
        ("a man online keeps asking for pics", "exploitation_grooming", "high"),
        ("my boyfriend checks my phone all the time", "relationship_abuse", "medium"),
    ],
)
def test_disclosures_are_flagged(text: str, category: str, severity: str) -> None:
    result = screen(text, ScreenContext())
    assert result.flagged
    assert category in result.categories
    assert result.severity == severity


@pytest.mark.parametrize(
    "text",
    [
        "this homework is killing me",
        "I'm not being bullied",
        "we played football after school",
        "",
        "   ",
    ],
)
def test_ordinary_messages_are_not_flagged(text: str) -> None:
    assert not screen(text).flagged


def test_evidence_points_at_the_original_words() -> None:
    text = "Honestly… I want to DIEEEE 😭"
    result = screen(text)
    assert result.flagged
    span = result.evidence[0]
    assert text[span.start : span.end] == span.matched
    assert span.matched.lower().startswith("want to die")


def test_normalise_keeps_a_map_back_to_the_original() -> None:
    normalised, index = normalise("Sooooo   SAD!!")
    assert normalised == "sooooo sad "
    assert len(index) == len(normalised)
    assert "Sooooo   SAD!!"[index[7]] == "S"


def test_negation_lowers_but_never_clears_a_high_match() -> None:
    result = screen("nobody hits me")
    assert result.flagged
    assert result.severity == "medium"


def test_replies_signpost_childline_and_999() -> None:
    for severity in ("urgent", "high", "medium", None):
        reply = disclosure_reply(severity)
        assert "0800 1111" in reply
        assert "999" in reply
    assert "999" in help_text() and "0800 1111" in help_text()


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=2000))
def test_any_text_is_screened_without_error(text: str) -> None:
    result = screen(text)
    for item in result.evidence:
        assert 0 <= item.start < item.end <= len(text)


def test_very_long_message_is_screened_everywhere() -> None:
    text = "ok " * 20000 + "i want to die"
    result = screen(text)
    assert result.flagged
    assert text[result.evidence[0].start : result.evidence[0].end] == "want to die"
