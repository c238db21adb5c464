from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from surveys.demographics import school_year_question
from surveys.matching import answer_choices, is_choice_typed, match_answer, parse_number
from surveys.model import PREFER_NOT_TO_SAY, Choice, Question

from .factories import full_survey

SURVEY = full_survey()
DEAL = SURVEY.question("deal")
BULLIED = SURVEY.question("bullied")
WHERE = SURVEY.question("where")
SAFE = SURVEY.question("safe")
HOURS = SURVEY.question("hours")
ANYTHING = SURVEY.question("anything")
assert DEAL and BULLIED and WHERE and SAFE and HOURS and ANYTHING
OFTEN = Question(
    "often",
    "single_choice",
    "How often?",
    "How often",
    choices=(Choice("never", "Never"), Choice("sometimes", "Sometimes"), Choice("often", "Often")),
)
YES_NO_GENERATED = Question("yn", "yes_no", "Is it?", "Is it")


def value(question: Question, text: str) -> object:
    match = match_answer(question, text)
    assert match.ok, (text, match.hint)
    return match.value


def hint(question: Question, text: str) -> str:
    match = match_answer(question, text)
    assert not match.ok, (text, match.value)
    assert match.hint
    return match.hint


# ------------------------------------------------------------ single choice


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1", "very_well"),
        ("2", "quite_well"),
        (" 3 ", "not_very_well"),
        ("4.", "not_at_all_well"),
        ("two", "quite_well"),
        ("second", "quite_well"),
        ("5", PREFER_NOT_TO_SAY),  # prefer not to say is the last number
        ("not very well", "not_very_well"),
        ("Not very well", "not_very_well"),
        ("NOT VERY WELL!!", "not_very_well"),
        ("not_very_well", "not_very_well"),
        ("not very well.", "not_very_well"),
        ("not vry well", "not_very_well"),
        ("not verry well", "not_very_well"),
        ("quite", "quite_well"),
        ("prefer not to say", PREFER_NOT_TO_SAY),
        ("I'd rather not say", PREFER_NOT_TO_SAY),
        ("rather not say", PREFER_NOT_TO_SAY),
        ("Prefer not to say", PREFER_NOT_TO_SAY),
    ],
)
def test_single_choice(text: str, expected: str) -> None:
    assert value(DEAL, text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [("somtimes", "sometimes"), ("nevr", "never"), ("sometimesss", "sometimes"), ("oftn", "often")],
)
def test_small_typos(text: str, expected: str) -> None:
    assert value(OFTEN, text) == expected


def test_number_out_of_range_names_the_range() -> None:
    assert "1 to 5" in hint(DEAL, "6")
    assert "1 to 3" in hint(OFTEN, "0")


def test_prefer_not_to_say_only_when_offered() -> None:
    assert "skip" in hint(OFTEN, "prefer not to say")
    assert "1 to 3" in hint(OFTEN, "4")  # no extra number for it either


def test_unrelated_text_fails_with_a_hint() -> None:
    for text in ("", "   ", "banana", "🙂", "مرحبا", "\x00", "x" * 10_000):
        assert "1 to 3" in hint(OFTEN, text)


def test_ambiguous_typo_lists_the_options() -> None:
    years = Question(
        "y", "single_choice", "Which?", "Which", choices=(Choice("a", "Cat"), Choice("b", "Cap"))
    )
    message = hint(years, "ca")
    assert "Did you mean" in message
    assert "1. Cat" in message and "2. Cap" in message


def test_prefix_must_be_unique() -> None:
    assert "1 to 5" in hint(DEAL, "not")  # "Not very well" or "Not at all well"?


def test_numeric_labels_win_over_positions() -> None:
    times = Question(
        "t",
        "single_choice",
        "How many times?",
        "Times",
        choices=(Choice("0", "0"), Choice("1", "1"), Choice("2", "2"), Choice("3+", "3 or more")),
    )
    assert value(times, "2") == "2"
    assert value(times, "3 or more") == "3+"


def test_school_year_number_means_the_year() -> None:
    question = school_year_question(years=(3, 13))
    assert value(question, "7") == "y7"
    assert value(question, "Year 10") == "y10"
    assert value(question, "y9") == "y9"
    assert value(question, "12") == "y12"
    assert value(question, "prefer not to say") == PREFER_NOT_TO_SAY


# ------------------------------------------------------------ yes / no


@pytest.mark.parametrize(
    "text", ["Yes", "yes", "Yes!!", "yes.", "YES", "yess", "yeees", "yep", "yeah", "y", "Y", "ok"]
)
def test_yes(text: str) -> None:
    assert value(BULLIED, text) == "yes"
    assert value(YES_NO_GENERATED, text) == "yes"


@pytest.mark.parametrize("text", ["No", "no", "NO!", "nope", "nah", "n", "nooo", "no thanks"])
def test_no(text: str) -> None:
    assert value(BULLIED, text) == "no"
    assert value(YES_NO_GENERATED, text) == "no"


def test_yes_no_by_number_and_unclear() -> None:
    assert value(BULLIED, "1") == "yes"
    assert value(BULLIED, "2") == "no"
    assert "1 to 2" in hint(BULLIED, "maybe")


def test_yes_word_picks_a_yes_choice_in_single_choice() -> None:
    question = Question(
        "q", "single_choice", "?", "?", choices=(Choice("yes", "Yes"), Choice("unsure", "Not sure"))
    )
    assert value(question, "yep") == "yes"


def test_generated_choices() -> None:
    assert [c.value for c in answer_choices(YES_NO_GENERATED)] == ["yes", "no"]
    assert [c.value for c in answer_choices(SAFE)] == ["1", "2", "3", "4", "5"]
    assert answer_choices(SAFE)[0].label.endswith("Not safe at all")


# ------------------------------------------------------------ multiple choice


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1", ["school"]),
        ("1,3", ["school", "online"]),
        ("3, 1", ["school", "online"]),
        ("1 and 3", ["school", "online"]),
        ("1 & 3", ["school", "online"]),
        ("1 3", ["school", "online"]),
        ("1, 3 and 4", ["school", "online", "elsewhere"]),
        ("at school, online", ["school", "online"]),
        ("At school and Online", ["school", "online"]),
        ("online", ["online"]),
        ("onlin", ["online"]),
        ("On the way to or from school", ["journey"]),
        ("1, 1", ["school"]),
        ("5", PREFER_NOT_TO_SAY),
        ("prefer not to say", PREFER_NOT_TO_SAY),
    ],
)
def test_multiple_choice(text: str, expected: object) -> None:
    assert value(WHERE, text) == expected


def test_labels_containing_and_are_not_split() -> None:
    question = Question(
        "q",
        "multiple_choice",
        "?",
        "?",
        choices=(Choice("fam", "Friends and family"), Choice("teach", "Teachers")),
    )
    assert value(question, "friends and family") == ["fam"]
    assert value(question, "Friends and family, teachers") == ["fam", "teach"]


@pytest.mark.parametrize("text", ["done", "Done!", "that's all", "thats it", "finished"])
def test_multiple_choice_done(text: str) -> None:
    match = match_answer(WHERE, text)
    assert match.ok and match.done


def test_multiple_choice_failures() -> None:
    assert "\u201cbananas\u201d" in hint(WHERE, "1, bananas")
    assert "on its own" in hint(WHERE, "1, 5")
    assert hint(WHERE, "9")
    assert hint(WHERE, "")
    assert hint(WHERE, ",,,")
    assert hint(WHERE, "1," * 5000)


# ------------------------------------------------------------ numbers and ratings


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("12", 12),
        (" 12 ", 12),
        ("twelve", 12),
        ("Twelve!", 12),
        ("0", 0),
        ("zero", 0),
        ("none", 0),
        ("twenty", 20),
        ("twenty-four", 24),
        ("2.5", 2.5),
        ("about 3", 3),
        ("I'm online 5 hours", 5),
        ("about three hours", 3),
    ],
)
def test_numbers(text: str, expected: float) -> None:
    result = value(HOURS, text)
    assert result == expected
    assert type(result) is type(expected)


@pytest.mark.parametrize(
    "text", ["25", "-1", "a hundred", "twenty five", "lots", "", "3 or 4", "nan"]
)
def test_numbers_out_of_range_or_unclear(text: str) -> None:
    assert hint(HOURS, text) == "Please type a number from 0 to 24."


def test_number_words_up_to_twenty_and_beyond() -> None:
    words = [
        "one",
        "two",
        "three",
        "four",
        "five",
        "six",
        "seven",
        "eight",
        "nine",
        "ten",
        "eleven",
        "twelve",
        "thirteen",
        "fourteen",
        "fifteen",
        "sixteen",
        "seventeen",
        "eighteen",
        "nineteen",
        "twenty",
    ]
    for number, word in enumerate(words, start=1):
        assert parse_number(word) == number
    assert parse_number("ninety-nine") == 99
    assert parse_number("9" * 5000) is None
    assert parse_number("1e999") is None
    assert parse_number("inf") is None


def test_number_hints_name_open_ranges() -> None:
    low = Question("n", "number", "?", "?", min=8)
    high = Question("n", "number", "?", "?", max=18)
    free = Question("n", "number", "?", "?")
    assert hint(low, "3") == "Please type a number of 8 or more."
    assert hint(high, "30") == "Please type a number up to 18."
    assert hint(free, "lots") == "Please type a number, like 12."
    assert value(free, "-3") == -3


@pytest.mark.parametrize(
    ("text", "expected"),
    [("3", 3), ("5", 5), ("five", 5), ("not safe at all", 1), ("Very safe!", 5), ("very saf", 5)],
)
def test_rating(text: str, expected: int) -> None:
    assert value(SAFE, text) == expected


def test_rating_out_of_range() -> None:
    assert "1 to 5" in hint(SAFE, "6")
    assert "1 to 5" in hint(SAFE, "0")


def test_rating_points_are_numbers_not_positions() -> None:
    zero_based = Question("r", "rating", "?", "?", min=0, max=3)
    assert value(zero_based, "0") == 0
    assert value(zero_based, "3") == 3


# ------------------------------------------------------------ free text


def test_free_text() -> None:
    assert value(ANYTHING, "  I like my school  ") == "I like my school"
    assert value(ANYTHING, "help me please") == "help me please"
    assert "skip" in hint(ANYTHING, "   ")


def test_free_text_prefer_not_to_say_when_offered() -> None:
    question = Question("f", "free_text", "?", "?", prefer_not_to_say=True)
    assert value(question, "I'd rather not say") == PREFER_NOT_TO_SAY
    assert value(ANYTHING, "I'd rather not say") == "I'd rather not say"


# ------------------------------------------------------------ totality

ALL_QUESTIONS = [*SURVEY.questions, OFTEN, YES_NO_GENERATED]


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(ALL_QUESTIONS),
    st.one_of(
        st.text(),
        st.text(alphabet="0123456789, and&", max_size=40),
        st.sampled_from(["", "x" * 10_000, "1," * 3000, "\u202eevil", "🙂" * 500, "\x00\x1f"]),
    ),
)
def test_never_raises(question: Question, text: str) -> None:
    match = match_answer(question, text)
    assert match.ok or match.hint


@pytest.mark.parametrize(
    ("question", "text", "typed_choice"),
    [
        (OFTEN, "Sometimes", True),
        (OFTEN, "  SOMETIMES! ", True),
        (OFTEN, "sometimes he hits me", False),
        (YES_NO_GENERATED, "yes", True),
        (YES_NO_GENERATED, "yes my dad hurts me", False),
        (ANYTHING, "Sometimes", False),  # free text is always a message
        (OFTEN, "", False),
    ],
)
def test_a_choice_typed_out_is_told_apart_from_a_message(
    question: Question, text: str, typed_choice: bool
) -> None:
    assert is_choice_typed(question, text) is typed_choice


def test_a_rating_end_label_is_a_choice_with_or_without_its_number() -> None:
    assert answer_choices(SAFE)[0].label == "1 – Not safe at all"
    for text in ("1 – Not safe at all", "not safe at all", "1", "Very safe"):
        assert is_choice_typed(SAFE, text), text
    assert not is_choice_typed(SAFE, "not safe at all, they wait for me after school")


def _plain_ratio(left: str, right: str) -> float:
    import difflib

    return difflib.SequenceMatcher(None, left, right, autojunk=False).ratio()


_TYPED = st.one_of(
    st.sampled_from(
        [
            "somtimes",
            "oftn",
            "nevr",
            "not vry well",
            "prefer not to sya",
            "Nothing else, thanks. School is mostly ok.",
            "1 and 2",
            "yess",
            "on the bus, online",
        ]
    ),
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz ,", max_size=40),
)


@settings(max_examples=300, deadline=None)
@given(text=_TYPED, question=st.sampled_from([DEAL, BULLIED, WHERE, SAFE, OFTEN]))
def test_pruned_fuzzy_matching_answers_as_the_full_comparison_does(
    text: str, question: Question
) -> None:
    """Typo matching skips hopeless comparisons (by length and letters) to save time: the
    answer, or the hint, must be exactly what comparing everything in full gives."""
    import surveys.matching as matching

    quick = match_answer(question, text)
    with pytest.MonkeyPatch.context() as patched:
        patched.setattr(matching, "_ratio", _plain_ratio)
        full = match_answer(question, text)
    assert quick == full
