"""A campaign's board report, built from aggregate counts only (pure).

`build_report(counts, options)` turns the counts of `storage.reports` into
figures a board may see: every count passes small-number suppression
(`surveys.stats.protect`) together with every count it adds up with, in the
question's overall table and all its breakdowns at once (school years nested in
key stages, gender, area), so that no view gives away what another hides.
Percentages and confidence intervals are computed from the shown figures only.
Free text never appears: a free-text question reports how many answered, no more.

Approved quotes ("you said") are not part of reports yet: showing one needs a
lead's approval step in the staff app, which is not built, so no quote (and no
table for them) exists.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from surveys.demographics import SCHOOL_YEARS
from surveys.model import Question, Survey
from surveys.report_data import CampaignCounts, CampaignInfo, Cube, FlagCounts, GroupKey
from surveys.stats import (
    DEFAULT_THRESHOLD,
    Line,
    Shown,
    change_sentence,
    check_threshold,
    format_percent,
    headline,
    interval,
    median_from_counts,
    percentage,
    protect,
    publish,
    two_proportion_test,
)

STATUSES = ("answered", "skipped", "prefer_not_to_say")
STATUS_LABELS = {
    "asked": "Asked",
    "answered": "Answered",
    "skipped": "Skipped",
    "prefer_not_to_say": "Prefer not to say",
}
RESPONSE_LABELS = {"completed": "Completed", "partial": "Partial", "in_progress": "In progress"}
NOT_GIVEN = "Not given"
KEY_STAGE = "key_stage"
MEDIAN_MIN_COUNT = 10  # a number question's median is shown only over this many answers
SEVERITIES = ("urgent", "high", "medium")
FLAG_STATUSES = ("open", "acknowledged", "referred", "closed", "not_a_concern")
TIMING_COLUMNS = ("in_time", "late", "overdue", "not_yet_due")
TIMING_LABELS = {
    "in_time": "Acknowledged in time",
    "late": "Acknowledged late",
    "overdue": "Not yet acknowledged, past its deadline",
    "not_yet_due": "Not yet acknowledged, deadline still to come",
}
_KEY_STAGE_LABELS = {
    "KS2": "Key stage 2 (ages 7-11)",
    "KS3": "Key stage 3 (ages 11-14)",
    "KS4": "Key stage 4 (ages 14-16)",
    "KS5": "Key stage 5 (ages 16-18)",
}
_KEY_STAGE_OF = {year.value: year.key_stage for year in SCHOOL_YEARS}

Deadline = Callable[[str, datetime], datetime]


@dataclass(frozen=True)
class ReportOptions:
    threshold: int = DEFAULT_THRESHOLD
    rounding: bool = False
    deadline: Deadline | None = None  # severity, raised at -> acknowledge by (flags timing)
    now: datetime | None = None  # for "not yet due"; flags timing needs it with `deadline`

    def __post_init__(self) -> None:
        check_threshold(self.threshold)


@dataclass(frozen=True)
class Figure:
    """A count, what it is out of, and what follows from them (None when not shown)."""

    count: Shown
    denominator: Shown
    percent: float | None
    low: float | None
    high: float | None

    @classmethod
    def of(cls, count: Shown, denominator: Shown) -> Figure:
        bounds = interval(count, denominator)
        return cls(
            count,
            denominator,
            percentage(count, denominator),
            bounds[0] if bounds else None,
            bounds[1] if bounds else None,
        )


@dataclass(frozen=True)
class ChoiceFigure:
    value: str
    label: str
    figure: Figure


@dataclass(frozen=True)
class BreakdownGroup:
    key: str | None
    label: str
    offered: bool  # False: the group is below the threshold and not shown at all
    answered: Shown
    cells: tuple[ChoiceFigure, ...]


@dataclass(frozen=True)
class Breakdown:
    dimension: str  # school_year, key_stage, gender, area or a question id
    label: str
    groups: tuple[BreakdownGroup, ...]

    @property
    def offered(self) -> tuple[BreakdownGroup, ...]:
        return tuple(group for group in self.groups if group.offered)


@dataclass(frozen=True)
class QuestionReport:
    id: str
    label: str
    type: str
    asked: Shown
    statuses: dict[str, Shown]  # answered, skipped, prefer_not_to_say
    choices: tuple[ChoiceFigure, ...]
    of_respondents: bool  # multiple choice: percentages of respondents, not of ticks
    median: float | None
    scale: tuple[float, float] | None  # rating: lowest and highest point
    headline: str | None
    breakdowns: tuple[Breakdown, ...] = ()

    @property
    def answered(self) -> Shown:
        return self.statuses["answered"]

    @property
    def any_suppressed(self) -> bool:
        shown = [self.asked, *self.statuses.values(), *(c.figure.count for c in self.choices)]
        return any(item.suppressed for item in shown)


@dataclass(frozen=True)
class CountRow:
    key: str
    label: str
    count: Shown


@dataclass(frozen=True)
class FlagReport:
    total: Shown
    by_severity: tuple[CountRow, ...]
    by_status: tuple[CountRow, ...]
    by_category: tuple[CountRow, ...]  # a flag can have several categories
    timing: tuple[tuple[str, tuple[CountRow, ...]], ...]  # severity -> timing columns


@dataclass(frozen=True)
class TrendPoint:
    code: str
    title: str
    opens_at: datetime
    figure: Figure


@dataclass(frozen=True)
class Trend:
    question_id: str
    label: str
    choice: str
    choice_label: str
    points: tuple[TrendPoint, ...]
    change: str | None  # the last two points in words, when both are shown


@dataclass(frozen=True)
class Report:
    campaign: CampaignInfo
    survey_title: str
    population: str
    threshold: int
    rounding: bool
    respondents: Shown
    responses: tuple[CountRow, ...]  # completed, partial, in progress
    questions: tuple[QuestionReport, ...]
    flags: FlagReport
    trends: tuple[Trend, ...] = ()
    notes: tuple[str, ...] = field(default_factory=tuple)
    # "You said": quotes a safeguarding lead approved; text only, never who or when.
    quotes: tuple[str, ...] = ()

    @property
    def headlines(self) -> tuple[str, ...]:
        return tuple(q.headline for q in self.questions if q.headline)


# ---------------------------------------------------------------- population words


def population_of(survey: Survey) -> str:
    low, high = survey.audience.min_year, survey.audience.max_year
    if low is not None and low >= 7:
        return "secondary pupils"
    if high is not None and high <= 6:
        return "primary pupils"
    return "young people"


# ---------------------------------------------------------------- one question's tables


def _reported_choices(question: Question) -> tuple[tuple[str, str], ...]:
    return tuple((choice.value, choice.label) for choice in question.choices)


@dataclass
class _Grouping:
    """One way of splitting respondents (a dimension), as cells of the joint system."""

    dimension: str
    label: str
    position: int  # index in the cube's group key
    groups: list[tuple[str | None, str]]  # (key, label), NOT_GIVEN last
    # key stage: key of group -> the school-year keys inside it
    members: dict[str | None, list[str | None]] | None = None


def _groupings(survey: Survey, cube: Cube) -> list[_Grouping]:
    found: list[_Grouping] = []
    for position, question_id in enumerate(cube.dimensions):
        question = survey.question(question_id)
        if question is None:
            continue
        groups: list[tuple[str | None, str]] = [(c.value, c.label) for c in question.choices]
        groups.append((None, NOT_GIVEN))
        found.append(_Grouping(question_id, question.report_label, position, groups))
        if question.dimension == "school_year":
            stages: dict[str | None, list[str | None]] = {}
            for choice in question.choices:
                stage = _KEY_STAGE_OF.get(choice.value)
                if stage is not None:
                    stages.setdefault(stage, []).append(choice.value)
            stages[None] = [None]
            found.append(
                _Grouping(
                    KEY_STAGE,
                    "Key stage (age band)",
                    position,
                    [(stage, _KEY_STAGE_LABELS.get(stage, stage)) for stage in stages if stage]
                    + [(None, NOT_GIVEN)],
                    members=stages,
                )
            )
    return found


def _group_of(grouping: _Grouping, key: GroupKey) -> str | None:
    value = key[grouping.position]
    if grouping.members is not None:
        return _KEY_STAGE_OF.get(value) if value is not None else None
    return value


def _group_sizes(cube: Cube, grouping: _Grouping) -> dict[str | None, int]:
    sizes: dict[str | None, int] = {}
    for key, count in cube.respondents.items():
        value = key[grouping.position]
        if grouping.members is not None:
            value = _KEY_STAGE_OF.get(value) if value is not None else None
        sizes[value] = sizes.get(value, 0) + count
    return sizes


def _question_report(
    question: Question,
    cube: Cube,
    groupings: Sequence[_Grouping],
    options: ReportOptions,
    population: str,
    numbers: Mapping[float, int] | None = None,
) -> QuestionReport:
    qid = question.id
    cells: dict[tuple, int] = {}
    lines: list[Line[tuple]] = []
    hidden: set[tuple] = set()
    known: dict[tuple, bool] = {}  # cells of groups known to be empty: zeros, never secret
    # this question's counts only (not the whole cube once per figure)
    own_answers = cube.answers_by_question.get(qid, [])
    own_choices = cube.choices_by_question.get(qid, [])
    for status in STATUSES:
        cells[("status", status)] = sum(n for s, _, n in own_answers if s == status)
    cells[("asked",)] = sum(cells[("status", s)] for s in STATUSES)
    lines.append(Line(("asked",), tuple(("status", s) for s in STATUSES)))
    choices = _reported_choices(question) if question.is_choice else ()
    single = question.type in ("single_choice", "yes_no", "rating")
    for value, _ in choices:
        cells[("choice", value)] = sum(n for v, _, n in own_choices if v == value)
    if single and choices:
        lines.append(Line(("status", "answered"), tuple(("choice", v) for v, _ in choices)))

    # breakdowns: cells ("b", dimension, group, value) and ("bt", dimension, group)
    by_dimension: dict[str, dict[str | None, bool]] = {}
    own_answered = [(g, n) for s, g, n in own_answers if s == "answered"]
    if choices:
        year_keys: dict[str | None, tuple] = {}
        for grouping in groupings:
            if cube.dimensions[grouping.position] == qid:
                continue  # school year by school year says nothing new
            sizes = _group_sizes(cube, grouping)
            offered: dict[str | None, bool] = {}
            small: set[str | None] = set()
            empty: set[str | None] = set()
            for key, _ in grouping.groups:
                offered[key] = sizes.get(key, 0) >= options.threshold
                # an empty group is known to be empty (its size is shown as 0): its zero
                # cells are no secret, and hiding them would not hide anything
                if 0 < sizes.get(key, 0) < options.threshold:
                    small.add(key)
                elif sizes.get(key, 0) == 0:
                    empty.add(key)
            by_dimension[grouping.dimension] = offered
            chosen_by: dict[tuple[str | None, str], int] = {}
            answered_by: dict[str | None, int] = {}
            for value, group, count in own_choices:
                key = _group_of(grouping, group)
                chosen_by[(key, value)] = chosen_by.get((key, value), 0) + count
            for group, count in own_answered:
                key = _group_of(grouping, group)
                answered_by[key] = answered_by.get(key, 0) + count
            totals = []
            for key, _ in grouping.groups:
                if grouping.members is not None and key is None:
                    totals.append(year_keys[None])  # the same "not given" row as school years
                    continue
                total_cell = ("bt", grouping.dimension, key)
                totals.append(total_cell)
                member_keys = grouping.members.get(key, []) if grouping.members else [key]
                parts = []
                for value, _ in choices:
                    cell = ("b", grouping.dimension, key, value)
                    cells[cell] = chosen_by.get((key, value), 0)
                    parts.append(cell)
                    if key in small:
                        hidden.add(cell)
                    elif key in empty:
                        known[cell] = False
                answered = answered_by.get(key, 0)
                cells[total_cell] = answered
                if key in small:
                    hidden.add(total_cell)
                elif key in empty:
                    known[total_cell] = False
                if single:
                    lines.append(Line(total_cell, tuple(parts)))
                if grouping.members is None and grouping.dimension == _year_dimension(groupings):
                    year_keys[key] = total_cell
                if grouping.members is not None:
                    # a key stage is the sum of its school years
                    lines.append(
                        Line(
                            total_cell,
                            tuple(("bt", _year_dimension(groupings), m) for m in member_keys),
                        )
                    )
                    for value, _ in choices:
                        lines.append(
                            Line(
                                ("b", grouping.dimension, key, value),
                                tuple(
                                    ("b", _year_dimension(groupings), m, value) for m in member_keys
                                ),
                            )
                        )
            lines.append(Line(("status", "answered"), tuple(totals)))
            for value, _ in choices:
                column = []
                for key, _ in grouping.groups:
                    if grouping.members is not None and key is None:
                        column.append(("b", _year_dimension(groupings), None, value))
                    else:
                        column.append(("b", grouping.dimension, key, value))
                lines.append(Line(("choice", value), tuple(column)))

    suppressed = protect(cells, lines, options.threshold, hidden=hidden, fixed=known)
    shown = publish(cells, suppressed, rounding=options.rounding)
    answered = shown[("status", "answered")]
    choice_figures = tuple(
        ChoiceFigure(value, label, Figure.of(shown[("choice", value)], answered))
        for value, label in choices
    )
    breakdowns = []
    for grouping in groupings:
        if not choices:
            break
        if grouping.dimension not in by_dimension:
            continue
        offered = by_dimension[grouping.dimension]
        groups = []
        for key, label in grouping.groups:
            if grouping.members is not None and key is None:
                year = _year_dimension(groupings)
                total = shown[("bt", year, None)]
                cell_keys = [("b", year, None, value) for value, _ in choices]
            else:
                total = shown[("bt", grouping.dimension, key)]
                cell_keys = [("b", grouping.dimension, key, value) for value, _ in choices]
            groups.append(
                BreakdownGroup(
                    key,
                    label,
                    offered[key],
                    total if offered[key] else Shown(None),
                    tuple(
                        ChoiceFigure(
                            value,
                            choice_label,
                            Figure.of(shown[cell], total)
                            if offered[key]
                            else Figure.of(Shown(None), Shown(None)),
                        )
                        for cell, (value, choice_label) in zip(cell_keys, choices, strict=True)
                    ),
                )
            )
        breakdowns.append(Breakdown(grouping.dimension, grouping.label, tuple(groups)))

    median = None
    scale = None
    if question.type == "rating":
        scale = (float(question.min or 1), float(question.max or 5))
        if answered.value is not None:
            median = median_from_counts({float(v): cells[("choice", v)] for v, _ in choices})
    elif (
        question.type == "number"
        and numbers
        and answered.value is not None
        # the median of a handful of numbers is one young person's answer: only for many
        and cells[("status", "answered")] >= MEDIAN_MIN_COUNT
    ):
        median = median_from_counts(numbers)
    return QuestionReport(
        id=qid,
        label=question.report_label,
        type=question.type,
        asked=shown[("asked",)],
        statuses={status: shown[("status", status)] for status in STATUSES},
        choices=choice_figures,
        of_respondents=question.type == "multiple_choice",
        median=median,
        scale=scale,
        headline=_headline(question, choice_figures, answered, population, median, scale),
        breakdowns=tuple(breakdowns),
    )


def _year_dimension(groupings: Sequence[_Grouping]) -> str:
    for grouping in groupings:
        if grouping.members is not None:
            return next(g.dimension for g in groupings if g.position == grouping.position)
    return ""


def _headline(
    question: Question,
    choices: tuple[ChoiceFigure, ...],
    answered: Shown,
    population: str,
    median: float | None,
    scale: tuple[float, float] | None,
) -> str | None:
    if question.dimension is not None:
        return None
    label = f"“{question.report_label}”"
    if question.type == "rating":
        if median is None or scale is None or answered.value is None:
            return None
        return (
            f"The middle answer (median) of {population} to {label} was {median:g} "
            f"on a scale of {scale[0]:g} to {scale[1]:g} ({answered.value:,} answered)."
        )
    if question.type == "yes_no":
        yes = next((c for c in choices if c.value == "yes"), None)
        if yes is None:
            return None
        return headline(
            population=population, label=f"yes to {label}", part=yes.figure.count, whole=answered
        )
    shown = [c for c in choices if c.figure.count.value is not None]
    if not shown:
        return None
    top = max(shown, key=lambda c: c.figure.count.value or 0)
    verb = "picked" if question.type == "multiple_choice" else "chose"
    return headline(
        population=population,
        label=f"“{top.label}” for {label}",
        part=top.figure.count,
        whole=answered,
        verb=verb,
    )


# ---------------------------------------------------------------- flags


def _flag_report(flags: FlagCounts, options: ReportOptions) -> FlagReport:
    cells: dict[tuple, int] = {("total",): flags.total}
    lines: list[Line[tuple]] = []
    severities = list(SEVERITIES) + sorted(set(flags.by_severity) - set(SEVERITIES))
    statuses = list(FLAG_STATUSES) + sorted(set(flags.by_status) - set(FLAG_STATUSES))
    for severity in severities:
        cells[("severity", severity)] = flags.by_severity.get(severity, 0)
    for status in statuses:
        cells[("status", status)] = flags.by_status.get(status, 0)
    lines.append(Line(("total",), tuple(("severity", s) for s in severities)))
    lines.append(Line(("total",), tuple(("status", s) for s in statuses)))
    categories: dict[str, int] = {}
    for kinds, count in flags.by_categories.items():
        for kind in kinds:
            categories[kind] = categories.get(kind, 0) + count
    for kind, count in categories.items():
        cells[("category", kind)] = count
    timing_rows: list[str] = []
    if options.deadline is not None and options.now is not None:
        table = {(s, c): 0 for s in severities for c in TIMING_COLUMNS}
        for item in flags.timings:
            due = options.deadline(item.severity, item.created_at)
            if item.acknowledged_at is not None:
                column = "in_time" if item.acknowledged_at <= due else "late"
            else:
                column = "overdue" if options.now > due else "not_yet_due"
            table[(item.severity, column)] = table.get((item.severity, column), 0) + item.count
        for (severity, column), count in table.items():
            cells[("timing", severity, column)] = count
        for severity in severities:
            lines.append(
                Line(("severity", severity), tuple(("timing", severity, c) for c in TIMING_COLUMNS))
            )
            timing_rows.append(severity)
        for column in TIMING_COLUMNS:
            cells[("timing_total", column)] = sum(table[(s, column)] for s in severities)
            lines.append(
                Line(("timing_total", column), tuple(("timing", s, column) for s in severities))
            )
        lines.append(Line(("total",), tuple(("timing_total", c) for c in TIMING_COLUMNS)))
    shown = publish(cells, protect(cells, lines, options.threshold), rounding=options.rounding)
    return FlagReport(
        total=shown[("total",)],
        by_severity=tuple(CountRow(s, s.capitalize(), shown[("severity", s)]) for s in severities),
        by_status=tuple(
            CountRow(s, s.replace("_", " ").capitalize(), shown[("status", s)]) for s in statuses
        ),
        by_category=tuple(
            CountRow(kind, kind.replace("_", " ").capitalize(), shown[("category", kind)])
            for kind in sorted(categories)
        ),
        timing=tuple(
            (
                severity,
                tuple(
                    CountRow(c, TIMING_LABELS[c], shown[("timing", severity, c)])
                    for c in TIMING_COLUMNS
                ),
            )
            for severity in timing_rows
        ),
    )


# ---------------------------------------------------------------- trends


def _overall(
    question: Question, cube: Cube, options: ReportOptions
) -> tuple[Shown, dict[str, Shown]]:
    """A question's answered count and choice counts, suppressed as in its own campaign."""
    report = _question_report(question, cube, (), options, "")
    return report.answered, {c.value: c.figure.count for c in report.choices}


def build_trends(
    survey: Survey,
    history: Sequence[tuple[CampaignInfo, Survey, Cube]],
    options: ReportOptions,
) -> tuple[Trend, ...]:
    """Each choice of each yes/no or single-choice question across campaigns of the survey.

    Questions are matched by id (survey versions may differ); a campaign whose
    version lacks the question, or the choice, has no point. The change between
    the last two campaigns is tested when both figures are shown.
    """
    trends: list[Trend] = []
    if len(history) < 2:
        return ()
    for question in survey.questions:
        if question.type not in ("yes_no", "single_choice") or question.dimension is not None:
            continue
        series: dict[str, list[TrendPoint]] = {choice.value: [] for choice in question.choices}
        for campaign, version, cube in history:
            older = version.question(question.id)
            if older is None or older.type != question.type:
                continue
            answered, counts = _overall(older, cube, options)
            for value in series:
                if value in counts:
                    figure = Figure.of(counts[value], answered)
                    series[value].append(
                        TrendPoint(campaign.code, campaign.title, campaign.opens_at, figure)
                    )
        for choice in question.choices:
            points = series[choice.value]
            if len(points) < 2:
                continue
            before, after = points[-2].figure, points[-1].figure
            change = None
            if before.percent is not None and after.percent is not None:
                test = two_proportion_test(
                    before.count.value or 0,
                    before.denominator.value or 0,
                    after.count.value or 0,
                    after.denominator.value or 0,
                )
                change = change_sentence(
                    f"{question.report_label}: {choice.label}", before.percent, after.percent, test
                )
            trends.append(
                Trend(
                    question.id,
                    question.report_label,
                    choice.value,
                    choice.label,
                    tuple(points),
                    change,
                )
            )
    return tuple(trends)


# ---------------------------------------------------------------- the report


def build_report(
    counts: CampaignCounts,
    options: ReportOptions,
    history: Sequence[tuple[CampaignInfo, Survey, Cube]] = (),
) -> Report:
    survey = counts.survey
    population = population_of(survey)
    groupings = _groupings(survey, counts.cube)
    questions = tuple(
        _question_report(
            question, counts.cube, groupings, options, population, counts.numbers.get(question.id)
        )
        for question in survey.questions
        if question.type != "info"
    )
    response_cells = {status: counts.responses.get(status, 0) for status in RESPONSE_LABELS}
    cells: dict[str, int] = {**response_cells, "all": sum(counts.responses.values())}
    lines = [Line("all", tuple(RESPONSE_LABELS))]
    shown = publish(cells, protect(cells, lines, options.threshold), rounding=options.rounding)
    notes = [
        f"Counts from 1 to {options.threshold - 1} are not shown, nor any count that would let "
        "one be worked out from the totals.",
        "Percentages are of those who answered the question; a question is only counted for "
        "those it was shown to (some questions depend on earlier answers).",
        "Multiple-choice percentages are of respondents, so they can add up to more than 100%.",
        "Partial and in-progress responses are included; their answers count like any other.",
        "Free-text answers never appear in reports.",
    ]
    # Quotes only where the number taking part is shown: among a handful, words identify.
    quotes = counts.quotes if not shown["all"].suppressed else ()
    if quotes:
        notes[-1] = (
            "Free-text answers appear only as the quotes a safeguarding lead approved after "
            "reading them, without who wrote them or when, in no particular order."
        )
    elif counts.quotes:
        notes.append("Approved quotes are not shown: too few young people took part.")
    if options.rounding:
        notes.insert(1, "Counts are rounded to the nearest 5; percentages use the rounded counts.")
    return Report(
        campaign=counts.campaign,
        survey_title=survey.title,
        population=population,
        threshold=options.threshold,
        rounding=options.rounding,
        respondents=shown["all"],
        responses=tuple(
            CountRow(status, label, shown[status]) for status, label in RESPONSE_LABELS.items()
        ),
        questions=questions,
        flags=_flag_report(counts.flags, options),
        trends=build_trends(survey, history, options),
        notes=tuple(notes),
        quotes=quotes,
    )


def crosstab(
    counts: CampaignCounts, by: Cube, question_id: str, options: ReportOptions
) -> Breakdown | None:
    """`question_id` broken down by the single-choice question `by.dimensions[0]`."""
    survey = counts.survey
    question = survey.question(question_id)
    by_question = survey.question(by.dimensions[0]) if by.dimensions else None
    if question is None or by_question is None or not question.is_choice:
        return None
    if by_question.type not in ("single_choice", "yes_no") or by_question.id == question.id:
        return None
    grouping = _Grouping(
        by_question.id,
        by_question.report_label,
        0,
        [(c.value, c.label) for c in by_question.choices] + [(None, NOT_GIVEN)],
    )
    report = _question_report(question, by, [grouping], options, population_of(survey))
    return report.breakdowns[0] if report.breakdowns else None


# ---------------------------------------------------------------- charts


def _pct(value: float | None) -> str:
    return "not shown" if value is None else format_percent(value)


def bar_chart_svg(title: str, rows: Sequence[ChoiceFigure], table_id: str | None = None) -> str:
    """Horizontal bars with 95% confidence whiskers, readable in black and white.

    Every label is escaped. A suppressed row has no bar, only the words "not
    shown". `table_id` names the data table that says the same in text, for
    screen readers (aria-describedby).
    """
    bar_left, bar_width, row_height, top = 250, 340, 30, 34
    height = top + row_height * max(1, len(rows)) + 34
    described = f' aria-describedby="{html.escape(table_id)}"' if table_id else ""
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" '
        f'viewBox="0 0 820 {height}" width="820" height="{height}"{described}>',
        f"<title>{html.escape(title)}</title>",
        f'<text x="0" y="18" font-size="14" font-weight="bold">{html.escape(title)}</text>',
    ]
    for tick in (0, 25, 50, 75, 100):
        x = bar_left + bar_width * tick / 100
        parts.append(
            f'<line x1="{x:.1f}" y1="{top - 4}" x2="{x:.1f}" y2="{height - 28}" '
            f'stroke="#bbb" stroke-width="1" stroke-dasharray="2,3"/>'
            f'<text x="{x:.1f}" y="{height - 12}" font-size="11" text-anchor="middle">'
            f"{tick}%</text>"
        )
    for index, row in enumerate(rows):
        y = top + index * row_height
        label = html.escape(row.label if len(row.label) <= 38 else row.label[:37] + "…")
        parts.append(
            f'<text x="{bar_left - 8}" y="{y + 18}" font-size="12" text-anchor="end">{label}</text>'
        )
        figure = row.figure
        if figure.percent is None:
            parts.append(
                f'<text x="{bar_left + 4}" y="{y + 18}" font-size="12" font-style="italic">'
                f"not shown (small number)</text>"
            )
            continue
        width = bar_width * figure.percent
        parts.append(
            f'<rect x="{bar_left}" y="{y + 5}" width="{width:.1f}" height="18" fill="#555"/>'
        )
        if figure.low is not None and figure.high is not None:
            x1 = bar_left + bar_width * figure.low
            x2 = bar_left + bar_width * figure.high
            mid = y + 14
            parts.append(
                f'<path d="M{x1:.1f},{mid} H{x2:.1f} M{x1:.1f},{mid - 6} V{mid + 6} '
                f'M{x2:.1f},{mid - 6} V{mid + 6}" stroke="#000" stroke-width="1.5" fill="none"/>'
            )
        count = figure.count.value
        denominator = figure.denominator.value
        parts.append(
            f'<text x="{bar_left + bar_width + 8}" y="{y + 18}" font-size="12">'
            f"{_pct(figure.percent)} ({count:,} of {denominator:,})</text>"
        )
    parts.append("</svg>")
    return "".join(parts)
