"""Each normalisation rule, and that every normalised character maps back to the original."""

from __future__ import annotations

import pytest
import yaml

from moderation.normalise import NORMALISE_FILE, normalise, skeleton


def words(text: str) -> str:
    return normalise(text).text.strip()


def test_case_and_punctuation_become_plain_spaced_words() -> None:
    assert words("WHY... does   nobody CARE?!") == "why does no one care"


def test_repeated_letters_count_once() -> None:
    assert words("I want to DIEEEEE") == words("i want to die") == "i want to die"
    assert words("killlllll") == words("kill") == "kil"
    assert skeleton("bullied") == "bulied" == words("bullllied")


def test_spaced_out_words_are_joined() -> None:
    assert words("k i l l myself") == "kil myself"
    assert words("s.u.i.c.i.d.e") == "suicide"
    assert words("s-u-i-c-i-d-e") == "suicide"
    # two single letters are not a spaced-out word
    assert words("i a good") == "i a god"


@pytest.mark.parametrize(
    ("written", "plain"),
    [
        ("k1ll", "kil"),
        ("su1c1de", "suicide"),
        ("h0me", "home"),
        ("r@pe", "rape"),
        ("$elf harm", "self harm"),
        ("m3ssag3s", "mesages"),
        ("h4te", "hate"),
        ("k!ll", "kil"),
        ("n00dz", "nudes"),
    ],
)
def test_leetspeak_inside_words(written: str, plain: str) -> None:
    assert words(written) == plain


@pytest.mark.parametrize("number", ["14yo", "3pm", "2nd", "10mins", "2024", "£50"])
def test_numbers_are_not_leetspeak(number: str) -> None:
    assert any(char.isdigit() for char in words(number))


def test_punctuation_at_a_word_edge_is_not_leetspeak() -> None:
    assert words("help!") == "help"
    assert words("no1 cares") == "no one cares"


@pytest.mark.parametrize(
    ("written", "plain"),
    [
        ("kms", "kil myself"),
        ("kys", "kil yourself"),
        ("unalive myself", "kil myself"),
        ("sewerslide", "suicide"),
        ("kermit sewerslide", "comit suicide"),
        ("i sh", "i self harm"),
        ("selfharm", "self harm"),
        ("i got graped", "i got raped"),
        ("he SA'd me", "he sexualy asaulted me"),
        ("groomd", "gromed"),
        ("send pix", "send pics"),
        ("wanna die", "want to die"),
        ("gonna do it 2nite", "going to do it tonight"),
        ("ima do it", "im going to do it"),
        ("my bf", "my boyfriend"),
        ("rn", "right now"),
        ("dont", "dont"),
        ("don't", "dont"),
        ("I'm", "im"),
        ("link up", "link up"),
        ("going country", "going country"),
    ],
)
def test_text_speak_and_euphemisms(written: str, plain: str) -> None:
    assert words(written) == skeleton(plain)


def test_a_plain_phrase_is_not_broken_up_by_a_shorter_form() -> None:
    # "pic" alone becomes "pics", but "dick pic" stays one phrase
    assert words("he sent me a dick pic") == "he sent me a dick pic"


@pytest.mark.parametrize(
    ("emoji", "word"),
    [("🔪", "knife"), ("💊", "pils"), ("🪢", "rope"), ("🩸", "blod"), ("🍇", "rape")],
)
def test_emoji_that_carry_meaning_become_words(emoji: str, word: str) -> None:
    assert words(f"me {emoji}") == f"me {word}"


def test_emoji_with_variation_selectors_and_feelings() -> None:
    assert words("⚰️ soon 😭😭") == "cofin son"


@pytest.mark.parametrize(
    "written",
    [
        "кill myself",  # Cyrillic к
        "ｋｉｌｌ myself",  # fullwidth
        "𝓴𝓲𝓵𝓵 myself",  # mathematical script
        "ᴋɪʟʟ myself",  # small capitals
        "k\u200bill myself",  # zero-width space
        "kíll mysèlf",  # accents
        "🇰🇮🇱🇱 myself",  # regional indicator letters
    ],
)
def test_look_alike_characters_fold(written: str) -> None:
    assert words(written) == "kil myself"


@pytest.mark.parametrize(
    "text",
    [
        "Honestly… I want to DIEEEE 😭",
        "he SA'd me",
        "k i l l   myself!!",
        "𝓴𝓲𝓵𝓵 💊💊 2nite",
        "ｋｍｓ",
        "",
        "   ",
    ],
)
def test_every_character_maps_back_into_the_original(text: str) -> None:
    norm = normalise(text)
    assert len(norm.starts) == len(norm.ends) == len(norm.text)
    for start, end in zip(norm.starts, norm.ends, strict=True):
        assert 0 <= start < end <= len(text)
    assert list(norm.starts) == sorted(norm.starts)


def test_span_of_a_word_is_what_the_young_person_wrote() -> None:
    text = "ok so... I wanna DIEEE"
    norm = normalise(text)
    at = norm.text.index("want to die")
    start, end = norm.span(at, at + len("want to die"))
    assert text[start:end] == "wanna DIEEE"


def test_no_two_plain_words_claim_the_same_written_form() -> None:
    data = yaml.safe_load(NORMALISE_FILE.read_text(encoding="utf-8"))
    owner: dict[str, str] = {}
    for plain, forms in data["text_speak"].items():
        for form in forms:
            key = skeleton(str(form).lower())
            assert owner.setdefault(key, plain) == plain, (form, owner[key], plain)
