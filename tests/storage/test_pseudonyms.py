"""Pseudonyms are deterministic, depend on the secret, and cannot be forged by separator games."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from storage.pseudonyms import pseudonym

SECRET = b"a secret of thirty-two bytes...."


def test_deterministic_64_hex_characters() -> None:
    first = pseudonym(SECRET, "telegram", "123456789")
    assert first == pseudonym(SECRET, "telegram", "123456789")
    assert re.fullmatch(r"[0-9a-f]{64}", first)
    assert "123456789" not in first


def test_depends_on_the_secret_the_channel_and_the_key() -> None:
    base = pseudonym(SECRET, "telegram", "42")
    assert pseudonym(b"another secret", "telegram", "42") != base
    assert pseudonym(SECRET, "web", "42") != base
    assert pseudonym(SECRET, "telegram", "43") != base


@pytest.mark.parametrize(
    ("one", "other"),
    [
        (("a:b", "c"), ("a", "b:c")),
        (("ab", "c"), ("a", "bc")),
        (("a", ""), ("", "a")),
        (("a\x00", "b"), ("a", "\x00b")),
        (("web", "1"), ("web1", "")),
    ],
)
def test_no_collisions_from_separator_games(one: tuple[str, str], other: tuple[str, str]) -> None:
    assert pseudonym(SECRET, *one) != pseudonym(SECRET, *other)


@settings(max_examples=300, deadline=None)
@given(st.tuples(st.text(), st.text()), st.tuples(st.text(), st.text()))
def test_distinct_inputs_give_distinct_pseudonyms(
    one: tuple[str, str], other: tuple[str, str]
) -> None:
    assert (pseudonym(SECRET, *one) == pseudonym(SECRET, *other)) == (one == other)


def test_an_empty_secret_is_refused() -> None:
    with pytest.raises(ValueError):
        pseudonym(b"", "web", "x")
