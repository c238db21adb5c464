"""Staff accounts and sessions: every read and write the staff app makes on its tables.

Functions take an open `Connection` (inside `Repository.run`, so a change and its
audit entry share one transaction). They store what they are given: hashing,
sealing and the rules of login live in `web.staff`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, insert, or_, select, update
from sqlalchemy.engine import Connection, Row
from sqlalchemy.exc import IntegrityError

from storage.audit import append_audit
from storage.tables_staff import audit_log, staff_sessions, staff_users


class DuplicateUsername(Exception):
    """Another account already has this username."""


@dataclass(frozen=True)
class StaffUserRecord:
    id: int
    username: str
    role: str
    password_hash: str
    active: bool
    totp_secret: str | None
    totp_confirmed_at: datetime | None
    totp_last_step: int | None
    failed_logins: int
    locked_until: datetime | None
    created_at: datetime
    password_changed_at: datetime
    last_login_at: datetime | None

    @property
    def has_totp(self) -> bool:
        return self.totp_secret is not None and self.totp_confirmed_at is not None

    def locked_at(self, now: datetime) -> bool:
        return self.locked_until is not None and self.locked_until > now


@dataclass(frozen=True)
class StaffSessionRecord:
    token_hash: str
    user_id: int
    stage: str
    address: str | None
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime


def normalise_username(username: str) -> str:
    return username.strip().lower()


def _user(row: Row) -> StaffUserRecord:
    return StaffUserRecord(**row._mapping)


def _session(row: Row) -> StaffSessionRecord:
    return StaffSessionRecord(**row._mapping)


# ---------------------------------------------------------------- users


def create_user(
    connection: Connection, *, username: str, role: str, password_hash: str, now: datetime
) -> int:
    """A new active account; raises DuplicateUsername when the name is taken."""
    name = normalise_username(username)
    taken = connection.execute(
        select(staff_users.c.id).where(staff_users.c.username == name)
    ).first()
    if taken is not None:
        raise DuplicateUsername(name)
    try:
        with connection.begin_nested():
            return int(
                connection.execute(
                    insert(staff_users)
                    .values(
                        username=name,
                        role=role,
                        password_hash=password_hash,
                        active=True,
                        failed_logins=0,
                        created_at=now,
                        password_changed_at=now,
                    )
                    .returning(staff_users.c.id)
                ).scalar_one()
            )
    except IntegrityError as error:
        raise DuplicateUsername(name) from error


def user_by_username(connection: Connection, username: str) -> StaffUserRecord | None:
    row = connection.execute(
        select(staff_users).where(staff_users.c.username == normalise_username(username))
    ).first()
    return None if row is None else _user(row)


def user_by_id(connection: Connection, user_id: int) -> StaffUserRecord | None:
    row = connection.execute(select(staff_users).where(staff_users.c.id == user_id)).first()
    return None if row is None else _user(row)


def list_users(connection: Connection) -> list[StaffUserRecord]:
    rows = connection.execute(select(staff_users).order_by(staff_users.c.username))
    return [_user(row) for row in rows]


def usernames(connection: Connection, user_ids: Iterable[int]) -> dict[int, str]:
    """{id: username} for the given ids (for showing who did what)."""
    ids = sorted(set(user_ids))
    if not ids:
        return {}
    rows = connection.execute(
        select(staff_users.c.id, staff_users.c.username).where(staff_users.c.id.in_(ids))
    )
    return {int(row.id): str(row.username) for row in rows}


def count_active_admins(connection: Connection) -> int:
    return int(
        connection.execute(
            select(func.count())
            .select_from(staff_users)
            .where(staff_users.c.role == "admin", staff_users.c.active.is_(True))
        ).scalar_one()
    )


def update_user(connection: Connection, user_id: int, **values: object) -> None:
    """Set columns of one account (e.g. role=, active=, password_hash=, locked_until=)."""
    connection.execute(update(staff_users).where(staff_users.c.id == user_id).values(**values))


def record_login_failure(
    connection: Connection,
    user_id: int,
    *,
    now: datetime,
    max_failures: int,
    lockout: timedelta,
) -> bool:
    """Count one failed attempt; True when it locks the account (the count starts again)."""
    failures = int(
        connection.execute(
            update(staff_users)
            .where(staff_users.c.id == user_id)
            .values(failed_logins=staff_users.c.failed_logins + 1)
            .returning(staff_users.c.failed_logins)
        ).scalar_one()
    )
    if failures < max_failures:
        return False
    update_user(connection, user_id, failed_logins=0, locked_until=now + lockout)
    return True


def record_login_success(connection: Connection, user_id: int, *, now: datetime) -> None:
    update_user(connection, user_id, failed_logins=0, locked_until=None, last_login_at=now)


def recent_failures_from(
    connection: Connection, address: str, actions: tuple[str, ...], since: datetime
) -> int:
    """Audited failures (`actions`) from `address` since `since` (the per-address limit)."""
    return int(
        connection.execute(
            select(func.count())
            .select_from(audit_log)
            .where(
                audit_log.c.address == address,
                audit_log.c.action.in_(actions),
                audit_log.c.created_at >= since,
            )
        ).scalar_one()
    )


# ---------------------------------------------------------------- sessions


def create_session(
    connection: Connection,
    *,
    token_hash: str,
    user_id: int,
    stage: str,
    address: str | None,
    now: datetime,
    expires_at: datetime,
) -> None:
    connection.execute(
        insert(staff_sessions).values(
            token_hash=token_hash,
            user_id=user_id,
            stage=stage,
            address=None if address is None else address[:64],
            created_at=now,
            last_seen_at=now,
            expires_at=expires_at,
        )
    )


def session_and_user(
    connection: Connection, token_hash: str
) -> tuple[StaffSessionRecord, StaffUserRecord] | None:
    session_row = connection.execute(
        select(staff_sessions).where(staff_sessions.c.token_hash == token_hash)
    ).first()
    if session_row is None:
        return None
    session = _session(session_row)
    user = user_by_id(connection, session.user_id)
    if user is None:
        return None
    return session, user


def touch_session(connection: Connection, token_hash: str, now: datetime) -> None:
    connection.execute(
        update(staff_sessions)
        .where(staff_sessions.c.token_hash == token_hash)
        .values(last_seen_at=now)
    )


def delete_session(connection: Connection, token_hash: str) -> bool:
    return bool(
        connection.execute(
            delete(staff_sessions).where(staff_sessions.c.token_hash == token_hash)
        ).rowcount
    )


def delete_user_sessions(connection: Connection, user_id: int, *, keep: str | None = None) -> int:
    """End every session of `user_id` (but `keep`, when given); how many."""
    statement = delete(staff_sessions).where(staff_sessions.c.user_id == user_id)
    if keep is not None:
        statement = statement.where(staff_sessions.c.token_hash != keep)
    return int(connection.execute(statement).rowcount)


def delete_expired_sessions(connection: Connection, *, now: datetime, idle_before: datetime) -> int:
    return int(
        connection.execute(
            delete(staff_sessions).where(
                or_(staff_sessions.c.expires_at <= now, staff_sessions.c.last_seen_at < idle_before)
            )
        ).rowcount
    )


def add_user(
    connection: Connection,
    *,
    username: str,
    role: str,
    password_hash: str,
    actor_id: int | None,
    address: str | None,
    now: datetime,
) -> int:
    """Create an account and audit it (`user.created`), in the caller's transaction."""
    user_id = create_user(
        connection, username=username, role=role, password_hash=password_hash, now=now
    )
    append_audit(
        connection,
        actor_id=actor_id,
        action="user.created",
        target=f"staff_user:{user_id}",
        address=address,
        details={"username": normalise_username(username), "role": role},
    )
    return user_id
