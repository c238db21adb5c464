"""The scheduler's job store (issue 6): APScheduler's `apscheduler_jobs` table.

Declared here with exactly the shape `apscheduler.jobstores.sqlalchemy.SQLAlchemyJobStore`
gives it (id VARCHAR(191), next_run_time FLOAT(25) indexed, job_state BLOB/BYTEA), so
that migration 0008 creates it, the migration test compares it like every other table, and
APScheduler's own "create if missing" finds it there and does nothing.
`tests/scheduler/test_scheduler.py` checks that the two definitions still agree.

A job's state is a pickle of a reference to `bot.scheduler.run_job` and plain arguments (a
handler name, ids): nothing about a young person.
"""

from __future__ import annotations

from sqlalchemy import Float, LargeBinary, Table, Unicode
from sqlmodel import Field, SQLModel

JOBS_TABLE = "apscheduler_jobs"


class SchedulerJobRow(SQLModel, table=True):
    """One scheduled job, owned by APScheduler (its pickled state and next run time)."""

    __tablename__ = JOBS_TABLE

    id: str = Field(primary_key=True, sa_type=Unicode(191))
    # A UTC timestamp in seconds (APScheduler's choice); NULL for a paused job.
    next_run_time: float | None = Field(default=None, sa_type=Float(25), index=True)
    job_state: bytes = Field(sa_type=LargeBinary)


def _table(model: type[SQLModel]) -> Table:
    table = model.__table__  # type: ignore[attr-defined]
    assert isinstance(table, Table)
    return table


scheduler_jobs = _table(SchedulerJobRow)

TABLES: tuple[Table, ...] = (scheduler_jobs,)
