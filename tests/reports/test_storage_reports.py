"""SQL aggregation for reports, on SQLite and PostgreSQL: counts equal a count done by hand."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from storage.reports import (
    campaign_codes,
    crosstab_cube,
    load_campaign_counts,
    report_counts,
    trend_history,
)
from storage.repository import Repository, UnknownCampaign
from storage.review import read
from tests.reports.seed import Person, add_campaign, answer_all, shipped

CODE = "bully-2026"
YES = ("answered", "yes")
NO = ("answered", "no")
SKIP = ("skipped", None)
PNTS = ("prefer_not_to_say", None)


def people() -> list[Person]:
    return [
        Person(
            "a",
            {
                "school_year": ("answered", "y7"),
                "gender": ("answered", "girl"),
                "area": ("answered", "north"),
                "bullied_year": YES,
                "bullied_month": YES,
                "bullying_kind": ("answered", ["hurt", "online"]),
                "told_someone": NO,
                "school_deals": ("answered", "quite_well"),
                "safe_at_school": ("answered", 4),
                "anything_else": ("answered", "my name is Sam and I live at 4 Oak Road"),
            },
            flag=("high", ["bullying", "physical_abuse"]),
        ),
        Person(
            "b",
            {
                "school_year": ("answered", "y7"),
                "gender": PNTS,
                "area": SKIP,
                # said yes, answered the follow-up, then changed to no: follow-up removed
                "bullied_year": NO,
                "bullied_month": YES,
                "school_deals": SKIP,
                "safe_at_school": ("answered", 2),
            },
            removed=["bullied_month"],
        ),
        Person(
            "c",
            {
                "school_year": ("answered", "y10"),
                "gender": ("answered", "boy"),
                "bullied_year": PNTS,
                "school_deals": ("answered", "quite_well"),
            },
            completed=False,
            flag=("urgent", ["bullying"]),
        ),
        Person(
            "d",
            {
                "school_year": SKIP,
                "bullied_year": YES,
                "bullied_month": NO,
                "bullying_kind": ("answered", ["online"]),
                "told_someone": YES,
                "school_deals": ("answered", "very_well"),
                "safe_at_school": ("answered", 5),
            },
        ),
    ]


def seeded(repository: Repository) -> None:
    survey = shipped()
    add_campaign(repository, CODE, survey)
    add_campaign(repository, "other-survey", shipped("online_safety"))
    answer_all(repository, CODE, people())
    # answers to another campaign never count here
    answer_all(
        repository,
        "other-survey",
        [Person("a", {"school_year": ("answered", "y7")}), Person("z", {})],
    )


def expected_cube(everyone: list[Person]) -> tuple[dict, dict, dict]:
    respondents: dict = {}
    answers: dict = {}
    choices: dict = {}
    for person in everyone:

        def value_of(question: str, person: Person = person) -> str | None:
            status, value = person.answers.get(question, (None, None))
            return value if status == "answered" and isinstance(value, str) else None

        group = (value_of("school_year"), value_of("gender"), value_of("area"))
        respondents[group] = respondents.get(group, 0) + 1
        for question, (status, value) in person.answers.items():
            if question in person.removed:
                continue
            answers[(question, status, group)] = answers.get((question, status, group), 0) + 1
            if status != "answered" or question == "anything_else":
                continue
            picked = value if isinstance(value, list) else [str(value)]
            for item in picked:
                choices[(question, item, group)] = choices.get((question, item, group), 0) + 1
    return respondents, answers, choices


def test_campaign_counts_match_a_count_by_hand(repository: Repository) -> None:
    seeded(repository)
    counts = load_campaign_counts(repository, CODE)
    assert counts.campaign.code == CODE
    assert counts.survey.id == "bullying"
    assert counts.responses == {"completed": 3, "in_progress": 1}
    assert counts.cube.dimensions == ("school_year", "gender", "area")
    respondents, answers, choices = expected_cube(people())
    assert counts.cube.respondents == respondents
    assert counts.cube.answers == answers
    assert counts.cube.choices == choices
    # the removed follow-up is not counted as asked: only a and d were shown it
    month = {k: v for k, v in counts.cube.answers.items() if k[0] == "bullied_month"}
    assert sum(month.values()) == 2
    # free text is counted as answered, but no value of it is anywhere in the counts
    assert ("anything_else", "answered", ("y7", "girl", "north")) in counts.cube.answers
    assert not any("Sam" in str(key) for key in counts.cube.choices)
    assert counts.flags.by_severity == {"high": 1, "urgent": 1}
    assert counts.flags.by_status == {"open": 2}
    assert counts.flags.by_categories == {("bullying", "physical_abuse"): 1, ("bullying",): 1}
    assert sum(t.count for t in counts.flags.timings) == 2
    assert all(t.acknowledged_at is None for t in counts.flags.timings)


def test_marginal_of_the_cube_equals_an_ungrouped_count(repository: Repository) -> None:
    seeded(repository)
    counts = load_campaign_counts(repository, CODE)
    plain = read(repository, lambda c: trend_history(c, CODE))[-1][2]
    assert counts.cube.marginal(()) == plain


def test_the_report_reuses_its_own_counts_for_the_current_trend_point(
    repository: Repository,
) -> None:
    seeded(repository)
    counts, history = read(repository, lambda c: report_counts(c, CODE))
    recounted = read(repository, lambda c: trend_history(c, CODE))
    assert [(info, survey) for info, survey, _ in history] == [
        (info, survey) for info, survey, _ in recounted
    ]
    assert history[-1][2] == recounted[-1][2] == counts.cube.marginal(())
    assert history[-1][2].respondents  # not an empty cube on both sides


def test_crosstab_cube_groups_by_one_question(repository: Repository) -> None:
    seeded(repository)
    by = read(repository, lambda c: crosstab_cube(c, CODE, "bullied_year"))
    assert by.dimensions == ("bullied_year",)
    assert by.respondents == {("yes",): 2, ("no",): 1, (None,): 1}
    assert by.choices[("school_deals", "quite_well", ("yes",))] == 1
    assert by.choices[("school_deals", "quite_well", (None,))] == 1


def test_trends_take_earlier_campaigns_of_the_same_survey(repository: Repository) -> None:
    survey = shipped()
    now = datetime(2026, 11, 1)
    add_campaign(repository, "bully-2024", survey, now - timedelta(days=730))
    add_campaign(repository, "bully-2025", survey, now - timedelta(days=365))
    add_campaign(repository, CODE, survey, now)
    add_campaign(repository, "bully-2027", survey, now + timedelta(days=365))
    add_campaign(repository, "online", shipped("online_safety"), now - timedelta(days=1))
    answer_all(repository, "bully-2025", [Person("x", {"bullied_year": YES})])
    history = read(repository, lambda c: trend_history(c, CODE))
    assert [campaign.code for campaign, _, _ in history] == ["bully-2024", "bully-2025", CODE]
    assert history[1][2].choices == {("bullied_year", "yes", ()): 1}
    assert next(c.code for c in campaign_codes(repository)) == "bully-2027"


def test_unknown_campaign(repository: Repository) -> None:
    with pytest.raises(UnknownCampaign):
        load_campaign_counts(repository, "nope")


def test_number_answers_are_counted_by_value_for_the_median(repository: Repository) -> None:
    add_campaign(repository, "online", shipped("online_safety"))
    hours = [2, 2, 3.5, None]
    answer_all(
        repository,
        "online",
        [
            Person(f"p{i}", {"hours_online": ("answered", h) if h is not None else SKIP})
            for i, h in enumerate(hours)
        ],
    )
    counts = load_campaign_counts(repository, "online")
    assert counts.numbers == {"hours_online": {2.0: 2, 3.5: 1}}
    answered = {k[1]: v for k, v in counts.cube.answers.items() if k[0] == "hours_online"}
    assert answered == {"answered": 3, "skipped": 1}
    assert not any(key[0] == "hours_online" for key in counts.cube.choices)
