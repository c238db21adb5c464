"""Tables of subscribers and broadcasts (issue 6): who opted in, and every send to them.

Declared with the same conventions as `storage.tables` (import `utcnow` from
`storage.clock`, portable types only); created by migration 0007.

No raw chat id: a subscriber is keyed by respondent id (the pseudonym's row) and
carries the channel address sealed (`bot.relay.seal_handle`). A send row is written
before its request is made ("a send is a row before it is a request"); one row per
(campaign, respondent, kind, number) makes enqueueing idempotent and an invitation
go to a person once ever.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, DateTime, Index, String, Table, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from storage.clock import utcnow

SEND_KINDS: tuple[str, ...] = ("invitation", "reminder")
# queued: waiting for its not-before time; sending: claimed by one server process (see
# storage.broadcasts.claim_sends); then sent, failed (refused, or may or may not have
# arrived), blocked (403: the person blocked the bot) or cancelled (they opted out, the
# campaign closed, or they finished the survey before a reminder went).
SEND_STATUSES: tuple[str, ...] = ("queued", "sending", "sent", "failed", "blocked", "cancelled")


def _one_of(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(value) for value in values)})"


class SubscriberRow(SQLModel, table=True):
    """A young person who asked to hear about new surveys (opted in), or did and stopped."""

    __tablename__ = "subscribers"

    respondent_id: int = Field(
        primary_key=True,
        foreign_key="respondents.id",
        ondelete="CASCADE",
        sa_column_kwargs={"autoincrement": False},
    )
    channel: str = Field(sa_type=String(32))
    address: str = Field(sa_type=Text)  # bot.relay.seal_handle(secret, channel, user key)
    subscribed_at: datetime = Field(default_factory=utcnow, sa_type=DateTime)
    # Set when they opt out (/unsubscribe, STOP, or blocking the bot); None while opted in.
    unsubscribed_at: datetime | None = Field(default=None, sa_type=DateTime)


class BroadcastSendRow(SQLModel, table=True):
    """One invitation or reminder to one subscriber."""

    __tablename__ = "broadcast_sends"
    __table_args__ = (
        UniqueConstraint("campaign_id", "respondent_id", "kind", "seq"),
        CheckConstraint(_one_of("kind", SEND_KINDS), name="kind"),
        CheckConstraint(_one_of("status", SEND_STATUSES), name="status"),
        Index("ix_broadcast_sends_status_not_before", "status", "not_before"),
        Index("ix_broadcast_sends_respondent_id_status", "respondent_id", "status"),
    )

    id: int | None = Field(default=None, primary_key=True)
    campaign_id: int = Field(foreign_key="campaigns.id", ondelete="CASCADE")
    respondent_id: int = Field(foreign_key="respondents.id", ondelete="CASCADE")
    kind: str = Field(sa_type=String(16))
    seq: int = Field(default=0)  # 0 for the invitation; 1..N for the planned reminders
    status: str = Field(default="queued", sa_type=String(16))
    not_before: datetime = Field(default_factory=utcnow, sa_type=DateTime)
    attempts: int = Field(default=0)
    claimed_by: str | None = Field(default=None, sa_type=String(64))
    claimed_at: datetime | None = Field(default=None, sa_type=DateTime)
    finished_at: datetime | None = Field(default=None, sa_type=DateTime)
    error: str | None = Field(default=None, sa_type=Text)
    created_at: datetime = Field(default_factory=utcnow, sa_type=DateTime)


def _table(model: type[SQLModel]) -> Table:
    table = model.__table__  # type: ignore[attr-defined]
    assert isinstance(table, Table)
    return table


subscribers = _table(SubscriberRow)
broadcast_sends = _table(BroadcastSendRow)

TABLES: tuple[Table, ...] = (subscribers, broadcast_sends)
