"""The audit log: a hash chain that `verify_audit` and `main.py audit verify` check.

On SQLite and PostgreSQL. Tampering (an edited field, a deleted, inserted or
reordered entry, a rewritten hash) is found, and the first broken entry named.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import delete, insert, update

from config.settings import PROJECT_ROOT
from storage.audit import (
    GENESIS_HASH,
    append_audit,
    audit_count,
    audit_entries,
    entry_hash,
    verify_audit,
)
from storage.db import create_db_engine
from storage.repository import Repository
from storage.staff import add_user
from storage.tables_staff import audit_log


def _append(repository: Repository, n: int, **fields: object) -> list[int]:
    def work(uow: object) -> list[int]:
        return [
            append_audit(
                uow.connection,  # type: ignore[attr-defined]
                actor_id=None,
                action=str(fields.get("action", "test.event")),
                target=f"flag:{i}",
                address="127.0.0.1",
                details={"i": i, "text": "héllo <b>"},
            )
            for i in range(n)
        ]

    return repository.run(work)


def _verify(repository: Repository) -> int | None:
    return repository.run(lambda uow: verify_audit(uow.connection))


def _tamper(repository: Repository, statement: object) -> None:
    repository.run(lambda uow: uow.connection.execute(statement))


def test_entries_chain_from_genesis_and_verify(repository: Repository) -> None:
    assert _verify(repository) is None  # an empty log is intact
    ids = _append(repository, 5)
    assert ids == [1, 2, 3, 4, 5]
    entries = repository.run(lambda uow: audit_entries(uow.connection))
    by_id = {entry.id: entry for entry in entries}
    assert [e.id for e in entries] == [5, 4, 3, 2, 1]  # newest first
    assert by_id[1].prev_hash == GENESIS_HASH
    for entry_id in range(2, 6):
        assert by_id[entry_id].prev_hash == by_id[entry_id - 1].hash
    assert by_id[3].details == {"i": 2, "text": "héllo <b>"}
    assert by_id[3].target == "flag:2" and by_id[3].address == "127.0.0.1"
    assert _verify(repository) is None
    assert repository.run(lambda uow: audit_count(uow.connection)) == 5


def test_entries_by_target_and_actor(repository: Repository) -> None:
    _append(repository, 3)
    user_id = repository.run(
        lambda uow: add_user(
            uow.connection,
            username="someone",
            role="admin",
            password_hash="x",
            actor_id=None,
            address="cli",
            now=uow.now,
        )
    )
    about = repository.run(lambda uow: audit_entries(uow.connection, target="flag:1"))
    assert [e.id for e in about] == [2]
    created = repository.run(
        lambda uow: audit_entries(uow.connection, target=f"staff_user:{user_id}")
    )
    assert [e.action for e in created] == ["user.created"]
    assert created[0].actor_id is None and created[0].address == "cli"


@pytest.mark.parametrize(
    "how",
    [
        "edit_details",
        "edit_action",
        "edit_time",
        "edit_address",
        "edit_prev_hash",
        "rewrite_hash",
        "delete_middle",
    ],
)
def test_tampering_is_found_at_the_first_broken_entry(repository: Repository, how: str) -> None:
    _append(repository, 6)
    row = audit_log.c.id == 3
    statements = {
        "edit_details": update(audit_log).where(row).values(details_json='{"i":99}'),
        "edit_action": update(audit_log).where(row).values(action="something.else"),
        "edit_time": update(audit_log).where(row).values(created_at=datetime(2000, 1, 1)),
        "edit_address": update(audit_log).where(row).values(address="10.0.0.1"),
        "edit_prev_hash": update(audit_log).where(row).values(prev_hash="f" * 64),
        "rewrite_hash": update(audit_log).where(row).values(hash="f" * 64),
        "delete_middle": delete(audit_log).where(row),
    }
    _tamper(repository, statements[how])
    assert _verify(repository) == (4 if how == "delete_middle" else 3)


def test_a_forged_entry_with_a_correct_own_hash_still_breaks_the_chain(
    repository: Repository,
) -> None:
    _append(repository, 4)
    entry = repository.run(lambda uow: audit_entries(uow.connection, target="flag:1"))[0]
    forged = {
        "id": entry.id,
        "created_at": entry.created_at,
        "actor_id": None,
        "action": "flag.closed",
        "target": entry.target,
        "address": entry.address,
        "details_json": entry.details_json,
        "prev_hash": entry.prev_hash,
    }
    new_hash = entry_hash(**forged)  # type: ignore[arg-type]
    _tamper(
        repository,
        update(audit_log)
        .where(audit_log.c.id == entry.id)
        .values(action="flag.closed", hash=new_hash),
    )
    assert _verify(repository) == entry.id + 1


def test_an_inserted_entry_is_found(repository: Repository) -> None:
    _append(repository, 3)
    _tamper(
        repository,
        insert(audit_log).values(
            id=10,
            created_at=repository.run(lambda uow: audit_entries(uow.connection))[0].created_at,
            actor_id=None,
            action="made.up",
            target=None,
            address=None,
            details_json="{}",
            prev_hash="0" * 64,
            hash="0" * 64,
        ),
    )
    assert _verify(repository) == 10


def test_concurrent_appends_never_fork_the_chain(database_url: str) -> None:
    engines = [create_db_engine(database_url) for _ in range(4)]
    errors: list[BaseException] = []

    def writer(engine_index: int) -> None:
        try:
            repository = Repository(engines[engine_index], attempts=50)
            for _ in range(15):
                _append(repository, 1, action=f"writer.{engine_index}")
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        assert errors == []
        repository = Repository(engines[0])
        assert repository.run(lambda uow: audit_count(uow.connection)) == 60
        assert _verify(repository) is None
    finally:
        for engine in engines:
            engine.dispose()


# ---------------------------------------------------------------- the command line


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("BESAFE_")}
    return subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "main.py"), *args],
        capture_output=True,
        text=True,
        env={**clean, **env},
        timeout=120,
        cwd=PROJECT_ROOT,
    )


@pytest.fixture
def cli_env(database_url: str, tmp_path: Path) -> Iterator[dict[str, str]]:
    yield {"BESAFE_DATABASE_URL": database_url, "BESAFE_DATA_DIR": str(tmp_path)}


def test_audit_verify_command_reports_intact_and_then_the_broken_entry(
    repository: Repository, cli_env: dict[str, str]
) -> None:
    result = run_cli("audit", "verify", env=cli_env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "audit log intact (0 entries)"
    _append(repository, 4)
    result = run_cli("audit", "verify", env=cli_env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "audit log intact (4 entries)"
    _tamper(repository, update(audit_log).where(audit_log.c.id == 2).values(target="flag:99"))
    result = run_cli("audit", "verify", env=cli_env)
    assert result.returncode == 1
    assert "entry 2" in result.stderr
    assert "intact" not in result.stdout
