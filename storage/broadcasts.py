"""Reads and writes of subscribers and broadcast sends, on a `UnitOfWork` (one transaction).

Knows nothing about Telegram: addresses arrive sealed, sends are rows. Statements are
SQLAlchemy Core on `storage.tables_broadcasts` and run alike on SQLite and PostgreSQL.

Several server processes may send from one PostgreSQL database: a process claims the
rows it is about to send (`claim_sends`: SELECT .. FOR UPDATE SKIP LOCKED, then marked
`sending` with its name), so no row is claimed twice. A claim left by a process that
died is taken back after a lease; those few rows are the only ones that may be sent
twice. SQLite has one writer at a time, so the same statements are enough there.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import and_, bindparam, exists, func, select, update
from sqlalchemy.engine import Connection

from storage.repository import UnitOfWork
from storage.tables import answer_choices, answers, campaigns, responses
from storage.tables_broadcasts import SEND_STATUSES, broadcast_sends, subscribers
from surveys.demographics import AREA_QUESTION_ID, SCHOOL_YEAR_QUESTION_ID

# A school question is not part of the shipped demographic block; a survey that asks one
# under this id lets audiences name schools.
SCHOOL_QUESTION_ID = "school"
PROFILE_QUESTION_IDS: tuple[str, ...] = (
    SCHOOL_YEAR_QUESTION_ID,
    AREA_QUESTION_ID,
    SCHOOL_QUESTION_ID,
)
UNFINISHED: tuple[str, ...] = ("in_progress", "partial")
_INSERT_CHUNK = 5000

# ---------------------------------------------------------------- subscribers


def subscribe(uow: UnitOfWork, respondent_id: int, channel: str, address: str) -> bool:
    """Opt this respondent in (again); True if they were not opted in before."""
    found = uow.connection.execute(
        select(subscribers.c.unsubscribed_at).where(subscribers.c.respondent_id == respondent_id)
    ).first()
    if found is not None and found[0] is None:
        # Already in: only the address is refreshed (a new secret key seals differently).
        uow.connection.execute(
            update(subscribers)
            .where(subscribers.c.respondent_id == respondent_id)
            .values(address=address, channel=channel)
        )
        return False
    values = {
        "channel": channel,
        "address": address,
        "subscribed_at": uow.now,
        "unsubscribed_at": None,
    }
    uow.connection.execute(
        uow.insert(subscribers)
        .values(respondent_id=respondent_id, **values)
        .on_conflict_do_update(index_elements=["respondent_id"], set_=values)
    )
    return True


def unsubscribe(uow: UnitOfWork, respondent_id: int) -> bool:
    """Opt this respondent out; True if they were opted in. Their queued sends are cancelled
    at once, so nothing more goes to them (rows a sender holds right now may still go)."""
    changed = uow.connection.execute(
        update(subscribers)
        .where(
            subscribers.c.respondent_id == respondent_id, subscribers.c.unsubscribed_at.is_(None)
        )
        .values(unsubscribed_at=uow.now)
    ).rowcount
    uow.connection.execute(
        update(broadcast_sends)
        .where(
            broadcast_sends.c.respondent_id == respondent_id, broadcast_sends.c.status == "queued"
        )
        .values(status="cancelled", finished_at=uow.now, error="opted out")
    )
    return bool(changed)


def is_subscribed(uow: UnitOfWork, respondent_id: int) -> bool:
    found = uow.connection.execute(
        select(subscribers.c.unsubscribed_at).where(subscribers.c.respondent_id == respondent_id)
    ).first()
    return found is not None and found[0] is None


def subscriber_counts(connection: Connection) -> dict[str, int]:
    """{"subscribed": n, "unsubscribed": m}."""
    rows = connection.execute(
        select(subscribers.c.unsubscribed_at.is_(None), func.count()).group_by(
            subscribers.c.unsubscribed_at.is_(None)
        )
    )
    counts = {"subscribed": 0, "unsubscribed": 0}
    for active, count in rows:
        counts["subscribed" if active else "unsubscribed"] = int(count)
    return counts


# ---------------------------------------------------------------- enqueueing


@dataclass(frozen=True)
class CampaignPlan:
    id: int
    code: str
    audience_json: str
    invitation_text: str | None
    reminder_text: str | None
    reminder_times_json: str
    send_spread_minutes: int


def open_campaign_plans(connection: Connection, now: datetime) -> list[CampaignPlan]:
    """Open campaigns (status open, opened, not closed) that have something to send."""
    rows = connection.execute(
        select(
            campaigns.c.id,
            campaigns.c.code,
            campaigns.c.audience_json,
            campaigns.c.invitation_text,
            campaigns.c.reminder_text,
            campaigns.c.reminder_times_json,
            campaigns.c.send_spread_minutes,
        )
        .where(
            campaigns.c.status == "open",
            campaigns.c.opens_at <= now,
            (campaigns.c.closes_at.is_(None)) | (campaigns.c.closes_at > now),
        )
        .order_by(campaigns.c.id)
    )
    return [CampaignPlan(*row) for row in rows]


@dataclass
class Candidate:
    """An opted-in young person who could get a send, and what they told us of themselves."""

    respondent_id: int
    channel: str
    answers: dict[str, str | None] = field(default_factory=dict)  # question id -> value


def invitation_candidates(
    conn: Connection, campaign_id: int, *, with_profiles: bool
) -> list[Candidate]:
    """Opted-in subscribers without this campaign's invitation who have not joined it yet.

    `with_profiles`: also read each one's latest demographic answers (school year, area,
    school), from their own answers in any survey, newest first; an answer they later
    changed to "prefer not to say" counts as unknown."""
    invited = exists().where(
        broadcast_sends.c.campaign_id == campaign_id,
        broadcast_sends.c.respondent_id == subscribers.c.respondent_id,
        broadcast_sends.c.kind == "invitation",
    )
    joined = exists().where(
        responses.c.campaign_id == campaign_id,
        responses.c.respondent_id == subscribers.c.respondent_id,
    )
    rows = conn.execute(
        select(subscribers.c.respondent_id, subscribers.c.channel)
        .where(subscribers.c.unsubscribed_at.is_(None), ~invited, ~joined)
        .order_by(subscribers.c.respondent_id)
    )
    found = {int(rid): Candidate(int(rid), channel) for rid, channel in rows}
    if not found or not with_profiles:
        return list(found.values())
    ranked = (
        select(
            responses.c.respondent_id.label("respondent_id"),
            answers.c.question_id.label("question_id"),
            answer_choices.c.value.label("value"),
            func.row_number()
            .over(
                partition_by=(responses.c.respondent_id, answers.c.question_id),
                order_by=(answers.c.answered_at.desc(), answers.c.id.desc()),
            )
            .label("rank"),
        )
        .select_from(
            answers.join(responses, responses.c.id == answers.c.response_id)
            .join(subscribers, subscribers.c.respondent_id == responses.c.respondent_id)
            .outerjoin(
                answer_choices,
                and_(
                    answer_choices.c.response_id == answers.c.response_id,
                    answer_choices.c.question_id == answers.c.question_id,
                ),
            )
        )
        .where(
            answers.c.question_id.in_(PROFILE_QUESTION_IDS),
            subscribers.c.unsubscribed_at.is_(None),
        )
        .subquery()
    )
    for rid, question_id, value, _ in conn.execute(select(ranked).where(ranked.c.rank == 1)):
        candidate = found.get(int(rid))
        if candidate is not None:
            candidate.answers[question_id] = value
    return list(found.values())


def reminder_candidates(
    connection: Connection, campaign_id: int, seq: int, *, started_before: datetime
) -> list[int]:
    """Opted-in subscribers who started this campaign before `started_before` (the planned
    time of the reminder), have not finished it, and have no reminder number `seq` yet."""
    reminded = exists().where(
        broadcast_sends.c.campaign_id == campaign_id,
        broadcast_sends.c.respondent_id == subscribers.c.respondent_id,
        broadcast_sends.c.kind == "reminder",
        broadcast_sends.c.seq == seq,
    )
    rows = connection.execute(
        select(subscribers.c.respondent_id)
        .join(responses, responses.c.respondent_id == subscribers.c.respondent_id)
        .where(
            responses.c.campaign_id == campaign_id,
            responses.c.status.in_(UNFINISHED),
            responses.c.started_at <= started_before,
            subscribers.c.unsubscribed_at.is_(None),
            ~reminded,
        )
        .order_by(subscribers.c.respondent_id)
    )
    return [int(rid) for (rid,) in rows]


def add_sends(
    uow: UnitOfWork,
    campaign_id: int,
    kind: str,
    seq: int,
    rows: Sequence[tuple[int, datetime]],
) -> int:
    """Queue (respondent id, not before) sends; a send already there is left alone. How many
    were new."""
    if not rows:
        return 0
    # One statement run for many rows (compiled once): a multi-row VALUES would be compiled
    # anew for every chunk, which cost more than the inserts.
    statement = uow.insert(broadcast_sends).on_conflict_do_nothing(
        index_elements=["campaign_id", "respondent_id", "kind", "seq"]
    )
    # rowcount after many rows is not reliable on every driver: count before and after.
    count = (
        select(func.count())
        .select_from(broadcast_sends)
        .where(
            broadcast_sends.c.campaign_id == campaign_id,
            broadcast_sends.c.kind == kind,
            broadcast_sends.c.seq == seq,
        )
    )
    before = uow.connection.execute(count).scalar_one()
    for start in range(0, len(rows), _INSERT_CHUNK):
        chunk = rows[start : start + _INSERT_CHUNK]
        uow.connection.execute(
            statement,
            [
                {
                    "campaign_id": campaign_id,
                    "respondent_id": respondent_id,
                    "kind": kind,
                    "seq": seq,
                    "status": "queued",
                    "not_before": not_before,
                    "attempts": 0,
                    "created_at": uow.now,
                }
                for respondent_id, not_before in chunk
            ],
        )
    return int(uow.connection.execute(count).scalar_one()) - int(before)


# ---------------------------------------------------------------- sending


@dataclass(frozen=True)
class ClaimedSend:
    id: int
    respondent_id: int
    channel: str
    address: str
    code: str
    kind: str
    seq: int
    text: str
    attempts: int


def claim_sends(
    uow: UnitOfWork, now: datetime, limit: int, claimer: str, lease: timedelta
) -> list[ClaimedSend]:
    """Claim up to `limit` due sends for `claimer` (marked `sending`), oldest first.

    Sends that should no longer go are cancelled instead: the person opted out, the
    campaign is no longer open, they joined it before their invitation went, or they
    finished it before a reminder went. Claims older than `lease` (their process died)
    are taken back first."""
    conn = uow.connection
    conn.execute(
        update(broadcast_sends)
        .where(broadcast_sends.c.status == "sending", broadcast_sends.c.claimed_at < now - lease)
        .values(status="queued", claimed_by=None, claimed_at=None)
    )
    due = (
        select(broadcast_sends.c.id)
        .where(broadcast_sends.c.status == "queued", broadcast_sends.c.not_before <= now)
        .order_by(broadcast_sends.c.not_before, broadcast_sends.c.id)
        .limit(limit)
    )
    if conn.dialect.name == "postgresql":
        due = due.with_for_update(skip_locked=True)
    ids = [int(row_id) for (row_id,) in conn.execute(due)]
    if not ids:
        return []
    rows = conn.execute(
        select(
            broadcast_sends.c.id,
            broadcast_sends.c.respondent_id,
            broadcast_sends.c.kind,
            broadcast_sends.c.seq,
            broadcast_sends.c.attempts,
            campaigns.c.code,
            campaigns.c.status,
            campaigns.c.opens_at,
            campaigns.c.closes_at,
            campaigns.c.invitation_text,
            campaigns.c.reminder_text,
            subscribers.c.channel,
            subscribers.c.address,
            subscribers.c.unsubscribed_at,
            responses.c.status,
        )
        .select_from(
            broadcast_sends.join(campaigns, campaigns.c.id == broadcast_sends.c.campaign_id)
            .outerjoin(subscribers, subscribers.c.respondent_id == broadcast_sends.c.respondent_id)
            .outerjoin(
                responses,
                and_(
                    responses.c.campaign_id == broadcast_sends.c.campaign_id,
                    responses.c.respondent_id == broadcast_sends.c.respondent_id,
                ),
            )
        )
        .where(broadcast_sends.c.id.in_(ids))
        .order_by(broadcast_sends.c.not_before, broadcast_sends.c.id)
    )
    claimed: list[ClaimedSend] = []
    cancelled: list[dict] = []
    for row in rows:
        (row_id, rid, kind, seq, attempts, code, status, opens, closes) = row[:9]
        (invitation, reminder, channel, address, unsubscribed, response) = row[9:]
        reason = None
        if address is None or unsubscribed is not None:
            reason = "opted out"
        elif status != "open" or opens > now or (closes is not None and closes <= now):
            reason = "campaign not open"
        elif kind == "invitation" and response is not None:
            reason = "already joined"
        elif kind == "reminder" and response not in UNFINISHED:
            reason = "finished"
        if reason is not None:
            cancelled.append({"p_id": row_id, "p_error": reason})
            continue
        text = (invitation if kind == "invitation" else reminder) or ""
        claimed.append(
            ClaimedSend(int(row_id), int(rid), channel, address, code, kind, seq, text, attempts)
        )
    if cancelled:
        conn.execute(
            update(broadcast_sends)
            .where(broadcast_sends.c.id == bindparam("p_id"))
            .values(status="cancelled", error=bindparam("p_error"), finished_at=now),
            cancelled,
        )
    if claimed:
        conn.execute(
            update(broadcast_sends)
            .where(broadcast_sends.c.id.in_([send.id for send in claimed]))
            .values(status="sending", claimed_by=claimer, claimed_at=now)
        )
    return claimed


def renew_claims(uow: UnitOfWork, ids: Sequence[int], claimer: str) -> None:
    """Our claims on these rows are still good (we are alive and sending them)."""
    if ids:
        uow.connection.execute(
            update(broadcast_sends)
            .where(
                broadcast_sends.c.id.in_(ids),
                broadcast_sends.c.status == "sending",
                broadcast_sends.c.claimed_by == claimer,
            )
            .values(claimed_at=uow.now)
        )


def finish_sends(uow: UnitOfWork, outcomes: Iterable[tuple[int, str, str | None]]) -> None:
    """Record (row id, status, error) outcomes: sent, failed or blocked."""
    params = [
        {"p_id": row_id, "p_status": status, "p_error": error, "p_now": uow.now}
        for row_id, status, error in outcomes
    ]
    if params:
        uow.connection.execute(
            update(broadcast_sends)
            .where(broadcast_sends.c.id == bindparam("p_id"))
            .values(
                status=bindparam("p_status"),
                error=bindparam("p_error"),
                finished_at=bindparam("p_now"),
                claimed_by=None,
                attempts=broadcast_sends.c.attempts + 1,
            ),
            params,
        )


def requeue_sends(uow: UnitOfWork, retries: Iterable[tuple[int, datetime, bool]]) -> None:
    """Put claimed sends back in the queue: (row id, not before, whether it was attempted)."""
    params = [
        {"p_id": row_id, "p_at": at, "p_tried": 1 if tried else 0} for row_id, at, tried in retries
    ]
    if params:
        uow.connection.execute(
            update(broadcast_sends)
            .where(broadcast_sends.c.id == bindparam("p_id"), broadcast_sends.c.status == "sending")
            .values(
                status="queued",
                not_before=bindparam("p_at"),
                claimed_by=None,
                claimed_at=None,
                attempts=broadcast_sends.c.attempts + bindparam("p_tried"),
            ),
            params,
        )


# ---------------------------------------------------------------- progress


@dataclass(frozen=True)
class BroadcastCounts:
    """Counts of one broadcast: a campaign's invitation (seq 0) or its reminder number seq."""

    kind: str
    seq: int
    counts: dict[str, int]
    next_at: datetime | None  # the earliest not-before of what is still queued

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def done(self) -> int:
        """Sends that reached an end (sent, failed, blocked or cancelled)."""
        return self.total - self.counts["queued"] - self.counts["sending"]

    def as_dict(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "seq": self.seq,
            **self.counts,
            "total": self.total,
            "done": self.done,
            "next_at": self.next_at.isoformat() + "Z" if self.next_at else None,
        }


def broadcast_progress(connection: Connection, code: str) -> list[BroadcastCounts] | None:
    """Counts per broadcast of the campaign `code` (None: no such campaign)."""
    campaign_id = connection.execute(
        select(campaigns.c.id).where(campaigns.c.code == code)
    ).scalar_one_or_none()
    if campaign_id is None:
        return None
    rows = connection.execute(
        select(
            broadcast_sends.c.kind,
            broadcast_sends.c.seq,
            broadcast_sends.c.status,
            func.count(),
            func.min(broadcast_sends.c.not_before),
        )
        .where(broadcast_sends.c.campaign_id == campaign_id)
        .group_by(broadcast_sends.c.kind, broadcast_sends.c.seq, broadcast_sends.c.status)
    )
    found: dict[tuple[str, int], tuple[dict[str, int], datetime | None]] = {}
    for kind, seq, status, count, earliest in rows:
        counts, _ = found.setdefault((kind, int(seq)), ({name: 0 for name in SEND_STATUSES}, None))
        counts[status] = int(count)
        if status == "queued":
            if isinstance(earliest, str):
                earliest = datetime.fromisoformat(earliest)
            found[(kind, int(seq))] = (counts, earliest)
    return [
        BroadcastCounts(kind, seq, counts, next_at)
        for (kind, seq), (counts, next_at) in sorted(
            found.items(), key=lambda item: (item[0][0] != "invitation", item[0][1])
        )
    ]
