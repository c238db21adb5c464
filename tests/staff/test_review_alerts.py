"""Staff alerts and deadline escalation: the periodic job, on SQLite and PostgreSQL.

Flags are stored the way the dispatcher stores them (`record_flag`), so these
tests don't depend on the screening rules. Sending is a recording fake, and
once the real python-telegram-bot `Bot` against the fake Bot API server.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from config.settings import Settings
from storage import tables
from storage.audit import verify_audit
from storage.clock import utcnow
from storage.repository import Repository, UnitOfWork
from storage.tables_review import flag_events, staff_alerts
from storage.tables_staff import audit_log
from tests.telegram.fake_bot_api import TOKEN, FakeBotApi
from web.staff.alerts import AlertJob, TelegramAlerts

STAFF_CHAT = "-1001"
SECOND_CONTACT = "-2002"
SECRET_WORDS = "my uncle touches me"


class RecordingSender:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []
        self.failures = 0

    async def __call__(self, chat_id: str, text: str) -> None:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("telegram unreachable")
        self.sent.append((chat_id, text))


def settings_for(tmp_path: Path, database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": tmp_path,
        "database_url": database_url,
        "secret_key": "alerts-test-secret-0123456789abcdefghijkl",
        "staff_alert_chat_id": STAFF_CHAT,
        "escalation_chat_id": SECOND_CONTACT,
        "staff_base_url": "https://besafe.example.org/",
    }
    values.update(overrides)
    return Settings(**values)


def make_flag(
    repository: Repository, severity: str, *, age: timedelta = timedelta(0), user: str = "a"
) -> int:
    def work(uow: UnitOfWork) -> int:
        respondent = uow.respondent(f"{user:0>64}"[-64:], "web")
        message = uow.record_message(respondent, "in", SECRET_WORDS)
        flag_id = uow.record_flag(
            respondent,
            message,
            severity=severity,
            categories=["sexual_abuse"],
            evidence=[{"category": "sexual_abuse", "start": 9, "end": 19, "matched": "touches"}],
        )
        if age:
            uow.connection.execute(
                update(tables.flags)
                .where(tables.flags.c.id == flag_id)
                .values(created_at=utcnow() - age)
            )
        return flag_id

    return repository.run(work)


def rows(repository: Repository, table: Any) -> list[Any]:
    return repository.run(lambda uow: uow.connection.execute(select(table)).all())


@pytest.fixture
def sender() -> RecordingSender:
    return RecordingSender()


@pytest.fixture
def job(
    repository: Repository, tmp_path: Path, database_url: str, sender: RecordingSender
) -> AlertJob:
    return AlertJob(repository, settings_for(tmp_path, database_url), sender)


async def test_new_urgent_and_high_flags_alert_the_staff_chat_once(
    repository: Repository, job: AlertJob, sender: RecordingSender
) -> None:
    urgent = make_flag(repository, "urgent", user="u")
    high = make_flag(repository, "high", user="h")
    make_flag(repository, "medium", user="m")
    outcomes = await job.run_once()
    assert sorted((o.flag_id, o.kind, o.sent) for o in outcomes) == [
        (urgent, "new_flag", True),
        (high, "new_flag", True),
    ]
    assert [chat for chat, _ in sender.sent] == [STAFF_CHAT, STAFF_CHAT]
    texts = dict(zip((urgent, high), (text for _, text in sender.sent), strict=True))
    assert texts[urgent] == (
        f"Be-Safe: new URGENT flag #{urgent} (Sexual abuse). "
        f"Open it: https://besafe.example.org/staff/flags/{urgent}"
    )
    assert all(SECRET_WORDS not in text and "touches" not in text for _, text in sender.sent)
    # Again, and after a "restart" (a new job on the same database): nothing more.
    assert await job.run_once() == []
    assert await AlertJob(repository, job._settings, sender).run_once() == []
    assert len(sender.sent) == 2
    history = rows(repository, flag_events)
    assert sorted((e.flag_id, e.action, e.actor_id) for e in history) == [
        (urgent, "alert", None),
        (high, "alert", None),
    ]
    audited = [r.action for r in rows(repository, audit_log)]
    assert audited.count("flag.alert") == 2
    assert repository.run(lambda uow: verify_audit(uow.connection)) is None


async def test_a_missed_deadline_escalates_to_the_second_contact_once(
    repository: Repository, job: AlertJob, sender: RecordingSender
) -> None:
    late = make_flag(repository, "urgent", age=timedelta(minutes=16), user="late")
    in_time = make_flag(repository, "urgent", age=timedelta(minutes=10), user="ok")
    acknowledged = make_flag(repository, "high", age=timedelta(hours=5), user="ack")
    repository.run(
        lambda uow: uow.connection.execute(
            update(tables.flags)
            .where(tables.flags.c.id == acknowledged)
            .values(status="acknowledged", acknowledged_at=utcnow())
        )
    )
    outcomes = await job.run_once()
    escalations = [(o.flag_id, o.sent) for o in outcomes if o.kind == "escalation"]
    assert escalations == [(late, True)]
    (escalation,) = [text for chat, text in sender.sent if chat == SECOND_CONTACT]
    assert f"#{late}" in escalation and "deadline" in escalation
    assert SECRET_WORDS not in escalation
    # The other flag's deadline passes later: escalated then, the first never again.
    outcomes = await job.run_once(utcnow() + timedelta(minutes=6))
    assert [(o.flag_id, o.kind) for o in outcomes] == [(in_time, "escalation")]
    assert await job.run_once(utcnow() + timedelta(hours=1)) == []
    assert [chat for chat, _ in sender.sent].count(SECOND_CONTACT) == 2
    kinds = sorted((r.flag_id, r.kind, r.status) for r in rows(repository, staff_alerts))
    assert (acknowledged, "escalation", "sent") not in kinds


async def test_medium_flags_escalate_after_two_working_days(
    repository: Repository, job: AlertJob, sender: RecordingSender
) -> None:
    flag_id = make_flag(repository, "medium")
    assert await job.run_once() == []
    assert await job.run_once(utcnow() + timedelta(days=1)) == []
    outcomes = await job.run_once(utcnow() + timedelta(days=4, minutes=1))
    assert [(o.flag_id, o.kind) for o in outcomes] == [(flag_id, "escalation")]


async def test_a_closed_flag_is_never_escalated(
    repository: Repository, job: AlertJob, sender: RecordingSender
) -> None:
    flag_id = make_flag(repository, "medium", age=timedelta(days=10))
    repository.run(
        lambda uow: uow.connection.execute(
            update(tables.flags).where(tables.flags.c.id == flag_id).values(status="not_a_concern")
        )
    )
    assert await job.run_once() == []


async def test_a_failed_send_is_retried_and_then_sent_once(
    repository: Repository, job: AlertJob, sender: RecordingSender
) -> None:
    flag_id = make_flag(repository, "high")
    sender.failures = 2
    assert [o.sent for o in await job.run_once()] == [False]
    assert [o.sent for o in await job.run_once()] == [False]
    assert [(o.flag_id, o.sent) for o in await job.run_once()] == [(flag_id, True)]
    assert await job.run_once() == []
    assert len(sender.sent) == 1
    (alert,) = rows(repository, staff_alerts)
    assert alert.status == "sent" and alert.attempts == 3


async def test_gives_up_after_five_attempts(
    repository: Repository, job: AlertJob, sender: RecordingSender
) -> None:
    make_flag(repository, "high")
    sender.failures = 100
    for _ in range(7):
        await job.run_once()
    (alert,) = rows(repository, staff_alerts)
    assert alert.status == "failed" and alert.attempts == 5


async def test_without_a_chat_the_alert_is_logged_not_sent(
    repository: Repository,
    tmp_path: Path,
    database_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    make_flag(repository, "urgent")
    settings = settings_for(tmp_path, database_url, staff_alert_chat_id=None)
    with caplog.at_level(logging.WARNING, logger="besafe.staff.alerts"):
        outcomes = await AlertJob(repository, settings, None).run_once()
    assert [o.sent for o in outcomes] == [False]
    assert any("staff alert not sent" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_telegram_alerts_go_through_python_telegram_bot(
    repository: Repository, tmp_path: Path, database_url: str
) -> None:
    async with FakeBotApi() as api:
        settings = settings_for(tmp_path, database_url, staff_alert_chat_id="4242")
        send = TelegramAlerts(TOKEN, api.base_url)
        try:
            flag_id = make_flag(repository, "urgent")
            outcomes = await AlertJob(repository, settings, send).run_once()
        finally:
            await send.close()
        assert [o.sent for o in outcomes] == [True]
        (call,) = api.calls_to("sendMessage")
        assert str(call.params["chat_id"]) == "4242"
        assert f"flag #{flag_id}" in call.params["text"]
        assert SECRET_WORDS not in call.params["text"]
