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
        ("i sh when things get bad", "suicide_self_harm", "high"),
        ("my mum calls me fat and useless", "emotional_abuse", "medium"),
        ("theres no food at home and mum hasnt been back since friday", "neglect", "medium"),
        ("my dad hits my mum", "domestic_abuse", "high"),
        ("i was raped at a party", "sexual_abuse", "high"),
        ("someone is trying to break into our house", "immediate_danger", "urgent"),
        ("my parents are forcing me to marry my cousin", "other", "high"),
        ("im 14 and i think im pregnant", "other", "medium"),
        ("older boys pay me to carry drugs for them", "exploitation_grooming", "high"),
        ("my dad hits me when he's drunk", "physical_abuse", "high"),
        ("they bully me every day", "bullying", "medium"),
        ("a man online keeps asking for pics", "exploitation_grooming", "high"),
        ("my boyfriend checks my phone all the time", "relationship_abuse", "medium"),
        ("they call me a loser every day", "bullying", "medium"),
        ("i dont feel safe at home", "immediate_danger", "urgent"),
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
        "im safe at home",
        "im safe at the moment",  # was urgent: a danger rule's pattern began "im safe"
        "i am safe tonight, staying at my nans",
        "my mum called me a taxi",
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
    norm = normalise("Sooooo   SAD!!")
    assert norm.text == "so sad "
    assert len(norm.starts) == len(norm.text)
    assert "Sooooo   SAD!!"[norm.starts[3]] == "S"


def test_negation_lowers_a_high_match_to_nothing_and_an_urgent_one_to_medium() -> None:
    assert not screen("nobody hits me").flagged
    assert screen("i'm not going to kill myself").severity == "medium"


def test_evidence_names_its_rule_category_and_severity() -> None:
    result = screen("my dad hits me")
    (item,) = result.evidence
    assert item.rule == "pa-hit-me"
    assert item.category == "physical_abuse"
    assert item.severity == "high"
    assert set(result.evidence_dicts()[0]) >= {"category", "pattern", "start", "end", "matched"}


def test_categories_are_ordered_by_severity() -> None:
    result = screen("they call me names at school and i want to kill myself tonight")
    assert result.categories[0] == "suicide_self_harm"
    assert "bullying" in result.categories


def test_a_rules_bug_flags_for_a_person_instead_of_raising(monkeypatch) -> None:
    import moderation.screen as module

    def broken(text, rules):
        raise RuntimeError("bug")

    monkeypatch.setattr(module, "_screen", broken)
    result = screen("anything")
    assert result.flagged and result.severity == "medium"


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
        assert text[item.start : item.end] == item.matched


# Pieces that stress the patterns: many words for the word gaps, negations, repeated letters,
# spaced-out letters, leetspeak, emoji, text-speak and look-alike characters.
_PIECES = st.sampled_from(
    [
        "my dad ",
        "hits ",
        "me ",
        "not ",
        "never ",
        "i want to die ",
        "k i l l ",
        "1",
        "!",
        "@",
        "$",
        "💊",
        "🔪",
        "кill ",
        "aaaaaaaa",
        "      ",
        "\n",
        ". ",
        "he's 25 and im 14 ",
        "tonight ",
        "if someone ",
        "in the film ",
        "used to ",
        "kms ",
        "'",
        "*",
        "\u200b",
        "\u0301",
    ]
)


@st.composite
def long_messages(draw: st.DrawFn) -> str:
    """Up to 100,000 characters: random pieces repeated, with random Unicode mixed in."""
    pieces = draw(st.lists(st.one_of(_PIECES, st.text(max_size=20)), min_size=1, max_size=30))
    repeat = draw(st.integers(min_value=1, max_value=4000))
    return ("".join(pieces) * repeat)[:100_000]


@settings(max_examples=30, deadline=None)
@given(long_messages())
def test_long_and_hostile_messages_are_screened_without_error(text: str) -> None:
    result = screen(text)
    assert result.flagged in (True, False)
    for item in result.evidence:
        assert 0 <= item.start < item.end <= len(text)


def test_very_long_message_is_screened_everywhere() -> None:
    text = "ok " * 20000 + "i want to die"
    result = screen(text)
    assert result.flagged
    assert text[result.evidence[0].start : result.evidence[0].end] == "want to die"
