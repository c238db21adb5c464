from __future__ import annotations

import unicodedata

from hypothesis import given, settings
from hypothesis import strategies as st

from surveys.text import clean_text


def test_plain_text_is_unchanged() -> None:
    cleaned = clean_text("I feel ok today", limit=100)
    assert cleaned.text == "I feel ok today"
    assert not cleaned.trimmed
    assert cleaned.original_length == 15


def test_nfc_normalises() -> None:
    decomposed = "Cafe\u0301"
    cleaned = clean_text(decomposed, limit=100)
    assert cleaned.text == "Café"
    assert unicodedata.is_normalized("NFC", cleaned.text)


def test_control_characters_dropped_but_newline_and_tab_kept() -> None:
    raw = "a\x00b\x07c\x1b[31m\td\ne\x7f\x85f\x9fg"
    assert clean_text(raw, limit=100).text == "abc[31m\td\ne\nfg"


def test_carriage_returns_become_newlines() -> None:
    assert clean_text("one\r\ntwo\rthree", limit=100).text == "one\ntwo\nthree"


def test_whitespace_at_the_ends_is_stripped() -> None:
    assert clean_text(" \n\t  hello  there \n\n ", limit=100).text == "hello  there"
    assert clean_text("   ", limit=100).text == ""


def test_emoji_and_right_to_left_text_kept() -> None:
    raw = "👩🏽\u200d💻 مرحبا שלום 🏳️\u200d🌈"
    assert clean_text(raw, limit=100).text == raw


def test_trims_to_limit() -> None:
    cleaned = clean_text("x" * 10_000, limit=2000)
    assert cleaned.text == "x" * 2000
    assert cleaned.trimmed
    assert cleaned.original_length == 10_000


def test_trim_never_splits_an_emoji_sequence_or_accent() -> None:
    family = "👨\u200d👩\u200d👧"
    cleaned = clean_text("ab" + family, limit=5)
    assert cleaned.trimmed
    assert not cleaned.text.endswith("\u200d")
    accent = clean_text("abe\u0301\u0323", limit=3)  # NFC keeps one combining mark
    assert accent.trimmed
    assert not unicodedata.combining(accent.text[-1])


def test_lone_surrogates_are_dropped() -> None:
    cleaned = clean_text("hi\ud800there", limit=100)
    assert cleaned.text == "hithere"
    cleaned.text.encode("utf-8")


def test_zero_limit() -> None:
    cleaned = clean_text("hello", limit=0)
    assert cleaned.text == ""
    assert cleaned.trimmed


@settings(max_examples=300)
@given(st.text(), st.integers(min_value=0, max_value=50))
def test_total_and_within_limit(raw: str, limit: int) -> None:
    cleaned = clean_text(raw, limit=limit)
    assert len(cleaned.text) <= limit
    assert cleaned.original_length == len(raw)
    assert cleaned.text == cleaned.text.strip()
    assert all(
        unicodedata.category(char) not in ("Cc", "Cs") or char in "\n\t" for char in cleaned.text
    )
    cleaned.text.encode("utf-8")


def test_bidi_overrides_are_dropped_but_rtl_marks_kept() -> None:
    cleaned = clean_text("abc\u202eevil\u2066x\u2069 \u200fשלום\u200e", limit=100)
    assert cleaned.text == "abcevilx \u200fשלום\u200e"
