"""The aggregate counts a board report is built from (filled by `storage.reports`).

Only counts: never an answer, never free text, never who anyone is. A *cube*
counts answers by question and status, and chosen values by question and
value, for every combination of a few grouping questions (the demographic
block, or one single-choice question for a cross-tabulation). A group key is
the tuple of the grouping answers, None where a respondent gave none.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property

from surveys.model import Survey

GroupKey = tuple[str | None, ...]


@dataclass(frozen=True)
class Cube:
    dimensions: tuple[str, ...]  # grouping question ids, in key order
    respondents: dict[GroupKey, int] = field(default_factory=dict)  # responses per group
    # (question_id, status, group) -> answers; status answered | skipped | prefer_not_to_say
    answers: dict[tuple[str, str, GroupKey], int] = field(default_factory=dict)
    # (question_id, value, group) -> responses that chose value
    choices: dict[tuple[str, str, GroupKey], int] = field(default_factory=dict)

    @cached_property
    def answers_by_question(self) -> dict[str, list[tuple[str, GroupKey, int]]]:
        """question -> (status, group, count) of `answers`, in the same order."""
        return _by_question(self.answers)

    @cached_property
    def choices_by_question(self) -> dict[str, list[tuple[str, GroupKey, int]]]:
        """question -> (value, group, count) of `choices`, in the same order."""
        return _by_question(self.choices)

    def marginal(self, keep: tuple[str, ...]) -> Cube:
        """The same counts grouped by `keep` only (a subset of the dimensions)."""
        positions = [self.dimensions.index(name) for name in keep]

        def project(key: GroupKey) -> GroupKey:
            return tuple(key[position] for position in positions)

        respondents: dict[GroupKey, int] = {}
        for key, count in self.respondents.items():
            group = project(key)
            respondents[group] = respondents.get(group, 0) + count
        answers: dict[tuple[str, str, GroupKey], int] = {}
        for (question, status, key), count in self.answers.items():
            item = (question, status, project(key))
            answers[item] = answers.get(item, 0) + count
        choices: dict[tuple[str, str, GroupKey], int] = {}
        for (question, value, key), count in self.choices.items():
            item = (question, value, project(key))
            choices[item] = choices.get(item, 0) + count
        return Cube(keep, respondents, answers, choices)


def _by_question(
    counts: dict[tuple[str, str, GroupKey], int],
) -> dict[str, list[tuple[str, GroupKey, int]]]:
    found: dict[str, list[tuple[str, GroupKey, int]]] = {}
    for (question, item, group), count in counts.items():
        found.setdefault(question, []).append((item, group, count))
    return found


@dataclass(frozen=True)
class FlagTiming:
    severity: str
    created_at: datetime
    acknowledged_at: datetime | None
    count: int = 1


@dataclass(frozen=True)
class FlagCounts:
    """Flags raised in a campaign's responses: counts only, never any content."""

    by_severity: dict[str, int] = field(default_factory=dict)
    by_status: dict[str, int] = field(default_factory=dict)
    # (category set as sorted tuple) -> flags with exactly those categories
    by_categories: dict[tuple[str, ...], int] = field(default_factory=dict)
    timings: tuple[FlagTiming, ...] = ()

    @property
    def total(self) -> int:
        return sum(self.by_severity.values())


@dataclass(frozen=True)
class CampaignInfo:
    id: int
    code: str
    title: str
    survey_id: str
    survey_version: int
    status: str
    opens_at: datetime
    closes_at: datetime | None


@dataclass(frozen=True)
class CampaignCounts:
    campaign: CampaignInfo
    survey: Survey  # the stored definition of the campaign's survey version
    responses: dict[str, int]  # response status -> count
    cube: Cube  # grouped by the demographic questions the survey asks
    numbers: dict[str, dict[float, int]]  # number question -> value -> answers
    flags: FlagCounts
    # Quotes a safeguarding lead approved (storage.quotes): text only, in report order.
    quotes: tuple[str, ...] = ()
