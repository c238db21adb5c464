"""Survey files (YAML) -> validated `Survey` values, and a canonical dict form.

The format is documented for facilitators in docs/surveys.md and described by
surveys/survey.schema.json. Everything here is pure except `load_survey_file`
and `load_survey_dir`, which read files.

Parsing never raises: any text at all gives a `ParseResult`, whose `survey` is
None whenever `problems` is not empty. Every problem found is reported (not
just the first), each with the file, the line and, where it belongs to one,
the question id. The data is built from `yaml.compose` nodes so that every
value knows its line, and so that `value: yes` means the text "yes" (YAML 1.1
would otherwise read it as true).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, cast

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from surveys.conditions import as_number, evaluate_condition, same_value
from surveys.demographics import (
    AREA_QUESTION_ID,
    GENDER_QUESTION_ID,
    SCHOOL_YEAR_QUESTION_ID,
    area_question,
    gender_question,
    school_year_question,
)
from surveys.model import (
    FLAG_CATEGORIES,
    PREFER_NOT_TO_SAY,
    QUESTION_TYPES,
    Audience,
    Choice,
    Condition,
    Question,
    Survey,
)

# --- the format ---------------------------------------------------------------

TOP_LEVEL_KEYS: tuple[str, ...] = (
    "id",
    "version",
    "title",
    "topic",
    "intro",
    "thanks",
    "estimated_minutes",
    "audience",
    "demographics",
    "questions",
)
REQUIRED_TOP_LEVEL_KEYS: tuple[str, ...] = (
    "id",
    "version",
    "title",
    "topic",
    "intro",
    "thanks",
    "questions",
)
QUESTION_KEYS: tuple[str, ...] = (
    "id",
    "type",
    "text",
    "report_label",
    "choices",
    "required",
    "prefer_not_to_say",
    "show_if",
    "min",
    "max",
    "min_label",
    "max_label",
    "max_length",
    "help",
)
CHOICE_KEYS: tuple[str, ...] = ("value", "label", "flag")
AUDIENCE_KEYS: tuple[str, ...] = ("min_year", "max_year")
DEMOGRAPHIC_KEYS: tuple[str, ...] = ("school_year", "gender", "area")
LEAF_OPS: tuple[str, ...] = ("equals", "in", "includes", "at_least", "at_most", "answered")
GROUP_OPS: tuple[str, ...] = ("all", "any", "not")
DEMOGRAPHIC_IDS: tuple[str, ...] = (SCHOOL_YEAR_QUESTION_ID, GENDER_QUESTION_ID, AREA_QUESTION_ID)

FIRST_SCHOOL_YEAR, LAST_SCHOOL_YEAR = 3, 13
DEFAULT_MAX_LENGTH = 2000
LONGEST_MAX_LENGTH = 10_000
MIN_RATING_POINTS, MAX_RATING_POINTS = 2, 11
LONG_TEXT_WORDS = 25  # longer question texts get a warning

MAX_FILE_CHARS = 500_000
MAX_NODES = 50_000  # values in one file, counting each use of an alias again
MAX_DEPTH = 40
MAX_QUESTIONS = 300
MAX_COMBINATIONS = 4096  # answer combinations tried before assuming a question is reachable
MAX_VERSION = 999_999

ID_PATTERN = re.compile(r"[a-z][a-z0-9_]{0,63}")
VALUE_PATTERN = re.compile(r"[a-z0-9][a-z0-9_]{0,63}")
_CHOICE_OWN_TYPES = ("single_choice", "multiple_choice")
_NUMERIC_TYPES = ("rating", "number")

# Questions that would identify a young person. Matched against the question's
# text and against its id (underscores read as spaces), lower-cased.
_IDENTIFYING: tuple[tuple[str, re.Pattern[str]], ...] = (
    (
        "a name",
        re.compile(
            r"\b(?:your|first|full|last|real|given|family|middle|sur|fore|user|nick)[ _-]?names?\b"
            r"|\bwhat are you called\b|^\W*name\W*$"
        ),
    ),
    (
        "a phone number",
        re.compile(
            r"\b(?:phone|mobile|telephone|tel)[ _-]?(?:number|no)\b"
            r"|^(?:your )?(?:phone|mobile|telephone)$"
        ),
    ),
    (
        "an address",
        re.compile(
            r"\b(?:your|home|street|postal|house)[ _-]?address\b|\bwhere do you live\b"
            r"|\bhouse number\b|^(?:your )?address$"
        ),
    ),
    (
        "an email address",
        re.compile(r"\be-?mail[ _-]?address\b|\byour e-?mail\b|^(?:your )?e-?mail$"),
    ),
    ("a postcode", re.compile(r"\bpost[ _-]?codes?\b|\bzip[ _-]?codes?\b")),
    (
        "a date of birth",
        re.compile(
            r"\bdate[ _-]of[ _-]birth\b|\bbirth[ _-]?date\b|\bwhen were you born\b"
            r"|\bwhen(?:'s| is) your birthday\b|^(?:your )?birthday$|^dob$|\bd\.o\.b\b"
        ),
    ),
)


_HINTS = {
    "report_label": " (the short name used for this question in reports)",
    "type": f" (one of: {', '.join(QUESTION_TYPES)})",
    "text": " (what the young person reads)",
}

# --- results ------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """Something wrong (or, as a warning, worth a look) in a survey file."""

    source: str
    line: int  # 1-based; 0 when unknown
    question_id: str | None
    message: str
    severity: Literal["error", "warning"] = "error"

    def __str__(self) -> str:
        where = f"{self.source}:{self.line}" if self.line > 0 else self.source
        kind = "warning: " if self.severity == "warning" else ""
        whose = f"question '{self.question_id}': " if self.question_id is not None else ""
        return f"{where}: {kind}{whose}{self.message}"


@dataclass(frozen=True)
class ParseResult:
    survey: Survey | None  # None whenever there is a problem
    problems: list[Problem]
    warnings: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def format_problems(problems: Iterable[Problem]) -> str:
    """One line per problem, then a count: what `main.py survey validate` prints."""
    items = list(problems)
    if not items:
        return "no problems found"
    errors = sum(1 for item in items if item.severity == "error")
    warnings = len(items) - errors
    counts = []
    if errors:
        counts.append(f"{errors} problem{'s' if errors != 1 else ''}")
    if warnings:
        counts.append(f"{warnings} warning{'s' if warnings != 1 else ''}")
    return "\n".join([*(str(item) for item in items), ", ".join(counts)])


# --- YAML nodes -> values that know their line -----------------------------------


@dataclass
class _Scalar:
    value: object  # as YAML reads it: str, int, float, bool or None
    text: str  # exactly as written (after quote processing)
    line: int


@dataclass
class _Entry:
    key_line: int
    value: _Item


@dataclass
class _Map:
    entries: dict[str, _Entry]
    line: int


@dataclass
class _Seq:
    items: list[_Item]
    line: int


_Item = _Scalar | _Map | _Seq

_NULL_TAG = "tag:yaml.org,2002:null"
_BOOL_TAG = "tag:yaml.org,2002:bool"
_INT_TAG = "tag:yaml.org,2002:int"
_FLOAT_TAG = "tag:yaml.org,2002:float"


class _Unreadable(Exception):
    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


def _line_of(node: Node) -> int:
    mark = getattr(node, "start_mark", None)
    return mark.line + 1 if mark is not None else 0


class _Reader:
    """Turns a composed node tree into `_Item`s, reporting duplicate and odd keys."""

    def __init__(self, report: Any) -> None:
        self._report = report
        self._budget = MAX_NODES
        self._constructor = SafeConstructor()

    def read(self, node: Node, depth: int = 0, open_nodes: frozenset[int] = frozenset()) -> _Item:
        line = _line_of(node)
        self._budget -= 1
        if self._budget < 0:
            raise _Unreadable(0, "the file is too big: it has too many values")
        if depth > MAX_DEPTH:
            raise _Unreadable(line, "the file is nested too deeply")
        if id(node) in open_nodes:
            raise _Unreadable(line, "an alias (*name) refers to a value that contains itself")
        if isinstance(node, ScalarNode):
            return self._scalar(node, line)
        inside = open_nodes | {id(node)}
        if isinstance(node, SequenceNode):
            return _Seq([self.read(item, depth + 1, inside) for item in node.value], line)
        if isinstance(node, MappingNode):
            entries: dict[str, _Entry] = {}
            for key_node, value_node in node.value:
                key_line = _line_of(key_node)
                if not isinstance(key_node, ScalarNode):
                    self._report(key_line, "a key must be a plain word, not a list or mapping")
                    continue
                key = str(key_node.value)
                if key in entries:
                    self._report(key_line, f"key '{key}' is given twice here")
                    continue
                entries[key] = _Entry(key_line, self.read(value_node, depth + 1, inside))
            return _Map(entries, line)
        raise _Unreadable(line, "the file holds something that is not a value")

    def _scalar(self, node: ScalarNode, line: int) -> _Scalar:
        text = str(node.value)
        value: object = text
        try:
            if node.tag == _NULL_TAG:
                value = None
            elif node.tag == _BOOL_TAG:
                value = self._constructor.construct_yaml_bool(node)
            elif node.tag == _INT_TAG:
                value = self._constructor.construct_yaml_int(node)
            elif node.tag == _FLOAT_TAG:
                value = self._constructor.construct_yaml_float(node)
        except Exception:  # a number too long to read, an odd tag: keep the text
            value = text
        return _Scalar(value, text, line)


def _yaml_error(error: yaml.YAMLError, text: str) -> tuple[int, str]:
    if isinstance(error, yaml.MarkedYAMLError):
        mark = error.problem_mark or error.context_mark
        line = mark.line + 1 if mark is not None else 0
        parts = [part for part in (error.context, error.problem) if part]
        message = f"this is not valid YAML: {', '.join(parts) or 'unreadable'}"
        if "'\\t'" in str(error.problem):
            message += "; indent with spaces, not tabs"
        return line, message
    if isinstance(error, yaml.reader.ReaderError):
        line = text[: max(0, error.position)].count("\n") + 1
        return line, f"the file holds a character that is not allowed ({error.reason})"
    return 0, f"this is not valid YAML: {error}"


# --- the parser -------------------------------------------------------------------


@dataclass
class _Leaf:
    question: str
    op: str
    values: tuple[str | int | float, ...]
    line: int


@dataclass
class _Draft:
    """What the cross-question checks need to know about one question."""

    index: int
    line: int
    id: str | None
    type: str | None
    choice_values: tuple[str, ...] = ()
    low: float | None = None
    high: float | None = None
    condition: Condition | None = None
    condition_line: int = 0
    leaves: list[_Leaf] = field(default_factory=list)
    condition_ok: bool = True
    question: Question | None = None
    demographic: bool = False


def _kind(item: _Item) -> str:
    if isinstance(item, _Map):
        return "a mapping"
    if isinstance(item, _Seq):
        return "a list"
    return "a single value"


def _is_null(item: _Item) -> bool:
    return isinstance(item, _Scalar) and item.value is None


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


class _Parser:
    def __init__(self, source: str) -> None:
        self.source = source
        self.problems: list[Problem] = []
        self.warnings: list[Problem] = []

    # reporting

    def error(self, line: int, message: str, question_id: str | None = None) -> None:
        self.problems.append(Problem(self.source, line, question_id, message))

    def warn(self, line: int, message: str, question_id: str | None = None) -> None:
        self.warnings.append(Problem(self.source, line, question_id, message, "warning"))

    def result(self, survey: Survey | None) -> ParseResult:
        problems = sorted(self.problems, key=lambda problem: problem.line)
        warnings = sorted(self.warnings, key=lambda problem: problem.line)
        return ParseResult(None if problems else survey, problems, warnings)

    # typed look-ups; each reports its own problem and returns None when unusable

    def unknown_keys(
        self, mapping: _Map, allowed: tuple[str, ...], what: str, qid: str | None = None
    ) -> None:
        for key, entry in mapping.entries.items():
            if key not in allowed:
                self.error(
                    entry.key_line,
                    f"unknown key '{key}' in {what} (allowed: {', '.join(allowed)})",
                    qid,
                )

    def text(
        self, mapping: _Map, key: str, qid: str | None = None, *, required: bool = False
    ) -> str | None:
        entry = mapping.entries.get(key)
        if entry is None or _is_null(entry.value):
            if required:
                what = "missing required key" if qid is None else "missing"
                line = mapping.line if entry is None else entry.key_line
                self.error(line, f"{what} '{key}'{_HINTS.get(key, '')}", qid)
            return None
        item = entry.value
        if not isinstance(item, _Scalar):
            self.error(item.line, f"'{key}' must be text, not {_kind(item)}", qid)
            return None
        value = item.text.strip()
        if not value:
            self.error(item.line, f"'{key}' must not be empty", qid)
            return None
        return value

    def identifier(
        self,
        mapping: _Map,
        key: str,
        what: str,
        qid: str | None = None,
        *,
        required: bool = True,
        pattern: re.Pattern[str] = ID_PATTERN,
    ) -> str | None:
        value = self.text(mapping, key, qid, required=required)
        if value is None:
            return None
        if not pattern.fullmatch(value):
            line = mapping.entries[key].value.line
            start = "a letter" if pattern is ID_PATTERN else "a letter or digit"
            self.error(
                line,
                f"{what} '{value}' must use only lowercase letters, digits and underscores, "
                f"start with {start} and be at most 64 characters",
                qid,
            )
            return None
        return value

    def integer(
        self,
        mapping: _Map,
        key: str,
        qid: str | None = None,
        *,
        low: int | None = None,
        high: int | None = None,
        required: bool = False,
        message: str | None = None,
    ) -> int | None:
        entry = mapping.entries.get(key)
        if entry is None:
            if required:
                self.error(mapping.line, f"missing required key '{key}'", qid)
            return None
        item = entry.value
        value = item.value if isinstance(item, _Scalar) else None
        ok = isinstance(value, int) and not isinstance(value, bool)
        if ok and low is not None and cast(int, value) < low:
            ok = False
        if ok and high is not None and cast(int, value) > high:
            ok = False
        if not ok:
            if message is None:
                bounds = f" from {low} to {high}" if low is not None and high is not None else ""
                if low is not None and high is None:
                    bounds = f" of {low} or more"
                message = f"'{key}' must be a whole number{bounds}"
            self.error(item.line, message, qid)
            return None
        return cast(int, value)

    def number(self, mapping: _Map, key: str, qid: str | None) -> float | int | None:
        entry = mapping.entries.get(key)
        if entry is None:
            return None
        item = entry.value
        value = item.value if isinstance(item, _Scalar) else None
        if not _is_number(value) or as_number(value) is None:
            self.error(item.line, f"'{key}' must be a number", qid)
            return None
        return cast(float | int, value)

    def boolean(self, mapping: _Map, key: str, qid: str | None = None) -> bool | None:
        entry = mapping.entries.get(key)
        if entry is None:
            return None
        item = entry.value
        if not (isinstance(item, _Scalar) and isinstance(item.value, bool)):
            self.error(item.line, f"'{key}' must be true or false", qid)
            return None
        return item.value

    # the survey

    def survey(self, root: _Item | None) -> Survey | None:
        if root is None:
            self.error(0, "the file is empty")
            return None
        if not isinstance(root, _Map):
            self.error(
                root.line,
                f"a survey file must be a mapping of keys (id, version, title, ... questions), "
                f"not {_kind(root)}",
            )
            return None
        self.unknown_keys(root, TOP_LEVEL_KEYS, "the survey")
        survey_id = self.identifier(root, "id", "survey id")
        version = self.integer(
            root,
            "version",
            low=1,
            high=MAX_VERSION,
            required=True,
            message=f"version must be a whole number from 1 to {MAX_VERSION}",
        )
        title = self.text(root, "title", required=True)
        topic = self.identifier(root, "topic", "topic")
        intro = self.text(root, "intro", required=True)
        thanks = self.text(root, "thanks", required=True)
        minutes = self.integer(root, "estimated_minutes", low=1, high=120)
        audience = self.audience(root)
        demographics = self.demographics(root, audience)
        questions = self.questions(root, demographics)
        if self.problems or None in (survey_id, version, title, topic, intro, thanks):
            return None
        return Survey(
            id=cast(str, survey_id),
            version=cast(int, version),
            title=cast(str, title),
            topic=cast(str, topic),
            intro=cast(str, intro),
            thanks=cast(str, thanks),
            questions=questions,
            audience=audience,
            estimated_minutes=minutes,
        )

    def year_range(
        self, mapping: _Map, what: str, default: tuple[int, int]
    ) -> tuple[int, int] | None:
        self.unknown_keys(mapping, AUDIENCE_KEYS, what)
        low = self.integer(mapping, "min_year", low=FIRST_SCHOOL_YEAR, high=LAST_SCHOOL_YEAR)
        high = self.integer(mapping, "max_year", low=FIRST_SCHOOL_YEAR, high=LAST_SCHOOL_YEAR)
        start = low if low is not None else default[0]
        end = high if high is not None else default[1]
        if start > end:
            self.error(mapping.line, f"{what}: min_year {start} is after max_year {end}")
            return None
        return start, end

    def audience(self, root: _Map) -> Audience:
        entry = root.entries.get("audience")
        if entry is None or _is_null(entry.value):
            return Audience()
        if not isinstance(entry.value, _Map):
            self.error(entry.value.line, "'audience' must be a mapping with min_year and max_year")
            return Audience()
        mapping = entry.value
        found = self.year_range(mapping, "audience", (FIRST_SCHOOL_YEAR, LAST_SCHOOL_YEAR))
        if found is None:
            return Audience()
        low = found[0] if "min_year" in mapping.entries else None
        high = found[1] if "max_year" in mapping.entries else None
        return Audience(min_year=low, max_year=high)

    def demographics(self, root: _Map, audience: Audience) -> list[Question]:
        entry = root.entries.get("demographics")
        if entry is None or _is_null(entry.value):
            return []
        block = entry.value
        if not isinstance(block, _Map):
            self.error(block.line, "'demographics' must be a mapping of school_year, gender, area")
            return []
        self.unknown_keys(block, DEMOGRAPHIC_KEYS, "demographics")
        found: list[Question] = []
        default = (
            audience.min_year or FIRST_SCHOOL_YEAR,
            audience.max_year or LAST_SCHOOL_YEAR,
        )
        year_entry = block.entries.get("school_year")
        if year_entry is not None:
            years: tuple[int, int] | None = None
            item = year_entry.value
            if isinstance(item, _Map):
                years = self.year_range(item, "school_year", default)
                if years is not None and (years[0] < default[0] or years[1] > default[1]):
                    self.warn(
                        item.line,
                        f"school_year offers years {years[0]} to {years[1]}, "
                        f"outside the audience (years {default[0]} to {default[1]})",
                    )
            elif isinstance(item, _Scalar) and isinstance(item.value, bool):
                years = default if item.value else None
            else:
                self.error(
                    item.line,
                    "'school_year' must be true, false or a mapping with min_year and max_year",
                )
            if years is not None:
                found.append(school_year_question(line=year_entry.key_line, years=years))
        gender = self.boolean(block, "gender")
        if gender:
            found.append(gender_question(line=block.entries["gender"].key_line))
        area_entry = block.entries.get("area")
        if area_entry is not None and not _is_null(area_entry.value):
            item = area_entry.value
            if isinstance(item, _Scalar) and item.value is False:
                pass
            elif not isinstance(item, _Seq):
                self.error(item.line, "'area' must be a list of choices, each with value and label")
            else:
                choices = self.choices(item, AREA_QUESTION_ID, "single_choice", area_entry.key_line)
                if choices is not None:
                    found.append(area_question(choices, line=area_entry.key_line))
        return found

    def choices(
        self, seq: _Seq, qid: str | None, qtype: str, line: int
    ) -> tuple[Choice, ...] | None:
        before = len(self.problems)
        found: list[Choice] = []
        first_line: dict[str, int] = {}
        for item in seq.items:
            if not isinstance(item, _Map):
                self.error(item.line, "each choice must be a mapping with value and label", qid)
                continue
            self.unknown_keys(item, CHOICE_KEYS, "a choice", qid)
            value = self.identifier(
                item, "value", "choice value", qid, required=False, pattern=VALUE_PATTERN
            )
            label = self.text(item, "label", qid)
            if "value" not in item.entries or _is_null(item.entries["value"].value):
                self.error(item.line, "choice has no value", qid)
            if label is None and (
                "label" not in item.entries or _is_null(item.entries["label"].value)
            ):
                self.error(item.line, f"choice '{value or '?'}' has no label", qid)
            if value is None or label is None:
                continue
            if value == PREFER_NOT_TO_SAY:
                self.error(
                    item.line,
                    f"choice value '{PREFER_NOT_TO_SAY}' is reserved; "
                    "set prefer_not_to_say: true to offer it",
                    qid,
                )
                continue
            if value in first_line:
                self.error(
                    item.line,
                    f"choice value '{value}' is used twice (first on line {first_line[value]})",
                    qid,
                )
                continue
            first_line[value] = item.line
            flag = self.choice_flag(item, value, qid)
            found.append(Choice(value, label, flag))
        if len(seq.items) < 2:
            self.error(line, f"a {qtype} question needs at least 2 choices", qid)
        return tuple(found) if len(self.problems) == before else None

    def choice_flag(self, item: _Map, value: str, qid: str | None) -> str | None:
        entry = item.entries.get("flag")
        if entry is None or _is_null(entry.value):
            return None
        flag = entry.value.value if isinstance(entry.value, _Scalar) else None
        if flag not in FLAG_CATEGORIES:
            self.error(
                entry.key_line,
                f"choice '{value}' has flag {flag!r}, which is not a disclosure category "
                f"(one of: {', '.join(FLAG_CATEGORIES)})",
                qid,
            )
            return None
        return cast(str, flag)

    # questions

    def questions(self, root: _Map, demographics: list[Question]) -> tuple[Question, ...]:
        drafts = [
            _Draft(
                index=index,
                line=question.line,
                id=question.id,
                type=question.type,
                choice_values=tuple(choice.value for choice in question.choices),
                question=question,
                demographic=True,
            )
            for index, question in enumerate(demographics)
        ]
        entry = root.entries.get("questions")
        if entry is None:
            self.error(root.line, "missing required key 'questions'")
            return ()
        items = entry.value
        if not isinstance(items, _Seq):
            self.error(items.line, "'questions' must be a list of questions")
            return ()
        if not items.items:
            self.error(items.line, "a survey needs at least one question")
        if len(items.items) > MAX_QUESTIONS:
            self.error(items.line, f"a survey can have at most {MAX_QUESTIONS} questions")
            return ()
        for item in items.items:
            draft = self.question(item, len(drafts))
            if draft is not None:
                drafts.append(draft)
        self.check_ids(drafts)
        self.check_references(drafts)
        self.check_cycles(drafts)
        self.check_reachable(drafts)
        built = [draft.question for draft in drafts]
        if any(question is None for question in built):
            return ()
        return tuple(cast(list[Question], built))

    def question(self, item: _Item, index: int) -> _Draft | None:
        if not isinstance(item, _Map):
            self.error(
                item.line,
                f"each question must be a mapping with id, type and text, not {_kind(item)}",
            )
            return None
        before = len(self.problems)
        raw_id = item.entries.get("id")
        qid: str | None = None
        if raw_id is None or _is_null(raw_id.value):
            self.error(item.line, "question has no id")
        elif isinstance(raw_id.value, _Scalar):
            qid = raw_id.value.text.strip() or None
            self.identifier(item, "id", "question id", qid)
        else:
            self.text(item, "id")
        self.unknown_keys(item, QUESTION_KEYS, "a question", qid)
        qtype = self.text(item, "type", qid, required=True)
        if qtype is not None and qtype not in QUESTION_TYPES:
            self.error(
                item.entries["type"].value.line,
                f"unknown question type '{qtype}' (use one of: {', '.join(QUESTION_TYPES)})",
                qid,
            )
            qtype = None
        draft = _Draft(index=index, line=item.line, id=qid, type=qtype)
        text = self.text(item, "text", qid, required=True)
        is_info = qtype == "info"
        report_label = self.text(
            item, "report_label", qid, required=qtype is not None and not is_info
        )
        if report_label is None and is_info:
            report_label = qid
        help_text = self.text(item, "help", qid)
        required = self.boolean(item, "required", qid)
        prefer_not = self.boolean(item, "prefer_not_to_say", qid)
        if required and is_info:
            self.error(item.entries["required"].key_line, "an info step cannot be required", qid)
        if prefer_not and qtype in ("info", "free_text"):
            self.error(
                item.entries["prefer_not_to_say"].key_line,
                f"prefer_not_to_say does not apply to {qtype} "
                + ("steps" if is_info else "questions (leave them skippable instead)"),
                qid,
            )
        if required and qtype is not None and not is_info:
            self.warn(
                item.entries["required"].key_line,
                "a required question cannot be skipped; young people should be free to skip",
                qid,
            )
        self.check_identifying(item, qid, text, is_info)
        if text is not None and not is_info and len(text.split()) > LONG_TEXT_WORDS:
            self.warn(
                item.entries["text"].value.line,
                f"the text has {len(text.split())} words; short questions are easier to answer",
                qid,
            )
        choices = self.question_choices(item, qid, qtype, draft)
        limits = self.question_limits(item, qid, qtype, draft)
        max_length = self.question_max_length(item, qid, qtype)
        if qtype == "rating" and draft.low is not None and draft.high is not None:
            choices = _rating_choices(draft.low, draft.high)
            draft.choice_values = tuple(choice.value for choice in choices)
        show_if = item.entries.get("show_if")
        if show_if is not None:
            draft.condition_line = show_if.key_line
            draft.condition = self.condition(show_if.value, qid, draft.leaves)
            draft.condition_ok = draft.condition is not None
        if len(self.problems) != before or qid is None or qtype is None or text is None:
            return draft
        labels = _rating_labels(item) if qtype == "rating" else (None, None)
        if qtype == "rating" and choices:
            choices = _label_ends(choices, *labels)
        draft.question = Question(
            id=qid,
            type=cast(Any, qtype),
            text=text,
            report_label=cast(str, report_label),
            choices=choices,
            required=bool(required),
            prefer_not_to_say=bool(prefer_not),
            show_if=draft.condition,
            min=limits[0] if limits else None,
            max=limits[1] if limits else None,
            min_label=labels[0],
            max_label=labels[1],
            max_length=max_length,
            help=help_text,
            line=item.line,
        )
        return draft

    def check_identifying(self, item: _Map, qid: str | None, text: str | None, info: bool) -> None:
        looks: list[tuple[str, int]] = []
        if qid is not None:
            looks.append((qid.lower().replace("_", " "), item.entries["id"].value.line))
        if text is not None and not info:
            looks.append((" ".join(text.lower().split()), item.entries["text"].value.line))
        for what, pattern in _IDENTIFYING:
            for words, line in looks:
                if pattern.search(words):
                    self.error(
                        line,
                        f"surveys must never ask for {what}: "
                        "answers must not identify a young person",
                        qid,
                    )
                    break

    def question_choices(
        self, item: _Map, qid: str | None, qtype: str | None, draft: _Draft
    ) -> tuple[Choice, ...]:
        entry = item.entries.get("choices")
        if qtype in _CHOICE_OWN_TYPES:
            if entry is None or _is_null(entry.value):
                self.error(item.line, f"a {qtype} question needs at least 2 choices", qid)
                return ()
            if not isinstance(entry.value, _Seq):
                self.error(entry.value.line, "'choices' must be a list of {value, label}", qid)
                return ()
            choices = self.choices(entry.value, qid, cast(str, qtype), entry.key_line)
            if choices is None:
                return ()
            draft.choice_values = tuple(choice.value for choice in choices)
            return choices
        if entry is not None and qtype is not None:
            made = " (its choices are made for you)" if qtype in ("yes_no", "rating") else ""
            self.error(
                entry.key_line,
                f"'choices' is only for single_choice and multiple_choice questions, "
                f"not {qtype}{made}",
                qid,
            )
        if qtype == "yes_no":
            draft.choice_values = ("yes", "no")
            return (Choice("yes", "Yes"), Choice("no", "No"))
        return ()

    def question_limits(
        self, item: _Map, qid: str | None, qtype: str | None, draft: _Draft
    ) -> tuple[float | int | None, float | int | None] | None:
        has_min, has_max = "min" in item.entries, "max" in item.entries
        for key in ("min_label", "max_label"):
            if key in item.entries and qtype is not None and qtype != "rating":
                self.error(
                    item.entries[key].key_line, f"'{key}' only applies to rating questions", qid
                )
        if qtype == "rating":
            message = "a rating needs whole-number min and max"
            low = self.integer(item, "min", qid, required=False, message=message)
            high = self.integer(item, "max", qid, required=False, message=message)
            if not (has_min and has_max):
                self.error(item.line, message, qid)
                return None
            if low is None or high is None:
                return None
            if low >= high:
                self.error(
                    item.entries["min"].value.line,
                    f"rating min ({low}) must be less than max ({high})",
                    qid,
                )
                return None
            points = high - low + 1
            if not MIN_RATING_POINTS <= points <= MAX_RATING_POINTS:
                self.error(
                    item.entries["max"].value.line,
                    f"a rating can have {MIN_RATING_POINTS} to {MAX_RATING_POINTS} points, "
                    f"not {points}",
                    qid,
                )
                return None
            draft.low, draft.high = low, high
            return low, high
        if qtype == "number":
            low_number = self.number(item, "min", qid)
            high_number = self.number(item, "max", qid)
            if low_number is not None and high_number is not None and low_number > high_number:
                self.error(
                    item.entries["min"].value.line,
                    f"number min ({low_number}) is more than max ({high_number})",
                    qid,
                )
                return None
            draft.low, draft.high = low_number, high_number
            if low_number is None and high_number is None:
                return None
            return low_number, high_number
        if qtype is not None:
            for key, present in (("min", has_min), ("max", has_max)):
                if present:
                    self.error(
                        item.entries[key].key_line,
                        f"'{key}' only applies to rating and number questions",
                        qid,
                    )
        return None

    def question_max_length(self, item: _Map, qid: str | None, qtype: str | None) -> int | None:
        if qtype != "free_text":
            if "max_length" in item.entries and qtype is not None:
                self.error(
                    item.entries["max_length"].key_line,
                    "'max_length' only applies to free_text questions",
                    qid,
                )
            return None
        found = self.integer(item, "max_length", qid, low=1, high=LONGEST_MAX_LENGTH)
        return DEFAULT_MAX_LENGTH if found is None else found

    # show_if

    def condition(self, item: _Item, qid: str | None, leaves: list[_Leaf]) -> Condition | None:
        shape = "show_if must be a mapping like {question: an_earlier_id, equals: a_value}"
        if not isinstance(item, _Map):
            self.error(item.line, shape if not _is_null(item) else "show_if is empty", qid)
            return None
        keys = list(item.entries)
        groups = [key for key in keys if key in GROUP_OPS]
        if groups:
            op = groups[0]
            if len(keys) != 1:
                self.error(
                    item.line,
                    f"show_if with '{op}' cannot have other keys here ({', '.join(keys)}); "
                    "put each test inside it",
                    qid,
                )
                return None
            value = item.entries[op].value
            key_line = item.entries[op].key_line
            if op in ("all", "any"):
                if not isinstance(value, _Seq) or not value.items:
                    self.error(key_line, f"'{op}' needs a list of at least one condition", qid)
                    return None
                children = [self.condition(child, qid, leaves) for child in value.items]
                if any(child is None for child in children):
                    return None
                return Condition(cast(Any, op), children=tuple(cast(list[Condition], children)))
            if isinstance(value, _Seq) and len(value.items) == 1:
                value = value.items[0]
            if not isinstance(value, _Map):
                self.error(key_line, "'not' needs exactly one condition", qid)
                return None
            child = self.condition(value, qid, leaves)
            return None if child is None else Condition("not", children=(child,))
        for key in keys:
            if key != "question" and key not in LEAF_OPS:
                self.error(
                    item.entries[key].key_line,
                    f"unknown show_if test '{key}' "
                    f"(use {', '.join(LEAF_OPS)}, or combine with {', '.join(GROUP_OPS)})",
                    qid,
                )
                return None
        ops = [key for key in keys if key in LEAF_OPS]
        ref = self.text(item, "question", qid)
        if ref is None:
            if "question" not in item.entries:
                self.error(
                    item.line, "show_if needs 'question': the id of an earlier question", qid
                )
            return None
        if not ops:
            self.error(item.line, f"show_if needs a test: one of {', '.join(LEAF_OPS)}", qid)
            return None
        if len(ops) > 1:
            self.error(
                item.line,
                f"show_if has more than one test ({', '.join(ops)}); combine tests with all:",
                qid,
            )
            return None
        op = ops[0]
        value = item.entries[op].value
        values: tuple[str | int | float, ...]
        if op == "answered":
            if not (isinstance(value, _Scalar) and isinstance(value.value, bool)):
                self.error(value.line, "'answered' must be true or false", qid)
                return None
            leaves.append(_Leaf(ref, op, (), item.line))
            leaf = Condition("answered", ref)
            return leaf if value.value else Condition("not", children=(leaf,))
        if op in ("at_least", "at_most"):
            if not (isinstance(value, _Scalar) and _is_number(value.value)) or (
                as_number(value.value) is None
            ):
                self.error(value.line, f"'{op}' needs a number", qid)
                return None
            values = (cast(float | int, value.value),)
        elif op == "equals" or (op == "includes" and isinstance(value, _Scalar)):
            if not isinstance(value, _Scalar) or value.value is None:
                self.error(value.line, f"'{op}' needs one value", qid)
                return None
            values = (value.text,)
        else:
            if not isinstance(value, _Seq) or not value.items:
                self.error(value.line, f"'{op}' needs a list of values, like [a, b]", qid)
                return None
            texts: list[str] = []
            for part in value.items:
                if not isinstance(part, _Scalar) or part.value is None:
                    self.error(part.line, f"'{op}' needs a list of plain values", qid)
                    return None
                texts.append(part.text)
            values = tuple(texts)
        leaves.append(_Leaf(ref, op, values, item.line))
        return Condition(cast(Any, op), ref, values)

    # checks across questions

    def check_ids(self, drafts: list[_Draft]) -> None:
        first: dict[str, _Draft] = {}
        for draft in drafts:
            if draft.id is None:
                continue
            if not draft.demographic and draft.id in DEMOGRAPHIC_IDS:
                self.error(
                    draft.line,
                    f"question id '{draft.id}' is kept for the demographic block; "
                    "use the demographics key, or choose another id",
                    draft.id,
                )
                draft.question = None
            elif draft.id in first:
                self.error(
                    draft.line,
                    f"duplicate question id '{draft.id}' (first used on line "
                    f"{first[draft.id].line})",
                    draft.id,
                )
                draft.question = None
            first.setdefault(draft.id, draft)

    def check_references(self, drafts: list[_Draft]) -> None:
        by_id: dict[str, _Draft] = {}
        for draft in drafts:
            if draft.id is not None:
                by_id.setdefault(draft.id, draft)
        for draft in drafts:
            for leaf in draft.leaves:
                message = self.reference_problem(draft, leaf, by_id.get(leaf.question))
                if message is not None:
                    self.error(leaf.line, message, draft.id)
                    draft.condition_ok = False

    @staticmethod
    def reference_problem(draft: _Draft, leaf: _Leaf, target: _Draft | None) -> str | None:
        ref = leaf.question
        if ref == draft.id:
            return "show_if points at the question itself"
        if target is None:
            return f"show_if points at unknown question '{ref}'"
        if target.index > draft.index:
            return f"show_if points at later question '{ref}'"
        kind = target.type
        if kind is None:
            return None
        if kind == "info":
            return f"show_if points at info step '{ref}', which has no answer"
        if leaf.op == "answered":
            return None
        if kind == "free_text":
            return f"show_if can only test whether free-text question '{ref}' was answered"
        if leaf.op == "includes" and kind != "multiple_choice":
            return (
                f"'includes' only works with multiple_choice questions; "
                f"'{ref}' is {kind}, use equals or in"
            )
        if leaf.op in ("equals", "in") and kind == "multiple_choice":
            return f"use 'includes' to test multiple_choice question '{ref}'"
        if leaf.op in ("at_least", "at_most"):
            if kind not in _NUMERIC_TYPES:
                return f"'{leaf.op}' only works with rating and number questions; '{ref}' is {kind}"
            return None
        if kind == "number":
            for value in leaf.values:
                if as_number(value) is None:
                    return f"show_if compares number question '{ref}' with '{value}', not a number"
            return None
        if not target.choice_values:
            return None  # its own choices are broken, and already reported
        for value in leaf.values:
            if not any(same_value(choice, value) for choice in target.choice_values):
                return (
                    f"show_if compares '{ref}' with '{value}', which is not one of its choices "
                    f"({', '.join(target.choice_values)})"
                )
        return None

    def check_cycles(self, drafts: list[_Draft]) -> None:
        order = [draft.id for draft in drafts if draft.id is not None]
        edges: dict[str, set[str]] = {name: set() for name in order}
        lines: dict[str, int] = {}
        for draft in drafts:
            if draft.id is None:
                continue
            lines.setdefault(draft.id, draft.line)
            for leaf in draft.leaves:
                if leaf.question != draft.id and leaf.question in edges:
                    edges[draft.id].add(leaf.question)
        for group in _strongly_connected(order, edges):
            if len(group) < 2:
                continue
            names = sorted(group, key=order.index)
            path = " -> ".join([*names, names[0]])
            self.error(
                lines[names[0]],
                f"show_if references go round in a cycle: {path}",
                names[0],
            )

    def check_reachable(self, drafts: list[_Draft]) -> None:
        by_id: dict[str, _Draft] = {}
        for draft in drafts:
            if draft.id is not None:
                by_id.setdefault(draft.id, draft)
        unreachable: set[str] = set()
        for draft in drafts:
            if draft.condition is None or not draft.condition_ok or draft.id is None:
                continue
            refs = draft.condition.referenced_questions()
            domains: list[list[object]] = []
            known = True
            for ref in refs:
                target = by_id.get(ref)
                if target is None or target.type is None:
                    known = False
                    break
                if ref in unreachable:
                    domains.append([None])
                    continue
                domain = _answer_domain(target, _mentioned(draft.condition, ref))
                if domain is None:
                    known = False
                    break
                domains.append(domain)
            if not known or _product_size(domains) > MAX_COMBINATIONS:
                continue
            condition = draft.condition
            if not any(
                evaluate_condition(condition, dict(zip(refs, combination, strict=True)))
                for combination in itertools.product(*domains)
            ):
                unreachable.add(draft.id)
                self.error(
                    draft.condition_line or draft.line,
                    "this question can never be shown: no answers to "
                    f"{', '.join(refs)} make its show_if true",
                    draft.id,
                )


# --- helpers for the checks ---------------------------------------------------------


def _rating_choices(low: int | float, high: int | float) -> tuple[Choice, ...]:
    return tuple(Choice(str(point), str(point)) for point in range(int(low), int(high) + 1))


def _rating_labels(item: _Map) -> tuple[str | None, str | None]:
    found: list[str | None] = []
    for key in ("min_label", "max_label"):
        entry = item.entries.get(key)
        value = entry.value if entry is not None else None
        text = value.text.strip() if isinstance(value, _Scalar) and value.value is not None else ""
        found.append(text or None)
    return found[0], found[1]


def _label_ends(
    choices: tuple[Choice, ...], low_label: str | None, high_label: str | None
) -> tuple[Choice, ...]:
    labelled = list(choices)
    if low_label:
        labelled[0] = replace(labelled[0], label=f"{labelled[0].label} – {low_label}")
    if high_label:
        labelled[-1] = replace(labelled[-1], label=f"{labelled[-1].label} – {high_label}")
    return tuple(labelled)


def _leaves(condition: Condition) -> Iterator[Condition]:
    if condition.op in GROUP_OPS:
        for child in condition.children:
            yield from _leaves(child)
    else:
        yield condition


def _mentioned(condition: Condition, question_id: str) -> list[str | int | float]:
    return [
        value
        for leaf in _leaves(condition)
        if leaf.question == question_id
        for value in leaf.values
    ]


def _answer_domain(target: _Draft, mentioned: list[str | int | float]) -> list[object] | None:
    """Every answer that can make a difference to a condition, plus None (not answered)."""
    kind = target.type
    if kind == "free_text":
        return [None, "some words"]
    if kind == "rating":
        if target.low is None or target.high is None:
            return None
        return [None, *range(int(target.low), int(target.high) + 1)]
    if kind == "number":
        points = sorted({number for value in mentioned if (number := as_number(value)) is not None})
        candidates = set(points)
        candidates.update((a + b) / 2 for a, b in itertools.pairwise(points))
        if points:
            candidates.update((points[0] - 1, points[-1] + 1))
        for bound in (target.low, target.high):
            if bound is not None:
                candidates.add(float(bound))
        candidates.add(0.0)
        kept = [
            value
            for value in sorted(candidates)
            if (target.low is None or value >= target.low)
            and (target.high is None or value <= target.high)
        ]
        return [None, *kept]
    if kind in ("single_choice", "yes_no", "multiple_choice"):
        values = target.choice_values
        if not values:
            return None
        # Choices the condition never names all behave alike: one stands for them all.
        named = [v for v in values if any(same_value(v, wanted) for wanted in mentioned)]
        others = [v for v in values if v not in named]
        base = named + others[:1]
        if kind != "multiple_choice":
            return [None, *base]
        if len(base) > 12:
            return None
        subsets: list[object] = [None]
        for size in range(1, len(base) + 1):
            subsets.extend(list(chosen) for chosen in itertools.combinations(base, size))
        return subsets
    return None


def _product_size(domains: list[list[object]]) -> int:
    size = 1
    for domain in domains:
        size *= len(domain)
        if size > MAX_COMBINATIONS:
            break
    return size


def _strongly_connected(order: list[str], edges: Mapping[str, set[str]]) -> list[set[str]]:
    """Tarjan's algorithm, iterative (a survey can have a few hundred questions)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[set[str]] = []
    counter = 0
    for start in order:
        if start in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(start, iter(sorted(edges[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, successors = work[-1]
            advanced = False
            for successor in successors:
                if successor not in index:
                    index[successor] = low[successor] = counter
                    counter += 1
                    stack.append(successor)
                    on_stack.add(successor)
                    work.append((successor, iter(sorted(edges[successor]))))
                    advanced = True
                    break
                if successor in on_stack:
                    low[node] = min(low[node], index[successor])
            if advanced:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                group: set[str] = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.add(member)
                    if member == node:
                        break
                groups.append(group)
    return groups


# --- public entry points ------------------------------------------------------------


def parse_survey(text: str, source: str = "<string>") -> ParseResult:
    """Parse and validate one survey file's text. Never raises."""
    parser = _Parser(source)
    if not isinstance(text, str):
        parser.error(0, "a survey must be given as text")
        return parser.result(None)
    if len(text) > MAX_FILE_CHARS:
        parser.error(0, f"the file is too big ({len(text)} characters; at most {MAX_FILE_CHARS})")
        return parser.result(None)
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as error:
        parser.error(*_yaml_error(error, text))
        return parser.result(None)
    except RecursionError:
        parser.error(0, "the file is nested too deeply")
        return parser.result(None)
    except Exception as error:  # never let a strange file stop the caller
        parser.error(0, f"the file could not be read: {error}")
        return parser.result(None)
    try:
        root = _Reader(parser.error).read(node) if node is not None else None
        survey = parser.survey(root)
    except _Unreadable as error:
        parser.error(error.line, error.message)
        return parser.result(None)
    except RecursionError:
        parser.error(0, "the file is nested too deeply")
        return parser.result(None)
    except Exception as error:  # a bug here must not take the service down with it
        parser.error(0, f"internal error while checking this file: {error!r}")
        return parser.result(None)
    return parser.result(survey)


def load_survey_file(path: str | Path) -> ParseResult:
    """Read and parse one survey file; a missing or unreadable file is a problem too."""
    path = Path(path)
    source = str(path)
    try:
        size = path.stat().st_size
        if size > MAX_FILE_CHARS * 4:
            return ParseResult(
                None, [Problem(source, 0, None, f"the file is too big ({size} bytes)")]
            )
        data = path.read_bytes()
    except OSError as error:
        reason = error.strerror or str(error)
        return ParseResult(None, [Problem(source, 0, None, f"cannot read the file: {reason}")])
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        message = "the file is not UTF-8 text; save it as UTF-8"
        return ParseResult(None, [Problem(source, line, None, message)])
    return parse_survey(text, source)


def load_survey_dir(path: str | Path) -> tuple[list[Survey], list[Problem]]:
    """Every valid *.yaml / *.yml survey in a folder, and the problems of the refused ones.

    A bad file is refused without stopping the others. Two files that claim the
    same survey id and version are both refused: nobody can tell which is meant.
    """
    folder = Path(path)
    try:
        files = sorted(
            entry
            for entry in folder.iterdir()
            if entry.suffix.lower() in (".yaml", ".yml")
            and not entry.name.startswith(".")
            and entry.is_file()
        )
    except OSError as error:
        reason = error.strerror or str(error)
        return [], [Problem(str(folder), 0, None, f"cannot read the survey folder: {reason}")]
    problems: list[Problem] = []
    claimed: dict[tuple[str, int], list[tuple[Path, Survey]]] = {}
    for file in files:
        result = load_survey_file(file)
        problems.extend(result.problems)
        if result.survey is not None:
            key = (result.survey.id, result.survey.version)
            claimed.setdefault(key, []).append((file, result.survey))
    surveys: list[Survey] = []
    for (survey_id, version), owners in claimed.items():
        if len(owners) == 1:
            surveys.append(owners[0][1])
            continue
        for file, _survey in owners:
            others = ", ".join(str(other) for other, _ in owners if other != file)
            problems.append(
                Problem(
                    str(file),
                    0,
                    None,
                    f"survey '{survey_id}' version {version} is also in {others}; "
                    "give each changed survey a new version number",
                )
            )
    return surveys, problems


# --- canonical dict form (stored in the database) -------------------------------------

FORMAT_VERSION = 1


def _condition_to_dict(condition: Condition) -> dict[str, Any]:
    return {
        "op": condition.op,
        "question": condition.question,
        "values": list(condition.values),
        "children": [_condition_to_dict(child) for child in condition.children],
    }


def survey_to_dict(survey: Survey) -> dict[str, Any]:
    """A JSON-serialisable canonical form of a survey.

    Source line numbers are left out on purpose: moving a comment in the file
    must not make the stored definition look changed.
    """
    return {
        "format": FORMAT_VERSION,
        "id": survey.id,
        "version": survey.version,
        "title": survey.title,
        "topic": survey.topic,
        "intro": survey.intro,
        "thanks": survey.thanks,
        "estimated_minutes": survey.estimated_minutes,
        "audience": {
            "min_year": survey.audience.min_year,
            "max_year": survey.audience.max_year,
        },
        "questions": [
            {
                "id": question.id,
                "type": question.type,
                "text": question.text,
                "report_label": question.report_label,
                "choices": [
                    {"value": choice.value, "label": choice.label}
                    | ({"flag": choice.flag} if choice.flag else {})
                    for choice in question.choices
                ],
                "required": question.required,
                "prefer_not_to_say": question.prefer_not_to_say,
                "show_if": (
                    _condition_to_dict(question.show_if) if question.show_if is not None else None
                ),
                "min": question.min,
                "max": question.max,
                "min_label": question.min_label,
                "max_label": question.max_label,
                "max_length": question.max_length,
                "help": question.help,
                "dimension": question.dimension,
            }
            for question in survey.questions
        ],
    }


def _need(mapping: Mapping[str, Any], key: str, kind: type | tuple[type, ...]) -> Any:
    value = mapping[key]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
        raise ValueError(f"stored survey: '{key}' has the wrong type ({type(value).__name__})")
    return value


def _optional(mapping: Mapping[str, Any], key: str, kind: type | tuple[type, ...]) -> Any:
    value = mapping.get(key)
    return None if value is None else _need(mapping, key, kind)


def _condition_from_dict(data: Mapping[str, Any]) -> Condition:
    op = _need(data, "op", str)
    if op not in LEAF_OPS + GROUP_OPS:
        raise ValueError(f"stored survey: unknown condition op {op!r}")
    values = tuple(_need(data, "values", list))
    if not all(isinstance(v, str | int | float) and not isinstance(v, bool) for v in values):
        raise ValueError("stored survey: condition values must be text or numbers")
    return Condition(
        op=op,
        question=_optional(data, "question", str),
        values=values,
        children=tuple(_condition_from_dict(child) for child in _need(data, "children", list)),
    )


def survey_from_dict(data: Mapping[str, Any]) -> Survey:
    """The survey stored by `survey_to_dict`. Raises ValueError on a malformed dict."""
    try:
        if data.get("format") != FORMAT_VERSION:
            raise ValueError(f"stored survey: unknown format {data.get('format')!r}")
        audience = _need(data, "audience", dict)
        questions = []
        for item in _need(data, "questions", list):
            if item.get("type") not in QUESTION_TYPES:
                raise ValueError(f"stored survey: unknown question type {item.get('type')!r}")
            show_if = item.get("show_if")
            questions.append(
                Question(
                    id=_need(item, "id", str),
                    type=item["type"],
                    text=_need(item, "text", str),
                    report_label=_need(item, "report_label", str),
                    choices=tuple(
                        Choice(
                            _need(choice, "value", str),
                            _need(choice, "label", str),
                            _optional(choice, "flag", str),
                        )
                        for choice in _need(item, "choices", list)
                    ),
                    required=_need(item, "required", bool),
                    prefer_not_to_say=_need(item, "prefer_not_to_say", bool),
                    show_if=_condition_from_dict(show_if) if show_if is not None else None,
                    min=_optional(item, "min", (int, float)),
                    max=_optional(item, "max", (int, float)),
                    min_label=_optional(item, "min_label", str),
                    max_label=_optional(item, "max_label", str),
                    max_length=_optional(item, "max_length", int),
                    help=_optional(item, "help", str),
                    dimension=_optional(item, "dimension", str),
                )
            )
        return Survey(
            id=_need(data, "id", str),
            version=_need(data, "version", int),
            title=_need(data, "title", str),
            topic=_need(data, "topic", str),
            intro=_need(data, "intro", str),
            thanks=_need(data, "thanks", str),
            questions=tuple(questions),
            audience=Audience(
                min_year=_optional(audience, "min_year", int),
                max_year=_optional(audience, "max_year", int),
            ),
            estimated_minutes=_optional(data, "estimated_minutes", int),
        )
    except (KeyError, TypeError, AttributeError) as error:
        raise ValueError(f"stored survey is malformed: {error!r}") from error
