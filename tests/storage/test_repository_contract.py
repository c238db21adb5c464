"""The storage contract: every repository behaviour, on SQLite and PostgreSQL alike.

The `repository` and `database_url` fixtures (tests/db_fixtures.py) are
parametrised over both backends, so every test here runs twice.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import psycopg
import pytest
from sqlalchemy import func, insert, select, text, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError

from storage.clock import utcnow
from storage.db import create_db_engine
from storage.pseudonyms import pseudonym
from storage.repository import (
    Repository,
    StorageBusyError,
    SurveyVersionConflict,
    UnitOfWork,
    UnknownCampaign,
)
from storage.tables import (
    answer_choices,
    answers,
    campaigns,
    conversations,
    flags,
    messages,
    respondents,
    responses,
)
from surveys.definition import survey_to_dict
from surveys.model import Choice, Question, Survey

SECRET = b"contract-test-secret"
CODE = "bullying-v1"
OTHER_CODE = "online-v1"
YES_NO = (Choice("yes", "Yes"), Choice("no", "No"))


def make_survey(survey_id: str = "bullying", version: int = 1, title: str = "Bullying") -> Survey:
    return Survey(
        id=survey_id,
        version=version,
        title=title,
        topic="bullying",
        intro="About bullying.",
        thanks="Thank you.",
        questions=(
            Question("bullied", "yes_no", "Bullied?", "Bullied", choices=YES_NO),
            Question(
                "where",
                "multiple_choice",
                "Where?",
                "Where",
                choices=(Choice("school", "School"), Choice("online", "Online")),
            ),
            Question(
                "deal",
                "single_choice",
                "How well?",
                "Deals",
                choices=(Choice("well", "Well"), Choice("badly", "Badly")),
                prefer_not_to_say=True,
            ),
            Question("safe", "rating", "How safe?", "Safe", min=1, max=5),
            Question("hours", "number", "How many hours online?", "Hours", min=0, max=24),
            Question("comment", "free_text", "Anything else?", "Comment"),
        ),
    )


def definition(survey: Survey) -> tuple[str, str]:
    text_ = json.dumps(survey_to_dict(survey), sort_keys=True)
    return text_, hashlib.sha256(text_.encode()).hexdigest()


def seed_catalogue(repository: Repository) -> None:
    for survey, code in ((make_survey(), CODE), (make_survey("online", 1, "Online"), OTHER_CODE)):
        repository.save_survey(survey, *definition(survey))
        repository.ensure_campaign(code, survey.id, survey.version, survey.title)


def key(name: str = "someone") -> str:
    return pseudonym(SECRET, "web", name)


def count(repository: Repository, table: Any, *where: Any) -> int:
    with repository.engine.connect() as connection:
        statement = select(func.count()).select_from(table)
        if where:
            statement = statement.where(*where)
        return int(connection.execute(statement).scalar_one())


def rows(repository: Repository, statement: Any) -> list[Any]:
    with repository.engine.connect() as connection:
        return list(connection.execute(statement))


def choices_of(repository: Repository, question_id: str) -> set[str]:
    return {
        row.value
        for row in rows(
            repository,
            select(answer_choices.c.value).where(answer_choices.c.question_id == question_id),
        )
    }


def started(repository: Repository, name: str = "someone", code: str = CODE) -> int:
    """A respondent with a started response for `code`; returns the respondent id."""

    def work(uow: UnitOfWork) -> int:
        respondent_id = uow.respondent(key(name), "web")
        survey_id = "bullying" if code == CODE else "online"
        uow.start_response(respondent_id, code, survey_id, 1)
        return respondent_id

    return repository.run(work)


@contextmanager
def write_lock(database_url: str) -> Iterator[Callable[[], None]]:
    """Hold the database's write lock (SQLite) or the respondents table (PostgreSQL)
    from another connection; yields a function that releases it early."""
    url = make_url(database_url)
    released = threading.Event()
    if url.get_backend_name() == "sqlite":
        holder: Any = sqlite3.connect(
            url.database or "", isolation_level=None, check_same_thread=False
        )
        holder.execute("BEGIN EXCLUSIVE")
    else:
        holder = psycopg.connect(
            host=url.host,
            port=url.port,
            user=url.username,
            password=url.password,
            dbname=url.database,
        )
        holder.execute("LOCK TABLE respondents IN ACCESS EXCLUSIVE MODE")
    lock = threading.Lock()

    def release() -> None:
        with lock:
            if released.is_set():
                return
            released.set()
            if isinstance(holder, sqlite3.Connection):
                holder.execute("ROLLBACK")
            else:
                holder.rollback()

    try:
        yield release
    finally:
        release()
        holder.close()


def impatient(database_url: str, attempts: int, base_delay: float) -> Repository:
    """A repository whose statements give up on a lock after 20 ms."""
    return Repository(
        create_db_engine(database_url, lock_timeout_ms=20), attempts=attempts, base_delay=base_delay
    )


class TestRepositoryContract:
    # ------------------------------------------------------------ respondents

    def test_respondent_get_or_create_is_idempotent(self, repository: Repository) -> None:
        first = repository.run(lambda uow: uow.respondent(key("a"), "web"))
        seen = rows(repository, select(respondents.c.last_seen_at))[0][0]
        time.sleep(0.002)
        again = repository.run(lambda uow: uow.respondent(key("a"), "web"))
        other = repository.run(lambda uow: uow.respondent(key("b"), "telegram"))
        assert first == again != other
        assert count(repository, respondents) == 2
        row = rows(
            repository,
            select(respondents).where(respondents.c.id == first),
        )[0]
        assert row.pseudonym == key("a") and len(row.pseudonym) == 64
        assert row.channel == "web"
        assert row.last_seen_at > seen >= row.created_at

    def test_respondent_get_or_create_is_safe_under_concurrency(
        self, repository: Repository
    ) -> None:
        threads = 8
        barrier = threading.Barrier(threads)
        results: list[int] = []
        errors: list[BaseException] = []

        def one() -> None:
            try:
                barrier.wait(timeout=10)
                results.append(repository.run(lambda uow: uow.respondent(key("same"), "web")))
            except BaseException as error:  # reported below
                errors.append(error)

        workers = [threading.Thread(target=one) for _ in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(timeout=30)
        assert not errors
        assert len(results) == threads and len(set(results)) == 1
        assert count(repository, respondents) == 1

    # ------------------------------------------------------------ state

    def test_state_round_trip(self, repository: Repository) -> None:
        respondent_id = repository.run(lambda uow: uow.respondent(key(), "web"))
        assert repository.run(lambda uow: uow.load_state(respondent_id)) is None
        state = {"mode": "asking", "code": CODE, "answers": {"q": [1, "two", None]}, "ü": "✓"}
        repository.run(lambda uow: uow.save_state(respondent_id, state))
        assert repository.run(lambda uow: uow.load_state(respondent_id)) == state
        repository.run(lambda uow: uow.save_state(respondent_id, {"mode": "idle"}))
        assert repository.run(lambda uow: uow.load_state(respondent_id)) == {"mode": "idle"}
        assert count(repository, conversations) == 1

    # ------------------------------------------------------------ answers

    def test_answers_upsert_and_choice_rows(self, repository: Repository) -> None:
        seed_catalogue(repository)
        respondent_id = started(repository)

        def answer(question_id: str, status: str, value: object | None) -> None:
            repository.run(
                lambda uow: uow.record_answer(respondent_id, CODE, question_id, status, value)
            )

        answer("bullied", "answered", "yes")
        answer("where", "answered", ["school", "online"])
        answer("deal", "answered", "well")
        answer("safe", "answered", 4)
        answer("hours", "answered", 2.5)
        answer("comment", "answered", "it happens on the bus, every day")
        assert choices_of(repository, "bullied") == {"yes"}
        assert choices_of(repository, "where") == {"school", "online"}
        assert choices_of(repository, "deal") == {"well"}
        assert choices_of(repository, "safe") == {"4"}
        assert choices_of(repository, "hours") == set()
        assert choices_of(repository, "comment") == set()  # free text is never a choice row
        numbers = dict(rows(repository, select(answers.c.question_id, answers.c.number)))
        assert numbers["safe"] == 4.0 and numbers["hours"] == 2.5 and numbers["bullied"] is None

        # Changing an answer replaces it and its choice rows.
        answer("bullied", "answered", "no")
        answer("where", "answered", ["online"])
        answer("deal", "prefer_not_to_say", None)
        assert choices_of(repository, "bullied") == {"no"}
        assert choices_of(repository, "where") == {"online"}
        assert choices_of(repository, "deal") == set()
        assert count(repository, answers) == 6

        stored = repository.run(lambda uow: uow.answers(respondent_id, CODE))
        assert stored == {
            "bullied": ("answered", "no"),
            "where": ("answered", ["online"]),
            "deal": ("prefer_not_to_say", None),
            "safe": ("answered", 4),
            "hours": ("answered", 2.5),
            "comment": ("answered", "it happens on the bus, every day"),
        }

    def test_skipped_answer_keeps_no_value(self, repository: Repository) -> None:
        seed_catalogue(repository)
        respondent_id = started(repository)
        repository.run(lambda uow: uow.record_answer(respondent_id, CODE, "deal", "skipped", "x"))
        assert repository.run(lambda uow: uow.answers(respondent_id, CODE)) == {
            "deal": ("skipped", None)
        }
        assert choices_of(repository, "deal") == set()

    def test_record_answer_starts_a_missing_response(self, repository: Repository) -> None:
        seed_catalogue(repository)
        respondent_id = repository.run(lambda uow: uow.respondent(key(), "web"))
        repository.run(
            lambda uow: uow.record_answer(respondent_id, CODE, "bullied", "answered", "yes")
        )
        [response] = rows(repository, select(responses))
        assert (response.survey_id, response.survey_version, response.status) == (
            "bullying",
            1,
            "in_progress",
        )

    def test_remove_answer(self, repository: Repository) -> None:
        seed_catalogue(repository)
        respondent_id = started(repository)
        repository.run(
            lambda uow: uow.record_answer(respondent_id, CODE, "where", "answered", ["school"])
        )
        repository.run(
            lambda uow: uow.record_answer(respondent_id, CODE, "bullied", "answered", "yes")
        )
        repository.run(lambda uow: uow.remove_answer(respondent_id, CODE, "where"))
        assert repository.run(lambda uow: uow.answers(respondent_id, CODE)) == {
            "bullied": ("answered", "yes")
        }
        assert choices_of(repository, "where") == set()
        repository.run(lambda uow: uow.remove_answer(respondent_id, CODE, "where"))  # no-op

    def test_unknown_campaign_is_a_clear_error(self, repository: Repository) -> None:
        seed_catalogue(repository)
        respondent_id = repository.run(lambda uow: uow.respondent(key(), "web"))
        with pytest.raises(UnknownCampaign, match="nope"):
            repository.run(lambda uow: uow.start_response(respondent_id, "nope", "bullying", 1))
        with pytest.raises(UnknownCampaign):
            repository.run(
                lambda uow: uow.record_answer(respondent_id, "nope", "q", "answered", "x")
            )
        with pytest.raises(UnknownCampaign):
            repository.run(lambda uow: uow.complete_response(respondent_id, "nope"))
        # A message is never refused for its code: it is stored unlinked.
        message_id = repository.run(
            lambda uow: uow.record_message(respondent_id, "in", "hello", code="nope")
        )
        [row] = rows(repository, select(messages).where(messages.c.id == message_id))
        assert row.response_id is None

    # ------------------------------------------------------------ response lifecycle

    def test_complete_and_completed_codes(self, repository: Repository) -> None:
        seed_catalogue(repository)
        respondent_id = started(repository)
        started(repository, code=OTHER_CODE)
        assert repository.run(lambda uow: uow.completed_codes(respondent_id)) == frozenset()
        repository.run(lambda uow: uow.complete_response(respondent_id, CODE))
        assert repository.run(lambda uow: uow.completed_codes(respondent_id)) == {CODE}
        statuses = dict(
            rows(
                repository,
                select(campaigns.c.code, responses.c.status).join(
                    campaigns, campaigns.c.id == responses.c.campaign_id
                ),
            )
        )
        assert statuses == {CODE: "completed", OTHER_CODE: "in_progress"}
        [completed_at] = rows(
            repository, select(responses.c.completed_at).where(responses.c.status == "completed")
        )
        assert completed_at[0] is not None

        # Starting again never reopens a completed response.
        repository.run(lambda uow: uow.start_response(respondent_id, CODE, "bullying", 1))
        assert repository.run(lambda uow: uow.completed_codes(respondent_id)) == {CODE}
        other = repository.run(lambda uow: uow.respondent(key("other"), "web"))
        assert repository.run(lambda uow: uow.completed_codes(other)) == frozenset()

    def test_partial_response_is_resumed(self, repository: Repository) -> None:
        seed_catalogue(repository)
        respondent_id = started(repository)
        assert repository.expire_stale_responses(utcnow() + timedelta(seconds=1)) == 1
        repository.run(lambda uow: uow.start_response(respondent_id, CODE, "bullying", 1))
        assert [r.status for r in rows(repository, select(responses.c.status))] == ["in_progress"]
        assert repository.expire_stale_responses(utcnow() + timedelta(seconds=1)) == 1
        repository.run(
            lambda uow: uow.record_answer(respondent_id, CODE, "bullied", "answered", "no")
        )
        assert [r.status for r in rows(repository, select(responses.c.status))] == ["in_progress"]

    def test_expire_stale_responses(self, repository: Repository) -> None:
        seed_catalogue(repository)
        old = started(repository, "old")
        started(repository, "fresh")
        done = started(repository, "done")
        repository.run(lambda uow: uow.complete_response(done, CODE))
        long_ago = utcnow() - timedelta(days=5)
        with repository.engine.begin() as connection:
            connection.execute(update(responses).values(updated_at=long_ago))
            connection.execute(
                update(responses)
                .where(responses.c.respondent_id != old)
                .values(updated_at=utcnow())
            )
            connection.execute(
                update(responses)
                .where(responses.c.respondent_id == done)
                .values(updated_at=long_ago)
            )
        assert repository.expire_stale_responses(utcnow() - timedelta(days=1)) == 1
        statuses = dict(rows(repository, select(responses.c.respondent_id, responses.c.status)))
        assert statuses[old] == "partial"
        assert statuses[done] == "completed"
        assert sorted(statuses.values()) == ["completed", "in_progress", "partial"]
        assert repository.expire_stale_responses(utcnow() - timedelta(days=1)) == 0

    def test_erase_keeps_flagged_messages(self, repository: Repository) -> None:
        seed_catalogue(repository)
        respondent_id = started(repository)
        started(repository, code=OTHER_CODE)

        def conversation(uow: UnitOfWork) -> tuple[int, int, int]:
            asked = uow.record_message(
                respondent_id, "out", "Bullied?", code=CODE, question_id="bullied"
            )
            plain = uow.record_message(respondent_id, "in", "yes", code=CODE, question_id="bullied")
            told = uow.record_message(
                respondent_id, "in", "someone hurts me at home", code=CODE, question_id="comment"
            )
            uow.record_flag(
                respondent_id,
                told,
                severity="high",
                categories=["abuse"],
                evidence=[{"phrase": "hurts me", "start": 8}],
            )
            uow.record_answer(respondent_id, CODE, "bullied", "answered", "yes")
            uow.record_answer(respondent_id, CODE, "where", "answered", ["school"])
            uow.record_answer(respondent_id, OTHER_CODE, "bullied", "answered", "no")
            uow.record_message(respondent_id, "in", "other survey", code=OTHER_CODE)
            uow.record_message(respondent_id, "in", "/start")
            return asked, plain, told

        asked, plain, told = repository.run(conversation)
        [flag] = rows(repository, select(flags))
        assert flag.response_id is not None and flag.status == "open"
        assert json.loads(flag.categories_json) == ["abuse"]
        assert json.loads(flag.evidence_json) == [{"phrase": "hurts me", "start": 8}]

        repository.run(lambda uow: uow.erase_response(respondent_id, CODE))

        assert repository.run(lambda uow: uow.answers(respondent_id, CODE)) == {}
        assert repository.run(lambda uow: uow.answers(respondent_id, OTHER_CODE)) == {
            "bullied": ("answered", "no")
        }
        assert choices_of(repository, "where") == set()
        assert count(repository, responses) == 1
        kept = {row.id: row for row in rows(repository, select(messages))}
        assert asked not in kept and plain not in kept
        assert kept[told].text == "someone hurts me at home"  # a disclosure is never lost
        assert kept[told].response_id is None
        assert sorted(row.text for row in kept.values()) == [
            "/start",
            "other survey",
            "someone hurts me at home",
        ]
        [flag] = rows(repository, select(flags))
        assert flag.message_id == told and flag.response_id is None
        # Erasing again, or a response that was never started, is harmless.
        repository.run(lambda uow: uow.erase_response(respondent_id, CODE))
        with pytest.raises(UnknownCampaign):
            repository.run(lambda uow: uow.erase_response(respondent_id, "nope"))

    def test_messages_link_to_the_response(self, repository: Repository) -> None:
        seed_catalogue(repository)
        respondent_id = repository.run(lambda uow: uow.respondent(key(), "web"))
        before = repository.run(
            lambda uow: uow.record_message(respondent_id, "in", "hi", code=CODE)
        )
        started(repository)
        after = repository.run(
            lambda uow: uow.record_message(
                respondent_id, "in", "yes", code=CODE, question_id="bullied"
            )
        )
        linked = dict(rows(repository, select(messages.c.id, messages.c.response_id)))
        assert linked[before] is None and linked[after] is not None
        with pytest.raises(ValueError):
            repository.run(lambda uow: uow.record_message(respondent_id, "sideways", "x"))

    # ------------------------------------------------------------ catalogue

    def test_save_survey_and_version_conflict(self, repository: Repository) -> None:
        survey = make_survey()
        text_, digest = definition(survey)
        assert repository.save_survey(survey, text_, digest) is True
        assert repository.save_survey(survey, text_, digest) is False
        changed = make_survey(title="Bullying, reworded")
        with pytest.raises(SurveyVersionConflict):
            repository.save_survey(changed, *definition(changed))
        newer = make_survey(version=2, title="Bullying, reworded")
        assert repository.save_survey(newer, *definition(newer)) is True
        records = repository.survey_definitions()
        assert [(r.survey_id, r.version, r.title) for r in records] == [
            ("bullying", 1, "Bullying"),
            ("bullying", 2, "Bullying, reworded"),
        ]
        assert records[0].definition_json == text_ and records[0].source_sha256 == digest
        assert records[0].topic == "bullying"

    def test_ensure_campaign_leaves_an_existing_campaign_alone(
        self, repository: Repository
    ) -> None:
        repository.ensure_campaign(CODE, "bullying", 1, "Bullying")
        repository.ensure_campaign(CODE, "bullying", 2, "Renamed")
        [campaign] = repository.open_campaigns(utcnow())
        assert (campaign.code, campaign.survey_id, campaign.survey_version, campaign.title) == (
            CODE,
            "bullying",
            1,
            "Bullying",
        )

    def test_open_campaigns_time_window(self, repository: Repository) -> None:
        now = utcnow()
        hour = timedelta(hours=1)

        def campaign(code: str, status: str, opens: Any, closes: Any) -> dict[str, Any]:
            return {
                "code": code,
                "survey_id": "bullying",
                "survey_version": 1,
                "title": code.title(),
                "status": status,
                "opens_at": opens,
                "closes_at": closes,
                "created_at": now - 10 * hour,
            }

        with repository.engine.begin() as connection:
            connection.execute(
                insert(campaigns),
                [
                    campaign("always", "open", now - hour, None),
                    campaign("window", "open", now - hour, now + hour),
                    campaign("not-yet", "open", now + hour, None),
                    campaign("ended", "open", now - 2 * hour, now - hour),
                    campaign("ends-now", "open", now - hour, now),
                    campaign("draft", "draft", now - hour, None),
                    campaign("closed", "closed", now - hour, None),
                    campaign("scheduled", "scheduled", now - hour, None),
                ],
            )
        assert [c.code for c in repository.open_campaigns(now)] == ["always", "window"]
        later = [c.code for c in repository.open_campaigns(now + 90 * timedelta(minutes=1))]
        assert later == ["always", "not-yet"]
        earlier = [c.code for c in repository.open_campaigns(now - 90 * timedelta(minutes=1))]
        assert earlier == ["ended"]

    # ------------------------------------------------------------ transactions

    def test_rollback_on_error_leaves_nothing_behind(self, repository: Repository) -> None:
        seed_catalogue(repository)
        calls = 0

        def work(uow: UnitOfWork) -> None:
            nonlocal calls
            calls += 1
            respondent_id = uow.respondent(key(), "web")
            uow.save_state(respondent_id, {"mode": "asking"})
            uow.start_response(respondent_id, CODE, "bullying", 1)
            uow.record_answer(respondent_id, CODE, "where", "answered", ["school"])
            message_id = uow.record_message(respondent_id, "in", "help", code=CODE)
            uow.record_flag(
                respondent_id, message_id, severity="high", categories=["x"], evidence=[]
            )
            raise RuntimeError("the engine fell over")

        with pytest.raises(RuntimeError, match="fell over"):
            repository.run(work)
        assert calls == 1  # not a database problem: no retry
        for table in (respondents, conversations, responses, answers, answer_choices, messages):
            assert count(repository, table) == 0, table.name
        assert count(repository, flags) == 0

    def test_database_errors_that_are_not_busy_propagate_at_once(
        self, repository: Repository
    ) -> None:
        calls = 0

        def work(uow: UnitOfWork) -> None:
            nonlocal calls
            calls += 1
            respondent_id = uow.respondent(key(), "web")
            uow.record_flag(respondent_id, 999_999, severity="high", categories=[], evidence=[])

        with pytest.raises(IntegrityError):
            repository.run(work)
        assert calls == 1
        assert count(repository, respondents) == 0

    def test_busy_database_is_retried_until_the_lock_is_released(self, database_url: str) -> None:
        repository = impatient(database_url, attempts=12, base_delay=0.01)
        try:
            with write_lock(database_url) as release:
                timer = threading.Timer(0.4, release)
                started_at = time.monotonic()
                timer.start()
                respondent_id = repository.run(lambda uow: uow.respondent(key(), "web"))
                waited = time.monotonic() - started_at
                timer.join()
            assert waited >= 0.35
            assert rows(repository, select(respondents.c.id)) == [(respondent_id,)]
        finally:
            repository.engine.dispose()

    def test_storage_busy_error_after_the_last_attempt(self, database_url: str) -> None:
        repository = impatient(database_url, attempts=3, base_delay=0.005)
        try:
            with write_lock(database_url):
                started_at = time.monotonic()
                with pytest.raises(StorageBusyError):
                    repository.run(lambda uow: uow.respondent(key(), "web"))
                assert time.monotonic() - started_at < 5
            assert count(repository, respondents) == 0
            # Once the lock is gone the same repository works again.
            repository.run(lambda uow: uow.respondent(key(), "web"))
            assert count(repository, respondents) == 1
        finally:
            repository.engine.dispose()

    @pytest.mark.parametrize(
        "database_url", [pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True
    )
    @pytest.mark.parametrize("sqlstate", ["40001", "40P01"])
    def test_postgres_serialization_failure_and_deadlock_are_retried(
        self, repository: Repository, sqlstate: str
    ) -> None:
        assert repository.engine.dialect.name == "postgresql"
        calls = 0

        def work(uow: UnitOfWork) -> int:
            nonlocal calls
            calls += 1
            respondent_id = uow.respondent(key(), "web")
            if calls == 1:
                uow.connection.execute(
                    text(
                        f"DO $$ BEGIN RAISE EXCEPTION 'conflict' USING ERRCODE = '{sqlstate}'; "
                        "END $$"
                    )
                )
            return respondent_id

        respondent_id = repository.run(work)
        assert calls == 2
        assert rows(repository, select(respondents.c.id)) == [(respondent_id,)]
