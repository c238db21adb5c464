"""The audit log: append-only, hash-chained, tamper-evident.

Each entry stores the hash of the entry before it (`prev_hash`) and its own
`hash` = SHA-256 over its id, time, actor, action, target, address, details and
`prev_hash`. Ids are 1, 2, 3, ... with no gaps, given here (not by a sequence),
so a deleted, edited, inserted or reordered entry breaks the chain at the first
entry it touches; `verify_audit` names that entry.

Appends are serialised so the chain never forks: on PostgreSQL by a
transaction-level advisory lock, on SQLite by the writer lock that
`Repository.run` takes at BEGIN. Call `append_audit` in the same transaction as
what it records (`Repository.run(lambda uow: ... append_audit(uow.connection, ...))`),
so an action is never done without its audit entry, nor audited without being done.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, insert, select, text
from sqlalchemy.engine import Connection, Row

from storage.clock import utcnow
from storage.tables_staff import audit_log

GENESIS_HASH = "0" * 64
# Arbitrary constant: the PostgreSQL advisory lock that serialises audit appends.
AUDIT_LOCK_ID = 7_317_004_252
_MAX_TARGET = 200
_MAX_ADDRESS = 64


@dataclass(frozen=True)
class AuditEntry:
    id: int
    created_at: datetime
    actor_id: int | None
    action: str
    target: str | None
    address: str | None
    details_json: str
    prev_hash: str
    hash: str

    @property
    def details(self) -> dict:
        try:
            value = json.loads(self.details_json)
        except ValueError:
            return {}
        return value if isinstance(value, dict) else {}

    @staticmethod
    def from_row(row: Row) -> AuditEntry:
        return AuditEntry(
            id=int(row.id),
            created_at=row.created_at,
            actor_id=row.actor_id,
            action=row.action,
            target=row.target,
            address=row.address,
            details_json=row.details_json,
            prev_hash=row.prev_hash,
            hash=row.hash,
        )


def _details_json(details: dict | None) -> str:
    return json.dumps(details or {}, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def entry_hash(
    *,
    id: int,
    created_at: datetime,
    actor_id: int | None,
    action: str,
    target: str | None,
    address: str | None,
    details_json: str,
    prev_hash: str,
) -> str:
    """The hash an entry with these fields must carry."""
    canonical = json.dumps(
        [
            id,
            created_at.isoformat(timespec="microseconds"),
            actor_id,
            action,
            target,
            address,
            details_json,
            prev_hash,
        ],
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def _lock(connection: Connection) -> None:
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": AUDIT_LOCK_ID})


def append_audit(
    connection: Connection,
    *,
    actor_id: int | None,
    action: str,
    target: str | None,
    address: str | None,
    details: dict | None = None,
) -> int:
    """Append one entry in the caller's transaction; returns its id."""
    _lock(connection)
    last = connection.execute(
        select(audit_log.c.id, audit_log.c.hash).order_by(audit_log.c.id.desc()).limit(1)
    ).first()
    new_id = 1 if last is None else int(last.id) + 1
    prev_hash = GENESIS_HASH if last is None else str(last.hash)
    created_at = utcnow()
    row = {
        "id": new_id,
        "created_at": created_at,
        "actor_id": actor_id,
        "action": action[:64],
        "target": None if target is None else target[:_MAX_TARGET],
        "address": None if address is None else address[:_MAX_ADDRESS],
        "details_json": _details_json(details),
        "prev_hash": prev_hash,
    }
    row["hash"] = entry_hash(**row)  # type: ignore[arg-type]
    connection.execute(insert(audit_log).values(**row))
    return new_id


def _entries(connection: Connection, *, batch: int = 1000) -> Iterator[AuditEntry]:
    after = 0
    while True:
        rows = connection.execute(
            select(audit_log).where(audit_log.c.id > after).order_by(audit_log.c.id).limit(batch)
        ).all()
        if not rows:
            return
        for row in rows:
            yield AuditEntry.from_row(row)
        after = int(rows[-1].id)


def verify_audit(connection: Connection) -> int | None:
    """The id of the first broken entry, or None when the whole chain is intact.

    An entry is broken when its id is not the one after its predecessor's, when
    its `prev_hash` is not its predecessor's hash, or when its own hash does not
    match its contents.
    """
    expected_id = 1
    prev_hash = GENESIS_HASH
    for entry in _entries(connection):
        recomputed = entry_hash(
            id=entry.id,
            created_at=entry.created_at,
            actor_id=entry.actor_id,
            action=entry.action,
            target=entry.target,
            address=entry.address,
            details_json=entry.details_json,
            prev_hash=entry.prev_hash,
        )
        if entry.id != expected_id or entry.prev_hash != prev_hash or entry.hash != recomputed:
            return entry.id
        expected_id = entry.id + 1
        prev_hash = entry.hash
    return None


def audit_count(connection: Connection) -> int:
    return int(connection.execute(select(func.count()).select_from(audit_log)).scalar_one())


def audit_entries(
    connection: Connection,
    *,
    target: str | None = None,
    actor_id: int | None = None,
    limit: int = 200,
) -> list[AuditEntry]:
    """The newest entries first, optionally only those about `target` or by `actor_id`."""
    query = select(audit_log).order_by(audit_log.c.id.desc()).limit(limit)
    if target is not None:
        query = query.where(audit_log.c.target == target)
    if actor_id is not None:
        query = query.where(audit_log.c.actor_id == actor_id)
    return [AuditEntry.from_row(row) for row in connection.execute(query)]
