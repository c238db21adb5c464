"""Two real `python main.py run` servers on one PostgreSQL database: exactly one runs the
scheduled jobs; SIGKILL it and the other takes over."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import text

from storage.db import create_db_engine
from tests.processes import free_port, start_server

SECRET_KEY = "scheduler-process-tests-secret-0123456789abcdef"
RETRY_SECONDS = 0.5
TAKEOVER_BOUND = 20.0  # retry interval + PostgreSQL noticing the dead connection, with margin
WAIT = 90.0


class Server:
    def __init__(self, tmp_path: Path, name: str, database_url: str) -> None:
        self.log_path = tmp_path / f"{name}.log"
        self.process = start_server(
            tmp_path,
            self.log_path,
            BESAFE_DATA_DIR=str(tmp_path / name),
            BESAFE_DATABASE_URL=database_url,
            BESAFE_PORT=str(free_port()),
            BESAFE_SECRET_KEY=SECRET_KEY,
            BESAFE_SEMANTIC="0",
            BESAFE_LOG_FORMAT="json",
            BESAFE_ALERT_CHECK_SECONDS="0.5",
            BESAFE_SCHEDULER_LEADER_RETRY_SECONDS=str(RETRY_SECONDS),
        )

    def lines(self) -> list[dict]:
        found = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                found.append(json.loads(line))
        return found

    def said(self, message: str, **fields: object) -> int:
        return sum(
            1
            for line in self.lines()
            if line["msg"] == message and all(line.get(k) == v for k, v in fields.items())
        )

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return int(self.process.returncode)


def until(condition: Callable[[], bool], what: str, servers: list[Server]) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        for server in servers:
            if server.process.poll() is not None and server.process.returncode not in (0, -9):
                raise AssertionError(f"a server exited: {server.log_path.read_text()[-3000:]}")
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened: {what}")
        time.sleep(0.1)


def next_alert_check(database_url: str) -> float:
    engine = create_db_engine(database_url)
    try:
        with engine.connect() as connection:
            return float(
                connection.execute(
                    text("SELECT next_run_time FROM apscheduler_jobs WHERE id = 'staff-alerts'")
                ).scalar_one()
            )
    finally:
        engine.dispose()


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_one_of_two_servers_leads_and_the_other_takes_over_after_a_kill(
    tmp_path: Path, database_url: str
) -> None:
    servers = [Server(tmp_path, name, database_url) for name in ("one", "two")]
    try:
        until(
            lambda: (
                all(s.said("ready") for s in servers)
                and sum(s.said("scheduler leader acquired") for s in servers) == 1
                and any(s.said("scheduled job ran", job="staff-alerts") >= 3 for s in servers)
            ),
            "one leader running the alert check",
            servers,
        )
        leader = next(s for s in servers if s.said("scheduler leader acquired"))
        follower = next(s for s in servers if s is not leader)
        assert follower.said("scheduled job ran") == 0
        before = next_alert_check(database_url)

        leader.process.send_signal(signal.SIGKILL)
        leader.process.wait(timeout=30)
        killed_at = time.monotonic()
        until(lambda: follower.said("scheduler leader acquired") == 1, "a takeover", servers)
        assert time.monotonic() - killed_at < TAKEOVER_BOUND
        until(
            lambda: follower.said("scheduled job ran", job="staff-alerts") >= 2,
            "the new leader running the alert check",
            servers,
        )
        assert next_alert_check(database_url) > before  # the store moves on under the new leader

        assert follower.stop() == 0
        messages = [line["msg"] for line in follower.lines()]
        assert "scheduler leader released" in messages
        assert messages[-1] == "stopped cleanly"
    finally:
        for server in servers:
            server.stop()
