"""What is kept only for a while, and the periodic clean-up that forgets it (issue 6).

- `processed_deliveries`: a channel's delivery ids, kept so that a redelivery has no second
  effect. Telegram keeps an unconfirmed update for at most 24 hours, so a week is ample.
- `telegram_outbox`: answered question messages (sent, buttons closed) for a day, so a late
  tap on an old button is known as stale; failed and uncertain sends for a week, for whoever
  looks into them.
- `telegram_inbox`: never deleted here. A row is an update not yet processed (it may hold a
  disclosure); the channel deletes it once processed. Rows older than a day mean the channel
  has not been running; that is logged as a warning.
- Expired staff sessions are swept by the staff app's own job (web/staff/__init__.py).

`apply_retention` is idempotent: running it twice, or on two servers, deletes nothing more.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select

from storage import telegram as telegram_store
from storage.clock import as_naive_utc, utcnow
from storage.repository import Repository, UnitOfWork
from storage.tables import processed_deliveries
from storage.tables_telegram import telegram_inbox

log = logging.getLogger("besafe.storage.retention")

PROCESSED_DELIVERIES_KEPT = timedelta(days=7)
OUTBOX_CLOSED_KEPT = timedelta(days=1)
OUTBOX_GIVEN_UP_KEPT = timedelta(days=7)
INBOX_STALE_AFTER = timedelta(days=1)


@dataclass(frozen=True)
class RetentionOutcome:
    deliveries_deleted: int
    outbox_deleted: int
    inbox_waiting: int  # unprocessed inbox rows older than INBOX_STALE_AFTER (kept)


def apply_retention(uow: UnitOfWork, now: datetime) -> RetentionOutcome:
    """Delete what has been kept long enough, in the caller's transaction."""
    now = as_naive_utc(now)
    deliveries = uow.connection.execute(
        delete(processed_deliveries).where(
            processed_deliveries.c.created_at < now - PROCESSED_DELIVERIES_KEPT
        )
    ).rowcount
    outbox = telegram_store.purge_outbox(uow, now - OUTBOX_CLOSED_KEPT, now - OUTBOX_GIVEN_UP_KEPT)
    waiting = uow.connection.execute(
        select(func.count())
        .select_from(telegram_inbox)
        .where(telegram_inbox.c.received_at < now - INBOX_STALE_AFTER)
    ).scalar_one()
    return RetentionOutcome(int(deliveries or 0), int(outbox), int(waiting))


def run_retention(repository: Repository, now: datetime | None = None) -> RetentionOutcome:
    """One clean-up transaction (the scheduled job), with a log line of what it did."""
    moment = now if now is not None else utcnow()
    outcome = repository.run(lambda uow: apply_retention(uow, moment))
    if outcome.deliveries_deleted or outcome.outbox_deleted:
        log.info(
            "retention applied",
            extra={
                "processed_deliveries": outcome.deliveries_deleted,
                "telegram_outbox": outcome.outbox_deleted,
            },
        )
    if outcome.inbox_waiting:
        log.warning(
            "telegram updates waiting unprocessed for over a day (kept)",
            extra={"count": outcome.inbox_waiting},
        )
    return outcome
