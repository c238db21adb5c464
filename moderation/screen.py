"""Screening of every free-text message for disclosures of harm (stage 1: rules).

Pure: takes text and context, returns a Screening. The rules are data
(`moderation/data/rules.yaml`) so a safeguarding lead can read and extend them.
Missing a disclosure is far worse than a false alarm, so context rules only
ever lower a severity; they never clear a high-weight match.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import yaml

RULES_FILE = Path(__file__).with_name("data") / "rules.yaml"
SEVERITY_ORDER = {"medium": 1, "high": 2, "urgent": 3}
# Screening looks at this much of a message; longer messages are screened in windows.
_WINDOW = 4000


@dataclass(frozen=True)
class ScreenContext:
    question_id: str | None = None
    survey_topic: str | None = None


@dataclass(frozen=True)
class Evidence:
    category: str
    pattern: str
    start: int  # character span in the original text
    end: int
    matched: str


@dataclass(frozen=True)
class Screening:
    flagged: bool
    severity: str | None = None  # urgent | high | medium
    categories: tuple[str, ...] = ()
    evidence: tuple[Evidence, ...] = field(default_factory=tuple)

    def evidence_dicts(self) -> list[dict[str, object]]:
        return [
            {
                "category": item.category,
                "pattern": item.pattern,
                "start": item.start,
                "end": item.end,
                "matched": item.matched,
            }
            for item in self.evidence
        ]


NOT_FLAGGED = Screening(flagged=False)


@dataclass(frozen=True)
class _Rule:
    category: str
    weight: str
    pattern: str
    regex: re.Pattern[str]


@dataclass(frozen=True)
class _RuleSet:
    rules: tuple[_Rule, ...]
    urgent: re.Pattern[str]
    negation: re.Pattern[str]


def _stretchable(pattern: str) -> str:
    """Let every letter of a pattern repeat: "die" also matches "dieeee", "kill" "killll"."""
    out = []
    in_class = False
    for position, char in enumerate(pattern):
        out.append(char)
        following = pattern[position + 1 : position + 2]
        if char == "[":
            in_class = True
        elif char == "]":
            in_class = False
        elif char.isalpha() and not in_class and following not in ("?", "*", "+", "{"):
            out.append("+")
    return "".join(out)


@lru_cache(maxsize=4)
def _load_rules(path: Path = RULES_FILE) -> _RuleSet:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    rules = []
    for entry in data["rules"]:
        for pattern in entry["patterns"]:
            rules.append(
                _Rule(
                    category=entry["category"],
                    weight=entry["weight"],
                    pattern=pattern,
                    regex=re.compile(rf"(?<![\w'])(?:{_stretchable(pattern)})(?![\w'])"),
                )
            )
    urgent = re.compile(
        r"(?<![\w'])(" + "|".join(re.escape(w) for w in data["urgent_words"]) + r")(?![\w'])"
    )
    negation = re.compile(
        r"(?<![\w'])(" + "|".join(re.escape(w) for w in data["negations"]) + r")(?![\w'])"
    )
    return _RuleSet(tuple(rules), urgent, negation)


def normalise(text: str) -> tuple[str, list[int]]:
    """Lower-case, fold look-alike characters, turn punctuation into spaces.

    Returns the normalised text and, for each of its characters, the index of
    the original character it came from, so evidence spans point at the
    young person's own words.
    """
    out: list[str] = []
    index: list[int] = []
    for position, char in enumerate(text):
        folded = unicodedata.normalize("NFKC", char).lower()
        folded = folded.replace("\u2019", "'").replace("\u2018", "'")
        for piece in folded:
            if not piece.isalnum() and piece not in " '":
                piece = " "
            if piece == " " and out and out[-1] == " ":
                continue
            out.append(piece)
            index.append(position)
    return "".join(out), index


def screen(text: str, context: ScreenContext | None = None) -> Screening:
    """Screen one message. Never raises; empty text is not flagged."""
    if not text or not text.strip():
        return NOT_FLAGGED
    rules = _load_rules()
    normalised, index = normalise(text)
    evidence: list[Evidence] = []
    best = 0
    categories: list[str] = []
    for offset in range(0, max(len(normalised), 1), _WINDOW):
        window = normalised[max(0, offset - 100) : offset + _WINDOW]
        base = max(0, offset - 100)
        for rule in rules.rules:
            for match in rule.regex.finditer(window):
                start, end = base + match.start(), base + match.end()
                weight = SEVERITY_ORDER[rule.weight]
                before = normalised[max(0, start - 20) : start]
                if rules.negation.search(before):
                    # "I'm not being bullied": a negation right before a match lowers it.
                    weight = weight - 1
                if weight <= 0:
                    continue
                if rules.urgent.search(normalised) and rule.weight != "medium":
                    weight = SEVERITY_ORDER["urgent"]
                best = max(best, weight)
                if rule.category not in categories:
                    categories.append(rule.category)
                evidence.append(
                    Evidence(
                        category=rule.category,
                        pattern=rule.pattern,
                        start=index[start],
                        end=index[end - 1] + 1,
                        matched=text[index[start] : index[end - 1] + 1],
                    )
                )
    if not best:
        return NOT_FLAGGED
    severity = next(name for name, rank in SEVERITY_ORDER.items() if rank == best)
    unique = tuple(dict.fromkeys(evidence))
    return Screening(True, severity, tuple(categories), unique)
