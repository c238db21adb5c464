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
import threading
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property, lru_cache
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
    body: str  # the whole-words regex: one alternative per pattern, in named groups p0, p1...

    @cached_property
    def regex(self) -> re.Pattern[str]:
        """All the rule's patterns in one regex (screening uses them one by one through
        RuleSet.index; this is for tools and tests)."""
        return re.compile(self.body)


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
    idiom_index: WordIndex  # the idioms, tried only where a word can begin them


@dataclass(frozen=True)
class RuleSet:
    categories: dict[str, Category]
    rules: tuple[Rule, ...]
    markers: dict[str, re.Pattern[str]]
    marker_examples: dict[str, str]
    context: Context
    # Which rules can start at a word, and with which of their patterns: screening only tries
    # a rule where a word can begin one of its patterns, so its cost grows with the words of a
    # message, not with words times rules (group g of the index is rules[g]).
    index: WordIndex

    def label(self, category: str) -> str:
        found = self.categories.get(category)
        return found.label if found else category


_CLOSED = "\0"  # the prefix stops here (the regex does something this does not follow)
_WORD = "\1"  # the first word ends here
_MAX_PREFIXES = 4000


def _prefixes(items: list[tuple[Any, Any]], opens: set[str], words: int = 1) -> set[str]:
    """The possible beginnings of what `items` (a parsed regex) matches, up to the first space
    (`words=2`: up to the second space; the first is kept as a space).

    Prefixes that cannot grow any more end in _CLOSED. A prefix is always a necessary
    beginning: when the regex does something this does not follow, the prefix just stops.
    """
    c = sre_constants

    def space(p: str) -> str:
        return p + " " if words == 2 and p and " " not in p else p + _WORD

    for op, arg in items:
        still = {p for p in opens if not p.endswith((_CLOSED, _WORD))}
        done = opens - still
        if not still or len(opens) > _MAX_PREFIXES:
            return {p if p.endswith((_CLOSED, _WORD)) else p + _CLOSED for p in opens}
        if op in (c.ASSERT, c.ASSERT_NOT, c.AT):
            continue
        if op is c.LITERAL:
            char = chr(arg)
            grown = {space(p) if char == " " else p + char for p in still}
        elif op is c.SUBPATTERN:
            grown = _prefixes(list(arg[-1]), still, words)
        elif op is c.BRANCH:
            grown = set()
            for branch in arg[1]:
                grown |= _prefixes(list(branch), still, words)
        elif op is c.IN and _small_set(arg) is not None:
            chars = _small_set(arg) or []
            grown = {space(p) if ch == " " else p + ch for p in still for ch in chars}
        elif op in (c.MAX_REPEAT, c.MIN_REPEAT, c.POSSESSIVE_REPEAT):
            low, _high, sub = arg
            once = {
                p if p.endswith((_CLOSED, _WORD)) else p + _CLOSED
                for p in _prefixes(list(sub), still, words)
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


def first_two_words(body: str) -> list[tuple[str, str | None, bool]] | None:
    """How a match of `body` can begin, as (first word, second word, exact): with `exact`,
    the first word is exactly that and the second (None: any) exactly that too; without it,
    the first word begins with the first and, when a second is given, the first word is
    exact and the second begins with it. None when it could begin with anything, or the
    beginnings are too many to list."""
    found = _prefixes(list(sre_parse.parse(body).data), {""}, words=2)
    if len(found) > _MAX_PREFIXES:
        return None
    out: list[tuple[str, str | None, bool]] = []
    for p in found:
        if p.endswith(_WORD):  # two whole words ("a b"); a first word "" begins with a space
            first, _, second = p[:-1].partition(" ")
            out.append((first, second, True))
        elif p.endswith(_CLOSED):
            first, spaced, second = p[:-1].partition(" ")
            out.append((first, second, False) if spaced else (first, None, False))
        else:  # the regex ended: one whole word, or two
            first, spaced, second = p.partition(" ")
            out.append((first, second or None, True) if spaced else (first, None, True))
    if any(first == "" for first, _, _ in out):
        return None
    return out


UNKNOWN = "\0"  # WordIndex.at: the next word is not known (not one space away)
Alternatives = tuple[re.Pattern[str], ...]


class WordIndex:
    """Whole-word alternatives, each tried only where the words of a message can begin it.

    `groups[g]` is a list of alternatives (regex source, e.g. "(?P<p0>...)"); together they
    make the regex `whole_words("|".join(groups[g]))`. For a word of a message and the word
    after it, `at(word, following)` gives, per group that may match starting at that word,
    the alternatives that can begin with those two words, each a whole-words regex of its
    own, in their original order. `first_match` of them at that position is exactly what the
    whole group's regex matches there (an alternative left out could not have matched there,
    and the engine takes the first alternative that matches), without spending time on the
    many alternatives that begin with other words. Alternatives are compiled one by one on
    first use, so no combination of them is ever compiled.
    """

    _CACHE_WORDS = 50_000  # word pairs remembered (messages are arbitrary text): a few MB

    def __init__(
        self,
        groups: list[list[str]],
        compiled: dict[tuple[int, int], re.Pattern[str]] | None = None,
    ) -> None:
        """`compiled`: alternatives already compiled (whole words), by (group, alternative)."""
        self.groups = groups
        tree: Callable[[], defaultdict[int, set[int]]] = lambda: defaultdict(set)  # noqa: E731
        # first word exactly this, any second word
        self._exact: defaultdict[str, defaultdict[int, set[int]]] = defaultdict(tree)
        # first word beginning with this, any second word
        self._prefix: defaultdict[str, defaultdict[int, set[int]]] = defaultdict(tree)
        # first word exactly this, second word exactly / beginning with ...
        self._second: defaultdict[str, list[tuple[str, bool, int, int]]] = defaultdict(list)
        self.anywhere: defaultdict[int, set[int]] = defaultdict(set)
        for g, alternatives in enumerate(groups):
            for a, alternative in enumerate(alternatives):
                self._add(g, a, alternative)
        self._prefix_lengths = tuple(sorted({len(k) for k in self._prefix}))
        self._words: dict[tuple[str, str | None], tuple[tuple[int, Alternatives], ...]] = {}
        # per first word: what does not depend on the next word (see _first_word)
        self._first: dict[
            str, tuple[dict[int, set[int]], tuple[tuple[int, Alternatives], ...]]
        ] = {}
        self._compiled: dict[tuple[int, int], re.Pattern[str]] = dict(compiled or {})
        self._lock = threading.Lock()

    def _add(self, g: int, a: int, alternative: str) -> None:
        starts = first_two_words(alternative)
        if starts is None:
            one = first_words(alternative)
            if one is None:
                self.anywhere[g].add(a)
                return
            starts = [(w, None, True) for w in one[0]] + [(p, None, False) for p in one[1]]
        for first, second, exact in starts:
            if second is None or (second == "" and not exact):
                (self._exact if exact or second is not None else self._prefix)[first][g].add(a)
            else:
                self._second[first].append((second, exact, g, a))

    @property
    def everywhere(self) -> bool:
        """Some alternative could begin anywhere (not only at a word it names)."""
        return bool(self.anywhere)

    def at(
        self, word: str, following: str | None = UNKNOWN
    ) -> tuple[tuple[int, Alternatives], ...]:
        """(group, its alternatives that may begin here), by group, for a match that
        would begin at `word`, followed by one space and `following` (None: the text ends
        after `word`; UNKNOWN: anything)."""
        key = (word, following)
        found = self._words.get(key)
        if found is None:
            found = self._resolve(word, following)
            with self._lock:
                if len(self._words) >= self._CACHE_WORDS:
                    self._words.clear()
                self._words[key] = found
        return found

    def _resolve(self, word: str, following: str | None) -> tuple[tuple[int, Alternatives], ...]:
        found = self._first.get(word)
        if found is None:
            found = self._first_word(word)
            with self._lock:
                if len(self._first) >= self._CACHE_WORDS:
                    self._first.clear()
                self._first[word] = found
        chosen, resolved = found
        seconds = self._second.get(word)
        if not seconds:
            return resolved  # nothing here depends on the next word
        extra: dict[int, set[int]] = {}
        for second, exact, g, a in seconds:
            if following == UNKNOWN or (
                following is not None
                and (following == second if exact else following.startswith(second))
            ):
                extra.setdefault(g, set()).add(a)
        if not extra:
            return resolved
        merged = dict(chosen)
        for g, alternatives in extra.items():
            merged[g] = chosen.get(g, set()) | alternatives
        return self._build(merged)

    def _first_word(
        self, word: str
    ) -> tuple[dict[int, set[int]], tuple[tuple[int, Alternatives], ...]]:
        """What may begin at `word` whatever the next word is, and that as `at` returns it."""
        chosen: dict[int, set[int]] = {g: set(a) for g, a in self.anywhere.items()}
        for g, alternatives in self._exact.get(word, {}).items():
            chosen.setdefault(g, set()).update(alternatives)
        for length in self._prefix_lengths:
            if length > len(word):
                break
            for g, alternatives in self._prefix.get(word[:length], {}).items():
                chosen.setdefault(g, set()).update(alternatives)
        return chosen, self._build(chosen)

    def _build(self, chosen: dict[int, set[int]]) -> tuple[tuple[int, Alternatives], ...]:
        return tuple(
            (g, tuple(self.alternative(g, a) for a in sorted(chosen[g])))
            for g in sorted(chosen)
            if chosen[g]
        )

    def alternative(self, group: int, alternative: int) -> re.Pattern[str]:
        """One alternative as a whole-words regex of its own (compiled on first use)."""
        key = (group, alternative)
        found = self._compiled.get(key)
        if found is None:
            found = re.compile(whole_words(self.groups[group][alternative]))
            with self._lock:
                self._compiled[key] = found
        return found


def first_match(
    regexes: tuple[re.Pattern[str], ...], text: str, position: int
) -> re.Match[str] | None:
    """What the alternation of `regexes` (each whole words) matches at `position`: the first
    of them that matches there, as the regex engine tries alternatives in order."""
    for regex in regexes:
        match = regex.match(text, position)
        if match is not None:
            return match
    return None


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
    groups: list[list[str]] = []  # each rule's patterns, for the WordIndex
    compiled: dict[tuple[int, int], re.Pattern[str]] = {}
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
        groups.append([f"(?P<p{i}>{_expand(p, lists, where)})" for i, p in enumerate(patterns)])
        # each pattern compiled on its own (screening tries them one by one): a pattern that
        # does not compile, or could backtrack without end, is refused with its rule's name
        for a, alternative in enumerate(groups[-1]):
            compiled[(len(groups) - 1, a)] = _compile(whole_words(alternative), where)
        rules.append(
            Rule(
                id=rid,
                category=str(entry["category"]),
                weight=str(entry["weight"]),
                patterns=patterns,
                example=str(entry["example"]),
                negatable=bool(entry.get("negatable", True)),
                body=whole_words("|".join(groups[-1])),
            )
        )
    context = _load_context(context_file, lists)
    index = WordIndex(groups, compiled)
    return RuleSet(categories, tuple(rules), markers, marker_examples, context, index)


def _index_of(alternatives: list[str], where: str) -> WordIndex:
    """A WordIndex of one group, its alternatives compiled now (not by the first message)."""
    compiled = {(0, a): _compile(whole_words(alt), where) for a, alt in enumerate(alternatives)}
    return WordIndex([alternatives], compiled)


def _load_context(path: Path, lists: dict[str, str]) -> Context:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    neg = data["negation"]
    words = _expand(str(neg["words"]), lists, "negation")
    fillers = _expand(str(neg["fillers"]), lists, "negation")
    negation = _compile(rf"(?<!\S)(?:{words})(?: (?:{fillers}))* ?$", "negation")
    hyp = data["hypothetical"]
    media = data["lesson_media"]
    past = data["past_with_support"]

    idioms = data["idioms"] if isinstance(data["idioms"], list) else [data["idioms"]]

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
        idiom_index=_index_of(
            [f"(?:{_expand(str(p), lists, 'idioms')})" for p in idioms], "idioms"
        ),
    )
