"""The WordIndex shortcut matches exactly as the whole rule regexes do.

Screening tries a rule only with the patterns that can begin at a word and the word after it
(moderation.rules.WordIndex). These tests hold that shortcut to the plain way: every rule's
whole regex tried at every word, and the idioms found with `finditer`.
"""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from moderation.normalise import normalise
from moderation.rules import UNKNOWN, WordIndex, first_match, first_two_words, load_rules
from moderation.screen import _idiom_spans, _words

RULES = load_rules()
# Words that the rules, context rules and their examples use, so that generated messages
# often come near a match, plus a few others.
VOCABULARY = sorted(
    {
        word
        for text in [r.example for r in RULES.rules]
        + list(RULES.marker_examples.values())
        + [
            "this homework is killing me",
            "im dead lol",
            "i nearly died laughing",
            "my mum will kill me if im late",
            "i got killed in fortnite",
            "i cut my hair",
            "not never dont tonight pills",
        ]
        for word in normalise(text).text.split()
    }
    | {"a", "the", "and", "x", "zz", "1", "", "  ", "!"}
)
PHRASES = sorted({r.example for r in RULES.rules} | set(RULES.marker_examples.values()))
# words and whole example phrases, mixed: matches, near misses and neighbours
messages = st.lists(
    st.one_of(st.sampled_from(VOCABULARY), st.sampled_from(PHRASES)), max_size=10
).map(" ".join)


def _plain(body: str) -> list[tuple[int, int, int, str | None]]:
    out = []
    for position, _word, _following in _words(body):
        for index, rule in enumerate(RULES.rules):
            match = rule.regex.match(body, position)
            if match:
                out.append((index, *match.span(), match.lastgroup))
    return sorted(out)


def _indexed(body: str) -> list[tuple[int, int, int, str | None]]:
    out = []
    for position, word, following in _words(body):
        for index, regexes in RULES.index.at(word, following):
            match = first_match(regexes, body, position)
            if match:
                out.append((index, *match.span(), match.lastgroup))
    return sorted(out)


@settings(max_examples=300, deadline=None)
@given(messages)
def test_rules_match_through_the_index_as_the_whole_regexes_do(text: str) -> None:
    body = normalise(text).text
    assert _indexed(body) == _plain(body)


@settings(max_examples=300, deadline=None)
@given(messages)
def test_idioms_are_found_as_finditer_finds_them(text: str) -> None:
    body = normalise(text).text
    ctx = RULES.context
    assert _idiom_spans(ctx, body) == [m.span() for m in ctx.idioms.finditer(body)]


def test_every_rule_example_matches_through_the_index() -> None:
    for index, rule in enumerate(RULES.rules):
        body = normalise(rule.example).text
        assert any(i == index for i, *_ in _indexed(body)), rule.id
        assert _indexed(body) == _plain(body), rule.id


def test_first_two_words_lists_how_a_match_can_begin() -> None:
    assert sorted(first_two_words("i (want|wanna) to die")) == [
        ("i", "wanna", True),
        ("i", "want", True),
    ]
    # a gap of any words: the second word is not known
    assert first_two_words("i (?:[^ ]+ ){0,3}hate") is not None
    assert ("i", "", False) in (first_two_words("i (?:[^ ]+ ){0,3}hate") or [])
    assert first_two_words("kms") == [("kms", None, True)]
    assert sorted(first_two_words("kil?") or []) == [("ki", None, True), ("kil", None, False)]
    # could begin anywhere: no shortcut
    assert first_two_words("(?:[^ ]+ )?cut") is None


def test_index_chooses_by_the_next_word_and_keeps_pattern_order() -> None:
    index = WordIndex([["(?P<p0>i hate me)", "(?P<p1>kms)", "(?P<p2>i (?:[^ ]+ )?die)"]])
    assert [g for g, _ in index.at("i", "hate")] == [0]
    assert [g for g, _ in index.at("kms", None)] == [0]
    assert index.at("we", "hate") == ()
    ((_, regexes),) = index.at("i", "hate")
    assert first_match(regexes, "i hate me", 0).lastgroup == "p0"  # type: ignore[union-attr]
    ((_, regexes),) = index.at("i", "want")  # only the gap pattern can begin "i want"
    assert len(regexes) == 1
    assert first_match(regexes, "i want me", 0) is None
    assert first_match(regexes, "i want die", 0).lastgroup == "p2"  # type: ignore[union-attr]
    # an unknown next word (not one space away): every pattern that can begin with "i"
    ((_, regexes),) = index.at("i", UNKNOWN)
    assert [r.pattern.count("(?P<p0>") + 2 * r.pattern.count("(?P<p2>") for r in regexes] == [1, 2]


def test_first_match_takes_the_first_alternative_that_matches_as_the_engine_does() -> None:
    patterns = ["(?P<p0>i want)", "(?P<p1>i wanted)", "(?P<p2>i want(?:ed)? it)"]
    whole = re.compile(r"(?<!\S)(?:" + "|".join(patterns) + r")(?!\S)")
    ((_, regexes),) = WordIndex([patterns]).at("i", UNKNOWN)
    assert len(regexes) == 3
    # "i want" is whole words in "i want it": the first alternative wins, as in the engine;
    # in "i wanted it" the first fails at the word's end and the second is taken
    for text, group in (("i want it", "p0"), ("i wanted it", "p1"), ("i wanted", "p1")):
        assert first_match(regexes, text, 0).lastgroup == group  # type: ignore[union-attr]
        assert whole.match(text).lastgroup == group  # type: ignore[union-attr]
    assert first_match(regexes, "i wants it", 0) is None


def test_anywhere_alternatives_are_tried_at_every_word() -> None:
    index = WordIndex([["(?P<p0>[^ ]+ hurts)"]])
    assert index.everywhere
    assert [g for g, _ in index.at("anything", "hurts")] == [0]
    assert first_match(index.at("x", None)[0][1], "dad hurts", 0)


def test_a_second_word_known_only_by_its_beginning() -> None:
    index = WordIndex([["(?P<p0>i wan?t(?:ed)? it)"]])
    for following in ("want", "wanted", "wat"):
        assert [g for g, _ in index.at("i", following)] == [0], following
    assert index.at("i", "nope") == ()
    assert index.at("i", None) == ()


def _plain_words(body: str) -> list[tuple[int, str, str | None]]:
    found = [(m.start(), m.group()) for m in re.finditer(r"\S+", body)]
    out: list[tuple[int, str, str | None]] = []
    for k, (start, word) in enumerate(found):
        end = start + len(word)
        if k + 1 < len(found):
            out.append((start, word, found[k + 1][1] if found[k + 1][0] == end + 1 else UNKNOWN))
        else:
            out.append((start, word, None if end == len(body) else UNKNOWN))
    return out


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("ab  \n\t")), max_size=20))
def test_words_and_the_word_after_them(body: str) -> None:
    assert _words(body) == _plain_words(body)
