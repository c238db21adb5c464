"""Survey definitions as immutable values.

A survey file (YAML, see docs/surveys.md) is parsed and validated by
`surveys.definition` into these values; the engine, the storage layer and
reports only ever see these, never the raw YAML.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from moderation.categories import CATEGORIES

QuestionType = Literal[
    "single_choice",
    "multiple_choice",
    "rating",
    "yes_no",
    "number",
    "free_text",
    "info",
]
QUESTION_TYPES: tuple[str, ...] = (
    "single_choice",
    "multiple_choice",
    "rating",
    "yes_no",
    "number",
    "free_text",
    "info",
)
# Types whose answers are one or more of `Question.choices` (rating and
# yes_no get generated choices so that every channel can render buttons).
CHOICE_TYPES: frozenset[str] = frozenset({"single_choice", "multiple_choice", "rating", "yes_no"})

# The reserved value recorded when a young person taps "Prefer not to say".
PREFER_NOT_TO_SAY = "prefer_not_to_say"

ConditionOp = Literal[
    "equals", "in", "includes", "at_least", "at_most", "answered", "all", "any", "not"
]

# Demographic dimensions a board reports by. Nothing else about a person is asked.
Dimension = Literal["school_year", "gender", "area"]

AnswerValue = str | list[str] | int | float


@dataclass(frozen=True)
class Choice:
    value: str
    label: str
    # A disclosure category: picking this choice raises a `medium` flag for a
    # safeguarding lead (e.g. "a partner is hurting me now"). Most choices have none.
    flag: str | None = None


# The disclosure categories of moderation/ (a choice's `flag` names one of them).
FLAG_CATEGORIES: tuple[str, ...] = CATEGORIES


@dataclass(frozen=True)
class Condition:
    """A `show_if` rule over answers to earlier questions.

    Leaf ops (`equals`, `in`, `includes`, `at_least`, `at_most`, `answered`)
    name `question` and compare with `values`; `all`/`any`/`not` combine
    `children` (`not` has exactly one child).
    """

    op: ConditionOp
    question: str | None = None
    values: tuple[str | int | float, ...] = ()
    children: tuple[Condition, ...] = ()

    def referenced_questions(self) -> tuple[str, ...]:
        found: list[str] = []
        if self.question is not None:
            found.append(self.question)
        for child in self.children:
            found.extend(child.referenced_questions())
        return tuple(dict.fromkeys(found))


@dataclass(frozen=True)
class Question:
    id: str
    type: QuestionType
    text: str
    report_label: str
    choices: tuple[Choice, ...] = ()
    required: bool = False
    prefer_not_to_say: bool = False
    show_if: Condition | None = None
    min: float | None = None  # number: lowest allowed; rating: lowest point
    max: float | None = None  # number: highest allowed; rating: highest point
    min_label: str | None = None  # rating: what the lowest point means
    max_label: str | None = None  # rating: what the highest point means
    max_length: int | None = None  # free_text: longest answer kept
    help: str | None = None  # a hint shown with the question
    dimension: Dimension | None = None  # set on demographic questions only
    line: int = 0  # 1-based line in the source file, for messages

    @property
    def is_choice(self) -> bool:
        return self.type in CHOICE_TYPES

    def choice(self, value: str) -> Choice | None:
        for choice in self.choices:
            if choice.value == value:
                return choice
        return None


@dataclass(frozen=True)
class Audience:
    """Who a survey is offered to, by school year (3 to 13). Empty means everyone."""

    min_year: int | None = None
    max_year: int | None = None

    def admits(self, school_year: int | None) -> bool:
        if school_year is None:
            return True
        if self.min_year is not None and school_year < self.min_year:
            return False
        return not (self.max_year is not None and school_year > self.max_year)


@dataclass(frozen=True)
class Survey:
    id: str
    version: int
    title: str
    topic: str  # bullying | online_safety | relationships | ... (used by moderation context)
    intro: str  # what it is for; the engine adds anonymity, stopping and help lines
    thanks: str
    questions: tuple[Question, ...]  # demographic questions first, then the survey's own
    audience: Audience = field(default_factory=Audience)
    estimated_minutes: int | None = None

    def question(self, question_id: str) -> Question | None:
        for question in self.questions:
            if question.id == question_id:
                return question
        return None

    def index_of(self, question_id: str) -> int:
        for index, question in enumerate(self.questions):
            if question.id == question_id:
                return index
        raise KeyError(question_id)
