"""Database engines for SQLite (the default) and PostgreSQL, and migrations.

SQLite: every connection gets WAL journaling, `synchronous=NORMAL`, foreign
keys and a short busy timeout. Python's sqlite3 driver is told to keep out of
transaction control (it would otherwise BEGIN only before DML, and never for
SELECTs), and SQLAlchemy emits BEGIN itself; a connection given the execution
option `SQLITE_BEGIN_OPTION="IMMEDIATE"` takes the write lock at BEGIN, so two
writers never deadlock trying to upgrade a read lock (`Repository.run` does so).

PostgreSQL: psycopg 3 with pre-ping; `postgresql://` and `postgres://` URLs
are rewritten to `postgresql+psycopg://`.

`migrate(url)` brings a database to the newest schema with Alembic, from the
migration scripts inside this package (no dependency on the working directory).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, Connection, make_url

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

log = logging.getLogger("besafe.storage")

# Execution option read by the SQLite "begin" hook: "DEFERRED" (default) or "IMMEDIATE".
SQLITE_BEGIN_OPTION = "besafe_sqlite_begin"
_BEGIN_MODES = frozenset({"DEFERRED", "IMMEDIATE", "EXCLUSIVE"})

DEFAULT_LOCK_TIMEOUT_MS = 2000
# Migrations may have to wait for a running app's transactions to finish.
MIGRATION_LOCK_TIMEOUT_MS = 30000


def normalise_url(url: str | URL) -> URL:
    """The SQLAlchemy URL for `url`, with PostgreSQL pointed at the psycopg 3 driver."""
    parsed = make_url(url)
    if parsed.drivername in ("postgres", "postgresql"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def is_sqlite(url: str | URL) -> bool:
    return normalise_url(url).get_backend_name() == "sqlite"


def _sqlite_file(url: URL) -> Path | None:
    database = url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    if url.query.get("mode") == "memory":
        return None
    return Path(database)


def create_db_engine(
    url: str | URL,
    *,
    lock_timeout_ms: int = DEFAULT_LOCK_TIMEOUT_MS,
    background_checkpoints: bool = False,
) -> Engine:
    """An engine for `url` (SQLite or PostgreSQL).

    `lock_timeout_ms` is how long one statement waits for a lock before the
    database reports it busy (SQLite `busy_timeout`, PostgreSQL `lock_timeout`);
    `Repository.run` then retries the whole transaction with backoff.
    `background_checkpoints` (SQLite): commits never checkpoint the WAL themselves;
    run a `WalCheckpointer` beside the engine instead (the server does).
    """
    parsed = normalise_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return _sqlite_engine(parsed, lock_timeout_ms, background_checkpoints)
    if backend == "postgresql":
        connect_args: dict[str, Any] = {
            "application_name": "besafe",
            "options": f"-c lock_timeout={int(lock_timeout_ms)}",
        }
        return create_engine(parsed, pool_pre_ping=True, connect_args=connect_args)
    raise ValueError(f"unsupported database {backend!r}: use sqlite:/// or postgresql://")


def _sqlite_engine(url: URL, lock_timeout_ms: int, background_checkpoints: bool) -> Engine:
    path = _sqlite_file(url)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Leave transaction control to SQLAlchemy (the "begin" hook below).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {int(lock_timeout_ms)}")
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA synchronous = NORMAL")
            cursor.execute("PRAGMA foreign_keys = ON")
            if background_checkpoints:
                cursor.execute("PRAGMA wal_autocheckpoint = 0")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        mode = str(connection.get_execution_options().get(SQLITE_BEGIN_OPTION, "DEFERRED"))
        if mode not in _BEGIN_MODES:
            raise ValueError(f"unknown SQLite BEGIN mode {mode!r}")
        connection.exec_driver_sql(f"BEGIN {mode}")

    return engine


class WalCheckpointer:
    """Checkpoints an SQLite WAL from its own thread, every `interval` seconds.

    By default the commit that fills the WAL past 1,000 pages copies it into the
    database and syncs it, and every message queued behind that commit waits
    (tens of milliseconds: most of the server's tail latency). A PASSIVE
    checkpoint on another connection runs beside the writer instead.
    """

    def __init__(self, engine: Engine, *, interval: float = 1.0) -> None:
        self._engine = engine
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="besafe-checkpoint", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def checkpoint(self) -> tuple[int, int, int]:
        """One PASSIVE checkpoint: (busy, frames in the WAL, frames checkpointed)."""
        raw = self._engine.raw_connection()
        try:
            # No BEGIN around it (the connection is in autocommit): a checkpoint
            # cannot run inside a transaction.
            row = raw.driver_connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        finally:
            raw.close()
        return int(row[0]), int(row[1]), int(row[2])

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self.checkpoint()
            except Exception:  # the next round tries again; the WAL only grows meanwhile
                log.exception("WAL checkpoint failed")


def _alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    config.set_main_option("path_separator", "os")
    if connection is not None:
        config.attributes["connection"] = connection
    return config


@contextmanager
def migration_transaction(connection: Connection) -> Iterator[None]:
    """The one transaction a migration runs in (BEGIN IMMEDIATE on SQLite).

    SQLite changes a column by rebuilding the table (copy, DROP, rename). With foreign
    keys enforced, dropping a table that others refer to fails or cascade-deletes their
    rows, so they are off for the migration (SQLite's documented procedure; the pragma is
    ignored inside a transaction, hence the driver connection before BEGIN) and the
    result is checked before commit.
    """
    sqlite = connection.dialect.name == "sqlite"
    if sqlite:
        connection.connection.driver_connection.execute("PRAGMA foreign_keys = OFF")
    connection.execution_options(**{SQLITE_BEGIN_OPTION: "IMMEDIATE"})
    try:
        with connection.begin():
            yield
            if sqlite:
                broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                if broken:
                    raise RuntimeError(f"migration left rows with missing parents: {broken[:5]}")
    finally:
        if sqlite:
            connection.connection.driver_connection.execute("PRAGMA foreign_keys = ON")


def migrate(url: str | URL, revision: str = "heads") -> None:
    """Upgrade the database at `url` to the newest schema (`alembic upgrade heads`),
    or to `revision`.

    "heads", not "head": work in progress may briefly hold two migration branches;
    a released history is linear.
    """
    engine = create_db_engine(url, lock_timeout_ms=MIGRATION_LOCK_TIMEOUT_MS)
    try:
        with engine.connect() as connection, migration_transaction(connection):
            command.upgrade(_alembic_config(connection), revision)
    finally:
        engine.dispose()


def downgrade(url: str | URL, revision: str) -> None:
    """Take the database at `url` back to `revision` ("base": no tables at all)."""
    engine = create_db_engine(url, lock_timeout_ms=MIGRATION_LOCK_TIMEOUT_MS)
    try:
        with engine.connect() as connection, migration_transaction(connection):
            command.downgrade(_alembic_config(connection), revision)
    finally:
        engine.dispose()


def current_revision(url: str | URL) -> str | None:
    """The Alembic revision the database at `url` is at (None when never migrated)."""
    engine = create_db_engine(url)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()


def head_revision() -> str | None:
    """The newest revision among the migration scripts."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_alembic_config()).get_current_head()
