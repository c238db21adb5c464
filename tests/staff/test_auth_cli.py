"""`python main.py user add`, run as a person would (a real subprocess), on both backends."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from config.settings import PROJECT_ROOT
from main import build_parser
from storage.audit import audit_entries
from storage.repository import Repository
from storage.staff import user_by_username
from web.staff.auth import ROLES
from web.staff.passwords import verify_password


def run_cli(*args: str, env: dict[str, str], stdin: str = "") -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("BESAFE_")}
    return subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "main.py"), *args],
        capture_output=True,
        text=True,
        input=stdin,
        env={**clean, **env},
        timeout=120,
        cwd=PROJECT_ROOT,
    )


@pytest.fixture
def cli_env(database_url: str, tmp_path: Path) -> dict[str, str]:
    return {"BESAFE_DATABASE_URL": database_url, "BESAFE_DATA_DIR": str(tmp_path)}


def test_user_add_reads_the_password_from_stdin(
    cli_env: dict[str, str], repository: Repository
) -> None:
    result = run_cli(
        "user",
        "add",
        "--role",
        "admin",
        "--username",
        "First.Admin",
        "--password-stdin",
        env=cli_env,
        stdin="a good long password\n",
    )
    assert result.returncode == 0, result.stderr
    assert "created admin 'first.admin'" in result.stdout
    record = repository.run(lambda uow: user_by_username(uow.connection, "first.admin"))
    assert record is not None and record.role == "admin" and record.active
    assert verify_password(record.password_hash, "a good long password")
    entry = repository.run(lambda uow: audit_entries(uow.connection, limit=1))[0]
    assert (entry.action, entry.actor_id, entry.address) == ("user.created", None, "cli")
    # The same name again is refused.
    again = run_cli(
        "user",
        "add",
        "--role",
        "facilitator",
        "--username",
        "first.admin",
        "--password-stdin",
        env=cli_env,
        stdin="another long password\n",
    )
    assert again.returncode == 1
    assert "taken" in again.stderr


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (["--role", "admin", "--username", "x"], "a good long password\n", "3 to 64"),
        (["--role", "admin", "--username", "someone"], "short\n", "at least 12"),
        (["--role", "king", "--username", "someone"], "a good long password\n", "invalid choice"),
    ],
)
def test_user_add_refuses_bad_input(
    cli_env: dict[str, str], args: list[str], stdin: str, message: str
) -> None:
    result = run_cli("user", "add", *args, "--password-stdin", env=cli_env, stdin=stdin)
    assert result.returncode == 2
    assert message in result.stderr


def test_the_cli_offers_exactly_the_staff_roles() -> None:
    parser = build_parser()
    commands = next(a for a in parser._actions if a.dest == "command")
    user = commands.choices["user"]  # type: ignore[index]
    add = next(a for a in user._actions if a.dest == "user_command").choices["add"]  # type: ignore[union-attr,index]
    role = next(a for a in add._actions if a.dest == "role")
    assert tuple(role.choices) == ROLES  # type: ignore[arg-type]
