"""Alembic environment for the Be-Safe schema.

`storage.db.migrate(url)` passes an open connection in
`config.attributes["connection"]`. Run from the command line (`alembic upgrade
head` at the repository root), the URL is `sqlalchemy.url` from the config, or
else the BESAFE_DATABASE_URL environment variable.
"""

from __future__ import annotations

import logging
import os
from logging.config import fileConfig

from alembic import context
from sqlalchemy import text
from sqlalchemy.engine import Connection

import storage.tables  # noqa: F401  (registers the tables on the metadata)
from storage.db import (
    MIGRATION_LOCK_TIMEOUT_MS,
    create_db_engine,
    migration_transaction,
    normalise_url,
)
from storage.tables import metadata

config = context.config
log = logging.getLogger("alembic.env")

# An arbitrary constant: the PostgreSQL advisory lock that serialises migrations.
_MIGRATION_LOCK_ID = 7_317_004_251


def _url() -> str:
    url = config.get_main_option("sqlalchemy.url") or os.environ.get("BESAFE_DATABASE_URL", "")
    if not url:
        raise RuntimeError(
            "no database URL: set BESAFE_DATABASE_URL (or sqlalchemy.url in alembic.ini)"
        )
    return url


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )


def _run(connection: Connection) -> None:
    _configure(connection)
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            # Two processes starting at once must not both create the tables.
            connection.execute(text(f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK_ID})"))
        context.run_migrations()


def run_migrations_offline() -> None:
    context.configure(
        url=normalise_url(_url()),
        target_metadata=metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
        render_as_batch=normalise_url(_url()).get_backend_name() == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    given = config.attributes.get("connection")
    if given is not None:
        _run(given)
        return
    engine = create_db_engine(_url(), lock_timeout_ms=MIGRATION_LOCK_TIMEOUT_MS)
    try:
        with engine.connect() as connection, migration_transaction(connection):
            _run(connection)
    finally:
        engine.dispose()


if config.config_file_name is not None and config.attributes.get("connection") is None:
    fileConfig(config.config_file_name, disable_existing_loggers=False)

if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
