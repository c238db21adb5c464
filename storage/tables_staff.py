"""Tables of the staff app (issue 4): accounts, sessions and the audit log.

Declared with the same conventions as `storage.tables` (import `utcnow` from
`storage.clock`, portable types only); created by migration 0003.

- `staff_users`: one account per person. The password is an Argon2 hash; the
  TOTP secret is encrypted with a key derived from the server secret
  (`web.staff.totp.seal_secret`); `totp_last_step` stops a code being used twice.
- `staff_sessions`: server-side sessions. The key is the SHA-256 of the cookie's
  random token, so a copy of the table cannot be replayed as cookies. `stage` is
  `full` once every factor is done, `totp` while a code is awaited, `enrol`
  while a user who must have a second factor sets one up.
- `audit_log`: append-only and hash-chained (`storage.audit`); `id` is given by
  the appender (1, 2, 3, ... with no gaps), never by a sequence.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    DateTime,
    Index,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlmodel import Field, SQLModel

from storage.clock import utcnow

STAFF_ROLES: tuple[str, ...] = ("admin", "safeguarding_lead", "facilitator", "board_viewer")
SESSION_STAGES: tuple[str, ...] = ("totp", "enrol", "full")


def _one_of(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(value) for value in values)})"


class StaffUserRow(SQLModel, table=True):
    """A member of staff who can log in to /staff."""

    __tablename__ = "staff_users"
    __table_args__ = (
        CheckConstraint(_one_of("role", STAFF_ROLES), name="role"),
        UniqueConstraint("username"),
    )

    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(sa_type=String(64))  # stored lower-case
    role: str = Field(sa_type=String(24))
    password_hash: str = Field(sa_type=Text)
    active: bool = Field(default=True, sa_type=Boolean)
    totp_secret: str | None = Field(default=None, sa_type=Text)  # sealed; None: no 2FA
    totp_confirmed_at: datetime | None = Field(default=None, sa_type=DateTime)
    totp_last_step: int | None = Field(default=None)
    failed_logins: int = Field(default=0)
    locked_until: datetime | None = Field(default=None, sa_type=DateTime)
    created_at: datetime = Field(default_factory=utcnow, sa_type=DateTime)
    password_changed_at: datetime = Field(default_factory=utcnow, sa_type=DateTime)
    last_login_at: datetime | None = Field(default=None, sa_type=DateTime)


class StaffSessionRow(SQLModel, table=True):
    """A logged-in (or half logged-in) browser; the key is the hash of its cookie."""

    __tablename__ = "staff_sessions"
    __table_args__ = (
        CheckConstraint(_one_of("stage", SESSION_STAGES), name="stage"),
        Index("ix_staff_sessions_user_id", "user_id"),
        Index("ix_staff_sessions_expires_at", "expires_at"),
    )

    token_hash: str = Field(primary_key=True, sa_type=String(64))
    user_id: int = Field(foreign_key="staff_users.id", ondelete="CASCADE")
    stage: str = Field(sa_type=String(8))
    address: str | None = Field(default=None, sa_type=String(64))
    created_at: datetime = Field(default_factory=utcnow, sa_type=DateTime)
    last_seen_at: datetime = Field(default_factory=utcnow, sa_type=DateTime)
    expires_at: datetime = Field(sa_type=DateTime)  # the absolute limit


class AuditRow(SQLModel, table=True):
    """One audited event: who (actor_id), when, what (action, target), from where."""

    __tablename__ = "audit_log"
    __table_args__ = (
        Index("ix_audit_log_target", "target"),
        Index("ix_audit_log_address_action_created_at", "address", "action", "created_at"),
    )

    id: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    created_at: datetime = Field(sa_type=DateTime)
    actor_id: int | None = Field(default=None, foreign_key="staff_users.id")
    action: str = Field(sa_type=String(64))
    target: str | None = Field(default=None, sa_type=String(200))
    address: str | None = Field(default=None, sa_type=String(64))
    details_json: str = Field(sa_type=Text)
    prev_hash: str = Field(sa_type=String(64))
    hash: str = Field(sa_type=String(64))


def _table(model: type[SQLModel]) -> Table:
    table = model.__table__  # type: ignore[attr-defined]
    assert isinstance(table, Table)
    return table


staff_users = _table(StaffUserRow)
staff_sessions = _table(StaffSessionRow)
audit_log = _table(AuditRow)

TABLES: tuple[Table, ...] = (staff_users, staff_sessions, audit_log)
