"""Tables of the safeguarding review queue (issue 4): flag history, referrals, alerts.

Declared with the same conventions as `storage.tables` (import `utcnow` from
`storage.clock`, portable types only); created by migration 0004, which also
adds the review columns of `flags` (claimed_by, acknowledged_at, closed_at, ...).

Staff are referred to by their `staff_users` id (accounts are deactivated,
never deleted, so the history keeps its names). Nothing here identifies a
young person.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, DateTime, Index, String, Table, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from storage.clock import utcnow

# What can happen to a flag; each is one row of `flag_events` (and one audit entry).
FLAG_ACTIONS: tuple[str, ...] = (
    "claim",
    "acknowledge",
    "reply",
    "reply_failed",
    "referral",
    "not_a_concern",
    "close",
    "reopen",
    "note",
    "alert",
    "escalation",
)
REFERRAL_DESTINATIONS: tuple[str, ...] = (
    "front_door_mash",
    "police",
    "school_dsl",
    "health",
    "other",
)
ALERT_KINDS: tuple[str, ...] = ("new_flag", "escalation")
ALERT_STATUSES: tuple[str, ...] = ("sending", "sent", "failed")


def _one_of(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(value) for value in values)})"


class FlagEventRow(SQLModel, table=True):
    """One entry of a flag's history: who did what, when (actor None: the system)."""

    __tablename__ = "flag_events"
    __table_args__ = (
        CheckConstraint(_one_of("action", FLAG_ACTIONS), name="action"),
        Index("ix_flag_events_flag_id_id", "flag_id", "id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    flag_id: int = Field(foreign_key="flags.id")
    actor_id: int | None = Field(default=None, foreign_key="staff_users.id")
    action: str = Field(sa_type=String(24))
    # A note, reason or outcome in the lead's words (shown escaped, like everything).
    text: str | None = Field(default=None, sa_type=Text)
    details_json: str | None = Field(default=None, sa_type=Text)
    created_at: datetime = Field(default_factory=utcnow, sa_type=DateTime)


class FlagReferralRow(SQLModel, table=True):
    """A referral made about a flag: where to, and the receiving service's reference."""

    __tablename__ = "flag_referrals"
    __table_args__ = (
        CheckConstraint(_one_of("destination", REFERRAL_DESTINATIONS), name="destination"),
        Index("ix_flag_referrals_flag_id", "flag_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    flag_id: int = Field(foreign_key="flags.id")
    destination: str = Field(sa_type=String(24))
    reference: str = Field(sa_type=String(200))
    created_by: int | None = Field(default=None, foreign_key="staff_users.id")
    created_at: datetime = Field(default_factory=utcnow, sa_type=DateTime)


class StaffAlertRow(SQLModel, table=True):
    """A notice to staff about a flag (new urgent/high flag, or a missed deadline).

    At most one per (flag, kind): the row is inserted before sending, so a
    restarted server or a second job run never notifies twice.
    """

    __tablename__ = "staff_alerts"
    __table_args__ = (
        UniqueConstraint("flag_id", "kind"),
        CheckConstraint(_one_of("kind", ALERT_KINDS), name="kind"),
        CheckConstraint(_one_of("status", ALERT_STATUSES), name="status"),
        Index("ix_staff_alerts_status", "status"),
    )

    id: int | None = Field(default=None, primary_key=True)
    flag_id: int = Field(foreign_key="flags.id")
    kind: str = Field(sa_type=String(16))
    status: str = Field(default="sending", sa_type=String(16))
    attempts: int = Field(default=0)
    created_at: datetime = Field(default_factory=utcnow, sa_type=DateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=DateTime)
    sent_at: datetime | None = Field(default=None, sa_type=DateTime)


def _table(model: type[SQLModel]) -> Table:
    table = model.__table__  # type: ignore[attr-defined]
    assert isinstance(table, Table)
    return table


flag_events = _table(FlagEventRow)
flag_referrals = _table(FlagReferralRow)
staff_alerts = _table(StaffAlertRow)

TABLES: tuple[Table, ...] = (flag_events, flag_referrals, staff_alerts)
