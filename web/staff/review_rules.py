"""Pure rules of the review queue: deadlines, ordering, what each action may do, highlighting.

No I/O here: values in, values out, so that every rule is tested on its own
(tests/staff/test_review_rules.py) and the handlers and the alert job share them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

SEVERITY_RANK: Mapping[str, int] = {"urgent": 0, "high": 1, "medium": 2}
CLOSED: tuple[str, ...] = ("closed", "not_a_concern")
STATUS_LABELS: Mapping[str, str] = {
    "open": "Open",
    "acknowledged": "Acknowledged",
    "referred": "Referred",
    "closed": "Closed",
    "not_a_concern": "Not a concern",
}
DESTINATION_LABELS: Mapping[str, str] = {
    "front_door_mash": "Children's services front door / MASH",
    "police": "Police",
    "school_dsl": "School designated safeguarding lead",
    "health": "Health",
    "other": "Other",
}
ACTION_LABELS: Mapping[str, str] = {
    "claim": "Claimed",
    "acknowledge": "Acknowledged",
    "reply": "Replied to the young person",
    "reply_failed": "Reply could not be delivered",
    "referral": "Referral recorded",
    "not_a_concern": "Marked not a concern",
    "close": "Closed",
    "reopen": "Reopened",
    "note": "Note",
    "alert": "Staff alert sent",
    "escalation": "Escalated to the second contact",
}
MAX_TEXT = 4000  # a reply, note, reason or outcome
MAX_REFERENCE = 200


@dataclass(frozen=True)
class Deadlines:
    urgent: timedelta = timedelta(minutes=15)
    high: timedelta = timedelta(hours=4)
    medium_working_days: int = 2

    @classmethod
    def from_settings(cls, settings: object) -> Deadlines:
        return cls(
            urgent=timedelta(minutes=settings.deadline_urgent_minutes),  # type: ignore[attr-defined]
            high=timedelta(hours=settings.deadline_high_hours),  # type: ignore[attr-defined]
            medium_working_days=settings.deadline_medium_working_days,  # type: ignore[attr-defined]
        )


def add_working_days(moment: datetime, days: int) -> datetime:
    """`days` working days (Monday to Friday) after `moment`, at the same time of day.

    Raised on a weekend, the count starts on Monday: Saturday + 1 working day is
    Tuesday morning's time, as if raised first thing on Monday.
    """
    current = moment
    while current.weekday() >= 5:  # Saturday or Sunday: start from Monday 00:00
        current = (current + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    left = days
    while left > 0:
        current += timedelta(days=1)
        if current.weekday() < 5:
            left -= 1
    return current


def deadline_for(severity: str, created_at: datetime, deadlines: Deadlines) -> datetime:
    """When a flag of `severity` raised at `created_at` must have been acknowledged."""
    if severity == "urgent":
        return created_at + deadlines.urgent
    if severity == "high":
        return created_at + deadlines.high
    return add_working_days(created_at, deadlines.medium_working_days)


def queue_key(severity: str, created_at: datetime, flag_id: int) -> tuple[int, datetime, int]:
    """Order of the queue: most severe first, then oldest first (then by id, for ties)."""
    return (SEVERITY_RANK.get(severity, len(SEVERITY_RANK)), created_at, flag_id)


def describe_span(delta: timedelta) -> str:
    """A short duration for people: "45 s", "12 min", "3 h 5 min", "2 d 4 h"."""
    seconds = int(abs(delta).total_seconds())
    if seconds < 60:
        return f"{seconds} s"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


# ---------------------------------------------------------------- actions


class ActionRefused(Exception):
    """The action does not fit the flag as it is now (or its input is wrong)."""

    def __init__(self, message: str, status: int = 409) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


@dataclass(frozen=True)
class FlagState:
    status: str
    contact_consent: bool | None
    has_handle: bool
    acknowledged: bool
    claimed_by: int | None


def check_action(action: str, flag: FlagState) -> str | None:
    """The flag's new status after `action`, or None when the status does not change.

    Raises ActionRefused when the action does not fit the flag's state.
    """
    closed = flag.status in CLOSED
    if action == "note":
        return None
    if action == "reopen":
        if not closed:
            raise ActionRefused("Only a closed flag can be reopened.")
        return "acknowledged" if flag.acknowledged else "open"
    if closed:
        raise ActionRefused("This flag is closed. Reopen it first.")
    if action == "claim":
        return None
    if action == "acknowledge":
        if flag.acknowledged:
            raise ActionRefused("This flag has already been acknowledged.")
        return "acknowledged" if flag.status == "open" else None
    if action == "reply":
        if flag.contact_consent is not True or not flag.has_handle:
            raise ActionRefused("The young person did not agree to be contacted.", 403)
        return "acknowledged" if flag.status == "open" else None
    if action == "referral":
        return "referred"
    if action == "not_a_concern":
        return "not_a_concern"
    if action == "close":
        return "closed"
    raise ActionRefused(f"Unknown action {action!r}.", 400)


def clean_input(value: object, what: str, *, limit: int = MAX_TEXT, required: bool = True) -> str:
    """A form field as trimmed text; ActionRefused(400) when missing or too long."""
    text = value.strip() if isinstance(value, str) else ""
    text = text.replace("\r\n", "\n").replace("\x00", "")
    if required and not text:
        raise ActionRefused(f"Please give {what}.", 400)
    if len(text) > limit:
        raise ActionRefused(f"{what[0].upper()}{what[1:]} is too long (at most {limit}).", 400)
    return text


# ---------------------------------------------------------------- highlighting


@dataclass(frozen=True)
class Segment:
    """A piece of a message; `category` is set when it is evidence of a disclosure."""

    text: str
    category: str | None = None


def highlight_segments(text: str, evidence: Iterable[Mapping[str, object]]) -> list[Segment]:
    """Split `text` into plain and evidence pieces, for a template to escape one by one.

    Spans are clipped to the text; overlapping spans are merged (the first
    category names the merged piece). Bad spans are ignored, never trusted.
    """
    spans: list[tuple[int, int, str]] = []
    for item in evidence:
        start, end = item.get("start"), item.get("end")
        if not isinstance(start, int) or not isinstance(end, int):
            continue
        start, end = max(0, start), min(len(text), end)
        if start < end:
            spans.append((start, end, str(item.get("category") or "")))
    spans.sort()
    merged: list[list] = []
    for start, end, category in spans:
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end, category])
    segments: list[Segment] = []
    position = 0
    for start, end, category in merged:
        if position < start:
            segments.append(Segment(text[position:start]))
        segments.append(Segment(text[start:end], category or "evidence"))
        position = end
    if position < len(text) or not segments:
        segments.append(Segment(text[position:]))
    return segments


def category_label(category: str) -> str:
    return category.replace("_", " ").capitalize()


def categories_text(categories: Sequence[str]) -> str:
    return ", ".join(category_label(category) for category in categories) or "(none)"
