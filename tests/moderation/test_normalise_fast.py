"""The quick paths of normalisation give what the plain ones give (moderation/normalise.py):
step 2's collapse of spaces and repeated letters, and the text-speak lookup by word."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from moderation.normalise import _collapse, _forms, _lexicon, normalise


def _plain_collapse(text: str) -> list[int]:
    return [
        i
        for i, char in enumerate(text)
        if not (
            (char == " " and (i == 0 or text[i - 1] == " "))
            or (i and char == text[i - 1] and char.isalpha())
        )
    ]


# letters that repeat, spaces, digits, letter-like numbers ("²" is \w but not a letter)
_ALPHABET = st.sampled_from(list("aab  1²²ⅫⅫéé_-'\n"))


@settings(max_examples=500, deadline=None)
@given(st.one_of(st.text(alphabet=_ALPHABET, max_size=30), st.text(max_size=30)))
def test_collapse_keeps_what_the_character_loop_keeps(text: str) -> None:
    keep, out = _collapse(text)
    assert keep == _plain_collapse(text)
    assert out == "".join(text[i] for i in keep)


_FORMS = sorted(_lexicon().words)
_WORDS = st.sampled_from([*_FORMS, "a", "i", "sa", "d", "kms", "lol", "x'", "'", ""])


@settings(max_examples=500, deadline=None)
@given(st.lists(_WORDS, max_size=8).map(" ".join))
def test_text_speak_is_found_by_word_as_the_regex_finds_it(text: str) -> None:
    lexicon = _lexicon()
    assert lexicon.words_regex is not None
    assert _forms(text, lexicon) == [m.span() for m in lexicon.words_regex.finditer(text)]


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_spans_point_into_the_original_text(text: str) -> None:
    norm = normalise(text)
    assert len(norm.starts) == len(norm.ends) == len(norm.text)
    for start, end in zip(norm.starts, norm.ends, strict=True):
        assert 0 <= start < end <= len(text)
    assert "  " not in norm.text
