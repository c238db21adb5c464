"""Turning a typed answer into a question's answer value.

`match_answer(question, text)` is pure and total: any string (empty, huge,
emoji, right-to-left, control characters) gives a `Match`, never an
exception. A failed match carries a short, friendly hint to show.

Choice numbering is the numbered list a channel shows: the question's
choices 1..n, then "Prefer not to say" as n+1 when the question offers it.
(A typed number that is itself the label of exactly one choice, such as "2"
for a "How many times?" question, picks that choice; a rating takes its
point numbers, so "4" is 4 whatever the lowest point is.)
"""

from __future__ import annotations

import difflib
import functools
import math
import re
import unicodedata
from dataclasses import dataclass

from surveys.model import PREFER_NOT_TO_SAY, AnswerValue, Choice, Question

# A typo is forgiven when the best choice is at least this close (difflib ratio)...
FUZZY_THRESHOLD = 0.8
# ...and clearly closer than the next best choice; otherwise we ask which was meant.
FUZZY_MARGIN = 0.08
PREFER_NOT_LABEL = "Prefer not to say"
_MAX_FUZZY_CHARS = 120  # longer texts are not answers to a choice question
_MAX_RATING_POINTS = 21
_HINT_ECHO_CHARS = 30

_YES = frozenset(
    {
        "y", "yes", "yeah", "yea", "yep", "yup", "ya", "yah", "ye", "yes please", "sure",
        "ok", "okay", "aye", "definitely", "of course", "correct", "true", "yes i have",
        "yes i do", "yes i am",
    }
)  # fmt: skip
_NO = frozenset(
    {
        "n", "no", "nope", "nah", "na", "no thanks", "no thank you", "not really", "never",
        "false", "no i havent", "no i dont", "no im not",
    }
)  # fmt: skip
_PREFER_NOT = frozenset(
    {
        "prefer not to say", "i prefer not to say", "id prefer not to say", "prefer not",
        "rather not say", "id rather not say", "i would rather not say", "rather not",
        "id rather not", "dont want to say", "i dont want to say", "not saying",
        "i dont want to answer", "dont want to answer",
    }
)  # fmt: skip
_DONE = frozenset(
    {
        "done", "im done", "all done", "finished", "thats all", "that is all", "thats it",
        "that is it", "nothing else", "thats everything",
    }
)  # fmt: skip

_UNITS = {
    "zero": 0, "none": 0, "nought": 0, "nil": 0, "one": 1, "a": 1, "two": 2, "three": 3,
    "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9, "ten": 10,
    "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15,
    "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19,
}  # fmt: skip
_TENS = {
    "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70,
    "eighty": 80, "ninety": 90,
}  # fmt: skip
_ORDINALS = {
    "first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6,
    "seventh": 7, "eighth": 8, "ninth": 9, "tenth": 10, "1st": 1, "2nd": 2, "3rd": 3,
}  # fmt: skip
_NUMBER_WORDS = frozenset(_UNITS) | frozenset(_TENS) | {"hundred", "and"}

_NUMERIC = re.compile(r"^[+-]?\d{1,15}(?:\.\d{1,6})?$")
_NUMERIC_IN_TEXT = re.compile(r"(?<![\w.])[+-]?\d{1,15}(?:\.\d{1,6})?(?![\w.]*\d)")
_SPLIT_ALL = re.compile(r"\s*(?:,|;|&|\+|/|\band\b|\n)\s*")
_SPLIT_PUNCT = re.compile(r"\s*(?:,|;|&|\+|/|\n)\s*")
_REPEATS = re.compile(r"(.)\1+")


@dataclass(frozen=True)
class Match:
    """The outcome of matching typed text against a question.

    `ok` with `value`: the answer (a choice value for single_choice/yes_no, a
    list of choice values for multiple_choice, an int for rating, an int or
    float for number, the text for free_text; PREFER_NOT_TO_SAY when chosen).
    `done`: a multiple-choice "done"/"that's all" (keep what was tapped).
    Otherwise `hint` says, kindly and briefly, what would work.
    """

    value: AnswerValue | None = None
    hint: str | None = None
    done: bool = False

    @property
    def ok(self) -> bool:
        return self.hint is None


def _fail(hint: str) -> Match:
    return Match(hint=hint)


# ---------------------------------------------------------------- normalising


def normalise(text: str) -> str:
    """Case-folded words: punctuation, symbols and emoji become spaces; apostrophes vanish."""
    # Labels and short answers come back again and again (every choice, every message):
    # remembered. Longer texts are rarely repeated, and would make the memory large.
    if len(text) <= _REMEMBERED_CHARS:
        return _normalise_remembered(text)
    return _normalise(text)


_REMEMBERED_CHARS = 200


def _normalise(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).casefold()
    text = text.replace("'", "").replace("\u2019", "").replace("`", "")
    spaced = "".join(char if char.isalnum() else " " for char in text)
    return " ".join(spaced.split())


_normalise_remembered = functools.lru_cache(maxsize=4096)(_normalise)


def _squeeze(text: str) -> str:
    """ "yesss" -> "yes", "nooo" -> "no" (applied to both sides before comparing)."""
    return _REPEATS.sub(r"\1", text)


_YES_SQUEEZED = frozenset(_squeeze(word) for word in _YES)
_NO_SQUEEZED = frozenset(_squeeze(word) for word in _NO)


def _is_word_in(word: str, words: frozenset[str], squeezed: frozenset[str] | None = None) -> bool:
    return word in words or (squeezed is not None and _squeeze(word) in squeezed)


def is_prefer_not_phrase(text: str) -> bool:
    word = normalise(text)
    return word in _PREFER_NOT or _squeeze(word) in _PREFER_NOT_SQUEEZED


_PREFER_NOT_SQUEEZED = frozenset(_squeeze(word) for word in _PREFER_NOT)


def is_done_phrase(text: str) -> bool:
    return normalise(text) in _DONE


# ---------------------------------------------------------------- numbers


def _fmt(number: float) -> str:
    return str(int(number)) if float(number).is_integer() else f"{number:g}"


def _words_to_number(words: list[str]) -> int | None:
    """ "twelve" -> 12, "twenty one" -> 21, "a hundred" -> 100; None when not a number."""
    if not words or len(words) > 5:
        return None
    words = [word for word in words if word != "and"]
    if not words:
        return None
    if words in (["a", "hundred"], ["one", "hundred"], ["hundred"]):
        return 100
    if len(words) == 1:
        if words[0] == "a":
            return None
        return _UNITS.get(words[0], _TENS.get(words[0]))
    if len(words) == 2 and words[0] in _TENS and words[1] in _UNITS:
        unit = _UNITS[words[1]]
        if 1 <= unit <= 9 and words[1] != "a":
            return _TENS[words[0]] + unit
    return None


def _plain_number(raw: str) -> float | int | None:
    """A text that is just a number: "12", " 12 ", "12.5", "-3", "twelve", "twenty-one"."""
    text = unicodedata.normalize("NFKC", raw).strip().strip("!?.,;:()[]#\"'").strip()
    if _NUMERIC.match(text):
        try:
            number = float(text)
        except ValueError:  # pragma: no cover - the pattern only admits valid numbers
            return None
        if not math.isfinite(number):  # pragma: no cover - at most 15 digits
            return None
        return int(number) if number.is_integer() and "." not in text else number
    return _words_to_number(normalise(raw).split())


def parse_number(raw: str) -> float | int | None:
    """A number in a short answer: "12", "twelve", "I'm 12", "about 3 hours"; None if unclear."""
    plain = _plain_number(raw)
    if plain is not None:
        return plain
    text = unicodedata.normalize("NFKC", raw)
    if len(text) > _MAX_FUZZY_CHARS:
        return None
    found = _NUMERIC_IN_TEXT.findall(text)
    if len(found) == 1:
        number = float(found[0])
        return int(number) if number.is_integer() and "." not in found[0] else number
    if found:
        return None
    groups: list[list[str]] = []
    current: list[str] = []
    for word in normalise(text).split():
        if word in _NUMBER_WORDS and word not in ("a", "and", "none"):
            current.append(word)
        elif current:
            groups.append(current)
            current = []
    if current:
        groups.append(current)
    if len(groups) == 1:
        return _words_to_number(groups[0])
    return None


def _index_number(raw: str) -> int | None:
    """A typed list position: "2", "2.", "#2", "two", "2nd", "second"."""
    word = normalise(raw)
    if word in ("none", "nil", "nought", "a"):
        return None
    if word in _ORDINALS:
        return _ORDINALS[word]
    if word.startswith("number "):
        word = word[len("number ") :]
    number = _plain_number(word) if word else None
    if isinstance(number, int) and not isinstance(number, bool):
        return number
    return None


# ---------------------------------------------------------------- choices


def answer_choices(question: Question) -> tuple[Choice, ...]:
    """The choices a question offers (generated for rating and yes_no when not given)."""
    if question.choices:
        return question.choices
    if question.type == "yes_no":
        return (Choice("yes", "Yes"), Choice("no", "No"))
    if question.type == "rating":
        low, high = rating_range(question)
        choices = []
        for point in range(low, high + 1):
            label = str(point)
            if point == low and question.min_label:
                label = f"{point} – {question.min_label}"
            elif point == high and question.max_label:
                label = f"{point} – {question.max_label}"
            choices.append(Choice(str(point), label))
        return tuple(choices)
    return ()


def rating_range(question: Question) -> tuple[int, int]:
    low = _safe_int(question.min, 1)
    high = _safe_int(question.max, 5)
    if high < low:
        low, high = high, low
    return low, min(high, low + _MAX_RATING_POINTS - 1)


def _safe_int(number: float | None, default: int) -> int:
    if number is None or not math.isfinite(number):
        return default
    return int(number)


def rating_value(question: Question, choice: Choice) -> int:
    """The point (an int) a rating choice stands for."""
    try:
        return int(choice.value)
    except ValueError:
        low, _ = rating_range(question)
        choices = answer_choices(question)
        return low + choices.index(choice) if choice in choices else low


def choice_value(question: Question, choice: Choice) -> AnswerValue:
    """The recorded value for a tapped or typed choice."""
    return rating_value(question, choice) if question.type == "rating" else choice.value


@functools.lru_cache(maxsize=4096)  # choices are frozen, and few
def _keys(choice: Choice) -> tuple[str, ...]:
    keys = [normalise(choice.label), normalise(choice.value.replace("_", " "))]
    return tuple(dict.fromkeys(key for key in keys if key))


def _numbered_hint(question: Question, choices: tuple[Choice, ...]) -> str:
    count = len(choices) + (1 if question.prefer_not_to_say else 0)
    if question.type == "rating":
        low, high = rating_range(question)
        return f"Please tap a number from {low} to {high}, or type it."
    if question.type == "multiple_choice":
        return (
            "Sorry, I didn't get that. Tap your answers and then Done, "
            "or type their numbers, like 1, 3."
        )
    if count <= 1:
        return "Sorry, I didn't get that. Please tap the button."
    return f"Sorry, I didn't get that. Please tap a button, or type a number from 1 to {count}."


def _ambiguous_hint(candidates: list[tuple[int, Choice]]) -> str:
    lines = "\n".join(f"{number}. {choice.label}" for number, choice in candidates)
    return f"Did you mean one of these?\n{lines}\nTap one, or type its number."


def _prefer_not_missing_hint(question: Question) -> str:
    if question.required:
        return "This question needs an answer, so please choose one of the options."
    return "You don't have to answer this one. Send 'skip' to leave it out."


def _match_one(
    question: Question, choices: tuple[Choice, ...], text: str, *, fuzzy: bool = True
) -> Match:
    """Match text to exactly one choice (or PREFER_NOT_TO_SAY); a hint otherwise."""
    word = normalise(text)
    offers_prefer_not = question.prefer_not_to_say
    if not word:
        return _fail(_numbered_hint(question, choices))
    keyed = [(choice, _keys(choice)) for choice in choices]

    # 1. exactly a label or a value ("Not very well", "not_very_well", "NOT VERY WELL!")
    exact = [choice for choice, keys in keyed if word in keys]
    if len(exact) == 1:
        return Match(value=choice_value(question, exact[0]))
    if offers_prefer_not and (word == normalise(PREFER_NOT_TO_SAY) or is_prefer_not_phrase(text)):
        return Match(value=PREFER_NOT_TO_SAY)

    # 2. a number: a rating point, or a position in the numbered list
    number = _index_number(text)
    if number is not None:
        if question.type == "rating":
            low, high = rating_range(question)
            for choice in choices:
                if rating_value(question, choice) == number:
                    return Match(value=number)
            if offers_prefer_not and number == len(choices) + 1 and not low <= number <= high:
                return Match(value=PREFER_NOT_TO_SAY)
            return _fail(_numbered_hint(question, choices))
        if question.dimension == "school_year" or question.id == "school_year":
            year = [c for c in choices if normalise(c.label) == f"year {number}"]
            if len(year) == 1:  # "7" means Year 7, not the 7th year in the list
                return Match(value=choice_value(question, year[0]))
        if 1 <= number <= len(choices):
            return Match(value=choice_value(question, choices[number - 1]))
        if offers_prefer_not and number == len(choices) + 1:
            return Match(value=PREFER_NOT_TO_SAY)
        return _fail(_numbered_hint(question, choices))

    # 3. the end labels of a rating ("not at all" for 1)
    if question.type == "rating":
        low, high = rating_range(question)
        if question.min_label and word == normalise(question.min_label):
            return Match(value=low)
        if question.max_label and word == normalise(question.max_label):
            return Match(value=high)

    # 4. with repeated letters squeezed ("yesss", "sometimesss")
    squeezed = _squeeze(word)
    near = [choice for choice, keys in keyed if squeezed in {_squeeze(key) for key in keys}]
    if len(near) == 1:
        return Match(value=choice_value(question, near[0]))

    # 5. yes / no in everyday words ("yep", "nah", "y", "n")
    yes_no = _match_yes_no(question, choices, word)
    if yes_no is not None:
        return Match(value=choice_value(question, yes_no))

    if is_prefer_not_phrase(text):  # asked for, but not offered here
        return _fail(_prefer_not_missing_hint(question))

    if not fuzzy or len(word) > _MAX_FUZZY_CHARS:
        return _fail(_numbered_hint(question, choices))

    # 6. the only label that starts with what was typed ("some" -> "Sometimes")
    if len(word) >= 3:
        starts = [choice for choice, keys in keyed if any(key.startswith(word) for key in keys)]
        if len(starts) == 1:
            return Match(value=choice_value(question, starts[0]))

    # 7. small typos ("not vry well", "somtimes"), unless two choices are about as close
    return _fuzzy(question, choices, keyed, word)


def _match_yes_no(question: Question, choices: tuple[Choice, ...], word: str) -> Choice | None:
    is_yes = _is_word_in(word, _YES, _YES_SQUEEZED)
    is_no = _is_word_in(word, _NO, _NO_SQUEEZED)
    if not (is_yes or is_no):
        return None
    target = "yes" if is_yes else "no"
    named = [c for c in choices if target in (normalise(c.value), normalise(c.label))]
    if len(named) == 1:
        return named[0]
    if question.type == "yes_no" and len(choices) == 2:
        return choices[0] if is_yes else choices[1]
    return None


def _fuzzy(
    question: Question,
    choices: tuple[Choice, ...],
    keyed: list[tuple[Choice, tuple[str, ...]]],
    word: str,
) -> Match:
    scored: list[tuple[float, int, Choice | None]] = []
    for number, (choice, keys) in enumerate(keyed, start=1):
        scored.append((max(_ratio(word, key) for key in keys) if keys else 0.0, number, choice))
    if question.prefer_not_to_say:
        scored.append((_ratio(word, "prefer not to say"), len(choices) + 1, None))
    if not scored:
        return _fail(_numbered_hint(question, choices))
    scored.sort(key=lambda item: -item[0])
    best_score, _, best = scored[0]
    if best_score < FUZZY_THRESHOLD:
        return _fail(_numbered_hint(question, choices))
    close = [item for item in scored if item[0] >= best_score - FUZZY_MARGIN]
    if len(close) > 1:
        candidates = [
            (number, choice or Choice(PREFER_NOT_TO_SAY, PREFER_NOT_LABEL))
            for _, number, choice in sorted(close, key=lambda item: item[1])
        ]
        return _fail(_ambiguous_hint(candidates))
    if best is None:
        return Match(value=PREFER_NOT_TO_SAY)
    return Match(value=choice_value(question, best))


# A score below this can be neither the best (at least FUZZY_THRESHOLD) nor close to it.
_FUZZY_FLOOR = FUZZY_THRESHOLD - FUZZY_MARGIN


def _ratio(left: str, right: str) -> float:
    # Upper bounds first (the lengths, as difflib's real_quick_ratio, then its quick_ratio):
    # a sentence against a short label is over at once, so only plausible typos pay for the
    # full comparison. Same outcome: a pruned score is under the floor either way, so it is
    # never the best nor close to it.
    total = len(left) + len(right)
    if not total or 2.0 * min(len(left), len(right)) / total < _FUZZY_FLOOR:
        return 0.0 if total else 1.0
    matcher = difflib.SequenceMatcher(None, left, right, autojunk=False)
    if matcher.quick_ratio() < _FUZZY_FLOOR:
        return 0.0
    return matcher.ratio()


def _match_many(question: Question, choices: tuple[Choice, ...], text: str) -> Match:
    if is_done_phrase(text):
        return Match(done=True)
    whole = _match_one(question, choices, text, fuzzy=False)
    if whole.ok:
        return (
            Match(value=whole.value)
            if whole.value == PREFER_NOT_TO_SAY
            else Match(value=[str(whole.value)])
        )
    if len(text) > 20 * _MAX_FUZZY_CHARS:
        return _fail(_numbered_hint(question, choices))
    lowered = unicodedata.normalize("NFKC", text).casefold()
    attempts = [_SPLIT_ALL.split(lowered), _SPLIT_PUNCT.split(lowered)]
    words = lowered.split()
    if len(words) > 1 and all(_index_number(word) is not None for word in words):
        attempts.insert(0, words)  # "1 3 4"
    first_failure: str | None = None
    for parts in attempts:
        parts = [part for part in (p.strip() for p in parts) if normalise(part)]
        if len(parts) < 2:
            continue
        picked: list[str] = []
        failed = None
        for part in parts:
            one = _match_one(question, choices, part)
            if one.ok and one.value == PREFER_NOT_TO_SAY:
                return _fail(
                    f"\u201c{PREFER_NOT_LABEL}\u201d can't go with other answers. "
                    "Please choose it on its own, or just your answers."
                )
            if not one.ok:
                failed = part
                break
            if str(one.value) not in picked:
                picked.append(str(one.value))
        if failed is None:
            order = {choice.value: index for index, choice in enumerate(choices)}
            return Match(value=sorted(picked, key=lambda value: order.get(value, 0)))
        if first_failure is None:
            first_failure = failed
    if first_failure is not None:
        if len(first_failure) <= _HINT_ECHO_CHARS:
            return _fail(
                f"Sorry, I didn't understand \u201c{first_failure}\u201d. "
                "Type the numbers of your answers, like 1, 3, or tap them and then Done."
            )
        return _fail(_numbered_hint(question, choices))
    single = _match_one(question, choices, text)
    if single.ok and single.value != PREFER_NOT_TO_SAY:
        return Match(value=[str(single.value)])
    return single


# ---------------------------------------------------------------- public


def _match_number(question: Question, text: str) -> Match:
    if not normalise(text) and not text.strip():
        return _fail(_number_hint(question))
    if question.prefer_not_to_say and is_prefer_not_phrase(text):
        return Match(value=PREFER_NOT_TO_SAY)
    number = parse_number(text)
    if number is None:
        if is_prefer_not_phrase(text):
            return _fail(_prefer_not_missing_hint(question))
        return _fail(_number_hint(question))
    low = question.min if question.min is not None and math.isfinite(question.min) else None
    high = question.max if question.max is not None and math.isfinite(question.max) else None
    if (low is not None and number < low) or (high is not None and number > high):
        return _fail(_number_hint(question))
    return Match(value=number)


def _number_hint(question: Question) -> str:
    low, high = question.min, question.max
    if low is not None and high is not None:
        return f"Please type a number from {_fmt(low)} to {_fmt(high)}."
    if low is not None:
        return f"Please type a number of {_fmt(low)} or more."
    if high is not None:
        return f"Please type a number up to {_fmt(high)}."
    return "Please type a number, like 12."


def _match_free_text(question: Question, text: str) -> Match:
    if not text.strip():
        if question.required:
            return _fail("Please type your answer.")
        return _fail("Please type your answer, or send 'skip' to leave this one out.")
    if question.prefer_not_to_say and is_prefer_not_phrase(text):
        return Match(value=PREFER_NOT_TO_SAY)
    return Match(value=text.strip())


CHOICE_TYPES = frozenset({"single_choice", "multiple_choice", "yes_no", "rating"})


def is_choice_typed(question: Question, text: str) -> bool:
    """True when `text` is exactly one of the question's choices, as a tap would send it.

    Such a message is survey data, like the tap (the survey marks the choices that
    are disclosures); anything more than the choice itself ("no, he hits me") is not.
    """
    if question.type not in CHOICE_TYPES or not isinstance(text, str):
        return False
    typed = normalise(text)
    if not typed:
        return False
    for choice in answer_choices(question):
        label, value = normalise(choice.label), normalise(str(choice.value))
        # a rating's end labels read "1 – Not safe at all": the words alone are the choice too
        words = label.removeprefix(value + " ") if label.startswith(value + " ") else label
        if typed in (label, value, words):
            return True
    return False


def match_answer(question: Question, text: str) -> Match:
    """Match what was typed to `question`; never raises."""
    if not isinstance(text, str):
        text = "" if text is None else str(text)
    if question.type == "free_text":
        return _match_free_text(question, text)
    if question.type == "number":
        return _match_number(question, text)
    if question.type == "info":
        return Match(value=None)
    choices = answer_choices(question)
    if question.type == "multiple_choice":
        return _match_many(question, choices, text)
    return _match_one(question, choices, text)
