"""Reads and writes of the safeguarding review queue, on one open connection.

Every function takes the caller's transaction (`uow.connection` inside
`Repository.run`), so an action, its history entry and its audit entry commit
together. What is read for staff never includes a chat id, pseudonym, session
token or relay handle: `flag_detail` only says whether a handle exists, and
`relay_handle` (for the moment of delivery) is separate on purpose.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import and_, func, insert, or_, select, update
from sqlalchemy.engine import Connection

from storage.repository import CLOSED_FLAG_STATUSES, Repository
from storage.tables import campaigns, flag_messages, flags, messages, respondents, responses
from storage.tables import surveys as surveys_table
from storage.tables_review import flag_events, flag_referrals, staff_alerts
from storage.tables_staff import staff_users

T = TypeVar("T")

CONTEXT_MESSAGES = 3  # messages shown before and after the flagged one
ALERT_MAX_ATTEMPTS = 5


def read(repository: Repository, work: Callable[[Connection], T]) -> T:
    """A read-only transaction (no writer lock on SQLite, unlike `Repository.run`)."""
    with repository.engine.connect() as connection, connection.begin():
        return work(connection)


def _json_list(text: str | None) -> list:
    try:
        value = json.loads(text or "[]")
    except ValueError:
        return []
    return value if isinstance(value, list) else []


# ---------------------------------------------------------------- the queue


@dataclass(frozen=True)
class QueueItem:
    id: int
    severity: str
    categories: list[str]
    status: str
    channel: str
    created_at: datetime
    acknowledged_at: datetime | None
    claimed_by: str | None
    contact_consent: bool | None
    replies_waiting: int  # young person's messages after the last staff reply


def open_queue(connection: Connection) -> list[QueueItem]:
    """Every flag not yet closed (ordering is the caller's: `review_rules.queue_key`)."""
    claimer = staff_users.alias("claimer")
    rows = connection.execute(
        select(
            flags.c.id,
            flags.c.severity,
            flags.c.categories_json,
            flags.c.status,
            respondents.c.channel,
            flags.c.created_at,
            flags.c.acknowledged_at,
            claimer.c.username,
            flags.c.contact_consent,
        )
        .join(respondents, respondents.c.id == flags.c.respondent_id)
        .outerjoin(claimer, claimer.c.id == flags.c.claimed_by)
        .where(flags.c.status.not_in(CLOSED_FLAG_STATUSES))
    ).all()
    waiting = _replies_waiting(connection, [int(row.id) for row in rows])
    return [
        QueueItem(
            id=int(row.id),
            severity=row.severity,
            categories=[str(c) for c in _json_list(row.categories_json)],
            status=row.status,
            channel=row.channel,
            created_at=row.created_at,
            acknowledged_at=row.acknowledged_at,
            claimed_by=row.username,
            contact_consent=row.contact_consent,
            replies_waiting=waiting.get(int(row.id), 0),
        )
        for row in rows
    ]


def _replies_waiting(connection: Connection, flag_ids: Sequence[int]) -> dict[int, int]:
    if not flag_ids:
        return {}
    rows = connection.execute(
        select(flag_messages.c.flag_id, flag_messages.c.message_id, flag_messages.c.author)
        .where(flag_messages.c.flag_id.in_(flag_ids))
        .order_by(flag_messages.c.flag_id, flag_messages.c.message_id)
    ).all()
    waiting: dict[int, int] = {}
    for flag_id, _, author in rows:
        waiting[flag_id] = 0 if author == "staff" else waiting.get(flag_id, 0) + 1
    return waiting


# ---------------------------------------------------------------- one flag


@dataclass(frozen=True)
class ShownMessage:
    id: int
    direction: str  # "in": the young person; "out": staff
    text: str
    created_at: datetime
    is_flagged: bool = False


@dataclass(frozen=True)
class HistoryEntry:
    id: int
    action: str
    actor: str | None  # a staff username; None for the system
    text: str | None
    details: dict
    created_at: datetime


@dataclass(frozen=True)
class Referral:
    destination: str
    reference: str
    created_by: str | None
    created_at: datetime


@dataclass(frozen=True)
class FlagDetail:
    id: int
    severity: str
    categories: list[str]
    evidence: list[dict]
    status: str
    channel: str
    created_at: datetime
    contact_consent: bool | None
    can_reply: bool
    claimed_by: str | None
    claimed_by_id: int | None
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    closed_at: datetime | None
    outcome: str | None
    message: ShownMessage
    survey_title: str | None
    survey_id: str | None
    question_id: str | None
    question_text: str | None
    before: list[ShownMessage] = field(default_factory=list)
    after: list[ShownMessage] = field(default_factory=list)
    conversation: list[ShownMessage] = field(default_factory=list)
    history: list[HistoryEntry] = field(default_factory=list)
    referrals: list[Referral] = field(default_factory=list)


def _usernames(connection: Connection, ids: set[int | None]) -> dict[int, str]:
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return {}
    rows = connection.execute(
        select(staff_users.c.id, staff_users.c.username).where(staff_users.c.id.in_(wanted))
    )
    return {int(row.id): row.username for row in rows}


def flag_detail(connection: Connection, flag_id: int) -> FlagDetail | None:
    """Everything the flag page shows, or None when there is no such flag."""
    row = connection.execute(
        select(
            flags,
            respondents.c.channel,
            messages.c.text.label("message_text"),
            messages.c.created_at.label("message_at"),
            messages.c.question_id,
            responses.c.survey_id,
            responses.c.survey_version,
            campaigns.c.title.label("campaign_title"),
        )
        .join(respondents, respondents.c.id == flags.c.respondent_id)
        .join(messages, messages.c.id == flags.c.message_id)
        .outerjoin(responses, responses.c.id == messages.c.response_id)
        .outerjoin(campaigns, campaigns.c.id == responses.c.campaign_id)
        .where(flags.c.id == flag_id)
    ).first()
    if row is None:
        return None
    message_id = int(row.message_id)
    flagged = ShownMessage(message_id, "in", row.message_text, row.message_at, is_flagged=True)
    in_conversation = select(flag_messages.c.message_id).where(flag_messages.c.flag_id == flag_id)
    near = (
        messages.c.respondent_id == row.respondent_id,
        messages.c.id.not_in(in_conversation),
    )
    columns = (messages.c.id, messages.c.direction, messages.c.text, messages.c.created_at)
    before = connection.execute(
        select(*columns)
        .where(*near, messages.c.id < message_id)
        .order_by(messages.c.id.desc())
        .limit(CONTEXT_MESSAGES)
    ).all()
    after = connection.execute(
        select(*columns)
        .where(*near, messages.c.id > message_id)
        .order_by(messages.c.id)
        .limit(CONTEXT_MESSAGES)
    ).all()
    conversation = connection.execute(
        select(*columns)
        .join(flag_messages, flag_messages.c.message_id == messages.c.id)
        .where(flag_messages.c.flag_id == flag_id)
        .order_by(messages.c.id)
    ).all()
    events = connection.execute(
        select(flag_events).where(flag_events.c.flag_id == flag_id).order_by(flag_events.c.id)
    ).all()
    referral_rows = connection.execute(
        select(flag_referrals)
        .where(flag_referrals.c.flag_id == flag_id)
        .order_by(flag_referrals.c.id)
    ).all()
    names = _usernames(
        connection,
        {row.claimed_by, row.acknowledged_by}
        | {event.actor_id for event in events}
        | {referral.created_by for referral in referral_rows},
    )
    survey_title, question_text = _survey_and_question(
        connection, row.survey_id, row.survey_version, row.question_id
    )

    def shown(item: Any) -> ShownMessage:
        return ShownMessage(int(item.id), item.direction, item.text, item.created_at)

    return FlagDetail(
        id=int(row.id),
        severity=row.severity,
        categories=[str(c) for c in _json_list(row.categories_json)],
        evidence=[e for e in _json_list(row.evidence_json) if isinstance(e, dict)],
        status=row.status,
        channel=row.channel,
        created_at=row.created_at,
        contact_consent=row.contact_consent,
        can_reply=bool(row.contact_consent) and row.relay_handle is not None,
        claimed_by=names.get(row.claimed_by),
        claimed_by_id=row.claimed_by,
        acknowledged_at=row.acknowledged_at,
        acknowledged_by=names.get(row.acknowledged_by),
        closed_at=row.closed_at,
        outcome=row.outcome,
        message=flagged,
        survey_title=row.campaign_title or survey_title,
        survey_id=row.survey_id,
        question_id=row.question_id,
        question_text=question_text,
        before=[shown(item) for item in reversed(before)],
        after=[shown(item) for item in after],
        conversation=[shown(item) for item in conversation],
        history=[
            HistoryEntry(
                id=int(event.id),
                action=event.action,
                actor=names.get(event.actor_id),
                text=event.text,
                details=_details(event.details_json),
                created_at=event.created_at,
            )
            for event in events
        ],
        referrals=[
            Referral(r.destination, r.reference, names.get(r.created_by), r.created_at)
            for r in referral_rows
        ],
    )


def _details(text: str | None) -> dict:
    try:
        value = json.loads(text or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _survey_and_question(
    connection: Connection, survey_id: str | None, version: int | None, question_id: str | None
) -> tuple[str | None, str | None]:
    if survey_id is None or version is None:
        return None, None
    text = connection.execute(
        select(surveys_table.c.definition_json).where(
            surveys_table.c.survey_id == survey_id, surveys_table.c.version == version
        )
    ).scalar()
    try:
        definition = json.loads(text or "{}")
    except ValueError:
        return None, None
    question_text = None
    for question in definition.get("questions", []) or []:
        if isinstance(question, dict) and question.get("id") == question_id:
            question_text = question.get("text")
    return definition.get("title"), question_text


# ---------------------------------------------------------------- actions


@dataclass(frozen=True)
class FlagForAction:
    id: int
    status: str
    severity: str
    categories: list[str]
    contact_consent: bool | None
    has_handle: bool
    acknowledged_at: datetime | None
    claimed_by: int | None
    respondent_id: int


def flag_for_action(connection: Connection, flag_id: int) -> FlagForAction | None:
    """The flag's current state, row-locked on PostgreSQL until the transaction ends."""
    row = connection.execute(
        select(
            flags.c.id,
            flags.c.status,
            flags.c.severity,
            flags.c.categories_json,
            flags.c.contact_consent,
            flags.c.relay_handle.is_not(None).label("has_handle"),
            flags.c.acknowledged_at,
            flags.c.claimed_by,
            flags.c.respondent_id,
        )
        .where(flags.c.id == flag_id)
        .with_for_update()
    ).first()
    if row is None:
        return None
    return FlagForAction(
        id=int(row.id),
        status=row.status,
        severity=row.severity,
        categories=[str(c) for c in _json_list(row.categories_json)],
        contact_consent=row.contact_consent,
        has_handle=bool(row.has_handle),
        acknowledged_at=row.acknowledged_at,
        claimed_by=row.claimed_by,
        respondent_id=int(row.respondent_id),
    )


def relay_handle(connection: Connection, flag_id: int) -> str | None:
    """The sealed relay handle, only for delivering a reply; never shown to anyone."""
    return connection.execute(
        select(flags.c.relay_handle).where(flags.c.id == flag_id, flags.c.contact_consent.is_(True))
    ).scalar()


def add_event(
    connection: Connection,
    flag_id: int,
    action: str,
    *,
    actor_id: int | None,
    now: datetime,
    text: str | None = None,
    details: dict | None = None,
) -> int:
    return int(
        connection.execute(
            insert(flag_events)
            .values(
                flag_id=flag_id,
                actor_id=actor_id,
                action=action,
                text=text,
                details_json=None if not details else json.dumps(details, ensure_ascii=False),
                created_at=now,
            )
            .returning(flag_events.c.id)
        ).scalar_one()
    )


def update_flag(connection: Connection, flag_id: int, **values: Any) -> None:
    if values:
        connection.execute(update(flags).where(flags.c.id == flag_id).values(**values))


def add_referral(
    connection: Connection,
    flag_id: int,
    *,
    destination: str,
    reference: str,
    actor_id: int | None,
    now: datetime,
) -> None:
    connection.execute(
        insert(flag_referrals).values(
            flag_id=flag_id,
            destination=destination,
            reference=reference,
            created_by=actor_id,
            created_at=now,
        )
    )


# ---------------------------------------------------------------- staff replies in the web chat


def staff_replies_for(
    connection: Connection, pseudonym: str, after: int, *, limit: int = 50
) -> list[tuple[int, str]]:
    """(message id, text) of staff replies to this respondent with an id above `after`."""
    rows = connection.execute(
        select(messages.c.id, messages.c.text)
        .join(respondents, respondents.c.id == messages.c.respondent_id)
        .join(
            flag_messages,
            and_(flag_messages.c.message_id == messages.c.id, flag_messages.c.author == "staff"),
        )
        .where(
            respondents.c.pseudonym == pseudonym,
            messages.c.direction == "out",
            messages.c.id > after,
        )
        .order_by(messages.c.id)
        .limit(limit)
    )
    return [(int(row.id), row.text) for row in rows]


# ---------------------------------------------------------------- live updates


@dataclass(frozen=True)
class Marks:
    """High-water marks of what the queue has seen."""

    flag: int = 0
    event: int = 0
    message: int = 0


def current_marks(connection: Connection) -> Marks:
    row = connection.execute(
        select(
            select(func.coalesce(func.max(flags.c.id), 0)).scalar_subquery(),
            select(func.coalesce(func.max(flag_events.c.id), 0)).scalar_subquery(),
            select(func.coalesce(func.max(flag_messages.c.message_id), 0)).scalar_subquery(),
        )
    ).one()
    return Marks(int(row[0]), int(row[1]), int(row[2]))


def changes_since(connection: Connection, marks: Marks) -> tuple[Marks, list[int], set[int]]:
    """(new marks, ids of new flags, ids of flags with new history or messages)."""
    now = current_marks(connection)
    new_flags: list[int] = []
    changed: set[int] = set()
    if now.flag > marks.flag:
        new_flags = [
            int(i)
            for i in connection.execute(
                select(flags.c.id).where(flags.c.id > marks.flag).order_by(flags.c.id)
            ).scalars()
        ]
    if now.event > marks.event:
        changed |= {
            int(i)
            for i in connection.execute(
                select(flag_events.c.flag_id).where(flag_events.c.id > marks.event)
            ).scalars()
        }
    if now.message > marks.message:
        changed |= {
            int(i)
            for i in connection.execute(
                select(flag_messages.c.flag_id).where(flag_messages.c.message_id > marks.message)
            ).scalars()
        }
    return now, new_flags, changed


# ---------------------------------------------------------------- alerts


@dataclass(frozen=True)
class AlertJob:
    alert_id: int
    flag_id: int
    kind: str  # "new_flag" | "escalation"
    severity: str
    categories: list[str]


def alert_candidates(
    connection: Connection, *, since: datetime | None = None
) -> list[tuple[int, str, list[str], datetime, datetime | None]]:
    """(id, severity, categories, created_at, acknowledged_at) of every open flag."""
    query = select(
        flags.c.id,
        flags.c.severity,
        flags.c.categories_json,
        flags.c.created_at,
        flags.c.acknowledged_at,
    ).where(flags.c.status.not_in(CLOSED_FLAG_STATUSES))
    if since is not None:
        query = query.where(flags.c.created_at >= since)
    return [
        (
            int(r.id),
            r.severity,
            [str(c) for c in _json_list(r.categories_json)],
            r.created_at,
            r.acknowledged_at,
        )
        for r in connection.execute(query)
    ]


def existing_alerts(connection: Connection, flag_ids: Sequence[int]) -> set[tuple[int, str]]:
    if not flag_ids:
        return set()
    rows = connection.execute(
        select(staff_alerts.c.flag_id, staff_alerts.c.kind).where(
            staff_alerts.c.flag_id.in_(flag_ids)
        )
    )
    return {(int(r.flag_id), r.kind) for r in rows}


def start_alert(connection: Connection, flag_id: int, kind: str, now: datetime) -> int | None:
    """Claim the one alert of this kind for this flag; None if it already exists."""
    dialect = connection.dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    else:
        from sqlalchemy.dialects.sqlite import insert as dialect_insert
    return connection.execute(
        dialect_insert(staff_alerts)
        .values(
            flag_id=flag_id,
            kind=kind,
            status="sending",
            attempts=1,
            created_at=now,
            updated_at=now,
        )
        .on_conflict_do_nothing(index_elements=["flag_id", "kind"])
        .returning(staff_alerts.c.id)
    ).scalar()


def retry_alerts(connection: Connection, now: datetime) -> list[int]:
    """Failed alerts worth another go: marked sending again (one more attempt) and returned."""
    ids = [
        int(i)
        for i in connection.execute(
            select(staff_alerts.c.id).where(
                staff_alerts.c.status == "failed", staff_alerts.c.attempts < ALERT_MAX_ATTEMPTS
            )
        ).scalars()
    ]
    if ids:
        connection.execute(
            update(staff_alerts)
            .where(staff_alerts.c.id.in_(ids), staff_alerts.c.status == "failed")
            .values(status="sending", attempts=staff_alerts.c.attempts + 1, updated_at=now)
        )
    return ids


def alert_jobs(connection: Connection, alert_ids: Sequence[int]) -> list[AlertJob]:
    if not alert_ids:
        return []
    rows = connection.execute(
        select(
            staff_alerts.c.id,
            staff_alerts.c.flag_id,
            staff_alerts.c.kind,
            flags.c.severity,
            flags.c.categories_json,
        )
        .join(flags, flags.c.id == staff_alerts.c.flag_id)
        .where(staff_alerts.c.id.in_(alert_ids))
        .order_by(staff_alerts.c.id)
    )
    return [
        AlertJob(int(r.id), int(r.flag_id), r.kind, r.severity, _json_list(r.categories_json))
        for r in rows
    ]


def finish_alert(connection: Connection, alert_id: int, *, sent: bool, now: datetime) -> None:
    connection.execute(
        update(staff_alerts)
        .where(staff_alerts.c.id == alert_id)
        .values(status="sent" if sent else "failed", updated_at=now, sent_at=now if sent else None)
    )


def stuck_alerts(connection: Connection, older_than: datetime) -> int:
    """Alerts left "sending" by a server that stopped mid-send: marked failed (to retry)."""
    return connection.execute(
        update(staff_alerts)
        .where(
            staff_alerts.c.status == "sending",
            or_(staff_alerts.c.updated_at < older_than),
        )
        .values(status="failed")
    ).rowcount
