"""Migrations: an empty database migrates to a schema equal to storage/tables.py."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from storage.db import create_db_engine, current_revision, downgrade, head_revision, migrate
from storage.tables import ALL_TABLES, metadata

ROOT = Path(__file__).resolve().parents[2]
TABLES = {table.name for table in ALL_TABLES}
# The newest migration; bump it with every new file in storage/migrations/versions.
HEAD = "0010"


def schema_diff(url: str) -> list:
    engine = create_db_engine(url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(
                connection, opts={"compare_type": True, "compare_server_default": True}
            )
            return compare_metadata(context, metadata)
    finally:
        engine.dispose()


def table_names(url: str) -> set[str]:
    engine = create_db_engine(url)
    try:
        return set(inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def test_migrated_schema_equals_the_models(empty_database_url: str) -> None:
    assert current_revision(empty_database_url) is None
    migrate(empty_database_url)
    assert table_names(empty_database_url) == TABLES
    assert schema_diff(empty_database_url) == []
    assert current_revision(empty_database_url) == head_revision() == HEAD
    migrate(empty_database_url)  # already at head: nothing to do
    assert current_revision(empty_database_url) == HEAD


def test_downgrade_to_base_and_back(empty_database_url: str) -> None:
    migrate(empty_database_url)
    downgrade(empty_database_url, "base")
    assert table_names(empty_database_url) == set()
    migrate(empty_database_url)
    assert schema_diff(empty_database_url) == []


def test_the_fixture_database_is_migrated(database_url: str) -> None:
    assert current_revision(database_url) == HEAD
    assert table_names(database_url) == TABLES


def test_developer_alembic_ini_works_from_any_directory(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'nested' / 'dev.db'}"
    environment = {**os.environ, "BESAFE_DATABASE_URL": url}
    result = subprocess.run(
        [sys.executable, "-m", "alembic", "-c", str(ROOT / "alembic.ini"), "upgrade", "head"],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert current_revision(url) == HEAD
    assert schema_diff(url) == []


# A database as the last release left it (revision 0005), with one of everything that
# other tables refer to: the upgrade must keep every row (SQLite rebuilds tables to change
# them, which with foreign keys enforced failed on campaigns and cascade-deleted choices).
_RELEASED_ROWS = [
    "INSERT INTO surveys (id, survey_id, version, title, topic, definition_json, source_sha256,"
    " loaded_at) VALUES (1, 's', 1, 'S', 't', '{}', 'x', :now)",
    "INSERT INTO campaigns (id, code, survey_id, survey_version, title, status, opens_at,"
    " created_at) VALUES (1, 's-v1', 's', 1, 'S', 'open', :now, :now)",
    "INSERT INTO respondents (id, pseudonym, channel, created_at, last_seen_at)"
    " VALUES (1, 'ab', 'web', :now, :now)",
    "INSERT INTO responses (id, respondent_id, campaign_id, survey_id, survey_version, status,"
    " started_at, updated_at) VALUES (1, 1, 1, 's', 1, 'in_progress', :now, :now)",
    "INSERT INTO answers (id, response_id, question_id, status, value_json, answered_at)"
    " VALUES (1, 1, 'q', 'answered', '[\"a\"]', :now)",
    "INSERT INTO answer_choices (response_id, question_id, value) VALUES (1, 'q', 'a')",
    "INSERT INTO messages (id, respondent_id, response_id, direction, text, created_at)"
    " VALUES (1, 1, 1, 'in', 'hello', :now)",
    "INSERT INTO flags (id, respondent_id, message_id, response_id, severity, categories_json,"
    " evidence_json, status, created_at) VALUES (1, 1, 1, 1, 'high', '[]', '[]', 'open', :now)",
]
_KEPT = (
    "surveys",
    "campaigns",
    "respondents",
    "responses",
    "answers",
    "answer_choices",
    "messages",
    "flags",
)


def test_a_released_database_with_data_upgrades_keeping_every_row(
    empty_database_url: str,
) -> None:
    from sqlalchemy import text

    migrate(empty_database_url, "0005")
    engine = create_db_engine(empty_database_url)
    try:
        with engine.begin() as connection:
            for statement in _RELEASED_ROWS:
                connection.execute(text(statement), {"now": "2026-11-01 10:00:00"})
        migrate(empty_database_url)
        with engine.connect() as connection:
            counts = {
                table: connection.execute(text(f"SELECT count(*) FROM {table}")).scalar()
                for table in _KEPT
            }
            campaign = connection.execute(
                text(
                    "SELECT audience_json, reminder_times_json, send_spread_minutes FROM campaigns"
                )
            ).one()
            choice_campaign = connection.execute(
                text("SELECT campaign_id FROM answer_choices")
            ).scalar()
    finally:
        engine.dispose()
    assert counts == dict.fromkeys(_KEPT, 1)
    assert tuple(campaign) == ("{}", "[]", 0)
    assert choice_campaign == 1
    assert current_revision(empty_database_url) == HEAD
    assert schema_diff(empty_database_url) == []
