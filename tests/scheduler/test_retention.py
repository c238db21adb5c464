"""Retention (storage/retention.py): what is kept only for a while goes, nothing else does."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

import pytest
from sqlalchemy import insert, select

from storage.clock import utcnow
from storage.repository import Repository
from storage.retention import apply_retention, run_retention
from storage.tables import processed_deliveries
from storage.tables_telegram import telegram_inbox, telegram_outbox


def seed(repository: Repository, now: datetime) -> None:
    day = timedelta(days=1)

    def work(uow) -> None:  # type: ignore[no-untyped-def]
        c = uow.connection
        c.execute(
            insert(processed_deliveries),
            [
                {"channel": "telegram", "delivery_id": "old", "created_at": now - 8 * day},
                {"channel": "telegram", "delivery_id": "recent", "created_at": now - 6 * day},
            ],
        )
        base = {"address": "sealed", "kind": "send", "sent_at": None}
        c.execute(
            insert(telegram_outbox),
            [
                # answered question messages: kept a day
                {**base, "text": "closed-old", "status": "sent", "buttons_open": False,
                 "created_at": now - 2 * day, "sent_at": now - 2 * day},
                {**base, "text": "closed-new", "status": "sent", "buttons_open": False,
                 "created_at": now - 2 * day, "sent_at": now - day / 2},
                # buttons still shown: kept however old
                {**base, "text": "open-old", "status": "sent", "buttons_open": True,
                 "created_at": now - 30 * day, "sent_at": now - 30 * day},
                # given up: kept a week
                {**base, "text": "failed-old", "status": "failed", "buttons_open": False,
                 "created_at": now - 8 * day},
                {**base, "text": "uncertain-new", "status": "uncertain", "buttons_open": False,
                 "created_at": now - 6 * day},
                # not sent yet: never purged
                {**base, "text": "pending-old", "status": "pending", "buttons_open": False,
                 "created_at": now - 30 * day},
            ],
        )  # fmt: skip
        c.execute(
            insert(telegram_inbox),
            [
                {"update_id": 1, "payload": "sealed", "received_at": now - 3 * day},
                {"update_id": 2, "payload": "sealed", "received_at": now},
            ],
        )

    repository.run(work)


def remaining(repository: Repository) -> tuple[set[str], set[str], set[int]]:
    def read(uow) -> tuple[set[str], set[str], set[int]]:  # type: ignore[no-untyped-def]
        c = uow.connection
        return (
            set(c.execute(select(processed_deliveries.c.delivery_id)).scalars()),
            set(c.execute(select(telegram_outbox.c.text)).scalars()),
            set(c.execute(select(telegram_inbox.c.update_id)).scalars()),
        )

    return repository.run(read)


def test_retention_deletes_only_what_has_been_kept_long_enough(
    repository: Repository, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="besafe.storage.retention")
    now = utcnow()
    seed(repository, now)
    outcome = run_retention(repository, now)
    assert (outcome.deliveries_deleted, outcome.outbox_deleted, outcome.inbox_waiting) == (1, 2, 1)
    deliveries, outbox, inbox = remaining(repository)
    assert deliveries == {"recent"}
    assert outbox == {"closed-new", "open-old", "uncertain-new", "pending-old"}
    assert inbox == {1, 2}  # unprocessed updates are never dropped ...
    warned = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert [r.count for r in warned] == [1]  # type: ignore[attr-defined]  # ... but reported
    # Idempotent: a second run (or a second server) deletes nothing more.
    again = repository.run(lambda uow: apply_retention(uow, now))
    assert (again.deliveries_deleted, again.outbox_deleted) == (0, 0)
    assert remaining(repository) == (deliveries, outbox, inbox)
