"""Loading the stage-1 rules (`data/rules.yaml`) and context rules (`data/context.yaml`).

Pure: reads the package's own data files once and compiles them. Patterns are written as plain
words; they go through `normalise.skeleton` so that they match the normalised text, `{name}`
inserts a word list, and every pattern is wrapped so that it matches whole words only.

No pattern may backtrack catastrophically: the word gaps (`{w3}`) are runs of non-spaces each
followed by one space, which the engine can only split one way, and `check_rules` refuses nested
unbounded repeats.
"""

from __future__ import annotations

import re
import re._constants as sre_constants
import re._parser as sre_parse
from collections import defaultdict
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from moderation.normalise import skeleton

DATA_DIR = Path(__file__).with_name("data")
RULES_FILE = DATA_DIR / "rules.yaml"
CONTEXT_FILE = DATA_DIR / "context.yaml"
SEVERITY_RANK = {"medium": 1, "high": 2, "urgent": 3}
RANK_SEVERITY = {rank: name for name, rank in SEVERITY_RANK.items()}

_OPTIONAL_AFTER_SPACE = re.compile(r" \(((?:[^()]|\([^()]*\))*(?:[^ ()]|\([^()]*\)))\)\?")
_LIST_REF = re.compile(r"\{([a-z_][a-z0-9_]*)\}")
# Negation words may not sit inside a word gap: "he doesnt hit me" is not "he ... hit me".
_GAP_NEGATIONS = "not|never|dont|doesnt|didnt|wont|wouldnt|cant|isnt|wasnt|aint|no|nobody|hasnt"


class RulesError(ValueError):
    """A rules file that cannot be used (named rule, pattern and reason)."""


@dataclass(frozen=True)
class Rule:
    id: str
    category: str
    weight: str
    patterns: tuple[str, ...]
    example: str
    negatable: bool
    regex: re.Pattern[str]  # one alternative per pattern, in named groups p0, p1, ...


@dataclass(frozen=True)
class Category:
    id: str
    label: str
    raised_by: tuple[str, ...]


@dataclass(frozen=True)
class Context:
    negation_lowers: int
    negation: re.Pattern[str]  # searched in the text just before a match; anchored at its end
    hypothetical_lowers: int
    hypothetical: re.Pattern[str]  # before the match, in its sentence
    hypothetical_anywhere: re.Pattern[str]  # anywhere in its sentence
    media_lowers: int
    media_lowers_first_person: int
    first_person: re.Pattern[str]
    media: re.Pattern[str]
    games: re.Pattern[str]
    games_categories: frozenset[str]
    past_lowers: int
    past: re.Pattern[str]
    support: re.Pattern[str]
    blockers: re.Pattern[str]
    idioms: re.Pattern[str]


@dataclass(frozen=True)
class RuleSet:
    categories: dict[str, Category]
    rules: tuple[Rule, ...]
    markers: dict[str, re.Pattern[str]]
    marker_examples: dict[str, str]
    context: Context
    # Which rules can start at a word: rule indexes by the possible beginnings of their first
    # word (`word_prefixes`), and the rules that can start anywhere (`anywhere`). Screening only
    # tries a rule where a word begins with one of its prefixes, so its cost grows with the
    # words of a message, not with words times rules.
    by_word: dict[str, tuple[int, ...]]
    by_prefix: dict[str, tuple[int, ...]]
    prefix_lengths: tuple[int, ...]
    anywhere: tuple[int, ...]

    def label(self, category: str) -> str:
        found = self.categories.get(category)
        return found.label if found else category

    def candidates(self, word: str) -> set[int]:
        """The rules that may match starting at this word."""
        found: set[int] = set(self.by_word.get(word, ()))
        found.update(self.anywhere)
        for length in self.prefix_lengths:
            if length > len(word):
                break
            hit = self.by_prefix.get(word[:length])
            if hit:
                found.update(hit)
        return found


_CLOSED = "\0"  # the prefix stops here (the regex does something this does not follow)
_WORD = "\1"  # the first word ends here
_MAX_PREFIXES = 4000


def _prefixes(items: list[tuple[Any, Any]], opens: set[str]) -> set[str]:
    """The possible beginnings of what `items` (a parsed regex) matches, up to the first space.

    Prefixes that cannot grow any more end in _CLOSED. A prefix is always a necessary
    beginning: when the regex does something this does not follow, the prefix just stops.
    """
    c = sre_constants
    for op, arg in items:
        still = {p for p in opens if not p.endswith((_CLOSED, _WORD))}
        done = opens - still
        if not still or len(opens) > _MAX_PREFIXES:
            return {p if p.endswith((_CLOSED, _WORD)) else p + _CLOSED for p in opens}
        if op in (c.ASSERT, c.ASSERT_NOT, c.AT):
            continue
        if op is c.LITERAL:
            char = chr(arg)
            grown = {p + _WORD if char == " " else p + char for p in still}
        elif op is c.SUBPATTERN:
            grown = _prefixes(list(arg[-1]), still)
        elif op is c.BRANCH:
            grown = set()
            for branch in arg[1]:
                grown |= _prefixes(list(branch), still)
        elif op is c.IN and _small_set(arg) is not None:
            chars = _small_set(arg) or []
            grown = {p + _WORD if ch == " " else p + ch for p in still for ch in chars}
        elif op in (c.MAX_REPEAT, c.MIN_REPEAT, c.POSSESSIVE_REPEAT):
            low, _high, sub = arg
            once = {
                p if p.endswith((_CLOSED, _WORD)) else p + _CLOSED
                for p in _prefixes(list(sub), still)
            }
            grown = once if low >= 1 else still | once
        else:
            grown = {p + _CLOSED for p in still}
        opens = done | grown
    return opens


def _small_set(items: list[tuple[Any, Any]]) -> list[str] | None:
    """The characters of a character class like [a-c] or [89], when it is small and plain."""
    c = sre_constants
    chars: list[str] = []
    for kind, value in items:
        if kind is c.LITERAL:
            chars.append(chr(value))
        elif kind is c.RANGE and value[1] - value[0] < 12:
            chars.extend(chr(v) for v in range(value[0], value[1] + 1))
        else:
            return None
    return chars if len(chars) <= 12 else None


def first_words(body: str) -> tuple[set[str], set[str]] | None:
    """(whole first words, beginnings of first words) that a match of `body` can start with;
    None when it could start with anything."""
    found = _prefixes(list(sre_parse.parse(body).data), {""})
    if len(found) > _MAX_PREFIXES:
        return None
    words = {p[:-1] for p in found if p.endswith(_WORD)}
    # what is still open when the whole regex has ended is a whole word too
    words |= {p for p in found if not p.endswith((_WORD, _CLOSED))}
    prefixes = {p[:-1] for p in found if p.endswith(_CLOSED)}
    if "" in words or "" in prefixes:
        return None
    return words, prefixes


def _expand(pattern: str, lists: dict[str, str], where: str) -> str:
    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in lists:
            raise RulesError(f"{where}: unknown list {{{name}}} in {pattern!r}")
        return lists[name]

    # "word (a|b)?" means the space goes with the optional words: "word" alone matches too
    # (not when the optional words end in a space of their own: "am (cyber ?)?bullied")
    expanded = _OPTIONAL_AFTER_SPACE.sub(
        lambda m: m.group(0) if m.group(1).endswith((" ", " ?")) else f"(?: (?:{m.group(1)}))?",
        pattern,
    )
    for _ in range(3):  # lists may use lists
        expanded = _LIST_REF.sub(replace, expanded)
    return skeleton(expanded.lower())


def whole_words(body: str) -> str:
    return rf"(?<!\S)(?:{body})(?!\S)"


def _compile(body: str, where: str) -> re.Pattern[str]:
    if re.search(r"\([^()]*[+*]\)[+*{]", body):
        raise RulesError(f"{where}: nested repeat in {body!r} could backtrack without end")
    try:
        return re.compile(body)
    except re.error as error:
        raise RulesError(f"{where}: {error} in {body!r}") from None


def _alternatives(patterns: Any, lists: dict[str, str], where: str) -> str:
    if isinstance(patterns, str):
        patterns = [patterns]
    return "|".join(f"(?:{_expand(str(p), lists, where)})" for p in patterns)


def _gap_lists(lists: dict[str, str]) -> dict[str, str]:
    """`{w}`, `{w2}`...: up to N words that are not negations."""
    out = dict(lists)
    for name, value in lists.items():
        match = re.fullmatch(r"\(\?:\[\^ \]\+ \)(\{0,(\d+)\})?", value)
        if match:
            bound = match.group(1) or ""
            out[name] = rf"(?:(?!(?:{_GAP_NEGATIONS}) )[^ ]+ ){bound}"
    return out


@lru_cache(maxsize=4)
def load_rules(rules_file: Path = RULES_FILE, context_file: Path = CONTEXT_FILE) -> RuleSet:
    data = yaml.safe_load(rules_file.read_text(encoding="utf-8"))
    lists = _gap_lists({str(k): str(v) for k, v in (data.get("lists") or {}).items()})
    categories = {
        str(cid): Category(
            str(cid), str(spec["label"]), tuple(str(m) for m in spec.get("raised_by") or ())
        )
        for cid, spec in data["categories"].items()
    }
    markers: dict[str, re.Pattern[str]] = {}
    marker_examples: dict[str, str] = {}
    for name, spec in (data.get("markers") or {}).items():
        body = _alternatives(spec["patterns"], lists, f"marker {name}")
        markers[str(name)] = _compile(whole_words(body), f"marker {name}")
        marker_examples[str(name)] = str(spec.get("example") or "")
    rules: list[Rule] = []
    seen: set[str] = set()
    for entry in data["rules"]:
        rid = str(entry.get("id") or "")
        where = f"rule {rid or '?'}"
        if not rid or rid in seen:
            raise RulesError(f"{where}: every rule needs its own id")
        seen.add(rid)
        if entry.get("category") not in categories:
            raise RulesError(f"{where}: unknown category {entry.get('category')!r}")
        if entry.get("weight") not in SEVERITY_RANK:
            raise RulesError(f"{where}: weight must be urgent, high or medium")
        if not entry.get("example"):
            raise RulesError(f"{where}: needs an example")
        patterns = tuple(str(p) for p in entry["patterns"])
        body = "|".join(f"(?P<p{i}>{_expand(p, lists, where)})" for i, p in enumerate(patterns))
        rules.append(
            Rule(
                id=rid,
                category=str(entry["category"]),
                weight=str(entry["weight"]),
                patterns=patterns,
                example=str(entry["example"]),
                negatable=bool(entry.get("negatable", True)),
                regex=_compile(whole_words(body), where),
            )
        )
    by_word: dict[str, set[int]] = defaultdict(set)
    by_prefix: dict[str, set[int]] = defaultdict(set)
    anywhere: list[int] = []
    for index, rule in enumerate(rules):
        starts = first_words(rule.regex.pattern)
        if starts is None:
            anywhere.append(index)
            continue
        for word in starts[0]:
            by_word[word].add(index)
        for prefix in starts[1]:
            by_prefix[prefix].add(index)
    context = _load_context(context_file, lists)
    return RuleSet(
        categories,
        tuple(rules),
        markers,
        marker_examples,
        context,
        {k: tuple(sorted(v)) for k, v in by_word.items()},
        {k: tuple(sorted(v)) for k, v in by_prefix.items()},
        tuple(sorted({len(k) for k in by_prefix})),
        tuple(anywhere),
    )


def _load_context(path: Path, lists: dict[str, str]) -> Context:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    neg = data["negation"]
    words = _expand(str(neg["words"]), lists, "negation")
    fillers = _expand(str(neg["fillers"]), lists, "negation")
    negation = _compile(rf"(?<!\S)(?:{words})(?: (?:{fillers}))* ?$", "negation")
    hyp = data["hypothetical"]
    media = data["lesson_media"]
    past = data["past_with_support"]

    def words_regex(patterns: Any, where: str) -> re.Pattern[str]:
        return _compile(whole_words(_alternatives(patterns, lists, where)), where)

    return Context(
        negation_lowers=int(neg["lowers"]),
        negation=negation,
        hypothetical_lowers=int(hyp["lowers"]),
        hypothetical=words_regex(hyp["patterns"], "hypothetical"),
        hypothetical_anywhere=words_regex(hyp["anywhere"], "hypothetical"),
        media_lowers=int(media["lowers"]),
        media_lowers_first_person=int(media["lowers_first_person"]),
        first_person=words_regex(media["first_person"], "first person"),
        media=words_regex(media["patterns"], "lesson_media"),
        games=words_regex(media["games"]["patterns"], "games"),
        games_categories=frozenset(str(c) for c in media["games"]["categories"]),
        past_lowers=int(past["lowers"]),
        past=words_regex(past["past"], "past"),
        support=words_regex(past["support"], "support"),
        blockers=words_regex(past["blockers"], "blockers"),
        idioms=words_regex(data["idioms"], "idioms"),
    )
