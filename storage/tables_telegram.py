"""Tables of the Telegram channel (issue 5): inbox, outbox, blocked respondents.

Declared with the same conventions as `storage.tables` (import `utcnow` from
`storage.clock`, portable types only); created by migration 0002.

No raw Telegram chat id or username is stored in clear anywhere:
- an inbox row holds an update only from its arrival until it is processed, and
  then encrypted (it carries the chat id and the person's name);
- an outbox row names where to send as a relay handle (`bot.relay.seal_handle`),
  and is deleted once sent unless its buttons still have to be taken away;
- a blocked mark is keyed by respondent id (the pseudonym's row).
(Which updates were processed is `processed_deliveries`, in `storage.tables`.)
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, CheckConstraint, DateTime, Index, String, Table, Text
from sqlmodel import Field, SQLModel

from storage.clock import utcnow

OUTBOX_STATUSES: tuple[str, ...] = ("pending", "sent", "failed", "uncertain")
OUTBOX_KINDS: tuple[str, ...] = ("send", "edit", "clear")


def _one_of(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(value) for value in values)})"


class TelegramInboxRow(SQLModel, table=True):
    """An update received but not yet processed (polling mode stores before confirming)."""

    __tablename__ = "telegram_inbox"

    update_id: int = Field(
        primary_key=True, sa_type=BigInteger, sa_column_kwargs={"autoincrement": False}
    )
    payload: str = Field(sa_type=Text)  # the update's JSON, encrypted (bot.telegram.store)
    received_at: datetime = Field(default_factory=utcnow, sa_type=DateTime)


class TelegramOutboxRow(SQLModel, table=True):
    """One Bot API call to make: a message to send, or buttons to take away.

    Written in the same transaction as the turn that produced it ("a send is a
    row before it is a request"); `status` pending until the call succeeds, then
    the row is deleted, or kept as sent while `buttons_open` (its keyboard must be
    removed later), or marked failed/uncertain when the sender gives up.
    """

    __tablename__ = "telegram_outbox"
    __table_args__ = (
        CheckConstraint(_one_of("status", OUTBOX_STATUSES), name="status"),
        CheckConstraint(_one_of("kind", OUTBOX_KINDS), name="kind"),
        Index("ix_telegram_outbox_status_id", "status", "id"),
        Index("ix_telegram_outbox_respondent_id_buttons_open", "respondent_id", "buttons_open"),
    )

    id: int | None = Field(default=None, primary_key=True)
    respondent_id: int | None = Field(
        default=None, foreign_key="respondents.id", ondelete="CASCADE"
    )
    address: str = Field(sa_type=Text)  # bot.relay.seal_handle(secret, "telegram", chat id)
    kind: str = Field(sa_type=String(8))  # send | edit (new text, no buttons) | clear (buttons)
    text: str | None = Field(default=None, sa_type=Text)
    markup_json: str | None = Field(default=None, sa_type=Text)  # inline keyboard as sent
    question_id: str | None = Field(default=None, sa_type=String(100))
    message_id: int | None = Field(default=None, sa_type=BigInteger)  # Telegram's, once known
    status: str = Field(default="pending", sa_type=String(16))
    buttons_open: bool = Field(default=False, sa_type=Boolean)
    created_at: datetime = Field(default_factory=utcnow, sa_type=DateTime)
    sent_at: datetime | None = Field(default=None, sa_type=DateTime)


class TelegramBlockedRow(SQLModel, table=True):
    """A respondent whose chat refused our messages (403: they blocked the bot)."""

    __tablename__ = "telegram_blocked"

    respondent_id: int = Field(
        primary_key=True,
        foreign_key="respondents.id",
        ondelete="CASCADE",
        sa_column_kwargs={"autoincrement": False},
    )
    blocked_at: datetime = Field(default_factory=utcnow, sa_type=DateTime)


def _table(model: type[SQLModel]) -> Table:
    table = model.__table__  # type: ignore[attr-defined]
    assert isinstance(table, Table)
    return table


telegram_inbox = _table(TelegramInboxRow)
telegram_outbox = _table(TelegramOutboxRow)
telegram_blocked = _table(TelegramBlockedRow)

TABLES: tuple[Table, ...] = (telegram_inbox, telegram_outbox, telegram_blocked)
