"""Campaign rules: the plan, its states and transitions, London time. Pure: values in and out.

A campaign is a stored survey version offered under a join code for a time
window. Times are typed and shown in Europe/London and stored as naive UTC
(`storage.clock`). A local time that does not exist (the spring-forward gap) or
happens twice (the autumn fold) is refused with a message saying so, rather than
guessed: a campaign that opens an hour early or late is a real cost to a school.

States: draft -> scheduled -> open -> closed -> archived, with the pairs in
`TRANSITIONS`; every other pair has a reason in `refusal_reason`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from surveys.audience import Audience

LONDON = ZoneInfo("Europe/London")
STATES: tuple[str, ...] = ("draft", "scheduled", "open", "closed", "archived")
STATE_LABELS: dict[str, str] = {
    "draft": "Draft",
    "scheduled": "Scheduled",
    "open": "Open",
    "closed": "Closed",
    "archived": "Archived",
}
# (from, to) -> the action word (CLI verb, URL word, audit action).
TRANSITIONS: dict[tuple[str, str], str] = {
    ("draft", "scheduled"): "schedule",
    ("draft", "open"): "open",
    ("draft", "archived"): "archive",
    ("scheduled", "draft"): "unschedule",
    ("scheduled", "open"): "open",
    ("open", "closed"): "close",
    ("closed", "archived"): "archive",
}
ACTIONS: dict[str, str] = {"schedule": "scheduled", "unschedule": "draft", "open": "open"}
ACTIONS |= {"close": "closed", "archive": "archived"}
_ARTICLE = {"open": "an", "closed": "a"}
_VERBS = {target: action for action, target in ACTIONS.items()}
# A young person in the middle of a survey when its campaign closes may finish it
# within this time; nobody new can start it (see bot.catalogue).
FINISH_GRACE = timedelta(hours=2)

CODE_MIN, CODE_MAX = 3, 40
_CODE = re.compile(r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?")
# The codes bot.catalogue gives shipped surveys' default campaigns.
_DEFAULT_CODE = re.compile(r"[a-z0-9_]+-v[0-9]+")
_RESERVED_CODES = frozenset({"new"})  # /staff/campaigns/new is the form
MAX_TITLE = 200
MAX_MESSAGE = 2000  # invitation and reminder texts (Telegram allows 4096)
MAX_REMINDERS = 5
MAX_SPREAD_MINUTES = 24 * 60
MAX_TARGET = 1_000_000
_LOCAL_FORMATS = ("%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S")

# What may change in each state. The survey never changes once young people may have
# answered it (open and later); the join code never changes (it is on printed posters).
EDITABLE: dict[str, frozenset[str]] = {
    "draft": frozenset(
        {
            "title",
            "survey_id",
            "survey_version",
            "opens_at",
            "closes_at",
            "audience",
            "invitation_text",
            "reminder_text",
            "reminder_times",
            "send_spread_minutes",
            "target_responses",
        }
    ),
    "open": frozenset(
        {
            "title",
            "closes_at",
            "invitation_text",
            "reminder_text",
            "reminder_times",
            "send_spread_minutes",
            "target_responses",
        }
    ),
    "closed": frozenset({"title", "target_responses"}),
    "archived": frozenset(),
}
EDITABLE["scheduled"] = EDITABLE["draft"]
FIELD_LABELS: dict[str, str] = {
    "code": "join code",
    "title": "title",
    "survey_id": "survey",
    "survey_version": "survey version",
    "opens_at": "opening time",
    "closes_at": "closing time",
    "audience": "audience",
    "invitation_text": "invitation",
    "reminder_text": "reminder text",
    "reminder_times": "reminder times",
    "send_spread_minutes": "send spread",
    "target_responses": "target",
}


class CampaignError(ValueError):
    """A plan, edit or transition refused; the message is for a facilitator."""


class LocalTimeError(CampaignError):
    """A London local time that cannot be turned into one moment."""


# ---------------------------------------------------------------- London time


def london_to_utc(local: datetime) -> datetime:
    """A naive London wall-clock time -> naive UTC; refuses gap and fold times."""
    if local.tzinfo is not None:
        return local.astimezone(UTC).replace(tzinfo=None)
    early = local.replace(tzinfo=LONDON, fold=0)
    late = local.replace(tzinfo=LONDON, fold=1)
    when = local.strftime("%H:%M on %d %b %Y")
    if early.utcoffset() != late.utcoffset():
        # Round-tripping tells the gap (the time is skipped) from the fold (it repeats).
        back = early.astimezone(UTC).astimezone(LONDON).replace(tzinfo=None)
        if back != local:
            raise LocalTimeError(
                f"{when} does not exist in London: the clocks go forward an hour then. "
                "Choose a time outside 01:00-02:00."
            )
        raise LocalTimeError(
            f"{when} happens twice in London: the clocks go back an hour then. "
            "Choose a time outside 01:00-02:00."
        )
    return early.astimezone(UTC).replace(tzinfo=None)


def utc_to_london(moment: datetime) -> datetime:
    """Naive UTC (or aware) -> an aware Europe/London datetime."""
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return aware.astimezone(LONDON)


def parse_london(text: str, what: str = "time") -> datetime:
    """Parse "2026-11-16 09:00" (London) into naive UTC; CampaignError shows the format."""
    cleaned = " ".join(text.split())
    for pattern in _LOCAL_FORMATS:
        try:
            local = datetime.strptime(cleaned, pattern)
        except ValueError:
            continue
        return london_to_utc(local)
    raise CampaignError(
        f"the {what} {text.strip()[:40]!r} is not a date and time: "
        "write it as YYYY-MM-DD HH:MM (London time), e.g. 2026-11-16 09:00"
    )


def format_london(moment: datetime | None, *, empty: str = "not set") -> str:
    """Naive UTC -> "Mon 16 Nov 2026, 09:00 GMT" (London; GMT or BST named)."""
    if moment is None:
        return empty
    local = utc_to_london(moment)
    return f"{local:%a %d %b %Y, %H:%M} {local.tzname()}"


def input_london(moment: datetime | None) -> str:
    """Naive UTC -> "2026-11-16 09:00" in London time, as typed into a form or the CLI."""
    return "" if moment is None else f"{utc_to_london(moment):%Y-%m-%d %H:%M}"


def london_day(moment: datetime) -> str:
    """The London calendar day (YYYY-MM-DD) of a naive UTC moment."""
    return utc_to_london(moment).date().isoformat()


# ---------------------------------------------------------------- the plan


def check_code(code: str) -> str:
    """A join code as typed -> the code; CampaignError saying what is wrong."""
    value = code.strip()
    if not CODE_MIN <= len(value) <= CODE_MAX:
        raise CampaignError(f"the join code must be {CODE_MIN} to {CODE_MAX} characters long")
    if value != value.lower() or not _CODE.fullmatch(value):
        raise CampaignError(
            "the join code may use only lowercase letters, digits and hyphens, "
            "and must start and end with a letter or digit"
        )
    if value in _RESERVED_CODES:
        raise CampaignError(f"{value!r} is a reserved word; choose another join code")
    if _DEFAULT_CODE.fullmatch(value):
        raise CampaignError(
            f"{value!r} looks like a survey's default campaign code (<survey>-v<number>); "
            "choose another"
        )
    return value


@dataclass(frozen=True)
class CampaignPlan:
    """What a facilitator decides about a campaign. Times are naive UTC."""

    code: str
    title: str
    survey_id: str
    survey_version: int
    opens_at: datetime
    closes_at: datetime | None = None
    audience: Audience = field(default_factory=Audience)
    invitation_text: str | None = None
    reminder_text: str | None = None
    reminder_times: tuple[datetime, ...] = ()
    send_spread_minutes: int = 0
    target_responses: int | None = None

    def changed_fields(self, other: CampaignPlan) -> set[str]:
        return {name for name in FIELD_LABELS if getattr(self, name) != getattr(other, name)}


def _text(value: str | None, what: str, limit: int, *, required: bool = False) -> str | None:
    cleaned = (value or "").strip()
    if not cleaned:
        if required:
            raise CampaignError(f"the {what} is required")
        return None
    if len(cleaned) > limit:
        raise CampaignError(f"the {what} is {len(cleaned)} characters long; at most {limit}")
    return cleaned


def validate_plan(plan: CampaignPlan, *, check_code_rules: bool = True) -> CampaignPlan:
    """The plan cleaned (texts trimmed, reminders sorted), or CampaignError naming the problem.

    `check_code_rules` is off when editing a campaign whose code came from elsewhere
    (a shipped survey's default campaign).
    """
    code = check_code(plan.code) if check_code_rules else plan.code
    title = _text(plan.title, "title", MAX_TITLE, required=True)
    assert title is not None
    if not plan.survey_id.strip():
        raise CampaignError("choose the survey the campaign runs")
    if plan.survey_version < 1:
        raise CampaignError("the survey version must be 1 or more")
    if plan.closes_at is not None and plan.closes_at <= plan.opens_at:
        raise CampaignError("the closing time must be after the opening time")
    reminders = tuple(sorted(set(plan.reminder_times)))
    if len(reminders) > MAX_REMINDERS:
        raise CampaignError(f"at most {MAX_REMINDERS} reminders; the plan has {len(reminders)}")
    for moment in reminders:
        if moment <= plan.opens_at or (plan.closes_at is not None and moment >= plan.closes_at):
            raise CampaignError(
                f"the reminder at {format_london(moment)} is outside the campaign: "
                "reminders go after it opens and before it closes"
            )
    reminder_text = _text(plan.reminder_text, "reminder text", MAX_MESSAGE)
    if reminders and reminder_text is None:
        raise CampaignError("reminders are planned: write the reminder text")
    if not 0 <= plan.send_spread_minutes <= MAX_SPREAD_MINUTES:
        raise CampaignError(f"the send spread must be 0 to {MAX_SPREAD_MINUTES} minutes")
    if plan.target_responses is not None and not 1 <= plan.target_responses <= MAX_TARGET:
        raise CampaignError(f"the target must be a number of responses from 1 to {MAX_TARGET}")
    return replace(
        plan,
        code=code,
        title=title,
        survey_id=plan.survey_id.strip(),
        invitation_text=_text(plan.invitation_text, "invitation", MAX_MESSAGE),
        reminder_text=reminder_text,
        reminder_times=reminders,
    )


def check_edit(state: str, before: CampaignPlan, after: CampaignPlan) -> None:
    """Refuse an edit that changes what may not change in `state` (CampaignError)."""
    if after.code != before.code:
        raise CampaignError("the join code never changes: it may already be on posters")
    allowed = EDITABLE.get(state, frozenset())
    refused = sorted(before.changed_fields(after) - allowed)
    if refused:
        names = ", ".join(FIELD_LABELS[name] for name in refused)
        if state == "archived":
            raise CampaignError("an archived campaign is kept as it was, for the record")
        if state in ("open", "closed") and ("survey_id" in refused or "survey_version" in refused):
            raise CampaignError(
                f"the survey cannot change under {_ARTICLE[state]} {state} campaign: "
                "young people may have answered it. Make a new campaign for a new survey version"
            )
        raise CampaignError(f"the {names} cannot change while the campaign is {state}")


# ---------------------------------------------------------------- states


def refusal_reason(current: str, target: str, plan: CampaignPlan, now: datetime) -> str | None:
    """None when `current -> target` may happen at `now`; else why not, in plain words."""
    if current not in STATES or target not in STATES:
        return f"unknown state {(target if current in STATES else current)!r}"
    if current == target:
        return f"the campaign is already {current}"
    if current == "archived":
        return "an archived campaign is kept as it was, for the record"
    if (current, target) not in TRANSITIONS:
        return _REFUSED.get((current, target)) or f"a {current} campaign cannot become {target}"
    if target == "scheduled" and plan.opens_at <= now:
        return "its opening time has passed: open it now, or set a later opening time"
    if target == "open" and plan.closes_at is not None and plan.closes_at <= now:
        return "its closing time has passed: set a later closing time first"
    return None


# Reasons for the pairs that are never allowed (the rest of the 20 ordered pairs).
_REFUSED: dict[tuple[str, str], str] = {
    ("draft", "closed"): "a draft has never been open, so it cannot be closed: archive it instead",
    ("scheduled", "closed"): "a scheduled campaign has not opened: unschedule or archive it",
    ("scheduled", "archived"): "unschedule it first (back to draft), then archive it",
    ("open", "draft"): "an open campaign cannot go back to draft: young people may have answered",
    ("open", "scheduled"): "an open campaign cannot be rescheduled: close it instead",
    ("open", "archived"): "close the campaign before archiving it",
    ("closed", "draft"): "a closed campaign cannot go back to draft: make a new campaign",
    ("closed", "scheduled"): "a closed campaign cannot be rescheduled: make a new campaign",
    ("closed", "open"): (
        "a closed campaign stays closed, so its results cover one window: make a new campaign"
    ),
}


def transition_plan(current: str, target: str, plan: CampaignPlan, now: datetime) -> CampaignPlan:
    """The plan after the transition (open now / close now move the times), or CampaignError."""
    reason = refusal_reason(current, target, plan, now)
    if reason is not None:
        verb = TRANSITIONS.get((current, target)) or _VERBS.get(target, f"make it {target}")
        raise CampaignError(f"cannot {verb}: {reason}")
    if target == "open" and plan.opens_at > now:
        return replace(plan, opens_at=now)
    if target == "closed" and (plan.closes_at is None or plan.closes_at > now):
        return replace(plan, closes_at=now)
    return plan


@dataclass(frozen=True)
class Timing:
    """What `due_transitions` needs of a stored campaign."""

    code: str
    status: str
    opens_at: datetime
    closes_at: datetime | None


@dataclass(frozen=True)
class DueTransition:
    code: str
    current: str
    target: str


def due_transitions(campaigns: Iterable[Timing], now: datetime) -> list[DueTransition]:
    """Time-driven changes at `now`: scheduled whose opening passed -> open (or straight to
    closed when its closing passed too, e.g. the server was down all through it); open whose
    closing passed -> closed."""
    due: list[DueTransition] = []
    for campaign in campaigns:
        closed = campaign.closes_at is not None and campaign.closes_at <= now
        if campaign.status == "scheduled" and campaign.opens_at <= now:
            due.append(DueTransition(campaign.code, "scheduled", "closed" if closed else "open"))
        elif campaign.status == "open" and closed:
            due.append(DueTransition(campaign.code, "open", "closed"))
    return due
