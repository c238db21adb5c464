"""Engines: SQLite pragmas and transaction control, PostgreSQL URL handling."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import text

from storage.db import WalCheckpointer, create_db_engine, is_sqlite, normalise_url
from storage.repository import Repository, StorageBusyError, UnitOfWork

SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def test_sqlite_connections_get_the_pragmas(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "besafe.db"
    engine = create_db_engine(f"sqlite:///{path}", lock_timeout_ms=1234)
    try:
        with engine.connect() as connection:
            pragma = lambda name: connection.exec_driver_sql(f"PRAGMA {name}").scalar()  # noqa: E731
            assert pragma("journal_mode") == "wal"
            assert pragma("synchronous") == 1  # NORMAL
            assert pragma("foreign_keys") == 1
            assert pragma("busy_timeout") == 1234
        assert path.exists()  # the parent directories were made
    finally:
        engine.dispose()


def test_background_checkpoints_move_the_wal_out_of_the_commits(tmp_path: Path) -> None:
    """Commits leave the WAL alone; the checkpointer copies it into the database."""
    path = tmp_path / "c.db"
    engine = create_db_engine(f"sqlite:///{path}", background_checkpoints=True)
    plain = create_db_engine(f"sqlite:///{tmp_path / 'p.db'}")
    checkpointer = WalCheckpointer(engine, interval=0.05)
    try:
        with plain.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 1000
        with engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 0
        with engine.connect() as connection:
            with connection.begin():
                connection.exec_driver_sql("CREATE TABLE t (x TEXT)")
            for n in range(300):  # well past 1,000 pages of WAL
                with connection.begin():
                    connection.exec_driver_sql("INSERT INTO t VALUES (?)", ("x" * 8000 + str(n),))
        wal = Path(f"{path}-wal")
        busy, frames, done = checkpointer.checkpoint()
        assert busy == 0 and frames > 1000 and done == frames  # none were checkpointed before
        # The thread does the same on its own, and stops when asked.
        with engine.connect() as connection, connection.begin():
            connection.exec_driver_sql("INSERT INTO t VALUES ('more')")
        checkpointer.start()
        for _ in range(200):
            if checkpointer.checkpoint()[1] == checkpointer.checkpoint()[2]:
                break
        checkpointer.stop()
        assert wal.exists()
        with engine.connect() as connection:
            assert connection.exec_driver_sql("SELECT count(*) FROM t").scalar() == 301
    finally:
        checkpointer.stop()
        engine.dispose()
        plain.dispose()


def test_sqlite_transactions_are_explicit(tmp_path: Path) -> None:
    """Rolled back means rolled back, for DDL too (the driver adds no implicit COMMITs)."""
    engine = create_db_engine(f"sqlite:///{tmp_path / 'x.db'}")
    try:
        with engine.connect() as connection:
            with connection.begin() as transaction:
                connection.execute(text("CREATE TABLE t (x INTEGER)"))
                connection.execute(text("INSERT INTO t VALUES (1)"))
                transaction.rollback()
            with connection.begin():
                tables = connection.execute(
                    text("SELECT name FROM sqlite_master WHERE name = 't'")
                ).all()
        assert tables == []
    finally:
        engine.dispose()


@SQLITE_ONLY
def test_repository_run_takes_the_sqlite_write_lock_at_begin(database_url: str) -> None:
    """BEGIN IMMEDIATE: another writer is locked out before `work` has written anything."""
    path = database_url.removeprefix("sqlite:///")
    engine = create_db_engine(database_url)
    outcome: list[str] = []

    def work(uow: UnitOfWork) -> None:
        other = sqlite3.connect(path, timeout=0, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")
            outcome.append("other writer got in")
            other.execute("ROLLBACK")
        except sqlite3.OperationalError as error:
            outcome.append(str(error))
        finally:
            other.close()

    try:
        Repository(engine).run(work)
    finally:
        engine.dispose()
    assert outcome == ["database is locked"]


@SQLITE_ONLY
def test_sqlite_reads_do_not_block_on_a_writer(database_url: str) -> None:
    """WAL: catalogue reads go on while another connection holds the write lock."""
    path = database_url.removeprefix("sqlite:///")
    engine = create_db_engine(database_url, lock_timeout_ms=10)
    holder = sqlite3.connect(path, isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")
        repository = Repository(engine, attempts=2, base_delay=0.001)
        assert repository.survey_definitions() == []
        with pytest.raises(StorageBusyError):
            repository.ensure_campaign("x", "s", 1, "X")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
        engine.dispose()


@pytest.mark.parametrize(
    "url",
    [
        "postgres://u:p@db.example:5433/besafe",
        "postgresql://u:p@db.example:5433/besafe",
        "postgresql+psycopg://u:p@db.example:5433/besafe",
    ],
)
def test_postgres_urls_use_psycopg(url: str) -> None:
    normalised = normalise_url(url)
    assert normalised.drivername == "postgresql+psycopg"
    assert (normalised.host, normalised.port, normalised.database) == ("db.example", 5433, "besafe")
    engine = create_db_engine(url)  # no connection is made yet
    try:
        assert engine.dialect.driver == "psycopg"
        assert engine.pool._pre_ping  # type: ignore[attr-defined]
    finally:
        engine.dispose()
    assert not is_sqlite(url)


def test_other_databases_are_refused() -> None:
    assert is_sqlite("sqlite:///x.db")
    with pytest.raises(ValueError, match="unsupported"):
        create_db_engine("mysql://u@h/db")
