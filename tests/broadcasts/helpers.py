"""Helpers for the broadcast tests: campaigns, subscribers and their answers, made directly."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

from sqlalchemy import insert, select

from bot.relay import seal_handle
from config.settings import Settings
from storage import broadcasts as store
from storage.clock import utcnow
from storage.pseudonyms import pseudonym
from storage.repository import Repository, UnitOfWork
from storage.tables import campaigns, responses
from storage.tables_broadcasts import broadcast_sends, subscribers
from tests.bot.test_dispatcher import SECRET as DISPATCHER_SECRET

SECRET = DISPATCHER_SECRET  # so that the dispatcher and these helpers agree on addresses
PROFILE_CODE = "profile-source"  # a campaign whose answers give subscribers their profile


def settings(**overrides: object) -> Settings:
    values: dict[str, object] = {"secret_key": "x" * 40, "broadcast_quiet_hours": ""}
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


def add_campaign(
    repository: Repository,
    code: str,
    *,
    audience: str = "{}",
    invitation: str | None = "A new survey about bullying is open.",
    reminder: str | None = None,
    times: tuple[datetime, ...] = (),
    spread_minutes: int = 0,
    status: str = "open",
    opens_at: datetime | None = None,
    closes_at: datetime | None = None,
) -> int:
    def work(uow: UnitOfWork) -> int:
        return int(
            uow.connection.execute(
                insert(campaigns)
                .values(
                    code=code,
                    survey_id="bullying",
                    survey_version=1,
                    title=f"Campaign {code}",
                    status=status,
                    opens_at=opens_at or utcnow() - timedelta(days=1),
                    closes_at=closes_at,
                    created_at=utcnow(),
                    audience_json=audience,
                    invitation_text=invitation,
                    reminder_text=reminder,
                    reminder_times_json=json.dumps([t.isoformat() for t in times]),
                    send_spread_minutes=spread_minutes,
                    updated_at=utcnow(),
                )
                .returning(campaigns.c.id)
            ).scalar_one()
        )

    return repository.run(work)


def respondent(repository: Repository, chat_id: int, channel: str = "telegram") -> int:
    key = pseudonym(SECRET, channel, str(chat_id))
    return repository.run(lambda uow: uow.respondent(key, channel))


def add_subscriber(
    repository: Repository, chat_id: int, *, year: str | None = None, channel: str = "telegram"
) -> int:
    rid = respondent(repository, chat_id, channel)
    address = seal_handle(SECRET, channel, str(chat_id))
    repository.run(lambda uow: store.subscribe(uow, rid, channel, address))
    if year is not None:
        answer(repository, rid, PROFILE_CODE, "school_year", year)
    return rid


def answer(repository: Repository, rid: int, code: str, question: str, value: str | None) -> None:
    """Record an answer (None: "prefer not to say") in `code`'s response, started if need be."""

    def work(uow: UnitOfWork) -> None:
        uow.start_response(rid, code, "bullying", 1)
        status = "answered" if value is not None else "prefer_not_to_say"
        uow.record_answer(rid, code, question, status, value, question_type="single_choice")

    repository.run(work)


def start(repository: Repository, rid: int, code: str, *, at: datetime | None = None) -> None:
    repository.run(lambda uow: uow.start_response(rid, code, "bullying", 1))
    if at is not None:
        repository.run(
            lambda uow: uow.connection.execute(
                responses.update().where(responses.c.respondent_id == rid).values(started_at=at)
            )
        )


def complete(repository: Repository, rid: int, code: str) -> None:
    repository.run(lambda uow: uow.complete_response(rid, code))


def sends(repository: Repository) -> list[dict]:
    def work(uow: UnitOfWork) -> list[dict]:
        rows = uow.connection.execute(select(broadcast_sends).order_by(broadcast_sends.c.id))
        return [dict(row._mapping) for row in rows]

    return repository.run(work)


def subscriber(repository: Repository, rid: int) -> dict | None:
    def work(uow: UnitOfWork) -> dict | None:
        row = uow.connection.execute(
            select(subscribers).where(subscribers.c.respondent_id == rid)
        ).first()
        return dict(row._mapping) if row else None

    return repository.run(work)
