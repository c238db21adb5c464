"""Screening of every free-text message for disclosures of harm (stage 1: rules).

Pure: takes text and context, returns a Screening. The rules are data
(`moderation/data/rules.yaml`, `context.yaml`, `normalise.yaml`) so a safeguarding lead can read
and extend them. Missing a disclosure is far worse than a false alarm, so context rules only
lower a severity (negation, hypotheticals, lessons and media, the past with support in place);
only the narrow idioms in context.yaml clear a match. Method, plan and time words near a match
raise it to urgent.

`screen` never raises: the dispatcher calls it inside the database unit of work.
"""

from __future__ import annotations

import logging
import re
from bisect import bisect_left, bisect_right
from dataclasses import dataclass, field

from moderation.normalise import Normalised, normalise
from moderation.rules import (
    RANK_SEVERITY,
    SEVERITY_RANK,
    UNKNOWN,
    Alternatives,
    Context,
    Rule,
    RuleSet,
    first_match,
    load_rules,
)

__all__ = [
    "NOT_FLAGGED",
    "SEVERITY_ORDER",
    "Evidence",
    "ScreenContext",
    "Screening",
    "normalise",
    "screen",
]

log = logging.getLogger("besafe.moderation")

SEVERITY_ORDER = SEVERITY_RANK
# Markers this far (normalised characters) either side of a match raise it to urgent.
_MARKER_REACH = 160
_SENTENCE_BREAK = re.compile(r"[.!?;\n]+")
_WORD = re.compile(r"\S+")
# Context is looked for this far (normalised characters) around a match.
_REACH = 300
# A message saying the same thing thousands of times needs only so much evidence.
_MAX_MATCHES_PER_RULE = 20


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
    rule: str = ""  # the rule's id in rules.yaml ("" for stage 2)
    severity: str | None = None  # this piece of evidence's own severity after context
    note: str = ""  # why it was raised or lowered, for the lead ("negation", "urgent: tonight")


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
                "rule": item.rule,
                "severity": item.severity,
                "note": item.note,
            }
            for item in self.evidence
        ]


NOT_FLAGGED = Screening(flagged=False)
# What a screening that failed inside looks like: a human should look rather than nobody.
SCREENING_FAILED = Screening(flagged=True, severity="medium", categories=())


def screen(text: str, context: ScreenContext | None = None) -> Screening:
    """Screen one message. Never raises; empty text is not flagged."""
    if not text or not text.strip():
        return NOT_FLAGGED
    try:
        return _screen(text, load_rules())
    except Exception:  # a bug in the rules must not lose the message; a person looks instead
        log.exception("screening failed", extra={"chars": len(text)})
        return SCREENING_FAILED


@dataclass
class _Sentences:
    """Sentence boundaries of the original text, as ranges of the normalised text (at most
    _REACH characters either side of a match, so that long messages stay linear)."""

    norm: Normalised
    breaks: list[int]

    @classmethod
    def of(cls, text: str, norm: Normalised) -> _Sentences:
        return cls(norm, [m.end() for m in _SENTENCE_BREAK.finditer(text)])

    def bounds(self, start: int, end: int) -> tuple[int, int]:
        size = len(self.norm.text)
        lo, hi = 0, size
        if self.breaks:
            original = self.norm.starts[start]
            k = bisect_right(self.breaks, original)
            if k > 0:
                lo = bisect_left(self.norm.starts, self.breaks[k - 1])
            if k < len(self.breaks):
                hi = bisect_left(self.norm.starts, self.breaks[k])
        return max(lo, start - _REACH), min(max(hi, end), end + _REACH)


@dataclass
class _Analysis:
    norm: Normalised
    sentences: _Sentences
    kept: list[tuple[Rule, re.Match[str], int, list[str]]]
    cleared: list[tuple[int, int, int]]  # spans context lowered to nothing, with their weight
    words: list[tuple[int, str, str | None]] = field(default_factory=list)  # _words(norm.text)
    _past: dict[tuple[int, int], bool] = field(default_factory=dict)
    _idioms: list[tuple[int, int]] | None = None

    def window(self, start: int, end: int) -> tuple[int, int]:
        """The part of the message that counts as "the message" for a match: all of a short
        one, _REACH*2 characters around the match in a long one."""
        if len(self.norm.text) <= 4 * _REACH:
            return 0, len(self.norm.text)
        return max(0, start - 2 * _REACH), end + 2 * _REACH

    def past_with_support(self, ctx: Context, start: int, end: int) -> bool:
        key = self.window(start, end)
        if key not in self._past:
            body = self.norm.text[key[0] : key[1]]
            self._past[key] = (
                ctx.past.search(body) is not None
                and ctx.support.search(body) is not None
                and ctx.blockers.search(body) is None
            )
        return self._past[key]

    def in_idiom(self, ctx: Context, start: int, end: int) -> bool:
        if self._idioms is None:  # found once per message, on first need
            self._idioms = _idiom_spans(ctx, self.norm.text, self.words)
        return any(a < end and start < b for a, b in self._idioms)


_OTHER_SPACE = re.compile(r"[^\S ]")


def _words(body: str) -> list[tuple[int, str, str | None]]:
    """(start, word, the word after it) for each word of the normalised text: the word after
    is None at the end of the text, UNKNOWN when it is not exactly one space away."""
    out: list[tuple[int, str, str | None]] = []
    if _OTHER_SPACE.search(body):  # not what normalise makes; the general way
        found = [(m.start(), m.group()) for m in _WORD.finditer(body)]
        size = len(body)
        for k, (start, word) in enumerate(found):
            end = start + len(word)
            if k + 1 < len(found):
                following = found[k + 1][1] if found[k + 1][0] == end + 1 else UNKNOWN
            else:
                following = None if end == size else UNKNOWN
            out.append((start, word, following))
        return out
    parts = body.split(" ")
    last = len(parts) - 1
    position = 0
    for k, word in enumerate(parts):
        if word:
            # "" after a word: two spaces, or a space at the end
            out.append((position, word, (parts[k + 1] or UNKNOWN) if k < last else None))
        position += len(word) + 1
    return out


def _idiom_spans(
    ctx: Context, body: str, words: list[tuple[int, str, str | None]] | None = None
) -> list[tuple[int, int]]:
    """The spans `ctx.idioms.finditer(body)` gives, trying only the idioms that can begin at
    each word (a match begins at a word: whole words, and no idiom begins with a space)."""
    index = ctx.idiom_index
    if index.everywhere:
        return [m.span() for m in ctx.idioms.finditer(body)]
    spans: list[tuple[int, int]] = []
    reached = 0
    for position, word, following in words if words is not None else _words(body):
        if position < reached:
            continue
        for _, regexes in index.at(word, following):
            match = first_match(regexes, body, position)
            if match is not None:
                spans.append(match.span())
                reached = match.end()
    return spans


def _analyse(text: str, rules: RuleSet, *, always: bool = False) -> _Analysis | None:
    norm = normalise(text)
    body = norm.text
    # Which rules may start at which words, with only the patterns that can begin there
    # (RuleSet.index): a rule is only tried where it can begin.
    tries: dict[int, list[tuple[int, Alternatives]]] = {}
    at = rules.index.at
    words = _words(body)
    for position, word, following in words:
        for index, regexes in at(word, following):
            listed = tries.get(index)
            if listed is None:
                tries[index] = [(position, regexes)]
            else:
                listed.append((position, regexes))
    if not tries and not always:
        return None
    ctx = rules.context
    analysis = _Analysis(
        norm=norm, sentences=_Sentences.of(text, norm), kept=[], cleared=[], words=words
    )
    for index in sorted(tries):
        rule = rules.rules[index]
        reached = -1
        found = 0
        for position, regexes in tries[index]:
            if position < reached:
                continue
            match = first_match(regexes, body, position)
            if match is None:
                continue
            start, end = match.span()
            reached = end
            found += 1
            if found > _MAX_MATCHES_PER_RULE:
                break
            if analysis.in_idiom(ctx, start, end):
                continue
            weight = SEVERITY_RANK[rule.weight]
            lowered, notes = _lowering(body, start, end, rule, analysis, rules)
            if weight - lowered <= 0:
                analysis.cleared.append((start, end, weight))
                continue
            analysis.kept.append((rule, match, weight - lowered, notes))
            if not lowered and weight < 3:
                marker = _marker_near(body, start, end, rule.category, rules)
                if marker:
                    analysis.kept[-1] = (rule, match, 3, [*notes, f"urgent: {marker}"])
    # a word inside a phrase that context cleared goes with it: "i have never sent nudes"
    analysis.kept = [
        (rule, match, rank, notes)
        for rule, match, rank, notes in analysis.kept
        if notes
        or not any(
            a <= match.start() and match.end() <= b and SEVERITY_RANK[rule.weight] <= w
            for a, b, w in analysis.cleared
        )
    ]
    return analysis


def _screen(text: str, rules: RuleSet) -> Screening:
    analysis = _analyse(text, rules)
    if analysis is None:
        return NOT_FLAGGED
    norm, kept = analysis.norm, analysis.kept
    evidence: list[Evidence] = []
    best = 0
    categories: dict[str, int] = {}
    for rule, match, rank, notes in kept:
        start, end = match.span()
        best = max(best, rank)
        categories[rule.category] = max(categories.get(rule.category, 0), rank)
        a, b = norm.span(start, end)
        pattern = rule.patterns[int((match.lastgroup or "p0")[1:])]
        evidence.append(
            Evidence(
                category=rule.category,
                pattern=pattern,
                start=a,
                end=b,
                matched=text[a:b],
                rule=rule.id,
                severity=RANK_SEVERITY[rank],
                note="; ".join(notes),
            )
        )
    if not best:
        return NOT_FLAGGED
    ordered = tuple(sorted(categories, key=lambda c: -categories[c]))
    return Screening(True, RANK_SEVERITY[best], ordered, tuple(dict.fromkeys(evidence)))


def _lowering(
    body: str, start: int, end: int, rule: Rule, analysis: _Analysis, rules: RuleSet
) -> tuple[int, list[str]]:
    ctx = rules.context
    lowered = 0
    notes: list[str] = []
    lo, hi = analysis.sentences.bounds(start, end)
    before = body[lo:start]
    if rule.negatable and ctx.negation.search(body[max(lo, start - 60) : start]):
        lowered += ctx.negation_lowers
        notes.append("negation")
    sentence = body[lo:hi]
    hypotheticals = (ctx.hypothetical.search(before), ctx.hypothetical_anywhere.search(sentence))
    for hypothetical in hypotheticals:
        if hypothetical:
            lowered += ctx.hypothetical_lowers
            notes.append(f"hypothetical: {hypothetical.group().strip()}")
    category = rule.category
    if ctx.media.search(sentence) or (
        category in ctx.games_categories and ctx.games.search(sentence)
    ):
        if ctx.first_person.search(body[start:end]):
            lowered += ctx.media_lowers_first_person
        else:
            lowered += ctx.media_lowers
        notes.append("lesson or media")
    if analysis.past_with_support(ctx, start, end):
        lowered += ctx.past_lowers
        notes.append("past, with support")
    return lowered, notes


def _marker_near(body: str, start: int, end: int, category: str, rules: RuleSet) -> str | None:
    spec = rules.categories.get(category)
    if spec is None:
        return None
    window = body[max(0, start - _MARKER_REACH) : end + _MARKER_REACH]
    for name in spec.raised_by:
        found = rules.markers[name].search(window)
        if found:
            return found.group().strip()
    return None


def context_severity(
    text: str, start: int, end: int, category: str, severity: str
) -> tuple[str | None, str]:
    """The context rules applied to evidence found another way (stage 2): a span of the
    original text that stage 2 thinks is a disclosure of `category` at `severity`.

    Returns the severity after context (None: cleared) and why. An idiom inside the span
    clears it, and so does a stage-1 match there that context lowered to nothing ("I have
    never sent nudes"), unless stage 1 kept another match in the span; a hypothetical, a
    lesson or film, or the past with support lowers it as it would lower a rule.
    """
    try:
        rules = load_rules()
        analysis = _analyse(text, rules, always=True)
        assert analysis is not None
        starts = analysis.norm.starts
        lo, hi = bisect_left(starts, start), bisect_left(starts, end)
        if lo >= hi:
            return severity, ""
        kept_here = any(m.start() < hi and lo < m.end() for _, m, _, _ in analysis.kept)
        rank = SEVERITY_RANK[severity]
        if not kept_here:
            if analysis.in_idiom(rules.context, lo, hi):
                return None, "idiom"
            if any(a < hi and lo < b for a, b, _ in analysis.cleared):
                rank -= 2
                if rank <= 0:
                    return None, "context cleared the same words"
                return RANK_SEVERITY[rank], "context lowered the same words"
        probe = Rule(
            id="semantic",
            category=category,
            weight=severity,
            patterns=(),
            example="",
            negatable=False,
            body=_NEVER,
        )
        lowered, notes = _lowering(analysis.norm.text, lo, hi, probe, analysis, rules)
        rank -= lowered
        if rank <= 0:
            return None, "; ".join(notes)
        if not lowered and rank < 3:
            # The same urgent tier as a rule's match: a method, plan or time word near what
            # stage 2 found ("...tonight", "...the pills") means risk now.
            marker = _marker_near(analysis.norm.text, lo, hi, category, rules)
            if marker:
                return "urgent", "; ".join([*notes, f"urgent: {marker}"])
        return RANK_SEVERITY[rank], "; ".join(notes)
    except Exception:
        log.exception("context for stage-2 evidence failed", extra={"chars": len(text)})
        return severity, ""


_NEVER = r"(?!)"
