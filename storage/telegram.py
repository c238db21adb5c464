"""Reads and writes of the Telegram channel's tables, on a `UnitOfWork` (one transaction).

Knows nothing about Telegram itself: payloads and addresses arrive encrypted,
outbox rows are rows. Statements are SQLAlchemy Core on `storage.tables_telegram`; the
ones that run with every message are built once and run through the unit of work's
driver-level path (`UnitOfWork._hot`, as the repository's own hot statements).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, delete, insert, select, update

from storage.repository import UnitOfWork
from storage.tables import respondents
from storage.tables_telegram import telegram_blocked, telegram_inbox, telegram_outbox


@dataclass(frozen=True)
class NewOutbox:
    """An outbox row to write."""

    address: str
    kind: str  # send | edit | clear
    text: str | None = None
    markup_json: str | None = None
    question_id: str | None = None
    message_id: int | None = None  # the message to edit (edit, clear)
    respondent_id: int | None = None


@dataclass(frozen=True)
class OutboxRecord:
    id: int
    respondent_id: int | None
    address: str
    kind: str
    text: str | None
    markup_json: str | None
    question_id: str | None
    message_id: int | None
    status: str
    buttons_open: bool
    sent_at: datetime | None


_OUTBOX_COLUMNS = (
    telegram_outbox.c.id,
    telegram_outbox.c.respondent_id,
    telegram_outbox.c.address,
    telegram_outbox.c.kind,
    telegram_outbox.c.text,
    telegram_outbox.c.markup_json,
    telegram_outbox.c.question_id,
    telegram_outbox.c.message_id,
    telegram_outbox.c.status,
    telegram_outbox.c.buttons_open,
    telegram_outbox.c.sent_at,
)

# ---------------------------------------------------------------- inbox


def store_inbox(uow: UnitOfWork, updates: Sequence[tuple[int, str]]) -> None:
    """Keep (update_id, encrypted payload) rows; an update already kept is left alone."""
    if not updates:
        return
    uow.connection.execute(
        uow.insert(telegram_inbox)
        .values(
            [
                {"update_id": update_id, "payload": payload, "received_at": uow.now}
                for update_id, payload in updates
            ]
        )
        .on_conflict_do_nothing(index_elements=["update_id"])
    )


_INBOX_DELETE = delete(telegram_inbox).where(telegram_inbox.c.update_id == bindparam("p_update"))


def delete_inbox(uow: UnitOfWork, update_id: int) -> None:
    uow._hot(_INBOX_DELETE, {"p_update": update_id})


def inbox(uow: UnitOfWork) -> list[tuple[int, str]]:
    """Every kept update, oldest first."""
    rows = uow.connection.execute(
        select(telegram_inbox.c.update_id, telegram_inbox.c.payload).order_by(
            telegram_inbox.c.update_id
        )
    )
    return [(int(update_id), payload) for update_id, payload in rows]


# ---------------------------------------------------------------- outbox

_OUTBOX_INSERT = insert(telegram_outbox).returning(telegram_outbox.c.id)


def add_outbox(uow: UnitOfWork, rows: Sequence[NewOutbox]) -> list[int]:
    """Write pending outbox rows (in order); their ids."""
    ids = []
    for row in rows:
        params = {
            "respondent_id": row.respondent_id,
            "address": row.address,
            "kind": row.kind,
            "text": row.text,
            "markup_json": row.markup_json,
            "question_id": row.question_id,
            "message_id": row.message_id,
            "status": "pending",
            "buttons_open": row.kind == "send" and row.markup_json is not None,
            "created_at": uow.now,
            "sent_at": None,
        }
        ids.append(int(uow._hot(_OUTBOX_INSERT, params).scalar_one()))
    return ids


_OPEN = (
    select(telegram_outbox.c.id, telegram_outbox.c.message_id)
    .where(
        telegram_outbox.c.respondent_id == bindparam("p_respondent"),
        telegram_outbox.c.buttons_open.is_(True),
    )
    .order_by(telegram_outbox.c.id)
)


def open_buttons(uow: UnitOfWork, respondent_id: int) -> list[tuple[int, int | None]]:
    """(row id, Telegram message id or None while unsent) of messages still showing buttons."""
    rows = uow._hot(_OPEN, {"p_respondent": respondent_id})
    return [(int(row_id), message_id) for row_id, message_id in rows]


def tapped_row(uow: UnitOfWork, respondent_id: int, message_id: int) -> bool | None:
    """Whether the sent message `message_id` still shows its buttons (None: not known)."""
    found = uow._hot(_TAPPED, {"p_respondent": respondent_id, "p_message": message_id}).first()
    return None if found is None else bool(found[0])


_TAPPED = select(telegram_outbox.c.buttons_open).where(
    telegram_outbox.c.respondent_id == bindparam("p_respondent"),
    telegram_outbox.c.message_id == bindparam("p_message"),
    telegram_outbox.c.kind == "send",
)


_CLOSE = (
    update(telegram_outbox)
    .where(telegram_outbox.c.id == bindparam("p_id"))
    .values(buttons_open=bindparam("p_open"))
)


def close_buttons(uow: UnitOfWork, ids: Sequence[int]) -> None:
    """These messages no longer show buttons (kept a while, so a late tap is known stale)."""
    if ids:
        uow._hot(_CLOSE, [{"p_id": row_id, "p_open": False} for row_id in ids])


def purge_outbox(uow: UnitOfWork, closed_before: datetime, given_up_before: datetime) -> int:
    """Forget closed question messages and given-up rows once they are old enough."""
    closed = uow.connection.execute(
        delete(telegram_outbox).where(
            telegram_outbox.c.status == "sent",
            telegram_outbox.c.buttons_open.is_(False),
            telegram_outbox.c.sent_at < closed_before,
        )
    ).rowcount
    given_up = uow.connection.execute(
        delete(telegram_outbox).where(
            telegram_outbox.c.status.in_(("failed", "uncertain")),
            telegram_outbox.c.created_at < given_up_before,
        )
    ).rowcount
    return int(closed or 0) + int(given_up or 0)


_DELETE = delete(telegram_outbox).where(telegram_outbox.c.id == bindparam("p_id"))


def delete_outbox(uow: UnitOfWork, ids: Sequence[int]) -> None:
    if ids:
        uow._hot(_DELETE, [{"p_id": row_id} for row_id in ids])


_MARK_SENT = (
    update(telegram_outbox)
    .where(telegram_outbox.c.id == bindparam("p_id"))
    .values(status="sent", message_id=bindparam("p_message"), sent_at=bindparam("p_now"))
)


def finish_sends(uow: UnitOfWork, done: Sequence[int], kept: Sequence[tuple[int, int]]) -> None:
    """Sent: delete the `done` rows; keep the `kept` (row id, message id) ones as sent,
    since their buttons must be taken away later."""
    delete_outbox(uow, done)
    if kept:
        uow._hot(
            _MARK_SENT,
            [
                {"p_id": row_id, "p_message": message_id, "p_now": uow.now}
                for row_id, message_id in kept
            ],
        )


def mark_outbox(uow: UnitOfWork, ids: Sequence[int], status: str) -> None:
    """Give up on rows: `failed` (refused) or `uncertain` (may or may not have arrived)."""
    if ids:
        uow.connection.execute(
            update(telegram_outbox)
            .where(telegram_outbox.c.id.in_(ids))
            .values(status=status, buttons_open=False)
        )


def pending_outbox(uow: UnitOfWork) -> list[OutboxRecord]:
    """Rows still to send, in the order they were written."""
    rows = uow.connection.execute(
        select(*_OUTBOX_COLUMNS)
        .where(telegram_outbox.c.status == "pending")
        .order_by(telegram_outbox.c.id)
    )
    return [OutboxRecord(*row) for row in rows]


def open_questions_since(uow: UnitOfWork, since: datetime, before: datetime) -> list[OutboxRecord]:
    """Sent messages still showing buttons, sent from `since` until `before`, newest per
    respondent."""
    rows = uow.connection.execute(
        select(*_OUTBOX_COLUMNS)
        .where(
            telegram_outbox.c.status == "sent",
            telegram_outbox.c.buttons_open.is_(True),
            telegram_outbox.c.sent_at >= since,
            telegram_outbox.c.sent_at < before,
            telegram_outbox.c.respondent_id.is_not(None),
        )
        .order_by(telegram_outbox.c.id.desc())
    )
    newest: dict[int, OutboxRecord] = {}
    for row in rows:
        record = OutboxRecord(*row)
        assert record.respondent_id is not None
        newest.setdefault(record.respondent_id, record)
    return list(newest.values())


# ---------------------------------------------------------------- blocked


def mark_blocked(uow: UnitOfWork, respondent_id: int) -> None:
    uow.connection.execute(
        uow.insert(telegram_blocked)
        .values(respondent_id=respondent_id, blocked_at=uow.now)
        .on_conflict_do_nothing(index_elements=["respondent_id"])
    )


_UNBLOCK = delete(telegram_blocked).where(
    telegram_blocked.c.respondent_id == bindparam("p_respondent")
)


def clear_blocked(uow: UnitOfWork, respondent_id: int) -> None:
    uow._hot(_UNBLOCK, {"p_respondent": respondent_id})


def is_blocked(uow: UnitOfWork, pseudonym: str) -> bool:
    """Whether the respondent with this pseudonym has blocked the bot."""
    return (
        uow.connection.execute(
            select(telegram_blocked.c.respondent_id)
            .join(respondents, respondents.c.id == telegram_blocked.c.respondent_id)
            .where(respondents.c.pseudonym == pseudonym)
        ).first()
        is not None
    )


def respondent_id_of(uow: UnitOfWork, pseudonym: str) -> int | None:
    return uow.connection.execute(
        select(respondents.c.id).where(respondents.c.pseudonym == pseudonym)
    ).scalar_one_or_none()
