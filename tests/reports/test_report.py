"""The report model: figures, suppression across nested breakdowns, flags, trends, charts."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from config.settings import SettingsError, load_settings
from surveys.report import (
    KEY_STAGE,
    ReportOptions,
    bar_chart_svg,
    build_report,
    build_trends,
    crosstab,
)
from surveys.report_data import CampaignCounts, CampaignInfo, Cube, FlagCounts, FlagTiming
from surveys.stats import Line, Shown
from tests.reports.seed import shipped
from tests.reports.test_suppression import recovered

SURVEY = shipped()
WHEN = datetime(2026, 11, 2, 9, 0)
YEARS: tuple[str | None, ...] = ("y7", "y8", "y9", "y10", None)
STAGE = {"y7": "KS3", "y8": "KS3", "y9": "KS3", "y10": "KS4", None: None}


def info(code: str = "bully-2026", opens_at: datetime = WHEN) -> CampaignInfo:
    return CampaignInfo(1, code, "Anti-Bullying Week", "bullying", 1, "closed", opens_at, None)


def cube_of(groups: dict[str | None, tuple[int, int, int, int]]) -> Cube:
    """year -> (yes, no, skipped, not asked) for bullied_year; everyone else answers nothing."""
    cube = Cube(("school_year", "gender", "area"))
    for year, (yes, no, skipped, not_asked) in groups.items():
        key = (year, None, None)
        size = yes + no + skipped + not_asked
        if size == 0:
            continue
        cube.respondents[key] = size
        if year is not None:
            cube.answers[("school_year", "answered", key)] = size
            cube.choices[("school_year", year, key)] = size
        for status, count in (("answered", yes + no), ("skipped", skipped)):
            if count:
                cube.answers[("bullied_year", status, key)] = count
        for value, count in (("yes", yes), ("no", no)):
            if count:
                cube.choices[("bullied_year", value, key)] = count
    return cube


def counts_of(cube: Cube, flags: FlagCounts | None = None) -> CampaignCounts:
    return CampaignCounts(
        campaign=info(),
        survey=SURVEY,
        responses={"completed": 40, "partial": 3, "in_progress": 7},
        cube=cube,
        numbers={},
        flags=flags or FlagCounts(),
    )


def question(report: Any, question_id: str) -> Any:
    return next(q for q in report.questions if q.id == question_id)


def test_figures_percentages_and_a_small_group_not_offered() -> None:
    groups = {"y7": (30, 70, 5, 0), "y8": (20, 30, 0, 0), "y10": (1, 2, 0, 0), None: (9, 1, 0, 0)}
    report = build_report(counts_of(cube_of(groups)), ReportOptions())
    bullied = question(report, "bullied_year")
    assert bullied.asked == Shown(168)
    assert bullied.answered == Shown(163)
    assert bullied.statuses["skipped"] == Shown(5)
    assert bullied.statuses["prefer_not_to_say"] == Shown(0)
    yes = bullied.choices[0]
    assert (yes.value, yes.figure.count, yes.figure.percent) == ("yes", Shown(60), 60 / 163)
    assert yes.figure.low is not None and yes.figure.low < 60 / 163 < (yes.figure.high or 0)
    assert bullied.headline == (
        "37% of young people who answered said yes to “Bullied at or near school in the last "
        "12 months” (95% CI 30% to 44%; 60 of 163)."
    )
    by_year = next(b for b in bullied.breakdowns if b.dimension == "school_year")
    offered = {group.key for group in by_year.offered}
    assert offered == {"y7", "y8", None}  # year 10 has 3 respondents: not offered
    y10 = next(group for group in by_year.groups if group.key == "y10")
    assert y10.answered.suppressed and all(c.figure.percent is None for c in y10.cells)
    # Key stage 4 is year 10 alone: not offered either
    by_stage = next(b for b in bullied.breakdowns if b.dimension == KEY_STAGE)
    assert {g.key for g in by_stage.offered} == {"KS3", None}
    # "not given": 9 yes, 1 no -> the 1 is suppressed and so is a second cell in its lines
    not_given = next(group for group in by_year.groups if group.key is None)
    assert not_given.cells[1].figure.count.suppressed
    assert not_given.cells[0].figure.count.suppressed or not_given.answered.suppressed
    assert report.respondents == Shown(50)
    assert [row.count for row in report.responses] == [Shown(40), Shown(None), Shown(None)]
    assert report.headlines and all("Sam" not in line for line in report.headlines)


def test_rounding_rounds_every_shown_count_and_derives_percentages_from_them() -> None:
    groups = {"y7": (31, 72, 6, 0), "y8": (22, 33, 0, 0), None: (12, 9, 0, 0)}
    report = build_report(counts_of(cube_of(groups)), ReportOptions(rounding=True))
    bullied = question(report, "bullied_year")
    yes = bullied.choices[0].figure
    assert yes.count == Shown(65, rounded=True)
    assert bullied.answered == Shown(180, rounded=True)
    assert yes.percent == 65 / 180
    assert "about 65 of 180" in (bullied.headline or "")


def test_threshold_below_three_is_refused() -> None:
    with pytest.raises(ValueError):
        ReportOptions(threshold=2)
    with pytest.raises(SettingsError, match="BESAFE_REPORT_SUPPRESSION_THRESHOLD"):
        load_settings(report_suppression_threshold=2)
    assert load_settings(report_suppression_threshold=3).report_suppression_threshold == 3


group_counts = st.tuples(
    st.integers(0, 12), st.integers(0, 12), st.integers(0, 3), st.integers(0, 2)
)


@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    phases=[Phase.explicit, Phase.reuse, Phase.generate],  # shrinking takes minutes here
)
@given(st.fixed_dictionaries({year: group_counts for year in YEARS}), st.sampled_from([3, 5]))
def test_no_hidden_count_can_be_recovered_across_years_and_key_stages(
    groups: dict[str | None, tuple[int, int, int, int]], threshold: int
) -> None:
    report = build_report(counts_of(cube_of(groups)), ReportOptions(threshold=threshold))
    bullied = question(report, "bullied_year")
    shown: dict[Any, Shown] = {
        "asked": bullied.asked,
        "answered": bullied.answered,
        "skipped": bullied.statuses["skipped"],
        "pnts": bullied.statuses["prefer_not_to_say"],
        "yes": bullied.choices[0].figure.count,
        "no": bullied.choices[1].figure.count,
    }
    lines: list[Line[Any]] = [
        Line("asked", ("answered", "skipped", "pnts")),
        Line("answered", ("yes", "no")),
    ]
    limits: dict[Any, int] = {}
    sizes = {c.value: c.figure.count for c in question(report, "school_year").choices}
    for breakdown in bullied.breakdowns:
        if breakdown.dimension not in ("school_year", KEY_STAGE):
            continue
        for group in breakdown.groups:
            name = (breakdown.dimension, group.key)
            shown[(*name, "t")] = group.answered
            shown[(*name, "yes")] = group.cells[0].figure.count
            shown[(*name, "no")] = group.cells[1].figure.count
            lines.append(Line((*name, "t"), ((*name, "yes"), (*name, "no"))))
            size = sizes.get(group.key) if group.key else None
            members = [y for y, stage in STAGE.items() if stage == group.key and y]
            known_empty = (size is not None and size.value == 0) or (
                breakdown.dimension == KEY_STAGE
                and group.key
                and not any(sum(groups[y][:4]) for y in members)
            )
            if known_empty:  # the year table shows these groups have nobody in them
                for part in ("t", "yes", "no"):
                    shown[(*name, part)] = Shown(0)
            if size is not None and size.value is not None:
                for part in ("t", "yes", "no"):
                    limits[(*name, part)] = size.value
        for part, total in (("t", "answered"), ("yes", "yes"), ("no", "no")):
            keys = [g.key for g in breakdown.groups]
            lines.append(Line(total, tuple((breakdown.dimension, k, part) for k in keys)))
    for stage in ("KS3", "KS4"):
        years = [year for year in YEARS if STAGE[year] == stage]
        for part in ("t", "yes", "no"):
            lines.append(
                Line(
                    (KEY_STAGE, stage, part),
                    tuple(("school_year", year, part) for year in years),
                )
            )
    for part in ("t", "yes", "no"):  # "not given" is the same row in both
        lines.append(Line((KEY_STAGE, None, part), (("school_year", None, part),)))
    # other school years have no respondents: the attacker knows their cells are 0
    for line in list(lines):
        for member in line.members:
            shown.setdefault(member, Shown(0))
    # From the table's own totals, rows and columns, no hidden count at all can be pinned;
    # with the year table's group sizes as upper limits too, the attacker may pin a
    # group's total at its size (everyone in that year answered: a count the year table
    # already shows), but never a small count (asserted below).
    found = recovered(shown, lines, 0)
    found_with_limits = recovered(shown, lines, 0, limits)

    def people_in(dimension: str, key: str | None) -> int:
        if dimension == KEY_STAGE and key is not None:
            return sum(sum(groups[y]) for y, stage in STAGE.items() if stage == key and y)
        return sum(groups[key]) if key in groups else 0

    def true_value(cell: Any) -> int | None:
        if not isinstance(cell, tuple):
            return None
        dimension, key, part = cell
        years = [y for y, stage in STAGE.items() if stage == key and y]
        years = years if dimension == KEY_STAGE and key is not None else [key]
        index = {"yes": [0], "no": [1], "t": [0, 1]}[part]
        return sum(groups[y][i] for y in years if y in groups for i in index)

    # working out that a group with nobody in it has zeros gives nobody away, and zeros
    # are published anyway
    assert {
        cell: value
        for cell, value in found.items()
        if isinstance(cell, tuple) and people_in(cell[0], cell[1]) and true_value(cell)
    } == {}
    assert {
        cell: value
        for cell, value in found_with_limits.items()
        if isinstance(cell, tuple) and 0 < (true_value(cell) or 0) < threshold
    } == {}
    # and every small count is hidden
    for year, (yes, no, _, _) in groups.items():
        group = shown[("school_year", year, "yes")], shown[("school_year", year, "no")]
        for true, figure in zip((yes, no), group, strict=True):
            if 0 < true < threshold:
                assert figure.value is None


def test_multiple_choice_is_a_share_of_respondents_and_free_text_is_counts_only() -> None:
    cube = Cube(("school_year", "gender", "area"))
    key = (None, None, None)
    cube.respondents[key] = 40
    cube.answers[("bullying_kind", "answered", key)] = 40
    cube.choices[("bullying_kind", "hurt", key)] = 30
    cube.choices[("bullying_kind", "online", key)] = 20
    cube.answers[("anything_else", "answered", key)] = 12
    report = build_report(counts_of(cube), ReportOptions())
    kind = question(report, "bullying_kind")
    assert kind.of_respondents
    shares = {c.value: c.figure.percent for c in kind.choices}
    assert shares["hurt"] == 0.75 and shares["online"] == 0.5  # adds up to more than 100%
    free = question(report, "anything_else")
    assert free.answered == Shown(12) and free.choices == () and free.headline is None


def test_rating_median() -> None:
    cube = Cube(("school_year", "gender", "area"))
    key = (None, None, None)
    cube.respondents[key] = 30
    cube.answers[("safe_at_school", "answered", key)] = 30
    for point, count in ((1, 5), (2, 5), (4, 10), (5, 10)):
        cube.choices[("safe_at_school", str(point), key)] = count
    safe = question(build_report(counts_of(cube), ReportOptions()), "safe_at_school")
    assert safe.median == 4 and safe.scale == (1.0, 5.0)
    assert safe.headline is not None and "was 4 on a scale of 1 to 5 (30 answered)" in safe.headline


def test_flags_are_counted_and_timed_against_deadlines_with_suppression() -> None:
    hour = timedelta(hours=1)
    timings = (
        FlagTiming("urgent", WHEN, WHEN + timedelta(minutes=5), 6),
        FlagTiming("urgent", WHEN, WHEN + hour, 2),
        FlagTiming("high", WHEN, WHEN + hour, 10),
        FlagTiming("medium", WHEN, None, 7),
    )
    flags = FlagCounts(
        by_severity={"urgent": 8, "high": 10, "medium": 7},
        by_status={"closed": 18, "open": 7},
        by_categories={("bullying",): 20, ("bullying", "physical_abuse"): 5},
        timings=timings,
    )
    deadlines = {"urgent": timedelta(minutes=15), "high": 4 * hour, "medium": 48 * hour}
    options = ReportOptions(
        deadline=lambda severity, created: created + deadlines[severity], now=WHEN + 2 * hour
    )
    report = build_report(counts_of(Cube(("school_year", "gender", "area")), flags), options)
    figures = report.flags
    assert figures.total == Shown(25)
    assert {row.key: row.count for row in figures.by_category} == {
        "bullying": Shown(25),
        "physical_abuse": Shown(5),
    }
    timing = {severity: {row.key: row.count for row in rows} for severity, rows in figures.timing}
    assert timing["urgent"]["late"] == Shown(None)  # 2 late: suppressed
    assert timing["urgent"]["in_time"] == Shown(None)  # else 8 - 6 gives it away
    shown: dict[Any, Shown] = {("severity", r.key): r.count for r in figures.by_severity}
    shown["total"] = figures.total
    lines: list[Line[Any]] = [
        Line("total", tuple(("severity", r.key) for r in figures.by_severity))
    ]
    for severity, rows in figures.timing:
        shown.update({(severity, row.key): row.count for row in rows})
        lines.append(Line(("severity", severity), tuple((severity, row.key) for row in rows)))
    for column in ("in_time", "late", "overdue", "not_yet_due"):
        shown[column] = Shown(None)  # column totals are not shown, but they are sums
        lines.append(Line(column, tuple((s, column) for s, _ in figures.timing)))
    lines.append(Line("total", ("in_time", "late", "overdue", "not_yet_due")))
    found = recovered(shown, lines, 0)
    assert {cell: n for cell, n in found.items() if isinstance(cell, tuple)} == {}


def test_trends_say_the_change_and_whether_it_is_significant() -> None:
    before = Cube(())
    before.answers[("bullied_year", "answered", ())] = 1000
    before.choices[("bullied_year", "yes", ())] = 280
    before.choices[("bullied_year", "no", ())] = 720
    after = Cube(())
    after.answers[("bullied_year", "answered", ())] = 1000
    after.choices[("bullied_year", "yes", ())] = 210
    after.choices[("bullied_year", "no", ())] = 790
    history = [
        (info("bully-2025", WHEN - timedelta(days=365)), SURVEY, before),
        (info(), SURVEY, after),
    ]
    trends = build_trends(SURVEY, history, ReportOptions())
    yes = next(t for t in trends if t.question_id == "bullied_year" and t.choice == "yes")
    assert [p.code for p in yes.points] == ["bully-2025", "bully-2026"]
    assert yes.change == (
        "Bullied at or near school in the last 12 months: Yes: down from 28% to 21% "
        "(a statistically significant change, p = 0.000)."
    )
    assert build_trends(SURVEY, history[:1], ReportOptions()) == ()


def test_crosstab_by_a_single_choice_question() -> None:
    by = Cube(("bullied_year",))
    for answer, deals in (("yes", 12), ("no", 30)):
        by.respondents[(answer,)] = deals
        by.answers[("school_deals", "answered", (answer,))] = deals
        by.choices[("school_deals", "very_well", (answer,))] = deals - 6
        by.choices[("school_deals", "not_at_all_well", (answer,))] = 6
    counts = counts_of(cube_of({"y7": (12, 30, 0, 0)}))
    table = crosstab(counts, by, "school_deals", ReportOptions())
    assert table is not None and table.dimension == "bullied_year"
    yes = next(g for g in table.groups if g.key == "yes")
    assert yes.answered == Shown(12) and yes.cells[0].figure.count == Shown(6)
    assert crosstab(counts, by, "anything_else", ReportOptions()) is None


def test_chart_is_escaped_accessible_and_marks_small_numbers() -> None:
    groups = {"y7": (30, 2, 0, 0), None: (10, 10, 0, 0)}
    report = build_report(counts_of(cube_of(groups)), ReportOptions())
    bullied = question(report, "bullied_year")
    svg = bar_chart_svg("<b>Bullied</b> & more", bullied.choices, table_id="t1")
    assert svg.startswith("<svg") and 'role="img"' in svg and 'aria-describedby="t1"' in svg
    assert "&lt;b&gt;Bullied&lt;/b&gt; &amp; more" in svg and "<b>" not in svg
    assert "not shown (small number)" not in svg  # overall figures are large
    tiny = next(b for b in bullied.breakdowns if b.dimension == "school_year")
    y7 = next(g for g in tiny.groups if g.key == "y7")
    assert "not shown (small number)" in bar_chart_svg("Year 7", y7.cells)


def number_counts(numbers: dict[float, int]) -> CampaignCounts:
    survey = shipped("online_safety")
    cube = Cube(tuple(q.id for q in survey.questions if q.dimension is not None))
    key = (None,) * len(cube.dimensions)
    answered = sum(numbers.values())
    cube.respondents[key] = answered
    cube.answers[("hours_online", "answered", key)] = answered
    return CampaignCounts(
        campaign=info(),
        survey=survey,
        responses={"completed": answered},
        cube=cube,
        numbers={"hours_online": numbers},
        flags=FlagCounts(),
    )


def test_number_median_only_over_enough_answers() -> None:
    # 12 answers: 1 x3, 2 x5, 6 x4 -> the 6th and 7th are both 2
    hours = question(
        build_report(number_counts({1: 3, 2: 5, 6: 4}), ReportOptions()), "hours_online"
    )
    assert hours.answered == Shown(12) and hours.median == 2 and hours.scale is None
    # 9 answers are shown (9 >= 5) but a median of so few is one person's answer: none
    few = question(build_report(number_counts({1: 3, 2: 2, 6: 4}), ReportOptions()), "hours_online")
    assert few.answered == Shown(9) and few.median is None
