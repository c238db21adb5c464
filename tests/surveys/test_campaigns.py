"""Campaign rules (pure): the plan, transitions allowed and refused, London time, due changes,
and the progress figures' suppression."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from storage.campaign_progress import ProgressCounts
from surveys.audience import Audience
from surveys.campaigns import (
    STATES,
    TRANSITIONS,
    CampaignError,
    CampaignPlan,
    LocalTimeError,
    Timing,
    check_code,
    check_edit,
    due_transitions,
    format_london,
    input_london,
    london_day,
    london_to_utc,
    parse_london,
    refusal_reason,
    transition_plan,
    validate_plan,
)
from surveys.progress import build_progress

NOW = datetime(2026, 11, 23, 12, 0)


def plan(**changes: object) -> CampaignPlan:
    base = CampaignPlan(
        code="abw-2026",
        title="Anti-Bullying Week",
        survey_id="bullying",
        survey_version=1,
        opens_at=NOW + timedelta(days=1),
        closes_at=NOW + timedelta(days=8),
    )
    return replace(base, **changes)  # type: ignore[arg-type]


# ---------------------------------------------------------------- transitions


@pytest.mark.parametrize("pair", sorted(TRANSITIONS))
def test_every_allowed_transition_is_allowed(pair: tuple[str, str]) -> None:
    current, target = pair
    assert refusal_reason(current, target, plan(), NOW) is None


@pytest.mark.parametrize(
    "pair",
    [(a, b) for a in STATES for b in STATES if (a, b) not in TRANSITIONS],
)
def test_every_other_pair_is_refused_with_a_reason(pair: tuple[str, str]) -> None:
    current, target = pair
    reason = refusal_reason(current, target, plan(), NOW)
    assert reason, f"{current} -> {target} has no reason"
    with pytest.raises(CampaignError, match="cannot"):
        transition_plan(current, target, plan(), NOW)


def test_refusals_say_what_to_do_instead() -> None:
    assert "close" in (refusal_reason("open", "archived", plan(), NOW) or "")
    assert "new campaign" in (refusal_reason("closed", "open", plan(), NOW) or "")
    assert "already open" in (refusal_reason("open", "open", plan(), NOW) or "")


def test_scheduling_needs_a_future_opening_time() -> None:
    past = plan(opens_at=NOW - timedelta(hours=1))
    assert "opening time has passed" in (refusal_reason("draft", "scheduled", past, NOW) or "")
    assert refusal_reason("draft", "open", past, NOW) is None


def test_opening_after_the_closing_time_is_refused() -> None:
    over = plan(opens_at=NOW - timedelta(days=2), closes_at=NOW - timedelta(days=1))
    with pytest.raises(CampaignError, match="closing time has passed"):
        transition_plan("draft", "open", over, NOW)


def test_opening_early_moves_the_opening_time_to_now() -> None:
    opened = transition_plan("scheduled", "open", plan(), NOW)
    assert opened.opens_at == NOW
    assert opened.closes_at == plan().closes_at


def test_closing_early_moves_the_closing_time_to_now() -> None:
    running = plan(opens_at=NOW - timedelta(days=1))
    assert transition_plan("open", "closed", running, NOW).closes_at == NOW
    no_end = plan(opens_at=NOW - timedelta(days=1), closes_at=None)
    assert transition_plan("open", "closed", no_end, NOW).closes_at == NOW


def test_due_transitions_open_and_close_on_time() -> None:
    hour = timedelta(hours=1)
    campaigns = [
        Timing("not-yet", "scheduled", NOW + hour, None),
        Timing("due", "scheduled", NOW - hour, NOW + hour),
        Timing("missed", "scheduled", NOW - 3 * hour, NOW - hour),
        Timing("running", "open", NOW - hour, NOW + hour),
        Timing("ending", "open", NOW - 2 * hour, NOW),
        Timing("forever", "open", NOW - hour, None),
        Timing("draft", "draft", NOW - hour, NOW - 0.5 * hour),
        Timing("done", "closed", NOW - 3 * hour, NOW - hour),
    ]
    due = {(d.code, d.current, d.target) for d in due_transitions(campaigns, NOW)}
    assert due == {
        ("due", "scheduled", "open"),
        ("missed", "scheduled", "closed"),
        ("ending", "open", "closed"),
    }


# ---------------------------------------------------------------- London time


def test_london_winter_is_utc_and_summer_is_an_hour_ahead() -> None:
    assert london_to_utc(datetime(2026, 1, 15, 9, 0)) == datetime(2026, 1, 15, 9, 0)
    assert london_to_utc(datetime(2026, 7, 15, 9, 0)) == datetime(2026, 7, 15, 8, 0)


def test_across_the_spring_change() -> None:
    # 29 March 2026: 01:00 GMT -> 02:00 BST.
    assert london_to_utc(datetime(2026, 3, 29, 0, 59)) == datetime(2026, 3, 29, 0, 59)
    assert london_to_utc(datetime(2026, 3, 29, 2, 0)) == datetime(2026, 3, 29, 1, 0)
    with pytest.raises(LocalTimeError, match="does not exist"):
        london_to_utc(datetime(2026, 3, 29, 1, 30))


def test_across_the_autumn_change() -> None:
    # 25 October 2026: 02:00 BST -> 01:00 GMT; 01:00-01:59 happens twice.
    assert london_to_utc(datetime(2026, 10, 25, 0, 30)) == datetime(2026, 10, 24, 23, 30)
    assert london_to_utc(datetime(2026, 10, 25, 2, 0)) == datetime(2026, 10, 25, 2, 0)
    with pytest.raises(LocalTimeError, match="happens twice"):
        london_to_utc(datetime(2026, 10, 25, 1, 30))


def test_shown_in_london_time_with_the_zone_named() -> None:
    assert format_london(datetime(2026, 7, 15, 8, 0)) == "Wed 15 Jul 2026, 09:00 BST"
    assert format_london(datetime(2026, 11, 16, 9, 0)) == "Mon 16 Nov 2026, 09:00 GMT"
    assert input_london(datetime(2026, 7, 15, 8, 0)) == "2026-07-15 09:00"
    # 23:30 UTC on a summer evening is already the next day in London.
    assert london_day(datetime(2026, 7, 15, 23, 30)) == "2026-07-16"


def test_parse_round_trips_and_explains_the_format() -> None:
    moment = parse_london("2026-07-15 09:00")
    assert moment == datetime(2026, 7, 15, 8, 0)
    assert parse_london(input_london(moment)) == moment
    assert parse_london("2026-07-15T09:00") == moment
    with pytest.raises(CampaignError, match="YYYY-MM-DD HH:MM"):
        parse_london("next tuesday")
    assert london_to_utc(datetime(2026, 7, 15, 9, 0, tzinfo=UTC)) == datetime(2026, 7, 15, 9, 0)


# ---------------------------------------------------------------- the plan


@pytest.mark.parametrize(
    "code, message",
    [
        ("ab", "3 to 40"),
        ("x" * 41, "3 to 40"),
        ("ABW-2026", "lowercase"),
        ("abw 2026", "lowercase"),
        ("abw_2026", "lowercase"),
        ("-abw", "start and end"),
        ("abw-", "start and end"),
        ("bullying-v2", "default campaign"),
        ("new", "reserved"),
    ],
)
def test_join_code_rules(code: str, message: str) -> None:
    with pytest.raises(CampaignError, match=message):
        check_code(code)


def test_good_join_codes() -> None:
    for code in ("abw-2026", "sid-feb", "year7", "a1b"):
        assert check_code(code) == code


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"title": "  "}, "title is required"),
        ({"title": "x" * 201}, "at most 200"),
        ({"closes_at": NOW}, "closing time must be after"),
        ({"reminder_times": (NOW + timedelta(days=2),)}, "reminder text"),
        (
            {"reminder_times": (NOW + timedelta(days=9),), "reminder_text": "go on"},
            "outside the campaign",
        ),
        (
            {
                "reminder_times": tuple(NOW + timedelta(days=2, hours=h) for h in range(6)),
                "reminder_text": "go on",
            },
            "at most 5",
        ),
        ({"send_spread_minutes": -1}, "send spread"),
        ({"target_responses": 0}, "target"),
        ({"invitation_text": "x" * 2001}, "at most 2000"),
        ({"survey_version": 0}, "version"),
    ],
)
def test_bad_plans_are_refused_with_a_clear_message(
    changes: dict[str, object], message: str
) -> None:
    with pytest.raises(CampaignError, match=message):
        validate_plan(plan(**changes))


def test_a_good_plan_is_cleaned() -> None:
    later, earlier = NOW + timedelta(days=3), NOW + timedelta(days=2)
    cleaned = validate_plan(
        plan(
            title="  Anti-Bullying Week ",
            invitation_text="  ",
            reminder_text="Still time!",
            reminder_times=(later, earlier, later),
        )
    )
    assert cleaned.title == "Anti-Bullying Week"
    assert cleaned.invitation_text is None
    assert cleaned.reminder_times == (earlier, later)


def test_edits_allowed_by_state() -> None:
    before = plan()
    check_edit("draft", before, replace(before, survey_version=2, title="New"))
    check_edit("scheduled", before, replace(before, opens_at=NOW + timedelta(days=2)))
    check_edit("open", before, replace(before, closes_at=NOW + timedelta(days=20)))
    with pytest.raises(CampaignError, match="survey cannot change under an open campaign"):
        check_edit("open", before, replace(before, survey_version=2))
    with pytest.raises(CampaignError, match="opening time cannot change while"):
        check_edit("open", before, replace(before, opens_at=NOW))
    with pytest.raises(CampaignError, match="audience cannot change while the campaign is closed"):
        check_edit("closed", before, replace(before, audience=Audience.build(years=[7])))
    with pytest.raises(CampaignError, match="archived"):
        check_edit("archived", before, replace(before, title="x"))
    with pytest.raises(CampaignError, match="join code never changes"):
        check_edit("draft", before, replace(before, code="other"))


# ---------------------------------------------------------------- progress figures


def counts(**changes: object) -> ProgressCounts:
    base = ProgressCounts(
        code="abw-2026",
        title="ABW",
        status="open",
        target=40,
        questions=(("school_year", "School year", "school_year"), ("q1", "Bullied?", None)),
        started=30,
        completed=20,
        started_by_hour={datetime(2026, 7, 15, 22): 10, datetime(2026, 7, 15, 23): 20},
        completed_by_hour={datetime(2026, 7, 15, 23): 20},
        stopped_at={"school_year": 8, "q1": 2},
        by_dimension={
            "school_year": {"y7": (14, 9), "y8": (13, 9), "y9": (3, 2)},
        },
        flags=2,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def test_progress_totals_rate_target_and_london_days() -> None:
    shown = build_progress(counts(), threshold=5)
    assert (shown["started"], shown["completed"], shown["flags"]) == (30, 20, 2)
    assert shown["completion_rate"] == 67
    assert shown["target_percent"] == 50
    # 22:00 UTC in July is 23:00 London (the 15th); 23:00 UTC is already the 16th.
    assert [(d["day"], d["started"]) for d in shown["days"]] == [
        ("2026-07-15", 10),
        ("2026-07-16", 20),
    ]
    assert shown["days"][-1]["started_total"] == 30


def test_progress_breakdowns_hide_small_cells_and_one_more() -> None:
    shown = build_progress(counts(), threshold=5)
    (years,) = shown["breakdowns"]
    rows = {row["label"]: (row["started"], row["completed"]) for row in years["rows"]}
    # Year 9 (3 started, 2 completed) is under 5; another cell goes too, or the
    # total minus the rest would give it away.
    assert rows["Year 9"] == (None, None)
    assert sum(value is None for pair in rows.values() for value in pair) >= 4
    dropout = {row["question"]: row["count"] for row in shown["dropout"]}
    assert dropout["Bullied?"] is None and dropout["School year"] is None


def test_progress_with_nothing_yet() -> None:
    empty = counts(
        started=0,
        completed=0,
        started_by_hour={},
        completed_by_hour={},
        stopped_at={},
        by_dimension={},
        flags=0,
    )
    shown = build_progress(empty, threshold=5)
    assert shown["completion_rate"] is None and shown["days"] == [] and shown["dropout"] == []
