"""Pure rules of broadcasting: quiet hours (midnight, clock changes), spreading, reminders,
deep links, and what counts as STOP or /subscribe."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta

import pytest

from bot.subscriptions import NEWS_PROMPT, request_of
from surveys.broadcasting import (
    QuietHours,
    QuietHoursError,
    deep_link,
    due_reminder,
    message_text,
    reminder_times,
    spread,
)
from surveys.events import ChoiceIn, CommandIn, TextIn

LONDON = QuietHours.parse("21:00-08:00", "Europe/London")


@pytest.mark.parametrize(
    ("utc", "quiet"),
    [
        # Winter (GMT = UTC)
        (datetime(2026, 1, 14, 20, 59), False),
        (datetime(2026, 1, 14, 21, 0), True),
        (datetime(2026, 1, 14, 23, 59), True),
        (datetime(2026, 1, 15, 0, 0), True),  # across midnight
        (datetime(2026, 1, 15, 7, 59), True),
        (datetime(2026, 1, 15, 8, 0), False),
        # Summer (BST = UTC+1): 21:00 London is 20:00 UTC
        (datetime(2026, 7, 1, 19, 59), False),
        (datetime(2026, 7, 1, 20, 0), True),
        (datetime(2026, 7, 2, 6, 59), True),
        (datetime(2026, 7, 2, 7, 0), False),
        # The clocks go forward at 01:00 UTC on Sunday 29 March 2026: 07:30 UTC is 07:30
        # on Saturday (quiet) but 08:30 on Sunday (not).
        (datetime(2026, 3, 28, 7, 30), True),
        (datetime(2026, 3, 29, 7, 30), False),
        # and back at 01:00 UTC on Sunday 25 October 2026: 07:30 UTC is 08:30 on Saturday
        # (not quiet) and 07:30 on Sunday (quiet).
        (datetime(2026, 10, 24, 7, 30), False),
        (datetime(2026, 10, 25, 7, 30), True),
    ],
)
def test_quiet_hours_in_london_time(utc: datetime, quiet: bool) -> None:
    assert LONDON.is_quiet(utc) is quiet


def test_sends_due_in_quiet_hours_wait_until_they_end() -> None:
    # Across midnight in winter: 23:30 waits until 08:00 the next morning.
    assert LONDON.next_allowed(datetime(2026, 1, 14, 23, 30)) == datetime(2026, 1, 15, 8, 0)
    # Summer: 08:00 London is 07:00 UTC.
    assert LONDON.next_allowed(datetime(2026, 7, 1, 22, 0)) == datetime(2026, 7, 2, 7, 0)
    # The night the clocks go forward: 08:00 on Sunday is already 07:00 UTC.
    assert LONDON.next_allowed(datetime(2026, 3, 28, 23, 0)) == datetime(2026, 3, 29, 7, 0)
    # ... and back: 08:00 on Sunday 25 October is 08:00 UTC again.
    assert LONDON.next_allowed(datetime(2026, 10, 24, 22, 0)) == datetime(2026, 10, 25, 8, 0)
    allowed = datetime(2026, 1, 14, 12, 0)
    assert LONDON.next_allowed(allowed) == allowed


def test_a_window_within_one_day_and_none() -> None:
    lunch = QuietHours.parse("12:00-13:30", "Europe/London")
    assert lunch.is_quiet(datetime(2026, 1, 14, 12, 45))
    assert not lunch.is_quiet(datetime(2026, 1, 14, 13, 30))
    assert not lunch.is_quiet(datetime(2026, 1, 14, 23, 0))
    never = QuietHours.parse("", "Europe/London")
    assert never.none and not never.is_quiet(datetime(2026, 1, 14, 3, 0))


@pytest.mark.parametrize(
    ("window", "zone"), [("9pm-8am", "Europe/London"), ("25:00-08:00", "UTC"), ("", "Mars/Base")]
)
def test_bad_windows_are_refused_with_a_message(window: str, zone: str) -> None:
    with pytest.raises(QuietHoursError) as raised:
        QuietHours.parse(window, zone)
    assert str(raised.value)


def test_spreading_skips_quiet_hours_instead_of_piling_up_at_eight() -> None:
    start = datetime(2026, 1, 14, 20, 30)  # 30 minutes before quiet hours (winter)
    times = spread(start, 4, 60, LONDON)  # every 15 minutes of sending time
    assert times == [
        datetime(2026, 1, 14, 20, 30),
        datetime(2026, 1, 14, 20, 45),
        datetime(2026, 1, 15, 8, 0),
        datetime(2026, 1, 15, 8, 15),
    ]
    assert not any(LONDON.is_quiet(moment) for moment in times)


def test_spreading_is_even_and_nothing_spread_goes_at_once() -> None:
    start = datetime(2026, 1, 14, 10, 0)
    times = spread(start, 1000, 100, LONDON)
    gaps = {round((b - a).total_seconds(), 6) for a, b in itertools.pairwise(times)}
    assert gaps == {6.0}
    assert times[-1] < start + timedelta(minutes=100)
    assert spread(start, 3, 0, LONDON) == [start] * 3
    # Enqueued in quiet hours without a spread: all wait for the morning.
    assert set(spread(datetime(2026, 1, 14, 23, 0), 3, 0, LONDON)) == {datetime(2026, 1, 15, 8)}
    assert spread(start, 0, 60, LONDON) == []


def test_only_the_latest_due_reminder_and_never_more_than_planned() -> None:
    times = reminder_times('["2026-01-16T10:00:00", "2026-01-14T10:00:00", "not a time"]')
    assert times == [datetime(2026, 1, 14, 10), datetime(2026, 1, 16, 10)]
    assert due_reminder(times, datetime(2026, 1, 14, 9, 59)) is None
    assert due_reminder(times, datetime(2026, 1, 14, 10)) == 1
    assert due_reminder(times, datetime(2026, 1, 20)) == 2  # after an outage: the last only
    assert reminder_times("{oops") == []


def test_the_message_says_how_to_join_and_how_to_stop() -> None:
    assert deep_link("besafe_bot", "bullying-2026") == "https://t.me/besafe_bot?start=bullying-2026"
    assert deep_link("besafe_bot", "has space") is None
    assert deep_link(None, "code") is None
    text = message_text("invitation", "Anti-Bullying Week survey!", "abw", has_button=True)
    assert text.startswith("Anti-Bullying Week survey!")
    assert "/start abw" in text and "STOP" in text
    assert "send /start abw" in message_text("reminder", "", "abw", has_button=False)


@pytest.mark.parametrize(
    ("event", "wanted"),
    [
        (TextIn("STOP"), "stop"),
        (TextIn(" stop "), "stop"),
        (TextIn("Stop!"), "stop"),
        (TextIn("/stop"), "stop"),
        (CommandIn("stop"), "stop"),
        (TextIn("/subscribe"), "subscribe"),
        (TextIn("Subscribe"), "subscribe"),
        (TextIn("/unsubscribe@besafe_bot"), "unsubscribe"),
        (ChoiceIn("yes", NEWS_PROMPT), "offer_yes"),
        (ChoiceIn("no", NEWS_PROMPT), "offer_no"),
        (TextIn("please stop the bullying"), None),  # not alone: a message, screened as ever
        (TextIn("stopped"), None),
        (ChoiceIn("yes", "other"), None),
        (CommandIn("help"), None),
    ],
)
def test_what_counts_as_stop_and_subscribe(event: object, wanted: str | None) -> None:
    assert request_of(event) == wanted  # type: ignore[arg-type]


def test_settings_refuse_a_rate_above_30_and_unreadable_quiet_hours() -> None:
    from config.settings import SettingsError, load_settings

    assert load_settings(broadcast_rate_per_second=30).broadcast_rate_per_second == 30
    for bad in (
        {"broadcast_rate_per_second": 31},
        {"broadcast_rate_per_second": 0},
        {"broadcast_quiet_hours": "after tea"},
        {"broadcast_time_zone": "Europe/Atlantis"},
    ):
        with pytest.raises(SettingsError) as raised:
            load_settings(**bad)
        assert f"BESAFE_{next(iter(bad)).upper()}" in str(raised.value)
