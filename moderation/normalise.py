"""Normalisation of what a young person typed, keeping a map back to their own words.

Pure. `normalise(text)` returns a `Normalised`: a lower-case "skeleton" of the message in which
look-alike characters are folded (NFKC, accents, Cyrillic and Greek look-alikes, small capitals),
emoji that carry meaning become words, leetspeak inside words becomes letters ("k1ll", "su1c1de",
"$elf h@rm"), spaced-out words are joined ("k i l l"), every run of one repeated letter becomes
one letter ("killlll" and "kill" both become "kil"), text-speak and euphemisms become plain words
("kms", "unalive", "sewerslide", "grape", "SA'd") and apostrophes are dropped ("don't" → "dont").
Everything that is not a letter or a digit becomes a single space, so words are separated by
exactly one space.

For each character of the skeleton, `starts[i]`/`ends[i]` give the span of original characters
it came from, so evidence can always point at what the young person actually wrote.

The word lists live in `data/normalise.yaml` so a safeguarding lead can extend them. Patterns in
`data/rules.yaml` go through `skeleton()` when they are loaded, so they are written as plain
words ("kill", "bullied") and still match the skeleton.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import yaml

NORMALISE_FILE = Path(__file__).with_name("data") / "normalise.yaml"

_DROP_CATEGORIES = frozenset({"Mn", "Me", "Cf"})  # accents, variation selectors, zero-width
_APOSTROPHES = frozenset("'\u2019\u2018\u02bc\u0060\u00b4\u2032")
# Leetspeak letters: only inside a word that also has real letters.
_LEET = {
    "0": "o",
    "1": "i",
    "3": "e",
    "4": "a",
    "5": "s",
    "7": "t",
    "@": "a",
    "$": "s",
    "!": "i",
    "|": "l",
    "€": "e",
}
_LEET_INSIDE_ONLY = frozenset("1!|")  # "help!" and "no1" are not leetspeak at a word's edge
# Numbers with a unit are numbers, not leetspeak: "14yo", "3am", "2nd", "10mins".
_NUMBER_WITH_UNIT = re.compile(
    r"^\d+(?:st|nd|rd|th|s|am|pm|yo|y|yr|yrs|k|m|kg|cm|mm|mg|min|mins|hr|hrs|h|x|p|ft|mph|gb)$"
)
_REPEATED_LETTER = re.compile(r"([^\W\d_])\1+")


@dataclass(frozen=True)
class Normalised:
    text: str
    starts: tuple[int, ...]  # original index of the first character each character came from
    ends: tuple[int, ...]  # original index just after the last one

    def span(self, start: int, end: int) -> tuple[int, int]:
        """The original span behind normalised characters [start, end)."""
        return self.starts[start], self.ends[end - 1]


@dataclass(frozen=True)
class _Lexicon:
    emoji: dict[str, str]
    confusables: dict[str, str]
    words: dict[str, str]  # skeleton of a text-speak form -> skeleton of its plain words
    words_regex: re.Pattern[str] | None
    # the forms by their first word, longest first (the order of words_regex's alternatives);
    # None when some form does not begin with a word (then words_regex is used)
    by_first_word: dict[str, tuple[str, ...]] | None


def skeleton(text: str) -> str:
    """Collapse runs of one repeated letter, as `normalise` does: "kill" → "kil"."""
    return _REPEATED_LETTER.sub(r"\1", text)


@lru_cache(maxsize=1)
def _lexicon(path: Path = NORMALISE_FILE) -> _Lexicon:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    emoji = {str(k): f" {v} " for k, v in (data.get("emoji") or {}).items()}
    confusables: dict[str, str] = {}
    for target, sources in (data.get("confusables") or {}).items():
        for char in str(sources):
            confusables[char] = str(target)
    words: dict[str, str] = {}
    for plain, forms in (data.get("text_speak") or {}).items():
        for form in forms:
            words[skeleton(str(form).lower())] = skeleton(str(plain).lower())
    for plain in data.get("text_speak") or {}:
        # a plain form stays whole: "dick pic" is not "dick" + "pic" -> "pics"
        words.setdefault(skeleton(str(plain).lower()), skeleton(str(plain).lower()))
    keys = sorted(words, key=len, reverse=True)
    regex = (
        re.compile(r"(?<!\S)(?:" + "|".join(re.escape(k) for k in keys) + r")(?!\S)")
        if keys
        else None
    )
    by_first_word: dict[str, list[str]] | None = {}
    for key in keys:
        first = key.split(" ")[0]
        if not first or any(c.isspace() and c != " " for c in key):
            by_first_word = None
            break
        by_first_word.setdefault(first, []).append(key)
    first_words = None if by_first_word is None else {k: tuple(v) for k, v in by_first_word.items()}
    return _Lexicon(emoji, confusables, words, regex, first_words)


@lru_cache(maxsize=8192)
def _fold(char: str) -> str:
    """One original character as lower-case letters, digits, spaces and leet symbols."""
    lexicon = _lexicon()
    if char in lexicon.emoji:
        return lexicon.emoji[char]
    code = ord(char)
    if 0x1F1E6 <= code <= 0x1F1FF:  # regional indicator letters 🇦..🇿
        return chr(ord("a") + code - 0x1F1E6)
    if char in _APOSTROPHES:
        return "'"
    if char in lexicon.confusables:
        return lexicon.confusables[char]
    out = []
    for piece in unicodedata.normalize("NFKD", char):
        if unicodedata.category(piece) in _DROP_CATEGORIES:
            continue
        for folded in unicodedata.normalize("NFKC", piece).casefold():
            folded = lexicon.confusables.get(folded, folded)
            if folded in _APOSTROPHES:
                folded = "'"
            elif folded.isspace():
                folded = " "
            out.append(folded)
    return "".join(out)


_ASCII_SPACE = str.maketrans({c: " " for c in "\t\n\r\x0b\x0c\x1c\x1d\x1e\x1f"})
_TOKEN = re.compile(r"[^ ]+")
_SPACED = re.compile(r"(?<!\S)[^\W\d_] [^\W\d_] [^\W\d_](?!\S)")
_NEEDS_COLLAPSE = re.compile(r"([^\W\d_])\1|  |^ ")


def _fold_text(text: str) -> tuple[str, list[int] | None]:
    """Folded text and, per character, where it came from (None: character i came from
    character i, as for ASCII text)."""
    if text.isascii():
        return text.lower().translate(_ASCII_SPACE), None
    chars: list[str] = []
    origin: list[int] = []
    for position, char in enumerate(text):
        for piece in _fold(char):
            chars.append(piece)
            origin.append(position)
    return "".join(chars), origin


def _clean_token(chars: list[str]) -> list[str]:
    """Leetspeak to letters, then everything but letters, digits and ' to spaces."""
    word = "".join(chars)
    letters = sum(1 for c in chars if c.isalpha())
    leet = letters >= 1 and any(c in _LEET for c in chars) and not _NUMBER_WITH_UNIT.match(word)
    out = list(chars)
    if leet:
        letterish = [c.isalpha() or c in _LEET for c in chars]
        for i, char in enumerate(chars):
            if char not in _LEET:
                continue
            before = i > 0 and letterish[i - 1]
            after = i + 1 < len(chars) and letterish[i + 1]
            if char in _LEET_INSIDE_ONLY:
                if (
                    out[i - 1 if i else 0].isalpha()
                    and i + 1 < len(chars)
                    and chars[i + 1].isalpha()
                ):
                    out[i] = _LEET[char]
            elif (before or after) and (letters >= 2 or sum(letterish) >= 3):
                out[i] = _LEET[char]
    for i, char in enumerate(out):
        if char.isalnum() or char == "'":
            continue
        # a censoring star inside a word is kept so the word lists can name "r*pe", "s*icide"
        if char == "*" and 0 < i < len(out) - 1 and out[i - 1].isalpha() and out[i + 1].isalpha():
            continue
        out[i] = " "
    return out


def normalise(text: str) -> Normalised:
    """The skeleton of a message and the map back to the original (see module docstring)."""
    folded, origin = _fold_text(text)
    # 1. tokens: leetspeak and punctuation (same length: one character for one)
    pieces: list[str] = []
    last = 0
    for token in _TOKEN.finditer(folded):
        word = token.group()
        if word.isalpha() or word.isdecimal():
            continue
        a, b = token.span()
        pieces.append(folded[last:a])
        pieces.append("".join(_clean_token(list(word))))
        last = b
    cleaned = "".join(pieces) + folded[last:] if pieces else folded
    # 2. one space between words, repeated letters collapsed, spaced-out words joined
    n = len(cleaned)
    keep: list[int] | range = range(n)
    text_out = cleaned
    if _NEEDS_COLLAPSE.search(cleaned):
        keep, text_out = _collapse(cleaned)
    if origin is None:  # character i came from character i
        starts = list(keep)
        ends = [*keep[1:], n] if keep else []
    else:
        starts = [origin[i] for i in keep]
        ends = [origin[j - 1] + 1 for j in [*keep[1:], n]] if keep else []
    text_out = _join_spaced_letters(text_out, starts, ends)
    # 3. text-speak and euphemisms (keys may contain apostrophes: "sa'd")
    lexicon = _lexicon()
    if lexicon.words_regex is not None:
        text_out, starts, ends = _substitute(text_out, starts, ends, lexicon)
    # 4. apostrophes go: "don't" → "dont"
    if "'" in text_out:
        keep = [i for i, c in enumerate(text_out) if c != "'"]
        text_out = "".join(text_out[i] for i in keep)
        starts = [starts[i] for i in keep]
        ends = [ends[i] for i in keep]
        text_out, starts, ends = _tidy_spaces(text_out, starts, ends)
    return Normalised(text_out, tuple(starts), tuple(ends))


# What step 2 drops: spaces after a space or at the start, and repeats of a letter (the run's
# character is checked with isalpha, which is what counts as a letter here).
_DROPPED = re.compile(r"^ +|(?<= ) +|([^\W\d_])\1+")


def _collapse(text: str) -> tuple[list[int], str]:
    """The indexes kept by step 2 of `normalise` and the text they make."""
    keep: list[int] = []
    pieces: list[str] = []
    last = 0
    for match in _DROPPED.finditer(text):
        a, b = match.span()
        letter = match.group(1)
        if letter is not None:
            if not letter.isalpha():
                continue
            a += 1  # the first of the run stays
        keep.extend(range(last, a))
        pieces.append(text[last:a])
        last = b
    keep.extend(range(last, len(text)))
    pieces.append(text[last:])
    return keep, "".join(pieces)


def _join_spaced_letters(text: str, starts: list[int], ends: list[int]) -> str:
    """ "k i l l" → "kill": drop the spaces inside runs of three or more single letters
    (`starts` and `ends` are changed to match)."""
    n = len(text)
    if n < 5 or not _SPACED.search(text):
        return text
    out = list(text)
    drop: set[int] = set()
    i = 0
    while i < n:
        # a single letter: letter with a space (or an edge) on both sides
        run = []
        j = i
        while (
            j < n
            and out[j].isalpha()
            and (j == 0 or out[j - 1] == " ")
            and (j + 1 == n or out[j + 1] == " ")
        ):
            run.append(j)
            j += 2
        if len(run) >= 3:
            drop.update(k + 1 for k in run[:-1])
            i = run[-1] + 1
        else:
            i += 1
    if not drop:
        return text
    chars: list[str] = []
    new_starts: list[int] = []
    new_ends: list[int] = []
    for k in range(n):
        if k in drop:
            continue
        # joining may have made a new run of one letter: "k i l l" → "kill" → "kil"
        if chars and out[k] == chars[-1] and out[k].isalpha():
            new_ends[-1] = ends[k]
            continue
        chars.append(out[k])
        new_starts.append(starts[k])
        new_ends.append(ends[k])
    starts[:], ends[:] = new_starts, new_ends
    return "".join(chars)


_OTHER_SPACE = re.compile(r"[^\S ]")


def _forms(text: str, lexicon: _Lexicon) -> list[tuple[int, int]]:
    """The spans `lexicon.words_regex.finditer(text)` gives, looked up by word instead: a
    form is whole words, so it can only begin at a word that is its first word."""
    assert lexicon.words_regex is not None
    if lexicon.by_first_word is None or _OTHER_SPACE.search(text):
        return [m.span() for m in lexicon.words_regex.finditer(text)]
    found: list[tuple[int, int]] = []
    by_first_word = lexicon.by_first_word
    size = len(text)
    position = 0
    reached = 0
    for word in text.split(" "):
        here = position
        position += len(word) + 1
        if here < reached or not word:
            continue
        for form in by_first_word.get(word, ()):
            end = here + len(form)
            if text.startswith(form, here) and (end == size or text[end] == " "):
                found.append((here, end))
                reached = end
                break
    return found


def _substitute(
    text: str, starts: list[int], ends: list[int], lexicon: _Lexicon
) -> tuple[str, list[int], list[int]]:
    assert lexicon.words_regex is not None
    pieces: list[str] = []
    new_starts: list[int] = []
    new_ends: list[int] = []
    last = 0
    for a, b in _forms(text, lexicon):
        pieces.append(text[last:a])
        new_starts.extend(starts[last:a])
        new_ends.extend(ends[last:a])
        replacement = lexicon.words[text[a:b]]
        pieces.append(replacement)
        new_starts.extend([starts[a]] * len(replacement))
        new_ends.extend([ends[b - 1]] * len(replacement))
        last = b
    if not pieces:
        return text, starts, ends
    pieces.append(text[last:])
    new_starts.extend(starts[last:])
    new_ends.extend(ends[last:])
    return "".join(pieces), new_starts, new_ends


def _tidy_spaces(text: str, starts: list[int], ends: list[int]) -> tuple[str, list[int], list[int]]:
    if "  " not in text:
        return text, starts, ends
    keep = [i for i, c in enumerate(text) if not (c == " " and i > 0 and text[i - 1] == " ")]
    return (
        "".join(text[i] for i in keep),
        [starts[i] for i in keep],
        [ends[i] for i in keep],
    )
