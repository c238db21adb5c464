"""When broadcasts may go out, and what they say. Pure: values in, values out.

Quiet hours are a daily window in local time (default 21:00 to 08:00 Europe/London):
nothing is sent inside it. Times are naive UTC everywhere else in the project, so
every function here takes and returns naive UTC and converts through the time zone
itself, which keeps midnight and the clock changes (GMT/BST) right.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

_WINDOW = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")
# Telegram deep-link payloads: 1-64 of A-Z a-z 0-9 _ -
_DEEP_LINK_CODE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")

INVITATION = "invitation"
REMINDER = "reminder"
STOP_HINT = "Send STOP if you don't want messages like this any more."


class QuietHoursError(ValueError):
    """A quiet-hours window or time zone that cannot be read (message is for a person)."""


@dataclass(frozen=True)
class QuietHours:
    """A daily window [start, end) in `zone`; start == end means no quiet hours.

    start > end wraps past midnight (21:00-08:00 is quiet from 21:00 until 08:00 the next
    morning)."""

    start: time
    end: time
    zone: ZoneInfo

    @classmethod
    def parse(cls, window: str, zone: str = "Europe/London") -> QuietHours:
        """From "HH:MM-HH:MM" (empty: none) and an IANA zone name; raises QuietHoursError."""
        try:
            tz = ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError) as error:
            raise QuietHoursError(f"unknown time zone {zone!r}") from error
        if not window.strip():
            return cls(time(0, 0), time(0, 0), tz)
        match = _WINDOW.match(window)
        if match is None:
            raise QuietHoursError(f"quiet hours must look like 21:00-08:00, not {window!r}")
        hours = [int(match[1]), int(match[3])]
        minutes = [int(match[2]), int(match[4])]
        if any(h > 23 for h in hours) or any(m > 59 for m in minutes):
            raise QuietHoursError(f"quiet hours {window!r}: hours 0-23, minutes 0-59")
        return cls(time(hours[0], minutes[0]), time(hours[1], minutes[1]), tz)

    @property
    def none(self) -> bool:
        return self.start == self.end

    def is_quiet(self, moment: datetime) -> bool:
        """Whether `moment` (naive UTC) falls inside quiet hours."""
        if self.none:
            return False
        local = _local(moment, self.zone).time()
        if self.start < self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end

    def next_allowed(self, moment: datetime) -> datetime:
        """`moment` itself when sending is allowed then, else the end of its quiet hours."""
        if not self.is_quiet(moment):
            return moment
        return self._next_local(moment, self.end)

    def next_quiet_start(self, moment: datetime) -> datetime:
        """The first start of quiet hours after `moment` (naive UTC)."""
        return self._next_local(moment, self.start)

    def _next_local(self, moment: datetime, at: time) -> datetime:
        """The first naive-UTC instant after `moment` whose local wall time is `at`."""
        local = _local(moment, self.zone)
        day = local.date()
        for offset in range(3):
            candidate = _utc(datetime.combine(day + timedelta(days=offset), at), self.zone)
            if candidate > moment:
                return candidate
        raise AssertionError("a wall time recurs within three days")  # pragma: no cover

    def add_allowed(self, start: datetime, seconds: float) -> datetime:
        """The instant `seconds` of sending time after `start`, not counting quiet hours.

        Spreading a send over 60 minutes from 20:30 gives 30 minutes before 21:00 and 30
        after 08:00, instead of a pile of messages waiting at 08:00."""
        at = self.next_allowed(start)
        if self.none:
            return at + timedelta(seconds=seconds)
        remaining = timedelta(seconds=max(0.0, seconds))
        while True:
            quiet = self.next_quiet_start(at)
            if at + remaining < quiet:
                return at + remaining
            remaining -= quiet - at
            at = self.next_allowed(quiet)


def _local(moment: datetime, zone: ZoneInfo) -> datetime:
    return moment.replace(tzinfo=UTC).astimezone(zone)


def _utc(local_wall: datetime, zone: ZoneInfo) -> datetime:
    # A wall time skipped by a clock change (01:30 on the spring-forward night) maps to
    # the instant after the gap, which is what "from then on" means.
    aware = local_wall.replace(tzinfo=zone)
    return aware.astimezone(UTC).replace(tzinfo=None)


def spread(
    start: datetime, count: int, minutes: int, quiet: QuietHours | None = None
) -> list[datetime]:
    """Not-before times for `count` sends spread evenly over `minutes` of sending time from
    `start` (all at `start` when minutes is 0), skipping quiet hours."""
    if count <= 0:
        return []
    step = (max(0, minutes) * 60.0) / count
    if quiet is None:
        return [start + timedelta(seconds=step * index) for index in range(count)]
    first = quiet.next_allowed(start)
    if step == 0:
        return [first] * count
    return [quiet.add_allowed(first, step * index) for index in range(count)]


def reminder_times(text: str | None) -> list[datetime]:
    """The planned reminder times of a campaign (ISO naive UTC, as stored); bad ones skipped."""
    try:
        values = json.loads(text or "[]")
    except ValueError:
        return []
    found = []
    for value in values if isinstance(values, list) else []:
        try:
            moment = datetime.fromisoformat(str(value))
        except ValueError:
            continue
        if moment.tzinfo is not None:
            moment = moment.astimezone(UTC).replace(tzinfo=None)
        found.append(moment)
    return sorted(found)


def due_reminder(times: list[datetime], now: datetime) -> int | None:
    """The number (1-based) of the latest planned reminder due at `now`, or None.

    Only the latest: after an outage that missed two planned times, one reminder goes,
    not two at once; so nobody ever gets more than the planned number."""
    due = [index for index, moment in enumerate(times, start=1) if moment <= now]
    return due[-1] if due else None


def deep_link(bot_username: str | None, code: str) -> str | None:
    """`https://t.me/<bot>?start=<code>`, or None when the code cannot be a deep link."""
    if not bot_username or not _DEEP_LINK_CODE.match(code):
        return None
    return f"https://t.me/{bot_username}?start={code}"


def message_text(kind: str, text: str, code: str, *, has_button: bool) -> str:
    """What a broadcast says: the facilitator's text, how to join, how to stop."""
    join = (
        f"Tap the button below to start, or send /start {code}"
        if has_button
        else f"To start, send /start {code}"
    )
    lead = text.strip() or (
        "There's a new survey you can take." if kind == INVITATION else "You started a survey."
    )
    return f"{lead}\n\n{join}\n\n{STOP_HINT}"
