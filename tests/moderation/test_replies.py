"""The immediate replies to a disclosure (moderation/data/replies.yaml) say what they must."""

from __future__ import annotations

import re

import pytest

from moderation.signposting import disclosure_reply, load_replies, reply_text
from surveys.model import FLAG_CATEGORIES

SEVERITIES = ("urgent", "high", "medium")


def test_every_category_has_its_own_opening_and_a_place_in_the_priority() -> None:
    replies = load_replies()
    assert set(FLAG_CATEGORIES) <= set(replies.openings)
    assert set(FLAG_CATEGORIES) <= set(replies.priority)
    assert len(set(replies.openings.values())) == len(replies.openings), "two share an opening"


@pytest.mark.parametrize("category", FLAG_CATEGORIES)
@pytest.mark.parametrize("severity", SEVERITIES)
def test_every_reply_thanks_and_signposts(category: str, severity: str) -> None:
    text = disclosure_reply(severity, [category])
    first = text.splitlines()[0]
    assert first.startswith("Thank you for telling us")
    assert "999" in text
    assert "0800 1111" in text and "childline.org.uk" in text
    assert "85258" in text  # Shout
    assert "{" not in text and "TODO" not in text


@pytest.mark.parametrize("category", FLAG_CATEGORIES)
def test_urgent_replies_say_999_straight_after_the_opening(category: str) -> None:
    lines = disclosure_reply("urgent", [category]).splitlines()
    assert "999" in lines[1] and "right now" in lines[1]
    assert "999" not in disclosure_reply("medium", [category]).splitlines()[0]


@pytest.mark.parametrize("category", ["sexual_abuse", "exploitation_grooming"])
def test_online_sexual_abuse_gets_the_ceop_route(category: str) -> None:
    assert "ceop.police.uk" in disclosure_reply("high", [category])


def test_the_most_serious_category_chooses_the_opening() -> None:
    both = disclosure_reply("high", ["bullying", "suicide_self_harm"])
    assert both.splitlines()[0] == load_replies().openings["suicide_self_harm"]
    unknown = disclosure_reply("medium", ["something_new"])
    assert unknown.splitlines()[0] == load_replies().default_opening


def test_the_wording_is_short_and_plain() -> None:
    """Reading age about 9 to 11: short sentences, everyday words."""
    replies = load_replies()
    texts = [*replies.openings.values(), *replies.extras.values(), *replies.texts.values()]
    for text in texts:
        for sentence in re.split(r"(?<=[.!?])\s+", text):
            assert len(sentence.split()) <= 30, sentence
    assert reply_text("contact_yes") and reply_text("contact_no")
    assert "can say no" in reply_text("contact_question")
