"""Database fixtures (a pytest plugin: `pytest_plugins = ["tests.db_fixtures"]`).

- `postgres_server` (session): a throwaway PostgreSQL cluster made with initdb
  in a temporary directory and removed at the end, or the server named by
  BESAFE_TEST_POSTGRES_URL. Without PostgreSQL binaries its tests are skipped,
  unless BESAFE_REQUIRE_POSTGRES=1, when they fail.
- `database_url` (function): a migrated database, parametrised over
  "sqlite" and "postgresql" (override with
  `@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)`).
  SQLite: a file under tmp_path; PostgreSQL: a fresh database cloned from a
  migrated template, dropped afterwards.
- `empty_database_url` (function): the same, but never migrated.
- `repository`: a `storage.repository.Repository` on `database_url`.
"""

from __future__ import annotations

import contextlib
import glob
import itertools
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql
from sqlalchemy.engine import make_url

from storage.db import create_db_engine, migrate
from storage.repository import Repository

POSTGRES_URL_ENV = "BESAFE_TEST_POSTGRES_URL"
REQUIRE_POSTGRES_ENV = "BESAFE_REQUIRE_POSTGRES"
BACKENDS = (
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
)
_START_TIMEOUT = 30.0
_counter = itertools.count()


@dataclass
class PostgresServer:
    """A PostgreSQL server the tests may create and drop databases on."""

    host: str
    port: int
    user: str
    password: str | None
    admin_database: str

    def url(self, database: str) -> str:
        return (
            make_url("postgresql+psycopg://")
            .set(
                username=self.user,
                password=self.password,
                host=self.host,
                port=self.port,
                database=database,
            )
            .render_as_string(hide_password=False)
        )

    def admin_connect(self) -> psycopg.Connection[Any]:
        return psycopg.connect(
            host=self.host,
            port=self.port,
            user=self.user,
            password=self.password,
            dbname=self.admin_database,
            autocommit=True,
            connect_timeout=5,
        )

    def create_database(self, name: str, template: str | None = None) -> str:
        statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if template is not None:
            statement = sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(name), sql.Identifier(template)
            )
        with self.admin_connect() as connection:
            connection.execute(statement)
        return self.url(name)

    def drop_database(self, name: str) -> None:
        with self.admin_connect() as connection:
            connection.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def _postgres_bindir() -> Path | None:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    candidates += sorted(glob.glob("/usr/local/pgsql*/bin"), reverse=True)
    found = shutil.which("initdb")
    if found:
        candidates.insert(0, str(Path(found).parent))
    pg_config = shutil.which("pg_config")
    if pg_config:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            bindir = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, check=True
            ).stdout.strip()
            candidates.insert(0, bindir)
    for candidate in candidates:
        path = Path(candidate)
        if (path / "initdb").is_file() and (path / "postgres").is_file():
            return path
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _unavailable(reason: str) -> None:
    if os.environ.get(REQUIRE_POSTGRES_ENV) == "1":
        pytest.fail(f"PostgreSQL is required ({REQUIRE_POSTGRES_ENV}=1) but {reason}")
    pytest.skip(f"PostgreSQL tests skipped: {reason}")


def _as_user() -> dict[str, Any]:
    """subprocess arguments that drop root to the `postgres` user (initdb refuses root)."""
    if os.geteuid() != 0:
        return {}
    import pwd

    try:
        entry = pwd.getpwnam("postgres")
    except KeyError:
        _unavailable("running as root and there is no 'postgres' user to run the server as")
        raise  # pragma: no cover - _unavailable raises
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


def _wait_ready(server: PostgresServer, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + _START_TIMEOUT
    last: Exception | None = None
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"PostgreSQL exited with {process.returncode}:\n{log.read_text(errors='replace')}"
            )
        try:
            with server.admin_connect() as connection:
                connection.execute("SELECT 1")
            return
        except psycopg.OperationalError as error:
            last = error
            time.sleep(0.05)
    raise RuntimeError(f"PostgreSQL did not become ready in {_START_TIMEOUT}s: {last}")


@contextlib.contextmanager
def _throwaway_cluster(bindir: Path) -> Iterator[PostgresServer]:
    run_as = _as_user()
    root = Path(tempfile.mkdtemp(prefix="besafe-pg-"))
    data, sockets, log = root / "data", root / "sockets", root / "postgres.log"
    sockets.mkdir()
    log.touch()
    if run_as:
        for path in (root, sockets, log):
            os.chown(path, run_as["user"], run_as["group"])
    os.chmod(root, 0o700)
    process: subprocess.Popen[bytes] | None = None
    try:
        subprocess.run(
            [
                str(bindir / "initdb"),
                "-D",
                str(data),
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            ],
            check=True,
            capture_output=True,
            cwd=root,
            **run_as,
        )
        port = _free_port()
        with log.open("ab") as log_file:
            process = subprocess.Popen(
                [
                    str(bindir / "postgres"),
                    "-D",
                    str(data),
                    "-p",
                    str(port),
                    "-k",
                    str(sockets),
                    "-c",
                    "listen_addresses=127.0.0.1",
                    "-c",
                    "fsync=off",
                    "-c",
                    "synchronous_commit=off",
                    "-c",
                    "full_page_writes=off",
                    "-c",
                    "max_connections=200",
                ],
                stdout=log_file,
                stderr=subprocess.STDOUT,
                cwd=root,
                **run_as,
            )
        server = PostgresServer("127.0.0.1", port, "postgres", None, "postgres")
        _wait_ready(server, process, log)
        yield server
    except subprocess.CalledProcessError as error:
        output = (error.stdout or b"").decode(errors="replace") + (error.stderr or b"").decode(
            errors="replace"
        )
        raise RuntimeError(f"initdb failed:\n{output}") from error
    finally:
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGINT)  # "fast" shutdown
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    given = os.environ.get(POSTGRES_URL_ENV)
    if given:
        url = make_url(given)
        yield PostgresServer(
            host=url.host or "127.0.0.1",
            port=url.port or 5432,
            user=url.username or "postgres",
            password=url.password,
            admin_database=url.database or "postgres",
        )
        return
    bindir = _postgres_bindir()
    if bindir is None:
        _unavailable("no PostgreSQL server binaries (initdb, postgres) were found")
    assert bindir is not None
    with _throwaway_cluster(bindir) as server:
        yield server


@pytest.fixture(scope="session")
def _postgres_template(postgres_server: PostgresServer) -> Iterator[str]:
    """A migrated database that test databases are cloned from."""
    name = f"besafe_template_{os.getpid()}"
    postgres_server.drop_database(name)
    migrate(postgres_server.create_database(name))
    yield name
    postgres_server.drop_database(name)


@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file that test databases are copied from."""
    path = tmp_path_factory.mktemp("sqlite-template") / "template.db"
    migrate(f"sqlite:///{path}")
    return path


def _backend(request: pytest.FixtureRequest) -> str:
    backend = getattr(request, "param", "sqlite")
    if backend not in ("sqlite", "postgresql"):
        raise ValueError(f"unknown database backend {backend!r}")
    return str(backend)


@contextlib.contextmanager
def _postgres_database(request: pytest.FixtureRequest, template: str | None) -> Iterator[str]:
    server: PostgresServer = request.getfixturevalue("postgres_server")
    name = f"besafe_test_{os.getpid()}_{next(_counter)}"
    url = server.create_database(name, template)
    try:
        yield url
    finally:
        server.drop_database(name)


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of a freshly migrated, empty-of-data database on the parametrised backend."""
    if _backend(request) == "sqlite":
        template: Path = request.getfixturevalue("_sqlite_template")
        path = tmp_path / "besafe.db"
        shutil.copyfile(template, path)
        yield f"sqlite:///{path}"
        return
    with _postgres_database(request, request.getfixturevalue("_postgres_template")) as url:
        yield url


@pytest.fixture(params=BACKENDS)
def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of a database with no tables at all (for migration tests)."""
    if _backend(request) == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.db'}"
        return
    with _postgres_database(request, None) as url:
        yield url


@pytest.fixture
def repository(database_url: str) -> Iterator[Repository]:
    engine = create_db_engine(database_url)
    try:
        yield Repository(engine)
    finally:
        engine.dispose()
