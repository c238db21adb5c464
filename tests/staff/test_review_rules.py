"""The review queue's pure rules: deadlines, ordering, action checks, highlighting."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from markupsafe import escape

from web.staff.alerts import alert_text
from web.staff.review_rules import (
    ActionRefused,
    Deadlines,
    FlagState,
    Segment,
    add_working_days,
    check_action,
    clean_input,
    deadline_for,
    describe_span,
    highlight_segments,
    queue_key,
)

MONDAY = datetime(2026, 11, 23, 10, 0)  # a Monday
DEADLINES = Deadlines(timedelta(minutes=15), timedelta(hours=4), 2)


def state(status: str = "open", **changes: object) -> FlagState:
    values: dict = {
        "status": status,
        "contact_consent": True,
        "has_handle": True,
        "acknowledged": False,
        "claimed_by": None,
    }
    values.update(changes)
    return FlagState(**values)


@pytest.mark.parametrize(
    ("severity", "expected"),
    [
        ("urgent", MONDAY + timedelta(minutes=15)),
        ("high", MONDAY + timedelta(hours=4)),
        ("medium", MONDAY + timedelta(days=2)),
    ],
)
def test_deadlines_by_severity(severity: str, expected: datetime) -> None:
    assert deadline_for(severity, MONDAY, DEADLINES) == expected


def test_deadlines_are_configurable() -> None:
    custom = Deadlines(timedelta(minutes=5), timedelta(hours=1), 1)
    assert deadline_for("urgent", MONDAY, custom) == MONDAY + timedelta(minutes=5)
    assert deadline_for("medium", MONDAY, custom) == MONDAY + timedelta(days=1)


@pytest.mark.parametrize(
    ("raised", "expected"),
    [
        (datetime(2026, 11, 26, 9, 30), datetime(2026, 11, 30, 9, 30)),  # Thu -> Mon
        (datetime(2026, 11, 27, 17, 0), datetime(2026, 12, 1, 17, 0)),  # Fri -> Tue
        (datetime(2026, 11, 28, 14, 0), datetime(2026, 12, 2, 0, 0)),  # Sat -> Wed 00:00
        (datetime(2026, 11, 29, 23, 0), datetime(2026, 12, 2, 0, 0)),  # Sun -> Wed 00:00
    ],
)
def test_working_days_skip_the_weekend(raised: datetime, expected: datetime) -> None:
    assert add_working_days(raised, 2) == expected


def test_queue_orders_by_severity_then_age() -> None:
    flags = [
        (1, "medium", MONDAY),
        (2, "urgent", MONDAY + timedelta(minutes=5)),
        (3, "high", MONDAY - timedelta(hours=1)),
        (4, "urgent", MONDAY),
        (5, "high", MONDAY - timedelta(hours=2)),
    ]
    ordered = sorted(flags, key=lambda f: queue_key(f[1], f[2], f[0]))
    assert [f[0] for f in ordered] == [4, 2, 5, 3, 1]


@pytest.mark.parametrize(
    ("span", "words"),
    [
        (timedelta(seconds=5), "5 s"),
        (timedelta(minutes=12), "12 min"),
        (timedelta(hours=3, minutes=5), "3 h 5 min"),
        (timedelta(hours=2), "2 h"),
        (timedelta(days=2, hours=4), "2 d 4 h"),
    ],
)
def test_durations_for_people(span: timedelta, words: str) -> None:
    assert describe_span(span) == words


# ---------------------------------------------------------------- actions


def test_acknowledge_moves_an_open_flag_on_once() -> None:
    assert check_action("acknowledge", state()) == "acknowledged"
    with pytest.raises(ActionRefused):
        check_action("acknowledge", state("acknowledged", acknowledged=True))


def test_reply_needs_consent_and_a_handle() -> None:
    assert check_action("reply", state()) == "acknowledged"
    assert check_action("reply", state("referred", acknowledged=True)) is None
    for refused in (
        state(contact_consent=False),
        state(contact_consent=None),
        state(has_handle=False),
    ):
        with pytest.raises(ActionRefused) as error:
            check_action("reply", refused)
        assert error.value.status == 403


@pytest.mark.parametrize(
    ("action", "status"),
    [("referral", "referred"), ("not_a_concern", "not_a_concern"), ("close", "closed")],
)
def test_outcomes(action: str, status: str) -> None:
    assert check_action(action, state()) == status


@pytest.mark.parametrize("closed", ["closed", "not_a_concern"])
def test_a_closed_flag_takes_only_notes_and_reopening(closed: str) -> None:
    for action in ("claim", "acknowledge", "reply", "referral", "not_a_concern", "close"):
        with pytest.raises(ActionRefused):
            check_action(action, state(closed))
    assert check_action("note", state(closed)) is None
    assert check_action("reopen", state(closed)) == "open"
    assert check_action("reopen", state(closed, acknowledged=True)) == "acknowledged"


def test_only_a_closed_flag_reopens() -> None:
    with pytest.raises(ActionRefused):
        check_action("reopen", state())


def test_form_text_is_required_and_bounded() -> None:
    assert clean_input("  a reason \r\n", "a reason") == "a reason"
    with pytest.raises(ActionRefused):
        clean_input("   ", "a reason")
    with pytest.raises(ActionRefused):
        clean_input(None, "a reason")
    with pytest.raises(ActionRefused):
        clean_input("x" * 201, "the reference", limit=200)
    assert clean_input("", "a reason", required=False) == ""


# ---------------------------------------------------------------- highlighting


def test_evidence_spans_become_segments() -> None:
    text = "my dad hits me every day"
    evidence = [{"category": "physical_abuse", "start": 7, "end": 11, "matched": "hits"}]
    assert highlight_segments(text, evidence) == [
        Segment("my dad "),
        Segment("hits", "physical_abuse"),
        Segment(" me every day"),
    ]


def test_overlapping_out_of_range_and_bad_spans() -> None:
    text = "abcdefghij"
    evidence = [
        {"category": "a", "start": 2, "end": 5},
        {"category": "b", "start": 4, "end": 7},  # overlaps: merged
        {"category": "c", "start": 8, "end": 99},  # clipped
        {"category": "d", "start": "x", "end": 3},  # ignored
        {"category": "e", "start": 6, "end": 2},  # empty: ignored
    ]
    segments = highlight_segments(text, evidence)
    assert "".join(s.text for s in segments) == text
    assert [(s.text, s.category) for s in segments if s.category] == [("cdefg", "a"), ("ij", "c")]


def test_segments_keep_markup_as_text() -> None:
    text = "<script>alert(1)</script> he hits me"
    start = text.index("hits")
    segments = highlight_segments(text, [{"category": "x", "start": start, "end": start + 4}])
    html = "".join(str(escape(s.text)) for s in segments)
    assert "<script>" not in html and "&lt;script&gt;" in html


def test_an_empty_message_is_one_empty_segment() -> None:
    assert highlight_segments("", []) == [Segment("")]


# ---------------------------------------------------------------- alerts


def test_alert_text_carries_no_content() -> None:
    text = alert_text("new_flag", 7, "urgent", ["suicide_self_harm"], "https://x/staff/flags/7")
    assert "URGENT" in text and "#7" in text and "Suicide self harm" in text
    assert text.endswith("https://x/staff/flags/7")
    escalation = alert_text("escalation", 7, "high", [], "https://x/staff/flags/7")
    assert "deadline" in escalation and "HIGH" in escalation
