"""The storage layer's one clock: naive UTC datetimes.

Every timestamp in the database is naive UTC, so that SQLite (which has no
time zones) and PostgreSQL (`timestamp without time zone`) store and compare
them the same way.
"""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    """The current time as a naive datetime in UTC."""
    return datetime.now(UTC).replace(tzinfo=None)


def as_naive_utc(moment: datetime) -> datetime:
    """`moment` as naive UTC: an aware datetime is converted, a naive one is taken as UTC."""
    if moment.tzinfo is None:
        return moment
    return moment.astimezone(UTC).replace(tzinfo=None)
