"""The dispatcher end to end: channel event -> screen -> engine -> storage, on both backends.

These tests use the shipped surveys in config/surveys and a real database
(SQLite file and a throwaway PostgreSQL server, see tests/db_fixtures.py).
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import MetaData, select

from bot.catalogue import Catalogue
from bot.dispatcher import Dispatcher, RespondentLocks
from bot.messages import InboundMessage
from moderation.screen import screen
from storage import tables
from storage.batching import WriteBatcher
from storage.clock import utcnow
from storage.pseudonyms import pseudonym
from storage.repository import Repository
from surveys.events import ChoiceIn, CommandIn, ResumeIn, Say, TextIn
from tests.fakes.respondent import SimulatedRespondent, finished

SURVEYS_DIR = Path(__file__).resolve().parents[2] / "config" / "surveys"
SECRET = b"dispatcher-test-secret-0123456789abcdef"
SHIPPED = ("bullying", "online_safety", "healthy_relationships")


@pytest.fixture
def writes(repository: Repository) -> Iterator[WriteBatcher]:
    sqlite = repository.engine.dialect.name == "sqlite"
    batcher = WriteBatcher(repository, workers=1 if sqlite else 4)
    yield batcher
    batcher.close()


def build_dispatcher(repository: Repository, writes: WriteBatcher, **options: int) -> Dispatcher:
    catalogue = Catalogue(repository)
    report = catalogue.load_directory(SURVEYS_DIR)
    assert not report.problems, report.problems
    catalogue.refresh(utcnow())
    return Dispatcher(
        catalogue=catalogue,
        secret=SECRET,
        writes=writes,
        **options,
    )


@pytest.fixture
def dispatcher(repository: Repository, writes: WriteBatcher) -> Dispatcher:
    return build_dispatcher(repository, writes)


def respondent_id(repository: Repository, user_key: str, channel: str = "web") -> int:
    key = pseudonym(SECRET, channel, user_key)
    return repository.run(lambda uow: uow.respondent(key, channel))


def stored_answers(repository: Repository, user_key: str, code: str) -> dict:
    rid = respondent_id(repository, user_key)
    return repository.run(lambda uow: uow.answers(rid, code))


def rows(repository: Repository, table) -> list[dict]:
    with repository.engine.connect() as connection:
        return [dict(row._mapping) for row in connection.execute(select(table))]


async def send(dispatcher: Dispatcher, user_key: str, event) -> tuple[Say, ...]:
    return await dispatcher.handle(InboundMessage("web", user_key, event))


async def start_and_reach_free_text(dispatcher: Dispatcher, user_key: str) -> tuple[Say, ...]:
    """Start the bullying survey and answer until it asks a question with no choices."""
    outputs = await send(dispatcher, user_key, CommandIn("start", "bullying-v1"))
    outputs = await send(dispatcher, user_key, ChoiceIn("yes", "__consent__"))
    for _ in range(60):
        last = outputs[-1]
        choices = [c for c in last.choices if not c.value.startswith("__")]
        if last.kind == "question" and not choices:
            return outputs
        if last.question_id == "school_year":
            outputs = await send(dispatcher, user_key, ChoiceIn("y8", "school_year"))
            continue
        assert choices, last
        choice = choices[0]
        if last.multi:
            outputs = await send(dispatcher, user_key, TextIn("1"))
        else:
            outputs = await send(dispatcher, user_key, ChoiceIn(choice.value, last.question_id))
    raise AssertionError("the bullying survey never asked a free-text question")


# ------------------------------------------------------------------ whole surveys


@pytest.mark.parametrize("survey_id", SHIPPED)
async def test_each_shipped_survey_completes_and_is_stored(
    dispatcher: Dispatcher, repository: Repository, survey_id: str
) -> None:
    young_person = SimulatedRespondent(dispatcher, f"web-session-{survey_id}")
    outputs = await young_person.take_survey(survey_id)
    assert finished(outputs)
    code = f"{survey_id}-v1"
    answers = stored_answers(repository, young_person.user_key, code)
    assert answers["school_year"] == ("answered", "y8")
    assert len(answers) >= 8
    assert any(
        value == "Nothing else, thanks. School is mostly ok." for _, value in answers.values()
    )
    completed = [r for r in rows(repository, tables.responses) if r["completed_at"] is not None]
    assert len(completed) == 1
    # One response per campaign: starting again says so kindly and records nothing new.
    again = await send(dispatcher, young_person.user_key, CommandIn("start", code))
    assert "already" in " ".join(say.text for say in again)
    assert len(rows(repository, tables.responses)) == 1


async def test_no_table_holds_a_raw_chat_id_after_a_full_survey(
    dispatcher: Dispatcher, repository: Repository
) -> None:
    raw_ids = ("tg:5551234567", "5551234567")
    for channel in ("web", "telegram"):
        young_person = SimulatedRespondent(dispatcher, raw_ids[0], channel=channel)
        assert finished(await young_person.take_survey("bullying"))
    metadata = MetaData()
    metadata.reflect(bind=repository.engine)
    scanned = 0
    with repository.engine.connect() as connection:
        for table in metadata.sorted_tables:
            for row in connection.execute(select(table)):
                for value in row:
                    scanned += 1
                    for raw in raw_ids:
                        assert raw not in str(value), f"{table.name} holds a raw id: {value!r}"
    assert scanned > 100  # the survey really was stored
    respondents = rows(repository, tables.respondents)
    assert len(respondents) == 2  # same id on two channels: two unlinkable pseudonyms


# ------------------------------------------------------------------ disclosures


async def test_a_disclosure_is_stored_with_its_message_before_the_reply(
    dispatcher: Dispatcher, repository: Repository
) -> None:
    await start_and_reach_free_text(dispatcher, "discloser")
    text = "my dad hits me when he's drunk"
    outputs = await send(dispatcher, "discloser", TextIn(text))
    assert outputs[0].kind == "help"
    assert "0800 1111" in outputs[0].text
    flag_rows = rows(repository, tables.flags)
    assert len(flag_rows) == 1
    flag = flag_rows[0]
    assert flag["severity"] == "high" and flag["status"] == "open"
    assert "physical_abuse" in json.loads(flag["categories_json"])
    message = next(m for m in rows(repository, tables.messages) if m["id"] == flag["message_id"])
    assert message["text"] == text
    assert message["response_id"] is not None and message["question_id"]
    evidence = json.loads(flag["evidence_json"])
    assert text[evidence[0]["start"] : evidence[0]["end"]] == evidence[0]["matched"]


async def test_messages_outside_a_survey_are_screened_too(
    dispatcher: Dispatcher, repository: Repository
) -> None:
    outputs = await send(dispatcher, "idle-person", TextIn("i want to kill myself tonight"))
    assert outputs[0].kind == "help"
    (flag,) = rows(repository, tables.flags)
    assert flag["severity"] == "urgent"
    assert flag["response_id"] is None


async def test_screening_errors_do_not_lose_the_message(
    repository: Repository, writes: WriteBatcher
) -> None:
    calls: list[str] = []

    def broken_screen(text, context):
        calls.append(text)
        raise RuntimeError("detector crashed")

    dispatcher = build_dispatcher(repository, writes)
    dispatcher._screen = broken_screen  # a detector bug must not swallow the message
    with pytest.raises(RuntimeError):
        await send(dispatcher, "someone", TextIn("hello"))
    assert calls == ["hello"]
    # Nothing half-written: the transaction rolled back, and the next message works.
    assert rows(repository, tables.messages) == []
    dispatcher._screen = screen
    outputs = await send(dispatcher, "someone", TextIn("hello"))
    assert outputs
    assert [m["text"] for m in rows(repository, tables.messages)] == ["hello"]


# ------------------------------------------------------------------ bad input


@pytest.mark.parametrize("text", ["", "   ", "\n\t "])
async def test_empty_or_whitespace_gets_a_reply_and_stores_nothing(
    dispatcher: Dispatcher, repository: Repository, text: str
) -> None:
    await start_and_reach_free_text(dispatcher, "blank")
    before = rows(repository, tables.answers)
    outputs = await send(dispatcher, "blank", TextIn(text))
    assert outputs and outputs[-1].kind == "question"  # asked again
    assert rows(repository, tables.answers) == before


async def test_a_10000_character_message_is_kept_whole_and_the_answer_trimmed_with_a_note(
    dispatcher: Dispatcher, repository: Repository
) -> None:
    outputs = await start_and_reach_free_text(dispatcher, "long")
    question_id = outputs[-1].question_id
    text = ("I want to say a lot about my school. " * 300)[:10_000]
    assert len(text) == 10_000
    outputs = await send(dispatcher, "long", TextIn(text))
    assert any(say.kind == "notice" and "2,000" in say.text for say in outputs)
    inbound = [m for m in rows(repository, tables.messages) if m["question_id"] == question_id]
    assert inbound[-1]["text"] == text.strip()  # nothing lost
    status, value = stored_answers(repository, "long", "bullying-v1")[question_id]
    assert status == "answered" and len(value) <= 2000 and text.startswith(value)


async def test_a_message_over_the_hard_limit_is_trimmed_with_a_note(
    repository: Repository, writes: WriteBatcher
) -> None:
    dispatcher = build_dispatcher(repository, writes, max_message_chars=5000)
    outputs = await send(dispatcher, "huge", TextIn("a" * 50_000))
    assert outputs[0].kind == "notice" and "5,000" in outputs[0].text
    (message,) = rows(repository, tables.messages)
    assert len(message["text"]) == 5000


async def test_emoji_right_to_left_and_control_characters(
    dispatcher: Dispatcher, repository: Repository
) -> None:
    outputs = await start_and_reach_free_text(dispatcher, "unicode")
    question_id = outputs[-1].question_id
    text = "مرحبا 👋🏽 שלום\u202e\x00\x07 ok\u200d👩‍👩‍👧"
    outputs = await send(dispatcher, "unicode", TextIn(text))
    assert outputs
    status, value = stored_answers(repository, "unicode", "bullying-v1")[question_id]
    assert status == "answered"
    assert "مرحبا" in value and "👋🏽" in value and "שלום" in value and "👩‍👩‍👧" in value
    assert "\x00" not in value and "\x07" not in value and "\u202e" not in value


@pytest.mark.parametrize("event", [CommandIn("frobnicate"), TextIn("/frobnicate")])
async def test_an_unknown_command_explains_the_commands(
    dispatcher: Dispatcher, repository: Repository, event
) -> None:
    outputs = await send(dispatcher, "curious", event)
    text = " ".join(say.text for say in outputs)
    assert "don't know" in text and "help" in text
    assert rows(repository, tables.responses) == []


async def test_a_stale_button_changes_nothing(
    dispatcher: Dispatcher, repository: Repository
) -> None:
    await send(dispatcher, "stale", CommandIn("start", "bullying-v1"))
    await send(dispatcher, "stale", ChoiceIn("yes", "__consent__"))
    outputs = await send(dispatcher, "stale", ChoiceIn("y8", "school_year"))
    current = outputs[-1].question_id
    assert current and current != "school_year"
    # An old "Year 10" button on the school-year question, tapped again later.
    outputs = await send(dispatcher, "stale", ChoiceIn("y10", "school_year"))
    assert outputs[-1].question_id == current
    assert stored_answers(repository, "stale", "bullying-v1")["school_year"] == ("answered", "y8")


async def test_a_double_tap_records_one_answer(
    dispatcher: Dispatcher, repository: Repository
) -> None:
    await send(dispatcher, "double", CommandIn("start", "bullying-v1"))
    await send(dispatcher, "double", ChoiceIn("yes", "__consent__"))
    tap = ChoiceIn("y8", "school_year")
    first, second = await asyncio.gather(
        send(dispatcher, "double", tap), send(dispatcher, "double", tap)
    )
    assert first[-1].question_id == second[-1].question_id != "school_year"
    answers = stored_answers(repository, "double", "bullying-v1")
    assert answers == {"school_year": ("answered", "y8")}
    assert len(dispatcher.locks) == 0  # locks are dropped when nobody waits


# ------------------------------------------------------------------ restart and expiry


async def test_a_restarted_server_resumes_each_conversation(
    repository: Repository, writes: WriteBatcher
) -> None:
    before = build_dispatcher(repository, writes)
    young_person = SimulatedRespondent(before, "resumer")
    outputs = await young_person.take_survey("online_safety", stop_after=4)
    asked = outputs[-1]
    assert asked.kind == "question"
    after = build_dispatcher(repository, writes)  # a new process on the same database
    resumed = await send(after, "resumer", ResumeIn())
    assert resumed[-1].question_id == asked.question_id
    assert resumed[-1].text == asked.text
    young_person.handler = after
    assert finished(await young_person.take_survey("online_safety"))


async def test_an_abandoned_session_is_kept_as_a_partial_response(
    dispatcher: Dispatcher, repository: Repository
) -> None:
    young_person = SimulatedRespondent(dispatcher, "leaver")
    await young_person.take_survey("bullying", stop_after=3)
    assert repository.expire_stale_responses(utcnow()) == 1
    (response,) = rows(repository, tables.responses)
    assert response["completed_at"] is None
    assert response["status"] == "partial"
    assert stored_answers(repository, "leaver", "bullying-v1")  # answers kept
    # Coming back later: the partial response is in progress again and carries on.
    outputs = await send(dispatcher, "leaver", ResumeIn())
    last = outputs[-1]
    assert last.kind == "question"
    choice = next(c for c in last.choices if not c.value.startswith("__"))
    await send(dispatcher, "leaver", ChoiceIn(choice.value, last.question_id))
    (response,) = rows(repository, tables.responses)
    assert response["status"] == "in_progress"


# ------------------------------------------------------------------ a busy database


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_a_locked_database_delays_the_answer_but_never_loses_it(
    dispatcher: Dispatcher, repository: Repository, database_url: str
) -> None:
    await send(dispatcher, "patient", CommandIn("start", "bullying-v1"))
    await send(dispatcher, "patient", ChoiceIn("yes", "__consent__"))
    path = repository.engine.url.database
    blocker = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    blocker.execute("BEGIN EXCLUSIVE")  # another writer holds the database
    released = threading.Timer(2.5, blocker.rollback)  # longer than one busy timeout
    released.start()
    try:
        outputs = await send(dispatcher, "patient", ChoiceIn("y9", "school_year"))
    finally:
        released.join()
        blocker.close()
    assert outputs[-1].question_id not in (None, "school_year")
    assert stored_answers(repository, "patient", "bullying-v1")["school_year"] == (
        "answered",
        "y9",
    )


def test_respondent_locks_serialise_one_person_only() -> None:
    locks = RespondentLocks()
    order: list[str] = []

    async def hold(key: str, label: str, pause: float) -> None:
        async with locks.hold(key):
            order.append(f"{label}+")
            await asyncio.sleep(pause)
            order.append(f"{label}-")

    async def main() -> None:
        await asyncio.gather(hold("a", "a1", 0.05), hold("a", "a2", 0), hold("b", "b1", 0))

    asyncio.run(main())
    assert order.index("a1-") < order.index("a2+")  # same person: one after the other
    assert order.index("b1+") < order.index("a1-")  # someone else did not wait
    assert len(locks) == 0
